//! Facility telemetry (设施): generic Modbus point tables for pumps, tanks,
//! elevators and meters.
//!
//! - [`table`]: the point model (register kind, data type, byte/word order,
//!   scale, offset, unit, deadband, write limits, alarm) and its checks.
//! - [`codec`]: registers ⇄ values for one point (pure).
//! - [`plan`]: contiguous points merged into as few reads as the protocol
//!   allows, and each answer decoded back into points (pure).
//! - [`alarm`]: thresholds with hysteresis and on/off delays, state alarms
//!   for booleans (pure).
//! - [`state`]: quality, report-by-exception, and the shared live view.
//! - [`driver`]: [`PointsDriver`], polling through the shared
//!   [`BusHandle`](crate::barrier::BusHandle) of its line, so barriers and
//!   point devices on one RS-485 port have one owner.

pub mod alarm;
pub mod codec;
pub mod driver;
pub mod plan;
pub mod state;
pub mod table;

pub use alarm::{AlarmChange, AlarmSide, AlarmState};
pub use codec::{EncodeError, Encoded, decode_registers, encode};
pub use driver::{PointsConfig, PointsDriver};
pub use plan::{Read, plan};
pub use state::{PointStatus, PointsView};
pub use table::{
    AlarmRule, DataType, Point, PointTable, PollGroup, RegisterKind, TableError, WordOrder,
    WriteLimits,
};
