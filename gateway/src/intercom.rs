//! Door stations (对讲), gateway side: the calls ringing now, as the
//! panel's ringing banner shows them on every page.
//!
//! [`Intercom::follow`] reads the pipeline's [`EventFeed`] (events are
//! published there once they are on disk): a `call_started` joins the
//! ringing calls, its `call_answered`, `call_ended` or `call_missed` takes
//! it out, and so does the station going offline (`device_link` with
//! `online: false`). The caller's snapshot is the station's own (in the
//! `call_started`) or the one a surveillance camera watching the station
//! took for the call (a `camera_snapshot` whose `of_seq` is the call's).
//! A call that no station event ends is dropped after [`MAX_RING`].
//!
//! Every change is published on a `watch` channel ([`Intercom::subscribe`]),
//! which the panel's banner stream follows; the set is small (one entry per
//! ringing call) and kept in memory only: calls ringing across a restart
//! are not shown again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::pipeline::EventFeed;
use crate::wire::Envelope;

/// A call still ringing after this is dropped from the banner (stations
/// give up ringing well before; this covers a missed end event).
pub const MAX_RING: Duration = Duration::from_secs(120);

/// How often calls are checked against [`MAX_RING`].
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// One call waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ringing {
    /// The station's device id.
    pub station: String,
    /// The call's id (unique per station).
    pub call: String,
    /// The unit or room called, when the station says.
    pub unit: Option<String>,
    /// When the call started (Unix ms).
    pub started_ms: i64,
    /// The `seq` of its `call_started`.
    pub seq: u64,
    /// The caller's snapshot (an image name), once there is one.
    pub snapshot: Option<String>,
}

/// The calls ringing now. Cheap to clone; every clone sees the same set.
#[derive(Debug, Clone)]
pub struct Intercom {
    tx: Arc<watch::Sender<Arc<Vec<Ringing>>>>,
}

impl Default for Intercom {
    fn default() -> Self {
        Self::new()
    }
}

impl Intercom {
    /// Nothing ringing.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(Arc::new(Vec::new())).0),
        }
    }

    /// The calls ringing now, oldest first.
    pub fn ringing(&self) -> Arc<Vec<Ringing>> {
        self.tx.borrow().clone()
    }

    /// Follows every change of [`Intercom::ringing`].
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<Ringing>>> {
        self.tx.subscribe()
    }

    /// Takes one recorded event into account.
    pub fn observe(&self, envelope: &Envelope) {
        let body = &envelope.body;
        let text = |key: &str| body.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let station = envelope.device_id.as_str();
        match envelope.kind.as_str() {
            "call_started" => {
                let Some(call) = text("call") else { return };
                let ringing = Ringing {
                    station: station.to_owned(),
                    call,
                    unit: text("unit").filter(|u| !u.is_empty()),
                    started_ms: envelope.time_ms,
                    seq: envelope.seq,
                    snapshot: text("snapshot").filter(|s| !s.is_empty()),
                };
                self.change(|calls| {
                    calls.retain(|c| !(c.station == ringing.station && c.call == ringing.call));
                    calls.push(ringing);
                    true
                });
            }
            "call_answered" | "call_ended" | "call_missed" => {
                let Some(call) = text("call") else { return };
                self.change(|calls| {
                    let before = calls.len();
                    calls.retain(|c| !(c.station == station && c.call == call));
                    calls.len() != before
                });
            }
            "device_link" if body.get("online") == Some(&serde_json::Value::Bool(false)) => {
                self.change(|calls| {
                    let before = calls.len();
                    calls.retain(|c| c.station != station);
                    calls.len() != before
                });
            }
            "camera_snapshot" => {
                let (Some(of_seq), Some(image)) =
                    (body.get("of_seq").and_then(|s| s.as_u64()), text("image"))
                else {
                    return;
                };
                self.change(|calls| {
                    let Some(call) = calls
                        .iter_mut()
                        .find(|c| c.seq == of_seq && c.snapshot.is_none())
                    else {
                        return false;
                    };
                    call.snapshot = Some(image);
                    true
                });
            }
            _ => {}
        }
    }

    /// Drops calls that started more than [`MAX_RING`] before `now_ms`.
    pub fn sweep(&self, now_ms: i64) {
        let limit = i64::try_from(MAX_RING.as_millis()).unwrap_or(i64::MAX);
        self.change(|calls| {
            let before = calls.len();
            calls.retain(|c| now_ms.saturating_sub(c.started_ms) <= limit);
            calls.len() != before
        });
    }

    /// Applies `edit` to a copy of the set and publishes it when `edit`
    /// says it changed something.
    fn change(&self, edit: impl FnOnce(&mut Vec<Ringing>) -> bool) {
        self.tx.send_if_modified(|current| {
            let mut calls = current.as_ref().clone();
            if edit(&mut calls) {
                *current = Arc::new(calls);
                true
            } else {
                false
            }
        });
    }

    /// Follows the recorded events on `feed` until `cancel`.
    pub async fn follow(self, feed: EventFeed, cancel: CancellationToken) {
        let mut events = feed.subscribe();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = sweep.tick() => self.sweep(drivers::contract::now_ms()),
                received = events.recv() => match received {
                    Ok(envelope) => self.observe(&envelope),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "The ringing calls fell behind the events; some may show late or not at all.");
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_call_rings_until_answered_missed_ended_or_its_station_goes_offline() {
        let intercom = Intercom::new();
        let mut changes = intercom.subscribe();
        intercom.observe(&Envelope::for_test(
            1,
            "call_started",
            "b3-door",
            json!({"call": "7", "unit": "3-1-502"}),
        ));
        assert!(changes.has_changed().expect("sender alive"));
        let now = intercom.ringing();
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].unit.as_deref(), Some("3-1-502"));
        assert_eq!(now[0].snapshot, None);
        changes.mark_unchanged();

        // A camera watching the station sends the caller's picture.
        intercom.observe(&Envelope::for_test(
            2,
            "camera_snapshot",
            "cctv-1",
            json!({"image": "2026/a.jpg", "of_seq": 1, "place": "b3-door"}),
        ));
        assert_eq!(
            intercom.ringing()[0].snapshot.as_deref(),
            Some("2026/a.jpg")
        );
        // A snapshot of another event changes nothing.
        changes.mark_unchanged();
        intercom.observe(&Envelope::for_test(
            3,
            "camera_snapshot",
            "cctv-1",
            json!({"image": "2026/b.jpg", "of_seq": 99, "place": "b3-door"}),
        ));
        assert!(!changes.has_changed().expect("sender alive"));

        // Another station's end does not end this call; its own does.
        intercom.observe(&Envelope::for_test(
            4,
            "call_missed",
            "b5-door",
            json!({"call": "7"}),
        ));
        assert_eq!(intercom.ringing().len(), 1);
        intercom.observe(&Envelope::for_test(
            5,
            "call_answered",
            "b3-door",
            json!({"call": "7", "by": "indoor_monitor"}),
        ));
        assert!(intercom.ringing().is_empty());

        for (seq, end) in [
            (
                7,
                Envelope::for_test(8, "call_missed", "b3-door", json!({"call": "8"})),
            ),
            (
                9,
                Envelope::for_test(10, "call_ended", "b3-door", json!({"call": "10"})),
            ),
            (
                11,
                Envelope::for_test(
                    12,
                    "device_link",
                    "b3-door",
                    json!({"online": false, "detail": "gone"}),
                ),
            ),
        ] {
            let call = (seq + 1).to_string();
            intercom.observe(&Envelope::for_test(
                seq,
                "call_started",
                "b3-door",
                json!({"call": call}),
            ));
            assert_eq!(intercom.ringing().len(), 1, "{end:?}");
            intercom.observe(&end);
            assert!(intercom.ringing().is_empty(), "{end:?}");
        }
        // Back online: nothing rings by itself.
        intercom.observe(&Envelope::for_test(
            13,
            "device_link",
            "b3-door",
            json!({"online": true, "detail": ""}),
        ));
        assert!(intercom.ringing().is_empty());
    }

    #[test]
    fn a_call_nobody_ends_is_dropped_after_the_longest_ring() {
        let intercom = Intercom::new();
        intercom.observe(&Envelope::for_test(
            1,
            "call_started",
            "b3-door",
            json!({"call": "1", "snapshot": "own.jpg"}),
        ));
        assert_eq!(intercom.ringing()[0].snapshot.as_deref(), Some("own.jpg"));
        let started = intercom.ringing()[0].started_ms;
        let limit = MAX_RING.as_millis() as i64;
        intercom.sweep(started + limit);
        assert_eq!(intercom.ringing().len(), 1);
        intercom.sweep(started + limit + 1);
        assert!(intercom.ringing().is_empty());
    }
}
