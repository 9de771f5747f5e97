//! `/lanes` (车道): one card per lane — arm, loop, last vehicle with its
//! verdict and reason, last fault — with the lane's own manual commands
//! (open / close / hold-open / release, each its own colour; the reason is
//! asked in a sheet; through `PipelineHandle::command`, so audited with
//! who, why and from where). A lane whose barrier is the camera's relay
//! shows "controlled by the camera" and offers only what it can do: open
//! (a pulse of the camera's relay).
//! Below, the reads waiting for a guard (待确认), oldest first so a new one
//! never moves the buttons under a finger, each with its age and the time
//! left before it expires, and one-click Allow / Deny (through
//! [`crate::lanes::guard_decision`]). Every action ends in a redirect
//! (post/redirect/get) and carries a one-time key.
//!
//! `/lanes/live` renders only the changing part of the page; the page's
//! script fetches it every 2 s and swaps it in (unless the guard is typing,
//! touching or has a sheet open in it), so the board stays current without
//! a reload.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use drivers::{ArmState, Command};
use serde::Deserialize;

use super::Chrome;
use crate::auth::Permission;
use crate::lanes::board::PENDING_TTL_MS;
use crate::lanes::{LaneView, PendingRead, guard_decision};
use crate::pipeline::Origin;
use crate::rules::vehicle::Verdict;
use crate::vocab::lane::Direction;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::{CommandForm, Flash, check_reason, done, first_use, outcome_flash};
use crate::web::panel::pages::images::is_safe_name;
use crate::web::panel::view::{local_time, reason_label};
use crate::web::panel::{Panel, PanelCore, PanelError};

/// One lane as a card.
#[derive(Debug, Clone)]
pub(crate) struct LaneRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) direction: &'static str,
    pub(crate) arm: &'static str,
    pub(crate) arm_label: &'static str,
    pub(crate) loop_label: &'static str,
    pub(crate) plate: String,
    pub(crate) time: String,
    pub(crate) verdict: &'static str,
    pub(crate) verdict_label: &'static str,
    pub(crate) reason: String,
    pub(crate) image: Option<String>,
    pub(crate) fault: String,
    /// The panel commands this lane's barrier (a Modbus barrier); `false`
    /// for a camera-relay lane.
    pub(crate) has_barrier: bool,
}

/// One pending read.
#[derive(Debug, Clone)]
pub(crate) struct PendingRow {
    pub(crate) id: String,
    pub(crate) lane: String,
    pub(crate) plate: String,
    pub(crate) candidate: String,
    pub(crate) reason: String,
    pub(crate) time: String,
    /// `35 s ago`.
    pub(crate) age: String,
    /// `9 min 25 s left`.
    pub(crate) left: String,
    pub(crate) image: Option<String>,
}

/// A duration as the guard reads it (`1 min 5 s`).
fn duration(t: &'static Strings, ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 60 {
        format!("{s} {}", t.unit_s)
    } else {
        format!("{} {} {} {}", s / 60, t.unit_min, s % 60, t.unit_s)
    }
}

fn direction_label(t: &'static Strings, d: Direction) -> &'static str {
    match d {
        Direction::Entry => t.dir_entry,
        Direction::Exit => t.dir_exit,
    }
}

fn arm(t: &'static Strings, arm: Option<ArmState>) -> (&'static str, &'static str) {
    match arm {
        Some(ArmState::Closed) => ("closed", t.arm_closed),
        Some(ArmState::Opening) => ("opening", t.arm_opening),
        Some(ArmState::Open) => ("open", t.arm_open),
        Some(ArmState::Closing) => ("closing", t.arm_closing),
        Some(ArmState::HeldOpen) => ("held", t.arm_held_open),
        Some(ArmState::Unknown) | None => ("unknown", t.unknown),
    }
}

/// A camera-relay lane: the arm is the camera's, not reported.
fn camera_arm(t: &'static Strings) -> (&'static str, &'static str) {
    ("camera", t.arm_by_camera)
}

fn image(images: &[String]) -> Option<String> {
    images
        .first()
        .filter(|n| is_safe_name(n))
        .map(|n| format!("/images/{n}"))
}

impl LaneRow {
    fn new(view: &LaneView, t: &'static Strings) -> LaneRow {
        let (arm, arm_label) = if view.barrier.is_some() {
            arm(t, view.arm)
        } else {
            camera_arm(t)
        };
        let loop_label = match view.loop_occupied {
            Some(true) => t.loop_occupied,
            Some(false) => t.loop_free,
            None if view.barrier.is_none() => t.arm_by_camera,
            None => t.unknown,
        };
        let mut row = LaneRow {
            id: view.id.clone(),
            name: view.name.clone(),
            direction: direction_label(t, view.direction),
            arm,
            arm_label,
            loop_label,
            plate: String::new(),
            time: String::new(),
            verdict: "",
            verdict_label: "",
            reason: String::new(),
            image: None,
            fault: view.fault.clone().unwrap_or_default(),
            has_barrier: view.barrier.is_some(),
        };
        if let Some(last) = &view.last {
            row.plate = if last.plate.is_empty() {
                t.reason_no_plate.to_owned()
            } else {
                last.plate.clone()
            };
            row.time = local_time(last.time_ms);
            (row.verdict, row.verdict_label) = match last.verdict {
                Verdict::Allow => ("allow", t.verdict_allow),
                Verdict::Deny => ("deny", t.verdict_deny),
                Verdict::AskGuard => ("ask", t.verdict_ask),
            };
            row.reason = reason_label(t, &last.reason);
            row.image = image(&last.images);
        }
        row
    }
}

impl PendingRow {
    fn new(read: &PendingRead, core: &PanelCore, t: &'static Strings, now_ms: i64) -> PendingRow {
        let age = now_ms - read.time_ms;
        PendingRow {
            id: read.id.clone(),
            lane: core
                .board
                .lane(&read.lane)
                .map_or_else(|| read.lane.clone(), |l| l.name),
            plate: if read.plate.is_empty() {
                t.reason_no_plate.to_owned()
            } else {
                read.plate.clone()
            },
            candidate: read.candidate.clone().unwrap_or_default(),
            reason: reason_label(t, &read.reason),
            time: local_time(read.time_ms),
            age: format!("{} {}", duration(t, age), t.ago),
            left: format!("{} {}", duration(t, PENDING_TTL_MS - age), t.left),
            image: image(&read.images),
        }
    }
}

/// A lane command the guard was asked to correct.
#[derive(Debug, Default)]
struct Refused {
    lane: String,
    reason: String,
    reason_error: Option<&'static str>,
}

/// The part of the page that refreshes.
#[derive(Template)]
#[template(path = "lanes_live.html")]
struct LanesLive {
    c: Chrome,
    lanes: Vec<LaneRow>,
    pending: Vec<PendingRow>,
    can_decide: bool,
    can_actuate: bool,
    /// The lane whose command was refused, what was entered, and why.
    lane: String,
    reason: String,
    reason_error: Option<&'static str>,
    /// Changes when something on the board changed (not a read's age):
    /// the page's script replaces the board only then, so buttons do not
    /// move or go stale under a finger.
    sig: u64,
}

#[derive(Template)]
#[template(path = "lanes.html")]
struct LanesPage {
    live: LanesLive,
    c: Chrome,
}

fn live_part(core: &PanelCore, viewer: &Viewer, refused: Refused) -> LanesLive {
    let t = viewer.t();
    let now = drivers::contract::now_ms();
    let lanes: Vec<LaneRow> = core
        .board
        .lanes()
        .iter()
        .map(|l| LaneRow::new(l, t))
        .collect();
    let pending: Vec<PendingRow> = core
        .board
        .pending()
        .iter()
        .filter(|p| now - p.time_ms < PENDING_TTL_MS)
        .map(|p| PendingRow::new(p, core, t, now))
        .collect();
    let sig = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        format!("{lanes:?}").hash(&mut hasher);
        for p in &pending {
            p.id.hash(&mut hasher);
        }
        hasher.finish()
    };
    LanesLive {
        c: Chrome::fragment(viewer, "lanes"),
        lanes,
        // Oldest first: a new read is appended below, never moving the
        // buttons of the one a guard is about to press. Expired reads (the
        // car has gone) are not offered.
        pending,
        can_decide: viewer.may(Permission::DecidePending),
        can_actuate: viewer.may(Permission::Actuate),
        lane: refused.lane,
        reason: refused.reason,
        reason_error: refused.reason_error,
        sig,
    }
}

fn lanes_page(core: &PanelCore, viewer: &Viewer, status: StatusCode, refused: Refused) -> Response {
    let page = LanesPage {
        live: live_part(core, viewer, refused),
        c: Chrome::new(viewer, "lanes"),
    };
    render(status, &page)
}

/// `GET /lanes`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    Ok(lanes_page(
        &core,
        &viewer,
        StatusCode::OK,
        Refused::default(),
    ))
}

/// `GET /lanes/live`: the board and the pending reads only.
pub(in crate::web::panel) async fn live(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    Ok(render(
        StatusCode::OK,
        &live_part(&core, &viewer, Refused::default()),
    ))
}

fn parse_command(name: &str) -> Option<Command> {
    Some(match name {
        "open_barrier" => Command::OpenBarrier,
        "close_barrier" => Command::CloseBarrier,
        "hold_open" => Command::HoldOpen,
        "release_hold" => Command::ReleaseHold,
        _ => return None,
    })
}

/// `POST /lanes/{id}/command`: a barrier command with a mandatory reason.
pub(in crate::web::panel) async fn command(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CommandForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Actuate)?;
    let core = panel.core()?;
    let t = viewer.t();
    let lane = core
        .board
        .lane(&id)
        .ok_or(PanelError::NotFound(viewer.ctx.lang))?;
    if !first_use(&viewer, &form.key) {
        return Ok(done(&viewer, "/lanes", Flash::warn(t.already_done)));
    }
    let reason = form.reason.trim().to_owned();
    let Some(command) = parse_command(&form.command) else {
        return Ok(done(&viewer, "/lanes", Flash::bad(t.err_command_unknown)));
    };
    // A camera-relay lane can only be opened (a pulse of the camera's
    // relay, routed by the lane's id); its arm is the camera's own.
    let target = match &lane.barrier {
        Some(barrier) => barrier.clone(),
        None if command == Command::OpenBarrier => lane.id.clone(),
        None => {
            let flash = Flash::warn(format!("{}: {}", lane.name, t.arm_by_camera));
            return Ok(done(&viewer, "/lanes", flash));
        }
    };
    if let Some(error) = check_reason(t, &reason) {
        let refused = Refused {
            lane: id,
            reason,
            reason_error: Some(error),
        };
        return Ok(lanes_page(
            &core,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused,
        ));
    }
    let what = format!("{} · {}", lane.name, t.command(&form.command));
    let origin = Origin {
        actor: viewer.user.name.clone(),
        via: "panel".into(),
        reason: Some(reason),
        remote: viewer.remote(),
    };
    let report = core.pipeline.command(&target, command, origin).await;
    let flash = outcome_flash(t, &what, &report.outcome, report.audit_seq);
    Ok(done(&viewer, "/lanes", flash))
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct DecideForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    key: String,
}

/// `POST /lanes/pending/{id}`: the guard's Allow / Deny.
pub(in crate::web::panel) async fn decide(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::DecidePending)?;
    let core = panel.core()?;
    let t = viewer.t();
    if !first_use(&viewer, &form.key) {
        return Ok(done(&viewer, "/lanes", Flash::warn(t.already_done)));
    }
    let allow = match form.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => return Ok(done(&viewer, "/lanes", Flash::bad(t.err_command_unknown))),
    };
    let mut reason = form.reason.trim().to_owned();
    if reason.is_empty() {
        reason = if allow {
            t.decide_default_allow
        } else {
            t.decide_default_deny
        }
        .to_owned();
    }
    if let Some(error) = check_reason(t, &reason) {
        return Ok(done(&viewer, "/lanes", Flash::bad(error)));
    }
    let origin = Origin {
        actor: viewer.user.name.clone(),
        via: "panel".into(),
        reason: Some(reason),
        remote: viewer.remote(),
    };
    let result = guard_decision(
        &core.board,
        &core.plates,
        &core.pipeline,
        &id,
        allow,
        origin,
    )
    .await;
    let flash = match result {
        Ok(decided) => {
            let plate = if decided.read.plate.is_empty() {
                t.reason_no_plate.to_owned()
            } else {
                decided.read.plate.clone()
            };
            match decided.outcome {
                Some(outcome) => {
                    outcome_flash(t, &format!("{} {plate}", t.decided_allow), &outcome, None)
                }
                None => Flash::ok(format!("{} {plate}", t.decided_deny)),
            }
        }
        Err(crate::lanes::GuardError::Expired { .. }) => Flash::warn(t.err_pending_expired),
        Err(crate::lanes::GuardError::NotPending(_)) => Flash::warn(t.err_not_pending),
    };
    Ok(done(&viewer, "/lanes", flash))
}
