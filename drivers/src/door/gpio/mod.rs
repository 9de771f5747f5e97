//! The GPIO seam: narrow traits for timestamped input lines and output
//! lines, so that door drivers run unchanged over the kernel GPIO character
//! device ([`cdev`]) and over the in-memory [`fake`] used by tests and the
//! demo.
//!
//! Levels are *logical*: `true` means active. Whether active is electrically
//! high or low is the line's configuration (`active_low`), not the driver's
//! business.

pub mod cdev;
pub mod fake;

use std::future::Future;
use std::time::Duration;

pub use cdev::{CdevInput, CdevOutput, LineConfig, LineRef};
pub use fake::{FakeInput, FakeInputHandle, FakeOutput, FakeOutputHandle, fake_input, fake_output};

/// One level change on an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// `true` for inactive → active, `false` for active → inactive.
    pub rising: bool,
    /// When it happened, on the kernel's monotonic clock (or the fake's).
    pub timestamp: Duration,
}

/// Why a line operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpioError {
    /// No chip or no line matches the configuration.
    #[error("gpio line not found: {0}")]
    NotFound(String),
    /// The kernel refused or failed the operation.
    #[error("gpio: {0}")]
    Io(String),
    /// The line is gone (the fake's handle was dropped).
    #[error("gpio line closed")]
    Closed,
}

/// An input line that reports timestamped edges.
pub trait InputLine: Send {
    /// Waits for the next edge. Cancel-safe: dropping the future loses no edge.
    fn next_edge(&mut self) -> impl Future<Output = Result<Edge, GpioError>> + Send;

    /// The line's current logical level.
    fn level(&self) -> Result<bool, GpioError>;
}

/// An output line (a relay driver transistor, an LED).
pub trait OutputLine: Send {
    /// Drives the line active or inactive.
    fn set(&mut self, active: bool) -> Result<(), GpioError>;
}

/// Something that can energise a door strike: a GPIO line, or later a
/// Modbus coil or a relay board behind another bus.
///
/// `set` may be asynchronous (a bus round trip); [`Relay::release`] is the
/// synchronous, best-effort de-energise used by drop guards, so that the
/// door locks even when the future driving it is dropped. A bus relay whose
/// `release` cannot reach the device should use self-timed pulses.
pub trait Relay: Send {
    /// Energises (`true`) or de-energises (`false`) the relay.
    fn set_energised(&mut self, on: bool) -> impl Future<Output = Result<(), GpioError>> + Send;

    /// De-energises without waiting; never fails loudly.
    fn release(&mut self);
}

impl<T: OutputLine> Relay for T {
    async fn set_energised(&mut self, on: bool) -> Result<(), GpioError> {
        self.set(on)
    }

    fn release(&mut self) {
        if let Err(error) = self.set(false) {
            tracing::error!(%error, "could not de-energise the door relay");
        }
    }
}

/// De-energises the relay it wraps when dropped: on return, on error and
/// when the driver's future is cancelled mid-pulse.
#[derive(Debug)]
pub struct RelayGuard<'a, R: Relay> {
    relay: &'a mut R,
}

impl<'a, R: Relay> RelayGuard<'a, R> {
    /// Wraps `relay`.
    pub fn new(relay: &'a mut R) -> Self {
        Self { relay }
    }

    /// The wrapped relay.
    pub fn relay(&mut self) -> &mut R {
        self.relay
    }
}

impl<R: Relay> Drop for RelayGuard<'_, R> {
    fn drop(&mut self) {
        self.relay.release();
    }
}
