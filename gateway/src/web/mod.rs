//! HTTP on the panel listener: process health (`/healthz`), readiness
//! (`/readyz`), Prometheus metrics (`/metrics`), the platform's pull API
//! ([`api`]: `/api/v1/telemetry`) and the guards' web panel ([`panel`]);
//! how the gateway's listeners are served ([`listener`] for plain HTTP with
//! its limits, [`tls`] for HTTPS).
//!
//! The router is a plain function of its state ([`router`]), so tests drive
//! it with `tower::ServiceExt::oneshot` and the gateway serves it with
//! [`listener::serve`].

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::config::Secret;
use crate::metrics::Metrics;

pub mod api;
pub mod listener;
pub mod panel;
pub mod tls;

/// Largest request body the panel accepts.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Whether the gateway serves traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Starting up; the reason says what it waits for.
    Starting(&'static str),
    /// Store open, drivers started.
    Ready,
    /// Shutting down.
    Draining,
    /// A core task failed; the gateway is stopping to be started again.
    Failed(String),
    /// Running, but a part cannot do its job (the store on a full disk):
    /// gates and doors work from memory, nothing new is recorded. The
    /// gateway recovers by itself; no restart.
    Unavailable(&'static str),
}

/// What the panel handlers share.
#[derive(Debug, Clone)]
pub struct PanelState {
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Current readiness.
    pub readiness: watch::Receiver<Readiness>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    /// The guards' web panel.
    pub panel: panel::Panel,
    /// The platform's pull API (`/api/v1/…`), when the gateway serves it.
    pub api: Option<api::ApiState>,
}

/// The panel router.
pub fn router(state: PanelState) -> Router {
    let pages = panel::router(state.panel.clone());
    let api = state.api.clone().map(api::router).unwrap_or_default();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(pages)
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A span per request (method, path); logged at DEBUG, never above.
        .layer(
            // A 5xx answer is a state, not a fault of the listener: `/readyz`
            // answers 503 while starting. Handlers log their own failures.
            tower_http::trace::TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<PanelState>) -> Response {
    let readiness = state.readiness.borrow().clone();
    match readiness {
        Readiness::Ready => axum::Json(serde_json::json!({"ready": true})).into_response(),
        Readiness::Starting(reason) => not_ready(reason),
        Readiness::Draining => not_ready("shutting down"),
        Readiness::Failed(reason) => not_ready(&format!("failed: {reason}")),
        Readiness::Unavailable(reason) => not_ready(reason),
    }
}

fn not_ready(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({"ready": false, "reason": reason})),
    )
        .into_response()
}

async fn metrics(State(state): State<PanelState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token
        && !bearer_matches(&headers, token)
    {
        state.metrics.rejected("metrics", "unauthorized");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Whether the request carries `Authorization: Bearer <token>`; compared in
/// constant time so the comparison does not leak the token.
pub fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    constant_time_eq::constant_time_eq(presented.as_bytes(), token.expose().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn state(readiness: Readiness, token: Option<&str>) -> (PanelState, watch::Sender<Readiness>) {
        let (tx, rx) = watch::channel(readiness);
        let metrics = Arc::new(Metrics::new());
        let state = PanelState {
            panel: panel::Panel::new(
                metrics.clone(),
                tokio_util::sync::CancellationToken::new(),
                false,
            ),
            metrics,
            readiness: rx,
            metrics_token: token.map(|t| Secret::new(t.to_owned())),
            api: None,
        };
        (state, tx)
    }

    async fn get(router: Router, uri: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::get(uri);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = router
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_reports_503_with_a_reason_until_ready() {
        let (state, tx) = state(Readiness::Starting("opening the store"), None);
        let (status, body) = get(router(state.clone()), "/readyz", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("opening the store"), "{body}");
        tx.send_replace(Readiness::Ready);
        let (status, _) = get(router(state.clone()), "/readyz", None).await;
        assert_eq!(status, StatusCode::OK);
        tx.send_replace(Readiness::Unavailable("store unavailable: disk full"));
        let (status, body) = get(router(state.clone()), "/readyz", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("store unavailable: disk full"), "{body}");
        tx.send_replace(Readiness::Draining);
        let (status, body) = get(router(state), "/readyz", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"));
    }

    #[tokio::test]
    async fn metrics_token_is_required_when_configured() {
        let (state, _tx) = state(Readiness::Ready, Some("s3cret"));
        let (status, _) = get(router(state.clone()), "/metrics", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = get(router(state.clone()), "/metrics", Some("Bearer wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        for scheme in ["bearer s3cret", "BEARER  s3cret"] {
            let (status, _) = get(router(state.clone()), "/metrics", Some(scheme)).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "the scheme is case-insensitive: {scheme}"
            );
        }
        let (status, _) = get(router(state.clone()), "/metrics", Some("Basic s3cret")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = get(router(state), "/metrics", Some("Bearer s3cret")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("gatehouse_http_rejected_total"), "{body}");
        assert!(
            body.contains(r#"route="metrics",reason="unauthorized""#),
            "{body}"
        );
    }

    #[tokio::test]
    async fn healthz_answers_while_starting() {
        let (state, _tx) = state(Readiness::Starting("x"), None);
        let (status, body) = get(router(state), "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ok\n");
    }
}
