//! The database schema and connection setup: the versioned migrations
//! (`user_version`, via `rusqlite_migration`) and the pragmas every
//! connection to the gateway's database gets. Adding a table is one more
//! `M::up(..)` line at the end of [`MIGRATION_LIST`].

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};
use rusqlite_migration::{M, Migrations};

/// Every migration, oldest first. Never edit or reorder a released entry:
/// append a new one.
const MIGRATION_LIST: &[M<'static>] = &[
    // 1: the event queue.
    M::up(
        "CREATE TABLE events (
            seq       INTEGER PRIMARY KEY AUTOINCREMENT,
            id        TEXT    NOT NULL,
            class     INTEGER NOT NULL,
            kind      TEXT    NOT NULL,
            device_id TEXT    NOT NULL,
            time_ms   INTEGER NOT NULL,
            size      INTEGER NOT NULL,
            payload   TEXT    NOT NULL
        );",
    ),
    // 2: small key/value settings; per-class index for shedding telemetry.
    M::up(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE INDEX events_class_seq ON events (class, seq);",
    ),
    // 3: vehicle lists (residents' vehicles, visitor passes, blacklist),
    // vehicles currently inside, and the version of each synced list.
    M::up(
        "CREATE TABLE resident_vehicles (
            plate      TEXT PRIMARY KEY,
            house      TEXT    NOT NULL,
            owner      TEXT    NOT NULL,
            valid_from INTEGER,
            valid_to   INTEGER,
            lanes      TEXT    NOT NULL DEFAULT '',
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE visitor_passes (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            plate      TEXT    NOT NULL,
            host_unit  TEXT    NOT NULL,
            valid_from INTEGER NOT NULL,
            valid_to   INTEGER NOT NULL,
            single_use INTEGER NOT NULL,
            used       INTEGER NOT NULL DEFAULT 0,
            revoked    INTEGER NOT NULL DEFAULT 0,
            created_by TEXT    NOT NULL,
            created_ms INTEGER NOT NULL
        );
        CREATE INDEX visitor_passes_plate ON visitor_passes (plate);
        CREATE TABLE blacklist (
            plate      TEXT PRIMARY KEY,
            reason     TEXT    NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE vehicles_inside (
            plate      TEXT PRIMARY KEY,
            lane       TEXT    NOT NULL,
            entered_ms INTEGER NOT NULL
        );
        CREATE TABLE list_versions (list TEXT PRIMARY KEY, version INTEGER NOT NULL);",
    ),
    // 4: the local journal of access, alarm and audit events (kept after the
    // uplink acks them from `events`; pruned by age and row count).
    M::up(
        "CREATE TABLE journal (
            seq       INTEGER PRIMARY KEY,
            time_ms   INTEGER NOT NULL,
            class     INTEGER NOT NULL,
            kind      TEXT    NOT NULL,
            device_id TEXT    NOT NULL,
            actor     TEXT,
            payload   TEXT    NOT NULL
        );
        CREATE INDEX journal_time ON journal (time_ms);
        CREATE INDEX journal_actor ON journal (actor, seq) WHERE actor IS NOT NULL;",
    ),
    // 5: panel users and their server-side sessions (token stored hashed).
    M::up(
        "CREATE TABLE users (
            id                  INTEGER PRIMARY KEY AUTOINCREMENT,
            name                TEXT    NOT NULL UNIQUE,
            role                TEXT    NOT NULL CHECK (role IN ('guard', 'manager', 'admin')),
            password_hash       TEXT    NOT NULL,
            created_ms          INTEGER NOT NULL,
            password_changed_ms INTEGER NOT NULL
        );
        CREATE TABLE sessions (
            token_hash   TEXT    PRIMARY KEY,
            user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            csrf         TEXT    NOT NULL,
            created_ms   INTEGER NOT NULL,
            last_seen_ms INTEGER NOT NULL,
            remote       TEXT
        );
        CREATE INDEX sessions_user ON sessions (user_id);",
    ),
    // 6: unit-door credentials: cards, keypad PINs and temporary
    // codes (argon2id hashes only), blocked cards.
    M::up(
        "CREATE TABLE door_cards (
            number     TEXT PRIMARY KEY,
            holder     TEXT    NOT NULL,
            house      TEXT    NOT NULL,
            valid_from INTEGER,
            valid_to   INTEGER,
            groups     TEXT    NOT NULL DEFAULT '',
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE door_pins (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            code_hash  TEXT    NOT NULL UNIQUE,
            holder     TEXT    NOT NULL,
            house      TEXT    NOT NULL,
            valid_from INTEGER,
            valid_to   INTEGER,
            groups     TEXT    NOT NULL DEFAULT '',
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE door_temp_codes (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            code_hash  TEXT    NOT NULL UNIQUE,
            label      TEXT    NOT NULL,
            house      TEXT    NOT NULL,
            valid_from INTEGER NOT NULL,
            valid_to   INTEGER NOT NULL,
            max_uses   INTEGER NOT NULL,
            used       INTEGER NOT NULL DEFAULT 0,
            groups     TEXT    NOT NULL DEFAULT '',
            created_by TEXT    NOT NULL,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE door_blocked (
            number     TEXT PRIMARY KEY,
            reason     TEXT    NOT NULL,
            updated_ms INTEGER NOT NULL
        );",
    ),
    // 7: the uplink's dead letters (events the platform rejected for good)
    // and the downlink command ids already seen (replay protection).
    M::up(
        "CREATE TABLE uplink_dead_letters (
            seq         INTEGER PRIMARY KEY,
            id          TEXT    NOT NULL,
            class       INTEGER NOT NULL,
            kind        TEXT    NOT NULL,
            device_id   TEXT    NOT NULL,
            rejected_ms INTEGER NOT NULL,
            reason      TEXT    NOT NULL,
            payload     TEXT    NOT NULL
        );
         CREATE TABLE uplink_seen_commands (
            id         TEXT    PRIMARY KEY,
            expires_ms INTEGER NOT NULL
        );",
    ),
];

/// The migrations, for `to_latest`.
pub(crate) const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

/// The schema version this code writes (the number of migrations).
pub const SCHEMA_VERSION: usize = MIGRATION_LIST.len();

/// How long a connection waits on another's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `PRAGMA auto_vacuum`'s value for INCREMENTAL.
const AUTO_VACUUM_INCREMENTAL: i64 = 2;

/// Opens a connection with the store's pragmas.
pub(crate) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    Ok(conn)
}

/// Applies the pragmas: `auto_vacuum=INCREMENTAL` first (it only takes
/// effect before the first table exists), WAL, `synchronous=FULL` (never
/// NORMAL: it loses acknowledged events on power loss), a busy timeout and a
/// small page cache.
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Setting it writes the header (a write transaction) even when it is
    // already set: only a file that does not have it yet gets it, so an
    // open writes nothing (nor needs room on a full disk).
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if auto_vacuum != AUTO_VACUUM_INCREMENTAL {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("journal_mode WAL refused (got {mode})")),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // 2 MiB page cache (negative = KiB); the queue is append/scan, not random.
    conn.pragma_update(None, "cache_size", -2048)?;
    // Keep a WAL left behind by a big ack from squatting on the card.
    conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Deleted rows are zeroed in the pages a delete writes anyway (no more
    // IO); pages freed whole keep their bytes until an erasure frees them
    // ([`SECURE_DELETE`]).
    conn.pragma_update(None, "secure_delete", SECURE_DELETE_FAST)?;
    persist_wal(conn)
}

/// `PRAGMA secure_delete`'s every-day value: deleted content is overwritten
/// with zeros where that costs no extra write, so a deleted row leaves no
/// bytes in the pages still in use. Pages freed whole (the freelist) are
/// not overwritten at this setting; an erasure on request turns it
/// [`SECURE_DELETE`] for its own transactions and then frees the freelist
/// and truncates the WAL ([`super::Store::scrub`]).
pub(crate) const SECURE_DELETE_FAST: &str = "FAST";

/// `PRAGMA secure_delete` for an erasure's transactions: every deleted
/// byte overwritten with zeros, freed pages included.
pub(crate) const SECURE_DELETE: &str = "ON";

/// Keeps the `-wal` and `-shm` files when the last connection closes
/// (`SQLITE_FCNTL_PERSIST_WAL`; `journal_size_limit` truncates the WAL to
/// nothing then). Opening a WAL database whose `-shm` file is missing must
/// create it, which a full disk refuses: kept, a gateway stopped on a disk
/// that filled afterwards opens again even without the store's reserve
/// ([`super::space`]). Set on every connection, since the last one to
/// close decides.
fn persist_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut on: std::ffi::c_int = 1;
    #[allow(unsafe_code)]
    // SAFETY: `handle()` is this open connection's own pointer, used for the
    // call only; "main" is a NUL-terminated literal; PERSIST_WAL reads and
    // writes the one `c_int` passed, which outlives the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast(),
        )
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rc),
            Some("SQLITE_FCNTL_PERSIST_WAL refused".into()),
        ))
    }
}

/// The mode of the database's files: the service user's alone.
pub const FILE_MODE: u32 = 0o600;
/// The mode of the database's folder (the data directory).
pub const DIR_MODE: u32 = 0o700;

/// Keeps the database's files ([`FILE_MODE`]: the file, its `-wal` and
/// `-shm`) and its folder ([`DIR_MODE`]) to the service user: any bit wider
/// than those is taken away (a file SQLite created under a looser umask, a
/// data directory made by an older package). A failure is logged, never
/// fatal: a gateway must not stop over a mode it cannot change.
pub(crate) fn restrict(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        narrow(dir, DIR_MODE);
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        narrow(Path::new(&file), FILE_MODE);
    }
}

fn narrow(path: &Path, allowed: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & !allowed == 0 {
        return;
    }
    let narrower = std::fs::Permissions::from_mode(mode & allowed);
    if let Err(error) = std::fs::set_permissions(path, narrower) {
        tracing::warn!(%error, path = %path.display(), mode = format!("{mode:o}"), "Could not make this file the service user's alone.");
    }
}

/// The `meta` key naming the Gatehouse version that last opened the file.
const WRITTEN_BY: &str = "written_by";

/// Records this Gatehouse's version as the file's last writer, when it is
/// not already (an open writes nothing to a file this version wrote: a
/// full disk does not stop it, and the card is spared a write per start).
pub(crate) fn set_written_by(conn: &Connection) -> rusqlite::Result<()> {
    if written_by(conn).as_deref() == Some(env!("CARGO_PKG_VERSION")) {
        return Ok(());
    }
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        [WRITTEN_BY, env!("CARGO_PKG_VERSION")],
    )?;
    Ok(())
}

/// The Gatehouse version that last opened the file, if it recorded one.
pub(crate) fn written_by(conn: &Connection) -> Option<String> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [WRITTEN_BY], |r| {
        r.get(0)
    })
    .ok()
}

/// The database's `user_version`.
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Whether an error means the file is damaged or not a database at all
/// (as opposed to, say, a permission problem or a full disk).
pub(crate) fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Same, for a migration failure.
pub(crate) fn is_migration_corruption(err: &rusqlite_migration::Error) -> bool {
    match err {
        rusqlite_migration::Error::RusqliteError { err, .. } => is_corruption(err),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().expect("migrations validate");
    }

    #[test]
    fn new_database_gets_incremental_auto_vacuum_wal_and_full_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = connect(&dir.path().join("g.db")).expect("connect");
        MIGRATIONS.to_latest(&mut conn).expect("migrate");
        let auto_vacuum: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .expect("q");
        assert_eq!(auto_vacuum, 2, "INCREMENTAL");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("q");
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("q");
        assert_eq!(sync, 2, "FULL");
        assert_eq!(user_version(&conn).expect("version"), SCHEMA_VERSION as i64);
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'events_class_seq'",
                [],
                |r| r.get(0),
            )
            .expect("q");
        assert_eq!(index, 1);
    }

    /// Whether `needle` is anywhere in the bytes of the database or its WAL.
    fn on_disk(path: &Path, needle: &[u8]) -> bool {
        let wal = path.with_extension("db-wal");
        [path.to_path_buf(), wal].iter().any(|p| {
            std::fs::read(p).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        })
    }

    #[test]
    fn a_deleted_row_leaves_no_bytes_in_the_pages_in_use_only_with_secure_delete() {
        let needle = "苏A7SECRET".as_bytes();
        for (secure, left) in [(true, false), (false, true)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("g.db");
            let conn = connect(&path).expect("connect");
            if !secure {
                conn.pragma_update(None, "secure_delete", 0).expect("off");
            }
            conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
                .expect("table");
            for i in 0..20 {
                conn.execute(
                    "INSERT INTO t (v) VALUES (?1)",
                    [format!("row {i} 苏A7SECRE{}", i % 2)],
                )
                .expect("insert");
            }
            conn.execute("INSERT INTO t (v) VALUES ('苏A7SECRET')", [])
                .expect("insert");
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .expect("checkpoint");
            assert!(on_disk(&path, needle), "written");
            conn.execute("DELETE FROM t WHERE v = '苏A7SECRET'", [])
                .expect("delete");
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .expect("checkpoint");
            assert_eq!(on_disk(&path, needle), left, "secure_delete {secure}");
        }
    }

    #[test]
    fn the_database_files_and_folder_become_the_service_users_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = data.join("g.db");
        let conn = connect(&path).expect("connect");
        conn.execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('x');")
            .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        restrict(&path);
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for name in ["g.db", "g.db-wal", "g.db-shm"] {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
        }
        // Narrower modes stay as they are.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        restrict(&path);
        assert_eq!(mode(&path), 0o400);
    }

    #[test]
    fn garbage_is_recognised_as_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.db");
        std::fs::write(&path, vec![0x5a; 8192]).expect("write garbage");
        let err = connect(&path).expect_err("garbage is not a database");
        assert!(is_corruption(&err), "{err}");
    }
}
