//! [`RejectGate`]: rejected reads (noise, bad parity, bad checksums) of one
//! reader, aggregated. Pure: the time is an argument.
//!
//! A rejected read on a quiet reader is reported at once (a resident with a
//! damaged card shows up on the panel). The ones that follow within the
//! interval are counted and reported together when it ends, as one
//! `read_rejected` event with the count and a sample reason, so line noise
//! (dozens a second at 9600 baud) cannot push real history out of the
//! journal. An interval with at least `noisy_after` of them raises a
//! `noisy_line` device alarm, cleared after an interval without any.

use std::time::Duration;

use tokio::time::Instant;

use crate::event::DeviceEvent;

/// Default aggregation interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default number of rejected reads in one interval that makes a line noisy.
pub const DEFAULT_NOISY_AFTER: u32 = 20;

/// The aggregator of one reader's rejected reads.
#[derive(Debug, Clone)]
pub struct RejectGate {
    interval: Duration,
    noisy_after: u32,
    window_end: Option<Instant>,
    count: u32,
    sample: Option<String>,
    noisy: bool,
}

impl Default for RejectGate {
    fn default() -> Self {
        Self::new(DEFAULT_INTERVAL, DEFAULT_NOISY_AFTER)
    }
}

impl RejectGate {
    /// A gate counting over `interval`; `noisy_after` rejected reads in one
    /// interval raise the alarm.
    pub fn new(interval: Duration, noisy_after: u32) -> Self {
        Self {
            interval,
            noisy_after: noisy_after.max(1),
            window_end: None,
            count: 0,
            sample: None,
            noisy: false,
        }
    }

    /// A read rejected for `reason` at `now`: what to report now.
    pub fn rejected(&mut self, reason: String, now: Instant) -> Option<DeviceEvent> {
        if self.window_end.is_none() {
            self.window_end = Some(now + self.interval);
            return Some(DeviceEvent::ReadRejected { reason, count: 1 });
        }
        self.count = self.count.saturating_add(1);
        self.sample.get_or_insert(reason);
        None
    }

    /// When [`Self::tick`] is due, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.window_end
    }

    /// The interval ended at `now`: the aggregated report, and the alarm
    /// raised or cleared.
    pub fn tick(&mut self, now: Instant) -> Vec<DeviceEvent> {
        let mut out = Vec::new();
        let count = std::mem::take(&mut self.count);
        let sample = self.sample.take();
        if count == 0 {
            self.window_end = None;
            if std::mem::take(&mut self.noisy) {
                out.push(alarm(false, "no rejected reads for an interval".into()));
            }
            return out;
        }
        self.window_end = Some(now + self.interval);
        out.push(DeviceEvent::ReadRejected {
            reason: sample.unwrap_or_default(),
            count,
        });
        if count >= self.noisy_after && !self.noisy {
            self.noisy = true;
            out.push(alarm(
                true,
                format!(
                    "{count} rejected reads in {:?}: noise on the reader's line",
                    self.interval
                ),
            ));
        }
        out
    }
}

fn alarm(active: bool, message: String) -> DeviceEvent {
    DeviceEvent::DeviceAlarm {
        code: "noisy_line".into(),
        message,
        active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(count: u32) -> DeviceEvent {
        DeviceEvent::ReadRejected {
            reason: "bad".into(),
            count,
        }
    }

    #[test]
    fn reject_gate_reports_the_first_at_once_then_one_count_per_interval() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut gate = RejectGate::new(Duration::from_secs(10), 20);
        assert_eq!(gate.rejected("bad".into(), t0), Some(rejected(1)));
        for i in 0..30 {
            assert_eq!(gate.rejected("bad".into(), t0 + second / 100 * i), None);
        }
        assert_eq!(gate.deadline(), Some(t0 + 10 * second));
        let report = gate.tick(t0 + 10 * second);
        assert_eq!(report[0], rejected(30));
        assert!(matches!(
            &report[1],
            DeviceEvent::DeviceAlarm { code, active: true, .. } if code == "noisy_line"
        ));
        // Still noisy: counted, no second alarm.
        gate.rejected("bad".into(), t0 + 11 * second);
        assert_eq!(gate.tick(t0 + 20 * second), vec![rejected(1)]);
        // A quiet interval clears the alarm; the next one is reported at once.
        let cleared = gate.tick(t0 + 30 * second);
        assert!(matches!(
            cleared.as_slice(),
            [DeviceEvent::DeviceAlarm { active: false, .. }]
        ));
        assert_eq!(gate.deadline(), None);
        assert_eq!(
            gate.rejected("bad".into(), t0 + 40 * second),
            Some(rejected(1))
        );
    }

    #[test]
    fn reject_gate_a_few_bad_swipes_raise_no_alarm() {
        let t0 = Instant::now();
        let mut gate = RejectGate::new(Duration::from_secs(10), 20);
        assert!(gate.rejected("parity".into(), t0).is_some());
        gate.rejected("parity".into(), t0);
        assert_eq!(
            gate.tick(t0 + Duration::from_secs(10)),
            vec![DeviceEvent::ReadRejected {
                reason: "parity".into(),
                count: 1
            }]
        );
        assert!(gate.tick(t0 + Duration::from_secs(20)).is_empty());
    }
}
