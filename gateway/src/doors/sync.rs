//! The door cards as a platform sync target (rows: see the door
//! credentials; key: card number).

use std::sync::Arc;

use serde_json::Value;

use super::credentials::CredentialStore;
use crate::vocab::sync::{ListTarget, SyncError};

/// The door cards as a sync target.
#[derive(Debug, Clone)]
pub struct CardsTarget(pub Arc<CredentialStore>);

impl ListTarget for CardsTarget {
    fn name(&self) -> &'static str {
        "cards"
    }

    fn version(&self) -> Result<u64, SyncError> {
        self.0.cards_version().map_err(SyncError::from)
    }

    fn apply_snapshot(&self, version: u64, rows: Vec<Value>) -> Result<(), SyncError> {
        self.0.replace_cards(version, rows).map_err(SyncError::from)
    }

    fn apply_delta(
        &self,
        from: u64,
        to: u64,
        upserts: Vec<Value>,
        deletes: Vec<String>,
    ) -> Result<(), SyncError> {
        self.0
            .apply_cards_delta(from, to, upserts, deletes)
            .map_err(SyncError::from)
    }
}
