//! Coordinators: the stateful side of the local rules. Each implements
//! [`crate::pipeline::Coordinator`], keeps its state in memory, and calls
//! the pure functions in [`crate::rules`].
//!
//! - [`threshold`]: alarms on measured points leaving their band.

pub mod threshold;
