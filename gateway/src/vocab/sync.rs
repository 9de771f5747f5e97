//! The contract between the platform's list sync and the owners of the
//! lists: [`ListTarget`] (one list, applied in one transaction) and its
//! [`SyncError`]. The protocol itself is in `uplink::sync`.

use serde_json::Value;

use super::records::ListError;

/// Why a list could not be read or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// A row (or the message) is not what the list expects; nothing changed.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The table could not be read or written; nothing changed.
    #[error("storage: {0}")]
    Storage(String),
}

/// A list the platform keeps in sync. Implementations apply each call in one
/// database transaction and leave the previous version in force on error.
pub trait ListTarget: Send + Sync {
    /// The list's name (`plates`, `cards`, …), as in the topic and messages.
    fn name(&self) -> &'static str;
    /// The version held now (0: never synced).
    fn version(&self) -> Result<u64, SyncError>;
    /// Replaces the whole list with `rows` at `version`.
    fn apply_snapshot(&self, version: u64, rows: Vec<Value>) -> Result<(), SyncError>;
    /// Applies the changes from `from` to `to` (`from` is the version held).
    fn apply_delta(
        &self,
        from: u64,
        to: u64,
        upserts: Vec<Value>,
        deletes: Vec<String>,
    ) -> Result<(), SyncError>;
}

impl From<ListError> for SyncError {
    /// An invalid value is a malformed row; anything else is storage.
    fn from(e: ListError) -> Self {
        match e {
            ListError::Invalid(m) => SyncError::Malformed(m),
            other => SyncError::Storage(other.to_string()),
        }
    }
}
