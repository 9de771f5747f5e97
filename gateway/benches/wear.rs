//! Disk wear, measured at the block device (a plain main, not a timed test):
//! `sudo -E cargo bench -p gateway --bench wear` (root: it makes an ext4
//! filesystem on a loop device).
//!
//! Every scenario runs the store on a fresh directory of that filesystem and
//! counts the sectors the loop device wrote (`/sys/block/loopN/stat`, field
//! 7) from before the store opens until after it is closed and the
//! filesystem synced, so the WAL, its checkpoints into the database file and
//! ext4's own journal all count, as they would on an SD card:
//!
//! - a lone access event: appended (durable before the append returns), then
//!   acknowledged by the uplink, one at a time;
//! - access events at 100/s from concurrent producers, acked in batches
//!   every 100 ms as a live uplink does;
//! - telemetry at 10 samples/s from one device, acked every second;
//! - telemetry at 10 samples/s with the platform unreachable (nothing acked).
//!
//! `GATEHOUSE_WEAR_SECONDS` (default 20) sets how long the paced scenarios run.

use std::path::{Path, PathBuf};
use std::process::Command;
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

/// Opens a store in a fresh directory of the device; returns the bytes the
/// device wrote for `work`, from before the open to after the close.
async fn measure<F, Fut>(device: &Device, name: &str, work: F) -> anyhow::Result<u64>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let dir = device.mount.join(name);
    std::fs::create_dir_all(&dir)?;
    // The empty database exists first: its creation is not what is measured.
    let (store, _) = Store::open(StoreConfig::new(dir.join("gatehouse.db")))?;
    store.close().await?;
    drop(store);
    let before = device.written()?;
    let (store, _) = Store::open(StoreConfig::new(dir.join("gatehouse.db")))?;
    work(store.clone()).await?;
    store.close().await?;
    drop(store);
    Ok(device.written()? - before)
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

    let lone = 200u64;
    let bytes = measure(&device, "lone", |store| async move {
        for i in 0..lone {
            let seq = store.append(plate_read(i)).await?;
            store.ack_seqs(&[seq]).await?;
        }
        Ok(())
    })
    .await?;
    rows.push((
        "lone access event (append, fsync, then its ack)".to_owned(),
        bytes / lone,
        "per event",
    ));

    let mut count = 0;
    let bytes = measure(&device, "access-100", |store| {
        let count = &mut count;
        async move {
            *count = paced(
                store,
                seconds,
                Duration::from_millis(10),
                Some(Duration::from_millis(100)),
                plate_read,
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    rows.push((
        "access events at 100/s, acked every 100 ms".to_owned(),
        bytes / count.max(1),
        "per event",
    ));

    let bytes = measure(&device, "telemetry-10", |store| {
        let count = &mut count;
        async move {
            *count = paced(
                store,
                seconds,
                Duration::from_millis(100),
                Some(Duration::from_secs(1)),
                sample,
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    rows.push((
        "telemetry at 10/s, acked every second".to_owned(),
        bytes / count.max(1),
        "per sample",
    ));

    let bytes = measure(&device, "telemetry-offline", |store| {
        let count = &mut count;
        async move {
            *count = paced(store, seconds, Duration::from_millis(100), None, sample).await?;
            Ok(())
        }
    })
    .await?;
    rows.push((
        "telemetry at 10/s, platform unreachable".to_owned(),
        bytes / count.max(1),
        "per sample",
    ));

    println!("| scenario ({seconds} s paced runs) | bytes at the block device | |");
    println!("| --- | ---: | --- |");
    for (what, bytes, per) in rows {
        println!("| {what} | {bytes} | {per} |");
    }
    Ok(())
}
