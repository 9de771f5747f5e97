//! Local rules: pure functions from what happened to what to do. No IO, no
//! clocks, no channels; the pipeline feeds them and carries out the result.
//!
//! - [`threshold`]: alarms when a measured point leaves its configured band.

pub mod threshold;
