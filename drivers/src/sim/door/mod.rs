//! Simulated unit-door devices, for the demo and the tests:
//! - [`wiegand::WiegandSim`]: a Wiegand reader driving two fake GPIO lines
//!   with real timing (50 µs pulses, one bit every 2 ms);
//! - [`serial::SerialReaderSim`]: a serial card reader on a pseudo-terminal;
//! - [`wg::WgControllerSim`]: a WG/UHPPOTE controller on loopback UDP.

pub mod serial;
pub mod wg;
pub mod wiegand;

pub use serial::SerialReaderSim;
pub use wg::WgControllerSim;
pub use wiegand::WiegandSim;
