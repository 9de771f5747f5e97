//! The barrier driver: one lane on one Modbus IO module, reached through a
//! [`BusHandle`]. It polls the module's inputs, feeds the pure [`Lane`]
//! state machine, carries out its actions as coil pulses, answers commands
//! and reports events.
//!
//! Safety:
//! - **Safe state** for a barrier is "stop driving": every output coil off,
//!   the arm left where it is. The driver never pulses CLOSE to get to a
//!   safe state (that could lower the arm onto a vehicle) and never pulses
//!   STOP (on most controllers STOP latches until the next command). It
//!   enters the safe state when it starts, on `SafeState`, and on cancel.
//! - Before every CLOSE pulse the loop input is read again; an occupied or
//!   unreadable loop suppresses the pulse (on top of the lane's own rule).
//! - A pulse always ends with the coil written off, even after its "on"
//!   write failed (the write may have reached the module late).
//! - Every way out of [`Driver::run`] de-energises the outputs: a normal
//!   return, an error return (the pipeline gone mid-pulse), and the run
//!   future being dropped (a [`CoilGuard`] then hands the "all off" writes
//!   to a task of their own, as the doors' relay guard does).
//!
//! A command carries out what the module confirms: an OPEN whose write
//! failed rolls the lane back to where it was (the arm never started), so
//! the next OPEN after the module is back is written. A command past its
//! deadline (the requester gave up) is dropped, never written late; its
//! energising write carries the deadline to the bus too.
//!
//! The driver keeps its lane across link losses and retries the module on
//! every poll itself (the bus reconnects), reporting `DeviceLink` offline
//! and online; it only returns an error when the pipeline is gone.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::barrier::lane::{Action, Input, Lane, LaneCommand, LaneConfig, Output};
use crate::barrier::map::RegisterMap;
use crate::barrier::modbus::{BusError, BusHandle};
use crate::command::{Command, CommandOutcome, CommandRequest};
use crate::contract::{Driver, DriverContext, DriverError, Link};
use crate::event::DeviceEvent;

/// Everything one lane's driver needs besides its bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarrierConfig {
    /// The module's slave id (unit id on Modbus/TCP).
    pub slave: u8,
    /// Where the lane's signals are on the module.
    pub map: RegisterMap,
    /// Lane timing. `has_open_limit` / `has_closed_limit` are taken from
    /// the map.
    pub lane: LaneConfig,
    /// How often the inputs are read.
    pub poll_interval: Duration,
}

impl BarrierConfig {
    /// A lane on `slave` with `map` and default timing (50 ms polling).
    pub fn new(slave: u8, map: RegisterMap) -> Self {
        Self {
            slave,
            map,
            lane: LaneConfig::default(),
            poll_interval: Duration::from_millis(50),
        }
    }
}

/// The driver of one barrier lane.
#[derive(Debug)]
pub struct BarrierDriver {
    bus: BusHandle,
    config: BarrierConfig,
    lane: Lane,
    link: Link,
    /// The relay pulse in progress: its coil and when it ends. The driver
    /// keeps polling and taking commands meanwhile; the loop turns it off.
    pulsing: Option<(u16, tokio::time::Instant)>,
    /// The deadline of the command being carried out: its energising
    /// writes are not sent after it.
    deadline: Option<tokio::time::Instant>,
}

impl BarrierDriver {
    /// A driver for the lane in `config`, talking through `bus`.
    pub fn new(bus: BusHandle, mut config: BarrierConfig) -> Self {
        config.lane.has_open_limit = config.map.open_limit.is_some();
        config.lane.has_closed_limit = config.map.closed_limit.is_some();
        let lane = Lane::new(config.lane.clone());
        Self {
            bus,
            config,
            lane,
            link: Link::default(),
            pulsing: None,
            deadline: None,
        }
    }

    async fn run_loop(&mut self, ctx: &mut DriverContext) -> Result<(), DriverError> {
        let guard = CoilGuard {
            bus: self.bus.clone(),
            slave: self.config.slave,
            coils: self.config.map.coils().collect(),
            armed: true,
        };
        let result = self.serve(ctx).await;
        match self.all_off().await {
            Ok(()) => guard.disarm(),
            // The guard tries once more from its own task.
            Err(error) => {
                tracing::warn!(device = %ctx.device_id, %error, "could not turn the barrier outputs off");
            }
        }
        if result.is_ok() {
            ctx.health.stopped(None);
        }
        result
    }

    /// The driver's life between the safe states at its start and its end;
    /// it may return early (`?`): [`Self::run_loop`] de-energises after it.
    async fn serve(&mut self, ctx: &mut DriverContext) -> Result<(), DriverError> {
        if let Err(error) = self.all_off().await {
            self.link(ctx, Err(&error)).await?;
        }
        let mut ticker = tokio::time::interval(self.config.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let pulse_end = self.pulsing.map(|(_, end)| end);
            tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => break,
                () = sleep_until_some(pulse_end) => {
                    if let Err(error) = self.end_pulse().await {
                        self.link(ctx, Err(&error)).await?;
                    }
                }
                request = ctx.commands.recv() => match request {
                    Some(request) => self.command(ctx, request).await?,
                    None => break,
                },
                _ = ticker.tick() => {
                    let _ = self.poll(ctx).await?;
                }
            }
        }
        Ok(())
    }

    /// Reads the inputs and feeds them to the lane; `Err` is the bus error
    /// (already reported), the outer `Err` a dead pipeline.
    async fn poll(&mut self, ctx: &DriverContext) -> Result<Result<(), BusError>, DriverError> {
        let (first, count) = self.config.map.input_span();
        let bits = match self.bus.read_inputs(self.config.slave, first, count).await {
            Ok(bits) => bits,
            Err(error) => {
                self.link(ctx, Err(&error)).await?;
                return Ok(Err(error));
            }
        };
        self.link(ctx, Ok(())).await?;
        let map = &self.config.map;
        let level = |input| RegisterMap::level(input, first, &bits);
        let mut inputs = Vec::with_capacity(4);
        if let Some(occupied) = level(map.loop_detector) {
            inputs.push(Input::Loop(occupied));
        }
        if let Some(open) = map.open_limit.and_then(level) {
            inputs.push(Input::OpenLimit(open));
        }
        if let Some(closed) = map.closed_limit.and_then(level) {
            inputs.push(Input::ClosedLimit(closed));
        }
        inputs.push(Input::Tick);
        for input in inputs {
            self.feed(ctx, input).await?;
        }
        Ok(Ok(()))
    }

    async fn command(
        &mut self,
        ctx: &DriverContext,
        request: CommandRequest,
    ) -> Result<(), DriverError> {
        let Some(request) = request.unless_expired() else {
            return Ok(());
        };
        let lane_command = match request.command {
            Command::OpenBarrier => LaneCommand::Open,
            Command::CloseBarrier => LaneCommand::Close,
            Command::HoldOpen => LaneCommand::HoldOpen,
            Command::ReleaseHold => LaneCommand::ReleaseHold,
            Command::Poll => {
                let outcome = match self.poll(ctx).await? {
                    Ok(()) => CommandOutcome::Done,
                    Err(error) => CommandOutcome::Failed(error.to_string()),
                };
                request.answer(outcome);
                return Ok(());
            }
            Command::SafeState => {
                let outcome = match self.all_off().await {
                    Ok(()) => CommandOutcome::Done,
                    Err(error) => CommandOutcome::Failed(error.to_string()),
                };
                request.answer(outcome);
                return Ok(());
            }
            Command::PulseDoor { .. } | Command::WritePoint { .. } => {
                request.answer(CommandOutcome::Unsupported);
                return Ok(());
            }
        };
        let before = self.lane.clone();
        let step = self.lane.step(now(), Input::Command(lane_command));
        if let Some(reason) = step.refused {
            ctx.events
                .emit(DeviceEvent::BarrierFault {
                    message: format!("{} refused: {reason}", request.command.name()),
                })
                .await?;
            request.answer(CommandOutcome::Refused(reason));
            return Ok(());
        }
        self.deadline = request.deadline;
        let applied = self.apply(ctx, step.outputs).await;
        self.deadline = None;
        let outcome = match applied? {
            None => CommandOutcome::Done,
            Some(failure) => {
                // The module did not take it: the arm did not move. The
                // lane goes back to what the module last confirmed.
                let believed = self.lane.arm();
                self.lane = before;
                let state = self.lane.arm();
                if state != believed {
                    ctx.events.emit(DeviceEvent::BarrierState { state }).await?;
                }
                CommandOutcome::Failed(failure)
            }
        };
        request.answer(outcome);
        Ok(())
    }

    async fn feed(&mut self, ctx: &DriverContext, input: Input) -> Result<(), DriverError> {
        let step = self.lane.step(now(), input);
        if let Some(failure) = self.apply(ctx, step.outputs).await? {
            tracing::warn!(device = %ctx.device_id, %failure, "barrier action failed");
        }
        Ok(())
    }

    /// Carries out the lane's outputs in order; returns the first action
    /// failure, if any.
    async fn apply(
        &mut self,
        ctx: &DriverContext,
        outputs: Vec<Output>,
    ) -> Result<Option<String>, DriverError> {
        let mut queue: VecDeque<Output> = outputs.into();
        let mut failure = None;
        while let Some(output) = queue.pop_front() {
            let event = match output {
                Output::Action(action) => {
                    match self.act(action).await {
                        Ok(Some(more)) => queue.extend(more),
                        Ok(None) => {}
                        Err(error) => {
                            let message = format!("{action:?} failed: {error}");
                            failure.get_or_insert(message.clone());
                            self.link(ctx, Err(&error)).await?;
                        }
                    }
                    continue;
                }
                Output::Arm(state) => DeviceEvent::BarrierState { state },
                Output::Loop(occupied) => DeviceEvent::LoopState { occupied },
                Output::Fault(message) => DeviceEvent::BarrierFault { message },
            };
            ctx.events.emit(event).await?;
        }
        Ok(failure)
    }

    /// One action on the module. A suppressed close returns the lane's
    /// reaction to the occupied loop, to be applied next.
    async fn act(&mut self, action: Action) -> Result<Option<Vec<Output>>, BusError> {
        let map = &self.config.map;
        match action {
            Action::PulseOpen => self.pulse(map.open_coil).await.map(|()| None),
            Action::Stop => match map.stop_coil {
                Some(coil) => self.pulse(coil).await.map(|()| None),
                None => Ok(None),
            },
            Action::PulseClose => {
                let (first, _) = map.input_span();
                let loop_input = map.loop_detector;
                let count = loop_input.address - first + 1;
                let bits = self
                    .bus
                    .read_inputs(self.config.slave, first, count)
                    .await?;
                match RegisterMap::level(loop_input, first, &bits) {
                    Some(false) => self.pulse(map.close_coil).await.map(|()| None),
                    Some(true) => {
                        let mut outputs = vec![Output::Fault(
                            "close suppressed: loop occupied at the IO check".into(),
                        )];
                        outputs.extend(self.lane.step(now(), Input::Loop(true)).outputs);
                        Ok(Some(outputs))
                    }
                    None => Err(BusError::Unexpected("loop input missing".into())),
                }
            }
        }
    }

    /// Energises `coil` for the map's pulse length. The pulse in progress
    /// (if any) ends first: a new command overrides the one before it (an
    /// OPEN for an arriving car cuts a CLOSE short). The loop de-energises
    /// the coil when the pulse is over.
    async fn pulse(&mut self, coil: u16) -> Result<(), BusError> {
        self.end_pulse().await?;
        let slave = self.config.slave;
        match self
            .bus
            .write_coil_by(slave, coil, true, self.deadline)
            .await
        {
            Ok(()) => {
                self.pulsing = Some((coil, tokio::time::Instant::now() + self.config.map.pulse));
                Ok(())
            }
            Err(error) => {
                // Never leave it latched: try to switch it off at once.
                let _ = self.bus.write_coil(slave, coil, false).await;
                Err(error)
            }
        }
    }

    /// Ends the pulse in progress, retrying once on a rebuilt connection.
    async fn end_pulse(&mut self) -> Result<(), BusError> {
        let Some((coil, _)) = self.pulsing.take() else {
            return Ok(());
        };
        let slave = self.config.slave;
        let mut off = self.bus.write_coil(slave, coil, false).await;
        if off.is_err() {
            off = self.bus.write_coil(slave, coil, false).await;
        }
        off
    }

    async fn all_off(&mut self) -> Result<(), BusError> {
        self.pulsing = None;
        let mut result = Ok(());
        for coil in self.config.map.coils() {
            if let Err(error) = self.bus.write_coil(self.config.slave, coil, false).await {
                result = Err(error);
            }
        }
        result
    }

    /// Tracks the link; reports changes as events and health.
    async fn link(
        &mut self,
        ctx: &DriverContext,
        status: Result<(), &BusError>,
    ) -> Result<(), DriverError> {
        let online = match status {
            Ok(()) => true,
            Err(error) => error.device_answered(),
        };
        match status {
            Ok(()) => ctx.health.ok(),
            Err(error) => ctx.health.degraded(&error.to_string()),
        }
        let changed = self
            .link
            .report(&ctx.events, online, || match status {
                Ok(()) => "module answered".to_owned(),
                Err(error) => error.to_string(),
            })
            .await?;
        if changed && !online {
            let step = self.lane.step(now(), Input::Offline);
            // Only events come out of `Offline`; nothing to drive.
            for output in step.outputs {
                if let Output::Arm(state) = output {
                    ctx.events.emit(DeviceEvent::BarrierState { state }).await?;
                }
            }
        }
        Ok(())
    }
}

/// Switches every output coil off when dropped while armed: the run future
/// was dropped mid-pulse, or its own "all off" failed. A drop cannot wait,
/// so the writes go to a task of their own on the bus (which outlives the
/// driver while any handle is held).
#[derive(Debug)]
struct CoilGuard {
    bus: BusHandle,
    slave: u8,
    coils: Vec<u16>,
    armed: bool,
}

impl CoilGuard {
    /// The outputs are known to be off: nothing left to do.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CoilGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("barrier driver dropped outside a runtime: outputs not switched off");
            return;
        };
        let (bus, slave, coils) = (
            self.bus.clone(),
            self.slave,
            std::mem::take(&mut self.coils),
        );
        runtime.spawn(async move {
            for coil in coils {
                if let Err(error) = bus.write_coil(slave, coil, false).await {
                    tracing::error!(slave, coil, %error, "could not switch a barrier output off");
                }
            }
        });
    }
}

/// The lane's clock: tokio's, so tests with paused time drive it too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Driver for BarrierDriver {
    fn kind(&self) -> &'static str {
        "modbus-barrier"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        self.run_loop(ctx).boxed()
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
