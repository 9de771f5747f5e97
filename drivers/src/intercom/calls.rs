//! The call tracker: what a station signals (ringing, answered, idle, no
//! answer) becomes `call_started`, `call_answered`, `call_ended` and
//! `call_missed` with a call id and a duration.
//!
//! Pure: time comes in as an argument. One tracker per station (a door
//! station handles one call at a time); it outlives reconnections, so a
//! station that drops off mid-call and comes back idle ends the call then.

use super::Signal;
use crate::event::{Answerer, DeviceEvent};

#[derive(Debug, Clone)]
struct Active {
    call: String,
    unit: Option<String>,
    started_ms: i64,
    answered: bool,
}

/// Tracks the one call a door station can have.
#[derive(Debug, Default)]
pub struct CallTracker {
    active: Option<Active>,
}

impl CallTracker {
    /// A tracker with no call.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of the call in progress, if any.
    pub fn active(&self) -> Option<&str> {
        self.active.as_ref().map(|a| a.call.as_str())
    }

    /// Applies one signal; returns the events it causes.
    pub fn apply(&mut self, signal: Signal, now_ms: i64) -> Vec<DeviceEvent> {
        match signal {
            Signal::Event(event) => vec![event],
            Signal::Heartbeat => Vec::new(),
            Signal::Ringing { call, unit } => {
                let same = match (&self.active, &call) {
                    (Some(a), Some(c)) => a.call == *c,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if same {
                    return Vec::new();
                }
                // A new call while another is open: the old one is over.
                let mut out = self.finish(now_ms);
                let call = call.unwrap_or_else(|| format!("c{now_ms}"));
                self.active = Some(Active {
                    call: call.clone(),
                    unit: unit.clone(),
                    started_ms: now_ms,
                    answered: false,
                });
                out.push(DeviceEvent::CallStarted {
                    call,
                    unit,
                    snapshot: None,
                });
                out
            }
            Signal::Answered { by } => match &mut self.active {
                Some(a) if !a.answered => {
                    a.answered = true;
                    vec![DeviceEvent::CallAnswered {
                        call: a.call.clone(),
                        by,
                    }]
                }
                _ => Vec::new(),
            },
            Signal::Idle => self.finish(now_ms),
            Signal::Ended => match self.active.take() {
                None => Vec::new(),
                Some(a) => vec![DeviceEvent::CallEnded {
                    call: a.call,
                    duration_ms: u64::try_from(now_ms - a.started_ms).ok(),
                }],
            },
            Signal::NoAnswer { call } => match &self.active {
                Some(a) if call.as_ref().is_none_or(|c| *c == a.call) => {
                    let a = self.active.take().expect("checked");
                    vec![DeviceEvent::CallMissed {
                        call: a.call,
                        unit: a.unit,
                    }]
                }
                Some(_) => Vec::new(),
                None => call.map_or_else(Vec::new, |call| {
                    vec![DeviceEvent::CallMissed { call, unit: None }]
                }),
            },
        }
    }

    fn finish(&mut self, now_ms: i64) -> Vec<DeviceEvent> {
        match self.active.take() {
            None => Vec::new(),
            Some(a) if a.answered => vec![DeviceEvent::CallEnded {
                call: a.call,
                duration_ms: u64::try_from(now_ms - a.started_ms).ok(),
            }],
            Some(a) => vec![DeviceEvent::CallMissed {
                call: a.call,
                unit: a.unit,
            }],
        }
    }
}

/// Shorthand used by codecs: an answered signal from an unknown place.
pub fn answered_unknown() -> Signal {
    Signal::Answered {
        by: Answerer::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(call: Option<&str>) -> Signal {
        Signal::Ringing {
            call: call.map(str::to_owned),
            unit: Some("3-1-502".into()),
        }
    }

    #[test]
    fn answered_call_ends_with_its_duration() {
        let mut t = CallTracker::new();
        let started = t.apply(ring(None), 1_000);
        assert!(
            matches!(&started[..], [DeviceEvent::CallStarted { call, unit: Some(u), .. }] if call == "c1000" && u == "3-1-502")
        );
        assert!(t.apply(ring(None), 1_500).is_empty(), "still ringing");
        let answered = t.apply(
            Signal::Answered {
                by: Answerer::IndoorMonitor,
            },
            3_000,
        );
        assert_eq!(
            answered,
            vec![DeviceEvent::CallAnswered {
                call: "c1000".into(),
                by: Answerer::IndoorMonitor
            }]
        );
        assert_eq!(
            t.apply(Signal::Idle, 21_000),
            vec![DeviceEvent::CallEnded {
                call: "c1000".into(),
                duration_ms: Some(20_000)
            }]
        );
        assert!(t.apply(Signal::Idle, 22_000).is_empty());
        assert_eq!(t.active(), None);
    }

    #[test]
    fn unanswered_calls_are_missed_once() {
        let mut t = CallTracker::new();
        t.apply(ring(Some("77")), 0);
        assert_eq!(
            t.apply(
                Signal::NoAnswer {
                    call: Some("77".into())
                },
                60_000
            ),
            vec![DeviceEvent::CallMissed {
                call: "77".into(),
                unit: Some("3-1-502".into())
            }]
        );
        assert!(t.apply(Signal::Idle, 61_000).is_empty());
        // Idle after ringing without an answer is missed too.
        t.apply(ring(Some("78")), 70_000);
        assert!(
            matches!(&t.apply(Signal::Idle, 90_000)[..], [DeviceEvent::CallMissed { call, .. }] if call == "78")
        );
    }

    #[test]
    fn a_new_call_closes_the_previous_one() {
        let mut t = CallTracker::new();
        t.apply(ring(Some("1")), 0);
        let out = t.apply(ring(Some("2")), 5_000);
        assert!(
            matches!(&out[..], [DeviceEvent::CallMissed { call: a, .. }, DeviceEvent::CallStarted { call: b, .. }] if a == "1" && b == "2")
        );
    }
}
