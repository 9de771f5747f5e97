//! Salvage of a quarantined database: every row that can still be read from
//! the moved-aside file is copied into the fresh one, table by table, so a
//! few damaged pages cost the rows on those pages and not the backlog, the
//! lists, the cards and the users.
//!
//! Each table of the fresh schema is read from the old file in `rowid`
//! order, in small pages of rows. When a read fails on a damaged page, the
//! scan looks for the next `rowid` it can read from (doubling the jump, then
//! narrowing it back by bisection) and carries on there; the `rowid`s jumped
//! over are counted as lost (an upper bound: some may have been deleted
//! before the damage). Rows are inserted with their `rowid`, so sequence
//! numbers never go back. A row whose `payload` is not JSON (garbage that
//! happened to parse as a page) is not copied and counted as lost.
//! Indexes are never read: the fresh file rebuilds them.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, params_from_iter};
use serde::Serialize;

/// Rows read per query.
const PAGE_ROWS: i64 = 256;

/// What was recovered from one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableSalvage {
    /// The table.
    pub table: String,
    /// Rows copied into the fresh database.
    pub salvaged: u64,
    /// Rows that could not be read or copied (at most this many: the
    /// `rowid`s skipped over damaged pages, plus refused rows).
    pub lost: u64,
    /// Why the table could not be read at all, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// Copies every readable row of `old` into `fresh` (already migrated).
/// Never fails: what cannot be read is reported per table.
pub(crate) fn salvage(old: &Path, fresh: &mut Connection) -> Vec<TableSalvage> {
    let tables = match fresh_tables(fresh) {
        Ok(tables) => tables,
        Err(error) => {
            tracing::error!(%error, "Listing the fresh database's tables failed; nothing salvaged.");
            return Vec::new();
        }
    };
    let source = Connection::open_with_flags(
        old,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    );
    let report = tables
        .into_iter()
        .map(|(table, columns)| match &source {
            Ok(source) => copy_table(source, fresh, &table, &columns),
            Err(error) => TableSalvage {
                table,
                unreadable: Some(error.to_string()),
                ..TableSalvage::default()
            },
        })
        .collect::<Vec<_>>();
    for t in &report {
        tracing::warn!(
            table = %t.table,
            salvaged = t.salvaged,
            lost = t.lost,
            unreadable = t.unreadable.as_deref().unwrap_or(""),
            "Salvaged from the quarantined database."
        );
    }
    report
}

/// The fresh schema's tables in creation order, with their columns.
fn fresh_tables(fresh: &Connection) -> rusqlite::Result<Vec<(String, Vec<String>)>> {
    let names: Vec<String> = fresh
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    names
        .into_iter()
        .map(|name| {
            let columns = fresh
                .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?
                .query_map([&name], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok((name, columns))
        })
        .collect()
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn copy_table(
    source: &Connection,
    fresh: &mut Connection,
    table: &str,
    columns: &[String],
) -> TableSalvage {
    let mut out = TableSalvage {
        table: table.to_owned(),
        ..TableSalvage::default()
    };
    let list = columns
        .iter()
        .map(|c| quoted(c))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!(
        "SELECT rowid, {list} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT {PAGE_ROWS}",
        quoted(table)
    );
    // The probe reads whole rows too: a start it accepts is one the scan
    // can read, so every pass of the loop below makes progress.
    let probe = format!(
        "SELECT rowid, {list} FROM {} WHERE rowid >= ?1 ORDER BY rowid LIMIT 1",
        quoted(table)
    );
    let placeholders = (0..=columns.len())
        .map(|i| format!("?{}", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!(
        "INSERT OR IGNORE INTO {} (rowid, {list}) VALUES ({placeholders})",
        quoted(table)
    );
    let payload = columns.iter().position(|c| c == "payload");
    if let Err(error) = source.prepare(&select) {
        // An older file without this table has nothing to give; a damaged
        // schema page means nothing can be read.
        if !error.to_string().contains("no such") {
            out.unreadable = Some(error.to_string());
        }
        return out;
    }
    let tx = match fresh.transaction() {
        Ok(tx) => tx,
        Err(error) => {
            out.unreadable = Some(error.to_string());
            return out;
        }
    };
    // Every table's rowids start at 1.
    let mut after = 0;
    loop {
        let (rows, failed) = read_page(source, &select, after, columns.len() + 1);
        let got = rows.len();
        for row in rows {
            let rowid = match row.first() {
                Some(Value::Integer(id)) => *id,
                _ => continue,
            };
            if rowid <= after {
                // Garbage that parsed as a cell: never go backwards.
                out.lost += 1;
                continue;
            }
            after = rowid;
            let json_ok = payload.is_none_or(|i| match row.get(i + 1) {
                Some(Value::Text(text)) => {
                    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
                }
                _ => false,
            });
            if json_ok && tx.execute(&insert, params_from_iter(row.iter())).is_ok() {
                out.salvaged += 1;
            } else {
                out.lost += 1;
            }
        }
        if !failed {
            if got < PAGE_ROWS as usize {
                break;
            }
            continue;
        }
        match next_readable(source, &probe, after, columns.len() + 1) {
            // A row that reads alone but not in a page of rows: lose it and
            // go on (every pass makes progress).
            Some(resume) if got == 0 && resume == after + 1 => {
                out.lost += 1;
                after = resume;
            }
            Some(resume) => {
                // Rows `after+1 ..= resume-1` were on damaged pages.
                out.lost += resume.saturating_sub(after).saturating_sub(1) as u64;
                after = resume - 1;
            }
            None => {
                // Nothing readable beyond: the table's sequence (when it has
                // one) says how many rows there were at most.
                let last: Option<i64> = source
                    .query_row(
                        "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                        [table],
                        |r| r.get(0),
                    )
                    .ok();
                out.lost += last.map_or(1, |last| last.saturating_sub(after).max(1) as u64);
                break;
            }
        }
    }
    if let Err(error) = tx.commit() {
        out.unreadable = Some(error.to_string());
        out.lost += out.salvaged;
        out.salvaged = 0;
    }
    out
}

/// Reads up to a page of rows after `after`; `true` when the read failed
/// part-way (the rows read before the failure are returned).
fn read_page(
    source: &Connection,
    select: &str,
    after: i64,
    width: usize,
) -> (Vec<Vec<Value>>, bool) {
    let mut out = Vec::new();
    let Ok(mut stmt) = source.prepare_cached(select) else {
        return (out, true);
    };
    let Ok(mut rows) = stmt.query([after]) else {
        return (out, true);
    };
    loop {
        match rows.next() {
            Ok(Some(row)) => {
                let values: rusqlite::Result<Vec<Value>> = (0..width).map(|i| row.get(i)).collect();
                match values {
                    Ok(values) => out.push(values),
                    Err(_) => return (out, true),
                }
            }
            Ok(None) => return (out, false),
            Err(_) => return (out, true),
        }
    }
}

/// The first `rowid` above `after` from which reading works again, or
/// `None` when nothing further can be read. Jumps double until a read
/// succeeds, then bisection finds the lowest start that works.
fn next_readable(source: &Connection, probe: &str, after: i64, width: usize) -> Option<i64> {
    // `Some(Some(rowid))`: readable from there; `Some(None)`: nothing at or
    // beyond `start`; `None`: the read failed.
    let try_from = |start: i64| -> Option<Option<i64>> {
        let mut stmt = source.prepare_cached(probe).ok()?;
        let mut rows = stmt.query([start]).ok()?;
        match rows.next() {
            Ok(Some(row)) => {
                for i in 1..width {
                    row.get::<_, Value>(i).ok()?;
                }
                row.get(0).ok().map(Some)
            }
            Ok(None) => Some(None),
            Err(_) => None,
        }
    };
    let mut low = after; // reading from `low + 1` fails
    let mut step: i64 = 1;
    let high = loop {
        let start = low.checked_add(step)?;
        match try_from(start) {
            Some(_) => break start,
            None => {
                low = start;
                step = step.checked_mul(2)?;
            }
        }
    };
    let (mut low, mut high) = (low, high);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        match try_from(mid) {
            Some(_) => high = mid,
            None => low = mid,
        }
    }
    match try_from(high) {
        Some(Some(rowid)) => Some(rowid),
        _ => None,
    }
}
