//! The configuration schema: which keys each section has, their defaults and
//! their checks, turning a spanned document into a [`Config`].
//!
//! Every function here records problems and returns *something* (a default in
//! place of an invalid value), so that one pass finds every problem; the
//! caller discards the result when any problem was recorded.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use super::backup;
use super::doors;
use super::env::Env;
use super::intercom;
use super::points;
use super::reader::{Leftover, Pem, Section, suggest};
use super::uplink;
use super::{
    CameraVendor, Config, DeviceConfig, DeviceKind, Direction, ExitPolicy, GatewayConfig,
    IngressConfig, LaneConfig, ModbusTransport, OnvifCameraConfig, PanelConfig, StoreSection,
    SupervisorConfig, ThresholdAlarm, TlsFiles,
};
use crate::vocab::time::EstateZone;

/// `[gateway] data_dir` default.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/gatehouse";
/// `[store] max_bytes` default: 256 MiB.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// `[store] critical_reserve_bytes` default: 32 MiB.
pub(crate) const DEFAULT_CRITICAL_RESERVE_BYTES: u64 = 32 << 20;
/// `[store] group_commit_window` default.
pub(crate) const DEFAULT_GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(2);
/// `[store] group_commit_window` upper bound: a longer window delays every
/// acknowledgement for little gain.
pub(crate) const MAX_GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(100);
/// `[panel] listen` default.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
/// `[panel] session_idle` default.
pub(crate) const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// `[panel] session_absolute` default: one shift.
pub(crate) const DEFAULT_SESSION_ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// `[panel] lockout_failures` default.
pub(crate) const DEFAULT_LOCKOUT_FAILURES: u32 = 5;
/// `[panel] lockout_failures_per_address` default: guards share one PC, so
/// the address limit is higher than the per-user one.
pub(crate) const DEFAULT_LOCKOUT_FAILURES_PER_ADDRESS: u32 = 20;
/// `[panel] lockout_duration` default.
pub(crate) const DEFAULT_LOCKOUT_DURATION: Duration = Duration::from_secs(15 * 60);
/// `[supervisor] backoff_initial` default.
pub(crate) const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// `[supervisor] backoff_max` default.
pub(crate) const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// `[supervisor] drain_budget` default.
pub(crate) const DEFAULT_DRAIN_BUDGET: Duration = Duration::from_secs(10);
/// `sim-tank` `height_m` default.
pub(crate) const DEFAULT_TANK_HEIGHT_M: f64 = 4.0;
/// `sim-tank` `interval` default.
pub(crate) const DEFAULT_TANK_INTERVAL: Duration = Duration::from_secs(2);

/// One device family: its `type` name, its own keys, and how to read them.
pub(crate) struct DeviceType {
    /// The `type = "..."` value.
    pub(crate) name: &'static str,
    /// The keys only this type has (besides `id`, `name`, `type`); used to
    /// say "valid for another type" about a misplaced key.
    pub(crate) keys: &'static [&'static str],
    /// Reads this type's keys from the device's section.
    pub(crate) read: fn(&mut Section<'_, '_>) -> DeviceKind,
}

/// `[ingress] listen` default: every interface, port 8081.
pub(crate) const DEFAULT_INGRESS_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8081));
/// `[ingress] max_body_bytes` default: room for two JPEG snapshots in base64.
pub(crate) const DEFAULT_INGRESS_MAX_BODY: u64 = 8 << 20;
/// `[ingress] images_max_bytes` default.
pub(crate) const DEFAULT_IMAGES_MAX_BYTES: u64 = 2 << 30;
/// `[ingress] max_connections` default: an estate's cameras and then some.
pub(crate) const DEFAULT_INGRESS_MAX_CONNECTIONS: u64 = 64;
/// `[ingress] header_timeout` default.
pub(crate) const DEFAULT_INGRESS_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `[ingress] body_timeout` default: an 8 MiB push over a slow LAN link.
pub(crate) const DEFAULT_INGRESS_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The shortest read deadline `[ingress]` accepts.
const MIN_INGRESS_TIMEOUT: Duration = Duration::from_millis(100);
/// `lpr-camera` `offline_after` default (heartbeats come every 5–30 s).
pub(crate) const DEFAULT_CAMERA_OFFLINE_AFTER: Duration = Duration::from_secs(90);

/// `onvif-camera` `drift_alarm` default.
pub(crate) const DEFAULT_CAMERA_DRIFT_ALARM: Duration = Duration::from_secs(30);

/// Every device family; add a line here (and a reader) for a new driver.
pub(crate) const DEVICE_TYPES: &[DeviceType] = &[
    DeviceType {
        name: "sim-tank",
        keys: &["height_m", "interval"],
        read: read_sim_tank,
    },
    DeviceType {
        name: "lpr-camera",
        keys: &["vendor", "lane", "offline_after"],
        read: read_lpr_camera,
    },
    DeviceType {
        name: "modbus-barrier",
        keys: &[
            "address",
            "serial",
            "baud",
            "slave",
            "preset",
            "open_coil",
            "close_coil",
            "stop_coil",
            "loop_input",
            "open_limit_input",
            "closed_limit_input",
            "loop_active_low",
            "limit_switches",
            "pulse",
            "auto_close_delay",
            "unused_close_after",
            "travel_timeout",
            "poll_interval",
            "timeout",
        ],
        read: read_modbus_barrier,
    },
    DeviceType {
        name: "modbus-points",
        keys: points::KEYS,
        read: points::read_modbus_points,
    },
    DeviceType {
        name: "wiegand-reader",
        keys: &["gpio", "d0", "d1", "frame_gap", "w26", "w34", "door"],
        read: doors::read_wiegand_reader,
    },
    DeviceType {
        name: "serial-reader",
        keys: &[
            "path",
            "baud",
            "framing",
            "stx",
            "etx",
            "data_len",
            "checksum",
            "reconnect_min",
            "reconnect_max",
            "door",
        ],
        read: doors::read_serial_reader,
    },
    DeviceType {
        name: "wg-controller",
        keys: &[
            "controller",
            "serial",
            "bind",
            "listener",
            "doors",
            "poll_interval",
            "reply_timeout",
            "offline_after_missed",
        ],
        read: doors::read_wg_controller,
    },
    DeviceType {
        name: "onvif-camera",
        keys: &[
            "address",
            "username",
            "password",
            "lanes",
            "doors",
            "drift_alarm",
        ],
        read: read_onvif_camera,
    },
    DeviceType {
        name: "door",
        keys: &[
            "gpio",
            "relay",
            "contact",
            "exit_button",
            "pulse",
            "contact_active_when_open",
            "exit_button_pulses",
            "held_open_after",
            "grant_window",
            "door",
        ],
        read: doors::read_door,
    },
];

/// Builds the configuration from the document's root, recording problems.
pub(crate) fn build(mut root: Section<'_, '_>, env: &dyn Env) -> Config {
    let gateway = read_gateway(root.take_table("gateway"));
    let store = read_store(root.take_table("store"));
    let panel = read_panel(root.take_table("panel"), env);
    let supervisor = read_supervisor(root.take_table("supervisor"));
    let ingress = read_ingress(root.take_table("ingress"));
    let lane_sections = root.take_tables("lanes");
    let lane_ids: Vec<String> = lane_sections
        .iter()
        .filter_map(|s| s.peek_str("id"))
        .collect();
    let door_sections = root.take_tables("doors");
    let door_ids: Vec<String> = door_sections
        .iter()
        .filter_map(|s| s.peek_str("id"))
        .collect();
    let (mut devices, mut defined) =
        read_devices(root.take_tables("devices"), &lane_ids, &door_ids, env);
    let broker = uplink::read_broker(root.take_table("broker"));
    intercom::read_stations(
        root.take_tables("intercom"),
        env,
        &broker,
        &mut devices,
        &mut defined,
    );
    let uplink = uplink::read_uplink(
        root.take_table("uplink"),
        env,
        &gateway.gateway_id,
        broker.embedded,
    );
    let api = uplink::read_api(root.take_table("api"), env);
    let backup = backup::read_backup(root.take_table("backup"));
    let alarms = root
        .take_tables("alarms")
        .into_iter()
        .map(|s| read_alarm(s, &defined))
        .collect();
    let lanes = read_lanes(lane_sections, &devices, &defined);
    let door_groups = doors::read_door_groups(root.take_tables("door_groups"));
    let doors = doors::read_doors(door_sections, &defined, &devices, &door_groups);
    root.finish();
    Config {
        gateway,
        store,
        panel,
        supervisor,
        devices,
        alarms,
        ingress,
        lanes,
        door_groups,
        doors,
        uplink,
        broker,
        api,
        backup,
    }
}

fn read_gateway(mut s: Section<'_, '_>) -> GatewayConfig {
    let estate_id = s.require("estate_id", Section::take_id);
    let gateway_id = s.require("gateway_id", Section::take_id);
    let data_dir = s.take_path("data_dir");
    let time_zone = match s.take_str("time_zone") {
        None => EstateZone::default(),
        Some(name) => EstateZone::named(&name).unwrap_or_else(|message| {
            s.problem("time_zone", message);
            EstateZone::default()
        }),
    };
    s.finish();
    GatewayConfig {
        estate_id: estate_id.unwrap_or_default(),
        gateway_id: gateway_id.unwrap_or_default(),
        data_dir: data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        time_zone,
    }
}

fn read_store(mut s: Section<'_, '_>) -> StoreSection {
    let max_bytes = s.take_bytes("max_bytes").unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 {
        s.problem("max_bytes", "must be greater than zero");
    }
    let critical_reserve_bytes = s
        .take_bytes("critical_reserve_bytes")
        .unwrap_or(DEFAULT_CRITICAL_RESERVE_BYTES);
    let group_commit_window = s
        .take_duration("group_commit_window")
        .unwrap_or(DEFAULT_GROUP_COMMIT_WINDOW);
    if group_commit_window > MAX_GROUP_COMMIT_WINDOW {
        s.problem(
            "group_commit_window",
            format!(
                "must be at most {}, found {}",
                humantime::format_duration(MAX_GROUP_COMMIT_WINDOW),
                humantime::format_duration(group_commit_window)
            ),
        );
    }
    let journal_days = s
        .take_u64("journal_days")
        .unwrap_or(u64::from(crate::store::journal::DEFAULT_JOURNAL_DAYS));
    if journal_days == 0 || journal_days > 3650 {
        s.problem(
            "journal_days",
            format!("must be between 1 and 3650, found {journal_days}"),
        );
    }
    let journal_max_rows = s
        .take_u64("journal_max_rows")
        .unwrap_or(crate::store::journal::DEFAULT_JOURNAL_MAX_ROWS);
    if journal_max_rows == 0 {
        s.problem("journal_max_rows", "must be greater than zero");
    }
    s.finish();
    StoreSection {
        max_bytes,
        critical_reserve_bytes,
        group_commit_window,
        journal_days: u32::try_from(journal_days).unwrap_or(u32::MAX),
        journal_max_rows,
    }
}

fn read_panel(mut s: Section<'_, '_>, env: &dyn Env) -> PanelConfig {
    let listen = s.take_addr("listen");
    let metrics_token = s.take_secret("metrics_token", env);
    let cert = s.take_pem("tls_cert", Pem::Certificates);
    let key = s.take_pem("tls_key", Pem::PrivateKey);
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (Some(_), None) if !s.was_present("tls_key") => {
            s.problem("tls_cert", "needs tls_key as well");
            None
        }
        (None, Some(_)) if !s.was_present("tls_cert") => {
            s.problem("tls_key", "needs tls_cert as well");
            None
        }
        _ => None,
    };
    let session_idle = s
        .take_duration("session_idle")
        .unwrap_or(DEFAULT_SESSION_IDLE);
    let session_absolute = s
        .take_duration("session_absolute")
        .unwrap_or(DEFAULT_SESSION_ABSOLUTE);
    if session_idle.is_zero() {
        s.problem("session_idle", "must be greater than zero");
    }
    if session_absolute < session_idle {
        s.problem(
            "session_absolute",
            format!(
                "must be at least session_idle ({}), found {}",
                humantime::format_duration(session_idle),
                humantime::format_duration(session_absolute)
            ),
        );
    }
    let failures = |s: &mut Section<'_, '_>, key: &str, default: u32| {
        let n = s.take_u64(key).unwrap_or(u64::from(default));
        if n == 0 || n > 1000 {
            s.problem(key, format!("must be between 1 and 1000, found {n}"));
        }
        u32::try_from(n).unwrap_or(default)
    };
    let lockout_failures = failures(&mut s, "lockout_failures", DEFAULT_LOCKOUT_FAILURES);
    let lockout_failures_per_address = failures(
        &mut s,
        "lockout_failures_per_address",
        DEFAULT_LOCKOUT_FAILURES_PER_ADDRESS,
    );
    let lockout_duration = s
        .take_duration("lockout_duration")
        .unwrap_or(DEFAULT_LOCKOUT_DURATION);
    if lockout_duration.is_zero() {
        s.problem("lockout_duration", "must be greater than zero");
    }
    let hosts = s
        .take_str_list("hosts")
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    if hosts
        .iter()
        .any(|h| h.is_empty() || h.contains(['/', ' ', ':']))
    {
        s.problem("hosts", "must be host names without scheme, port or path");
    }
    s.finish();
    PanelConfig {
        listen: listen.unwrap_or(DEFAULT_LISTEN),
        metrics_token,
        tls,
        session_idle,
        session_absolute,
        lockout_failures,
        lockout_failures_per_address,
        lockout_duration,
        hosts,
    }
}

fn read_supervisor(mut s: Section<'_, '_>) -> SupervisorConfig {
    let backoff_initial = s
        .take_duration("backoff_initial")
        .unwrap_or(DEFAULT_BACKOFF_INITIAL);
    if backoff_initial.is_zero() {
        s.problem(
            "backoff_initial",
            "must be greater than zero (a zero backoff restarts a failing driver in a busy loop)",
        );
    }
    let backoff_max = s
        .take_duration("backoff_max")
        .unwrap_or(DEFAULT_BACKOFF_MAX);
    if backoff_max < backoff_initial {
        s.problem(
            "backoff_max",
            format!(
                "must be at least backoff_initial ({}), found {}",
                humantime::format_duration(backoff_initial),
                humantime::format_duration(backoff_max)
            ),
        );
    }
    let drain_budget = s
        .take_duration("drain_budget")
        .unwrap_or(DEFAULT_DRAIN_BUDGET);
    s.finish();
    SupervisorConfig {
        backoff_initial,
        backoff_max,
        drain_budget,
    }
}

/// Reads `[[devices]]`; also returns every id that was written down (even on
/// an otherwise invalid device), so alarms are checked against what the
/// operator meant and one mistake is not reported twice.
fn read_devices(
    sections: Vec<Section<'_, '_>>,
    lane_ids: &[String],
    door_ids: &[String],
    env: &dyn Env,
) -> (Vec<DeviceConfig>, Vec<String>) {
    let mut devices = Vec::new();
    // id -> line of its first definition.
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut defined = Vec::new();
    for mut s in sections {
        let id = s.require("id", Section::take_id);
        if let Some(id) = &id {
            if let Some(line) = first_line.get(id) {
                s.problem(
                    "id",
                    format!("duplicate device id {id:?} (first defined on line {line})"),
                );
            } else {
                first_line.insert(id.clone(), s.line_of("id"));
                defined.push(id.clone());
            }
        }
        let name = s.take_nonempty_str("name");
        let type_name = s.require("type", Section::take_str);
        let device_type = type_name.as_deref().and_then(|t| {
            let found = DEVICE_TYPES.iter().find(|d| d.name == t);
            if found.is_none() {
                let known = DEVICE_TYPES.iter().map(|d| d.name);
                let hint = suggest(t, known.clone())
                    .map(|close| format!("did you mean {close:?}? "))
                    .unwrap_or_default();
                let list = known.collect::<Vec<_>>().join(", ");
                s.problem(
                    "type",
                    format!("unknown device type {t:?}; {hint}known types: {list}"),
                );
            }
            found
        });
        let mut kind = device_type.map(|t| (t.read)(&mut s));
        if let Some(DeviceKind::OnvifCamera(camera)) = &mut kind {
            camera.password = s.take_secret("password", env);
            match (camera.username.is_some(), s.was_present("password")) {
                (true, false) => s.problem(
                    "password",
                    "`username` needs a `password`: { env = \"NAME\" } or { file = \"/path\" }",
                ),
                (false, true) => s.problem("username", "`password` needs a `username`"),
                _ => {}
            }
            check_ids(&mut s, "lanes", &camera.lanes, lane_ids, "[[lanes]]");
            check_ids(&mut s, "doors", &camera.doors, door_ids, "[[doors]]");
        }
        if let Some(DeviceKind::LprCamera { lane, .. }) = &kind
            && !lane.is_empty()
            && !lane_ids.contains(lane)
        {
            let hint = suggest(lane, lane_ids.iter().map(String::as_str))
                .map(|close| format!("; did you mean {close:?}?"))
                .unwrap_or_default();
            s.problem(
                "lane",
                format!("no lane with id {lane:?} is defined in [[lanes]]{hint}"),
            );
        }
        s.finish_with(|key| judge_device_key(key, device_type, DEVICE_TYPES));
        if let (Some(id), Some(kind)) = (id, kind) {
            devices.push(DeviceConfig {
                name: name.unwrap_or_else(|| id.clone()),
                id,
                kind,
            });
        }
    }
    (devices, defined)
}

/// What to say about a device key that neither the common keys nor the
/// device's type took, given every known type.
pub(crate) fn judge_device_key(
    key: &str,
    device_type: Option<&DeviceType>,
    types: &[DeviceType],
) -> Leftover {
    let owner = types.iter().find(|t| t.keys.contains(&key));
    match (device_type, owner) {
        (Some(this), Some(other)) => Leftover::Message(format!(
            "unknown key for type {:?} (it is a key of type {:?})",
            this.name, other.name
        )),
        // The type is missing or unknown, and that is already a problem.
        (None, Some(_)) => Leftover::Ignore,
        (_, None) => Leftover::Unknown,
    }
}

fn read_sim_tank(s: &mut Section<'_, '_>) -> DeviceKind {
    let height_m = s.take_f64("height_m").unwrap_or(DEFAULT_TANK_HEIGHT_M);
    if height_m <= 0.0 {
        s.problem(
            "height_m",
            format!("must be greater than zero, found {height_m}"),
        );
    }
    let interval = s.take_duration("interval").unwrap_or(DEFAULT_TANK_INTERVAL);
    if interval.is_zero() {
        s.problem("interval", "must be greater than zero");
    }
    DeviceKind::SimTank { height_m, interval }
}

fn read_alarm(mut s: Section<'_, '_>, defined: &[String]) -> ThresholdAlarm {
    let device = s.require("device", Section::take_str);
    if let Some(device) = &device
        && !defined.contains(device)
    {
        let hint = suggest(device, defined.iter().map(String::as_str))
            .map(|close| format!("; did you mean {close:?}?"))
            .unwrap_or_default();
        s.problem(
            "device",
            format!("no device with id {device:?} is defined in [[devices]]{hint}"),
        );
    }
    let point = s.require("point", Section::take_nonempty_str);
    let above = s.take_f64("above");
    let below = s.take_f64("below");
    match (above, below) {
        (Some(above), Some(below)) if below >= above => s.problem(
            "below",
            format!("must be less than above ({above}), found {below}"),
        ),
        _ if !s.was_present("above") && !s.was_present("below") => {
            s.problem("", "needs `above`, `below` or both")
        }
        _ => {}
    }
    let hysteresis = s.take_f64("hysteresis").unwrap_or(0.0);
    if hysteresis < 0.0 {
        s.problem(
            "hysteresis",
            format!("must not be negative, found {hysteresis}"),
        );
    }
    s.finish();
    ThresholdAlarm {
        device: device.unwrap_or_default(),
        point: point.unwrap_or_default(),
        above,
        below,
        hysteresis,
    }
}

fn read_ingress(mut s: Section<'_, '_>) -> IngressConfig {
    let listen = s.take_addr("listen").unwrap_or(DEFAULT_INGRESS_LISTEN);
    let max_body_bytes = s
        .take_bytes("max_body_bytes")
        .unwrap_or(DEFAULT_INGRESS_MAX_BODY);
    if max_body_bytes < 1024 {
        s.problem("max_body_bytes", "must be at least 1KiB");
    }
    let images_max_bytes = s
        .take_bytes("images_max_bytes")
        .unwrap_or(DEFAULT_IMAGES_MAX_BYTES);
    let max_connections = s
        .take_int("max_connections", 1..=10_000)
        .unwrap_or(DEFAULT_INGRESS_MAX_CONNECTIONS);
    let header_timeout = read_deadline(&mut s, "header_timeout", DEFAULT_INGRESS_HEADER_TIMEOUT);
    let body_timeout = read_deadline(&mut s, "body_timeout", DEFAULT_INGRESS_BODY_TIMEOUT);
    let mut allow_from = Vec::new();
    for entry in s.take_str_list("allow_from").unwrap_or_default() {
        match parse_source(&entry) {
            Some(net) => allow_from.push(net),
            None => s.problem(
                "allow_from",
                format!("{entry:?} is not an address or a network (e.g. \"192.168.10.0/24\")"),
            ),
        }
    }
    s.finish();
    IngressConfig {
        listen,
        max_body_bytes,
        images_max_bytes,
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        header_timeout,
        body_timeout,
        allow_from,
    }
}

/// A read deadline of at least [`MIN_INGRESS_TIMEOUT`].
fn read_deadline(s: &mut Section<'_, '_>, key: &str, default: Duration) -> Duration {
    let value = s.take_duration(key).unwrap_or(default);
    if value < MIN_INGRESS_TIMEOUT {
        s.problem(key, "must be at least 100ms");
    }
    value
}

/// An allowed source: a network in CIDR notation or a single address.
fn parse_source(entry: &str) -> Option<ipnet::IpNet> {
    let entry = entry.trim();
    entry.parse::<ipnet::IpNet>().ok().or_else(|| {
        entry
            .parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

fn read_lpr_camera(s: &mut Section<'_, '_>) -> DeviceKind {
    let vendor = match s.require("vendor", |s, k| {
        s.take_choice(k, &["vzenith", "hikvision", "huaxia"])
    }) {
        Some("hikvision") => CameraVendor::Hikvision,
        Some("huaxia") => CameraVendor::Huaxia,
        _ => CameraVendor::Vzenith,
    };
    let lane = s.require("lane", Section::take_id).unwrap_or_default();
    let offline_after = s
        .take_duration("offline_after")
        .unwrap_or(DEFAULT_CAMERA_OFFLINE_AFTER);
    if offline_after.is_zero() {
        s.problem("offline_after", "must be greater than zero");
    }
    DeviceKind::LprCamera {
        vendor,
        lane,
        offline_after,
    }
}

/// Reads `address` (Modbus TCP) or `serial` + `baud` (Modbus RTU): the
/// line a Modbus device is on. Devices on one line share its bus.
pub(crate) fn read_modbus_transport(s: &mut Section<'_, '_>) -> ModbusTransport {
    let address = s.take_addr("address");
    let serial = s.take_path("serial");
    let baud = s.take_int("baud", 1200..=921_600).unwrap_or(9600);
    match (address, serial) {
        (Some(addr), None) => ModbusTransport::Tcp(addr),
        (None, Some(path)) => ModbusTransport::Rtu {
            path: path.display().to_string(),
            baud: u32::try_from(baud).unwrap_or(9600),
        },
        (Some(addr), Some(_)) => {
            s.problem(
                "serial",
                "give either `address` (Modbus TCP) or `serial` (Modbus RTU), not both",
            );
            ModbusTransport::Tcp(addr)
        }
        (None, None) => {
            if !s.was_present("address") && !s.was_present("serial") {
                s.problem("", "needs `address` (Modbus TCP, e.g. \"192.168.1.50:502\") or `serial` (Modbus RTU, e.g. \"/dev/ttyUSB0\")");
            }
            ModbusTransport::Rtu {
                path: String::new(),
                baud: 9600,
            }
        }
    }
}

/// Reports every id in `given` that `known` lacks.
fn check_ids(s: &mut Section<'_, '_>, key: &str, given: &[String], known: &[String], table: &str) {
    for id in given.iter().filter(|id| !known.contains(id)) {
        let hint = suggest(id, known.iter().map(String::as_str))
            .map(|close| format!("; did you mean {close:?}?"))
            .unwrap_or_default();
        s.problem(key, format!("no {table} entry has id {id:?}{hint}"));
    }
}

fn read_onvif_camera(s: &mut Section<'_, '_>) -> DeviceKind {
    let address = s
        .require("address", Section::take_nonempty_str)
        .unwrap_or_default();
    let address = if address.is_empty() || address.contains("://") {
        address
    } else {
        // A bare host[:port] means the usual device service path.
        format!("http://{address}/onvif/device_service")
    };
    if !address.is_empty() {
        match reqwest::Url::parse(&address) {
            Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {
                if !url.username().is_empty() || url.password().is_some() {
                    s.problem("address", "put the account in `username` and `password`, not in the URL");
                }
            }
            _ => s.problem(
                "address",
                "expected the camera's device service URL, e.g. \"http://192.168.1.64/onvif/device_service\", or its address",
            ),
        }
    }
    let username = s.take_nonempty_str("username");
    let lanes = s.take_str_list("lanes").unwrap_or_default();
    let doors = s.take_str_list("doors").unwrap_or_default();
    let drift_alarm = s
        .take_duration("drift_alarm")
        .unwrap_or(DEFAULT_CAMERA_DRIFT_ALARM);
    if drift_alarm.is_zero() {
        s.problem("drift_alarm", "must be greater than zero");
    }
    DeviceKind::OnvifCamera(OnvifCameraConfig {
        address,
        username,
        password: None,
        lanes,
        doors,
        drift_alarm,
    })
}

fn read_modbus_barrier(s: &mut Section<'_, '_>) -> DeviceKind {
    use drivers::barrier::{DigitalInput, LaneConfig as ArmTiming, Preset};
    let transport = read_modbus_transport(s);
    let slave = s.take_int("slave", 1..=247).unwrap_or(1);
    let preset_names: Vec<&'static str> = Preset::ALL.iter().map(|(n, _)| *n).collect();
    let preset = s
        .take_choice("preset", &preset_names)
        .and_then(Preset::from_name)
        .unwrap_or(Preset::WaveshareRtuRelay);
    let coil = |s: &mut Section<'_, '_>, key: &str| {
        s.take_int(key, 0..=u64::from(u16::MAX))
            .and_then(|n| u16::try_from(n).ok())
    };
    let open_coil = coil(s, "open_coil");
    let close_coil = coil(s, "close_coil");
    let stop_coil = coil(s, "stop_coil");
    let loop_input = coil(s, "loop_input");
    let open_limit = coil(s, "open_limit_input");
    let closed_limit = coil(s, "closed_limit_input");
    let loop_active_low = s.take_bool("loop_active_low").unwrap_or(false);
    let limit_switches = s.take_bool("limit_switches").unwrap_or(true);
    let pulse = s.take_duration("pulse");
    let mut map = preset.map().unwrap_or_else(|| {
        for key in ["open_coil", "close_coil", "loop_input"] {
            if !s.was_present(key) {
                s.problem(key, "required with preset = \"custom\"");
            }
        }
        drivers::barrier::RegisterMap {
            open_coil: 0,
            close_coil: 1,
            stop_coil: None,
            pulse: Duration::from_millis(500),
            loop_detector: DigitalInput::high(0),
            open_limit: None,
            closed_limit: None,
        }
    });
    if let Some(c) = open_coil {
        map.open_coil = c;
    }
    if let Some(c) = close_coil {
        map.close_coil = c;
    }
    if stop_coil.is_some() {
        map.stop_coil = stop_coil;
    }
    if let Some(i) = loop_input {
        map.loop_detector = DigitalInput::high(i);
    }
    map.loop_detector.active_low = loop_active_low;
    if let Some(i) = open_limit {
        map.open_limit = Some(DigitalInput::high(i));
    }
    if let Some(i) = closed_limit {
        map.closed_limit = Some(DigitalInput::high(i));
    }
    if !limit_switches {
        map.open_limit = None;
        map.closed_limit = None;
    }
    if let Some(pulse) = pulse {
        if pulse.is_zero() || pulse > Duration::from_secs(10) {
            s.problem("pulse", "must be between 1ms and 10s");
        }
        map.pulse = pulse;
    }
    if map.open_coil == map.close_coil {
        s.problem("close_coil", "must differ from open_coil");
    }
    let defaults = ArmTiming::default();
    let auto_close_delay = s
        .take_duration("auto_close_delay")
        .unwrap_or(defaults.auto_close_delay);
    let unused_close_after = match s.take_duration("unused_close_after") {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => defaults.unused_close_after,
    };
    let travel_timeout = s
        .take_duration("travel_timeout")
        .unwrap_or(defaults.travel_timeout);
    let poll_interval = s
        .take_duration("poll_interval")
        .unwrap_or(Duration::from_millis(50));
    let timeout = s
        .take_duration("timeout")
        .unwrap_or(Duration::from_millis(300));
    for (key, d) in [
        ("travel_timeout", travel_timeout),
        ("poll_interval", poll_interval),
        ("timeout", timeout),
    ] {
        if d.is_zero() {
            s.problem(key, "must be greater than zero");
        }
    }
    DeviceKind::ModbusBarrier {
        transport,
        slave: u8::try_from(slave).unwrap_or(1),
        lane: ArmTiming {
            auto_close_delay,
            unused_close_after,
            travel_timeout,
            has_open_limit: map.open_limit.is_some(),
            has_closed_limit: map.closed_limit.is_some(),
        },
        map,
        poll_interval,
        timeout,
    }
}

/// Reads `[[lanes]]`, checking each lane's barrier against the devices.
fn read_lanes(
    sections: Vec<Section<'_, '_>>,
    devices: &[DeviceConfig],
    defined: &[String],
) -> Vec<LaneConfig> {
    let mut lanes = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for mut s in sections {
        let id = s.require("id", Section::take_id);
        if let Some(id) = &id {
            if let Some(line) = first_line.get(id) {
                s.problem(
                    "id",
                    format!("duplicate lane id {id:?} (first defined on line {line})"),
                );
            } else {
                first_line.insert(id.clone(), s.line_of("id"));
            }
        }
        let name = s.take_nonempty_str("name");
        let direction = match s.require("direction", |s, k| s.take_choice(k, &["entry", "exit"])) {
            Some("exit") => Direction::Exit,
            _ => Direction::Entry,
        };
        let barrier = s.require("barrier", Section::take_str);
        let cameras: Vec<&DeviceConfig> = devices
            .iter()
            .filter(|d| matches!(&d.kind, DeviceKind::LprCamera { lane, .. } if Some(lane) == id.as_ref()))
            .collect();
        let barrier = match barrier.as_deref() {
            Some("camera") => {
                let relay_capable = cameras.iter().any(|d| {
                    matches!(d.kind, DeviceKind::LprCamera { vendor, .. } if vendor.replies_open())
                });
                if !relay_capable {
                    s.problem(
                        "barrier",
                        "\"camera\" needs a vzenith or huaxia lpr-camera on this lane (their HTTP reply opens the relay)",
                    );
                }
                None
            }
            Some(device) => {
                match devices.iter().find(|d| d.id == device) {
                    Some(d) if !matches!(d.kind, DeviceKind::ModbusBarrier { .. }) => s.problem(
                        "barrier",
                        format!("device {device:?} is not a modbus-barrier"),
                    ),
                    None if !defined.iter().any(|d| d == device) => {
                        let hint = suggest(device, defined.iter().map(String::as_str))
                            .map(|close| format!("; did you mean {close:?}?"))
                            .unwrap_or_default();
                        s.problem(
                            "barrier",
                            format!("no device with id {device:?} is defined in [[devices]] (or write \"camera\" for the camera's relay){hint}"),
                        );
                    }
                    _ => {}
                }
                Some(device.to_owned())
            }
            None => None,
        };
        let min_confidence = s.take_int("min_confidence", 0..=100).unwrap_or(80);
        let exit_policy = match s.take_choice("exit_policy", &["open_all", "recorded_or_listed"]) {
            Some("recorded_or_listed") => ExitPolicy::RecordedOrListed,
            _ => ExitPolicy::OpenAll,
        };
        let repeat_window = s
            .take_duration("repeat_window")
            .unwrap_or(Duration::from_secs(10));
        s.finish();
        if let Some(id) = id {
            lanes.push(LaneConfig {
                name: name.unwrap_or_else(|| id.clone()),
                id,
                direction,
                barrier,
                min_confidence: u8::try_from(min_confidence).unwrap_or(80),
                exit_policy,
                repeat_window,
            });
        }
    }
    lanes
}
