//! The device side of Gatehouse: the contract every driver implements, the
//! events and commands that cross it, and one module per device family with
//! its simulator.
//!
//! Layout:
//! - [`contract`]: the [`Driver`] trait, [`DriverContext`] (event sender,
//!   command inbox, health reporter, cancellation), [`Health`] and the
//!   classified [`DriverError`].
//! - [`event`]: [`DeviceEvent`] (what devices report) and [`Class`].
//! - [`command`]: [`Command`] (what the gateway asks devices to do) and its
//!   [`CommandOutcome`].
//! - [`points`]: Modbus point tables (facility telemetry) and their driver.
//! - [`camera`]: ONVIF surveillance cameras (SOAP codecs, client, driver,
//!   WS-Discovery).
//! - [`sim`]: simulated devices; they are both the demo estate and test peers.
//!
//! Nothing in this crate knows about the store, the uplink or the web panel.

pub mod barrier;
pub mod camera;
pub mod command;
pub mod contract;
pub mod door;
pub mod event;
pub mod intercom;
pub mod lpr;
pub mod points;
pub mod sim;

pub use command::{Command, CommandOutcome, CommandRequest};
#[cfg(any(test, feature = "test-util"))]
pub use contract::TestContext;
pub use contract::{
    DeviceId, Driver, DriverContext, DriverError, EventSender, Health, HealthReporter, Inbound,
    Link,
};
pub use event::{
    Answerer, ArmState, CameraAlarmKind, CameraSignalKind, Class, ControllerVerdict, DeviceEvent,
    DoorAlarmKind, PlateColour, PointSample, Quality, Reading, UnlockMethod,
};
