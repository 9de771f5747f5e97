//! Online backups and restores of the gateway's database.
//!
//! A backup is SQLite's online backup of the whole database (queue,
//! journal, lists, cards, users, uplink state) taken in one read
//! transaction, so it is consistent while the gateway keeps writing (WAL
//! lets the writer go on; the copy sees the state of one commit). It is
//! written to a temporary file beside the target, checked with
//! `integrity_check`, synced, and renamed into place, so a backup file that
//! exists is whole.
//!
//! A restore refuses while a gateway holds the data directory's lock,
//! checks the backup (integrity, a schema this binary can open), and never
//! deletes the database it replaces: that file (with its WAL) is moved to
//! `gatehouse.db.before-restore-<unix seconds>`.
//!
//! Scheduled backups ([`prune`]) keep the newest `keep` files named
//! `gatehouse-<UTC stamp>.db` in the backup directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use crate::ops::lock::{DataDirLock, LockError};
use crate::store::SCHEMA_VERSION;

/// The database's file name in the data directory.
pub const DB_FILE: &str = "gatehouse.db";

/// What went wrong with a backup or a restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// SQLite refused.
    #[error("{what}: {source}")]
    Sqlite {
        /// What was being done.
        what: String,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The backup file is damaged.
    #[error("{path} is damaged: {detail}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// SQLite's integrity report.
        detail: String,
    },
    /// The backup was written by a newer Gatehouse.
    #[error(
        "{path} has schema version {found}; this Gatehouse opens at most {supported}: restore it with the version that wrote it"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this binary opens.
        supported: usize,
    },
    /// The file is not a Gatehouse database.
    #[error("{path} is not a Gatehouse database (schema version {found})")]
    NotGatehouse {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
    },
    /// The gateway is running (or the lock cannot be taken).
    #[error(transparent)]
    Locked(#[from] LockError),
    /// There is nothing to back up.
    #[error("no database at {0}")]
    NoDatabase(PathBuf),
}

impl BackupError {
    /// The process exit code for the CLI: 2 when the gateway is running,
    /// 65 (data error) for a damaged or foreign file, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::Locked(LockError::Held { .. }) => 2,
            BackupError::Damaged { .. }
            | BackupError::TooNew { .. }
            | BackupError::NotGatehouse { .. } => 65,
            _ => 1,
        }
    }
}

/// What a backup or restore found: the schema version and every table's
/// row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// The database's schema version.
    pub schema_version: i64,
    /// `(table, rows)`, sorted by table name.
    pub tables: Vec<(String, u64)>,
    /// Bytes of the file.
    pub bytes: u64,
}

impl Contents {
    /// The row count of `table` (0 when absent).
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(name, _)| name == table)
            .map_or(0, |(_, rows)| *rows)
    }
}

impl std::fmt::Display for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "schema version {}, {} bytes",
            self.schema_version, self.bytes
        )?;
        for (table, rows) in &self.tables {
            writeln!(f, "  {table:<28} {rows:>10} rows")?;
        }
        Ok(())
    }
}

fn sqlite(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Sqlite { what, source }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// Takes a consistent online backup of `db` (the live database, the gateway
/// may be running) into `dest`. Returns what the backup holds.
pub fn backup(db: &Path, dest: &Path) -> Result<Contents, BackupError> {
    if !db.exists() {
        return Err(BackupError::NoDatabase(db.to_path_buf()));
    }
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(format!("opening {}", db.display())))?;
    source
        .busy_timeout(Duration::from_secs(10))
        .map_err(sqlite("setting the busy timeout"))?;
    source
        .pragma_update(None, "query_only", true)
        .map_err(sqlite("making the connection read-only"))?;
    let partial = with_suffix(dest, ".partial");
    let _ = fs::remove_file(&partial);
    {
        let mut target = Connection::open(&partial)
            .map_err(sqlite(format!("creating {}", partial.display())))?;
        let copy = rusqlite::backup::Backup::new(&source, &mut target)
            .map_err(sqlite("starting the backup"))?;
        // All pages in one step: one read transaction, so the copy is the
        // state of one commit even while the gateway writes (a stepwise copy
        // restarts whenever another connection commits).
        copy.step(-1).map_err(sqlite("copying the database"))?;
    }
    let contents = check(&partial)?;
    sync_file(&partial)?;
    fs::rename(&partial, dest).map_err(io(format!("renaming to {}", dest.display())))?;
    sync_parent(dest)?;
    Ok(Contents {
        bytes: file_len(dest),
        ..contents
    })
}

/// Restores `backup_file` as the database of `data_dir`. Refuses while a
/// gateway runs there; keeps the replaced database beside it. Returns what
/// was restored and where the old database went (if there was one).
pub fn restore(
    backup_file: &Path,
    data_dir: &Path,
) -> Result<(Contents, Option<PathBuf>), BackupError> {
    let _lock = DataDirLock::acquire(data_dir)?;
    let contents = check(backup_file)?;
    let db = data_dir.join(DB_FILE);
    let incoming = with_suffix(&db, ".restoring");
    fs::copy(backup_file, &incoming).map_err(io(format!(
        "copying {} to {}",
        backup_file.display(),
        incoming.display()
    )))?;
    sync_file(&incoming)?;
    let kept = if db.exists() {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = with_suffix(&db, &format!(".before-restore-{stamp}"));
        fs::rename(&db, &aside).map_err(io(format!("moving {} aside", db.display())))?;
        for side in ["-wal", "-shm"] {
            let from = with_suffix(&db, side);
            if from.exists() {
                fs::rename(&from, with_suffix(&aside, side))
                    .map_err(io(format!("moving {} aside", from.display())))?;
            }
        }
        Some(aside)
    } else {
        None
    };
    fs::rename(&incoming, &db).map_err(io(format!("renaming to {}", db.display())))?;
    sync_parent(&db)?;
    Ok((
        Contents {
            bytes: file_len(&db),
            ..contents
        },
        kept,
    ))
}

/// Checks a database file: whole (`integrity_check`), a Gatehouse schema
/// this binary can open; returns its contents.
pub fn check(path: &Path) -> Result<Contents, BackupError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite(format!("opening {}", path.display())))?;
    let damaged = |detail: String| BackupError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| damaged(e.to_string()))?;
    if integrity != "ok" {
        return Err(damaged(integrity));
    }
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite("reading the schema version"))?;
    if found > SCHEMA_VERSION as i64 {
        return Err(BackupError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        return Err(BackupError::NotGatehouse {
            path: path.to_path_buf(),
            found,
        });
    }
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sqlite("listing tables"))?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| {
                r.get(0)
            })
            .map_err(sqlite(format!("counting {name}")))?;
        tables.push((name, rows.max(0) as u64));
    }
    Ok(Contents {
        schema_version: found,
        tables,
        bytes: file_len(path),
    })
}

/// The file name of a scheduled backup taken at `now`.
pub fn scheduled_name(now: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("gatehouse-{}.db", ts.strftime("%Y%m%dT%H%M%SZ"))
}

/// Deletes all but the newest `keep` scheduled backups in `dir` (only files
/// named like [`scheduled_name`]); returns the deleted paths.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(format!("reading {}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("gatehouse-") && n.ends_with(".db"))
        })
        .collect();
    // The stamp sorts in time order.
    found.sort();
    let excess = found.len().saturating_sub(keep);
    let doomed: Vec<PathBuf> = found.into_iter().take(excess).collect();
    for path in &doomed {
        fs::remove_file(path).map_err(io(format!("deleting {}", path.display())))?;
    }
    Ok(doomed)
}

/// Takes one scheduled backup of `db` into `config.dir` and prunes the
/// oldest beyond `config.keep`. Returns the new file.
pub fn take_scheduled(
    db: &Path,
    config: &crate::config::BackupConfig,
    now: SystemTime,
) -> Result<PathBuf, BackupError> {
    fs::create_dir_all(&config.dir).map_err(io(format!("creating {}", config.dir.display())))?;
    let dest = config.dir.join(scheduled_name(now));
    backup(db, &dest)?;
    prune(&config.dir, config.keep)?;
    Ok(dest)
}

/// Takes a backup every `config.interval` until `stop` (the first one
/// an interval after start). A failure is logged and retried at the next
/// interval; it never stops the gateway.
pub async fn schedule(
    db: PathBuf,
    config: crate::config::BackupConfig,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (db, config) = (db.clone(), config.clone());
        match tokio::task::spawn_blocking(move || take_scheduled(&db, &config, SystemTime::now()))
            .await
        {
            Ok(Ok(file)) => tracing::info!(file = %file.display(), "Scheduled backup written."),
            Ok(Err(error)) => tracing::error!(%error, "Scheduled backup failed."),
            Err(error) => tracing::error!(%error, "Scheduled backup task failed."),
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", path.display())))
}

fn sync_parent(path: &Path) -> Result<(), BackupError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::File::open(parent)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", parent.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(path: &Path, version: i64) {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch(&format!(
            "CREATE TABLE things (x INTEGER); INSERT INTO things VALUES (1), (2); PRAGMA user_version = {version};"
        ))
        .expect("create");
    }

    #[test]
    fn backup_and_restore_keep_every_row_and_the_replaced_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(DB_FILE);
        database(&db, 1);
        let copy = dir.path().join("copy.db");
        let taken = backup(&db, &copy).expect("backup");
        assert_eq!(taken.rows("things"), 2);

        let other = tempfile::tempdir().expect("tempdir");
        database(&other.path().join(DB_FILE), 1);
        let (restored, kept) = restore(&copy, other.path()).expect("restore");
        assert_eq!(restored.rows("things"), 2);
        let kept = kept.expect("the replaced database is kept");
        assert!(kept.exists(), "{}", kept.display());
    }

    #[test]
    fn restore_refuses_a_running_gateway_a_newer_schema_and_a_damaged_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.db");
        database(&good, 1);
        let lock = DataDirLock::acquire(dir.path()).expect("lock");
        let err = restore(&good, dir.path()).expect_err("locked");
        assert_eq!(err.exit_code(), 2, "{err}");
        drop(lock);

        let newer = dir.path().join("newer.db");
        database(&newer, SCHEMA_VERSION as i64 + 1);
        let err = restore(&newer, dir.path()).expect_err("too new");
        assert!(matches!(err, BackupError::TooNew { .. }), "{err}");

        let damaged = dir.path().join("damaged.db");
        database(&damaged, 1);
        let mut bytes = fs::read(&damaged).expect("read");
        let len = bytes.len();
        bytes[len / 2..].iter_mut().for_each(|b| *b = 0xA5);
        fs::write(&damaged, bytes).expect("write");
        let err = restore(&damaged, dir.path()).expect_err("damaged");
        assert_eq!(err.exit_code(), 65, "{err}");
        assert!(!dir.path().join(DB_FILE).exists(), "nothing was restored");
    }

    #[test]
    fn scheduled_backups_are_named_by_time_and_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(DB_FILE);
        database(&db, 1);
        let config = crate::config::BackupConfig {
            dir: dir.path().join("backups"),
            interval: Duration::from_secs(3600),
            keep: 2,
        };
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let mut taken = Vec::new();
        for hour in 0..3 {
            let at = start + Duration::from_secs(3600 * hour);
            taken.push(take_scheduled(&db, &config, at).expect("backup"));
        }
        assert!(!taken[0].exists(), "the oldest is pruned");
        assert!(taken[1].exists() && taken[2].exists());
        assert_eq!(check(&taken[2]).expect("whole").rows("things"), 2);
    }

    #[test]
    fn prune_keeps_the_newest_scheduled_backups_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        for stamp in ["20261101T000000Z", "20261102T000000Z", "20261103T000000Z"] {
            fs::write(dir.path().join(format!("gatehouse-{stamp}.db")), b"x").expect("write");
        }
        fs::write(dir.path().join("notes.txt"), b"keep me").expect("write");
        let deleted = prune(dir.path(), 2).expect("prune");
        assert_eq!(deleted.len(), 1);
        assert!(deleted[0].ends_with("gatehouse-20261101T000000Z.db"));
        assert!(dir.path().join("notes.txt").exists());
    }
}
