//! A simulated secondary water-supply tank with its booster pump: a driver
//! that reports the tank level and the pump's outlet pressure as telemetry.
//!
//! The physics is a pure model ([`TankModel`]); the driver only adds the
//! timer and the event sender. The demo uses it so events flow end to end
//! before any hardware is attached.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::command::{Command, CommandOutcome};
use crate::contract::{Driver, DriverContext, DriverError};
use crate::event::DeviceEvent;

/// The tank's state, advanced one step at a time.
#[derive(Debug, Clone)]
pub struct TankModel {
    /// Water level in metres.
    pub level_m: f64,
    /// Tank height in metres; the level stays within `0..=height_m`.
    pub height_m: f64,
    /// Whether the pump is refilling the tank.
    pub pump_on: bool,
    rng: StdRng,
}

impl TankModel {
    /// Pump starts below this fraction of the height …
    const START_FRACTION: f64 = 0.35;
    /// … and stops above this one.
    const STOP_FRACTION: f64 = 0.9;

    /// A tank of `height_m`, half full, with a seeded random draw-off.
    pub fn new(height_m: f64, seed: u64) -> Self {
        Self {
            level_m: height_m / 2.0,
            height_m,
            pump_on: false,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Advances one step: residents draw water, the pump refills with
    /// hysteresis. Returns `(level_m, pressure_mpa)`.
    pub fn step(&mut self) -> (f64, f64) {
        let draw = self.rng.random_range(0.0..0.08);
        let refill = if self.pump_on { 0.12 } else { 0.0 };
        self.level_m = (self.level_m - draw + refill).clamp(0.0, self.height_m);
        if self.level_m < self.height_m * Self::START_FRACTION {
            self.pump_on = true;
        } else if self.level_m > self.height_m * Self::STOP_FRACTION {
            self.pump_on = false;
        }
        let pressure = if self.pump_on { 0.45 } else { 0.05 } + self.level_m * 0.0098;
        (round3(self.level_m), round3(pressure))
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The simulated tank as a driver.
#[derive(Debug)]
pub struct TankSim {
    model: TankModel,
    interval: Duration,
}

impl TankSim {
    /// A tank of `height_m` reporting every `interval`.
    pub fn new(height_m: f64, interval: Duration, seed: u64) -> Self {
        Self {
            model: TankModel::new(height_m, seed),
            interval,
        }
    }

    async fn report(&mut self, ctx: &DriverContext) -> Result<(), DriverError> {
        let (level, pressure) = self.model.step();
        ctx.events
            .emit(DeviceEvent::PointValue {
                point: "level".into(),
                value: level,
                unit: "m".into(),
            })
            .await?;
        ctx.events
            .emit(DeviceEvent::PointValue {
                point: "pressure".into(),
                value: pressure,
                unit: "MPa".into(),
            })
            .await?;
        ctx.health.ok();
        Ok(())
    }
}

impl Driver for TankSim {
    fn kind(&self) -> &'static str {
        "sim-tank"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            let mut ticker = tokio::time::interval(self.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Ok(()),
                    _ = ticker.tick() => self.report(ctx).await?,
                    request = ctx.commands.recv() => {
                        let Some(request) = request else { return Ok(()) };
                        let outcome = match request.command {
                            Command::Poll => {
                                self.report(ctx).await?;
                                CommandOutcome::Done
                            }
                            // A tank sensor has no actuator: always safe.
                            Command::SafeState => CommandOutcome::Done,
                            _ => CommandOutcome::Unsupported,
                        };
                        request.answer(outcome);
                    }
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandRequest;
    use crate::contract::{HealthState, TestContext};

    #[test]
    fn level_stays_within_the_tank_and_the_pump_refills() {
        let mut model = TankModel::new(4.0, 7);
        let mut pump_ran = false;
        for _ in 0..1000 {
            let (level, pressure) = model.step();
            assert!((0.0..=4.0).contains(&level), "level {level}");
            assert!(pressure > 0.0);
            pump_ran |= model.pump_on;
        }
        assert!(pump_ran, "the pump never started in 1000 steps");
    }

    #[tokio::test(start_paused = true)]
    async fn sim_tank_reports_level_and_pressure_and_answers_poll() {
        let TestContext {
            mut ctx,
            events: mut rx,
            commands: cmd_tx,
            health: health_rx,
            cancel,
            ..
        } = DriverContext::for_test("tank-1", 16);
        let mut driver = TankSim::new(4.0, Duration::from_secs(3600), 1);
        let task = tokio::spawn(async move { driver.run(&mut ctx).await });

        // The first tick fires at once.
        let first = rx.recv().await.expect("level");
        assert_eq!(first.event.kind(), "point_value");
        let second = rx.recv().await.expect("pressure");
        assert!(
            matches!(second.event, DeviceEvent::PointValue { ref point, .. } if point == "pressure")
        );

        let (request, outcome) = CommandRequest::new(Command::Poll);
        cmd_tx.send(request).await.expect("inbox open");
        assert!(rx.recv().await.is_some());
        assert_eq!(outcome.await.expect("answered"), CommandOutcome::Done);
        assert_eq!(health_rx.borrow().state, HealthState::Ok);

        cancel.cancel();
        assert_eq!(task.await.expect("joined"), Ok(()));
    }
}
