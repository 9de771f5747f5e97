//! The card list as a CSV file: validating a file without writing (the
//! panel's preview), importing it (every row checked as a guard's change
//! is, then written in bounded chunks, or nothing when any is rejected
//! unless asked to keep the good ones) and exporting it with its header.

use std::collections::HashMap;
use std::io::{Read, Write};

use super::{CredentialStore, now_ms, split_groups};
use crate::rules::door::Card;
use crate::vocab::import::{self, ImportMode};
use crate::vocab::records::{ImportReport, ListError, Rejected};
use crate::vocab::time::{format_bound, parse_optional_ms};

/// The CSV header of the card list.
pub const CARD_HEADER: [&str; 6] = [
    "number",
    "holder",
    "house",
    "valid_from",
    "valid_to",
    "groups",
];

impl CredentialStore {
    /// Validates a card CSV (UTF-8 or GB18030) without writing anything:
    /// how many rows `mode` would write, and which are refused.
    pub fn check_cards_csv(
        &self,
        bytes: &[u8],
        mode: ImportMode,
    ) -> Result<ImportReport, ListError> {
        let (text, encoding) = import::decode(bytes)?;
        let (rows, rejected) = self.parse_cards_csv(text.as_bytes())?;
        Ok(ImportReport::new(rows.len(), rejected, encoding, mode))
    }

    /// Imports a card CSV (UTF-8 or GB18030): validates every row, then
    /// writes every valid row (upserts, in bounded chunks through the
    /// store's writer), or under [`ImportMode::AllOrNothing`] nothing when
    /// any row is rejected. The snapshot is swapped once, at the end.
    /// `progress` is called with the rows written so far.
    pub fn import_cards_csv(
        &self,
        bytes: &[u8],
        mode: ImportMode,
        progress: impl FnMut(u64),
    ) -> Result<ImportReport, ListError> {
        let (text, encoding) = import::decode(bytes)?;
        let (rows, rejected) = self.parse_cards_csv(text.as_bytes())?;
        let report = ImportReport::new(rows.len(), rejected, encoding, mode);
        if report.written == 0 {
            return Ok(report);
        }
        self.write_cards(rows, now_ms(), progress)?;
        self.change(|_| Ok(()))?;
        Ok(report)
    }

    /// Writes every card as CSV with a header; returns how many.
    pub fn export_cards_csv(&self, output: impl Write) -> Result<usize, ListError> {
        let mut out = csv::Writer::from_writer(output);
        out.write_record(CARD_HEADER)?;
        let snapshot = self.snapshot();
        let bound = |t: Option<i64>, end: bool| t.map(|t| format_bound(t, end)).unwrap_or_default();
        // Already in the order of the numbers.
        for c in snapshot.cards.iter() {
            out.write_record([
                c.number,
                c.holder,
                c.house,
                &bound(c.valid_from, false),
                &bound(c.valid_to, true),
                &c.groups.join(";"),
            ])?;
        }
        out.flush().map_err(csv::Error::from)?;
        Ok(snapshot.cards.len())
    }

    fn parse_cards_csv(&self, input: impl Read) -> Result<(Vec<Card>, Vec<Rejected>), ListError> {
        let mut reader = import::read_rows(input, &CARD_HEADER)?;
        let mut rows = Vec::new();
        let mut rejected = Vec::new();
        let mut seen: HashMap<String, u64> = HashMap::new();
        for record in reader.records() {
            let record = record?;
            let line = match import::row_line(&record, &CARD_HEADER) {
                Ok(line) => line,
                Err(wrong) => {
                    rejected.push(wrong);
                    continue;
                }
            };
            let field = |i: usize| record.get(i).unwrap_or("");
            let parsed = (|| {
                let card = Card {
                    number: field(0).to_owned(),
                    holder: field(1).to_owned(),
                    house: field(2).to_owned(),
                    valid_from: parse_optional_ms(field(3), false)?,
                    valid_to: parse_optional_ms(field(4), true)?,
                    groups: split_groups(field(5)),
                };
                self.check_card(&card)
            })();
            match parsed {
                Ok(card) => {
                    if let Some(first) = seen.insert(card.number.clone(), line) {
                        rejected.push(Rejected {
                            line,
                            reason: format!("card {} already appears on line {first}", card.number),
                        });
                        continue;
                    }
                    rows.push(card);
                }
                Err(reason) => rejected.push(Rejected { line, reason }),
            }
        }
        Ok((rows, rejected))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::open;
    use crate::vocab::import::ImportMode;

    const CSV: &str = "number,holder,house,valid_from,valid_to,groups\n\
        0012345,王芳,3-1-1201,,,b3\n\
        22334455,李雷,3-1-1202,2026-01-01,2026-12-31,b3;basement\n\
        12x45,坏卡,3-1-1203,,,\n\
        12345,重复,3-1-1204,,,\n\
        55555,,3-1-1205,,,\n\
        66666,韩梅梅,3-1-1206,2026-12-31,2026-01-01,\n\
        77777,张伟,3-1-1207,,,gym\n\
        88888,too,few\n";

    #[tokio::test]
    async fn cards_csv_import_writes_good_rows_and_reports_bad_ones_by_line() {
        let (_dir, _store, creds) = open();
        let refused = creds
            .import_cards_csv(CSV.as_bytes(), ImportMode::AllOrNothing, |_| {})
            .expect("import");
        assert_eq!((refused.written, refused.valid), (0, 2));
        assert_eq!(refused.rejected.len(), 6);
        assert!(creds.snapshot().cards.is_empty(), "all or nothing");
        let mut progress = Vec::new();
        let report = creds
            .import_cards_csv(CSV.as_bytes(), ImportMode::KeepGood, |n| progress.push(n))
            .expect("import");
        assert_eq!(report.written, 2);
        assert_eq!(progress, vec![2], "progress after each chunk");
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7, 8, 9], "{:?}", report.rejected);
        let reasons: Vec<&str> = report.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert!(reasons[0].contains("not a decimal number"));
        assert!(reasons[1].contains("already appears on line 2"));
        assert!(reasons[2].contains("holder is required"));
        assert!(reasons[3].contains("ends before it starts"));
        assert!(reasons[4].contains("no door group \"gym\""));
        assert!(reasons[5].contains("expected 6 fields"));
        let snapshot = creds.snapshot();
        let card = snapshot.cards.get("12345").expect("leading zeros dropped");
        assert_eq!(card.holder, "王芳");
        let groups = snapshot
            .cards
            .get("22334455")
            .expect("card")
            .to_card()
            .groups;
        assert_eq!(groups, vec!["b3", "basement"]);
    }

    #[tokio::test]
    async fn cards_csv_export_then_import_round_trips() {
        let (_dir, _store, creds) = open();
        creds
            .import_cards_csv(CSV.as_bytes(), ImportMode::KeepGood, |_| {})
            .expect("import");
        let mut out = Vec::new();
        assert_eq!(creds.export_cards_csv(&mut out).expect("export"), 2);
        let (_dir2, _store2, other) = open();
        let report = other
            .import_cards_csv(out.as_slice(), ImportMode::AllOrNothing, |_| {})
            .expect("re-import");
        assert_eq!(report.written, 2, "{:?}", report.rejected);
        assert!(report.rejected.is_empty());
        assert_eq!(other.cards(), creds.cards());
    }

    #[tokio::test]
    async fn cards_csv_with_a_wrong_header_is_refused_whole() {
        let (_dir, _store, creds) = open();
        let err = creds
            .import_cards_csv("card,name\n1,x\n".as_bytes(), ImportMode::KeepGood, |_| {})
            .expect_err("header");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(creds.snapshot().cards.is_empty());
    }
}
