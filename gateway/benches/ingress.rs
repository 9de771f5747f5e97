//! The device listener under a flood of the largest pushes, in release mode:
//! `cargo bench -p gateway --bench ingress`.
//!
//! The `gatehouse` binary runs as a child process (so the pushes' buffers on
//! the sending side do not count) with one camera-relay lane and the default
//! `[ingress]` limits (8 MiB bodies). 64 clients each send a Vzenith push of
//! almost 8 MiB (two base64 pictures) at once, `GATEHOUSE_BENCH_ROUNDS`
//! times (default 5), each with a unique plate. Reported: the gateway's RSS
//! before, its peak (`VmHWM`), the answers by status, and the time taken.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use anyhow::bail;
use common::proc_field;
use drivers::PlateColour;
use drivers::lpr::Vendor;
use drivers::sim::camera::{SimPlate, build_plate};

const CLIENTS: usize = 64;
const MAX_BODY: usize = 8 << 20;

fn config(data_dir: &Path, panel: SocketAddr, ingress: SocketAddr) -> String {
    format!(
        "[gateway]\nestate_id = \"bench\"\ngateway_id = \"gw-bench\"\ndata_dir = \"{}\"\n\
         [panel]\nlisten = \"{panel}\"\n[ingress]\nlisten = \"{ingress}\"\n\
         [store]\nmax_bytes = \"2GiB\"\n\
         [[devices]]\nid = \"cam-0\"\ntype = \"lpr-camera\"\nvendor = \"vzenith\"\nlane = \"lane-0\"\n\
         [[lanes]]\nid = \"lane-0\"\ndirection = \"entry\"\nbarrier = \"camera\"\nrepeat_window = \"1ms\"\n",
        data_dir.display()
    )
}

/// The largest Vzenith push that fits the body limit, for `plate`.
fn largest_push(plate: &str) -> Vec<u8> {
    let mut picture = MAX_BODY / 8 * 3;
    loop {
        let read = SimPlate {
            picture: Some(vec![0xA5; picture]),
            with_image: true,
            ..SimPlate::new(plate, PlateColour::Blue, 95)
        };
        let body = build_plate(Vendor::Vzenith, "bench-0", &read, 1).body;
        if body.len() <= MAX_BODY {
            return body;
        }
        picture -= (body.len() - MAX_BODY) / 2 + 1024;
    }
}

async fn wait_ready(panel: SocketAddr) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(reply) = reqwest::get(format!("http://{panel}/readyz")).await
            && reply.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("the gateway did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("GATEHOUSE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let panel: SocketAddr = format!("127.0.0.1:{}", testkit::free_port()).parse()?;
    let ingress: SocketAddr = format!("127.0.0.1:{}", testkit::free_port()).parse()?;
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(
        &config_path,
        config(&dir.path().join("data"), panel, ingress),
    )?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    let result = flood(child.id(), panel, ingress, rounds).await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn flood(
    pid: u32,
    panel: SocketAddr,
    ingress: SocketAddr,
    rounds: usize,
) -> anyhow::Result<()> {
    wait_ready(panel).await?;
    let idle = proc_field(pid, "status", "VmRSS:")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()?;
    let url = format!("http://{ingress}/lpr/cam-0");
    let mut statuses = BTreeMap::<String, usize>::new();
    let mut body_len = 0;
    let started = Instant::now();
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for i in 0..CLIENTS {
            let body = largest_push(&format!("京A{round:02}{i:03}"));
            body_len = body.len();
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body);
            tasks.push(tokio::spawn(async move { request.send().await }));
        }
        for task in tasks {
            let key = match task.await? {
                Ok(reply) => reply.status().as_u16().to_string(),
                Err(error) if error.is_timeout() => "timeout".to_owned(),
                Err(_) => "connection error".to_owned(),
            };
            *statuses.entry(key).or_default() += 1;
        }
    }
    let elapsed = started.elapsed();
    let peak = proc_field(pid, "status", "VmHWM:")?;
    println!(
        "device listener flood: {rounds} rounds of {CLIENTS} concurrent pushes of {body_len} bytes"
    );
    println!("  RSS idle: {:.1} MiB", idle as f64 / 1024.0);
    println!("  RSS peak (VmHWM): {:.1} MiB", peak as f64 / 1024.0);
    println!("  answers: {statuses:?}");
    println!("  time: {:.1} s", elapsed.as_secs_f64());
    Ok(())
}
