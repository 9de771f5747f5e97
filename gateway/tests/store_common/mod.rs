//! Shared helpers of the store's integration tests: envelopes, the writer
//! child process (the test binary re-invoked with `GATEHOUSE_STORE_CHILD`
//! set, which appends concurrently and prints `ACK <seq> <id>` after each
//! append returns, followed by `<image> <len> <fill>` when the event came
//! with a snapshot image saved beside it, as the device listener saves a
//! plate read's) and the checks that every acknowledged event, and every
//! image of one, survived.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use drivers::Class;
use drivers::lpr::{Image, ImageKind};
use gateway::lanes::images::ImageStore;
use gateway::metrics::Metrics;
use gateway::store::{Seq, Store, StoreConfig};
use gateway::wire::{Envelope, SCHEMA_VERSION};
use rand::Rng;
use uuid::Uuid;

/// Environment variable that turns the child entry test into the writer.
pub(crate) const CHILD_ENV: &str = "GATEHOUSE_STORE_CHILD";

/// The child stops by itself after this many appends (the parent kills it long before).
const CHILD_MAX_EVENTS: u64 = 50_000;

/// Concurrent appenders in the child, so group commits happen.
const CHILD_APPENDERS: usize = 8;

/// An envelope of `class` with a body of about `body_len` bytes.
pub(crate) fn envelope(class: Class, body_len: usize) -> Envelope {
    Envelope {
        schema: SCHEMA_VERSION,
        id: Uuid::now_v7(),
        seq: 0,
        time_ms: 1_764_000_000_000,
        clock_synced: true,
        device_time_ms: None,
        estate_id: "estate-1".into(),
        gateway_id: "gw-1".into(),
        device_id: "dev-1".into(),
        kind: "test".into(),
        class,
        body: serde_json::json!({ "pad": "x".repeat(body_len) }),
    }
}

/// The store file inside a data directory.
pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join("gatehouse.db")
}

/// A store configuration for `dir` with a large bound (nothing is shed).
pub(crate) fn config(dir: &Path) -> StoreConfig {
    StoreConfig::new(db_path(dir))
}

/// When this process is the writer child, appends until killed; otherwise returns at once.
pub(crate) fn child_main_if_requested() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create data dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (store, _) = Store::open(config(&dir)).expect("child opens the store");
        let images = ImageStore::open(
            images_dir(&dir),
            u64::MAX,
            std::sync::Arc::new(Metrics::new()),
        )
        .expect("child opens the image folder");
        let budget = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(CHILD_MAX_EVENTS));
        let mut tasks = Vec::new();
        for _ in 0..CHILD_APPENDERS {
            let store = store.clone();
            let images = images.clone();
            let budget = budget.clone();
            tasks.push(tokio::spawn(async move {
                while budget
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    )
                    .is_ok()
                {
                    let (class, len, image_len) = {
                        let mut rng = rand::rng();
                        let class = Class::ALL[rng.random_range(0..4)];
                        // Snapshots come with access events, never with
                        // telemetry (which is not acknowledged). Up to four
                        // 4 KiB blocks: partly written blocks are what a cut
                        // tests, and twenty cuts' images stay well inside
                        // the power-cut test's 64 MB disk.
                        let image_len = (class != Class::Telemetry && rng.random_bool(0.5))
                            .then(|| rng.random_range(1..16_000));
                        (class, rng.random_range(0..600), image_len)
                    };
                    let event = envelope(class, len);
                    let id = event.id;
                    let Some(image_len) = image_len else {
                        let seq = store.append(event).await.expect("child append");
                        // Telemetry is answered while it is held, not
                        // promised durable (`store::TELEMETRY_HOLD`): only
                        // the other classes' answers are acknowledgements.
                        if class != Class::Telemetry {
                            // println! writes whole lines to the (line-buffered) stdout.
                            println!("ACK {seq} {id}");
                        }
                        continue;
                    };
                    // As the device listener does: the image is saved while
                    // the event is stored, and acknowledged after both.
                    let fill = fill_for(id);
                    let image = Image {
                        kind: ImageKind::Full,
                        bytes: vec![fill; image_len],
                        content_type: "image/jpeg",
                    };
                    let (names, saving) = images.save_later(vec![image]);
                    let seq = store.append(event).await.expect("child append");
                    let written = saving.await.expect("image task");
                    assert_eq!(written, names, "child image saved");
                    if class != Class::Telemetry {
                        println!("ACK {seq} {id} {} {image_len} {fill}", names[0]);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("appender");
        }
        store.close().await.expect("close");
    });
}

/// The snapshot folder inside a data directory.
pub(crate) fn images_dir(dir: &Path) -> PathBuf {
    dir.join("images")
}

/// The byte an event's image is filled with (never 0, so a zeroed block
/// does not pass for it).
fn fill_for(id: Uuid) -> u8 {
    (id.as_u128() as u8) | 1
}

/// One acknowledgement the child printed.
#[derive(Debug, Clone)]
pub(crate) struct Ack {
    pub seq: Seq,
    pub id: Uuid,
    /// The event's image: its name in the image folder, length and fill byte.
    pub image: Option<(String, usize, u8)>,
}

/// Runs the writer child on `dir`, SIGKILLs it after `acks` acknowledgements
/// and returns every acknowledgement it printed (including ones printed
/// after the count was reached but before the kill landed).
pub(crate) fn run_child_and_kill(test_name: &str, dir: &Path, acks: usize) -> Vec<Ack> {
    let exe = std::env::current_exe().expect("current test binary");
    let mut child = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed = false;
    loop {
        if !killed && acked.len() >= acks {
            child.kill().expect("SIGKILL the child");
            killed = true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(ack) = parse_ack(&line) {
                    acked.push(ack);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!(
                    "child produced {} of {acks} ACKs before the deadline",
                    acked.len()
                );
            }
        }
    }
    let status = child.wait().expect("wait child");
    reader.join().expect("reader thread");
    assert!(
        killed,
        "child exited ({status}) after only {} of {acks} ACKs",
        acked.len()
    );
    acked
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let seq = parts.next()?.parse().ok()?;
    let id = parts.next()?.parse().ok()?;
    let image = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(len), Some(fill)) => {
            Some((name.to_owned(), len.parse().ok()?, fill.parse().ok()?))
        }
        _ => None,
    };
    Some(Ack { seq, id, image })
}

/// Checks that every acknowledged event's image is in `dir`'s image folder,
/// whole; returns how many were checked.
pub(crate) fn verify_images(dir: &Path, acked: &[Ack]) -> usize {
    let folder = images_dir(dir);
    let mut checked = 0;
    for ack in acked {
        let Some((name, len, fill)) = &ack.image else {
            continue;
        };
        let bytes = std::fs::read(folder.join(name))
            .unwrap_or_else(|e| panic!("image {name} of acknowledged event {}: {e}", ack.id));
        assert_eq!(
            bytes.len(),
            *len,
            "image {name} of event {} is short",
            ack.id
        );
        assert!(
            bytes.iter().all(|b| b == fill),
            "image {name} of event {} holds other bytes",
            ack.id
        );
        checked += 1;
    }
    checked
}

/// Every event in the store at `dir` (opening it as the gateway would).
pub(crate) fn read_all(dir: &Path) -> Vec<Envelope> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (store, report) = Store::open(config(dir)).expect("open after the cut");
        assert!(
            report.quarantined.is_none(),
            "store was quarantined after a cut: {report:?}"
        );
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = store.read_after(after, 10_000).await.expect("read");
            let Some(last) = page.last() else { break };
            after = last.seq;
            all.extend(page);
        }
        assert_eq!(all.len() as u64, report.depth);
        store.close().await.expect("close");
        all
    })
}

/// Checks the store against every acknowledgement so far; returns the highest stored seq.
pub(crate) fn verify(stored: &[Envelope], acked: &HashMap<Uuid, Seq>) -> Seq {
    let mut ids = HashSet::new();
    let mut by_id = HashMap::new();
    for e in stored {
        assert!(ids.insert(e.id), "event {} stored twice", e.id);
        by_id.insert(e.id, e.seq);
    }
    assert!(
        stored.windows(2).all(|w| w[0].seq < w[1].seq),
        "reads are in seq order"
    );
    let mut lost = 0;
    for (id, seq) in acked {
        match by_id.get(id) {
            Some(s) => assert_eq!(s, seq, "event {id} changed seq"),
            None => lost += 1,
        }
    }
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged events lost",
        acked.len()
    );
    stored.last().map_or(0, |e| e.seq)
}
