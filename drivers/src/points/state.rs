//! The live state of one device's points: value, quality with its
//! timestamps, alarm state, and what was last reported — and the rule that
//! decides what a report by exception carries. The rule is pure; the
//! [`PointsView`] is the shared, read-only window the gateway's panel,
//! metrics and telemetry API look through.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use serde::Serialize;

use crate::event::{PointSample, Quality, Reading};
use crate::points::alarm::{AlarmSide, AlarmState};
use crate::points::table::PointTable;

/// One point as the gateway last saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointStatus {
    /// The last good value (kept through comm failures, marked by quality).
    pub value: Option<Reading>,
    /// How far to trust `value`.
    pub quality: Quality,
    /// When `quality` last changed (Unix ms).
    pub quality_since_ms: i64,
    /// When the value was last read (Unix ms).
    pub read_at_ms: Option<i64>,
    /// The raised alarm, if any.
    pub alarm: Option<AlarmSide>,
}

impl PointStatus {
    fn new(now_ms: i64) -> Self {
        Self {
            value: None,
            quality: Quality::Stale,
            quality_since_ms: now_ms,
            read_at_ms: None,
            alarm: None,
        }
    }
}

/// Whether a new reading must be reported by exception, given what was
/// last reported: a quality change, a boolean or text change, or a number
/// that moved by at least `deadband` (any move when the deadband is 0).
pub fn is_exception(
    deadband: f64,
    last: Option<&(Option<Reading>, Quality)>,
    value: Option<&Reading>,
    quality: Quality,
) -> bool {
    let Some((last_value, last_quality)) = last else {
        return true;
    };
    if *last_quality != quality {
        return true;
    }
    match (last_value, value) {
        (Some(Reading::Number(a)), Some(Reading::Number(b))) => {
            if deadband > 0.0 {
                // A move of exactly the deadband counts, despite rounding.
                (a - b).abs() >= deadband * (1.0 - 1e-9)
            } else {
                a != b
            }
        }
        (a, b) => a.as_ref() != b,
    }
}

/// A device's points, shared between its driver (the one writer) and
/// readers. Clones share the state.
#[derive(Clone, Debug)]
pub struct PointsView {
    table: Arc<PointTable>,
    status: Arc<RwLock<Vec<PointStatus>>>,
}

impl PointsView {
    /// A view of `table`, every point stale with no value yet.
    pub fn new(table: Arc<PointTable>) -> Self {
        let now = crate::contract::now_ms();
        let status = vec![PointStatus::new(now); table.points().len()];
        Self {
            table,
            status: Arc::new(RwLock::new(status)),
        }
    }

    /// The point table.
    pub fn table(&self) -> &Arc<PointTable> {
        &self.table
    }

    /// The points' status, in table order (hold it briefly).
    pub fn read(&self) -> RwLockReadGuard<'_, Vec<PointStatus>> {
        self.status.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of every point's status.
    pub fn snapshot(&self) -> Vec<PointStatus> {
        self.read().clone()
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Vec<PointStatus>) -> R) -> R {
        let mut guard = self.status.write().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// The sample for point `i` as it stands.
    pub(crate) fn sample(&self, i: usize, status: &PointStatus) -> PointSample {
        PointSample {
            point: self.table.points()[i].name.clone(),
            value: status.value.clone(),
            quality: status.quality,
        }
    }
}

/// The driver's private per-point memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Memory {
    /// What was last reported.
    pub reported: Option<(Option<Reading>, Quality)>,
    /// The alarm's state machine.
    pub alarm: AlarmState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_follow_deadband_quality_and_state_changes() {
        let n = |v: f64| Some(Reading::Number(v));
        let last = (n(1.0), Quality::Good);
        assert!(is_exception(0.1, None, n(1.0).as_ref(), Quality::Good));
        assert!(!is_exception(
            0.1,
            Some(&last),
            n(1.05).as_ref(),
            Quality::Good
        ));
        assert!(is_exception(
            0.1,
            Some(&last),
            n(1.1).as_ref(),
            Quality::Good
        ));
        assert!(is_exception(
            0.1,
            Some(&last),
            n(0.9).as_ref(),
            Quality::Good
        ));
        assert!(is_exception(
            0.1,
            Some(&last),
            n(1.0).as_ref(),
            Quality::CommFailed
        ));
        assert!(!is_exception(
            0.0,
            Some(&last),
            n(1.0).as_ref(),
            Quality::Good
        ));
        assert!(is_exception(
            0.0,
            Some(&last),
            n(1.0001).as_ref(),
            Quality::Good
        ));
        let on = (Some(Reading::Bool(true)), Quality::Good);
        assert!(is_exception(
            5.0,
            Some(&on),
            Some(&Reading::Bool(false)),
            Quality::Good
        ));
        assert!(!is_exception(
            5.0,
            Some(&on),
            Some(&Reading::Bool(true)),
            Quality::Good
        ));
    }
}
