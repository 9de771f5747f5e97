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
//! `take_*` methods), `schema` the whole document and the gateway's own
//! sections, with their keys, defaults and checks; beside it one file per
//! part: `devices` (`[[devices]]` and their types), `lanes` (`[[lanes]]`,
//! `[ingress]`), `doors`, `intercom` (the door stations), `points`,
//! `uplink` (the platform-link sections), `backup` and `privacy`; `diff` what a reload
//! changes; `env` the environment seam. `config/gateway.example.toml` at
//! the repository root documents every key.

mod backup;
mod devices;
pub mod diff;
mod doors;
mod env;
mod intercom;
mod lanes;
mod points;
mod privacy;
mod reader;
mod schema;
pub use schema::DEFAULT_DATA_DIR;

/// The configurable device `type` names (for labels that must cover them).
#[cfg(test)]
pub(crate) fn device_type_names() -> impl Iterator<Item = &'static str> {
    devices::DEVICE_TYPES
        .iter()
        .map(|d| d.name)
        .chain(intercom::STATION_TYPES.iter().map(|(name, _)| *name))
}
#[cfg(test)]
mod tests;
mod uplink;

pub use backup::BackupConfig;
pub use devices::{DEFAULT_SNAPSHOT_MAX_BYTES, DEFAULT_SNAPSHOT_TIMEOUT};
pub use env::{Env, ProcessEnv};
pub use intercom::{Station, is_station};
pub use privacy::{PlateDisclosure, PrivacyConfig, UplinkDisclosure};
pub use uplink::{
    ApiConfig, BrokerConfig, ClientTls, DEFAULT_TOPIC_PREFIX, HttpsConfig, MqttConfig, MqttHost,
    SinkConfig, UplinkConfig,
};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drivers::door::door_driver::DoorHardwareConfig;
use drivers::door::gpio::LineConfig;
use drivers::door::serial_driver::SerialReaderConfig;
use drivers::door::wg_driver::WgConfig;
use drivers::door::wiegand::WiegandConfig;

use crate::vocab::lane::{Direction, ExitPolicy};
use crate::vocab::schedule::Schedule;
pub use crate::vocab::threshold::ThresholdAlarm;
use crate::vocab::time::EstateZone;

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
    /// `[ingress]`: the device-side HTTP listener (plate-camera pushes).
    pub ingress: IngressConfig,
    /// `[[lanes]]`: vehicle lanes; each names its barrier device (or the camera relay).
    pub lanes: Vec<LaneConfig>,
    /// `[[door_groups]]`: door groups and their schedules.
    pub door_groups: Vec<DoorGroupConfig>,
    /// `[[doors]]`: unit doors, their readers and relays.
    pub doors: Vec<DoorEntry>,
    /// `[uplink]`: the platform link (off when absent).
    pub uplink: UplinkConfig,
    /// `[broker]`: the embedded MQTT broker (off when absent).
    pub broker: BrokerConfig,
    /// `[api]`: the platform's pull API.
    pub api: ApiConfig,
    /// `[backup]`: scheduled local backups, when configured.
    pub backup: Option<BackupConfig>,
    /// `[privacy]`: how long personal information is kept.
    pub privacy: PrivacyConfig,
}

/// `[ingress]`.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// Listen address for device pushes (default `0.0.0.0:8081`).
    pub listen: SocketAddr,
    /// Largest accepted push body (images included).
    pub max_body_bytes: u64,
    /// Disk budget for saved snapshots; the oldest are deleted first.
    pub images_max_bytes: u64,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a camera has to send a request's head.
    pub header_timeout: Duration,
    /// How long a camera has to send a push's body.
    pub body_timeout: Duration,
    /// Source networks allowed to push; empty allows every source.
    pub allow_from: Vec<ipnet::IpNet>,
}

/// One `[[lanes]]` entry.
#[derive(Debug, Clone)]
pub struct LaneConfig {
    /// Unique lane id.
    pub id: String,
    /// Display name (e.g. 南门入口).
    pub name: String,
    /// Entry or exit.
    pub direction: Direction,
    /// The `modbus-barrier` device that raises this lane's arm, or `None`
    /// when the camera's own relay does (the camera's HTTP reply opens it).
    pub barrier: Option<String>,
    /// Reads below this confidence go to the guard.
    pub min_confidence: u8,
    /// Who may leave without the guard (exit lanes).
    pub exit_policy: ExitPolicy,
    /// Reads of the same plate within this window count once.
    pub repeat_window: Duration,
}

/// Plate-camera vendors (payload formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraVendor {
    /// Vzenith/臻识 `AlarmInfoPlate` JSON (and OEM brands).
    Vzenith,
    /// Hikvision ISAPI ANPR XML.
    Hikvision,
    /// Huaxia mode-5 form posts.
    Huaxia,
}

impl CameraVendor {
    /// Whether the vendor's HTTP reply can open the barrier through the
    /// camera's own relay.
    pub fn replies_open(self) -> bool {
        matches!(self, CameraVendor::Vzenith | CameraVendor::Huaxia)
    }
}

/// How a barrier's IO module is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModbusTransport {
    /// Modbus TCP.
    Tcp(SocketAddr),
    /// Modbus RTU on an RS-485 serial port (shared by lanes on the same path).
    Rtu {
        /// Serial device path.
        path: String,
        /// Baud rate.
        baud: u32,
    },
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
    /// `time_zone`: the estate's IANA zone (default `Asia/Shanghai`), used
    /// wherever people see local time or rules read it.
    pub time_zone: EstateZone,
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
    /// Days the local journal keeps alarm events (access and audit events
    /// go by `[privacy]`).
    pub journal_days: u32,
    /// Most rows the local journal keeps.
    pub journal_max_rows: u64,
}

/// `[panel]`.
#[derive(Debug, Clone)]
pub struct PanelConfig {
    /// Listen address of the panel, API and `/metrics`.
    pub listen: SocketAddr,
    /// Bearer token required on `/metrics` when set.
    pub metrics_token: Option<Secret>,
    /// Serve the panel over TLS with these files (both or neither).
    pub tls: Option<TlsFiles>,
    /// A session unused this long expires.
    pub session_idle: Duration,
    /// A session expires this long after login, used or not.
    pub session_absolute: Duration,
    /// Failed logins for one user name from which each failure delays the
    /// next attempt (progressively).
    pub lockout_failures: u32,
    /// Failed logins from one remote address from which delays start.
    pub lockout_failures_per_address: u32,
    /// The longest login delay (and how long failures are remembered).
    pub lockout_duration: Duration,
    /// Host names the panel answers to besides IP addresses and
    /// `localhost` (a request for any other `Host` is refused: DNS
    /// rebinding).
    pub hosts: Vec<String>,
}

/// The panel's TLS certificate chain and private key (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM (keep it 0600).
    pub key: PathBuf,
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
    /// `type = "lpr-camera"`: a plate camera that pushes to `POST /lpr/{id}`.
    LprCamera {
        /// Payload format.
        vendor: CameraVendor,
        /// The lane it watches.
        lane: String,
        /// Considered offline after this long without a push or heartbeat.
        offline_after: Duration,
    },
    /// `type = "modbus-barrier"`: a barrier driven through a Modbus IO module.
    ModbusBarrier {
        /// Where the module is.
        transport: ModbusTransport,
        /// Modbus slave (unit) id.
        slave: u8,
        /// Register map (from a preset, with overrides).
        map: drivers::barrier::RegisterMap,
        /// Lane timing.
        lane: drivers::barrier::LaneConfig,
        /// Input polling interval.
        poll_interval: Duration,
        /// Timeout of every Modbus request.
        timeout: Duration,
    },
    /// `type = "modbus-points"`: a Modbus device read through a point
    /// table (pumps, tanks, elevators, meters).
    ModbusPoints {
        /// Where the device is (shared with barriers on the same line).
        transport: ModbusTransport,
        /// Modbus slave (unit) id.
        slave: u8,
        /// The checked point table and poll groups.
        table: std::sync::Arc<drivers::points::PointTable>,
        /// Timeout of every Modbus request.
        timeout: Duration,
        /// Largest run of unused registers read to save a request.
        max_gap: u16,
        /// Interval of the periodic full report.
        full_report: Duration,
        /// Longest back-off while the device does not answer.
        backoff_max: Duration,
    },
    /// `type = "sim-tank"`: a simulated water tank.
    SimTank {
        /// Tank height in metres.
        height_m: f64,
        /// Report interval.
        interval: Duration,
    },
    /// `type = "wiegand-reader"`: a Wiegand card reader on two GPIO lines.
    WiegandReader {
        /// The GPIO chip, or simulated lines.
        gpio: Gpio,
        /// Data line 0.
        d0: LineConfig,
        /// Data line 1.
        d1: LineConfig,
        /// Frame gap and card-number mappings.
        wiegand: WiegandConfig,
        /// Door number reported with reads, if any.
        door: Option<u8>,
    },
    /// `type = "serial-reader"`: an RS-485 / serial card reader.
    SerialReader(SerialReaderConfig),
    /// `type = "wg-controller"`: a WG/UHPPOTE access controller over UDP.
    WgController(WgConfig),
    /// `type = "onvif-camera"`: a surveillance camera spoken to over ONVIF.
    OnvifCamera(OnvifCameraConfig),
    /// `[[intercom]]`: a door station of a video intercom.
    Intercom(Station),
    /// `type = "door"`: a door's strike relay, contact and exit button on GPIO.
    Door {
        /// The GPIO chip, or simulated lines.
        gpio: Gpio,
        /// The strike relay output.
        relay: LineConfig,
        /// The door contact input.
        contact: LineConfig,
        /// The exit button input, if fitted.
        exit_button: Option<LineConfig>,
        /// Pulse length, contact sense and alarm timing.
        hardware: DoorHardwareConfig,
    },
}

/// Where a device's GPIO lines are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gpio {
    /// `gpio = "sim"`: in-memory lines driven by the simulators (demo, tests).
    Sim,
    /// `gpio = "gpiochip0"`: the kernel GPIO chip the lines are on.
    Chip(String),
}

/// `type = "onvif-camera"`.
#[derive(Debug, Clone)]
pub struct OnvifCameraConfig {
    /// The device service URL (`http://192.168.1.64/onvif/device_service`).
    pub address: String,
    /// The camera account's user, if it needs one.
    pub username: Option<String>,
    /// Its password (a secret: `{ env = … }` or `{ file = … }`).
    pub password: Option<Secret>,
    /// Lanes it watches (a snapshot is taken on their plate reads).
    pub lanes: Vec<String>,
    /// Doors and door stations it watches (a snapshot is taken on a door's
    /// card reads and alarms, and on a station's calls).
    pub doors: Vec<String>,
    /// A clock drift above this raises an alarm.
    pub drift_alarm: Duration,
    /// A snapshot not complete within this is given up.
    pub snapshot_timeout: Duration,
    /// A larger snapshot is refused (nothing is saved).
    pub snapshot_max_bytes: u64,
}

/// One `[[door_groups]]` entry.
#[derive(Debug, Clone)]
pub struct DoorGroupConfig {
    /// Unique id; cards name it.
    pub id: String,
    /// Display name.
    pub name: String,
    /// When its doors may be opened; empty = always.
    pub schedule: Schedule,
}

/// One `[[doors]]` entry.
#[derive(Debug, Clone)]
pub struct DoorEntry {
    /// Unique id.
    pub id: String,
    /// Display name (e.g. `3号楼1单元门`).
    pub name: String,
    /// Devices whose card reads count for this door.
    pub readers: Vec<String>,
    /// The device that unlocks it (a `door` or a `wg-controller`).
    pub relay: String,
    /// The door number on a WG controller (its readers and its relay).
    pub controller_door: Option<u8>,
    /// The door group (schedule, and which cards may open it).
    pub group: Option<String>,
    /// The other door of an anti-passback pair.
    pub anti_passback_pair: Option<String>,
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
        // Only a reload's comparison sees the value (in memory, never shown).
        if diff::revealing() {
            return write!(f, "Secret({:?})", self.0);
        }
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
