//! Quarantine of an unusable database: moving the file and its `-wal` and
//! `-shm` companions aside to `<name>.corrupt-<unix-seconds>` so the gateway
//! starts on a fresh file instead of crash-looping, and keeps the old one
//! for a person to look at.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Quarantine;

/// Moves `path` (and its `-wal`/`-shm` files, when present) aside.
pub(crate) fn quarantine(path: &Path, reason: String) -> io::Result<Quarantine> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut moved_to = with_suffix(path, &format!(".corrupt-{stamp}"));
    let mut n = 1;
    while moved_to.exists() {
        moved_to = with_suffix(path, &format!(".corrupt-{stamp}.{n}"));
        n += 1;
    }
    // Companions first: a WAL left next to a fresh database would be replayed into it.
    for companion in ["-wal", "-shm"] {
        let from = with_suffix(path, companion);
        match std::fs::rename(&from, with_suffix(&moved_to, companion)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    match std::fs::rename(path, &moved_to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the renames themselves durable.
        std::fs::File::open(dir)?.sync_all()?;
    }
    tracing::error!(
        path = %path.display(),
        moved_to = %moved_to.display(),
        %reason,
        "store database unusable: quarantined, starting a fresh one"
    );
    Ok(Quarantine {
        moved_to,
        reason,
        salvaged: Vec::new(),
    })
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_the_file_and_its_companions_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("g.db");
        std::fs::write(&db, b"garbage").expect("write");
        std::fs::write(with_suffix(&db, "-wal"), b"wal").expect("write");
        let q = quarantine(&db, "test".into()).expect("quarantine");
        assert!(!db.exists());
        assert!(!with_suffix(&db, "-wal").exists());
        assert_eq!(std::fs::read(&q.moved_to).expect("read"), b"garbage");
        assert_eq!(
            std::fs::read(with_suffix(&q.moved_to, "-wal")).expect("read"),
            b"wal"
        );
        assert!(q.moved_to.to_string_lossy().contains("g.db.corrupt-"));

        // A second quarantine in the same second does not overwrite the first.
        std::fs::write(&db, b"again").expect("write");
        let q2 = quarantine(&db, "test".into()).expect("quarantine");
        assert_ne!(q2.moved_to, q.moved_to);
        assert_eq!(std::fs::read(&q.moved_to).expect("read"), b"garbage");
    }
}
