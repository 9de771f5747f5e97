//! The platform link: store-and-forward uplink, downlink commands and list
//! sync, presence and telemetry.
//!
//! # Shape
//!
//! - [`Sink`] is the one trait both transports implement: a batch of stored
//!   events in, one [`Outcome`] per event out (`Delivered`, `Retry`,
//!   `Rejected`, after vector's `BatchStatus`). [`mqtt::MqttSink`] (QoS 1,
//!   PUBACK per event) and [`https::HttpsSink`] (one POST per batch).
//! - The drain task reads the store live-first ([`schedule`]), hands batches
//!   to the sink, acks what was confirmed (`Store::ack_seqs`), moves what
//!   was rejected to the dead-letter table ([`db`]) and backs off on retries.
//! - The MQTT link task owns the session; downlink messages go to the
//!   [`downlink`] handler (signed commands through the pipeline, list syncs
//!   through [`sync::ListRegistry`]); replies go back through the link.
//! - [`status::UplinkStatus`] is the state everyone reads (`/metrics`,
//!   `/api/v1/telemetry`, the heartbeat).
//! - What leaves the box is the stored event less what [`policy`] holds
//!   back (`[privacy]` `uplink_*`); the store keeps it whole.
//! - Protocol pieces are pure and unit-tested: [`topic`], [`sign`],
//!   [`schedule`], [`sync`]'s state machine, [`downlink::Checker`].
//!
//! # Invariants
//!
//! - **An event leaves the store only after the platform confirmed it**
//!   (its PUBACK, or a 2xx for its batch) or rejected it for good (then it is
//!   kept in `uplink_dead_letters` first).
//! - At-least-once: anything unconfirmed is sent again after a reconnect or
//!   restart; the platform de-duplicates on the envelope `id`.
//! - Within a class, events are handed to the sink in `seq` order, so each
//!   device's events keep their order within a class.
//! - Nothing on the gate/door path waits for the uplink.

pub mod db;
pub mod downlink;
pub mod https;
pub mod mqtt;
pub mod policy;
pub mod schedule;
pub mod sign;
pub mod status;
pub mod sync;
pub mod telemetry;
pub mod topic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drivers::DeviceEvent;
use drivers::contract::now_ms;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MqttHost, SinkConfig, UplinkDisclosure};
use crate::pipeline::{EventFeed, GATEWAY_DEVICE, PipelineHandle};
use crate::store::{Seq, Store, StoreError};
use crate::supervisor::Drivers;
use crate::tasks::CoreWatch;
use crate::vocab::backoff::Backoff;
use crate::wire::Envelope;

use db::UplinkDb;
use downlink::{Checker, Downlink};
use schedule::{Cursors, PRIORITY, settle};
use status::UplinkStatus;
use sync::ListRegistry;
use telemetry::TelemetrySource;
use topic::Topics;

/// With nothing to send, the store is looked at again this often even
/// without a new-event notification.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// First retry delay of the drain.
const RETRY_INITIAL: Duration = Duration::from_millis(100);
/// Downlink messages waiting for the handler.
const DOWNLINK_QUEUE: usize = 64;
/// Replies waiting for the link.
const REPLY_QUEUE: usize = 256;
/// How often a finished interval of refused downlink messages is recorded.
const REFUSAL_FLUSH: Duration = Duration::from_millis(500);

/// What the platform said about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Confirmed: the event may leave the store.
    Delivered,
    /// Not confirmed (link down, timeout, 429, 5xx): send it again, after
    /// the given delay when the platform named one.
    Retry(Option<Duration>),
    /// Refused for good (the reason is kept with the dead letter).
    Rejected(String),
    /// The platform refused the gateway itself (its token, its URL), not
    /// the event: retried with backoff, and an alarm is raised. Never
    /// dead-lettered.
    Refused(String),
}

/// Where events go. Implementations never decide what leaves the store:
/// they only report outcomes.
pub trait Sink: Send {
    /// Sends `batch` (one class, `seq` order); one outcome per event, in order.
    fn send(&mut self, batch: &[Envelope]) -> impl Future<Output = Vec<Outcome>> + Send;
    /// Resolves when sending is worth trying again (e.g. connected).
    fn ready(&mut self) -> impl Future<Output = ()> + Send;
}

/// A message for the platform that is not a stored event (a command
/// result, a sync request, the telemetry snapshot), sent QoS 1.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Full topic.
    pub topic: String,
    /// Payload (JSON).
    pub payload: Vec<u8>,
    /// Retained.
    pub retain: bool,
}

/// Why the uplink could not start.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// TLS files or the HTTP client could not be set up.
    #[error("uplink setup: {0}")]
    Setup(String),
    /// The store could not be opened for the uplink's tables.
    #[error("uplink store: {0}")]
    Store(#[from] StoreError),
}

/// What the uplink needs from the gateway.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The store.
    pub store: Store,
    /// Commands and records.
    pub pipeline: PipelineHandle,
    /// Devices (health for heartbeat and telemetry).
    pub drivers: Drivers,
    /// New-event notifications.
    pub feed: EventFeed,
    /// Shared state.
    pub status: Arc<UplinkStatus>,
    /// The synced lists.
    pub lists: ListRegistry,
    /// The telemetry snapshot.
    pub telemetry: TelemetrySource,
    /// The embedded broker's address, when it runs.
    pub embedded_broker: Option<SocketAddr>,
    /// Gateway start time.
    pub started: Instant,
    /// Watches the uplink's tasks (each is a core task).
    pub watch: CoreWatch,
}

/// A running uplink.
#[derive(Debug)]
pub struct Uplink {
    drain: CancellationToken,
    cancel: CancellationToken,
    drain_task: JoinHandle<()>,
    others: Vec<(&'static str, JoinHandle<()>)>,
    store: Store,
}

/// Starts the uplink, or returns `None` when `[uplink] sink = "off"`.
pub fn start(config: &Config, inputs: Inputs) -> Result<Option<Uplink>, UplinkError> {
    let uplink = &config.uplink;
    let topics = Topics::new(
        &uplink.topic_prefix,
        &config.gateway.estate_id,
        &config.gateway.gateway_id,
    );
    let drain = CancellationToken::new();
    let cancel = CancellationToken::new();
    let mut others = Vec::new();
    let db = UplinkDb::open(&inputs.store)?;
    let drain_task = match &uplink.sink {
        SinkConfig::Off => return Ok(None),
        SinkConfig::Https(https) => {
            let sink = https::HttpsSink::new(
                https,
                &config.gateway.estate_id,
                &config.gateway.gateway_id,
                inputs.status.clone(),
            )
            .map_err(UplinkError::Setup)?;
            inputs.status.enable("https", inputs.store.clone());
            tracing::info!(base_url = %https.base_url, "Uplink over HTTPS.");
            spawn_core(
                &inputs.watch,
                "uplink drain",
                drive(
                    sink,
                    inputs.clone(),
                    db,
                    Pace {
                        batch_size: uplink.batch_size,
                        reconnect_max: uplink.reconnect_max,
                        disclosure: config.privacy.uplink,
                    },
                    drain.clone(),
                    cancel.clone(),
                ),
            )
        }
        SinkConfig::Mqtt(mqtt_config) => {
            let host = match (&mqtt_config.host, inputs.embedded_broker) {
                (MqttHost::Name(host), _) => host.clone(),
                (MqttHost::Embedded, Some(addr)) => addr.ip().to_string(),
                (MqttHost::Embedded, None) => {
                    return Err(UplinkError::Setup(
                        "host = \"embedded\" but the embedded broker is not running".into(),
                    ));
                }
            };
            let port = match (&mqtt_config.host, inputs.embedded_broker) {
                (MqttHost::Embedded, Some(addr)) => addr.port(),
                _ => mqtt_config.port,
            };
            let tls = mqtt_config
                .tls
                .as_ref()
                .map(mqtt::tls_config)
                .transpose()
                .map_err(UplinkError::Setup)?;
            let params = mqtt::LinkParams {
                host,
                port,
                config: mqtt_config.clone(),
                topics: topics.clone(),
                reconnect_max: uplink.reconnect_max,
                heartbeat_interval: uplink.heartbeat_interval,
                capacity: uplink.batch_size * 2 + 64,
            };
            tracing::info!(broker = %params.host, port = params.port, tls = params.config.tls.is_some(), topics = topics.base(), "Uplink over MQTT.");
            let (replies_tx, replies_rx) = mpsc::channel(REPLY_QUEUE);
            let (downlink_tx, downlink_rx) = mpsc::channel(DOWNLINK_QUEUE);
            let (sink, link_task) = mqtt::start(
                params,
                tls,
                inputs.status.clone(),
                inputs.drivers.clone(),
                replies_rx,
                downlink_tx,
                inputs.started,
                cancel.clone(),
            );
            others.push((
                "uplink mqtt link",
                spawn_core(&inputs.watch, "uplink mqtt link", link_task),
            ));
            let handler = Downlink {
                checker: Checker {
                    key: uplink.command_key.clone(),
                    estate_id: config.gateway.estate_id.clone(),
                    gateway_id: config.gateway.gateway_id.clone(),
                    max_lifetime_ms: i64::try_from(uplink.command_max_lifetime.as_millis())
                        .unwrap_or(i64::MAX),
                    max_pulse_ms: u64::try_from(uplink.door_pulse_max.as_millis())
                        .unwrap_or(u64::MAX),
                },
                db: db.clone(),
                pipeline: inputs.pipeline.clone(),
                lists: inputs.lists.clone(),
                status: inputs.status.clone(),
                telemetry: inputs.telemetry.clone(),
                topics: topics.clone(),
                out: replies_tx,
                refusals: Arc::new(std::sync::Mutex::new(downlink::RefusalWindow::new(
                    uplink.refusal_interval,
                ))),
            };
            if uplink.command_key.is_none() {
                tracing::warn!(
                    "No [uplink] command_key: every platform command and list sync will be refused."
                );
            }
            others.push((
                "uplink downlink",
                spawn_core(
                    &inputs.watch,
                    "uplink downlink",
                    downlink_loop(handler, downlink_rx, sink.connected(), cancel.clone()),
                ),
            ));
            inputs.status.enable("mqtt", inputs.store.clone());
            spawn_core(
                &inputs.watch,
                "uplink drain",
                drive(
                    sink,
                    inputs.clone(),
                    db,
                    Pace {
                        batch_size: uplink.batch_size,
                        reconnect_max: uplink.reconnect_max,
                        disclosure: config.privacy.uplink,
                    },
                    drain.clone(),
                    cancel.clone(),
                ),
            )
        }
    };
    Ok(Some(Uplink {
        drain,
        cancel,
        drain_task,
        others,
        store: inputs.store,
    }))
}

impl Uplink {
    /// Keeps sending what is stored for at most `budget` ("the uplink gets
    /// what is left" of the drain budget), then closes the link (a clean
    /// MQTT disconnect with a retained `offline`). Returns the tasks that
    /// did not stop.
    pub async fn stop(self, budget: Duration) -> Vec<String> {
        let started = tokio::time::Instant::now();
        self.drain.cancel();
        let mut drain_task = self.drain_task;
        // Leave a little of the budget for closing the link.
        let for_drain = budget.saturating_sub(budget / 5);
        if tokio::time::timeout(for_drain, &mut drain_task)
            .await
            .is_err()
        {
            self.cancel.cancel();
            if tokio::time::timeout(Duration::from_millis(200), &mut drain_task)
                .await
                .is_err()
            {
                drain_task.abort();
            }
        }
        let depth = self.store.stats().depth;
        if depth > 0 {
            tracing::info!(
                queued = depth,
                "Uplink stopped; unsent events stay stored for the next start."
            );
        }
        self.cancel.cancel();
        let deadline = started + budget;
        let mut stragglers = Vec::new();
        for (name, mut task) in self.others {
            if tokio::time::timeout_at(
                deadline.max(tokio::time::Instant::now() + Duration::from_millis(100)),
                &mut task,
            )
            .await
            .is_err()
            {
                task.abort();
                stragglers.push(name.to_owned());
            }
        }
        stragglers
    }
}

/// Spawns `future` as a core task of the gateway.
fn spawn_core<F>(watch: &CoreWatch, name: &'static str, future: F) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(watch.core(name, future))
}

async fn downlink_loop(
    handler: Downlink,
    mut messages: mpsc::Receiver<(String, Vec<u8>)>,
    mut connected: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    // Often enough that an interval's refusals are recorded soon after it ends.
    let mut flush = tokio::time::interval(REFUSAL_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = flush.tick() => handler.flush_refusals().await,
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                if *connected.borrow_and_update() {
                    handler.publish_sync_status().await;
                }
            }
            message = messages.recv() => match message {
                Some((topic, payload)) => handler.on_message(&topic, &payload).await,
                None => return,
            },
        }
    }
}

/// Acks `seqs`, logging (not losing) a failure: unacked events are sent again.
async fn ack(store: Store, seqs: Vec<Seq>) {
    if let Err(error) = store.ack_seqs(&seqs).await {
        static FAILED: crate::logging::Every = crate::logging::Every::minute();
        if let Some(count) = FAILED.allow() {
            tracing::error!(%error, events = seqs.len(), count, "Delivered events could not be removed from the store; they will be sent again (one line a minute, with the count).");
        }
    }
}

/// The alarm for a platform that refuses the gateway itself (a wrong
/// token or URL): raised once when refusals start, cleared when events are
/// delivered again.
#[derive(Debug, Default)]
struct Refusal {
    raised: bool,
    refusals: u64,
}

/// The alarm's code (a `device_alarm` of the gateway).
pub const REFUSED_ALARM: &str = "platform_refused";

impl Refusal {
    async fn update(&mut self, refused: Option<&str>, delivered: bool, pipeline: &PipelineHandle) {
        let body = match refused {
            Some(reason) => {
                self.refusals += 1;
                if self.raised {
                    return;
                }
                self.raised = true;
                tracing::error!(
                    reason,
                    "The platform refused the gateway's credentials; events stay queued and are retried with backoff."
                );
                DeviceEvent::DeviceAlarm {
                    code: REFUSED_ALARM.to_owned(),
                    message: format!("platform refused the gateway's credentials: {reason}"),
                    active: true,
                }
            }
            None if self.raised && delivered => {
                self.raised = false;
                tracing::info!(
                    refusals = self.refusals,
                    "The platform accepts the gateway again."
                );
                self.refusals = 0;
                DeviceEvent::DeviceAlarm {
                    code: REFUSED_ALARM.to_owned(),
                    message: "platform accepts the gateway's credentials again".to_owned(),
                    active: false,
                }
            }
            None => return,
        };
        if let Err(error) = pipeline.record(GATEWAY_DEVICE, body).await {
            tracing::error!(%error, "The platform-refused alarm was not stored.");
        }
    }
}

/// How the drain reads and sends.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Events per read and per batch handed to the sink.
    batch_size: usize,
    /// The longest retry back-off.
    reconnect_max: Duration,
    /// What of each event leaves the box.
    disclosure: UplinkDisclosure,
}

/// The drain: live-first reading, sending, acking, retrying.
async fn drive<S: Sink>(
    mut sink: S,
    inputs: Inputs,
    db: UplinkDb,
    pace: Pace,
    drain: CancellationToken,
    cancel: CancellationToken,
) {
    let Pace {
        batch_size,
        reconnect_max,
        disclosure,
    } = pace;
    let store = inputs.store;
    let status = inputs.status;
    let mut wake = inputs.feed.subscribe();
    let mut cursors = Cursors::default();
    let mut backoff = Backoff::new(RETRY_INITIAL, reconnect_max.max(RETRY_INITIAL));
    // Acks in flight: the store holds a small one for its next commit (up
    // to `store::ACK_HOLD`), so sending goes on without waiting for it.
    let mut acking: JoinSet<()> = JoinSet::new();
    let mut prefetched: Option<(drivers::Class, Seq, Vec<Envelope>)> = None;
    let mut refusal = Refusal::default();
    'drain: loop {
        if cancel.is_cancelled() {
            break;
        }
        let mut next = None;
        for class in PRIORITY {
            // The batch read ahead while the previous one was in flight,
            // when it still continues where this class stands.
            if let Some((c, after, _)) = &prefetched
                && *c == class
                && *after == cursors.after(class)
                && let Some((_, _, events)) = prefetched.take()
            {
                next = Some((class, events));
                break;
            }
            match store
                .read_class_after(class, cursors.after(class), batch_size)
                .await
            {
                Ok(events) if !events.is_empty() => {
                    next = Some((class, events));
                    break;
                }
                Ok(_) => {}
                Err(StoreError::CorruptRow { seq, reason }) => {
                    // It can never be decoded, so never sent: keep its raw
                    // row as a dead letter, then move past it rather than
                    // stall the uplink.
                    let db = db.clone();
                    let why = format!("unreadable in the queue: {reason}");
                    let kept = tokio::task::spawn_blocking(move || {
                        db.dead_letter_raw(seq, &why, now_ms())
                    })
                    .await;
                    match kept {
                        Ok(Ok(())) => {
                            tracing::error!(
                                seq,
                                reason,
                                "A stored event is unreadable and cannot be uplinked; it is kept in the dead-letter table."
                            );
                            status.rejected(1);
                            acking.spawn(ack(store.clone(), vec![seq]));
                        }
                        Ok(Err(error)) => {
                            tracing::error!(seq, reason, %error, "A stored event is unreadable and could not be dead-lettered; it stays in the queue.");
                            tokio::select! {
                                () = cancel.cancelled() => break 'drain,
                                () = tokio::time::sleep(IDLE_POLL) => {}
                            }
                        }
                        Err(_) => break 'drain,
                    }
                    continue 'drain;
                }
                Err(StoreError::Closed) => break 'drain,
                Err(error) => {
                    tracing::error!(%error, "The uplink could not read the store.");
                    tokio::select! {
                        () = cancel.cancelled() => break 'drain,
                        () = tokio::time::sleep(IDLE_POLL) => continue 'drain,
                    }
                }
            }
        }
        let Some((class, batch)) = next else {
            if drain.is_cancelled() {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = drain.cancelled() => {}
                received = wake.recv() => if let Err(RecvError::Closed) = received {
                    // The pipeline is gone: keep polling the store.
                    wake = inputs.feed.subscribe();
                },
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        };
        let seqs: Vec<Seq> = batch.iter().map(|e| e.seq).collect();
        // Read the next batch of this class while this one is in flight.
        let last = seqs.last().copied().unwrap_or(0);
        // What leaves the box: the batch less what the policy holds back.
        let outgoing = policy::apply_batch(disclosure, &batch);
        let (outcomes, ahead) = tokio::select! {
            () = cancel.cancelled() => break,
            both = async {
                tokio::join!(sink.send(&outgoing), store.read_class_after(class, last, batch_size))
            } => both,
        };
        prefetched = match ahead {
            Ok(events) if !events.is_empty() => Some((class, last, events)),
            _ => None,
        };
        let settled = settle(&mut cursors, class, &seqs, &outcomes);
        refusal
            .update(
                settled.refused.as_deref(),
                !settled.delivered.is_empty(),
                &inputs.pipeline,
            )
            .await;
        let mut done = settled.delivered.clone();
        status.delivered(settled.delivered.len() as u64);
        if !settled.rejected.is_empty() {
            let rejected: Vec<(Envelope, String)> = settled
                .rejected
                .iter()
                .filter_map(|(i, reason)| batch.get(*i).map(|e| (e.clone(), reason.clone())))
                .collect();
            for (event, reason) in &rejected {
                tracing::warn!(seq = event.seq, id = %event.id, kind = %event.kind, reason, "The platform rejected an event; it is kept in the dead-letter table.");
            }
            let db = db.clone();
            let kept = tokio::task::spawn_blocking(move || {
                let pairs: Vec<(&Envelope, &str)> =
                    rejected.iter().map(|(e, r)| (e, r.as_str())).collect();
                db.dead_letter(&pairs, now_ms())
                    .map(|()| rejected.iter().map(|(e, _)| e.seq).collect::<Vec<_>>())
            })
            .await;
            match kept {
                Ok(Ok(seqs)) => {
                    status.rejected(seqs.len() as u64);
                    done.extend(seqs);
                }
                Ok(Err(error)) => {
                    static FAILED: crate::logging::Every = crate::logging::Every::minute();
                    if let Some(count) = FAILED.allow() {
                        tracing::error!(%error, count, "Rejected events could not be dead-lettered; they stay queued (one line a minute, with the count).");
                    }
                    cursors.rewind_all();
                }
                Err(_) => break,
            }
        }
        while acking.try_join_next().is_some() {}
        while acking.len() >= ACKS_IN_FLIGHT && acking.join_next().await.is_some() {}
        if !done.is_empty() {
            acking.spawn(ack(store.clone(), done));
        }
        match settled.retry {
            None => backoff.reset(),
            Some(hint) => {
                status.retried();
                if drain.is_cancelled() {
                    // Shutting down with the platform unreachable: the rest
                    // stays stored for the next start.
                    break;
                }
                // Everything confirmed is acked before anything is read again.
                settle_acks(&store, &mut acking).await;
                let delay = hint.unwrap_or_else(|| backoff.next_delay(&mut rand::rng()));
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = sink.ready() => {}
                }
            }
        }
    }
    settle_acks(&store, &mut acking).await;
}

/// The most acks in flight before sending waits for one.
const ACKS_IN_FLIGHT: usize = 16;

/// Commits the acks in flight now (not at the store's next commit) and
/// waits for them.
async fn settle_acks(store: &Store, acking: &mut JoinSet<()>) {
    if !acking.is_empty()
        && let Err(error) = store.commit_acks().await
    {
        tracing::debug!(%error, "Held acks were not committed; they are sent again.");
    }
    while acking.join_next().await.is_some() {}
}

#[cfg(test)]
pub(crate) mod contract_tests;

#[cfg(test)]
mod tests {
    const ENVELOPE_SCHEMA: &str = include_str!("../../../docs/schema/envelope.json");

    #[test]
    fn the_envelope_schema_requires_what_the_envelope_always_carries() {
        let schema: serde_json::Value =
            serde_json::from_str(ENVELOPE_SCHEMA).expect("envelope.json");
        let env = crate::pipeline::Stamper::new("e", "g").stamp(
            "d",
            crate::events::Kind::PointValue,
            serde_json::json!({}),
            None,
        );
        let value = serde_json::to_value(&env).expect("serialise");
        let props = schema["properties"].as_object().expect("properties");
        for key in value.as_object().expect("object").keys() {
            assert!(props.contains_key(key), "{key} undocumented");
        }
        for required in schema["required"].as_array().expect("required") {
            let key = required.as_str().expect("str");
            assert!(value.get(key).is_some(), "{key} required but not sent");
        }
    }
}
