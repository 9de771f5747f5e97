//! Unit-door credentials in the database — cards, keypad PINs, temporary
//! codes, blocked cards — with the in-memory snapshot
//! ([`Credentials`]) that door decisions read without touching the disk.
//!
//! Every change goes through the store's one writer, then the snapshot is
//! rebuilt and swapped, so a decision sees the old credentials or the new
//! ones, never half a change; big writes (a CSV import, a platform sync) go
//! in bounded chunks and the snapshot is swapped once, after the last one.
//!
//! This file owns the store and its snapshot: opening, the known door
//! groups, the change counter another process bumps, reloading, the cards
//! and blocked cards a guard changes one at a time, and loading the
//! snapshot from the rows. Beside it, one concern a file:
//!
//! - `keypad`: residents' PINs and temporary codes, kept only as hashes;
//! - `csv`: card CSV import (UTF-8 or GB18030), which validates every row
//!   first and writes all of them, or nothing when any is rejected unless
//!   asked to keep the good ones (rejected rows come back with their line
//!   numbers and reasons), and export;
//! - `sync`: the platform's card list sync, which replaces the whole list
//!   or applies upserts and deletes from the version held; any invalid row
//!   and nothing changes (the previous version stays in force). The sync
//!   target itself is [`crate::doors::sync`].

mod csv;
mod keypad;
mod sync;

pub use csv::CARD_HEADER;
pub use keypad::{NewPin, NewTempCode};
pub use sync::CARDS_LIST;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::codes::{self, Salt};
use crate::rules::door::{
    Blocked, Card, CardIndex, CardIndexBuilder, CodeEntry, CodeHash, Credentials, Pin, TempCode,
    canonical_card,
};
use crate::store::Store;
use crate::vocab::records::ListError;

/// The credentials: database plus in-memory snapshot. Share it in an `Arc`;
/// every method is synchronous and short (call it from `spawn_blocking` on
/// an async path). Decisions only call [`CredentialStore::snapshot`].
#[derive(Debug)]
pub struct CredentialStore {
    /// The database's one writer.
    writer: Store,
    /// For reads.
    conn: Mutex<Connection>,
    salt: Salt,
    snapshot: RwLock<Arc<Credentials>>,
    /// Door groups that exist (from the configuration, replaced by a
    /// reload); `None`: not checked.
    known_groups: RwLock<Option<HashSet<String>>>,
    /// The change counter the snapshot was loaded at.
    loaded_at: AtomicI64,
}

/// The `meta` key of the change counter every credential change bumps, so
/// that a running gateway notices changes made by `gatehouse cards`.
const CHANGES_KEY: &str = "door_credentials_changes";

fn now_ms() -> i64 {
    drivers::contract::now_ms()
}

impl CredentialStore {
    /// Opens the credentials in the store's database and loads the snapshot.
    /// Reads go through its own connection; every write goes through the
    /// store's writer ([`Store::write_blocking`]), big ones in chunks.
    pub fn open(store: &Store) -> Result<Self, ListError> {
        let conn = store.connect()?;
        let salt = codes::load_or_create_salt(&conn)?;
        let store = Self {
            writer: store.clone(),
            conn: Mutex::new(conn),
            salt,
            snapshot: RwLock::new(Arc::new(Credentials::default())),
            known_groups: RwLock::new(None),
            loaded_at: AtomicI64::new(-1),
        };
        store.reload()?;
        Ok(store)
    }

    /// Refuses credentials naming a door group not in `groups`.
    pub fn with_known_groups(self, groups: impl IntoIterator<Item = String>) -> Self {
        self.set_known_groups(groups);
        self
    }

    /// The door groups that exist now (after a reload of the configuration).
    pub fn set_known_groups(&self, groups: impl IntoIterator<Item = String>) {
        *self
            .known_groups
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(groups.into_iter().collect());
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current credentials, for decisions.
    pub fn snapshot(&self) -> Arc<Credentials> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The hash a typed code is looked up by.
    pub fn hash(&self, code: &str) -> CodeHash {
        codes::hash_code(&self.salt, code)
    }

    /// Re-reads everything and swaps the snapshot. The old snapshot is freed
    /// here (unless a decision still holds it) and the freed heap given
    /// back to the system, so that reloads do not pile up.
    pub fn reload(&self) -> Result<(), ListError> {
        let (credentials, counter) = {
            let conn = self.lock();
            (load(&conn)?, change_counter(&conn)?)
        };
        self.loaded_at.store(counter, Ordering::Relaxed);
        crate::memory::swap_in(&self.snapshot, credentials);
        Ok(())
    }

    /// Reloads the snapshot if another process (or connection) changed the
    /// credentials since it was loaded; returns whether it did. One small
    /// query when nothing changed.
    pub fn reload_if_changed(&self) -> Result<bool, ListError> {
        let counter = change_counter(&self.lock())?;
        if counter == self.loaded_at.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// Runs `change` in one transaction of the store's writer (with the
    /// change counter bumped), then reloads the snapshot.
    fn change<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Transaction<'_>) -> Result<T, ListError> + Send + 'static,
    ) -> Result<T, ListError> {
        let value = self.writer.write_blocking(move |tx| {
            let value = change(tx)?;
            bump_changes(tx)?;
            Ok::<_, ListError>(value)
        })?;
        self.reload()?;
        Ok(value)
    }

    /// Writes `cards` in bounded chunks through the store's writer (each an
    /// upsert stamped `now`), then bumps the change counter and reloads.
    fn write_cards(
        &self,
        cards: Vec<Card>,
        now: i64,
        progress: impl FnMut(u64),
    ) -> Result<(), ListError> {
        self.writer
            .write_in_chunks(cards, move |tx, card| write_card(tx, card, now), progress)
    }

    /// Checks a card and returns it canonical.
    pub fn check_card(&self, card: &Card) -> Result<Card, String> {
        let number = canonical_card(&card.number)
            .ok_or_else(|| format!("card number {:?} is not a decimal number", card.number))?;
        if card.holder.trim().is_empty() {
            return Err("holder is required".into());
        }
        if card.house.trim().is_empty() {
            return Err("house is required".into());
        }
        check_window(card.valid_from, card.valid_to)?;
        self.check_groups(&card.groups)?;
        Ok(Card {
            number,
            holder: card.holder.trim().to_owned(),
            house: card.house.trim().to_owned(),
            valid_from: card.valid_from,
            valid_to: card.valid_to,
            groups: card.groups.clone(),
        })
    }

    fn check_groups(&self, groups: &[String]) -> Result<(), String> {
        let known = self
            .known_groups
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(known) = &*known else {
            return Ok(());
        };
        match groups.iter().find(|g| !known.contains(*g)) {
            Some(unknown) => Err(format!("no door group {unknown:?} is configured")),
            None => Ok(()),
        }
    }

    /// Adds or replaces a card.
    pub fn upsert_card(&self, card: &Card) -> Result<(), ListError> {
        let card = self.check_card(card).map_err(ListError::Invalid)?;
        self.change(move |tx| write_card(tx, &card, now_ms()))
    }

    /// Removes a card; `false` if it was not listed.
    pub fn remove_card(&self, number: &str) -> Result<bool, ListError> {
        let number = card_number(number)?;
        self.change(move |tx| {
            Ok(tx.execute("DELETE FROM door_cards WHERE number = ?1", [number])? > 0)
        })
    }

    /// Every card, by number (as text).
    pub fn cards(&self) -> Vec<Card> {
        self.snapshot().cards.iter().map(|c| c.to_card()).collect()
    }

    /// Blocks a card (it need not be listed).
    pub fn block(&self, number: &str, reason: &str) -> Result<(), ListError> {
        let number = card_number(number)?;
        let reason = reason.trim().to_owned();
        self.change(move |tx| {
            tx.execute(
                "INSERT INTO door_blocked (number, reason, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (number) DO UPDATE SET reason = ?2, updated_ms = ?3",
                params![number, reason, now_ms()],
            )?;
            Ok(())
        })
    }

    /// Unblocks a card; `false` if it was not blocked.
    pub fn unblock(&self, number: &str) -> Result<bool, ListError> {
        let number = card_number(number)?;
        self.change(move |tx| {
            Ok(tx.execute("DELETE FROM door_blocked WHERE number = ?1", [number])? > 0)
        })
    }
}

fn change_counter(conn: &Connection) -> Result<i64, ListError> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [CHANGES_KEY],
            |r| r.get(0),
        )
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn card_number(raw: &str) -> Result<String, ListError> {
    canonical_card(raw)
        .ok_or_else(|| ListError::Invalid(format!("card number {raw:?} is not a decimal number")))
}

fn check_window(from: Option<i64>, to: Option<i64>) -> Result<(), String> {
    match (from, to) {
        (Some(f), Some(t)) if t <= f => Err("the validity window ends before it starts".into()),
        _ => Ok(()),
    }
}

fn split_groups(text: &str) -> Vec<String> {
    text.split([';', ','])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

fn write_card(tx: &Transaction<'_>, card: &Card, now: i64) -> Result<(), ListError> {
    tx.execute(
        "INSERT INTO door_cards (number, holder, house, valid_from, valid_to, groups, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (number) DO UPDATE SET holder = ?2, house = ?3, valid_from = ?4,
             valid_to = ?5, groups = ?6, updated_ms = ?7",
        params![
            card.number,
            card.holder,
            card.house,
            card.valid_from,
            card.valid_to,
            card.groups.join(","),
            now
        ],
    )?;
    Ok(())
}

/// Bumps the change counter a running gateway watches (also after an
/// erasure's deletes, `crate::privacy`).
pub fn bump_changes(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [CHANGES_KEY],
    )
    .map(drop)
}

fn groups_column(text: String) -> Vec<String> {
    split_groups(&text)
}

/// The cards, packed into the snapshot's index straight from the rows
/// (sized first, so the index's three buffers are allocated once).
fn load_cards(conn: &Connection) -> Result<CardIndex, ListError> {
    let (count, text): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(length(CAST(number AS BLOB))
             + length(CAST(holder AS BLOB)) + length(CAST(house AS BLOB))), 0)
         FROM door_cards",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut cards = CardIndexBuilder::with_capacity(
        usize::try_from(count).unwrap_or(0),
        usize::try_from(text).unwrap_or(0),
    );
    let mut stmt =
        conn.prepare("SELECT number, holder, house, valid_from, valid_to, groups FROM door_cards")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
        let groups: Vec<&str> = text(5)?
            .split([';', ','])
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .collect();
        cards
            .push(
                text(0)?,
                text(1)?,
                text(2)?,
                r.get(3)?,
                r.get(4)?,
                groups.as_slice(),
            )
            .map_err(|e| ListError::Invalid(e.to_string()))?;
    }
    Ok(cards.build())
}

fn load(conn: &Connection) -> Result<Credentials, ListError> {
    let mut credentials = Credentials {
        cards: load_cards(conn)?,
        ..Credentials::default()
    };
    let mut stmt = conn.prepare(
        "SELECT id, code_hash, holder, house, valid_from, valid_to, groups FROM door_pins",
    )?;
    let pins = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(1)?,
            CodeEntry::Pin(Pin {
                id: r.get(0)?,
                holder: r.get(2)?,
                house: r.get(3)?,
                valid_from: r.get(4)?,
                valid_to: r.get(5)?,
                groups: groups_column(r.get(6)?),
            }),
        ))
    })?;
    let mut stmt = conn.prepare(
        "SELECT id, code_hash, label, house, valid_from, valid_to, max_uses, used, groups
         FROM door_temp_codes",
    )?;
    let temps = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(1)?,
            CodeEntry::Temp(TempCode {
                id: r.get(0)?,
                label: r.get(2)?,
                house: r.get(3)?,
                valid_from: r.get(4)?,
                valid_to: r.get(5)?,
                max_uses: r.get(6)?,
                used: r.get(7)?,
                groups: groups_column(r.get(8)?),
            }),
        ))
    })?;
    for entry in pins.chain(temps) {
        let (hash, entry) = entry?;
        match codes::from_hex(&hash) {
            Some(hash) => {
                credentials.codes.insert(hash, entry);
            }
            None => tracing::error!("A stored code hash is damaged; that code is ignored."),
        }
    }
    let mut stmt = conn.prepare("SELECT number, reason FROM door_blocked")?;
    let blocked = stmt.query_map([], |r| {
        Ok(Blocked {
            number: r.get(0)?,
            reason: r.get(1)?,
        })
    })?;
    for b in blocked {
        let b = b?;
        credentials.blocked.insert(b.number.clone(), b);
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    pub(super) fn open() -> (tempfile::TempDir, Store, CredentialStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(StoreConfig::new(dir.path().join("g.db"))).expect("store");
        let creds = CredentialStore::open(&store)
            .expect("credentials")
            .with_known_groups(["b3".to_owned(), "basement".to_owned()]);
        (dir, store, creds)
    }

    #[tokio::test]
    async fn cards_changed_by_another_process_are_picked_up() {
        let (_dir, store, creds) = open();
        assert!(
            !creds.reload_if_changed().expect("check"),
            "nothing changed"
        );
        let cli = CredentialStore::open(&store).expect("second connection");
        cli.block("42", "lost").expect("block");
        assert!(!creds.snapshot().blocked.contains_key("42"));
        assert!(creds.reload_if_changed().expect("check"));
        assert!(creds.snapshot().blocked.contains_key("42"));
        assert!(!creds.reload_if_changed().expect("check"));
    }

    #[tokio::test]
    async fn blocked_cards_are_in_the_snapshot() {
        let (_dir, _store, creds) = open();
        creds.block("00777", "lost").expect("block");
        assert_eq!(creds.snapshot().blocked["777"].reason, "lost");
        assert!(creds.unblock("777").expect("unblock"));
        assert!(!creds.unblock("777").expect("again"));
    }

    #[test]
    fn a_door_group_added_by_a_reload_may_be_named_by_cards() {
        let (_dir, _store, creds) = open();
        let card = |groups: &[&str]| Card {
            number: "4242".into(),
            holder: "赵敏".into(),
            house: "7-1-101".into(),
            valid_from: None,
            valid_to: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        assert!(
            creds.upsert_card(&card(&["gym"])).is_err(),
            "no such group yet"
        );
        creds.set_known_groups(["b3".to_owned(), "gym".to_owned()]);
        creds
            .upsert_card(&card(&["gym"]))
            .expect("the reloaded group");
        assert!(creds.upsert_card(&card(&["basement"])).is_err(), "gone");
    }
}
