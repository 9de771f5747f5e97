//! Facility-point figures, in release mode: `cargo bench -p gateway --bench
//! points` (needs `mosquitto`). The `gatehouse` binary runs as a child
//! process, polling simulated Modbus TCP devices (`FacilitySim`, a water-
//! supply set whose pressure moves on every poll) and forwarding to a
//! mosquitto on loopback, where this program subscribes.
//!
//! 1. The yardstick: one device, 58 registers (an f32 and 56 u16 points, one
//!    request) every 100 ms, for `GATEHOUSE_BENCH_SECONDS` (default 60):
//!    start → first sample at the broker, CPU (share of one core), RSS,
//!    sample → broker latency (poll answered → at the subscriber), and bytes
//!    written per reported sample (`/proc/PID/io` write_bytes: what the
//!    process asked the kernel to write, store and WAL included).
//! 2. Capacity: 30 such devices, each on its own bus, every 10 ms: polls
//!    answered per second in total, and the CPU it took.
//! 3. Size: 100 devices × 50 points every second: RSS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use anyhow::{Context, bail};
use drivers::sim::facility::{Dynamics, FacilitySim, WaterSupply};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use common::{cpu_time, proc_field};

const ESTATE: &str = "bench";
const GATEWAY: &str = "gw-bench";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn find_binary(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// A device's `[[devices]]` table: `points` points over 58 registers
/// (`f32` at 0–1, then u16) or fewer, polled every `interval`.
fn device(id: &str, addr: SocketAddr, points: usize, interval: &str) -> String {
    let mut text = format!(
        "[[devices]]\nid = \"{id}\"\ntype = \"modbus-points\"\naddress = \"{addr}\"\n\
         slave = 1\nfull_report = \"1h\"\ntimeout = \"1s\"\n\
         [[devices.poll]]\nname = \"fast\"\ninterval = \"{interval}\"\n\
         [[devices.points]]\nname = \"p0\"\nregister = \"holding\"\naddress = 0\ntype = \"f32\"\ngroup = \"fast\"\n"
    );
    for n in 1..points {
        text.push_str(&format!(
            "[[devices.points]]\nname = \"p{n}\"\nregister = \"holding\"\naddress = {}\ntype = \"u16\"\ngroup = \"fast\"\n",
            n + 1
        ));
    }
    text
}

struct Gateway {
    child: std::process::Child,
    panel: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(devices: &str, broker: u16) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let panel: SocketAddr = format!("127.0.0.1:{}", testkit::free_port()).parse()?;
        let text = format!(
            "[gateway]\nestate_id = \"{ESTATE}\"\ngateway_id = \"{GATEWAY}\"\ndata_dir = \"{}\"\n\
             [panel]\nlisten = \"{panel}\"\n\
             [uplink]\nsink = \"mqtt\"\n[uplink.mqtt]\nhost = \"127.0.0.1\"\nport = {broker}\n{devices}",
            dir.path().join("data").display()
        );
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, text)?;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        Ok(Self {
            child,
            panel,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn ready(&self) -> anyhow::Result<()> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = reqwest::get(format!("http://{}/readyz", self.panel)).await
                && reply.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > end {
                bail!("the gateway did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `point_report` at the broker: (arrival ms, the envelope).
async fn subscribe(port: u16) -> anyhow::Result<mpsc::UnboundedReceiver<(i64, serde_json::Value)>> {
    let mut options = MqttOptions::new("points-bench", "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 1000);
    client
        .subscribe(
            format!("gatehouse/v1/{ESTATE}/{GATEWAY}/events/point_report"),
            QoS::AtLeastOnce,
        )
        .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    tokio::spawn(async move {
        let _client = client;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = now_ms();
                    if let Ok(value) = serde_json::from_slice(&p.payload)
                        && tx.send((at, value)).is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .context("subscription")??;
    Ok(rx)
}

async fn water_supply() -> anyhow::Result<(FacilitySim, SocketAddr)> {
    let sim = FacilitySim::new();
    sim.add(1, Dynamics::WaterSupply(WaterSupply::new(7)));
    let addr = sim.serve_tcp().await?;
    Ok((sim, addr))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("GATEHOUSE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let Some(mosquitto) = find_binary("mosquitto") else {
        bail!("mosquitto is not installed (apt-get install mosquitto)");
    };
    let work = tempfile::tempdir()?;
    let port = testkit::free_port();
    let conf = work.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nlog_dest none\n"
        ),
    )?;
    let mut broker = std::process::Command::new(mosquitto)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = run(port, Duration::from_secs(seconds)).await;
    let _ = broker.kill();
    let _ = broker.wait();
    result
}

async fn run(port: u16, window: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > end {
            bail!("mosquitto did not listen");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    yardstick(port, window).await?;
    capacity(port, window.min(Duration::from_secs(30))).await?;
    size(port).await
}

async fn yardstick(port: u16, window: Duration) -> anyhow::Result<()> {
    let mut reports = subscribe(port).await?;
    let (_sim, addr) = water_supply().await?;
    let started = now_ms();
    let gateway = Gateway::start(&device("pumps-1", addr, 57, "100ms"), port).await?;
    let (first_at, _) = tokio::time::timeout(Duration::from_secs(30), reports.recv())
        .await
        .context("first sample")?
        .context("subscriber")?;
    gateway.ready().await?;
    // Settle, then measure over the window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while reports.try_recv().is_ok() {}
    let pid = gateway.pid();
    let cpu0 = cpu_time(pid)?;
    let written0 = proc_field(pid, "io", "write_bytes:")?;
    let t0 = Instant::now();
    let mut latencies = Vec::new();
    let mut samples = 0u64;
    let stop = tokio::time::sleep(window);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            report = reports.recv() => {
                let (at, envelope) = report.context("subscriber")?;
                if let Some(polled) = envelope["device_time_ms"].as_i64() {
                    latencies.push(at - polled);
                }
                samples += envelope["body"]["samples"].as_array().map_or(0, |s| s.len() as u64);
            }
        }
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_time(pid)?.saturating_sub(cpu0);
    let written = proc_field(pid, "io", "write_bytes:")?.saturating_sub(written0);
    let rss = proc_field(pid, "status", "VmRSS:")?;
    latencies.sort_unstable();
    let reports_n = latencies.len().max(1) as u64;
    println!(
        "one device, 58 registers every 100 ms, {:.0} s:",
        elapsed.as_secs_f64()
    );
    println!(
        "  start → first sample at the broker: {} ms",
        first_at - started
    );
    println!(
        "  CPU: {:.1} % of a core",
        cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0
    );
    println!("  RSS: {:.1} MiB", rss as f64 / 1024.0);
    println!(
        "  sample → broker: p50 {} ms, p99 {} ms, max {} ms ({} reports, {samples} point values)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0),
        latencies.len()
    );
    println!(
        "  written: {} B per report ({} B per point value)",
        written / reports_n,
        written / samples.max(1)
    );
    Ok(())
}

async fn capacity(port: u16, window: Duration) -> anyhow::Result<()> {
    const DEVICES: usize = 30;
    let mut sims = Vec::new();
    let mut devices = String::new();
    for i in 0..DEVICES {
        let (sim, addr) = water_supply().await?;
        devices.push_str(&device(&format!("pumps-{i}"), addr, 57, "10ms"));
        sims.push(sim);
    }
    let gateway = Gateway::start(&devices, port).await?;
    gateway.ready().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = |sims: &[FacilitySim]| sims.iter().map(|s| s.requests(1)).sum::<u64>();
    let pid = gateway.pid();
    let (r0, cpu0, t0) = (requests(&sims), cpu_time(pid)?, Instant::now());
    tokio::time::sleep(window).await;
    let (r1, cpu1, elapsed) = (requests(&sims), cpu_time(pid)?, t0.elapsed());
    let secs = elapsed.as_secs_f64();
    println!(
        "{DEVICES} devices, 58 registers each, every 10 ms (asked: {} polls/s):",
        DEVICES * 100
    );
    println!("  answered: {:.0} polls/s", (r1 - r0) as f64 / secs);
    println!(
        "  gateway CPU: {:.0} % of a core (the simulators and mosquitto share the same 2 cores)",
        (cpu1 - cpu0).as_secs_f64() / secs * 100.0
    );
    Ok(())
}

async fn size(port: u16) -> anyhow::Result<()> {
    const DEVICES: usize = 100;
    let mut sims = Vec::new();
    let mut devices = String::new();
    for i in 0..DEVICES {
        let (sim, addr) = water_supply().await?;
        devices.push_str(&device(&format!("pumps-{i}"), addr, 50, "1s"));
        sims.push(sim);
    }
    let gateway = Gateway::start(&devices, port).await?;
    gateway.ready().await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss = proc_field(gateway.pid(), "status", "VmRSS:")?;
    let polled = sims.iter().filter(|s| s.requests(1) > 0).count();
    println!("{DEVICES} devices × 50 points every second ({polled} polled):");
    println!("  RSS: {:.1} MiB", rss as f64 / 1024.0);
    Ok(())
}
