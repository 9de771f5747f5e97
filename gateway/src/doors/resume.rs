//! Where each WG/UHPPOTE controller's event log was left: the newest
//! controller event index the journal holds for it. The controller driver
//! starts from there and fetches what the controller logged while the
//! gateway was down, as history.

use crate::config::{DeviceConfig, DeviceKind};
use crate::store::StoreError;
use crate::store::journal::{Journal, JournalQuery};

/// Recent rows looked at per kind (fetched gaps may be recorded slightly
/// out of index order).
const RECENT: usize = 20;

/// `devices` with every WG controller's `resume_after` set from `journal`.
/// A controller with no recorded index keeps `None` (its log before the
/// first start is not this gateway's history).
pub async fn resume_points(
    devices: &[DeviceConfig],
    journal: &Journal,
) -> Result<Vec<DeviceConfig>, StoreError> {
    let mut out = devices.to_vec();
    for device in &mut out {
        if let DeviceKind::WgController(config) = &mut device.kind {
            config.resume_after = last_index(journal, &device.id).await?;
        }
    }
    Ok(out)
}

async fn last_index(journal: &Journal, device: &str) -> Result<Option<u32>, StoreError> {
    let mut newest: Option<u32> = None;
    for (kind, pointer) in [
        ("card_read", "/controller/index"),
        ("access_history", "/index"),
    ] {
        let rows = journal
            .query(JournalQuery {
                kind: Some(kind.into()),
                device: Some(device.into()),
                limit: RECENT,
                ..JournalQuery::default()
            })
            .await?;
        let index = rows
            .iter()
            .filter_map(|env| env.body.pointer(pointer)?.as_u64())
            .filter_map(|i| u32::try_from(i).ok())
            .max();
        newest = newest.max(index);
    }
    Ok(newest)
}
