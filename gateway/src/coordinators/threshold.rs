//! Threshold alarms on device points: remembers which alarms are raised and
//! records `threshold_alarm` events when a reading raises or clears one.

use drivers::DeviceEvent;

use crate::events::{GatewayEvent, ThresholdAlarm as Alarm};
use crate::pipeline::{Coordinator, Decided, Record};
use crate::rules::threshold::{Transition, evaluate};
use crate::vocab::threshold::ThresholdAlarm;

/// The configured threshold alarms and their current state.
#[derive(Debug)]
pub struct ThresholdAlarms {
    rules: Vec<(ThresholdAlarm, bool)>,
}

impl ThresholdAlarms {
    /// All alarms start cleared.
    pub fn new(rules: Vec<ThresholdAlarm>) -> Self {
        Self {
            rules: rules.into_iter().map(|r| (r, false)).collect(),
        }
    }
}

impl Coordinator for ThresholdAlarms {
    fn name(&self) -> &'static str {
        "threshold_alarms"
    }

    fn on_event(&mut self, device_id: &str, event: &DeviceEvent, _now_ms: i64) -> Option<Decided> {
        let DeviceEvent::PointValue { point, value, unit } = event else {
            return None;
        };
        let mut decided = Decided::default();
        for (rule, active) in &mut self.rules {
            if rule.device != device_id || &rule.point != point {
                continue;
            }
            let (limit, threshold) = match evaluate(rule, *active, *value)? {
                Transition::Raised { limit, threshold } => (Some(limit), Some(threshold)),
                Transition::Cleared => (None, None),
            };
            *active = limit.is_some();
            decided.records.push(Record {
                device_id: device_id.to_owned(),
                event: GatewayEvent::ThresholdAlarm(Alarm {
                    point: point.clone(),
                    value: *value,
                    unit: unit.clone(),
                    active: *active,
                    limit,
                    threshold,
                }),
            });
        }
        (!decided.records.is_empty()).then_some(decided)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_coordinator_records_raise_and_clear_once_each() {
        let mut alarms = ThresholdAlarms::new(vec![ThresholdAlarm {
            device: "tank-1".into(),
            point: "level".into(),
            above: None,
            below: Some(1.0),
            hysteresis: 0.1,
        }]);
        let reading = |v: f64| DeviceEvent::PointValue {
            point: "level".into(),
            value: v,
            unit: "m".into(),
        };
        assert!(alarms.on_event("tank-1", &reading(0.9), 0).is_some());
        assert!(
            alarms.on_event("tank-1", &reading(0.8), 0).is_none(),
            "already raised"
        );
        assert!(
            alarms.on_event("tank-2", &reading(0.5), 0).is_none(),
            "other device"
        );
        let cleared = alarms
            .on_event("tank-1", &reading(1.2), 0)
            .expect("cleared");
        assert_eq!(cleared.records[0].event.body()["active"], false);
    }
}
