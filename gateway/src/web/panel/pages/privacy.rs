//! `/privacy` (个人信息删除, admin only): erasure on request. A form names
//! a plate, a card number or a house, with the reason and a box ticked to
//! confirm (the browser asks once more); the erasure
//! ([`crate::privacy::Eraser`]) runs on the blocking pool through the
//! store's writer and is recorded as one `privacy_erasure` event (counts,
//! the reason, who — never the person), which the platform receives too.
//! The lists in memory are reloaded at once.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Chrome, Opt, options};
use crate::auth::Permission;
use crate::events::GatewayEvent;
use crate::pipeline::GATEWAY_DEVICE;
use crate::privacy::{ErasedBy, ErasureError, Subject};
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::kit::{Flash, done};
use crate::web::panel::{Panel, PanelError};

/// The longest reason kept.
const REASON_MAX_CHARS: usize = 200;

/// What the form holds, and its problem.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entered {
    pub(crate) by: String,
    pub(crate) value: String,
    pub(crate) reason: String,
    pub(crate) error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "privacy.html")]
struct PrivacyPage {
    c: Chrome,
    kinds: Vec<Opt>,
    entered: Entered,
}

fn privacy_page(viewer: &Viewer, status: StatusCode, entered: Entered) -> Response {
    let t = viewer.t();
    let page = PrivacyPage {
        c: Chrome::new(viewer, "users"),
        kinds: options(
            [
                ("plate", t.col_plate),
                ("card", t.col_card),
                ("house", t.col_house),
            ],
            &entered.by,
        ),
        entered,
    };
    render(status, &page)
}

/// `GET /privacy`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageUsers)?;
    panel.core()?;
    Ok(privacy_page(&viewer, StatusCode::OK, Entered::default()))
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct EraseForm {
    #[serde(default)]
    by: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: Option<String>,
}

/// `POST /privacy/erase`: erases one person.
pub(in crate::web::panel) async fn erase(
    State(panel): State<Panel>,
    viewer: Viewer,
    Form(form): Form<EraseForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageUsers)?;
    let core = panel.core()?;
    let t = viewer.t();
    let reason = form.reason.trim().to_owned();
    let subject = Subject::parse(&form.by, &form.value);
    let error = if subject.is_err() {
        Some(t.err_privacy_subject)
    } else if reason.is_empty() {
        Some(t.err_reason_required)
    } else if reason.chars().count() > REASON_MAX_CHARS {
        Some(t.err_reason_long)
    } else if form.confirm.is_none() {
        Some(t.err_privacy_confirm)
    } else {
        None
    };
    let (Ok(subject), None) = (subject, error) else {
        let entered = Entered {
            by: form.by,
            value: form.value,
            reason,
            error,
        };
        return Ok(privacy_page(
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            entered,
        ));
    };
    let by = ErasedBy {
        actor: viewer.user.name.clone(),
        via: "panel",
        remote: viewer.remote(),
        reason,
    };
    let (eraser, erasing) = (core.eraser.clone(), subject.clone());
    let record = tokio::task::spawn_blocking(move || eraser.erase(&erasing, by))
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))?;
    let record = match record {
        Ok(record) => record,
        Err(ErasureError::Invalid(_)) => {
            return Ok(privacy_page(
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                Entered {
                    error: Some(t.err_privacy_subject),
                    ..Entered::default()
                },
            ));
        }
        Err(error) => return Err(error.into()),
    };
    let (plates, credentials) = (core.plates.clone(), core.credentials.clone());
    let reloaded = tokio::task::spawn_blocking(move || {
        plates.refresh_if_changed()?;
        credentials.reload_if_changed()
    })
    .await;
    if !matches!(reloaded, Ok(Ok(_))) {
        tracing::warn!(
            "The lists were not reloaded after an erasure; the periodic check reloads them."
        );
    }
    let removed: u64 = record.removed.values().sum();
    let snapshots = record.stripped.get("snapshots").copied().unwrap_or(0);
    let stripped: u64 = record.stripped.values().sum::<u64>() - snapshots;
    let text = format!(
        "{} {}: {} {removed}, {} {stripped}, {} {snapshots}",
        t.privacy_erased, record.masked, t.privacy_removed, t.privacy_stripped, t.privacy_snapshots
    );
    if let Err(error) = core
        .pipeline
        .record(GATEWAY_DEVICE, GatewayEvent::PrivacyErasure(record))
        .await
    {
        tracing::error!(%error, "The record of an erasure was not stored.");
        return Ok(done(&viewer, "/privacy", Flash::bad(text)));
    }
    Ok(done(&viewer, "/privacy", Flash::ok(text)))
}
