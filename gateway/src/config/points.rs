//! `type = "modbus-points"` devices: the transport, poll groups and point
//! table (inline `[[devices.points]]`, a compiled-in preset from
//! `config/points/`, or both), checked by the driver crate's table rules
//! (overlaps, impossible types, addresses out of range) with every problem
//! located at the point's key.

use std::sync::Arc;
use std::time::Duration;

use drivers::points::{
    AlarmRule, DataType, Point, PointTable, PollGroup, RegisterKind, TableError, WordOrder,
    WriteLimits,
};

use super::devices::read_modbus_transport;
use super::reader::{Diagnostics, Section};
use super::{DeviceKind, Problem};

/// The point-table presets compiled into the binary: name, file, text.
/// Each is an example to be checked against the device's manual.
pub(crate) const PRESETS: &[(&str, &str, &str)] = &[
    (
        "vfd-water-supply",
        "config/points/vfd-water-supply.toml",
        include_str!("../../../config/points/vfd-water-supply.toml"),
    ),
    (
        "elevator-monitor",
        "config/points/elevator-monitor.toml",
        include_str!("../../../config/points/elevator-monitor.toml"),
    ),
];

/// `modbus-points` keys besides the transport's.
pub(crate) const KEYS: &[&str] = &[
    "address",
    "serial",
    "baud",
    "slave",
    "timeout",
    "max_gap",
    "full_report",
    "backoff_max",
    "preset",
    "poll",
    "points",
];

/// Default poll group when none is configured.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// A point's section with its parsed value, kept open until the whole
/// table has been checked so table problems land on the right key.
struct Entry<'d, 'i> {
    point: Point,
    section: Section<'d, 'i>,
}

/// Reads the poll groups and points of `s` (a device or a preset file).
fn read_table<'d, 'i>(s: &mut Section<'d, 'i>, groups: &mut Vec<PollGroup>) -> Vec<Entry<'d, 'i>> {
    for mut g in s.take_tables("poll") {
        let name = g.require("name", Section::take_id).unwrap_or_default();
        let interval = g.take_duration("interval").unwrap_or(DEFAULT_INTERVAL);
        if interval < Duration::from_millis(10) {
            g.problem("interval", "must be at least 10ms");
        }
        if groups.iter().any(|x| x.name == name) {
            g.problem("name", format!("duplicate poll group {name:?}"));
        }
        g.finish();
        groups.push(PollGroup { name, interval });
    }
    let mut entries = Vec::new();
    for mut p in s.take_tables("points") {
        let name = p.require("name", Section::take_id).unwrap_or_default();
        let display = p
            .take_nonempty_str("display")
            .unwrap_or_else(|| name.clone());
        let kind = p
            .require("register", |s, k| {
                s.take_choice(k, &["coil", "discrete", "holding", "input"])
            })
            .and_then(RegisterKind::parse)
            .unwrap_or(RegisterKind::Holding);
        let address = p
            .require("address", |s, k| s.take_int(k, 0..=65_535))
            .and_then(|a| u16::try_from(a).ok())
            .unwrap_or(0);
        let default_type = if kind.is_bits() { "bool" } else { "u16" };
        let type_name = p
            .take_choice("type", &DataType::NAMES)
            .unwrap_or(default_type);
        let bit = p.take_int("bit", 0..=15).and_then(|b| u8::try_from(b).ok());
        let length = p
            .take_int("length", 1..=250)
            .and_then(|b| u8::try_from(b).ok());
        let arg = match type_name {
            "bit" => {
                if !p.was_present("bit") {
                    p.problem("bit", "type \"bit\" needs `bit` (0–15)");
                }
                bit.or(Some(0))
            }
            "string" => {
                if !p.was_present("length") {
                    p.problem("length", "type \"string\" needs `length` in bytes");
                }
                length.or(Some(2))
            }
            _ => {
                for key in ["bit", "length"] {
                    if p.was_present(key) {
                        p.problem(
                            key,
                            format!("only for type \"bit\"/\"string\", not {type_name:?}"),
                        );
                    }
                }
                None
            }
        };
        let data_type = DataType::parse(type_name, arg).unwrap_or(DataType::U16);
        let order = match p.take_str("order") {
            Some(o) => WordOrder::parse(&o).unwrap_or_else(|| {
                p.problem(
                    "order",
                    format!("unknown order {o:?}; expected ABCD, CDAB, BADC or DCBA"),
                );
                WordOrder::Abcd
            }),
            None => WordOrder::Abcd,
        };
        let scale = p.take_f64("scale").unwrap_or(1.0);
        let offset = p.take_f64("offset").unwrap_or(0.0);
        let unit = p.take_str("unit").unwrap_or_default();
        let deadband = p.take_f64("deadband").unwrap_or(0.0);
        let group = match p.take_str("group") {
            Some(g) => groups.iter().position(|x| x.name == g).unwrap_or_else(|| {
                let known: Vec<&str> = groups.iter().map(|x| x.name.as_str()).collect();
                p.problem(
                    "group",
                    format!("no poll group {g:?}; defined: {}", known.join(", ")),
                );
                0
            }),
            None => 0,
        };
        let writable = p.take_bool("writable").unwrap_or(false);
        let min = p.take_f64("min");
        let max = p.take_f64("max");
        let write = if writable {
            let (lo, hi) = if data_type.is_boolean() {
                (0.0, 1.0)
            } else {
                if min.is_none() || max.is_none() {
                    p.problem("writable", "a writable number needs `min` and `max`");
                }
                (min.unwrap_or(0.0), max.unwrap_or(0.0))
            };
            Some(WriteLimits { min: lo, max: hi })
        } else {
            for key in ["min", "max"] {
                if p.was_present(key) {
                    p.problem(key, "only for `writable = true` points");
                }
            }
            None
        };
        let mut a = p.take_table("alarm");
        let alarm = p.was_present("alarm").then(|| {
            let on_delay = a.take_duration("on_delay").unwrap_or(Duration::ZERO);
            let off_delay = a.take_duration("off_delay").unwrap_or(Duration::ZERO);
            match a.take_bool("when") {
                Some(active_when) => AlarmRule::State {
                    active_when,
                    on_delay,
                    off_delay,
                },
                None => AlarmRule::Threshold {
                    high: a.take_f64("high"),
                    low: a.take_f64("low"),
                    hysteresis: a.take_f64("hysteresis").unwrap_or(0.0),
                    on_delay,
                    off_delay,
                },
            }
        });
        a.finish();
        entries.push(Entry {
            point: Point {
                name,
                display,
                kind,
                address,
                data_type,
                order,
                scale,
                offset,
                unit,
                deadband,
                group,
                write,
                alarm,
            },
            section: p,
        });
    }
    entries
}

/// Reads a compiled-in preset: its groups and points, or its problems.
type Preset = (Vec<PollGroup>, Vec<Point>);

fn preset(name: &str) -> Option<Result<Preset, Vec<Problem>>> {
    let (_, file, text) = PRESETS.iter().find(|(n, _, _)| *n == name)?;
    let diag = Diagnostics::new(file, text);
    let parsed = match toml::de::DeTable::parse(text) {
        Ok(doc) => {
            let mut root = Section::root(&diag, doc);
            let _ = root.take_str("description");
            let mut groups = Vec::new();
            let entries = read_table(&mut root, &mut groups);
            root.finish();
            let points: Vec<Point> = entries.iter().map(|e| e.point.clone()).collect();
            for e in entries {
                e.section.finish();
            }
            Some((groups, points))
        }
        Err(e) => {
            diag.report(&e.span().unwrap_or(0..0), "", e.message().to_owned());
            None
        }
    };
    let problems = diag.into_problems();
    Some(match parsed {
        Some(table) if problems.is_empty() => Ok(table),
        _ => Err(problems),
    })
}

/// Reads a `modbus-points` device.
pub(crate) fn read_modbus_points(s: &mut Section<'_, '_>) -> DeviceKind {
    let transport = read_modbus_transport(s);
    let slave = s.take_int("slave", 1..=247).unwrap_or(1);
    let timeout = s
        .take_duration("timeout")
        .unwrap_or(Duration::from_millis(300));
    let max_gap = s.take_int("max_gap", 0..=100).unwrap_or(8);
    let full_report = s
        .take_duration("full_report")
        .unwrap_or(Duration::from_secs(300));
    let backoff_max = s
        .take_duration("backoff_max")
        .unwrap_or(Duration::from_secs(60));
    for (key, d) in [
        ("timeout", timeout),
        ("full_report", full_report),
        ("backoff_max", backoff_max),
    ] {
        if d.is_zero() {
            s.problem(key, "must be greater than zero");
        }
    }
    let names: Vec<&str> = PRESETS.iter().map(|(n, _, _)| *n).collect();
    let mut groups = Vec::new();
    let mut preset_points = Vec::new();
    if let Some(name) = s.take_choice("preset", &names) {
        match preset(name) {
            Some(Ok((g, p))) => {
                groups = g;
                preset_points = p;
            }
            Some(Err(problems)) => {
                for problem in problems {
                    s.problem("preset", format!("preset {name:?}: {problem}"));
                }
            }
            None => {}
        }
    }
    let own = read_table(s, &mut groups);
    if groups.is_empty() {
        groups.push(PollGroup {
            name: "default".into(),
            interval: DEFAULT_INTERVAL,
        });
    }
    if preset_points.is_empty() && own.is_empty() && !s.was_present("preset") {
        s.problem(
            "points",
            "needs `preset` or at least one [[devices.points]]",
        );
    }
    // The preset's points come first, the device's own follow; problems
    // land on the device's point keys, or on `preset`.
    let mut all = preset_points;
    all.extend(own.iter().map(|e| e.point.clone()));
    let table = match PointTable::new(all, groups.clone()) {
        Ok(table) => table,
        Err(errors) => {
            for TableError {
                point,
                key,
                message,
            } in errors
            {
                match own.iter().find(|e| e.point.name == point) {
                    Some(e) => e.section.problem(key, message),
                    None => s.problem("preset", format!("point {point:?}: {message}")),
                }
            }
            PointTable::empty(DEFAULT_INTERVAL)
        }
    };
    for e in own {
        e.section.finish();
    }
    DeviceKind::ModbusPoints {
        transport,
        slave: u8::try_from(slave).unwrap_or(1),
        table: Arc::new(table),
        timeout,
        max_gap: u16::try_from(max_gap).unwrap_or(8),
        full_report,
        backoff_max,
    }
}
