//! `/cards` (门禁卡, manager and up): unit-door cards — search by number,
//! holder or house, add or edit (upsert), remove, block and unblock with a
//! reason; CSV import in two steps (check: a preview of the rows that would
//! be written and the rejected rows with their line numbers, nothing
//! written; confirm: the same CSV is posted again and imported in one
//! transaction); CSV export (formula-safe). Built from the page kit like
//! the vehicles page; every change is audited and ends in a redirect back
//! to the list (post/redirect/get).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Chrome, Note, PanelAction, audit_by, audit_change, record_audit, remove_audited};
use crate::auth::Permission;
use crate::doors::credentials::CredentialStore;
use crate::rules::door::{Blocked, Card, CardRef, canonical_card};
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

/// One card as a row.
#[derive(Debug, Clone)]
pub(crate) struct CardRow {
    pub(crate) number: String,
    pub(crate) holder: String,
    pub(crate) house: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) groups: String,
    /// The block reason, if the card is blocked.
    pub(crate) blocked: Option<String>,
}

/// The add / edit form.
#[derive(Debug, Clone, Default)]
pub(crate) struct CardForm {
    pub(crate) number: String,
    pub(crate) holder: String,
    pub(crate) house: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) groups: String,
    pub(crate) number_error: Option<String>,
    pub(crate) holder_error: Option<String>,
    pub(crate) house_error: Option<String>,
    pub(crate) from_error: Option<String>,
    pub(crate) to_error: Option<String>,
    pub(crate) groups_error: Option<String>,
}

/// The block form.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlockForm {
    pub(crate) number: String,
    pub(crate) reason: String,
    pub(crate) number_error: Option<&'static str>,
    pub(crate) reason_error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "cards.html")]
struct CardsPage {
    c: Chrome,
    q: String,
    rows: Vec<CardRow>,
    form: CardForm,
    blocked: Vec<Blocked>,
    block_form: BlockForm,
    /// The refused block form belongs to a listed card's row.
    block_in_row: bool,
    preview: Option<Preview>,
    preview_cols: [&'static str; 6],
}

#[derive(Debug, Default)]
struct View {
    q: String,
    form: CardForm,
    block_form: BlockForm,
    preview: Option<Preview>,
}

fn card_row(card: CardRef<'_>, blocked: Option<&Blocked>) -> CardRow {
    let bound = |t: Option<i64>, end| t.map(|t| format_bound(t, end)).unwrap_or_default();
    CardRow {
        number: card.number.to_owned(),
        holder: card.holder.to_owned(),
        house: card.house.to_owned(),
        from: bound(card.valid_from, false),
        to: bound(card.valid_to, true),
        groups: card.groups.join(","),
        blocked: blocked.map(|b| b.reason.clone()),
    }
}

/// Whether a card matches a search (upper case; empty: everything) by
/// number, holder or house.
fn card_matches(c: &CardRef<'_>, needle: &str) -> bool {
    needle.is_empty()
        || c.number.contains(needle)
        || c.holder.to_uppercase().contains(needle)
        || c.house.to_uppercase().contains(needle)
}

fn cards_page(core: &PanelCore, viewer: &Viewer, status: StatusCode, view: View) -> Response {
    let snapshot = core.credentials.snapshot();
    let needle = view.q.trim().to_uppercase();
    // Sorted and cut while borrowed from the snapshot: only the rows shown
    // are copied.
    let mut found: Vec<CardRef<'_>> = snapshot
        .cards
        .iter()
        .filter(|c| card_matches(c, &needle))
        .collect();
    found.sort_by(|a, b| a.house.cmp(b.house).then(a.number.cmp(b.number)));
    found.truncate(MAX_ROWS);
    let rows: Vec<CardRow> = found
        .into_iter()
        .map(|c| card_row(c, snapshot.blocked.get(c.number)))
        .collect();
    let mut blocked: Vec<Blocked> = snapshot.blocked.values().cloned().collect();
    blocked.sort_by(|a, b| a.number.cmp(&b.number));
    let t = viewer.t();
    let block_in_row = rows.iter().any(|r| r.number == view.block_form.number);
    let page = CardsPage {
        c: Chrome::new(viewer, "cards"),
        q: view.q,
        rows,
        form: view.form,
        blocked,
        block_form: view.block_form,
        block_in_row,
        preview: view.preview,
        preview_cols: [
            t.col_card,
            t.col_holder,
            t.col_house,
            t.valid_from,
            t.valid_to,
            t.col_groups,
        ],
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

/// `GET /cards?q=…&edit=…`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(search): Query<Search>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let mut form = CardForm::default();
    let snapshot = core.credentials.snapshot();
    if let Some(number) = canonical_card(&search.edit)
        && let Some(card) = snapshot.cards.get(&number)
    {
        let row = card_row(card, None);
        form = CardForm {
            number: row.number,
            holder: row.holder,
            house: row.house,
            from: row.from,
            to: row.to,
            groups: row.groups,
            ..CardForm::default()
        };
    }
    let needle = search.q.trim().to_uppercase();
    if !needle.is_empty() {
        // Recorded: who searched the cards, and how many were found (never
        // what was searched for).
        let found = snapshot
            .cards
            .iter()
            .filter(|c| card_matches(c, &needle))
            .count();
        drop(snapshot);
        record_audit(
            &core,
            None,
            audit_by(&viewer, PanelAction::DataSearched)
                .on("cards")
                .detail(format!("{found} found")),
        )
        .await;
    }
    let view = View {
        q: search.q,
        form,
        ..View::default()
    };
    Ok(cards_page(&core, &viewer, StatusCode::OK, view))
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct SaveForm {
    #[serde(default)]
    number: String,
    #[serde(default)]
    holder: String,
    #[serde(default)]
    house: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_to: String,
    #[serde(default)]
    groups: String,
}

/// Checks the add / edit form: the panel's own checks per field, then the
/// store's [`CredentialStore::check_card`], whose refusal is shown next to
/// the field it is about.
pub(in crate::web::panel) fn check_card_form(
    t: &'static Strings,
    store: &CredentialStore,
    input: &SaveForm,
) -> Result<Card, Box<CardForm>> {
    let mut form = CardForm {
        number: input.number.trim().to_owned(),
        holder: input.holder.trim().to_owned(),
        house: input.house.trim().to_owned(),
        from: input.valid_from.trim().to_owned(),
        to: input.valid_to.trim().to_owned(),
        groups: input.groups.trim().to_owned(),
        ..CardForm::default()
    };
    if form.number.is_empty() {
        form.number_error = Some(t.err_required.to_owned());
    } else if canonical_card(&form.number).is_none() {
        form.number_error = Some(t.err_card_number.to_owned());
    }
    form.holder_error = text_error(t, &form.holder, true).map(str::to_owned);
    form.house_error = text_error(t, &form.house, true).map(str::to_owned);
    let from = parse_optional_ms(&form.from, false);
    let to = parse_optional_ms(&form.to, true);
    if from.is_err() {
        form.from_error = Some(t.err_datetime.to_owned());
    }
    if to.is_err() {
        form.to_error = Some(t.err_datetime.to_owned());
    }
    if let (Ok(Some(f)), Ok(Some(u))) = (&from, &to)
        && u <= f
    {
        form.to_error = Some(t.err_window_order.to_owned());
    }
    let groups: Vec<String> = form
        .groups
        .split([',', ';', '，', ' '])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    let clean = form.number_error.is_none()
        && form.holder_error.is_none()
        && form.house_error.is_none()
        && form.from_error.is_none()
        && form.to_error.is_none();
    let (Ok(valid_from), Ok(valid_to)) = (from, to) else {
        return Err(Box::new(form));
    };
    if !clean {
        return Err(Box::new(form));
    }
    let card = Card {
        number: form.number.clone(),
        holder: form.holder.clone(),
        house: form.house.clone(),
        valid_from,
        valid_to,
        groups,
    };
    store.check_card(&card).map_err(|reason| {
        let slot = if reason.starts_with("card number") {
            &mut form.number_error
        } else if reason.starts_with("holder") {
            &mut form.holder_error
        } else if reason.starts_with("house") {
            &mut form.house_error
        } else if reason.contains("door group") {
            &mut form.groups_error
        } else {
            &mut form.to_error
        };
        *slot = Some(reason);
        Box::new(form)
    })
}

/// `POST /cards`: add or edit.
pub(in crate::web::panel) async fn save(
    State(panel): State<Panel>,
    viewer: Viewer,
    Form(input): Form<SaveForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let t = viewer.t();
    let card = match check_card_form(t, &core.credentials, &input) {
        Ok(card) => card,
        Err(form) => {
            let view = View {
                form: *form,
                ..View::default()
            };
            return Ok(cards_page(
                &core,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                view,
            ));
        }
    };
    let store = core.credentials.clone();
    let saved = card.clone();
    blocking(move || store.upsert_card(&saved)).await??;
    let detail = format!("{} {}", card.house, card.holder);
    let message = format!("{}: {}", t.card_saved_msg, card.number);
    let flash = audit_change(
        &core,
        &viewer,
        PanelAction::CardSaved,
        &card.number,
        Some(Note::Detail(&detail)),
        message,
    )
    .await;
    Ok(done(&viewer, "/cards", flash))
}

/// `POST /cards/{number}/remove`.
pub(in crate::web::panel) async fn remove(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(number): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let store = core.credentials.clone();
    let message = format!("{}: {number}", viewer.t().card_removed_msg);
    remove_audited(
        &core,
        &viewer,
        "/cards",
        PanelAction::CardRemoved,
        &number,
        message,
        move |n| store.remove_card(n),
    )
    .await
}

/// `POST /cards/import`: `step=check` previews, `step=write` imports.
pub(in crate::web::panel) async fn import(
    State(panel): State<Panel>,
    viewer: Viewer,
    Form(input): Form<ImportForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let t = viewer.t();
    let (check, write) = (core.credentials.clone(), core.credentials.clone());
    let imported = csv::import(
        t,
        input,
        move |text| check.check_cards_csv(text, ImportMode::AllOrNothing),
        move |text| write.import_cards_csv(text, ImportMode::AllOrNothing, |_| {}),
    )
    .await?;
    let report = match imported {
        Imported::Preview(status, preview) => {
            let view = View {
                preview: Some(preview),
                ..View::default()
            };
            return Ok(cards_page(&core, &viewer, status, view));
        }
        Imported::Written(report) => report,
    };
    record_audit(
        &core,
        None,
        audit_by(&viewer, PanelAction::CardsImported)
            .on("cards")
            .detail(format!(
                "{} written, {} rejected",
                report.written,
                report.rejected.len()
            )),
    )
    .await;
    let flash = Flash::ok(format!("{}: {}", t.import_done, report.written));
    Ok(done(&viewer, "/cards", flash))
}

/// `GET /cards.csv`: the cards, formula-safe.
pub(in crate::web::panel) async fn export(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let store = core.credentials.clone();
    let out = csv::from_store(move |out| store.export_cards_csv(out)).await?;
    Ok(csv::download(&core, &viewer, "cards", out).await)
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct BlockInput {
    #[serde(default)]
    number: String,
    #[serde(default)]
    reason: String,
}

/// `POST /cards/block`: block a card (or change the reason); the card need
/// not be listed.
pub(in crate::web::panel) async fn block(
    State(panel): State<Panel>,
    viewer: Viewer,
    Form(input): Form<BlockInput>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let t = viewer.t();
    let mut form = BlockForm {
        number: input.number.trim().to_owned(),
        reason: input.reason.trim().to_owned(),
        ..BlockForm::default()
    };
    let number = canonical_card(&form.number);
    if form.number.is_empty() {
        form.number_error = Some(t.err_required);
    } else if number.is_none() {
        form.number_error = Some(t.err_card_number);
    }
    form.reason_error = text_error(t, &form.reason, true);
    let Some(number) =
        number.filter(|_| form.number_error.is_none() && form.reason_error.is_none())
    else {
        let view = View {
            block_form: form,
            ..View::default()
        };
        return Ok(cards_page(
            &core,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            view,
        ));
    };
    let store = core.credentials.clone();
    let (target, reason) = (number.clone(), form.reason.clone());
    blocking(move || store.block(&target, &reason)).await??;
    let flash = audit_change(
        &core,
        &viewer,
        PanelAction::CardBlocked,
        &number,
        Some(Note::Reason(&form.reason)),
        format!("{}: {number}", t.card_blocked_msg),
    )
    .await;
    Ok(done(&viewer, "/cards", flash))
}

/// `POST /cards/{number}/unblock`.
pub(in crate::web::panel) async fn unblock(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(number): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageResidents)?;
    let core = panel.core()?;
    let store = core.credentials.clone();
    let message = format!("{}: {number}", viewer.t().card_unblocked_msg);
    remove_audited(
        &core,
        &viewer,
        "/cards",
        PanelAction::CardUnblocked,
        &number,
        message,
        move |n| store.unblock(n),
    )
    .await
}
