//! Unit-door benchmark (a plain main, not a timed test):
//! `cargo bench -p gateway --bench doors`.
//!
//! Measures:
//! - card presented → relay energised, through a whole gateway started
//!   in-process (simulated Wiegand reader and door on fake GPIO lines, the
//!   real pipeline, coordinator and store): from the moment the last bit is
//!   on the line to the relay line going active, and the same minus the
//!   frame gap (the time after the frame *ends*, which is what the decoder
//!   can know);
//! - decisions per second of the doors coordinator with 100,000 cards
//!   loaded (lookup, decision, annotation; no disk);
//! - process RSS before and after loading 100,000 cards into the snapshot;
//! - the argon2id hash of one keypad code (paid on every keypad entry).
//!
//! `GATEHOUSE_BENCH_CARDS` (default 100,000) and `GATEHOUSE_BENCH_PRESENTS`
//! (default 300) scale the runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use drivers::DeviceEvent;
use gateway::config::{DoorEntry, DoorGroupConfig};
use gateway::doors::coordinator::DoorCoordinator;
use gateway::doors::credentials::CredentialStore;
use gateway::pipeline::Coordinator;
use gateway::store::{Store, StoreConfig};
use gateway::vocab::import::ImportMode;
use gateway::vocab::schedule::Schedule;

const FRAME_GAP: Duration = Duration::from_millis(5);

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/self/status").context("status")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .context("VmRSS")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn card_rows(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "number": (1_000_000_000u64 + i as u64 * 7).to_string(),
                "holder": format!("住户{i}"),
                "house": format!("{}-{}-{:04}", i % 20 + 1, i % 4 + 1, i % 3000),
                "groups": ["b3"],
            })
        })
        .collect()
}

async fn latency(presents: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let text = format!(
        r#"
[gateway]
estate_id = "bench"
gateway_id = "gw-bench"
data_dir = "{}"
[panel]
listen = "127.0.0.1:0"
[[devices]]
id = "reader"
type = "wiegand-reader"
gpio = "sim"
d0 = 17
d1 = 27
[[devices]]
id = "lock"
type = "door"
gpio = "sim"
relay = 22
contact = 23
pulse = "100ms"
[[door_groups]]
id = "b3"
[[doors]]
id = "door"
readers = ["reader"]
relay = "lock"
group = "b3"
"#,
        dir.path().join("data").display()
    );
    let config = gateway::config::parse(&text, "bench.toml").map_err(|e| anyhow::anyhow!("{e}"))?;
    let running = gateway::app::start(config).await?;
    let credentials = running.doors.credentials.clone();
    tokio::task::spawn_blocking(move || credentials.replace_cards(1, card_rows(1_000))).await??;
    let door = running.doors.sim.door("lock").context("sim door")?;
    let uid = 1_000_000_000u32 + 7 * 42;
    let mut samples = Vec::with_capacity(presents);
    for _ in 0..presents {
        let started = Instant::now();
        if !running.doors.sim.present_w34("reader", uid) {
            anyhow::bail!("no simulated reader");
        }
        tokio::time::timeout(Duration::from_secs(5), door.relay.wait_for(true)).await?;
        samples.push(started.elapsed());
        tokio::time::timeout(Duration::from_secs(5), door.relay.wait_for(false)).await?;
    }
    samples.sort();
    let after_end: Vec<Duration> = samples
        .iter()
        .map(|d| d.saturating_sub(FRAME_GAP))
        .collect();
    println!(
        "card presented -> relay energised ({presents} presentations): last bit -> relay p50 {:.2} ms, p99 {:.2} ms; after the frame ends (minus the {} ms gap) p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        FRAME_GAP.as_millis(),
        ms(percentile(&after_end, 0.5)),
        ms(percentile(&after_end, 0.99)),
        ms(percentile(&after_end, 1.0)),
    );
    let report = running.shutdown().await;
    anyhow::ensure!(report.is_clean(), "unclean shutdown");
    Ok(())
}

fn decisions(cards: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = Store::open(StoreConfig::new(dir.path().join("g.db")))?;
    let credentials = Arc::new(CredentialStore::open(&store)?);
    // A CSV written row by row, so the test data is not in memory.
    let csv_path = dir.path().join("cards.csv");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&csv_path)?);
        writeln!(out, "number,holder,house,valid_from,valid_to,groups")?;
        for i in 0..cards {
            writeln!(
                out,
                "{},住户{i},{}-{}-{:04},,,",
                1_000_000_000u64 + i as u64 * 7,
                i % 20 + 1,
                i % 4 + 1,
                i % 3000
            )?;
        }
    }
    let rss_before = rss_kib()?;
    let loaded = Instant::now();
    let bytes = std::fs::read(&csv_path)?;
    let report = credentials.import_cards_csv(&bytes, ImportMode::AllOrNothing, |_| {})?;
    anyhow::ensure!(report.written == cards, "{:?}", report.rejected.first());
    let load_time = loaded.elapsed();
    let rss_after = rss_kib()?;
    println!(
        "{cards} cards: CSV import (one transaction) + snapshot in {:.2} s; process RSS {} KiB before, {} KiB with the cards loaded (+{} KiB)",
        load_time.as_secs_f64(),
        rss_before,
        rss_after,
        rss_after.saturating_sub(rss_before),
    );
    let door = DoorEntry {
        id: "door".into(),
        name: "door".into(),
        readers: vec!["reader".into()],
        relay: "lock".into(),
        controller_door: None,
        group: None,
        anti_passback_pair: None,
    };
    let group = DoorGroupConfig {
        id: "b3".into(),
        name: "b3".into(),
        schedule: Schedule::default(),
    };
    let mut coordinator = DoorCoordinator::new(credentials.clone(), &[door], &[group], &[]);
    let reads: Vec<DeviceEvent> = (0..10_000u64)
        .map(|i| DeviceEvent::CardRead {
            // Every other read is an unknown card.
            card: (1_000_000_000u64 + (i * 7919 % cards as u64) * 7 + (i % 2)).to_string(),
            format: "w34".into(),
            facility: None,
            door: None,
            controller: None,
        })
        .collect();
    let rounds = 20;
    let started = Instant::now();
    let mut granted = 0usize;
    for _ in 0..rounds {
        for read in &reads {
            if let Some(decided) = coordinator.on_event("reader", read, 1_770_000_000_000)
                && decided.members()["decision"] == "grant"
            {
                granted += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let n = rounds * reads.len();
    println!(
        "decisions with {cards} cards: {n} in {:.3} s = {:.0} per second ({granted} granted)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    let started = Instant::now();
    for i in 0..20 {
        std::hint::black_box(credentials.hash(&format!("{:06}", 123_456 + i)));
    }
    println!(
        "keypad code hash (argon2id, m=4 MiB, t=1): {:.2} ms each",
        ms(started.elapsed()) / 20.0
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cards = env_or("GATEHOUSE_BENCH_CARDS", 100_000);
    let presents = env_or("GATEHOUSE_BENCH_PRESENTS", 300);
    decisions(cards)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(latency(presents))
}
