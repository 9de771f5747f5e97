//! `/lanes` (车道): each lane's arm, loop, last vehicle and last fault; the
//! manual barrier commands (open / close / hold-open / release, mandatory
//! reason, through `PipelineHandle::command`, so audited with who, why and
//! from where); and the reads waiting for a guard (待确认) with one-click
//! Allow / Deny (through [`crate::lanes::guard_decision`]).
//!
//! `/lanes/live` renders only the changing part of the page; the page's
//! script fetches it every 2 s and swaps it in (unless the guard is typing
//! in it), so the board stays current without a reload.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use drivers::{ArmState, Command, CommandOutcome};
use serde::Deserialize;

use super::Chrome;
use super::devices::{Flash, check_reason};
use crate::auth::Permission;
use crate::config::LaneDirection;
use crate::lanes::{LaneView, PendingRead, guard_decision};
use crate::pipeline::Origin;
use crate::rules::vehicle::{Reason, Verdict};
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::pages::images::is_safe_name;
use crate::web::panel::view::local_time;
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
    pub(crate) image: Option<String>,
}

fn direction_label(t: &'static Strings, d: LaneDirection) -> &'static str {
    match d {
        LaneDirection::Entry => t.dir_entry,
        LaneDirection::Exit => t.dir_exit,
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

/// A reason as the guard reads it.
pub(crate) fn reason_label(t: &'static Strings, reason: &Reason) -> String {
    match reason {
        Reason::Resident { house } => format!("{} {house}", t.reason_resident),
        Reason::Visitor { host_unit, .. } => format!("{} {host_unit}", t.reason_visitor),
        Reason::Blacklisted { reason } => format!("{} ({reason})", t.reason_blacklisted),
        Reason::Expired => t.reason_expired.to_owned(),
        Reason::NotYetValid => t.reason_not_yet_valid.to_owned(),
        Reason::PassUsed => t.reason_pass_used.to_owned(),
        Reason::LaneNotAllowed => t.reason_lane_not_allowed.to_owned(),
        Reason::UnknownPlate => t.reason_unknown_plate.to_owned(),
        Reason::LowConfidence { confidence } => {
            format!("{} ({confidence})", t.reason_low_confidence)
        }
        Reason::FuzzyMatch { candidate } => format!("{} {candidate}", t.reason_fuzzy),
        Reason::NoPlate => t.reason_no_plate.to_owned(),
        Reason::ExitOpen => t.reason_exit_open.to_owned(),
        Reason::ExitKnown => t.reason_exit_known.to_owned(),
        Reason::ExitUnknown => t.reason_exit_unknown.to_owned(),
        Reason::BarrierFailed { detail } => format!("{} ({detail})", t.reason_barrier_failed),
    }
}

fn image(images: &[String]) -> Option<String> {
    images
        .first()
        .filter(|n| is_safe_name(n))
        .map(|n| format!("/images/{n}"))
}

impl LaneRow {
    fn new(view: &LaneView, t: &'static Strings) -> LaneRow {
        let (arm, arm_label) = arm(t, view.arm);
        let loop_label = match view.loop_occupied {
            Some(true) => t.loop_occupied,
            Some(false) => t.loop_free,
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
    fn new(read: &PendingRead, core: &PanelCore, t: &'static Strings) -> PendingRow {
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
            image: image(&read.images),
        }
    }
}

/// The part of the page that refreshes.
#[derive(Template)]
#[template(path = "lanes_live.html")]
struct LanesLive {
    c: Chrome,
    lanes: Vec<LaneRow>,
    pending: Vec<PendingRow>,
    can_decide: bool,
}

#[derive(Template)]
#[template(path = "lanes.html")]
struct LanesPage {
    live: LanesLive,
    c: Chrome,
    control: Vec<LaneRow>,
    lane: String,
    reason: String,
    reason_error: Option<&'static str>,
    can_actuate: bool,
    flash: Option<Flash>,
}

fn live_part(core: &PanelCore, viewer: &Viewer) -> LanesLive {
    let t = viewer.t();
    LanesLive {
        c: Chrome::new(viewer, "lanes"),
        lanes: core
            .board
            .lanes()
            .iter()
            .map(|l| LaneRow::new(l, t))
            .collect(),
        pending: core
            .board
            .pending()
            .iter()
            .rev()
            .map(|p| PendingRow::new(p, core, t))
            .collect(),
        can_decide: viewer.may(Permission::DecidePending),
    }
}

fn lanes_page(
    core: &PanelCore,
    viewer: &Viewer,
    status: StatusCode,
    lane: String,
    reason: String,
    reason_error: Option<&'static str>,
    flash: Option<Flash>,
) -> Response {
    let live = live_part(core, viewer);
    let control = live
        .lanes
        .iter()
        .filter(|l| l.has_barrier)
        .cloned()
        .collect();
    let page = LanesPage {
        live,
        c: Chrome::new(viewer, "lanes"),
        control,
        lane,
        reason,
        reason_error,
        can_actuate: viewer.may(Permission::Actuate),
        flash,
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
        String::new(),
        String::new(),
        None,
        None,
    ))
}

/// `GET /lanes/live`: the board and the pending reads only.
pub(in crate::web::panel) async fn live(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    Ok(render(StatusCode::OK, &live_part(&core, &viewer)))
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

fn outcome_flash(t: &'static Strings, what: &str, outcome: &CommandOutcome) -> Flash {
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
    Flash { class, text }
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct CommandForm {
    #[serde(default)]
    command: String,
    #[serde(default)]
    reason: String,
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
    let reason = form.reason.trim().to_owned();
    let Some(command) = parse_command(&form.command) else {
        let flash = Flash {
            class: "bad",
            text: t.err_command_unknown.to_owned(),
        };
        return Ok(lanes_page(
            &core,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            id,
            reason,
            None,
            Some(flash),
        ));
    };
    if let Some(error) = check_reason(t, &reason) {
        return Ok(lanes_page(
            &core,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            id,
            reason,
            Some(error),
            None,
        ));
    }
    let what = format!("{} · {}", lane.name, t.command(&form.command));
    let Some(barrier) = lane.barrier.clone() else {
        let flash = outcome_flash(t, &what, &CommandOutcome::Unsupported);
        return Ok(lanes_page(
            &core,
            &viewer,
            StatusCode::OK,
            id,
            String::new(),
            None,
            Some(flash),
        ));
    };
    let origin = Origin {
        actor: viewer.user.name.clone(),
        via: "panel".into(),
        reason: Some(reason),
        remote: viewer.remote(),
    };
    let report = core.pipeline.command(&barrier, command, origin).await;
    let mut flash = outcome_flash(t, &what, &report.outcome);
    if let Some(seq) = report.audit_seq {
        flash.text.push_str(&format!(" · {} #{seq}", t.audit_seq));
    }
    Ok(lanes_page(
        &core,
        &viewer,
        StatusCode::OK,
        id,
        String::new(),
        None,
        Some(flash),
    ))
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct DecideForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
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
    let allow = match form.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => {
            let flash = Flash {
                class: "bad",
                text: t.err_command_unknown.to_owned(),
            };
            return Ok(lanes_page(
                &core,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                String::new(),
                String::new(),
                None,
                Some(flash),
            ));
        }
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
        let flash = Flash {
            class: "bad",
            text: error.to_owned(),
        };
        return Ok(lanes_page(
            &core,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            String::new(),
            String::new(),
            None,
            Some(flash),
        ));
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
    let (status, flash) = match result {
        Ok(done) => {
            let plate = if done.read.plate.is_empty() {
                t.reason_no_plate.to_owned()
            } else {
                done.read.plate.clone()
            };
            match done.outcome {
                Some(outcome) => (
                    StatusCode::OK,
                    outcome_flash(t, &format!("{} {plate}", t.decided_allow), &outcome),
                ),
                None => (
                    StatusCode::OK,
                    Flash {
                        class: "ok",
                        text: format!("{} {plate}", t.decided_deny),
                    },
                ),
            }
        }
        Err(error) => (
            StatusCode::CONFLICT,
            Flash {
                class: "warn",
                text: match error {
                    crate::lanes::GuardError::Expired { .. } => t.err_pending_expired,
                    crate::lanes::GuardError::NotPending(_) => t.err_not_pending,
                }
                .to_owned(),
            },
        ),
    };
    Ok(lanes_page(
        &core,
        &viewer,
        status,
        String::new(),
        String::new(),
        None,
        Some(flash),
    ))
}
