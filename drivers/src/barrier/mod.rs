//! The barrier (道闸) family: one lane's pure state machine ([`lane`]), the
//! Modbus register map of its IO module with presets ([`map`]), the bus
//! actor that owns one Modbus line ([`modbus`]) and the driver that ties
//! them together ([`driver`]).
//!
//! Building a lane (what the gateway's config loader does):
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use drivers::barrier::{BarrierConfig, BarrierDriver, BusConfig, ModbusBus, Preset, Transport};
//!
//! let bus = ModbusBus::spawn(BusConfig {
//!     transport: Transport::Rtu { path: "/dev/ttyUSB0".into(), baud: 9600 },
//!     timeout: Duration::from_millis(300),
//! });
//! let map = Preset::from_name("waveshare-rtu-relay").and_then(Preset::map);
//! if let Some(map) = map {
//!     // Several lanes may share `bus` (clone the handle, other slave ids).
//!     let _driver = BarrierDriver::new(bus.clone(), BarrierConfig::new(1, map));
//! }
//! # }
//! ```

pub mod driver;
pub mod lane;
pub mod map;
pub mod modbus;

pub use driver::{BarrierConfig, BarrierDriver};
pub use lane::{Action, Input, Lane, LaneCommand, LaneConfig, Output, Step};
pub use map::{DigitalInput, MapError, Preset, RegisterMap, waveshare_flash_pdu};
pub use modbus::{BusConfig, BusError, BusHandle, ModbusBus, Transport};
