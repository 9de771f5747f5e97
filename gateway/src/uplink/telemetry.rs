//! The telemetry snapshot the platform pulls (`GET /api/v1/telemetry`) or
//! asks for over the downlink (`request_telemetry`): version and uptime,
//! store depth and bytes, uplink state, each device's health and last-seen,
//! recent alarms, the list versions held, and every Modbus point's value,
//! quality and alarm.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use drivers::Class;
use drivers::contract::now_ms;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::status::UplinkStatus;
use super::sync::ListRegistry;
use crate::pipeline::EventFeed;
use crate::supervisor::Drivers;
use crate::wire::Envelope;

/// How many recent alarms are kept in memory.
pub const RECENT_ALARMS: usize = 32;

/// The most recent alarm-class events, newest last (in memory only; the
/// store has them all until they are uplinked).
#[derive(Debug, Clone, Default)]
pub struct RecentAlarms {
    inner: Arc<Mutex<VecDeque<Arc<Envelope>>>>,
}

impl RecentAlarms {
    /// Keeps `event` when it is an alarm, dropping the oldest beyond
    /// [`RECENT_ALARMS`].
    pub fn offer(&self, event: Arc<Envelope>) {
        if event.class != Class::Alarm {
            return;
        }
        let mut ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == RECENT_ALARMS {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    /// The alarms kept, oldest first.
    pub fn list(&self) -> Vec<Arc<Envelope>> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Feeds the ring from the event feed until `cancel`.
    pub async fn follow(self, feed: EventFeed, cancel: CancellationToken) {
        let mut rx = feed.subscribe();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                received = rx.recv() => match received {
                    Ok(event) => self.offer(event),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Everything the snapshot is made of. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TelemetrySource {
    /// The Modbus point devices.
    pub facility: crate::facility::Facility,
    /// Estate id.
    pub estate_id: String,
    /// Gateway id.
    pub gateway_id: String,
    /// The devices.
    pub drivers: Drivers,
    /// The uplink (and through it the store's statistics).
    pub status: Arc<UplinkStatus>,
    /// Recent alarms.
    pub alarms: RecentAlarms,
    /// The synced lists.
    pub lists: ListRegistry,
    /// When the gateway started.
    pub started: Instant,
}

impl TelemetrySource {
    /// Builds the snapshot (list versions are read on the blocking pool).
    pub async fn snapshot(&self) -> serde_json::Value {
        let lists = self.lists.clone();
        let versions = tokio::task::spawn_blocking(move || {
            lists
                .iter()
                .map(|t| {
                    let v = t.version().map_or(serde_json::Value::Null, |v| v.into());
                    (t.name().to_owned(), v)
                })
                .collect::<serde_json::Map<_, _>>()
        })
        .await
        .unwrap_or_default();
        let stats = self.status.store_stats();
        let oldest_age_s = stats
            .oldest_time_ms
            .map(|t| (now_ms() - t).max(0) as f64 / 1000.0);
        let dropped: serde_json::Map<_, _> = Class::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), stats.dropped[c.index()].into()))
            .collect();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "estate_id": self.estate_id,
            "gateway_id": self.gateway_id,
            "time_ms": now_ms(),
            "uptime_s": self.started.elapsed().as_secs(),
            "store": {
                "depth": stats.depth,
                "bytes": stats.bytes,
                "file_bytes": stats.file_bytes,
                "oldest_unsent_age_s": oldest_age_s,
                "dropped": dropped,
            },
            "uplink": self.status.summary(),
            "devices": device_health(&self.drivers),
            "recent_alarms": self.alarms.list().iter().map(|e| e.as_ref()).collect::<Vec<_>>(),
            "lists": versions,
            "points": self.facility.snapshot(),
        })
    }
}

/// Each device's health, for the snapshot and the heartbeat.
pub fn device_health(drivers: &Drivers) -> Vec<serde_json::Value> {
    drivers
        .iter()
        .map(|h| {
            let health = h.health();
            serde_json::json!({
                "id": h.id.as_str(),
                "name": h.name,
                "type": h.kind,
                "state": health.state.as_str(),
                "last_seen_ms": health.last_seen_ms,
                "last_error": health.last_error,
                "restarts": health.restarts,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Kind;
    use crate::pipeline::Stamper;

    #[test]
    fn only_alarms_are_kept_and_the_ring_is_bounded() {
        let ring = RecentAlarms::default();
        let stamper = Stamper::new("e", "g");
        ring.offer(Arc::new(stamper.stamp(
            "d",
            Kind::PointValue,
            serde_json::json!({}),
            None,
        )));
        for i in 0..(RECENT_ALARMS + 3) {
            ring.offer(Arc::new(stamper.stamp(
                "d",
                Kind::ThresholdAlarm,
                serde_json::json!({"i": i}),
                None,
            )));
        }
        let kept = ring.list();
        assert_eq!(kept.len(), RECENT_ALARMS);
        assert_eq!(kept[0].body["i"], 3);
        assert!(kept.iter().all(|e| e.class == Class::Alarm));
    }
}
