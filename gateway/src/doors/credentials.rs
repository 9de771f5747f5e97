//! Unit-door credentials in the database — cards, keypad PINs, temporary
//! codes, blocked cards — with the in-memory snapshot
//! ([`Credentials`]) that door decisions read without touching the disk.
//!
//! Every change is written in one transaction, then the snapshot is rebuilt
//! and swapped, so a decision sees the old credentials or the new ones,
//! never half a change. Card CSV import (UTF-8 or GB18030) validates every
//! row first and writes in one transaction — all of them, or nothing when
//! any is rejected unless asked to keep the good ones; rejected rows come
//! back with their line numbers and reasons. The platform's list sync replaces the
//! whole card list or applies upserts and deletes, each in one transaction
//! that is rolled back (the previous version stays in force) when any row
//! is invalid.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Deserialize;

use super::codes::{self, Salt};
use crate::rules::door::{
    Blocked, Card, CardIndex, CardIndexBuilder, CodeEntry, CodeHash, Credentials, Pin, TempCode,
    canonical_card,
};
use crate::store::{Effect, Store};
use crate::vocab::import::{self, ImportMode};
use crate::vocab::records::{ImportReport, ListError, Rejected};
use crate::vocab::time::{format_bound, parse_optional_ms};

/// The CSV header of the card list.
pub const CARD_HEADER: [&str; 6] = [
    "number",
    "holder",
    "house",
    "valid_from",
    "valid_to",
    "groups",
];

/// The list name of cards in `list_versions` and in sync messages.
pub const CARDS_LIST: &str = "cards";

/// A new keypad PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPin {
    /// Holder's name.
    pub holder: String,
    /// House / unit.
    pub house: String,
    /// Valid from (Unix ms), if limited.
    pub valid_from: Option<i64>,
    /// Valid until (Unix ms), if limited.
    pub valid_to: Option<i64>,
    /// Door groups; empty = every door.
    pub groups: Vec<String>,
}

/// A new temporary code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTempCode {
    /// Who it is for.
    pub label: String,
    /// The host's house.
    pub house: String,
    /// Valid from (Unix ms).
    pub valid_from: i64,
    /// Valid for this many hours.
    pub hours: u32,
    /// Uses allowed.
    pub max_uses: u32,
    /// Door groups; empty = every door.
    pub groups: Vec<String>,
    /// Who registered it.
    pub created_by: String,
}

/// A card as the platform syncs it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncedCard {
    number: String,
    holder: String,
    house: String,
    #[serde(default)]
    valid_from: Option<i64>,
    #[serde(default)]
    valid_to: Option<i64>,
    #[serde(default)]
    groups: Vec<String>,
}

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
        let old = std::mem::replace(
            &mut *self
                .snapshot
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            Arc::new(credentials),
        );
        drop(old);
        crate::memory::release_free_heap();
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

    fn check_code_free(tx: &Transaction<'_>, hash: &str) -> Result<(), ListError> {
        let taken: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM door_pins WHERE code_hash = ?1
                 UNION ALL SELECT 1 FROM door_temp_codes WHERE code_hash = ?1",
                [hash],
                |r| r.get(0),
            )
            .optional()?;
        match taken {
            Some(_) => Err(ListError::Invalid(
                "this code is already in use; choose another".into(),
            )),
            None => Ok(()),
        }
    }

    /// Enrols a resident's PIN; returns its id. The PIN is kept only hashed.
    pub fn add_pin(&self, code: &str, pin: &NewPin) -> Result<i64, ListError> {
        codes::check_code(code)?;
        if pin.holder.trim().is_empty() || pin.house.trim().is_empty() {
            return Err(ListError::Invalid("holder and house are required".into()));
        }
        check_window(pin.valid_from, pin.valid_to).map_err(ListError::Invalid)?;
        self.check_groups(&pin.groups).map_err(ListError::Invalid)?;
        let hash = codes::to_hex(&self.hash(code));
        let pin = pin.clone();
        self.change(move |tx| {
            Self::check_code_free(tx, &hash)?;
            tx.execute(
                "INSERT INTO door_pins (code_hash, holder, house, valid_from, valid_to, groups, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    hash,
                    pin.holder.trim(),
                    pin.house.trim(),
                    pin.valid_from,
                    pin.valid_to,
                    pin.groups.join(","),
                    now_ms()
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Removes a PIN; `false` if there was none with this id.
    pub fn remove_pin(&self, id: i64) -> Result<bool, ListError> {
        self.change(move |tx| Ok(tx.execute("DELETE FROM door_pins WHERE id = ?1", [id])? > 0))
    }

    /// Issues a temporary code; returns its id. Expired codes are purged
    /// first, so their digits can be issued again.
    pub fn add_temp_code(&self, code: &str, new: &NewTempCode) -> Result<i64, ListError> {
        codes::check_code(code)?;
        if new.hours == 0 || new.max_uses == 0 {
            return Err(ListError::Invalid(
                "a temporary code needs at least one hour and one use".into(),
            ));
        }
        if new.house.trim().is_empty() {
            return Err(ListError::Invalid("house is required".into()));
        }
        self.check_groups(&new.groups).map_err(ListError::Invalid)?;
        let hash = codes::to_hex(&self.hash(code));
        let now = now_ms();
        let valid_to = new.valid_from + i64::from(new.hours) * 3_600_000;
        let new = new.clone();
        self.change(move |tx| {
            tx.execute("DELETE FROM door_temp_codes WHERE valid_to < ?1", [now])?;
            Self::check_code_free(tx, &hash)?;
            tx.execute(
                "INSERT INTO door_temp_codes (code_hash, label, house, valid_from, valid_to, max_uses,
                     groups, created_by, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    hash,
                    new.label.trim(),
                    new.house.trim(),
                    new.valid_from,
                    valid_to,
                    new.max_uses,
                    new.groups.join(","),
                    new.created_by,
                    now
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Revokes a temporary code; `false` if there was none with this id.
    pub fn revoke_temp_code(&self, id: i64) -> Result<bool, ListError> {
        self.change(move |tx| {
            Ok(tx.execute("DELETE FROM door_temp_codes WHERE id = ?1", [id])? > 0)
        })
    }

    /// The effect recording that a temporary code has been used `used`
    /// times (never lowering the stored count), committed with the card
    /// read's event. The snapshot is not rebuilt: the coordinator counts
    /// uses itself.
    pub fn code_use(&self, id: i64, used: u32) -> Effect {
        Effect::new(
            format!("temporary code {id} used {used} times"),
            move |conn| {
                conn.execute(
                    "UPDATE door_temp_codes SET used = MAX(used, ?2) WHERE id = ?1",
                    params![id, used],
                )
                .map(drop)
            },
        )
    }

    /// Validates a card CSV (UTF-8 or GB18030) without writing anything:
    /// how many rows `mode` would write, and which are refused.
    pub fn check_cards_csv(
        &self,
        bytes: &[u8],
        mode: ImportMode,
    ) -> Result<ImportReport, ListError> {
        let (text, encoding) = import::decode(bytes)?;
        let (rows, rejected) = self.parse_cards_csv(text.as_bytes())?;
        Ok(ImportReport::new(rows.len(), rejected, encoding, mode))
    }

    /// Imports a card CSV (UTF-8 or GB18030): validates every row, then
    /// writes every valid row (upserts, in bounded chunks through the
    /// store's writer), or under [`ImportMode::AllOrNothing`] nothing when
    /// any row is rejected. The snapshot is swapped once, at the end.
    /// `progress` is called with the rows written so far.
    pub fn import_cards_csv(
        &self,
        bytes: &[u8],
        mode: ImportMode,
        progress: impl FnMut(u64),
    ) -> Result<ImportReport, ListError> {
        let (text, encoding) = import::decode(bytes)?;
        let (rows, rejected) = self.parse_cards_csv(text.as_bytes())?;
        let report = ImportReport::new(rows.len(), rejected, encoding, mode);
        if report.written == 0 {
            return Ok(report);
        }
        self.write_cards(rows, now_ms(), progress)?;
        self.change(|_| Ok(()))?;
        Ok(report)
    }

    /// Writes every card as CSV with a header; returns how many.
    pub fn export_cards_csv(&self, output: impl Write) -> Result<usize, ListError> {
        let mut out = csv::Writer::from_writer(output);
        out.write_record(CARD_HEADER)?;
        let snapshot = self.snapshot();
        let bound = |t: Option<i64>, end: bool| t.map(|t| format_bound(t, end)).unwrap_or_default();
        // Already in the order of the numbers.
        for c in snapshot.cards.iter() {
            out.write_record([
                c.number,
                c.holder,
                c.house,
                &bound(c.valid_from, false),
                &bound(c.valid_to, true),
                &c.groups.join(";"),
            ])?;
        }
        out.flush().map_err(csv::Error::from)?;
        Ok(snapshot.cards.len())
    }

    fn parse_cards_csv(&self, input: impl Read) -> Result<(Vec<Card>, Vec<Rejected>), ListError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(input);
        let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
        if header.iter().map(String::as_str).ne(CARD_HEADER) {
            return Err(ListError::Invalid(format!(
                "line 1: the header must be `{}`, found `{}`",
                CARD_HEADER.join(","),
                header.join(",")
            )));
        }
        let mut rows = Vec::new();
        let mut rejected = Vec::new();
        let mut seen: HashMap<String, u64> = HashMap::new();
        for record in reader.records() {
            let record = record?;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != CARD_HEADER.len() {
                rejected.push(Rejected {
                    line,
                    reason: format!(
                        "expected {} fields, found {}",
                        CARD_HEADER.len(),
                        record.len()
                    ),
                });
                continue;
            }
            let field = |i: usize| record.get(i).unwrap_or("");
            let parsed = (|| {
                let card = Card {
                    number: field(0).to_owned(),
                    holder: field(1).to_owned(),
                    house: field(2).to_owned(),
                    valid_from: parse_optional_ms(field(3), false)?,
                    valid_to: parse_optional_ms(field(4), true)?,
                    groups: split_groups(field(5)),
                };
                self.check_card(&card)
            })();
            match parsed {
                Ok(card) => {
                    if let Some(first) = seen.insert(card.number.clone(), line) {
                        rejected.push(Rejected {
                            line,
                            reason: format!("card {} already appears on line {first}", card.number),
                        });
                        continue;
                    }
                    rows.push(card);
                }
                Err(reason) => rejected.push(Rejected { line, reason }),
            }
        }
        Ok((rows, rejected))
    }

    /// The version of the synced card list (0 when never synced).
    pub fn cards_version(&self) -> Result<u64, ListError> {
        let v: Option<i64> = self
            .lock()
            .query_row(
                "SELECT version FROM list_versions WHERE list = ?1",
                [CARDS_LIST],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }

    fn synced_cards(&self, rows: Vec<serde_json::Value>) -> Result<Vec<Card>, ListError> {
        rows.into_iter()
            .enumerate()
            .map(|(i, row)| {
                let synced: SyncedCard = serde_json::from_value(row)
                    .map_err(|e| ListError::Invalid(format!("row {i}: {e}")))?;
                self.check_card(&Card {
                    number: synced.number,
                    holder: synced.holder,
                    house: synced.house,
                    valid_from: synced.valid_from,
                    valid_to: synced.valid_to,
                    groups: synced.groups,
                })
                .map_err(|e| ListError::Invalid(format!("row {i}: {e}")))
            })
            .collect()
    }

    /// Replaces every card with `rows` at `version`; on any invalid row
    /// nothing changes. Written in bounded chunks: the new cards are
    /// upserted stamped with this sync's time, then the cards not stamped
    /// are deleted, then the version is set. Interrupted, the table holds
    /// the old cards and some new ones (nobody is locked out) at the old
    /// version, so the next sync starts again.
    pub fn replace_cards(
        &self,
        version: u64,
        rows: Vec<serde_json::Value>,
    ) -> Result<(), ListError> {
        let cards = self.synced_cards(rows)?;
        let stamp = now_ms();
        self.write_cards(cards, stamp, |_| {})?;
        self.writer.delete_in_chunks(
            "DELETE FROM door_cards WHERE rowid IN
                 (SELECT rowid FROM door_cards WHERE updated_ms <> ?1 LIMIT 256)",
            stamp,
        )?;
        self.change(move |tx| set_version(tx, CARDS_LIST, version))
    }

    /// Applies upserts and deletes (card numbers) taking the list from
    /// version `from` to `to`, in one transaction; on any invalid row, or
    /// when `from` is not the version held, nothing changes.
    pub fn apply_cards_delta(
        &self,
        from: u64,
        to: u64,
        upserts: Vec<serde_json::Value>,
        deletes: Vec<String>,
    ) -> Result<(), ListError> {
        let cards = self.synced_cards(upserts)?;
        let deletes = deletes
            .iter()
            .map(|n| card_number(n))
            .collect::<Result<Vec<_>, _>>()?;
        let held = self.cards_version()?;
        if held != from {
            return Err(ListError::Invalid(format!(
                "delta from version {from}, but version {held} is held"
            )));
        }
        self.writer.write_in_chunks(
            deletes,
            |tx, number| {
                tx.execute("DELETE FROM door_cards WHERE number = ?1", [number])?;
                Ok::<_, ListError>(())
            },
            |_| {},
        )?;
        self.write_cards(cards, now_ms(), |_| {})?;
        self.change(move |tx| set_version(tx, CARDS_LIST, to))
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

/// Bumps the change counter a running gateway watches.
fn bump_changes(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [CHANGES_KEY],
    )
    .map(drop)
}

fn set_version(tx: &Transaction<'_>, list: &str, version: u64) -> Result<(), ListError> {
    let version = i64::try_from(version)
        .map_err(|_| ListError::Invalid(format!("version {version} is too large")))?;
    tx.execute(
        "INSERT INTO list_versions (list, version) VALUES (?1, ?2)
         ON CONFLICT (list) DO UPDATE SET version = ?2",
        params![list, version],
    )?;
    Ok(())
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

    fn open() -> (tempfile::TempDir, Store, CredentialStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(StoreConfig::new(dir.path().join("g.db"))).expect("store");
        let creds = CredentialStore::open(&store)
            .expect("credentials")
            .with_known_groups(["b3".to_owned(), "basement".to_owned()]);
        (dir, store, creds)
    }

    const CSV: &str = "number,holder,house,valid_from,valid_to,groups\n\
        0012345,王芳,3-1-1201,,,b3\n\
        22334455,李雷,3-1-1202,2026-01-01,2026-12-31,b3;basement\n\
        12x45,坏卡,3-1-1203,,,\n\
        12345,重复,3-1-1204,,,\n\
        55555,,3-1-1205,,,\n\
        66666,韩梅梅,3-1-1206,2026-12-31,2026-01-01,\n\
        77777,张伟,3-1-1207,,,gym\n\
        88888,too,few\n";

    #[tokio::test]
    async fn cards_csv_import_writes_good_rows_and_reports_bad_ones_by_line() {
        let (_dir, _store, creds) = open();
        let refused = creds
            .import_cards_csv(CSV.as_bytes(), ImportMode::AllOrNothing, |_| {})
            .expect("import");
        assert_eq!((refused.written, refused.valid), (0, 2));
        assert_eq!(refused.rejected.len(), 6);
        assert!(creds.snapshot().cards.is_empty(), "all or nothing");
        let mut progress = Vec::new();
        let report = creds
            .import_cards_csv(CSV.as_bytes(), ImportMode::KeepGood, |n| progress.push(n))
            .expect("import");
        assert_eq!(report.written, 2);
        assert_eq!(progress, vec![2], "progress after each chunk");
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7, 8, 9], "{:?}", report.rejected);
        let reasons: Vec<&str> = report.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert!(reasons[0].contains("not a decimal number"));
        assert!(reasons[1].contains("already appears on line 2"));
        assert!(reasons[2].contains("holder is required"));
        assert!(reasons[3].contains("ends before it starts"));
        assert!(reasons[4].contains("no door group \"gym\""));
        assert!(reasons[5].contains("expected 6 fields"));
        let snapshot = creds.snapshot();
        let card = snapshot.cards.get("12345").expect("leading zeros dropped");
        assert_eq!(card.holder, "王芳");
        let groups = snapshot
            .cards
            .get("22334455")
            .expect("card")
            .to_card()
            .groups;
        assert_eq!(groups, vec!["b3", "basement"]);
    }

    #[tokio::test]
    async fn cards_csv_export_then_import_round_trips() {
        let (_dir, _store, creds) = open();
        creds
            .import_cards_csv(CSV.as_bytes(), ImportMode::KeepGood, |_| {})
            .expect("import");
        let mut out = Vec::new();
        assert_eq!(creds.export_cards_csv(&mut out).expect("export"), 2);
        let (_dir2, _store2, other) = open();
        let report = other
            .import_cards_csv(out.as_slice(), ImportMode::AllOrNothing, |_| {})
            .expect("re-import");
        assert_eq!(report.written, 2, "{:?}", report.rejected);
        assert!(report.rejected.is_empty());
        assert_eq!(other.cards(), creds.cards());
    }

    #[tokio::test]
    async fn cards_csv_with_a_wrong_header_is_refused_whole() {
        let (_dir, _store, creds) = open();
        let err = creds
            .import_cards_csv("card,name\n1,x\n".as_bytes(), ImportMode::KeepGood, |_| {})
            .expect_err("header");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(creds.snapshot().cards.is_empty());
    }

    #[tokio::test]
    async fn temp_code_and_pin_are_stored_hashed_found_by_hash_and_unique() {
        let (_dir, store, creds) = open();
        let now = now_ms();
        let id = creds
            .add_temp_code(
                "246810",
                &NewTempCode {
                    label: "快递".into(),
                    house: "3-1-1201".into(),
                    valid_from: now,
                    hours: 2,
                    max_uses: 3,
                    groups: vec![],
                    created_by: "guard".into(),
                },
            )
            .expect("code");
        let pin = creds
            .add_pin(
                "135790",
                &NewPin {
                    holder: "王芳".into(),
                    house: "3-1-1201".into(),
                    valid_from: None,
                    valid_to: None,
                    groups: vec!["b3".into()],
                },
            )
            .expect("pin");
        let snapshot = creds.snapshot();
        match snapshot.codes.get(&creds.hash("246810")) {
            Some(CodeEntry::Temp(t)) => {
                assert_eq!(t.id, id);
                assert_eq!(t.valid_to - t.valid_from, 2 * 3_600_000);
            }
            other => panic!("temp code not found: {other:?}"),
        }
        assert!(
            matches!(snapshot.codes.get(&creds.hash("135790")), Some(CodeEntry::Pin(p)) if p.id == pin)
        );
        let dup = creds.add_pin(
            "246810",
            &NewPin {
                holder: "x".into(),
                house: "y".into(),
                valid_from: None,
                valid_to: None,
                groups: vec![],
            },
        );
        assert!(dup.is_err(), "a code in use is refused");
        // The database holds no code in clear.
        let conn = store.connect().expect("conn");
        let dump: String = conn
            .query_row(
                "SELECT group_concat(code_hash) FROM (SELECT code_hash FROM door_pins
                 UNION ALL SELECT code_hash FROM door_temp_codes)",
                [],
                |r| r.get(0),
            )
            .expect("dump");
        assert!(!dump.contains("246810") && !dump.contains("135790"));
        let (use2, use1) = (creds.code_use(id, 2), creds.code_use(id, 1));
        store.submit_with(Vec::new(), vec![use2]).wait().await;
        store.submit_with(Vec::new(), vec![use1]).wait().await;
        creds.reload().expect("reload");
        match creds.snapshot().codes.get(&creds.hash("246810")) {
            Some(CodeEntry::Temp(t)) => assert_eq!(t.used, 2, "never lowered"),
            other => panic!("{other:?}"),
        }
        assert!(creds.revoke_temp_code(id).expect("revoke"));
        assert!(!creds.snapshot().codes.contains_key(&creds.hash("246810")));
    }

    #[tokio::test]
    async fn cards_sync_snapshot_and_delta_are_atomic() {
        let (_dir, _store, creds) = open();
        let row = |n: &str| serde_json::json!({"number": n, "holder": "h", "house": "1-1-101", "groups": ["b3"]});
        creds
            .replace_cards(5, vec![row("1"), row("2")])
            .expect("snapshot");
        assert_eq!(creds.cards_version().expect("v"), 5);
        assert_eq!(creds.cards().len(), 2);
        // One bad row: nothing changes.
        let bad = creds.replace_cards(6, vec![row("3"), serde_json::json!({"number": "x"})]);
        assert!(bad.is_err());
        assert_eq!(creds.cards_version().expect("v"), 5);
        assert_eq!(creds.cards().len(), 2);
        let gap = creds.apply_cards_delta(4, 7, vec![row("9")], vec![]);
        assert!(gap.is_err(), "from must be the version held");
        creds
            .apply_cards_delta(5, 6, vec![row("3")], vec!["1".into()])
            .expect("delta");
        let numbers: Vec<String> = creds.cards().into_iter().map(|c| c.number).collect();
        assert_eq!(numbers, vec!["2", "3"]);
        assert_eq!(creds.cards_version().expect("v"), 6);
        let unknown_group = creds.apply_cards_delta(
            6,
            7,
            vec![
                serde_json::json!({"number": "4", "holder": "h", "house": "x", "groups": ["gym"]}),
            ],
            vec![],
        );
        assert!(unknown_group.is_err());
        assert_eq!(creds.cards_version().expect("v"), 6);
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
