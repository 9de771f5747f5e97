//! Threshold alarm definitions: a band on a device point, as configured
//! under `[[alarms]]` and evaluated by the threshold rules.

/// One `[[alarms]]` entry: alarm when a point leaves a band.
#[derive(Debug, Clone)]
pub struct ThresholdAlarm {
    /// The device id (must be defined in `[[devices]]`).
    pub device: String,
    /// The point name.
    pub point: String,
    /// Alarm above this value.
    pub above: Option<f64>,
    /// Alarm below this value.
    pub below: Option<f64>,
    /// Band the value must come back by before the alarm clears.
    pub hysteresis: f64,
}
