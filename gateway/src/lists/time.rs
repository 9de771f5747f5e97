//! Dates in lists: what a property manager types in a CSV file or a form
//! (`2026-12-31`, `2026-12-31 18:00`, RFC 3339) and how the gateway prints
//! them back, in the estate's UTC offset (China: +08:00).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The offset the gateway interprets local dates in.
pub const ESTATE_OFFSET: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// Parses a date or date-time into Unix milliseconds. A bare date means the
/// start of that day (`end_of_day = false`) or its last millisecond
/// (`end_of_day = true`, for "valid until 2026-12-31").
pub fn parse_ms(text: &str, end_of_day: bool) -> Result<i64, String> {
    let text = text.trim();
    let instant = if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        t
    } else if let Ok(t) = PrimitiveDateTime::parse(
        text,
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    ) {
        t.assume_offset(ESTATE_OFFSET)
    } else if let Ok(t) = PrimitiveDateTime::parse(
        text,
        format_description!("[year]-[month]-[day] [hour]:[minute]"),
    ) {
        t.assume_offset(ESTATE_OFFSET)
    } else if let Ok(t) = PrimitiveDateTime::parse(
        text,
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ) {
        t.assume_offset(ESTATE_OFFSET)
    } else if let Ok(d) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        let time = if end_of_day {
            Time::from_hms_milli(23, 59, 59, 999).map_err(|e| e.to_string())?
        } else {
            Time::MIDNIGHT
        };
        PrimitiveDateTime::new(d, time).assume_offset(ESTATE_OFFSET)
    } else {
        return Err(format!(
            "{text:?} is not a date (use 2026-12-31 or 2026-12-31 18:00)"
        ));
    };
    i64::try_from(instant.unix_timestamp_nanos() / 1_000_000).map_err(|e| e.to_string())
}

/// Parses an optional date: empty means "no limit".
pub fn parse_optional_ms(text: &str, end_of_day: bool) -> Result<Option<i64>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        parse_ms(text, end_of_day).map(Some)
    }
}

/// Formats a validity bound so that [`parse_ms`] reads it back exactly: a
/// bare date when it is the start (or, with `end_of_day`, the last
/// millisecond) of a day, otherwise date and time.
pub fn format_bound(ms: i64, end_of_day: bool) -> String {
    let day = format_ms(ms).chars().take(10).collect::<String>();
    if parse_ms(&day, end_of_day) == Ok(ms) {
        return day;
    }
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => t
            .to_offset(ESTATE_OFFSET)
            .format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .unwrap_or_else(|_| ms.to_string()),
        Err(_) => ms.to_string(),
    }
}

/// Formats Unix milliseconds as `YYYY-MM-DD HH:MM` in the estate's offset.
pub fn format_ms(ms: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    let t = t.to_offset(ESTATE_OFFSET);
    t.format(format_description!("[year]-[month]-[day] [hour]:[minute]"))
        .unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_in_the_estate_offset_and_round_trip() {
        let start = parse_ms("2026-12-31", false).expect("date");
        let end = parse_ms("2026-12-31", true).expect("date");
        assert_eq!(end - start, 86_399_999);
        assert_eq!(format_ms(start), "2026-12-31 00:00");
        let t = parse_ms("2026-12-31 18:30", false).expect("date-time");
        assert_eq!(format_ms(t), "2026-12-31 18:30");
        let utc = parse_ms("2026-12-31T10:30:00Z", false).expect("rfc3339");
        assert_eq!(utc, t, "18:30 at +08:00 is 10:30Z");
        assert!(parse_ms("31/12/2026", false).is_err());
        assert_eq!(format_bound(end, true), "2026-12-31");
        assert_eq!(format_bound(start, false), "2026-12-31");
        let odd = parse_ms("2026-12-31 18:30:15", false).expect("seconds");
        assert_eq!(parse_ms(&format_bound(odd, true), true), Ok(odd));
        assert_eq!(parse_optional_ms(" ", true), Ok(None));
    }
}
