//! Simulated facility devices behind one Modbus server (a tokio-modbus
//! **server**, as an RS-485 line or a Modbus/TCP gateway with several unit
//! ids): a variable-frequency secondary water-supply controller (二次供水)
//! whose outlet pressure follows the residents' demand and whose pumps trip
//! now and then, an elevator monitor whose car moves between floors, and
//! plain register banks for tests.
//!
//! Each unit is a register bank (coils, discrete inputs, holding and input
//! registers, 256 of each); a unit's dynamics advance by tokio's clock
//! before each request is answered and write their state into the bank, in
//! the layout of the presets `config/points/vfd-water-supply.toml` and
//! `config/points/elevator-monitor.toml`. Faults can be injected per unit:
//! silence, Modbus exceptions, slow answers.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

/// Items per table in a simulated unit.
pub const BANK_SIZE: u16 = 256;

/// The four tables of one unit.
#[derive(Debug, Clone)]
pub struct Bank {
    /// Coils.
    pub coils: Vec<bool>,
    /// Discrete inputs.
    pub discrete: Vec<bool>,
    /// Holding registers.
    pub holding: Vec<u16>,
    /// Input registers.
    pub input: Vec<u16>,
}

impl Default for Bank {
    fn default() -> Self {
        let n = usize::from(BANK_SIZE);
        Self {
            coils: vec![false; n],
            discrete: vec![false; n],
            holding: vec![0; n],
            input: vec![0; n],
        }
    }
}

impl Bank {
    /// Writes a u32 as two registers, high word first.
    pub fn set_u32(&mut self, at: usize, v: u32) {
        self.holding[at] = (v >> 16) as u16;
        self.holding[at + 1] = (v & 0xFFFF) as u16;
    }

    /// Writes an f32 as two registers, high word first.
    pub fn set_f32(&mut self, at: usize, v: f32) {
        self.set_u32(at, v.to_bits());
    }

    fn handle(&mut self, request: Request<'_>) -> Result<Response, ExceptionCode> {
        let span = |first: u16, count: u16| {
            let end = u32::from(first) + u32::from(count);
            (count > 0 && end <= u32::from(BANK_SIZE))
                .then(|| (usize::from(first), end as usize))
                .ok_or(ExceptionCode::IllegalDataAddress)
        };
        Ok(match request {
            Request::ReadCoils(a, n) => {
                let (a, b) = span(a, n)?;
                Response::ReadCoils(self.coils[a..b].to_vec())
            }
            Request::ReadDiscreteInputs(a, n) => {
                let (a, b) = span(a, n)?;
                Response::ReadDiscreteInputs(self.discrete[a..b].to_vec())
            }
            Request::ReadHoldingRegisters(a, n) => {
                let (a, b) = span(a, n)?;
                Response::ReadHoldingRegisters(self.holding[a..b].to_vec())
            }
            Request::ReadInputRegisters(a, n) => {
                let (a, b) = span(a, n)?;
                Response::ReadInputRegisters(self.input[a..b].to_vec())
            }
            Request::WriteSingleCoil(a, on) => {
                let (i, _) = span(a, 1)?;
                self.coils[i] = on;
                Response::WriteSingleCoil(a, on)
            }
            Request::WriteSingleRegister(a, v) => {
                let (i, _) = span(a, 1)?;
                self.holding[i] = v;
                Response::WriteSingleRegister(a, v)
            }
            Request::WriteMultipleRegisters(a, values) => {
                let n = u16::try_from(values.len()).map_err(|_| ExceptionCode::IllegalDataValue)?;
                let (i, j) = span(a, n)?;
                self.holding[i..j].copy_from_slice(&values);
                Response::WriteMultipleRegisters(a, n)
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        })
    }
}

/// The dynamics of a unit.
#[derive(Debug, Clone)]
pub enum Dynamics {
    /// Registers change only when written.
    Static,
    /// A variable-frequency booster set with two pumps and a break tank.
    WaterSupply(WaterSupply),
    /// An elevator car between `floors`.
    Elevator(Elevator),
}

/// The water-supply model. Register layout (holding unless noted):
/// 0–1 outlet pressure f32 MPa; 2 set-point ×0.001 MPa (writable);
/// 3 frequency ×0.01 Hz; 4 tank level ×0.01 m; 5 status bits (0 pump 1
/// running, 1 pump 2 running, 2 pump 1 fault, 3 pump 2 fault, 4 low
/// water); 6–7 run hours u32 word-swapped (CDAB); input 0 inlet pressure
/// ×0.001 MPa (i16); coil 0 system enable (writable); discrete 0 low water.
#[derive(Debug, Clone)]
pub struct WaterSupply {
    pressure: f64,
    frequency: f64,
    level: f64,
    duty: usize,
    faults: [f64; 2],
    run_seconds: f64,
    t: f64,
    rng: StdRng,
}

impl WaterSupply {
    /// A set at its set-point, tank 2 m, seeded.
    pub fn new(seed: u64) -> Self {
        Self {
            pressure: 0.40,
            frequency: 40.0,
            level: 2.0,
            duty: 0,
            faults: [0.0; 2],
            run_seconds: 3600.0 * 1234.0,
            t: 0.0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn init(bank: &mut Bank) {
        bank.holding[2] = 400;
        bank.coils[0] = true;
    }

    fn step(&mut self, bank: &mut Bank, dt: f64) {
        self.t += dt;
        let setpoint = f64::from(bank.holding[2]) / 1000.0;
        let enabled = bank.coils[0];
        // Demand (m³/h): morning and evening peaks over a day compressed
        // into ten minutes, plus noise.
        let phase = self.t / 600.0 * std::f64::consts::TAU;
        let demand = (12.0 + 8.0 * phase.sin() + self.rng.random_range(-1.5..1.5)).max(0.0);
        // A running pump trips now and then (about once an hour of
        // simulated time); the standby pump takes over.
        for fault in &mut self.faults {
            *fault = (*fault - dt).max(0.0);
        }
        if self.rng.random_bool((dt / 3600.0).clamp(0.0, 1.0)) {
            self.faults[self.duty] = 120.0;
        }
        if self.faults[self.duty] > 0.0 {
            self.duty = 1 - self.duty;
        }
        let running = enabled && self.faults[self.duty] == 0.0 && self.level > 0.2;
        // PI-ish: frequency chases the pressure error; pressure follows
        // frequency squared minus the demand's friction loss.
        if running {
            self.frequency =
                (self.frequency + (setpoint - self.pressure) * 40.0 * dt).clamp(20.0, 50.0);
        } else {
            self.frequency = (self.frequency - 10.0 * dt).max(0.0);
        }
        let head = 0.55 * (self.frequency / 50.0).powi(2) - demand * 0.004;
        let target = head.max(0.02);
        self.pressure += (target - self.pressure) * (dt * 2.0).min(1.0);
        // Tank: drawn by demand, refilled from the mains below 1.5 m.
        let refill = if self.level < 1.5 { 30.0 } else { 0.0 };
        self.level = (self.level
            + (refill - if running { demand } else { 0.0 }) * dt / 3600.0 * 4.0)
            .clamp(0.0, 3.0);
        if running {
            self.run_seconds += dt;
        }
        let low_water = self.level < 0.5;
        bank.set_f32(0, self.pressure as f32);
        bank.holding[3] = (self.frequency * 100.0).round() as u16;
        bank.holding[4] = (self.level * 100.0).round() as u16;
        let mut status = 0u16;
        if running {
            status |= 1 << self.duty;
        }
        for (n, fault) in self.faults.iter().enumerate() {
            if *fault > 0.0 {
                status |= 1 << (2 + n);
            }
        }
        if low_water {
            status |= 1 << 4;
        }
        bank.holding[5] = status;
        let hours = (self.run_seconds / 3600.0) as u32;
        bank.holding[6] = (hours & 0xFFFF) as u16;
        bank.holding[7] = (hours >> 16) as u16;
        bank.input[0] = (((0.15 + self.rng.random_range(-0.01..0.01)) * 1000.0) as i16) as u16;
        bank.discrete[0] = low_water;
    }

    /// Makes the duty pump trip now (tests, demo).
    pub fn trip(&mut self) {
        self.faults[self.duty] = 120.0;
    }
}

/// The elevator model. Register layout (holding): 0 floor (i16, −2 …);
/// 1 direction (0 stopped, 1 up, 2 down); 2 door open (0/1); 3 status bits
/// (0 running, 1 fault, 2 trapped passenger, 3 door open while moving);
/// 4 fault code; 5–6 run count u32 ABCD; 10–17 model string (16 bytes).
#[derive(Debug, Clone)]
pub struct Elevator {
    lowest: i16,
    highest: i16,
    position: f64,
    target: i16,
    dwell: f64,
    runs: u32,
    trapped: bool,
    rng: StdRng,
}

impl Elevator {
    /// A car between `lowest` and `highest` (e.g. −1 and 18), seeded.
    pub fn new(lowest: i16, highest: i16, seed: u64) -> Self {
        Self {
            lowest,
            highest,
            position: 1.0,
            target: 1,
            dwell: 3.0,
            runs: 48_211,
            trapped: false,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn init(bank: &mut Bank) {
        for (i, pair) in b"GH-ELV-2000\0\0\0\0\0".chunks(2).enumerate() {
            bank.holding[10 + i] = u16::from_be_bytes([pair[0], pair[1]]);
        }
    }

    fn step(&mut self, bank: &mut Bank, dt: f64) {
        let floor_now = self.position.round() as i16;
        let mut direction = 0u16;
        if self.trapped {
            // Stuck between floors until someone resets it.
        } else if self.dwell > 0.0 {
            self.dwell -= dt;
            if self.dwell <= 0.0 {
                self.target = self.rng.random_range(self.lowest..=self.highest);
                if self.target != floor_now {
                    self.runs += 1;
                }
            }
        } else {
            let to = f64::from(self.target);
            let step = 0.5 * dt; // one floor per two seconds
            if (to - self.position).abs() <= step {
                self.position = to;
                self.dwell = 3.0;
            } else {
                direction = if to > self.position { 1 } else { 2 };
                self.position += step * if direction == 1 { 1.0 } else { -1.0 };
            }
        }
        let running = direction != 0;
        let door_open = !running && self.dwell > 0.0 && !self.trapped;
        bank.holding[0] = floor_now as u16;
        bank.holding[1] = direction;
        bank.holding[2] = u16::from(door_open);
        bank.holding[3] =
            u16::from(running) | u16::from(self.trapped) << 1 | u16::from(self.trapped) << 2;
        bank.holding[4] = if self.trapped { 31 } else { 0 };
        bank.set_u32(5, self.runs);
    }

    /// Stops the car between floors with a passenger inside (tests, demo).
    pub fn trap(&mut self) {
        self.trapped = true;
        self.position += 0.4;
    }

    /// A technician frees the passenger and resets the car.
    pub fn release(&mut self) {
        self.trapped = false;
        self.position = self.position.round();
        self.dwell = 3.0;
    }
}

/// An injected fault of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answers normally.
    #[default]
    None,
    /// Never answers (a unit that lost power or its address).
    Silent,
    /// Answers every request with this exception.
    Exception(ExceptionCode),
    /// Answers after this delay.
    Slow(Duration),
}

#[derive(Debug)]
struct Unit {
    bank: Bank,
    dynamics: Dynamics,
    fault: Fault,
    requests: u64,
    last: Option<Instant>,
}

impl Unit {
    fn settle(&mut self, now: Instant) {
        let dt = self
            .last
            .map_or(0.0, |last| now.duration_since(last).as_secs_f64());
        self.last = Some(now);
        // Large gaps advance in steps so the dynamics stay stable.
        let mut left = dt;
        while left > 0.0 {
            let step = left.min(0.5);
            left -= step;
            match &mut self.dynamics {
                Dynamics::Static => break,
                Dynamics::WaterSupply(m) => m.step(&mut self.bank, step),
                Dynamics::Elevator(m) => m.step(&mut self.bank, step),
            }
        }
    }
}

type Units = Arc<Mutex<BTreeMap<u8, Unit>>>;

fn lock(units: &Units) -> MutexGuard<'_, BTreeMap<u8, Unit>> {
    units.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone)]
struct FacilityService {
    units: Units,
}

impl Service for FacilityService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = BoxFuture<'static, Result<Option<Response>, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        let mut units = lock(&self.units);
        let Some(unit) = units.get_mut(&request.slave) else {
            return futures::future::ready(Ok(None)).boxed();
        };
        unit.requests += 1;
        let (result, delay) = match unit.fault {
            // No reply at all (the server stays free for the other units).
            Fault::Silent => return futures::future::ready(Ok(None)).boxed(),
            Fault::Exception(code) => (Err(code), None),
            Fault::Slow(d) => {
                unit.settle(Instant::now());
                (unit.bank.handle(request.request).map(Some), Some(d))
            }
            Fault::None => {
                unit.settle(Instant::now());
                (unit.bank.handle(request.request).map(Some), None)
            }
        };
        drop(units);
        async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            result
        }
        .boxed()
    }
}

/// A set of simulated units on one Modbus server. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct FacilitySim {
    units: Units,
    cancel: CancellationToken,
}

impl FacilitySim {
    /// An empty server (add units before or while serving).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a unit at `slave` with `dynamics`, its registers initialised.
    pub fn add(&self, slave: u8, dynamics: Dynamics) -> &Self {
        let mut bank = Bank::default();
        match &dynamics {
            Dynamics::WaterSupply(_) => WaterSupply::init(&mut bank),
            Dynamics::Elevator(_) => Elevator::init(&mut bank),
            Dynamics::Static => {}
        }
        let mut unit = Unit {
            bank,
            dynamics,
            fault: Fault::None,
            requests: 0,
            last: None,
        };
        unit.settle(Instant::now());
        unit.last = Some(Instant::now());
        // One step so the registers hold a state from the start.
        match &mut unit.dynamics {
            Dynamics::WaterSupply(m) => m.step(&mut unit.bank, 0.1),
            Dynamics::Elevator(m) => m.step(&mut unit.bank, 0.1),
            Dynamics::Static => {}
        }
        lock(&self.units).insert(slave, unit);
        self
    }

    /// Changes unit `slave`'s registers (and dynamics) in place.
    pub fn with<R>(&self, slave: u8, f: impl FnOnce(&mut Bank, &mut Dynamics) -> R) -> Option<R> {
        let mut units = lock(&self.units);
        let unit = units.get_mut(&slave)?;
        Some(f(&mut unit.bank, &mut unit.dynamics))
    }

    /// Injects `fault` into unit `slave`.
    pub fn set_fault(&self, slave: u8, fault: Fault) {
        if let Some(unit) = lock(&self.units).get_mut(&slave) {
            unit.fault = fault;
        }
    }

    /// Requests unit `slave` has received.
    pub fn requests(&self, slave: u8) -> u64 {
        lock(&self.units).get(&slave).map_or(0, |u| u.requests)
    }

    /// Serves over Modbus/TCP on `127.0.0.1:0`; returns the address.
    pub async fn serve_tcp(&self) -> io::Result<SocketAddr> {
        self.serve_tcp_on("127.0.0.1:0".parse().map_err(io::Error::other)?)
            .await
    }

    /// Serves over Modbus/TCP on `addr` (the demo's fixed ports).
    pub async fn serve_tcp_on(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let service = FacilityService {
            units: Arc::clone(&self.units),
        };
        let abort = self.cancel.clone().cancelled_owned();
        tokio::spawn(async move {
            let server = tokio_modbus::server::tcp::Server::new(listener);
            let on_connected = |stream, _addr| {
                let service = service.clone();
                async move { Ok(Some((service, stream))) }
            };
            let on_error = |error| tracing::debug!(%error, "simulated facility connection failed");
            if let Err(error) = server.serve_until(&on_connected, on_error, abort).await {
                tracing::debug!(%error, "simulated facility server stopped");
            }
        });
        Ok(addr)
    }

    /// Serves over Modbus RTU on `port` (one side of a pty pair).
    pub fn serve_rtu(&self, port: tokio_serial::SerialStream) {
        let service = FacilityService {
            units: Arc::clone(&self.units),
        };
        let abort = self.cancel.clone().cancelled_owned();
        let server = tokio_modbus::server::rtu::Server::new(port);
        tokio::spawn(async move {
            if let Err(error) = server.serve_until(service, abort).await {
                tracing::debug!(%error, "simulated RTU facility stopped");
            }
        });
    }

    /// Stops every server of this simulator.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn water_supply_holds_pressure_near_its_set_point_and_trips_switch_pumps() {
        let mut bank = Bank::default();
        WaterSupply::init(&mut bank);
        let mut m = WaterSupply::new(3);
        let mut pressures = Vec::new();
        for _ in 0..1200 {
            m.step(&mut bank, 0.5);
            pressures.push(f64::from(f32::from_bits(
                u32::from(bank.holding[0]) << 16 | u32::from(bank.holding[1]),
            )));
        }
        let late = &pressures[600..];
        let mean = late.iter().sum::<f64>() / late.len() as f64;
        assert!((mean - 0.40).abs() < 0.05, "mean pressure {mean}");
        let (lo, hi) = late
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(*p), h.max(*p)));
        assert!(hi - lo > 0.001, "pressure never moves with demand");
        let before = bank.holding[5] & 0b11;
        m.trip();
        m.step(&mut bank, 0.5);
        assert_ne!(bank.holding[5] & 0b1100, 0, "a fault bit is set");
        assert_ne!(bank.holding[5] & 0b11, before, "the standby pump runs");
    }

    #[test]
    fn elevator_moves_between_floors_and_counts_runs() {
        let mut bank = Bank::default();
        Elevator::init(&mut bank);
        let mut m = Elevator::new(-1, 18, 5);
        let mut floors = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            m.step(&mut bank, 0.5);
            floors.insert(bank.holding[0] as i16);
            if bank.holding[1] != 0 {
                assert_eq!(bank.holding[2], 0, "door shut while moving");
            }
        }
        assert!(floors.len() > 5, "{floors:?}");
        assert!(floors.iter().all(|f| (-1..=18).contains(f)));
        assert!(u32::from(bank.holding[5]) << 16 | u32::from(bank.holding[6]) > 48_211);
        m.trap();
        m.step(&mut bank, 0.5);
        assert_eq!(bank.holding[3] & 0b100, 0b100);
    }
}
