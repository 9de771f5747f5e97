//! Vehicle-lane figures, in release mode: `cargo bench -p gateway --bench lanes`.
//!
//! 1. Latency, measured from outside the gateway: the cameras and the
//!    barrier modules run on their own runtime (their own thread), as other
//!    machines on the estate's network would. Residents' reads are pushed at
//!    a steady `GATEHOUSE_BENCH_RATE` reads/s (default 30) across 8 lanes,
//!    `GATEHOUSE_BENCH_READS` of them (default 3,000). Two figures per read:
//!    - push → OPEN at the module: from the push's first byte to the
//!      moment the barrier simulator's OPEN coil write arrived over Modbus
//!      TCP (the barrier does not wait for the disk);
//!    - push → camera's reply: the reply comes only after the read is on
//!      disk (durable before acknowledged).
//!
//!    Between reads the car drives over the loop and the arm closes again
//!    (not timed).
//! 2. Throughput: 8 cameras pushing reads of unknown plates as fast as the
//!    gateway answers; every read must be in the store (zero loss).
//! 3. RSS with 10,000 residents' vehicles and 1,000 visitor passes loaded.
//!
//! `GATEHOUSE_BENCH_LOAD=N` runs the latency part next to N store-append
//! load threads on the same cores (each appending event-sized rows to its
//! own SQLite database, WAL, `synchronous=FULL`, one commit per row, as the
//! store writer does under a burst): the figure under load.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;

use drivers::PlateColour;
use drivers::lpr::Vendor;
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig, SimArm, SimCommand};
use drivers::sim::camera::CameraSim;
use gateway::lists::plates::ListKind;
use gateway::vocab::import::ImportMode;

use common::env_number;

const LANES: usize = 8;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn config(data_dir: &std::path::Path, barriers: &[SocketAddr]) -> String {
    let mut text = format!(
        "[gateway]\nestate_id = \"bench\"\ngateway_id = \"gw-bench\"\ndata_dir = \"{}\"\n\
         [panel]\nlisten = \"127.0.0.1:0\"\n[ingress]\nlisten = \"127.0.0.1:0\"\n\
         [store]\nmax_bytes = \"2GiB\"\n",
        data_dir.display()
    );
    for (i, addr) in barriers.iter().enumerate() {
        let _ = write!(
            text,
            "[[devices]]\nid = \"cam-{i}\"\ntype = \"lpr-camera\"\nvendor = \"vzenith\"\nlane = \"lane-{i}\"\n\
             [[devices]]\nid = \"barrier-{i}\"\ntype = \"modbus-barrier\"\naddress = \"{addr}\"\n\
             poll_interval = \"20ms\"\nauto_close_delay = \"1ms\"\nunused_close_after = \"0s\"\n\
             [[lanes]]\nid = \"lane-{i}\"\ndirection = \"entry\"\nbarrier = \"barrier-{i}\"\n\
             repeat_window = \"1ms\"\n"
        );
    }
    text
}

/// Polls `f` every millisecond (on the outside runtime, so the polling
/// takes nothing from the gateway's own workers but CPU).
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Background store-append load: `threads` writers appending until `stop`.
/// Returns their handles; each yields how many rows it committed.
fn load_generator(
    dir: &std::path::Path,
    threads: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<u64>> {
    (0..threads)
        .map(|i| {
            let path = dir.join(format!("load-{i}.db"));
            let stop = stop.clone();
            std::thread::spawn(move || {
                let conn = rusqlite::Connection::open(path).expect("load database");
                conn.execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                     CREATE TABLE IF NOT EXISTS q (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);",
                )
                .expect("load schema");
                let mut rows = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = serde_json::json!({
                        "kind": "point_value", "point": format!("p{rows}"), "value": rows as f64 / 7.0,
                        "unit": "m", "pad": "x".repeat(200),
                    })
                    .to_string();
                    conn.execute("INSERT INTO q (body) VALUES (?1)", [body])
                        .expect("load insert");
                    rows += 1;
                }
                rows
            })
        })
        .collect()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        millis(percentile(samples, 0.50)),
        millis(percentile(samples, 0.99)),
        millis(samples.last().copied().unwrap_or_default())
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let load_threads: usize = env_number("GATEHOUSE_BENCH_LOAD", 0);
    let reads: usize = env_number("GATEHOUSE_BENCH_READS", 3_000);
    let rate: f64 = env_number("GATEHOUSE_BENCH_RATE", 30.0);
    // The estate's other machines: cameras and barrier modules.
    let outside = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("outside")
        .enable_all()
        .build()
        .expect("outside runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sims = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..LANES {
        let (addr, sim) = outside
            .spawn(BarrierSim::spawn_tcp(BarrierSimConfig {
                rise: Duration::ZERO,
                fall: Duration::ZERO,
                ..BarrierSimConfig::default()
            }))
            .await
            .expect("outside runtime")
            .expect("barrier simulator");
        addrs.push(addr);
        sims.push(sim);
    }
    let text = config(&dir.path().join("data"), &addrs);
    let config = gateway::config::parse(&text, "bench.toml").expect("bench config");
    let running = gateway::app::start(config).await.expect("gateway starts");

    // Lists: 10,000 residents, 1,000 visitor passes.
    let rss_before = rss_kib();
    let plates = running.plates.clone();
    tokio::task::spawn_blocking(move || {
        let mut csv = String::from("plate,house,owner,valid_from,valid_to,lanes\n");
        for i in 0..10_000 {
            let _ = writeln!(
                csv,
                "苏A{i:05},{}-{}-{},业主{i},,,",
                i % 30,
                i % 6,
                100 + i % 900
            );
        }
        plates
            .import_csv(
                ListKind::Residents,
                csv.as_bytes(),
                ImportMode::AllOrNothing,
                |_| {},
            )
            .expect("residents");
        let mut csv = String::from("plate,host_unit,valid_from,valid_to,single_use\n");
        for i in 0..1_000 {
            let _ = writeln!(csv, "浙B{i:05},1-1-101,2026-01-01,2099-12-31,no");
        }
        plates
            .import_csv(
                ListKind::Visitors,
                csv.as_bytes(),
                ImportMode::AllOrNothing,
                |_| {},
            )
            .expect("visitors");
    })
    .await
    .expect("lists");
    let rss_lists = rss_kib();

    let ingress = running.ingress_addr.expect("device listener");
    let base = format!("http://{ingress}");

    // 1. Latency, 8 lanes, one car at a time per lane, the lanes' reads
    // spread evenly at `rate` reads/s in all; optionally next to the
    // store-append load.
    let stop_load = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = load_generator(dir.path(), load_threads, &stop_load);
    let load_started = Instant::now();
    let per_lane = reads.div_ceil(LANES);
    let period = Duration::from_secs_f64(LANES as f64 / rate);
    let mut tasks = Vec::new();
    for (lane, sim) in sims.iter().cloned().enumerate() {
        let board = running.board.clone();
        let camera =
            CameraSim::new(&base, &format!("cam-{lane}"), Vendor::Vzenith).expect("camera");
        let first = Instant::now() + period.mul_f64(lane as f64 / LANES as f64);
        tasks.push(outside.spawn(async move {
            let mut to_open = Vec::with_capacity(per_lane);
            let mut to_reply = Vec::with_capacity(per_lane);
            let mut next = tokio::time::Instant::from_std(first);
            for k in 0..per_lane {
                tokio::time::sleep_until(next).await;
                next += period;
                let plate = format!("苏A{:05}", (lane * per_lane + k) % 10_000);
                wait_until("the arm to close", || sim.arm() == SimArm::Closed).await;
                let before = sim.command_times().len();
                let mut commands = sim.commands_watch();
                let t0 = Instant::now();
                let reply = camera
                    .push_plate(&plate, PlateColour::Blue, 95)
                    .await
                    .expect("push");
                to_reply.push(t0.elapsed());
                assert_eq!(reply.status, 200);
                commands
                    .wait_for(|count| *count > before)
                    .await
                    .expect("the simulator is running");
                let (command, at) = sim.command_times()[before];
                assert_eq!(command, SimCommand::Open, "a resident's read opens");
                to_open.push(at.saturating_duration_since(t0));
                // The car passes; the arm closes (not timed).
                sim.vehicle_arrives();
                let lane_id = format!("lane-{lane}");
                wait_until("the gateway to see the car on the loop", || {
                    board.lane(&lane_id).and_then(|l| l.loop_occupied) == Some(true)
                })
                .await;
                sim.vehicle_leaves();
            }
            (to_open, to_reply)
        }));
    }
    let mut to_open = Vec::new();
    let mut to_reply = Vec::new();
    for task in tasks {
        let (open, reply) = task.await.expect("lane task");
        to_open.extend(open);
        to_reply.extend(reply);
    }
    let latency_took = load_started.elapsed();
    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    let load_rows: u64 = load
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .sum();
    let load_rate = load_rows as f64 / latency_took.as_secs_f64();

    // 2. Throughput: unknown plates (the guard is asked; no barrier cycle).
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..LANES {
        let camera =
            CameraSim::new(&base, &format!("cam-{lane}"), Vendor::Vzenith).expect("camera");
        tasks.push(outside.spawn(async move {
            for k in 0..per_lane {
                let plate = format!("京C{:05}", lane * per_lane + k);
                let reply = camera
                    .push_plate(&plate, PlateColour::Blue, 95)
                    .await
                    .expect("push");
                assert_eq!(reply.status, 200);
            }
        }));
    }
    for task in tasks {
        task.await.expect("camera task");
    }
    let elapsed = started.elapsed();
    let rss_end = rss_kib();
    let pushed = per_lane * LANES;
    let events = running.store.read_after(0, 10_000_000).await.expect("read");
    let stored = events
        .iter()
        .filter(|e| {
            e.kind == "plate_read"
                && e.body["plate"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("京C"))
        })
        .count();
    println!(
        "lanes: {LANES}, reads timed: {} at {:.1} reads/s; background load: {load_threads} store-append thread(s), {load_rate:.0} commits/s",
        to_open.len(),
        to_open.len() as f64 / latency_took.as_secs_f64()
    );
    println!(
        "plate push -> OPEN at the module: {}",
        summary(&mut to_open)
    );
    println!(
        "plate push -> camera's reply (read on disk): {}",
        summary(&mut to_reply)
    );
    println!(
        "sustained: {pushed} reads over {LANES} lanes in {:.2} s = {:.0} reads/s; stored {stored} of {pushed} (lost {})",
        elapsed.as_secs_f64(),
        pushed as f64 / elapsed.as_secs_f64(),
        pushed.saturating_sub(stored)
    );
    println!(
        "RSS: {} MiB before lists, {} MiB with 10,000 residents + 1,000 visitor passes, {} MiB after all reads",
        rss_before / 1024,
        rss_lists / 1024,
        rss_end / 1024
    );
    assert!(running.shutdown().await.is_clean());
    outside.shutdown_background();
}
