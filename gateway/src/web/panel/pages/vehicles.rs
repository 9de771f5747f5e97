//! `/vehicles` (车辆, manager and up): residents' vehicles — search by plate
//! or house, add or edit (upsert), remove; CSV import in two steps (check:
//! a preview of the rows that would be written and the rejected rows with
//! their line numbers, nothing written; confirm: the same CSV is posted
//! again and imported in one transaction); CSV export; and the blacklist.
//! Every change is audited.
//!
//! The CSV travels in a form field (a file picked in the browser is read
//! into it by the page's script, or pasted), because the CSRF guard reads
//! URL-encoded forms; the guard's body limit (64 KiB) bounds one import.

use crate::lists::import::ImportMode;
use std::collections::BTreeSet;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::devices::Flash;
use super::{Chrome, audit_change, record_audit, remove_audited};
use crate::auth::Permission;
use crate::lists::ListError;
use crate::lists::plates::{ImportReport, ListKind, canonical_plate};
use crate::lists::time::{format_bound, parse_optional_ms};
use crate::rules::vehicle::{Blacklisted, Resident};
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::{Panel, PanelCore, PanelError};

/// Longest house, owner or blacklist reason, in characters.
const MAX_TEXT_CHARS: usize = 64;
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

/// A checked import: rows to write, rows refused.
#[derive(Debug, Clone, Default)]
pub(crate) struct Preview {
    pub(crate) csv: String,
    pub(crate) ok: Vec<(u64, Vec<String>)>,
    pub(crate) rejected: Vec<(u64, String)>,
    pub(crate) error: Option<String>,
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
    flash: Option<Flash>,
}

#[derive(Debug, Default)]
struct View {
    q: String,
    form: ResidentForm,
    black_form: BlacklistForm,
    preview: Option<Preview>,
    flash: Option<Flash>,
}

fn resident_row(r: &Resident) -> ResidentRow {
    let bound = |t: Option<i64>, end| t.map(|t| format_bound(t, end)).unwrap_or_default();
    ResidentRow {
        plate: r.plate.clone(),
        house: r.house.clone(),
        owner: r.owner.clone(),
        from: bound(r.valid_from, false),
        to: bound(r.valid_to, true),
        lanes: r.lanes.join(","),
    }
}

fn vehicles_page(core: &PanelCore, viewer: &Viewer, status: StatusCode, view: View) -> Response {
    let lists = core.plates.snapshot();
    let needle = view.q.trim().to_uppercase();
    let mut rows: Vec<ResidentRow> = lists
        .residents
        .values()
        .filter(|r| {
            needle.is_empty()
                || r.plate.to_uppercase().contains(&needle)
                || r.house.to_uppercase().contains(&needle)
        })
        .map(resident_row)
        .collect();
    rows.sort_by(|a, b| a.house.cmp(&b.house).then(a.plate.cmp(&b.plate)));
    rows.truncate(MAX_ROWS);
    let mut black: Vec<Blacklisted> = lists.blacklist.values().cloned().collect();
    black.sort_by(|a, b| a.plate.cmp(&b.plate));
    let page = VehiclesPage {
        c: Chrome::new(viewer, "vehicles"),
        q: view.q,
        rows,
        form: view.form,
        black,
        black_form: view.black_form,
        preview: view.preview,
        flash: view.flash,
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
    if let Ok(plate) = canonical_plate(&search.edit)
        && let Some(r) = core.plates.snapshot().residents.get(&plate)
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
    let view = View {
        q: search.q,
        form,
        ..View::default()
    };
    Ok(vehicles_page(&core, &viewer, StatusCode::OK, view))
}

pub(super) fn text_error(t: &'static Strings, text: &str, required: bool) -> Option<&'static str> {
    if required && text.is_empty() {
        Some(t.err_required)
    } else if text.chars().count() > MAX_TEXT_CHARS {
        Some(t.err_text_long)
    } else {
        None
    }
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

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ListError> + Send + 'static,
) -> Result<Result<T, ListError>, PanelError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PanelError::Internal(e.to_string()))
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
    record_audit(
        &core,
        None,
        "resident_saved",
        serde_json::json!({"actor": viewer.user.name, "remote": viewer.remote(), "target": resident.plate,
            "detail": format!("{} {}", resident.house, resident.owner)}),
    )
    .await;
    let view = View {
        flash: Some(Flash {
            class: "ok",
            text: format!("{}: {}", t.resident_saved_msg, resident.plate),
        }),
        ..View::default()
    };
    Ok(vehicles_page(&core, &viewer, StatusCode::OK, view))
}

/// `POST /vehicles/{plate}/remove`.
pub(in crate::web::panel) async fn remove(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(plate): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let t = viewer.t();
    let plates = core.plates.clone();
    let target = plate.clone();
    let flash = remove_audited(
        &core,
        &viewer,
        "resident_removed",
        &plate,
        format!("{}: {plate}", t.resident_removed_msg),
        move || plates.remove_resident(&target),
    )
    .await?;
    let view = View {
        flash: Some(flash),
        ..View::default()
    };
    Ok(vehicles_page(&core, &viewer, StatusCode::OK, view))
}

/// The rows of a residents CSV the way the registry reads it: every data
/// line with its number, and the rejected lines from `report`.
pub(crate) fn preview(csv_text: &str, report: &ImportReport) -> Preview {
    let rejected: Vec<(u64, String)> = report
        .rejected
        .iter()
        .map(|r| (r.line, r.reason.clone()))
        .collect();
    let refused: BTreeSet<u64> = rejected.iter().map(|(l, _)| *l).collect();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    let ok = reader
        .records()
        .filter_map(Result::ok)
        .filter_map(|r| {
            let line = r.position().map_or(0, |p| p.line());
            (!refused.contains(&line)).then(|| (line, r.iter().map(str::to_owned).collect()))
        })
        .collect();
    Preview {
        csv: csv_text.to_owned(),
        ok,
        rejected,
        error: None,
    }
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct ImportForm {
    #[serde(default)]
    csv: String,
    #[serde(default)]
    step: String,
}

/// `POST /vehicles/import`: `step=check` previews, `step=write` imports.
pub(in crate::web::panel) async fn import(
    State(panel): State<Panel>,
    viewer: Viewer,
    Form(input): Form<ImportForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let t = viewer.t();
    let text = input
        .csv
        .strip_prefix('\u{feff}')
        .unwrap_or(&input.csv)
        .replace("\r\n", "\n");
    let write = input.step == "write";
    let plates = core.plates.clone();
    let bytes = text.clone().into_bytes();
    let checked = blocking(move || {
        plates.check_csv(
            ListKind::Residents,
            bytes.as_slice(),
            ImportMode::AllOrNothing,
        )
    })
    .await?;
    let report = match checked {
        Ok(report) => report,
        Err(error) => {
            let view = View {
                preview: Some(Preview {
                    csv: text,
                    error: Some(format!("{}: {error}", t.err_csv)),
                    ..Preview::default()
                }),
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
    if !write || report.written == 0 {
        let mut preview = preview(&text, &report);
        if report.written == 0 {
            let why = if report.rejected.is_empty() {
                t.import_nothing
            } else {
                t.import_rejected_rows
            };
            preview.error = Some(why.to_owned());
        }
        let view = View {
            preview: Some(preview),
            ..View::default()
        };
        return Ok(vehicles_page(&core, &viewer, StatusCode::OK, view));
    }
    let plates = core.plates.clone();
    let report = blocking(move || {
        plates.import_csv(
            ListKind::Residents,
            text.as_bytes(),
            ImportMode::AllOrNothing,
            |_| {},
        )
    })
    .await??;
    record_audit(
        &core,
        None,
        "residents_imported",
        serde_json::json!({"actor": viewer.user.name, "remote": viewer.remote(), "target": "residents",
            "detail": format!("{} written, {} rejected", report.written, report.rejected.len())}),
    )
    .await;
    let view = View {
        flash: Some(Flash {
            class: "ok",
            text: format!("{}: {}", t.import_done, report.written),
        }),
        ..View::default()
    };
    Ok(vehicles_page(&core, &viewer, StatusCode::OK, view))
}

/// `GET /vehicles.csv`: the residents' vehicles (UTF-8 with a BOM).
pub(in crate::web::panel) async fn export(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let plates = core.plates.clone();
    let out = blocking(move || {
        let mut out = Vec::from("\u{feff}".as_bytes());
        plates.export_csv(ListKind::Residents, &mut out)?;
        Ok(out)
    })
    .await??;
    let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M").to_string();
    let disposition = format!("attachment; filename=\"gatehouse-residents-{stamp}.csv\"");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        out,
    )
        .into_response())
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
        "blacklist_added",
        &plate,
        Some(&form.reason),
        format!("{}: {plate}", t.blacklist_added_msg),
    )
    .await;
    let view = View {
        flash: Some(flash),
        ..View::default()
    };
    Ok(vehicles_page(&core, &viewer, StatusCode::OK, view))
}

/// `POST /vehicles/blacklist/{plate}/remove`.
pub(in crate::web::panel) async fn blacklist_remove(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(plate): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let t = viewer.t();
    let plates = core.plates.clone();
    let target = plate.clone();
    let flash = remove_audited(
        &core,
        &viewer,
        "blacklist_removed",
        &plate,
        format!("{}: {plate}", t.blacklist_removed_msg),
        move || plates.remove_blacklist(&target),
    )
    .await?;
    let view = View {
        flash: Some(flash),
        ..View::default()
    };
    Ok(vehicles_page(&core, &viewer, StatusCode::OK, view))
}
