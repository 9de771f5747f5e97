//! The device-side HTTP listener (its own port, default `0.0.0.0:8081`,
//! apart from the panel): plate cameras push to `POST /lpr/{camera_id}`.
//!
//! A push is decoded by the vendor's codec, its images are saved, and the
//! read goes through the pipeline; the camera's reply is sent only after the
//! read is on disk, and for a lane opened by the camera's relay the reply
//! itself opens the barrier. Bad input gets a 4xx with the reason and a
//! counter, never a panic: 400 malformed, 404 unknown camera (logged at most
//! once a minute), 413 too large, 503 when the store could not take it.
//!
//! The listener has no authentication (cameras cannot log in), so what a
//! push may cost is bounded before its body is read: a source outside
//! `allow_from` gets 403, an unknown camera 404 and a declared length over
//! the limit 413, all without reading the body. Bodies being read share a
//! budget of [`BODY_BUDGET_PUSHES`] largest pushes (a push waits for its
//! share up to the body deadline, then gets 503 `busy`), and a body that
//! does not arrive within `body_timeout` gets 408. Connections and request
//! heads are bounded by the listener ([`crate::web::listener`]).
//!
//! The camera table is swapped by a reload ([`IngressState::replace`]): a
//! camera added, removed or changed takes effect at the next push, while a
//! push already under way finishes with the entry it started with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use drivers::contract::OpenVia;
use drivers::lpr::{self, CameraMessage, PlateReadPayload, Vendor};
use drivers::{DeviceEvent, EventSender};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use ipnet::IpNet;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::images::ImageStore;
use super::link::Seen;
use crate::config::CameraVendor;
use crate::logging::Every;
use crate::metrics::Metrics;

/// How often an unknown camera id is logged at most.
const UNKNOWN_LOG_EVERY: Duration = Duration::from_secs(60);

/// How many largest-size pushes may be read into memory at once; smaller
/// pushes take a share by their declared length. One: a push of the
/// largest size costs about four times its size while it is parsed and its
/// pictures decoded and written, and two of them at once took the gateway
/// past 80 MB (the ingress benchmark); pushes of a usual size (a few
/// hundred KB) still go many at a time.
pub const BODY_BUDGET_PUSHES: u64 = 1;

/// What the device listener accepts (`[ingress]`).
#[derive(Debug, Clone)]
pub struct IngressLimits {
    /// Largest push body.
    pub max_body_bytes: u64,
    /// How long a body may take to arrive.
    pub body_timeout: Duration,
    /// Source networks allowed to push; empty allows every source.
    pub allow_from: Vec<IpNet>,
}

impl IngressLimits {
    /// A push's share of the body budget, in KiB (at least 1).
    fn share_kib(&self, declared: Option<u64>) -> u32 {
        let bytes = declared
            .unwrap_or(self.max_body_bytes)
            .min(self.max_body_bytes);
        u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
    }

    fn allows(&self, peer: Option<SocketAddr>) -> bool {
        if self.allow_from.is_empty() {
            return true;
        }
        // Without a known peer address an allow-list cannot be met.
        peer.is_some_and(|peer| {
            let ip = peer.ip().to_canonical();
            self.allow_from.iter().any(|net| net.contains(&ip))
        })
    }
}

/// One configured camera as the listener knows it.
#[derive(Debug, Clone)]
pub struct CameraEntry {
    /// Payload format.
    pub vendor: CameraVendor,
    /// Liveness tap.
    pub seen: Seen,
    /// Where its reads go (the pipeline, stamped with the camera's id).
    pub events: EventSender,
}

/// What the listener's handlers share.
#[derive(Debug, Clone)]
pub struct IngressState {
    cameras: Arc<RwLock<Arc<HashMap<String, CameraEntry>>>>,
    images: ImageStore,
    metrics: Arc<Metrics>,
    last_unknown_log: Arc<Mutex<Option<Instant>>>,
    limits: Arc<IngressLimits>,
    /// KiB of push bodies that may be in memory at once.
    body_budget: Arc<Semaphore>,
}

impl IngressState {
    /// State for the listener.
    pub fn new(
        cameras: HashMap<String, CameraEntry>,
        images: ImageStore,
        metrics: Arc<Metrics>,
        limits: IngressLimits,
    ) -> Self {
        let budget = limits
            .share_kib(None)
            .saturating_mul(u32::try_from(BODY_BUDGET_PUSHES).unwrap_or(u32::MAX));
        Self {
            cameras: Arc::new(RwLock::new(Arc::new(cameras))),
            images,
            metrics,
            last_unknown_log: Arc::new(Mutex::new(None)),
            limits: Arc::new(limits),
            body_budget: Arc::new(Semaphore::new(budget as usize)),
        }
    }
}

impl IngressState {
    /// The entry of camera `id`, as the table is now.
    fn camera(&self, id: &str) -> Option<CameraEntry> {
        self.cameras
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Takes a reload's cameras: those named in `restarted` (removed or
    /// changed) leave the table, `started` (added or changed) join it.
    pub fn replace(&self, restarted: &[String], started: HashMap<String, CameraEntry>) {
        let mut current = self.cameras.write().unwrap_or_else(PoisonError::into_inner);
        let mut cameras: HashMap<String, CameraEntry> = (**current).clone();
        cameras.retain(|id, _| !restarted.contains(id));
        cameras.extend(started);
        *current = Arc::new(cameras);
    }

    /// The ids of the cameras the listener takes pushes from, sorted.
    pub fn camera_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .cameras
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }
}

/// The listener's router. The handler bounds bodies itself (see the module
/// doc), so axum's default body limit is off.
pub fn router(state: IngressState) -> Router {
    Router::new()
        .route("/lpr/{camera_id}", post(push))
        .layer(DefaultBodyLimit::disable())
        // A span per push (method, path with the camera id), at DEBUG; a
        // 5xx is logged at DEBUG too (the default is a line per request at
        // ERROR): the handler logs refusals itself, once a minute.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
        .with_state(state)
}

fn vendor(v: CameraVendor) -> Vendor {
    match v {
        CameraVendor::Vzenith => Vendor::Vzenith,
        CameraVendor::Hikvision => Vendor::Hikvision,
        CameraVendor::Huaxia => Vendor::Huaxia,
    }
}

fn reject(
    state: &IngressState,
    status: StatusCode,
    reason: &'static str,
    detail: String,
) -> Response {
    state.metrics.rejected("lpr", reason);
    (status, format!("{detail}\n")).into_response()
}

async fn push(
    State(state): State<IngressState>,
    Path(camera_id): Path<String>,
    request: Request,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    if !state.limits.allows(peer) {
        return reject(
            &state,
            StatusCode::FORBIDDEN,
            "source_not_allowed",
            "this source may not push to the gateway".to_owned(),
        );
    }
    let Some(camera) = state.camera(&camera_id) else {
        let now = Instant::now();
        let log = {
            let mut last = state
                .last_unknown_log
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = last.is_none_or(|t| now.duration_since(t) >= UNKNOWN_LOG_EVERY);
            if due {
                *last = Some(now);
            }
            due
        };
        if log {
            tracing::warn!(camera = %camera_id, "Push from an unknown camera id (further ones are not logged for a minute).");
        }
        return reject(
            &state,
            StatusCode::NOT_FOUND,
            "unknown_camera",
            format!("unknown camera {camera_id:?}"),
        );
    };
    let (parts, body) = request.into_parts();
    let max = state.limits.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > max) {
        return too_large(&state, max);
    }
    // The body is read within one deadline: waiting for a share of the
    // budget, then receiving it.
    let deadline = tokio::time::Instant::now() + state.limits.body_timeout;
    let share = state.limits.share_kib(declared);
    let Ok(Ok(_share)) = tokio::time::timeout_at(
        deadline,
        state.body_budget.clone().acquire_many_owned(share),
    )
    .await
    else {
        return reject(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many pushes at once; send it again".to_owned(),
        );
    };
    let body = match tokio::time::timeout_at(deadline, read_body(body, max)).await {
        Err(_) => {
            return reject(
                &state,
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the push's body did not arrive in time".to_owned(),
            );
        }
        Ok(Err(BodyError::TooLarge)) => return too_large(&state, max),
        Ok(Err(BodyError::Unreadable(error))) => {
            return reject(&state, StatusCode::BAD_REQUEST, "unreadable", error);
        }
        Ok(Ok(body)) => body,
    };
    camera.seen.tap();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let message = match lpr::parse(vendor(camera.vendor), content_type, &body) {
        Ok(message) => message,
        Err(error) => {
            tracing::debug!(camera = %camera_id, %error, "Malformed camera push.");
            return reject(
                &state,
                StatusCode::BAD_REQUEST,
                "malformed",
                error.to_string(),
            );
        }
    };
    match message {
        CameraMessage::Plate(payload) => plate(&state, &camera, *payload).await,
        CameraMessage::Heartbeat { .. } | CameraMessage::GioIn { .. } | CameraMessage::Other(_) => {
            // The reply is the only way to the camera's relay: a remote open
            // waiting for this camera rides on it (`link`).
            match camera.seen.take_open() {
                Some(opening) => {
                    let reply = remote_open(camera.vendor);
                    opening.sent();
                    reply
                }
                None => reply(camera.vendor, None, false),
            }
        }
    }
}

fn too_large(state: &IngressState, max: u64) -> Response {
    reject(
        state,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the push is larger than {max} bytes"),
    )
}

enum BodyError {
    TooLarge,
    Unreadable(String),
}

/// The whole body, refused as soon as it passes `max` bytes.
async fn read_body(body: Body, max: u64) -> Result<axum::body::Bytes, BodyError> {
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(error) => Err(BodyError::Unreadable(error.to_string())),
    }
}

async fn plate(state: &IngressState, camera: &CameraEntry, payload: PlateReadPayload) -> Response {
    // The read goes to the rules (and the barrier) at once; its snapshots
    // are written meanwhile, and before the camera gets its reply.
    let (images, saving) = state.images.save_later(payload.images);
    let read_id = payload.read_id.clone();
    let resend = payload.resend;
    let event = DeviceEvent::PlateRead {
        plate: payload.plate,
        colour: payload.colour,
        confidence: payload.confidence,
        trigger: payload.trigger.as_str().to_owned(),
        read_id: payload.read_id,
        resend: payload.resend,
        images,
    };
    let stored = camera
        .events
        .emit_durable(event, payload.device_time_ms)
        .await;
    if let Err(error) = saving.await {
        static SAVING: Every = Every::minute();
        if let Some(count) = SAVING.allow() {
            tracing::warn!(%error, count, "Saving a read's snapshots failed (one line a minute, with the count).");
        }
    }
    match stored {
        Ok(receipt) => {
            if resend && camera.vendor == CameraVendor::Vzenith {
                return json(lpr::vzenith::reply_continue_offline(read_id.as_deref()));
            }
            let decided = receipt.decided.and_then(|d| d.open_via) == Some(OpenVia::Camera);
            let remote = camera.seen.take_open();
            let response = reply(
                camera.vendor,
                read_id.as_deref(),
                decided || remote.is_some(),
            );
            if let Some(opening) = remote {
                opening.sent();
            }
            response
        }
        Err(error) => {
            static NOT_STORED: Every = Every::minute();
            if let Some(count) = NOT_STORED.allow() {
                tracing::warn!(%error, count, "Plate reads were not stored (503); the cameras will resend them (one line a minute, with the count).");
            }
            reject(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "not_stored",
                error.to_string(),
            )
        }
    }
}

fn json(value: Value) -> Response {
    axum::Json(value).into_response()
}

/// A reply that only opens the camera's relay (a remote open, on a
/// heartbeat or another request that is not a read): Vzenith's explicit
/// self-timed pulse, Huaxia's `gpio_data`. Hikvision's reply carries no
/// command (its link refuses remote opens).
fn remote_open(vendor: CameraVendor) -> Response {
    match vendor {
        CameraVendor::Vzenith => json(lpr::vzenith::reply_plate_pulse(
            None,
            0,
            REMOTE_OPEN_PULSE_MS,
        )),
        CameraVendor::Huaxia => json(lpr::huaxia::reply(true)),
        CameraVendor::Hikvision => StatusCode::OK.into_response(),
    }
}

/// The relay pulse of a remote open through a Vzenith camera (a barrier's
/// OPEN input wants a short contact closure).
const REMOTE_OPEN_PULSE_MS: u32 = 500;

/// The vendor's reply; `open` asks the camera to raise the barrier.
fn reply(vendor: CameraVendor, read_id: Option<&str>, open: bool) -> Response {
    match vendor {
        CameraVendor::Vzenith => json(lpr::vzenith::reply_plate(read_id, open)),
        CameraVendor::Huaxia => json(lpr::huaxia::reply(open)),
        CameraVendor::Hikvision => StatusCode::OK.into_response(),
    }
}
