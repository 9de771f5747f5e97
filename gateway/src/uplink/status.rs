//! The uplink's observable state: online / backlogged / offline, counters
//! and the send rate, shared by the uplink tasks (which update it), the
//! `/metrics` collector (`gatehouse_uplink_…`) and the telemetry snapshot.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use drivers::contract::now_ms;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::store::{Store, StoreStats};

/// A connected link with more than this many events queued is backlogged.
const BACKLOG_EVENTS: u64 = 1000;
/// … as is one whose oldest unsent event is older than this.
const BACKLOG_AGE_MS: i64 = 30_000;
/// The window of the send rate.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// The link's coarse state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No uplink configured.
    Disabled,
    /// Not connected to the platform.
    Offline,
    /// Connected and keeping up.
    Online,
    /// Connected, draining a backlog.
    Backlogged,
}

impl LinkState {
    /// The state's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Disabled => "disabled",
            LinkState::Offline => "offline",
            LinkState::Online => "online",
            LinkState::Backlogged => "backlogged",
        }
    }

    /// Every state.
    pub const ALL: [LinkState; 4] = [
        LinkState::Disabled,
        LinkState::Offline,
        LinkState::Online,
        LinkState::Backlogged,
    ];
}

/// Shared uplink state (behind an `Arc`).
#[derive(Debug, Default)]
pub struct UplinkStatus {
    sink: OnceLock<&'static str>,
    store: OnceLock<Store>,
    connected: AtomicBool,
    sent: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    connects: AtomicU64,
    commands_done: AtomicU64,
    commands_refused: AtomicU64,
    downlink_dropped: AtomicU64,
    rate: Mutex<VecDeque<(Instant, u64)>>,
}

impl UplinkStatus {
    /// Marks the uplink as configured with this sink (`mqtt`, `https`).
    pub fn enable(&self, sink: &'static str, store: Store) {
        let _ = self.sink.set(sink);
        let _ = self.store.set(store);
    }

    /// The sink's name, when enabled.
    pub fn sink(&self) -> Option<&'static str> {
        self.sink.get().copied()
    }

    /// Records whether the link is up.
    pub fn set_connected(&self, up: bool) {
        if up && !self.connected.swap(true, Ordering::Relaxed) {
            self.connects.fetch_add(1, Ordering::Relaxed);
        } else if !up {
            self.connected.store(false, Ordering::Relaxed);
        }
    }

    /// Whether the link is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Counts events confirmed by the platform.
    pub fn delivered(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.sent.fetch_add(n, Ordering::Relaxed);
        let now = Instant::now();
        let mut rate = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
        rate.push_back((now, n));
        while rate
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            rate.pop_front();
        }
    }

    /// Counts events the platform rejected for good (dead-lettered).
    pub fn rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a batch that must be retried.
    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a downlink command carried out (`true`) or refused.
    pub fn command(&self, accepted: bool) {
        let counter = if accepted {
            &self.commands_done
        } else {
            &self.commands_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a downlink message dropped because the handler was behind.
    pub fn downlink_dropped(&self) {
        self.downlink_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Events confirmed since start.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Events rejected since start.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Events per second confirmed over the last ten seconds.
    pub fn send_rate(&self) -> f64 {
        let now = Instant::now();
        let rate = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
        let n: u64 = rate
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
            .map(|(_, n)| n)
            .sum();
        n as f64 / RATE_WINDOW.as_secs_f64()
    }

    /// The coarse state, given the store's statistics.
    pub fn state(&self, stats: &StoreStats) -> LinkState {
        state_of(self.sink().is_some(), self.connected(), stats, now_ms())
    }

    /// The store's statistics (default when the uplink is not enabled).
    pub fn store_stats(&self) -> StoreStats {
        self.store.get().map(Store::stats).unwrap_or_default()
    }

    /// A JSON summary for the telemetry snapshot and the heartbeat.
    pub fn summary(&self) -> serde_json::Value {
        let stats = self.store_stats();
        serde_json::json!({
            "state": self.state(&stats).as_str(),
            "sink": self.sink(),
            "sent": self.sent(),
            "rejected": self.rejected_total(),
            "retries": self.retries.load(Ordering::Relaxed),
            "connects": self.connects.load(Ordering::Relaxed),
            "send_rate_per_s": self.send_rate(),
            "commands_done": self.commands_done.load(Ordering::Relaxed),
            "commands_refused": self.commands_refused.load(Ordering::Relaxed),
        })
    }
}

/// The state rule (pure).
pub fn state_of(enabled: bool, connected: bool, stats: &StoreStats, now_ms: i64) -> LinkState {
    if !enabled {
        return LinkState::Disabled;
    }
    if !connected {
        return LinkState::Offline;
    }
    let old = stats
        .oldest_time_ms
        .is_some_and(|t| now_ms - t > BACKLOG_AGE_MS);
    if stats.depth > BACKLOG_EVENTS || old {
        LinkState::Backlogged
    } else {
        LinkState::Online
    }
}

/// The `/metrics` collector of the uplink (`gatehouse_uplink_…`).
#[derive(Debug)]
pub struct StatusCollector(pub std::sync::Arc<UplinkStatus>);

fn gauge<T>(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: T) -> std::fmt::Result
where
    ConstGauge<T>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let stats = s.store_stats();
        let state = s.state(&stats);
        {
            let metric = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(
                "uplink_state",
                "1 for the uplink's current state (disabled, offline, online, backlogged)",
                None,
                metric.metric_type(),
            )?;
            for candidate in LinkState::ALL {
                let value = i64::from(candidate == state);
                ConstGauge::new(value)
                    .encode(family.encode_family(&[("state", candidate.as_str())])?)?;
            }
        }
        gauge(
            &mut encoder,
            "uplink_up",
            "1 while the uplink is connected to the platform",
            i64::from(s.connected()),
        )?;
        // The backlog's size and age are the store's gauges
        // (`gatehouse_queue_depth`, `gatehouse_oldest_unsent_age_seconds`).
        gauge(
            &mut encoder,
            "uplink_send_rate",
            "Events per second confirmed by the platform over the last 10 s",
            s.send_rate(),
        )?;
        counter(
            &mut encoder,
            "uplink_sent",
            "Events confirmed by the platform (PUBACK or 2xx)",
            s.sent(),
        )?;
        counter(
            &mut encoder,
            "uplink_rejected",
            "Events the platform rejected for good (kept in the dead-letter table)",
            s.rejected_total(),
        )?;
        counter(
            &mut encoder,
            "uplink_retries",
            "Batches that had to be sent again (link down, timeout, 429, 5xx)",
            s.retries.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "uplink_downlink_dropped",
            "Downlink messages dropped unread because the handler was behind (a flood)",
            s.downlink_dropped.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "uplink_connects",
            "Times the uplink connected",
            s.connects.load(Ordering::Relaxed),
        )?;
        {
            let metric = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "uplink_commands",
                "Downlink commands, by result (done = carried out, refused = invalid, expired, replayed)",
                None,
                metric.metric_type(),
            )?;
            ConstCounter::new(s.commands_done.load(Ordering::Relaxed))
                .encode(family.encode_family(&[("result", "done")])?)?;
            ConstCounter::new(s.commands_refused.load(Ordering::Relaxed))
                .encode(family.encode_family(&[("result", "refused")])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_connection_depth_and_age() {
        let now = 1_000_000;
        let mut stats = StoreStats::default();
        assert_eq!(state_of(false, true, &stats, now), LinkState::Disabled);
        assert_eq!(state_of(true, false, &stats, now), LinkState::Offline);
        assert_eq!(state_of(true, true, &stats, now), LinkState::Online);
        stats.depth = 5;
        stats.oldest_time_ms = Some(now - 1000);
        assert_eq!(state_of(true, true, &stats, now), LinkState::Online);
        stats.oldest_time_ms = Some(now - 60_000);
        assert_eq!(state_of(true, true, &stats, now), LinkState::Backlogged);
        stats.oldest_time_ms = Some(now);
        stats.depth = 5000;
        assert_eq!(state_of(true, true, &stats, now), LinkState::Backlogged);
    }

    #[test]
    fn counters_and_rate_add_up() {
        let s = UplinkStatus::default();
        s.delivered(30);
        s.delivered(10);
        s.rejected(2);
        assert_eq!(s.sent(), 40);
        assert_eq!(s.rejected_total(), 2);
        assert!((s.send_rate() - 4.0).abs() < 1e-9);
        s.set_connected(true);
        s.set_connected(true);
        s.set_connected(false);
        s.set_connected(true);
        assert_eq!(s.connects.load(Ordering::Relaxed), 2);
    }
}
