//! Shared rig for the point-table tests: a table holding every data type in
//! every word order with the register words a device would hold for known
//! values (written out here byte by byte, independently of the codec), a
//! driver task with its context, and waiting on its events.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use drivers::TestContext;
use drivers::barrier::BusHandle;
use drivers::points::{
    AlarmRule, DataType, Point, PointTable, PointsConfig, PointsDriver, PointsView, PollGroup,
    RegisterKind, WordOrder, WriteLimits,
};
use drivers::{
    Command, CommandOutcome, CommandRequest, DeviceEvent, Driver, DriverContext, DriverError,
    Reading,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any single condition may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Where the bytes A B C D (E F G H) of a big-endian value go, per order.
fn permute(bytes: &[u8], order: WordOrder) -> Vec<u16> {
    let n = bytes.len();
    let index: Vec<usize> = match order {
        WordOrder::Abcd => (0..n).collect(),
        // Fully reversed.
        WordOrder::Dcba => (0..n).rev().collect(),
        // Bytes swapped in each word: 1 0 3 2 …
        WordOrder::Badc => (0..n).map(|i| i ^ 1).collect(),
        // Words reversed, bytes kept: (C D A B) = 2 3 0 1 …
        WordOrder::Cdab => (0..n).map(|i| n - 2 - (i / 2) * 2 + i % 2).collect(),
    };
    let out: Vec<u8> = index.iter().map(|&i| bytes[i]).collect();
    out.chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// A table of known values: the points, the holding and input registers,
/// coils and discrete inputs a device must hold, and what each point must
/// read as.
pub struct Known {
    pub points: Vec<Point>,
    pub holding: Vec<u16>,
    pub input: Vec<u16>,
    pub coils: Vec<bool>,
    pub discrete: Vec<bool>,
    pub expected: HashMap<String, Reading>,
}

pub const ORDERS: [WordOrder; 4] = [
    WordOrder::Abcd,
    WordOrder::Cdab,
    WordOrder::Badc,
    WordOrder::Dcba,
];

pub fn known() -> Known {
    let mut k = Known {
        points: Vec::new(),
        holding: Vec::new(),
        input: Vec::new(),
        coils: vec![false, true, false, true],
        discrete: vec![true, false],
        expected: HashMap::new(),
    };
    let add = |k: &mut Known, name: String, t: DataType, order, bytes: &[u8], value: Reading| {
        let address = u16::try_from(k.holding.len()).expect("small table");
        k.holding.extend(permute(bytes, order));
        let mut p = Point::new(&name, RegisterKind::Holding, address, t);
        p.order = order;
        k.points.push(p);
        k.expected.insert(name, value);
    };
    for order in ORDERS {
        let o = format!("{order:?}").to_lowercase();
        add(
            &mut k,
            format!("u16_{o}"),
            DataType::U16,
            order,
            &0xBEEF_u16.to_be_bytes(),
            Reading::Number(48_879.0),
        );
        add(
            &mut k,
            format!("i16_{o}"),
            DataType::I16,
            order,
            &(-1234_i16).to_be_bytes(),
            Reading::Number(-1234.0),
        );
        add(
            &mut k,
            format!("u32_{o}"),
            DataType::U32,
            order,
            &0xDEAD_BEEF_u32.to_be_bytes(),
            Reading::Number(3_735_928_559.0),
        );
        add(
            &mut k,
            format!("i32_{o}"),
            DataType::I32,
            order,
            &(-123_456_789_i32).to_be_bytes(),
            Reading::Number(-123_456_789.0),
        );
        add(
            &mut k,
            format!("f32_{o}"),
            DataType::F32,
            order,
            &0.25_f32.to_be_bytes(),
            Reading::Number(0.25),
        );
        add(
            &mut k,
            format!("u64_{o}"),
            DataType::U64,
            order,
            &0x0102_0304_0506_0708_u64.to_be_bytes(),
            Reading::Number(0x0102_0304_0506_0708_u64 as f64),
        );
        add(
            &mut k,
            format!("i64_{o}"),
            DataType::I64,
            order,
            &(-9_876_543_210_i64).to_be_bytes(),
            Reading::Number(-9_876_543_210.0),
        );
        add(
            &mut k,
            format!("f64_{o}"),
            DataType::F64,
            order,
            &(-1234.5678_f64).to_be_bytes(),
            Reading::Number(-1234.5678),
        );
    }
    // A string (ABCD bytes), a status word with bits, a bool register, a
    // scaled input register.
    let at = u16::try_from(k.holding.len()).expect("small");
    k.holding.extend([0x4748, 0x2D45, 0x4C56, 0x0000]); // "GH-ELV"
    k.points.push(Point::new(
        "model",
        RegisterKind::Holding,
        at,
        DataType::Str(8),
    ));
    k.expected
        .insert("model".into(), Reading::Text("GH-ELV".into()));
    k.holding.push(0b1010);
    for bit in 0..4u8 {
        let name = format!("bit{bit}");
        k.points.push(Point::new(
            &name,
            RegisterKind::Holding,
            at + 4,
            DataType::Bit(bit),
        ));
        k.expected.insert(name, Reading::Bool(bit % 2 == 1));
    }
    k.holding.push(7);
    k.points.push(Point::new(
        "flag",
        RegisterKind::Holding,
        at + 5,
        DataType::Bool,
    ));
    k.expected.insert("flag".into(), Reading::Bool(true));
    k.input = vec![0, 0, 425];
    let mut pressure = Point::new("pressure", RegisterKind::Input, 2, DataType::U16);
    pressure.scale = 0.001;
    pressure.unit = "MPa".into();
    k.points.push(pressure);
    k.expected.insert("pressure".into(), Reading::Number(0.425));
    for (i, on) in k.coils.clone().into_iter().enumerate() {
        let name = format!("coil{i}");
        let mut p = Point::new(
            &name,
            RegisterKind::Coil,
            u16::try_from(i).expect("small"),
            DataType::Bool,
        );
        p.write = Some(WriteLimits { min: 0.0, max: 1.0 });
        k.points.push(p);
        k.expected.insert(name, Reading::Bool(on));
    }
    k.points.push(Point::new(
        "low_water",
        RegisterKind::DiscreteInput,
        0,
        DataType::Bool,
    ));
    k.expected.insert("low_water".into(), Reading::Bool(true));
    // A writable set-point after the rest.
    let sp_at = u16::try_from(k.holding.len()).expect("small");
    k.holding.push(400);
    let mut sp = Point::new("setpoint", RegisterKind::Holding, sp_at, DataType::U16);
    sp.scale = 0.001;
    sp.write = Some(WriteLimits { min: 0.1, max: 0.8 });
    k.points.push(sp);
    k.expected.insert("setpoint".into(), Reading::Number(0.4));
    k
}

/// One poll group of `interval`.
pub fn groups(interval: Duration) -> Vec<PollGroup> {
    vec![PollGroup {
        name: "fast".into(),
        interval,
    }]
}

/// A small table: a status word with a state alarm on bit 2 and a
/// pressure with a low threshold, at holding 0–2.
pub fn small_table(interval: Duration) -> Arc<PointTable> {
    let mut fault = Point::new("pump_fault", RegisterKind::Holding, 0, DataType::Bit(2));
    fault.alarm = Some(AlarmRule::State {
        active_when: true,
        on_delay: Duration::ZERO,
        off_delay: Duration::ZERO,
    });
    let mut pressure = Point::new("pressure", RegisterKind::Holding, 1, DataType::F32);
    pressure.deadband = 0.01;
    pressure.alarm = Some(AlarmRule::Threshold {
        high: None,
        low: Some(0.2),
        hysteresis: 0.02,
        on_delay: Duration::ZERO,
        off_delay: Duration::ZERO,
    });
    Arc::new(PointTable::new(vec![fault, pressure], groups(interval)).expect("a valid table"))
}

/// A running driver and the test's ends of its context.
pub struct Rig {
    pub events: mpsc::Receiver<drivers::Inbound>,
    pub seen: Vec<DeviceEvent>,
    pub commands: mpsc::Sender<CommandRequest>,
    pub cancel: CancellationToken,
    pub view: PointsView,
    pub task: JoinHandle<Result<(), DriverError>>,
}

impl Rig {
    pub fn start(bus: BusHandle, config: PointsConfig) -> Self {
        let TestContext {
            mut ctx,
            events,
            commands,
            health: _health,
            cancel,
        } = DriverContext::for_test(&format!("unit-{}", config.slave), 1024);
        let view = PointsView::new(Arc::clone(&config.table));
        let mut driver = PointsDriver::new(bus, config, view.clone());
        assert_eq!(driver.kind(), "modbus-points");
        let task = tokio::spawn(async move { driver.run(&mut ctx).await });
        Self {
            events,
            seen: Vec::new(),
            commands,
            cancel,
            view,
            task,
        }
    }

    /// Waits for an event matching `pred`, recording everything seen.
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&DeviceEvent) -> bool,
    ) -> DeviceEvent {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(inbound)) => {
                    self.seen.push(inbound.event.clone());
                    if pred(&inbound.event) {
                        return inbound.event;
                    }
                }
                Ok(None) => panic!(
                    "driver ended while waiting for {what}; seen {:?}",
                    self.seen
                ),
                Err(_) => panic!("no {what} within {DEADLINE:?}; seen {:?}", self.seen),
            }
        }
    }

    /// The values of the first full report.
    pub async fn full_report(&mut self) -> HashMap<String, Option<Reading>> {
        let DeviceEvent::PointReport { samples, .. } = self
            .wait_for("a full report", |e| {
                matches!(e, DeviceEvent::PointReport { full: true, .. })
            })
            .await
        else {
            unreachable!()
        };
        samples.into_iter().map(|s| (s.point, s.value)).collect()
    }

    /// Waits until every point is good, then returns their values (as
    /// reported: the view is what the reports are made from).
    pub async fn good_values(&mut self) -> HashMap<String, Option<Reading>> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let status = self.view.snapshot();
            if status.iter().all(|s| s.quality == drivers::Quality::Good) {
                return self
                    .view
                    .table()
                    .points()
                    .iter()
                    .zip(status)
                    .map(|(p, s)| (p.name.clone(), s.value))
                    .collect();
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(inbound)) => self.seen.push(inbound.event),
                Ok(None) => panic!("driver ended; seen {:?}", self.seen),
                Err(_) => panic!(
                    "points not all good within {DEADLINE:?}; seen {:?}",
                    self.seen
                ),
            }
        }
    }

    pub async fn command(&self, command: Command) -> CommandOutcome {
        let (request, outcome) = CommandRequest::new(command);
        self.commands.send(request).await.expect("inbox open");
        tokio::time::timeout(DEADLINE, outcome)
            .await
            .expect("answered in time")
            .expect("answered")
    }

    pub async fn stop(self) -> Result<(), DriverError> {
        self.cancel.cancel();
        self.task.await.expect("joined")
    }
}

/// Asserts that every expected point read as its known value.
pub fn assert_known(got: &HashMap<String, Option<Reading>>, known: &Known) {
    for (name, want) in &known.expected {
        let value = got.get(name).cloned().flatten();
        match (want, &value) {
            (Reading::Number(w), Some(Reading::Number(g))) => {
                assert!(
                    (w - g).abs() <= w.abs() * 1e-9 + 1e-9,
                    "{name}: want {w}, got {g}"
                );
            }
            _ => assert_eq!(value.as_ref(), Some(want), "{name}"),
        }
    }
}
