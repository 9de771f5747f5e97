//! The unit-door part of the configuration schema: the four door device
//! types (`wiegand-reader`, `serial-reader`, `wg-controller`, `door`), GPIO
//! lines, `[[door_groups]]` with their schedules and `[[doors]]`, with
//! every cross-reference checked (readers, relays, groups, anti-passback
//! pairs).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use drivers::door::door_driver::DoorHardwareConfig;
use drivers::door::gpio::{LineConfig, LineRef};
use drivers::door::serial::{Checksum, Framing};
use drivers::door::serial_driver::SerialReaderConfig;
use drivers::door::state::DoorConfig;
use drivers::door::wg_driver::WgConfig;
use drivers::door::wiegand::{CardMapping, WiegandConfig};
use toml::de::DeValue;

use super::reader::{ScalarOrTable, Section, expected, int_in, suggest, take_unique_id};
use super::{DeviceConfig, DeviceKind, DoorEntry, DoorGroupConfig, Gpio};
use crate::vocab::schedule::{Schedule, Window};

/// `gpio` default: the Pi's main GPIO chip.
pub(crate) const DEFAULT_GPIO_CHIP: &str = "gpiochip0";

/// Device types that deliver card reads.
const READER_TYPES: &[&str] = &["wiegand-reader", "serial-reader", "wg-controller"];

fn take_gpio(s: &mut Section<'_, '_>) -> Gpio {
    match s.take_nonempty_str("gpio") {
        Some(name) if name == "sim" => Gpio::Sim,
        Some(name) => Gpio::Chip(name),
        None => Gpio::Chip(DEFAULT_GPIO_CHIP.to_owned()),
    }
}

fn line_ref(v: &DeValue<'_>) -> Result<LineRef, String> {
    match v {
        DeValue::String(name) if !name.trim().is_empty() => Ok(LineRef::Name(name.to_string())),
        DeValue::Integer(_) => int_in(v, &(0..=1023)).map(|n| LineRef::Offset(n as u32)),
        other => Err(expected(
            "a line name, a line offset or { line = …, active_low = … }",
            other,
        )),
    }
}

/// A GPIO line: `17` (offset on the device's chip), `"NAME"` (a line name)
/// or `{ line = 17, chip = "gpiochip1", active_low = true, pull_up = true,
/// debounce_us = 0 }`.
fn take_line(s: &mut Section<'_, '_>, key: &str, gpio: &Gpio) -> Option<LineConfig> {
    let chip = match gpio {
        Gpio::Chip(chip) => Some(chip.clone()),
        Gpio::Sim => None,
    };
    match s.take_scalar_or_table(key)? {
        ScalarOrTable::Scalar(v) => match line_ref(&v) {
            Ok(line) => Some(LineConfig {
                chip,
                line,
                active_low: false,
                pull_up: false,
                debounce_us: 0,
            }),
            Err(message) => {
                s.problem(key, message);
                None
            }
        },
        ScalarOrTable::Table(mut t) => {
            let line = t.require("line", |t, k| t.take_with(k, line_ref));
            let own_chip = t.take_nonempty_str("chip");
            let active_low = t.take_bool("active_low").unwrap_or(false);
            let pull_up = t.take_bool("pull_up").unwrap_or(false);
            let debounce_us = t.take_int("debounce_us", 0..=1_000_000).unwrap_or(0);
            t.finish();
            Some(LineConfig {
                chip: own_chip.or(chip),
                line: line?,
                active_low,
                pull_up,
                debounce_us,
            })
        }
    }
}

fn placeholder_line() -> LineConfig {
    LineConfig {
        chip: None,
        line: LineRef::Offset(0),
        active_low: false,
        pull_up: false,
        debounce_us: 0,
    }
}

fn take_door_number(s: &mut Section<'_, '_>) -> Option<u8> {
    s.take_int("door", 1..=4).map(|n| n as u8)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn take_mapping(s: &mut Section<'_, '_>, key: &str, default: CardMapping) -> CardMapping {
    s.take_with(key, |v| match v {
        DeValue::String(m) if m == "facility-card" => Ok(CardMapping::FacilityCard),
        DeValue::String(m) if m == "uid" => Ok(CardMapping::Uid),
        other => Err(format!(
            "expected \"facility-card\" or \"uid\"{}",
            match other {
                DeValue::String(m) => format!(", found {m:?}"),
                other => format!(", found {}", other.type_str()),
            }
        )),
    })
    .unwrap_or(default)
}

pub(crate) fn read_wiegand_reader(s: &mut Section<'_, '_>) -> DeviceKind {
    let gpio = take_gpio(s);
    let d0 = s.require("d0", |s, k| take_line(s, k, &gpio));
    let d1 = s.require("d1", |s, k| take_line(s, k, &gpio));
    let defaults = WiegandConfig::default();
    let frame_gap = s.take_duration("frame_gap").unwrap_or(defaults.frame_gap());
    if !(Duration::from_millis(1)..=Duration::from_millis(100)).contains(&frame_gap) {
        s.problem(
            "frame_gap",
            "must be from 1ms to 100ms (the standard is 5ms)",
        );
    }
    let w26 = take_mapping(s, "w26", defaults.w26);
    let w34 = take_mapping(s, "w34", defaults.w34);
    let door = take_door_number(s);
    if let (Some(d0), Some(d1)) = (&d0, &d1)
        && d0.active_low != d1.active_low
    {
        s.problem("d1", "d0 and d1 must both be active_low or both not");
    }
    DeviceKind::WiegandReader {
        gpio,
        d0: d0.unwrap_or_else(placeholder_line),
        d1: d1.unwrap_or_else(placeholder_line),
        wiegand: WiegandConfig {
            frame_gap_us: u64::try_from(frame_gap.as_micros()).unwrap_or(u64::MAX),
            w26,
            w34,
        },
        door,
    }
}

pub(crate) fn read_serial_reader(s: &mut Section<'_, '_>) -> DeviceKind {
    let path = s.require("path", Section::take_path);
    let baud = s.take_int("baud", 300..=921_600).unwrap_or(9600) as u32;
    let framing_name = s.require("framing", Section::take_str);
    let stx = s.take_int("stx", 0..=255).map(|n| n as u8);
    let etx = s.take_int("etx", 0..=255).map(|n| n as u8);
    let data_len = s.take_int("data_len", 1..=8).map(|n| n as usize);
    let checksum = s.take_with("checksum", |v| match v {
        DeValue::String(c) if c == "xor" => Ok(Checksum::Xor),
        DeValue::String(c) if c == "sum" => Ok(Checksum::Sum),
        other => Err(expected("\"xor\" or \"sum\"", other)),
    });
    let reconnect_min = s
        .take_duration("reconnect_min")
        .unwrap_or(Duration::from_millis(500));
    let reconnect_max = s
        .take_duration("reconnect_max")
        .unwrap_or(Duration::from_secs(30));
    if reconnect_max < reconnect_min || reconnect_min.is_zero() {
        s.problem(
            "reconnect_max",
            "reconnect_min must be > 0 and reconnect_max at least reconnect_min",
        );
    }
    let door = take_door_number(s);
    let binary_keys = ["stx", "etx", "data_len", "checksum"];
    let framing = match framing_name.as_deref() {
        Some("ascii-hex") => {
            for key in binary_keys {
                if s.was_present(key) {
                    s.problem(key, "only used with framing = \"binary\"");
                }
            }
            Framing::AsciiHex
        }
        Some("binary") => {
            if !s.was_present("data_len") {
                s.problem("data_len", "required with framing = \"binary\"");
            }
            if !s.was_present("checksum") {
                s.problem("checksum", "required with framing = \"binary\"");
            }
            Framing::Binary {
                stx: stx.unwrap_or(0x02),
                etx: etx.unwrap_or(0x03),
                data_len: data_len.unwrap_or(4),
                checksum: checksum.unwrap_or(Checksum::Xor),
            }
        }
        Some(other) => {
            s.problem(
                "framing",
                format!("expected \"ascii-hex\" or \"binary\", found {other:?}"),
            );
            Framing::AsciiHex
        }
        None => Framing::AsciiHex,
    };
    DeviceKind::SerialReader(SerialReaderConfig {
        path: path.unwrap_or_default(),
        baud,
        framing,
        door,
        reconnect_min_ms: millis(reconnect_min),
        reconnect_max_ms: millis(reconnect_max),
        reject_interval_ms: 10_000,
    })
}

pub(crate) fn read_wg_controller(s: &mut Section<'_, '_>) -> DeviceKind {
    let controller = s.require("controller", Section::take_addr);
    let serial = s.require("serial", |s, k| s.take_int(k, 1..=u64::from(u32::MAX)));
    let bind = s.take_addr("bind").unwrap_or(WgConfig::DEFAULT_BIND);
    let listener = s.take_addr("listener").and_then(|a| match a {
        SocketAddr::V4(v4) => Some(v4),
        SocketAddr::V6(_) => {
            s.problem(
                "listener",
                "the controller only sends events to IPv4 addresses",
            );
            None
        }
    });
    if listener.is_none() && bind.ip().is_unspecified() && !s.was_present("listener") {
        s.problem(
            "listener",
            "required when bind is 0.0.0.0: the address the controller sends events to",
        );
    }
    // Keys left out keep the driver's defaults (`WgConfig::new`).
    let mut config = WgConfig::new(
        controller.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 60000))),
        serial.unwrap_or(1) as u32,
        bind,
    );
    config.listener = listener;
    if let Some(doors) = s.take_int("doors", 1..=4) {
        if ![1, 2, 4].contains(&doors) {
            s.problem("doors", "a controller has 1, 2 or 4 doors");
        }
        config.doors = doors as u8;
    }
    if let Some(poll) = s.take_duration("poll_interval") {
        config.poll_interval_ms = millis(poll);
    }
    if let Some(reply) = s.take_duration("reply_timeout") {
        config.reply_timeout_ms = millis(reply);
    }
    if config.poll_interval_ms == 0 || config.reply_timeout_ms == 0 {
        s.problem(
            "poll_interval",
            "poll_interval and reply_timeout must be > 0",
        );
    }
    if let Some(missed) = s.take_int("offline_after_missed", 1..=100) {
        config.offline_after_missed = missed as u32;
    }
    DeviceKind::WgController(config)
}

pub(crate) fn read_door(s: &mut Section<'_, '_>) -> DeviceKind {
    let gpio = take_gpio(s);
    let relay = s.require("relay", |s, k| take_line(s, k, &gpio));
    let contact = s.require("contact", |s, k| take_line(s, k, &gpio));
    let exit_button = take_line(s, "exit_button", &gpio);
    let defaults = DoorHardwareConfig::default();
    let pulse = s
        .take_duration("pulse")
        .unwrap_or(Duration::from_millis(defaults.pulse_ms));
    if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&pulse) {
        s.problem("pulse", "must be from 100ms to 60s");
    }
    let contact_active_when_open = s
        .take_bool("contact_active_when_open")
        .unwrap_or(defaults.contact_active_when_open);
    let exit_button_pulses = s
        .take_bool("exit_button_pulses")
        .unwrap_or(defaults.exit_button_pulses);
    let held_open_after = s
        .take_duration("held_open_after")
        .unwrap_or(Duration::from_secs(defaults.alarms.held_open_after_s));
    let grant_window = s
        .take_duration("grant_window")
        .unwrap_or(Duration::from_secs(defaults.alarms.grant_window_s));
    for (key, d) in [
        ("held_open_after", held_open_after),
        ("grant_window", grant_window),
    ] {
        if d.as_secs() == 0 || d.subsec_nanos() != 0 {
            s.problem(key, "must be a whole number of seconds, at least 1s");
        }
    }
    let door = take_door_number(s);
    DeviceKind::Door {
        gpio,
        relay: relay.unwrap_or_else(placeholder_line),
        contact: contact.unwrap_or_else(placeholder_line),
        exit_button,
        hardware: DoorHardwareConfig {
            door,
            pulse_ms: millis(pulse),
            contact_active_when_open,
            exit_button_pulses,
            alarms: DoorConfig {
                held_open_after_s: held_open_after.as_secs(),
                grant_window_s: grant_window.as_secs(),
            },
        },
    }
}

/// Parses `"mon-fri 06:00-23:00"`, `"daily 00:00-24:00"`, `"sat,sun 22:00-06:00"`.
pub(crate) fn parse_window(text: &str) -> Result<Window, String> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let usage =
        "write e.g. \"mon-fri 06:00-23:00\", \"sat,sun 08:00-20:00\" or \"daily 22:00-06:00\"";
    let (days_text, times) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("invalid window {text:?}: {usage}"))?;
    let day = |name: &str| {
        NAMES
            .iter()
            .position(|n| *n == name.trim())
            .ok_or_else(|| format!("invalid day {name:?} in {text:?}: use mon … sun or daily"))
    };
    let mut days = [false; 7];
    if days_text == "daily" {
        days = [true; 7];
    } else {
        for part in days_text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut d = a;
                    loop {
                        days[d] = true;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days[day(part)?] = true,
            }
        }
    }
    let minute = |t: &str| -> Result<u16, String> {
        let (h, m) = t
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("invalid time {t:?} in {text:?}: {usage}"))?;
        let (h, m): (u16, u16) = (
            h.parse().map_err(|_| format!("invalid hour in {text:?}"))?,
            m.parse()
                .map_err(|_| format!("invalid minute in {text:?}"))?,
        );
        if m >= 60 || h > 24 || (h == 24 && m > 0) {
            return Err(format!("invalid time {t:?} in {text:?}"));
        }
        Ok(h * 60 + m)
    };
    let (start, end) = times
        .trim()
        .split_once('-')
        .ok_or_else(|| format!("invalid window {text:?}: {usage}"))?;
    let (start_min, end_min) = (minute(start)?, minute(end)?);
    if start_min == end_min || start_min >= 1440 {
        return Err(format!(
            "invalid window {text:?}: the start and end must differ (use 00:00-24:00 for all day)"
        ));
    }
    Ok(Window {
        days,
        start_min,
        end_min,
    })
}

/// Reads `[[door_groups]]`.
pub(crate) fn read_door_groups(sections: Vec<Section<'_, '_>>) -> Vec<DoorGroupConfig> {
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut groups = Vec::new();
    for mut s in sections {
        let id = take_unique_id(&mut s, &mut first_line, "door group");
        let name = s.take_nonempty_str("name");
        let schedule = s.take_with("schedule", |v| match v {
            DeValue::Array(items) => items
                .iter()
                .map(|item| match item.get_ref() {
                    DeValue::String(w) => parse_window(w),
                    other => Err(expected("an array of window strings", other)),
                })
                .collect::<Result<Vec<_>, _>>(),
            other => Err(expected(
                "an array of windows such as [\"mon-fri 06:00-23:00\"]",
                other,
            )),
        });
        s.finish();
        if let Some(id) = id {
            groups.push(DoorGroupConfig {
                name: name.unwrap_or_else(|| id.clone()),
                id,
                schedule: Schedule {
                    windows: schedule.unwrap_or_default(),
                },
            });
        }
    }
    groups
}

fn device_type(device: &DeviceConfig) -> &'static str {
    match &device.kind {
        DeviceKind::SimTank { .. } => "sim-tank",
        DeviceKind::LprCamera { .. } => "lpr-camera",
        DeviceKind::ModbusBarrier { .. } => "modbus-barrier",
        DeviceKind::ModbusPoints { .. } => "modbus-points",
        DeviceKind::WiegandReader { .. } => "wiegand-reader",
        DeviceKind::SerialReader(_) => "serial-reader",
        DeviceKind::WgController(_) => "wg-controller",
        DeviceKind::OnvifCamera(_) => "onvif-camera",
        DeviceKind::Door { .. } => "door",
        DeviceKind::Intercom(station) => station.type_name(),
    }
}

/// Reads `[[doors]]`, checking every reference against the devices
/// (`defined`: every device id written; `devices`: the valid ones, with
/// their types) and the door groups.
pub(crate) fn read_doors(
    sections: Vec<Section<'_, '_>>,
    defined: &[String],
    devices: &[DeviceConfig],
    groups: &[DoorGroupConfig],
) -> Vec<DoorEntry> {
    let typed: HashMap<&str, &DeviceConfig> = devices.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    // (reader, controller door) -> door id, to find readers serving two doors.
    let mut reader_owner: HashMap<(String, Option<u8>), String> = HashMap::new();
    let mut read = Vec::new();
    for mut s in sections {
        let id = take_unique_id(&mut s, &mut first_line, "door");
        let name = s.take_nonempty_str("name");
        let readers = s.require("readers", Section::take_str_list);
        let relay = s.require("relay", Section::take_str);
        let controller_door = s.take_int("controller_door", 1..=4).map(|n| n as u8);
        let group = s.take_str("group");
        let pair = s.take_str("anti_passback_pair");
        let unknown_device = |s: &Section<'_, '_>, key: &str, device: &str| {
            let hint = suggest(device, defined.iter().map(String::as_str))
                .map(|close| format!("; did you mean {close:?}?"))
                .unwrap_or_default();
            s.problem(
                key,
                format!("no device with id {device:?} is defined in [[devices]]{hint}"),
            );
        };
        let mut uses_controller = None;
        if let Some(readers) = &readers {
            if readers.is_empty() {
                s.problem("readers", "a door needs at least one reader");
            }
            for reader in readers {
                if !defined.contains(reader) {
                    unknown_device(&s, "readers", reader);
                    continue;
                }
                let Some(device) = typed.get(reader.as_str()) else {
                    continue;
                };
                let kind = device_type(device);
                if !READER_TYPES.contains(&kind) {
                    s.problem(
                        "readers",
                        format!("device {reader:?} is a {kind}, not a card reader"),
                    );
                    continue;
                }
                if let DeviceKind::WgController(wg) = &device.kind {
                    uses_controller = Some((reader.clone(), wg.doors));
                }
                let key = (
                    reader.clone(),
                    matches!(device.kind, DeviceKind::WgController(_))
                        .then_some(controller_door)
                        .flatten(),
                );
                if let Some(owner) = reader_owner.get(&key) {
                    s.problem(
                        "readers",
                        format!("reader {reader:?} already serves door {owner:?}"),
                    );
                } else if let Some(id) = &id {
                    reader_owner.insert(key, id.clone());
                }
            }
        }
        if let Some(relay) = &relay {
            if !defined.contains(relay) {
                unknown_device(&s, "relay", relay);
            } else if let Some(device) = typed.get(relay.as_str()) {
                match &device.kind {
                    DeviceKind::Door { .. } => {}
                    DeviceKind::WgController(wg) => {
                        uses_controller = Some((relay.clone(), wg.doors));
                    }
                    _ => s.problem(
                        "relay",
                        format!(
                            "device {relay:?} is a {}, not a door or a wg-controller",
                            device_type(device)
                        ),
                    ),
                }
            }
        }
        match (uses_controller, controller_door) {
            (Some((controller, _)), None) => s.problem(
                "controller_door",
                format!("required: which door of controller {controller:?} this is (1–4)"),
            ),
            (Some((controller, doors)), Some(n)) if n > doors => s.problem(
                "controller_door",
                format!("controller {controller:?} has {doors} door(s), not door {n}"),
            ),
            (None, Some(_)) => s.problem(
                "controller_door",
                "only used when a reader or the relay is a wg-controller",
            ),
            _ => {}
        }
        if let Some(group) = &group
            && !groups.iter().any(|g| &g.id == group)
        {
            let hint = suggest(group, groups.iter().map(|g| g.id.as_str()))
                .map(|close| format!("; did you mean {close:?}?"))
                .unwrap_or_default();
            s.problem(
                "group",
                format!("no door group with id {group:?} is defined in [[door_groups]]{hint}"),
            );
        }
        let entry = match (id, readers, relay) {
            (Some(id), Some(readers), Some(relay)) => Some(DoorEntry {
                name: name.unwrap_or_else(|| id.clone()),
                id,
                readers,
                relay,
                controller_door,
                group,
                anti_passback_pair: pair,
            }),
            _ => None,
        };
        read.push((s, entry));
    }
    // Pairs can only be checked once every door is known.
    let ids: Vec<&DoorEntry> = read.iter().filter_map(|(_, e)| e.as_ref()).collect();
    let mut problems = Vec::new();
    for (i, (_, entry)) in read.iter().enumerate() {
        let Some(DoorEntry {
            id,
            anti_passback_pair: Some(pair),
            ..
        }) = entry
        else {
            continue;
        };
        let message = if pair == id {
            Some("a door cannot be its own anti-passback pair".to_owned())
        } else {
            match ids.iter().find(|d| &d.id == pair) {
                None => Some(format!("no door with id {pair:?} is defined in [[doors]]")),
                Some(other) => match &other.anti_passback_pair {
                    Some(back) if back != id => Some(format!(
                        "door {pair:?} is paired with {back:?}, not with {id:?}"
                    )),
                    _ => None,
                },
            }
        };
        if let Some(message) = message {
            problems.push((i, message));
        }
    }
    for (i, message) in problems {
        read[i].0.problem("anti_passback_pair", message);
    }
    read.into_iter()
        .filter_map(|(s, entry)| {
            s.finish();
            entry
        })
        .collect()
}
