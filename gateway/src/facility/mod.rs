//! Facility telemetry (设施), gateway side: the registry of `modbus-points`
//! devices and their live views, what the platform and Prometheus see of
//! them (the telemetry snapshot's `points`, `gatehouse_point_*` gauges with
//! bounded cardinality), alarm acknowledgements, and the 24-hour trend
//! ring ([`trend`]).
//!
//! The drivers own the points (one writer per device); everything here
//! reads their [`PointsView`]s. A reload swaps the devices it restarted
//! ([`Facility::replace`]): every clone (panel, metrics, telemetry, the
//! trend recorder) sees the new list at once; the others keep their view,
//! acknowledgements and trend.

pub mod trend;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use drivers::Quality;
use drivers::points::PointsView;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

pub use crate::devices::PointDevice;

/// At most this many points get Prometheus series (each has two): a large
/// estate's table cannot blow up the scrape.
pub const MAX_METRIC_POINTS: usize = 2000;

/// Who acknowledged an active alarm, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ack {
    /// The panel user.
    pub by: String,
    /// Unix ms.
    pub at_ms: i64,
}

/// The point devices of this gateway. Cheap to clone; every clone sees a
/// reload's [`Facility::replace`].
#[derive(Debug, Clone, Default)]
pub struct Facility {
    devices: Arc<RwLock<Arc<Vec<PointDevice>>>>,
    acks: Arc<Mutex<HashMap<(String, String), Ack>>>,
    /// The trend rings by device id, as the recorder opened them; the
    /// recorder writes, the panel reads.
    rings: Arc<Mutex<HashMap<String, Arc<trend::Ring>>>>,
}

impl Facility {
    /// The registry of `devices` (from [`crate::devices::build`]).
    pub fn new(devices: Vec<PointDevice>) -> Self {
        Self {
            devices: Arc::new(RwLock::new(Arc::new(devices))),
            acks: Arc::default(),
            rings: Arc::default(),
        }
    }

    /// Takes a reload's devices: those named in `restarted` (removed or
    /// changed) leave with their acknowledgements, `started` (added or
    /// changed, rebuilt) join, and the list follows the order of `order`
    /// (the configuration's device ids). The others keep everything.
    pub fn replace(&self, restarted: &[String], started: Vec<PointDevice>, order: &[String]) {
        let mut current = self.devices.write().unwrap_or_else(PoisonError::into_inner);
        let mut devices: Vec<PointDevice> = current
            .iter()
            .filter(|d| !restarted.contains(&d.id))
            .cloned()
            .chain(started)
            .collect();
        devices.sort_by_key(|d| order.iter().position(|id| *id == d.id));
        *current = Arc::new(devices);
        drop(current);
        self.lock()
            .retain(|(device, _), _| !restarted.contains(device));
    }

    /// Hands over the trend ring of device `id` (see [`trend::record`]);
    /// `None` takes it away.
    pub(crate) fn set_ring(&self, id: &str, ring: Option<trend::Ring>) {
        let mut rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        match ring {
            Some(ring) => rings.insert(id.to_owned(), Arc::new(ring)),
            None => rings.remove(id),
        };
    }

    /// The trend ring of device `id`, once open.
    pub(crate) fn ring(&self, id: &str) -> Option<Arc<trend::Ring>> {
        self.rings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// The last 24 hours of `point` on `device` up to `now_ms`, as
    /// `(slot, mean)` pairs (see [`trend::Ring::read`]); `None` without a
    /// ring. Reads the disk: call it off the async threads.
    pub fn trend(&self, device: &str, point: usize, now_ms: i64) -> Option<Vec<(i64, f32)>> {
        let ring = self.ring(device)?;
        match ring.read(point, trend::slot_of(now_ms)) {
            Ok(samples) => Some(samples),
            Err(error) => {
                tracing::debug!(%error, device, "trend not read");
                None
            }
        }
    }

    /// The devices as they are now, in configuration order.
    pub fn devices(&self) -> Arc<Vec<PointDevice>> {
        self.devices
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One device by id.
    pub fn device(&self, id: &str) -> Option<PointDevice> {
        self.devices().iter().find(|d| d.id == id).cloned()
    }

    /// Records that `by` acknowledged the active alarm of `point` on
    /// `device`. Returns `false` (and records nothing) when that point has
    /// no active alarm.
    pub fn acknowledge(&self, device: &str, point: &str, by: &str, at_ms: i64) -> bool {
        let active = self.device(device).is_some_and(|d| {
            d.view
                .table()
                .find(point)
                .is_some_and(|i| d.view.read()[i].alarm.is_some())
        });
        if active {
            self.lock().insert(
                (device.to_owned(), point.to_owned()),
                Ack {
                    by: by.to_owned(),
                    at_ms,
                },
            );
        }
        active
    }

    /// The acknowledgement of the alarm active on `point`, if any (an
    /// acknowledgement ends when its alarm clears).
    pub fn ack(&self, device: &str, point: &str) -> Option<Ack> {
        let key = (device.to_owned(), point.to_owned());
        let active = self.device(device).is_some_and(|d| {
            d.view
                .table()
                .find(point)
                .is_some_and(|i| d.view.read()[i].alarm.is_some())
        });
        let mut acks = self.lock();
        if !active {
            acks.remove(&key);
            return None;
        }
        acks.get(&key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Ack>> {
        self.acks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The telemetry snapshot's `points`: per device, each point's value,
    /// quality with its timestamps, and alarm.
    pub fn snapshot(&self) -> serde_json::Value {
        let devices: Vec<serde_json::Value> = self
            .devices()
            .iter()
            .map(|d| {
                let status = d.view.read();
                let points: Vec<serde_json::Value> = d
                    .view
                    .table()
                    .points()
                    .iter()
                    .zip(status.iter())
                    .map(|(p, s)| {
                        serde_json::json!({
                            "point": p.name,
                            "display": p.display,
                            "unit": p.unit,
                            "value": s.value,
                            "quality": s.quality,
                            "quality_since_ms": s.quality_since_ms,
                            "read_at_ms": s.read_at_ms,
                            "alarm": s.alarm,
                        })
                    })
                    .collect();
                serde_json::json!({"device": d.id, "name": d.name, "points": points})
            })
            .collect();
        serde_json::Value::Array(devices)
    }
}

/// The Prometheus collector: `gatehouse_point_value{device,point}` (numbers
/// and booleans as 0/1; text points have none) and
/// `gatehouse_point_quality{device,point}` (2 good, 1 stale, 0 comm failed),
/// for at most [`MAX_METRIC_POINTS`] points.
/// Reports nothing until the facility is set (while the gateway starts).
#[derive(Debug)]
pub struct PointMetrics(pub Arc<OnceLock<Facility>>);

impl Collector for PointMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(facility) = self.0.get() else {
            return Ok(());
        };
        let value = ConstGauge::new(0.0f64);
        let mut values = encoder.encode_descriptor(
            "point_value",
            "Last good value of each Modbus point, in its unit (booleans 0/1)",
            None,
            value.metric_type(),
        )?;
        let mut n = 0;
        for d in facility.devices().iter() {
            let status = d.view.read();
            for (p, s) in d.view.table().points().iter().zip(status.iter()) {
                if n == MAX_METRIC_POINTS {
                    break;
                }
                n += 1;
                if let Some(v) = s.value.as_ref().and_then(drivers::Reading::as_f64) {
                    let labels = [("device", d.id.as_str()), ("point", p.name.as_str())];
                    ConstGauge::new(v).encode(values.encode_family(&labels)?)?;
                }
            }
        }
        let quality = ConstGauge::new(0i64);
        let mut qualities = encoder.encode_descriptor(
            "point_quality",
            "Quality of each Modbus point: 2 good, 1 stale, 0 comm failed",
            None,
            quality.metric_type(),
        )?;
        let mut n = 0;
        for d in facility.devices().iter() {
            let status = d.view.read();
            for (p, s) in d.view.table().points().iter().zip(status.iter()) {
                if n == MAX_METRIC_POINTS {
                    break;
                }
                n += 1;
                let q = match s.quality {
                    Quality::Good => 2,
                    Quality::Stale => 1,
                    Quality::CommFailed => 0,
                };
                let labels = [("device", d.id.as_str()), ("point", p.name.as_str())];
                ConstGauge::new(q).encode(qualities.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A view for tests and benches: a device `id` with `view`.
pub fn device(id: &str, name: &str, view: PointsView) -> PointDevice {
    PointDevice {
        id: id.to_owned(),
        name: name.to_owned(),
        view,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::points::{DataType, Point, PointTable, PollGroup, RegisterKind};
    use prometheus_client::registry::Registry;
    use std::time::Duration;

    fn facility(points: usize) -> Facility {
        let table = PointTable::new(
            (0..points)
                .map(|i| {
                    Point::new(
                        &format!("p{i}"),
                        RegisterKind::Holding,
                        u16::try_from(i).expect("small"),
                        DataType::U16,
                    )
                })
                .collect(),
            vec![PollGroup {
                name: "g".into(),
                interval: Duration::from_secs(1),
            }],
        )
        .expect("valid");
        let view = PointsView::new(Arc::new(table));
        Facility::new(vec![device("pumps", "泵房", view)])
    }

    #[test]
    fn point_gauges_are_bounded_and_labelled() {
        let facility = facility(MAX_METRIC_POINTS + 10);
        let mut registry = Registry::with_prefix("gatehouse");
        let cell = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(PointMetrics(cell.clone())));
        let _ = cell.set(facility.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        let series = text
            .lines()
            .filter(|l| l.starts_with("gatehouse_point_quality{"))
            .count();
        assert_eq!(series, MAX_METRIC_POINTS);
        assert!(
            text.contains(r#"gatehouse_point_quality{device="pumps",point="p0"} 1"#),
            "{text}"
        );
        let snapshot = facility.snapshot();
        assert_eq!(snapshot[0]["device"], "pumps");
        assert_eq!(snapshot[0]["points"][0]["quality"], "stale");
    }

    #[test]
    fn a_reload_swaps_the_restarted_devices_and_keeps_the_others() {
        let facility = facility(2);
        let clone = facility.clone();
        let pumps = facility.device("pumps").expect("pumps");
        let lift = device("lift", "电梯", pumps.view.clone());
        facility.replace(&[], vec![lift], &["lift".into(), "pumps".into()]);
        let ids: Vec<String> = clone.devices().iter().map(|d| d.id.clone()).collect();
        assert_eq!(ids, ["lift", "pumps"], "every clone sees it, in order");
        facility.replace(&["lift".into()], Vec::new(), &["pumps".into()]);
        assert!(clone.device("lift").is_none());
        assert!(clone.device("pumps").is_some());
    }

    #[test]
    fn an_alarm_can_be_acknowledged_only_while_active() {
        let facility = facility(2);
        assert!(!facility.acknowledge("pumps", "p0", "admin", 1), "no alarm");
        assert!(!facility.acknowledge("nope", "p0", "admin", 1));
        assert_eq!(facility.ack("pumps", "p0"), None);
    }
}
