//! Simulated devices. Each one is a real [`crate::Driver`] (or a real
//! protocol peer) so that `gatehouse demo` and the tests exercise the same
//! code paths as an estate with hardware.

pub mod barrier;
pub mod camera;
pub mod door;
pub mod facility;
pub mod onvif;
pub mod snapshot;
pub mod tank;

pub use tank::{TankModel, TankSim};
