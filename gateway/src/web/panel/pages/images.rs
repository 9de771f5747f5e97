//! `/images/{name}`: plate snapshots from `<data_dir>/images`, for logged-in
//! users only. Names are checked so a request can never leave that folder.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Permission;
use crate::web::panel::guard::Viewer;
use crate::web::panel::{Panel, PanelError};

/// Largest image served.
const MAX_IMAGE_BYTES: u64 = 4 * 1024 * 1024;

/// Whether `name` is a relative path of plain segments (`a-z0-9._-`, no
/// `..`, no leading `/`) ending in an image extension.
pub(crate) fn is_safe_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let image = [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e));
    image
        && name.len() <= 200
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

pub(in crate::web::panel) async fn serve(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    if !is_safe_name(&name) {
        return Err(PanelError::NotFound(viewer.ctx.lang));
    }
    let core = panel.core()?;
    let path = core.images_dir.join(&name);
    let too_big = tokio::fs::metadata(&path)
        .await
        .map_or(true, |m| m.len() > MAX_IMAGE_BYTES);
    if too_big {
        return Err(PanelError::NotFound(viewer.ctx.lang));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| PanelError::NotFound(viewer.ctx.lang))?;
    let content_type = if name.to_ascii_lowercase().ends_with(".png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=86400"),
            ),
        ],
        bytes,
    )
        .into_response())
}
