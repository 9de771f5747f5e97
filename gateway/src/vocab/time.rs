//! The estate's time model. Instants are Unix milliseconds (UTC) everywhere
//! inside Gatehouse: in events, in the database, on the wire. People and
//! rules see them in the estate's time zone, [`EstateZone`]
//! (`[gateway] time_zone`, an IANA name, default `Asia/Shanghai`): the dates
//! a property manager types in a CSV file or a form (`2026-12-31`,
//! `2026-12-31 18:00`, RFC 3339) and how the gateway prints them back, the
//! weekday and minute door schedules run on, the panel's clock, CSV file
//! names and image folders. Never the box's own zone: a box set to UTC shows
//! and decides in the estate's time all the same.
//!
//! The running gateway's zone is set once from its configuration
//! ([`set_estate_zone`]) and read through [`estate_zone`]; the free functions
//! here use it. [`EstateZone`]'s methods take no hidden input.

use std::sync::{PoisonError, RwLock};

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// The zone an estate runs on unless `[gateway] time_zone` says otherwise.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// An estate's time zone (an IANA zone, daylight saving included).
#[derive(Debug, Clone)]
pub struct EstateZone {
    name: String,
    zone: TimeZone,
}

impl Default for EstateZone {
    /// `Asia/Shanghai` (the zone database is compiled in, so it resolves on
    /// any box).
    fn default() -> Self {
        Self::named(DEFAULT_TIME_ZONE).unwrap_or_else(|_| Self {
            name: DEFAULT_TIME_ZONE.to_owned(),
            zone: TimeZone::fixed(jiff::tz::offset(8)),
        })
    }
}

impl PartialEq for EstateZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl EstateZone {
    /// The zone called `name` (`Asia/Shanghai`, `Asia/Urumqi`, `UTC` …).
    pub fn named(name: &str) -> Result<Self, String> {
        TimeZone::get(name)
            .map(|zone| Self {
                name: name.to_owned(),
                zone,
            })
            .map_err(|_| format!("{name:?} is not a known IANA time zone (e.g. Asia/Shanghai)"))
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn zoned(&self, ms: i64) -> Option<Zoned> {
        Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| t.to_zoned(self.zone.clone()))
    }

    fn instant(&self, local: DateTime) -> Result<i64, String> {
        local
            .to_zoned(self.zone.clone())
            .map(|z| z.timestamp().as_millisecond())
            .map_err(|e| e.to_string())
    }

    /// Parses a date or date-time into Unix milliseconds. A bare date means
    /// the start of that day (`end_of_day = false`) or its last millisecond
    /// (`end_of_day = true`, for "valid until 2026-12-31"). RFC 3339 carries
    /// its own offset; everything else is local time in this zone.
    pub fn parse_ms(&self, text: &str, end_of_day: bool) -> Result<i64, String> {
        let text = text.trim();
        if let Ok(t) = text.parse::<Timestamp>() {
            return Ok(t.as_millisecond());
        }
        for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
            if let Ok(local) = DateTime::strptime(format, text) {
                return self.instant(local);
            }
        }
        if let Ok(date) = Date::strptime("%Y-%m-%d", text) {
            let time = if end_of_day {
                Time::constant(23, 59, 59, 999_000_000)
            } else {
                Time::midnight()
            };
            return self.instant(date.to_datetime(time));
        }
        Err(format!(
            "{text:?} is not a date (use 2026-12-31 or 2026-12-31 18:00)"
        ))
    }

    /// Parses an optional date: empty means "no limit".
    pub fn parse_optional_ms(&self, text: &str, end_of_day: bool) -> Result<Option<i64>, String> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            self.parse_ms(text, end_of_day).map(Some)
        }
    }

    /// Formats Unix milliseconds with a strftime `format` in this zone (the
    /// number itself when it is out of range).
    pub fn format(&self, ms: i64, format: &str) -> String {
        match self.zoned(ms) {
            Some(t) => t.strftime(format).to_string(),
            None => ms.to_string(),
        }
    }

    /// `YYYY-MM-DD HH:MM`.
    pub fn format_ms(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%d %H:%M")
    }

    /// Formats a validity bound so that [`EstateZone::parse_ms`] reads it
    /// back exactly: a bare date when it is the start (or, with
    /// `end_of_day`, the last millisecond) of a day, otherwise date and time.
    pub fn format_bound(&self, ms: i64, end_of_day: bool) -> String {
        let day = self.format(ms, "%Y-%m-%d");
        if self.parse_ms(&day, end_of_day) == Ok(ms) {
            return day;
        }
        self.format(ms, "%Y-%m-%d %H:%M:%S")
    }

    /// The start of the local day `YYYY-MM-DD` (Unix ms).
    pub fn day_start_ms(&self, date: &str) -> Option<i64> {
        let date = Date::strptime("%Y-%m-%d", date.trim()).ok()?;
        self.instant(date.to_datetime(Time::midnight())).ok()
    }

    /// Local weekday (0 = Monday) and minute of the day.
    pub fn weekday_minute(&self, ms: i64) -> (usize, u16) {
        let Some(t) = self.zoned(ms) else {
            return (0, 0);
        };
        let weekday = usize::try_from(t.weekday().to_monday_zero_offset()).unwrap_or(0);
        let minute = u16::try_from(i32::from(t.hour()) * 60 + i32::from(t.minute())).unwrap_or(0);
        (weekday, minute)
    }
}

static ESTATE_ZONE: RwLock<Option<EstateZone>> = RwLock::new(None);

/// Sets the running gateway's zone (at start, from `[gateway] time_zone`).
pub fn set_estate_zone(zone: EstateZone) {
    *ESTATE_ZONE.write().unwrap_or_else(PoisonError::into_inner) = Some(zone);
}

/// The running gateway's zone ([`EstateZone::default`] until one is set).
pub fn estate_zone() -> EstateZone {
    ESTATE_ZONE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_default()
}

/// [`EstateZone::parse_ms`] in the estate's zone.
pub fn parse_ms(text: &str, end_of_day: bool) -> Result<i64, String> {
    estate_zone().parse_ms(text, end_of_day)
}

/// [`EstateZone::parse_optional_ms`] in the estate's zone.
pub fn parse_optional_ms(text: &str, end_of_day: bool) -> Result<Option<i64>, String> {
    estate_zone().parse_optional_ms(text, end_of_day)
}

/// [`EstateZone::format_bound`] in the estate's zone.
pub fn format_bound(ms: i64, end_of_day: bool) -> String {
    estate_zone().format_bound(ms, end_of_day)
}

/// [`EstateZone::format_ms`] in the estate's zone.
pub fn format_ms(ms: i64) -> String {
    estate_zone().format_ms(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_in_the_estate_zone_and_round_trip() {
        let zone = EstateZone::default();
        assert_eq!(zone.name(), "Asia/Shanghai");
        let start = zone.parse_ms("2026-12-31", false).expect("date");
        let end = zone.parse_ms("2026-12-31", true).expect("date");
        assert_eq!(end - start, 86_399_999);
        assert_eq!(zone.format_ms(start), "2026-12-31 00:00");
        let t = zone.parse_ms("2026-12-31 18:30", false).expect("date-time");
        assert_eq!(zone.format_ms(t), "2026-12-31 18:30");
        assert_eq!(zone.parse_ms("2026-12-31T18:30", false), Ok(t));
        let utc = zone
            .parse_ms("2026-12-31T10:30:00Z", false)
            .expect("rfc3339");
        assert_eq!(utc, t, "18:30 in Shanghai is 10:30Z");
        assert!(zone.parse_ms("31/12/2026", false).is_err());
        assert_eq!(zone.format_bound(end, true), "2026-12-31");
        assert_eq!(zone.format_bound(start, false), "2026-12-31");
        let odd = zone
            .parse_ms("2026-12-31 18:30:15", false)
            .expect("seconds");
        assert_eq!(zone.parse_ms(&zone.format_bound(odd, true), true), Ok(odd));
        assert_eq!(zone.parse_optional_ms(" ", true), Ok(None));
        assert_eq!(zone.day_start_ms("2026-12-31"), Some(start));
    }

    #[test]
    fn another_zone_moves_local_times_and_keeps_instants() {
        let shanghai = EstateZone::default();
        let utc = EstateZone::named("UTC").expect("utc");
        let urumqi = EstateZone::named("Asia/Urumqi").expect("urumqi");
        let instant = shanghai.parse_ms("2026-03-02 07:30", false).expect("date");
        assert_eq!(utc.format_ms(instant), "2026-03-01 23:30");
        assert_eq!(urumqi.format_ms(instant), "2026-03-02 05:30");
        assert_eq!(shanghai.weekday_minute(instant), (0, 7 * 60 + 30), "Monday");
        assert_eq!(utc.weekday_minute(instant), (6, 23 * 60 + 30), "Sunday");
        assert_eq!(
            utc.parse_ms("2026-03-01 23:30", false),
            Ok(instant),
            "local time is read in the zone it is written in"
        );
    }

    #[test]
    fn daylight_saving_zones_keep_their_rules() {
        let berlin = EstateZone::named("Europe/Berlin").expect("berlin");
        let winter = berlin.parse_ms("2026-01-15 12:00", false).expect("winter");
        let summer = berlin.parse_ms("2026-07-15 12:00", false).expect("summer");
        assert_eq!(berlin.format(winter, "%:z"), "+01:00");
        assert_eq!(berlin.format(summer, "%:z"), "+02:00");
    }

    #[test]
    fn unknown_zone_names_are_refused_with_the_name() {
        let error = EstateZone::named("Asia/Beijing").expect_err("not an IANA zone");
        assert!(error.contains("Asia/Beijing"), "{error}");
    }
}
