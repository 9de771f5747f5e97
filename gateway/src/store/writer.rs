//! The writer thread: the only owner of the write connection. It receives
//! [`Request`]s over a channel in call order, gathers concurrent appends into
//! one transaction (group commit), applies the capacity policy, commits with
//! `synchronous=FULL`, and only then answers every request in the batch. It
//! also keeps the in-memory accounting behind [`super::Store::stats`] and
//! publishes pressure changes.
//!
//! In the same transaction as the queue insert it copies access, alarm and
//! audit events into the local `journal` ([`super::journal`]), and it prunes
//! the journal by age and row count at most every
//! [`JournalRetention::prune_every`] (not per event).
//!
//! Telemetry is held for the next commit rather than committed alone
//! ([`super::held`]); so are small acknowledgements ([`ACK_HOLD`]). The
//! writer gives every event its `seq` itself (a high-water mark kept in
//! `sqlite_sequence`), so a held sample has its number before it is written.
//!
//! When a commit fails because the disk is full it gives the store's
//! reserve back ([`super::space`]) and turns [`Availability::DiskFull`]:
//! from then on it refuses new events and list writes without touching the
//! database (counted per class), still deletes what the platform confirmed,
//! and looks at the free space every [`PROBE_EVERY`] until it can write
//! the reserve again and resume.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use drivers::Class;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use tokio::sync::{oneshot, watch};

use super::held::{Held, TELEMETRY_HOLD, TELEMETRY_HOLD_MAX};
use super::journal::JournalRetention;
use super::policy::{self, Decision, Limits, Usage};
use super::space::{self, Reserve};
use super::{Availability, Effect, Outage, Pressure, Seq, StoreError};
use crate::logging::Every;

/// Most events committed in one transaction.
pub const MAX_BATCH_EVENTS: usize = 1024;

/// Free pages (4 KiB each) above which space is returned even while events
/// are still queued.
const RECLAIM_FREELIST_PAGES: i64 = 2048;

/// Free pages worth returning once the queue is empty: below this, a queue
/// kept empty by a live uplink would vacuum and truncate on every ack.
const RECLAIM_EMPTY_MIN_PAGES: i64 = 16;

/// How often a summary of dropped and refused events is logged, at most.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How often the free space is looked at while the disk is full.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(100);

/// How often a failed commit (other than a full disk) is logged at most.
const COMMIT_FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

const TELEMETRY: i64 = Class::Telemetry as i64;

/// An acknowledgement of fewer events than this (taken with those already
/// held) is not committed on its own: it waits for the writer's next
/// commit (an append's, usually, whose pages it shares) for up to
/// [`ACK_HOLD`]. Each commit rewrites its pages and syncs, so a live
/// uplink's small acks would otherwise double the writes of a lone event.
const ACK_HOLD_SEQS: usize = 256;

/// The longest a small acknowledgement is held. After a crash within it the
/// events it confirmed are sent again (delivery is at least once).
pub const ACK_HOLD: Duration = Duration::from_secs(5);

/// An envelope ready for its row: encoded by the submitting thread.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) class: Class,
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) device_id: String,
    pub(crate) time_ms: i64,
    /// Who acted (audit events), for the journal's actor filter.
    pub(crate) actor: Option<String>,
    pub(crate) payload: String,
}

/// Answer to an append: one result per event.
pub(crate) type AppendReply = oneshot::Sender<Vec<Result<Seq, StoreError>>>;

/// A change to the gateway's own tables run by the writer inside its
/// transaction; returns whether to keep it (`false` rolls back just this job).
pub(crate) type Job = Box<dyn FnOnce(&Transaction<'_>) -> bool + Send>;

/// Told once a job's transaction has committed (or failed).
pub(crate) type JobReply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// How a scrub is answered: whether the WAL is empty and the file holds no
/// free page.
pub(crate) type ScrubReply = Box<dyn FnOnce(Result<bool, StoreError>) + Send>;

/// What the writer is asked to do.
pub(crate) enum Request {
    /// Store these events (an entry is already an error when it failed to encode).
    Append {
        events: Vec<Result<Encoded, StoreError>>,
        /// State changes that belong with these events (committed with them).
        effects: Vec<Effect>,
        reply: AppendReply,
    },
    /// Run a change to the gateway's other tables (a chunk of a list, a
    /// panel edit) in the writer's transaction.
    Exec { job: Job, reply: JobReply },
    /// Delete every event with `seq <= upto`.
    Ack {
        upto: Seq,
        /// Held samples it already forgot (counted in its answer).
        held: u64,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Delete exactly these events.
    AckSeqs {
        seqs: Vec<Seq>,
        /// Held samples it already forgot (counted in its answer).
        held: u64,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// After the commit: free every free page and checkpoint with
    /// TRUNCATE (an erasure's last step); answers whether the checkpoint
    /// completed.
    Scrub { reply: ScrubReply },
    /// Commit what came before, checkpoint and stop.
    Close {
        reply: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Append {
                events, effects, ..
            } => f
                .debug_struct("Append")
                .field("events", &events.len())
                .field("effects", effects)
                .finish(),
            Request::Exec { .. } => f.write_str("Exec"),
            Request::Ack { upto, .. } => f.debug_struct("Ack").field("upto", upto).finish(),
            Request::AckSeqs { seqs, .. } => f
                .debug_struct("AckSeqs")
                .field("seqs", &seqs.len())
                .finish(),
            Request::Scrub { .. } => f.write_str("Scrub"),
            Request::Close { .. } => f.write_str("Close"),
        }
    }
}

impl Request {
    fn event_count(&self) -> usize {
        match self {
            Request::Append { events, .. } => events.len(),
            _ => 1,
        }
    }
}

/// The queue's accounting, kept by the writer and published after each commit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounting {
    pub(crate) depth: u64,
    pub(crate) usage: Usage,
    pub(crate) oldest_time_ms: Option<i64>,
    pub(crate) dropped: [u64; 4],
    /// Transactions committed since open (for tests and diagnostics).
    pub(crate) commits: u64,
    /// The rows queued at open not counted yet (`None`: all counted).
    pub(crate) counting: Option<Counting>,
}

/// The part of the queue found at open that the writer has still to count:
/// rows with `next <= seq <= end`. Rows inserted since open are above `end`
/// and counted as they come; a row deleted before it was counted is not
/// subtracted (the count will not see it either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counting {
    pub(crate) next: i64,
    pub(crate) end: i64,
}

/// Rows counted at open before the rest is left to the writer: a queue this
/// long is counted in a few milliseconds.
pub const COUNT_AT_OPEN: i64 = 20_000;

/// Rows the writer counts at a time, between batches.
const COUNT_CHUNK: usize = 5_000;

impl Accounting {
    /// The accounting at open: the queue's ends are read from the primary
    /// key; a short queue is counted at once, a long one by the writer in
    /// chunks ([`Accounting::count_chunk`]), so a start never scans it.
    pub(crate) fn open(conn: &Connection, count_at_open: i64) -> rusqlite::Result<Accounting> {
        // Two subqueries: SQLite reads min() or max() of the primary key
        // from the b-tree's edge only when it is the query's one aggregate;
        // `SELECT min(seq), max(seq)` scans the table.
        let (first, last): (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT (SELECT min(seq) FROM events), (SELECT max(seq) FROM events)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut acct = Accounting {
            oldest_time_ms: oldest_time(conn)?,
            ..Accounting::default()
        };
        if let (Some(first), Some(last)) = (first, last) {
            acct.counting = Some(Counting {
                next: first,
                end: last,
            });
            // The numbers have gaps (a start skips some, shedding and acks
            // leave others): a wide span may still be a short queue.
            if last - first < count_at_open || short_queue(conn, count_at_open)? {
                while acct.counting.is_some() {
                    acct.count_chunk(conn, usize::MAX)?;
                }
            }
        }
        Ok(acct)
    }

    /// Counts up to `rows` more of the rows queued at open.
    pub(crate) fn count_chunk(&mut self, conn: &Connection, rows: usize) -> rusqlite::Result<()> {
        let Some(Counting { next, end }) = self.counting else {
            return Ok(());
        };
        let mut stmt = conn.prepare_cached(
            "SELECT seq, class, size FROM events WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
        )?;
        let limit = i64::try_from(rows).unwrap_or(i64::MAX);
        let mut found = stmt.query(params![next, end, limit])?;
        let mut seen = 0;
        let mut last = None;
        while let Some(row) = found.next()? {
            let seq: i64 = row.get(0)?;
            self.depth += 1;
            self.usage.class_bytes[class_index(row.get(1)?)] += row.get::<_, i64>(2)?.max(0) as u64;
            last = Some(seq);
            seen += 1;
        }
        self.counting = match last {
            Some(last) if seen == rows && last < end => Some(Counting {
                next: last + 1,
                end,
            }),
            _ => None,
        };
        Ok(())
    }

    /// Whether a row with this `seq` is in the accounting (counted, or
    /// inserted since open).
    fn counted(&self, seq: i64) -> bool {
        self.counting.is_none_or(|c| seq < c.next || seq > c.end)
    }
}

/// The accounting slot of a stored class; an unknown class counts as
/// critical (it is never shed).
fn class_index(class: i64) -> usize {
    usize::try_from(class)
        .ok()
        .and_then(Class::from_index)
        .unwrap_or(Class::Access)
        .index()
}

/// Whether the queue holds fewer than `rows` rows (counted through the
/// smallest index SQLite finds, at most `rows` of it).
fn short_queue(conn: &Connection, rows: i64) -> rusqlite::Result<bool> {
    let found: i64 = conn.query_row(
        "SELECT count(*) FROM (SELECT 1 FROM events LIMIT ?1)",
        [rows],
        |r| r.get(0),
    )?;
    Ok(found < rows)
}

fn oldest_time(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT time_ms FROM events ORDER BY seq LIMIT 1", [], |r| {
        r.get(0)
    })
    .optional()
}

/// State shared between the writer and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) accounting: Mutex<Accounting>,
    pub(crate) pressure: watch::Sender<Pressure>,
    pub(crate) damage: Arc<super::check::DamageReport>,
    pub(crate) availability: watch::Sender<Availability>,
    /// Outages that ended, for [`super::Store::take_outages`].
    pub(crate) outages: Mutex<Vec<Outage>>,
    /// Telemetry held for the next commit, readable by the uplink.
    pub(crate) telemetry: Held,
}

impl Shared {
    pub(crate) fn snapshot(&self) -> Accounting {
        self.accounting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Rate-limited summary of dropped and refused events.
#[derive(Debug, Default)]
struct DropLog {
    pending: [u64; 4],
    last: Option<Instant>,
}

impl DropLog {
    fn record(&mut self, before: &[u64; 4], after: &[u64; 4]) {
        for i in 0..4 {
            self.pending[i] += after[i].saturating_sub(before[i]);
        }
        if self.due() {
            self.flush();
        }
    }

    fn has_pending(&self) -> bool {
        self.pending.iter().any(|&n| n > 0)
    }

    fn due(&self) -> bool {
        self.last.is_none_or(|t| t.elapsed() >= DROP_LOG_INTERVAL)
    }

    /// Time until a pending summary is due.
    fn wait(&self) -> Option<Duration> {
        if !self.has_pending() {
            return None;
        }
        Some(self.last.map_or(Duration::ZERO, |t| {
            DROP_LOG_INTERVAL.saturating_sub(t.elapsed())
        }))
    }

    fn flush(&mut self) {
        if !self.has_pending() {
            return;
        }
        let [access, alarm, audit, telemetry] = self.pending;
        if access + alarm + audit > 0 {
            tracing::error!(
                access,
                alarm,
                audit,
                telemetry,
                "store or disk full: events refused (critical events refused, producers got errors)"
            );
        } else {
            tracing::warn!(telemetry, "store or disk full: telemetry shed or refused");
        }
        self.pending = [0; 4];
        self.last = Some(Instant::now());
    }
}

/// The writer thread's state.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) rx: Receiver<Request>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) limits: Limits,
    pub(crate) window: Duration,
    pub(crate) acct: Accounting,
    pub(crate) pressure: Pressure,
    drop_log: DropLog,
    journal: JournalRetention,
    /// When the journal was last pruned (`None`: not yet since open).
    last_prune: Option<Instant>,
    /// Requests answered by the last commit: the window closes early once
    /// this many are back, so a lone appender never waits for company.
    last_batch_requests: usize,
    /// The data directory (its free space) and the reserve file in it.
    dir: PathBuf,
    reserve: Option<Reserve>,
    /// Set while the disk is full.
    outage: Option<DiskFull>,
    /// When the free space was last looked at during an outage.
    last_probe: Option<Instant>,
    commit_failures: Every,
    /// Small acknowledgements waiting for the next commit ([`ACK_HOLD`]),
    /// the events they name, and since when the first has waited.
    held: Vec<Request>,
    held_seqs: usize,
    held_since: Option<Instant>,
    /// Since when the oldest held telemetry sample has waited.
    telemetry_since: Option<Instant>,
    /// The next `seq` to give.
    next_seq: i64,
    /// Numbers given to held samples since the last commit (which
    /// recorded the high-water mark).
    given: i64,
}

/// A full disk in progress: since when, and what was refused.
#[derive(Debug)]
struct DiskFull {
    since_ms: i64,
    refused: [u64; 4],
    writes_refused: u64,
}

/// What a request got, before the commit decides whether it stands.
enum Answer {
    Append(Vec<Result<Seq, StoreError>>),
    Exec,
    Ack(u64),
    Scrub,
    Close,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        rx: Receiver<Request>,
        shared: Arc<Shared>,
        limits: Limits,
        window: Duration,
        acct: Accounting,
        pressure: Pressure,
    ) -> Writer {
        Writer {
            conn,
            rx,
            shared,
            limits,
            window,
            acct,
            pressure,
            drop_log: DropLog::default(),
            journal: JournalRetention::default(),
            last_prune: None,
            last_batch_requests: 0,
            dir: PathBuf::from("."),
            reserve: None,
            outage: None,
            last_probe: None,
            commit_failures: Every::new(COMMIT_FAILURE_LOG_EVERY),
            held: Vec::new(),
            held_seqs: 0,
            held_since: None,
            telemetry_since: None,
            next_seq: 1,
            given: 0,
        }
        .numbered()
    }

    /// Starts numbering above every `seq` the file has seen, skipping
    /// [`TELEMETRY_HOLD_MAX`]: numbers given to samples a crash lost (and
    /// perhaps sent) are never given again.
    fn numbered(mut self) -> Writer {
        match high_water(&self.conn) {
            Ok(high) => self.next_seq = high + 1 + TELEMETRY_HOLD_MAX,
            Err(err) => {
                tracing::warn!(error = %err, "Reading the queue's high-water mark failed; numbering continues from the commits.");
            }
        }
        self
    }

    /// The same writer watching the disk under `dir`, with its reserve
    /// file, starting in `availability` (full when the open needed the
    /// reserve).
    pub(crate) fn with_space(
        mut self,
        dir: PathBuf,
        reserve: Reserve,
        availability: Availability,
    ) -> Writer {
        self.dir = dir;
        self.reserve = Some(reserve);
        if let Availability::DiskFull { since_ms } = availability {
            self.outage = Some(DiskFull {
                since_ms,
                refused: [0; 4],
                writes_refused: 0,
            });
            self.last_probe = Some(Instant::now());
        }
        self
    }

    /// The same writer with this journal retention.
    pub(crate) fn with_journal(mut self, journal: JournalRetention) -> Writer {
        self.journal = journal;
        self
    }

    /// Runs until closed or every handle is gone.
    pub(crate) fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            // An empty batch: a hold is due.
            let due = batch.is_empty();
            let batch = self.take_telemetry(batch);
            let batch = if batch.is_empty() {
                if !due && !self.telemetry_due() {
                    continue;
                }
                self.take_held()
            } else {
                match self.hold_acks(batch) {
                    Some(batch) => batch,
                    None if self.telemetry_due() => Vec::new(),
                    None => continue,
                }
            };
            if self.process(batch) {
                return;
            }
            // A busy queue still gets counted: a chunk between batches.
            self.count_more();
        }
        // Every handle dropped without close(): commit what is held and
        // still leave a tidy file.
        let held = self.take_held();
        if !held.is_empty() || self.shared.telemetry.len() > 0 || self.given > 0 {
            self.process(held);
        }
        let _ = self.checkpoint();
        self.drop_log.flush();
    }

    /// Blocks for the next request, then gathers a group-commit batch.
    fn next_batch(&mut self) -> Option<Vec<Request>> {
        let first = loop {
            if self.acct.counting.is_some() {
                match self.rx.try_recv() {
                    Ok(req) => break req,
                    Err(TryRecvError::Empty) => {
                        self.count_more();
                        if self.held_wait() == Some(Duration::ZERO)
                            || self.telemetry_wait() == Some(Duration::ZERO)
                        {
                            return Some(Vec::new());
                        }
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => return None,
                }
            }
            let wait = [
                self.drop_log.wait(),
                self.probe_wait(),
                self.held_wait(),
                self.telemetry_wait(),
            ]
            .into_iter()
            .flatten()
            .min();
            match wait {
                None => break self.rx.recv().ok()?,
                Some(wait) => match self.rx.recv_timeout(wait) {
                    Ok(req) => break req,
                    Err(RecvTimeoutError::Timeout) => {
                        if self.drop_log.wait() == Some(Duration::ZERO) {
                            self.drop_log.flush();
                        }
                        self.probe_if_due();
                        if self.held_wait() == Some(Duration::ZERO)
                            || self.telemetry_wait() == Some(Duration::ZERO)
                        {
                            return Some(Vec::new());
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return None,
                },
            }
        };
        let mut events = first.event_count();
        let mut open = !matches!(first, Request::Close { .. });
        let has_append = matches!(first, Request::Append { .. });
        let mut batch = vec![first];
        let deadline = Instant::now() + self.window;
        while open && events < MAX_BATCH_EVENTS {
            // Everything already queued, then (for appends) a short wait for
            // more, which ends early once as many requests are back as the
            // last commit answered.
            let next = match self.rx.try_recv() {
                Ok(req) => req,
                Err(_) => {
                    let now = Instant::now();
                    if !has_append || now >= deadline || batch.len() >= self.last_batch_requests {
                        break;
                    }
                    match self.rx.recv_timeout(deadline - now) {
                        Ok(req) => req,
                        Err(_) => break,
                    }
                }
            };
            events += next.event_count();
            open = !matches!(next, Request::Close { .. });
            batch.push(next);
        }
        self.last_batch_requests = batch.len();
        Some(batch)
    }

    /// How long until the held acknowledgements are due (`None`: none is
    /// held).
    fn held_wait(&self) -> Option<Duration> {
        self.held_since
            .map(|since| ACK_HOLD.saturating_sub(since.elapsed()))
    }

    /// How long until the held telemetry is due (`None`: none is held).
    fn telemetry_wait(&self) -> Option<Duration> {
        self.telemetry_since
            .map(|since| TELEMETRY_HOLD.saturating_sub(since.elapsed()))
    }

    /// Whether the held telemetry (or the numbers given since the last
    /// commit) must be committed now.
    fn telemetry_due(&self) -> bool {
        self.telemetry_wait() == Some(Duration::ZERO) || self.given >= TELEMETRY_HOLD_MAX
    }

    /// Takes the batch's telemetry-only appends into the held set
    /// (answered at once: telemetry is not promised durable) and forgets
    /// held samples the batch acknowledges; returns the rest.
    fn take_telemetry(&mut self, batch: Vec<Request>) -> Vec<Request> {
        let mut rest = Vec::with_capacity(batch.len());
        let mut answers = Vec::new();
        let mut acked = Vec::new();
        let mut changed = false;
        // Numbers follow call order: nothing after an append that is
        // committed (and numbered then) is held.
        let mut holding = true;
        for req in batch {
            match req {
                Request::Append {
                    events,
                    effects,
                    reply,
                } if holding && effects.is_empty() && self.holdable(&events) => {
                    let mut seqs = Vec::with_capacity(events.len());
                    for event in events.into_iter().flatten() {
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        self.given += 1;
                        let size = event.payload.len() as u64;
                        if self.acct.depth == 0 {
                            self.acct.oldest_time_ms = Some(event.time_ms);
                        }
                        self.acct.depth += 1;
                        self.acct.usage.class_bytes[Class::Telemetry.index()] += size;
                        let seq = seq.max(0) as Seq;
                        self.shared.telemetry.hold(seq, event);
                        seqs.push(Ok(seq));
                    }
                    self.telemetry_since.get_or_insert_with(Instant::now);
                    answers.push((reply, seqs));
                    changed = true;
                }
                Request::AckSeqs {
                    mut seqs,
                    held,
                    reply,
                } => {
                    let sizes = self.shared.telemetry.forget(&mut seqs);
                    let held = held + sizes.len() as u64;
                    changed |= self.forget_held(&sizes);
                    if seqs.is_empty() {
                        acked.push((reply, held));
                    } else {
                        rest.push(Request::AckSeqs { seqs, held, reply });
                    }
                }
                append @ Request::Append { .. } => {
                    holding = false;
                    rest.push(append);
                }
                Request::Ack { upto, held, reply } => {
                    let sizes = self.shared.telemetry.forget_upto(upto);
                    changed |= self.forget_held(&sizes);
                    rest.push(Request::Ack {
                        upto,
                        held: held + sizes.len() as u64,
                        reply,
                    });
                }
                other => rest.push(other),
            }
        }
        if changed {
            if self.shared.telemetry.len() == 0 {
                self.telemetry_since = None;
            }
            // The accounting is published before anyone hears of it (the
            // appends' numbers and the acknowledgements alike).
            self.publish(false);
        }
        for (reply, seqs) in answers {
            let _ = reply.send(seqs);
        }
        for (reply, n) in acked {
            let _ = reply.send(Ok(n));
        }
        rest
    }

    /// Whether an append can be held: telemetry only, every event encoded,
    /// the store writing, and room for all of it without shedding.
    fn holdable(&self, events: &[Result<Encoded, StoreError>]) -> bool {
        let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
        if self.outage.is_some() || events.is_empty() || self.given + count > TELEMETRY_HOLD_MAX {
            return false;
        }
        let mut usage = self.acct.usage;
        events.iter().all(|event| match event {
            Ok(e) if e.class == Class::Telemetry => {
                let size = e.payload.len() as u64;
                let fits = matches!(
                    policy::decide(self.limits, &usage, e.class, size),
                    Decision::Accept
                );
                usage.class_bytes[Class::Telemetry.index()] += size;
                fits
            }
            _ => false,
        })
    }

    /// Takes forgotten held samples out of the accounting; returns whether
    /// there were any.
    fn forget_held(&mut self, sizes: &[u64]) -> bool {
        if sizes.is_empty() {
            return false;
        }
        let t = Class::Telemetry.index();
        self.acct.usage.class_bytes[t] =
            self.acct.usage.class_bytes[t].saturating_sub(sizes.iter().sum());
        self.acct.depth = self.acct.depth.saturating_sub(sizes.len() as u64);
        let held = self.shared.telemetry.len() as u64;
        self.acct.oldest_time_ms = if self.acct.depth == 0 {
            None
        } else if self.acct.counting.is_none() && self.acct.depth == held {
            // Nothing written is queued (a live uplink's usual case): no SQL.
            self.shared.telemetry.oldest_time_ms()
        } else {
            let written = oldest_time(&self.conn).unwrap_or(None);
            [written, self.shared.telemetry.oldest_time_ms()]
                .into_iter()
                .flatten()
                .min()
        };
        true
    }

    /// Drops the held telemetry (a commit that would have written it
    /// failed), counting it as shed.
    fn drop_held_telemetry(&mut self) {
        let all = self.shared.telemetry.all();
        if all.is_empty() {
            return;
        }
        let before = self.acct.dropped;
        let sizes: Vec<u64> = all.iter().map(|(_, e)| e.payload.len() as u64).collect();
        self.shared.telemetry.written(all.iter().map(|(s, _)| *s));
        self.forget_held(&sizes);
        self.acct.dropped[Class::Telemetry.index()] += sizes.len() as u64;
        self.telemetry_since = None;
        self.drop_log.record(&before, &self.acct.dropped);
        self.publish(true);
    }

    /// Holds a batch of nothing but small acknowledgements for the next
    /// commit (`None`), or returns what to commit now: whatever is held,
    /// then the batch (an empty batch: the held ones are due).
    fn hold_acks(&mut self, batch: Vec<Request>) -> Option<Vec<Request>> {
        let acked: Option<usize> = batch
            .iter()
            .map(|req| match req {
                Request::AckSeqs { seqs, .. } => Some(seqs.len()),
                _ => None,
            })
            .sum();
        if let Some(acked) = acked
            && !batch.is_empty()
            && self.held_seqs + acked < ACK_HOLD_SEQS
        {
            self.held_seqs += acked;
            self.held.extend(batch);
            self.held_since.get_or_insert_with(Instant::now);
            return None;
        }
        let mut all = self.take_held();
        all.extend(batch);
        (!all.is_empty()).then_some(all)
    }

    /// The held acknowledgements, no longer held.
    fn take_held(&mut self) -> Vec<Request> {
        self.held_seqs = 0;
        self.held_since = None;
        std::mem::take(&mut self.held)
    }

    /// Applies a batch in one transaction and answers it. Returns whether to stop.
    fn process(&mut self, mut batch: Vec<Request>) -> bool {
        if self.outage.is_some() {
            self.probe_if_due();
        }
        if self.outage.is_some() {
            batch = self.refuse_while_full(batch);
            if batch.is_empty() {
                return false;
            }
        }
        let mut scratch = self.acct.clone();
        let telemetry = self.shared.telemetry.all();
        let mut next_seq = self.next_seq;
        let outcome = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                // Another writer (`gatehouse deadletters requeue`) may have
                // numbered rows since: continue above them.
                let high = high_water(&tx)?;
                next_seq = next_seq.max(high + 1);
                let mut written = Vec::with_capacity(telemetry.len());
                for (held, event) in &telemetry {
                    // A sample whose number another writer took is written
                    // under a new one (sent again; the platform de-duplicates
                    // on the envelope id).
                    let seq = match i64::try_from(*held) {
                        Ok(seq) if seq > high => seq,
                        _ => {
                            next_seq += 1;
                            next_seq - 1
                        }
                    };
                    insert_row(&tx, seq, event)?;
                    written.push(*held);
                }
                let answers = apply(&tx, &mut batch, &mut scratch, self.limits, &mut next_seq)?;
                // Rows inserted above `high` raised the mark already (the
                // same page); this also covers numbers given to samples
                // confirmed before they were written.
                let covered = next_seq - 1;
                if covered > high {
                    cover(&tx, covered)?;
                }
                tx.commit()?;
                Ok((answers, written))
            });
        let mut stop = false;
        match outcome {
            Ok((answers, written)) => {
                self.next_seq = next_seq;
                self.given = 0;
                self.shared.telemetry.written(written);
                if self.shared.telemetry.len() == 0 {
                    self.telemetry_since = None;
                }
                scratch.commits += 1;
                let deleted_by_ack = answers
                    .iter()
                    .any(|a| matches!(a, Answer::Ack(n) if *n > 0));
                let shed = scratch.dropped[Class::Telemetry.index()]
                    > self.acct.dropped[Class::Telemetry.index()];
                self.drop_log.record(&self.acct.dropped, &scratch.dropped);
                self.acct = scratch;
                self.publish(shed);
                if deleted_by_ack {
                    self.reclaim();
                }
                self.prune_journal_if_due();
                for (req, answer) in batch.into_iter().zip(answers) {
                    match (req, answer) {
                        (Request::Append { reply, .. }, Answer::Append(results)) => {
                            let _ = reply.send(results);
                        }
                        (
                            Request::Ack { reply, .. } | Request::AckSeqs { reply, .. },
                            Answer::Ack(n),
                        ) => {
                            let _ = reply.send(Ok(n));
                        }
                        (Request::Exec { reply, .. }, Answer::Exec) => reply(Ok(())),
                        (Request::Scrub { reply }, Answer::Scrub) => reply(Ok(self.scrub())),
                        (Request::Close { reply }, Answer::Close) => {
                            let _ = self.checkpoint();
                            self.drop_log.flush();
                            if let Some(reply) = reply {
                                let _ = reply.send(Ok(()));
                            }
                            stop = true;
                        }
                        _ => {}
                    }
                }
            }
            Err(err) => {
                // Numbers given in the failed transaction are not given again.
                self.next_seq = self.next_seq.max(next_seq);
                // Telemetry is not kept for another try (which could fail
                // the same way at once): it is shed and counted.
                self.drop_held_telemetry();
                let full = space::is_disk_full(&err, &self.dir);
                if full {
                    self.enter_disk_full(&err);
                    // Its appends and list writes are refusals of a full
                    // disk: counted, and published before they are answered.
                    batch = self.refuse_while_full(batch);
                } else {
                    if let Some(failures) = self.commit_failures.allow() {
                        tracing::error!(error = %err, failures, "store commit failed; the batch is answered with errors");
                    }
                    if super::schema::is_corruption(&err) {
                        self.shared.damage.damaged(&err.to_string());
                    }
                }
                for req in batch {
                    match req {
                        Request::Append { events, reply, .. } => {
                            let _ = reply.send(events.iter().map(|_| Err(failed(&err))).collect());
                        }
                        Request::Exec { reply, .. } => reply(Err(failed(&err))),
                        Request::Scrub { reply } => reply(Err(failed(&err))),
                        Request::Ack { reply, .. } | Request::AckSeqs { reply, .. } => {
                            let _ = reply.send(Err(failed(&err)));
                        }
                        Request::Close { reply } => {
                            let _ = self.checkpoint();
                            if let Some(reply) = reply {
                                let _ = reply.send(Err(failed(&err)));
                            }
                            stop = true;
                        }
                    }
                }
            }
        }
        stop
    }

    /// Counts a chunk of the queue found at open, if any is left.
    fn count_more(&mut self) {
        if self.acct.counting.is_none() {
            return;
        }
        if let Err(err) = self.acct.count_chunk(&self.conn, COUNT_CHUNK) {
            tracing::warn!(error = %err, "Counting the queued events failed; the count covers what was read.");
            self.acct.counting = None;
        }
        if self.acct.counting.is_none() {
            tracing::info!(queued = self.acct.depth, "Queued events counted.");
        }
        self.publish(false);
    }

    /// How long until the free space is looked at again (`None`: the disk
    /// is not full).
    fn probe_wait(&self) -> Option<Duration> {
        self.outage.as_ref()?;
        Some(
            self.last_probe
                .map_or(Duration::ZERO, |t| PROBE_EVERY.saturating_sub(t.elapsed())),
        )
    }

    /// While the disk is full: once it has room for the reserve and more,
    /// writes the reserve back and resumes, queueing the outage's report.
    fn probe_if_due(&mut self) {
        if self.probe_wait() != Some(Duration::ZERO) {
            return;
        }
        self.last_probe = Some(Instant::now());
        if !space::has_room(&self.dir) {
            return;
        }
        if let Some(reserve) = &self.reserve
            && !reserve.ensure()
        {
            return;
        }
        let Some(outage) = self.outage.take() else {
            return;
        };
        let report = Outage {
            reason: "disk full".to_owned(),
            since_ms: outage.since_ms,
            until_ms: drivers::contract::now_ms(),
            refused: outage.refused,
            writes_refused: outage.writes_refused,
        };
        let [access, alarm, audit, telemetry] = report.refused;
        tracing::warn!(
            duration_ms = report.until_ms - report.since_ms,
            access,
            alarm,
            audit,
            telemetry,
            writes = report.writes_refused,
            "The data disk has room again: the store writes again (its reserve is back)."
        );
        self.shared
            .outages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(report);
        self.shared
            .availability
            .send_replace(Availability::Available);
    }

    /// Turns [`Availability::DiskFull`] (once per outage): gives the
    /// reserve back to SQLite and says so in one line.
    fn enter_disk_full(&mut self, err: &rusqlite::Error) {
        if self.outage.is_some() {
            return;
        }
        let since_ms = drivers::contract::now_ms();
        let released = self.reserve.as_ref().is_some_and(Reserve::release);
        tracing::error!(
            error = %err,
            reserve_released = released,
            "The data disk is full: new events are refused (producers get errors) until there is room again."
        );
        self.outage = Some(DiskFull {
            since_ms,
            refused: [0; 4],
            writes_refused: 0,
        });
        self.last_probe = Some(Instant::now());
        self.shared
            .availability
            .send_replace(Availability::DiskFull { since_ms });
    }

    /// Answers the batch's appends and list writes with
    /// [`StoreError::DiskFull`] (without touching the database); returns
    /// what may still run (acknowledgements, close).
    fn refuse_while_full(&mut self, batch: Vec<Request>) -> Vec<Request> {
        let before = self.acct.dropped;
        let mut keep = Vec::new();
        let mut answers: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        for req in batch {
            match req {
                Request::Append { events, reply, .. } => {
                    let results = self.refuse_events(&events);
                    answers.push(Box::new(move || {
                        let _ = reply.send(results);
                    }));
                }
                Request::Exec { reply, .. } => {
                    self.refuse_write();
                    answers.push(Box::new(move || reply(Err(StoreError::DiskFull))));
                }
                other => keep.push(other),
            }
        }
        // The accounting is published before anyone hears of the refusal.
        if before != self.acct.dropped {
            self.drop_log.record(&before, &self.acct.dropped);
            self.publish(false);
        }
        for answer in answers {
            answer();
        }
        keep
    }

    /// Refuses events for a full disk, counting them by class.
    fn refuse_events(
        &mut self,
        events: &[Result<Encoded, StoreError>],
    ) -> Vec<Result<Seq, StoreError>> {
        events
            .iter()
            .map(|event| match event {
                Ok(event) => {
                    let i = event.class.index();
                    self.acct.dropped[i] += 1;
                    if let Some(outage) = &mut self.outage {
                        outage.refused[i] += 1;
                    }
                    Err(StoreError::DiskFull)
                }
                Err(e) => Err(StoreError::Write(e.to_string())),
            })
            .collect()
    }

    fn refuse_write(&mut self) {
        if let Some(outage) = &mut self.outage {
            outage.writes_refused += 1;
        }
    }

    fn publish(&mut self, shed_now: bool) {
        *self
            .shared
            .accounting
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = self.acct.clone();
        let next = policy::next_pressure(
            self.limits,
            self.acct.usage.total(),
            shed_now,
            self.pressure,
        );
        if next != self.pressure {
            tracing::info!(from = ?self.pressure, to = ?next, "store pressure changed");
            self.pressure = next;
        }
        self.shared.pressure.send_if_modified(|p| {
            let changed = *p != next;
            *p = next;
            changed
        });
    }

    /// Prunes the journal when [`JournalRetention::prune_every`] has passed
    /// since the last prune (and on the first commit after open).
    fn prune_journal_if_due(&mut self) {
        if self
            .last_prune
            .is_some_and(|t| t.elapsed() < self.journal.prune_every)
        {
            return;
        }
        self.last_prune = Some(Instant::now());
        let now_ms = drivers::contract::now_ms();
        match super::journal::prune(&self.conn, &self.journal, now_ms) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "Journal pruned."),
            Err(err) => tracing::warn!(error = %err, "Pruning the journal failed."),
        }
    }

    /// Returns free pages to the filesystem once the backlog has drained (or
    /// the freelist is large), then truncates the WAL.
    fn reclaim(&mut self) {
        let free: rusqlite::Result<i64> = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0));
        match free {
            Ok(free)
                if (self.acct.depth == 0 && free >= RECLAIM_EMPTY_MIN_PAGES)
                    || free > RECLAIM_FREELIST_PAGES =>
            {
                if let Err(err) = self.incremental_vacuum() {
                    static FAILED: Every = Every::minute();
                    if let Some(count) = FAILED.allow() {
                        tracing::warn!(error = %err, count, "incremental vacuum failed");
                    }
                }
                let _ = self.checkpoint();
            }
            Ok(_) => {}
            Err(err) => {
                static FAILED: Every = Every::minute();
                if let Some(count) = FAILED.allow() {
                    tracing::warn!(error = %err, count, "reading the freelist failed");
                }
            }
        }
    }

    /// Frees every free page. The pragma frees one page per step, so it is
    /// stepped to the end (`execute_batch` would stop after the first).
    fn incremental_vacuum(&mut self) -> rusqlite::Result<()> {
        let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        Ok(())
    }

    /// Frees every free page (the bytes they held go with them) and
    /// checkpoints with TRUNCATE, outside any transaction; returns whether
    /// both completed (a reader in the middle of a read can hold the
    /// checkpoint back).
    fn scrub(&mut self) -> bool {
        if let Err(err) = self.incremental_vacuum() {
            tracing::warn!(error = %err, "incremental vacuum failed");
            return false;
        }
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap_or(-1);
        let checkpointed = self.checkpoint();
        free == 0 && checkpointed
    }

    /// Checkpoints with TRUNCATE; returns whether it completed.
    fn checkpoint(&mut self) -> bool {
        let result: rusqlite::Result<(i64, i64, i64)> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                });
        match result {
            Ok((0, _, _)) => true,
            Ok((busy, log, done)) => {
                tracing::debug!(busy, log, done, "WAL checkpoint incomplete");
                false
            }
            Err(err) => {
                static FAILED: Every = Every::minute();
                if let Some(count) = FAILED.allow() {
                    tracing::warn!(error = %err, count, "WAL checkpoint failed");
                }
                false
            }
        }
    }
}

/// An error for each request of a failed batch (`rusqlite::Error` is not `Clone`).
fn failed(err: &rusqlite::Error) -> StoreError {
    match err {
        rusqlite::Error::SqliteFailure(e, msg) => {
            StoreError::Db(rusqlite::Error::SqliteFailure(*e, msg.clone()))
        }
        other => StoreError::Write(other.to_string()),
    }
}

fn to_sql_seq(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Applies every request of a batch inside `tx`, updating `acct`.
fn apply(
    tx: &Transaction<'_>,
    batch: &mut [Request],
    acct: &mut Accounting,
    limits: Limits,
    next_seq: &mut i64,
) -> rusqlite::Result<Vec<Answer>> {
    let mut answers = Vec::with_capacity(batch.len());
    let mut oldest_stale = false;
    for req in batch.iter_mut() {
        answers.push(match req {
            Request::Exec { job, .. } => {
                let job = std::mem::replace(job, Box::new(|_| true));
                savepoint(tx, |tx| Ok(job(tx)))?;
                Answer::Exec
            }
            Request::Append {
                events, effects, ..
            } => {
                let mut results = Vec::with_capacity(events.len());
                for event in events {
                    let event = match event {
                        Ok(e) => e,
                        Err(e) => {
                            results.push(Err(StoreError::Write(e.to_string())));
                            continue;
                        }
                    };
                    results.push(insert(
                        tx,
                        event,
                        acct,
                        limits,
                        next_seq,
                        &mut oldest_stale,
                    )?);
                }
                for effect in effects.iter() {
                    apply_effect(tx, effect)?;
                }
                Answer::Append(results)
            }
            Request::Ack { upto, held, .. } => {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM events WHERE seq <= ?1 RETURNING seq, class, size",
                )?;
                let n = forget_deleted(stmt.query(params![to_sql_seq(*upto)])?, acct)?;
                oldest_stale |= n > 0;
                Answer::Ack(n + *held)
            }
            Request::AckSeqs { seqs, held, .. } => {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM events WHERE seq = ?1 RETURNING seq, class, size",
                )?;
                let mut n = 0;
                for seq in seqs {
                    n += forget_deleted(stmt.query(params![to_sql_seq(*seq)])?, acct)?;
                }
                oldest_stale |= n > 0;
                Answer::Ack(n + *held)
            }
            Request::Scrub { .. } => Answer::Scrub,
            Request::Close { .. } => Answer::Close,
        });
    }
    if oldest_stale {
        acct.oldest_time_ms = oldest_time(tx)?;
    }
    Ok(answers)
}

/// Runs `body` inside a savepoint: kept when it returns `true`, rolled back
/// (alone, not the batch) when it returns `false` or fails with an error
/// that leaves the transaction usable.
fn savepoint(
    tx: &Transaction<'_>,
    body: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<bool>,
) -> rusqlite::Result<bool> {
    tx.execute_batch("SAVEPOINT job")?;
    let kept = match body(tx) {
        Ok(keep) => keep,
        Err(err) if is_fatal(&err) => return Err(err),
        Err(err) => {
            tracing::error!(error = %err, "A change to the gateway's tables failed and was rolled back.");
            false
        }
    };
    if !kept {
        tx.execute_batch("ROLLBACK TO job")?;
    }
    tx.execute_batch("RELEASE job")?;
    Ok(kept)
}

/// Errors that doom the whole transaction (the disk, not the statement).
fn is_fatal(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::OutOfMemory
        )
    )
}

/// Applies one coordinator effect inside the event's transaction.
fn apply_effect(tx: &Transaction<'_>, effect: &Effect) -> rusqlite::Result<()> {
    let kept = savepoint(tx, |tx| effect.apply(tx).map(|()| true))?;
    if !kept {
        tracing::error!(
            effect = effect.label(),
            "An effect of a decision was not stored."
        );
    }
    Ok(())
}

/// Subtracts deleted `(seq, class, size)` rows from the accounting (those
/// it has counted); returns how many were deleted.
fn forget_deleted(mut rows: rusqlite::Rows<'_>, acct: &mut Accounting) -> rusqlite::Result<u64> {
    let mut n = 0;
    while let Some(row) = rows.next()? {
        n += 1;
        if !acct.counted(row.get(0)?) {
            continue;
        }
        let index = class_index(row.get(1)?);
        let size: i64 = row.get(2)?;
        acct.usage.class_bytes[index] =
            acct.usage.class_bytes[index].saturating_sub(size.max(0) as u64);
        acct.depth = acct.depth.saturating_sub(1);
    }
    Ok(n)
}

/// The highest `seq` the file records as given.
fn high_water(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                    coalesce((SELECT max(seq) FROM events), 0),
                    coalesce((SELECT max(seq) FROM journal), 0))",
        [],
        |r| r.get(0),
    )
}

/// Records `upto` as given (numbers handed to samples confirmed before
/// they were written).
fn cover(tx: &Transaction<'_>, upto: i64) -> rusqlite::Result<()> {
    let updated = tx.execute(
        "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'events'",
        [upto],
    )?;
    if updated == 0 {
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?1)",
            [upto],
        )?;
    }
    Ok(())
}

/// Writes an event's queue row under `seq`.
fn insert_row(tx: &Transaction<'_>, seq: i64, event: &Encoded) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (seq, id, class, kind, device_id, time_ms, size, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    stmt.execute(params![
        seq,
        event.id,
        event.class.index() as i64,
        event.kind,
        event.device_id,
        event.time_ms,
        event.payload.len() as i64,
        event.payload,
    ])?;
    Ok(())
}

/// Applies the policy to one event and stores it under the next `seq`.
fn insert(
    tx: &Transaction<'_>,
    event: &Encoded,
    acct: &mut Accounting,
    limits: Limits,
    next_seq: &mut i64,
    oldest_stale: &mut bool,
) -> rusqlite::Result<Result<Seq, StoreError>> {
    let size = event.payload.len() as u64;
    let class = event.class;
    match policy::decide(limits, &acct.usage, class, size) {
        Decision::Refuse => {
            acct.dropped[class.index()] += 1;
            return Ok(Err(StoreError::Full { class }));
        }
        Decision::ShedThenAccept { bytes } => {
            shed_telemetry(tx, bytes, acct)?;
            *oldest_stale = true;
        }
        Decision::Accept => {}
    }
    let seq = *next_seq;
    insert_row(tx, seq, event)?;
    *next_seq += 1;
    if class != Class::Telemetry {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO journal (seq, time_ms, class, kind, device_id, actor, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        stmt.execute(params![
            seq,
            event.time_ms,
            class.index() as i64,
            event.kind,
            event.device_id,
            event.actor,
            event.payload,
        ])?;
    }
    if acct.depth == 0 {
        acct.oldest_time_ms = Some(event.time_ms);
    }
    acct.depth += 1;
    acct.usage.class_bytes[class.index()] += size;
    Ok(Ok(seq.max(0) as Seq))
}

/// Deletes the oldest telemetry until at least `need` bytes are freed.
fn shed_telemetry(tx: &Transaction<'_>, need: u64, acct: &mut Accounting) -> rusqlite::Result<()> {
    let mut freed = 0u64;
    let mut count = 0u64;
    let (mut counted_bytes, mut counted_rows) = (0u64, 0u64);
    let mut last = None;
    {
        let mut stmt =
            tx.prepare_cached("SELECT seq, size FROM events WHERE class = ?1 ORDER BY seq")?;
        let mut rows = stmt.query(params![TELEMETRY])?;
        while freed < need {
            let Some(row) = rows.next()? else { break };
            let seq = row.get::<_, i64>(0)?;
            let size = row.get::<_, i64>(1)?.max(0) as u64;
            last = Some(seq);
            freed += size;
            count += 1;
            if acct.counted(seq) {
                counted_bytes += size;
                counted_rows += 1;
            }
        }
    }
    if let Some(last) = last {
        let mut stmt = tx.prepare_cached("DELETE FROM events WHERE class = ?1 AND seq <= ?2")?;
        stmt.execute(params![TELEMETRY, last])?;
    }
    let t = Class::Telemetry.index();
    acct.usage.class_bytes[t] = acct.usage.class_bytes[t].saturating_sub(counted_bytes);
    acct.depth = acct.depth.saturating_sub(counted_rows);
    acct.dropped[t] += count;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue of `n` rows, classes and sizes varying with the seq.
    fn queue(n: i64) -> Connection {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, class INTEGER NOT NULL,
             size INTEGER NOT NULL, time_ms INTEGER NOT NULL)",
        )
        .expect("table");
        for seq in 1..=n {
            conn.execute(
                "INSERT INTO events (class, size, time_ms) VALUES (?1, ?2, ?3)",
                params![seq % 4, 100 + seq % 7, 1_000 + seq],
            )
            .expect("row");
        }
        conn
    }

    fn full_count(conn: &Connection) -> (u64, [u64; 4]) {
        let mut bytes = [0u64; 4];
        let mut depth = 0;
        let mut stmt = conn
            .prepare("SELECT class, count(*), sum(size) FROM events GROUP BY class")
            .expect("prepare");
        let mut rows = stmt.query([]).expect("query");
        while let Some(row) = rows.next().expect("row") {
            depth += row.get::<_, i64>(1).expect("count") as u64;
            bytes[class_index(row.get(0).expect("class"))] +=
                row.get::<_, i64>(2).expect("sum") as u64;
        }
        (depth, bytes)
    }

    #[test]
    fn a_short_queue_is_counted_at_open_and_a_long_one_in_chunks() {
        let conn = queue(100);
        let short = Accounting::open(&conn, 1_000).expect("open");
        assert_eq!(short.counting, None);
        assert_eq!((short.depth, short.usage.class_bytes), full_count(&conn));
        assert_eq!(short.oldest_time_ms, Some(1_001));

        let mut long = Accounting::open(&conn, 10).expect("open");
        assert_eq!(long.counting, Some(Counting { next: 1, end: 100 }));
        assert_eq!(long.depth, 0, "nothing read at open");
        assert_eq!(long.oldest_time_ms, Some(1_001), "from the primary key");
        let mut chunks = 0;
        while long.counting.is_some() {
            long.count_chunk(&conn, 7).expect("chunk");
            chunks += 1;
        }
        assert_eq!(chunks, 15, "100 rows, 7 at a time");
        assert_eq!((long.depth, long.usage.class_bytes), full_count(&conn));
    }

    #[test]
    fn a_short_queue_with_gaps_in_its_numbers_is_counted_at_open() {
        // A few rows across a wide span (a start skips numbers): short.
        let conn = queue(5);
        conn.execute(
            "INSERT INTO events (seq, class, size, time_ms) VALUES (50000, 0, 10, 9)",
            [],
        )
        .expect("row far ahead");
        let acct = Accounting::open(&conn, 1_000).expect("open");
        assert_eq!(acct.counting, None);
        assert_eq!((acct.depth, acct.usage.class_bytes), full_count(&conn));
    }

    #[test]
    fn rows_deleted_or_added_while_counting_are_counted_once() {
        let conn = queue(100);
        let mut acct = Accounting::open(&conn, 10).expect("open");
        acct.count_chunk(&conn, 30).expect("chunk");
        assert_eq!(acct.depth, 30);
        // An ack of everything up to 40 (30 counted, 10 not yet), a single
        // ack far ahead of the count, and a row inserted after open.
        let mut stmt = conn
            .prepare("DELETE FROM events WHERE seq <= ?1 RETURNING seq, class, size")
            .expect("prepare");
        assert_eq!(
            forget_deleted(stmt.query([40]).expect("ack"), &mut acct).expect("forget"),
            40
        );
        let mut stmt = conn
            .prepare("DELETE FROM events WHERE seq = ?1 RETURNING seq, class, size")
            .expect("prepare");
        assert_eq!(
            forget_deleted(stmt.query([90]).expect("ack"), &mut acct).expect("forget"),
            1
        );
        conn.execute(
            "INSERT INTO events (class, size, time_ms) VALUES (1, 500, 9)",
            [],
        )
        .expect("insert");
        acct.depth += 1;
        acct.usage.class_bytes[1] += 500;
        while acct.counting.is_some() {
            acct.count_chunk(&conn, 25).expect("chunk");
        }
        assert_eq!((acct.depth, acct.usage.class_bytes), full_count(&conn));
        assert_eq!(acct.depth, 60);
    }
}
