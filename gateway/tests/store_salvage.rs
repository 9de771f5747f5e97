//! A damaged database is salvaged, not thrown away: random pages of a
//! closed store (a queue of acknowledged events, their journal, a resident
//! list) are overwritten with garbage, 20 times; each time the store must
//! open (quarantining the file), and every row it salvaged must be an
//! original, intact, under its original sequence number, with the counts
//! salvaged and lost per table reported. Over the 20 runs nearly every row
//! must come back.

mod store_common;

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};

use drivers::Class;
use gateway::store::{Integrity, OpenReport, Store, StoreConfig};
use rand::{Rng, SeedableRng};
use store_common::{db_path, envelope};

const RUNS: usize = 20;
const EVENTS: usize = 2_000;
const RESIDENTS: usize = 300;
const DAMAGED_PAGES: usize = 4;
const PAGE: u64 = 4096;

/// Opens a damaged file as the gateway meets it: the open itself may hit
/// the damage (and quarantine at once); otherwise the check after open
/// finds it, the gateway restarts, and the next open salvages.
async fn open_damaged(path: &std::path::Path) -> (Store, OpenReport) {
    let config = StoreConfig {
        check_after: std::time::Duration::ZERO,
        ..StoreConfig::new(path)
    };
    let (store, report) = Store::open(config).expect("opens anyway");
    if report.quarantined.is_some() {
        return (store, report);
    }
    match store.checked().await {
        Integrity::Damaged(_) => {
            store.close().await.expect("close");
            drop(store);
            let (store, report) = Store::open(StoreConfig::new(path)).expect("reopens");
            assert!(report.quarantined.is_some(), "the restart salvages");
            (store, report)
        }
        Integrity::Ok => (store, report),
        other => panic!("the check did not finish: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_pages_cost_only_their_rows() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x05a1_7a6e);
    let (mut written, mut salvaged_total) = (0usize, 0usize);
    for run in 0..RUNS {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(dir.path());
        let (store, _) = Store::open(StoreConfig::new(&path)).expect("open");
        let mut originals = HashMap::new();
        for chunk in 0..EVENTS / 100 {
            let batch: Vec<_> = (0..100)
                .map(|_| envelope(Class::Access, 120 + chunk))
                .collect();
            let results = store.submit(batch.clone()).wait().await;
            for (env, seq) in batch.into_iter().zip(results) {
                originals.insert(seq.expect("stored"), env);
            }
        }
        let list = store.clone();
        tokio::task::spawn_blocking(move || {
            list.write_blocking(|tx| {
                for i in 0..RESIDENTS {
                    tx.execute(
                        "INSERT INTO resident_vehicles (plate, house, owner, updated_ms)
                         VALUES (?1, '3-2-1201', 'owner', 0)",
                        [format!("浙A{i:05}")],
                    )?;
                }
                Ok::<_, gateway::store::StoreError>(())
            })
        })
        .await
        .expect("join")
        .expect("residents");
        store.close().await.expect("close");
        drop(store);

        let pages = std::fs::metadata(&path).expect("meta").len() / PAGE;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open db");
        for _ in 0..DAMAGED_PAGES {
            // Page 1 holds the schema: without it nothing is a database.
            let page = rng.random_range(1..pages);
            let garbage: Vec<u8> = (0..PAGE).map(|_| rng.random()).collect();
            file.seek(SeekFrom::Start(page * PAGE)).expect("seek");
            file.write_all(&garbage).expect("damage");
        }
        file.sync_all().expect("sync");
        drop(file);

        let (store, report) = open_damaged(&path).await;
        let events = store
            .read_after(0, EVENTS * 2)
            .await
            .expect("salvaged queue reads");
        for env in &events {
            let original = originals
                .get(&env.seq)
                .expect("a salvaged seq is an original");
            assert_eq!(
                env.id, original.id,
                "run {run}: seq {} kept its event",
                env.seq
            );
            assert_eq!(env.body, original.body, "run {run}: intact body");
        }
        let residents: i64 = store
            .connect()
            .expect("connect")
            .query_row("SELECT count(*) FROM resident_vehicles", [], |r| r.get(0))
            .expect("count");
        match &report.quarantined {
            Some(q) => {
                let table = |name: &str| {
                    q.salvaged
                        .iter()
                        .find(|t| t.table == name)
                        .unwrap_or_else(|| panic!("run {run}: {name} in the report"))
                };
                let ev = table("events");
                assert_eq!(
                    ev.salvaged as usize,
                    events.len(),
                    "run {run}: reported count"
                );
                assert!(
                    ev.salvaged + ev.lost >= EVENTS as u64,
                    "run {run}: every event salvaged or counted lost: {ev:?}"
                );
                assert_eq!(table("resident_vehicles").salvaged as i64, residents);
                assert!(table("journal").salvaged > 0, "run {run}: journal salvaged");
                eprintln!(
                    "run {run}: {}",
                    q.salvaged
                        .iter()
                        .filter(|t| t.salvaged + t.lost > 0)
                        .map(|t| format!("{} {}+{}", t.table, t.salvaged, t.lost))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // The garbage landed on free or unused space.
            None => assert_eq!(events.len(), EVENTS, "run {run}: undamaged queue"),
        }
        // New events continue the sequence.
        let max = events.iter().map(|e| e.seq).max().unwrap_or(0);
        let next = store
            .append(envelope(Class::Alarm, 10))
            .await
            .expect("append");
        assert!(next > max, "run {run}: seq {next} after {max}");
        written += EVENTS + RESIDENTS;
        salvaged_total += events.len() + residents as usize;
        store.close().await.expect("close");
    }
    eprintln!("salvaged {salvaged_total} of {written} rows over {RUNS} runs");
    assert!(
        salvaged_total * 100 >= written * 90,
        "salvaged {salvaged_total} of {written}"
    );
}
