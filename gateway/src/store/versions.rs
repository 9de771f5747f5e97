//! The versions of the lists the platform syncs (`list_versions`: one row
//! per list, absent until its first sync), read and set by the lists that
//! keep them (the vehicle lists, the door cards).

use rusqlite::{Connection, OptionalExtension, params};

/// The version of a synced list (0 when never synced).
pub fn list_version(conn: &Connection, list: &str) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT version FROM list_versions WHERE list = ?1",
            [list],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
}

/// Sets the version of a synced list (in the transaction that ends the
/// sync).
pub fn set_list_version(conn: &Connection, list: &str, version: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO list_versions (list, version) VALUES (?1, ?2)
         ON CONFLICT (list) DO UPDATE SET version = ?2",
        params![list, version],
    )
    .map(drop)
}
