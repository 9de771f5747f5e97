//! `/cctv` (监控): every surveillance camera's state as its driver last saw
//! it (online or offline, model, firmware, serial, clock drift, event
//! subscription, last error), the lanes and doors it watches, its latest
//! snapshot with a button that takes one now (`POST /cctv/{id}/snapshot`:
//! CSRF-checked, audited as `camera_snapshot_taken`, post/redirect/get),
//! its recent motion, tamper and snapshot events, and its stream URIs for
//! operators (the gateway does not relay video).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use drivers::camera::EventsState;

use super::{Chrome, PanelAction, audit_by, record_audit};
use crate::auth::Permission;
use crate::store::JournalQuery;
use crate::surveillance::CctvDevice;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::{Flash, done};
use crate::web::panel::view::{EventView, local_time};
use crate::web::panel::{Panel, PanelCore, PanelError};

/// How many recent events each camera shows.
const RECENT: usize = 10;

/// One camera as the page shows it.
struct CameraView {
    id: String,
    name: String,
    online: bool,
    model: String,
    firmware: String,
    serial: String,
    drift: String,
    events: &'static str,
    last_error: String,
    places: String,
    streams: Vec<(String, String)>,
    snapshot: Option<String>,
    snapshot_time: String,
    rows: Vec<EventView>,
}

#[derive(Template)]
#[template(path = "cctv.html")]
struct CctvPage {
    c: Chrome,
    cameras: Vec<CameraView>,
}

/// A camera's clock minus the gateway's, in words (`+1.2 s`).
fn drift(offset_ms: Option<i64>) -> String {
    match offset_ms {
        #[allow(clippy::cast_precision_loss)]
        Some(ms) => format!("{:+.1} s", ms as f64 / 1000.0),
        None => "—".to_owned(),
    }
}

fn events_label(t: &'static Strings, state: &EventsState) -> &'static str {
    match state {
        EventsState::Unknown => t.unknown,
        EventsState::Unsupported => t.cctv_events_unsupported,
        EventsState::Subscribed => t.cctv_events_subscribed,
        EventsState::Failing => t.cctv_events_failing,
    }
}

async fn camera_view(
    core: &PanelCore,
    t: &'static Strings,
    device: &CctvDevice,
) -> Result<CameraView, PanelError> {
    let status = device.handle.view().current();
    let info = status.info.clone().unwrap_or_default();
    // Alarms, snapshots and links from the journal; motion (telemetry) from
    // what the gateway saw since it started.
    let mut envelopes: Vec<Arc<crate::wire::Envelope>> = core
        .journal
        .query(JournalQuery {
            device: Some(device.id.clone()),
            limit: RECENT,
            ..JournalQuery::default()
        })
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    for recent in core.cctv.recent(&device.id) {
        if !envelopes.iter().any(|e| e.seq == recent.seq) {
            envelopes.push(recent);
        }
    }
    envelopes.sort_by_key(|e| std::cmp::Reverse(e.seq));
    envelopes.truncate(RECENT);
    let latest_recorded = envelopes
        .iter()
        .find(|e| e.kind == "camera_snapshot")
        .and_then(|e| {
            let image = e.body.get("image")?.as_str()?;
            Some((image.to_owned(), e.time_ms))
        });
    let latest = match (core.cctv.latest(&device.id), latest_recorded) {
        (Some(l), Some((image, time_ms))) if time_ms > l.time_ms => Some((image, time_ms)),
        (Some(l), _) => Some((l.image, l.time_ms)),
        (None, recorded) => recorded,
    }
    .filter(|(image, _)| crate::web::panel::is_safe_name(image));
    let rows = envelopes
        .iter()
        .map(|e| EventView::new(e, t, &core.drivers))
        .collect();
    Ok(CameraView {
        id: device.id.clone(),
        name: device.name.clone(),
        online: status.online,
        model: [info.manufacturer.as_str(), info.model.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        firmware: info.firmware,
        serial: info.serial,
        drift: drift(status.offset_ms),
        events: events_label(t, &status.events),
        last_error: status.last_error.unwrap_or_default(),
        places: device.places.join(", "),
        streams: status.streams,
        snapshot: latest.as_ref().map(|(image, _)| format!("/images/{image}")),
        snapshot_time: latest.map(|(_, ms)| local_time(ms)).unwrap_or_default(),
        rows,
    })
}

/// `GET /cctv`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let mut cameras = Vec::new();
    for device in core.cctv.devices().iter() {
        cameras.push(camera_view(&core, t, device).await?);
    }
    let page = CctvPage {
        c: Chrome::new(&viewer, "cctv"),
        cameras,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /cctv/{id}/snapshot`: fetches the camera's snapshot now (bounded
/// in time like every snapshot), audits it and goes back to the page.
pub(in crate::web::panel) async fn snapshot(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let Some(device) = core.cctv.device(&id) else {
        return Err(PanelError::NotFound(viewer.ctx.lang));
    };
    let flash = match core.cctv.snapshot_now(&id).await {
        Ok(latest) => {
            let mut audit =
                audit_by(&viewer, PanelAction::CameraSnapshotTaken).on(device.name.clone());
            audit.device = Some(id.clone());
            record_audit(&core, Some(&id), audit.detail(latest.image)).await;
            Flash::ok(format!("{}: {}", t.cctv_snapshot_taken, device.name))
        }
        Err(error) => Flash::bad(format!(
            "{}: {} ({error})",
            t.cctv_snapshot_failed, device.name
        )),
    };
    Ok(done(&viewer, "/cctv", flash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_shown_in_seconds_with_its_sign() {
        assert_eq!(drift(Some(1_234)), "+1.2 s");
        assert_eq!(drift(Some(-600_000)), "-600.0 s");
        assert_eq!(drift(None), "—");
    }
}
