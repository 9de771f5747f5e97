//! CSV in and out of the panel. Imports go in two steps — check (a
//! [`Preview`]: the rows that would be written and the rejected ones with
//! their line numbers; nothing written) then write (the same text posted
//! again, one transaction) — through [`import`]. Every download goes
//! through [`download`]: UTF-8 with a BOM (so spreadsheets read Chinese),
//! a dated file name, every cell defused ([`defuse`]) so a spreadsheet
//! never evaluates a cell as a formula, and a last line naming who
//! exported it and when (`crate::vocab::import::watermark`; imports skip it).
//!
//! The CSV travels in a form field (a file picked in the browser is read
//! into it by the page's script, or pasted), because the CSRF guard reads
//! URL-encoded forms; the guard's body limit (64 KiB) bounds one import.

use std::collections::BTreeSet;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::blocking;
use crate::events::PanelAction;
use crate::vocab::records::ImportReport;
use crate::vocab::records::ListError;
use crate::web::panel::PanelCore;
use crate::web::panel::PanelError;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::{audit_by, record_audit};

/// A checked import: rows to write, rows refused.
#[derive(Debug, Clone, Default)]
pub(crate) struct Preview {
    pub(crate) csv: String,
    pub(crate) ok: Vec<(u64, Vec<String>)>,
    pub(crate) rejected: Vec<(u64, String)>,
    pub(crate) error: Option<String>,
}

/// The import form: the CSV text and the step (`check` or `write`).
#[derive(Debug, Deserialize)]
pub(crate) struct ImportForm {
    #[serde(default)]
    pub(crate) csv: String,
    #[serde(default)]
    pub(crate) step: String,
}

/// The rows of `csv_text` the way the stores read them: every data line
/// with its number, minus the rejected lines of `report`.
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

/// How an import request ended.
#[derive(Debug)]
pub(crate) enum Imported {
    /// Show this preview (with this status): a check, a file that could
    /// not be read, or nothing to write.
    Preview(StatusCode, Preview),
    /// Written in one transaction.
    Written(ImportReport),
}

/// Runs the two-step import of `form` with a store's `check` and `write`
/// (both on the blocking pool).
pub(crate) async fn import(
    t: &'static Strings,
    form: ImportForm,
    check: impl FnOnce(&[u8]) -> Result<ImportReport, ListError> + Send + 'static,
    write: impl FnOnce(&[u8]) -> Result<ImportReport, ListError> + Send + 'static,
) -> Result<Imported, PanelError> {
    let text = form
        .csv
        .strip_prefix('\u{feff}')
        .unwrap_or(&form.csv)
        .replace("\r\n", "\n");
    let bytes = text.clone().into_bytes();
    let report = match blocking(move || check(&bytes)).await? {
        Ok(report) => report,
        Err(error) => {
            let preview = Preview {
                csv: text,
                error: Some(format!("{}: {error}", t.err_csv)),
                ..Preview::default()
            };
            return Ok(Imported::Preview(StatusCode::UNPROCESSABLE_ENTITY, preview));
        }
    };
    if form.step != "write" || report.written == 0 {
        let mut preview = preview(&text, &report);
        if report.written == 0 {
            let why = if report.rejected.is_empty() {
                t.import_nothing
            } else {
                t.import_rejected_rows
            };
            preview.error = Some(why.to_owned());
        }
        return Ok(Imported::Preview(StatusCode::OK, preview));
    }
    let report = blocking(move || write(text.as_bytes())).await??;
    Ok(Imported::Written(report))
}

/// A cell a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, CR) gets a
/// leading apostrophe.
pub(crate) fn defuse(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// Writes `rows` as CSV with every cell defused.
pub(crate) fn write_rows<I, R, C>(rows: I) -> Result<Vec<u8>, csv::Error>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = C>,
    C: AsRef<str>,
{
    let mut out = Vec::from("\u{feff}".as_bytes());
    {
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(&mut out);
        for row in rows {
            writer.write_record(row.into_iter().map(|c| defuse(c.as_ref())))?;
        }
        writer.flush()?;
    }
    Ok(out)
}

/// A store's CSV export (`export` writes it), defused cell by cell.
pub(crate) async fn from_store(
    export: impl FnOnce(&mut Vec<u8>) -> Result<usize, ListError> + Send + 'static,
) -> Result<Vec<u8>, PanelError> {
    let raw = blocking(move || {
        let mut raw = Vec::new();
        export(&mut raw)?;
        Ok(raw)
    })
    .await??;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(raw.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    Ok(write_rows(rows.iter().map(|r| r.iter()))?)
}

/// The download response for `csv` (from [`write_rows`] or
/// [`from_store`]): `gatehouse-STEM-YYYYMMDD-HHMM.csv`, ending with the
/// watermark line naming the viewer and the time
/// ([`crate::vocab::import::watermark`]), recorded as a `data_exported`
/// audit event (the list and the number of rows). Every export goes out
/// here.
pub(crate) async fn download(
    core: &PanelCore,
    viewer: &Viewer,
    stem: &str,
    mut csv: Vec<u8>,
) -> Response {
    // Recorded: who exported which list, and how many rows (never which).
    let rows = csv::ReaderBuilder::new()
        .from_reader(csv.as_slice())
        .records()
        .count();
    record_audit(
        core,
        None,
        audit_by(viewer, PanelAction::DataExported)
            .on(stem)
            .detail(format!("{rows} rows")),
    )
    .await;
    csv.extend_from_slice(
        crate::vocab::import::watermark(&viewer.user.name, drivers::contract::now_ms()).as_bytes(),
    );
    let stamp = crate::web::panel::view::file_stamp();
    let disposition = format!("attachment; filename=\"gatehouse-{stem}-{stamp}.csv\"");
    (
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
        csv,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_a_spreadsheet_would_evaluate_is_defused() {
        let rows = [
            vec!["plate", "house"],
            vec!["=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0"],
            vec!["@SUM(1,2)", "-2+3"],
            vec!["\tx", "苏A8HK52"],
        ];
        let out = write_rows(rows).expect("csv");
        let text = String::from_utf8(out).expect("utf-8");
        let text = text.strip_prefix('\u{feff}').expect("a BOM");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        let cells: Vec<String> = reader
            .records()
            .flat_map(|r| {
                r.expect("row")
                    .iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        for cell in &cells[2..7] {
            assert!(cell.starts_with('\''), "{cell:?} is defused");
        }
        assert_eq!(cells[7], "苏A8HK52");
        assert_eq!(cells[0], "plate");
    }
}
