//! `/audit` (审计日志): who did what, when, why and from where, read from
//! the journal; filters by actor, action and date, paging backwards, and
//! `/audit.csv` with the same filters (UTF-8 with a BOM so Excel shows the
//! Chinese; cells that a spreadsheet would run as a formula are defused).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drivers::Class;
use serde::Deserialize;

use super::{Chrome, Opt, options};
use crate::auth::Permission;
use crate::store::JournalQuery;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::csv;
use crate::web::panel::view::{AuditView, day_start_ms};
use crate::web::panel::{Panel, PanelError};

/// Rows per page.
const PAGE_ROWS: usize = 100;
/// Most rows in one export.
const EXPORT_ROWS: usize = 100_000;
/// Audit kinds offered in the filter.
const AUDIT_KINDS: &[&str] = &[
    "command",
    "user_login",
    "user_login_failed",
    "user_locked",
    "user_logout",
    "user_added",
    "user_removed",
    "password_changed",
    "driver_restarted",
    "gateway_started",
    "gateway_stopping",
    "config_reloaded",
];

/// The filter, as entered.
#[derive(Debug, Clone, Default, Deserialize)]
pub(in crate::web::panel) struct AuditFilter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before: Option<u64>,
}

/// Problems with the filter, per field.
#[derive(Debug, Default)]
struct FilterErrors {
    from: Option<&'static str>,
    to: Option<&'static str>,
}

impl AuditFilter {
    fn query(&self, t: &'static Strings, limit: usize) -> Result<JournalQuery, FilterErrors> {
        let mut errors = FilterErrors::default();
        let date = |s: &str, slot: &mut Option<&'static str>| {
            if s.trim().is_empty() {
                return None;
            }
            let ms = day_start_ms(s);
            if ms.is_none() {
                *slot = Some(t.err_date);
            }
            ms
        };
        let from_ms = date(&self.from, &mut errors.from);
        // "To" includes that whole day.
        let to_ms = date(&self.to, &mut errors.to).map(|ms| ms + 86_400_000);
        if let (Some(from), Some(to)) = (from_ms, to_ms)
            && to <= from
        {
            errors.to = Some(t.err_date_order);
        }
        if errors.from.is_some() || errors.to.is_some() {
            return Err(errors);
        }
        Ok(JournalQuery {
            from_ms,
            to_ms,
            classes: vec![Class::Audit],
            kind: Some(self.kind.clone()).filter(|k| !k.is_empty()),
            actor: Some(self.actor.trim().to_owned()).filter(|a| !a.is_empty()),
            before_seq: self.before,
            limit,
            ..JournalQuery::default()
        })
    }

    /// The filter as a query string, without paging.
    fn query_string(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("actor", &self.actor)
            .append_pair("kind", &self.kind)
            .append_pair("from", &self.from)
            .append_pair("to", &self.to)
            .finish()
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    filter: AuditFilter,
    kinds: Vec<Opt>,
    from_error: Option<&'static str>,
    to_error: Option<&'static str>,
    rows: Vec<AuditView>,
    query: String,
    older: Option<u64>,
}

/// `GET /audit` (manager and admin).
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(filter): Query<AuditFilter>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ViewAudit)?;
    let core = panel.core()?;
    let t = viewer.t();
    let (mut rows, errors, status) = match filter.query(t, PAGE_ROWS + 1) {
        Ok(query) => (
            core.journal.query(query).await?,
            FilterErrors::default(),
            StatusCode::OK,
        ),
        Err(errors) => (Vec::new(), errors, StatusCode::UNPROCESSABLE_ENTITY),
    };
    let older = (rows.len() > PAGE_ROWS).then(|| {
        rows.truncate(PAGE_ROWS);
        rows.last().map_or(0, |e| e.seq)
    });
    let page = AuditPage {
        c: Chrome::new(&viewer, "audit"),
        kinds: options(AUDIT_KINDS.iter().map(|k| (*k, t.kind(k))), &filter.kind),
        from_error: errors.from,
        to_error: errors.to,
        rows: rows
            .iter()
            .map(|e| AuditView::new(e, t, &core.drivers))
            .collect(),
        query: filter.query_string(),
        older,
        filter,
    };
    Ok(render(status, &page))
}

/// `GET /audit.csv`: the filtered log (newest first), as CSV.
pub(in crate::web::panel) async fn csv(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(filter): Query<AuditFilter>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ViewAudit)?;
    let core = panel.core()?;
    let t = viewer.t();
    let Ok(query) = filter.query(t, EXPORT_ROWS) else {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, t.err_date).into_response());
    };
    let rows = core.journal.query(query).await?;
    let header = [
        "seq",
        t.col_time,
        t.col_actor,
        "kind",
        t.col_action,
        t.col_target,
        t.col_detail,
        t.col_reason,
        t.col_remote,
    ]
    .map(str::to_owned);
    let lines = rows.iter().map(|env| {
        let row = AuditView::new(env, t, &core.drivers);
        [
            row.seq.to_string(),
            row.time,
            row.actor,
            row.kind,
            row.action,
            row.target,
            row.detail,
            row.reason,
            row.remote,
        ]
    });
    let out = csv::write_rows(std::iter::once(header).chain(lines))?;
    Ok(csv::download(&core, &viewer, "audit", out).await)
}
