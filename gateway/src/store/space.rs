//! The data disk's free space, and the reserve file that lets the store
//! live through a full disk.
//!
//! SQLite needs a little room of its own before it can do anything on a
//! WAL database: a connection creates the `-shm` index (32 KiB) and the
//! `-wal` file, and even a delete needs WAL pages. The store's connections
//! keep both files when they close (so an open on a full disk needs no new
//! space), but a delete or a commit still needs room. So the store keeps
//! [`RESERVE_BYTES`] of the disk in a plain file beside the database
//! (`gatehouse.db.reserve`, written with real blocks, never sparse):
//!
//! - created at open, and again when space returns, if the disk has room
//!   for it and [`RESUME_FREE_BYTES`] besides;
//! - deleted when the disk is found full (an open that fails while the
//!   disk is full, or `SQLITE_FULL` from a commit), which gives SQLite its
//!   room for the `-shm`/`-wal` files, the open, acknowledgements from the
//!   platform (deletes) and the reclaim that returns their pages to the
//!   filesystem.
//!
//! While the disk is full the writer refuses new events and list writes
//! itself, without touching the database, so the released space stays
//! SQLite's; it writes again once the free space (without the reserve)
//! reaches [`RESERVE_BYTES`] + [`RESUME_FREE_BYTES`] and the reserve has
//! been put back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Size of the reserve file.
pub const RESERVE_BYTES: u64 = 4 * 1024 * 1024;

/// Free space the disk must have besides the reserve before the store
/// writes again after it was full (so it does not fill again at once).
pub const RESUME_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// Below this much free space a failed write is taken for a full disk even
/// when SQLite reports it as an I/O error (creating the `-shm` file fails
/// with `SQLITE_IOERR_SHMSIZE`, not `SQLITE_FULL`).
const FULL_BELOW_BYTES: u64 = 256 * 1024;

/// The reserve file beside a database.
#[derive(Debug, Clone)]
pub(crate) struct Reserve {
    path: PathBuf,
}

impl Reserve {
    /// The reserve of the database at `db` (`<db>.reserve`).
    pub(crate) fn beside(db: &Path) -> Reserve {
        let mut name = db.as_os_str().to_owned();
        name.push(".reserve");
        Reserve {
            path: PathBuf::from(name),
        }
    }

    /// Whether the reserve is on disk at its full size.
    pub(crate) fn is_held(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.len() >= RESERVE_BYTES)
    }

    /// Deletes the reserve; returns whether there was one to give back.
    pub(crate) fn release(&self) -> bool {
        match fs::remove_file(&self.path) {
            Ok(()) => true,
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(err) => {
                tracing::error!(error = %err, path = %self.path.display(), "The disk reserve could not be deleted.");
                false
            }
        }
    }

    /// Writes the reserve (real blocks, synced) when it is missing and the
    /// disk has room for it and [`RESUME_FREE_BYTES`] besides; returns
    /// whether it is held afterwards. A partial file is removed.
    pub(crate) fn ensure(&self) -> bool {
        if self.is_held() {
            return true;
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let Ok(free) = free_bytes(dir) else {
            return false;
        };
        if free < RESERVE_BYTES + RESUME_FREE_BYTES {
            return false;
        }
        match self.write() {
            Ok(()) => true,
            Err(err) => {
                let _ = fs::remove_file(&self.path);
                tracing::warn!(error = %err, path = %self.path.display(), "The disk reserve could not be written.");
                false
            }
        }
    }

    fn write(&self) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.path)?;
        let chunk = vec![0u8; 64 * 1024];
        let mut left = RESERVE_BYTES;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Bytes an unprivileged process may still write on the filesystem of `dir`.
// statvfs counts are 32-bit on armhf and 64-bit elsewhere: the casts are
// needed there.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn free_bytes(dir: &Path) -> io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    Ok((stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64))
}

/// Whether the disk under `dir` has room to write again after it was full
/// (the reserve not counted: it is released while the disk is full).
pub(crate) fn has_room(dir: &Path) -> bool {
    free_bytes(dir).is_ok_and(|free| free >= RESERVE_BYTES + RESUME_FREE_BYTES)
}

/// Whether `err` means the disk is full: `SQLITE_FULL`, or an I/O error
/// while the filesystem under `dir` is (nearly) out of space.
pub(crate) fn is_disk_full(err: &rusqlite::Error, dir: &Path) -> bool {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => true,
        Some(rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::CannotOpen) => {
            nearly_full(dir)
        }
        _ => false,
    }
}

/// Whether the filesystem under `dir` is (nearly) out of space.
pub(crate) fn nearly_full(dir: &Path) -> bool {
    free_bytes(dir).is_ok_and(|free| free < FULL_BELOW_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_written_whole_and_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reserve = Reserve::beside(&dir.path().join("gatehouse.db"));
        assert_eq!(
            reserve.path,
            dir.path().join("gatehouse.db.reserve"),
            "named after the database"
        );
        assert!(!reserve.is_held());
        assert!(!reserve.release(), "nothing to release yet");
        if free_bytes(dir.path()).expect("statvfs") < RESERVE_BYTES + RESUME_FREE_BYTES {
            assert!(!reserve.ensure(), "no room: not written");
            assert!(!reserve.is_held());
            return;
        }
        assert!(reserve.ensure());
        assert_eq!(
            fs::metadata(&reserve.path).expect("reserve").len(),
            RESERVE_BYTES
        );
        assert!(reserve.ensure(), "held already: nothing rewritten");
        assert!(reserve.release());
        assert!(!reserve.is_held());
    }

    #[test]
    fn a_full_disk_error_is_recognised() {
        let dir = tempfile::tempdir().expect("tempdir");
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(is_disk_full(&full, dir.path()));
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(!is_disk_full(&busy, dir.path()));
        // An I/O error on a disk with room is not a full disk.
        let io = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_SHMSIZE),
            None,
        );
        assert!(!is_disk_full(&io, dir.path()));
    }
}
