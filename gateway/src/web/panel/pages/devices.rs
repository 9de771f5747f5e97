//! `/devices` (设备状态): every device's health, last seen, last error and
//! restarts; a device's page with a manual command (mandatory reason,
//! through `PipelineHandle::command`, so it is audited with who, why and
//! from where) and, for admins, a driver restart (audited as
//! `driver_restarted`). Both end in a redirect back to the device
//! (post/redirect/get); a command's one-time key makes a repeat harmless.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use drivers::contract::HealthState;
use drivers::{Command, Health};
use serde::Deserialize;

use super::{Chrome, Opt, PanelAction, audit_by, options, record_audit};
use crate::auth::Permission;
use crate::events::PanelAudit;
use crate::pipeline::Origin;
use crate::store::JournalQuery;
use crate::supervisor::DriverHandle;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::{CommandForm, done, first_use, outcome_flash};
pub(crate) use crate::web::panel::kit::{Flash, check_reason};
use crate::web::panel::view::{EventView, local_time};
use crate::web::panel::{Panel, PanelCore, PanelError};

/// One device as a row.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRow {
    pub(crate) id: String,
    pub(crate) name: String,
    /// The type in words.
    pub(crate) kind_label: &'static str,
    pub(crate) state: &'static str,
    pub(crate) state_label: &'static str,
    pub(crate) last_seen: String,
    pub(crate) last_error: String,
    pub(crate) restarts: u64,
}

impl DeviceRow {
    pub(crate) fn new(handle: &DriverHandle, t: &'static Strings) -> DeviceRow {
        let Health {
            state,
            last_error,
            last_seen_ms,
            restarts,
        } = handle.health();
        let (state, state_label) = match state {
            HealthState::Ok => ("ok", t.health_ok),
            HealthState::Starting => ("starting", t.health_starting),
            HealthState::Degraded => ("degraded", t.health_degraded),
            HealthState::Stopped => ("stopped", t.health_stopped),
        };
        DeviceRow {
            id: handle.id.to_string(),
            name: handle.name.clone(),
            kind_label: t.device_type(handle.kind),
            state,
            state_label,
            last_seen: last_seen_ms.map_or_else(|| t.never.to_owned(), local_time),
            last_error: last_error.unwrap_or_default(),
            restarts,
        }
    }
}

/// The manual commands a device of this driver type is offered.
pub(crate) fn commands_for(kind: &str) -> Vec<&'static str> {
    let mut commands = Vec::new();
    if kind.contains("barrier") || kind.contains("lane") {
        commands.extend(["open_barrier", "close_barrier", "hold_open", "release_hold"]);
    }
    // Doors, controllers and the door stations of intercoms open a door.
    if kind.contains("door") || crate::config::is_station(kind) {
        commands.push("pulse_door");
    }
    commands.push("poll");
    commands
}

fn parse_command(name: &str) -> Option<Command> {
    Some(match name {
        "poll" => Command::Poll,
        "open_barrier" => Command::OpenBarrier,
        "close_barrier" => Command::CloseBarrier,
        "hold_open" => Command::HoldOpen,
        "release_hold" => Command::ReleaseHold,
        "pulse_door" => Command::PulseDoor {
            door: None,
            duration_ms: None,
        },
        _ => return None,
    })
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    c: Chrome,
    devices: Vec<DeviceRow>,
}

/// `GET /devices`.
pub(in crate::web::panel) async fn list(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let page = DevicesPage {
        c: Chrome::new(&viewer, "devices"),
        devices: core.drivers.iter().map(|d| DeviceRow::new(&d, t)).collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    c: Chrome,
    device: DeviceRow,
    commands: Vec<Opt>,
    reason: String,
    reason_error: Option<&'static str>,
    command_error: Option<&'static str>,
    restart_reason: String,
    restart_error: Option<&'static str>,
    can_actuate: bool,
    can_restart: bool,
    rows: Vec<EventView>,
}

struct Entered {
    command: String,
    reason: String,
    reason_error: Option<&'static str>,
    command_error: Option<&'static str>,
    restart_reason: String,
    restart_error: Option<&'static str>,
}

impl Entered {
    fn none() -> Entered {
        Entered {
            command: String::new(),
            reason: String::new(),
            reason_error: None,
            command_error: None,
            restart_reason: String::new(),
            restart_error: None,
        }
    }
}

async fn device_page(
    core: &PanelCore,
    viewer: &Viewer,
    id: &str,
    status: StatusCode,
    entered: Entered,
) -> Result<Response, PanelError> {
    let t = viewer.t();
    let handle = core
        .drivers
        .get(id)
        .ok_or(PanelError::NotFound(viewer.ctx.lang))?;
    let rows = core
        .journal
        .query(JournalQuery {
            device: Some(id.to_owned()),
            limit: 20,
            ..JournalQuery::default()
        })
        .await?
        .iter()
        .map(|e| EventView::new(e, t, &core.drivers))
        .collect();
    let page = DevicePage {
        c: Chrome::new(viewer, "devices"),
        device: DeviceRow::new(&handle, t),
        commands: options(
            commands_for(handle.kind)
                .into_iter()
                .map(|c| (c, t.command(c))),
            &entered.command,
        ),
        reason: entered.reason,
        reason_error: entered.reason_error,
        command_error: entered.command_error,
        restart_reason: entered.restart_reason,
        restart_error: entered.restart_error,
        can_actuate: viewer.may(Permission::Actuate),
        can_restart: viewer.may(Permission::RestartDrivers),
        rows,
    };
    Ok(render(status, &page))
}

/// `GET /devices/{id}`.
pub(in crate::web::panel) async fn detail(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    device_page(&core, &viewer, &id, StatusCode::OK, Entered::none()).await
}

/// `POST /devices/{id}/command`: validates, sends through the pipeline
/// (which audits it), shows the outcome.
pub(in crate::web::panel) async fn command(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CommandForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Actuate)?;
    let core = panel.core()?;
    let t = viewer.t();
    let handle = core
        .drivers
        .get(&id)
        .ok_or(PanelError::NotFound(viewer.ctx.lang))?;
    let back = format!(
        "/devices/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    if !first_use(&viewer, &form.key) {
        return Ok(done(&viewer, &back, Flash::warn(t.already_done)));
    }
    let reason = form.reason.trim().to_owned();
    let offered = commands_for(handle.kind).contains(&form.command.as_str());
    let parsed = parse_command(&form.command).filter(|_| offered);
    let reason_error = check_reason(t, &reason);
    let command_error = parsed.is_none().then_some(t.err_command_unknown);
    let entered = Entered {
        command: form.command.clone(),
        reason: reason.clone(),
        reason_error,
        command_error,
        ..Entered::none()
    };
    let Some(command) = parsed.filter(|_| reason_error.is_none()) else {
        return device_page(
            &core,
            &viewer,
            &id,
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
    let report = core.pipeline.command(&id, command, origin).await;
    let flash = outcome_flash(
        t,
        t.command(&form.command),
        &report.outcome,
        report.audit_seq,
    );
    Ok(done(&viewer, &back, flash))
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct RestartForm {
    #[serde(default)]
    reason: String,
}

/// `POST /devices/{id}/restart` (admin): restarts the driver, audited.
pub(in crate::web::panel) async fn restart(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RestartForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::RestartDrivers)?;
    let core = panel.core()?;
    let t = viewer.t();
    let handle = core
        .drivers
        .get(&id)
        .ok_or(PanelError::NotFound(viewer.ctx.lang))?;
    let reason = form.reason.trim().to_owned();
    if let Some(error) = check_reason(t, &reason) {
        let entered = Entered {
            restart_reason: reason,
            restart_error: Some(error),
            ..Entered::none()
        };
        return device_page(
            &core,
            &viewer,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            entered,
        )
        .await;
    }
    let result = handle.restart();
    record_audit(
        &core,
        Some(&id),
        PanelAudit {
            reason: Some(reason),
            ..audit_by(&viewer, PanelAction::DriverRestarted)
                .on(handle.name.as_str())
                .detail(if result.is_ok() {
                    "requested"
                } else {
                    "driver stopped"
                })
        },
    )
    .await;
    let flash = match result {
        Ok(()) => Flash::ok(t.restart_done),
        Err(_) => Flash::bad(t.restart_failed),
    };
    let back = format!(
        "/devices/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    Ok(done(&viewer, &back, flash))
}
