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

use super::env::Env;
use super::reader::{Leftover, Section, suggest};
use super::uplink;
use super::{
    Config, DeviceConfig, DeviceKind, GatewayConfig, PanelConfig, StoreSection, SupervisorConfig,
    ThresholdAlarm,
};

/// `[gateway] data_dir` default.
pub(crate) const DEFAULT_DATA_DIR: &str = "/var/lib/gatehouse";
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

/// Every device family; add a line here (and a reader) for a new driver.
pub(crate) const DEVICE_TYPES: &[DeviceType] = &[DeviceType {
    name: "sim-tank",
    keys: &["height_m", "interval"],
    read: read_sim_tank,
}];

/// Builds the configuration from the document's root, recording problems.
pub(crate) fn build(mut root: Section<'_, '_>, env: &dyn Env) -> Config {
    let gateway = read_gateway(root.take_table("gateway"));
    let store = read_store(root.take_table("store"));
    let panel = read_panel(root.take_table("panel"), env);
    let supervisor = read_supervisor(root.take_table("supervisor"));
    let broker = uplink::read_broker(root.take_table("broker"));
    let uplink = uplink::read_uplink(
        root.take_table("uplink"),
        env,
        &gateway.gateway_id,
        broker.embedded,
    );
    let api = uplink::read_api(root.take_table("api"), env);
    let (devices, defined) = read_devices(root.take_tables("devices"));
    let alarms = root
        .take_tables("alarms")
        .into_iter()
        .map(|s| read_alarm(s, &defined))
        .collect();
    root.finish();
    Config {
        gateway,
        store,
        panel,
        supervisor,
        devices,
        alarms,
        uplink,
        broker,
        api,
    }
}

fn read_gateway(mut s: Section<'_, '_>) -> GatewayConfig {
    let estate_id = s.require("estate_id", Section::take_id);
    let gateway_id = s.require("gateway_id", Section::take_id);
    let data_dir = s.take_path("data_dir");
    s.finish();
    GatewayConfig {
        estate_id: estate_id.unwrap_or_default(),
        gateway_id: gateway_id.unwrap_or_default(),
        data_dir: data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
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
    s.finish();
    StoreSection {
        max_bytes,
        critical_reserve_bytes,
        group_commit_window,
    }
}

fn read_panel(mut s: Section<'_, '_>, env: &dyn Env) -> PanelConfig {
    let listen = s.take_addr("listen");
    let metrics_token = s.take_secret("metrics_token", env);
    s.finish();
    PanelConfig {
        listen: listen.unwrap_or(DEFAULT_LISTEN),
        metrics_token,
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
fn read_devices(sections: Vec<Section<'_, '_>>) -> (Vec<DeviceConfig>, Vec<String>) {
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
        let kind = device_type.map(|t| (t.read)(&mut s));
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
