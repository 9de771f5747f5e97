//! A simulated ONVIF camera for the demo and the tests.
//!
//! It serves SOAP built from real captured replies (a Dahua camera's
//! `GetCapabilities`, `GetStreamUri` and `GetSnapshotUri`, the onvif-rs
//! `GetDeviceInformation`/`GetSystemDateAndTime`/subscription replies, the
//! captured motion `PullMessagesResponse`; see
//! `drivers/tests/data/onvif/SOURCES.md`) with its own address, clock and
//! state substituted. Through [`SimControl`] a test or the demo sets:
//!
//! - the camera's clock skew and its authentication (none, WS-UsernameToken
//!   checked against the skewed clock, or HTTP Digest);
//! - motion, tamper, video loss and a digital input (queued to every live
//!   subscription; a new subscription first gets the `Initialized` state);
//! - a limited number of subscription slots (expired ones are freed);
//! - failures: slow answers, `500`s, hanging, going offline (new
//!   connections dropped, open requests never answered), subscriptions killed
//!   by the camera, a `Renew` that kills the subscription, a snapshot that
//!   hangs or is 50 MB.
//!
//! It also answers WS-Discovery probes on a UDP socket ([`OnvifSim::discovery`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::camera::soap::{format_time, parse_time, password_digest};
use crate::camera::xml;
use crate::contract::now_ms;

const CAPABILITIES: &str =
    include_str!("../../tests/data/onvif/go2rtc_dahua_GetCapabilitiesResponse.xml");
const SNAPSHOT_URI: &str =
    include_str!("../../tests/data/onvif/go2rtc_dahua_GetSnapshotUriResponse.xml");
const STREAM_URI: &str =
    include_str!("../../tests/data/onvif/go2rtc_dahua_GetStreamUriResponse.xml");
const DEVICE_INFO: &str =
    include_str!("../../tests/data/onvif/onvifrs_GetDeviceInformationResponse.xml");
const SUBSCRIPTION: &str =
    include_str!("../../tests/data/onvif/onvifrs_CreatePullPointSubscriptionResponse.xml");
const PROBE_MATCHES: &str =
    include_str!("../../tests/data/onvif/onvifrs_wsdiscovery_ProbeMatches_from_ONVIF_APG.xml");
/// The captured camera's address in the Dahua replies.
const CAPTURED_HOST: &str = "http://192.168.1.123";
const SNAPSHOT_PATH: &str = "/onvifsnapshot/media_service/snapshot";

/// How the simulated camera checks requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimAuth {
    /// No credentials needed.
    None,
    /// WS-UsernameToken `PasswordDigest`, `Created` within 5 minutes of
    /// the camera's (skewed) clock. `GetSystemDateAndTime` is open.
    UsernameToken {
        /// User.
        username: String,
        /// Password.
        password: String,
    },
    /// HTTP Digest (`qop=auth`) on every request, snapshots included.
    Digest {
        /// User.
        username: String,
        /// Password.
        password: String,
    },
}

/// What the simulated camera does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimFailure {
    /// Nothing.
    None,
    /// Every SOAP answer is delayed this long.
    Slow(Duration),
    /// Every SOAP request gets `500` with an empty body.
    ServerError,
    /// Requests are never answered.
    Hang,
    /// Off the network: new connections are dropped, open requests hang.
    Offline,
}

/// What the snapshot endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimSnapshot {
    /// A small JPEG.
    Jpeg,
    /// Never answers.
    Hang,
    /// A body of this many bytes (streamed, `Content-Length` omitted).
    Huge(usize),
}

/// The simulated camera's set-up.
#[derive(Debug, Clone)]
pub struct SimCameraConfig {
    /// Authentication.
    pub auth: SimAuth,
    /// Camera clock minus real clock, ms.
    pub skew_ms: i64,
    /// Subscription slots.
    pub slots: usize,
    /// Whether it offers events (PullPoint).
    pub events: bool,
    /// Model name reported by `GetDeviceInformation`.
    pub model: String,
    /// Serial number.
    pub serial: String,
}

impl Default for SimCameraConfig {
    fn default() -> Self {
        Self {
            auth: SimAuth::None,
            skew_ms: 0,
            slots: 2,
            events: true,
            model: "IPCamera".into(),
            serial: "a12b34".into(),
        }
    }
}

/// What the simulated camera has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Subscriptions created.
    pub created: u64,
    /// Creations refused for lack of a slot.
    pub refused: u64,
    /// Renewals.
    pub renewed: u64,
    /// Unsubscriptions.
    pub unsubscribed: u64,
    /// Pull requests.
    pub pulls: u64,
    /// Subscriptions alive now.
    pub live: usize,
    /// Requests refused for bad credentials.
    pub auth_failures: u64,
    /// Snapshots served.
    pub snapshots: u64,
}

#[derive(Debug, Clone)]
struct Message {
    topic: &'static str,
    source: (&'static str, String),
    data: (&'static str, bool),
    operation: &'static str,
    at_ms: i64,
}

#[derive(Debug)]
struct Sub {
    queue: VecDeque<Message>,
    expires: Instant,
    notify: Arc<Notify>,
}

#[derive(Debug)]
struct Inner {
    config: SimCameraConfig,
    failure: SimFailure,
    snapshot: SimSnapshot,
    renew_kills: bool,
    motion: bool,
    tamper: bool,
    video_loss: bool,
    input: bool,
    subs: HashMap<u64, Sub>,
    next_sub: u64,
    stats: SimStats,
    nonce: u64,
}

/// The handle tests and the demo drive the simulated camera with.
#[derive(Debug, Clone)]
pub struct SimControl {
    inner: Arc<Mutex<Inner>>,
    offline: Arc<AtomicBool>,
    base: String,
}

impl SimControl {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device service URL.
    pub fn device_url(&self) -> String {
        format!("{}/onvif/device_service", self.base)
    }

    /// Sets the failure mode.
    pub fn fail(&self, failure: SimFailure) {
        self.offline
            .store(failure == SimFailure::Offline, Ordering::SeqCst);
        self.lock().failure = failure;
    }

    /// Sets what the snapshot endpoint serves.
    pub fn snapshot(&self, snapshot: SimSnapshot) {
        self.lock().snapshot = snapshot;
    }

    /// Sets the clock skew.
    pub fn skew(&self, skew_ms: i64) {
        self.lock().config.skew_ms = skew_ms;
    }

    /// Makes the next `Renew` kill the subscription instead.
    pub fn renew_kills(&self, kills: bool) {
        self.lock().renew_kills = kills;
    }

    /// Drops every subscription (the camera rebooted its event service).
    pub fn kill_subscriptions(&self) {
        let mut inner = self.lock();
        for (_, sub) in inner.subs.drain() {
            sub.notify.notify_one();
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> SimStats {
        let mut inner = self.lock();
        expire(&mut inner);
        let mut stats = inner.stats;
        stats.live = inner.subs.len();
        stats
    }

    /// Motion on or off (both the cell-motion and the motion-alarm topics).
    pub fn motion(&self, active: bool) {
        let mut inner = self.lock();
        inner.motion = active;
        let at = now_ms() + inner.config.skew_ms;
        push(&mut inner, motion_messages(active, "Changed", at));
    }

    /// Tamper on or off.
    pub fn tamper(&self, active: bool) {
        let mut inner = self.lock();
        inner.tamper = active;
        let at = now_ms() + inner.config.skew_ms;
        push(&mut inner, vec![tamper_message(active, "Changed", at)]);
    }

    /// Video loss on or off.
    pub fn video_loss(&self, active: bool) {
        let mut inner = self.lock();
        inner.video_loss = active;
        let at = now_ms() + inner.config.skew_ms;
        push(&mut inner, vec![video_loss_message(active, "Changed", at)]);
    }

    /// Digital input 1 on or off.
    pub fn input(&self, active: bool) {
        let mut inner = self.lock();
        inner.input = active;
        let at = now_ms() + inner.config.skew_ms;
        push(&mut inner, vec![input_message(active, "Changed", at)]);
    }
}

fn push(inner: &mut Inner, messages: Vec<Message>) {
    for sub in inner.subs.values_mut() {
        sub.queue.extend(messages.iter().cloned());
        if sub.queue.len() > 256 {
            let excess = sub.queue.len() - 256;
            sub.queue.drain(..excess);
        }
        sub.notify.notify_one();
    }
}

fn expire(inner: &mut Inner) {
    let now = Instant::now();
    inner.subs.retain(|_, s| s.expires > now);
}

fn motion_messages(active: bool, operation: &'static str, at_ms: i64) -> Vec<Message> {
    vec![
        Message {
            topic: "tns1:RuleEngine/CellMotionDetector/Motion",
            source: ("VideoSourceConfigurationToken", "00000".into()),
            data: ("IsMotion", active),
            operation,
            at_ms,
        },
        Message {
            topic: "tns1:VideoSource/MotionAlarm",
            source: ("Source", "00000".into()),
            data: ("State", active),
            operation,
            at_ms,
        },
    ]
}

fn tamper_message(active: bool, operation: &'static str, at_ms: i64) -> Message {
    Message {
        topic: "tns1:RuleEngine/TamperDetector/Tamper",
        source: ("VideoSourceConfigurationToken", "00000".into()),
        data: ("IsTamper", active),
        operation,
        at_ms,
    }
}

fn video_loss_message(active: bool, operation: &'static str, at_ms: i64) -> Message {
    Message {
        topic: "tns1:VideoSource/SignalLoss",
        source: ("Source", "00000".into()),
        data: ("State", active),
        operation,
        at_ms,
    }
}

fn input_message(active: bool, operation: &'static str, at_ms: i64) -> Message {
    Message {
        topic: "tns1:Device/Trigger/DigitalInput",
        source: ("InputToken", "DI_1".into()),
        data: ("LogicalState", active),
        operation,
        at_ms,
    }
}

/// A running simulated camera; stops when dropped.
#[derive(Debug)]
pub struct OnvifSim {
    control: SimControl,
    addr: SocketAddr,
    server: JoinHandle<()>,
    udp: Option<JoinHandle<()>>,
}

impl Drop for OnvifSim {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(udp) = &self.udp {
            udp.abort();
        }
    }
}

impl OnvifSim {
    /// Starts a camera on `127.0.0.1`, any free port.
    pub async fn start(config: SimCameraConfig) -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            config,
        )
        .await
    }

    /// Starts a camera on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SimCameraConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let offline = Arc::new(AtomicBool::new(false));
        let control = SimControl {
            inner: Arc::new(Mutex::new(Inner {
                config,
                failure: SimFailure::None,
                snapshot: SimSnapshot::Jpeg,
                renew_kills: false,
                motion: false,
                tamper: false,
                video_loss: false,
                input: false,
                subs: HashMap::new(),
                next_sub: 0,
                stats: SimStats::default(),
                nonce: 0,
            })),
            offline: offline.clone(),
            base: format!("http://{addr}"),
        };
        let app = Router::new()
            .route("/onvif/{service}", post(soap))
            .route(SNAPSHOT_PATH, get(snapshot))
            .layer(DefaultBodyLimit::max(64 * 1024))
            .with_state(control.clone());
        let listener = DroppingListener {
            inner: listener,
            offline,
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            control,
            addr,
            server,
            udp: None,
        })
    }

    /// The control handle.
    pub fn control(&self) -> &SimControl {
        &self.control
    }

    /// The HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The device service URL.
    pub fn device_url(&self) -> String {
        self.control.device_url()
    }

    /// Answers WS-Discovery probes on `bind` (a loopback port in tests);
    /// returns the bound address. `XAddrs` lists a link-local address
    /// first, as real cameras do, then the simulator's.
    pub async fn discovery(&mut self, bind: SocketAddr) -> std::io::Result<SocketAddr> {
        let socket = UdpSocket::bind(bind).await?;
        let local = socket.local_addr()?;
        let device = self.device_url();
        let serial = self.control.lock().config.serial.clone();
        self.udp = Some(tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(probe) = xml::parse(&buf[..n]) else {
                    continue;
                };
                if probe.find("Probe").is_none() {
                    continue;
                }
                let Some(id) = probe.text_of("MessageID") else {
                    continue;
                };
                let reply = PROBE_MATCHES
                    .replace("uuid:84ede3de-7dec-11d0-c360-F01234567890", &escape(&id))
                    .replace("http://192.168.1.24/onvif/services", &device)
                    .replace(
                        "a1f48ac2-dc8b-11df-b255-00408c1836b2",
                        &format!("gatehouse-sim-{serial}"),
                    );
                let _ = socket.send_to(reply.as_bytes(), from).await;
            }
        }));
        Ok(local)
    }
}

/// A listener that drops every new connection while the camera is offline.
struct DroppingListener {
    inner: TcpListener,
    offline: Arc<AtomicBool>,
}

impl axum::serve::Listener for DroppingListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((stream, addr)) = self.inner.accept().await {
                if self.offline.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                return (stream, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[derive(serde::Deserialize)]
struct SubQuery {
    #[serde(rename = "Idx")]
    idx: Option<u64>,
}

async fn soap(
    State(control): State<SimControl>,
    axum::extract::Path(service): axum::extract::Path<String>,
    Query(query): Query<SubQuery>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failure = control.lock().failure;
    match failure {
        SimFailure::Hang | SimFailure::Offline => std::future::pending::<()>().await,
        SimFailure::Slow(d) => tokio::time::sleep(d).await,
        SimFailure::ServerError => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        SimFailure::None => {}
    }
    let Ok(request) = xml::parse(&body) else {
        return fault("Sender", "ter:WellFormed", "malformed request");
    };
    let Some(op) = request
        .child("Body")
        .and_then(|b| b.children.first())
        .map(|e| e.name.clone())
    else {
        return fault("Sender", "ter:WellFormed", "no SOAP body");
    };
    let path = format!(
        "/onvif/{service}{}",
        query.idx.map(|i| format!("?Idx={i}")).unwrap_or_default()
    );
    if let Some(denied) = check_auth(&control, &op, &request, &method, &path, &headers) {
        return denied;
    }
    let base = control.base.clone();
    match (service.as_str(), op.as_str()) {
        (_, "GetSystemDateAndTime") => {
            let at = now_ms() + control.lock().config.skew_ms;
            ok(system_time(at))
        }
        ("device_service", "GetDeviceInformation") => {
            let (model, serial) = {
                let inner = control.lock();
                (inner.config.model.clone(), inner.config.serial.clone())
            };
            ok(DEVICE_INFO
                .replace(">IPCamera<", &format!(">{}<", escape(&model)))
                .replace(">a12b34<", &format!(">{}<", escape(&serial))))
        }
        ("device_service", "GetCapabilities") => {
            let mut caps = CAPABILITIES.replace(CAPTURED_HOST, &base);
            let events = control.lock().config.events;
            if !events
                && let (Some(start), Some(end)) =
                    (caps.find("<tt:Events>"), caps.find("</tt:Events>"))
            {
                caps.replace_range(start..end + "</tt:Events>".len(), "");
            }
            raw(caps)
        }
        ("media_service", "GetProfiles") => ok(profiles()),
        ("media_service", "GetStreamUri") => raw(STREAM_URI.replace("192.168.1.123", host(&base))),
        ("media_service", "GetSnapshotUri") => raw(SNAPSHOT_URI.replace(CAPTURED_HOST, &base)),
        ("event_service", "CreatePullPointSubscription") => create_subscription(&control, &request),
        ("Subscription", "PullMessages") => pull(&control, query.idx, &request).await,
        ("Subscription", "Renew") => renew(&control, query.idx, &request),
        ("Subscription", "Unsubscribe") => {
            let mut inner = control.lock();
            let removed = query.idx.and_then(|i| inner.subs.remove(&i)).is_some();
            if removed {
                inner.stats.unsubscribed += 1;
                ok(r#"<wsnt:UnsubscribeResponse xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"/>"#.into())
            } else {
                fault(
                    "Receiver",
                    "wsrf-rw:ResourceUnknownFault",
                    "no such subscription",
                )
            }
        }
        _ => fault(
            "Receiver",
            "ter:ActionNotSupported",
            "operation not supported",
        ),
    }
}

fn check_auth(
    control: &SimControl,
    op: &str,
    request: &xml::Element,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let mut inner = control.lock();
    match inner.config.auth.clone() {
        SimAuth::None => None,
        SimAuth::UsernameToken { username, password } => {
            if op == "GetSystemDateAndTime" {
                return None;
            }
            let token = request.find("UsernameToken");
            let valid = token.is_some_and(|t| {
                let user = t.text_of("Username").unwrap_or_default();
                let given = t.text_of("Password").unwrap_or_default();
                let created = t.text_of("Created").unwrap_or_default();
                let nonce = t
                    .text_of("Nonce")
                    .and_then(|n| B64.decode(n).ok())
                    .unwrap_or_default();
                let fresh = parse_time(&created).is_some_and(|c| {
                    (c - (now_ms() + inner.config.skew_ms)).abs() <= 5 * 60 * 1000
                });
                user == username && fresh && password_digest(&nonce, &created, &password) == given
            });
            if valid {
                None
            } else {
                inner.stats.auth_failures += 1;
                Some(fault(
                    "Sender",
                    "ter:NotAuthorized",
                    "Sender not Authorized",
                ))
            }
        }
        SimAuth::Digest { username, password } => {
            digest_check(&mut inner, method, path, headers, &username, &password)
        }
    }
}

fn digest_check(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    username: &str,
    password: &str,
) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| digest_auth::AuthorizationHeader::parse(v).ok());
    if let Some(given) = given {
        let mut expected = given.clone();
        let context = digest_auth::AuthContext::new_with_method(
            username,
            password,
            given.uri.as_str(),
            Option::<&[u8]>::None,
            digest_auth::HttpMethod::from(method.as_str().to_owned()),
        );
        expected.digest(&context);
        if given.username == username && given.uri == path && expected.response == given.response {
            return None;
        }
        inner.stats.auth_failures += 1;
    }
    inner.nonce += 1;
    let challenge = format!(
        r#"Digest realm="gatehouse-sim", qop="auth", nonce="{:016x}{:08x}", algorithm=MD5"#,
        now_ms(),
        inner.nonce
    );
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    Some(response)
}

fn create_subscription(control: &SimControl, request: &xml::Element) -> Response {
    let mut inner = control.lock();
    if !inner.config.events {
        return fault("Receiver", "ter:ActionNotSupported", "no events");
    }
    expire(&mut inner);
    if inner.subs.len() >= inner.config.slots {
        inner.stats.refused += 1;
        return fault("Receiver", "ter:OutofMemory", "no free subscription slot");
    }
    let seconds = request
        .text_of("InitialTerminationTime")
        .and_then(|t| duration_secs(&t))
        .unwrap_or(60);
    inner.next_sub += 1;
    let idx = inner.next_sub;
    let at = now_ms() + inner.config.skew_ms;
    let mut queue: VecDeque<Message> = motion_messages(inner.motion, "Initialized", at).into();
    queue.push_back(tamper_message(inner.tamper, "Initialized", at));
    queue.push_back(video_loss_message(inner.video_loss, "Initialized", at));
    queue.push_back(input_message(inner.input, "Initialized", at));
    inner.subs.insert(
        idx,
        Sub {
            queue,
            expires: Instant::now() + Duration::from_secs(seconds),
            notify: Arc::new(Notify::new()),
        },
    );
    inner.stats.created += 1;
    let address = format!("{}/onvif/Subscription?Idx={idx}", control.base);
    let terminates = at + i64::try_from(seconds).unwrap_or(60) * 1000;
    ok(SUBSCRIPTION
        .replace(
            "http://192.168.88.108/onvif/Subscription?Idx=5",
            &escape(&address),
        )
        .replacen("2023-09-28T16:01:15Z", &format_time(at), 1)
        .replacen("2023-09-28T16:11:15Z", &format_time(terminates), 1))
}

async fn pull(control: &SimControl, idx: Option<u64>, request: &xml::Element) -> Response {
    let wait = request
        .text_of("Timeout")
        .and_then(|t| duration_secs(&t))
        .unwrap_or(10)
        .min(60);
    let limit = request
        .text_of("MessageLimit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(64)
        .max(1);
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let notify = {
            let mut inner = control.lock();
            inner.stats.pulls += 1;
            expire(&mut inner);
            let skew = inner.config.skew_ms;
            let Some(sub) = idx.and_then(|i| inner.subs.get_mut(&i)) else {
                return fault(
                    "Receiver",
                    "wsrf-rw:ResourceUnknownFault",
                    "no such subscription",
                );
            };
            if !sub.queue.is_empty() || Instant::now() >= deadline {
                let n = sub.queue.len().min(limit);
                let messages: Vec<Message> = sub.queue.drain(..n).collect();
                let remaining = sub.expires.saturating_duration_since(Instant::now());
                let at = now_ms() + skew;
                let terminates = at + i64::try_from(remaining.as_millis()).unwrap_or(0);
                return ok(pull_response(at, terminates, &messages));
            }
            sub.notify.clone()
        };
        // A notification, the end of the long poll, or a killed subscription.
        let _ = tokio::time::timeout_at(deadline, notify.notified()).await;
        control.lock().stats.pulls -= 1;
    }
}

fn renew(control: &SimControl, idx: Option<u64>, request: &xml::Element) -> Response {
    let mut inner = control.lock();
    expire(&mut inner);
    if inner.renew_kills {
        inner.renew_kills = false;
        if let Some(sub) = idx.and_then(|i| inner.subs.remove(&i)) {
            sub.notify.notify_one();
        }
        return fault(
            "Receiver",
            "wsrf-rw:ResourceUnknownFault",
            "subscription ended",
        );
    }
    let seconds = request
        .text_of("TerminationTime")
        .and_then(|t| duration_secs(&t))
        .unwrap_or(60);
    let at = now_ms() + inner.config.skew_ms;
    let Some(sub) = idx.and_then(|i| inner.subs.get_mut(&i)) else {
        return fault(
            "Receiver",
            "wsrf-rw:ResourceUnknownFault",
            "no such subscription",
        );
    };
    sub.expires = Instant::now() + Duration::from_secs(seconds);
    inner.stats.renewed += 1;
    let terminates = at + i64::try_from(seconds).unwrap_or(60) * 1000;
    ok(format!(
        r#"<wsnt:RenewResponse xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"><wsnt:TerminationTime>{}</wsnt:TerminationTime><wsnt:CurrentTime>{}</wsnt:CurrentTime></wsnt:RenewResponse>"#,
        format_time(terminates),
        format_time(at)
    ))
}

async fn snapshot(
    State(control): State<SimControl>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let (mode, failure) = {
        let inner = control.lock();
        (inner.snapshot, inner.failure)
    };
    if matches!(failure, SimFailure::Offline | SimFailure::Hang) {
        std::future::pending::<()>().await;
    }
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    {
        let mut inner = control.lock();
        if let SimAuth::Digest { username, password } = inner.config.auth.clone()
            && let Some(denied) =
                digest_check(&mut inner, &method, &path, &headers, &username, &password)
        {
            return denied;
        }
    }
    match mode {
        SimSnapshot::Jpeg => {
            control.lock().stats.snapshots += 1;
            (
                [(header::CONTENT_TYPE, "image/jpeg")],
                super::camera::TINY_JPEG,
            )
                .into_response()
        }
        SimSnapshot::Hang => std::future::pending().await,
        SimSnapshot::Huge(size) => {
            let chunk = Bytes::from(vec![0u8; 64 * 1024]);
            let count = size.div_ceil(chunk.len());
            let stream = futures::stream::iter(
                (0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            (
                [(header::CONTENT_TYPE, "image/jpeg")],
                Body::from_stream(stream),
            )
                .into_response()
        }
    }
}

fn pull_response(at: i64, terminates: i64, messages: &[Message]) -> String {
    let mut body = format!(
        r#"<tev:PullMessagesResponse><tev:CurrentTime>{}</tev:CurrentTime><tev:TerminationTime>{}</tev:TerminationTime>"#,
        format_time(at),
        format_time(terminates)
    );
    for m in messages {
        body.push_str(&format!(
            concat!(
                r#"<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">{topic}</wsnt:Topic>"#,
                r#"<wsnt:Message><tt:Message UtcTime="{at}" PropertyOperation="{op}"><tt:Source><tt:SimpleItem Name="{sn}" Value="{sv}"/></tt:Source>"#,
                r#"<tt:Data><tt:SimpleItem Name="{dn}" Value="{dv}"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"#
            ),
            topic = m.topic,
            at = format_time(m.at_ms),
            op = m.operation,
            sn = m.source.0,
            sv = escape(&m.source.1),
            dn = m.data.0,
            dv = m.data.1,
        ));
    }
    body.push_str("</tev:PullMessagesResponse>");
    body
}

fn system_time(at_ms: i64) -> String {
    let t = jiff::Timestamp::from_millisecond(at_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        concat!(
            r#"<tds:GetSystemDateAndTimeResponse xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">"#,
            "<tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>",
            "<tt:TimeZone><tt:TZ>CST-8</tt:TZ></tt:TimeZone><tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute>",
            "<tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date>",
            "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        ),
        t.hour(),
        t.minute(),
        t.second(),
        t.year(),
        t.month(),
        t.day()
    )
}

fn profiles() -> String {
    concat!(
        r#"<trt:GetProfilesResponse xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">"#,
        r#"<trt:Profiles token="MediaProfile000" fixed="true"><tt:Name>MainStream</tt:Name></trt:Profiles>"#,
        r#"<trt:Profiles token="MediaProfile001" fixed="true"><tt:Name>SubStream</tt:Name></trt:Profiles>"#,
        "</trt:GetProfilesResponse>"
    )
    .to_owned()
}

/// `PT10S`, `PT1M`, `PT1M30S` → seconds.
fn duration_secs(s: &str) -> Option<u64> {
    let rest = s.trim().strip_prefix("PT")?;
    let mut total = 0u64;
    let mut number = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let n: f64 = number.parse().ok()?;
                number.clear();
                let unit = match c {
                    'H' => 3600.0,
                    'M' => 60.0,
                    _ => 1.0,
                };
                // Whole seconds are what the simulator needs.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                {
                    total += (n * unit) as u64;
                }
            }
            _ => return None,
        }
    }
    Some(total)
}

fn host(base: &str) -> &str {
    base.trim_start_matches("http://")
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn envelope(body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8" standalone="yes" ?><s:Envelope xmlns:sc="http://www.w3.org/2003/05/soap-encoding" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tev="http://www.onvif.org/ver10/events/wsdl" xmlns:wsa5="http://www.w3.org/2005/08/addressing" xmlns:tns1="http://www.onvif.org/ver10/topics">"#,
            "<s:Header/><s:Body>{}</s:Body></s:Envelope>"
        ),
        body.trim()
    )
}

fn ok(body: String) -> Response {
    raw(envelope(&body))
}

fn raw(document: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/soap+xml; charset=utf-8")],
        document,
    )
        .into_response()
}

fn fault(code: &str, subcode: &str, reason: &str) -> Response {
    let body = format!(
        concat!(
            r#"<s:Fault xmlns:ter="http://www.onvif.org/ver10/error" xmlns:wsrf-rw="http://docs.oasis-open.org/wsrf/rw-2"><s:Code><s:Value>s:{}</s:Value><s:Subcode><s:Value>{}</s:Value></s:Subcode></s:Code>"#,
            r#"<s:Reason><s:Text xml:lang="en">{}</s:Text></s:Reason></s:Fault>"#
        ),
        code, subcode, reason
    );
    let status = if subcode == "ter:NotAuthorized" {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, raw(envelope(&body))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(duration_secs("PT10S"), Some(10));
        assert_eq!(duration_secs("PT1M30S"), Some(90));
        assert_eq!(duration_secs("PT1H"), Some(3600));
        assert_eq!(duration_secs("10"), None);
    }

    #[test]
    fn templates_from_captures_stay_well_formed() {
        for text in [
            envelope(&system_time(1_700_000_000_000)),
            envelope(&profiles()),
            envelope(&pull_response(
                0,
                1000,
                &motion_messages(true, "Changed", 0),
            )),
            envelope(DEVICE_INFO),
            envelope(SUBSCRIPTION),
        ] {
            xml::parse(text.as_bytes()).expect("well-formed");
        }
    }
}
