//! Uplink benchmark (a plain main, not a timed test):
//! `cargo bench -p gateway --bench uplink`.
//!
//! Against mosquitto on loopback (started here on a free port; the embedded
//! rumqttd when mosquitto is not installed, and the output says so), with a
//! byte-counting TCP proxy between the gateway and the broker:
//!
//! - backlog drain rate: `GATEHOUSE_BENCH_EVENTS` (default 1,000,000)
//!   telemetry events stored before the gateway starts, timed from start
//!   until the store is empty (every event PUBACKed and acked);
//! - live latency during that drain: an access event recorded every 200 ms,
//!   timed from `record` returning (on disk) to its arrival at a subscriber
//!   of the broker (p50 / max);
//! - RSS of the process during the drain (max; the process also runs the
//!   subscriber and the proxy);
//! - bytes sent to the broker per event (MQTT framing, topic and JSON
//!   envelope, as counted by the proxy);
//! - reconnect: the broker is killed, an access event is recorded, the
//!   broker restarted; time from the broker listening again to the event
//!   being confirmed (PUBACK).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gateway::events::Kind;
use gateway::store::{Store, StoreConfig};
use gateway::wire::Envelope;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const ESTATE: &str = "estate-0042";
const GATEWAY: &str = "gw-0042-a";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
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

/// mosquitto on `port`, or `None` when it is not installed.
fn spawn_mosquitto(dir: &Path, port: u16) -> anyhow::Result<Option<std::process::Child>> {
    let Some(binary) = find_binary("mosquitto") else {
        return Ok(None);
    };
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_inflight_messages 0\nmax_queued_messages 0\nlog_dest none\n"
        ),
    )?;
    let child = std::process::Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    Ok(Some(child))
}

async fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > end {
            bail!("{addr} did not listen");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// A TCP proxy counting the bytes from the gateway to the broker.
async fn proxy(target: SocketAddr, up: Arc<AtomicU64>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let up = up.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.into_split();
                let (mut ro, mut wo) = outbound.into_split();
                let upward = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match tokio::io::AsyncReadExt::read(&mut ri, &mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        up.fetch_add(n as u64, Ordering::Relaxed);
                        if tokio::io::AsyncWriteExt::write_all(&mut wo, &buf[..n])
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                };
                let downward = tokio::io::copy(&mut ro, &mut wi);
                tokio::select! {
                    () = upward => {}
                    _ = downward => {}
                }
            });
        }
    });
    Ok(addr)
}

/// Counts events at the broker and notes when live access events arrive.
struct Subscriber {
    events: Arc<AtomicU64>,
    live: Arc<Mutex<HashMap<u64, Instant>>>,
}

async fn subscribe(addr: SocketAddr) -> anyhow::Result<Subscriber> {
    let mut options = MqttOptions::new("bench-reader", addr.ip().to_string(), addr.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let events = Arc::new(AtomicU64::new(0));
    let live = Arc::new(Mutex::new(HashMap::new()));
    let (e, l) = (events.clone(), live.clone());
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client
                        .subscribe(
                            format!("gatehouse/v1/{ESTATE}/{GATEWAY}/events/#"),
                            QoS::AtMostOnce,
                        )
                        .await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    e.fetch_add(1, Ordering::Relaxed);
                    if p.topic.ends_with("/card_read")
                        && let Ok(env) = serde_json::from_slice::<Envelope>(&p.payload)
                        && let Ok(mut live) = l.lock()
                    {
                        live.entry(env.seq).or_insert_with(Instant::now);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .context("subscriber")??;
    Ok(Subscriber { events, live })
}

async fn prefill(data_dir: &Path, count: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let mut config = StoreConfig::new(data_dir.join("gatehouse.db"));
    config.max_bytes = 4 << 30;
    let (store, _) = Store::open(config)?;
    let stamper = gateway::pipeline::Stamper::new(ESTATE, GATEWAY);
    let mut n = 0;
    while n < count {
        let batch: Vec<Envelope> = (n..(n + 1000).min(count))
            .map(|i| {
                let body = serde_json::json!({"point": "level", "value": (i % 1000) as f64 / 100.0, "unit": "m"});
                stamper.stamp(&format!("tank-{}", i % 8), Kind::PointValue, body, None)
            })
            .collect();
        n += batch.len() as u64;
        for result in store.submit(batch).wait().await {
            result?;
        }
    }
    store.close().await?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let events: u64 = std::env::var("GATEHOUSE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let port = testkit::free_port();
    let mut mosquitto = spawn_mosquitto(dir.path(), port)?;
    let broker: SocketAddr = match &mosquitto {
        Some(_) => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            wait_listening(addr).await?;
            println!("broker: mosquitto on {addr}");
            addr
        }
        None => {
            let addr = gateway::broker::start("127.0.0.1:0".parse()?)?.addr;
            println!(
                "broker: embedded rumqttd on {addr} (mosquitto not installed; the reconnect figure is skipped)"
            );
            addr
        }
    };
    let sent_bytes = Arc::new(AtomicU64::new(0));
    let via = proxy(broker, sent_bytes.clone()).await?;
    let subscriber = subscribe(broker).await?;

    let data_dir = dir.path().join("data");
    let t = Instant::now();
    prefill(&data_dir, events).await?;
    println!("prefilled {events} telemetry events in {:.1?}", t.elapsed());

    let text = format!(
        r#"
[gateway]
estate_id = "{ESTATE}"
gateway_id = "{GATEWAY}"
data_dir = "{}"
[store]
max_bytes = "4GiB"
[panel]
listen = "127.0.0.1:0"
[supervisor]
drain_budget = "2s"
[uplink]
sink = "mqtt"
batch_size = 1000
[uplink.mqtt]
host = "127.0.0.1"
port = {}
inflight = 1000
"#,
        data_dir.display(),
        via.port()
    );
    let config =
        gateway::config::parse(&text, "bench.toml").map_err(|e| anyhow::anyhow!(e.render()))?;
    let rss_before = rss_kib();
    let started = Instant::now();
    let running = gateway::app::start(config).await?;

    // Live events during the drain, and RSS samples.
    let mut live_sent: Vec<(u64, Instant)> = Vec::new();
    let mut rss_max = rss_before;
    let mut next_live = Instant::now() + Duration::from_millis(200);
    while running.store.stats().depth > 0 {
        rss_max = rss_max.max(rss_kib());
        if Instant::now() >= next_live {
            let receipt = running
                .pipeline
                .record("gate-1", card_read("00001234"))
                .await
                .map_err(|e| anyhow::anyhow!(e.0))?;
            live_sent.push((receipt.seq, Instant::now()));
            next_live += Duration::from_millis(200);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = started.elapsed();
    let delivered = running.uplink_status.sent();
    // Let the last live events arrive at the subscriber.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies: Vec<Duration> = {
        let live = subscriber
            .live
            .lock()
            .map_err(|_| anyhow::anyhow!("lock"))?;
        live_sent
            .iter()
            .filter_map(|(seq, at)| live.get(seq).map(|got| got.saturating_duration_since(*at)))
            .collect()
    };
    latencies.sort();
    let bytes = sent_bytes.load(Ordering::Relaxed);
    println!(
        "drain: {events} events in {:.2?} = {:.0} events/s (confirmed {delivered}, seen by the subscriber {})",
        drain,
        events as f64 / drain.as_secs_f64(),
        subscriber.events.load(Ordering::Relaxed)
    );
    println!(
        "live access events during the drain: {} sent, {} arrived; latency p50 {:.1?}, max {:.1?}",
        live_sent.len(),
        latencies.len(),
        percentile(&latencies, 0.5),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "RSS: {} MiB before start, {} MiB max during the drain",
        rss_before / 1024,
        rss_max / 1024
    );
    println!(
        "bytes to the broker: {} per event ({} bytes for {delivered} events, MQTT framing, topic and envelope)",
        bytes / delivered.max(1),
        bytes
    );

    // Reconnect: kill the broker, record, restart, time to PUBACK.
    if let Some(child) = mosquitto.as_mut() {
        child.kill()?;
        child.wait()?;
        let status = running.uplink_status.clone();
        let end = Instant::now() + Duration::from_secs(30);
        while status.connected() {
            if Instant::now() > end {
                bail!("the uplink did not notice the broker going away");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = status.sent();
        running
            .pipeline
            .record("gate-1", card_read("00005678"))
            .await
            .map_err(|e| anyhow::anyhow!(e.0))?;
        // Let the backoff grow as in a real outage.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut restarted = spawn_mosquitto(dir.path(), port)?.context("mosquitto")?;
        wait_listening(broker).await?;
        let back = Instant::now();
        while status.sent() <= before {
            if back.elapsed() > Duration::from_secs(30) {
                bail!("no delivery after the broker came back");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        println!(
            "reconnect: first event confirmed {:.2?} after the broker listened again",
            back.elapsed()
        );
        let report = running.shutdown().await;
        let _ = restarted.kill();
        let _ = restarted.wait();
        println!("shutdown: {:?}", report.elapsed);
    } else {
        running.shutdown().await;
    }
    Ok(())
}

/// A live access event: a card read at a gate.
fn card_read(card: &str) -> drivers::DeviceEvent {
    drivers::DeviceEvent::CardRead {
        card: card.to_owned(),
        format: "w26".to_owned(),
        facility: None,
        door: None,
        controller: None,
    }
}
