//! The `modbus-points` driver: one device's point table polled through a
//! shared [`BusHandle`] (barriers and other point devices may be on the
//! same RS-485 line or TCP peer; the bus task serialises them).
//!
//! Each poll group runs on its own schedule; its reads come from the
//! [`plan`](crate::points::plan). A read that times out or breaks the
//! transport marks the group's points `comm_failed`, stops that cycle and
//! backs the device off (doubling up to a limit), so an unreachable device
//! costs the bus one timeout per back-off period instead of one per read
//! and the other devices keep their schedule. A Modbus exception marks only
//! the points of that read. Points not read for three intervals of their
//! group turn `stale`.
//!
//! Reports: one `point_report` per cycle with the points that changed
//! beyond their deadband or quality (by exception), and every
//! `full_report` interval all points. Alarms are evaluated on every
//! reading and reported as `point_alarm` events. Writes (`write_point`)
//! are range-checked against the point's limits, written, then read back:
//! the report carries the value the device confirmed.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_modbus::{Request, Response};

use crate::barrier::modbus::{BusError, BusHandle};
use crate::command::{Command, CommandOutcome, CommandRequest};
use crate::contract::{Driver, DriverContext, DriverError, Link, now_ms};
use crate::event::{DeviceEvent, PointSample, Quality, Reading};
use crate::points::alarm::AlarmChange;
use crate::points::codec::{Encoded, encode};
use crate::points::plan::{Answer, Read, decode, plan};
use crate::points::state::{Memory, PointsView, is_exception};
use crate::points::table::{PointTable, RegisterKind};

/// Everything one device's driver needs besides its bus.
#[derive(Debug, Clone)]
pub struct PointsConfig {
    /// Slave (unit) id.
    pub slave: u8,
    /// The checked point table with its poll groups.
    pub table: Arc<PointTable>,
    /// Largest run of unused registers read to save a request.
    pub max_gap: u16,
    /// Interval of the periodic full report.
    pub full_report: Duration,
    /// First back-off after the device stopped answering.
    pub backoff_initial: Duration,
    /// Longest back-off.
    pub backoff_max: Duration,
}

impl PointsConfig {
    /// A device on `slave` with `table` and defaults (gap 8, full report
    /// every 5 minutes, back-off 1 s doubling to 60 s).
    pub fn new(slave: u8, table: Arc<PointTable>) -> Self {
        Self {
            slave,
            table,
            max_gap: 8,
            full_report: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// How many group intervals without a read make a point stale.
const STALE_INTERVALS: u32 = 3;

/// The driver of one Modbus point device.
#[derive(Debug)]
pub struct PointsDriver {
    bus: BusHandle,
    config: PointsConfig,
    view: PointsView,
    plans: Vec<Vec<Read>>,
    memory: Vec<Memory>,
    /// Back-off in force: until when, and its length.
    backoff: Option<(Instant, Duration)>,
    /// Whether the device answered last time (`None` before the first try).
    link: Link,
    /// Monotonic origin of the alarm clock.
    epoch: Instant,
}

/// What one cycle collected.
#[derive(Debug, Default)]
struct Cycle {
    changed: Vec<usize>,
    alarms: Vec<DeviceEvent>,
}

impl PointsDriver {
    /// A driver for the device `config` describes, publishing its points'
    /// live state to `view` (made from the same table).
    pub fn new(bus: BusHandle, config: PointsConfig, view: PointsView) -> Self {
        let table = &config.table;
        let plans = (0..table.groups().len())
            .map(|g| plan(table.points(), g, config.max_gap))
            .collect();
        let memory = vec![Memory::default(); table.points().len()];
        Self {
            bus,
            plans,
            memory,
            view,
            config,
            backoff: None,
            link: Link::default(),
            epoch: Instant::now(),
        }
    }

    /// The live view of the points.
    pub fn view(&self) -> &PointsView {
        &self.view
    }

    fn table(&self) -> &PointTable {
        &self.config.table
    }

    fn clock_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    async fn read(&self, read: &Read) -> Result<Vec<(usize, Option<Reading>)>, BusError> {
        let (start, count) = (read.start, read.count);
        let request = match read.kind {
            RegisterKind::Coil => Request::ReadCoils(start, count),
            RegisterKind::DiscreteInput => Request::ReadDiscreteInputs(start, count),
            RegisterKind::Holding => Request::ReadHoldingRegisters(start, count),
            RegisterKind::Input => Request::ReadInputRegisters(start, count),
        };
        let points = self.table().points();
        match self.bus.call(self.config.slave, request).await? {
            Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits) => {
                Ok(decode(points, read, Answer::Bits(&bits)))
            }
            Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words)
                if words.len() >= usize::from(count) =>
            {
                Ok(decode(points, read, Answer::Words(&words)))
            }
            other => Err(BusError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Records readings (or a failure, `None` value with `CommFailed`).
    fn apply(&mut self, readings: Vec<(usize, Option<Reading>)>, at_ms: i64, cycle: &mut Cycle) {
        let clock = self.clock_ms();
        let table = Arc::clone(&self.config.table);
        let view = self.view.clone();
        view.update(|status| {
            for (i, value) in readings {
                let point = &table.points()[i];
                let s = &mut status[i];
                let quality = if value.is_some() {
                    Quality::Good
                } else {
                    Quality::CommFailed
                };
                if s.quality != quality {
                    s.quality = quality;
                    s.quality_since_ms = at_ms;
                }
                if let Some(value) = value {
                    if let (Some(rule), Some(x)) = (&point.alarm, value.as_f64())
                        && let Some(change) = self.memory[i].alarm.update(rule, x, clock)
                    {
                        s.alarm = self.memory[i].alarm.active();
                        cycle.alarms.push(alarm_event(&point.name, change, x));
                    }
                    s.value = Some(value);
                    s.read_at_ms = Some(at_ms);
                }
                let memory = &self.memory[i];
                if is_exception(
                    point.deadband,
                    memory.reported.as_ref(),
                    s.value.as_ref(),
                    s.quality,
                ) && !cycle.changed.contains(&i)
                {
                    cycle.changed.push(i);
                }
            }
        });
    }

    /// Polls group `g` once. Returns the transport error that stopped it.
    async fn poll_group(&mut self, g: usize, cycle: &mut Cycle) -> Result<(), BusError> {
        let reads = self.plans[g].clone();
        for (n, read) in reads.iter().enumerate() {
            let result = self.read(read).await;
            let at = now_ms();
            match result {
                Ok(readings) => self.apply(readings, at, cycle),
                Err(error) if error.device_answered() => {
                    tracing::debug!(%error, start = read.start, "point read refused");
                    self.apply(read.points.iter().map(|&i| (i, None)).collect(), at, cycle);
                }
                Err(error) => {
                    let failed = reads[n..]
                        .iter()
                        .flat_map(|r| r.points.iter().map(|&i| (i, None)))
                        .collect();
                    self.apply(failed, at, cycle);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Marks points whose group has not been read for a while as stale.
    fn age(&mut self, now: i64, cycle: &mut Cycle) {
        let table = Arc::clone(&self.config.table);
        self.view.update(|status| {
            for (i, s) in status.iter_mut().enumerate() {
                let point = &table.points()[i];
                let limit = table.groups()[point.group].interval * STALE_INTERVALS;
                let limit = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
                let old = s.read_at_ms.is_some_and(|t| now.saturating_sub(t) > limit);
                if s.quality == Quality::Good && old {
                    s.quality = Quality::Stale;
                    s.quality_since_ms = now;
                    if !cycle.changed.contains(&i) {
                        cycle.changed.push(i);
                    }
                }
            }
        });
    }

    /// Sends the cycle's alarms and report (`full`: every point).
    async fn report(
        &mut self,
        ctx: &DriverContext,
        mut cycle: Cycle,
        full: bool,
    ) -> Result<(), DriverError> {
        let at = now_ms();
        for alarm in cycle.alarms.drain(..) {
            ctx.events.emit_at(alarm, at).await?;
        }
        let indices: Vec<usize> = if full {
            (0..self.memory.len()).collect()
        } else {
            cycle.changed.sort_unstable();
            cycle.changed
        };
        if indices.is_empty() {
            return Ok(());
        }
        let samples: Vec<PointSample> = {
            let status = self.view.read();
            indices
                .iter()
                .map(|&i| self.view.sample(i, &status[i]))
                .collect()
        };
        for (&i, sample) in indices.iter().zip(&samples) {
            self.memory[i].reported = Some((sample.value.clone(), sample.quality));
        }
        ctx.events
            .emit_at(DeviceEvent::PointReport { full, samples }, at)
            .await
    }

    async fn link(
        &mut self,
        ctx: &DriverContext,
        up: bool,
        detail: String,
    ) -> Result<(), DriverError> {
        if self.link.known() == Some(up) {
            return Ok(());
        }
        if up {
            ctx.health.ok();
        } else {
            ctx.health.degraded(&detail);
        }
        self.link.report(&ctx.events, up, || detail).await?;
        Ok(())
    }

    /// Polls the groups in `groups`, honouring the back-off.
    async fn poll(
        &mut self,
        ctx: &DriverContext,
        groups: &[usize],
        cycle: &mut Cycle,
    ) -> Result<(), DriverError> {
        for &g in groups {
            if self
                .backoff
                .is_some_and(|(until, _)| Instant::now() < until)
            {
                return Ok(());
            }
            match self.poll_group(g, cycle).await {
                Ok(()) => {
                    self.backoff = None;
                    self.link(ctx, true, "answering".into()).await?;
                }
                Err(BusError::Closed) => return Err(DriverError::PipelineClosed),
                Err(error) => {
                    let next = self.backoff.map_or(self.config.backoff_initial, |(_, d)| {
                        (d * 2).min(self.config.backoff_max)
                    });
                    self.backoff = Some((Instant::now() + next, next));
                    tracing::debug!(%error, backoff = ?next, "point device not answering");
                    self.link(ctx, false, error.to_string()).await?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn write(&mut self, ctx: &DriverContext, point: &str, value: f64) -> CommandOutcome {
        let Some(i) = self.table().find(point) else {
            return CommandOutcome::Refused(format!("no point {point:?}"));
        };
        let p = &self.table().points()[i];
        let request = match encode(p, value) {
            Ok(Encoded::Coil(on)) => Request::WriteSingleCoil(p.address, on),
            Ok(Encoded::Registers(words)) if words.len() == 1 => {
                Request::WriteSingleRegister(p.address, words[0])
            }
            Ok(Encoded::Registers(words)) => {
                Request::WriteMultipleRegisters(p.address, words.into())
            }
            Err(error) => return CommandOutcome::Refused(error.to_string()),
        };
        if let Err(error) = self.bus.call(self.config.slave, request).await {
            return CommandOutcome::Failed(error.to_string());
        }
        // Read back what the device now holds and report it.
        let read = Read {
            kind: p.kind,
            start: p.address,
            count: p.width(),
            points: vec![i],
        };
        let mut cycle = Cycle::default();
        let outcome = match self.read(&read).await {
            Ok(readings) => {
                let confirmed = readings.first().and_then(|(_, v)| v.clone());
                self.apply(readings, now_ms(), &mut cycle);
                match confirmed.and_then(|v| v.as_f64()) {
                    Some(v) if (v - value).abs() <= 1e-6_f64.max(value.abs() * 1e-6) => {
                        CommandOutcome::Done
                    }
                    Some(v) => {
                        CommandOutcome::Failed(format!("written, but the device reads back {v}"))
                    }
                    None => CommandOutcome::Failed("written, but the read-back is empty".into()),
                }
            }
            Err(error) => CommandOutcome::Failed(format!("written, read-back failed: {error}")),
        };
        if let Err(error) = self.report(ctx, cycle, false).await {
            tracing::debug!(%error, "write report not sent");
        }
        outcome
    }

    async fn command(
        &mut self,
        ctx: &DriverContext,
        request: CommandRequest,
    ) -> Result<(), DriverError> {
        let outcome = match &request.command {
            Command::Poll => {
                let mut cycle = Cycle::default();
                let all: Vec<usize> = (0..self.plans.len()).collect();
                self.poll(ctx, &all, &mut cycle).await?;
                self.report(ctx, cycle, true).await?;
                CommandOutcome::Done
            }
            // Reading is always safe; nothing is written on the way out.
            Command::SafeState => CommandOutcome::Done,
            Command::WritePoint { point, value } => {
                let (point, value) = (point.clone(), *value);
                self.write(ctx, &point, value).await
            }
            _ => CommandOutcome::Unsupported,
        };
        request.answer(outcome);
        Ok(())
    }

    async fn run_loop(&mut self, ctx: &mut DriverContext) -> Result<(), DriverError> {
        let start = Instant::now();
        let intervals: Vec<Duration> = self.table().groups().iter().map(|g| g.interval).collect();
        let mut due: Vec<Instant> = vec![start; intervals.len()];
        let mut next_full = start + self.config.full_report;
        let mut first = true;
        loop {
            let next = due
                .iter()
                .copied()
                .min()
                .unwrap_or(next_full)
                .min(next_full);
            tokio::select! {
                () = ctx.cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(next) => {}
                request = ctx.commands.recv() => {
                    let Some(request) = request else { return Ok(()) };
                    self.command(ctx, request).await?;
                    continue;
                }
            }
            let now = Instant::now();
            let groups: Vec<usize> = (0..due.len()).filter(|&g| due[g] <= now).collect();
            for &g in &groups {
                due[g] += intervals[g];
                if due[g] <= now {
                    // Fell behind (a slow bus): skip, never burst.
                    due[g] = now + intervals[g];
                }
            }
            let mut cycle = Cycle::default();
            self.poll(ctx, &groups, &mut cycle).await?;
            self.age(now_ms(), &mut cycle);
            let full = first || now >= next_full;
            if now >= next_full {
                next_full = now + self.config.full_report;
            }
            first = false;
            self.report(ctx, cycle, full).await?;
        }
    }
}

fn alarm_event(point: &str, change: AlarmChange, value: f64) -> DeviceEvent {
    let (side, active, limit) = match change {
        AlarmChange::Raised { side, limit } => (side, true, limit),
        AlarmChange::Cleared { side } => (side, false, None),
    };
    DeviceEvent::PointAlarm {
        point: point.to_owned(),
        alarm: side.as_str().to_owned(),
        active,
        value,
        limit,
    }
}

impl Driver for PointsDriver {
    fn kind(&self) -> &'static str {
        "modbus-points"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            self.link.forget();
            self.backoff = None;
            self.run_loop(ctx).await
        }
        .boxed()
    }
}
