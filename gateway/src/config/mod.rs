//! Gateway configuration: the validated, typed [`Config`], and loading it from
//! TOML with every problem reported with its location. STUB loader: the real
//! implementation replaces `load`/`parse`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[gateway]`: identity and data directory.
    pub gateway: GatewayConfig,
    /// `[store]`: the event queue's bounds and commit window.
    pub store: StoreSection,
    /// `[panel]`: the panel/API listener.
    pub panel: PanelConfig,
    /// `[supervisor]`: restart backoff and shutdown budget.
    pub supervisor: SupervisorConfig,
    /// `[[devices]]`, in file order; ids are unique.
    pub devices: Vec<DeviceConfig>,
    /// `[[alarms]]`: threshold alarms on device points; each names a device.
    pub alarms: Vec<ThresholdAlarm>,
}

/// `[gateway]`.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The estate's id at the platform.
    pub estate_id: String,
    /// This gateway's id at the platform.
    pub gateway_id: String,
    /// Where the database and images live.
    pub data_dir: PathBuf,
}

/// `[store]`.
#[derive(Debug, Clone)]
pub struct StoreSection {
    /// Queue bound (`max_bytes = "256MiB"`).
    pub max_bytes: u64,
    /// Extra room for access/alarm/audit events above the bound.
    pub critical_reserve_bytes: u64,
    /// Group-commit window (`group_commit_window = "2ms"`).
    pub group_commit_window: Duration,
}

/// `[panel]`.
#[derive(Debug, Clone)]
pub struct PanelConfig {
    /// Listen address of the panel, API and `/metrics`.
    pub listen: SocketAddr,
    /// Bearer token required on `/metrics` when set.
    pub metrics_token: Option<Secret>,
}

/// `[supervisor]`.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// First restart delay after a driver fails.
    pub backoff_initial: Duration,
    /// Longest restart delay.
    pub backoff_max: Duration,
    /// Time allowed for a graceful shutdown.
    pub drain_budget: Duration,
}

/// One `[[devices]]` entry.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Unique id (`[a-z0-9-_]`, 1–64 characters).
    pub id: String,
    /// Display name for the panel (may be Chinese).
    pub name: String,
    /// What the device is and how to reach it.
    pub kind: DeviceKind,
}

/// Device families.
#[derive(Debug, Clone)]
pub enum DeviceKind {
    /// `type = "sim-tank"`: a simulated water tank.
    SimTank {
        /// Tank height in metres.
        height_m: f64,
        /// Report interval.
        interval: Duration,
    },
}

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

/// A secret read from a file or an environment variable. Its `Debug` never
/// shows the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a resolved secret value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in the configuration", .problems.len())]
pub struct ConfigErrors {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

/// One problem, with its location.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The file it is in.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Dotted key path, e.g. `devices[2].interval`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        problems: vec![Problem {
            file: path.display().to_string(),
            line: 0,
            key: String::new(),
            message: e.to_string(),
        }],
    })?;
    parse(&text, &path.display().to_string())
}

/// Validates configuration text; `file` names it in problems.
pub fn parse(_text: &str, file: &str) -> Result<Config, ConfigErrors> {
    Err(ConfigErrors {
        problems: vec![Problem {
            file: file.into(),
            line: 0,
            key: String::new(),
            message: "not implemented".into(),
        }],
    })
}

/// The compiled-in demo configuration (`gatehouse demo`). STUB.
pub const DEMO_TOML: &str = "";
