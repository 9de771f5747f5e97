//! The platform's pull API on the panel listener: `GET /api/v1/telemetry`
//! (the [`TelemetrySource`] snapshot) and `GET /api/v1/images/{name}` (a
//! snapshot image an event names: a plate read's `images`, a
//! `camera_snapshot`'s `image`, from `<data_dir>/images`; names are checked
//! so a request never leaves that folder). Every route needs
//! `Authorization: Bearer <[api] token>`, compared in constant time
//! ([`super::bearer_matches`]); a missing or wrong token, or no token
//! configured at all, gets 401.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::Secret;
use crate::metrics::Metrics;
use crate::uplink::telemetry::TelemetrySource;

/// What the API handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The platform's token (`[api] token`).
    pub token: Option<Secret>,
    /// The snapshot's sources, set once the gateway has started.
    pub source: Arc<OnceLock<TelemetrySource>>,
    /// For counting rejected requests.
    pub metrics: Arc<Metrics>,
    /// Where snapshot images are stored (`<data_dir>/images`).
    pub images_dir: PathBuf,
}

/// Largest image served.
const MAX_IMAGE_BYTES: u64 = 8 * 1024 * 1024;

/// The API router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/telemetry", get(telemetry))
        .route("/api/v1/images/{*name}", get(image))
        .with_state(state)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "missing or wrong bearer token\n",
    )
        .into_response()
}

async fn telemetry(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let authorised = state
        .token
        .as_ref()
        .is_some_and(|token| super::bearer_matches(&headers, token));
    if !authorised {
        state.metrics.rejected("api_telemetry", "unauthorized");
        return unauthorized();
    }
    match state.source.get() {
        Some(source) => axum::Json(source.snapshot().await).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response(),
    }
}

async fn image(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let authorised = state
        .token
        .as_ref()
        .is_some_and(|token| super::bearer_matches(&headers, token));
    if !authorised {
        state.metrics.rejected("api_images", "unauthorized");
        return unauthorized();
    }
    let not_found = || (StatusCode::NOT_FOUND, "no such image\n").into_response();
    if !crate::web::panel::is_safe_name(&name) {
        return not_found();
    }
    let path = state.images_dir.join(&name);
    match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() && m.len() <= MAX_IMAGE_BYTES => {}
        _ => return not_found(),
    }
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return not_found();
    };
    let content_type = if name.to_ascii_lowercase().ends_with(".png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=86400"),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use std::time::Instant;
    use tower::ServiceExt;

    use crate::supervisor::Drivers;
    use crate::uplink::status::UplinkStatus;
    use crate::uplink::sync::ListRegistry;
    use crate::uplink::telemetry::RecentAlarms;

    fn state(token: Option<&str>) -> ApiState {
        let source = Arc::new(OnceLock::new());
        let _ = source.set(TelemetrySource {
            facility: crate::facility::Facility::default(),
            estate_id: "e".into(),
            gateway_id: "g".into(),
            drivers: Drivers::default(),
            status: Arc::new(UplinkStatus::default()),
            alarms: RecentAlarms::default(),
            lists: ListRegistry::default(),
            started: Instant::now(),
        });
        ApiState {
            token: token.map(|t| Secret::new(t.into())),
            source,
            metrics: Arc::new(Metrics::new()),
            images_dir: PathBuf::from("/nonexistent"),
        }
    }

    async fn get(state: ApiState, auth: Option<&str>) -> (StatusCode, String) {
        get_at(state, "/api/v1/telemetry", auth).await
    }

    async fn get_at(state: ApiState, uri: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::get(uri);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = router(state)
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
    async fn telemetry_needs_the_platform_token() {
        let (status, _) = get(state(Some("t0ken")), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = get(state(Some("t0ken")), Some("Bearer wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = get(state(None), Some("Bearer anything")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "no token configured: closed"
        );
        let (status, body) = get(state(Some("t0ken")), Some("Bearer t0ken")).await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["gateway_id"], "g");
        assert_eq!(json["uplink"]["state"], "disabled");
        assert!(json["store"]["depth"].is_u64(), "{json}");
        assert!(json["devices"].is_array());
        assert!(json["recent_alarms"].is_array());
    }

    #[tokio::test]
    async fn images_are_served_to_the_platform_token_only_and_only_from_the_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("images/20261202")).expect("day folder");
        std::fs::write(
            dir.path().join("images/20261202/a-full.jpg"),
            b"\xff\xd8jpeg",
        )
        .expect("image");
        std::fs::write(dir.path().join("secret.jpg"), b"outside").expect("outside");
        let with_dir = || ApiState {
            images_dir: dir.path().join("images"),
            ..state(Some("t0ken"))
        };
        let uri = "/api/v1/images/20261202/a-full.jpg";
        let (status, _) = get_at(with_dir(), uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = get_at(with_dir(), uri, Some("Bearer t0ken")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.ends_with("jpeg"));
        for outside in [
            "/api/v1/images/../secret.jpg",
            "/api/v1/images/20261202/..%2F..%2Fsecret.jpg",
            "/api/v1/images/20261202/missing.jpg",
            "/api/v1/images/20261202",
        ] {
            let (status, _) = get_at(with_dir(), outside, Some("Bearer t0ken")).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{outside}");
        }
    }
}
