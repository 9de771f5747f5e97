//! `[privacy]`: how long personal information is kept on the box, per kind
//! of record (see [`crate::privacy`] for the daily purge), and which
//! personal fields the uplink sends (`uplink_*`). Every default is
//! conservative and has its reason beside it; an estate may shorten any
//! retention, and lengthen it only up to [`MAX_DAYS`].

use std::time::Duration;

use super::reader::Section;

const DAY: Duration = Duration::from_secs(86_400);

/// The longest retention any `[privacy]` key accepts (three years).
pub(crate) const MAX_DAYS: u64 = 3 * 365;

/// Snapshots (plate and face images): 30 days. They identify people most
/// directly, and an incident is reported and its pictures asked for within
/// a month; public-security practice keeps surveillance images that long.
pub(crate) const DEFAULT_SNAPSHOTS: Duration = Duration::from_secs(30 * 86_400);
/// Plate reads, door presentations and passages in the local journal: 90
/// days, a quarter's fee and parking disputes ("when did this car come").
pub(crate) const DEFAULT_ACCESS_RECORDS: Duration = Duration::from_secs(90 * 86_400);
/// Visitor passes, after their pass ended: 30 days, for a complaint about
/// a recent visit; the visit's reads follow `access_records`.
pub(crate) const DEFAULT_VISITORS: Duration = Duration::from_secs(30 * 86_400);
/// Intercom call logs (calls, answers, missed calls, station unlocks): 30
/// days; they show who called which flat and are rarely needed later.
pub(crate) const DEFAULT_CALL_LOGS: Duration = Duration::from_secs(30 * 86_400);
/// Audit records (who did what on the box, logins, list changes): a year,
/// the longest, since they are the property company's accountability.
pub(crate) const DEFAULT_AUDIT: Duration = Duration::from_secs(365 * 86_400);

/// How plates leave the box (`uplink_plates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlateDisclosure {
    /// Whole: the district platform's vehicle records need them (default).
    #[default]
    Full,
    /// Masked to the province, the first letter and the last character
    /// (`苏A8***2`).
    Masked,
}

/// What of residents' and visitors' personal fields the uplink sends (the
/// store keeps every event whole; see [`crate::uplink::policy`]). Snapshots
/// only ever leave as references (an image name the platform fetches with
/// its token), whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UplinkDisclosure {
    /// Card holders' and vehicle owners' names (`uplink_names`, default
    /// `false`: the platform identifies a person by card or plate).
    pub names: bool,
    /// House numbers, visitors' host units and the flat a call was for
    /// (`uplink_houses`, default `false`).
    pub houses: bool,
    /// Plates (`uplink_plates`, default `"full"`).
    pub plates: PlateDisclosure,
}

/// `[privacy]`: retention per kind of record, and what leaves the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyConfig {
    /// Snapshot images (plate and face) are deleted after this.
    pub snapshots: Duration,
    /// Access events in the journal (plate reads, door presentations,
    /// passages; not call logs) are deleted after this.
    pub access_records: Duration,
    /// Visitor passes are deleted this long after they ended.
    pub visitors: Duration,
    /// Intercom call logs in the journal are deleted after this.
    pub call_logs: Duration,
    /// Audit records in the journal are deleted after this.
    pub audit: Duration,
    /// What of personal fields the uplink sends.
    pub uplink: UplinkDisclosure,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            snapshots: DEFAULT_SNAPSHOTS,
            access_records: DEFAULT_ACCESS_RECORDS,
            visitors: DEFAULT_VISITORS,
            call_logs: DEFAULT_CALL_LOGS,
            audit: DEFAULT_AUDIT,
            uplink: UplinkDisclosure::default(),
        }
    }
}

/// Reads `[privacy]` (every key optional, whole days from 1 to
/// [`MAX_DAYS`]).
pub(crate) fn read_privacy(mut s: Section<'_, '_>) -> PrivacyConfig {
    let defaults = PrivacyConfig::default();
    let mut days = |key: &str, default: Duration| {
        let Some(value) = s.take_duration(key) else {
            return default;
        };
        let whole = value.as_secs() % DAY.as_secs() == 0;
        let n = value.as_secs() / DAY.as_secs();
        if !whole || n == 0 || n > MAX_DAYS {
            s.problem(
                key,
                format!("must be whole days from \"1d\" to \"{MAX_DAYS}d\""),
            );
            return default;
        }
        value
    };
    let config = PrivacyConfig {
        snapshots: days("snapshots", defaults.snapshots),
        access_records: days("access_records", defaults.access_records),
        visitors: days("visitors", defaults.visitors),
        call_logs: days("call_logs", defaults.call_logs),
        audit: days("audit", defaults.audit),
        uplink: UplinkDisclosure {
            names: s.take_bool("uplink_names").unwrap_or(false),
            houses: s.take_bool("uplink_houses").unwrap_or(false),
            plates: match s.take_choice("uplink_plates", &["full", "masked"]) {
                Some("masked") => PlateDisclosure::Masked,
                _ => PlateDisclosure::Full,
            },
        },
    };
    s.finish();
    config
}
