//! Gateway configuration: the validated, typed [`Config`], and loading it from
//! TOML with every problem reported with its location.
//!
//! Loading validates once, into types, and reports *every* problem (unknown
//! keys, wrong types, invalid values, missing keys, duplicate ids, references
//! to undefined devices) as a [`Problem`] with file, line and dotted key path;
//! [`ConfigErrors::render`] prints them one per line as
//! `FILE:LINE: KEY: MESSAGE`. A TOML syntax error is one located problem.
//!
//! Secrets (`[panel] metrics_token`, `[api] token`, `[uplink] command_key`,
//! `[uplink.mqtt] password`, `[uplink.https] token`) come only from an environment variable
//! (`{ env = "NAME" }`) or a file (`{ file = "/path" }`), looked up through
//! the [`Env`] seam; their values never appear in problems or `Debug` output.
//!
//! Layout: `reader` is the reusable spanned-document reader (`Section` with
//! `take_*` methods), `schema` the sections, keys, defaults and checks (`uplink` the
//! platform-link sections), `env`
//! the environment seam. `config/gateway.example.toml` at the repository root
//! documents every key.

mod env;
mod reader;
mod schema;
#[cfg(test)]
mod tests;
mod uplink;

pub use env::{Env, ProcessEnv};
pub use uplink::{
    ApiConfig, BrokerConfig, DEFAULT_TOPIC_PREFIX, HttpsConfig, MqttConfig, MqttHost, SinkConfig,
    TlsFiles, UplinkConfig,
};

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
    /// `[uplink]`: the platform link (off when absent).
    pub uplink: UplinkConfig,
    /// `[broker]`: the embedded MQTT broker (off when absent).
    pub broker: BrokerConfig,
    /// `[api]`: the platform's pull API.
    pub api: ApiConfig,
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

/// The demo estate's configuration (`config/demo.toml`), used by the demo
/// mode; it is valid (a unit test asserts it).
pub const DEMO_TOML: &str = include_str!("../../../config/demo.toml");

/// Every problem found in a configuration file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in the configuration", .problems.len())]
pub struct ConfigErrors {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl ConfigErrors {
    /// One line per problem, `FILE:LINE: KEY: MESSAGE`, each ending in a
    /// newline; what `gatehouse check-config` prints.
    pub fn render(&self) -> String {
        self.problems.iter().map(|p| format!("{p}\n")).collect()
    }
}

/// One problem, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file it is in.
    pub file: String,
    /// 1-based line; 0 when the problem is about the whole file (e.g. it
    /// cannot be read).
    pub line: usize,
    /// Dotted key path, e.g. `devices[2].interval`; empty for syntax errors
    /// and whole-file problems.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// `FILE:LINE: KEY: MESSAGE`, leaving out the line when it is 0 and the key
/// when it is empty.
impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", self.file)?;
        if self.line > 0 {
            write!(f, "{}:", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

/// Reads and validates a configuration file, with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &ProcessEnv)
}

/// Reads and validates a configuration file, looking up environment
/// variables in `env`.
pub fn load_with(path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        problems: vec![Problem {
            file: file.clone(),
            line: 0,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }],
    })?;
    parse_with(&text, &file, env)
}

/// Validates configuration text, with the process environment; `file` names
/// it in problems.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    parse_with(text, file, &ProcessEnv)
}

/// Validates configuration text, looking up environment variables in `env`;
/// `file` names it in problems.
pub fn parse_with(text: &str, file: &str, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let diag = reader::Diagnostics::new(file, text);
    // The parser reports some errors in a later pass than others, so the
    // first one reported is not always the first in the file: report the
    // earliest. Later syntax errors are often echoes of the first, and the
    // document after a syntax error is a guess, so nothing else is checked.
    let (doc, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    let first_error = syntax_errors
        .iter()
        .min_by_key(|e| e.span().map_or(usize::MAX, |span| span.start));
    if let Some(e) = first_error {
        let span = e.span().unwrap_or(0..0);
        diag.report(&span, "", format!("invalid TOML: {}", e.message()));
        return Err(ConfigErrors {
            problems: diag.into_problems(),
        });
    }
    let config = schema::build(reader::Section::root(&diag, doc), env);
    let problems = diag.into_problems();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors { problems })
    }
}
