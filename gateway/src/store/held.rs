//! Telemetry the writer holds before writing it ([`TELEMETRY_HOLD`]).
//!
//! Telemetry is not promised durable (nobody is told a sample is on disk),
//! so the writer does not commit a sample on its own: it gives it its `seq`
//! at once, keeps it here, and writes it with its next commit, or once the
//! oldest has waited [`TELEMETRY_HOLD`]. Readers (the uplink) see held
//! samples beside the committed rows, so a live uplink sends a sample in
//! milliseconds; one the platform confirms while it is held is never
//! written at all. A power cut loses what is held: at most
//! [`TELEMETRY_HOLD`] of telemetry the platform had not yet confirmed.
//!
//! Only the writer changes the set; readers take a copy of what they need.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::writer::Encoded;
use super::{Seq, StoreError};
use crate::wire::Envelope;

/// The longest a telemetry sample is held before it is written: the
/// telemetry a power cut can lose, of what the platform had not confirmed.
pub const TELEMETRY_HOLD: Duration = Duration::from_secs(10);

/// Most sequence numbers handed out between two commits (held samples and
/// those confirmed while held). A start skips this many, so a number given
/// to a sample that a crash then lost is never given again.
pub const TELEMETRY_HOLD_MAX: i64 = 1024;

/// The held samples, by `seq`.
#[derive(Debug, Default)]
pub(crate) struct Held(Mutex<BTreeMap<Seq, Arc<Encoded>>>);

impl Held {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Seq, Arc<Encoded>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds a sample under `seq`.
    pub(crate) fn hold(&self, seq: Seq, event: Encoded) {
        self.map().insert(seq, Arc::new(event));
    }

    /// Forgets the samples with `seq <= upto`; returns their payload sizes.
    pub(crate) fn forget_upto(&self, upto: Seq) -> Vec<u64> {
        let mut map = self.map();
        let kept = map.split_off(&upto.saturating_add(1));
        let gone = std::mem::replace(&mut *map, kept);
        gone.values().map(|e| e.payload.len() as u64).collect()
    }

    /// Forgets these samples (others are ignored); returns the sizes of
    /// those it held, and leaves in `seqs` the ones it did not hold.
    pub(crate) fn forget(&self, seqs: &mut Vec<Seq>) -> Vec<u64> {
        let mut map = self.map();
        if map.is_empty() {
            return Vec::new();
        }
        let mut sizes = Vec::new();
        seqs.retain(|seq| match map.remove(seq) {
            Some(event) => {
                sizes.push(event.payload.len() as u64);
                false
            }
            None => true,
        });
        sizes
    }

    /// Every held sample, in `seq` order (for the commit that writes them).
    pub(crate) fn all(&self) -> Vec<(Seq, Arc<Encoded>)> {
        self.map().iter().map(|(s, e)| (*s, e.clone())).collect()
    }

    /// Forgets these written samples (after their commit).
    pub(crate) fn written(&self, seqs: impl IntoIterator<Item = Seq>) {
        let mut map = self.map();
        for seq in seqs {
            map.remove(&seq);
        }
    }

    /// How many are held.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// The oldest held sample's time.
    pub(crate) fn oldest_time_ms(&self) -> Option<i64> {
        self.map().values().map(|e| e.time_ms).min()
    }

    /// Up to `limit` held samples with `seq > after`, decoded.
    pub(crate) fn after(&self, after: Seq, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let picked: Vec<(Seq, Arc<Encoded>)> = self
            .map()
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(s, e)| (*s, e.clone()))
            .collect();
        picked
            .into_iter()
            .map(|(seq, event)| {
                let mut env: Envelope =
                    serde_json::from_str(&event.payload).map_err(|e| StoreError::CorruptRow {
                        seq,
                        reason: e.to_string(),
                    })?;
                env.seq = seq;
                Ok(env)
            })
            .collect()
    }
}

/// Merges held samples (read first) with committed rows (read after):
/// `seq` order, each once, at most `limit`.
pub(crate) fn merge(held: Vec<Envelope>, rows: Vec<Envelope>, limit: usize) -> Vec<Envelope> {
    if held.is_empty() {
        return rows;
    }
    let mut all: BTreeMap<Seq, Envelope> = held.into_iter().map(|e| (e.seq, e)).collect();
    for row in rows {
        all.insert(row.seq, row);
    }
    all.into_values().take(limit).collect()
}
