//! Simulated devices. Each one is a real [`crate::Driver`] (or a real
//! protocol peer) so that `gatehouse demo` and the tests exercise the same
//! code paths as an estate with hardware.

pub mod barrier;
pub mod camera;
pub mod dahua_vto;
pub mod digest_server;
pub mod door;
pub mod facility;
pub mod hik_station;
pub mod onvif;
pub mod snapshot;
pub mod tank;

pub use tank::{TankModel, TankSim};
