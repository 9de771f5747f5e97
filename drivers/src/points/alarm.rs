//! Point alarms: thresholds with hysteresis for analog points, state alarms
//! for booleans, both with on and off delays. Pure: the caller passes the
//! time (milliseconds on any monotonic scale).

use serde::Serialize;

use crate::points::table::AlarmRule;

/// Which condition an alarm is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmSide {
    /// Above the high limit.
    High,
    /// Below the low limit.
    Low,
    /// A boolean point in its alarm state.
    State,
}

impl AlarmSide {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmSide::High => "high",
            AlarmSide::Low => "low",
            AlarmSide::State => "state",
        }
    }
}

/// A change the alarm went through.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AlarmChange {
    /// Raised on this side; `limit` is the crossed threshold, if any.
    Raised {
        /// Which side.
        side: AlarmSide,
        /// The threshold crossed.
        limit: Option<f64>,
    },
    /// Cleared (the value has been back long enough).
    Cleared {
        /// Which side had been raised.
        side: AlarmSide,
    },
}

/// One point's alarm state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlarmState {
    active: Option<AlarmSide>,
    /// The side the value is pending towards (`None` = towards clear) and
    /// since when.
    pending: Option<(Option<AlarmSide>, i64)>,
}

impl AlarmState {
    /// The raised side, if the alarm is raised.
    pub fn active(&self) -> Option<AlarmSide> {
        self.active
    }

    /// Feeds one reading (`value` as a number; booleans as 0/1) at `now_ms`.
    pub fn update(&mut self, rule: &AlarmRule, value: f64, now_ms: i64) -> Option<AlarmChange> {
        if !value.is_finite() {
            return None;
        }
        let (wanted, on_delay, off_delay, limit) = match rule {
            AlarmRule::Threshold {
                high,
                low,
                hysteresis,
                on_delay,
                off_delay,
            } => {
                let wanted = match self.active {
                    // Raised: stays on its side until back past the hysteresis.
                    Some(AlarmSide::High) if high.is_some_and(|h| value > h - hysteresis) => {
                        Some(AlarmSide::High)
                    }
                    Some(AlarmSide::Low) if low.is_some_and(|l| value < l + hysteresis) => {
                        Some(AlarmSide::Low)
                    }
                    _ if high.is_some_and(|h| value > h) => Some(AlarmSide::High),
                    _ if low.is_some_and(|l| value < l) => Some(AlarmSide::Low),
                    _ => None,
                };
                let limit = match wanted {
                    Some(AlarmSide::High) => *high,
                    Some(AlarmSide::Low) => *low,
                    _ => None,
                };
                (wanted, *on_delay, *off_delay, limit)
            }
            AlarmRule::State {
                active_when,
                on_delay,
                off_delay,
            } => {
                let on = value != 0.0;
                let wanted = (on == *active_when).then_some(AlarmSide::State);
                (wanted, *on_delay, *off_delay, None)
            }
        };
        if wanted == self.active {
            self.pending = None;
            return None;
        }
        let since = match self.pending {
            Some((side, since)) if side == wanted => since,
            _ => {
                self.pending = Some((wanted, now_ms));
                now_ms
            }
        };
        let delay = if wanted.is_some() {
            on_delay
        } else {
            off_delay
        };
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        if now_ms.saturating_sub(since) < delay_ms {
            return None;
        }
        self.pending = None;
        let previous = self.active.take();
        self.active = wanted;
        // A jump straight from one side to the other clears first; the
        // caller sees the raise on the next reading.
        match (previous, wanted) {
            (Some(side), _) => {
                self.active = None;
                Some(AlarmChange::Cleared { side })
            }
            (None, Some(side)) => Some(AlarmChange::Raised { side, limit }),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn threshold(on: u64, off: u64) -> AlarmRule {
        AlarmRule::Threshold {
            high: Some(0.6),
            low: Some(0.2),
            hysteresis: 0.05,
            on_delay: Duration::from_millis(on),
            off_delay: Duration::from_millis(off),
        }
    }

    #[test]
    fn threshold_raises_after_its_on_delay_and_clears_past_hysteresis_after_off_delay() {
        let rule = threshold(1000, 500);
        let mut s = AlarmState::default();
        assert_eq!(s.update(&rule, 0.65, 0), None, "on delay running");
        assert_eq!(s.update(&rule, 0.5, 500), None, "dipped back: reset");
        assert_eq!(s.update(&rule, 0.65, 600), None);
        assert_eq!(
            s.update(&rule, 0.7, 1600),
            Some(AlarmChange::Raised {
                side: AlarmSide::High,
                limit: Some(0.6)
            })
        );
        assert_eq!(s.active(), Some(AlarmSide::High));
        // Inside the hysteresis band: still raised.
        assert_eq!(s.update(&rule, 0.58, 2000), None);
        assert_eq!(s.update(&rule, 0.56, 3000), None);
        assert_eq!(s.update(&rule, 0.50, 3400), None, "off delay starts");
        assert_eq!(s.update(&rule, 0.50, 3800), None, "off delay running");
        assert_eq!(
            s.update(&rule, 0.50, 3900),
            Some(AlarmChange::Cleared {
                side: AlarmSide::High
            })
        );
        assert_eq!(s.update(&rule, f64::NAN, 9000), None);
    }

    #[test]
    fn a_jump_from_high_to_low_clears_then_raises() {
        let rule = threshold(0, 0);
        let mut s = AlarmState::default();
        assert!(matches!(
            s.update(&rule, 0.9, 0),
            Some(AlarmChange::Raised { .. })
        ));
        assert_eq!(
            s.update(&rule, 0.1, 1),
            Some(AlarmChange::Cleared {
                side: AlarmSide::High
            })
        );
        assert_eq!(
            s.update(&rule, 0.1, 2),
            Some(AlarmChange::Raised {
                side: AlarmSide::Low,
                limit: Some(0.2)
            })
        );
    }

    #[test]
    fn state_alarm_follows_the_boolean_with_delays() {
        let rule = AlarmRule::State {
            active_when: true,
            on_delay: Duration::from_millis(200),
            off_delay: Duration::ZERO,
        };
        let mut s = AlarmState::default();
        assert_eq!(s.update(&rule, 1.0, 0), None);
        assert_eq!(
            s.update(&rule, 1.0, 200),
            Some(AlarmChange::Raised {
                side: AlarmSide::State,
                limit: None
            })
        );
        assert_eq!(s.update(&rule, 1.0, 300), None);
        assert_eq!(
            s.update(&rule, 0.0, 400),
            Some(AlarmChange::Cleared {
                side: AlarmSide::State
            })
        );
    }
}
