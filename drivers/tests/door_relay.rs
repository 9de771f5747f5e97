//! Door hardware: relay pulse timing under paused time, the exit button,
//! held-open and forced-open alarms from the contact, and the relay guard
//! that locks the door when the driver stops or is dropped mid-pulse.

use std::time::Duration;

use drivers::TestContext;
use drivers::command::{Command, CommandOutcome, CommandRequest};
use drivers::contract::{DriverContext, Inbound};
use drivers::door::door_driver::{DoorDriver, DoorHardwareConfig};
use drivers::door::gpio::{FakeInput, FakeInputHandle, FakeOutputHandle, fake_input, fake_output};
use drivers::door::state::DoorConfig;
use drivers::{DeviceEvent, DoorAlarmKind, Driver, DriverError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Rig {
    rx: mpsc::Receiver<Inbound>,
    commands: mpsc::Sender<CommandRequest>,
    relay: FakeOutputHandle,
    contact: FakeInputHandle,
    button: FakeInputHandle,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), DriverError>>,
}

fn config() -> DoorHardwareConfig {
    DoorHardwareConfig {
        door: Some(1),
        pulse_ms: 3_000,
        contact_active_when_open: true,
        exit_button_pulses: true,
        alarms: DoorConfig {
            held_open_after_s: 30,
            grant_window_s: 5,
        },
    }
}

fn rig() -> Rig {
    let (relay, relay_handle) = fake_output();
    let (contact, contact_handle): (FakeInput, _) = fake_input(false);
    let (button, button_handle) = fake_input(false);
    let TestContext {
        mut ctx,
        events: rx,
        commands: cmd_tx,
        cancel,
        ..
    } = DriverContext::for_test("door-1", 64);
    let mut driver = DoorDriver::new(relay, contact, Some(button), config());
    let task = tokio::spawn(async move { driver.run(&mut ctx).await });
    Rig {
        rx,
        commands: cmd_tx,
        relay: relay_handle,
        contact: contact_handle,
        button: button_handle,
        cancel,
        task,
    }
}

impl Rig {
    async fn next(&mut self) -> DeviceEvent {
        tokio::time::timeout(Duration::from_secs(3600), self.rx.recv())
            .await
            .expect("an event within the deadline")
            .expect("driver alive")
            .event
    }

    async fn pulse(&self, duration_ms: Option<u64>) -> CommandOutcome {
        let (request, outcome) = CommandRequest::new(Command::PulseDoor {
            door: Some(1),
            duration_ms,
        });
        self.commands.send(request).await.expect("inbox");
        outcome.await.expect("answered")
    }
}

fn alarm(alarm: DoorAlarmKind, active: bool) -> DeviceEvent {
    DeviceEvent::DoorAlarm {
        alarm,
        active,
        door: Some(1),
    }
}

fn closed() -> DeviceEvent {
    DeviceEvent::DoorState {
        open: false,
        door: Some(1),
    }
}

#[tokio::test(start_paused = true)]
async fn relay_pulse_lasts_exactly_the_configured_time() {
    let mut r = rig();
    assert_eq!(r.next().await, closed());
    let start = Instant::now();
    assert_eq!(r.pulse(None).await, CommandOutcome::Done);
    assert_eq!(
        r.next().await,
        DeviceEvent::RelayPulse {
            duration_ms: 3_000,
            door: Some(1)
        }
    );
    assert!(r.relay.level(), "energised during the pulse");
    r.relay.wait_for(false).await;
    let history = r.relay.history();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0], (start, true));
    assert_eq!(history[1], (start + Duration::from_millis(3_000), false));

    // A requested duration overrides the default.
    let start = Instant::now();
    assert_eq!(r.pulse(Some(500)).await, CommandOutcome::Done);
    r.relay.wait_for(false).await;
    assert_eq!(Instant::now() - start, Duration::from_millis(500));
    r.cancel.cancel();
    assert_eq!(r.task.await.expect("joined"), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn relay_pulse_for_another_door_is_refused() {
    let mut r = rig();
    assert_eq!(r.next().await, closed());
    let (request, outcome) = CommandRequest::new(Command::PulseDoor {
        door: Some(2),
        duration_ms: None,
    });
    r.commands.send(request).await.expect("inbox");
    assert!(matches!(
        outcome.await.expect("answered"),
        CommandOutcome::Refused(_)
    ));
    assert!(r.relay.history().is_empty(), "relay never moved");
}

#[tokio::test(start_paused = true)]
async fn relay_fault_fails_the_command_and_leaves_the_door_locked() {
    let mut r = rig();
    assert_eq!(r.next().await, closed());
    r.relay.fail_energise(true);
    assert!(matches!(r.pulse(None).await, CommandOutcome::Failed(_)));
    assert!(!r.relay.level());
    r.relay.fail_energise(false);
    assert_eq!(r.pulse(None).await, CommandOutcome::Done, "recovers");
}

#[tokio::test(start_paused = true)]
async fn relay_is_released_when_the_driver_future_is_dropped_mid_pulse() {
    let mut r = rig();
    assert_eq!(r.next().await, closed());
    assert_eq!(r.pulse(Some(60_000)).await, CommandOutcome::Done);
    assert!(r.relay.level());
    // No cancellation: the task is aborted, as when a supervisor drops it.
    r.task.abort();
    assert!(r.task.await.expect_err("aborted").is_cancelled());
    assert!(!r.relay.level(), "the guard de-energised the relay");
}

#[tokio::test(start_paused = true)]
async fn relay_is_released_on_cancel_mid_pulse() {
    let mut r = rig();
    assert_eq!(r.next().await, closed());
    assert_eq!(r.pulse(Some(60_000)).await, CommandOutcome::Done);
    r.cancel.cancel();
    assert_eq!(r.task.await.expect("joined"), Ok(()));
    assert!(!r.relay.level());
}

#[tokio::test(start_paused = true)]
async fn relay_pulses_on_the_exit_button_and_the_door_opening_is_not_forced() {
    let mut r = rig();
    assert_eq!(r.next().await, closed());
    r.button.set_now(true);
    assert_eq!(r.next().await, DeviceEvent::ExitButton { door: Some(1) });
    assert!(matches!(r.next().await, DeviceEvent::RelayPulse { .. }));
    assert!(r.relay.level());
    r.button.set_now(false);
    tokio::time::advance(Duration::from_secs(1)).await;
    r.contact.set_now(true);
    assert_eq!(
        r.next().await,
        DeviceEvent::DoorState {
            open: true,
            door: Some(1)
        }
    );
    r.contact.set_now(false);
    assert_eq!(r.next().await, closed(), "no forced-open alarm in between");
}

#[tokio::test(start_paused = true)]
async fn forced_open_is_raised_without_a_grant_and_cleared_on_close() {
    let mut r = rig();
    assert_eq!(r.next().await, closed());
    r.contact.set_now(true);
    assert!(matches!(
        r.next().await,
        DeviceEvent::DoorState { open: true, .. }
    ));
    assert_eq!(r.next().await, alarm(DoorAlarmKind::ForcedOpen, true));
    r.contact.set_now(false);
    assert_eq!(r.next().await, closed());
    assert_eq!(r.next().await, alarm(DoorAlarmKind::ForcedOpen, false));
}

#[tokio::test(start_paused = true)]
async fn forced_open_after_the_grant_window_has_expired() {
    let mut r = rig();
    assert_eq!(r.next().await, closed());
    assert_eq!(r.pulse(None).await, CommandOutcome::Done);
    assert!(matches!(r.next().await, DeviceEvent::RelayPulse { .. }));
    tokio::time::advance(Duration::from_secs(6)).await;
    r.contact.set_now(true);
    assert!(matches!(
        r.next().await,
        DeviceEvent::DoorState { open: true, .. }
    ));
    assert_eq!(r.next().await, alarm(DoorAlarmKind::ForcedOpen, true));
}

#[tokio::test(start_paused = true)]
async fn held_open_is_raised_after_the_limit_and_cleared_when_closed() {
    let mut r = rig();
    assert_eq!(r.next().await, closed());
    assert_eq!(r.pulse(None).await, CommandOutcome::Done);
    assert!(matches!(r.next().await, DeviceEvent::RelayPulse { .. }));
    r.contact.set_now(true);
    let opened = Instant::now();
    assert!(matches!(
        r.next().await,
        DeviceEvent::DoorState { open: true, .. }
    ));
    // The next event is the alarm, at exactly 30 s (paused time auto-advances).
    assert_eq!(r.next().await, alarm(DoorAlarmKind::HeldOpen, true));
    assert_eq!(Instant::now() - opened, Duration::from_secs(30));
    r.contact.set_now(false);
    assert_eq!(r.next().await, closed());
    assert_eq!(r.next().await, alarm(DoorAlarmKind::HeldOpen, false));
}
