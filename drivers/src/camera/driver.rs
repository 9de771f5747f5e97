//! [`CameraDriver`]: one task per ONVIF camera.
//!
//! A run connects (clock first, then identity, services, profiles and media
//! URIs — each optional, so a camera that answers only some of them still
//! works for what it answers), reports the camera online, then keeps a
//! PullPoint subscription: `PullMessages` long polls, `Renew` before the
//! termination time, a fresh subscription after any failure (the old one is
//! unsubscribed when possible: cameras have few slots), `Unsubscribe` on
//! shutdown. Cameras without events are polled with `GetSystemDateAndTime`.
//! When the camera stops answering, the driver reports it offline and
//! returns a transient error; the supervisor restarts it with backoff and
//! the next run reports it online again.
//!
//! What the panel and the snapshot task need is published in a
//! [`CameraView`]; snapshots are fetched through a [`CameraHandle`] (a
//! separate HTTP request with the camera's credentials and a deadline).

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::client::{CameraError, OnvifClient};
use super::events::{MotionDebounce, SignalKind, SignalState, classify};
use super::soap::{self, Credentials, DeviceInfo, Request, Services, Subscription};
use crate::command::CommandOutcome;
use crate::contract::{Driver, DriverContext, DriverError, now_ms};
use crate::event::{CameraAlarmKind, CameraSignalKind, DeviceEvent};

/// How a camera driver talks to its camera.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// The device service (`http://host/onvif/device_service`).
    pub device_url: String,
    /// The camera account, if it needs one.
    pub credentials: Option<Credentials>,
    /// Deadline of one ordinary request.
    pub timeout: Duration,
    /// `PullMessages` long-poll timeout.
    pub pull: Duration,
    /// Requested subscription lifetime (renewed at half of it).
    pub subscription: Duration,
    /// Motion is reported ended after this long without motion.
    pub motion_hold: Duration,
    /// A clock drift above this raises an alarm.
    pub drift_alarm: Duration,
    /// How often a camera without events is asked for its clock.
    pub poll: Duration,
}

impl CameraConfig {
    /// Defaults for a camera at `device_url`.
    pub fn new(device_url: &str, credentials: Option<Credentials>) -> Self {
        Self {
            device_url: device_url.to_owned(),
            credentials,
            timeout: Duration::from_secs(5),
            pull: Duration::from_secs(10),
            subscription: Duration::from_secs(120),
            motion_hold: Duration::from_secs(10),
            drift_alarm: Duration::from_secs(30),
            poll: Duration::from_secs(30),
        }
    }
}

/// The state of a camera's event subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventsState {
    /// Not known yet.
    #[default]
    Unknown,
    /// The camera offers no pull-point events.
    Unsupported,
    /// Subscribed and pulling.
    Subscribed,
    /// Subscribing failed; retried.
    Failing,
}

/// What is known about a camera, for the panel, `/metrics` and snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CameraStatus {
    /// Whether the camera answers.
    pub online: bool,
    /// Identity, when it answered `GetDeviceInformation`.
    pub info: Option<DeviceInfo>,
    /// Camera clock minus gateway clock (ms), when measured.
    pub offset_ms: Option<i64>,
    /// Stream URIs by profile name/token (the gateway does not relay video).
    pub streams: Vec<(String, String)>,
    /// The snapshot URI of the first profile.
    pub snapshot_uri: Option<String>,
    /// Event subscription state.
    pub events: EventsState,
    /// Operations the camera did not answer (it still works for the rest).
    pub unsupported: Vec<String>,
    /// The most recent error.
    pub last_error: Option<String>,
    /// Motion currently reported.
    pub motion: bool,
    /// Tamper currently active.
    pub tamper: bool,
    /// Video loss currently active.
    pub video_loss: bool,
    /// Subscriptions created so far (re-creations show failures).
    pub subscriptions: u64,
    /// Notifications received so far.
    pub messages: u64,
}

/// The shared, live [`CameraStatus`] of one camera.
#[derive(Debug, Clone)]
pub struct CameraView {
    tx: Arc<watch::Sender<CameraStatus>>,
}

impl Default for CameraView {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(CameraStatus::default())),
        }
    }
}

impl CameraView {
    /// A receiver of the status.
    pub fn subscribe(&self) -> watch::Receiver<CameraStatus> {
        self.tx.subscribe()
    }

    /// The current status.
    pub fn current(&self) -> CameraStatus {
        self.tx.borrow().clone()
    }

    fn update(&self, f: impl FnOnce(&mut CameraStatus)) {
        self.tx.send_modify(f);
    }
}

/// What the gateway holds to read a camera and fetch its snapshots.
#[derive(Debug, Clone)]
pub struct CameraHandle {
    client: OnvifClient,
    view: CameraView,
}

impl CameraHandle {
    /// The live status.
    pub fn view(&self) -> &CameraView {
        &self.view
    }

    /// Fetches a snapshot (at most `max_bytes`, within `deadline`).
    pub async fn snapshot(
        &self,
        max_bytes: usize,
        deadline: Duration,
    ) -> Result<Vec<u8>, CameraError> {
        let uri = self
            .view
            .current()
            .snapshot_uri
            .ok_or(CameraError::Soap(soap::SoapError::Missing("snapshot URI")))?;
        self.client.snapshot(&uri, max_bytes, deadline).await
    }
}

/// The driver of one ONVIF camera.
#[derive(Debug)]
pub struct CameraDriver {
    config: CameraConfig,
    client: OnvifClient,
    view: CameraView,
    signals: SignalState,
    motion: MotionDebounce,
    reported_online: Option<bool>,
    drift_raised: bool,
    started: Instant,
}

impl CameraDriver {
    /// A driver for the camera in `config`.
    pub fn new(config: CameraConfig) -> Self {
        let client = OnvifClient::new(
            &config.device_url,
            config.credentials.clone(),
            config.timeout,
        );
        let hold = u64::try_from(config.motion_hold.as_millis()).unwrap_or(u64::MAX);
        Self {
            config,
            client,
            view: CameraView::default(),
            signals: SignalState::default(),
            motion: MotionDebounce::new(hold),
            reported_online: None,
            drift_raised: false,
            started: Instant::now(),
        }
    }

    /// The handle the gateway keeps (status and snapshots).
    pub fn handle(&self) -> CameraHandle {
        CameraHandle {
            client: self.client.clone(),
            view: self.view.clone(),
        }
    }

    fn mono_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn session(&mut self, ctx: &mut DriverContext) -> Result<(), CameraError> {
        let services = tokio::select! {
            () = ctx.cancel.cancelled() => return Ok(()),
            services = self.connect() => services?,
        };
        ctx.health.ok();
        self.set_online(ctx, true, "answers").await?;
        self.check_drift(ctx).await?;
        match services.events {
            Some(events) if services.pull_point != Some(false) => {
                self.pull_loop(ctx, &events).await
            }
            _ => {
                self.view.update(|s| s.events = EventsState::Unsupported);
                self.poll_loop(ctx).await
            }
        }
    }

    /// Asks everything the camera may answer; fails only when it is
    /// unreachable or refuses the credentials everywhere.
    async fn connect(&mut self) -> Result<Services, CameraError> {
        let mut unsupported = Vec::new();
        // Whether an authenticated request was answered (the clock is asked
        // without credentials, so it proves nothing about them).
        let mut answered = false;
        let mut clock = false;
        let mut refused = false;
        let mut note = |op: &str, e: &CameraError, unsupported: &mut Vec<String>| {
            if matches!(e, CameraError::Unauthorized) {
                refused = true;
            }
            unsupported.push(format!("{op}: {e}"));
        };
        match self.client.sync_clock().await {
            Ok(offset) => {
                clock = true;
                self.view.update(|s| s.offset_ms = Some(offset));
            }
            Err(e) if e.is_offline() => return Err(e),
            Err(e) => note("GetSystemDateAndTime", &e, &mut unsupported),
        }
        let device = self.config.device_url.clone();
        match self
            .client
            .call(&device, &Request::GetDeviceInformation)
            .await
        {
            Ok(reply) => match soap::device_info(&reply) {
                Ok(info) => {
                    answered = true;
                    self.view.update(|s| s.info = Some(info));
                }
                Err(e) => note("GetDeviceInformation", &e.into(), &mut unsupported),
            },
            Err(e) if e.is_offline() => return Err(e),
            Err(e) => note("GetDeviceInformation", &e, &mut unsupported),
        }
        let mut services = match self.client.call(&device, &Request::GetCapabilities).await {
            Ok(reply) => soap::capabilities(&reply).map_err(CameraError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = &services {
            if e.is_offline() {
                return Err(e.clone());
            }
            note("GetCapabilities", e, &mut unsupported);
            services = match self.client.call(&device, &Request::GetServices).await {
                Ok(reply) => soap::services(&reply).map_err(CameraError::from),
                Err(e) => Err(e),
            };
            if let Err(e) = &services {
                if e.is_offline() {
                    return Err(e.clone());
                }
                note("GetServices", e, &mut unsupported);
            }
        }
        let services = services.inspect(|_| answered = true).unwrap_or_default();
        let media = services.media.clone().unwrap_or_else(|| device.clone());
        let mut streams = Vec::new();
        let mut snapshot_uri = None;
        match self.client.call(&media, &Request::GetProfiles).await {
            Ok(reply) => match soap::profiles(&reply) {
                Ok(profiles) => {
                    answered = true;
                    for (i, p) in profiles.iter().take(4).enumerate() {
                        let label = if p.name.is_empty() {
                            p.token.clone()
                        } else {
                            p.name.clone()
                        };
                        let req = Request::GetStreamUri {
                            profile: p.token.clone(),
                        };
                        match self
                            .client
                            .call(&media, &req)
                            .await
                            .and_then(|r| Ok(soap::media_uri(&r)?))
                        {
                            Ok(uri) => streams.push((label, uri)),
                            Err(e) if e.is_offline() => return Err(e),
                            Err(e) if i == 0 => note("GetStreamUri", &e, &mut unsupported),
                            Err(_) => {}
                        }
                    }
                    let req = Request::GetSnapshotUri {
                        profile: profiles[0].token.clone(),
                    };
                    match self
                        .client
                        .call(&media, &req)
                        .await
                        .and_then(|r| Ok(soap::media_uri(&r)?))
                    {
                        Ok(uri) => snapshot_uri = Some(uri),
                        Err(e) if e.is_offline() => return Err(e),
                        Err(e) => note("GetSnapshotUri", &e, &mut unsupported),
                    }
                }
                Err(e) => note("GetProfiles", &e.into(), &mut unsupported),
            },
            Err(e) if e.is_offline() => return Err(e),
            Err(e) => note("GetProfiles", &e, &mut unsupported),
        }
        if !answered && refused {
            return Err(CameraError::Unauthorized);
        }
        if !answered && !clock {
            return Err(CameraError::Soap(soap::SoapError::Missing(
                "answer to any request",
            )));
        }
        self.view.update(|s| {
            s.streams = streams;
            s.snapshot_uri = snapshot_uri;
            s.unsupported = unsupported;
        });
        Ok(services)
    }

    async fn set_online(
        &mut self,
        ctx: &DriverContext,
        online: bool,
        detail: &str,
    ) -> Result<(), CameraError> {
        self.view.update(|s| s.online = online);
        if self.reported_online == Some(online) {
            return Ok(());
        }
        self.reported_online = Some(online);
        let detail = match (online, self.view.current().info) {
            (true, Some(i)) => format!(
                "{} {} {} ({})",
                i.manufacturer, i.model, i.firmware, i.serial
            ),
            _ => detail.to_owned(),
        };
        emit(ctx, DeviceEvent::DeviceLink { online, detail }).await
    }

    async fn check_drift(&mut self, ctx: &DriverContext) -> Result<(), CameraError> {
        let Some(offset) = self.view.current().offset_ms else {
            return Ok(());
        };
        let limit = i64::try_from(self.config.drift_alarm.as_millis()).unwrap_or(i64::MAX);
        let drifting = offset.abs() > limit;
        if drifting != self.drift_raised {
            self.drift_raised = drifting;
            emit(
                ctx,
                DeviceEvent::CameraAlarm {
                    alarm: CameraAlarmKind::ClockDrift,
                    active: drifting,
                    source: String::new(),
                    detail: format!("camera clock {offset:+} ms from the gateway's"),
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn poll_loop(&mut self, ctx: &mut DriverContext) -> Result<(), CameraError> {
        loop {
            tokio::select! {
                () = ctx.cancel.cancelled() => return Ok(()),
                Some(req) = ctx.commands.recv() => req.answer(CommandOutcome::Unsupported),
                () = tokio::time::sleep(self.config.poll) => {
                    match self.client.sync_clock().await {
                        Ok(offset) => {
                            self.view.update(|s| s.offset_ms = Some(offset));
                            ctx.health.ok();
                            self.check_drift(ctx).await?;
                        }
                        Err(e) if e.is_offline() => return Err(e),
                        // It answered, just not this: still online.
                        Err(_) => ctx.health.ok(),
                    }
                }
            }
        }
    }

    async fn pull_loop(
        &mut self,
        ctx: &mut DriverContext,
        events_url: &str,
    ) -> Result<(), CameraError> {
        let mut backoff = Duration::from_secs(1);
        loop {
            let created = self
                .client
                .call(
                    events_url,
                    &Request::CreatePullPointSubscription {
                        seconds: secs(self.config.subscription),
                    },
                )
                .await
                .and_then(|r| Ok(soap::subscription(&r)?));
            let sub = match created {
                Ok(sub) => sub,
                Err(e) if e.is_offline() => return Err(e),
                Err(e) => {
                    // No slot free, or no events after all: keep the camera
                    // online (polled) and try again later.
                    self.view.update(|s| {
                        s.events = EventsState::Failing;
                        s.last_error = Some(format!("subscribing: {e}"));
                    });
                    tokio::select! {
                        () = ctx.cancel.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    if let Err(e) = self.client.sync_clock().await
                        && e.is_offline()
                    {
                        return Err(e);
                    }
                    continue;
                }
            };
            backoff = Duration::from_secs(1);
            self.view.update(|s| {
                s.events = EventsState::Subscribed;
                s.subscriptions += 1;
            });
            let outcome = self.pull_subscription(ctx, &sub).await;
            // Free the slot whatever happened (best effort, short).
            let cancelled = ctx.cancel.is_cancelled();
            let unsubscribe = self.client.call(&sub.address, &Request::Unsubscribe);
            let _ = tokio::time::timeout(Duration::from_secs(2), unsubscribe).await;
            match outcome {
                Ok(()) if cancelled => return Ok(()),
                Ok(()) => {}
                Err(e) if e.is_offline() => return Err(e),
                Err(e) => {
                    self.view.update(|s| {
                        s.events = EventsState::Failing;
                        s.last_error = Some(format!("subscription: {e}"));
                    });
                }
            }
        }
    }

    /// Pulls from one subscription until it fails or the driver is
    /// cancelled (`Ok`).
    async fn pull_subscription(
        &mut self,
        ctx: &mut DriverContext,
        sub: &Subscription,
    ) -> Result<(), CameraError> {
        let requested = i64::try_from(self.config.subscription.as_millis()).unwrap_or(i64::MAX);
        let lifetime = sub.lifetime_ms().filter(|l| *l > 0).unwrap_or(requested);
        let mut ends = Instant::now() + Duration::from_millis(lifetime.unsigned_abs());
        let pull = Request::PullMessages {
            seconds: secs(self.config.pull),
            limit: 64,
        };
        loop {
            // Renew when less than half the lifetime (or one long poll) is left.
            let margin = Duration::from_millis(lifetime.unsigned_abs() / 2)
                .max(self.config.pull + self.config.timeout);
            if ends.saturating_duration_since(Instant::now()) < margin {
                let reply = self
                    .client
                    .call(
                        &sub.address,
                        &Request::Renew {
                            seconds: secs(self.config.subscription),
                        },
                    )
                    .await?;
                let (current, termination) = soap::renewed(&reply)?;
                let renewed = match (current, termination) {
                    (Some(c), Some(t)) if t > c => t - c,
                    _ => requested,
                };
                ends = Instant::now() + Duration::from_millis(renewed.unsigned_abs());
            }
            let client = self.client.clone();
            let mut request = pin!(client.call_long(&sub.address, &pull, self.config.pull));
            let reply = loop {
                let tick_at = self
                    .motion
                    .deadline()
                    .map(|d| self.started + Duration::from_millis(d));
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Ok(()),
                    Some(req) = ctx.commands.recv() => req.answer(CommandOutcome::Unsupported),
                    () = sleep_until_opt(tick_at) => {
                        let now = self.mono_ms();
                        if let Some(active) = self.motion.tick(now) {
                            self.report_motion(ctx, active, String::new()).await?;
                        }
                    }
                    reply = &mut request => break reply?,
                }
            };
            let pulled = soap::pulled(&reply)?;
            ctx.health.ok();
            if let Some(current) = pulled.current_ms {
                let offset = current - now_ms();
                self.view.update(|s| s.offset_ms = Some(offset));
                self.check_drift(ctx).await?;
            }
            let count = pulled.messages.len() as u64;
            self.view.update(|s| s.messages += count);
            for note in &pulled.messages {
                if let Some(signal) = classify(note) {
                    self.signal(ctx, signal).await?;
                }
            }
            let now = self.mono_ms();
            if let Some(active) = self.motion.tick(now) {
                self.report_motion(ctx, active, String::new()).await?;
            }
        }
    }

    async fn signal(
        &mut self,
        ctx: &DriverContext,
        signal: super::events::Signal,
    ) -> Result<(), CameraError> {
        let Some(changed) = self.signals.update(signal) else {
            return Ok(());
        };
        match changed.kind {
            // Motion going on when subscribing is state, not a new episode.
            SignalKind::Motion if changed.initial => {}
            SignalKind::Motion => {
                let any = self.signals.any_active(SignalKind::Motion);
                let now = self.mono_ms();
                if let Some(active) = self.motion.input(any, now) {
                    self.report_motion(ctx, active, changed.source).await?;
                }
            }
            SignalKind::DigitalInput => {
                emit(
                    ctx,
                    DeviceEvent::CameraSignal {
                        signal: CameraSignalKind::DigitalInput,
                        active: changed.active,
                        source: changed.source,
                    },
                )
                .await?;
            }
            SignalKind::Tamper | SignalKind::VideoLoss => {
                let alarm = if changed.kind == SignalKind::Tamper {
                    CameraAlarmKind::Tamper
                } else {
                    CameraAlarmKind::VideoLoss
                };
                let tamper = self.signals.any_active(SignalKind::Tamper);
                let video_loss = self.signals.any_active(SignalKind::VideoLoss);
                self.view.update(|s| {
                    s.tamper = tamper;
                    s.video_loss = video_loss;
                });
                emit(
                    ctx,
                    DeviceEvent::CameraAlarm {
                        alarm,
                        active: changed.active,
                        source: changed.source,
                        detail: if changed.initial {
                            "state when subscribed".into()
                        } else {
                            String::new()
                        },
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn report_motion(
        &mut self,
        ctx: &DriverContext,
        active: bool,
        source: String,
    ) -> Result<(), CameraError> {
        self.view.update(|s| s.motion = active);
        emit(
            ctx,
            DeviceEvent::CameraSignal {
                signal: CameraSignalKind::Motion,
                active,
                source,
            },
        )
        .await
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1)
}

/// Sends an event; a closed pipeline ends the run like an unreachable camera
/// would not (it is reported as such by the caller).
async fn emit(ctx: &DriverContext, event: DeviceEvent) -> Result<(), CameraError> {
    ctx.events
        .emit(event)
        .await
        .map_err(|_| CameraError::Unreachable("pipeline closed".into()))
}

impl Driver for CameraDriver {
    fn kind(&self) -> &'static str {
        "onvif-camera"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            // The session watches the cancellation itself, so that a live
            // subscription is unsubscribed before the run returns.
            let result = self.session(ctx).await;
            if ctx.cancel.is_cancelled() {
                return Ok(());
            }
            match result {
                Ok(()) => Ok(()),
                Err(e) => {
                    let text = e.to_string();
                    ctx.health.degraded(&text);
                    self.view.update(|s| s.last_error = Some(text.clone()));
                    if (e.is_offline() || matches!(e, CameraError::Unauthorized))
                        && self.reported_online != Some(false)
                    {
                        // An emit failure means the pipeline is gone.
                        self.set_online(ctx, false, &text)
                            .await
                            .map_err(|_| DriverError::PipelineClosed)?;
                    }
                    match e {
                        CameraError::Unauthorized => Err(DriverError::Device(text)),
                        _ => Err(DriverError::Transient(text)),
                    }
                }
            }
        })
    }
}
