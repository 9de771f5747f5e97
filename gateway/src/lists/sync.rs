//! The vehicle lists as [`ListTarget`]s, so the platform
//! can keep them in sync (full snapshots and versioned deltas, each applied
//! in one transaction; see [`crate::uplink::sync`] for the protocol).
//!
//! Rows on the wire (times are Unix milliseconds; `null` = no limit):
//!
//! - `residents`: `{plate, house, owner, valid_from_ms, valid_to_ms, lanes: [..]}`, key `plate`;
//! - `visitors`: `{plate, host_unit, valid_from_ms, valid_to_ms, single_use}`, key `plate`
//!   (only passes the platform created are replaced; guards' passes stay);
//! - `blacklist`: `{plate, reason}`, key `plate`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::plates::{NewVisitorPass, PlateRegistry, SyncRows};
use crate::rules::vehicle::{Blacklisted, Resident};
use crate::vocab::sync::{ListTarget, SyncError};

/// Who created the visitor passes the platform manages.
pub const PLATFORM_CREATOR: &str = "platform";

fn malformed(e: impl std::fmt::Display) -> SyncError {
    SyncError::Malformed(e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResidentRow {
    plate: String,
    house: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    valid_from_ms: Option<i64>,
    #[serde(default)]
    valid_to_ms: Option<i64>,
    #[serde(default)]
    lanes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitorRow {
    plate: String,
    host_unit: String,
    valid_from_ms: i64,
    valid_to_ms: i64,
    #[serde(default)]
    single_use: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlacklistRow {
    plate: String,
    #[serde(default)]
    reason: String,
}

/// Which plate list a target syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Residents,
    Visitors,
    Blacklist,
}

/// One of the vehicle lists as a sync target.
#[derive(Debug, Clone)]
pub struct PlateListTarget {
    registry: Arc<PlateRegistry>,
    which: Which,
}

impl PlateListTarget {
    /// The three vehicle lists' targets.
    pub fn all(registry: &Arc<PlateRegistry>) -> [Arc<dyn ListTarget>; 3] {
        let make = |which| -> Arc<dyn ListTarget> {
            Arc::new(PlateListTarget {
                registry: registry.clone(),
                which,
            })
        };
        [
            make(Which::Residents),
            make(Which::Visitors),
            make(Which::Blacklist),
        ]
    }

    fn rows(&self, rows: Vec<Value>) -> Result<SyncRows, SyncError> {
        Ok(match self.which {
            Which::Residents => SyncRows::Residents(
                rows.into_iter()
                    .map(|v| {
                        let r: ResidentRow = serde_json::from_value(v).map_err(malformed)?;
                        Ok(Resident {
                            plate: r.plate,
                            house: r.house,
                            owner: r.owner,
                            valid_from: r.valid_from_ms,
                            valid_to: r.valid_to_ms,
                            lanes: r.lanes,
                        })
                    })
                    .collect::<Result<_, SyncError>>()?,
            ),
            Which::Visitors => SyncRows::Visitors(
                rows.into_iter()
                    .map(|v| {
                        let r: VisitorRow = serde_json::from_value(v).map_err(malformed)?;
                        Ok(NewVisitorPass {
                            plate: r.plate,
                            host_unit: r.host_unit,
                            valid_from: r.valid_from_ms,
                            valid_to: r.valid_to_ms,
                            single_use: r.single_use,
                            created_by: PLATFORM_CREATOR.into(),
                        })
                    })
                    .collect::<Result<_, SyncError>>()?,
            ),
            Which::Blacklist => SyncRows::Blacklist(
                rows.into_iter()
                    .map(|v| {
                        let r: BlacklistRow = serde_json::from_value(v).map_err(malformed)?;
                        Ok(Blacklisted {
                            plate: r.plate,
                            reason: r.reason,
                        })
                    })
                    .collect::<Result<_, SyncError>>()?,
            ),
        })
    }
}

impl ListTarget for PlateListTarget {
    fn name(&self) -> &'static str {
        match self.which {
            Which::Residents => "residents",
            Which::Visitors => "visitors",
            Which::Blacklist => "blacklist",
        }
    }

    fn version(&self) -> Result<u64, SyncError> {
        self.registry
            .list_version(self.name())
            .map_err(SyncError::from)
    }

    fn apply_snapshot(&self, version: u64, rows: Vec<Value>) -> Result<(), SyncError> {
        let rows = self.rows(rows)?;
        self.registry
            .sync_apply(self.name(), None, version, rows, &[])
            .map_err(SyncError::from)
    }

    fn apply_delta(
        &self,
        from: u64,
        to: u64,
        upserts: Vec<Value>,
        deletes: Vec<String>,
    ) -> Result<(), SyncError> {
        let rows = self.rows(upserts)?;
        self.registry
            .sync_apply(self.name(), Some(from), to, rows, &deletes)
            .map_err(SyncError::from)
    }
}
