//! Local rules: pure functions from what happened to what to do. No IO, no
//! clocks, no channels; the pipeline feeds them and carries out the result.
//!
//! - [`threshold`]: alarms when a measured point leaves its configured band.
//! - [`plate`]: Chinese plate normalisation and OCR-confusable variants.
//! - [`erasure`]: masking a person's identifiers and stripping them from a
//!   recorded event (erasure on request).
//! - [`door`]: grant / deny at a unit door (cards, PINs, temporary codes,
//!   schedules, anti-passback); the keypad wrong-code limiter.
//! - [`vehicle`]: allow / deny / ask the guard at a lane; repeated-read filter.
//! - [`roster`]: the packed table that holds 100,000 cards or residents'
//!   vehicles in four allocations.

pub mod door;
pub mod erasure;
pub mod plate;
pub mod roster;
pub mod threshold;
pub mod vehicle;
