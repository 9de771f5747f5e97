//! One module per page, each built from the page kit ([`super::kit`]:
//! the frame, post/redirect/get, audit helpers, CSV in and out).

pub(super) mod audit;
pub(super) mod cards;
pub(super) mod cctv;
pub(super) mod devices;
pub(super) mod facility;
pub(super) mod images;
pub(super) mod intercom;
pub(super) mod lanes;
pub(super) mod live;
pub(super) mod login;
pub(super) mod platform;
pub(super) mod privacy;
pub(super) mod traffic;
pub(super) mod users;
pub(super) mod vehicles;
pub(super) mod visitors;

use axum::response::{IntoResponse, Redirect, Response};

use super::PanelError;
use super::guard::{Ctx, Viewer};
pub(crate) use super::kit::{
    Chrome, Note, Opt, audit_by, audit_change, options, record_audit, remove_audited,
};
pub(crate) use crate::events::PanelAction;

/// `/`: the live page.
pub(super) async fn root(_viewer: Viewer) -> Response {
    Redirect::to("/live").into_response()
}

/// Anything else.
pub(super) async fn not_found(ctx: Ctx) -> PanelError {
    PanelError::NotFound(ctx.lang)
}
