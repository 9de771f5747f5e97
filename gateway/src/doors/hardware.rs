//! Builds the unit-door drivers from their device configuration, on real
//! GPIO lines (gpiocdev, opened when the driver starts, so a missing chip
//! is a restartable failure rather than a crash) or on simulated lines
//! (`gpio = "sim"`), whose other ends are kept in [`SimHardware`] for the
//! demo script and the tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use drivers::door::door_driver::{DoorDriver, DoorHardwareConfig};
use drivers::door::gpio::{
    CdevInput, CdevOutput, FakeInputHandle, FakeOutputHandle, GpioError, LineConfig, fake_input,
    fake_output,
};
use drivers::door::serial_driver::{SerialReader, SerialReaderConfig};
use drivers::door::wiegand::WiegandConfig;
use drivers::door::wiegand_driver::WiegandReader;
use drivers::sim::door::WiegandSim;
use drivers::{Driver, DriverContext, DriverError};
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::config::Gpio;

/// The simulator ends of one simulated door's lines.
#[derive(Debug, Clone)]
pub struct SimDoor {
    /// The strike relay output (observe its level).
    pub relay: FakeOutputHandle,
    /// The door contact (drive it: active = open, unless configured otherwise).
    pub contact: FakeInputHandle,
    /// The exit button (active while pressed), if configured.
    pub exit_button: Option<FakeInputHandle>,
}

#[derive(Debug, Default)]
struct SimInner {
    readers: HashMap<String, Arc<Mutex<WiegandSim>>>,
    doors: HashMap<String, SimDoor>,
}

/// The simulated GPIO hardware of the devices configured with
/// `gpio = "sim"`, by device id. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SimHardware {
    inner: Arc<Mutex<SimInner>>,
}

impl SimHardware {
    fn lock(&self) -> MutexGuard<'_, SimInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulator playing frames into Wiegand reader `id`.
    pub fn wiegand(&self, id: &str) -> Option<Arc<Mutex<WiegandSim>>> {
        self.lock().readers.get(id).cloned()
    }

    /// The lines of simulated door `id`.
    pub fn door(&self, id: &str) -> Option<SimDoor> {
        self.lock().doors.get(id).cloned()
    }

    /// Whether any device is simulated.
    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.readers.is_empty() && inner.doors.is_empty()
    }

    /// Presents a 34-bit UID card at simulated reader `id`; `false` if
    /// there is no such reader.
    pub fn present_w34(&self, id: &str, uid: u32) -> bool {
        match self.wiegand(id) {
            Some(sim) => {
                sim.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .send_w34(uid);
                true
            }
            None => false,
        }
    }
}

/// A Wiegand reader on `d0`/`d1`, real or simulated.
#[allow(clippy::too_many_arguments)]
pub fn wiegand_reader(
    id: &str,
    gpio: &Gpio,
    d0: &LineConfig,
    d1: &LineConfig,
    config: WiegandConfig,
    door: Option<u8>,
    sim: &SimHardware,
) -> Box<dyn Driver> {
    match gpio {
        Gpio::Sim => {
            let (d0, d1, wiegand) = WiegandSim::new();
            sim.lock()
                .readers
                .insert(id.to_owned(), Arc::new(Mutex::new(wiegand)));
            Box::new(WiegandReader::new(d0, d1, config).for_door(door))
        }
        Gpio::Chip(_) => {
            let (d0, d1, consumer) = (d0.clone(), d1.clone(), format!("gatehouse-{id}"));
            Box::new(OnLines::new("wiegand-reader", move || {
                let reader = WiegandReader::new(
                    CdevInput::open(&d0, &consumer)?,
                    CdevInput::open(&d1, &consumer)?,
                    config,
                )
                .bits_on_rising(d0.active_low)
                .for_door(door);
                Ok(Box::new(reader))
            }))
        }
    }
}

/// A door's relay, contact and exit button, real or simulated.
#[allow(clippy::too_many_arguments)]
pub fn door(
    id: &str,
    gpio: &Gpio,
    relay: &LineConfig,
    contact: &LineConfig,
    exit_button: Option<&LineConfig>,
    hardware: DoorHardwareConfig,
    sim: &SimHardware,
) -> Box<dyn Driver> {
    match gpio {
        Gpio::Sim => {
            let (relay_line, relay) = fake_output();
            let (contact_line, contact) = fake_input(!hardware.contact_active_when_open);
            let (button_line, button) = match exit_button {
                Some(_) => {
                    let (line, handle) = fake_input(false);
                    (Some(line), Some(handle))
                }
                None => (None, None),
            };
            sim.lock().doors.insert(
                id.to_owned(),
                SimDoor {
                    relay,
                    contact,
                    exit_button: button,
                },
            );
            Box::new(DoorDriver::new(
                relay_line,
                contact_line,
                button_line,
                hardware,
            ))
        }
        Gpio::Chip(_) => {
            let (relay, contact, button) = (relay.clone(), contact.clone(), exit_button.cloned());
            let consumer = format!("gatehouse-{id}");
            Box::new(OnLines::new("door", move || {
                let button = match &button {
                    Some(line) => Some(CdevInput::open(line, &consumer)?),
                    None => None,
                };
                Ok(Box::new(DoorDriver::new(
                    CdevOutput::open(&relay, &consumer)?,
                    CdevInput::open(&contact, &consumer)?,
                    button,
                    hardware,
                )))
            }))
        }
    }
}

/// A serial card reader (its framing was checked with the configuration).
pub fn serial_reader(config: &SerialReaderConfig) -> Box<dyn Driver> {
    match SerialReader::new(config.clone()) {
        Ok(reader) => Box::new(reader),
        Err(error) => Box::new(Unusable {
            kind: "serial-reader",
            why: error.to_string(),
        }),
    }
}

/// A driver whose configuration cannot work: it stops at once, reported.
#[derive(Debug)]
struct Unusable {
    kind: &'static str,
    why: String,
}

impl Driver for Unusable {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(
        &'a mut self,
        _ctx: &'a mut DriverContext,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        let why = self.why.clone();
        async move { Err(DriverError::Misconfigured(why)) }.boxed()
    }
}

type Open = dyn FnMut() -> Result<Box<dyn Driver>, GpioError> + Send;

/// A driver whose GPIO lines are requested when it first runs (and again
/// after a failure to request them), so that a missing chip or line is a
/// driver error the supervisor reports, not a start-up crash.
struct OnLines {
    kind: &'static str,
    open: Box<Open>,
    driver: Option<Box<dyn Driver>>,
}

impl std::fmt::Debug for OnLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnLines")
            .field("kind", &self.kind)
            .field("open", &self.driver.is_some())
            .finish()
    }
}

impl OnLines {
    fn new(
        kind: &'static str,
        open: impl FnMut() -> Result<Box<dyn Driver>, GpioError> + Send + 'static,
    ) -> Self {
        Self {
            kind,
            open: Box::new(open),
            driver: None,
        }
    }
}

impl Driver for OnLines {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            let driver = match &mut self.driver {
                Some(driver) => driver,
                None => {
                    let opened = (self.open)().map_err(|error| match error {
                        GpioError::NotFound(what) => {
                            DriverError::Misconfigured(format!("gpio line not found: {what}"))
                        }
                        other => DriverError::Transient(other.to_string()),
                    })?;
                    self.driver.insert(opened)
                }
            };
            driver.run(ctx).await
        }
        .boxed()
    }
}
