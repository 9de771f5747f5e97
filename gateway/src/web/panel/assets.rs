//! The panel's static files (CSS, a little plain JavaScript, the icon), embedded in
//! the binary with `include_str!` so the box needs no files beside it and
//! no build chain.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `(name, content type, contents)` of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "panel.css",
        "text/css; charset=utf-8",
        include_str!("../../../assets/panel.css"),
    ),
    (
        "panel.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../assets/panel.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../../assets/favicon.svg"),
    ),
];

/// `GET /favicon.ico`: the icon (browsers ask for it before reading the page).
pub(super) async fn favicon() -> Response {
    serve(Path("favicon.svg".to_owned())).await
}

/// `GET /assets/{name}`.
pub(super) async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=3600"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
