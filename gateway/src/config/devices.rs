//! The devices part of the configuration schema: `[[devices]]`, each
//! device's `type` ([`DEVICE_TYPES`]: its keys and its reader), a key of
//! another type named as such, and the readers of the device types that
//! belong to no other part (the simulated tank, plate cameras, ONVIF
//! cameras, Modbus barriers, and the Modbus line any Modbus device is on).
//! The door device types' readers are in `doors`, the point devices' in
//! `points`, the door stations (`[[intercom]]`) in `intercom`.

use std::collections::HashMap;
use std::time::Duration;

use super::doors;
use super::env::Env;
use super::points;
use super::reader::{Leftover, Section, suggest, take_unique_id};
use super::{CameraVendor, DeviceConfig, DeviceKind, ModbusTransport, OnvifCameraConfig};

/// `sim-tank` `height_m` default.
pub(crate) const DEFAULT_TANK_HEIGHT_M: f64 = 4.0;

/// `sim-tank` `interval` default.
pub(crate) const DEFAULT_TANK_INTERVAL: Duration = Duration::from_secs(2);

/// `lpr-camera` `offline_after` default (heartbeats come every 5–30 s).
pub(crate) const DEFAULT_CAMERA_OFFLINE_AFTER: Duration = Duration::from_secs(90);

/// `onvif-camera` `drift_alarm` default.
pub(crate) const DEFAULT_CAMERA_DRIFT_ALARM: Duration = Duration::from_secs(30);

/// `onvif-camera` `snapshot_timeout` default: a snapshot not complete
/// within it is given up.
pub const DEFAULT_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3);

/// `onvif-camera` `snapshot_max_bytes` default: a larger snapshot is
/// refused (a 4K JPEG is 1–3 MB).
pub const DEFAULT_SNAPSHOT_MAX_BYTES: u64 = 4 * 1024 * 1024;

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
            "snapshot_timeout",
            "snapshot_max_bytes",
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

/// Reads `[[devices]]`; also returns every id that was written down (even on
/// an otherwise invalid device), so alarms are checked against what the
/// operator meant and one mistake is not reported twice.
pub(super) fn read_devices(
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
        let id = take_unique_id(&mut s, &mut first_line, "device");
        // The first definition of each id (a repeated one is in already).
        if let Some(id) = &id
            && !defined.contains(id)
        {
            defined.push(id.clone());
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
            check_ids(
                &mut s,
                "doors",
                &camera.doors,
                door_ids,
                "[[doors]] or [[intercom]]",
            );
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
    let snapshot_timeout = s
        .take_duration("snapshot_timeout")
        .unwrap_or(DEFAULT_SNAPSHOT_TIMEOUT);
    if snapshot_timeout.is_zero() || snapshot_timeout > Duration::from_secs(30) {
        s.problem(
            "snapshot_timeout",
            "must be more than zero and at most 30s (the event waits for nothing; a longer wait only holds one of the 8 snapshot slots)",
        );
    }
    let snapshot_max_bytes = s
        .take_bytes("snapshot_max_bytes")
        .unwrap_or(DEFAULT_SNAPSHOT_MAX_BYTES);
    if !(1024..=32 * 1024 * 1024).contains(&snapshot_max_bytes) {
        s.problem("snapshot_max_bytes", "must be between 1KiB and 32MiB");
    }
    DeviceKind::OnvifCamera(OnvifCameraConfig {
        address,
        username,
        password: None,
        lanes,
        doors,
        drift_alarm,
        snapshot_timeout,
        snapshot_max_bytes,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::reader;

    #[test]
    fn device_type_key_lists_match_their_readers() {
        // `DeviceType::keys` drives the "key of another type" message, so it must
        // list exactly the keys the type's reader takes.
        for device_type in DEVICE_TYPES {
            let diag = reader::Diagnostics::new("t.toml", "");
            let mut section = reader::Section::root(&diag, toml::de::DeTable::parse("").unwrap());
            (device_type.read)(&mut section);
            let mut known = section.known_keys().to_vec();
            if device_type.name == "onvif-camera" {
                // The secret is taken after the reader, with the environment.
                known.insert(2, "password".to_owned());
            }
            assert_eq!(known, device_type.keys, "{}", device_type.name);
        }
    }

    #[test]
    fn a_key_of_another_device_type_is_named_as_such() {
        fn unused(_: &mut reader::Section<'_, '_>) -> DeviceKind {
            DeviceKind::SimTank {
                height_m: 1.0,
                interval: Duration::from_secs(1),
            }
        }
        let types = [
            DeviceType {
                name: "alpha",
                keys: &["height_m"],
                read: unused,
            },
            DeviceType {
                name: "beta",
                keys: &["port"],
                read: unused,
            },
        ];
        let Leftover::Message(message) = judge_device_key("port", Some(&types[0]), &types) else {
            panic!("a message expected");
        };
        assert_eq!(
            message,
            "unknown key for type \"alpha\" (it is a key of type \"beta\")"
        );
        assert!(matches!(
            judge_device_key("colour", Some(&types[0]), &types),
            Leftover::Unknown
        ));
        // With the type unknown, its keys cannot be judged: the type is the news.
        assert!(matches!(
            judge_device_key("port", None, &types),
            Leftover::Ignore
        ));
    }
}
