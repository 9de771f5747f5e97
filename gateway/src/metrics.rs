//! Prometheus metrics, rendered at `GET /metrics`. Every metric is prefixed
//! `gatehouse_`.
//!
//! Counters that the gateway increments as things happen live in
//! [`Metrics`]; values that already exist elsewhere (store statistics, driver
//! health) are read at scrape time by a collector, so they are never stale
//! and never counted twice.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use drivers::Class;
use drivers::contract::{HealthState, now_ms};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::store::Store;
use crate::supervisor::Drivers;

/// Labels of `gatehouse_events_appended_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    kind: String,
    class: &'static str,
}

/// Labels of `gatehouse_http_rejected_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    route: &'static str,
    reason: &'static str,
}

/// Labels of `gatehouse_camera_snapshots_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SnapshotLabels {
    outcome: &'static str,
}

/// The gateway's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events_appended: Family<EventLabels, Counter>,
    http_rejected: Family<RejectLabels, Counter>,
    images_pruned: Counter,
    camera_snapshots: Family<SnapshotLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the gateway's counters and build info.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let events_appended = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_appended",
            "Events durably appended to the store, by kind and class",
            events_appended.clone(),
        );
        let http_rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "http_rejected",
            "HTTP requests rejected, by route and reason",
            http_rejected.clone(),
        );
        let images_pruned = Counter::default();
        registry.register(
            "images_pruned",
            "Snapshot images deleted (oldest first) to stay within the image budget",
            images_pruned.clone(),
        );
        let camera_snapshots = Family::<SnapshotLabels, Counter>::default();
        registry.register(
            "camera_snapshots",
            "Surveillance camera snapshots of access events, by outcome (stored, timeout, too_large, failed, unsaved, busy)",
            camera_snapshots.clone(),
        );
        Self {
            registry,
            events_appended,
            http_rejected,
            images_pruned,
            camera_snapshots,
        }
    }

    /// Adds the scrape-time collector for the store and the drivers; it
    /// reports nothing until `live` is set (while the gateway starts).
    pub fn with_live_state(mut self, live: Arc<OnceLock<(Store, Drivers)>>) -> Self {
        self.registry.register_collector(Box::new(LiveState {
            live,
            started: Instant::now(),
        }));
        self
    }

    /// Adds another scrape-time collector (e.g. the uplink's state).
    pub fn with_collector(mut self, collector: Box<dyn Collector>) -> Self {
        self.registry.register_collector(collector);
        self
    }

    /// Counts one appended event.
    pub fn appended(&self, kind: &str, class: Class) {
        self.events_appended
            .get_or_create(&EventLabels {
                kind: kind.to_owned(),
                class: class.as_str(),
            })
            .inc();
    }

    /// Counts one rejected HTTP request.
    pub fn rejected(&self, route: &'static str, reason: &'static str) {
        self.http_rejected
            .get_or_create(&RejectLabels { route, reason })
            .inc();
    }

    /// Counts snapshot images deleted for space.
    pub fn images_pruned(&self, n: u64) {
        self.images_pruned.inc_by(n);
    }

    /// Counts one surveillance snapshot attempt by its outcome.
    pub fn camera_snapshot(&self, outcome: &'static str) {
        self.camera_snapshots
            .get_or_create(&SnapshotLabels { outcome })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "Metrics could not be encoded.");
            let _ = writeln!(out, "# encoding failed");
        }
        out
    }
}

/// Reads store statistics and driver health at scrape time.
#[derive(Debug)]
struct LiveState {
    live: Arc<OnceLock<(Store, Drivers)>>,
    started: Instant,
}

/// Encodes one unlabelled gauge.
pub fn gauge<T>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: T,
) -> std::fmt::Result
where
    ConstGauge<T>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for LiveState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        gauge(
            &mut encoder,
            "uptime_seconds",
            "Seconds since the gateway started",
            self.started.elapsed().as_secs_f64(),
        )?;
        let Some((store, drivers)) = self.live.get() else {
            return Ok(());
        };
        let stats = store.stats();
        gauge(
            &mut encoder,
            "queue_depth",
            "Events in the store not yet confirmed by the platform",
            stats.depth as i64,
        )?;
        gauge(
            &mut encoder,
            "store_available",
            "1 when the store writes; 0 while the data disk is full (new events are refused)",
            i64::from(store.is_available()),
        )?;
        gauge(
            &mut encoder,
            "store_bytes",
            "Encoded bytes of the queued events",
            stats.bytes as i64,
        )?;
        gauge(
            &mut encoder,
            "store_file_bytes",
            "Size of the database and its WAL on disk",
            stats.file_bytes as i64,
        )?;
        let oldest_age = stats
            .oldest_time_ms
            .map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
        gauge(
            &mut encoder,
            "oldest_unsent_age_seconds",
            "Age of the oldest event not yet confirmed by the platform",
            oldest_age,
        )?;

        {
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "events_dropped",
                "Events dropped or refused by the store when full, by class",
                None,
                counter.metric_type(),
            )?;
            for class in Class::ALL {
                let counter = ConstCounter::new(stats.dropped[class.index()]);
                counter.encode(family.encode_family(&[("class", class.as_str())])?)?;
            }
        }
        {
            let metric = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(
                "driver_up",
                "1 when the driver is talking to its device, by device and state",
                None,
                metric.metric_type(),
            )?;
            for handle in drivers.iter() {
                let health = handle.health();
                let up = i64::from(health.state == HealthState::Ok);
                let labels = [
                    ("device", handle.id.as_str()),
                    ("kind", handle.kind),
                    ("state", health.state.as_str()),
                ];
                ConstGauge::new(up).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let (online, all) = drivers
                .iter()
                .filter(|d| crate::config::is_station(d.kind))
                .fold((0i64, 0i64), |(online, all), d| {
                    let up = d.health().state == HealthState::Ok;
                    (online + i64::from(up), all + 1)
                });
            let metric = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(
                "intercom_stations",
                "Door stations (intercom) by state: online (their driver talks to them) or offline",
                None,
                metric.metric_type(),
            )?;
            ConstGauge::new(online).encode(family.encode_family(&[("state", "online")])?)?;
            ConstGauge::new(all - online).encode(family.encode_family(&[("state", "offline")])?)?;
        }
        {
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "driver_restarts",
                "Supervisor restarts of each driver",
                None,
                counter.metric_type(),
            )?;
            for handle in drivers.iter() {
                let restarts = ConstCounter::new(handle.health().restarts);
                restarts.encode(family.encode_family(&[("device", handle.id.as_str())])?)?;
            }
        }
        {
            let metric = ConstGauge::new(1i64);
            let mut family = encoder.encode_descriptor(
                "build_info",
                "Gatehouse build",
                None,
                metric.metric_type(),
            )?;
            metric.encode(family.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_the_gatehouse_prefix_and_labels() {
        let metrics = Metrics::new();
        metrics.appended("point_value", Class::Telemetry);
        metrics.appended("point_value", Class::Telemetry);
        metrics.rejected("lpr", "malformed");
        let text = metrics.render();
        assert!(
            text.contains(
                r#"gatehouse_events_appended_total{kind="point_value",class="telemetry"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"gatehouse_http_rejected_total{route="lpr",reason="malformed"} 1"#),
            "{text}"
        );
    }
}
