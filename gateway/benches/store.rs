//! Store benchmark (a plain main, not a timed test):
//! `cargo bench -p gateway --bench store`.
//!
//! Measures, on a temporary directory: durable append throughput one at a
//! time and grouped (64 and 256 concurrent appenders), grouped append latency, bytes
//! written to disk per event (`/proc/self/io`), on-disk size and process RSS
//! with a large backlog queued, and the on-disk size once it is acked.
//! `GATEHOUSE_BENCH_EVENTS` (default 1,000,000) scales the backlog.
//!
//! Reading the bytes-per-event figure: each commit rewrites about nine fixed
//! pages (the rightmost table leaf and its parent, the two index leaves,
//! `sqlite_sequence`, the header page, the auto-vacuum pointer map, the WAL
//! frame straddling a filesystem page) on top of the rows, and every row
//! (~375 bytes on disk for a 270-byte envelope) is written twice, to the WAL
//! and at checkpoint. So the figure falls with the batch size: fewer than
//! 1 KiB per event needs commits of a couple of hundred events.

use std::time::{Duration, Instant};

mod common;

use common::event;
use gateway::store::{Seq, Store, StoreConfig};

/// Concurrent appenders in the grouped runs.
const APPENDERS: [u64; 2] = [64, 256];

fn write_bytes() -> anyhow::Result<u64> {
    common::proc_field("self", "io", "write_bytes:")
}

fn rss_kib() -> anyhow::Result<u64> {
    common::proc_field("self", "status", "VmRSS:")
}

fn config(dir: &std::path::Path, name: &str) -> StoreConfig {
    StoreConfig {
        max_bytes: 4 << 30,
        critical_reserve_bytes: 64 << 20,
        ..StoreConfig::new(dir.join(name))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let backlog: u64 = std::env::var("GATEHOUSE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. One at a time: each append awaited before the next.
    let (store, _) = Store::open(config(dir.path(), "sequential.db"))?;
    let n_seq = 2_000u64;
    let start = Instant::now();
    for i in 0..n_seq {
        store.append(event(i)).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    rows.push((
        "sequential appends/s".into(),
        format!("{:.0}", n_seq as f64 / secs),
    ));
    rows.push((
        "sequential latency mean".into(),
        format!("{:.2} ms", secs * 1000.0 / n_seq as f64),
    ));
    store.close().await?;

    // 2. Grouped: many concurrent appenders, each awaiting its own appends.
    for appenders in APPENDERS {
        let name = format!("grouped-{appenders}.db");
        let (store, _) = Store::open(config(dir.path(), &name))?;
        let per_task = (backlog / 10).clamp(1_000, 100_000) / appenders + 1;
        let io_before = write_bytes()?;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..appenders {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task as usize);
                for i in 0..per_task {
                    let t0 = Instant::now();
                    store.append(event(t * per_task + i)).await?;
                    lat.push(t0.elapsed());
                }
                anyhow::Ok(lat)
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await??);
        }
        let secs = start.elapsed().as_secs_f64();
        store.close().await?;
        let written = write_bytes()? - io_before;
        let n = per_task * appenders;
        latencies.sort_unstable();
        rows.push((
            format!("grouped appends/s ({appenders} appenders)"),
            format!("{:.0}", n as f64 / secs),
        ));
        rows.push((
            format!("grouped latency p50 / p99 ({appenders})"),
            format!(
                "{:.2} / {:.2} ms",
                percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
                percentile(&latencies, 0.99).as_secs_f64() * 1000.0
            ),
        ));
        rows.push((
            format!("bytes written per event ({appenders})"),
            format!("{:.0}", written as f64 / n as f64),
        ));
    }
    rows.push((
        "encoded envelope size".into(),
        format!("{} bytes", event(1).encoded_len()),
    ));

    // 3. A large backlog queued, then drained the way the uplink does.
    let (store, _) = Store::open(config(dir.path(), "backlog.db"))?;
    let start = Instant::now();
    let chunk = 1_000u64;
    let mut tasks = Vec::new();
    let fillers = 4u64;
    for f in 0..fillers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = f * chunk;
            while i < backlog {
                let n = chunk.min(backlog - i);
                let results = store.submit((i..i + n).map(event).collect()).wait().await;
                anyhow::ensure!(results.iter().all(Result::is_ok), "append failed");
                i += fillers * chunk;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let fill_secs = start.elapsed().as_secs_f64();
    let stats = store.stats();
    anyhow::ensure!(
        stats.depth == backlog,
        "queued {} of {backlog}",
        stats.depth
    );
    rows.push((
        format!("fill {backlog} (batches of {chunk})"),
        format!("{:.0} events/s", backlog as f64 / fill_secs),
    ));
    rows.push((
        format!("on disk with {backlog} queued"),
        format!("{:.1} MiB", mib(stats.file_bytes)),
    ));
    rows.push((
        format!("RSS with {backlog} queued"),
        format!("{:.1} MiB", rss_kib()? as f64 / 1024.0),
    ));

    let start = Instant::now();
    let mut after: Seq = 0;
    loop {
        let page = store.read_after(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        store.ack(after).await?;
    }
    let drain_secs = start.elapsed().as_secs_f64();
    let stats = store.stats();
    anyhow::ensure!(stats.depth == 0, "{} left after the drain", stats.depth);
    rows.push((
        "read + ack drain".into(),
        format!("{:.0} events/s", backlog as f64 / drain_secs),
    ));
    rows.push((
        "on disk after all acked".into(),
        format!("{:.1} MiB", mib(stats.file_bytes)),
    ));
    rows.push((
        "RSS after the drain".into(),
        format!("{:.1} MiB", rss_kib()? as f64 / 1024.0),
    ));
    store.close().await?;

    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!(
        "\nGatehouse store benchmark ({} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:-<1$}", "", width + 22);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
    Ok(())
}
