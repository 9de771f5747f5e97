//! Shared rig for the barrier driver tests: a driver task with its context,
//! and waiting on its events with a deadline.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use drivers::TestContext;
use drivers::barrier::{BarrierConfig, BarrierDriver, BusHandle, LaneConfig, Preset};
use drivers::sim::barrier::BarrierSimConfig;
use drivers::{
    Command, CommandOutcome, CommandRequest, DeviceEvent, Driver, DriverContext, DriverError,
    Health,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any single condition may take.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// A fast simulated controller (the arm travels in 150 ms).
pub fn sim_config() -> BarrierSimConfig {
    BarrierSimConfig {
        rise: Duration::from_millis(150),
        fall: Duration::from_millis(150),
        ..BarrierSimConfig::default()
    }
}

/// The waveshare lane with test timing.
pub fn lane_config() -> BarrierConfig {
    let map = Preset::WaveshareRtuRelay.map().expect("a preset map");
    let mut config = BarrierConfig::new(1, map);
    config.map.pulse = Duration::from_millis(20);
    config.poll_interval = Duration::from_millis(20);
    config.lane = LaneConfig {
        auto_close_delay: Duration::from_millis(100),
        unused_close_after: None,
        travel_timeout: Duration::from_millis(1000),
        ..LaneConfig::default()
    };
    config
}

/// A running driver and the test's ends of its context.
pub struct Rig {
    pub events: mpsc::Receiver<drivers::Inbound>,
    pub seen: Vec<DeviceEvent>,
    pub commands: mpsc::Sender<CommandRequest>,
    pub cancel: CancellationToken,
    pub health: watch::Receiver<Health>,
    pub task: JoinHandle<Result<(), DriverError>>,
}

impl Rig {
    pub fn start(bus: BusHandle, config: BarrierConfig) -> Self {
        let TestContext {
            mut ctx,
            events,
            commands,
            health,
            cancel,
            ..
        } = DriverContext::for_test("lane-1", 256);
        let mut driver = BarrierDriver::new(bus, config);
        assert_eq!(driver.kind(), "modbus-barrier");
        let task = tokio::spawn(async move { driver.run(&mut ctx).await });
        Self {
            events,
            seen: Vec::new(),
            commands,
            cancel,
            health,
            task,
        }
    }

    /// Waits for the first event (from now on) that matches `pred`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&DeviceEvent) -> bool,
    ) -> DeviceEvent {
        let events = &mut self.events;
        let seen = &mut self.seen;
        let found = tokio::time::timeout(DEADLINE, async {
            while let Some(inbound) = events.recv().await {
                seen.push(inbound.event.clone());
                if pred(&inbound.event) {
                    return Some(inbound.event);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(event)) => event,
            _ => panic!(
                "no {what} within {DEADLINE:?}; events seen: {:#?}",
                self.seen
            ),
        }
    }

    pub async fn arm(&mut self, state: drivers::ArmState) {
        self.wait_for(
            &format!("arm {state:?}"),
            |e| matches!(e, DeviceEvent::BarrierState { state: s } if *s == state),
        )
        .await;
    }

    pub async fn command(&self, command: Command) -> CommandOutcome {
        let (request, outcome) = CommandRequest::new(command);
        self.commands
            .send(request)
            .await
            .expect("driver inbox open");
        tokio::time::timeout(DEADLINE, outcome)
            .await
            .expect("answered in time")
            .expect("answered")
    }

    /// Cancels the driver and returns how it ended.
    pub async fn stop(self) -> Result<(), DriverError> {
        self.cancel.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("driver stops in time")
            .expect("driver task joined")
    }
}
