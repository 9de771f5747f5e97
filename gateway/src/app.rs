//! Starting and stopping a whole gateway: the store, the pipeline, the
//! supervised drivers, the embedded broker and the uplink, and the panel
//! listener, wired together from a [`Config`].
//!
//! Shutdown is phased under one budget (`supervisor.drain_budget`):
//! 1. readiness turns to draining and a `gateway_stopping` audit event is
//!    recorded;
//! 2. drivers are cancelled: they stop intake and put actuators in their
//!    safe state;
//! 3. the pipeline stops taking input, drains what it holds and waits until
//!    it is on disk;
//! 4. the uplink gets what is left of the budget (less a small reserve for
//!    closing) to send what is stored, then disconnects cleanly; what it
//!    could not send stays stored;
//! 5. the store flushes and checkpoints;
//! 6. the panel listener stops.
//!
//! If the budget runs out, the report names the tasks still running.
//!
//! A full data disk does not stop the gateway: the store opens with its
//! reserve and refuses new events ([`crate::store::space`]); gates, doors
//! and the panel go on from memory, readiness says "store unavailable: disk
//! full" while it lasts, and once the store writes again each outage is
//! recorded as a `store_unavailable` alarm (duration, refusals per class).
//!
//! The panel's pages get their [`PanelCore`] once the store, drivers and
//! pipeline are up; when no user exists yet, a one-time setup link is issued
//! ([`Running::setup_url`]) for the CLI to print.
//!
//! A start runs in stages, each a function that puts what it starts into
//! `Owned` (so a start that fails half-way stops it): the panel listener
//! (`start_panel`), the store (`open_store`), the devices under their
//! [`Fleet`] (`start_devices`), the device listener (`start_ingress`), the
//! pipeline with its coordinators (`start_pipeline`), the periodic jobs
//! (`start_jobs`), the platform link
//! (`start_platform`), then the start record and systemd
//! (`record_start`, `follow_store_and_inform_systemd`).
//!
//! A reload ([`Running::reload_from`], on SIGHUP) reads the file again:
//! refused as a whole when it has problems (logged, `config_rejected`
//! alarm), otherwise [`crate::config::diff`] says what changed and only
//! that is stopped, started or restarted: devices through the [`Fleet`]
//! (a Modbus device joins or leaves its line's running bus in
//! [`devices::Buses`], so its neighbours on the line never stop; a plate
//! camera's entry in the device listener's table and a point device's view
//! in the [`Facility`] are swapped with it, and the device listener starts
//! if the first camera arrives), lanes, doors and the threshold alarms
//! through the pipeline's coordinators
//! ([`crate::pipeline::Coordinator::reconfigure`]). A section that needs
//! a restart keeps its settings and is logged; the reload is a
//! `config_reloaded` audit event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, LockoutPolicy, SessionPolicy};
use crate::broker::{self, BrokerError};
use crate::config::diff::ConfigDiff;
use crate::config::{CameraVendor, Config, ConfigErrors, Problem};
use crate::coordinators::threshold::ThresholdAlarms;
use crate::doors::Doors;
use crate::doors::hardware::SimHardware;
use crate::doors::sync::CardsTarget;
use crate::events::{
    ConfigRejected, ConfigReloaded, GatewayEvent, GatewayStarted, GatewayStopping, StorePressure,
    StoreQuarantined, StoreUnavailable,
};
use crate::facility::{Facility, PointMetrics, trend};
use crate::intercom::Intercom;
use crate::lanes::board::LaneBoard;
use crate::lanes::coordinator::LaneCoordinator;
use crate::lanes::images::ImageStore;
use crate::lanes::ingress::{self, CameraEntry, IngressLimits, IngressState};
use crate::lanes::link::Seen;
use crate::lists::plates::PlateRegistry;
use crate::lists::sync::PlateListTarget;
use crate::metrics::Metrics;
use crate::pipeline::{EventFeed, GATEWAY_DEVICE, Pipeline, PipelineHandle, Stamper};
use crate::store::{
    Availability, Integrity, Journal, JournalRetention, OpenReport, Outage, Pressure, Store,
    StoreConfig, StoreError,
};
use crate::supervisor::{Drivers, Fleet};
use crate::surveillance::{Limits, Surveillance};
use crate::tasks::{CoreFailure, CoreWatch, Tasks};
use crate::uplink::status::{StatusCollector, UplinkStatus};
use crate::uplink::sync::ListRegistry;
use crate::uplink::telemetry::{RecentAlarms, TelemetrySource};
use crate::uplink::{self, Uplink, UplinkError};
use crate::vocab::sync::ListTarget;
use crate::web::api::ApiState;
use crate::web::panel::{Panel, PanelCore};
use crate::web::{self, PanelState, Readiness, listener};
use crate::{clock, devices};
use drivers::{DeviceId, EventSender};

/// Capacity of the device-event channel into the pipeline.
const DEVICE_EVENTS: usize = 1024;

/// How often the clock's synchronisation is checked.
const CLOCK_CHECK: Duration = Duration::from_secs(60);

/// How often expired panel sessions are deleted.
const SESSION_PURGE: Duration = Duration::from_secs(600);

/// How often the point trends sample the live values.
const TREND_SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Part of the drain budget kept back from the uplink for closing the
/// store and the listener.
const CLOSE_RESERVE: Duration = Duration::from_millis(500);

/// The plain-HTTP panel's limits: guards' browsers (each live page holds a
/// connection open) and the platform's pulls, with room to spare.
const PANEL_LIMITS: listener::Limits = listener::Limits {
    max_connections: 256,
    header_timeout: Duration::from_secs(10),
};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The panel address could not be bound.
    #[error("panel listener {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The store could not be opened (and could not be replaced).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The panel's TLS certificate or key could not be used.
    #[error("panel TLS: {0}")]
    Tls(String),
    /// The panel's user database could not be opened.
    #[error("panel users: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The embedded broker could not start.
    #[error("{0}")]
    Broker(#[from] BrokerError),
    /// The uplink could not start.
    #[error("{0}")]
    Uplink(#[from] UplinkError),
    /// A start-up task failed unexpectedly.
    #[error("internal: {0}")]
    Internal(String),
    /// The lists could not be loaded.
    #[error("lists: {0}")]
    Lists(#[from] crate::vocab::records::ListError),
    /// Another gateway runs on this data directory.
    #[error(transparent)]
    Locked(#[from] crate::ops::lock::LockError),
    /// The image folder could not be created.
    #[error("image folder: {0}")]
    Images(std::io::Error),
    /// The device listener could not be bound.
    #[error("device listener {addr}: {source}")]
    BindIngress {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a shutdown achieved.
#[derive(Debug, Clone)]
pub struct ShutdownReport {
    /// Tasks still running when the budget ran out (empty when clean).
    pub stragglers: Vec<String>,
    /// How long the shutdown took.
    pub elapsed: Duration,
    /// The core task whose failure stopped the gateway, if one did.
    pub failure: Option<CoreFailure>,
}

impl ShutdownReport {
    /// Whether the gateway stopped on request and everything stopped within
    /// the budget.
    pub fn is_clean(&self) -> bool {
        self.stragglers.is_empty() && self.failure.is_none()
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    /// Where the panel, the API and `/metrics` listen.
    pub panel_addr: SocketAddr,
    /// The store.
    pub store: Store,
    /// Control inputs (commands, records) into the pipeline.
    pub pipeline: PipelineHandle,
    /// The supervised devices.
    pub drivers: Drivers,
    /// What happened while opening the store.
    pub open_report: OpenReport,
    /// Recorded events, after they are on disk.
    pub feed: EventFeed,
    /// Vehicle lists (residents, visitors, blacklist, vehicles inside).
    pub plates: Arc<PlateRegistry>,
    /// The lanes as the guard sees them, and reads waiting for a guard.
    pub board: LaneBoard,
    /// Where plate cameras push (`None` when no camera is configured).
    pub ingress_addr: Option<SocketAddr>,
    /// `http` or `https` (when the panel has TLS).
    pub panel_scheme: &'static str,
    /// The one-time setup link, when no panel user exists yet.
    pub setup_url: Option<String>,
    /// The panel's users and sessions.
    pub auth: Auth,
    /// Door credentials and simulated door hardware.
    pub doors: Doors,
    /// The uplink's state.
    pub uplink_status: Arc<UplinkStatus>,
    /// Where the embedded MQTT broker listens, when it runs.
    pub broker_addr: Option<SocketAddr>,
    /// The point devices and their live views.
    pub facility: Facility,
    /// The surveillance cameras and their snapshots.
    pub cctv: Surveillance,
    /// The device listener's state (its camera table), when it runs.
    ingress: Option<IngressState>,
    /// What a device listener started by a reload needs.
    images: ImageStore,
    metrics: Arc<Metrics>,
    readiness: Arc<watch::Sender<Readiness>>,
    drain_budget: Duration,
    owned: Owned,
    failures: mpsc::UnboundedReceiver<CoreFailure>,
    /// The configuration in force (what a reload compares with).
    config: Config,
    /// Where rebuilt simulated devices leave their other ends.
    sim: SimHardware,
    /// For the WG controllers' last event indices when they restart.
    journal: Journal,
}

/// Everything a gateway started and must stop: tasks and their
/// cancellation, in the order [`Owned::stop`] stops them.
#[derive(Debug)]
struct Owned {
    watch: CoreWatch,
    ingress_cancel: CancellationToken,
    ingress: Option<JoinHandle<()>>,
    drivers_cancel: CancellationToken,
    /// The drivers' supervisors, each device on its own.
    fleet: Option<Fleet>,
    /// The running Modbus buses, by line (dropped once the drivers have
    /// stopped, so that each bus ends).
    buses: devices::Buses,
    /// The Modbus buses the drivers share.
    driver_tasks: Tasks,
    aux_cancel: CancellationToken,
    aux_tasks: Tasks,
    intake: CancellationToken,
    pipeline: Option<JoinHandle<()>>,
    uplink: Option<Uplink>,
    store: Option<Store>,
    web_cancel: CancellationToken,
    web: Option<JoinHandle<()>>,
    /// Released once everything else has stopped (see [`crate::ops::lock`]).
    data_lock: Option<crate::ops::lock::DataDirLock>,
}

impl Owned {
    fn new(watch: CoreWatch) -> Self {
        Self {
            watch,
            ingress_cancel: CancellationToken::new(),
            ingress: None,
            drivers_cancel: CancellationToken::new(),
            fleet: None,
            buses: devices::Buses::default(),
            driver_tasks: Tasks::default(),
            aux_cancel: CancellationToken::new(),
            aux_tasks: Tasks::default(),
            intake: CancellationToken::new(),
            pipeline: None,
            uplink: None,
            store: None,
            web_cancel: CancellationToken::new(),
            web: None,
            data_lock: None,
        }
    }

    /// Stops everything by `deadline`, intake first and the panel last;
    /// returns the names of the tasks that were still running.
    async fn stop(self, deadline: Instant) -> Vec<String> {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let mut stragglers = Vec::new();
        self.watch.stopping();
        // Stop intake: the device listener, then the drivers (they put
        // their actuators in their safe state).
        self.ingress_cancel.cancel();
        join_or_abort(
            self.ingress,
            "device listener",
            remaining(),
            &mut stragglers,
        )
        .await;
        self.drivers_cancel.cancel();
        if let Some(fleet) = self.fleet {
            stragglers.extend(fleet.join_within(remaining()).await);
        }
        // The buses end once no handle is left.
        drop(self.buses);
        stragglers.extend(self.driver_tasks.join_within(remaining()).await);
        self.aux_cancel.cancel();
        stragglers.extend(self.aux_tasks.join_within(remaining()).await);

        self.intake.cancel();
        join_or_abort(self.pipeline, "pipeline", remaining(), &mut stragglers).await;
        // The uplink gets what is left.
        if let Some(uplink) = self.uplink {
            stragglers.extend(uplink.stop(remaining().saturating_sub(CLOSE_RESERVE)).await);
        }
        if let Some(store) = self.store {
            match tokio::time::timeout(remaining(), store.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "The store did not close cleanly."),
                Err(_) => stragglers.push("store".into()),
            }
        }
        self.web_cancel.cancel();
        join_or_abort(self.web, "panel listener", remaining(), &mut stragglers).await;
        stragglers
    }
}

/// Waits for `task` at most `budget`; aborts it and names it if it is late.
async fn join_or_abort(
    task: Option<JoinHandle<()>>,
    name: &str,
    budget: Duration,
    stragglers: &mut Vec<String>,
) {
    if let Some(mut task) = task
        && tokio::time::timeout(budget, &mut task).await.is_err()
    {
        task.abort();
        stragglers.push(name.to_owned());
    }
}

/// Starts a gateway from `config`; the platform syncs its own lists
/// (residents' vehicles, visitor passes, blacklist, door cards).
pub async fn start(config: Config) -> Result<Running, StartError> {
    start_with(config, ListRegistry::default()).await
}

/// Starts a gateway from `config`, syncing `lists` with the platform besides
/// the gateway's own lists. A start that fails half-way stops what it had
/// started (drivers to their safe state, listeners closed, store closed)
/// before returning the error.
pub async fn start_with(config: Config, lists: ListRegistry) -> Result<Running, StartError> {
    let budget = config.supervisor.drain_budget;
    let (watch, failures) = CoreWatch::new();
    let mut owned = Owned::new(watch);
    match build(config, lists, &mut owned).await {
        Ok(parts) => Ok(Running {
            owned,
            failures,
            ..parts
        }),
        Err(error) => {
            let stragglers = owned.stop(Instant::now() + budget).await;
            if !stragglers.is_empty() {
                tracing::error!(?stragglers, "A failed start left tasks running.");
            }
            Err(error)
        }
    }
}

/// Builds the gateway, putting everything it starts into `owned`.
async fn build(
    config: Config,
    lists: ListRegistry,
    owned: &mut Owned,
) -> Result<Running, StartError> {
    let started_at = std::time::Instant::now();
    crate::vocab::time::set_estate_zone(config.gateway.time_zone.clone());
    let data_dir = config.gateway.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    // One gateway per data directory, held until everything has stopped.
    owned.data_lock = Some(crate::ops::lock::DataDirLock::acquire(&data_dir)?);

    let PanelStage {
        addr: panel_addr,
        scheme,
        readiness,
        live,
        uplink_status,
        facility_cell,
        metrics,
        panel,
        telemetry_source,
    } = start_panel(&config, &data_dir, owned).await?;

    let (store, open_report) = open_store(&config, &data_dir, owned).await?;
    readiness.send_replace(Readiness::Starting("loading lists"));
    let plates = {
        let store = store.clone();
        let loaded = tokio::task::spawn_blocking(move || PlateRegistry::open(&store)).await;
        Arc::new(loaded.map_err(|join| StartError::Internal(join.to_string()))??)
    };
    let board = LaneBoard::new(&config.lanes);
    let images = ImageStore::open(
        data_dir.join("images"),
        config.ingress.images_max_bytes,
        metrics.clone(),
    )
    .map_err(StartError::Images)?;
    let journal = Journal::new(&store)?;
    let auth = Auth::new(
        store.connect()?,
        SessionPolicy {
            idle: config.panel.session_idle,
            absolute: config.panel.session_absolute,
        },
        LockoutPolicy {
            user_failures: config.panel.lockout_failures,
            address_failures: config.panel.lockout_failures_per_address,
            duration: config.panel.lockout_duration,
        },
    );
    let users = auth.user_count().await?;
    readiness.send_replace(Readiness::Starting("starting drivers"));

    let DeviceStage {
        sim,
        doors,
        facility,
        drivers,
        cameras,
        cctv,
        device_tx,
        device_rx,
    } = start_devices(&config, &store, &journal, owned).await?;
    let _ = facility_cell.set(facility.clone());
    let cctv = Surveillance::new(cctv, images.clone(), metrics.clone(), Limits::default());
    let _ = live.set((store.clone(), drivers.clone()));

    let ingress = start_ingress(
        &config,
        camera_entries(cameras, &device_tx),
        &images,
        &metrics,
        owned,
    )
    .await?;
    let ingress_addr = ingress.as_ref().map(|(addr, _)| *addr);
    let ingress = ingress.map(|(_, state)| state);
    drop(device_tx);

    let PipelineStage {
        handle,
        feed,
        stamper,
        clock_check,
    } = start_pipeline(
        &config,
        device_rx,
        (&store, &drivers, &metrics),
        (&plates, &board, &doors),
        owned,
    )
    .await;

    start_jobs(
        &config,
        &store,
        &handle,
        (stamper, clock_check),
        (&plates, &board, &auth, &images),
        owned,
    );
    let aux_cancel = owned.aux_cancel.clone();
    let watch = owned.watch.clone();
    let aux_tasks = &mut owned.aux_tasks;
    let setup_url = if users == 0 {
        let token = auth.setup().issue(std::time::Instant::now());
        tracing::info!("No panel users yet: a one-time setup link was printed on standard output.");
        Some(format!("{scheme}://{panel_addr}/setup?token={token}"))
    } else {
        None
    };
    let journal_for_reload = journal.clone();
    let intercom = Intercom::new();
    panel.set_core(PanelCore {
        auth: auth.clone(),
        journal,
        pipeline: handle.clone(),
        drivers: drivers.clone(),
        feed: feed.clone(),
        images_dir: data_dir.join("images"),
        board: board.clone(),
        plates: plates.clone(),
        credentials: doors.credentials.clone(),
        uplink_status: uplink_status.clone(),
        facility: facility.clone(),
        cctv: cctv.clone(),
        intercom: intercom.clone(),
        eraser: crate::privacy::Eraser {
            store: store.clone(),
            images: images.clone(),
            key: config.uplink.command_key.clone(),
        },
    });
    // Always: a reload may add the first door station.
    aux_tasks.spawn_owned(
        &watch,
        "ringing calls",
        intercom.follow(feed.clone(), aux_cancel.clone()),
    );
    // Always: a reload may add the first surveillance camera.
    aux_tasks.spawn_owned(
        &watch,
        "camera snapshots",
        cctv.clone()
            .follow(feed.clone(), handle.clone(), aux_cancel.clone()),
    );
    aux_tasks.spawn_owned(
        &watch,
        "door credentials watch",
        doors.clone().watch(aux_cancel.clone()),
    );
    let alarms = RecentAlarms::default();
    aux_tasks.spawn_owned(
        &watch,
        "recent alarms",
        alarms.clone().follow(feed.clone(), aux_cancel.clone()),
    );
    let lists = PlateListTarget::all(&plates)
        .into_iter()
        .chain([Arc::new(CardsTarget(doors.credentials.clone())) as Arc<dyn ListTarget>])
        .fold(lists, ListRegistry::with);
    // Always: a reload may add the first point device.
    aux_tasks.spawn_owned(
        &watch,
        "point trends",
        trend::record(
            facility.clone(),
            data_dir.join("trends"),
            TREND_SAMPLE_EVERY,
            aux_cancel.clone(),
        ),
    );
    let telemetry = TelemetrySource {
        facility: facility.clone(),
        estate_id: config.gateway.estate_id.clone(),
        gateway_id: config.gateway.gateway_id.clone(),
        drivers: drivers.clone(),
        status: uplink_status.clone(),
        alarms,
        lists: lists.clone(),
        started: started_at,
    };
    let _ = telemetry_source.set(telemetry.clone());

    let (broker_addr, uplink_running) = start_platform(
        &config,
        uplink::Inputs {
            store: store.clone(),
            pipeline: handle.clone(),
            drivers: drivers.clone(),
            feed: feed.clone(),
            status: uplink_status.clone(),
            lists,
            telemetry,
            embedded_broker: None,
            started: started_at,
            watch: owned.watch.clone(),
        },
        owned,
    )
    .await?;

    record_start(&handle, &open_report, config.devices.len()).await;

    readiness.send_replace(Readiness::Ready);
    tracing::info!(panel = %panel_addr, devices = drivers.len(), queued = open_report.depth, uplink = uplink_running, "Gateway ready.");
    follow_store_and_inform_systemd(&store, &drivers, &uplink_status, &readiness, &handle, owned);
    Ok(Running {
        panel_addr,
        store,
        pipeline: handle,
        drivers,
        open_report,
        feed,
        plates,
        board,
        ingress_addr,
        panel_scheme: scheme,
        setup_url,
        auth,
        doors,
        uplink_status,
        broker_addr,
        facility,
        cctv,
        ingress,
        images,
        metrics,
        readiness,
        drain_budget: config.supervisor.drain_budget,
        owned: Owned::new(CoreWatch::detached()),
        failures: mpsc::unbounded_channel().1,
        sim,
        journal: journal_for_reload,
        config,
    })
}

/// What the panel stage leaves for the later ones.
struct PanelStage {
    addr: SocketAddr,
    scheme: &'static str,
    readiness: Arc<watch::Sender<Readiness>>,
    live: Arc<OnceLock<(Store, Drivers)>>,
    uplink_status: Arc<UplinkStatus>,
    facility_cell: Arc<OnceLock<Facility>>,
    metrics: Arc<Metrics>,
    panel: Panel,
    telemetry_source: Arc<OnceLock<TelemetrySource>>,
}

/// The panel listener, first of all (it answers `/healthz` and `/readyz`
/// from the first moment), with the metrics registry it serves; its task
/// is `owned.web`.
async fn start_panel(
    config: &Config,
    data_dir: &Path,
    owned: &mut Owned,
) -> Result<PanelStage, StartError> {
    let tls = match &config.panel.tls {
        Some(files) => Some(web::tls::server_config(files).map_err(StartError::Tls)?),
        None => None,
    };
    // The panel answers /healthz and /readyz from the first moment.
    let listener = TcpListener::bind(config.panel.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.panel.listen,
            source,
        })?;
    let panel_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.panel.listen,
        source,
    })?;
    let (readiness, readiness_rx) = watch::channel(Readiness::Starting("opening the store"));
    let readiness = Arc::new(readiness);
    let live = Arc::new(OnceLock::new());
    let uplink_status = Arc::new(UplinkStatus::default());
    let facility_cell = Arc::new(OnceLock::new());
    let metrics = Arc::new(
        Metrics::new()
            .with_live_state(live.clone())
            .with_collector(Box::new(StatusCollector(uplink_status.clone())))
            .with_collector(Box::new(PointMetrics(facility_cell.clone())))
            .with_collector(Box::new(crate::ops::host::HostCollector::new(
                data_dir.to_path_buf(),
            ))),
    );
    let web_cancel = owned.web_cancel.clone();
    let panel = Panel::new(metrics.clone(), web_cancel.clone(), tls.is_some())
        .with_hosts(config.panel.hosts.clone());
    let telemetry_source = Arc::new(OnceLock::new());
    let router = web::router(PanelState {
        metrics: metrics.clone(),
        readiness: readiness_rx,
        metrics_token: config.panel.metrics_token.clone(),
        panel: panel.clone(),
        api: Some(ApiState {
            token: config.api.token.clone(),
            source: telemetry_source.clone(),
            metrics: metrics.clone(),
            images_dir: data_dir.join("images"),
        }),
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let web_task = match tls {
        Some(tls) => owned.watch.core(
            "panel listener",
            web::tls::serve(listener, router, tls, web_cancel.clone()),
        ),
        None => owned.watch.core(
            "panel listener",
            listener::serve(listener, router, PANEL_LIMITS, web_cancel.clone(), "panel"),
        ),
    };
    owned.web = Some(tokio::spawn(web_task));
    Ok(PanelStage {
        addr: panel_addr,
        scheme,
        readiness,
        live,
        uplink_status,
        facility_cell,
        metrics,
        panel,
        telemetry_source,
    })
}

/// Opens the store (salvaging a damaged file first); `owned` closes it.
async fn open_store(
    config: &Config,
    data_dir: &Path,
    owned: &mut Owned,
) -> Result<(Store, OpenReport), StartError> {
    let store_config = StoreConfig {
        path: data_dir.join("gatehouse.db"),
        max_bytes: config.store.max_bytes,
        critical_reserve_bytes: config.store.critical_reserve_bytes,
        group_commit_window: config.store.group_commit_window,
        ..StoreConfig::new(data_dir.join("gatehouse.db"))
    };
    let retention = JournalRetention {
        days: config.store.journal_days,
        max_rows: config.store.journal_max_rows,
        ..JournalRetention::default()
    };
    let opened =
        tokio::task::spawn_blocking(move || Store::open_with(store_config, retention)).await;
    let (store, open_report) = opened.map_err(|join| StartError::Internal(join.to_string()))??;
    owned.store = Some(store.clone());
    Ok((store, open_report))
}

/// What the device stage leaves for the later ones.
struct DeviceStage {
    sim: SimHardware,
    doors: Doors,
    facility: Facility,
    drivers: Drivers,
    cameras: HashMap<String, (CameraVendor, Seen)>,
    cctv: Vec<devices::CctvDevice>,
    device_tx: mpsc::Sender<drivers::Inbound>,
    device_rx: mpsc::Receiver<drivers::Inbound>,
}

/// Builds every configured device's driver and starts it under the
/// [`Fleet`] (`owned.fleet`), the buses they share in `owned.driver_tasks`.
async fn start_devices(
    config: &Config,
    store: &Store,
    journal: &Journal,
    owned: &mut Owned,
) -> Result<DeviceStage, StartError> {
    let sim = SimHardware::default();
    let doors = Doors::open(store, config, sim.clone())
        .map_err(|error| StartError::Internal(format!("door credentials: {error}")))?;
    let (device_tx, device_rx) = mpsc::channel(DEVICE_EVENTS);
    let device_configs = match crate::doors::resume::resume_points(&config.devices, journal).await {
        Ok(devices) => devices,
        Err(error) => {
            tracing::warn!(%error, "could not read the controllers' last event indices; no backfill");
            config.devices.clone()
        }
    };
    let built = devices::build(&device_configs, &sim, &mut owned.buses);
    let facility = Facility::new(built.points);
    for (name, bus) in built.buses {
        owned
            .driver_tasks
            .spawn_owned(&owned.watch, name, bus.run());
    }
    let mut fleet = Fleet::new(
        device_tx.clone(),
        &config.supervisor,
        owned.drivers_cancel.clone(),
        owned.watch.clone(),
    );
    fleet.start(built.supervised);
    let drivers = fleet.drivers();
    owned.fleet = Some(fleet);
    Ok(DeviceStage {
        sim,
        doors,
        facility,
        drivers,
        cameras: built.cameras,
        cctv: built.cctv,
        device_tx,
        device_rx,
    })
}

/// The device listener's table entries of plate cameras `cameras` (id →
/// vendor and liveness tap): their reads go to `events` (the pipeline).
fn camera_entries(
    cameras: HashMap<String, (CameraVendor, Seen)>,
    events: &mpsc::Sender<drivers::Inbound>,
) -> HashMap<String, CameraEntry> {
    cameras
        .into_iter()
        .map(|(id, (vendor, seen))| {
            let events = EventSender::new(DeviceId::new(id.as_str()), events.clone());
            (
                id,
                CameraEntry {
                    vendor,
                    seen,
                    events,
                },
            )
        })
        .collect()
}

/// The device-side listener, when a plate camera is configured (they push
/// here): its address and state (the camera table a reload swaps); its
/// task is `owned.ingress`.
async fn start_ingress(
    config: &Config,
    cameras: HashMap<String, CameraEntry>,
    images: &ImageStore,
    metrics: &Arc<Metrics>,
    owned: &mut Owned,
) -> Result<Option<(SocketAddr, IngressState)>, StartError> {
    if cameras.is_empty() {
        return Ok(None);
    }
    let listener = TcpListener::bind(config.ingress.listen)
        .await
        .map_err(|source| StartError::BindIngress {
            addr: config.ingress.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::BindIngress {
            addr: config.ingress.listen,
            source,
        })?;
    let limits = IngressLimits {
        max_body_bytes: config.ingress.max_body_bytes,
        body_timeout: config.ingress.body_timeout,
        allow_from: config.ingress.allow_from.clone(),
    };
    let state = IngressState::new(cameras, images.clone(), metrics.clone(), limits);
    let listener_limits = listener::Limits {
        max_connections: config.ingress.max_connections,
        header_timeout: config.ingress.header_timeout,
    };
    let task = owned.watch.core(
        "device listener",
        listener::serve(
            listener,
            ingress::router(state.clone()),
            listener_limits,
            owned.ingress_cancel.clone(),
            "device listener",
        ),
    );
    owned.ingress = Some(tokio::spawn(task));
    tracing::info!(listen = %addr, "Device listener ready.");
    Ok(Some((addr, state)))
}

/// What the pipeline stage leaves for the later ones.
struct PipelineStage {
    handle: PipelineHandle,
    feed: EventFeed,
    stamper: Stamper,
    clock_check: clock::ClockCheck,
}

/// The one loop every input passes (`owned.pipeline`), with its stamper
/// (told whether the clock is synchronised), its event feed and the
/// coordinators it runs: threshold alarms, the lanes and the doors.
async fn start_pipeline(
    config: &Config,
    device_rx: mpsc::Receiver<drivers::Inbound>,
    (store, drivers, metrics): (&Store, &Drivers, &Arc<Metrics>),
    (plates, board, doors): (&Arc<PlateRegistry>, &LaneBoard, &Doors),
    owned: &mut Owned,
) -> PipelineStage {
    let stamper = Stamper::new(&config.gateway.estate_id, &config.gateway.gateway_id);
    let mut clock_check = clock::ClockCheck::default();
    stamper.set_clock_synced(clock_check.synchronised().await);
    let feed = EventFeed::new();
    let (pipeline, handle) = Pipeline::new(
        device_rx,
        store.clone(),
        drivers.clone(),
        stamper.clone(),
        vec![
            Box::new(ThresholdAlarms::new(config.alarms.clone())),
            Box::new(LaneCoordinator::new(config, plates.clone(), board.clone())),
            Box::new(doors.coordinator(config)),
        ],
        metrics.clone(),
        feed.clone(),
    );
    let pipeline_task = owned
        .watch
        .core("pipeline", pipeline.run(owned.intake.clone()));
    owned.pipeline = Some(tokio::spawn(pipeline_task));
    PipelineStage {
        handle,
        feed,
        stamper,
        clock_check,
    }
}

/// The gateway's periodic jobs and watches (owned auxiliary tasks): the
/// store's writer, pressure, the clock, backups, lists changed by the CLI,
/// pending reads, expired sessions, the purge of personal information.
fn start_jobs(
    config: &Config,
    store: &Store,
    handle: &PipelineHandle,
    (stamper, clock_check): (Stamper, clock::ClockCheck),
    (plates, board, auth, images): (&Arc<PlateRegistry>, &LaneBoard, &Auth, &ImageStore),
    owned: &mut Owned,
) {
    let data_dir = &config.gateway.data_dir;
    let aux_cancel = owned.aux_cancel.clone();
    let watch = owned.watch.clone();
    let aux_tasks = &mut owned.aux_tasks;
    aux_tasks.spawn_owned(
        &watch,
        "store writer watch",
        watch_store_writer(store.clone(), watch.clone(), aux_cancel.clone()),
    );
    aux_tasks.spawn_owned(
        &watch,
        "store pressure watch",
        watch_pressure(store.pressure(), handle.clone(), aux_cancel.clone()),
    );
    aux_tasks.spawn_owned(
        &watch,
        "clock check",
        check_clock(clock_check, stamper, aux_cancel.clone()),
    );
    if let Some(backups) = config.backup.clone() {
        aux_tasks.spawn_owned(
            &watch,
            "scheduled backups",
            crate::ops::backup::schedule(
                data_dir.join(crate::ops::backup::DB_FILE),
                backups,
                aux_cancel.clone(),
            ),
        );
    }
    aux_tasks.spawn_owned(
        &watch,
        "list refresh",
        refresh_lists(plates.clone(), aux_cancel.clone()),
    );
    aux_tasks.spawn_owned(
        &watch,
        "pending reads expiry",
        crate::lanes::expire_pending(board.clone(), handle.clone(), aux_cancel.clone()),
    );
    aux_tasks.spawn_owned(
        &watch,
        "session purge",
        purge_sessions(auth.clone(), aux_cancel.clone()),
    );
    aux_tasks.spawn_owned(
        &watch,
        "personal information purge",
        crate::privacy::run(
            crate::privacy::Holdings {
                store: store.clone(),
                images: images.clone(),
                plates: plates.clone(),
            },
            config.privacy.clone(),
            handle.clone(),
            aux_cancel.clone(),
        ),
    );
}

/// The platform link: the embedded broker first (the uplink may use it),
/// then the uplink (`owned.uplink`). Returns the broker's address and
/// whether an uplink runs.
async fn start_platform(
    config: &Config,
    mut inputs: uplink::Inputs,
    owned: &mut Owned,
) -> Result<(Option<SocketAddr>, bool), StartError> {
    let broker_addr = if config.broker.embedded {
        let listen = config.broker.listen;
        let started = tokio::task::spawn_blocking(move || broker::start(listen)).await;
        Some(
            started
                .map_err(|join| StartError::Internal(join.to_string()))??
                .addr,
        )
    } else {
        None
    };
    inputs.embedded_broker = broker_addr;
    let uplink = uplink::start(config, inputs)?;
    let uplink_running = uplink.is_some();
    owned.uplink = uplink;
    Ok((broker_addr, uplink_running))
}

/// Records the start: a quarantined database's alarm first, then the
/// `gateway_started` audit event.
async fn record_start(handle: &PipelineHandle, open_report: &OpenReport, devices: usize) {
    if let Some(quarantine) = &open_report.quarantined {
        let salvaged: u64 = quarantine.salvaged.iter().map(|t| t.salvaged).sum();
        let lost: u64 = quarantine.salvaged.iter().map(|t| t.lost).sum();
        tracing::error!(
            moved_to = %quarantine.moved_to.display(),
            reason = %quarantine.reason,
            salvaged,
            lost,
            "The database was unreadable; it was moved aside, a fresh one started, and the readable rows copied into it."
        );
        let alarm = GatewayEvent::StoreQuarantined(StoreQuarantined {
            moved_to: quarantine.moved_to.display().to_string(),
            reason: quarantine.reason.clone(),
            salvaged: quarantine.salvaged.clone(),
        });
        if let Err(error) = handle.record(GATEWAY_DEVICE, alarm).await {
            tracing::error!(%error, "The quarantine alarm was not stored.");
        }
    }
    let started = GatewayEvent::GatewayStarted(GatewayStarted {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        devices,
        queued: open_report.depth,
    });
    if let Err(error) = handle.record(GATEWAY_DEVICE, started).await {
        tracing::error!(%error, "The start record was not stored.");
    }
}

/// Once ready: readiness follows the store (a full disk), and systemd hears
/// READY=1, a status line and the watchdog (fed by a pipeline round trip),
/// both as owned auxiliary tasks.
fn follow_store_and_inform_systemd(
    store: &Store,
    drivers: &Drivers,
    uplink_status: &Arc<UplinkStatus>,
    readiness: &Arc<watch::Sender<Readiness>>,
    handle: &PipelineHandle,
    owned: &mut Owned,
) {
    // From now on readiness also follows the store (a full disk).
    let watch = owned.watch.clone();
    owned.aux_tasks.spawn_owned(
        &watch,
        "store availability watch",
        watch_availability(
            store.clone(),
            readiness.clone(),
            handle.clone(),
            owned.aux_cancel.clone(),
        ),
    );
    let status_line = {
        let (store, drivers, uplink_status) =
            (store.clone(), drivers.clone(), uplink_status.clone());
        move || service_status(&store, &drivers, &uplink_status)
    };
    crate::ops::notify::ready(&status_line());
    let watch = owned.watch.clone();
    owned
        .aux_tasks
        .spawn_owned(&watch, "systemd notification", {
            let pipeline = handle.clone();
            crate::ops::notify::keep_informed(
                status_line,
                move || {
                    let pipeline = pipeline.clone();
                    async move { pipeline.ping().await }
                },
                owned.aux_cancel.clone(),
            )
        });
}

impl Running {
    /// Runs until `signal` resolves or a core task fails, then shuts down.
    /// After a failure, readiness says why, the drivers put their actuators
    /// in their safe state, and the report carries the failure (the CLI
    /// exits non-zero so systemd starts the gateway again).
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> ShutdownReport {
        self.run_reloading(signal, None).await
    }

    /// Like [`Self::run_until`], and each time `reloads` yields (SIGHUP,
    /// `systemctl reload`) the configuration `file` is read again and
    /// applied ([`Self::reload_from`]).
    pub async fn run_reloading(
        mut self,
        signal: impl Future<Output = ()>,
        mut reloads: Option<(tokio::signal::unix::Signal, PathBuf)>,
    ) -> ShutdownReport {
        tokio::pin!(signal);
        let failure = loop {
            let hangup = async {
                match reloads.as_mut() {
                    Some((signal, _)) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut signal => break None,
                Some(failure) = self.failures.recv() => break Some(failure),
                Some(()) = hangup => {
                    if let Some((_, file)) = &reloads {
                        let file = file.clone();
                        let _ = self.reload_from(&file).await;
                    }
                }
            }
        };
        if let Some(failure) = &failure {
            tracing::error!(task = %failure.task, reason = %failure.reason, "A core task failed; the gateway stops (actuators to their safe state) so that it is started again.");
            self.readiness
                .send_replace(Readiness::Failed(failure.to_string()));
        }
        let mut report = self.shutdown().await;
        report.failure = failure;
        report
    }

    /// Reads the configuration `file` again and applies it
    /// ([`Self::reload`]); when `check-config` would refuse it, keeps the
    /// running configuration and logs and alarms every problem
    /// ([`Self::reject`]).
    pub async fn reload_from(&mut self, file: &Path) -> Result<ConfigDiff, ConfigErrors> {
        tracing::info!(file = %file.display(), "Reloading the configuration.");
        let path = file.to_owned();
        let loaded = tokio::task::spawn_blocking(move || crate::config::load(&path))
            .await
            .unwrap_or_else(|join| {
                Err(ConfigErrors {
                    problems: vec![Problem {
                        file: file.display().to_string(),
                        line: 0,
                        key: String::new(),
                        message: format!("could not be read: {join}"),
                    }],
                })
            });
        match loaded {
            Ok(config) => Ok(self.reload(config).await),
            Err(errors) => {
                self.reject(&errors).await;
                Err(errors)
            }
        }
    }

    /// Keeps the running configuration: logs every problem of the refused
    /// one (as `check-config` prints them) and records a `config_rejected`
    /// alarm listing them.
    pub async fn reject(&self, errors: &ConfigErrors) {
        for problem in &errors.problems {
            tracing::error!(%problem, "Configuration problem.");
        }
        tracing::error!(
            problems = errors.problems.len(),
            "The new configuration was refused; the gateway keeps running on the previous one."
        );
        let alarm = GatewayEvent::ConfigRejected(ConfigRejected {
            problems: errors.problems.iter().map(ToString::to_string).collect(),
        });
        if let Err(error) = self.pipeline.record(GATEWAY_DEVICE, alarm).await {
            tracing::error!(%error, "The config_rejected alarm was not stored.");
        }
    }

    /// Applies a new configuration: stops the devices that were removed or
    /// changed (actuators to their safe state), starts the added and
    /// changed ones, hands the lanes, doors and threshold alarms to their
    /// coordinators, and leaves everything else running. A section that
    /// cannot change without a restart keeps its old settings and is
    /// logged and audited as needing one. The reload is recorded as a
    /// `config_reloaded` audit event.
    pub async fn reload(&mut self, new: Config) -> ConfigDiff {
        let mut diff = crate::config::diff::diff(&self.config, &new);
        let applied = crate::config::diff::applied(&self.config, &new);
        if !diff.devices.is_empty()
            && let Some(problem) = self.reload_devices(&diff, &applied).await
        {
            diff.needs_restart.push(problem);
        }
        // Cards may name the door groups the file has now.
        self.doors
            .credentials
            .set_known_groups(applied.door_groups.iter().map(|g| g.id.clone()));
        let applied = Arc::new(applied);
        if !self
            .pipeline
            .reconfigure(applied.clone(), Arc::new(diff.clone()))
            .await
        {
            tracing::error!(
                "The pipeline has stopped; lanes, doors and alarms were not reconfigured."
            );
        }
        self.config = Arc::unwrap_or_clone(applied);
        tracing::info!(changes = %diff.summary(), "Configuration reloaded.");
        if !diff.needs_restart.is_empty() {
            tracing::warn!(
                needs_restart = %diff.needs_restart.join(", "),
                "Some changes take effect only after a restart (systemctl restart gatehouse); until then the previous settings stay in force."
            );
        }
        let reloaded = GatewayEvent::ConfigReloaded(ConfigReloaded {
            devices: diff.devices.clone(),
            lanes: diff.lanes.clone(),
            doors: diff.doors.clone(),
            alarms: diff.alarms,
            needs_restart: diff.needs_restart.clone(),
        });
        if let Err(error) = self.pipeline.record(GATEWAY_DEVICE, reloaded).await {
            tracing::error!(%error, "The config_reloaded audit event was not stored.");
        }
        diff
    }

    /// Stops the removed and changed devices, then builds and starts the
    /// added and changed ones of `applied`: a Modbus device joins its
    /// line's running bus (its neighbours run on), a point device's view
    /// and a plate camera's table entry are swapped with it. Returns what
    /// could not be applied until a restart (the device listener, when the
    /// first camera arrives and its address cannot be bound).
    async fn reload_devices(&mut self, diff: &ConfigDiff, applied: &Config) -> Option<String> {
        let restarting: Vec<String> = diff
            .devices
            .removed
            .iter()
            .chain(&diff.devices.changed)
            .cloned()
            .collect();
        let starting: Vec<_> = applied
            .devices
            .iter()
            .filter(|d| diff.devices.added.contains(&d.id) || diff.devices.changed.contains(&d.id))
            .cloned()
            .collect();
        let fleet = self.owned.fleet.as_mut()?;
        let stragglers = fleet.stop(&restarting, self.drain_budget).await;
        if !stragglers.is_empty() {
            tracing::error!(
                ?stragglers,
                "Devices did not stop in time for the reload; they were aborted."
            );
        }
        let events = fleet.events();
        // A line no device is on any more: its bus ends with its last driver.
        self.owned.buses.keep_only(&applied.devices);
        let starting = crate::doors::resume::resume_points(&starting, &self.journal)
            .await
            .unwrap_or(starting);
        let built = devices::build(&starting, &self.sim, &mut self.owned.buses);
        for (name, bus) in built.buses {
            self.owned
                .driver_tasks
                .spawn_owned(&self.owned.watch, name, bus.run());
        }
        let order: Vec<String> = applied.devices.iter().map(|d| d.id.clone()).collect();
        self.facility.replace(&restarting, built.points, &order);
        self.cctv.replace(&restarting, built.cctv, &order);
        let cameras = camera_entries(built.cameras, &events);
        let mut problem = None;
        match &self.ingress {
            Some(ingress) => ingress.replace(&restarting, cameras),
            None => match start_ingress(
                applied,
                cameras,
                &self.images,
                &self.metrics,
                &mut self.owned,
            )
            .await
            {
                Ok(Some((addr, state))) => {
                    self.ingress_addr = Some(addr);
                    self.ingress = Some(state);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(%error, "The device listener could not start; plate cameras cannot push until a restart.");
                    problem = Some(format!("[ingress] (the device listener: {error})"));
                }
            },
        }
        if let Some(fleet) = self.owned.fleet.as_mut() {
            fleet.start(built.supervised);
        }
        problem
    }

    /// Readiness as `/readyz` answers it.
    pub fn readiness(&self) -> watch::Receiver<Readiness> {
        self.readiness.subscribe()
    }

    /// Shuts the gateway down within the drain budget.
    pub async fn shutdown(self) -> ShutdownReport {
        let started = Instant::now();
        let deadline = started + self.drain_budget;
        let remaining = || deadline.saturating_duration_since(Instant::now());
        tracing::info!(budget = ?self.drain_budget, "Shutting down.");
        crate::ops::notify::stopping();
        self.readiness.send_if_modified(|state| {
            let failed = matches!(state, Readiness::Failed(_));
            if !failed {
                *state = Readiness::Draining;
            }
            !failed
        });

        let stopping = GatewayEvent::GatewayStopping(GatewayStopping {
            version: env!("CARGO_PKG_VERSION").to_owned(),
        });
        let _ =
            tokio::time::timeout(remaining(), self.pipeline.record(GATEWAY_DEVICE, stopping)).await;
        let stragglers = self.owned.stop(deadline).await;
        let report = ShutdownReport {
            stragglers,
            elapsed: started.elapsed(),
            failure: None,
        };
        if report.stragglers.is_empty() {
            tracing::info!(elapsed = ?report.elapsed, "Stopped.");
        } else {
            tracing::error!(stragglers = ?report.stragglers, "Shutdown budget exhausted.");
        }
        report
    }
}

/// Records an alarm whenever the store's pressure changes.
async fn watch_pressure(
    mut pressure: watch::Receiver<Pressure>,
    pipeline: PipelineHandle,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = pressure.changed() => if changed.is_err() { return },
        }
        let state = *pressure.borrow_and_update();
        let (name, active) = match state {
            Pressure::Normal => ("normal", false),
            Pressure::SheddingTelemetry => ("shedding_telemetry", true),
            Pressure::OverCapacity => ("over_capacity", true),
        };
        tracing::warn!(state = name, "Store pressure changed.");
        let alarm = GatewayEvent::StorePressure(StorePressure {
            state: name,
            active,
        });
        if let Err(error) = pipeline.record(GATEWAY_DEVICE, alarm).await {
            tracing::error!(%error, "The store pressure alarm was not stored.");
        }
    }
}

/// Follows the store's availability: readiness says why while the store
/// cannot write (a full disk), and each outage that ended is recorded as a
/// `store_unavailable` alarm (kept and tried again if that fails).
async fn watch_availability(
    store: Store,
    readiness: Arc<watch::Sender<Readiness>>,
    pipeline: PipelineHandle,
    cancel: CancellationToken,
) {
    let mut availability = store.availability();
    let mut unrecorded: Vec<Outage> = Vec::new();
    loop {
        let state = *availability.borrow_and_update();
        readiness.send_if_modified(|current| match (state.reason(), &*current) {
            (Some(reason), Readiness::Ready) => {
                *current = Readiness::Unavailable(reason);
                true
            }
            (None, Readiness::Unavailable(_)) => {
                *current = Readiness::Ready;
                true
            }
            _ => false,
        });
        if state == Availability::Available {
            unrecorded.extend(store.take_outages());
            while let Some(outage) = unrecorded.first() {
                let alarm = GatewayEvent::StoreUnavailable(StoreUnavailable::from(outage));
                match pipeline.record(GATEWAY_DEVICE, alarm).await {
                    Ok(_) => {
                        unrecorded.remove(0);
                    }
                    Err(error) => {
                        tracing::error!(%error, "The store_unavailable alarm was not stored; it is tried again when the store writes again.");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = availability.changed() => if changed.is_err() { return },
        }
    }
}

/// How often the store's writer thread is looked at.
const WRITER_CHECK: Duration = Duration::from_millis(500);

/// Reports the store's writer thread ending while the gateway runs (it
/// owns every durable write: without it nothing is acknowledged), and
/// damage found in the database after start: the gateway exits so that the
/// next start salvages the file before it is used again.
async fn watch_store_writer(store: Store, watch: CoreWatch, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(WRITER_CHECK);
    let mut integrity = store.integrity();
    let mut watching = true;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
            changed = integrity.changed(), if watching => watching = changed.is_ok(),
        }
        if let Integrity::Damaged(reason) = &*integrity.borrow_and_update() {
            watch.fail(
                "store",
                format!("the database is damaged ({reason}); restart to salvage it"),
            );
            return;
        }
        if store.writer_finished() {
            watch.fail("store writer", "the writer thread ended");
            return;
        }
    }
}

/// How often the gateway looks for list changes made by another process.
const LIST_REFRESH: Duration = Duration::from_secs(2);

/// Picks up list changes made outside the gateway (the `plates` CLI).
async fn refresh_lists(plates: Arc<PlateRegistry>, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(LIST_REFRESH);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let plates = plates.clone();
        match tokio::task::spawn_blocking(move || plates.refresh_if_changed()).await {
            Ok(Ok(true)) => tracing::info!("Vehicle lists changed outside the gateway; reloaded."),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "Vehicle lists could not be checked for changes.")
            }
            Err(error) => tracing::warn!(%error, "Vehicle list check failed."),
        }
    }
}

async fn purge_sessions(auth: Auth, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(SESSION_PURGE);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {
                if let Err(error) = auth.purge_expired().await {
                    tracing::warn!(%error, "Purging expired sessions failed.");
                }
            }
        }
    }
}

async fn check_clock(mut check: clock::ClockCheck, stamper: Stamper, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(CLOCK_CHECK);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            synced = check.synchronised() => stamper.set_clock_synced(synced),
        }
    }
}

/// The one-line state systemd shows (`systemctl status`): queue depth,
/// devices up, the platform link.
fn service_status(store: &Store, drivers: &Drivers, uplink: &UplinkStatus) -> String {
    let stats = store.stats();
    let up = drivers
        .iter()
        .filter(|d| d.health().state == drivers::contract::HealthState::Ok)
        .count();
    let store_state = store
        .availability()
        .borrow()
        .reason()
        .map_or(String::new(), |reason| format!("{reason}, "));
    format!(
        "{store_state}queue {}, devices {up}/{} up, platform {}",
        stats.depth,
        drivers.len(),
        uplink.state(&stats).as_str()
    )
}
