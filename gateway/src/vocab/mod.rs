//! The shared vocabulary of the gateway: the types several parts speak and
//! none of them owns. A leaf: it imports nothing else from the crate, and
//! every other module may import it.
//!
//! - [`time`]: the estate's time model (instants as Unix milliseconds; dates
//!   as people type and read them, in the estate's zone).
//! - [`schedule`]: weekly windows for door groups.
//! - [`threshold`]: threshold alarm definitions (`[[alarms]]`).
//! - [`lane`]: a vehicle lane's direction and exit policy.
//! - [`records`]: the records error, CSV import reports and rejected rows.
//! - [`import`]: what every CSV import shares: the file's encoding (UTF-8
//!   with or without BOM, GB18030/GBK), detected and named; the import mode
//!   (all-or-nothing by default).
//! - [`sync`]: the list-sync target contract ([`sync::ListTarget`]).
//! - [`backoff`]: jittered exponential backoff.

pub mod backoff;
pub mod import;
pub mod lane;
pub mod records;
pub mod schedule;
pub mod sync;
pub mod threshold;
pub mod time;
