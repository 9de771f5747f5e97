//! The durable event queue and the gateway's database.
//!
//! # Design constraints
//!
//! The gateway runs on a Pi-class box with an SD card and unreliable power.
//! A producer (a camera's push, a card read) is answered only after its event
//! is on disk, and an event leaves the queue only after the platform has
//! confirmed it. Hence SQLite (rusqlite, bundled) in WAL mode with
//! `synchronous=FULL`: NORMAL lost acknowledged events in power-cut tests and
//! must never be used here. `auto_vacuum=INCREMENTAL` is set before the
//! first table exists so space can be handed back after a backlog drains.
//!
//! # Schema ([`schema`])
//!
//! Versioned with `rusqlite_migration` (`PRAGMA user_version`):
//!
//! - M1: `events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id, class, kind,
//!   device_id, time_ms, size, payload)`; `payload` is the envelope's JSON
//!   (written with `seq = 0`), `size` its length in bytes, `class` the
//!   [`Class::index`].
//! - M2: `meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)` and the index
//!   `events (class, seq)` used to shed the oldest telemetry (and by the
//!   uplink to read one class in order, [`Store::read_class_after`]).
//! - M3: the uplink's `uplink_dead_letters` (events the platform rejected
//!   for good, with the reason) and `uplink_seen_commands` (downlink command
//!   ids already carried out or refused, until they expire). The uplink
//!   owns both tables and uses them through [`Store::connect`].
//!
//! - M3: `journal (seq PRIMARY KEY, time_ms, class, kind, device_id, actor,
//!   payload)`: the local history of access, alarm and audit events
//!   ([`journal`]).
//! - M4: `users` and `sessions` for the panel ([`crate::auth`]).
//!
//! Later tables (plate lists, credentials) are one more migration each; their code opens its own connection with
//! [`Store::connect`]. A file written by newer code (a higher
//! `user_version`) is refused with [`StoreError::SchemaTooNew`], not
//! quarantined.
//!
//! # Append ([`writer`])
//!
//! One writer thread owns the write connection. [`Store::submit`] encodes
//! the envelopes on the caller's thread and sends them over a channel
//! synchronously, so sequence order is call order; the returned
//! [`AppendTicket`] resolves after the commit. The writer drains everything
//! queued, waits up to `group_commit_window` for more appends (closing the
//! window early once as many requests are back as the previous commit
//! answered, so a lone appender never waits), caps a batch at
//! [`MAX_BATCH_EVENTS`], commits once, then answers every ticket.
//!
//! # Telemetry is held, not committed alone ([`held`])
//!
//! Nobody is told a telemetry sample is on disk, so an append of nothing
//! but telemetry is answered at once with its `seq` and held in memory:
//! the uplink reads it beside the committed rows (held samples first, then
//! the file, merged: none is missed while one is being written), and one
//! the platform confirms while it is held is never written. The rest is
//! written with the writer's next commit, or when the oldest has waited
//! [`TELEMETRY_HOLD`] (10 s), or when [`TELEMETRY_HOLD_MAX`] numbers have
//! been given since the last commit. A power cut loses what is held: at
//! most [`TELEMETRY_HOLD`] of telemetry the platform had not confirmed.
//! Nothing after an append that must be committed is held, so numbers
//! follow call order.
//!
//! # One writer
//!
//! The writer's connection is the only one the gateway writes events and
//! lists through. A coordinator's state changes ([`Effect`]: a vehicle
//! inside, a visitor pass used) ride with their events
//! ([`Store::submit_with`]) and commit in the same transaction, in pipeline
//! order. Lists, cards and panel edits go through [`Store::write_blocking`]
//! (each change in a savepoint of the writer's next transaction); big ones
//! through [`Store::write_in_chunks`] / [`Store::delete_in_chunks`], at most
//! [`CHUNK_ROWS`] rows a transaction, so an event queued behind a list
//! write waits for one chunk, not for the whole list.
//!
//! # Journal ([`journal`])
//!
//! The queue loses events once the platform confirmed them, but the panel's
//! history and audit log must not. So the writer copies every access, alarm
//! and audit event into `journal` **in the same transaction** as its queue
//! insert (the envelope JSON with its `seq`, kind, class, device, time and,
//! for audit events, the actor). Telemetry is not journalled. Acks never
//! touch the journal; it is pruned by the writer at most every
//! [`JournalRetention::prune_every`] to `max_rows` rows and alarms to `days`
//! of age; access and audit rows (personal information) go by their own
//! retention through [`journal::purge`], which the daily privacy purge runs.
//! Reads go through [`journal::Journal`] on its own connection.
//!
//! # Read and ack
//!
//! [`Store::read_after`] reads oldest first on a separate connection (WAL
//! lets it run beside the writer), on tokio's blocking pool; the stored
//! envelope's `seq` is set from the row. [`Store::ack`] and
//! [`Store::ack_seqs`] delete through the writer. An `ack_seqs` of fewer
//! than a few hundred events (a live uplink's) is not committed on its own:
//! the writer holds it for its next commit (an append's, whose pages it
//! shares) for at most [`ACK_HOLD`], and answers it then; a crash in
//! between sends those events again (delivery is at least once).
//! [`Store::commit_acks`] commits what is held at once. When the queue is empty
//! after an ack (and a few pages are free), or the freelist is large, the
//! writer runs
//! `PRAGMA incremental_vacuum` and `wal_checkpoint(TRUNCATE)`, so the file
//! shrinks back.
//!
//! # Bounding ([`policy`])
//!
//! The queue is bounded by the encoded bytes of its events (`size`, kept in
//! memory by the writer). Above `max_bytes`, new events displace the
//! oldest telemetry; telemetry that cannot make room that way is refused
//! ([`StoreError::Full`]). Access, alarm and audit events may then use
//! `critical_reserve_bytes` above `max_bytes` ([`Pressure::OverCapacity`],
//! which the gateway raises as an alarm) and are refused loudly beyond it.
//! Every drop and refusal is counted ([`StoreStats::dropped`]) and summarised
//! in the log at most once a minute.
//!
//! # Start without full scans
//!
//! Opening reads no more than the queue's ends: a queue shorter than
//! [`COUNT_AT_OPEN`] rows is counted at once, a longer one by the writer in
//! chunks between (and while idle, instead of) its batches
//! ([`StoreStats::counting`] until done; a row deleted before it was counted
//! is not subtracted). `PRAGMA quick_check` runs after open on a thread of
//! its own ([`check`], [`Store::integrity`]); damage it finds leaves a marker
//! that makes the next open check first.
//!
//! # A full disk ([`space`])
//!
//! The byte bound above is the queue's; the disk can still fill first
//! (images, logs, another program). The store keeps a reserve file beside
//! the database (`gatehouse.db.reserve`, [`space::RESERVE_BYTES`]), written
//! when the disk has room. When the disk is full (`SQLITE_FULL` from a
//! commit, or an open that fails while the disk is out of space) the
//! reserve is deleted, which gives SQLite room to open the database (its
//! `-shm` and `-wal` files), to delete what the platform confirms and to
//! return those pages; the store turns [`Availability::DiskFull`]: every
//! new event and list write is refused with [`StoreError::DiskFull`]
//! (counted per class, like any refusal) without touching the database.
//! The writer looks at the free space every 100 ms; once
//! the disk has room for the reserve and [`space::RESUME_FREE_BYTES`]
//! besides, it writes the reserve again, turns available and queues an
//! [`Outage`] (since, until, refusals per class) for the gateway's
//! `store_unavailable` alarm ([`Store::take_outages`]). No restart is
//! needed, and a gateway stopped with a full disk starts again.
//! Connections keep the `-wal` and `-shm` files when they close
//! (`SQLITE_FCNTL_PERSIST_WAL`, the WAL truncated to nothing), and an open
//! writes nothing to a file this version already wrote, so a store whose
//! disk never had room for the reserve opens on a full disk too (reading,
//! deleting what the platform confirms while SQLite finds room, refusing
//! new events).
//!
//! # Quarantine ([`quarantine`]) and salvage ([`salvage`])
//!
//! A file that is corrupt or not a database (met on open, by the accounting
//! or by migration; or found by `PRAGMA quick_check`, at the open after the
//! check in [`check`] found damage) is moved aside with its `-wal`/`-shm` to
//! `<name>.corrupt-<unix-seconds>` and a fresh store is started
//! ([`OpenReport::quarantined`]), so the gateway does not crash-loop. Every
//! row still readable in the moved file (queue, journal, lists, cards,
//! users, uplink state) is then copied into the fresh one with its `rowid`,
//! and the counts salvaged and lost per table go into the report (and the
//! gateway's `store_quarantined` alarm).
//!
//! # Invariants
//!
//! - An append is answered only after COMMIT with `synchronous=FULL` has
//!   returned; telemetry alone is the exception (held, above).
//! - `seq` never goes back and is never given twice: the writer numbers
//!   events itself from a high-water mark the file keeps (`sqlite_sequence`,
//!   raised in every commit to cover the numbers given since, and at least
//!   every [`TELEMETRY_HOLD_MAX`] numbers), and a start skips
//!   [`TELEMETRY_HOLD_MAX`] numbers, so one a crash lost with a held sample
//!   is not given again. Numbers have gaps. Another writer's rows (`gatehouse
//!   deadletters requeue` while the gateway runs) are numbered by SQLite
//!   above the mark; the writer continues above them. (A quarantined file
//!   takes its sequence with it: the fresh store starts again low, which the
//!   open report makes known.)
//! - Access, alarm and audit events are never dropped silently: they are
//!   stored, or the producer gets [`StoreError::Full`].
//! - `stats()` runs no SQL: it reads the writer's published accounting.
//! - On a full disk nothing is acknowledged that is not on disk: new events
//!   are refused, not buffered.

mod check;
mod held;
pub mod journal;
mod policy;
mod quarantine;
mod salvage;
mod schema;
pub mod space;
mod versions;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use drivers::Class;
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

use crate::wire::Envelope;

pub use check::Integrity;
pub use held::{TELEMETRY_HOLD, TELEMETRY_HOLD_MAX};
pub use schema::{DIR_MODE, FILE_MODE, SCHEMA_VERSION};
pub use writer::{ACK_HOLD, COUNT_AT_OPEN, MAX_BATCH_EVENTS};

pub use journal::{
    CALL_LOG_KINDS, Journal, JournalQuery, JournalRetention, Personal, purge as purge_personal,
};
use policy::Limits;
pub use salvage::TableSalvage;
pub use versions::{list_version, set_list_version};
use writer::{Accounting, Encoded, Request, Shared, Writer};

/// Rows per transaction when a list is written in chunks
/// ([`Store::write_in_chunks`]): a few milliseconds of writer time, so an
/// event queued behind a chunk is acknowledged within the latency budget.
pub const CHUNK_ROWS: usize = 256;

/// Sequence number of a stored event.
pub type Seq = u64;

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The SQLite file (its `-wal` and `-shm` files sit beside it).
    pub path: PathBuf,
    /// Queue bound in bytes (encoded envelopes). Telemetry is shed above it.
    pub max_bytes: u64,
    /// Extra room above `max_bytes` for access, alarm and audit events.
    pub critical_reserve_bytes: u64,
    /// How long the writer waits to gather concurrent appends into one commit.
    pub group_commit_window: Duration,
    /// How long after open the integrity check starts ([`check`]): it reads
    /// the whole file, so it waits until the start is over.
    pub check_after: Duration,
}

impl StoreConfig {
    /// A configuration with the gateway's defaults: 256 MiB queue, 32 MiB
    /// critical reserve, 2 ms group-commit window, the integrity check 10 s
    /// after open.
    pub fn new(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            max_bytes: 256 * 1024 * 1024,
            critical_reserve_bytes: 32 * 1024 * 1024,
            group_commit_window: Duration::from_millis(2),
            check_after: Duration::from_secs(10),
        }
    }
}

/// Store pressure, published on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// Below `max_bytes`.
    Normal,
    /// At `max_bytes`: telemetry is being shed or refused.
    SheddingTelemetry,
    /// Above `max_bytes` with critical events; at the reserve's end appends fail.
    OverCapacity,
}

/// Whether the store can write, published on every change
/// ([`Store::availability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Events are stored.
    Available,
    /// The disk is full: new events and list writes are refused until it
    /// has room again; confirmed events are still deleted.
    DiskFull {
        /// When the store found the disk full (Unix ms).
        since_ms: i64,
    },
}

impl Availability {
    /// Why the store cannot write, as readiness and the logs say it.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Availability::Available => None,
            Availability::DiskFull { .. } => Some("store unavailable: disk full"),
        }
    }
}

/// A time the store could not write, reported once it writes again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outage {
    /// Why (`disk full`).
    pub reason: String,
    /// When it began (Unix ms).
    pub since_ms: i64,
    /// When the store wrote again (Unix ms).
    pub until_ms: i64,
    /// Events refused meanwhile, by class index ([`Class::index`]).
    pub refused: [u64; 4],
    /// Writes to the gateway's other tables (lists, cards) refused meanwhile.
    pub writes_refused: u64,
}

/// What happened while opening.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Set when the old file was unreadable and moved aside.
    pub quarantined: Option<Quarantine>,
    /// Events found in the queue at open.
    pub depth: u64,
    /// Set when the disk was full at open: the reserve was given back to
    /// open the database, and the store starts [`Availability::DiskFull`].
    pub disk_full: bool,
}

/// A database file moved aside because it could not be used.
#[derive(Debug, Clone)]
pub struct Quarantine {
    /// Where the old file now lives.
    pub moved_to: PathBuf,
    /// Why it was moved.
    pub reason: String,
    /// What was copied from it into the fresh file, per table.
    pub salvaged: Vec<TableSalvage>,
}

/// A point-in-time view of the queue.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// Events waiting to be acknowledged.
    pub depth: u64,
    /// Encoded bytes of those events.
    pub bytes: u64,
    /// Size of the database file plus its WAL on disk.
    pub file_bytes: u64,
    /// Recording time of the oldest waiting event (Unix ms).
    pub oldest_time_ms: Option<i64>,
    /// Events dropped or refused, by class index ([`Class::index`]).
    pub dropped: [u64; 4],
    /// The queue found at open is still being counted (a long one is
    /// counted by the writer after start): `depth` and `bytes` are lower
    /// bounds until this is `false`.
    pub counting: bool,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The store is full for this class.
    #[error("store full: {class} event refused")]
    Full {
        /// The refused event's class.
        class: Class,
    },
    /// The disk is full: nothing new is stored until it has room again.
    #[error("store unavailable: disk full")]
    DiskFull,
    /// The writer thread is gone.
    #[error("store closed")]
    Closed,
    /// The database was written by newer code; it is left untouched.
    #[error(
        "the database was written by Gatehouse {} (schema version {found}); this Gatehouse {} supports schema version {supported} at most: install that version or newer",
        .written_by.as_deref().unwrap_or("(a newer version)"),
        env!("CARGO_PKG_VERSION")
    )]
    SchemaTooNew {
        /// The file's `user_version`.
        found: i64,
        /// The newest version this code knows.
        supported: usize,
        /// The Gatehouse version that last opened the file, when it says.
        written_by: Option<String>,
    },
    /// Migrating the schema failed.
    #[error("schema migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// Even a fresh database file could not be used.
    #[error("database unusable: {0}")]
    Unusable(String),
    /// A stored row could not be decoded (it is not skipped silently).
    #[error("stored event {seq} is unreadable: {reason}")]
    CorruptRow {
        /// The row's sequence number (ack it to get past it).
        seq: Seq,
        /// What was wrong.
        reason: String,
    },
    /// The envelope could not be encoded.
    #[error("encoding the envelope: {0}")]
    Encode(#[from] serde_json::Error),
    /// A write failed (the transaction was rolled back).
    #[error("write failed: {0}")]
    Write(String),
    /// Filesystem error (quarantine, thread start).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for crate::vocab::records::ListError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

/// The queue handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    tx: mpsc::Sender<Request>,
    reader: Mutex<Option<Connection>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    checker: check::Checker,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.checker.stop();
        // The last handle is gone: let the writer finish its batch, checkpoint
        // and stop (this blocks the dropping thread that long; prefer close()).
        let _ = self.tx.send(Request::Close { reply: None });
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
    }
}

/// Why opening failed.
enum OpenFailure {
    /// The file is damaged or not a database: quarantine it.
    Corrupt(String),
    /// Anything else: report it, touch nothing.
    Other(StoreError),
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(err: rusqlite::Error) -> OpenFailure {
        if schema::is_corruption(&err) {
            OpenFailure::Corrupt(err.to_string())
        } else {
            OpenFailure::Other(err.into())
        }
    }
}

/// Opens, checks (when `check`: damage was found while the file was last
/// in use; otherwise [`check`] runs after start) and migrates the write
/// connection.
fn open_checked(path: &Path, check: bool) -> Result<Connection, OpenFailure> {
    let mut conn = schema::connect(path)?;
    if check {
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(OpenFailure::Corrupt(format!("quick_check: {check}")));
        }
    }
    let found = schema::user_version(&conn)?;
    if found > SCHEMA_VERSION as i64 {
        return Err(OpenFailure::Other(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
            written_by: schema::written_by(&conn),
        }));
    }
    if let Err(err) = schema::MIGRATIONS.to_latest(&mut conn) {
        return Err(if schema::is_migration_corruption(&err) {
            OpenFailure::Corrupt(err.to_string())
        } else {
            OpenFailure::Other(err.into())
        });
    }
    schema::set_written_by(&conn)?;
    Ok(conn)
}

impl Store {
    /// Opens (or creates) the store, quarantining an unusable file; the
    /// journal keeps its default retention.
    pub fn open(config: StoreConfig) -> Result<(Store, OpenReport), StoreError> {
        Store::open_with(config, JournalRetention::default())
    }

    /// Opens (or creates) the store with this journal retention.
    pub fn open_with(
        config: StoreConfig,
        journal: JournalRetention,
    ) -> Result<(Store, OpenReport), StoreError> {
        let path = config.path.clone();
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let reserve = space::Reserve::beside(&path);
        let mut disk_full = false;
        let marker = check::marker(&path);
        let check_first = marker.exists();
        // The accounting reads the queue's rows (all of a short queue): a
        // damaged page met there quarantines the file like one met by the check.
        let open = |check| {
            let conn = open_checked(&path, check)?;
            let acct = Accounting::open(&conn, COUNT_AT_OPEN)?;
            Ok::<_, OpenFailure>((conn, acct))
        };
        let first = match open(check_first) {
            Err(OpenFailure::Other(err)) if out_of_space(&err, &dir) => {
                // SQLite could not even create its -shm/-wal files: give it
                // the reserve and start refusing new events.
                disk_full = true;
                let released = reserve.release();
                tracing::error!(
                    error = %err,
                    reserve_released = released,
                    "The data disk is full: the database is opened with the disk's reserve and new events are refused until there is room."
                );
                open(check_first)
            }
            other => other,
        };
        let (conn, acct, quarantined) = match first {
            Ok((conn, acct)) => (conn, acct, None),
            Err(OpenFailure::Other(err)) => return Err(err),
            Err(OpenFailure::Corrupt(reason)) => {
                let mut q = quarantine::quarantine(&path, reason)?;
                match open_checked(&path, false) {
                    Ok(mut conn) => {
                        q.salvaged = salvage::salvage(&q.moved_to, &mut conn);
                        let acct = Accounting::open(&conn, COUNT_AT_OPEN)?;
                        (conn, acct, Some(q))
                    }
                    Err(OpenFailure::Other(err)) => return Err(err),
                    Err(OpenFailure::Corrupt(reason)) => return Err(StoreError::Unusable(reason)),
                }
            }
        };
        // Checked at open, or a fresh file: the marker has done its work.
        let checked = check_first || quarantined.is_some();
        if marker.exists()
            && let Err(error) = std::fs::remove_file(&marker)
        {
            tracing::warn!(%error, marker = %marker.display(), "The damage marker could not be removed.");
        }
        let reader = schema::connect(&path)?;
        // Every file of the database exists now (the WAL and its index
        // too): the service user's alone, like their folder.
        schema::restrict(&path);
        if !disk_full && space::nearly_full(&dir) {
            // The open itself needed no room (its files were kept): the
            // disk is full all the same, so the reserve goes to SQLite.
            disk_full = true;
            let released = reserve.release();
            tracing::error!(
                reserve_released = released,
                "The data disk is full: new events are refused until there is room."
            );
        }
        if !disk_full && !reserve.ensure() {
            tracing::warn!(
                "The data disk has no room for the store's reserve file; a full disk will stop the store until space is freed."
            );
        }
        let availability = if disk_full {
            Availability::DiskFull {
                since_ms: drivers::contract::now_ms(),
            }
        } else {
            Availability::Available
        };
        let limits = Limits {
            max_bytes: config.max_bytes,
            critical_reserve_bytes: config.critical_reserve_bytes,
        };
        let pressure = policy::next_pressure(limits, acct.usage.total(), false, Pressure::Normal);
        let damage = Arc::new(check::DamageReport::new(&path));
        let shared = Arc::new(Shared {
            accounting: Mutex::new(acct.clone()),
            pressure: watch::channel(pressure).0,
            damage: damage.clone(),
            availability: watch::channel(availability).0,
            outages: Mutex::new(Vec::new()),
            telemetry: held::Held::default(),
        });
        let report = OpenReport {
            quarantined,
            depth: acct.depth,
            disk_full,
        };
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(
            conn,
            rx,
            shared.clone(),
            limits,
            config.group_commit_window,
            acct,
            pressure,
        )
        .with_journal(journal)
        .with_space(dir, reserve, availability);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())?;
        let checker = if checked {
            damage.checked_at_open();
            check::Checker::default()
        } else {
            check::Checker::start(&path, config.check_after, damage)?
        };
        let inner = Inner {
            path,
            tx,
            reader: Mutex::new(Some(reader)),
            shared,
            thread: Mutex::new(Some(thread)),
            checker,
        };
        Ok((
            Store {
                inner: Arc::new(inner),
            },
            report,
        ))
    }

    /// Whether the writer thread has ended (closed, or died): without it
    /// nothing more is stored.
    pub fn writer_finished(&self) -> bool {
        self.inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    /// Opens another connection to the same database with the store's
    /// pragmas (WAL, `synchronous=FULL`, busy timeout), for the gateway's
    /// other tables.
    pub fn connect(&self) -> Result<Connection, StoreError> {
        Ok(schema::connect(&self.inner.path)?)
    }

    /// Appends one event; returns once it is on disk.
    pub async fn append(&self, event: Envelope) -> Result<Seq, StoreError> {
        self.submit(vec![event])
            .wait()
            .await
            .into_iter()
            .next()
            .unwrap_or(Err(StoreError::Closed))
    }

    /// Queues events for the writer in call order; the ticket resolves once
    /// they are on disk (one result per event).
    pub fn submit(&self, events: Vec<Envelope>) -> AppendTicket {
        let count = events.len();
        if count == 0 {
            return AppendTicket { count, rx: None };
        }
        self.submit_with(events, Vec::new())
    }

    /// Like [`Store::submit`], with the state changes decided together with
    /// these events: they are committed in the same transaction, so after a
    /// crash either both the events and their effects are on disk or neither.
    /// An effect that fails is rolled back alone and logged; it never costs
    /// the events their place.
    pub fn submit_with(&self, events: Vec<Envelope>, effects: Vec<Effect>) -> AppendTicket {
        let count = events.len();
        if count == 0 && effects.is_empty() {
            return AppendTicket { count, rx: None };
        }
        let events = events.into_iter().map(encode).collect();
        let (reply, rx) = oneshot::channel();
        match self.inner.tx.send(Request::Append {
            events,
            effects,
            reply,
        }) {
            Ok(()) => AppendTicket {
                count,
                rx: Some(rx),
            },
            Err(_) => AppendTicket { count, rx: None },
        }
    }

    /// Runs `change` on the writer's connection, inside its next
    /// transaction, and waits (blocking this thread) until that transaction
    /// has committed. This is how the gateway's other tables (lists, cards,
    /// panel edits) are written, so the database has one writer and a list
    /// change never holds the write lock while an event waits for its
    /// acknowledgement. Keep each change short (a bounded chunk of rows):
    /// appends queued behind it wait for it. When `change` returns an error
    /// only its own writes are rolled back. Call it from a blocking context
    /// (`spawn_blocking`, the CLI), never on an async worker.
    pub fn write_blocking<T, E>(
        &self,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (done_tx, done_rx) = mpsc::sync_channel::<Result<(), StoreError>>(1);
        let (value_tx, value_rx) = mpsc::sync_channel::<Result<T, E>>(1);
        let job: writer::Job = Box::new(move |tx| {
            let result = change(tx);
            let keep = result.is_ok();
            let _ = value_tx.send(result);
            keep
        });
        let reply: writer::JobReply = Box::new(move |result| {
            let _ = done_tx.send(result);
        });
        self.request(Request::Exec { job, reply })?;
        done_rx.recv().map_err(|_| StoreError::Closed)??;
        value_rx.recv().map_err(|_| E::from(StoreError::Closed))?
    }

    /// Writes `rows` through the writer in chunks of [`CHUNK_ROWS`], each
    /// chunk its own short transaction, so a 100,000-row import never holds
    /// the database while events wait; `progress` gets the rows written so
    /// far. On an error the chunks already written stay: callers make their
    /// rows idempotent (upserts) and mark completion in a last, small write
    /// (a list version, a change counter).
    pub fn write_in_chunks<R, E>(
        &self,
        rows: Vec<R>,
        per_row: impl Fn(&rusqlite::Transaction<'_>, &R) -> Result<(), E> + Send + Sync + 'static,
        mut progress: impl FnMut(u64),
    ) -> Result<(), E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let per_row = Arc::new(per_row);
        let mut rows = rows.into_iter().peekable();
        let mut done = 0u64;
        while rows.peek().is_some() {
            let chunk: Vec<R> = rows.by_ref().take(CHUNK_ROWS).collect();
            let n = chunk.len() as u64;
            let per_row = per_row.clone();
            self.write_blocking(move |tx| chunk.iter().try_for_each(|row| per_row(tx, row)))?;
            done += n;
            progress(done);
        }
        Ok(())
    }

    /// Runs `delete` (a statement deleting at most [`CHUNK_ROWS`] rows, its
    /// one parameter `param`) through the writer until it deletes nothing;
    /// returns how many rows went.
    pub fn delete_in_chunks(&self, delete: &'static str, param: i64) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let n = self
                .write_blocking(move |tx| tx.execute(delete, [param]).map_err(StoreError::from))?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }

    /// Like [`Store::write_blocking`], with every byte the change deletes
    /// or overwrites zeroed (`PRAGMA secure_delete` on for it alone): an
    /// erasure's writes. Follow them with [`Store::scrub`].
    pub fn write_erasing<T, E>(
        &self,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_blocking(move |tx| {
            tx.pragma_update(None, "secure_delete", schema::SECURE_DELETE)
                .map_err(StoreError::from)?;
            let result = change(tx);
            let restored = tx.pragma_update(None, "secure_delete", schema::SECURE_DELETE_FAST);
            let value = result?;
            restored.map_err(StoreError::from)?;
            Ok(value)
        })
    }

    /// After the writer's next commit, frees every free page (what deleted
    /// rows left in them goes with them) and checkpoints the WAL with
    /// TRUNCATE, so neither file keeps what was deleted or overwritten.
    /// Returns whether both completed (a long read on another connection
    /// can hold the checkpoint back; the next one finishes it). Blocks:
    /// call it from a blocking context.
    pub fn scrub(&self) -> Result<bool, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.request(Request::Scrub {
            reply: Box::new(move |result| {
                let _ = tx.send(result);
            }),
        })?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Up to `limit` events with `seq > after`, oldest first.
    pub async fn read_after(&self, after: Seq, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.read_after(after, limit))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Up to `limit` events of one class with `seq > after`, oldest first
    /// (the `(class, seq)` index makes this cheap however deep the queue).
    pub async fn read_class_after(
        &self,
        class: Class,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.read_class_after(class, after, limit))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Deletes every event with `seq <= upto`; returns how many.
    pub async fn ack(&self, upto: Seq) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.request(Request::Ack {
            upto,
            held: 0,
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Commits the acknowledgements the writer holds for its next commit
    /// ([`ACK_HOLD`]) now, and returns once they are.
    pub async fn commit_acks(&self) -> Result<(), StoreError> {
        // An ack of nothing is committed at once, with everything held.
        self.ack(0).await.map(|_| ())
    }

    /// Deletes exactly the events with these sequence numbers (missing ones
    /// are ignored); returns how many were deleted. Fewer than a few hundred
    /// events wait for the writer's next commit, at most [`ACK_HOLD`].
    pub async fn ack_seqs(&self, seqs: &[Seq]) -> Result<u64, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let (reply, rx) = oneshot::channel();
        self.request(Request::AckSeqs {
            seqs: seqs.to_vec(),
            held: 0,
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The queue's current statistics (no SQL: the writer's last published
    /// accounting plus the files' sizes).
    pub fn stats(&self) -> StoreStats {
        let acct = self.inner.shared.snapshot();
        let file_len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        StoreStats {
            depth: acct.depth,
            bytes: acct.usage.total(),
            file_bytes: file_len(&self.inner.path)
                + file_len(&quarantine::with_suffix(&self.inner.path, "-wal")),
            oldest_time_ms: acct.oldest_time_ms,
            dropped: acct.dropped,
            counting: acct.counting.is_some(),
        }
    }

    /// What the integrity check that runs after open has found; damage
    /// means the gateway must restart so the next open salvages the file.
    pub fn integrity(&self) -> watch::Receiver<Integrity> {
        self.inner.shared.damage.subscribe()
    }

    /// What the integrity check found, once it has finished.
    pub async fn checked(&self) -> Integrity {
        let mut integrity = self.integrity();
        match integrity.wait_for(|i| *i != Integrity::Checking).await {
            Ok(found) => found.clone(),
            Err(_) => Integrity::Unknown("the store closed".into()),
        }
    }

    /// Pressure changes.
    pub fn pressure(&self) -> watch::Receiver<Pressure> {
        self.inner.shared.pressure.subscribe()
    }

    /// Whether the store can write, and its changes.
    pub fn availability(&self) -> watch::Receiver<Availability> {
        self.inner.shared.availability.subscribe()
    }

    /// Whether the store writes now (not [`Availability::DiskFull`]).
    pub fn is_available(&self) -> bool {
        *self.inner.shared.availability.borrow() == Availability::Available
    }

    /// The outages that ended since the last call, oldest first (the
    /// gateway records each as a `store_unavailable` alarm).
    pub fn take_outages(&self) -> Vec<Outage> {
        std::mem::take(
            &mut *self
                .inner
                .shared
                .outages
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Waits until everything submitted so far is on disk, then stops the writer.
    pub async fn close(&self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || inner.checker.stop()).await;
        let (reply, rx) = oneshot::channel();
        self.request(Request::Close { reply: Some(reply) })?;
        let result = rx.await.map_err(|_| StoreError::Closed)?;
        *self
            .inner
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // The writer has answered and is returning: this join is short.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }

    fn request(&self, req: Request) -> Result<(), StoreError> {
        self.inner.tx.send(req).map_err(|_| StoreError::Closed)
    }
}

impl Inner {
    fn read_after(&self, after: Seq, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        // Held samples first: one written meanwhile is then read from the
        // file, and none is missed (see `held::merge`).
        let held = self.shared.telemetry.after(after, limit)?;
        let guard = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = guard.as_ref().ok_or(StoreError::Closed)?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query(rusqlite::params![after, limit])?;
        let rows = decode_rows(rows)?;
        Ok(held::merge(
            held,
            rows,
            usize::try_from(limit).unwrap_or(usize::MAX),
        ))
    }

    fn read_class_after(
        &self,
        class: Class,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let held = if class == Class::Telemetry {
            self.shared.telemetry.after(after, limit)?
        } else {
            Vec::new()
        };
        let guard = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = guard.as_ref().ok_or(StoreError::Closed)?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, payload FROM events WHERE class = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let class = class.index() as i64;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query(rusqlite::params![class, after, limit])?;
        let rows = decode_rows(rows)?;
        Ok(held::merge(
            held,
            rows,
            usize::try_from(limit).unwrap_or(usize::MAX),
        ))
    }
}

/// Whether opening failed because the disk under `dir` is out of space.
fn out_of_space(err: &StoreError, dir: &Path) -> bool {
    match err {
        StoreError::Db(e) => space::is_disk_full(e, dir),
        StoreError::Migration(rusqlite_migration::Error::RusqliteError { err, .. }) => {
            space::is_disk_full(err, dir)
        }
        StoreError::Io(_) => space::nearly_full(dir),
        _ => false,
    }
}

/// Decodes `(seq, payload)` rows into envelopes carrying their `seq`.
fn decode_rows(mut rows: rusqlite::Rows<'_>) -> Result<Vec<Envelope>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)?.max(0) as Seq;
        let payload = row.get_ref(1)?;
        let bytes = payload.as_bytes().map_err(|e| StoreError::CorruptRow {
            seq,
            reason: e.to_string(),
        })?;
        let mut env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| StoreError::CorruptRow {
                seq,
                reason: e.to_string(),
            })?;
        env.seq = seq;
        out.push(env);
    }
    Ok(out)
}

/// Encodes an envelope for its row (with `seq = 0`: the row's `seq` is the truth).
fn encode(mut env: Envelope) -> Result<Encoded, StoreError> {
    env.seq = 0;
    let payload = serde_json::to_string(&env)?;
    let actor = journal::actor_of(&env);
    Ok(Encoded {
        actor,
        class: env.class,
        id: env.id.hyphenated().to_string(),
        kind: env.kind,
        device_id: env.device_id,
        time_ms: env.time_ms,
        payload,
    })
}

/// A state change decided together with an event (a vehicle now inside, a
/// visitor pass used, a temporary code's use): its coordinator applies it to
/// memory at once, and the store writer commits it in the same transaction
/// as the event ([`Store::submit_with`]). Effects compare by their
/// description.
#[derive(Clone)]
pub struct Effect {
    what: String,
    apply: Arc<EffectFn>,
}

/// What an [`Effect`] runs inside the writer's transaction.
type EffectFn = dyn Fn(&Connection) -> rusqlite::Result<()> + Send + Sync;

impl Effect {
    /// An effect described by `what` (for logs and comparisons).
    pub fn new(
        what: impl Into<String>,
        apply: impl Fn(&Connection) -> rusqlite::Result<()> + Send + Sync + 'static,
    ) -> Effect {
        Effect {
            what: what.into(),
            apply: Arc::new(apply),
        }
    }

    /// What it does.
    pub fn label(&self) -> &str {
        &self.what
    }

    pub(crate) fn apply(&self, conn: &Connection) -> rusqlite::Result<()> {
        (self.apply)(conn)
    }
}

impl std::fmt::Debug for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Effect").field(&self.what).finish()
    }
}

impl PartialEq for Effect {
    fn eq(&self, other: &Effect) -> bool {
        self.what == other.what
    }
}

/// Resolves to one result per submitted event.
#[derive(Debug)]
pub struct AppendTicket {
    count: usize,
    rx: Option<oneshot::Receiver<Vec<Result<Seq, StoreError>>>>,
}

impl AppendTicket {
    /// Waits for the writer's answer.
    pub async fn wait(self) -> Vec<Result<Seq, StoreError>> {
        let closed = |n: usize| (0..n).map(|_| Err(StoreError::Closed)).collect();
        match self.rx {
            None => closed(self.count),
            Some(rx) => rx.await.unwrap_or_else(|_| closed(self.count)),
        }
    }
}

#[cfg(test)]
mod tests;
