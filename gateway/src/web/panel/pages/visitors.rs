//! `/visitors` (访客): register a plate for a host unit with a validity
//! window (default now → +24 h) for one or many entries; list the active
//! passes; revoke. Every field is checked before anything is written, and
//! each message is shown next to its field; a blacklisted plate is
//! registered only after a second, explicit confirmation; registrations and
//! revocations are audited (`visitor_registered`, `visitor_revoked`) and end
//! in a redirect (post/redirect/get). Managers also import and export the
//! passes as CSV (through the vehicles page's list handlers).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Chrome, PanelAction, audit_by, record_audit};
use crate::auth::Permission;
use crate::events::PanelAudit;
use crate::lists::plates::{NewVisitorPass, canonical_plate};
use crate::rules::vehicle::VisitorPass;
use crate::vocab::time::{format_ms, parse_ms};
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::csv::Preview;
use crate::web::panel::kit::{Flash, done, first_use};
use crate::web::panel::{Panel, PanelCore, PanelError};

/// Longest host unit, in characters.
const MAX_TEXT_CHARS: usize = 64;
/// The default validity window.
const DEFAULT_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// One pass as a row.
#[derive(Debug, Clone)]
pub(crate) struct PassRow {
    pub(crate) id: i64,
    pub(crate) plate: String,
    pub(crate) host_unit: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) usage: &'static str,
}

impl PassRow {
    fn new(pass: &VisitorPass, t: &'static Strings) -> PassRow {
        PassRow {
            id: pass.id,
            plate: pass.plate.clone(),
            host_unit: pass.host_unit.clone(),
            from: format_ms(pass.valid_from),
            to: format_ms(pass.valid_to),
            usage: match (pass.single_use, pass.used) {
                (true, true) => t.pass_used,
                (true, false) => t.use_single,
                (false, _) => t.use_multiple,
            },
        }
    }
}

/// What was entered, and the message per field.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entered {
    pub(crate) plate: String,
    pub(crate) host_unit: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) single: bool,
    pub(crate) plate_error: Option<&'static str>,
    pub(crate) host_error: Option<&'static str>,
    pub(crate) from_error: Option<&'static str>,
    pub(crate) to_error: Option<&'static str>,
    /// The plate is blacklisted (with the reason): asked to confirm.
    pub(crate) blacklisted: Option<String>,
}

impl Entered {
    fn defaults() -> Entered {
        let now = drivers::contract::now_ms();
        Entered {
            from: picker(now),
            to: picker(now + DEFAULT_WINDOW_MS),
            single: true,
            ..Entered::default()
        }
    }
}

/// A time as a `datetime-local` input's value (`2026-05-01T08:00`).
fn picker(ms: i64) -> String {
    format_ms(ms).replacen(' ', "T", 1)
}

#[derive(Template)]
#[template(path = "visitors.html")]
struct VisitorsPage {
    c: Chrome,
    passes: Vec<PassRow>,
    form: Entered,
    preview: Option<Preview>,
    preview_cols: Vec<&'static str>,
}

/// The page with an import preview (from the list import handler).
pub(crate) async fn with_preview(
    core: &PanelCore,
    viewer: &Viewer,
    status: StatusCode,
    preview: Preview,
) -> Result<Response, PanelError> {
    visitors_page(core, viewer, status, Entered::defaults(), Some(preview)).await
}

async fn visitors_page(
    core: &PanelCore,
    viewer: &Viewer,
    status: StatusCode,
    form: Entered,
    preview: Option<Preview>,
) -> Result<Response, PanelError> {
    let t = viewer.t();
    let plates = core.plates.clone();
    let passes = tokio::task::spawn_blocking(move || plates.visitor_passes())
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))??;
    let now = drivers::contract::now_ms();
    let passes = passes
        .iter()
        .filter(|p| p.valid_to >= now && !(p.single_use && p.used))
        .map(|p| PassRow::new(p, t))
        .collect();
    let page = VisitorsPage {
        c: Chrome::new(viewer, "visitors"),
        passes,
        form,
        preview,
        preview_cols: super::vehicles::list_columns(t, crate::lists::plates::ListKind::Visitors),
    };
    Ok(render(status, &page))
}

/// `GET /visitors`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    visitors_page(&core, &viewer, StatusCode::OK, Entered::defaults(), None).await
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct RegisterForm {
    #[serde(default)]
    plate: String,
    #[serde(default)]
    host_unit: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_to: String,
    #[serde(default)]
    usage: String,
    /// Set by the page after it warned that the plate is blacklisted.
    #[serde(default)]
    blacklisted_ok: String,
    /// The form's one-time key.
    #[serde(default)]
    key: String,
}

/// Checks the form: the pass to write, or the form with its messages.
pub(crate) fn check(
    t: &'static Strings,
    plate: &str,
    host_unit: &str,
    from: &str,
    to: &str,
    single: bool,
) -> Result<(String, String, i64, i64), Box<Entered>> {
    let mut entered = Entered {
        plate: plate.trim().to_owned(),
        host_unit: host_unit.trim().to_owned(),
        from: from.trim().to_owned(),
        to: to.trim().to_owned(),
        single,
        ..Entered::default()
    };
    let canonical = canonical_plate(&entered.plate).ok();
    if entered.plate.is_empty() {
        entered.plate_error = Some(t.err_required);
    } else if canonical.is_none() {
        entered.plate_error = Some(t.err_plate);
    }
    if entered.host_unit.is_empty() {
        entered.host_error = Some(t.err_required);
    } else if entered.host_unit.chars().count() > MAX_TEXT_CHARS {
        entered.host_error = Some(t.err_text_long);
    }
    let valid_from = parse_ms(&entered.from, false).ok();
    let valid_to = parse_ms(&entered.to, true).ok();
    if valid_from.is_none() {
        entered.from_error = Some(t.err_datetime);
    }
    if valid_to.is_none() {
        entered.to_error = Some(t.err_datetime);
    }
    if let (Some(f), Some(u)) = (valid_from, valid_to)
        && u <= f
    {
        entered.to_error = Some(t.err_window_order);
    }
    match (canonical, valid_from, valid_to) {
        (Some(plate), Some(f), Some(u))
            if entered.plate_error.is_none()
                && entered.host_error.is_none()
                && entered.from_error.is_none()
                && entered.to_error.is_none() =>
        {
            Ok((plate, entered.host_unit, f, u))
        }
        _ => Err(Box::new(entered)),
    }
}

/// `POST /visitors`: registers a pass.
pub(in crate::web::panel) async fn register(
    State(panel): State<Panel>,
    viewer: Viewer,
    Form(form): Form<RegisterForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::RegisterVisitors)?;
    let core = panel.core()?;
    let t = viewer.t();
    let single = form.usage != "multiple";
    if !first_use(&viewer, &form.key) {
        return Ok(done(&viewer, "/visitors", Flash::warn(t.already_done)));
    }
    let (plate, host_unit, valid_from, valid_to) = match check(
        t,
        &form.plate,
        &form.host_unit,
        &form.valid_from,
        &form.valid_to,
        single,
    ) {
        Ok(checked) => checked,
        Err(entered) => {
            return visitors_page(
                &core,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                *entered,
                None,
            )
            .await;
        }
    };
    let listed = core.plates.snapshot().blacklist.get(&plate).cloned();
    if let Some(entry) = listed.filter(|_| form.blacklisted_ok != "1") {
        let entered = Entered {
            plate: plate.clone(),
            host_unit,
            from: form.valid_from.trim().to_owned(),
            to: form.valid_to.trim().to_owned(),
            single,
            blacklisted: Some(entry.reason),
            ..Entered::default()
        };
        return visitors_page(&core, &viewer, StatusCode::CONFLICT, entered, None).await;
    }
    let pass = NewVisitorPass {
        plate: plate.clone(),
        host_unit: host_unit.clone(),
        valid_from,
        valid_to,
        single_use: single,
        created_by: viewer.user.name.clone(),
    };
    let plates = core.plates.clone();
    let id = tokio::task::spawn_blocking(move || plates.add_visitor(&pass))
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))??;
    record_audit(
        &core,
        None,
        PanelAudit {
            pass_id: Some(id),
            valid_from: Some(valid_from),
            valid_to: Some(valid_to),
            single_use: Some(single),
            detail: Some(format!(
                "{host_unit} {} → {}",
                format_ms(valid_from),
                format_ms(valid_to)
            )),
            host_unit: Some(host_unit.clone()),
            ..audit_by(&viewer, PanelAction::VisitorRegistered).on(plate.as_str())
        },
    )
    .await;
    let flash = Flash::ok(format!(
        "{}: {plate} · {host_unit}",
        t.visitor_registered_msg
    ));
    Ok(done(&viewer, "/visitors", flash))
}

/// `POST /visitors/{id}/revoke`.
pub(in crate::web::panel) async fn revoke(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::RegisterVisitors)?;
    let core = panel.core()?;
    let t = viewer.t();
    let plates = core.plates.clone();
    let (target, revoked) = tokio::task::spawn_blocking(move || {
        let target = plates
            .visitor_passes()?
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.plate);
        plates.revoke_visitor(id).map(|done| (target, done))
    })
    .await
    .map_err(|e| PanelError::Internal(e.to_string()))??;
    if !revoked {
        return Err(PanelError::NotFound(viewer.ctx.lang));
    }
    record_audit(
        &core,
        None,
        PanelAudit {
            target,
            pass_id: Some(id),
            ..audit_by(&viewer, PanelAction::VisitorRevoked)
        },
    )
    .await;
    Ok(done(&viewer, "/visitors", Flash::ok(t.visitor_revoked_msg)))
}
