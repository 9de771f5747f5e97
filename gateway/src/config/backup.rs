//! `[backup]`: scheduled local backups of the database (see
//! [`crate::ops::backup`]). Absent, or without `dir`, there are none.

use std::path::PathBuf;
use std::time::Duration;

use super::reader::Section;

/// `[backup] interval` default: once a day.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Shortest `[backup] interval`: a backup copies the whole database.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// `[backup] keep` default: a week of daily backups.
pub(crate) const DEFAULT_KEEP: u64 = 7;

/// `[backup]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// Where the backups go (`gatehouse-<UTC stamp>.db`).
    pub dir: PathBuf,
    /// How often one is taken.
    pub interval: Duration,
    /// How many are kept (the oldest are deleted).
    pub keep: usize,
}

/// Reads `[backup]`: `None` when it names no `dir`.
pub(crate) fn read_backup(mut s: Section<'_, '_>) -> Option<BackupConfig> {
    let dir = s.take_path("dir");
    let interval = s.take_duration("interval");
    let keep = s.take_u64("keep");
    if dir.is_none() && (interval.is_some() || keep.is_some()) {
        s.problem(
            "dir",
            "is required for scheduled backups (or remove [backup])",
        );
    }
    let interval = interval.unwrap_or(DEFAULT_INTERVAL);
    if interval < MIN_INTERVAL {
        s.problem(
            "interval",
            format!(
                "must be at least {} (each backup copies the whole database)",
                humantime::format_duration(MIN_INTERVAL)
            ),
        );
    }
    let keep = keep.unwrap_or(DEFAULT_KEEP);
    if !(1..=1000).contains(&keep) {
        s.problem("keep", format!("must be 1 to 1000, found {keep}"));
    }
    s.finish();
    Some(BackupConfig {
        dir: dir?,
        interval,
        keep: keep as usize,
    })
}
