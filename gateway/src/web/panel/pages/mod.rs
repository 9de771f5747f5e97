//! One module per page. Shared here: the page chrome (navigation, user,
//! language switch, CSRF token for forms) and recording audit events.

pub(super) mod audit;
pub(super) mod cards;
pub(super) mod devices;
pub(super) mod images;
pub(super) mod lanes;
pub(super) mod live;
pub(super) mod login;
pub(super) mod platform;
pub(super) mod traffic;
pub(super) mod users;
pub(super) mod vehicles;
pub(super) mod visitors;

use axum::response::{IntoResponse, Redirect, Response};
use drivers::Class;

use super::PanelCore;
use super::PanelError;
use super::guard::{Ctx, Viewer};
use super::i18n::Strings;
use crate::auth::Permission;
use crate::pipeline::GATEWAY_DEVICE;

/// What every page's frame shows.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) t: &'static Strings,
    pub(crate) lang: &'static str,
    pub(crate) other_lang: &'static str,
    pub(crate) other_lang_name: &'static str,
    pub(crate) user: String,
    pub(crate) role: &'static str,
    pub(crate) csrf: String,
    pub(crate) nav: &'static str,
    pub(crate) can_audit: bool,
    pub(crate) can_users: bool,
    pub(crate) can_residents: bool,
    /// This page, for the language switch to come back to.
    pub(crate) here: String,
}

impl Chrome {
    pub(crate) fn new(viewer: &Viewer, nav: &'static str) -> Chrome {
        let lang = viewer.ctx.lang;
        Chrome {
            t: lang.strings(),
            lang: lang.code(),
            other_lang: lang.other().code(),
            other_lang_name: lang.other().strings().language_name,
            user: viewer.user.name.clone(),
            role: lang.strings().role(viewer.user.role),
            csrf: viewer.csrf.clone(),
            nav,
            can_audit: viewer.may(Permission::ViewAudit),
            can_users: viewer.may(Permission::ManageUsers),
            can_residents: viewer.may(Permission::ManageResidents),
            here: viewer.ctx.path.clone(),
        }
    }

    /// `active` for the current navigation entry.
    pub(crate) fn active(&self, nav: &str) -> &'static str {
        if self.nav == nav { "active" } else { "" }
    }
}

/// One `<option>` of a select.
#[derive(Debug, Clone)]
pub(crate) struct Opt {
    pub(crate) value: String,
    pub(crate) label: String,
    pub(crate) selected: bool,
}

/// Options from `(value, label)` pairs, `current` selected.
pub(crate) fn options<V: AsRef<str>, L: AsRef<str>>(
    pairs: impl IntoIterator<Item = (V, L)>,
    current: &str,
) -> Vec<Opt> {
    pairs
        .into_iter()
        .map(|(v, l)| Opt {
            selected: v.as_ref() == current,
            value: v.as_ref().to_owned(),
            label: l.as_ref().to_owned(),
        })
        .collect()
}

/// Records an audit event about the panel (never a password); a failure is
/// logged loudly but does not undo what was done.
pub(crate) async fn record_audit(
    core: &PanelCore,
    device: Option<&str>,
    kind: &str,
    body: serde_json::Value,
) {
    let device = device.unwrap_or(GATEWAY_DEVICE);
    if let Err(error) = core.pipeline.record(device, kind, Class::Audit, body).await {
        tracing::error!(%error, kind, "An audit record of a panel action was not stored.");
    }
}

/// Records a change made at the panel as an audit event — who, from where,
/// on what, and why when a reason was given — and returns the confirmation
/// the page shows.
pub(crate) async fn audit_change(
    core: &PanelCore,
    viewer: &Viewer,
    kind: &str,
    target: &str,
    reason: Option<&str>,
    message: String,
) -> devices::Flash {
    let mut body = serde_json::json!({
        "actor": viewer.user.name,
        "remote": viewer.remote(),
        "target": target,
    });
    if let (Some(reason), Some(map)) = (reason, body.as_object_mut()) {
        map.insert("reason".into(), reason.into());
    }
    record_audit(core, None, kind, body).await;
    devices::Flash {
        class: "ok",
        text: message,
    }
}

/// Removes an entry from a list on the blocking pool and audits it: a
/// missing entry is 404, a storage error 500 (never mistaken for "not
/// there"); on success, the confirmation the page shows.
pub(crate) async fn remove_audited(
    core: &PanelCore,
    viewer: &Viewer,
    kind: &str,
    target: &str,
    message: String,
    remove: impl FnOnce() -> Result<bool, crate::vocab::records::ListError> + Send + 'static,
) -> Result<devices::Flash, PanelError> {
    if !vehicles::blocking(remove).await?? {
        return Err(PanelError::NotFound(viewer.ctx.lang));
    }
    Ok(audit_change(core, viewer, kind, target, None, message).await)
}

/// `/`: the live page.
pub(super) async fn root(_viewer: Viewer) -> Response {
    Redirect::to("/live").into_response()
}

/// Anything else.
pub(super) async fn not_found(ctx: Ctx) -> PanelError {
    PanelError::NotFound(ctx.lang)
}
