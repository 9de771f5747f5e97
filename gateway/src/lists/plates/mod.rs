//! Vehicle lists in the database: residents' vehicles, visitor passes, the
//! blacklist and the vehicles currently inside, with an in-memory snapshot
//! ([`PlateLists`]) that lane decisions read without touching the disk.
//!
//! Every change goes through the store's one writer
//! ([`Store::write_blocking`]), then the snapshot is rebuilt and swapped, so
//! a decision sees either the old lists or the new ones, never half of a
//! change. Big writes (a CSV import, a platform sync) go in bounded chunks
//! so they never hold the database while an event waits for its
//! acknowledgement; the snapshot is swapped once, after the last chunk.
//!
//! This file owns the registry and its snapshot: opening, the change
//! counter another process bumps, reloading, the single-row changes a
//! guard makes and the rows' SQL. Beside it, one concern a file:
//!
//! - `csv`: CSV import (UTF-8 or GB18030, see [`crate::vocab::import`]),
//!   which validates every row first (plates are normalised; dates parsed)
//!   and writes all rows, or nothing when any is rejected (unless asked to
//!   keep the good ones; rejected rows come back with their line numbers
//!   and reasons), and export;
//! - `sync`: a platform sync of one list applied ([`SyncRows`]), and the
//!   lists' versions;
//! - `inside`: the vehicles currently inside. The lanes' own changes (a
//!   vehicle inside or gone, a pass used) are made in memory at once and
//!   returned as [`Effect`]s, committed with the read's event.

mod csv;
mod inside;
mod sync;

pub use sync::SyncRows;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::rules::plate::{PlateText, normalise};
use crate::rules::vehicle::{
    Blacklisted, PlateLists, Resident, ResidentIndex, ResidentIndexBuilder, VisitorPass,
};
use crate::store::{Effect, Store};
use crate::vocab::records::ListError;

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// Residents' vehicles.
    Residents,
    /// Visitor passes.
    Visitors,
    /// Blacklist.
    Blacklist,
}

impl ListKind {
    /// Parses `residents`, `visitors`, `blacklist`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "residents" => Some(Self::Residents),
            "visitors" => Some(Self::Visitors),
            "blacklist" => Some(Self::Blacklist),
            _ => None,
        }
    }
}

/// A new visitor pass, before it has an id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVisitorPass {
    /// Plate as entered (normalised on insert).
    pub plate: String,
    /// Host's house / unit.
    pub host_unit: String,
    /// Valid from (Unix ms).
    pub valid_from: i64,
    /// Valid until (Unix ms).
    pub valid_to: i64,
    /// One entry only.
    pub single_use: bool,
    /// Who registered it.
    pub created_by: String,
}

/// A validated row of one of the lists, imported or synced.
#[derive(Debug, Clone)]
enum Row {
    Resident(Resident),
    Visitor(NewVisitorPass),
    Blacklisted(Blacklisted),
}

/// The vehicle lists: database plus in-memory snapshot. Cheap to share
/// (`Arc`); every method is synchronous and short (call it from
/// `spawn_blocking` on an async hot path).
#[derive(Debug)]
pub struct PlateRegistry {
    /// The database's one writer.
    writer: Store,
    /// For reads.
    conn: Mutex<Connection>,
    snapshot: RwLock<Arc<PlateLists>>,
    /// The vehicles inside (see `inside`): plate → (lane, entered at).
    inside: Mutex<HashMap<String, (String, i64)>>,
    /// The lists' revision this snapshot was loaded at.
    rev: Mutex<i64>,
}

/// Bumps the lists' revision, so that every registry on the database
/// (the running gateway's, the CLI's) reloads at its next look (also after
/// an erasure's deletes, `crate::privacy`).
pub fn bump_revision(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('plates_rev', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )
    .map(drop)
}

/// Normalises a plate typed by a person or a platform; a no-plate marker is
/// not a listable plate.
pub fn canonical_plate(raw: &str) -> Result<String, ListError> {
    match normalise(raw) {
        Ok(PlateText::Plate { text, .. }) => Ok(text),
        Ok(PlateText::NoPlate) => Err(ListError::Invalid("a plate is required".into())),
        Err(error) => Err(ListError::Invalid(format!(
            "invalid plate {raw:?}: {error}"
        ))),
    }
}

fn now_ms() -> i64 {
    drivers::contract::now_ms()
}

impl PlateRegistry {
    /// Opens the lists in the store's database and loads the snapshot.
    pub fn open(store: &Store) -> Result<Self, ListError> {
        let registry = Self {
            writer: store.clone(),
            conn: Mutex::new(store.connect()?),
            snapshot: RwLock::new(Arc::new(PlateLists::default())),
            inside: Mutex::new(HashMap::new()),
            rev: Mutex::new(0),
        };
        *registry.rev.lock().unwrap_or_else(PoisonError::into_inner) = read_rev(&registry.lock())?;
        registry.reload()?;
        let inside = inside::load(&registry.lock())?;
        *registry
            .inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = inside;
        Ok(registry)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `change` in one transaction of the store's writer that also
    /// bumps the lists' revision, then swaps in a fresh snapshot. Another
    /// process (the CLI) writing through its own registry bumps the same
    /// revision, which the gateway notices in
    /// [`PlateRegistry::refresh_if_changed`].
    fn write<T: Send + 'static>(
        &self,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ListError> {
        let (value, rev) = self.writer.write_blocking(move |tx| {
            let value = change(tx)?;
            bump_revision(tx)?;
            Ok::<_, ListError>((value, read_rev(tx)?))
        })?;
        self.reload()?;
        *self.rev.lock().unwrap_or_else(PoisonError::into_inner) = rev;
        Ok(value)
    }

    /// Reloads the snapshot if another process changed the lists (the CLI
    /// importing a file while the gateway runs). Returns whether it did.
    pub fn refresh_if_changed(&self) -> Result<bool, ListError> {
        let rev = read_rev(&self.lock())?;
        let mut seen = self.rev.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == rev {
            return Ok(false);
        }
        *seen = rev;
        drop(seen);
        self.reload()?;
        Ok(true)
    }

    /// The current lists, for decisions.
    pub fn snapshot(&self) -> Arc<PlateLists> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads every list from the database and swaps the snapshot. The
    /// old snapshot is freed here (unless a decision still holds it) and
    /// the freed heap given back to the system.
    pub fn reload(&self) -> Result<(), ListError> {
        let lists = {
            let conn = self.lock();
            load(&conn)?
        };
        crate::memory::swap_in(&self.snapshot, lists);
        Ok(())
    }

    /// Adds or replaces a resident's vehicle.
    pub fn upsert_resident(&self, resident: &Resident) -> Result<(), ListError> {
        let plate = canonical_plate(&resident.plate)?;
        check_window(resident.valid_from, resident.valid_to)?;
        if resident.house.trim().is_empty() {
            return Err(ListError::Invalid("house is required".into()));
        }
        let resident = Resident {
            plate,
            house: resident.house.trim().to_owned(),
            owner: resident.owner.trim().to_owned(),
            ..resident.clone()
        };
        self.write(move |tx| upsert_resident_row(tx, &resident, now_ms()))?;
        Ok(())
    }

    /// Removes a resident's vehicle; `false` if it was not listed.
    pub fn remove_resident(&self, plate: &str) -> Result<bool, ListError> {
        let plate = canonical_plate(plate)?;
        let n = self.write(move |tx| {
            tx.execute("DELETE FROM resident_vehicles WHERE plate = ?1", [&plate])
        })?;
        Ok(n > 0)
    }

    /// Registers a visitor pass; returns its id.
    pub fn add_visitor(&self, pass: &NewVisitorPass) -> Result<i64, ListError> {
        let plate = canonical_plate(&pass.plate)?;
        check_window(Some(pass.valid_from), Some(pass.valid_to))?;
        if pass.host_unit.trim().is_empty() {
            return Err(ListError::Invalid("host unit is required".into()));
        }
        let pass = NewVisitorPass {
            plate,
            host_unit: pass.host_unit.trim().to_owned(),
            ..pass.clone()
        };
        self.write(move |tx| {
            insert_visitor_row(tx, &pass, now_ms())?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Revokes a visitor pass; `false` if there was no such active pass.
    pub fn revoke_visitor(&self, id: i64) -> Result<bool, ListError> {
        let n = self.write(move |tx| {
            tx.execute(
                "UPDATE visitor_passes SET revoked = 1 WHERE id = ?1 AND revoked = 0",
                [id],
            )
        })?;
        Ok(n > 0)
    }

    /// Marks a single-use pass of `plate` used in the snapshot now (no IO;
    /// in place unless somebody holds the snapshot) and returns the effect
    /// that stores it.
    pub fn use_pass(&self, plate: &str, id: i64) -> Effect {
        {
            let mut snapshot = self
                .snapshot
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let lists = Arc::make_mut(&mut snapshot);
            for pass in lists.visitors.get_mut(plate).into_iter().flatten() {
                if pass.id == id {
                    pass.used = true;
                }
            }
        }
        Effect::new(format!("visitor pass {id} used"), move |conn| {
            conn.execute("UPDATE visitor_passes SET used = 1 WHERE id = ?1", [id])
                .map(drop)
        })
    }

    /// Adds or replaces a blacklist entry.
    pub fn upsert_blacklist(&self, entry: &Blacklisted) -> Result<(), ListError> {
        let entry = Blacklisted {
            plate: canonical_plate(&entry.plate)?,
            reason: entry.reason.trim().to_owned(),
        };
        self.write(move |tx| upsert_blacklist_row(tx, &entry, now_ms()))?;
        Ok(())
    }

    /// Removes a blacklist entry; `false` if it was not listed.
    pub fn remove_blacklist(&self, plate: &str) -> Result<bool, ListError> {
        let plate = canonical_plate(plate)?;
        let n =
            self.write(move |tx| tx.execute("DELETE FROM blacklist WHERE plate = ?1", [&plate]))?;
        Ok(n > 0)
    }

    /// Deletes the visitor passes (revoked or not) that ended before
    /// `cutoff` (Unix ms), in short chunks through the store's writer, and
    /// reloads the lists once; returns how many went. The retention of
    /// personal information ([`crate::config::PrivacyConfig::visitors`]).
    pub fn purge_visitors_ended_before(&self, cutoff: i64) -> Result<u64, ListError> {
        let deleted = self.writer.delete_in_chunks(
            "DELETE FROM visitor_passes WHERE id IN
                 (SELECT id FROM visitor_passes WHERE valid_to < ?1 LIMIT 256)",
            cutoff,
        )?;
        if deleted > 0 {
            // One revision bump: the CLI and panel see the lists changed.
            self.write(|_| Ok(()))?;
        }
        Ok(deleted)
    }

    /// Active (not revoked) visitor passes, newest first.
    pub fn visitor_passes(&self) -> Result<Vec<VisitorPass>, ListError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, plate, host_unit, valid_from, valid_to, single_use, used
             FROM visitor_passes WHERE revoked = 0 ORDER BY id DESC",
        )?;
        let rows = stmt.query_map([], visitor_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Writes one validated row (an upsert; a visitor pass is inserted),
/// stamped `now`: the one writer of import and sync rows.
fn write_row(tx: &rusqlite::Transaction<'_>, row: &Row, now: i64) -> Result<(), ListError> {
    match row {
        Row::Resident(r) => upsert_resident_row(tx, r, now),
        Row::Visitor(v) => insert_visitor_row(tx, v, now),
        Row::Blacklisted(b) => upsert_blacklist_row(tx, b, now),
    }
    .map_err(ListError::from)
}

fn upsert_resident_row(
    tx: &rusqlite::Transaction<'_>,
    r: &Resident,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO resident_vehicles (plate, house, owner, valid_from, valid_to, lanes, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (plate) DO UPDATE SET house = ?2, owner = ?3, valid_from = ?4,
             valid_to = ?5, lanes = ?6, updated_ms = ?7",
        params![r.plate, r.house, r.owner, r.valid_from, r.valid_to, r.lanes.join(","), now],
    )
    .map(drop)
}

fn insert_visitor_row(
    tx: &rusqlite::Transaction<'_>,
    v: &NewVisitorPass,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO visitor_passes (plate, host_unit, valid_from, valid_to, single_use, created_by, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![v.plate, v.host_unit, v.valid_from, v.valid_to, v.single_use, v.created_by, now],
    )
    .map(drop)
}

fn upsert_blacklist_row(
    tx: &rusqlite::Transaction<'_>,
    b: &Blacklisted,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO blacklist (plate, reason, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (plate) DO UPDATE SET reason = ?2, updated_ms = ?3",
        params![b.plate, b.reason, now],
    )
    .map(drop)
}

fn read_rev(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'plates_rev'",
        [],
        |r| r.get(0),
    )
    .optional()
    .map(Option::unwrap_or_default)
}

fn check_window(from: Option<i64>, to: Option<i64>) -> Result<(), ListError> {
    match (from, to) {
        (Some(f), Some(t)) if t <= f => Err(ListError::Invalid(
            "the validity window ends before it starts".into(),
        )),
        _ => Ok(()),
    }
}

fn visitor_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VisitorPass> {
    Ok(VisitorPass {
        id: r.get(0)?,
        plate: r.get(1)?,
        host_unit: r.get(2)?,
        valid_from: r.get(3)?,
        valid_to: r.get(4)?,
        single_use: r.get(5)?,
        used: r.get(6)?,
    })
}

/// The residents' vehicles, packed into the snapshot's index straight from
/// the rows (sized first, so the index's buffers are allocated once).
fn load_residents(conn: &Connection) -> Result<ResidentIndex, ListError> {
    let (count, text): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(length(CAST(plate AS BLOB))
             + length(CAST(house AS BLOB)) + length(CAST(owner AS BLOB))), 0)
         FROM resident_vehicles",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut residents = ResidentIndexBuilder::with_capacity(
        usize::try_from(count).unwrap_or(0),
        usize::try_from(text).unwrap_or(0),
    );
    let mut stmt = conn.prepare(
        "SELECT plate, house, owner, valid_from, valid_to, lanes FROM resident_vehicles",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
        let lanes: Vec<&str> = text(5)?.split(',').filter(|l| !l.is_empty()).collect();
        residents
            .push(
                text(0)?,
                text(1)?,
                text(2)?,
                r.get(3)?,
                r.get(4)?,
                lanes.as_slice(),
            )
            .map_err(|e| ListError::Invalid(e.to_string()))?;
    }
    Ok(residents.build())
}

fn load(conn: &Connection) -> Result<PlateLists, ListError> {
    let residents = load_residents(conn)?;
    let mut stmt = conn.prepare(
        "SELECT id, plate, host_unit, valid_from, valid_to, single_use, used
         FROM visitor_passes WHERE revoked = 0",
    )?;
    let visitors = stmt
        .query_map([], visitor_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare("SELECT plate, reason FROM blacklist")?;
    let blacklist = stmt
        .query_map([], |r| {
            Ok(Blacklisted {
                plate: r.get(0)?,
                reason: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PlateLists::new(residents, visitors, blacklist))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    pub(super) fn registry() -> (tempfile::TempDir, Store, PlateRegistry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(StoreConfig::new(dir.path().join("g.db"))).expect("store");
        let registry = PlateRegistry::open(&store).expect("registry");
        (dir, store, registry)
    }

    #[tokio::test]
    async fn plates_changes_by_another_process_are_noticed_by_the_running_registry() {
        let (_dir, store, registry) = registry();
        let cli = PlateRegistry::open(&store).expect("a second registry, as the CLI opens");
        assert!(
            !registry.refresh_if_changed().expect("check"),
            "nothing changed yet"
        );
        cli.upsert_blacklist(&Blacklisted {
            plate: "苏A00000".into(),
            reason: "欠费".into(),
        })
        .expect("write");
        assert!(registry.snapshot().blacklist.is_empty(), "not reloaded yet");
        assert!(registry.refresh_if_changed().expect("check"));
        assert!(registry.snapshot().blacklist.contains_key("苏A00000"));
        assert!(
            !registry.refresh_if_changed().expect("check"),
            "once per change"
        );
    }

    #[tokio::test]
    async fn plates_visitor_pass_lifecycle_and_inside_tracking_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.db");
        let id = {
            let (store, _) = Store::open(StoreConfig::new(&path)).expect("store");
            let registry = PlateRegistry::open(&store).expect("registry");
            let id = registry
                .add_visitor(&NewVisitorPass {
                    plate: "浙B66666".into(),
                    host_unit: "3-2-1201".into(),
                    valid_from: 0,
                    valid_to: 10,
                    single_use: true,
                    created_by: "guard".into(),
                })
                .expect("pass");
            let used = registry.use_pass("浙B66666", id);
            assert!(
                registry.snapshot().visitors["浙B66666"][0].used,
                "used in memory at once"
            );
            let entered = registry.enter("浙B66666", "south-in", 5);
            assert!(registry.is_inside("浙B66666"), "inside in memory at once");
            store
                .submit_with(Vec::new(), vec![used, entered])
                .wait()
                .await;
            // A quick exit and a re-entry: their effects land in order.
            let (at, gone) = registry.exit("浙B66666");
            assert_eq!(at, Some(5));
            let again = registry.enter("浙B66666", "south-in", 7);
            store.submit_with(Vec::new(), vec![gone]).wait().await;
            store.submit_with(Vec::new(), vec![again]).wait().await;
            store.close().await.expect("close");
            id
        };
        let (store, _) = Store::open(StoreConfig::new(&path)).expect("reopen");
        let registry = PlateRegistry::open(&store).expect("registry");
        assert!(registry.snapshot().visitors["浙B66666"][0].used);
        assert!(registry.is_inside("浙B66666"));
        let (at, gone) = registry.exit("浙B66666");
        assert_eq!(at, Some(7));
        assert!(!registry.is_inside("浙B66666"));
        store.submit_with(Vec::new(), vec![gone]).wait().await;
        let reopened = PlateRegistry::open(&store).expect("registry");
        assert!(!reopened.is_inside("浙B66666"), "the exit was committed");
        assert!(registry.revoke_visitor(id).expect("revoke"));
        assert!(registry.snapshot().visitors.is_empty());
        let bad = registry.add_visitor(&NewVisitorPass {
            plate: "浙B66666".into(),
            host_unit: "x".into(),
            valid_from: 10,
            valid_to: 5,
            single_use: false,
            created_by: "guard".into(),
        });
        assert!(
            bad.is_err(),
            "a window that ends before it starts is refused"
        );
    }
}
