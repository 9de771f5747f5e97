//! [`DoorDriver`]: the door hardware of one unit door — the strike relay
//! (a [`Relay`]), the door contact and an optional exit button (GPIO
//! [`InputLine`]s) — around the pure [`DoorMachine`].
//!
//! `Command::PulseDoor` energises the relay for the configured pulse and
//! reports `RelayPulse`; the exit button does the same. The relay is held
//! by a [`RelayGuard`], so the door locks again on every way out of
//! [`Driver::run`]: return, error, panic unwinding, or the future being
//! dropped mid-pulse.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::gpio::{GpioError, InputLine, Relay, RelayGuard};
use super::state::{DoorConfig, DoorInput, DoorMachine};
use crate::command::{Command, CommandOutcome};
use crate::contract::{Driver, DriverContext, DriverError};
use crate::event::DeviceEvent;

/// Configuration of one door's hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorHardwareConfig {
    /// Door number, when part of a multi-door installation.
    pub door: Option<u8>,
    /// Default relay pulse, in milliseconds.
    pub pulse_ms: u64,
    /// The contact input is active when the door is open (else when closed).
    pub contact_active_when_open: bool,
    /// A press of the exit button also pulses the relay.
    pub exit_button_pulses: bool,
    /// Alarm timing.
    pub alarms: DoorConfig,
}

impl Default for DoorHardwareConfig {
    fn default() -> Self {
        Self {
            door: None,
            pulse_ms: 3_000,
            contact_active_when_open: true,
            exit_button_pulses: true,
            alarms: DoorConfig::default(),
        }
    }
}

/// The door-hardware driver.
#[derive(Debug)]
pub struct DoorDriver<R: Relay, I: InputLine> {
    relay: R,
    contact: I,
    button: Option<I>,
    config: DoorHardwareConfig,
}

impl<R: Relay, I: InputLine> DoorDriver<R, I> {
    /// A door with `relay`, `contact` and optionally an exit `button`
    /// (active while pressed).
    pub fn new(relay: R, contact: I, button: Option<I>, config: DoorHardwareConfig) -> Self {
        Self {
            relay,
            contact,
            button,
            config,
        }
    }
}

fn input_error(what: &str, error: GpioError) -> DriverError {
    DriverError::Transient(format!("door {what}: {error}"))
}

async fn next_press<I: InputLine>(button: &mut Option<I>) -> Result<bool, GpioError> {
    match button {
        Some(b) => b.next_edge().await.map(|e| e.rising),
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn emit_all(ctx: &DriverContext, events: Vec<DeviceEvent>) -> Result<(), DriverError> {
    for event in events {
        ctx.events.emit(event).await?;
    }
    Ok(())
}

/// One run's state: the guarded relay, the machine and the pulse deadline.
struct Session<'a, R: Relay> {
    relay: RelayGuard<'a, R>,
    machine: DoorMachine,
    pulse_until: Option<Instant>,
    config: DoorHardwareConfig,
}

impl<R: Relay> Session<'_, R> {
    async fn input(&mut self, ctx: &DriverContext, input: DoorInput) -> Result<(), DriverError> {
        let events = self.machine.handle(input, Instant::now());
        emit_all(ctx, events).await
    }

    /// Energises the relay until `now + duration` (extending a running pulse).
    async fn pulse(
        &mut self,
        ctx: &DriverContext,
        duration: Duration,
    ) -> Result<CommandOutcome, DriverError> {
        if let Err(error) = self.relay.relay().set_energised(true).await {
            self.relay.relay().release();
            self.pulse_until = None;
            ctx.health.degraded(&format!("relay: {error}"));
            return Ok(CommandOutcome::Failed(format!("relay: {error}")));
        }
        let until = Instant::now() + duration;
        self.pulse_until = Some(self.pulse_until.map_or(until, |t| t.max(until)));
        self.input(ctx, DoorInput::Granted).await?;
        ctx.events
            .emit(DeviceEvent::RelayPulse {
                duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                door: self.config.door,
            })
            .await?;
        Ok(CommandOutcome::Done)
    }

    async fn lock(&mut self) -> Result<(), GpioError> {
        self.pulse_until = None;
        self.relay.relay().set_energised(false).await
    }
}

impl<R: Relay + 'static, I: InputLine + 'static> Driver for DoorDriver<R, I> {
    fn kind(&self) -> &'static str {
        "door"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            let config = self.config;
            let mut s = Session {
                relay: RelayGuard::new(&mut self.relay),
                machine: DoorMachine::new(config.alarms, config.door),
                pulse_until: None,
                config,
            };
            s.lock()
                .await
                .map_err(|e| DriverError::Device(format!("relay: {e}")))?;
            let active = self
                .contact
                .level()
                .map_err(|e| input_error("contact", e))?;
            s.input(
                ctx,
                DoorInput::Contact(active == config.contact_active_when_open),
            )
            .await?;
            ctx.health.ok();
            loop {
                let held_deadline = s.machine.next_deadline();
                tokio::select! {
                    () = ctx.cancel.cancelled() => {
                        // The guard de-energises too; this reports a failure.
                        if let Err(error) = s.lock().await {
                            tracing::error!(%error, "could not lock the door on shutdown");
                        }
                        return Ok(());
                    }
                    () = sleep_until_opt(s.pulse_until) => {
                        if let Err(error) = s.lock().await {
                            ctx.health.degraded(&format!("relay: {error}"));
                            return Err(DriverError::Device(format!("relay: {error}")));
                        }
                    }
                    () = sleep_until_opt(held_deadline) => s.input(ctx, DoorInput::Tick).await?,
                    edge = self.contact.next_edge() => {
                        let edge = edge.map_err(|e| input_error("contact", e))?;
                        let open = edge.rising == config.contact_active_when_open;
                        s.input(ctx, DoorInput::Contact(open)).await?;
                    }
                    press = next_press(&mut self.button) => {
                        if press.map_err(|e| input_error("exit button", e))? {
                            s.input(ctx, DoorInput::ExitButton).await?;
                            if config.exit_button_pulses {
                                s.pulse(ctx, Duration::from_millis(config.pulse_ms)).await?;
                            }
                        }
                    }
                    request = ctx.commands.recv() => {
                        let Some(request) = request else { return Ok(()) };
                        // Past its deadline: dropped, never pulsed late.
                        let Some(request) = request.unless_expired() else { continue };
                        let outcome = match request.command {
                            Command::PulseDoor { door, duration_ms }
                                if door.is_none() || door == config.door =>
                            {
                                let ms = duration_ms.unwrap_or(config.pulse_ms);
                                s.pulse(ctx, Duration::from_millis(ms)).await?
                            }
                            Command::PulseDoor { door, .. } => CommandOutcome::Refused(format!(
                                "this driver serves door {:?}, not {door:?}",
                                config.door
                            )),
                            Command::SafeState => match s.lock().await {
                                Ok(()) => CommandOutcome::Done,
                                Err(e) => CommandOutcome::Failed(format!("relay: {e}")),
                            },
                            Command::Poll => {
                                if let Some(open) = s.machine.is_open() {
                                    let state = DeviceEvent::DoorState { open, door: config.door };
                                    emit_all(ctx, vec![state]).await?;
                                }
                                CommandOutcome::Done
                            }
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
