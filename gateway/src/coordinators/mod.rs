//! Coordinators: the stateful side of the local rules. Each implements
//! [`crate::pipeline::Coordinator`], keeps its state in memory, and calls
//! the pure functions in [`crate::rules`].
//!
//! - [`threshold`]: alarms on measured points leaving their band.
//! - the doors coordinator lives with the rest of the doors:
//!   [`crate::doors::coordinator`].

pub mod threshold;
