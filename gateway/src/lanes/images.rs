//! Snapshot images from plate cameras, saved as files next to the store
//! (`<data_dir>/images/<YYYYMMDD>/<uuid>-<kind>.jpg`) and referenced from
//! the recorded event by that relative name. The folder is bounded by bytes:
//! when it grows past its budget the oldest files are deleted first (names
//! start with a time-ordered UUIDv7, so name order is age order), and every
//! deletion is counted.
//!
//! Durability: an image is written and synced (the file, its day folder,
//! and the image folder when the day folder is new) off the barrier's path,
//! while its read is being stored; the camera's reply waits for both. So
//! every image of a read the camera was answered for is on disk after a
//! power cut. A read stored but not yet answered when the power went may
//! name an image that is missing or short; the camera sends such a read
//! again, and the panel shows a missing image as missing.

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::task::JoinHandle;

use drivers::lpr::{Image, ImageKind};
use uuid::Uuid;

use crate::metrics::Metrics;

/// The image folder and its budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    used: AtomicU64,
    metrics: Arc<Metrics>,
    /// One prune at a time, so each lists the folder as it is.
    pruning: std::sync::Mutex<()>,
}

impl ImageStore {
    /// Opens (creating) `dir`, counting what is already there.
    pub fn open(dir: PathBuf, max_bytes: u64, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        create_dir_durably(&dir)?;
        let used = files(&dir)?.iter().map(|(_, size)| size).sum();
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                max_bytes,
                used: AtomicU64::new(used),
                metrics,
                pruning: std::sync::Mutex::new(()),
            }),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Saves `images`; returns the names of those written.
    pub async fn save(&self, images: &[Image]) -> Vec<String> {
        let (names, writing) = self.save_later(images.to_vec());
        let written = writing.await.unwrap_or_default();
        names.into_iter().filter(|n| written.contains(n)).collect()
    }

    /// Names `images` now and writes them on a task of their own, so that
    /// a read reaches the lane rules (and the barrier) without waiting for
    /// the disk. The task returns the names actually written.
    pub fn save_later(&self, images: Vec<Image>) -> (Vec<String>, JoinHandle<Vec<String>>) {
        let day = crate::vocab::time::format_ms(drivers::contract::now_ms())
            .chars()
            .filter(char::is_ascii_digit)
            .take(8)
            .collect::<String>();
        let named: Vec<(String, Image)> = images
            .into_iter()
            .map(|image| {
                let kind = match image.kind {
                    ImageKind::Full => "full",
                    ImageKind::Plate => "plate",
                };
                (format!("{day}/{}-{kind}.jpg", Uuid::now_v7()), image)
            })
            .collect();
        let names = named.iter().map(|(name, _)| name.clone()).collect();
        let this = self.clone();
        let writing = tokio::spawn(async move {
            let mut written = Vec::with_capacity(named.len());
            for (name, image) in named {
                let path = this.inner.dir.join(&name);
                let len = image.bytes.len() as u64;
                let result =
                    tokio::task::spawn_blocking(move || write_durably(&path, &image.bytes)).await;
                match result {
                    Ok(Ok(())) => {
                        this.inner.used.fetch_add(len, Ordering::Relaxed);
                        written.push(name);
                    }
                    Ok(Err(error)) => not_saved(&error),
                    Err(error) => not_saved(&error),
                }
            }
            if this.inner.used.load(Ordering::Relaxed) > this.inner.max_bytes {
                let pruner = this.clone();
                tokio::task::spawn_blocking(move || pruner.prune());
            }
            written
        });
        (names, writing)
    }

    /// Deletes the oldest files until the folder is at 90 % of its budget.
    pub fn prune(&self) -> u64 {
        let _one_at_a_time = self
            .inner
            .pruning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(mut all) = files(&self.inner.dir) else {
            return 0;
        };
        all.sort();
        let mut used: u64 = all.iter().map(|(_, s)| s).sum();
        let target = self.inner.max_bytes / 10 * 9;
        let mut deleted = 0;
        for (path, size) in all {
            if used <= target {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                used = used.saturating_sub(size);
                deleted += 1;
            }
        }
        self.inner.used.store(used, Ordering::Relaxed);
        self.inner.metrics.images_pruned(deleted);
        if deleted > 0 {
            tracing::info!(
                deleted,
                "Oldest snapshot images deleted to stay within the image budget."
            );
        }
        deleted
    }

    /// Deletes the images saved before `cutoff` (by their files'
    /// modification time) and day folders left empty; returns how many
    /// images went. The retention of personal information
    /// ([`crate::config::PrivacyConfig::snapshots`]).
    pub fn purge_before(&self, cutoff: std::time::SystemTime) -> std::io::Result<u64> {
        let _one_at_a_time = self
            .inner
            .pruning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut deleted = 0;
        let mut used = 0;
        for (path, size) in files(&self.inner.dir)? {
            let old = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified < cutoff);
            if old && std::fs::remove_file(&path).is_ok() {
                deleted += 1;
            } else {
                used += size;
            }
        }
        for day in std::fs::read_dir(&self.inner.dir)?.flatten() {
            if day.file_type().is_ok_and(|t| t.is_dir()) {
                // Fails (and is left) unless the folder is empty.
                let _ = std::fs::remove_dir(day.path());
            }
        }
        self.inner.used.store(used, Ordering::Relaxed);
        Ok(deleted)
    }

    /// Deletes the images named (an erasure on request); returns how many
    /// files went. A name that is not a plain relative name, or whose file
    /// is already gone, is skipped.
    pub fn remove(&self, names: &[String]) -> u64 {
        let _one_at_a_time = self
            .inner
            .pruning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut deleted = 0;
        for path in names.iter().filter_map(|name| self.resolve(name)) {
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            if std::fs::remove_file(&path).is_ok() {
                deleted += 1;
                let _ = self
                    .inner
                    .used
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                        Some(u.saturating_sub(size))
                    });
            }
        }
        deleted
    }

    /// The absolute path of a saved image, if `name` is a plain relative
    /// name inside the folder (no `..`, no absolute paths).
    pub fn resolve(&self, name: &str) -> Option<PathBuf> {
        let relative = Path::new(name);
        let plain = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        (plain && !name.is_empty()).then(|| self.inner.dir.join(relative))
    }
}

/// Writes `bytes` to `path` and syncs the file and its folder (creating the
/// folder, and syncing its parent, when it is new).
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let folder = path.parent().unwrap_or(Path::new("."));
    create_dir_durably(folder)?;
    // The service user's alone (the image shows a person).
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::store::FILE_MODE)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    sync_dir(folder)
}

/// Creates `dir` if it is missing, and then syncs its parent so the new
/// entry survives a power cut.
fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::store::DIR_MODE)
        .create(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Every file below `dir` (one level of day folders) with its size, sorted
/// by relative name.
fn files(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(dir)? {
        let day = day?;
        if !day.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(day.path())? {
            let file = file?;
            let meta = file.metadata()?;
            if meta.is_file() {
                out.push((file.path(), meta.len()));
            }
        }
    }
    Ok(out)
}

/// Logs a snapshot that could not be written (a full disk fails every
/// push): one line a minute, with the count.
fn not_saved(error: &dyn std::fmt::Display) {
    static NOT_SAVED: crate::logging::Every = crate::logging::Every::minute();
    if let Some(count) = NOT_SAVED.allow() {
        tracing::warn!(%error, count, "Snapshot images were not saved (one line a minute, with the count).");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(n: usize) -> Image {
        Image {
            kind: ImageKind::Full,
            bytes: vec![0xFF; n],
            content_type: "image/jpeg",
        }
    }

    #[tokio::test]
    async fn images_are_saved_and_the_oldest_deleted_beyond_the_budget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::new());
        let store =
            ImageStore::open(dir.path().join("images"), 10_000, metrics.clone()).expect("open");
        let mut names = Vec::new();
        for _ in 0..5 {
            names.extend(store.save(&[jpeg(3_000)]).await);
        }
        assert_eq!(names.len(), 5);
        // Pruning runs in the background too; run it here to observe it.
        store.prune();
        let left: Vec<bool> = names.iter().map(|n| store.dir().join(n).exists()).collect();
        assert_eq!(left, vec![false, false, true, true, true], "oldest first");
        assert!(
            metrics.render().contains("gatehouse_images_pruned_total 2"),
            "{}",
            metrics.render()
        );
        assert!(store.resolve(&names[4]).is_some_and(|p| p.exists()));
        assert!(store.resolve("../gatehouse.db").is_none());
        assert!(store.resolve("/etc/passwd").is_none());
    }

    #[test]
    fn images_older_than_the_retention_are_purged_and_newer_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::open(dir.path().join("images"), 1 << 20, Arc::new(Metrics::new()))
            .expect("open");
        std::fs::create_dir_all(dir.path().join("images/2026-01-01")).expect("old day");
        std::fs::create_dir_all(dir.path().join("images/2026-12-01")).expect("new day");
        let old = dir.path().join("images/2026-01-01/a.jpg");
        let new = dir.path().join("images/2026-12-01/b.jpg");
        std::fs::write(&old, [1u8; 10]).expect("old");
        std::fs::write(&new, [2u8; 20]).expect("new");
        let now = std::time::SystemTime::now();
        let day = std::time::Duration::from_secs(86_400);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .and_then(|f| f.set_modified(now - 40 * day))
            .expect("age the old image");
        assert_eq!(store.purge_before(now - 30 * day).expect("purge"), 1);
        assert!(!old.exists(), "past retention: deleted");
        assert!(
            !dir.path().join("images/2026-01-01").exists(),
            "its empty day folder too"
        );
        assert!(new.exists(), "within retention: kept");
        assert_eq!(store.purge_before(now - 30 * day).expect("again"), 0);
    }
}
