//! Unit tests of the store handle: reads and acks, sequence numbers,
//! bounding, migrations, quarantine, space reclamation and shutdown.

use std::time::{Duration, Instant};

use drivers::Class;
use uuid::Uuid;

use super::*;
use crate::wire::{Envelope, SCHEMA_VERSION as WIRE_VERSION};

fn env(class: Class, body_len: usize) -> Envelope {
    Envelope {
        schema: WIRE_VERSION,
        id: Uuid::now_v7(),
        seq: 0,
        time_ms: 1_764_000_000_000 + body_len as i64,
        clock_synced: true,
        device_time_ms: None,
        estate_id: "e1".into(),
        gateway_id: "g1".into(),
        device_id: "dev-1".into(),
        kind: "point_value".into(),
        class,
        body: serde_json::json!({ "pad": "x".repeat(body_len) }),
    }
}

fn config(dir: &tempfile::TempDir) -> StoreConfig {
    StoreConfig {
        group_commit_window: Duration::ZERO,
        check_after: Duration::ZERO,
        ..StoreConfig::new(dir.path().join("gatehouse.db"))
    }
}

#[tokio::test]
async fn appends_are_read_back_in_order_and_acks_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, report) = Store::open(config(&dir)).expect("open");
    assert!(report.quarantined.is_none());
    assert_eq!(report.depth, 0);

    let events: Vec<Envelope> = Class::ALL.into_iter().map(|c| env(c, 10)).collect();
    let mut seqs = Vec::new();
    for e in &events {
        seqs.push(store.append(e.clone()).await.expect("append"));
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    let read = store.read_after(0, 100).await.expect("read");
    assert_eq!(read.len(), 4);
    for ((got, want), seq) in read.iter().zip(&events).zip(&seqs) {
        assert_eq!(got.seq, *seq);
        assert_eq!(
            Envelope {
                seq: 0,
                ..got.clone()
            },
            *want
        );
    }
    let page = store.read_after(seqs[0], 2).await.expect("read");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[1..3]);

    let stats = store.stats();
    assert_eq!(stats.depth, 4);
    assert_eq!(
        stats.bytes,
        events.iter().map(|e| e.encoded_len() as u64).sum::<u64>()
    );
    assert_eq!(stats.oldest_time_ms, Some(events[0].time_ms));
    assert!(stats.file_bytes > 0);

    assert_eq!(store.ack(seqs[1]).await.expect("ack"), 2);
    assert_eq!(store.ack(seqs[1]).await.expect("ack again"), 0);
    assert_eq!(store.stats().oldest_time_ms, Some(events[2].time_ms));
    assert_eq!(store.ack_seqs(&[seqs[3], 9999]).await.expect("ack_seqs"), 1);
    let left = store.read_after(0, 100).await.expect("read");
    assert_eq!(
        left.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![seqs[2]]
    );
    assert_eq!(store.stats().depth, 1);
    assert_eq!(store.stats().bytes, events[2].encoded_len() as u64);
    store.close().await.expect("close");
}

#[tokio::test]
async fn submit_keeps_call_order_and_concurrent_appends_share_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let tickets: Vec<AppendTicket> = (0..200)
        .map(|i| store.submit(vec![env(Class::Access, i % 7)]))
        .collect();
    let mut seqs = Vec::new();
    for t in tickets {
        let r = t.wait().await;
        assert_eq!(r.len(), 1);
        seqs.push(*r[0].as_ref().expect("appended"));
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq order is call order"
    );
    let commits = store.inner.shared.snapshot().commits;
    assert!(commits < 50, "200 queued appends took {commits} commits");

    let many = store
        .submit((0..5).map(|_| env(Class::Audit, 3)).collect())
        .wait()
        .await;
    assert_eq!(many.len(), 5);
    assert!(many.iter().all(Result::is_ok));
    assert!(store.submit(Vec::new()).wait().await.is_empty());
    store.close().await.expect("close");
}

#[tokio::test]
async fn seq_never_goes_back_after_a_full_drain_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let mut last = 0;
    for _ in 0..5 {
        last = store.append(env(Class::Alarm, 5)).await.expect("append");
    }
    assert_eq!(store.ack(last).await.expect("ack"), 5);
    store.close().await.expect("close");
    drop(store);

    let (store, report) = Store::open(config(&dir)).expect("reopen");
    assert_eq!(report.depth, 0);
    let next = store.append(env(Class::Alarm, 5)).await.expect("append");
    assert!(next > last, "seq went back: {next} after {last}");
    store.close().await.expect("close");
}

#[tokio::test]
async fn closed_store_refuses_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let ticket = store.submit(vec![env(Class::Access, 1)]);
    store.close().await.expect("close");
    assert!(
        ticket.wait().await[0].is_ok(),
        "submitted before close is committed"
    );
    assert!(matches!(
        store.append(env(Class::Access, 1)).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.ack(1).await, Err(StoreError::Closed)));
    assert!(matches!(
        store.read_after(0, 1).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.close().await, Err(StoreError::Closed)));
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_writer_and_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let copy = store.clone();
    copy.append(env(Class::Access, 100)).await.expect("append");
    drop(store);
    let wal = quarantine::with_suffix(&dir.path().join("gatehouse.db"), "-wal");
    assert!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0,
        "still open: WAL in use"
    );
    drop(copy);
    // Drop joined the writer, which truncated the WAL on its way out.
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
    let (store, report) = Store::open(config(&dir)).expect("reopen");
    assert_eq!(report.depth, 1);
    store.close().await.expect("close");
}

#[tokio::test]
async fn full_store_sheds_oldest_telemetry_and_never_drops_critical_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = env(Class::Telemetry, 100).encoded_len() as u64;
    let cfg = StoreConfig {
        max_bytes: size * 4,
        critical_reserve_bytes: size * 2,
        ..config(&dir)
    };
    let (store, _) = Store::open(cfg).expect("open");
    let mut pressure = store.pressure();
    assert_eq!(*pressure.borrow_and_update(), Pressure::Normal);

    let mut telemetry = Vec::new();
    for _ in 0..4 {
        telemetry.push(
            store
                .append(env(Class::Telemetry, 100))
                .await
                .expect("fits"),
        );
    }
    assert_eq!(*pressure.borrow_and_update(), Pressure::Normal);
    // A fifth telemetry event displaces the oldest.
    let fifth = store
        .append(env(Class::Telemetry, 100))
        .await
        .expect("sheds");
    assert!(pressure.has_changed().expect("watch"));
    assert_eq!(*pressure.borrow_and_update(), Pressure::SheddingTelemetry);
    let seqs: Vec<Seq> = store
        .read_after(0, 10)
        .await
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![telemetry[1], telemetry[2], telemetry[3], fifth]);
    assert_eq!(store.stats().dropped[Class::Telemetry.index()], 1);

    // Critical events displace telemetry, then use the reserve.
    for _ in 0..6 {
        store
            .append(env(Class::Alarm, 100))
            .await
            .expect("critical fits");
    }
    assert_eq!(*pressure.borrow_and_update(), Pressure::OverCapacity);
    let classes: Vec<Class> = store
        .read_after(0, 10)
        .await
        .expect("read")
        .iter()
        .map(|e| e.class)
        .collect();
    assert_eq!(
        classes,
        vec![Class::Alarm; 6],
        "all telemetry was shed first"
    );
    // Beyond the reserve: refused, loudly.
    assert!(matches!(
        store.append(env(Class::Access, 100)).await,
        Err(StoreError::Full {
            class: Class::Access
        })
    ));
    assert!(matches!(
        store.append(env(Class::Telemetry, 1)).await,
        Err(StoreError::Full {
            class: Class::Telemetry
        })
    ));
    let stats = store.stats();
    assert_eq!(stats.depth, 6);
    assert_eq!(stats.dropped[Class::Access.index()], 1);
    assert_eq!(stats.dropped[Class::Telemetry.index()], 6);
    assert_eq!(stats.dropped[Class::Alarm.index()], 0);

    // Draining brings the pressure back to normal.
    store.ack(Seq::MAX).await.expect("ack");
    assert_eq!(*pressure.borrow_and_update(), Pressure::Normal);
    store.close().await.expect("close");
}

#[tokio::test]
async fn space_is_returned_after_the_backlog_is_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    for _ in 0..20 {
        let batch = (0..250).map(|_| env(Class::Telemetry, 400)).collect();
        assert!(store.submit(batch).wait().await.iter().all(Result::is_ok));
    }
    let full = store.stats().file_bytes;
    assert!(full > 5_000 * 400, "file holds the backlog: {full}");
    assert_eq!(store.ack(Seq::MAX).await.expect("ack"), 5_000);
    let drained = store.stats().file_bytes;
    assert!(
        drained < full / 10,
        "space not returned: {full} -> {drained}"
    );
    assert_eq!(store.stats().depth, 0);
    assert_eq!(store.stats().oldest_time_ms, None);
    store.close().await.expect("close");
}

/// An upgrade from any released schema: a database left at every earlier
/// version, with rows in the tables that version had, opens with today's
/// code, reaches the current version and keeps every row.
#[tokio::test]
async fn a_database_of_every_earlier_schema_version_is_migrated_with_its_rows() {
    for version in 1..SCHEMA_VERSION {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(&dir);
        let original = env(Class::Access, 20 + version);
        {
            let mut conn = schema::connect(&cfg.path).expect("connect");
            schema::MIGRATIONS
                .to_version(&mut conn, version)
                .expect("to the old version");
            let payload = serde_json::to_string(&original).expect("encode");
            conn.execute(
                "INSERT INTO events (id, class, kind, device_id, time_ms, size, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    original.id.to_string(),
                    Class::Access.index() as i64,
                    original.kind,
                    original.device_id,
                    original.time_ms,
                    payload.len() as i64,
                    payload
                ],
            )
            .expect("insert an event");
            if version >= 3 {
                conn.execute(
                    "INSERT INTO blacklist (plate, reason, updated_ms) VALUES ('苏A00000', '欠费', 1)",
                    [],
                )
                .expect("insert a list row");
            }
            if version >= 5 {
                conn.execute(
                    "INSERT INTO users (name, role, password_hash, created_ms, password_changed_ms) \
                     VALUES ('guard1', 'guard', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', 1, 1)",
                    [],
                )
                .expect("insert a user");
            }
            assert_eq!(
                schema::user_version(&conn).expect("version"),
                version as i64
            );
        }
        let (store, report) = Store::open(cfg).expect("an old database opens");
        assert!(report.quarantined.is_none(), "from version {version}");
        assert_eq!(report.depth, 1, "from version {version}");
        let conn = store.connect().expect("connect");
        assert_eq!(
            schema::user_version(&conn).expect("version"),
            SCHEMA_VERSION as i64,
            "from version {version}"
        );
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(
            count("blacklist"),
            i64::from(version >= 3),
            "from version {version}"
        );
        assert_eq!(
            count("users"),
            i64::from(version >= 5),
            "from version {version}"
        );
        let read = store.read_after(0, 10).await.expect("read");
        assert_eq!(read.len(), 1, "from version {version}");
        assert_eq!(read[0].id, original.id);
        assert_eq!(read[0].seq, 1);
        assert_eq!(store.stats().bytes, original.encoded_len() as u64);
        drop(conn);
        store.close().await.expect("close");
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused_not_quarantined() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&dir);
    {
        let (store, _) = Store::open(cfg.clone()).expect("open");
        store.append(env(Class::Audit, 1)).await.expect("append");
        // What a newer Gatehouse leaves behind: its schema and its version.
        let conn = store.connect().expect("connect");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        conn.execute(
            "UPDATE meta SET value = '9.1.0' WHERE key = 'written_by'",
            [],
        )
        .expect("newer writer");
        store.close().await.expect("close");
    }
    match Store::open(cfg.clone()) {
        Err(error) => {
            assert!(
                error.to_string().contains("written by Gatehouse 9.1.0"),
                "{error}"
            );
            match error {
                StoreError::SchemaTooNew {
                    found: 99,
                    supported,
                    written_by,
                } => {
                    assert_eq!(supported, SCHEMA_VERSION);
                    assert_eq!(written_by.as_deref(), Some("9.1.0"));
                }
                other => panic!("expected SchemaTooNew, got {other:?}"),
            }
        }
        Ok(_) => panic!("expected SchemaTooNew, the store opened"),
    }
    assert!(cfg.path.exists(), "the file stays where it is");
    let siblings = std::fs::read_dir(dir.path()).expect("ls").count();
    assert!(
        std::fs::read_dir(dir.path()).expect("ls").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .contains("corrupt")),
        "{siblings} files, one quarantined"
    );
}

#[tokio::test]
async fn a_garbage_file_is_quarantined_and_a_fresh_store_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&dir);
    let garbage: Vec<u8> = (0..16_384u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&cfg.path, &garbage).expect("write garbage");
    let (store, report) = Store::open(cfg.clone()).expect("open");
    let q = report.quarantined.expect("quarantined");
    assert_eq!(std::fs::read(&q.moved_to).expect("old file kept"), garbage);
    assert!(q.reason.contains("not a database"), "{}", q.reason);
    assert_eq!(report.depth, 0);
    let seq = store
        .append(env(Class::Alarm, 1))
        .await
        .expect("fresh store works");
    assert_eq!(store.read_after(0, 1).await.expect("read")[0].seq, seq);
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_queue_is_counted_after_open_while_the_store_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = COUNT_AT_OPEN as usize + 5_000;
    let (store, _) = Store::open(config(&dir)).expect("open");
    for chunk in 0..n / 1_000 {
        let batch = (0..1_000)
            .map(|i| env(Class::from_index((chunk + i) % 4).expect("class"), i % 50))
            .collect();
        for seq in store.submit(batch).wait().await {
            seq.expect("stored");
        }
    }
    store.close().await.expect("close");
    drop(store);

    let (store, report) = Store::open(config(&dir)).expect("reopen");
    assert_eq!(
        report.depth, 0,
        "a long queue is not counted before the start"
    );
    // The store works while it counts: an ack of the oldest, new events.
    let hundredth = store.read_after(0, 100).await.expect("read")[99].seq;
    assert_eq!(store.ack(hundredth).await.expect("ack"), 100);
    for _ in 0..10 {
        store.append(env(Class::Access, 7)).await.expect("append");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.stats().counting {
        assert!(Instant::now() < deadline, "the count never finished");
        tokio::task::yield_now().await;
    }
    let (depth, bytes): (i64, i64) = store
        .connect()
        .expect("connect")
        .query_row("SELECT count(*), sum(size) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("count");
    let stats = store.stats();
    assert_eq!(stats.depth as i64, depth);
    assert_eq!(stats.depth as usize, n - 100 + 10);
    assert_eq!(stats.bytes as i64, bytes);
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_found_after_open_restarts_into_a_salvage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&dir);
    let (store, _) = Store::open(cfg.clone()).expect("open");
    let seq = store.append(env(Class::Access, 10)).await.expect("append");
    let lists = store.clone();
    tokio::task::spawn_blocking(move || {
        lists.write_blocking(|tx| {
            for i in 0..300 {
                tx.execute(
                    "INSERT INTO resident_vehicles (plate, house, owner, updated_ms)
                     VALUES (?1, '3-2-1201', 'owner', 0)",
                    [format!("浙A{i:05}")],
                )?;
            }
            Ok::<_, StoreError>(())
        })
    })
    .await
    .expect("join")
    .expect("residents");
    let root: i64 = store
        .connect()
        .expect("connect")
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'resident_vehicles'",
            [],
            |r| r.get(0),
        )
        .expect("root page");
    store.close().await.expect("close");
    drop(store);
    // Garbage over the list's root page: nothing the open reads.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&cfg.path)
            .expect("open file");
        file.seek(SeekFrom::Start((root as u64 - 1) * 4096))
            .expect("seek");
        file.write_all(&[0xA5; 4096]).expect("damage");
        file.sync_all().expect("sync");
    }

    let (store, report) = Store::open(cfg.clone()).expect("opens without reading every page");
    assert!(report.quarantined.is_none());
    assert_eq!(report.depth, 1);
    let found = store.checked().await;
    assert!(matches!(found, Integrity::Damaged(_)), "{found:?}");
    assert!(
        check::marker(&cfg.path).exists(),
        "the marker is left for the restart"
    );
    store.close().await.expect("close");
    drop(store);

    let (store, report) = Store::open(cfg.clone()).expect("restart");
    let q = report
        .quarantined
        .expect("the restart quarantines and salvages");
    assert!(q.reason.contains("quick_check"), "{}", q.reason);
    assert!(!check::marker(&cfg.path).exists(), "the marker is gone");
    assert_eq!(*store.integrity().borrow(), Integrity::Ok);
    let events = store.read_after(0, 10).await.expect("read");
    assert_eq!(events.len(), 1, "the queued event is salvaged");
    assert_eq!(events[0].seq, seq);
    store.close().await.expect("close");
}

#[tokio::test]
async fn an_undamaged_file_checks_ok_after_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    store.append(env(Class::Alarm, 1)).await.expect("append");
    store.close().await.expect("close");
    drop(store);
    let (store, _) = Store::open(config(&dir)).expect("reopen");
    let found = store.checked().await;
    assert_eq!(found, Integrity::Ok);
    store.close().await.expect("close");
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let good = store.append(env(Class::Access, 1)).await.expect("append");
    store
        .connect()
        .expect("connect")
        .execute(
            "INSERT INTO events (id, class, kind, device_id, time_ms, size, payload) VALUES ('x', 0, 'k', 'd', 0, 8, 'not json')",
            [],
        )
        .expect("insert");
    match store.read_after(0, 10).await {
        Err(StoreError::CorruptRow { seq, .. }) => assert_eq!(seq, good + 1),
        other => panic!("expected CorruptRow, got {other:?}"),
    }
    // Acking past it unblocks the reader.
    store.ack_seqs(&[good + 1]).await.expect("ack");
    assert_eq!(store.read_after(0, 10).await.expect("read").len(), 1);
    store.close().await.expect("close");
}

#[tokio::test]
async fn stats_are_published_after_each_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let e = env(Class::Telemetry, 10);
    let ticket = store.submit(vec![e.clone(), e.clone()]);
    // Wait on the condition, with a deadline, rather than sleeping.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().depth < 2 {
        assert!(Instant::now() < deadline, "stats never showed the appends");
        tokio::task::yield_now().await;
    }
    assert!(ticket.wait().await.iter().all(Result::is_ok));
    assert_eq!(store.stats().bytes, 2 * e.encoded_len() as u64);
    store.close().await.expect("close");
}

#[tokio::test]
async fn read_class_after_reads_one_class_in_seq_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let classes = [
        Class::Telemetry,
        Class::Access,
        Class::Telemetry,
        Class::Alarm,
        Class::Access,
    ];
    let mut seqs = Vec::new();
    for class in classes {
        seqs.push(store.append(env(class, 10)).await.expect("append"));
    }
    let access = store
        .read_class_after(Class::Access, 0, 10)
        .await
        .expect("read");
    assert_eq!(
        access.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![seqs[1], seqs[4]]
    );
    assert!(access.iter().all(|e| e.class == Class::Access));
    let after = store
        .read_class_after(Class::Telemetry, seqs[0], 10)
        .await
        .expect("read");
    assert_eq!(
        after.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![seqs[2]]
    );
    let limited = store
        .read_class_after(Class::Telemetry, 0, 1)
        .await
        .expect("read");
    assert_eq!(limited.len(), 1);
    assert!(
        store
            .read_class_after(Class::Audit, 0, 10)
            .await
            .expect("read")
            .is_empty()
    );
    store.close().await.expect("close");
}

#[tokio::test]
async fn a_small_ack_is_committed_with_the_next_append_and_a_big_one_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let commits = || store.inner.shared.snapshot().commits;
    let mut seqs = Vec::new();
    for _ in 0..300 {
        seqs.push(store.append(env(Class::Access, 10)).await.expect("append"));
    }

    // A live uplink's ack of one event (sent to the writer before the next
    // append) is not committed on its own: the append's commit carries it.
    let before = commits();
    let first = [seqs[0]];
    let mut ack = Box::pin(store.ack_seqs(&first));
    assert!(futures::poll!(&mut ack).is_pending(), "sent, not answered");
    store.append(env(Class::Access, 10)).await.expect("append");
    assert_eq!(ack.await.expect("ack"), 1);
    assert_eq!(
        commits(),
        before + 1,
        "one commit for the append and the ack"
    );
    assert_eq!(store.stats().depth, 300);

    // An ack of a few hundred events is worth a commit of its own.
    let before = commits();
    assert_eq!(store.ack_seqs(&seqs[1..]).await.expect("ack"), 299);
    assert_eq!(commits(), before + 1);

    // Held acks are committed at once when asked (the uplink at a retry
    // and at shutdown), and within ACK_HOLD otherwise.
    let last = store.read_after(0, 10).await.expect("read")[0].seq;
    let ack = tokio::spawn({
        let store = store.clone();
        async move { store.ack_seqs(&[last]).await }
    });
    store.commit_acks().await.expect("commit acks");
    assert_eq!(ack.await.expect("task").expect("ack"), 1);
    assert_eq!(store.stats().depth, 0);
    let another = store.append(env(Class::Access, 10)).await.expect("append");
    let alone = tokio::time::timeout(ACK_HOLD * 4, store.ack_seqs(&[another]))
        .await
        .expect("a held ack is committed after ACK_HOLD without company");
    assert_eq!(alone.expect("ack"), 1);
    store.close().await.expect("close");
}

/// Rows of `class` in the file, through a connection of its own.
fn rows_on_disk(store: &Store, class: Class) -> i64 {
    store
        .connect()
        .expect("connect")
        .query_row(
            "SELECT count(*) FROM events WHERE class = ?1",
            [class.index() as i64],
            |r| r.get(0),
        )
        .expect("count")
}

#[tokio::test]
async fn telemetry_confirmed_while_held_is_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let commits = || store.inner.shared.snapshot().commits;
    let before = commits();
    let mut seqs = Vec::new();
    for i in 0..20 {
        seqs.push(store.append(env(Class::Telemetry, i)).await.expect("held"));
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(commits(), before, "held samples are not committed alone");
    assert_eq!(rows_on_disk(&store, Class::Telemetry), 0);
    // The uplink reads them at once, and its stats count them.
    let read = store
        .read_class_after(Class::Telemetry, 0, 100)
        .await
        .expect("read");
    assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(store.read_after(seqs[9], 5).await.expect("read").len(), 5);
    assert_eq!(store.stats().depth, 20);
    // Confirmed: forgotten without a write.
    assert_eq!(store.ack_seqs(&seqs[..15]).await.expect("ack"), 15);
    assert_eq!(store.stats().oldest_time_ms, Some(1_764_000_000_015));
    assert_eq!(store.ack(seqs[17]).await.expect("ack"), 3);
    assert_eq!(store.stats().depth, 2);
    // The oldest unsent is the oldest left (env(_, 18) is stamped +18 ms).
    assert_eq!(store.stats().oldest_time_ms, Some(1_764_000_000_018));
    let left: Vec<u64> = store
        .read_after(0, 100)
        .await
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, seqs[18..]);
    store.close().await.expect("close");
    // The two never confirmed were written at close; the rest never.
    let conn = schema::connect(&config(&dir).path).expect("connect");
    let on_disk: Vec<u64> = conn
        .prepare("SELECT seq FROM events ORDER BY seq")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(on_disk, seqs[18..]);
}

#[tokio::test]
async fn held_telemetry_rides_with_the_next_commit_in_seq_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let sample = store.append(env(Class::Telemetry, 3)).await.expect("held");
    assert_eq!(rows_on_disk(&store, Class::Telemetry), 0);
    let access = store.append(env(Class::Access, 4)).await.expect("durable");
    assert!(sample < access);
    // The access event's commit wrote the held sample too.
    assert_eq!(rows_on_disk(&store, Class::Telemetry), 1);
    assert_eq!(rows_on_disk(&store, Class::Access), 1);
    let read: Vec<u64> = store
        .read_after(0, 10)
        .await
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(read, vec![sample, access]);
    store.close().await.expect("close");
}

#[tokio::test]
async fn numbers_given_to_held_samples_are_committed_every_few_hundred() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    let commits = || store.inner.shared.snapshot().commits;
    let before = commits();
    for i in 0..TELEMETRY_HOLD_MAX as usize - 1 {
        let last = store
            .append(env(Class::Telemetry, i % 7))
            .await
            .expect("held");
        store.ack_seqs(&[last]).await.expect("ack");
    }
    assert_eq!(commits(), before, "confirmed while held: nothing written");
    assert_eq!(rows_on_disk(&store, Class::Telemetry), 0);
    // The next number given makes them enough: one commit records the
    // high-water mark (and writes the one sample not yet confirmed).
    let last = store.append(env(Class::Telemetry, 1)).await.expect("held");
    // (The sample was answered before that commit: wait for it.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while commits() == before {
        assert!(Instant::now() < deadline, "no commit");
        tokio::task::yield_now().await;
    }
    assert_eq!(commits(), before + 1);
    assert_eq!(rows_on_disk(&store, Class::Telemetry), 1);
    let high: i64 = store
        .connect()
        .expect("connect")
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .expect("high-water mark");
    assert_eq!(high, last as i64);
    store.close().await.expect("close");
}

#[tokio::test]
async fn a_restart_never_gives_a_number_a_lost_sample_had() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    store.append(env(Class::Access, 1)).await.expect("durable");
    let mut given = Vec::new();
    for i in 0..10 {
        given.push(store.append(env(Class::Telemetry, i)).await.expect("held"));
    }
    // A power cut now: the file as it is on disk, without what is held.
    let copy = tempfile::tempdir().expect("tempdir");
    let cut = copy.path().join("gatehouse.db");
    for suffix in ["", "-wal"] {
        let from = format!("{}{suffix}", config(&dir).path.display());
        std::fs::copy(&from, format!("{}{suffix}", cut.display())).expect("copy");
    }
    store.close().await.expect("close");
    let (after_cut, _) = Store::open(StoreConfig {
        group_commit_window: Duration::ZERO,
        check_after: Duration::ZERO,
        ..StoreConfig::new(&cut)
    })
    .expect("open after the cut");
    assert_eq!(
        rows_on_disk(&after_cut, Class::Telemetry),
        0,
        "held samples lost"
    );
    let next = after_cut
        .append(env(Class::Access, 2))
        .await
        .expect("durable");
    assert!(given.iter().all(|&g| next > g), "{next} after {given:?}");
    after_cut.close().await.expect("close");
}

#[tokio::test]
async fn a_requeue_from_another_process_does_not_collide_with_held_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(config(&dir)).expect("open");
    store.append(env(Class::Access, 1)).await.expect("durable");
    let held = store.append(env(Class::Telemetry, 2)).await.expect("held");
    // Another connection appends with SQLite's own numbering: it takes
    // the number after the file's high-water mark, the held one's.
    let other = store.connect().expect("connect");
    let row = env(Class::Alarm, 3);
    other
        .execute(
            "INSERT INTO events (id, class, kind, device_id, time_ms, size, payload)
             VALUES (?1, 1, 'k', 'd', 0, 2, ?2)",
            rusqlite::params![
                row.id.to_string(),
                serde_json::to_string(&row).expect("json")
            ],
        )
        .expect("insert");
    assert_eq!(other.last_insert_rowid(), held as i64, "the same number");
    drop(other);
    // The next commit writes the held sample under a number of its own.
    let access = store.append(env(Class::Access, 4)).await.expect("durable");
    let read = store.read_after(0, 1_000).await.expect("read");
    let seqs: Vec<u64> = read.iter().map(|e| e.seq).collect();
    let mut unique = seqs.clone();
    unique.dedup();
    assert_eq!(seqs, unique, "no number twice");
    assert!(seqs.contains(&access));
    assert_eq!(
        read.iter().filter(|e| e.class == Class::Telemetry).count(),
        1,
        "the held sample was written: {seqs:?}"
    );
    store.close().await.expect("close");
}
