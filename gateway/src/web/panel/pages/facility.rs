//! `/facility` (设施): every `modbus-points` device's points with their
//! value and unit, quality (and since when), and alarm state, with an
//! audited acknowledgement of an active alarm; a point's page with its
//! 24-hour trend (server-side SVG from the trend ring) and, for
//! administrators only, a guarded write: a confirmed form with a reason and
//! a one-time key, range-checked here and again by the driver, sent through
//! the pipeline (which audits it with who, why and from where), the
//! device's read-back shown as the outcome. Both actions end in
//! post/redirect/get.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use drivers::Command;
use drivers::points::{AlarmSide, Point, PointStatus, WriteLimits};
use drivers::{Quality, Reading};
use serde::Deserialize;

use super::{Chrome, PanelAction, audit_by, record_audit};
use crate::auth::Permission;
use crate::events::PanelAudit;
use crate::facility::{Facility, PointDevice, trend};
use crate::pipeline::Origin;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::{Flash, check_reason, done, first_use, outcome_flash};
use crate::web::panel::view::local_time;
use crate::web::panel::{Panel, PanelCore, PanelError};

/// The trend chart's size in pixels.
const TREND_WIDTH: u32 = 720;
const TREND_HEIGHT: u32 = 160;

/// One point as a row.
#[derive(Debug, Clone)]
pub(crate) struct PointRow {
    pub(crate) name: String,
    pub(crate) display: String,
    pub(crate) value: String,
    pub(crate) unit: String,
    /// `ok`, `degraded` or `stopped` (the pill classes).
    pub(crate) quality: &'static str,
    pub(crate) quality_label: &'static str,
    pub(crate) quality_since: String,
    pub(crate) read_at: String,
    /// The active alarm in words, empty when none.
    pub(crate) alarm: String,
    /// Who acknowledged it and when, empty when nobody yet.
    pub(crate) acked: String,
    /// The point's page.
    pub(crate) href: String,
    /// Where its acknowledgement is posted.
    pub(crate) ack: String,
}

impl PointRow {
    fn new(
        t: &'static Strings,
        facility: &Facility,
        device: &str,
        point: &Point,
        status: &PointStatus,
    ) -> PointRow {
        let (quality, quality_label) = match status.quality {
            Quality::Good => ("ok", t.quality_good),
            Quality::Stale => ("degraded", t.quality_stale),
            Quality::CommFailed => ("stopped", t.quality_comm_failed),
        };
        let alarm = status.alarm.map_or_else(String::new, |side| {
            match side {
                AlarmSide::High => t.alarm_high,
                AlarmSide::Low => t.alarm_low,
                AlarmSide::State => t.alarm_state,
            }
            .to_owned()
        });
        let acked = facility
            .ack(device, &point.name)
            .map(|a| format!("{} {} · {}", t.alarm_acked_by, a.by, local_time(a.at_ms)))
            .unwrap_or_default();
        PointRow {
            name: point.name.clone(),
            display: if point.display.is_empty() {
                point.name.clone()
            } else {
                point.display.clone()
            },
            value: status.value.as_ref().map_or_else(String::new, show),
            unit: point.unit.clone(),
            quality,
            quality_label,
            quality_since: local_time(status.quality_since_ms),
            read_at: status
                .read_at_ms
                .map_or_else(|| t.never.to_owned(), local_time),
            alarm,
            acked,
            ack: format!("/facility/{}/{}/ack", encode(device), encode(&point.name)),
            href: format!("/facility/{}/{}", encode(device), encode(&point.name)),
        }
    }
}

/// A value for people: numbers without float noise.
fn show(value: &Reading) -> String {
    match value {
        Reading::Number(n) => {
            let text = format!("{n:.3}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        other => other.to_string(),
    }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One device with its points.
#[derive(Debug, Clone)]
pub(crate) struct DeviceBlock {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) points: Vec<PointRow>,
}

#[derive(Template)]
#[template(path = "facility.html")]
struct FacilityPage {
    c: Chrome,
    devices: Vec<DeviceBlock>,
}

/// `GET /facility`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let facility = &core.facility;
    let devices = facility
        .devices()
        .iter()
        .map(|d| {
            let status = d.view.read();
            DeviceBlock {
                id: d.id.clone(),
                name: d.name.clone(),
                points: d
                    .view
                    .table()
                    .points()
                    .iter()
                    .zip(status.iter())
                    .map(|(p, s)| PointRow::new(t, facility, &d.id, p, s))
                    .collect(),
            }
        })
        .collect();
    let page = FacilityPage {
        c: Chrome::new(&viewer, "facility"),
        devices,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "facility_point.html")]
struct PointPage {
    c: Chrome,
    device_name: String,
    row: PointRow,
    /// The trend chart (our own SVG, its text escaped).
    trend_svg: String,
    /// `min … max unit` when the point is writable.
    range: Option<String>,
    can_write: bool,
    value: String,
    value_error: Option<&'static str>,
    reason: String,
    reason_error: Option<&'static str>,
}

/// What the write form held, with its messages.
#[derive(Default)]
struct Entered {
    value: String,
    value_error: Option<&'static str>,
    reason: String,
    reason_error: Option<&'static str>,
}

/// The point device `device` and the index of its point `point`; "not
/// found" when either is unknown.
fn find_point(
    core: &PanelCore,
    viewer: &Viewer,
    device: &str,
    point: &str,
) -> Result<(PointDevice, usize), PanelError> {
    let not_found = || PanelError::NotFound(viewer.ctx.lang);
    let d = core.facility.device(device).ok_or_else(not_found)?;
    let index = d.view.table().find(point).ok_or_else(not_found)?;
    Ok((d, index))
}

async fn point_page(
    core: &PanelCore,
    viewer: &Viewer,
    device: &str,
    point: &str,
    status: StatusCode,
    entered: Entered,
) -> Result<Response, PanelError> {
    let t = viewer.t();
    let (d, index) = find_point(core, viewer, device, point)?;
    let p = &d.view.table().points()[index];
    let row = {
        let status = d.view.read();
        PointRow::new(t, &core.facility, device, p, &status[index])
    };
    let facility = core.facility.clone();
    let (id, unit) = (d.id.clone(), p.unit.clone());
    let title = format!("{} · {}", row.display, t.point_trend);
    let now_ms = drivers::contract::now_ms();
    let trend_svg = tokio::task::spawn_blocking(move || {
        let samples = facility.trend(&id, index, now_ms).unwrap_or_default();
        trend::svg(
            &samples,
            trend::slot_of(now_ms),
            &unit,
            &title,
            (TREND_WIDTH, TREND_HEIGHT),
        )
    })
    .await
    .map_err(|e| PanelError::Internal(e.to_string()))?;
    let page = PointPage {
        c: Chrome::new(viewer, "facility"),
        device_name: d.name.clone(),
        range: p
            .write
            .map(|WriteLimits { min, max }| format!("{min} … {max} {}", p.unit)),
        can_write: p.write.is_some() && viewer.may(Permission::WritePoints),
        row,
        trend_svg,
        value: entered.value,
        value_error: entered.value_error,
        reason: entered.reason,
        reason_error: entered.reason_error,
    };
    Ok(render(status, &page))
}

/// `GET /facility/{device}/{point}`.
pub(in crate::web::panel) async fn point(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path((device, point)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    point_page(
        &core,
        &viewer,
        &device,
        &point,
        StatusCode::OK,
        Entered::default(),
    )
    .await
}

/// `POST /facility/{device}/{point}/ack`: acknowledges the point's active
/// alarm, audited; a cleared alarm is said so, nothing recorded.
pub(in crate::web::panel) async fn acknowledge(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path((device, point)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let (d, index) = find_point(&core, &viewer, &device, &point)?;
    let display = d.view.table().points()[index].display.clone();
    let alarm = d.view.read()[index].alarm;
    let now_ms = drivers::contract::now_ms();
    let flash = match alarm {
        Some(side)
            if core
                .facility
                .acknowledge(&device, &point, &viewer.user.name, now_ms) =>
        {
            record_audit(
                &core,
                Some(&device),
                PanelAudit {
                    device: Some(device.clone()),
                    point: Some(point.clone()),
                    alarm: Some(side.as_str()),
                    ..audit_by(&viewer, PanelAction::AlarmAcknowledged)
                        .on(format!("{} {display}", d.name))
                },
            )
            .await;
            Flash::ok(format!("{}: {} {display}", t.alarm_acked, d.name))
        }
        _ => Flash::warn(t.ack_not_active),
    };
    Ok(done(&viewer, "/facility", flash))
}

/// The write form.
#[derive(Debug, Deserialize)]
pub(in crate::web::panel) struct WriteForm {
    #[serde(default)]
    value: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    key: String,
}

/// `value` as a number inside `limits`, or why not.
fn checked_value(limits: WriteLimits, value: &str) -> Option<f64> {
    let v: f64 = value.trim().parse().ok()?;
    (v.is_finite() && v >= limits.min && v <= limits.max).then_some(v)
}

/// `POST /facility/{device}/{point}/write` (administrators): checks the
/// value against the point's limits and the reason, then writes through
/// the pipeline (audited), showing the confirmed outcome.
pub(in crate::web::panel) async fn write(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path((device, point)): Path<(String, String)>,
    Form(form): Form<WriteForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::WritePoints)?;
    let core = panel.core()?;
    let t = viewer.t();
    let (d, index) = find_point(&core, &viewer, &device, &point)?;
    let p = &d.view.table().points()[index];
    let back = format!("/facility/{}/{}", encode(&device), encode(&point));
    if !first_use(&viewer, &form.key) {
        return Ok(done(&viewer, &back, Flash::warn(t.already_done)));
    }
    let reason = form.reason.trim().to_owned();
    let value = p
        .write
        .and_then(|limits| checked_value(limits, &form.value));
    let entered = Entered {
        value: form.value.trim().to_owned(),
        value_error: match (p.write, value) {
            (None, _) => Some(t.err_not_writable),
            (Some(_), None) => Some(t.err_write_value),
            _ => None,
        },
        reason_error: check_reason(t, &reason),
        reason: reason.clone(),
    };
    let Some(value) = value.filter(|_| entered.reason_error.is_none()) else {
        return point_page(
            &core,
            &viewer,
            &device,
            &point,
            StatusCode::UNPROCESSABLE_ENTITY,
            entered,
        )
        .await;
    };
    let origin = Origin {
        actor: viewer.user.name.clone(),
        via: "panel".into(),
        reason: Some(reason),
        remote: viewer.remote(),
    };
    let what = format!("{} {}", t.command("write_point"), p.display);
    let report = core
        .pipeline
        .command(
            &device,
            Command::WritePoint {
                point: point.clone(),
                value,
            },
            origin,
        )
        .await;
    let flash = outcome_flash(t, &what, &report.outcome, report.audit_seq);
    Ok(done(&viewer, &back, flash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_value_must_be_a_finite_number_inside_the_limits() {
        let limits = WriteLimits { min: 0.1, max: 0.6 };
        assert_eq!(checked_value(limits, " 0.38 "), Some(0.38));
        assert_eq!(checked_value(limits, "0.1"), Some(0.1));
        assert_eq!(checked_value(limits, "0.61"), None);
        assert_eq!(checked_value(limits, "-1"), None);
        assert_eq!(checked_value(limits, "NaN"), None);
        assert_eq!(checked_value(limits, "inf"), None);
        assert_eq!(checked_value(limits, "0,38"), None);
        assert_eq!(checked_value(limits, ""), None);
    }

    #[test]
    fn values_are_shown_without_float_noise() {
        assert_eq!(show(&Reading::Number(0.38000001)), "0.38");
        assert_eq!(show(&Reading::Number(12.0)), "12");
        assert_eq!(show(&Reading::Bool(true)), "1");
        assert_eq!(show(&Reading::Text("E12".into())), "E12");
    }
}
