//! The configuration schema: which keys each section has, their defaults and
//! their checks, turning a spanned document into a [`Config`]. This file
//! reads the whole document ([`build`]) and the gateway's own sections
//! (`[gateway]`, `[store]`, `[panel]`, `[supervisor]`, `[[alarms]]`); the
//! other parts have files of their own: `devices` (`[[devices]]` and their
//! types), `lanes` (`[[lanes]]`, `[ingress]`), `doors`, `intercom`,
//! `points`, `uplink` (`[uplink]`, `[broker]`, `[api]`), `backup` and `privacy`.
//!
//! Every function here records problems and returns *something* (a default in
//! place of an invalid value), so that one pass finds every problem; the
//! caller discards the result when any problem was recorded.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use super::env::Env;
use super::reader::{Pem, Section, suggest};
use super::{
    Config, GatewayConfig, PanelConfig, StoreSection, SupervisorConfig, ThresholdAlarm, TlsFiles,
};
use super::{backup, devices, doors, intercom, lanes, privacy, uplink};
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

/// Builds the configuration from the document's root, recording problems.
pub(crate) fn build(mut root: Section<'_, '_>, env: &dyn Env) -> Config {
    let gateway = read_gateway(root.take_table("gateway"));
    let store = read_store(root.take_table("store"));
    let panel = read_panel(root.take_table("panel"), env);
    let supervisor = read_supervisor(root.take_table("supervisor"));
    let ingress = lanes::read_ingress(root.take_table("ingress"));
    let lane_sections = root.take_tables("lanes");
    let lane_ids: Vec<String> = lane_sections
        .iter()
        .filter_map(|s| s.peek_str("id"))
        .collect();
    let door_sections = root.take_tables("doors");
    let station_sections = root.take_tables("intercom");
    // A surveillance camera watches doors and door stations (their calls).
    let door_ids: Vec<String> = door_sections
        .iter()
        .chain(&station_sections)
        .filter_map(|s| s.peek_str("id"))
        .collect();
    let (mut devices, mut defined) =
        devices::read_devices(root.take_tables("devices"), &lane_ids, &door_ids, env);
    let broker = uplink::read_broker(root.take_table("broker"));
    intercom::read_stations(station_sections, env, &broker, &mut devices, &mut defined);
    let uplink = uplink::read_uplink(
        root.take_table("uplink"),
        env,
        &gateway.gateway_id,
        broker.embedded,
    );
    let api = uplink::read_api(root.take_table("api"), env);
    let backup = backup::read_backup(root.take_table("backup"));
    let privacy = privacy::read_privacy(root.take_table("privacy"));
    let alarms = root
        .take_tables("alarms")
        .into_iter()
        .map(|s| read_alarm(s, &defined))
        .collect();
    let lanes = lanes::read_lanes(lane_sections, &devices, &defined);
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
        privacy,
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
