//! How a panel action ends: checked input, an audit record, and a
//! post/redirect/get with a [`Flash`] kept for the session's next page
//! view; one-time keys that make a repeated actuation harmless.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use drivers::CommandOutcome;
use serde::Deserialize;

use crate::events::{GatewayEvent, PanelAction, PanelAudit};
use crate::pipeline::GATEWAY_DEVICE;
use crate::vocab::records::ListError;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::{PanelCore, PanelError};

/// Longest reason for a command, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 200;
/// Longest free text (house, owner, holder, block reason), in characters.
pub(crate) const MAX_TEXT_CHARS: usize = 64;
/// How long a flash waits for its page view.
const FLASH_TTL: Duration = Duration::from_secs(120);
/// How long a one-time key is remembered.
const KEY_TTL: Duration = Duration::from_secs(30 * 60);
/// Most flashes and keys kept (the oldest go first).
const MEMO_CAP: usize = 1024;

/// A message shown at the top of the page after an action.
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    /// `ok`, `warn` or `bad`.
    pub(crate) class: &'static str,
    pub(crate) text: String,
}

impl Flash {
    /// A success.
    pub(crate) fn ok(text: impl Into<String>) -> Flash {
        Flash {
            class: "ok",
            text: text.into(),
        }
    }

    /// Done, with a caveat (refused, not supported).
    pub(crate) fn warn(text: impl Into<String>) -> Flash {
        Flash {
            class: "warn",
            text: text.into(),
        }
    }

    /// Failed.
    pub(crate) fn bad(text: impl Into<String>) -> Flash {
        Flash {
            class: "bad",
            text: text.into(),
        }
    }
}

#[derive(Debug, Default)]
struct MemoInner {
    flashes: HashMap<String, (Instant, Flash)>,
    flash_order: VecDeque<String>,
    keys: HashMap<String, Instant>,
    key_order: VecDeque<String>,
}

/// What the panel remembers between an action and the next page view: the
/// flash per session (keyed by the session's CSRF token, which only that
/// session knows) and the one-time keys already used. Bounded in count and
/// time; in memory (a restart forgets a pending message, nothing else).
#[derive(Debug, Clone, Default)]
pub(crate) struct FlashBox {
    inner: Arc<Mutex<MemoInner>>,
}

fn bounded<V>(map: &mut HashMap<String, V>, order: &mut VecDeque<String>, key: String, value: V) {
    if map.insert(key.clone(), value).is_none() {
        order.push_back(key);
    }
    while order.len() > MEMO_CAP {
        if let Some(old) = order.pop_front() {
            map.remove(&old);
        }
    }
}

impl FlashBox {
    fn with<R>(&self, f: impl FnOnce(&mut MemoInner) -> R) -> R {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner)
    }

    /// Keeps `flash` for the session's next page.
    pub(crate) fn put(&self, session: &str, flash: Flash) {
        self.with(|m| {
            let MemoInner {
                flashes,
                flash_order,
                ..
            } = m;
            bounded(
                flashes,
                flash_order,
                session.to_owned(),
                (Instant::now(), flash),
            );
        });
    }

    /// The session's waiting flash, once.
    pub(crate) fn take_flash(&self, session: &str) -> Option<Flash> {
        self.with(|m| {
            let (at, flash) = m.flashes.remove(session)?;
            m.flash_order.retain(|k| k != session);
            (at.elapsed() < FLASH_TTL).then_some(flash)
        })
    }

    /// `true` the first time `key` is presented (within [`KEY_TTL`]).
    pub(crate) fn first_use(&self, key: &str) -> bool {
        self.with(|m| {
            let now = Instant::now();
            if m.keys.get(key).is_some_and(|at| now - *at < KEY_TTL) {
                return false;
            }
            let MemoInner {
                keys, key_order, ..
            } = m;
            bounded(keys, key_order, key.to_owned(), now);
            true
        })
    }
}

/// Post/redirect/get: keeps `flash` for this session and sends the browser
/// back to `to` (a local path) with `303 See Other`, so a reload shows the
/// page again instead of repeating the action.
pub(crate) fn done(viewer: &Viewer, to: &str, flash: Flash) -> Response {
    viewer.ctx.memo.put(&viewer.csrf, flash);
    let location = HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Whether an actuating form's one-time key is new. A form without a key
/// (a script, an old page) is let through: the key guards against the
/// double tap and the resubmitted form, not against a forged request (the
/// CSRF guard does that).
pub(crate) fn first_use(viewer: &Viewer, key: &str) -> bool {
    key.is_empty() || viewer.ctx.memo.first_use(key)
}

/// A device or lane command from a form: which, why, and the form's
/// one-time key.
#[derive(Debug, Deserialize)]
pub(crate) struct CommandForm {
    #[serde(default)]
    pub(crate) command: String,
    #[serde(default)]
    pub(crate) reason: String,
    #[serde(default)]
    pub(crate) key: String,
}

/// The flash for a command's outcome: `what: outcome (detail) · audit #seq`.
pub(crate) fn outcome_flash(
    t: &'static Strings,
    what: &str,
    outcome: &CommandOutcome,
    audit_seq: Option<u64>,
) -> Flash {
    let (class, label, detail) = match outcome {
        CommandOutcome::Done => ("ok", t.outcome_done, String::new()),
        CommandOutcome::Refused(why) => ("warn", t.outcome_refused, why.clone()),
        CommandOutcome::Failed(why) => ("bad", t.outcome_failed, why.clone()),
        CommandOutcome::Unsupported => ("warn", t.outcome_unsupported, String::new()),
    };
    let mut text = format!("{what}: {label}");
    if !detail.is_empty() {
        text.push_str(&format!(" ({detail})"));
    }
    if let Some(seq) = audit_seq {
        text.push_str(&format!(" · {} #{seq}", t.audit_seq));
    }
    Flash { class, text }
}

/// Checks a mandatory reason.
pub(crate) fn check_reason(t: &'static Strings, reason: &str) -> Option<&'static str> {
    if reason.trim().is_empty() {
        Some(t.err_reason_required)
    } else if reason.chars().count() > MAX_REASON_CHARS {
        Some(t.err_reason_long)
    } else {
        None
    }
}

/// Checks a free-text field (required or not) against [`MAX_TEXT_CHARS`].
pub(crate) fn text_error(t: &'static Strings, text: &str, required: bool) -> Option<&'static str> {
    if required && text.is_empty() {
        Some(t.err_required)
    } else if text.chars().count() > MAX_TEXT_CHARS {
        Some(t.err_text_long)
    } else {
        None
    }
}

/// Runs a list or credential store call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ListError> + Send + 'static,
) -> Result<Result<T, ListError>, PanelError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))
}

/// Records an audit event about the panel (never a password); a failure is
/// logged loudly but does not undo what was done.
pub(crate) async fn record_audit(core: &PanelCore, device: Option<&str>, audit: PanelAudit) {
    let device = device.unwrap_or(GATEWAY_DEVICE);
    let kind = audit.action.kind().as_str();
    if let Err(error) = core
        .pipeline
        .record(device, GatewayEvent::from(audit))
        .await
    {
        static NOT_STORED: crate::logging::Every = crate::logging::Every::minute();
        if let Some(count) = NOT_STORED.allow() {
            tracing::error!(%error, kind, count, "Audit records of panel actions were not stored (one line a minute, with the count).");
        }
    }
}

/// The audit of `action` by the viewer, from their address.
pub(crate) fn audit_by(viewer: &Viewer, action: PanelAction) -> PanelAudit {
    PanelAudit::new(action, &viewer.user.name, viewer.remote())
}

/// The one more thing an [`audit_change`] says, when it says one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Note<'a> {
    /// The reason given (`reason`).
    Reason(&'a str),
    /// What was changed (`detail`).
    Detail(&'a str),
}

/// Records a change made at the panel as an audit event — who, from where,
/// on what, and the reason or detail when given — and returns the
/// confirmation the page shows.
pub(crate) async fn audit_change(
    core: &PanelCore,
    viewer: &Viewer,
    action: PanelAction,
    target: &str,
    note: Option<Note<'_>>,
    message: String,
) -> Flash {
    let mut audit = audit_by(viewer, action).on(target);
    match note {
        Some(Note::Reason(reason)) => audit.reason = Some(reason.to_owned()),
        Some(Note::Detail(detail)) => audit.detail = Some(detail.to_owned()),
        None => {}
    }
    record_audit(core, None, audit).await;
    Flash::ok(message)
}

/// Removes an entry from a list on the blocking pool and audits it: a
/// missing entry is 404, a storage error 500 (never mistaken for "not
/// there"); on success, the confirmation the page shows.
/// Then back to the list `page`.
pub(crate) async fn remove_audited(
    core: &PanelCore,
    viewer: &Viewer,
    page: &str,
    action: PanelAction,
    target: &str,
    message: String,
    remove: impl FnOnce(&str) -> Result<bool, ListError> + Send + 'static,
) -> Result<Response, PanelError> {
    let owned = target.to_owned();
    if !blocking(move || remove(&owned)).await?? {
        return Err(PanelError::NotFound(viewer.ctx.lang));
    }
    let flash = audit_change(core, viewer, action, target, None, message).await;
    Ok(done(viewer, page, flash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_is_shown_once_and_a_key_is_used_once() {
        let memo = FlashBox::default();
        memo.put("s1", Flash::ok("saved"));
        assert_eq!(memo.take_flash("s2").map(|f| f.text), None);
        assert_eq!(
            memo.take_flash("s1").map(|f| f.text).as_deref(),
            Some("saved")
        );
        assert!(memo.take_flash("s1").is_none());
        assert!(memo.first_use("k"));
        assert!(!memo.first_use("k"), "a repeated key is refused");
        for i in 0..MEMO_CAP + 10 {
            memo.put(&format!("s{i}"), Flash::ok("x"));
        }
        assert!(memo.take_flash("s0").is_none(), "the oldest went first");
        assert!(memo.take_flash(&format!("s{}", MEMO_CAP + 9)).is_some());
    }
}
