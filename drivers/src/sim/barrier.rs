//! A simulated barrier controller behind a Waveshare-style Modbus relay and
//! input module: a tokio-modbus **server** with a physical arm model.
//!
//! Coils 0–7 are the relays: a rising edge on coil 0 pulses the
//! controller's OPEN input, coil 1 CLOSE, coil 2 STOP (the
//! `waveshare-rtu-relay` preset). Discrete inputs: 0 = loop detector,
//! 1 = open limit, 2 = closed limit. The arm rises and falls in the
//! configured times and can be jammed. The controller itself has no
//! anti-smash logic, so a close that reaches coil 1 while the loop is
//! occupied is recorded ([`SimHandle::closes_onto_occupied_loop`]): that is
//! what the driver's interlock must prevent.
//!
//! The Waveshare self-timed "flash on" (FC05 to `0x0200 + ch`) is not
//! modelled: tokio-modbus's server rejects its non-standard coil value
//! before the request reaches the model (see `barrier::map`).
//!
//! Serve it over Modbus/TCP ([`BarrierSim::spawn_tcp`], bound to
//! `127.0.0.1:0`, stoppable and restartable on the same port) or Modbus RTU
//! on a serial stream ([`BarrierSim::spawn_rtu`], e.g. one side of a
//! pseudo-terminal pair). The arm model uses tokio's clock.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

/// How the simulated controller behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct BarrierSimConfig {
    /// Time from the closed to the open limit.
    pub rise: Duration,
    /// Time from the open to the closed limit.
    pub fall: Duration,
    /// The module's slave id; requests to other ids get no answer.
    pub slave: u8,
    /// The arm does not move at all.
    pub jammed: bool,
}

impl Default for BarrierSimConfig {
    fn default() -> Self {
        Self {
            rise: Duration::from_millis(1500),
            fall: Duration::from_millis(1500),
            slave: 1,
            jammed: false,
        }
    }
}

/// A controller input the relays pulsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimCommand {
    /// OPEN (coil 0).
    Open,
    /// CLOSE (coil 1).
    Close,
    /// STOP (coil 2).
    Stop,
}

/// One coil write as the module received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoilWrite {
    /// Coil address.
    pub coil: u16,
    /// Written on or off.
    pub on: bool,
    /// Whether a vehicle was on the loop at that moment.
    pub loop_occupied: bool,
}

/// Where the simulated arm is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimArm {
    /// At the closed limit.
    Closed,
    /// At the open limit.
    Open,
    /// Between the limits (moving or stopped).
    Between,
}

const COILS: u16 = 8;
const INPUTS: u16 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Motion {
    Still,
    Rising,
    Falling,
}

#[derive(Debug)]
struct Model {
    config: BarrierSimConfig,
    /// 0.0 = closed limit, 1.0 = open limit.
    position: f64,
    motion: Motion,
    since: Instant,
    occupied: bool,
    coils: [bool; COILS as usize],
    writes: Vec<CoilWrite>,
    /// Each command pulse: what, whether the loop was occupied, and when.
    commands: Vec<(SimCommand, bool, Instant)>,
    /// Counts commands, for waiters ([`SimHandle::commands_watch`]).
    command_count: tokio::sync::watch::Sender<usize>,
    delay_next: Option<Duration>,
    requests: u64,
}

impl Model {
    fn new(config: BarrierSimConfig) -> Self {
        Self {
            config,
            position: 0.0,
            motion: Motion::Still,
            since: Instant::now(),
            occupied: false,
            coils: [false; COILS as usize],
            writes: Vec::new(),
            commands: Vec::new(),
            command_count: tokio::sync::watch::channel(0).0,
            delay_next: None,
            requests: 0,
        }
    }

    /// Advances the arm to `now`.
    fn settle(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since).as_secs_f64();
        self.since = now;
        let rate = |d: Duration| elapsed / d.as_secs_f64().max(1e-3);
        match self.motion {
            Motion::Still => {}
            Motion::Rising => {
                self.position = (self.position + rate(self.config.rise)).min(1.0);
                if self.position >= 1.0 {
                    self.motion = Motion::Still;
                }
            }
            Motion::Falling => {
                self.position = (self.position - rate(self.config.fall)).max(0.0);
                if self.position <= 0.0 {
                    self.motion = Motion::Still;
                }
            }
        }
    }

    fn arm(&mut self) -> SimArm {
        self.settle(Instant::now());
        if self.position >= 1.0 {
            SimArm::Open
        } else if self.position <= 0.0 {
            SimArm::Closed
        } else {
            SimArm::Between
        }
    }

    fn inputs(&mut self) -> [bool; INPUTS as usize] {
        let arm = self.arm();
        let mut bits = [false; INPUTS as usize];
        bits[0] = self.occupied;
        bits[1] = arm == SimArm::Open;
        bits[2] = arm == SimArm::Closed;
        bits
    }

    fn write_coil(&mut self, coil: u16, on: bool) -> Result<(), ExceptionCode> {
        let slot = self
            .coils
            .get_mut(usize::from(coil))
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        let rising = on && !*slot;
        *slot = on;
        self.writes.push(CoilWrite {
            coil,
            on,
            loop_occupied: self.occupied,
        });
        if !rising {
            return Ok(());
        }
        let command = match coil {
            0 => SimCommand::Open,
            1 => SimCommand::Close,
            2 => SimCommand::Stop,
            _ => return Ok(()),
        };
        self.commands.push((command, self.occupied, Instant::now()));
        let count = self.commands.len();
        self.command_count.send_replace(count);
        self.settle(Instant::now());
        if !self.config.jammed {
            self.motion = match command {
                SimCommand::Open => Motion::Rising,
                SimCommand::Close => Motion::Falling,
                SimCommand::Stop => Motion::Still,
            };
        }
        Ok(())
    }

    fn handle(&mut self, request: Request<'_>) -> Result<Response, ExceptionCode> {
        self.requests += 1;
        let span = |first: u16, count: u16, size: u16| {
            let end = first
                .checked_add(count)
                .filter(|end| *end <= size && count > 0);
            end.map(|end| (usize::from(first), usize::from(end)))
                .ok_or(ExceptionCode::IllegalDataAddress)
        };
        match request {
            Request::ReadDiscreteInputs(first, count) => {
                let (a, b) = span(first, count, INPUTS)?;
                Ok(Response::ReadDiscreteInputs(self.inputs()[a..b].to_vec()))
            }
            Request::ReadCoils(first, count) => {
                let (a, b) = span(first, count, COILS)?;
                Ok(Response::ReadCoils(self.coils[a..b].to_vec()))
            }
            Request::WriteSingleCoil(coil, on) => {
                self.write_coil(coil, on)?;
                Ok(Response::WriteSingleCoil(coil, on))
            }
            Request::WriteMultipleCoils(first, values) => {
                let count =
                    u16::try_from(values.len()).map_err(|_| ExceptionCode::IllegalDataValue)?;
                span(first, count, COILS)?;
                for (coil, on) in (first..).zip(values.iter()) {
                    self.write_coil(coil, *on)?;
                }
                Ok(Response::WriteMultipleCoils(first, count))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

#[derive(Debug, Clone)]
struct SimService {
    model: Arc<Mutex<Model>>,
}

impl Service for SimService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = BoxFuture<'static, Result<Option<Response>, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        let mut model = lock(&self.model);
        if request.slave != model.config.slave {
            return futures::future::ready(Ok(None)).boxed();
        }
        let delay = model.delay_next.take();
        let result = model.handle(request.request).map(Some);
        drop(model);
        async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            result
        }
        .boxed()
    }
}

fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    // The model stays consistent between statements: a poisoned lock is
    // still usable.
    model.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts simulated barrier controllers.
#[derive(Debug)]
pub struct BarrierSim;

impl BarrierSim {
    /// Serves a new controller over Modbus/TCP on `127.0.0.1:0`; returns the
    /// bound address and the handle.
    pub async fn spawn_tcp(config: BarrierSimConfig) -> io::Result<(SocketAddr, SimHandle)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handle = SimHandle::new(config, Some(addr));
        handle.serve_tcp(listener);
        Ok((addr, handle))
    }

    /// Serves a new controller over Modbus RTU on `port`.
    pub fn spawn_rtu(config: BarrierSimConfig, port: tokio_serial::SerialStream) -> SimHandle {
        let handle = SimHandle::new(config, None);
        let service = SimService {
            model: Arc::clone(&handle.model),
        };
        let cancel = CancellationToken::new();
        let server = tokio_modbus::server::rtu::Server::new(port);
        let abort = cancel.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(error) = server.serve_until(service, abort).await {
                tracing::debug!(%error, "simulated RTU barrier stopped");
            }
        });
        *handle.running() = Some(Running { cancel, task });
        handle
    }
}

/// Control and inspection of one simulated controller. Clones share it.
#[derive(Debug, Clone)]
pub struct SimHandle {
    model: Arc<Mutex<Model>>,
    addr: Option<SocketAddr>,
    running: Arc<Mutex<Option<Running>>>,
}

impl SimHandle {
    fn new(config: BarrierSimConfig, addr: Option<SocketAddr>) -> Self {
        Self {
            model: Arc::new(Mutex::new(Model::new(config))),
            addr,
            running: Arc::new(Mutex::new(None)),
        }
    }

    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        lock(&self.model)
    }

    fn serve_tcp(&self, listener: TcpListener) {
        let service = SimService {
            model: Arc::clone(&self.model),
        };
        let cancel = CancellationToken::new();
        let abort = cancel.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            let server = tokio_modbus::server::tcp::Server::new(listener);
            let on_connected = |stream, _addr| {
                let service = service.clone();
                async move { Ok(Some((service, stream))) }
            };
            let on_error = |error| tracing::debug!(%error, "simulated barrier connection failed");
            if let Err(error) = server.serve_until(&on_connected, on_error, abort).await {
                tracing::debug!(%error, "simulated TCP barrier stopped");
            }
        });
        *self.running() = Some(Running { cancel, task });
    }

    /// The TCP address, for a TCP server.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Stops serving (TCP: closes the listener and every connection, as a
    /// module that reboots). The model keeps its state.
    pub async fn stop(&self) {
        let running = self.running().take();
        if let Some(Running { cancel, task }) = running {
            cancel.cancel();
            let _ = task.await;
        }
    }

    /// Serves again on the same TCP address after [`SimHandle::stop`].
    pub async fn restart(&self) -> io::Result<()> {
        self.stop().await;
        let addr = self
            .addr
            .ok_or_else(|| io::Error::other("only a TCP simulator can restart"))?;
        let listener = TcpListener::bind(addr).await?;
        self.serve_tcp(listener);
        Ok(())
    }

    /// A vehicle drives onto the loop.
    pub fn vehicle_arrives(&self) {
        self.model().occupied = true;
    }

    /// A receiver of the number of commands seen so far; it changes the
    /// moment a relay's rising edge arrives (no polling needed).
    pub fn commands_watch(&self) -> tokio::sync::watch::Receiver<usize> {
        self.model().command_count.subscribe()
    }

    /// The vehicle leaves the loop.
    pub fn vehicle_leaves(&self) {
        self.model().occupied = false;
    }

    /// Where the arm is now.
    pub fn arm(&self) -> SimArm {
        self.model().arm()
    }

    /// The arm position now: 0.0 closed … 1.0 open.
    pub fn arm_position(&self) -> f64 {
        let mut model = self.model();
        model.settle(Instant::now());
        model.position
    }

    /// Jams (or frees) the arm: pulses no longer move it.
    pub fn set_jammed(&self, jammed: bool) {
        self.model().config.jammed = jammed;
    }

    /// The next request is carried out at once but answered `delay` late.
    pub fn delay_next_reply(&self, delay: Duration) {
        self.model().delay_next = Some(delay);
    }

    /// The controller inputs the relays pulsed, in order.
    pub fn commands_seen(&self) -> Vec<SimCommand> {
        self.model().commands.iter().map(|(c, _, _)| *c).collect()
    }

    /// When each command pulse reached the controller, in order (for
    /// latency measured at the module).
    pub fn command_times(&self) -> Vec<(SimCommand, std::time::Instant)> {
        self.model()
            .commands
            .iter()
            .map(|(c, _, at)| (*c, at.into_std()))
            .collect()
    }

    /// Every coil write, in order.
    pub fn coil_writes(&self) -> Vec<CoilWrite> {
        self.model().writes.clone()
    }

    /// How many CLOSE pulses reached the controller.
    pub fn close_commands(&self) -> usize {
        self.model()
            .commands
            .iter()
            .filter(|(c, _, _)| *c == SimCommand::Close)
            .count()
    }

    /// How many CLOSE pulses reached the controller while the loop was
    /// occupied (must stay 0).
    pub fn closes_onto_occupied_loop(&self) -> usize {
        self.model()
            .commands
            .iter()
            .filter(|(c, occupied, _)| *c == SimCommand::Close && *occupied)
            .count()
    }

    /// The current relay states.
    pub fn coils(&self) -> [bool; COILS as usize] {
        self.model().coils
    }

    /// How many requests to this slave were served.
    pub fn requests(&self) -> u64 {
        self.model().requests
    }
}
