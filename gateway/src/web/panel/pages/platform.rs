//! `/platform` (平台连接): a placeholder until the uplink lands; it then
//! shows online/backlogged/offline, backlog depth, oldest unsent, rejects.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use super::Chrome;
use crate::auth::Permission;
use crate::web::panel::PanelError;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;

#[derive(Template)]
#[template(path = "platform.html")]
struct PlatformPage {
    c: Chrome,
}

pub(in crate::web::panel) async fn page(viewer: Viewer) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    Ok(render(
        StatusCode::OK,
        &PlatformPage {
            c: Chrome::new(&viewer, "platform"),
        },
    ))
}
