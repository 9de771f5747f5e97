//! The uplink's own tables (migration 3), on a connection of its own
//! ([`Store::connect`](crate::store::Store::connect)): the dead letters
//! (events the platform rejected for good, kept with the reason) and the
//! downlink command and sync ids already seen (replay protection across restarts).
//! Calls block: run them on the blocking pool.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension};

use crate::store::{Store, StoreError};
use crate::wire::Envelope;

/// Seen command ids are kept this long after their expiry (clock-skew margin).
const SEEN_MARGIN_MS: i64 = 3_600_000;

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event's sequence number.
    pub seq: u64,
    /// The event's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Why the platform rejected it.
    pub reason: String,
    /// The device it is about.
    pub device_id: String,
    /// When it was dead-lettered (ms since the epoch).
    pub rejected_ms: i64,
    /// The stored envelope's JSON (or the raw row of an unreadable one).
    pub payload: String,
}

/// The uplink's connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UplinkDb {
    conn: Arc<Mutex<Connection>>,
}

impl UplinkDb {
    /// Opens a connection to the store's database.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Arc::new(Mutex::new(store.connect()?)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn)
    }

    /// Keeps rejected events with the reason (idempotent by `seq`), in one
    /// transaction.
    pub fn dead_letter(&self, events: &[(&Envelope, &str)], now_ms: i64) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO uplink_dead_letters
                 (seq, id, class, kind, device_id, rejected_ms, reason, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (event, reason) in events {
                let payload = serde_json::to_string(event).unwrap_or_default();
                stmt.execute(rusqlite::params![
                    i64::try_from(event.seq).unwrap_or(i64::MAX),
                    event.id.to_string(),
                    event.class.index() as i64,
                    event.kind,
                    event.device_id,
                    now_ms,
                    reason,
                    payload,
                ])?;
            }
        }
        tx.commit()
    }

    /// Keeps a queued row that cannot be decoded as it is stored (its raw
    /// payload), with the reason. Idempotent by `seq`; an error when the row
    /// is not there or cannot be copied (then it must stay queued).
    pub fn dead_letter_raw(&self, seq: u64, reason: &str, now_ms: i64) -> rusqlite::Result<()> {
        self.with(|conn| {
            let seq = i64::try_from(seq).unwrap_or(i64::MAX);
            let copied = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO uplink_dead_letters
                     (seq, id, class, kind, device_id, rejected_ms, reason, payload)
                     SELECT seq, COALESCE(id, ''), COALESCE(class, 0), COALESCE(kind, ''),
                            COALESCE(device_id, ''), ?2, ?3, COALESCE(CAST(payload AS TEXT), '')
                     FROM events WHERE seq = ?1",
                )?
                .execute(rusqlite::params![seq, now_ms, reason])?;
            if copied == 1 || self.has(conn, seq)? {
                Ok(())
            } else {
                Err(rusqlite::Error::QueryReturnedNoRows)
            }
        })
    }

    fn has(&self, conn: &Connection, seq: i64) -> rusqlite::Result<bool> {
        Ok(conn
            .prepare_cached("SELECT 1 FROM uplink_dead_letters WHERE seq = ?1")?
            .query_row([seq], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> rusqlite::Result<Vec<DeadLetter>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, id, kind, reason, device_id, rejected_ms, payload
                 FROM uplink_dead_letters ORDER BY seq",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(DeadLetter {
                    seq: r.get::<_, i64>(0)?.max(0) as u64,
                    id: r.get(1)?,
                    kind: r.get(2)?,
                    reason: r.get(3)?,
                    device_id: r.get(4)?,
                    rejected_ms: r.get(5)?,
                    payload: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Forgets the dead letter `seq` (after it was queued again).
    pub fn forget(&self, seq: u64) -> rusqlite::Result<bool> {
        self.with(|conn| {
            let seq = i64::try_from(seq).unwrap_or(i64::MAX);
            let removed = conn
                .prepare_cached("DELETE FROM uplink_dead_letters WHERE seq = ?1")?
                .execute([seq])?;
            Ok(removed == 1)
        })
    }

    /// Records a downlink message id (a command's, or a list sync's as
    /// `sync/{id}`); `false` when it was seen before (a replay). Forgets ids
    /// whose messages expired long ago (they are refused as expired anyway).
    pub fn remember_id(&self, id: &str, expires_ms: i64, now_ms: i64) -> rusqlite::Result<bool> {
        self.with(|conn| {
            conn.prepare_cached("DELETE FROM uplink_seen_commands WHERE expires_ms < ?1")?
                .execute([now_ms - SEEN_MARGIN_MS])?;
            let seen: Option<i64> = conn
                .prepare_cached("SELECT 1 FROM uplink_seen_commands WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            if seen.is_some() {
                return Ok(false);
            }
            conn.prepare_cached(
                "INSERT INTO uplink_seen_commands (id, expires_ms) VALUES (?1, ?2)",
            )?
            .execute(rusqlite::params![id, expires_ms])?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Kind;
    use crate::pipeline::Stamper;
    use crate::store::StoreConfig;

    #[tokio::test]
    async fn dead_letters_and_seen_commands_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.db");
        let (store, _) = Store::open(StoreConfig::new(&path)).expect("open");
        let db = UplinkDb::open(&store).expect("db");
        let mut event =
            Stamper::new("e", "g").stamp("d", Kind::Command, serde_json::json!({}), None);
        event.seq = 7;
        db.dead_letter(&[(&event, "400 schema")], 1)
            .expect("dead letter");
        db.dead_letter(&[(&event, "400 schema")], 2)
            .expect("idempotent");
        let letters = db.dead_letters().expect("list");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].seq, 7);
        assert_eq!(letters[0].reason, "400 schema");

        let now = 10_000_000;
        assert!(db.remember_id("c1", now + 1000, now).expect("first"));
        assert!(!db.remember_id("c1", now + 1000, now).expect("replay"));
        drop(db);
        let db = UplinkDb::open(&store).expect("reopen");
        assert!(
            !db.remember_id("c1", now + 1000, now + 10)
                .expect("replay after reopen")
        );
        // Long expired ids are forgotten.
        assert!(
            db.remember_id("c1", now, now + 2 * SEEN_MARGIN_MS)
                .expect("pruned")
        );
        store.close().await.expect("close");
    }
}
