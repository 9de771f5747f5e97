//! Start time with a long queue, in release mode: `cargo bench -p gateway
//! --bench start` (`GATEHOUSE_BENCH_EVENTS`, default 1,000,000, sets the
//! queue).
//!
//! Fills a store with the queue (one access event in ten, the rest
//! telemetry, as the store benchmark), then:
//!
//! 1. the store alone: `Store::open`, and how long the writer takes to count
//!    the queue after it (while it already answers);
//! 2. the `gatehouse` binary as a child process, `GATEHOUSE_BENCH_STARTS`
//!    times (default 5) with nothing queued (the baseline), then with the
//!    queue after a SIGTERM and as many after a SIGKILL: process spawned →
//!    `/readyz` answers 200.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use anyhow::{Context, bail};
use common::event;
use gateway::store::{Store, StoreConfig};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn config(data_dir: &Path, panel: SocketAddr, ingress: SocketAddr) -> String {
    format!(
        "[gateway]\nestate_id = \"bench\"\ngateway_id = \"gw-bench\"\ndata_dir = \"{}\"\n\
         [panel]\nlisten = \"{panel}\"\n[ingress]\nlisten = \"{ingress}\"\n\
         [store]\nmax_bytes = \"2GiB\"\n",
        data_dir.display()
    )
}

/// Spawn → `/readyz` 200, polled every millisecond.
async fn ready_after(
    config: &Path,
    panel: SocketAddr,
) -> anyhow::Result<(Duration, std::process::Child)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    let url = format!("http://{panel}/readyz");
    let started = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("GATEHOUSE_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    loop {
        if let Ok(reply) = client.get(&url).send().await
            && reply.status().is_success()
        {
            return Ok((started.elapsed(), child));
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the gateway did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.0} ms, max {:.0} ms (of {})",
        ms(&times[times.len() / 2]),
        ms(times.last().expect("a start")),
        times.len()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = env_number("GATEHOUSE_BENCH_EVENTS", 1_000_000);
    let starts = env_number("GATEHOUSE_BENCH_STARTS", 5) as usize;
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let db = data_dir.join("gatehouse.db");

    let filled = Instant::now();
    // Room for the whole queue (the gateway's configuration below says the
    // same): nothing is shed while it fills.
    let store_config = StoreConfig {
        max_bytes: 2 << 30,
        ..StoreConfig::new(&db)
    };
    let (store, _) = Store::open(store_config.clone())?;
    let mut i = 0;
    while i < events {
        let n = (events - i).min(1_000);
        let batch = (i..i + n).map(event).collect();
        for seq in store.submit(batch).wait().await {
            seq.context("append")?;
        }
        i += n;
    }
    store.close().await?;
    drop(store);
    println!(
        "queue: {events} events stored in {:.1} s, file {:.0} MiB",
        filled.elapsed().as_secs_f64(),
        std::fs::metadata(&db)?.len() as f64 / (1 << 20) as f64
    );

    let opened = Instant::now();
    let (store, report) = Store::open(store_config)?;
    let open = opened.elapsed();
    while store.stats().counting {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let counted = opened.elapsed();
    println!(
        "store open: {:.1} ms (queue counted at open: {}); queue counted {:.0} ms after open: {} events",
        open.as_secs_f64() * 1000.0,
        report.depth,
        counted.as_secs_f64() * 1000.0,
        store.stats().depth
    );
    anyhow::ensure!(
        store.stats().depth == events,
        "counted {} of {events}",
        store.stats().depth
    );
    store.close().await?;
    drop(store);

    let panel: SocketAddr = format!("127.0.0.1:{}", testkit::free_port()).parse()?;
    let ingress: SocketAddr = format!("127.0.0.1:{}", testkit::free_port()).parse()?;
    // The baseline: the same gateway with nothing queued.
    let empty_dir = dir.path().join("empty");
    let empty_config = dir.path().join("empty.toml");
    std::fs::write(&empty_config, config(&empty_dir, panel, ingress))?;
    let mut times = Vec::new();
    for _ in 0..starts {
        let (took, mut child) = ready_after(&empty_config, panel).await?;
        times.push(took);
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        child.wait()?;
    }
    println!(
        "gatehouse start → /readyz 200 with nothing queued: {}",
        summary(times)
    );
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(&config_path, config(&data_dir, panel, ingress))?;
    for (label, signal) in [("SIGTERM", Signal::SIGTERM), ("SIGKILL", Signal::SIGKILL)] {
        let mut times = Vec::new();
        for _ in 0..starts {
            let (took, mut child) = ready_after(&config_path, panel).await?;
            times.push(took);
            kill(Pid::from_raw(child.id() as i32), signal)?;
            child.wait()?;
        }
        println!(
            "gatehouse start → /readyz 200 with {events} queued, after a {label}: {}",
            summary(times)
        );
    }
    Ok(())
}
