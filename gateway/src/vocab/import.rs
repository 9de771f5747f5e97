//! What every CSV import shares: reading the file's text whatever Excel
//! saved it as, and the import mode.
//!
//! Property offices send CSV files from Excel. Excel on Chinese Windows
//! saves "CSV" in GBK (code page 936), elsewhere UTF-8, with or without a
//! byte-order mark. [`decode`] takes UTF-8 when the bytes are valid UTF-8
//! (after an optional BOM) and GB18030 (a superset of GBK) otherwise, and
//! says which it used; bytes that are neither are refused, never guessed.
//!
//! An import is all-or-nothing by default ([`ImportMode::AllOrNothing`]):
//! when any row is rejected nothing is written and every rejected row is
//! reported by line. [`ImportMode::KeepGood`] writes the good rows anyway.
//!
//! Every list's file opens with its header line exactly ([`read_rows`]),
//! and a row with another number of fields is rejected by line
//! ([`row_line`]).
//!
//! Every CSV export ends with a watermark line naming who exported it and
//! when ([`watermark`]); it starts with `#`, which a spreadsheet shows as
//! text and an import skips, so an exported file imports again as it is.

use std::borrow::Cow;
use std::io::Read;

use serde::Serialize;

use super::records::{ListError, Rejected};

/// The text encoding a CSV file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvEncoding {
    /// UTF-8 without a byte-order mark.
    #[default]
    Utf8,
    /// UTF-8 with a byte-order mark (Excel's "CSV UTF-8").
    Utf8Bom,
    /// GB18030 / GBK (Excel's "CSV" on Chinese Windows).
    Gb18030,
}

impl CsvEncoding {
    /// How it is named to people.
    pub fn label(self) -> &'static str {
        match self {
            CsvEncoding::Utf8 => "UTF-8",
            CsvEncoding::Utf8Bom => "UTF-8 (BOM)",
            CsvEncoding::Gb18030 => "GB18030/GBK",
        }
    }
}

/// What happens to the good rows when some are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// Nothing is written when any row is rejected.
    #[default]
    AllOrNothing,
    /// The good rows are written, the rejected ones reported.
    KeepGood,
}

impl ImportMode {
    /// Whether rows are written, given how many were rejected.
    pub fn writes(self, rejected: usize) -> bool {
        self == ImportMode::KeepGood || rejected == 0
    }
}

/// The text of a CSV file and the encoding it was in.
pub fn decode(bytes: &[u8]) -> Result<(Cow<'_, str>, CsvEncoding), ListError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .map(|text| (Cow::Borrowed(text), CsvEncoding::Utf8Bom))
            .map_err(|e| {
                not_text(&format!(
                    "UTF-8 after its byte-order mark, but byte {} is not",
                    e.valid_up_to() + 3
                ))
            });
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((Cow::Borrowed(text), CsvEncoding::Utf8));
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| (text, CsvEncoding::Gb18030))
        .ok_or_else(|| not_text("neither UTF-8 nor GB18030/GBK"))
}

/// A reader of a CSV file's rows (fields trimmed, rows of any length) whose
/// first line is `header` exactly; any other header refuses the whole file.
pub fn read_rows<R: Read>(input: R, header: &[&str]) -> Result<csv::Reader<R>, ListError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(input);
    let found: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    if found.iter().map(String::as_str).ne(header.iter().copied()) {
        return Err(ListError::Invalid(format!(
            "line 1: the header must be `{}`, found `{}`",
            header.join(","),
            found.join(",")
        )));
    }
    Ok(reader)
}

/// A row's line in the file, or its rejection when it has not one field
/// for each column of `header`.
pub fn row_line(record: &csv::StringRecord, header: &[&str]) -> Result<u64, Rejected> {
    let line = record.position().map_or(0, |p| p.line());
    if record.len() != header.len() {
        return Err(Rejected {
            line,
            reason: format!("expected {} fields, found {}", header.len(), record.len()),
        });
    }
    Ok(line)
}

/// The line every CSV export ends with: `# exported by WHO at TIME`
/// (the estate's time). `who` loses any character that could end the line
/// or quote a cell, so the line always starts with `#`.
pub fn watermark(who: &str, at_ms: i64) -> String {
    let who: String = who
        .chars()
        .map(|c| {
            if c.is_control() || c == '"' || c == ',' {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!(
        "# exported by {who} at {} (Gatehouse)\r\n",
        super::time::format_ms(at_ms)
    )
}

fn not_text(why: &str) -> ListError {
    ListError::Invalid(format!(
        "the file is {why}; save it from Excel as \"CSV UTF-8\" or \"CSV\""
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "plate,house,owner\n苏A8HK52,3-2-1201,王芳\n";

    #[test]
    fn csv_utf8_with_and_without_bom_and_gbk_are_read_and_named() {
        assert_eq!(
            decode(TEXT.as_bytes()).expect("utf-8"),
            (Cow::Borrowed(TEXT), CsvEncoding::Utf8)
        );
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(TEXT.as_bytes());
        assert_eq!(
            decode(&bom).expect("bom"),
            (Cow::Borrowed(TEXT), CsvEncoding::Utf8Bom)
        );
        let (gbk, _, _) = encoding_rs::GBK.encode(TEXT);
        assert!(
            std::str::from_utf8(&gbk).is_err(),
            "GBK bytes are not UTF-8"
        );
        let (text, encoding) = decode(&gbk).expect("gbk");
        assert_eq!((text.as_ref(), encoding), (TEXT, CsvEncoding::Gb18030));
        assert_eq!(encoding.label(), "GB18030/GBK");
    }

    #[test]
    fn csv_bytes_in_no_known_encoding_are_refused_not_guessed() {
        // 0x81 0x20 is not a GB18030 sequence, and not UTF-8.
        let error = decode(b"plate\n\x81\x20\n").expect_err("not text");
        assert!(
            error.to_string().contains("neither UTF-8 nor GB18030"),
            "{error}"
        );
        let error = decode(b"\xEF\xBB\xBFplate\n\xFF\n").expect_err("bad after BOM");
        assert!(error.to_string().contains("byte-order mark"), "{error}");
    }

    #[test]
    fn the_watermark_is_one_line_an_import_skips() {
        let line = watermark("ad,min\n\"=1+1", 0);
        assert!(line.starts_with("# exported by ad_min__=1+1 at "), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
        let file = format!("plate,house\r\n苏A8HK52,3-1\r\n{line}");
        let mut reader = read_rows(file.as_bytes(), &["plate", "house"]).expect("header");
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        assert_eq!(rows.len(), 1, "the watermark is not a row");
    }

    #[test]
    fn import_mode_writes_only_when_allowed() {
        assert!(ImportMode::AllOrNothing.writes(0));
        assert!(!ImportMode::AllOrNothing.writes(1));
        assert!(ImportMode::KeepGood.writes(3));
    }
}
