//! The gateway's lists, kept in the store's database and mirrored in memory
//! so that decisions never wait on the disk:
//!
//! - [`plates`]: residents' vehicles, visitor passes, the blacklist and the
//!   vehicles currently inside; CSV import and export.
//! - [`sync`]: the lists (and door cards) as platform sync targets.
//! - [`time`]: the date formats the lists accept (CSV, forms) and print.
//! - [`import`]: what every CSV import shares: the file's encoding (UTF-8
//!   with or without BOM, GB18030/GBK), detected and named; all-or-nothing
//!   by default.

pub mod cli;
pub mod import;
pub mod plates;
pub mod sync;
pub mod time;

/// List errors.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The store could not give a connection.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A CSV file could not be read or written.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// A value is not acceptable (the message says which and why).
    #[error("{0}")]
    Invalid(String),
}
