//! The MQTT sink: one task owns the MQTT session (one owner per resource).
//!
//! # Design
//!
//! rumqttc keeps unacknowledged publishes only in memory, replays them on a
//! resumed session, forgets them on a clean one, and reconnects without
//! backing off. None of that is relied on here: the store is the source of
//! truth. Each connection attempt gets a **fresh** `EventLoop` (so rumqttc
//! never replays anything of its own), the session is persistent
//! (`clean_session = false`, so the broker keeps the downlink subscription
//! and queues commands while the gateway is away), and every publish is
//! QoS 1.
//!
//! An event leaves the store only after its PUBACK: the link tags each
//! publish before handing it to rumqttc, matches rumqttc's
//! `Outgoing::Publish(pkid)` notifications to the tags in order (rumqttc
//! assigns packet ids in request order), and a `PubAck(pkid)` completes the
//! tag. When the connection drops, or a PUBACK does not come within
//! [`ACK_TIMEOUT`], every open tag fails: the batch is answered with
//! `Retry`, the events stay stored, and they are sent again after the
//! reconnect (so the platform may see an event twice; the envelope `id`
//! makes that idempotent).
//!
//! Reconnects back off with jitter from 100 ms up to `reconnect_max`
//! (default 2 s), so the first event after the broker returns goes out
//! within about two seconds. With a cluster (`failover`: the other nodes),
//! each lost or refused connection moves to the next node, at once when
//! the lost one had been serving; the session keeps its name, so a
//! cluster that shares sessions (NATS with JetStream) keeps the
//! subscription, and the store re-sends whatever was not acknowledged.
//!
//! The event loop is polled by a task of its own that forwards its
//! notifications over a channel; the link task selects on that channel
//! (cancel-safe) rather than on `EventLoop::poll` itself.
//!
//! Presence: a retained `…/status` `online` message after each connect, a
//! retained `offline` last will, an explicit retained `offline` on a clean
//! shutdown followed by an MQTT DISCONNECT (so the broker drops the will),
//! and a `…/heartbeat` with the device-health summary.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::logging::Every;
use drivers::contract::now_ms;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::status::UplinkStatus;
use super::telemetry::device_health;
use super::topic::Topics;
use super::{Outbound, Outcome, Sink};
use crate::config::{ClientTls, MqttConfig};
use crate::supervisor::Drivers;
use crate::vocab::backoff::Backoff;
use crate::wire::Envelope;

/// A PUBACK that has not come after this long means the broker is not
/// acknowledging: the connection is dropped and rebuilt.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect delay.
const RECONNECT_INITIAL: Duration = Duration::from_millis(100);
/// Largest message accepted from the broker (list snapshots can be big).
const MAX_INCOMING: usize = 16 << 20;
/// Largest message sent.
const MAX_OUTGOING: usize = 1 << 20;
/// Downlink replies kept while offline; older ones are dropped.
const OFFLINE_REPLIES: usize = 256;
/// How long a clean shutdown waits for the `offline` status to go out.
const GOODBYE: Duration = Duration::from_millis(500);

/// Where and how to connect (resolved from the configuration).
#[derive(Debug, Clone)]
pub struct LinkParams {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The MQTT settings.
    pub config: MqttConfig,
    /// Topic names.
    pub topics: Topics,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Request-channel capacity (at least a batch).
    pub capacity: usize,
}

/// Builds the rustls configuration from the configured files (ring provider).
pub fn tls_config(files: &ClientTls) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&files.ca_file)
        .map_err(|e| format!("ca_file {}: {e}", files.ca_file.display()))?;
    for ca in cas {
        let ca = ca.map_err(|e| format!("ca_file {}: {e}", files.ca_file.display()))?;
        roots
            .add(ca)
            .map_err(|e| format!("ca_file {}: {e}", files.ca_file.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match &files.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("client_cert {}: {e}", cert.display()))?;
            // The error names the file, never its contents.
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("client_key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

fn status_payload(state: &str, started: Instant) -> Vec<u8> {
    serde_json::json!({
        "state": state,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": started.elapsed().as_secs(),
        "time_ms": now_ms(),
    })
    .to_string()
    .into_bytes()
}

fn options(
    params: &LinkParams,
    tls: Option<&Arc<rustls::ClientConfig>>,
    (host, port): (&str, u16),
) -> MqttOptions {
    let c = &params.config;
    let mut options = MqttOptions::new(c.client_id.clone(), host, port);
    options
        .set_keep_alive(c.keep_alive)
        .set_clean_session(false)
        .set_inflight(c.inflight)
        .set_max_packet_size(MAX_INCOMING, MAX_OUTGOING)
        .set_request_channel_capacity(params.capacity)
        .set_last_will(LastWill::new(
            params.topics.leaf("status"),
            serde_json::json!({"state": "offline", "reason": "connection lost"}).to_string(),
            QoS::AtLeastOnce,
            true,
        ));
    match (&c.username, &c.password) {
        (Some(user), password) => {
            options.set_credentials(
                user.clone(),
                password
                    .as_ref()
                    .map(|p| p.expose().to_owned())
                    .unwrap_or_default(),
            );
        }
        // A token alone: the client id is the user name.
        (None, Some(token)) => {
            options.set_credentials(c.client_id.clone(), token.expose().to_owned());
        }
        (None, None) => {}
    }
    if let Some(tls) = tls {
        options.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
    }
    options
}

/// A publish of the link: an event of a batch (by batch and index) or a
/// reply that is not stored (`None`).
type Tag = Option<(u64, usize)>;

/// A batch waiting for its PUBACKs.
struct Pending {
    results: Vec<bool>,
    open: usize,
    reply: Option<oneshot::Sender<Vec<bool>>>,
}

/// A batch for the link: `(topic, payload)` per event.
struct BatchRequest {
    items: Vec<(String, Vec<u8>)>,
    reply: oneshot::Sender<Vec<bool>>,
}

/// The handle of the MQTT link; the [`Sink`] the uplink drives.
#[derive(Debug)]
pub struct MqttSink {
    requests: mpsc::Sender<BatchRequest>,
    connected: watch::Receiver<bool>,
    topics: Topics,
}

impl std::fmt::Debug for BatchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchRequest({} items)", self.items.len())
    }
}

/// The link; returns the sink and the link task's future (for its owner to
/// spawn).
#[allow(clippy::too_many_arguments)]
pub fn start(
    params: LinkParams,
    tls: Option<Arc<rustls::ClientConfig>>,
    status: Arc<UplinkStatus>,
    drivers: Drivers,
    replies: mpsc::Receiver<Outbound>,
    downlink: mpsc::Sender<(String, Vec<u8>)>,
    started: Instant,
    cancel: CancellationToken,
) -> (MqttSink, impl Future<Output = ()> + Send + 'static) {
    let (requests_tx, requests) = mpsc::channel(4);
    let (connected_tx, connected) = watch::channel(false);
    let topics = params.topics.clone();
    let link = Link {
        params,
        tls,
        status,
        drivers,
        requests,
        replies,
        downlink,
        connected: connected_tx,
        started,
        cancel,
        next_batch: 0,
        offline_replies: VecDeque::new(),
        broker: String::new(),
    };
    let task = link.run();
    (
        MqttSink {
            requests: requests_tx,
            connected,
            topics,
        },
        task,
    )
}

impl MqttSink {
    /// Connection changes (true while connected).
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }
}

impl Sink for MqttSink {
    async fn send(&mut self, batch: &[Envelope]) -> Vec<Outcome> {
        let retry = |n| vec![Outcome::Retry(None); n];
        // Wait briefly for a connection, so a batch read just before a
        // reconnect is not bounced needlessly.
        if !*self.connected.borrow() {
            let wait = self.connected.wait_for(|up| *up);
            if tokio::time::timeout(Duration::from_secs(1), wait)
                .await
                .is_err()
            {
                return retry(batch.len());
            }
        }
        let mut items = Vec::with_capacity(batch.len());
        for event in batch {
            match serde_json::to_vec(event) {
                Ok(payload) => items.push((self.topics.event(&event.kind), payload)),
                Err(error) => {
                    tracing::error!(%error, seq = event.seq, "An event could not be encoded.");
                    return retry(batch.len());
                }
            }
        }
        let (reply, rx) = oneshot::channel();
        if self
            .requests
            .send(BatchRequest { items, reply })
            .await
            .is_err()
        {
            return retry(batch.len());
        }
        match rx.await {
            Ok(acked) => acked
                .into_iter()
                .map(|ok| {
                    if ok {
                        Outcome::Delivered
                    } else {
                        Outcome::Retry(None)
                    }
                })
                .collect(),
            Err(_) => retry(batch.len()),
        }
    }

    async fn ready(&mut self) {
        let _ = self.connected.wait_for(|up| *up).await;
    }
}

/// The link task's state.
struct Link {
    params: LinkParams,
    tls: Option<Arc<rustls::ClientConfig>>,
    status: Arc<UplinkStatus>,
    drivers: Drivers,
    requests: mpsc::Receiver<BatchRequest>,
    replies: mpsc::Receiver<Outbound>,
    downlink: mpsc::Sender<(String, Vec<u8>)>,
    connected: watch::Sender<bool>,
    started: Instant,
    cancel: CancellationToken,
    next_batch: u64,
    offline_replies: VecDeque<Outbound>,
    /// The broker of the current connection (`host:port`), for the logs.
    broker: String,
}

/// One connection's bookkeeping.
#[derive(Default)]
struct Session {
    up: bool,
    /// Tags of publishes handed to rumqttc, not yet given a packet id.
    unassigned: VecDeque<Tag>,
    /// Packet id → tag and when it was sent.
    inflight: HashMap<u16, (Tag, Instant)>,
    batches: HashMap<u64, Pending>,
}

impl Session {
    fn complete(&mut self, tag: Tag, ok: bool) {
        let Some((batch, index)) = tag else { return };
        let done = match self.batches.get_mut(&batch) {
            Some(p) => {
                if let Some(slot) = p.results.get_mut(index) {
                    *slot = ok;
                }
                p.open = p.open.saturating_sub(1);
                p.open == 0
            }
            None => false,
        };
        if done
            && let Some(mut p) = self.batches.remove(&batch)
            && let Some(reply) = p.reply.take()
        {
            let _ = reply.send(p.results);
        }
    }

    /// Fails everything open (the connection is gone).
    fn fail_all(&mut self) {
        let tags: Vec<Tag> = self
            .unassigned
            .drain(..)
            .chain(self.inflight.drain().map(|(_, (tag, _))| tag))
            .collect();
        for tag in tags {
            self.complete(tag, false);
        }
        for (_, mut p) in self.batches.drain() {
            if let Some(reply) = p.reply.take() {
                let _ = reply.send(p.results);
            }
        }
    }

    fn oldest_inflight(&self) -> Option<Instant> {
        self.inflight.values().map(|(_, t)| *t).min()
    }
}

impl Link {
    async fn run(mut self) {
        let mut backoff = Backoff::new(RECONNECT_INITIAL, self.params.reconnect_max);
        let mut was_up = true;
        let mut failures: u64 = 0;
        // `host`, then the cluster's other nodes (`failover`), in turn.
        let brokers: Vec<(String, u16)> =
            std::iter::once((self.params.host.clone(), self.params.port))
                .chain(self.params.config.failover.iter().cloned())
                .collect();
        let mut at = 0;
        loop {
            let (host, port) = (brokers[at].0.as_str(), brokers[at].1);
            self.broker = format!("{host}:{port}");
            let options = options(&self.params, self.tls.as_ref(), (host, port));
            let (client, eventloop) = AsyncClient::new(options, self.params.capacity);
            let (events_tx, events) = mpsc::channel(1024);
            let poller = tokio::spawn(poll(eventloop, events_tx));
            let mut session = Session::default();
            let ended = self.connection(&client, events, &mut session).await;
            session.fail_all();
            self.connected.send_replace(false);
            self.status.set_connected(false);
            match ended {
                Ended::Cancelled => {
                    // Give the `offline` status and DISCONNECT a moment to go
                    // out; a broker slower than that is not waited for.
                    let mut poller = poller;
                    if tokio::time::timeout(GOODBYE, &mut poller).await.is_err() {
                        poller.abort();
                    }
                    return;
                }
                Ended::Lost(reason) => {
                    poller.abort();
                    failures += 1;
                    if session.up || was_up {
                        tracing::warn!(reason, broker = %self.broker, "Uplink MQTT connection lost; events stay stored and are re-sent.");
                    } else if failures.is_multiple_of(30) {
                        tracing::warn!(reason, failures, "Uplink MQTT broker still unreachable.");
                    } else {
                        tracing::debug!(reason, "Uplink MQTT connect failed.");
                    }
                    was_up = session.up;
                    if session.up {
                        backoff.reset();
                        failures = 0;
                    }
                    if brokers.len() > 1 {
                        at = (at + 1) % brokers.len();
                        // A node that was serving is gone: the next node
                        // is tried at once; failed connects wait as usual.
                        if session.up {
                            continue;
                        }
                    }
                }
            }
            let delay = backoff.next_delay(&mut rand::rng());
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn publish(
        &mut self,
        client: &AsyncClient,
        session: &mut Session,
        tag: Tag,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) {
        session.unassigned.push_back(tag);
        if let Err(error) = client.try_publish(topic, QoS::AtLeastOnce, retain, payload) {
            tracing::debug!(%error, "Publish not queued.");
            session.unassigned.pop_back();
            session.complete(tag, false);
        }
    }

    fn heartbeat(&self) -> Vec<u8> {
        serde_json::json!({
            "time_ms": now_ms(),
            "uptime_s": self.started.elapsed().as_secs(),
            "version": env!("CARGO_PKG_VERSION"),
            "uplink": self.status.summary(),
            "devices": device_health(&self.drivers),
        })
        .to_string()
        .into_bytes()
    }

    async fn connection(
        &mut self,
        client: &AsyncClient,
        mut events: mpsc::Receiver<Result<Event, String>>,
        session: &mut Session,
    ) -> Ended {
        let mut heartbeat = tokio::time::interval(self.params.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let ack_deadline = session
                .oldest_inflight()
                .map(|t| tokio::time::Instant::from_std(t + ACK_TIMEOUT));
            tokio::select! {
                () = self.cancel.cancelled() => {
                    if session.up {
                        let goodbye = serde_json::json!({"state": "offline", "reason": "shutdown"}).to_string();
                        let _ = client.try_publish(self.params.topics.leaf("status"), QoS::AtLeastOnce, true, goodbye);
                        let _ = client.try_disconnect();
                    }
                    return Ended::Cancelled;
                }
                event = events.recv() => match event {
                    None => return Ended::Lost("event loop stopped".into()),
                    Some(Err(reason)) => return Ended::Lost(reason),
                    Some(Ok(event)) => if let Some(ended) = self.on_event(client, session, event) {
                        return ended;
                    },
                },
                Some(request) = self.requests.recv(), if session.up => {
                    let batch = self.next_batch;
                    self.next_batch += 1;
                    session.batches.insert(batch, Pending {
                        results: vec![false; request.items.len()],
                        open: request.items.len(),
                        reply: Some(request.reply),
                    });
                    if request.items.is_empty() {
                        session.complete(Some((batch, 0)), true);
                    }
                    for (index, (topic, payload)) in request.items.into_iter().enumerate() {
                        self.publish(client, session, Some((batch, index)), topic, payload, false);
                    }
                }
                Some(reply) = self.replies.recv() => {
                    if session.up {
                        self.publish(client, session, None, reply.topic, reply.payload, reply.retain);
                    } else {
                        if self.offline_replies.len() == OFFLINE_REPLIES {
                            self.offline_replies.pop_front();
                        }
                        self.offline_replies.push_back(reply);
                    }
                }
                _ = heartbeat.tick(), if session.up => {
                    let topic = self.params.topics.leaf("heartbeat");
                    let payload = self.heartbeat();
                    self.publish(client, session, None, topic, payload, false);
                }
                () = sleep_until(ack_deadline) => {
                    return Ended::Lost(format!("no PUBACK within {ACK_TIMEOUT:?}"));
                }
            }
        }
    }

    fn on_event(
        &mut self,
        client: &AsyncClient,
        session: &mut Session,
        event: Event,
    ) -> Option<Ended> {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                if ack.code != ConnectReturnCode::Success {
                    return Some(Ended::Lost(format!("connection refused: {:?}", ack.code)));
                }
                session.up = true;
                self.connected.send_replace(true);
                tracing::info!(broker = %self.broker, session_present = ack.session_present, "Uplink connected.");
                let filters = self
                    .params
                    .topics
                    .downlink_filters()
                    .into_iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f, QoS::AtLeastOnce));
                if let Err(error) = client.try_subscribe_many(filters) {
                    return Some(Ended::Lost(format!("subscribe: {error}")));
                }
                let status = status_payload("online", self.started);
                let topic = self.params.topics.leaf("status");
                self.publish(client, session, None, topic, status, true);
                while let Some(reply) = self.offline_replies.pop_front() {
                    self.publish(
                        client,
                        session,
                        None,
                        reply.topic,
                        reply.payload,
                        reply.retain,
                    );
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(tag) = session.unassigned.pop_front() {
                    session.inflight.insert(pkid, (tag, Instant::now()));
                }
            }
            // The link counts as up once the broker confirmed the downlink
            // subscriptions: from then on a platform command reaches us.
            Event::Incoming(Packet::SubAck(_)) => {
                self.status.set_connected(true);
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some((tag, _)) = session.inflight.remove(&ack.pkid) {
                    session.complete(tag, true);
                }
            }
            Event::Incoming(Packet::Publish(publish)) => {
                let message = (publish.topic, publish.payload.to_vec());
                if self.downlink.try_send(message).is_err() {
                    static DROPPED: Every = Every::minute();
                    self.status.downlink_dropped();
                    if let Some(dropped) = DROPPED.allow() {
                        tracing::warn!(
                            dropped,
                            "Downlink messages were dropped: the handler is behind."
                        );
                    }
                }
            }
            _ => {}
        }
        None
    }
}

/// How a connection ended.
enum Ended {
    /// Shutdown.
    Cancelled,
    /// Lost or never made; why.
    Lost(String),
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Polls the event loop and forwards its notifications until the first
/// error. Once nobody listens (the link ended on shutdown), it polls on
/// until the DISCONNECT is written, so the broker sees a clean close and
/// keeps the retained `shutdown` status instead of firing the last will
/// (the caller bounds that wait with [`GOODBYE`]).
async fn poll(mut eventloop: EventLoop, events: mpsc::Sender<Result<Event, String>>) {
    let mut listened = true;
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Disconnect)) if !listened => return,
            Ok(event) => {
                if listened && events.send(Ok(event)).await.is_err() {
                    listened = false;
                }
            }
            Err(error) => {
                let _ = events.send(Err(error.to_string())).await;
                return;
            }
        }
    }
}
