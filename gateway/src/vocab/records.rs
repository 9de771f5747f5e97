//! The records the gateway keeps for people (vehicle lists, door
//! credentials): their error, and the report of a CSV import with its
//! rejected rows.

use serde::Serialize;

use super::import::{CsvEncoding, ImportMode};

/// Why a list or credential record could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The store could not give a connection (see `store::StoreError`).
    #[error("store: {0}")]
    Store(String),
    /// A CSV file could not be read or written.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// A value is not acceptable (the message says which and why).
    #[error("{0}")]
    Invalid(String),
}

/// A rejected CSV row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// The outcome of an import (or of its check).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Rows written (by a check: rows that would be written). Zero when
    /// any row was rejected and the import is all-or-nothing.
    pub written: usize,
    /// Valid rows in the file.
    pub valid: usize,
    /// Rows refused, with reasons.
    pub rejected: Vec<Rejected>,
    /// The encoding the file was read in.
    pub encoding: CsvEncoding,
}

impl ImportReport {
    /// The report for `valid` good rows and `rejected` bad ones under `mode`.
    pub fn new(
        valid: usize,
        rejected: Vec<Rejected>,
        encoding: CsvEncoding,
        mode: ImportMode,
    ) -> Self {
        let written = if mode.writes(rejected.len()) {
            valid
        } else {
            0
        };
        Self {
            written,
            valid,
            rejected,
            encoding,
        }
    }
}
