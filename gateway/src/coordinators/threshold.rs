//! Threshold alarms on device points: remembers which alarms are raised and
//! records `threshold_alarm` events when a reading raises or clears one.
//!
//! A reload hands over the new `[[alarms]]` ([`Coordinator::reconfigure`]):
//! a rule for the same device and point keeps its raised state and is
//! judged by its new limits at the next reading (cleared then if the value
//! is inside the new band); a raised alarm whose rule is gone is cleared at
//! the point's next reading, so none stays raised for ever.

use drivers::DeviceEvent;

use crate::config::Config;
use crate::config::diff::ConfigDiff;
use crate::events::{GatewayEvent, ThresholdAlarm as Alarm};
use crate::pipeline::{Coordinator, Decided, Record};
use crate::rules::threshold::{Transition, evaluate};
use crate::vocab::threshold::ThresholdAlarm;

/// The configured threshold alarms and their current state.
#[derive(Debug)]
pub struct ThresholdAlarms {
    rules: Vec<(ThresholdAlarm, bool)>,
    /// Raised alarms whose rule a reload removed: `(device, point)`,
    /// cleared at the point's next reading.
    orphans: Vec<(String, String)>,
}

impl ThresholdAlarms {
    /// All alarms start cleared.
    pub fn new(rules: Vec<ThresholdAlarm>) -> Self {
        Self {
            rules: rules.into_iter().map(|r| (r, false)).collect(),
            orphans: Vec::new(),
        }
    }

    /// Takes `rules` in place of the current ones: each keeps the raised
    /// state of the current rule for its device and point (in order, one
    /// for one); raised alarms left without a rule become orphans.
    fn replace(&mut self, rules: &[ThresholdAlarm]) {
        let mut old = std::mem::take(&mut self.rules);
        self.rules = rules
            .iter()
            .map(|rule| {
                let before = old
                    .iter()
                    .position(|(o, _)| o.device == rule.device && o.point == rule.point);
                let active = before.is_some_and(|i| old.remove(i).1);
                (rule.clone(), active)
            })
            .collect();
        self.orphans.extend(
            old.into_iter()
                .filter(|(_, active)| *active)
                .map(|(rule, _)| (rule.device, rule.point)),
        );
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
        let cleared = |device_id: &str| Record {
            device_id: device_id.to_owned(),
            event: GatewayEvent::ThresholdAlarm(Alarm {
                point: point.clone(),
                value: *value,
                unit: unit.clone(),
                active: false,
                limit: None,
                threshold: None,
            }),
        };
        if let Some(i) = self
            .orphans
            .iter()
            .position(|(d, p)| d == device_id && p == point)
        {
            self.orphans.remove(i);
            // Cleared unless a rule of the point raises or keeps it.
            if !self
                .rules
                .iter()
                .any(|(r, active)| *active && r.device == device_id && &r.point == point)
            {
                decided.records.push(cleared(device_id));
            }
        }
        for (rule, active) in &mut self.rules {
            if rule.device != device_id || &rule.point != point {
                continue;
            }
            let Some(transition) = evaluate(rule, *active, *value) else {
                continue;
            };
            let (limit, threshold) = match transition {
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

    /// The reloaded `[[alarms]]`, when they changed.
    fn reconfigure(&mut self, config: &Config, diff: &ConfigDiff) {
        if diff.alarms {
            self.replace(&config.alarms);
        }
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

    fn level(below: f64) -> ThresholdAlarm {
        ThresholdAlarm {
            device: "tank-1".into(),
            point: "level".into(),
            above: None,
            below: Some(below),
            hysteresis: 0.1,
        }
    }

    fn reading(v: f64) -> DeviceEvent {
        DeviceEvent::PointValue {
            point: "level".into(),
            value: v,
            unit: "m".into(),
        }
    }

    fn states(decided: Option<Decided>) -> Vec<bool> {
        decided.map_or_else(Vec::new, |d| {
            d.records
                .iter()
                .map(|r| r.event.body()["active"] == true)
                .collect()
        })
    }

    #[test]
    fn a_new_threshold_raises_at_once_and_a_raised_alarm_keeps_its_state() {
        let mut alarms = ThresholdAlarms::new(vec![level(1.0)]);
        assert!(states(alarms.on_event("tank-1", &reading(2.0), 0)).is_empty());
        // The band moves above the level: the next reading raises.
        alarms.replace(&[level(3.0)]);
        assert_eq!(states(alarms.on_event("tank-1", &reading(2.0), 0)), [true]);
        // Raised, and the new band still has it outside: not raised twice.
        alarms.replace(&[level(2.5)]);
        assert!(states(alarms.on_event("tank-1", &reading(2.0), 0)).is_empty());
        // The band moves below it: cleared by the new limits.
        alarms.replace(&[level(1.5)]);
        assert_eq!(states(alarms.on_event("tank-1", &reading(2.0), 0)), [false]);
    }

    #[test]
    fn a_raised_alarm_whose_rule_is_removed_clears_at_the_next_reading() {
        let mut alarms = ThresholdAlarms::new(vec![level(3.0)]);
        assert_eq!(states(alarms.on_event("tank-1", &reading(2.0), 0)), [true]);
        alarms.replace(&[]);
        assert!(alarms.on_event("tank-2", &reading(2.0), 0).is_none());
        assert_eq!(states(alarms.on_event("tank-1", &reading(2.0), 0)), [false]);
        assert!(
            alarms.on_event("tank-1", &reading(2.0), 0).is_none(),
            "once"
        );
    }
}
