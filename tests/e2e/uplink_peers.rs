//! Peers of the uplink tests, all real: the embedded rumqttd, mosquitto and
//! nats-server processes started on free ports with their own temporary
//! configuration, an MQTT subscriber that records what the gateway
//! published, a TCP proxy that can cut the link (an outage of the embedded
//! broker, which cannot be stopped), and the helpers that sign downlink
//! messages and build gateway configurations.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use drivers::Class;
use gatehouse_tests::{DEADLINE, eventually};
use gateway::events::Kind;
use gateway::store::{Store, StoreConfig};
use gateway::wire::Envelope;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub(crate) const ESTATE: &str = "test-estate";
pub(crate) const GATEWAY: &str = "gw-test";
pub(crate) const KEY: &str = "platform-key-for-gw-test";

/// A gateway configuration with no devices and an MQTT uplink to `port`.
pub(crate) fn mqtt_config(data_dir: &Path, port: u16, extra: &str) -> String {
    format!(
        r#"
[gateway]
estate_id = "{ESTATE}"
gateway_id = "{GATEWAY}"
data_dir = "{}"

[panel]
listen = "127.0.0.1:0"

[supervisor]
drain_budget = "3s"

[uplink]
sink = "mqtt"
batch_size = 500
heartbeat_interval = "1s"
reconnect_max = "1s"
command_key = {{ env = "GATEHOUSE_TEST_COMMAND_KEY" }}

[uplink.mqtt]
host = "127.0.0.1"
port = {port}
{extra}
"#,
        data_dir.display()
    )
}

/// Parses a test configuration with the command key in its environment.
pub(crate) fn parse(text: &str) -> gateway::config::Config {
    let env: HashMap<String, String> =
        HashMap::from([("GATEHOUSE_TEST_COMMAND_KEY".to_owned(), KEY.to_owned())]);
    gateway::config::parse_with(text, "test.toml", &env).expect("valid test config")
}

/// A stamped envelope for pre-filling a store.
pub(crate) fn envelope(device: &str, kind: Kind, n: u64) -> Envelope {
    gateway::pipeline::Stamper::new(ESTATE, GATEWAY).stamp(
        device,
        kind,
        serde_json::json!({"n": n, "point": "level", "value": 1, "unit": "m"}),
        None,
    )
}

/// Fills the store in `data_dir` with `count` telemetry events of `device`
/// (before the gateway starts); returns their ids in order.
pub(crate) async fn prefill(data_dir: &Path, device: &str, count: u64) -> Vec<uuid::Uuid> {
    std::fs::create_dir_all(data_dir).expect("data dir");
    let (store, _) =
        Store::open(StoreConfig::new(gatehouse_tests::database(data_dir))).expect("store opens");
    let mut ids = Vec::new();
    let mut n = 0;
    while n < count {
        let batch: Vec<Envelope> = (n..(n + 1000).min(count))
            .map(|i| envelope(device, Kind::PointValue, i))
            .collect();
        ids.extend(batch.iter().map(|e| e.id));
        n += batch.len() as u64;
        for result in store.submit(batch).wait().await {
            result.expect("prefill append");
        }
    }
    store.close().await.expect("close");
    ids
}

/// Signs a downlink message for the test gateway.
pub(crate) fn signed(mut message: serde_json::Value) -> Vec<u8> {
    let map = message.as_object_mut().expect("an object");
    let sig = gateway::uplink::sign::sign(KEY.as_bytes(), ESTATE, GATEWAY, map).expect("sign");
    map.insert("sig".into(), serde_json::Value::String(sig));
    message.to_string().into_bytes()
}

/// `gatehouse/v1/test-estate/gw-test/{leaf}`.
pub(crate) fn topic(leaf: &str) -> String {
    format!("gatehouse/v1/{ESTATE}/{GATEWAY}/{leaf}")
}

/// One message the subscriber received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
}

/// An MQTT client that subscribes to everything of the test gateway and
/// records it; it re-subscribes after every reconnect and can publish.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) client: AsyncClient,
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
    connected: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Connects to `addr` with a persistent session named `client_id` and
    /// waits until subscribed.
    pub(crate) async fn connect(addr: SocketAddr, client_id: &str) -> Self {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(16 << 20, 16 << 20)
            .set_inflight(1000);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let received = Arc::new(Mutex::new(Vec::new()));
        let connected = Arc::new(AtomicBool::new(false));
        let (rec, conn, sub) = (received.clone(), connected.clone(), client.clone());
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub
                            .subscribe(
                                format!("gatehouse/v1/{ESTATE}/{GATEWAY}/#"),
                                QoS::AtLeastOnce,
                            )
                            .await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => conn.store(true, Ordering::SeqCst),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(mut r) = rec.lock() {
                            r.push(Received {
                                topic: p.topic,
                                payload: p.payload.to_vec(),
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        conn.store(false, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        let subscriber = Self {
            client,
            received,
            connected,
            task,
        };
        let c = subscriber.connected.clone();
        eventually("the test subscriber to subscribe", DEADLINE, || {
            let c = c.clone();
            async move { c.load(Ordering::SeqCst).then_some(()) }
        })
        .await
        .expect("subscribed");
        subscriber
    }

    /// Waits until the subscriber's link is `up` (subscribed) or down.
    pub(crate) async fn wait_link(&self, up: bool) {
        let c = self.connected.clone();
        eventually("the test subscriber's link", DEADLINE, || {
            let c = c.clone();
            async move { (c.load(Ordering::SeqCst) == up).then_some(()) }
        })
        .await
        .expect("subscriber link");
    }

    /// Everything received on the gateway's topic `leaf` (e.g. `/status`), as JSON.
    pub(crate) fn json(&self, leaf: &str) -> Vec<serde_json::Value> {
        let received = self.received.lock().map(|r| r.clone()).unwrap_or_default();
        received
            .iter()
            .filter(|m| m.topic == topic(leaf.trim_start_matches('/')))
            .filter_map(|m| serde_json::from_slice(&m.payload).ok())
            .collect()
    }

    /// Every event envelope received, in arrival order (duplicates kept).
    pub(crate) fn events(&self) -> Vec<Envelope> {
        let received = self.received.lock().map(|r| r.clone()).unwrap_or_default();
        received
            .iter()
            .filter(|m| m.topic.contains("/events/"))
            .filter_map(|m| serde_json::from_slice(&m.payload).ok())
            .collect()
    }

    /// Publishes a downlink message (QoS 1).
    pub(crate) async fn publish(&self, leaf: &str, payload: Vec<u8>) {
        self.client
            .publish(topic(leaf), QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }
}

/// What a set of received events says about delivery.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) unique: usize,
    pub(crate) duplicates: usize,
    pub(crate) missing: Vec<uuid::Uuid>,
}

/// Checks that every id in `expected` arrived, counts duplicates, and checks
/// that, per device and class, first arrivals follow `seq` order.
pub(crate) fn check_delivery(received: &[Envelope], expected: &[uuid::Uuid]) -> Delivery {
    let mut seen = HashSet::new();
    let mut firsts = Vec::new();
    let mut duplicates = 0;
    for e in received {
        if seen.insert(e.id) {
            firsts.push(e);
        } else {
            duplicates += 1;
        }
    }
    let mut last: HashMap<(String, Class), u64> = HashMap::new();
    for e in &firsts {
        let key = (e.device_id.clone(), e.class);
        if let Some(previous) = last.get(&key) {
            assert!(
                *previous < e.seq,
                "per-device order broken for {key:?}: seq {} after {previous}",
                e.seq
            );
        }
        last.insert(key, e.seq);
    }
    Delivery {
        unique: seen.len(),
        duplicates,
        missing: expected
            .iter()
            .filter(|id| !seen.contains(id))
            .copied()
            .collect(),
    }
}

/// Waits until every id in `expected` was received.
pub(crate) async fn wait_delivered(
    subscriber: &Subscriber,
    expected: &[uuid::Uuid],
    deadline: Duration,
) -> anyhow::Result<Delivery> {
    eventually("every event to reach the broker", deadline, || {
        let delivery = check_delivery(&subscriber.events(), expected);
        async move { delivery.missing.is_empty().then_some(delivery) }
    })
    .await
}

/// A TCP proxy in front of a broker whose link can be cut and restored.
#[derive(Debug)]
pub(crate) struct CutProxy {
    pub(crate) addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    task: JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CutProxy {
    /// Listens on a port-0 address and forwards to `target`.
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let (u, g) = (up.clone(), generation.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown().await;
                    continue;
                }
                let mut cut = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            generation,
            task,
        }
    }

    /// Drops every connection and refuses new ones (the broker is "down").
    pub(crate) fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Lets connections through again.
    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A peer process (mosquitto, nats-server) with its temporary files.
#[derive(Debug)]
pub(crate) struct PeerProcess {
    pub(crate) port: u16,
    binary: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    /// Kept for its lifetime: the peer's configuration and data.
    _dir: tempfile::TempDir,
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// Finds a peer binary on PATH or in the usual sbin directories.
pub(crate) fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl PeerProcess {
    async fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let port = self.port;
        eventually("the peer to listen", DEADLINE, || async move {
            TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await
    }

    /// mosquitto on a free port with persistence in its temp dir (so a
    /// persistent session survives a restart, like a production broker).
    pub(crate) async fn mosquitto() -> anyhow::Result<Option<Self>> {
        let Some(binary) = find_binary("mosquitto") else {
            gatehouse_tests::require_peer(
                "mosquitto",
                "binary not found (apt-get install mosquitto)",
            )?;
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let port = testkit::free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nautosave_interval 1\nmax_inflight_messages 0\n\
                 max_queued_messages 0\nlog_dest none\n",
                dir.path().display()
            ),
        )?;
        let mut peer = Self {
            port,
            binary,
            args: vec!["-c".into(), conf.display().to_string()],
            child: None,
            _dir: dir,
        };
        peer.spawn().await?;
        Ok(Some(peer))
    }

    /// nats-server on free ports with JetStream (file store in its temp dir)
    /// and its MQTT listener; returns the server and its client port.
    pub(crate) async fn nats() -> anyhow::Result<Option<(Self, u16)>> {
        let Some(binary) = find_binary("nats-server") else {
            gatehouse_tests::require_peer(
                "nats-server",
                "binary not found (apt-get install nats-server)",
            )?;
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let client_port = testkit::free_port();
        let mqtt_port = testkit::free_port();
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{client_port}\nserver_name: gatehouse-test\n\
                 jetstream {{ store_dir: \"{}\" }}\nmqtt {{ listen: 127.0.0.1:{mqtt_port} }}\n",
                dir.path().join("js").display()
            ),
        )?;
        let mut peer = Self {
            port: mqtt_port,
            binary,
            args: vec!["-c".into(), conf.display().to_string()],
            child: None,
            _dir: dir,
        };
        peer.spawn().await?;
        Ok(Some((peer, client_port)))
    }

    /// Stops the process (SIGTERM, so a persistent broker saves its state).
    pub(crate) async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("not running");
        };
        if let Some(pid) = child.id() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        }
        tokio::time::timeout(DEADLINE, child.wait()).await??;
        Ok(())
    }

    /// Starts it again on the same port.
    pub(crate) async fn restart(&mut self) -> anyhow::Result<()> {
        self.spawn().await
    }

    /// `127.0.0.1:port`.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// An embedded rumqttd for a test.
pub(crate) fn embedded_broker() -> SocketAddr {
    gateway::broker::start("127.0.0.1:0".parse().expect("addr"))
        .expect("embedded broker")
        .addr
}
