//! The device-side HTTP listener (its own port, default `0.0.0.0:8081`,
//! apart from the panel): plate cameras push to `POST /lpr/{camera_id}`.
//!
//! A push is decoded by the vendor's codec, its images are saved, and the
//! read goes through the pipeline; the camera's reply is sent only after the
//! read is on disk, and for a lane opened by the camera's relay the reply
//! itself opens the barrier. Bad input gets a 4xx with the reason and a
//! counter, never a panic: 400 malformed, 404 unknown camera (logged at most
//! once a minute), 413 too large, 503 when the store could not take it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use drivers::lpr::{self, CameraMessage, PlateReadPayload, Vendor};
use drivers::{DeviceEvent, EventSender};
use serde_json::Value;

use super::images::ImageStore;
use super::link::Seen;
use crate::config::CameraVendor;
use crate::metrics::Metrics;

/// How often an unknown camera id is logged at most.
const UNKNOWN_LOG_EVERY: Duration = Duration::from_secs(60);

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
    cameras: Arc<HashMap<String, CameraEntry>>,
    images: ImageStore,
    metrics: Arc<Metrics>,
    last_unknown_log: Arc<Mutex<Option<Instant>>>,
}

impl IngressState {
    /// State for the listener.
    pub fn new(
        cameras: HashMap<String, CameraEntry>,
        images: ImageStore,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cameras: Arc::new(cameras),
            images,
            metrics,
            last_unknown_log: Arc::new(Mutex::new(None)),
        }
    }
}

/// The listener's router; bodies above `max_body_bytes` get 413.
pub fn router(state: IngressState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/lpr/{camera_id}", post(push))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // A span per push (method, path with the camera id), at DEBUG.
        .layer(tower_http::trace::TraceLayer::new_for_http())
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(camera) = state.cameras.get(&camera_id) else {
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
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "unreadable"
            };
            return reject(&state, status, reason, rejection.body_text());
        }
    };
    camera.seen.tap();
    let content_type = headers
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
        CameraMessage::Plate(payload) => plate(&state, camera, *payload).await,
        CameraMessage::Heartbeat { .. } | CameraMessage::GioIn { .. } | CameraMessage::Other(_) => {
            reply(camera.vendor, None, false)
        }
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
        tracing::warn!(%error, "Saving a read's snapshots failed.");
    }
    match stored {
        Ok(receipt) => {
            let open = receipt
                .decided
                .as_ref()
                .and_then(|d| d.get("open_via"))
                .and_then(Value::as_str)
                == Some("camera");
            if resend && camera.vendor == CameraVendor::Vzenith {
                return json(lpr::vzenith::reply_continue_offline(read_id.as_deref()));
            }
            reply(camera.vendor, read_id.as_deref(), open)
        }
        Err(error) => {
            tracing::warn!(%error, "A plate read was not stored; the camera will resend it.");
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

/// The vendor's reply; `open` asks the camera to raise the barrier.
fn reply(vendor: CameraVendor, read_id: Option<&str>, open: bool) -> Response {
    match vendor {
        CameraVendor::Vzenith => json(lpr::vzenith::reply_plate(read_id, open)),
        CameraVendor::Huaxia => json(lpr::huaxia::reply(open)),
        CameraVendor::Hikvision => StatusCode::OK.into_response(),
    }
}
