//! A full data disk, on a real filesystem of the test's own (a small tmpfs,
//! `testkit::disk`): the store opens on a disk filled after a clean stop,
//! refuses new events while the disk is full (never a false success),
//! still reads what it holds, and writes again without a reopen once space
//! returns; no acknowledged event is lost, and the outage is reported with
//! its refusals per class. Needs root (mount); skipped with a note
//! otherwise, failed under `GATEHOUSE_REQUIRE_PEERS=1`.

mod store_common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use drivers::Class;
use gateway::auth::{Auth, LockoutPolicy, LoginOutcome, Role, SessionPolicy};
use gateway::store::space::RESERVE_BYTES;
use gateway::store::{Availability, Store, StoreError};
use store_common::{config, envelope, read_all};
use testkit::disk::SmallDisk;
use uuid::Uuid;

/// The test filesystem: room for the database, its reserve and some events.
const DISK_BYTES: u64 = 32 << 20;

/// How long a condition may take to come true.
const DEADLINE: Duration = Duration::from_secs(10);

fn reserve(dir: &Path) -> std::path::PathBuf {
    dir.join("gatehouse.db.reserve")
}

/// Appends `n` access events; returns their ids (each acknowledged).
async fn append_acked(store: &Store, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let event = envelope(Class::Access, 200);
        let id = event.id;
        store
            .append(event)
            .await
            .expect("append on a disk with room");
        ids.push(id);
    }
    ids
}

/// The ids of every event stored in `dir` (the store reopened).
async fn stored_ids(dir: &Path) -> Vec<Uuid> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || read_all(&dir).into_iter().map(|e| e.id).collect())
        .await
        .expect("read the store")
}

/// The panel's login service over the store.
fn auth(store: &Store) -> Auth {
    Auth::new(
        store.connect().expect("connect"),
        SessionPolicy {
            idle: Duration::from_secs(600),
            absolute: Duration::from_secs(3600),
        },
        LockoutPolicy {
            user_failures: 3,
            address_failures: 100,
            duration: Duration::from_secs(900),
        },
    )
}

/// Waits (on the store's availability, with a deadline) until it writes again.
async fn until_available(store: &Store) {
    let mut availability = store.availability();
    tokio::time::timeout(
        DEADLINE,
        availability.wait_for(|a| *a == Availability::Available),
    )
    .await
    .expect("the store writes again within the deadline")
    .expect("store open");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_opens_on_a_full_disk_and_writes_again_when_space_returns() {
    let Some(disk) = SmallDisk::mount_or_skip(DISK_BYTES) else {
        return;
    };
    let dir = disk.path();
    let (store, report) = Store::open(config(dir)).expect("open");
    assert!(!report.disk_full);
    assert_eq!(
        std::fs::metadata(reserve(dir)).expect("the reserve").len(),
        RESERVE_BYTES,
        "the reserve is written at open when there is room"
    );
    let mut acked = append_acked(&store, 50).await;
    store.close().await.expect("clean stop");
    drop(store);
    assert!(
        dir.join("gatehouse.db-shm").exists(),
        "a clean stop keeps the -shm file, so the next open needs no new space"
    );
    assert_eq!(
        std::fs::metadata(dir.join("gatehouse.db-wal"))
            .expect("the -wal file is kept")
            .len(),
        0,
        "a clean stop leaves the WAL empty"
    );

    let filler = disk.fill();
    assert!(disk.free_bytes() < 4096, "the disk is full");
    let (store, report) = Store::open(config(dir)).expect("the store opens on a full disk");
    assert!(report.disk_full, "the open says the disk was full");
    assert!(
        !reserve(dir).exists(),
        "the reserve was given back to open the database"
    );
    assert!(matches!(
        *store.availability().borrow(),
        Availability::DiskFull { .. }
    ));
    assert!(!store.is_available());

    // New events are refused, counted by class; nothing is acknowledged.
    for class in [Class::Access, Class::Access, Class::Alarm, Class::Telemetry] {
        let refused = store.append(envelope(class, 200)).await;
        assert!(
            matches!(refused, Err(StoreError::DiskFull)),
            "a {class:?} event on a full disk: {refused:?}"
        );
    }
    let stats = store.stats();
    assert_eq!(stats.dropped[Class::Access.index()], 2);
    assert_eq!(stats.dropped[Class::Alarm.index()], 1);
    assert_eq!(stats.dropped[Class::Telemetry.index()], 1);
    // What it holds is still read.
    let held = store
        .read_after(0, 1000)
        .await
        .expect("reads on a full disk");
    assert_eq!(held.len(), acked.len());

    filler.free();
    until_available(&store).await;
    assert_eq!(
        std::fs::metadata(reserve(dir))
            .expect("the reserve is back")
            .len(),
        RESERVE_BYTES
    );
    let outages = store.take_outages();
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0].reason, "disk full");
    assert_eq!(outages[0].refused, [2, 1, 0, 1]);
    assert!(outages[0].until_ms >= outages[0].since_ms);
    acked.extend(append_acked(&store, 10).await);
    store.close().await.expect("close");
    drop(store);

    let stored: HashSet<Uuid> = stored_ids(dir).await.into_iter().collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged event {id} lost");
    }
    assert_eq!(stored.len(), acked.len(), "no refused event was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_never_had_its_reserve_opens_on_a_full_disk() {
    let Some(disk) = SmallDisk::mount_or_skip(DISK_BYTES) else {
        return;
    };
    let dir = disk.path();
    let (store, _) = Store::open(config(dir)).expect("open");
    let acked = append_acked(&store, 20).await;
    auth(&store)
        .add_user("wang", Role::Guard, "a long password")
        .await
        .expect("a guard");
    store.close().await.expect("clean stop");
    drop(store);
    // As a disk that never had room for the reserve (or a store from
    // before it) leaves the data directory.
    std::fs::remove_file(reserve(dir)).expect("no reserve");
    let filler = disk.fill();
    assert!(disk.free_bytes() < 4096, "the disk is full");

    let (store, report) = Store::open(config(dir))
        .expect("the store opens on a full disk with no reserve to give back");
    assert!(report.disk_full, "the open says the disk is full");
    assert!(!store.is_available());
    assert!(matches!(
        store.append(envelope(Class::Access, 200)).await,
        Err(StoreError::DiskFull)
    ));
    let held = store
        .read_after(0, 1000)
        .await
        .expect("reads on a full disk");
    assert_eq!(
        held.iter().map(|e| e.id).collect::<Vec<_>>(),
        acked,
        "every acknowledged event is there"
    );
    // The guard logs in (the session row cannot be written: it is held).
    let panel = auth(&store);
    let cookie = match panel.login("wang", "a long password", None).await {
        Ok(LoginOutcome::Ok { cookie, .. }) => cookie,
        other => panic!("a guard must be able to log in on a full disk: {other:?}"),
    };
    assert_eq!(panel.held_sessions().await.expect("held"), 1);
    assert!(
        panel
            .session(&cookie, true)
            .await
            .expect("lookup")
            .is_some()
    );

    filler.free();
    until_available(&store).await;
    assert!(
        reserve(dir).exists(),
        "the reserve is written once there is room"
    );
    store
        .append(envelope(Class::Access, 200))
        .await
        .expect("stores again");
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_that_fills_while_the_store_runs_refuses_then_recovers_losing_nothing() {
    let Some(disk) = SmallDisk::mount_or_skip(DISK_BYTES) else {
        return;
    };
    let dir = disk.path();
    let (store, _) = Store::open(config(dir)).expect("open");
    let mut acked = append_acked(&store, 20).await;
    let filler = disk.fill();

    // Append until the disk says no: every success is on disk (checked
    // after the reopen below), the first refusal is a full disk.
    let mut refused = 0u64;
    for _ in 0..100_000 {
        let event = envelope(Class::Access, 2000);
        let id = event.id;
        match store.append(event).await {
            Ok(_) => acked.push(id),
            Err(StoreError::DiskFull) => {
                refused += 1;
                break;
            }
            Err(other) => panic!("a full disk must read as such: {other}"),
        }
    }
    assert_eq!(refused, 1, "the disk never filled");
    assert!(!store.is_available(), "the store says the disk is full");
    assert!(
        !reserve(dir).exists(),
        "the reserve was given back to SQLite"
    );
    // While full, refusals do not touch the disk, and confirmed events are
    // still deleted (that is how a platform drains a full gateway).
    for _ in 0..100 {
        assert!(matches!(
            store.append(envelope(Class::Audit, 100)).await,
            Err(StoreError::DiskFull)
        ));
        refused += 1;
    }
    let first = store.read_after(0, 1).await.expect("read")[0].seq;
    assert_eq!(store.ack(first).await.expect("an ack on a full disk"), 1);
    acked.remove(0);
    let refused_list = store.write_blocking(|tx| {
        tx.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')", [])
            .map_err(StoreError::from)
    });
    assert!(
        matches!(refused_list, Err(StoreError::DiskFull)),
        "list writes are refused too: {refused_list:?}"
    );

    filler.free();
    until_available(&store).await;
    let outage = store.take_outages().pop().expect("the outage is reported");
    assert_eq!(
        outage.refused[Class::Access.index()] + outage.refused[Class::Audit.index()],
        refused
    );
    assert_eq!(outage.writes_refused, 1);
    acked.extend(append_acked(&store, 10).await);
    store.close().await.expect("close");
    drop(store);

    let stored = stored_ids(dir).await;
    let stored_set: HashSet<Uuid> = stored.iter().copied().collect();
    for id in &acked {
        assert!(stored_set.contains(id), "acknowledged event {id} lost");
    }
    assert_eq!(
        stored.len(),
        acked.len(),
        "only acknowledged events are stored"
    );
}
