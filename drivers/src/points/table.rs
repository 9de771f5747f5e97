//! A Modbus device's point table: what each point is, where it lives, how
//! its registers become a value, and the checks that make a table
//! trustworthy before it is polled (no overlaps, no impossible types, no
//! addresses past the end of the register space).
//!
//! Pure data; no IO.

use std::collections::HashMap;
use std::time::Duration;

/// The four Modbus data tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterKind {
    /// Read-write bits (FC01 read, FC05/FC15 write).
    Coil,
    /// Read-only bits (FC02).
    DiscreteInput,
    /// Read-write 16-bit registers (FC03 read, FC06/FC16 write).
    Holding,
    /// Read-only 16-bit registers (FC04).
    Input,
}

impl RegisterKind {
    /// The config name (`coil`, `discrete`, `holding`, `input`).
    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Coil => "coil",
            RegisterKind::DiscreteInput => "discrete",
            RegisterKind::Holding => "holding",
            RegisterKind::Input => "input",
        }
    }

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            RegisterKind::Coil,
            RegisterKind::DiscreteInput,
            RegisterKind::Holding,
            RegisterKind::Input,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether the table holds bits (coils, discrete inputs) rather than
    /// 16-bit registers.
    pub fn is_bits(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::DiscreteInput)
    }

    /// Whether a master may write it.
    pub fn is_writable(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::Holding)
    }

    /// The most items one read may ask for (Modbus application protocol
    /// v1.1b3: 2000 bits, 125 registers).
    pub fn max_per_read(self) -> u16 {
        if self.is_bits() { 2000 } else { 125 }
    }
}

/// How a point's registers are interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// A coil or discrete input; on a register, "non-zero".
    Bool,
    /// One bit (0 = least significant) of a 16-bit register.
    Bit(u8),
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    I16,
    /// Unsigned 32-bit (two registers).
    U32,
    /// Signed 32-bit (two registers).
    I32,
    /// Unsigned 64-bit (four registers).
    U64,
    /// Signed 64-bit (four registers).
    I64,
    /// IEEE 754 single (two registers).
    F32,
    /// IEEE 754 double (four registers).
    F64,
    /// A fixed-length string of this many bytes (two per register),
    /// trailing NULs and spaces removed.
    Str(u8),
}

impl DataType {
    /// Parses the config name: `bool`, `bit`, `u16` … `f64`, `string`.
    /// `bit` takes its bit number and `string` its length from `arg`.
    pub fn parse(name: &str, arg: Option<u8>) -> Option<Self> {
        Some(match name {
            "bool" => DataType::Bool,
            "bit" => DataType::Bit(arg?),
            "u16" => DataType::U16,
            "i16" => DataType::I16,
            "u32" => DataType::U32,
            "i32" => DataType::I32,
            "u64" => DataType::U64,
            "i64" => DataType::I64,
            "f32" => DataType::F32,
            "f64" => DataType::F64,
            "string" => DataType::Str(arg?),
            _ => return None,
        })
    }

    /// Every config name.
    pub const NAMES: [&'static str; 11] = [
        "bool", "bit", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "string",
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Bit(_) => "bit",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::Str(_) => "string",
        }
    }

    /// Registers (or bits, in a bit table) the value occupies.
    pub fn width(self) -> u16 {
        match self {
            DataType::Bool | DataType::Bit(_) | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
            DataType::Str(len) => u16::from(len).div_ceil(2),
        }
    }

    /// Whether the value is a number (scaled, deadbanded, threshold alarms).
    pub fn is_numeric(self) -> bool {
        !matches!(self, DataType::Bool | DataType::Bit(_) | DataType::Str(_))
    }

    /// Whether the value is on/off (state alarms).
    pub fn is_boolean(self) -> bool {
        matches!(self, DataType::Bool | DataType::Bit(_))
    }
}

/// Byte and word order of multi-register values, named after where the
/// bytes `A B C D` of a big-endian 32-bit value end up (`A B` in the first
/// register's high and low byte for `ABCD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum WordOrder {
    /// Big-endian bytes, high word first (the Modbus convention).
    #[default]
    Abcd,
    /// Low word first, big-endian bytes in each word (many PLCs, meters).
    Cdab,
    /// High word first, bytes swapped in each word.
    Badc,
    /// Fully little-endian.
    Dcba,
}

impl WordOrder {
    /// Parses `ABCD`, `CDAB`, `BADC`, `DCBA` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "ABCD" => Some(WordOrder::Abcd),
            "CDAB" => Some(WordOrder::Cdab),
            "BADC" => Some(WordOrder::Badc),
            "DCBA" => Some(WordOrder::Dcba),
            _ => None,
        }
    }

    /// Whether the low word comes first.
    pub fn words_swapped(self) -> bool {
        matches!(self, WordOrder::Cdab | WordOrder::Dcba)
    }

    /// Whether each register carries its low byte first.
    pub fn bytes_swapped(self) -> bool {
        matches!(self, WordOrder::Badc | WordOrder::Dcba)
    }
}

/// A threshold or state alarm on one point.
#[derive(Clone, Debug, PartialEq)]
pub enum AlarmRule {
    /// An analog point outside a band.
    Threshold {
        /// Raised above this (engineering units).
        high: Option<f64>,
        /// Raised below this.
        low: Option<f64>,
        /// Cleared only this far back inside the band.
        hysteresis: f64,
        /// The condition must hold this long before the alarm is raised.
        on_delay: Duration,
        /// The value must be back this long before the alarm clears.
        off_delay: Duration,
    },
    /// A boolean point in its alarm state (pump fault, trapped passenger).
    State {
        /// The value that means "alarm".
        active_when: bool,
        /// Delay before raising.
        on_delay: Duration,
        /// Delay before clearing.
        off_delay: Duration,
    },
}

/// Limits of a writable point (set-points, coils).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WriteLimits {
    /// Lowest value accepted (engineering units).
    pub min: f64,
    /// Highest value accepted.
    pub max: f64,
}

/// One point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Name, unique within the device (`outlet_pressure`).
    pub name: String,
    /// Display name for the panel (`出口压力`).
    pub display: String,
    /// Which table.
    pub kind: RegisterKind,
    /// Zero-based address in that table.
    pub address: u16,
    /// How the registers are read.
    pub data_type: DataType,
    /// Byte and word order of multi-register values.
    pub order: WordOrder,
    /// Engineering value = raw × scale + offset.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
    /// Unit (`MPa`, `Hz`, `m`).
    pub unit: String,
    /// Report by exception only when the value moved at least this much
    /// (0: any change).
    pub deadband: f64,
    /// The poll group (index into the device's groups).
    pub group: usize,
    /// Present when the point may be written, with its accepted range.
    pub write: Option<WriteLimits>,
    /// An alarm on the point.
    pub alarm: Option<AlarmRule>,
}

impl Point {
    /// A read-only point with defaults (ABCD, scale 1, no deadband, group 0).
    pub fn new(name: &str, kind: RegisterKind, address: u16, data_type: DataType) -> Self {
        Self {
            name: name.to_owned(),
            display: name.to_owned(),
            kind,
            address,
            data_type,
            order: WordOrder::Abcd,
            scale: 1.0,
            offset: 0.0,
            unit: String::new(),
            deadband: 0.0,
            group: 0,
            write: None,
            alarm: None,
        }
    }

    /// The first address past the point (may be 65536).
    pub fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.width())
    }

    /// Items the point occupies in its table.
    pub fn width(&self) -> u16 {
        if self.kind.is_bits() {
            1
        } else {
            self.data_type.width()
        }
    }
}

/// A poll group: the points read together, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollGroup {
    /// Name (`fast`, `slow`).
    pub name: String,
    /// Time between polls.
    pub interval: Duration,
}

/// What is wrong with a table; `point` names the offending point.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("point {point:?}: {message}")]
pub struct TableError {
    /// The point (its name, or `#n` when it has none).
    pub point: String,
    /// Which point-table key the problem is about (`address`, `type` …).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A checked point table.
#[derive(Clone, Debug, PartialEq)]
pub struct PointTable {
    points: Vec<Point>,
    groups: Vec<PollGroup>,
}

impl PointTable {
    /// Checks `points` against each other and `groups`; every problem is
    /// returned, in point order.
    pub fn new(points: Vec<Point>, groups: Vec<PollGroup>) -> Result<Self, Vec<TableError>> {
        let mut errors = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, p) in points.iter().enumerate() {
            let mut problem = |key: &'static str, message: String| {
                errors.push(TableError {
                    point: if p.name.is_empty() {
                        format!("#{}", i + 1)
                    } else {
                        p.name.clone()
                    },
                    key,
                    message,
                });
            };
            if p.name.is_empty() {
                problem("name", "must not be empty".into());
            } else if let Some(first) = names.insert(&p.name, i) {
                problem(
                    "name",
                    format!("duplicate name (first used by point #{})", first + 1),
                );
            }
            problem_list(p, &groups, &mut problem);
        }
        overlaps(&points, &mut errors);
        if groups.is_empty() {
            errors.push(TableError {
                point: "-".into(),
                key: "poll",
                message: "the device needs at least one poll group".into(),
            });
        }
        if errors.is_empty() {
            Ok(Self { points, groups })
        } else {
            Err(errors)
        }
    }

    /// A table without points (one poll group of `interval`): what stands
    /// in for a table that failed its checks.
    pub fn empty(interval: Duration) -> Self {
        Self {
            points: Vec::new(),
            groups: vec![PollGroup {
                name: "default".into(),
                interval,
            }],
        }
    }

    /// The points, in table order.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// The poll groups.
    pub fn groups(&self) -> &[PollGroup] {
        &self.groups
    }

    /// The index of the point called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.points.iter().position(|p| p.name == name)
    }
}

fn problem_list(p: &Point, groups: &[PollGroup], problem: &mut impl FnMut(&'static str, String)) {
    let t = p.data_type;
    if p.kind.is_bits() && t != DataType::Bool {
        problem(
            "type",
            format!(
                "a {} holds single bits: the type must be bool, found {}",
                p.kind.as_str(),
                t.name()
            ),
        );
    }
    match t {
        DataType::Bit(b) if b > 15 => {
            problem("bit", format!("a register has bits 0–15, found {b}"))
        }
        DataType::Str(0) => problem("length", "a string needs at least one byte".into()),
        _ => {}
    }
    if p.end() > 65_536 {
        problem(
            "address",
            format!(
                "{} items from {} run past the last address 65535",
                p.width(),
                p.address
            ),
        );
    }
    if u32::from(p.width()) > u32::from(p.kind.max_per_read()) {
        problem(
            "length",
            format!(
                "{} registers do not fit one read (at most {})",
                p.width(),
                p.kind.max_per_read()
            ),
        );
    }
    if !p.scale.is_finite() || p.scale == 0.0 {
        problem(
            "scale",
            format!("must be a non-zero number, found {}", p.scale),
        );
    }
    if !p.offset.is_finite() {
        problem("offset", "must be a number".into());
    }
    if !p.deadband.is_finite() || p.deadband < 0.0 {
        problem(
            "deadband",
            format!("must be zero or more, found {}", p.deadband),
        );
    }
    if p.group >= groups.len() {
        problem("group", format!("no poll group #{}", p.group + 1));
    }
    if let Some(w) = p.write {
        if !p.kind.is_writable() {
            problem(
                "writable",
                format!("a {} cannot be written", p.kind.as_str()),
            );
        } else if matches!(t, DataType::Str(_) | DataType::Bit(_)) {
            problem(
                "writable",
                format!("a {} point cannot be written", t.name()),
            );
        }
        if !(w.min.is_finite() && w.max.is_finite()) || w.min > w.max {
            problem("max", format!("write range {}..{} is empty", w.min, w.max));
        }
    }
    match &p.alarm {
        Some(AlarmRule::Threshold {
            high,
            low,
            hysteresis,
            ..
        }) => {
            if !t.is_numeric() {
                problem(
                    "alarm",
                    format!("a threshold alarm needs a numeric point, not {}", t.name()),
                );
            }
            if high.is_none() && low.is_none() {
                problem("alarm", "needs `high`, `low` or both".into());
            }
            if let (Some(h), Some(l)) = (high, low)
                && l >= h
            {
                problem("alarm", format!("low ({l}) must be below high ({h})"));
            }
            if *hysteresis < 0.0 || !hysteresis.is_finite() {
                problem("alarm", "hysteresis must be zero or more".into());
            }
        }
        Some(AlarmRule::State { .. }) if !t.is_boolean() => problem(
            "alarm",
            format!("a state alarm needs a bool or bit point, not {}", t.name()),
        ),
        _ => {}
    }
}

/// Points that share an item of the same table. Bits of one register may
/// share it as long as their bit numbers differ.
fn overlaps(points: &[Point], errors: &mut Vec<TableError>) {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].kind, points[i].address, i));
    for (n, &i) in order.iter().enumerate() {
        let a = &points[i];
        for &j in &order[n + 1..] {
            let b = &points[j];
            if b.kind != a.kind || u32::from(b.address) >= a.end() {
                break;
            }
            let bits_apart = matches!((a.data_type, b.data_type),
                (DataType::Bit(x), DataType::Bit(y)) if x != y);
            if !bits_apart {
                let (first, second) = if i < j { (a, b) } else { (b, a) };
                errors.push(TableError {
                    point: second.name.clone(),
                    key: "address",
                    message: format!(
                        "{} {} overlaps point {:?} ({}..{})",
                        second.kind.as_str(),
                        second.address,
                        first.name,
                        first.address,
                        first.end() - 1
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Vec<PollGroup> {
        vec![PollGroup {
            name: "fast".into(),
            interval: Duration::from_secs(1),
        }]
    }

    #[test]
    fn table_reports_overlaps_impossible_types_and_addresses_out_of_range() {
        let mut bits = Point::new("pumps", RegisterKind::Holding, 10, DataType::Bit(0));
        bits.display = "泵运行".into();
        let points = vec![
            Point::new("pressure", RegisterKind::Holding, 0, DataType::F32),
            Point::new("freq", RegisterKind::Holding, 1, DataType::U16),
            bits,
            Point::new("pump2", RegisterKind::Holding, 10, DataType::Bit(1)),
            Point::new("pump3", RegisterKind::Holding, 10, DataType::Bit(1)),
            Point::new("fault", RegisterKind::Coil, 0, DataType::U16),
            Point::new("count", RegisterKind::Input, 65_534, DataType::U64),
            Point::new("last", RegisterKind::Input, 65_535, DataType::U16),
            Point::new("bad_bit", RegisterKind::Input, 20, DataType::Bit(16)),
            Point::new("pressure", RegisterKind::Input, 30, DataType::U16),
        ];
        let errors = PointTable::new(points, group()).expect_err("problems");
        let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.point.as_str(), e.key)).collect();
        assert!(got.contains(&("freq", "address")), "{errors:?}");
        assert!(got.contains(&("pump3", "address")), "{errors:?}");
        assert!(!got.contains(&("pump2", "address")), "{errors:?}");
        assert!(got.contains(&("fault", "type")), "{errors:?}");
        assert!(got.contains(&("count", "address")), "{errors:?}");
        assert!(got.contains(&("bad_bit", "bit")), "{errors:?}");
        assert!(got.contains(&("pressure", "name")), "{errors:?}");
        // The count overlaps `last` too.
        assert!(got.contains(&("last", "address")), "{errors:?}");
        let ok = PointTable::new(
            vec![Point::new(
                "top",
                RegisterKind::Input,
                65_534,
                DataType::U32,
            )],
            group(),
        );
        assert!(ok.is_ok(), "the last two registers hold a u32: {ok:?}");
    }

    #[test]
    fn table_checks_writes_alarms_and_groups() {
        let mut set = Point::new("setpoint", RegisterKind::Input, 0, DataType::U16);
        set.write = Some(WriteLimits { min: 0.0, max: 1.0 });
        let mut alarm = Point::new("name", RegisterKind::Holding, 1, DataType::Str(8));
        alarm.alarm = Some(AlarmRule::Threshold {
            high: Some(1.0),
            low: Some(2.0),
            hysteresis: 0.0,
            on_delay: Duration::ZERO,
            off_delay: Duration::ZERO,
        });
        let mut grouped = Point::new("x", RegisterKind::Holding, 9, DataType::U16);
        grouped.group = 3;
        let errors = PointTable::new(vec![set, alarm, grouped], group()).expect_err("problems");
        let keys: Vec<_> = errors.iter().map(|e| (e.point.as_str(), e.key)).collect();
        assert!(keys.contains(&("setpoint", "writable")), "{errors:?}");
        assert_eq!(
            keys.iter().filter(|k| **k == ("name", "alarm")).count(),
            2,
            "{errors:?}"
        );
        assert!(keys.contains(&("x", "group")), "{errors:?}");
        assert!(PointTable::new(vec![], vec![]).is_err());
    }

    #[test]
    fn widths_follow_types_and_strings_round_up() {
        assert_eq!(DataType::F64.width(), 4);
        assert_eq!(DataType::Str(5).width(), 3);
        assert_eq!(DataType::parse("bit", Some(3)), Some(DataType::Bit(3)));
        assert_eq!(DataType::parse("bit", None), None);
        assert_eq!(WordOrder::parse("cdab"), Some(WordOrder::Cdab));
        for name in DataType::NAMES {
            assert_eq!(
                DataType::parse(name, Some(2)).map(DataType::name),
                Some(name)
            );
        }
    }
}
