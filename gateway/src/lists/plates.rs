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
//! CSV import (UTF-8 or GB18030, see [`super::import`]) validates every row
//! first (plates are normalised; dates parsed) and writes all rows, or
//! nothing when any is rejected (unless asked to keep the good ones);
//! rejected rows come back with their line numbers and reasons.
//! The lanes' own changes (a vehicle inside or gone, a pass used) are made
//! in memory at once and returned as [`Effect`]s, committed with the read's
//! event.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::rules::plate::{PlateText, normalise};
use crate::rules::vehicle::{
    Blacklisted, PlateLists, Resident, ResidentIndex, ResidentIndexBuilder, VisitorPass,
};
use crate::store::{Effect, Store};
use crate::vocab::import::{self, ImportMode};
use crate::vocab::records::{ImportReport, ListError, Rejected};
use crate::vocab::time::{format_bound, parse_ms, parse_optional_ms};

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

    /// The CSV header for this list.
    pub fn header(self) -> &'static [&'static str] {
        match self {
            Self::Residents => &["plate", "house", "owner", "valid_from", "valid_to", "lanes"],
            Self::Visitors => &["plate", "host_unit", "valid_from", "valid_to", "single_use"],
            Self::Blacklist => &["plate", "reason"],
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

/// Rows of one list coming from the platform.
#[derive(Debug, Clone)]
pub enum SyncRows {
    /// Residents' vehicles.
    Residents(Vec<Resident>),
    /// Visitor passes (replacing the platform's own passes).
    Visitors(Vec<NewVisitorPass>),
    /// Blacklist entries.
    Blacklist(Vec<Blacklisted>),
}

/// Valid rows with their line numbers, and the rejected ones.
type ParsedCsv = (Vec<(u64, Row)>, Vec<Rejected>);

/// A row of the list being imported, validated.
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
    inside: Mutex<HashMap<String, (String, i64)>>,
    /// The lists' revision this snapshot was loaded at.
    rev: Mutex<i64>,
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
        let inside = {
            let conn = registry.lock();
            let mut stmt = conn.prepare("SELECT plate, lane, entered_ms FROM vehicles_inside")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))?;
            rows.collect::<Result<HashMap<_, _>, _>>()?
        };
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
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('plates_rev', '1')
                 ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                [],
            )?;
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
        let old = std::mem::replace(
            &mut *self
                .snapshot
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            Arc::new(lists),
        );
        drop(old);
        crate::memory::release_free_heap();
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

    /// Records in memory now that a vehicle entered through `lane`, and
    /// returns the effect that stores it.
    pub fn enter(&self, plate: &str, lane: &str, at_ms: i64) -> Effect {
        self.inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(plate.to_owned(), (lane.to_owned(), at_ms));
        let (plate, lane) = (plate.to_owned(), lane.to_owned());
        Effect::new(format!("{plate} inside through {lane}"), move |conn| {
            conn.execute(
                "INSERT INTO vehicles_inside (plate, lane, entered_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plate) DO UPDATE SET lane = ?2, entered_ms = ?3",
                params![plate, lane, at_ms],
            )
            .map(drop)
        })
    }

    /// Records in memory now that a vehicle left; returns when it entered
    /// (if recorded) and the effect that stores it.
    pub fn exit(&self, plate: &str) -> (Option<i64>, Effect) {
        let entered = self
            .inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(plate)
            .map(|(_, t)| t);
        let plate = plate.to_owned();
        let effect = Effect::new(format!("{plate} gone"), move |conn| {
            conn.execute("DELETE FROM vehicles_inside WHERE plate = ?1", [&plate])
                .map(drop)
        });
        (entered, effect)
    }

    /// When a vehicle recorded inside entered (in memory; no IO).
    pub fn entered_at(&self, plate: &str) -> Option<i64> {
        self.inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(plate)
            .map(|(_, t)| *t)
    }

    /// Whether a vehicle is recorded inside (in memory; no IO).
    pub fn is_inside(&self, plate: &str) -> bool {
        self.inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(plate)
    }

    /// Vehicles currently inside: `(plate, lane, entered_ms)`, oldest first.
    pub fn inside(&self) -> Vec<(String, String, i64)> {
        let mut v: Vec<_> = self
            .inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(p, (l, t))| (p.clone(), l.clone(), *t))
            .collect();
        v.sort_by_key(|(_, _, t)| *t);
        v
    }

    /// Validates a CSV file of `kind` (UTF-8 or GB18030) without writing
    /// anything: how many rows `mode` would write, and which are refused.
    pub fn check_csv(
        &self,
        kind: ListKind,
        bytes: &[u8],
        mode: ImportMode,
    ) -> Result<ImportReport, ListError> {
        let (text, encoding) = import::decode(bytes)?;
        let (rows, rejected) = parse_csv(kind, text.as_bytes())?;
        Ok(ImportReport::new(rows.len(), rejected, encoding, mode))
    }

    /// Imports a CSV file of `kind` (UTF-8 or GB18030): validates every
    /// row, then writes every valid row, or under
    /// [`ImportMode::AllOrNothing`] nothing at all when any row is rejected.
    /// Rows go in bounded chunks through the store's writer; the snapshot is
    /// swapped once, at the end. `progress` is called with the number of
    /// rows written so far.
    pub fn import_csv(
        &self,
        kind: ListKind,
        bytes: &[u8],
        mode: ImportMode,
        progress: impl FnMut(u64),
    ) -> Result<ImportReport, ListError> {
        let (text, encoding) = import::decode(bytes)?;
        let (rows, rejected) = parse_csv(kind, text.as_bytes())?;
        let report = ImportReport::new(rows.len(), rejected, encoding, mode);
        if report.written == 0 {
            return Ok(report);
        }
        let now = now_ms();
        self.writer.write_in_chunks(
            rows,
            move |tx, (_, row)| {
                match row {
                    Row::Resident(r) => upsert_resident_row(tx, r, now),
                    Row::Visitor(v) => insert_visitor_row(tx, v, now),
                    Row::Blacklisted(b) => upsert_blacklist_row(tx, b, now),
                }
                .map_err(ListError::from)
            },
            progress,
        )?;
        self.write(|_| Ok(()))?;
        Ok(report)
    }

    /// Writes a list as CSV with a header.
    pub fn export_csv(&self, kind: ListKind, output: impl Write) -> Result<usize, ListError> {
        let mut out = csv::Writer::from_writer(output);
        out.write_record(kind.header())?;
        let lists = self.snapshot();
        let bound = |t: Option<i64>, end: bool| t.map(|t| format_bound(t, end)).unwrap_or_default();
        let mut n = 0;
        match kind {
            ListKind::Residents => {
                // Already in plate order.
                for r in lists.residents.iter() {
                    out.write_record([
                        r.plate,
                        r.house,
                        r.owner,
                        &bound(r.valid_from, false),
                        &bound(r.valid_to, true),
                        &r.lanes.join(";"),
                    ])?;
                    n += 1;
                }
            }
            ListKind::Visitors => {
                for v in self.visitor_passes()? {
                    out.write_record([
                        v.plate.as_str(),
                        &v.host_unit,
                        &format_bound(v.valid_from, false),
                        &format_bound(v.valid_to, true),
                        if v.single_use { "yes" } else { "no" },
                    ])?;
                    n += 1;
                }
            }
            ListKind::Blacklist => {
                let mut rows: Vec<_> = lists.blacklist.values().collect();
                rows.sort_by(|a, b| a.plate.cmp(&b.plate));
                for b in rows {
                    out.write_record([b.plate.as_str(), &b.reason])?;
                    n += 1;
                }
            }
        }
        out.flush().map_err(csv::Error::from)?;
        Ok(n)
    }

    /// Applies a platform sync of one list in one transaction: a snapshot
    /// (`from = None`: the list is replaced) or a delta from version `from`
    /// (upserts, then `deletes` by plate). Every row is validated first; on
    /// any error nothing changes and the previous version stays in force.
    pub fn sync_apply(
        &self,
        list: &str,
        from: Option<u64>,
        to: u64,
        rows: SyncRows,
        deletes: &[String],
    ) -> Result<(), ListError> {
        let deletes = deletes
            .iter()
            .map(|p| canonical_plate(p))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = match rows {
            SyncRows::Residents(rows) => SyncRows::Residents(
                rows.into_iter()
                    .map(|mut r| {
                        r.plate = canonical_plate(&r.plate)?;
                        check_window(r.valid_from, r.valid_to)?;
                        if r.house.trim().is_empty() {
                            return Err(ListError::Invalid(format!(
                                "{}: house is required",
                                r.plate
                            )));
                        }
                        Ok(r)
                    })
                    .collect::<Result<_, ListError>>()?,
            ),
            SyncRows::Visitors(rows) => SyncRows::Visitors(
                rows.into_iter()
                    .map(|mut v| {
                        v.plate = canonical_plate(&v.plate)?;
                        check_window(Some(v.valid_from), Some(v.valid_to))?;
                        Ok(v)
                    })
                    .collect::<Result<_, ListError>>()?,
            ),
            SyncRows::Blacklist(rows) => SyncRows::Blacklist(
                rows.into_iter()
                    .map(|mut b| {
                        b.plate = canonical_plate(&b.plate)?;
                        Ok(b)
                    })
                    .collect::<Result<_, ListError>>()?,
            ),
        };
        if let Some(from) = from {
            let held = self.list_version(list)?;
            if held != from {
                return Err(ListError::Invalid(format!(
                    "version gap: holding {held}, the delta starts at {from}"
                )));
            }
        }
        // In bounded chunks, rows stamped with this sync's time: first the
        // new rows, then (for a snapshot) the rows not stamped, or (for a
        // delta) the deleted plates, then the version. Interrupted, the
        // table holds the old rows and some new ones at the old version (no
        // resident is refused), and the next sync starts again.
        let stamp = now_ms();
        let platform = super::sync::PLATFORM_CREATOR;
        let chunks = &self.writer;
        let upsert = move |tx: &rusqlite::Transaction<'_>, row: &Row| {
            match row {
                Row::Resident(r) => upsert_resident_row(tx, r, stamp),
                Row::Visitor(v) => insert_visitor_row(tx, v, stamp),
                Row::Blacklisted(b) => upsert_blacklist_row(tx, b, stamp),
            }
            .map_err(ListError::from)
        };
        let (rows, table): (Vec<Row>, _) = match rows {
            SyncRows::Residents(rows) => (
                rows.into_iter().map(Row::Resident).collect(),
                "resident_vehicles",
            ),
            SyncRows::Visitors(rows) => (
                rows.into_iter().map(Row::Visitor).collect(),
                "visitor_passes",
            ),
            SyncRows::Blacklist(rows) => (
                rows.into_iter().map(Row::Blacklisted).collect(),
                "blacklist",
            ),
        };
        let replaced: Vec<String> = match table {
            // A delta replaces each named plate's platform passes.
            "visitor_passes" => rows
                .iter()
                .filter_map(|r| match r {
                    Row::Visitor(v) => Some(v.plate.clone()),
                    _ => None,
                })
                .chain(deletes.iter().cloned())
                .collect(),
            _ => deletes.clone(),
        };
        chunks.write_in_chunks(rows, upsert, |_| {})?;
        if from.is_none() {
            chunks.delete_in_chunks(
                match table {
                    "resident_vehicles" => {
                        "DELETE FROM resident_vehicles WHERE rowid IN (SELECT rowid FROM
                             resident_vehicles WHERE updated_ms <> ?1 LIMIT 256)"
                    }
                    "visitor_passes" => {
                        "DELETE FROM visitor_passes WHERE rowid IN (SELECT rowid FROM
                             visitor_passes WHERE created_by = 'platform' AND created_ms <> ?1
                             LIMIT 256)"
                    }
                    _ => {
                        "DELETE FROM blacklist WHERE rowid IN (SELECT rowid FROM blacklist
                             WHERE updated_ms <> ?1 LIMIT 256)"
                    }
                },
                stamp,
            )?;
        } else {
            chunks.write_in_chunks(
                replaced,
                move |tx, plate| {
                    match table {
                        "visitor_passes" => tx.execute(
                            "DELETE FROM visitor_passes
                             WHERE plate = ?1 AND created_by = ?2 AND created_ms <> ?3",
                            params![plate, platform, stamp],
                        ),
                        "resident_vehicles" => {
                            tx.execute("DELETE FROM resident_vehicles WHERE plate = ?1", [plate])
                        }
                        _ => tx.execute("DELETE FROM blacklist WHERE plate = ?1", [plate]),
                    }
                    .map(drop)
                    .map_err(ListError::from)
                },
                |_| {},
            )?;
        }
        let (list, to) = (list.to_owned(), i64::try_from(to).unwrap_or(i64::MAX));
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO list_versions (list, version) VALUES (?1, ?2)
                 ON CONFLICT (list) DO UPDATE SET version = ?2",
                params![list, to],
            )
        })?;
        Ok(())
    }

    /// The version of a synced list (0 when never synced).
    pub fn list_version(&self, list: &str) -> Result<u64, ListError> {
        let v: Option<i64> = self
            .lock()
            .query_row(
                "SELECT version FROM list_versions WHERE list = ?1",
                [list],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }
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

fn parse_csv(kind: ListKind, input: impl Read) -> Result<ParsedCsv, ListError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(input);
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let expected = kind.header();
    if header
        .iter()
        .map(String::as_str)
        .ne(expected.iter().copied())
    {
        return Err(ListError::Invalid(format!(
            "line 1: the header must be `{}`, found `{}`",
            expected.join(","),
            header.join(",")
        )));
    }
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    let mut seen = HashMap::new();
    for record in reader.records() {
        let record = record?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != expected.len() {
            rejected.push(Rejected {
                line,
                reason: format!("expected {} fields, found {}", expected.len(), record.len()),
            });
            continue;
        }
        let fields: Vec<&str> = record.iter().collect();
        let parsed = parse_row(kind, &fields);
        match parsed {
            Ok(row) => {
                let plate = match &row {
                    Row::Resident(r) => r.plate.clone(),
                    Row::Visitor(v) => v.plate.clone(),
                    Row::Blacklisted(b) => b.plate.clone(),
                };
                if kind != ListKind::Visitors
                    && let Some(first) = seen.insert(plate.clone(), line)
                {
                    rejected.push(Rejected {
                        line,
                        reason: format!("{plate} already appears on line {first}"),
                    });
                    continue;
                }
                rows.push((line, row));
            }
            Err(reason) => rejected.push(Rejected { line, reason }),
        }
    }
    Ok((rows, rejected))
}

fn parse_row(kind: ListKind, fields: &[&str]) -> Result<Row, String> {
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let plate = canonical_plate(field(0)).map_err(|e| e.to_string())?;
    match kind {
        ListKind::Residents => {
            let house = field(1);
            if house.is_empty() {
                return Err("house is required".into());
            }
            let valid_from = parse_optional_ms(field(3), false)?;
            let valid_to = parse_optional_ms(field(4), true)?;
            check_window(valid_from, valid_to).map_err(|e| e.to_string())?;
            let lanes = field(5)
                .split([';', ','])
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            Ok(Row::Resident(Resident {
                plate,
                house: house.to_owned(),
                owner: field(2).to_owned(),
                valid_from,
                valid_to,
                lanes,
            }))
        }
        ListKind::Visitors => {
            let host_unit = field(1);
            if host_unit.is_empty() {
                return Err("host_unit is required".into());
            }
            let valid_from = parse_ms(field(2), false)?;
            let valid_to = parse_ms(field(3), true)?;
            check_window(Some(valid_from), Some(valid_to)).map_err(|e| e.to_string())?;
            let single_use = match field(4).to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" | "single" | "是" => true,
                "no" | "false" | "0" | "multiple" | "否" => false,
                other => return Err(format!("single_use must be yes or no, not {other:?}")),
            };
            Ok(Row::Visitor(NewVisitorPass {
                plate,
                host_unit: host_unit.to_owned(),
                valid_from,
                valid_to,
                single_use,
                created_by: "import".into(),
            }))
        }
        ListKind::Blacklist => Ok(Row::Blacklisted(Blacklisted {
            plate,
            reason: field(1).to_owned(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use crate::vocab::import::CsvEncoding;

    fn registry() -> (tempfile::TempDir, Store, PlateRegistry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(StoreConfig::new(dir.path().join("g.db"))).expect("store");
        let registry = PlateRegistry::open(&store).expect("registry");
        (dir, store, registry)
    }

    #[tokio::test]
    async fn plates_csv_import_writes_good_rows_and_reports_bad_ones_by_line() {
        let (_dir, _store, registry) = registry();
        let csv = "plate,house,owner,valid_from,valid_to,lanes\n\
                   苏A8HK52,3-2-1201,王芳,,,\n\
                   苏a 12345,1-1-101,李雷,2026-01-01,2026-12-31,south-in;north-in\n\
                   XX123,1-1-102,bad,,,\n\
                   苏A8HK52,9-9-909,dup,,,\n\
                   苏B00001,,no house,,,\n\
                   苏B00002,2-2-202,window,2026-12-31,2026-01-01,\n";
        let all_or_nothing = registry
            .import_csv(
                ListKind::Residents,
                csv.as_bytes(),
                ImportMode::AllOrNothing,
                |_| {},
            )
            .expect("import");
        assert_eq!((all_or_nothing.written, all_or_nothing.valid), (0, 2));
        assert_eq!(all_or_nothing.rejected.len(), 4);
        assert!(
            registry.snapshot().residents.is_empty(),
            "nothing written when a row is rejected"
        );
        let checked = registry
            .check_csv(
                ListKind::Residents,
                csv.as_bytes(),
                ImportMode::AllOrNothing,
            )
            .expect("check");
        assert_eq!(checked, all_or_nothing, "the preview says the same");
        let mut calls = 0;
        let report = registry
            .import_csv(
                ListKind::Residents,
                csv.as_bytes(),
                ImportMode::KeepGood,
                |_| calls += 1,
            )
            .expect("import");
        assert_eq!(report.written, 2);
        assert_eq!(calls, 1, "progress after each chunk of rows");
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7]);
        assert!(
            report.rejected[1].reason.contains("line 2"),
            "{:?}",
            report.rejected
        );
        assert!(report.rejected[3].reason.contains("ends before it starts"));
        let lists = registry.snapshot();
        let resident = lists
            .residents
            .get("苏A12345")
            .expect("normalised plate imported");
        assert_eq!(resident.to_resident().lanes, vec!["south-in", "north-in"]);
        assert!(resident.valid_to.is_some());
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
    async fn sync_snapshot_and_delta_apply_atomically_and_keep_guards_passes() {
        let (_dir, _store, registry) = registry();
        let guard_pass = registry
            .add_visitor(&NewVisitorPass {
                plate: "浙B66666".into(),
                host_unit: "1-1".into(),
                valid_from: 0,
                valid_to: 10,
                single_use: false,
                created_by: "guard-li".into(),
            })
            .expect("guard's pass");
        let resident = |plate: &str| Resident {
            plate: plate.into(),
            house: "1-1-101".into(),
            owner: "x".into(),
            valid_from: None,
            valid_to: None,
            lanes: vec![],
        };
        registry
            .sync_apply(
                "residents",
                None,
                3,
                SyncRows::Residents(vec![resident("苏A8HK52"), resident("苏E12345")]),
                &[],
            )
            .expect("snapshot");
        assert_eq!(registry.list_version("residents").expect("v"), 3);
        registry
            .sync_apply(
                "residents",
                Some(3),
                4,
                SyncRows::Residents(vec![resident("沪B77777")]),
                &["苏E12345".into()],
            )
            .expect("delta");
        let lists = registry.snapshot();
        let plates: Vec<&str> = lists.residents.iter().map(|r| r.plate).collect();
        assert_eq!(plates, vec!["沪B77777", "苏A8HK52"]);
        // A gap and a bad row are both refused whole.
        assert!(
            registry
                .sync_apply(
                    "residents",
                    Some(7),
                    8,
                    SyncRows::Residents(vec![resident("京A11111")]),
                    &[]
                )
                .is_err()
        );
        let mut bad = resident("京A22222");
        bad.house = String::new();
        assert!(
            registry
                .sync_apply(
                    "residents",
                    None,
                    9,
                    SyncRows::Residents(vec![resident("京A33333"), bad]),
                    &[]
                )
                .is_err()
        );
        assert_eq!(registry.list_version("residents").expect("v"), 4);
        assert!(!registry.snapshot().residents.contains("京A33333"));
        // A visitors snapshot replaces only the platform's passes.
        registry
            .sync_apply(
                "visitors",
                None,
                1,
                SyncRows::Visitors(vec![NewVisitorPass {
                    plate: "粤B12345".into(),
                    host_unit: "2-2".into(),
                    valid_from: 0,
                    valid_to: 10,
                    single_use: true,
                    created_by: super::super::sync::PLATFORM_CREATOR.into(),
                }]),
                &[],
            )
            .expect("visitors");
        let ids: Vec<i64> = registry
            .visitor_passes()
            .expect("passes")
            .iter()
            .map(|p| p.id)
            .collect();
        assert!(ids.contains(&guard_pass), "the guard's own pass stays");
        assert_eq!(ids.len(), 2);
    }

    #[tokio::test]
    async fn plates_csv_with_a_wrong_header_is_refused_whole() {
        let (_dir, _store, registry) = registry();
        let err = registry
            .import_csv(
                ListKind::Blacklist,
                "car,why\n苏A00000,x\n".as_bytes(),
                ImportMode::KeepGood,
                |_| {},
            )
            .expect_err("bad header");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(registry.snapshot().blacklist.is_empty());
    }

    #[tokio::test]
    async fn plates_export_then_import_round_trips() {
        let (_dir, _store, registry) = registry();
        let csv = "plate,house,owner,valid_from,valid_to,lanes\n苏A8HK52,3-2-1201,王芳,,2026-12-31,south-in\n";
        registry
            .import_csv(
                ListKind::Residents,
                csv.as_bytes(),
                ImportMode::AllOrNothing,
                |_| {},
            )
            .expect("import");
        let mut out = Vec::new();
        assert_eq!(
            registry
                .export_csv(ListKind::Residents, &mut out)
                .expect("export"),
            1
        );
        let (_dir2, _store2, other) = registry_pair();
        let report = other
            .import_csv(
                ListKind::Residents,
                out.as_slice(),
                ImportMode::AllOrNothing,
                |_| {},
            )
            .expect("re-import");
        assert_eq!(report.written, 1, "{:?}", report.rejected);
        assert_eq!(other.snapshot().residents, registry.snapshot().residents);
    }

    #[tokio::test]
    async fn plates_csv_saved_by_excel_on_chinese_windows_imports_and_says_gbk() {
        let (_dir, _store, registry) = registry();
        let csv = "plate,house,owner,valid_from,valid_to,lanes\r\n苏A8HK52,3-2-1201,王芳,,,\r\n";
        let (gbk, _, unmappable) = encoding_rs::GBK.encode(csv);
        assert!(!unmappable);
        let report = registry
            .import_csv(ListKind::Residents, &gbk, ImportMode::AllOrNothing, |_| {})
            .expect("a GBK file imports");
        assert_eq!(report.written, 1, "{:?}", report.rejected);
        assert_eq!(report.encoding, CsvEncoding::Gb18030);
        let lists = registry.snapshot();
        let resident = lists.residents.get("苏A8HK52").expect("imported");
        assert_eq!(resident.owner, "王芳");

        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(csv.replace("王芳", "李雷").as_bytes());
        let report = registry
            .import_csv(ListKind::Residents, &bom, ImportMode::AllOrNothing, |_| {})
            .expect("a UTF-8 file with a BOM imports");
        assert_eq!(report.encoding, CsvEncoding::Utf8Bom);
        let lists = registry.snapshot();
        assert_eq!(
            lists.residents.get("苏A8HK52").map(|r| r.owner),
            Some("李雷")
        );
    }

    fn registry_pair() -> (tempfile::TempDir, Store, PlateRegistry) {
        registry()
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
