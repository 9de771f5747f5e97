//! `/platform` (平台连接): the platform link as the uplink sees it —
//! online / backlogged / offline, the backlog depth and the age of the
//! oldest unsent event, the send rate, totals and the platform's recent
//! rejects (from the journal).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::Chrome;
use crate::auth::Permission;
use crate::store::JournalQuery;
use crate::uplink::status::LinkState;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::view::EventView;
use crate::web::panel::{Panel, PanelError};

#[derive(Template)]
#[template(path = "platform.html")]
struct PlatformPage {
    c: Chrome,
    state: &'static str,
    state_label: &'static str,
    sink: String,
    depth: u64,
    oldest: String,
    rate: String,
    sent: u64,
    rejected: u64,
    rejects: Vec<EventView>,
}

/// Seconds as a short age ("42 s", "3 min", "2 h").
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else {
        format!("{} h", s / 3600)
    }
}

/// `GET /platform`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let status = &core.uplink_status;
    let stats = status.store_stats();
    let state = status.state(&stats);
    let state_label = match state {
        LinkState::Disabled => t.platform_disabled,
        LinkState::Offline => t.platform_offline,
        LinkState::Online => t.platform_online,
        LinkState::Backlogged => t.platform_backlogged,
    };
    let now = drivers::contract::now_ms();
    let rejects = core
        .journal
        .query(JournalQuery {
            kind: Some("uplink_rejected".into()),
            limit: 20,
            ..JournalQuery::default()
        })
        .await?
        .iter()
        .map(|e| EventView::new(e, t, &core.drivers))
        .collect();
    let page = PlatformPage {
        c: Chrome::new(&viewer, "platform"),
        state: state.as_str(),
        state_label,
        sink: status.sink().unwrap_or("—").to_owned(),
        depth: stats.depth,
        oldest: stats
            .oldest_time_ms
            .map_or_else(|| "—".to_owned(), |t| age(now - t)),
        rate: format!("{:.1}", status.send_rate()),
        sent: status.sent(),
        rejected: status.rejected_total(),
        rejects,
    };
    Ok(render(StatusCode::OK, &page))
}
