//! The contract between the gateway and every device driver.
//!
//! A driver is a long-running task that owns one physical resource (a bus, a
//! port, a socket). The supervisor gives it a [`DriverContext`]:
//!
//! - an [`EventSender`] to report [`DeviceEvent`]s to the pipeline (bounded,
//!   so a slow pipeline slows the driver instead of growing memory);
//! - a command inbox of [`CommandRequest`]s, each with its reply channel;
//! - a [`HealthReporter`];
//! - a [`CancellationToken`] that fires on shutdown.
//!
//! **Contract Invariant:** when `cancel` fires, a driver puts its actuators in
//! their safe state and returns `Ok(())`. An error return is classified: a
//! [`DriverError::Transient`] or [`DriverError::Device`] error is retried with
//! jittered exponential backoff, a [`DriverError::Misconfigured`] one stops
//! the driver until the configuration changes (no spinning).

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::command::CommandRequest;
use crate::event::DeviceEvent;

/// The configured identity of a device (unique within a gateway).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeviceId(Arc<str>);

impl DeviceId {
    /// Wraps a configured id.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a driver stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The connection or transport failed; retrying later may succeed.
    #[error("transient: {0}")]
    Transient(String),
    /// The device reported an error of its own (an exception, a fault code).
    #[error("device reported: {0}")]
    Device(String),
    /// The configuration cannot work (a port that does not exist, a bad
    /// address); retrying will not help.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// The pipeline is gone: the gateway is shutting down.
    #[error("pipeline closed")]
    PipelineClosed,
}

impl DriverError {
    /// Whether the supervisor should restart the driver after this error.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DriverError::Transient(_) | DriverError::Device(_))
    }
}

/// Proof that an event reached the store's disk, with what the gateway's
/// rules decided about it (for a plate read: allowed or not, and who opens).
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The event's sequence number in the store.
    pub seq: u64,
    /// The rules' decision about the event, when they made one (the full
    /// decision with its reason is in the recorded event's body).
    pub decided: Option<Decision>,
}

/// What the gateway's rules decided about a stored event, as far as its
/// producer acts on it (a plate camera opens its own relay on
/// [`OpenVia::Camera`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the rules let it through (a plate read allowed, a card granted).
    pub allowed: bool,
    /// Who raises the lane's barrier for an allowed plate read.
    pub open_via: Option<OpenVia>,
}

/// Who raises a lane's barrier for an allowed read (`open_via` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenVia {
    /// The lane's barrier controller, commanded by the gateway.
    Barrier,
    /// The plate camera's own relay, asked for in the reply to its push.
    Camera,
}

/// Why an event was not stored (the store refused or failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event not stored: {0}")]
pub struct NotStored(pub String);

/// One event on its way from a producer to the pipeline.
#[derive(Debug)]
pub struct Inbound {
    /// Which device reported it.
    pub device_id: DeviceId,
    /// What it reported.
    pub event: DeviceEvent,
    /// The device's own clock reading, in Unix milliseconds, if it gave one.
    pub device_time_ms: Option<i64>,
    /// Completed once the event is on disk (or could not be stored).
    pub ack: Option<oneshot::Sender<Result<Receipt, NotStored>>>,
}

/// A driver's handle for reporting events to the pipeline.
#[derive(Clone, Debug)]
pub struct EventSender {
    device_id: DeviceId,
    tx: mpsc::Sender<Inbound>,
}

impl EventSender {
    /// Creates a sender that stamps events with `device_id`.
    pub fn new(device_id: DeviceId, tx: mpsc::Sender<Inbound>) -> Self {
        Self { device_id, tx }
    }

    /// The device this sender reports for.
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// Reports an event without waiting for it to be stored.
    pub async fn emit(&self, event: DeviceEvent) -> Result<(), DriverError> {
        self.send(event, None, None).await
    }

    /// Reports an event that the device observed at `device_time_ms`
    /// (Unix ms), without waiting for it to be stored.
    pub async fn emit_at(
        &self,
        event: DeviceEvent,
        device_time_ms: i64,
    ) -> Result<(), DriverError> {
        self.send(event, Some(device_time_ms), None).await
    }

    /// Reports an event and waits until the store has it on disk.
    pub async fn emit_durable(
        &self,
        event: DeviceEvent,
        device_time_ms: Option<i64>,
    ) -> Result<Receipt, DriverError> {
        let (ack, rx) = oneshot::channel();
        self.send(event, device_time_ms, Some(ack)).await?;
        match rx.await {
            Ok(Ok(receipt)) => Ok(receipt),
            Ok(Err(not_stored)) => Err(DriverError::Transient(not_stored.to_string())),
            Err(_) => Err(DriverError::PipelineClosed),
        }
    }

    async fn send(
        &self,
        event: DeviceEvent,
        device_time_ms: Option<i64>,
        ack: Option<oneshot::Sender<Result<Receipt, NotStored>>>,
    ) -> Result<(), DriverError> {
        let inbound = Inbound {
            device_id: self.device_id.clone(),
            event,
            device_time_ms,
            ack,
        };
        self.tx
            .send(inbound)
            .await
            .map_err(|_| DriverError::PipelineClosed)
    }
}

/// A device's link as a driver last reported it: `DeviceLink` events go out
/// only when it changes, so a device that stays down is one event, not one
/// per failed poll. Health is the driver's own business (drivers differ in
/// what a failed exchange means), so `Link` leaves it alone.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    online: Option<bool>,
}

impl Link {
    /// Whether the device was last reported reachable.
    pub fn is_up(&self) -> bool {
        self.online == Some(true)
    }

    /// The last report: `None` before the first.
    pub fn known(&self) -> Option<bool> {
        self.online
    }

    /// Forgets the last report, so the next one is sent whatever it says
    /// (a driver's fresh run reports its link anew).
    pub fn forget(&mut self) {
        self.online = None;
    }

    /// Records the link. On a change, emits `DeviceLink` with `detail()`
    /// and returns `true`; otherwise returns `false` and emits nothing.
    pub async fn report(
        &mut self,
        events: &EventSender,
        online: bool,
        detail: impl FnOnce() -> String,
    ) -> Result<bool, DriverError> {
        if self.online == Some(online) {
            return Ok(false);
        }
        self.online = Some(online);
        events
            .emit(DeviceEvent::DeviceLink {
                online,
                detail: detail(),
            })
            .await?;
        Ok(true)
    }
}

/// A driver's health as shown on the panel, in telemetry and in `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Overall state.
    pub state: HealthState,
    /// The most recent error, if any, as the driver reported it.
    pub last_error: Option<String>,
    /// When the device last answered or reported (Unix ms).
    pub last_seen_ms: Option<i64>,
    /// How often the supervisor restarted the driver.
    pub restarts: u64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: HealthState::Starting,
            last_error: None,
            last_seen_ms: None,
            restarts: 0,
        }
    }
}

/// Coarse driver state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Configured, not yet talking to its device.
    Starting,
    /// Talking to its device.
    Ok,
    /// Failing and being retried.
    Degraded,
    /// Stopped: misconfigured, or shut down.
    Stopped,
}

impl HealthState {
    /// The state's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Starting => "starting",
            HealthState::Ok => "ok",
            HealthState::Degraded => "degraded",
            HealthState::Stopped => "stopped",
        }
    }
}

/// Shared writer of one driver's [`Health`]; readers hold a `watch::Receiver`.
#[derive(Debug, Clone)]
pub struct HealthReporter {
    tx: Arc<watch::Sender<Health>>,
}

impl HealthReporter {
    /// Creates a reporter and its first receiver.
    pub fn new() -> (Self, watch::Receiver<Health>) {
        let (tx, rx) = watch::channel(Health::default());
        (Self { tx: Arc::new(tx) }, rx)
    }

    /// A new receiver of this health.
    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.tx.subscribe()
    }

    /// The device answered: state `Ok`, last seen now.
    pub fn ok(&self) {
        let now = now_ms();
        self.tx.send_modify(|h| {
            h.state = HealthState::Ok;
            h.last_seen_ms = Some(now);
        });
    }

    /// The driver is failing and will be retried.
    pub fn degraded(&self, error: &str) {
        let error = error.to_owned();
        self.tx.send_modify(|h| {
            h.state = HealthState::Degraded;
            h.last_error = Some(error);
        });
    }

    /// The driver stopped (misconfigured, or shut down).
    pub fn stopped(&self, error: Option<&str>) {
        let error = error.map(str::to_owned);
        self.tx.send_modify(|h| {
            h.state = HealthState::Stopped;
            if error.is_some() {
                h.last_error = error;
            }
        });
    }

    /// Counts one supervisor restart.
    pub fn restarted(&self) {
        self.tx.send_modify(|h| h.restarts += 1);
    }

    /// The current health.
    pub fn current(&self) -> Health {
        self.tx.borrow().clone()
    }
}

/// Everything a running driver gets from the supervisor.
#[derive(Debug)]
pub struct DriverContext {
    /// The device this driver serves.
    pub device_id: DeviceId,
    /// Where device events go.
    pub events: EventSender,
    /// Commands for this device, each with a reply channel. It survives
    /// restarts: the supervisor hands the same inbox to the next run.
    pub commands: mpsc::Receiver<CommandRequest>,
    /// Where the driver reports its health.
    pub health: HealthReporter,
    /// Fires on shutdown.
    pub cancel: CancellationToken,
}

/// A [`DriverContext`] for a test, with the other ends of its channels.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct TestContext {
    /// The context to hand to the driver under test.
    pub ctx: DriverContext,
    /// What the driver emits.
    pub events: mpsc::Receiver<Inbound>,
    /// Where the test sends commands.
    pub commands: mpsc::Sender<CommandRequest>,
    /// The driver's health as it reports it.
    pub health: watch::Receiver<Health>,
    /// Cancels the driver.
    pub cancel: CancellationToken,
}

#[cfg(any(test, feature = "test-util"))]
impl DriverContext {
    /// A context for device `id` whose event channel holds
    /// `events_capacity` events (eight commands).
    pub fn for_test(id: &str, events_capacity: usize) -> TestContext {
        let (tx, events) = mpsc::channel(events_capacity);
        let (commands, inbox) = mpsc::channel(8);
        let (reporter, health) = HealthReporter::new();
        let cancel = CancellationToken::new();
        let device_id = DeviceId::new(id);
        TestContext {
            ctx: DriverContext {
                device_id: device_id.clone(),
                events: EventSender::new(device_id, tx),
                commands: inbox,
                health: reporter,
                cancel: cancel.clone(),
            },
            events,
            commands,
            health,
            cancel,
        }
    }
}

/// A device driver. See the module docs for the contract.
pub trait Driver: Send + 'static {
    /// A short name of the driver type (`sim-tank`, `modbus-barrier` …).
    fn kind(&self) -> &'static str;

    /// Runs until cancelled (`Ok`) or until it fails (`Err`). Called again by
    /// the supervisor after a retryable error, with the same context.
    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>>;
}

/// The wall clock in Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn link_reports_only_changes() {
        let (tx, mut rx) = mpsc::channel(8);
        let events = EventSender::new(DeviceId::new("gate"), tx);
        let mut link = Link::default();
        assert!(!link.is_up());
        assert!(
            link.report(&events, false, || "no answer".into())
                .await
                .expect("emit")
        );
        assert!(
            !link
                .report(&events, false, || unreachable!())
                .await
                .expect("emit")
        );
        assert!(
            link.report(&events, true, || "answered".into())
                .await
                .expect("emit")
        );
        assert!(link.is_up());
        link.forget();
        assert!(!link.is_up());
        assert!(
            link.report(&events, true, || "again".into())
                .await
                .expect("emit")
        );
        let mut seen = Vec::new();
        while let Ok(inbound) = rx.try_recv() {
            match inbound.event {
                DeviceEvent::DeviceLink { online, detail } => seen.push((online, detail)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                (false, "no answer".to_owned()),
                (true, "answered".to_owned()),
                (true, "again".to_owned())
            ]
        );
    }

    #[test]
    fn only_transient_and_device_errors_are_retried() {
        assert!(DriverError::Transient("x".into()).is_retryable());
        assert!(DriverError::Device("x".into()).is_retryable());
        assert!(!DriverError::Misconfigured("x".into()).is_retryable());
        assert!(!DriverError::PipelineClosed.is_retryable());
    }

    #[test]
    fn health_reporter_tracks_state_errors_and_restarts() {
        let (reporter, rx) = HealthReporter::new();
        assert_eq!(rx.borrow().state, HealthState::Starting);
        reporter.ok();
        assert_eq!(rx.borrow().state, HealthState::Ok);
        assert!(rx.borrow().last_seen_ms.is_some());
        reporter.degraded("timeout");
        reporter.restarted();
        let h = reporter.current();
        assert_eq!(h.state, HealthState::Degraded);
        assert_eq!(h.last_error.as_deref(), Some("timeout"));
        assert_eq!(h.restarts, 1);
    }

    #[tokio::test]
    async fn emit_durable_waits_for_the_receipt() {
        let (tx, mut rx) = mpsc::channel(1);
        let sender = EventSender::new(DeviceId::new("d1"), tx);
        let pipeline = tokio::spawn(async move {
            let inbound = rx.recv().await.expect("an event");
            assert_eq!(inbound.device_id.as_str(), "d1");
            inbound
                .ack
                .expect("an ack channel")
                .send(Ok(Receipt {
                    seq: 7,
                    decided: None,
                }))
                .expect("sender waiting");
        });
        let event = DeviceEvent::DeviceAlarm {
            code: "tamper".into(),
            message: "cover open".into(),
            active: true,
        };
        let receipt = sender.emit_durable(event, None).await.expect("stored");
        assert_eq!(receipt.seq, 7);
        pipeline.await.expect("pipeline task");
    }

    #[tokio::test]
    async fn emit_fails_when_the_pipeline_is_gone() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let sender = EventSender::new(DeviceId::new("d1"), tx);
        let err = sender
            .emit(DeviceEvent::DeviceAlarm {
                code: "x".into(),
                message: "y".into(),
                active: false,
            })
            .await
            .expect_err("closed");
        assert_eq!(err, DriverError::PipelineClosed);
    }
}
