//! The pipeline: the one loop every input passes through.
//!
//! Device events (from drivers and ingress listeners) and control inputs
//! (commands from the panel or the platform, and the gateway's own records)
//! are stamped into [`Envelope`]s, run through the local [`rules`], turned
//! into commands for drivers, and submitted to the store. A producer's
//! acknowledgement is completed only after its event is on disk.
//!
//! **Invariants:**
//! - Local before remote: nothing here waits on the network.
//! - Durable before acknowledged: an ack is sent only after the store's
//!   commit returned.
//! - Every actuation, whoever asked for it, goes through [`Control::Command`]
//!   and is recorded as an `audit` event with its origin and outcome.
//! - Events are submitted to the store in the order the pipeline received
//!   them, so sequence numbers follow arrival order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drivers::contract::{Decision, NotStored, Receipt, now_ms};
use drivers::{Command, CommandOutcome, DeviceEvent, Inbound};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::Config;
use crate::config::diff::ConfigDiff;
pub use crate::events::Origin;
use crate::events::{
    Annotation, CommandAudit, CommandFailed, Commanded, Event, GatewayEvent, Kind,
};
use crate::metrics::Metrics;
use crate::store::{AppendTicket, Effect, Store};
use crate::supervisor::Drivers;
use crate::wire::{Envelope, SCHEMA_VERSION};

/// Device id used for events about the gateway itself.
pub const GATEWAY_DEVICE: &str = "gateway";

/// An event to record beside the one that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The device it is about.
    pub device_id: String,
    /// The event.
    pub event: GatewayEvent,
}

/// What a coordinator decided about one device event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decided {
    /// What the coordinator says about the event (a decision and its
    /// reason), merged into its body; the decision also comes back to the
    /// producer in its [`Receipt`].
    pub annotate: Option<Annotation>,
    /// Further events to record with it (alarms, vehicle entered …).
    pub records: Vec<Record>,
    /// Commands for devices, sent before the events are stored.
    pub commands: Vec<(String, Command)>,
    /// State changes the coordinator has already made in memory, committed
    /// by the store in the same transaction as these events.
    pub effects: Vec<Effect>,
}

impl Decided {
    /// The members its annotation adds to the event's body (none without one).
    pub fn members(&self) -> serde_json::Map<String, serde_json::Value> {
        self.annotate
            .as_ref()
            .map(Annotation::members)
            .unwrap_or_default()
    }
}

/// A domain's local rules, run by the pipeline on every device event (the
/// vehicle lanes, the doors, threshold alarms). Implementations keep their
/// state in memory and call pure rule functions; they must not block.
pub trait Coordinator: Send + std::fmt::Debug {
    /// Looks at one event; `None` when it is not this coordinator's business.
    fn on_event(&mut self, device_id: &str, event: &DeviceEvent, now_ms: i64) -> Option<Decided>;

    /// The rule's name, recorded as the actor of its commands.
    fn name(&self) -> &'static str {
        "rules"
    }

    /// What the device answered to one of this coordinator's commands;
    /// what to record (and command) because of it. The default ignores it.
    fn on_outcome(
        &mut self,
        _device_id: &str,
        _command: &Command,
        _outcome: &CommandOutcome,
        _now_ms: i64,
    ) -> Option<Decided> {
        None
    }

    /// The device that carries out a command addressed to `target` when
    /// `target` is one of this coordinator's places rather than a device
    /// (a lane id names its barrier, or its camera when the camera's relay
    /// is the barrier). The default knows no place.
    fn route(&self, _target: &str) -> Option<String> {
        None
    }

    /// Takes a reloaded configuration: `diff` names the lanes and doors
    /// (and devices) that were added, removed or changed; everything else
    /// keeps its state. The default ignores it.
    fn reconfigure(&mut self, _config: &Config, _diff: &ConfigDiff) {}
}

/// A rule command's outcome on its way back to its coordinator.
#[derive(Debug)]
struct Outcome {
    coordinator: usize,
    device_id: String,
    command: Command,
    outcome: CommandOutcome,
}

/// How long a driver may take to answer a command. It is also the
/// command's deadline: a driver drops a command it gets later, so nothing
/// is carried out after the pipeline has recorded it as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Submitted batches whose acknowledgement is still pending. Bounds memory:
/// when the disk is slow the pipeline waits instead of queueing without end.
const IN_FLIGHT: usize = 4096;

type Ack = oneshot::Sender<Result<Receipt, NotStored>>;

/// Stamps envelopes with the gateway's identity and clock.
#[derive(Debug, Clone)]
pub struct Stamper {
    estate_id: Arc<str>,
    gateway_id: Arc<str>,
    clock_synced: Arc<AtomicBool>,
}

impl Stamper {
    /// A stamper for this estate and gateway.
    pub fn new(estate_id: &str, gateway_id: &str) -> Self {
        Self {
            estate_id: estate_id.into(),
            gateway_id: gateway_id.into(),
            clock_synced: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Records whether the wall clock is synchronised (checked periodically).
    pub fn set_clock_synced(&self, synced: bool) {
        self.clock_synced.store(synced, Ordering::Relaxed);
    }

    /// A new envelope for an event, not yet stored (`seq` 0).
    pub fn stamp_event(&self, device_id: &str, event: &Event) -> Envelope {
        self.stamp(device_id, event.kind(), event.body(), None)
    }

    /// A new envelope, not yet stored (`seq` 0): the one place an event's
    /// kind and body become the wire's.
    pub fn stamp(
        &self,
        device_id: &str,
        kind: Kind,
        body: serde_json::Value,
        device_time_ms: Option<i64>,
    ) -> Envelope {
        Envelope {
            schema: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            seq: 0,
            time_ms: now_ms(),
            clock_synced: self.clock_synced.load(Ordering::Relaxed),
            device_time_ms,
            estate_id: self.estate_id.to_string(),
            gateway_id: self.gateway_id.to_string(),
            device_id: device_id.to_owned(),
            kind: kind.as_str().to_owned(),
            class: kind.class(),
            body,
        }
    }
}

/// A device event's body as recorded: its own members, with the
/// coordinators' annotations merged in (an annotation's member replaces
/// the event's of the same name: a door's id for a controller's door
/// number, a masked code for the code).
pub fn annotated_body(event: &DeviceEvent, annotations: &[Annotation]) -> serde_json::Value {
    let mut body = event.body();
    if let Some(map) = body.as_object_mut() {
        for annotation in annotations {
            map.extend(annotation.members());
        }
    }
    body
}

/// The result of a command, after it was audited.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandReport {
    /// What the device said.
    pub outcome: CommandOutcome,
    /// Sequence number of the audit event, if it was stored.
    pub audit_seq: Option<u64>,
}

/// An input that is not a device event.
#[derive(Debug)]
pub enum Control {
    /// A command for one device.
    Command {
        /// Target device id.
        device_id: String,
        /// What to do.
        command: Command,
        /// Who asked.
        origin: Origin,
        /// Where the audited result goes.
        reply: oneshot::Sender<CommandReport>,
    },
    /// An event the gateway itself records (alarms about the store, lifecycle).
    Record {
        /// The device it is about ([`GATEWAY_DEVICE`] for the gateway).
        device_id: String,
        /// The event.
        event: Event,
        /// State changes committed with it.
        effects: Vec<Effect>,
        /// Completed once stored.
        ack: Option<Ack>,
    },
    /// A liveness probe: answered by the loop itself, so an answer proves
    /// the loop is turning (systemd's watchdog, [`crate::ops::notify`]).
    Ping(oneshot::Sender<()>),
    /// A reloaded configuration for the coordinators
    /// ([`Coordinator::reconfigure`]); answered once they have it.
    Reconfigure {
        /// The configuration now in force.
        config: Arc<Config>,
        /// What changed.
        diff: Arc<ConfigDiff>,
        /// Answered when every coordinator has taken it.
        done: oneshot::Sender<()>,
    },
}

/// A cloneable handle for sending control inputs to the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineHandle {
    control: mpsc::Sender<Control>,
}

impl PipelineHandle {
    /// Sends a command through the pipeline and waits for its audited result.
    pub async fn command(
        &self,
        device_id: &str,
        command: Command,
        origin: Origin,
    ) -> CommandReport {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .control
            .send(Control::Command {
                device_id: device_id.to_owned(),
                command,
                origin,
                reply,
            })
            .await;
        if sent.is_err() {
            return CommandReport {
                outcome: CommandOutcome::Failed("gateway is shutting down".into()),
                audit_seq: None,
            };
        }
        rx.await.unwrap_or(CommandReport {
            outcome: CommandOutcome::Failed("gateway is shutting down".into()),
            audit_seq: None,
        })
    }

    /// Whether the pipeline's loop answers a probe (false once it is gone;
    /// a wedged loop never answers, so callers bound the wait).
    pub async fn ping(&self) -> bool {
        let (reply, rx) = oneshot::channel();
        if self.control.send(Control::Ping(reply)).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }

    /// Hands a reloaded configuration to the coordinators, between two
    /// inputs; `false` when the pipeline has stopped.
    pub async fn reconfigure(&self, config: Arc<Config>, diff: Arc<ConfigDiff>) -> bool {
        let (done, rx) = oneshot::channel();
        let control = Control::Reconfigure { config, diff, done };
        if self.control.send(control).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }

    /// Records a gateway event and waits until it is on disk.
    pub async fn record(
        &self,
        device_id: &str,
        event: impl Into<Event>,
    ) -> Result<Receipt, NotStored> {
        self.record_with(device_id, event, Vec::new()).await
    }

    /// Records a gateway event with state changes committed in the same
    /// transaction, and waits until both are on disk.
    pub async fn record_with(
        &self,
        device_id: &str,
        event: impl Into<Event>,
        effects: Vec<Effect>,
    ) -> Result<Receipt, NotStored> {
        let (ack, rx) = oneshot::channel();
        self.control
            .send(Control::Record {
                device_id: device_id.to_owned(),
                event: event.into(),
                effects,
                ack: Some(ack),
            })
            .await
            .map_err(|_| NotStored("gateway is shutting down".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(NotStored("gateway is shutting down".into())))
    }
}

/// How many recorded events a slow feed subscriber may fall behind before it
/// misses some (it is told how many; the store still has them all).
const FEED_CAPACITY: usize = 1024;

/// Recorded events, published after they are on disk (with their `seq`), for
/// the panel's live page and local journals. Subscribers that fall behind
/// lose the oldest (`RecvError::Lagged`); nothing waits for them.
#[derive(Debug, Clone)]
pub struct EventFeed {
    tx: broadcast::Sender<Arc<Envelope>>,
}

impl Default for EventFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl EventFeed {
    /// A feed with no subscribers yet.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(FEED_CAPACITY).0,
        }
    }

    /// A new subscriber, receiving events recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.tx.subscribe()
    }

    fn wanted(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    fn publish(&self, envelope: Envelope) {
        let _ = self.tx.send(Arc::new(envelope));
    }
}

/// A submitted batch waiting for the disk, with whom to tell.
struct Completion {
    ticket: AppendTicket,
    /// The producer's acknowledgement and what the rules decided for it.
    ack: Option<(Ack, Option<Decision>)>,
    labels: Vec<(String, drivers::Class)>,
    /// Copies for the feed, kept only while somebody listens.
    copies: Option<Vec<Envelope>>,
}

/// The pipeline task's state. Build with [`Pipeline::new`], run with [`Pipeline::run`].
#[derive(Debug)]
pub struct Pipeline {
    devices: mpsc::Receiver<Inbound>,
    control: mpsc::Receiver<Control>,
    store: Store,
    drivers: Drivers,
    stamper: Stamper,
    coordinators: Vec<Box<dyn Coordinator>>,
    metrics: Arc<Metrics>,
    feed: EventFeed,
    commands: TaskTracker,
    outcomes: (mpsc::Sender<Outcome>, mpsc::Receiver<Outcome>),
}

impl Pipeline {
    /// A pipeline reading device events from `devices`; returns it and the
    /// handle for control inputs.
    pub fn new(
        devices: mpsc::Receiver<Inbound>,
        store: Store,
        drivers: Drivers,
        stamper: Stamper,
        coordinators: Vec<Box<dyn Coordinator>>,
        metrics: Arc<Metrics>,
        feed: EventFeed,
    ) -> (Self, PipelineHandle) {
        let (control_tx, control) = mpsc::channel(256);
        let pipeline = Self {
            devices,
            control,
            store,
            drivers,
            stamper,
            coordinators,
            metrics,
            feed,
            commands: TaskTracker::new(),
            outcomes: mpsc::channel(IN_FLIGHT),
        };
        (
            pipeline,
            PipelineHandle {
                control: control_tx,
            },
        )
    }

    /// Runs until `intake` is cancelled, then drains what was already
    /// received and waits until all of it is on disk.
    pub async fn run(mut self, intake: CancellationToken) {
        let (completions_tx, completions_rx) = mpsc::channel(IN_FLIGHT);
        let completer = tokio::spawn(complete(
            completions_rx,
            self.metrics.clone(),
            self.feed.clone(),
        ));
        let mut closing = false;
        loop {
            tokio::select! {
                biased;
                () = intake.cancelled(), if !closing => {
                    closing = true;
                    self.devices.close();
                    self.control.close();
                }
                Some(control) = self.control.recv() => {
                    self.on_control(control, &completions_tx).await;
                }
                Some(inbound) = self.devices.recv() => {
                    self.on_device(inbound, &completions_tx).await;
                }
                Some(outcome) = self.outcomes.1.recv(), if !closing => {
                    self.on_outcome(outcome, &completions_tx).await;
                }
                else => break,
            }
        }
        self.commands.close();
        self.commands.wait().await;
        drop(completions_tx);
        if let Err(error) = completer.await {
            tracing::error!(%error, "Acknowledgement task failed.");
        }
    }

    async fn on_device(&mut self, inbound: Inbound, completions: &mpsc::Sender<Completion>) {
        let Inbound {
            device_id,
            event,
            device_time_ms,
            ack,
        } = inbound;
        let device = device_id.as_str();
        let now = now_ms();
        let mut extra = Vec::new();
        let mut commands = Vec::new();
        let mut effects = Vec::new();
        let mut annotations = Vec::new();
        for (index, coordinator) in self.coordinators.iter_mut().enumerate() {
            if let Some(decided) = coordinator.on_event(device, &event, now) {
                annotations.extend(decided.annotate);
                extra.extend(decided.records);
                effects.extend(decided.effects);
                let origin = Origin {
                    actor: coordinator.name().to_owned(),
                    via: "rule".into(),
                    reason: Some(format!("{} from {device}", event.kind())),
                    remote: None,
                };
                commands.extend(
                    decided
                        .commands
                        .into_iter()
                        .map(|(target, command)| (target, command, origin.clone(), index)),
                );
            }
        }
        let body = annotated_body(&event, &annotations);
        let mut batch =
            vec![
                self.stamper
                    .stamp(device, Kind::of_device(&event), body, device_time_ms),
            ];
        for record in extra {
            batch.push(
                self.stamper
                    .stamp_event(&record.device_id, &Event::Gateway(record.event)),
            );
        }
        // Actuate first (local before remote, and before the disk): the
        // commands do not wait for the append.
        for (target, command, origin, index) in commands {
            self.dispatch(target, command, origin, index);
        }
        let decided = annotations.iter().find_map(Annotation::decision);
        submit(
            &self.store,
            &self.feed,
            (batch, effects),
            ack.map(|a| (a, decided)),
            completions,
        )
        .await;
    }

    /// Sends a rule's command to a device without waiting. Its outcome is
    /// audited like every actuation (a `command` event with the rule as
    /// origin); a failure is also raised as a `command_failed` alarm.
    fn dispatch(&self, device_id: String, command: Command, origin: Origin, coordinator: usize) {
        let deadline = tokio::time::Instant::now() + COMMAND_TIMEOUT;
        let pending = match self.drivers.get(&device_id) {
            None => Err(CommandOutcome::Failed(format!(
                "unknown device {device_id}"
            ))),
            Some(handle) => handle.try_command_by(command.clone(), deadline),
        };
        let store = self.store.clone();
        let stamper = self.stamper.clone();
        let metrics = self.metrics.clone();
        let feed = self.feed.clone();
        let back = self.outcomes.0.clone();
        self.commands.spawn(async move {
            let outcome = await_outcome(pending, deadline).await;
            // The coordinator learns what the device did (a lane whose OPEN
            // failed asks the guard instead of recording an entry).
            let _ = back
                .send(Outcome {
                    coordinator,
                    device_id: device_id.clone(),
                    command: command.clone(),
                    outcome: outcome.clone(),
                })
                .await;
            let audit = GatewayEvent::Command(CommandAudit {
                command: Commanded::Device(command.clone()),
                outcome: outcome.clone(),
                origin,
            });
            let mut batch = vec![stamper.stamp_event(&device_id, &audit.into())];
            if outcome != CommandOutcome::Done {
                tracing::warn!(device = %device_id, command = command.name(), ?outcome, "A rule's command was not carried out.");
                let failed = GatewayEvent::CommandFailed(CommandFailed { command, outcome });
                batch.push(stamper.stamp_event(&device_id, &failed.into()));
            }
            for envelope in batch {
                let copy = feed.wanted().then(|| envelope.clone());
                let (kind, class) = (envelope.kind.clone(), envelope.class);
                match store.append(envelope).await {
                    Ok(seq) => {
                        metrics.appended(&kind, class);
                        if let Some(mut copy) = copy {
                            copy.seq = seq;
                            feed.publish(copy);
                        }
                    }
                    Err(error) => {
                        static NOT_STORED: crate::logging::Every = crate::logging::Every::minute();
                        if let Some(count) = NOT_STORED.allow() {
                            tracing::error!(%error, kind, count, "Records of rules' commands were not stored (one line a minute, with the count).");
                        }
                    }
                }
            }
        });
    }

    /// Hands a rule command's outcome to its coordinator and records what
    /// it decides because of it.
    async fn on_outcome(&mut self, outcome: Outcome, completions: &mpsc::Sender<Completion>) {
        let Some(coordinator) = self.coordinators.get_mut(outcome.coordinator) else {
            return;
        };
        let now = now_ms();
        let Some(decided) =
            coordinator.on_outcome(&outcome.device_id, &outcome.command, &outcome.outcome, now)
        else {
            return;
        };
        let origin = Origin {
            actor: coordinator.name().to_owned(),
            via: "rule".into(),
            reason: Some(format!("outcome of {}", outcome.command.name())),
            remote: None,
        };
        for (target, command) in decided.commands {
            self.dispatch(target, command, origin.clone(), outcome.coordinator);
        }
        let batch: Vec<Envelope> = decided
            .records
            .into_iter()
            .map(|r| {
                self.stamper
                    .stamp_event(&r.device_id, &Event::Gateway(r.event))
            })
            .collect();
        if !batch.is_empty() || !decided.effects.is_empty() {
            submit(
                &self.store,
                &self.feed,
                (batch, decided.effects),
                None,
                completions,
            )
            .await;
        }
    }

    async fn on_control(&mut self, control: Control, completions: &mpsc::Sender<Completion>) {
        match control {
            Control::Ping(reply) => {
                let _ = reply.send(());
            }
            Control::Reconfigure { config, diff, done } => {
                for coordinator in &mut self.coordinators {
                    coordinator.reconfigure(&config, &diff);
                }
                let _ = done.send(());
            }
            Control::Record {
                device_id,
                event,
                effects,
                ack,
            } => {
                let envelope = self.stamper.stamp_event(&device_id, &event);
                submit(
                    &self.store,
                    &self.feed,
                    (vec![envelope], effects),
                    ack.map(|a| (a, None)),
                    completions,
                )
                .await;
            }
            Control::Command {
                device_id,
                command,
                origin,
                reply,
            } => {
                let deadline = tokio::time::Instant::now() + COMMAND_TIMEOUT;
                // A place (a lane) is commanded through the device that
                // drives it, whatever that is.
                let device_id = match self.drivers.get(&device_id) {
                    Some(_) => device_id,
                    None => self
                        .coordinators
                        .iter()
                        .find_map(|c| c.route(&device_id))
                        .unwrap_or(device_id),
                };
                let pending = match self.drivers.get(&device_id) {
                    None => Err(CommandOutcome::Failed(format!(
                        "unknown device or lane {device_id}"
                    ))),
                    Some(handle) => handle.try_command_by(command.clone(), deadline),
                };
                let store = self.store.clone();
                let stamper = self.stamper.clone();
                let metrics = self.metrics.clone();
                let feed = self.feed.clone();
                self.commands.spawn(async move {
                    let outcome = await_outcome(pending, deadline).await;
                    let audit = GatewayEvent::Command(CommandAudit {
                        command: Commanded::Device(command),
                        outcome: outcome.clone(),
                        origin,
                    });
                    let audit = stamper.stamp_event(&device_id, &audit.into());
                    let copy = feed.wanted().then(|| audit.clone());
                    let audit_seq = match store.append(audit).await {
                        Ok(seq) => {
                            metrics.appended(Kind::Command.as_str(), Kind::Command.class());
                            if let Some(mut copy) = copy {
                                copy.seq = seq;
                                feed.publish(copy);
                            }
                            Some(seq)
                        }
                        Err(error) => {
                            static NOT_STORED: crate::logging::Every =
                                crate::logging::Every::minute();
                            if let Some(count) = NOT_STORED.allow() {
                                tracing::error!(%error, device = %device_id, count, "Audit records of commands were not stored (one line a minute, with the count).");
                            }
                            None
                        }
                    };
                    let _ = reply.send(CommandReport { outcome, audit_seq });
                });
            }
        }
    }
}

/// The driver's answer to a command, or why there is none by `deadline`.
async fn await_outcome(
    pending: Result<oneshot::Receiver<CommandOutcome>, CommandOutcome>,
    deadline: tokio::time::Instant,
) -> CommandOutcome {
    match pending {
        Err(outcome) => outcome,
        Ok(rx) => match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => CommandOutcome::Failed("driver dropped the command".into()),
            Err(_) => CommandOutcome::Failed("device did not answer in time".into()),
        },
    }
}

async fn submit(
    store: &Store,
    feed: &EventFeed,
    (batch, effects): (Vec<Envelope>, Vec<Effect>),
    ack: Option<(Ack, Option<Decision>)>,
    completions: &mpsc::Sender<Completion>,
) {
    let labels = batch.iter().map(|e| (e.kind.clone(), e.class)).collect();
    let copies = feed.wanted().then(|| batch.clone());
    let ticket = store.submit_with(batch, effects);
    let completion = Completion {
        ticket,
        ack,
        labels,
        copies,
    };
    if let Err(mpsc::error::SendError(completion)) = completions.send(completion).await {
        // The completer only stops after the pipeline; answer directly.
        if let Some((ack, _)) = completion.ack {
            let _ = ack.send(Err(NotStored("gateway is shutting down".into())));
        }
    }
}

/// Completes acknowledgements in submission order as the store commits.
async fn complete(
    mut completions: mpsc::Receiver<Completion>,
    metrics: Arc<Metrics>,
    feed: EventFeed,
) {
    while let Some(Completion {
        ticket,
        ack,
        labels,
        copies,
    }) = completions.recv().await
    {
        let results = ticket.wait().await;
        if let Some(copies) = copies {
            for (mut envelope, result) in copies.into_iter().zip(&results) {
                if let Ok(seq) = result {
                    envelope.seq = *seq;
                    feed.publish(envelope);
                }
            }
        }
        for ((kind, class), result) in labels.iter().zip(&results) {
            match result {
                Ok(_) => metrics.appended(kind, *class),
                Err(error) => {
                    tracing::debug!(%error, kind, "Event not stored.");
                }
            }
        }
        if let Some((ack, decided)) = ack {
            let answer = match results.into_iter().next() {
                Some(Ok(seq)) => Ok(Receipt { seq, decided }),
                Some(Err(error)) => Err(NotStored(error.to_string())),
                None => Err(NotStored("store returned no result".into())),
            };
            let _ = ack.send(answer);
        }
    }
}
