//! A small disk of a test's own, to fill: a tmpfs of a chosen size mounted
//! on a fresh directory (root only), filled to the last byte by a filler
//! file and given back by deleting it. Unmounted when dropped.
//!
//! ```no_run
//! let Some(disk) = testkit::disk::SmallDisk::mount_or_skip(32 << 20) else { return };
//! let filler = disk.fill();
//! // … the disk is full …
//! filler.free();
//! ```

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// A tmpfs mounted for one test; unmounted (and its directory removed) on drop.
#[derive(Debug)]
pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` on a new directory under the system's
    /// temporary directory, or says why it cannot (not root, no `mount`).
    pub fn mount(bytes: u64) -> Result<SmallDisk, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "gatehouse-small-disk-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0755")])
            .arg("tmpfs")
            .arg(&path)
            .output();
        match out {
            Ok(out) if out.status.success() => Ok(SmallDisk { path }),
            Ok(out) => {
                let _ = fs::remove_dir(&path);
                Err(format!(
                    "mount -t tmpfs failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => {
                let _ = fs::remove_dir(&path);
                Err(format!("mount: {e}"))
            }
        }
    }

    /// [`SmallDisk::mount`], or `None` after reporting the missing peer
    /// through [`crate::require_peer`] (which fails the test under
    /// `GATEHOUSE_REQUIRE_PEERS=1`).
    pub fn mount_or_skip(bytes: u64) -> Option<SmallDisk> {
        match SmallDisk::mount(bytes) {
            Ok(disk) => Some(disk),
            Err(why) => {
                crate::require_peer("a tmpfs to fill (root and mount)", &why);
                None
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes still free (`stat -f`).
    pub fn free_bytes(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.path)
            .output()
            .expect("stat -f");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        let (blocks, size) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
        blocks * size
    }

    /// Fills the disk to the last byte with a filler file (big writes,
    /// then smaller ones until even one byte does not fit).
    pub fn fill(&self) -> Filler {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self
            .path
            .join(format!("filler-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("create the filler");
        for chunk in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
            let bytes = vec![0x5a_u8; chunk];
            loop {
                match file.write_all(&bytes) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
        Filler { path }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// The file that fills a [`SmallDisk`].
#[derive(Debug)]
pub struct Filler {
    path: PathBuf,
}

impl Filler {
    /// Deletes the filler: the disk has room again.
    pub fn free(self) {
        fs::remove_file(&self.path).expect("delete the filler");
    }
}
