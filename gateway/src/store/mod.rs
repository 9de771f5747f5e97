//! The durable event queue and the gateway's database (SQLite, WAL,
//! `synchronous=FULL`). STUB: the real implementation replaces this file.

use std::path::PathBuf;
use std::time::Duration;

use drivers::Class;
use tokio::sync::watch;

use crate::wire::Envelope;

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

/// What happened while opening.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Set when the old file was unreadable and moved aside.
    pub quarantined: Option<Quarantine>,
    /// Events found in the queue at open.
    pub depth: u64,
}

/// A database file moved aside because it could not be used.
#[derive(Debug, Clone)]
pub struct Quarantine {
    /// Where the old file now lives.
    pub moved_to: PathBuf,
    /// Why it was moved.
    pub reason: String,
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
    /// The writer thread is gone.
    #[error("store closed")]
    Closed,
}

/// The queue handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store;

impl Store {
    /// Opens (or creates) the store, quarantining an unusable file.
    pub fn open(_config: StoreConfig) -> Result<(Store, OpenReport), StoreError> {
        Err(StoreError::Closed)
    }

    /// Appends one event; returns once it is on disk.
    pub async fn append(&self, _event: Envelope) -> Result<Seq, StoreError> {
        Err(StoreError::Closed)
    }

    /// Queues events for the writer in call order; the ticket resolves once
    /// they are on disk (one result per event).
    pub fn submit(&self, _events: Vec<Envelope>) -> AppendTicket {
        AppendTicket
    }

    /// Up to `limit` events with `seq > after`, oldest first.
    pub async fn read_after(
        &self,
        _after: Seq,
        _limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        Ok(Vec::new())
    }

    /// Deletes every event with `seq <= upto`; returns how many.
    pub async fn ack(&self, _upto: Seq) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// The queue's current statistics.
    pub fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Pressure changes.
    pub fn pressure(&self) -> watch::Receiver<Pressure> {
        watch::channel(Pressure::Normal).1
    }

    /// Waits until everything submitted so far is on disk, then stops the writer.
    pub async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Resolves to one result per submitted event.
#[derive(Debug)]
pub struct AppendTicket;

impl AppendTicket {
    /// Waits for the writer's answer.
    pub async fn wait(self) -> Vec<Result<Seq, StoreError>> {
        Vec::new()
    }
}
