//! `/intercom` (对讲): the door stations of the estate's video intercoms —
//! each station's health as its driver last saw it, its recent calls,
//! missed calls and unlocks from the journal, and the way to its door: the
//! station's device page, where opening it takes a reason and is audited
//! (CSRF-checked, with a one-time key) like every manual command.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::Chrome;
use super::devices::DeviceRow;
use crate::auth::Permission;
use crate::store::JournalQuery;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::view::EventView;
use crate::web::panel::{Panel, PanelError};

/// The driver types of door stations.
pub(crate) const STATION_KINDS: [&str; 3] = ["hik-intercom", "dahua-vto", "mqtt-intercom"];

/// How many recent events each station shows.
const RECENT: usize = 20;

/// One station with its recent events.
struct StationView {
    device: DeviceRow,
    rows: Vec<EventView>,
}

#[derive(Template)]
#[template(path = "intercom.html")]
struct IntercomPage {
    c: Chrome,
    stations: Vec<StationView>,
    can_actuate: bool,
}

/// `GET /intercom`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let mut stations = Vec::new();
    for handle in core
        .drivers
        .iter()
        .filter(|d| STATION_KINDS.contains(&d.kind))
    {
        let rows = core
            .journal
            .query(JournalQuery {
                device: Some(handle.id.to_string()),
                limit: RECENT,
                ..JournalQuery::default()
            })
            .await?
            .iter()
            .map(|e| EventView::new(e, t, &core.drivers))
            .collect();
        stations.push(StationView {
            device: DeviceRow::new(&handle, t),
            rows,
        });
    }
    let page = IntercomPage {
        c: Chrome::new(&viewer, "intercom"),
        stations,
        can_actuate: viewer.may(Permission::Actuate),
    };
    Ok(render(StatusCode::OK, &page))
}
