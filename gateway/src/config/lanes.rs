//! The vehicle lanes' part of the configuration schema: `[[lanes]]` (each
//! lane's barrier checked against the devices: a Modbus barrier, or a
//! plate camera whose reply opens the relay) and `[ingress]`, the device
//! listener their plate cameras push to.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::reader::{Section, suggest, take_unique_id};
use super::{DeviceConfig, DeviceKind, Direction, ExitPolicy, IngressConfig, LaneConfig};

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

/// Reads `[[lanes]]`, checking each lane's barrier against the devices.
pub(super) fn read_lanes(
    sections: Vec<Section<'_, '_>>,
    devices: &[DeviceConfig],
    defined: &[String],
) -> Vec<LaneConfig> {
    let mut lanes = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for mut s in sections {
        let id = take_unique_id(&mut s, &mut first_line, "lane");
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

pub(super) fn read_ingress(mut s: Section<'_, '_>) -> IngressConfig {
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
