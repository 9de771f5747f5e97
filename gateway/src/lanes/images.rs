//! Snapshot images from plate cameras, saved as files next to the store
//! (`<data_dir>/images/<YYYYMMDD>/<uuid>-<kind>.jpg`) and referenced from
//! the recorded event by that relative name. The folder is bounded by bytes:
//! when it grows past its budget the oldest files are deleted first (names
//! start with a time-ordered UUIDv7, so name order is age order), and every
//! deletion is counted.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
        std::fs::create_dir_all(&dir)?;
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

    /// Saves the images of one read; returns their relative names. A failed
    /// write is logged and skipped: the read itself matters more.
    pub async fn save(&self, images: &[Image]) -> Vec<String> {
        let mut names = Vec::with_capacity(images.len());
        let day = crate::vocab::time::format_ms(drivers::contract::now_ms())
            .chars()
            .filter(char::is_ascii_digit)
            .take(8)
            .collect::<String>();
        for image in images {
            let kind = match image.kind {
                ImageKind::Full => "full",
                ImageKind::Plate => "plate",
            };
            let name = format!("{day}/{}-{kind}.jpg", Uuid::now_v7());
            let path = self.inner.dir.join(&name);
            let written = async {
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                tokio::fs::write(&path, &image.bytes).await
            }
            .await;
            match written {
                Ok(()) => {
                    self.inner
                        .used
                        .fetch_add(image.bytes.len() as u64, Ordering::Relaxed);
                    names.push(name);
                }
                Err(error) => tracing::warn!(%error, "A snapshot image was not saved."),
            }
        }
        if self.inner.used.load(Ordering::Relaxed) > self.inner.max_bytes {
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.prune());
        }
        names
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
}
