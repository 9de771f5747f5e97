//! Threshold alarms on device points (tank level, pump pressure …), with
//! hysteresis so a value hovering at the limit does not flap.

use crate::vocab::threshold::ThresholdAlarm;

/// A change of an alarm's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The value left the band.
    Raised {
        /// Which limit was crossed (`above` or `below`).
        limit: Limit,
        /// The limit's value.
        threshold: f64,
    },
    /// The value came back inside the band (by the hysteresis margin).
    Cleared,
}

/// Which side of the band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The value rose above `above`.
    Above,
    /// The value fell below `below`.
    Below,
}

/// Evaluates one reading against one alarm whose current state is `active`.
/// Returns the transition, if the reading causes one.
pub fn evaluate(rule: &ThresholdAlarm, active: bool, value: f64) -> Option<Transition> {
    if !value.is_finite() {
        return None;
    }
    if active {
        let back_below = rule.above.is_none_or(|a| value <= a - rule.hysteresis);
        let back_above = rule.below.is_none_or(|b| value >= b + rule.hysteresis);
        (back_below && back_above).then_some(Transition::Cleared)
    } else if let Some(above) = rule.above.filter(|a| value > *a) {
        Some(Transition::Raised {
            limit: Limit::Above,
            threshold: above,
        })
    } else {
        rule.below
            .filter(|b| value < *b)
            .map(|below| Transition::Raised {
                limit: Limit::Below,
                threshold: below,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(above: Option<f64>, below: Option<f64>, hysteresis: f64) -> ThresholdAlarm {
        ThresholdAlarm {
            device: "tank-1".into(),
            point: "level".into(),
            above,
            below,
            hysteresis,
        }
    }

    #[test]
    fn threshold_raises_below_and_clears_only_past_the_hysteresis() {
        let r = rule(None, Some(1.5), 0.2);
        assert_eq!(evaluate(&r, false, 1.6), None);
        assert_eq!(
            evaluate(&r, false, 1.4),
            Some(Transition::Raised {
                limit: Limit::Below,
                threshold: 1.5
            })
        );
        // Still inside the hysteresis band: stays raised.
        assert_eq!(evaluate(&r, true, 1.6), None);
        assert_eq!(evaluate(&r, true, 1.7), Some(Transition::Cleared));
    }

    #[test]
    fn threshold_raises_above_and_ignores_non_finite_values() {
        let r = rule(Some(0.6), Some(0.1), 0.0);
        assert!(matches!(
            evaluate(&r, false, 0.61),
            Some(Transition::Raised {
                limit: Limit::Above,
                ..
            })
        ));
        assert_eq!(evaluate(&r, false, f64::NAN), None);
        assert_eq!(evaluate(&r, true, f64::INFINITY), None);
        assert_eq!(evaluate(&r, true, 0.3), Some(Transition::Cleared));
        // An active alarm does not clear while the value is outside the other side.
        assert_eq!(evaluate(&r, true, 0.05), None);
    }
}
