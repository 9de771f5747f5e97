//! The page kit: what every panel page is made of, so a new page (监控
//! cameras, 对讲 intercom, 设施 facility, …) is a handler, a template and its
//! strings, nothing more. Use these, do not copy from another page.
//!
//! Rust side:
//! - [`Chrome`] (the frame: navigation, user, language, CSRF token, the
//!   flash left by the last action) — `Chrome::new(&viewer, "nav-key")`;
//!   [`Chrome::fragment`] for parts fetched by script; [`options`] for selects.
//! - Actions end in **post/redirect/get**: a handler that changed something
//!   returns [`done`] (`303` back to the page, the [`Flash`] kept for the
//!   session's next page view), so a reload never sends it again. A form
//!   that actuates carries a one-time key ([`Chrome::once_key`], checked with
//!   [`first_use`]) so a double tap is refused too. Refused input re-renders
//!   the page with `422` and the messages next to their fields.
//! - [`CommandForm`] + [`outcome_flash`]: a device command with its reason;
//!   [`check_reason`], [`text_error`]: the shared field checks.
//! - [`record_audit`], [`audit_change`], [`remove_audited`]: every change is
//!   an audit record (who, from where, on what, why).
//! - [`blocking`]: list and credential stores on the blocking pool.
//! - [`csv`]: imports in two steps with a [`csv::Preview`]
//!   ([`csv::import`]), and every download through [`csv::download`], which
//!   defuses spreadsheet formulas in every cell.
//!
//! Template side, `templates/kit.html` (`{% import "kit.html" as kit %}`):
//! `kit::csrf(c)`, `kit::once(c)`, `kit::field(…)`, `kit::row_action(…)`
//! (a POST button on a row, confirmed when destructive), `kit::search(…)`,
//! `kit::import_preview(…)`, `kit::import_form(…)`. The flash is shown by
//! `base.html` for every page.

mod actions;
mod chrome;
pub(crate) mod csv;

pub(crate) use actions::{
    CommandForm, Flash, FlashBox, Note, audit_by, audit_change, blocking, check_reason, done,
    first_use, outcome_flash, record_audit, remove_audited, text_error,
};
pub(crate) use chrome::{Chrome, Opt, options};
