//! Disk wear, measured at the block device (a plain main, not a timed test):
//! `sudo -E cargo bench -p gateway --bench wear` (root: it makes an ext4
//! filesystem on a loop device).
//!
//! Every scenario runs the store on a fresh directory of that filesystem and
//! counts the sectors the loop device wrote (`/sys/block/loopN/stat`, field
//! 7), the filesystem synced before each reading, so the WAL, its
//! checkpoints into the database file and ext4's own journal all count, as
//! they would on an SD card. Each scenario's work runs several times on one
//! open store: the first run is counted from before the open (a start: the WAL
//! file grows from nothing); then it runs until the WAL has gone round once,
//! and the next run is counted on its own (the steady state of a gateway
//! that has been running: the WAL's blocks are reused):
//!
//! - a lone access event: appended (durable before the append returns), then
//!   acknowledged as a live uplink does (at once, in a task of its own),
//!   one at a time;
//! - access events at 100/s from concurrent producers, acked in batches
//!   every 100 ms as a live uplink does;
//! - telemetry at 10 samples/s from one device, acked every second;
//! - telemetry at 10 samples/s with the platform unreachable (nothing acked).
//!
//! - the demo estate (`gatehouse demo`, its data directory on the device)
//!   left running, after a minute to settle: bytes a day, extrapolated.
//!
//! From these it works out a large estate's day (3,000 households: 5,000
//! vehicle passes, 15,000 door presentations, 200 telemetry points every
//! 10 s) and how long a 32 GB card lasts at each rate, taking a typical
//! consumer card's endurance as 1,000 writes of its whole capacity.
//!
//! `GATEHOUSE_WEAR_SECONDS` (default 20) sets how long the paced scenarios
//! run, `GATEHOUSE_WEAR_DEMO_SECONDS` (default 600) the demo's window.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use drivers::Class;
use gateway::store::{Store, StoreConfig};
use gateway::wire::{Envelope, SCHEMA_VERSION};
use uuid::Uuid;

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// An ext4 filesystem on a loop device, undone on drop.
struct Device {
    dev: String,
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl Device {
    fn new() -> anyhow::Result<Device> {
        let dir = tempfile::tempdir_in("/var/tmp")?;
        let image = dir.path().join("wear.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount)?;
        run("truncate", &["-s", "512M", &image.to_string_lossy()])?;
        run("mkfs.ext4", &["-q", "-F", &image.to_string_lossy()])?;
        let dev = run("losetup", &["--find", "--show", &image.to_string_lossy()])?;
        if let Err(e) = run("mount", &["-t", "ext4", &dev, &mount.to_string_lossy()]) {
            let _ = run("losetup", &["-d", &dev]);
            return Err(e);
        }
        Ok(Device {
            dev,
            mount,
            _dir: dir,
        })
    }

    /// Bytes the device has written so far, after syncing the filesystem.
    fn written(&self) -> anyhow::Result<u64> {
        run("sync", &["-f", &self.mount.to_string_lossy()])?;
        let name = Path::new(&self.dev)
            .file_name()
            .context("device name")?
            .to_string_lossy()
            .into_owned();
        let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat"))?;
        let sectors: u64 = stat
            .split_whitespace()
            .nth(6)
            .context("stat field 7")?
            .parse()?;
        Ok(sectors * 512)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = run("umount", &[&self.mount.to_string_lossy()]);
        let _ = run("losetup", &["-d", &self.dev]);
    }
}

fn envelope(class: Class, kind: &str, device: &str, body: serde_json::Value) -> Envelope {
    Envelope {
        schema: SCHEMA_VERSION,
        id: Uuid::now_v7(),
        seq: 0,
        time_ms: drivers::contract::now_ms(),
        clock_synced: true,
        device_time_ms: None,
        estate_id: "estate-0042".into(),
        gateway_id: "gw-0042-a".into(),
        device_id: device.into(),
        kind: kind.into(),
        class,
        body,
    }
}

fn plate_read(i: u64) -> Envelope {
    envelope(
        Class::Access,
        "plate_read",
        "cam-south-in",
        serde_json::json!({
            "plate": format!("浙A{:05}", i % 100_000), "confidence": 96, "color": "blue",
            "read_id": format!("r{i}"), "images": [format!("cam-south-in/{i}.jpg")],
            "lane": "south-in", "direction": "entry", "decision": "allow",
            "reason": {"code": "resident", "house": "3-2-1201"}, "open_via": "barrier",
        }),
    )
}

fn sample(i: u64) -> Envelope {
    envelope(
        Class::Telemetry,
        "point_value",
        "tank-1",
        serde_json::json!({"point": "level", "value": (i % 1000) as f64 / 100.0, "unit": "m"}),
    )
}

/// The WAL's size once it has gone round: SQLite checkpoints and starts it
/// again from its beginning after 1,000 pages (`wal_autocheckpoint`).
const WAL_CYCLE_BYTES: u64 = 1000 * 4096;

fn wal_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("gatehouse.db-wal")).map_or(0, |m| m.len())
}

/// Bytes written per event (or sample): after a start, and steady.
struct Wear {
    start: u64,
    steady: u64,
}

/// Opens a store in a fresh directory of the device and runs `work` (which
/// returns how many events it made) twice; the bytes the device wrote per
/// event for the first run (from before the open) and for the second.
async fn measure<F, Fut>(device: &Device, name: &str, work: F) -> anyhow::Result<Wear>
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let dir = device.mount.join(name);
    std::fs::create_dir_all(&dir)?;
    // The empty database exists first: its creation is not what is measured.
    let (store, _) = Store::open(StoreConfig::new(dir.join("gatehouse.db")))?;
    store.close().await?;
    drop(store);
    let before = device.written()?;
    let (store, _) = Store::open(StoreConfig::new(dir.join("gatehouse.db")))?;
    let first = work(store.clone()).await?;
    // Until the WAL has gone round once (checkpointed and restarted from
    // its beginning), as in a gateway that has been running a while.
    for _ in 0..20 {
        if wal_bytes(&dir) >= WAL_CYCLE_BYTES {
            break;
        }
        work(store.clone()).await?;
    }
    let middle = device.written()?;
    let second = work(store.clone()).await?;
    let after = device.written()?;
    store.close().await?;
    Ok(Wear {
        start: (middle - before) / first.max(1),
        steady: (after - middle) / second.max(1),
    })
}

/// Runs the demo estate with its data directory on the device; the bytes
/// the device wrote over `seconds` (after a minute to settle), a day.
fn demo_per_day(device: &Device, seconds: u64) -> anyhow::Result<u64> {
    let dir = device.mount.join("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("GATEHOUSE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting gatehouse demo")?;
    std::thread::sleep(Duration::from_secs(60));
    let before = device.written()?;
    std::thread::sleep(Duration::from_secs(seconds));
    let after = device.written()?;
    run("kill", &["-TERM", &child.id().to_string()])?;
    child.wait()?;
    Ok((after - before) * 86_400 / seconds.max(1))
}

/// Years a 32 GB card of typical endurance (1,000 writes of its capacity)
/// lasts at `per_day` bytes a day.
fn card_years(per_day: u64) -> f64 {
    32e9 * 1000.0 / (per_day.max(1) as f64 * 365.0)
}

/// Acks everything readable every `every`, as a live uplink does, until `stop`.
async fn uplink(store: Store, every: Duration, stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let done = *stop.borrow();
        if let Ok(events) = store.read_after(0, 10_000).await {
            let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
            let _ = store.ack_seqs(&seqs).await;
        }
        if done {
            return;
        }
    }
}

/// Runs `per_tick` every `period` for `seconds`, with the uplink acking.
async fn paced(
    store: Store,
    seconds: u64,
    period: Duration,
    ack_every: Option<Duration>,
    make: fn(u64) -> Envelope,
) -> anyhow::Result<u64> {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let acker = ack_every.map(|every| tokio::spawn(uplink(store.clone(), every, stop)));
    let mut tick = tokio::time::interval(period);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0u64;
    let mut pending = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        // Each producer waits for its own acknowledgement, concurrently.
        let store = store.clone();
        let i = n;
        pending.push(tokio::spawn(async move { store.append(make(i)).await }));
        n += 1;
    }
    for p in pending {
        p.await??;
    }
    let _ = stop_tx.send(true);
    if let Some(acker) = acker {
        acker.await?;
    }
    Ok(n)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("GATEHOUSE_WEAR_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let device = match Device::new() {
        Ok(device) => device,
        Err(e) => {
            eprintln!("SKIPPED wear bench: {e:#} (needs root, loop devices, mkfs.ext4)");
            return Ok(());
        }
    };
    let mut rows = Vec::new();

    let lone = 300u64;
    let wear = measure(&device, "lone", |store| async move {
        // One event at a time (a read every 20 ms stands for one every few
        // seconds: each is on disk before the next), each acked as soon as
        // it is stored, as a live uplink does.
        let mut acks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..lone {
            tick.tick().await;
            let seq = store.append(plate_read(i)).await?;
            let store = store.clone();
            acks.spawn(async move { store.ack_seqs(&[seq]).await });
        }
        store.commit_acks().await?;
        while let Some(acked) = acks.join_next().await {
            acked??;
        }
        Ok(lone)
    })
    .await?;
    rows.push((
        "lone access event (append, fsync, then its ack)",
        wear,
        "per event",
    ));

    let wear = measure(&device, "access-100", |store| {
        paced(
            store,
            seconds,
            Duration::from_millis(10),
            Some(Duration::from_millis(100)),
            plate_read,
        )
    })
    .await?;
    rows.push((
        "access events at 100/s, acked every 100 ms",
        wear,
        "per event",
    ));

    let wear = measure(&device, "telemetry-10", |store| {
        paced(
            store,
            seconds,
            Duration::from_millis(100),
            Some(Duration::from_secs(1)),
            sample,
        )
    })
    .await?;
    rows.push(("telemetry at 10/s, acked every second", wear, "per sample"));

    let wear = measure(&device, "telemetry-offline", |store| {
        paced(store, seconds, Duration::from_millis(100), None, sample)
    })
    .await?;
    rows.push((
        "telemetry at 10/s, platform unreachable",
        wear,
        "per sample",
    ));

    let demo_seconds: u64 = std::env::var("GATEHOUSE_WEAR_DEMO_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let demo = {
        let device = &device;
        tokio::task::block_in_place(|| demo_per_day(device, demo_seconds))?
    };
    // A large estate's day, from the steady figures: every pass and
    // presentation a lone access event, telemetry at 20 samples/s.
    let lone_steady = rows[0].1.steady;
    let telemetry_steady = rows[2].1.steady;
    let large = (5_000 + 15_000) * lone_steady + 20 * 86_400 * telemetry_steady;

    println!(
        "| scenario ({seconds} s paced runs) | bytes at the block device, after a start | steady | |"
    );
    println!("| --- | ---: | ---: | --- |");
    for (what, wear, per) in rows {
        println!("| {what} | {} | {} | {per} |", wear.start, wear.steady);
    }
    println!();
    println!("| a day | bytes written | a 32 GB card lasts |");
    println!("| --- | ---: | ---: |");
    println!(
        "| the demo estate ({demo_seconds} s measured) | {demo} | {:.1} years |",
        card_years(demo)
    );
    println!(
        "| a large estate (5,000 passes, 15,000 presentations, 200 points / 10 s) | {large} | {:.1} years |",
        card_years(large)
    );
    Ok(())
}
