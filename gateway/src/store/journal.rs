//! The local journal: access, alarm and audit events kept after the uplink
//! deleted them from the queue, for the panel's history, the audit log and
//! (later) the traffic chart.
//!
//! The writer fills it in the queue insert's transaction (see the store's
//! module docs); this module owns its retention ([`JournalRetention`],
//! [`prune`]), who an event is attributed to ([`actor_of`]) and the reads
//! ([`Journal`], filtered by a [`JournalQuery`]) on a connection of its own,
//! so panel reads never wait behind the uplink's reader.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use drivers::Class;
use rusqlite::Connection;
use rusqlite::types::Value;

use super::{Seq, Store, StoreError};
use crate::wire::Envelope;

/// `[store] journal_days` default.
pub const DEFAULT_JOURNAL_DAYS: u32 = 90;
/// `[store] journal_max_rows` default.
pub const DEFAULT_JOURNAL_MAX_ROWS: u64 = 1_000_000;
/// How often the writer prunes the journal.
pub const DEFAULT_PRUNE_EVERY: Duration = Duration::from_secs(600);

/// How long journal rows are kept by the writer's own pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalRetention {
    /// Alarm rows older than this many days are deleted (access and audit
    /// rows hold personal information: their retention is `[privacy]`'s,
    /// applied by the daily purge through [`purge`]).
    pub days: u32,
    /// At most this many rows are kept (the newest).
    pub max_rows: u64,
    /// How often the writer prunes.
    pub prune_every: Duration,
}

impl Default for JournalRetention {
    fn default() -> Self {
        Self {
            days: DEFAULT_JOURNAL_DAYS,
            max_rows: DEFAULT_JOURNAL_MAX_ROWS,
            prune_every: DEFAULT_PRUNE_EVERY,
        }
    }
}

/// Deletes alarm rows older than `days` and every row beyond `max_rows`;
/// returns how many.
pub(crate) fn prune(
    conn: &Connection,
    retention: &JournalRetention,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let cutoff = now_ms.saturating_sub(i64::from(retention.days).saturating_mul(86_400_000));
    let mut deleted = conn.execute(
        "DELETE FROM journal WHERE time_ms < ?1 AND class = 1",
        [cutoff],
    )?;
    let keep = i64::try_from(retention.max_rows).unwrap_or(i64::MAX);
    deleted += conn.execute(
        "DELETE FROM journal WHERE seq <=
            (SELECT seq FROM journal ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
        [keep],
    )?;
    Ok(deleted)
}

/// The journal's records that hold personal information, each with its
/// own retention (`[privacy]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personal {
    /// Access events other than call logs: plate reads, door presentations,
    /// passages.
    AccessRecords,
    /// Intercom call logs: calls, answers, missed calls, station unlocks.
    CallLogs,
    /// Audit records.
    Audit,
}

/// The intercom kinds that are call logs (checked against the event kinds
/// in the tests).
pub const CALL_LOG_KINDS: [&str; 5] = [
    "call_started",
    "call_answered",
    "call_ended",
    "call_missed",
    "station_unlock",
];

/// Deletes the `what` rows recorded before `cutoff_ms`, a few hundred per
/// transaction of the store's writer (so appends never wait long behind
/// it); returns how many went. Blocks: call it on the blocking pool.
pub fn purge(store: &Store, what: Personal, cutoff_ms: i64) -> Result<u64, StoreError> {
    // Classes by index: 0 access, 2 audit (`Class::index`).
    let delete = match what {
        Personal::AccessRecords => {
            "DELETE FROM journal WHERE rowid IN (SELECT rowid FROM journal
                 WHERE time_ms < ?1 AND class = 0 AND kind NOT IN
                 ('call_started', 'call_answered', 'call_ended', 'call_missed', 'station_unlock')
                 LIMIT 256)"
        }
        Personal::CallLogs => {
            "DELETE FROM journal WHERE rowid IN (SELECT rowid FROM journal
                 WHERE time_ms < ?1 AND kind IN
                 ('call_started', 'call_answered', 'call_ended', 'call_missed', 'station_unlock')
                 LIMIT 256)"
        }
        Personal::Audit => {
            "DELETE FROM journal WHERE rowid IN (SELECT rowid FROM journal
                 WHERE time_ms < ?1 AND class = 2 LIMIT 256)"
        }
    };
    store.delete_in_chunks(delete, cutoff_ms)
}

/// Who an event is attributed to: the body's `actor`, or the `origin.actor`
/// of an audited command. Only audit events have one.
pub(crate) fn actor_of(env: &Envelope) -> Option<String> {
    if env.class != Class::Audit {
        return None;
    }
    env.body
        .get("actor")
        .or_else(|| env.body.get("origin").and_then(|o| o.get("actor")))
        .and_then(|a| a.as_str())
        .map(str::to_owned)
}

/// A filter over the journal. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalQuery {
    /// Only events at or after this time (Unix ms).
    pub from_ms: Option<i64>,
    /// Only events before this time (Unix ms).
    pub to_ms: Option<i64>,
    /// Only these classes (any of them).
    pub classes: Vec<Class>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this device.
    pub device: Option<String>,
    /// Only events by this actor.
    pub actor: Option<String>,
    /// Only events with a smaller `seq` (paging backwards).
    pub before_seq: Option<Seq>,
    /// At most this many rows, newest first.
    pub limit: usize,
}

/// Reads of the journal, on a connection of its own (cheap to clone).
#[derive(Debug, Clone)]
pub struct Journal {
    conn: Arc<Mutex<Connection>>,
}

impl Journal {
    /// A reader over `store`'s journal.
    pub fn new(store: &Store) -> Result<Journal, StoreError> {
        Ok(Journal {
            conn: Arc::new(Mutex::new(store.connect()?)),
        })
    }

    /// The events matching `query`, newest first.
    pub async fn query(&self, query: JournalQuery) -> Result<Vec<Envelope>, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            query_blocking(&conn, &query)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

/// [`Journal::query`] on the caller's thread.
pub fn query_blocking(
    conn: &Connection,
    query: &JournalQuery,
) -> Result<Vec<Envelope>, StoreError> {
    let mut sql = String::from("SELECT seq, payload FROM journal WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let mut push = |clause: &str, value: Value| {
        args.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(from) = query.from_ms {
        push("time_ms >=", Value::Integer(from));
    }
    if let Some(to) = query.to_ms {
        push("time_ms <", Value::Integer(to));
    }
    if let Some(kind) = &query.kind {
        push("kind =", Value::Text(kind.clone()));
    }
    if let Some(device) = &query.device {
        push("device_id =", Value::Text(device.clone()));
    }
    if let Some(actor) = &query.actor {
        push("actor =", Value::Text(actor.clone()));
    }
    if let Some(before) = query.before_seq {
        push(
            "seq <",
            Value::Integer(i64::try_from(before).unwrap_or(i64::MAX)),
        );
    }
    if !query.classes.is_empty() {
        let list = query
            .classes
            .iter()
            .map(|c| c.index().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        sql.push_str(&format!(" AND class IN ({list})"));
    }
    args.push(Value::Integer(
        i64::try_from(query.limit).unwrap_or(i64::MAX),
    ));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));

    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)?.max(0) as Seq;
        let payload: String = row.get(1)?;
        let mut env: Envelope =
            serde_json::from_str(&payload).map_err(|e| StoreError::CorruptRow {
                seq,
                reason: e.to_string(),
            })?;
        env.seq = seq;
        out.push(env);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use uuid::Uuid;

    fn env(class: Class, kind: &str, time_ms: i64, body: serde_json::Value) -> Envelope {
        Envelope {
            schema: crate::wire::SCHEMA_VERSION,
            id: Uuid::now_v7(),
            seq: 0,
            time_ms,
            clock_synced: true,
            device_time_ms: None,
            estate_id: "e1".into(),
            gateway_id: "g1".into(),
            device_id: "dev-1".into(),
            kind: kind.into(),
            class,
            body,
        }
    }

    fn open(dir: &tempfile::TempDir, retention: JournalRetention) -> Store {
        let config = StoreConfig {
            group_commit_window: Duration::ZERO,
            ..StoreConfig::new(dir.path().join("g.db"))
        };
        Store::open_with(config, retention).expect("open").0
    }

    fn all(limit: usize) -> JournalQuery {
        JournalQuery {
            limit,
            ..JournalQuery::default()
        }
    }

    #[tokio::test]
    async fn journal_keeps_an_acked_event_and_skips_telemetry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, JournalRetention::default());
        let now = drivers::contract::now_ms();
        let access = store
            .append(env(
                Class::Access,
                "card_read",
                now,
                serde_json::json!({"card": "1"}),
            ))
            .await
            .expect("append");
        store
            .append(env(
                Class::Telemetry,
                "point_value",
                now,
                serde_json::json!({}),
            ))
            .await
            .expect("append");
        assert_eq!(store.ack(u64::MAX).await.expect("ack"), 2);
        assert!(store.read_after(0, 10).await.expect("read").is_empty());

        let journal = Journal::new(&store).expect("journal");
        let rows = journal.query(all(10)).await.expect("query");
        assert_eq!(rows.len(), 1, "telemetry is not journalled");
        assert_eq!(rows[0].seq, access);
        assert_eq!(rows[0].kind, "card_read");
        assert_eq!(rows[0].body["card"], "1");
    }

    #[tokio::test]
    async fn journal_filters_by_class_kind_device_actor_and_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, JournalRetention::default());
        let now = drivers::contract::now_ms();
        let login = env(
            Class::Audit,
            "user_login",
            now - 1000,
            serde_json::json!({"actor": "wang"}),
        );
        let command = env(
            Class::Audit,
            "command",
            now,
            serde_json::json!({"origin": {"actor": "li", "via": "panel"}}),
        );
        let mut alarm = env(Class::Alarm, "threshold_alarm", now, serde_json::json!({}));
        alarm.device_id = "tank-1".into();
        for e in [login, command, alarm] {
            store.append(e).await.expect("append");
        }
        let journal = Journal::new(&store).expect("journal");
        let q = |f: fn(&mut JournalQuery)| {
            let mut q = all(10);
            f(&mut q);
            q
        };
        let kinds = |rows: Vec<Envelope>| rows.into_iter().map(|e| e.kind).collect::<Vec<_>>();
        let by_actor = journal
            .query(q(|q| q.actor = Some("li".into())))
            .await
            .expect("q");
        assert_eq!(kinds(by_actor), ["command"]);
        let audit = journal
            .query(q(|q| q.classes = vec![Class::Audit]))
            .await
            .expect("q");
        assert_eq!(kinds(audit), ["command", "user_login"], "newest first");
        let device = journal
            .query(q(|q| q.device = Some("tank-1".into())))
            .await
            .expect("q");
        assert_eq!(kinds(device), ["threshold_alarm"]);
        let kind = journal
            .query(q(|q| q.kind = Some("user_login".into())))
            .await
            .expect("q");
        assert_eq!(kind.len(), 1);
        let mut recent = all(10);
        recent.from_ms = Some(now - 500);
        assert_eq!(journal.query(recent).await.expect("q").len(), 2);
        let mut page = all(1);
        let first = journal.query(page.clone()).await.expect("q");
        page.before_seq = Some(first[0].seq);
        let second = journal.query(page).await.expect("q");
        assert!(second[0].seq < first[0].seq);
    }

    #[tokio::test]
    async fn journal_is_pruned_by_age_and_row_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let retention = JournalRetention {
            days: 1,
            max_rows: 3,
            prune_every: Duration::ZERO,
        };
        let store = open(&dir, retention);
        let now = drivers::contract::now_ms();
        let old = now - 2 * 86_400_000;
        store
            .append(env(Class::Alarm, "old", old, serde_json::json!({})))
            .await
            .expect("append");
        for i in 0..5 {
            store
                .append(env(
                    Class::Alarm,
                    &format!("new-{i}"),
                    now,
                    serde_json::json!({}),
                ))
                .await
                .expect("append");
        }
        let journal = Journal::new(&store).expect("journal");
        let rows = journal.query(all(100)).await.expect("query");
        let kinds: Vec<_> = rows.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["new-4", "new-3", "new-2"]);
    }

    #[tokio::test]
    async fn personal_records_are_purged_by_their_own_retention_in_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The writer keeps alarms ten years here: only the purge deletes.
        let store = open(
            &dir,
            JournalRetention {
                days: 3650,
                ..JournalRetention::default()
            },
        );
        let now = drivers::contract::now_ms();
        let (old, new) = (now - 100 * 86_400_000, now - 1000);
        let mut batch = Vec::new();
        // More old plate reads than one chunk holds.
        for i in 0..600 {
            batch.push(env(
                Class::Access,
                "plate_read",
                old,
                serde_json::json!({"n": i}),
            ));
        }
        for kind in CALL_LOG_KINDS {
            batch.push(env(Class::Access, kind, old, serde_json::json!({})));
        }
        batch.push(env(Class::Audit, "user_login", old, serde_json::json!({})));
        batch.push(env(Class::Alarm, "door_alarm", old, serde_json::json!({})));
        batch.push(env(Class::Access, "plate_read", new, serde_json::json!({})));
        batch.push(env(Class::Audit, "user_login", new, serde_json::json!({})));
        for result in store.submit(batch).wait().await {
            result.expect("append");
        }
        let cutoff = now - 90 * 86_400_000;
        let purge_blocking = |what| {
            let store = store.clone();
            tokio::task::spawn_blocking(move || purge(&store, what, cutoff))
        };
        assert_eq!(
            purge_blocking(Personal::CallLogs)
                .await
                .expect("join")
                .expect("calls"),
            5
        );
        assert_eq!(
            purge_blocking(Personal::AccessRecords)
                .await
                .expect("join")
                .expect("access"),
            600
        );
        assert_eq!(
            purge_blocking(Personal::Audit)
                .await
                .expect("join")
                .expect("audit"),
            1
        );
        let journal = Journal::new(&store).expect("journal");
        let left: Vec<(String, i64)> = journal
            .query(all(1000))
            .await
            .expect("query")
            .iter()
            .map(|e| (e.kind.clone(), e.time_ms))
            .collect();
        assert_eq!(
            left,
            [
                ("user_login".to_owned(), new),
                ("plate_read".to_owned(), new),
                ("door_alarm".to_owned(), old),
            ],
            "newer records and alarms (the writer's own retention) stay"
        );
    }
}
