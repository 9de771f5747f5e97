//! The vehicle lists as CSV files: validating a file without writing
//! (the panel's preview), importing it (every row validated first, then
//! all written in bounded chunks, or nothing when any is rejected unless
//! asked to keep the good ones) and exporting a list with its header.

use std::collections::HashMap;
use std::io::{Read, Write};

use super::{
    ListKind, NewVisitorPass, PlateRegistry, Row, canonical_plate, check_window, now_ms, write_row,
};
use crate::rules::vehicle::{Blacklisted, Resident};
use crate::vocab::import::{self, ImportMode};
use crate::vocab::records::{ImportReport, ListError, Rejected};
use crate::vocab::time::{format_bound, parse_ms, parse_optional_ms};

impl ListKind {
    /// The CSV header for this list.
    pub fn header(self) -> &'static [&'static str] {
        match self {
            Self::Residents => &["plate", "house", "owner", "valid_from", "valid_to", "lanes"],
            Self::Visitors => &["plate", "host_unit", "valid_from", "valid_to", "single_use"],
            Self::Blacklist => &["plate", "reason"],
        }
    }
}

/// Valid rows with their line numbers, and the rejected ones.
type ParsedCsv = (Vec<(u64, Row)>, Vec<Rejected>);

impl PlateRegistry {
    /// Validates a CSV file of `kind` (UTF-8 or GB18030) without writing
    /// anything: how many rows `mode` would write, and which are refused.
    pub fn check_csv(
        &self,
        kind: ListKind,
        bytes: &[u8],
        mode: ImportMode,
    ) -> Result<ImportReport, ListError> {
        let (text, encoding) = import::decode(bytes)?;
        let (rows, rejected) = parse_csv(kind, text.as_bytes())?;
        Ok(ImportReport::new(rows.len(), rejected, encoding, mode))
    }

    /// Imports a CSV file of `kind` (UTF-8 or GB18030): validates every
    /// row, then writes every valid row, or under
    /// [`ImportMode::AllOrNothing`] nothing at all when any row is rejected.
    /// Rows go in bounded chunks through the store's writer; the snapshot is
    /// swapped once, at the end. `progress` is called with the number of
    /// rows written so far.
    pub fn import_csv(
        &self,
        kind: ListKind,
        bytes: &[u8],
        mode: ImportMode,
        progress: impl FnMut(u64),
    ) -> Result<ImportReport, ListError> {
        let (text, encoding) = import::decode(bytes)?;
        let (rows, rejected) = parse_csv(kind, text.as_bytes())?;
        let report = ImportReport::new(rows.len(), rejected, encoding, mode);
        if report.written == 0 {
            return Ok(report);
        }
        let now = now_ms();
        self.writer
            .write_in_chunks(rows, move |tx, (_, row)| write_row(tx, row, now), progress)?;
        self.write(|_| Ok(()))?;
        Ok(report)
    }

    /// Writes a list as CSV with a header.
    pub fn export_csv(&self, kind: ListKind, output: impl Write) -> Result<usize, ListError> {
        let mut out = csv::Writer::from_writer(output);
        out.write_record(kind.header())?;
        let lists = self.snapshot();
        let bound = |t: Option<i64>, end: bool| t.map(|t| format_bound(t, end)).unwrap_or_default();
        let mut n = 0;
        match kind {
            ListKind::Residents => {
                // Already in plate order.
                for r in lists.residents.iter() {
                    out.write_record([
                        r.plate,
                        r.house,
                        r.owner,
                        &bound(r.valid_from, false),
                        &bound(r.valid_to, true),
                        &r.lanes.join(";"),
                    ])?;
                    n += 1;
                }
            }
            ListKind::Visitors => {
                for v in self.visitor_passes()? {
                    out.write_record([
                        v.plate.as_str(),
                        &v.host_unit,
                        &format_bound(v.valid_from, false),
                        &format_bound(v.valid_to, true),
                        if v.single_use { "yes" } else { "no" },
                    ])?;
                    n += 1;
                }
            }
            ListKind::Blacklist => {
                let mut rows: Vec<_> = lists.blacklist.values().collect();
                rows.sort_by(|a, b| a.plate.cmp(&b.plate));
                for b in rows {
                    out.write_record([b.plate.as_str(), &b.reason])?;
                    n += 1;
                }
            }
        }
        out.flush().map_err(csv::Error::from)?;
        Ok(n)
    }
}

fn parse_csv(kind: ListKind, input: impl Read) -> Result<ParsedCsv, ListError> {
    let mut reader = import::read_rows(input, kind.header())?;
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    let mut seen = HashMap::new();
    for record in reader.records() {
        let record = record?;
        let line = match import::row_line(&record, kind.header()) {
            Ok(line) => line,
            Err(wrong) => {
                rejected.push(wrong);
                continue;
            }
        };
        let fields: Vec<&str> = record.iter().collect();
        let parsed = parse_row(kind, &fields);
        match parsed {
            Ok(row) => {
                let plate = match &row {
                    Row::Resident(r) => r.plate.clone(),
                    Row::Visitor(v) => v.plate.clone(),
                    Row::Blacklisted(b) => b.plate.clone(),
                };
                if kind != ListKind::Visitors
                    && let Some(first) = seen.insert(plate.clone(), line)
                {
                    rejected.push(Rejected {
                        line,
                        reason: format!("{plate} already appears on line {first}"),
                    });
                    continue;
                }
                rows.push((line, row));
            }
            Err(reason) => rejected.push(Rejected { line, reason }),
        }
    }
    Ok((rows, rejected))
}

fn parse_row(kind: ListKind, fields: &[&str]) -> Result<Row, String> {
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let plate = canonical_plate(field(0)).map_err(|e| e.to_string())?;
    match kind {
        ListKind::Residents => {
            let house = field(1);
            if house.is_empty() {
                return Err("house is required".into());
            }
            let valid_from = parse_optional_ms(field(3), false)?;
            let valid_to = parse_optional_ms(field(4), true)?;
            check_window(valid_from, valid_to).map_err(|e| e.to_string())?;
            let lanes = field(5)
                .split([';', ','])
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            Ok(Row::Resident(Resident {
                plate,
                house: house.to_owned(),
                owner: field(2).to_owned(),
                valid_from,
                valid_to,
                lanes,
            }))
        }
        ListKind::Visitors => {
            let host_unit = field(1);
            if host_unit.is_empty() {
                return Err("host_unit is required".into());
            }
            let valid_from = parse_ms(field(2), false)?;
            let valid_to = parse_ms(field(3), true)?;
            check_window(Some(valid_from), Some(valid_to)).map_err(|e| e.to_string())?;
            let single_use = match field(4).to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" | "single" | "是" => true,
                "no" | "false" | "0" | "multiple" | "否" => false,
                other => return Err(format!("single_use must be yes or no, not {other:?}")),
            };
            Ok(Row::Visitor(NewVisitorPass {
                plate,
                host_unit: host_unit.to_owned(),
                valid_from,
                valid_to,
                single_use,
                created_by: "import".into(),
            }))
        }
        ListKind::Blacklist => Ok(Row::Blacklisted(Blacklisted {
            plate,
            reason: field(1).to_owned(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::registry;
    use crate::lists::plates::{ListKind, PlateRegistry};
    use crate::store::Store;
    use crate::vocab::import::{CsvEncoding, ImportMode};

    #[tokio::test]
    async fn plates_csv_import_writes_good_rows_and_reports_bad_ones_by_line() {
        let (_dir, _store, registry) = registry();
        let csv = "plate,house,owner,valid_from,valid_to,lanes\n\
                   苏A8HK52,3-2-1201,王芳,,,\n\
                   苏a 12345,1-1-101,李雷,2026-01-01,2026-12-31,south-in;north-in\n\
                   XX123,1-1-102,bad,,,\n\
                   苏A8HK52,9-9-909,dup,,,\n\
                   苏B00001,,no house,,,\n\
                   苏B00002,2-2-202,window,2026-12-31,2026-01-01,\n";
        let all_or_nothing = registry
            .import_csv(
                ListKind::Residents,
                csv.as_bytes(),
                ImportMode::AllOrNothing,
                |_| {},
            )
            .expect("import");
        assert_eq!((all_or_nothing.written, all_or_nothing.valid), (0, 2));
        assert_eq!(all_or_nothing.rejected.len(), 4);
        assert!(
            registry.snapshot().residents.is_empty(),
            "nothing written when a row is rejected"
        );
        let checked = registry
            .check_csv(
                ListKind::Residents,
                csv.as_bytes(),
                ImportMode::AllOrNothing,
            )
            .expect("check");
        assert_eq!(checked, all_or_nothing, "the preview says the same");
        let mut calls = 0;
        let report = registry
            .import_csv(
                ListKind::Residents,
                csv.as_bytes(),
                ImportMode::KeepGood,
                |_| calls += 1,
            )
            .expect("import");
        assert_eq!(report.written, 2);
        assert_eq!(calls, 1, "progress after each chunk of rows");
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7]);
        assert!(
            report.rejected[1].reason.contains("line 2"),
            "{:?}",
            report.rejected
        );
        assert!(report.rejected[3].reason.contains("ends before it starts"));
        let lists = registry.snapshot();
        let resident = lists
            .residents
            .get("苏A12345")
            .expect("normalised plate imported");
        assert_eq!(resident.to_resident().lanes, vec!["south-in", "north-in"]);
        assert!(resident.valid_to.is_some());
    }

    #[tokio::test]
    async fn plates_csv_with_a_wrong_header_is_refused_whole() {
        let (_dir, _store, registry) = registry();
        let err = registry
            .import_csv(
                ListKind::Blacklist,
                "car,why\n苏A00000,x\n".as_bytes(),
                ImportMode::KeepGood,
                |_| {},
            )
            .expect_err("bad header");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(registry.snapshot().blacklist.is_empty());
    }

    #[tokio::test]
    async fn plates_export_then_import_round_trips() {
        let (_dir, _store, registry) = registry();
        let csv = "plate,house,owner,valid_from,valid_to,lanes\n苏A8HK52,3-2-1201,王芳,,2026-12-31,south-in\n";
        registry
            .import_csv(
                ListKind::Residents,
                csv.as_bytes(),
                ImportMode::AllOrNothing,
                |_| {},
            )
            .expect("import");
        let mut out = Vec::new();
        assert_eq!(
            registry
                .export_csv(ListKind::Residents, &mut out)
                .expect("export"),
            1
        );
        let (_dir2, _store2, other) = registry_pair();
        let report = other
            .import_csv(
                ListKind::Residents,
                out.as_slice(),
                ImportMode::AllOrNothing,
                |_| {},
            )
            .expect("re-import");
        assert_eq!(report.written, 1, "{:?}", report.rejected);
        assert_eq!(other.snapshot().residents, registry.snapshot().residents);
    }

    #[tokio::test]
    async fn plates_csv_saved_by_excel_on_chinese_windows_imports_and_says_gbk() {
        let (_dir, _store, registry) = registry();
        let csv = "plate,house,owner,valid_from,valid_to,lanes\r\n苏A8HK52,3-2-1201,王芳,,,\r\n";
        let (gbk, _, unmappable) = encoding_rs::GBK.encode(csv);
        assert!(!unmappable);
        let report = registry
            .import_csv(ListKind::Residents, &gbk, ImportMode::AllOrNothing, |_| {})
            .expect("a GBK file imports");
        assert_eq!(report.written, 1, "{:?}", report.rejected);
        assert_eq!(report.encoding, CsvEncoding::Gb18030);
        let lists = registry.snapshot();
        let resident = lists.residents.get("苏A8HK52").expect("imported");
        assert_eq!(resident.owner, "王芳");

        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(csv.replace("王芳", "李雷").as_bytes());
        let report = registry
            .import_csv(ListKind::Residents, &bom, ImportMode::AllOrNothing, |_| {})
            .expect("a UTF-8 file with a BOM imports");
        assert_eq!(report.encoding, CsvEncoding::Utf8Bom);
        let lists = registry.snapshot();
        assert_eq!(
            lists.residents.get("苏A8HK52").map(|r| r.owner),
            Some("李雷")
        );
    }

    fn registry_pair() -> (tempfile::TempDir, Store, PlateRegistry) {
        registry()
    }
}
