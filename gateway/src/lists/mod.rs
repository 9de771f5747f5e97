//! The gateway's lists, kept in the store's database and mirrored in memory
//! so that decisions never wait on the disk:
//!
//! - [`plates`]: residents' vehicles, visitor passes, the blacklist and the
//!   vehicles currently inside; CSV import and export.
//! - [`sync`]: the lists as platform sync targets.

pub mod cli;
pub mod plates;
pub mod sync;
