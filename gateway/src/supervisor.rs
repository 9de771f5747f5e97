//! The supervisor: runs every driver as a task with its [`DriverContext`],
//! restarts failing drivers with jittered exponential backoff, stops
//! misconfigured ones without spinning, and keeps the [`Drivers`] registry
//! through which everyone else reaches a device (its command inbox and its
//! health).
//!
//! A driver that panics is treated as a failure like any other: the panic
//! is caught at the run, its message raised as a `driver_failed` alarm and
//! the driver restarted with backoff (its actuators were released as the
//! panic unwound through their guards).
//!
//! An operator can ask for a restart ([`DriverHandle::restart`]): the
//! current run's cancellation token (a child of the driver's) is cancelled,
//! so the driver puts its actuators in their safe state and returns, and the
//! supervisor starts a new run at once (counted as a restart). Each run gets
//! a fresh child token for this.
//!
//! A reload stops, starts and restarts single devices through the
//! [`Fleet`], which owns each device's task under its own cancellation;
//! every clone of the [`Drivers`] registry sees the change at once.
//!
//! **Invariant:** one task per driver, and so one owner per physical
//! resource; nothing else talks to a device except through its handle.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use drivers::contract::HealthState;
use drivers::{
    Command, CommandOutcome, CommandRequest, DeviceEvent, DeviceId, Driver, DriverContext,
    DriverError, EventSender, Health, HealthReporter, Inbound,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::SupervisorConfig;
use crate::tasks::{CoreWatch, Tasks, panic_message};
use crate::vocab::backoff::Backoff;
use futures::FutureExt as _;
use std::panic::AssertUnwindSafe;

/// How many commands may wait in one driver's inbox.
const INBOX_CAPACITY: usize = 16;

/// A run that lasted this long resets the backoff.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Repeated failures of one driver are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The supervisor's view of one device.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    /// The device's id.
    pub id: DeviceId,
    /// Display name.
    pub name: String,
    /// Driver type, e.g. `sim-tank`.
    pub kind: &'static str,
    commands: mpsc::Sender<CommandRequest>,
    health: watch::Receiver<Health>,
    restart: mpsc::Sender<()>,
}

/// Why a restart request was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartError {
    /// The driver has stopped for good (misconfigured, or shutting down).
    #[error("driver stopped")]
    Stopped,
}

impl DriverHandle {
    /// The device's current health.
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    /// Asks the supervisor to stop the current run (cancelled, so the
    /// driver reaches its safe state) and start a new one at once. A second
    /// request while one is pending is the same request.
    pub fn restart(&self) -> Result<(), RestartError> {
        match self.restart.try_send(()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(())) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(())) => Err(RestartError::Stopped),
        }
    }

    /// Hands a command to the driver without waiting for room: a driver whose
    /// inbox is full or that has stopped answers at once with `Failed`.
    pub fn try_command(
        &self,
        command: Command,
    ) -> Result<tokio::sync::oneshot::Receiver<CommandOutcome>, CommandOutcome> {
        self.send(CommandRequest::new(command))
    }

    /// Like [`Self::try_command`], for a command that must be carried out
    /// by `deadline` or not at all (the driver drops it after).
    pub fn try_command_by(
        &self,
        command: Command,
        deadline: tokio::time::Instant,
    ) -> Result<tokio::sync::oneshot::Receiver<CommandOutcome>, CommandOutcome> {
        self.send(CommandRequest::with_deadline(command, deadline))
    }

    fn send(
        &self,
        (request, outcome): (
            CommandRequest,
            tokio::sync::oneshot::Receiver<CommandOutcome>,
        ),
    ) -> Result<tokio::sync::oneshot::Receiver<CommandOutcome>, CommandOutcome> {
        match self.commands.try_send(request) {
            Ok(()) => Ok(outcome),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(CommandOutcome::Failed("device busy".into()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(CommandOutcome::Failed("driver stopped".into()))
            }
        }
    }
}

/// Every running device's handle, by id. Cheap to clone; every clone sees
/// the devices a reload starts and stops ([`Fleet`]).
#[derive(Debug, Clone, Default)]
pub struct Drivers(Arc<RwLock<Arc<BTreeMap<DeviceId, DriverHandle>>>>);

impl Drivers {
    fn snapshot(&self) -> Arc<BTreeMap<DeviceId, DriverHandle>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<DeviceId, DriverHandle>)) {
        let mut current = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let mut map = (**current).clone();
        change(&mut map);
        *current = Arc::new(map);
    }

    /// The handle of `id`.
    pub fn get(&self, id: &str) -> Option<DriverHandle> {
        self.snapshot().get(&DeviceId::new(id)).cloned()
    }

    /// All handles, ordered by id (as they are now).
    pub fn iter(&self) -> impl Iterator<Item = DriverHandle> + use<> {
        self.snapshot()
            .values()
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }
}

/// The supervised drivers' owner: each device's task under its own
/// cancellation (a child of the fleet's), so that a reload can stop, start
/// and restart devices one by one while the others run on.
#[derive(Debug)]
pub struct Fleet {
    drivers: Drivers,
    units: BTreeMap<DeviceId, Unit>,
    events: mpsc::Sender<Inbound>,
    config: SupervisorConfig,
    cancel: CancellationToken,
    watch: CoreWatch,
}

/// One device's supervisor task and what stops it.
#[derive(Debug)]
struct Unit {
    cancel: CancellationToken,
    tasks: Tasks,
}

impl Fleet {
    /// An empty fleet whose drivers send to `events`; `cancel` stops them
    /// all, and `watch` reports a supervisor's panic.
    pub fn new(
        events: mpsc::Sender<Inbound>,
        config: &SupervisorConfig,
        cancel: CancellationToken,
        watch: CoreWatch,
    ) -> Self {
        Self {
            drivers: Drivers::default(),
            units: BTreeMap::new(),
            events,
            config: config.clone(),
            cancel,
            watch,
        }
    }

    /// The registry of the running devices' handles.
    pub fn drivers(&self) -> Drivers {
        self.drivers.clone()
    }

    /// Where the fleet's drivers send their events (the pipeline), for
    /// the devices whose events arrive elsewhere (plate cameras' pushes).
    pub fn events(&self) -> mpsc::Sender<Inbound> {
        self.events.clone()
    }

    /// Starts each driver in its own task (a device already running must
    /// be stopped first).
    pub fn start(&mut self, supervised: Vec<Supervised>) {
        for device in supervised {
            let cancel = self.cancel.child_token();
            let mut tasks = Tasks::default();
            let id = device.id.clone();
            let handle = spawn(
                device,
                &self.events,
                &self.config,
                &cancel,
                &mut tasks,
                &self.watch,
            );
            self.drivers.update(|map| {
                map.insert(id.clone(), handle);
            });
            self.units.insert(id, Unit { cancel, tasks });
        }
    }

    /// Stops the devices `ids` (each puts its actuators in their safe state
    /// and returns) and waits for them at most `budget`; returns the tasks
    /// still running then (aborted).
    pub async fn stop(&mut self, ids: &[String], budget: Duration) -> Vec<String> {
        let mut stopping = Vec::new();
        for id in ids {
            let id = DeviceId::new(id.as_str());
            if let Some(unit) = self.units.remove(&id) {
                unit.cancel.cancel();
                stopping.push(unit.tasks);
            }
            self.drivers.update(|map| {
                map.remove(&id);
            });
        }
        let deadline = Instant::now() + budget;
        let mut stragglers = Vec::new();
        for tasks in stopping {
            let left = deadline.saturating_duration_since(Instant::now());
            stragglers.extend(tasks.join_within(left).await);
        }
        stragglers
    }

    /// Waits at most `budget` for every device's task (after the fleet's
    /// cancellation); returns those still running then (aborted).
    pub async fn join_within(self, budget: Duration) -> Vec<String> {
        let deadline = Instant::now() + budget;
        let mut stragglers = Vec::new();
        for (_, unit) in self.units {
            let left = deadline.saturating_duration_since(Instant::now());
            stragglers.extend(unit.tasks.join_within(left).await);
        }
        stragglers
    }
}

/// A driver ready to be supervised.
pub struct Supervised {
    /// Device id.
    pub id: DeviceId,
    /// Display name.
    pub name: String,
    /// The driver.
    pub driver: Box<dyn Driver>,
}

impl std::fmt::Debug for Supervised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervised")
            .field("id", &self.id)
            .field("kind", &self.driver.kind())
            .finish()
    }
}

/// Starts every driver in its own task under `tasks` (watched by `watch`:
/// a supervisor that panics is reported), each cancelled by `cancel`, and
/// returns the registry of their handles.
pub fn start(
    supervised: Vec<Supervised>,
    events: &mpsc::Sender<Inbound>,
    config: &SupervisorConfig,
    cancel: &CancellationToken,
    tasks: &mut Tasks,
    watch: &CoreWatch,
) -> Drivers {
    let drivers = Drivers::default();
    for device in supervised {
        let id = device.id.clone();
        let handle = spawn(device, events, config, cancel, tasks, watch);
        drivers.update(|map| {
            map.insert(id, handle);
        });
    }
    drivers
}

/// Spawns one driver's supervisor under `tasks`, cancelled by `cancel`.
fn spawn(
    Supervised { id, name, driver }: Supervised,
    events: &mpsc::Sender<Inbound>,
    config: &SupervisorConfig,
    cancel: &CancellationToken,
    tasks: &mut Tasks,
    watch: &CoreWatch,
) -> DriverHandle {
    let (commands_tx, commands_rx) = mpsc::channel(INBOX_CAPACITY);
    let (health, health_rx) = HealthReporter::new();
    let (restart_tx, restart_rx) = mpsc::channel(1);
    let ctx = DriverContext {
        device_id: id.clone(),
        events: EventSender::new(id.clone(), events.clone()),
        commands: commands_rx,
        health,
        cancel: cancel.child_token(),
    };
    let kind = driver.kind();
    let span = tracing::info_span!("driver", device = %id, kind);
    let backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    tasks.spawn_owned(
        watch,
        format!("driver {id}"),
        supervise(driver, ctx, backoff, restart_rx).instrument(span),
    );
    DriverHandle {
        id,
        name,
        kind,
        commands: commands_tx,
        health: health_rx,
        restart: restart_tx,
    }
}

/// Runs one driver until it is cancelled or fails for good.
async fn supervise(
    mut driver: Box<dyn Driver>,
    mut ctx: DriverContext,
    mut backoff: Backoff,
    mut restarts: mpsc::Receiver<()>,
) {
    let alarms = ctx.events.clone();
    let mut health = ctx.health.subscribe();
    let mut alarm_raised = false;
    let mut log_limit = LogLimit::default();
    let cancel = ctx.cancel.clone();
    loop {
        let started = Instant::now();
        // A fresh token per run, so a restart request cancels only this run.
        ctx.cancel = cancel.child_token();
        let this_run = ctx.cancel.clone();
        let mut restart_requested = false;
        let result = {
            // A panic inside the driver ends this run, not the supervisor.
            let run = AssertUnwindSafe(driver.run(&mut ctx))
                .catch_unwind()
                .map(|ended| {
                    ended.unwrap_or_else(|panic| {
                        Err(DriverError::Transient(format!(
                            "driver panicked: {}",
                            panic_message(panic.as_ref())
                        )))
                    })
                });
            tokio::pin!(run);
            loop {
                tokio::select! {
                    result = &mut run => break result,
                    Some(()) = restarts.recv(), if !restart_requested => {
                        restart_requested = true;
                        this_run.cancel();
                    }
                    Ok(()) = health.changed() => {
                        let recovered = health.borrow_and_update().state == HealthState::Ok;
                        if recovered && alarm_raised {
                            alarm_raised = false;
                            tracing::info!("Driver recovered.");
                            let _ = alarms.emit(driver_alarm(false, "recovered")).await;
                        }
                    }
                }
            }
        };
        if cancel.is_cancelled() {
            break;
        }
        if restart_requested {
            tracing::info!("Driver restarted on request.");
            ctx.health.restarted();
            continue;
        }
        let error = match result {
            Ok(()) => break,
            Err(error) => error,
        };
        let message = error.to_string();
        if !error.is_retryable() {
            tracing::error!(error = %message, "Driver stopped; it will not be restarted until the configuration changes.");
            ctx.health.stopped(Some(&message));
            if !matches!(error, DriverError::PipelineClosed) {
                let _ = alarms.emit(driver_alarm(true, &message)).await;
            }
            return;
        }
        ctx.health.degraded(&message);
        ctx.health.restarted();
        if let Some(suppressed) = log_limit.allow(Instant::now()) {
            tracing::warn!(error = %message, suppressed, "Driver failed; restarting with backoff.");
        }
        if !alarm_raised {
            alarm_raised = true;
            let _ = alarms.emit(driver_alarm(true, &message)).await;
        }
        if started.elapsed() >= STABLE_RUN {
            backoff.reset();
        }
        let delay = backoff.next_delay(&mut rand::rng());
        tokio::select! {
            () = ctx.cancel.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    ctx.health.stopped(None);
}

fn driver_alarm(active: bool, message: &str) -> DeviceEvent {
    DeviceEvent::DeviceAlarm {
        code: "driver_failed".into(),
        message: message.to_owned(),
        active,
    }
}

/// Lets one log line through per [`LOG_EVERY`], counting the rest.
#[derive(Debug, Default)]
struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use futures::future::BoxFuture;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn log_limit_lets_one_line_a_minute_through_and_counts_the_rest() {
        let mut limit = LogLimit::default();
        let t0 = Instant::now();
        assert_eq!(limit.allow(t0), Some(0));
        assert_eq!(limit.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(limit.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(limit.allow(t0 + Duration::from_secs(61)), Some(2));
    }

    /// Fails `failures` times with `error`, then runs until cancelled.
    struct Flaky {
        failures: u32,
        error: DriverError,
        runs: Arc<AtomicU32>,
    }

    impl Driver for Flaky {
        fn kind(&self) -> &'static str {
            "flaky"
        }
        fn run<'a>(
            &'a mut self,
            ctx: &'a mut DriverContext,
        ) -> BoxFuture<'a, Result<(), DriverError>> {
            async move {
                let run = self.runs.fetch_add(1, Ordering::SeqCst);
                if run < self.failures {
                    return Err(self.error.clone());
                }
                ctx.health.ok();
                ctx.cancel.cancelled().await;
                Ok(())
            }
            .boxed()
        }
    }

    fn config() -> SupervisorConfig {
        SupervisorConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            drain_budget: Duration::from_secs(5),
        }
    }

    async fn wait_for_state(handle: &DriverHandle, state: HealthState) -> Health {
        let mut rx = handle.health.clone();
        let health = rx
            .wait_for(|h| h.state == state)
            .await
            .expect("health sender alive");
        health.clone()
    }

    #[tokio::test(start_paused = true)]
    async fn supervisor_restarts_a_transient_failure_and_reports_recovery() {
        let runs = Arc::new(AtomicU32::new(0));
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::default();
        let drivers = start(
            vec![Supervised {
                id: DeviceId::new("d1"),
                name: "d1".into(),
                driver: Box::new(Flaky {
                    failures: 2,
                    error: DriverError::Transient("link down".into()),
                    runs: runs.clone(),
                }),
            }],
            &tx,
            &config(),
            &cancel,
            &mut tasks,
            &CoreWatch::detached(),
        );
        let handle = drivers.get("d1").expect("registered");
        let health = wait_for_state(&handle, HealthState::Ok).await;
        assert_eq!(health.restarts, 2);
        assert_eq!(health.last_error.as_deref(), Some("transient: link down"));
        assert_eq!(runs.load(Ordering::SeqCst), 3);

        let raised = rx.recv().await.expect("alarm raised");
        assert!(matches!(
            raised.event,
            DeviceEvent::DeviceAlarm { active: true, .. }
        ));
        let cleared = rx.recv().await.expect("alarm cleared");
        assert!(matches!(
            cleared.event,
            DeviceEvent::DeviceAlarm { active: false, .. }
        ));

        cancel.cancel();
        assert!(tasks.join_within(Duration::from_secs(1)).await.is_empty());
        assert_eq!(handle.health().state, HealthState::Stopped);
    }

    /// Panics on its first `panics` runs (holding a relay guard that
    /// records its release), then runs until cancelled.
    struct Panicky {
        panics: u32,
        runs: Arc<AtomicU32>,
        released: Arc<AtomicU32>,
    }

    /// De-energises "the relay" when dropped, as the real guards do.
    struct RelayGuard(Arc<AtomicU32>);

    impl Drop for RelayGuard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Driver for Panicky {
        fn kind(&self) -> &'static str {
            "panicky"
        }
        fn run<'a>(
            &'a mut self,
            ctx: &'a mut DriverContext,
        ) -> BoxFuture<'a, Result<(), DriverError>> {
            async move {
                let _relay = RelayGuard(self.released.clone());
                let run = self.runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                assert!(run >= self.panics, "index out of range in run {run}");
                ctx.health.ok();
                ctx.cancel.cancelled().await;
                Ok(())
            }
            .boxed()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_driver_is_alarmed_and_restarted_with_backoff() {
        let runs = Arc::new(AtomicU32::new(0));
        let released = Arc::new(AtomicU32::new(0));
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::default();
        let (watch, mut failures) = CoreWatch::new();
        let drivers = start(
            vec![Supervised {
                id: DeviceId::new("p1"),
                name: "p1".into(),
                driver: Box::new(Panicky {
                    panics: 3,
                    runs: runs.clone(),
                    released: released.clone(),
                }),
            }],
            &tx,
            &config(),
            &cancel,
            &mut tasks,
            &watch,
        );
        let handle = drivers.get("p1").expect("registered");
        let started = Instant::now();
        let health = wait_for_state(&handle, HealthState::Ok).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert_eq!(health.restarts, 3);
        assert_eq!(
            released.load(Ordering::SeqCst),
            3,
            "each panic released the relay"
        );
        // Backoff between the runs: at least 50 + 100 + 200 ms (jitter keeps
        // each delay in the upper half of its window).
        assert!(
            started.elapsed() >= Duration::from_millis(175),
            "{:?}",
            started.elapsed()
        );

        let raised = rx.recv().await.expect("alarm raised");
        match raised.event {
            DeviceEvent::DeviceAlarm {
                active: true,
                ref message,
                ..
            } => assert!(
                message.contains("driver panicked: index out of range"),
                "{message}"
            ),
            ref other => panic!("expected an alarm, got {other:?}"),
        }
        let cleared = rx.recv().await.expect("alarm cleared");
        assert!(matches!(
            cleared.event,
            DeviceEvent::DeviceAlarm { active: false, .. }
        ));
        cancel.cancel();
        assert!(tasks.join_within(Duration::from_secs(1)).await.is_empty());
        assert!(
            failures.try_recv().is_err(),
            "the supervisor itself survived"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn supervisor_restarts_a_running_driver_on_request() {
        let runs = Arc::new(AtomicU32::new(0));
        let (tx, _rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::default();
        let drivers = start(
            vec![Supervised {
                id: DeviceId::new("d3"),
                name: "d3".into(),
                driver: Box::new(Flaky {
                    failures: 0,
                    error: DriverError::Transient("unused".into()),
                    runs: runs.clone(),
                }),
            }],
            &tx,
            &config(),
            &cancel,
            &mut tasks,
            &CoreWatch::detached(),
        );
        let handle = drivers.get("d3").expect("registered");
        wait_for_state(&handle, HealthState::Ok).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        handle.restart().expect("restart accepted");
        let mut rx = handle.health.clone();
        rx.wait_for(|h| h.restarts == 1)
            .await
            .expect("health sender alive");
        // The new run starts without delay (no backoff): a few yields.
        for _ in 0..1000 {
            if runs.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "a new run started");

        cancel.cancel();
        assert!(tasks.join_within(Duration::from_secs(1)).await.is_empty());
        assert_eq!(handle.restart(), Err(RestartError::Stopped));
    }

    #[tokio::test(start_paused = true)]
    async fn supervisor_stops_a_misconfigured_driver_without_retrying() {
        let runs = Arc::new(AtomicU32::new(0));
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::default();
        let drivers = start(
            vec![Supervised {
                id: DeviceId::new("d2"),
                name: "d2".into(),
                driver: Box::new(Flaky {
                    failures: u32::MAX,
                    error: DriverError::Misconfigured("no such port".into()),
                    runs: runs.clone(),
                }),
            }],
            &tx,
            &config(),
            &cancel,
            &mut tasks,
            &CoreWatch::detached(),
        );
        let handle = drivers.get("d2").expect("registered");
        let health = wait_for_state(&handle, HealthState::Stopped).await;
        assert_eq!(
            health.last_error.as_deref(),
            Some("misconfigured: no such port")
        );
        assert!(tasks.join_within(Duration::from_secs(1)).await.is_empty());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "a misconfigured driver must not spin"
        );
        let alarm = rx.recv().await.expect("alarm");
        assert!(matches!(
            alarm.event,
            DeviceEvent::DeviceAlarm { active: true, .. }
        ));
        // The stopped driver answers commands at once instead of hanging.
        let outcome = handle.try_command(Command::Poll).expect_err("stopped");
        assert_eq!(outcome, CommandOutcome::Failed("driver stopped".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_stops_and_starts_one_device_and_leaves_the_other_running() {
        let (tx, _rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let mut fleet = Fleet::new(tx, &config(), cancel.clone(), CoreWatch::detached());
        let flaky = |runs: &Arc<AtomicU32>| {
            Box::new(Flaky {
                failures: 0,
                error: DriverError::Transient("unused".into()),
                runs: runs.clone(),
            })
        };
        let (a_runs, b_runs) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        fleet.start(vec![
            Supervised {
                id: DeviceId::new("a"),
                name: "a".into(),
                driver: flaky(&a_runs),
            },
            Supervised {
                id: DeviceId::new("b"),
                name: "b".into(),
                driver: flaky(&b_runs),
            },
        ]);
        let drivers = fleet.drivers();
        let a = drivers.get("a").expect("a");
        wait_for_state(&a, HealthState::Ok).await;
        wait_for_state(&drivers.get("b").expect("b"), HealthState::Ok).await;

        // b is restarted with a new driver: a is not touched.
        assert!(
            fleet
                .stop(&["b".into()], Duration::from_secs(1))
                .await
                .is_empty()
        );
        assert!(drivers.get("b").is_none(), "the registry follows the fleet");
        let b2_runs = Arc::new(AtomicU32::new(0));
        fleet.start(vec![Supervised {
            id: DeviceId::new("b"),
            name: "b".into(),
            driver: flaky(&b2_runs),
        }]);
        wait_for_state(&drivers.get("b").expect("b again"), HealthState::Ok).await;
        assert_eq!(b2_runs.load(Ordering::SeqCst), 1);
        assert_eq!(
            a_runs.load(Ordering::SeqCst),
            1,
            "a ran once, never restarted"
        );
        assert_eq!(a.health().state, HealthState::Ok);
        assert_eq!(drivers.len(), 2);

        cancel.cancel();
        assert!(fleet.join_within(Duration::from_secs(1)).await.is_empty());
        assert_eq!(a.health().state, HealthState::Stopped);
    }
}
