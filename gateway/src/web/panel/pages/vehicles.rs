//! `/vehicles` (车辆, manager and up): residents' vehicles — search by plate
//! or house, add or edit (upsert), remove; CSV import in two steps (check:
//! a preview of the rows that would be written and the rejected rows with
//! their line numbers, nothing written; confirm: the same CSV is posted
//! again and imported in one transaction); CSV export; and the blacklist.
//! Every change is audited and ends in a redirect back to the list
//! (post/redirect/get). Built from the page kit ([`crate::web::panel::kit`]);
//! the CSV import and the formula-safe export serve the blacklist and the
//! visitor passes too (`list=blacklist|visitors`).

use std::collections::BTreeSet;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Chrome, Note, PanelAction, audit_by, audit_change, record_audit, remove_audited};
use crate::auth::Permission;
use crate::lists::plates::{ListKind, canonical_plate};
use crate::rules::vehicle::{Blacklisted, Resident, ResidentRef};
use crate::vocab::import::ImportMode;
use crate::vocab::time::{format_bound, parse_optional_ms};
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::csv::{self, ImportForm, Imported, Preview};
use crate::web::panel::kit::{Flash, blocking, done, text_error};
use crate::web::panel::{Panel, PanelCore, PanelError};

/// Most rows shown in the list.
const MAX_ROWS: usize = 500;

/// One resident's vehicle as a row.
#[derive(Debug, Clone)]
pub(crate) struct ResidentRow {
    pub(crate) plate: String,
    pub(crate) house: String,
    pub(crate) owner: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) lanes: String,
}

/// The add / edit form.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResidentForm {
    pub(crate) plate: String,
    pub(crate) house: String,
    pub(crate) owner: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) lanes: String,
    pub(crate) plate_error: Option<&'static str>,
    pub(crate) house_error: Option<&'static str>,
    pub(crate) owner_error: Option<&'static str>,
    pub(crate) from_error: Option<&'static str>,
    pub(crate) to_error: Option<&'static str>,
    pub(crate) lanes_error: Option<String>,
}

/// The blacklist form.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlacklistForm {
    pub(crate) plate: String,
    pub(crate) reason: String,
    pub(crate) plate_error: Option<&'static str>,
    pub(crate) reason_error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "vehicles.html")]
struct VehiclesPage {
    c: Chrome,
    q: String,
    rows: Vec<ResidentRow>,
    form: ResidentForm,
    black: Vec<Blacklisted>,
    black_form: BlacklistForm,
    preview: Option<Preview>,
    /// Which list the preview is of.
    preview_list: &'static str,
    preview_cols: Vec<&'static str>,
}

#[derive(Debug, Default)]
struct View {
    q: String,
    form: ResidentForm,
    black_form: BlacklistForm,
    preview: Option<(ListKind, Preview)>,
}

/// The column names of a list's CSV, as the page shows them.
pub(crate) fn list_columns(t: &'static Strings, kind: ListKind) -> Vec<&'static str> {
    match kind {
        ListKind::Residents => vec![
            t.col_plate,
            t.col_house,
            t.col_owner,
            t.valid_from,
            t.valid_to,
            t.col_lanes,
        ],
        ListKind::Visitors => vec![
            t.col_plate,
            t.col_host_unit,
            t.valid_from,
            t.valid_to,
            t.col_usage,
        ],
        ListKind::Blacklist => vec![t.col_plate, t.col_reason],
    }
}

/// The `list` value of a list kind (forms and downloads).
pub(crate) fn list_name(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Residents => "residents",
        ListKind::Visitors => "visitors",
        ListKind::Blacklist => "blacklist",
    }
}

/// The audit kind of a list's CSV import (`{list}_imported`).
fn imported_action(kind: ListKind) -> PanelAction {
    match kind {
        ListKind::Residents => PanelAction::ResidentsImported,
        ListKind::Visitors => PanelAction::VisitorsImported,
        ListKind::Blacklist => PanelAction::BlacklistImported,
    }
}

fn resident_row(r: ResidentRef<'_>) -> ResidentRow {
    let bound = |t: Option<i64>, end| t.map(|t| format_bound(t, end)).unwrap_or_default();
    ResidentRow {
        plate: r.plate.to_owned(),
        house: r.house.to_owned(),
        owner: r.owner.to_owned(),
        from: bound(r.valid_from, false),
        to: bound(r.valid_to, true),
        lanes: r.lanes.join(","),
    }
}

/// Whether a resident's vehicle matches a search (upper case; empty:
/// everything) by plate or house.
fn resident_matches(r: &ResidentRef<'_>, needle: &str) -> bool {
    needle.is_empty()
        || r.plate.to_uppercase().contains(needle)
        || r.house.to_uppercase().contains(needle)
}

fn vehicles_page(core: &PanelCore, viewer: &Viewer, status: StatusCode, view: View) -> Response {
    let lists = core.plates.snapshot();
    let needle = view.q.trim().to_uppercase();
    // Sorted and cut while borrowed from the snapshot: only the rows shown
    // are copied.
    let mut found: Vec<ResidentRef<'_>> = lists
        .residents
        .iter()
        .filter(|r| resident_matches(r, &needle))
        .collect();
    found.sort_by(|a, b| a.house.cmp(b.house).then(a.plate.cmp(b.plate)));
    found.truncate(MAX_ROWS);
    let rows: Vec<ResidentRow> = found.into_iter().map(resident_row).collect();
    let mut black: Vec<Blacklisted> = lists.blacklist.values().cloned().collect();
    black.sort_by(|a, b| a.plate.cmp(&b.plate));
    let (kind, preview) = match view.preview {
        Some((kind, preview)) => (kind, Some(preview)),
        None => (ListKind::Residents, None),
    };
    let page = VehiclesPage {
        c: Chrome::new(viewer, "vehicles"),
        q: view.q,
        rows,
        form: view.form,
        black,
        black_form: view.black_form,
        preview,
        preview_list: list_name(kind),
        preview_cols: list_columns(viewer.t(), kind),
    };
    render(status, &page)
}

#[derive(Deserialize, Default)]
pub(in crate::web::panel) struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    edit: String,
}

/// `GET /vehicles?q=…&edit=…`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(search): Query<Search>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let mut form = ResidentForm::default();
    let lists = core.plates.snapshot();
    if let Ok(plate) = canonical_plate(&search.edit)
        && let Some(r) = lists.residents.get(&plate)
    {
        let row = resident_row(r);
        form = ResidentForm {
            plate: row.plate,
            house: row.house,
            owner: row.owner,
            from: row.from,
            to: row.to,
            lanes: row.lanes,
            ..ResidentForm::default()
        };
    }
    let needle = search.q.trim().to_uppercase();
    if !needle.is_empty() {
        // Recorded: who searched the residents, and how many were found
        // (never what was searched for).
        let found = lists
            .residents
            .iter()
            .filter(|r| resident_matches(r, &needle))
            .count();
        drop(lists);
        record_audit(
            &core,
            None,
            audit_by(&viewer, PanelAction::DataSearched)
                .on("residents")
                .detail(format!("{found} found")),
        )
        .await;
    }
    let view = View {
        q: search.q,
        form,
        ..View::default()
    };
    Ok(vehicles_page(&core, &viewer, StatusCode::OK, view))
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct SaveForm {
    #[serde(default)]
    plate: String,
    #[serde(default)]
    house: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_to: String,
    #[serde(default)]
    lanes: String,
}

/// Checks the add / edit form against the configured lanes.
pub(in crate::web::panel) fn check_resident(
    t: &'static Strings,
    known_lanes: &BTreeSet<String>,
    input: &SaveForm,
) -> Result<Resident, Box<ResidentForm>> {
    let mut form = ResidentForm {
        plate: input.plate.trim().to_owned(),
        house: input.house.trim().to_owned(),
        owner: input.owner.trim().to_owned(),
        from: input.valid_from.trim().to_owned(),
        to: input.valid_to.trim().to_owned(),
        lanes: input.lanes.trim().to_owned(),
        ..ResidentForm::default()
    };
    let plate = canonical_plate(&form.plate).ok();
    if form.plate.is_empty() {
        form.plate_error = Some(t.err_required);
    } else if plate.is_none() {
        form.plate_error = Some(t.err_plate);
    }
    form.house_error = text_error(t, &form.house, true);
    form.owner_error = text_error(t, &form.owner, false);
    let from = parse_optional_ms(&form.from, false);
    let to = parse_optional_ms(&form.to, true);
    if from.is_err() {
        form.from_error = Some(t.err_datetime);
    }
    if to.is_err() {
        form.to_error = Some(t.err_datetime);
    }
    if let (Ok(Some(f)), Ok(Some(u))) = (&from, &to)
        && u <= f
    {
        form.to_error = Some(t.err_window_order);
    }
    let lanes: Vec<String> = form
        .lanes
        .split([',', ';', '，', ' '])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let unknown: Vec<&str> = lanes
        .iter()
        .filter(|l| !known_lanes.contains(*l))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        form.lanes_error = Some(format!("{}: {}", t.err_lane_unknown, unknown.join(", ")));
    }
    let clean = form.plate_error.is_none()
        && form.house_error.is_none()
        && form.owner_error.is_none()
        && form.from_error.is_none()
        && form.to_error.is_none()
        && form.lanes_error.is_none();
    match (plate, from, to) {
        (Some(plate), Ok(valid_from), Ok(valid_to)) if clean => Ok(Resident {
            plate,
            house: form.house,
            owner: form.owner,
            valid_from,
            valid_to,
            lanes,
        }),
        _ => Err(Box::new(form)),
    }
}

/// `POST /vehicles`: add or edit.
pub(in crate::web::panel) async fn save(
    State(panel): State<Panel>,
    viewer: Viewer,
    Form(input): Form<SaveForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let t = viewer.t();
    let known: BTreeSet<String> = core.board.lanes().into_iter().map(|l| l.id).collect();
    let resident = match check_resident(t, &known, &input) {
        Ok(r) => r,
        Err(form) => {
            let view = View {
                form: *form,
                ..View::default()
            };
            return Ok(vehicles_page(
                &core,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                view,
            ));
        }
    };
    let plates = core.plates.clone();
    let saved = resident.clone();
    blocking(move || plates.upsert_resident(&saved)).await??;
    let detail = format!("{} {}", resident.house, resident.owner);
    let message = format!("{}: {}", t.resident_saved_msg, resident.plate);
    let flash = audit_change(
        &core,
        &viewer,
        PanelAction::ResidentSaved,
        &resident.plate,
        Some(Note::Detail(&detail)),
        message,
    )
    .await;
    Ok(done(&viewer, "/vehicles", flash))
}

/// `POST /vehicles/{plate}/remove`.
pub(in crate::web::panel) async fn remove(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(plate): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let plates = core.plates.clone();
    let message = format!("{}: {plate}", viewer.t().resident_removed_msg);
    remove_audited(
        &core,
        &viewer,
        "/vehicles",
        PanelAction::ResidentRemoved,
        &plate,
        message,
        move |p| plates.remove_resident(p),
    )
    .await
}

/// Which list an import or a download is about (`residents` when absent).
#[derive(Debug, Deserialize, Default)]
pub(in crate::web::panel) struct Which {
    #[serde(default)]
    list: String,
}

impl Which {
    fn kind(&self) -> ListKind {
        ListKind::parse(&self.list).unwrap_or(ListKind::Residents)
    }
}

/// `POST /vehicles/import?list=…`: `step=check` previews, `step=write`
/// imports (residents, blacklist or visitor passes).
pub(in crate::web::panel) async fn import(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(which): Query<Which>,
    Form(input): Form<ImportForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let t = viewer.t();
    let kind = which.kind();
    let (check, write) = (core.plates.clone(), core.plates.clone());
    let imported = csv::import(
        t,
        input,
        move |text| check.check_csv(kind, text, ImportMode::AllOrNothing),
        move |text| write.import_csv(kind, text, ImportMode::AllOrNothing, |_| {}),
    )
    .await?;
    let report = match imported {
        Imported::Preview(status, preview) => {
            if kind == ListKind::Visitors {
                return super::visitors::with_preview(&core, &viewer, status, preview).await;
            }
            let view = View {
                preview: Some((kind, preview)),
                ..View::default()
            };
            return Ok(vehicles_page(&core, &viewer, status, view));
        }
        Imported::Written(report) => report,
    };
    let name = list_name(kind);
    record_audit(
        &core,
        None,
        audit_by(&viewer, imported_action(kind))
            .on(name)
            .detail(format!(
                "{} written, {} rejected",
                report.written,
                report.rejected.len()
            )),
    )
    .await;
    let flash = Flash::ok(format!("{}: {}", t.import_done, report.written));
    let back = if kind == ListKind::Visitors {
        "/visitors"
    } else {
        "/vehicles"
    };
    Ok(done(&viewer, back, flash))
}

/// `GET /vehicles.csv?list=…`: a list, formula-safe.
pub(in crate::web::panel) async fn export(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(which): Query<Which>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let kind = which.kind();
    let plates = core.plates.clone();
    let out = csv::from_store(move |out| plates.export_csv(kind, out)).await?;
    Ok(csv::download(&core, &viewer, list_name(kind), out).await)
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct BlackForm {
    #[serde(default)]
    plate: String,
    #[serde(default)]
    reason: String,
}

/// `POST /vehicles/blacklist`: add (or change the reason).
pub(in crate::web::panel) async fn blacklist_add(
    State(panel): State<Panel>,
    viewer: Viewer,
    Form(input): Form<BlackForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let t = viewer.t();
    let mut form = BlacklistForm {
        plate: input.plate.trim().to_owned(),
        reason: input.reason.trim().to_owned(),
        ..BlacklistForm::default()
    };
    let plate = canonical_plate(&form.plate).ok();
    if form.plate.is_empty() {
        form.plate_error = Some(t.err_required);
    } else if plate.is_none() {
        form.plate_error = Some(t.err_plate);
    }
    form.reason_error = text_error(t, &form.reason, true);
    let Some(plate) = plate.filter(|_| form.plate_error.is_none() && form.reason_error.is_none())
    else {
        let view = View {
            black_form: form,
            ..View::default()
        };
        return Ok(vehicles_page(
            &core,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            view,
        ));
    };
    let entry = Blacklisted {
        plate: plate.clone(),
        reason: form.reason.clone(),
    };
    let plates = core.plates.clone();
    blocking(move || plates.upsert_blacklist(&entry)).await??;
    let flash = audit_change(
        &core,
        &viewer,
        PanelAction::BlacklistAdded,
        &plate,
        Some(Note::Reason(&form.reason)),
        format!("{}: {plate}", t.blacklist_added_msg),
    )
    .await;
    Ok(done(&viewer, "/vehicles", flash))
}

/// `POST /vehicles/blacklist/{plate}/remove`.
pub(in crate::web::panel) async fn blacklist_remove(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(plate): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let plates = core.plates.clone();
    let message = format!("{}: {plate}", viewer.t().blacklist_removed_msg);
    remove_audited(
        &core,
        &viewer,
        "/vehicles",
        PanelAction::BlacklistRemoved,
        &plate,
        message,
        move |p| plates.remove_blacklist(p),
    )
    .await
}
