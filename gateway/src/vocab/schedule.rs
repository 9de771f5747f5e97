//! Weekly schedules: when a door group's doors may be used, as windows of
//! weekdays and minutes in the estate's local time. Pure.

use serde::Serialize;

use super::time::EstateZone;

/// A weekly time window in the estate's local time. `end_min <= start_min`
/// means the window runs past midnight into the next day (which belongs to
/// the day it started on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Days it starts on, Monday first.
    pub days: [bool; 7],
    /// Start, minutes after midnight (0–1439).
    pub start_min: u16,
    /// End, minutes after midnight (1–1440), exclusive.
    pub end_min: u16,
}

impl Window {
    /// Whether local `weekday` (0 = Monday) at `minute` falls inside.
    pub fn contains(&self, weekday: usize, minute: u16) -> bool {
        let day = |d: usize| self.days[d % 7];
        if self.start_min < self.end_min {
            day(weekday) && (self.start_min..self.end_min).contains(&minute)
        } else {
            (day(weekday) && minute >= self.start_min)
                || (day(weekday + 6) && minute < self.end_min)
        }
    }
}

/// When a door group's doors may be used; no windows = always.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The windows; any one is enough.
    pub windows: Vec<Window>,
}

impl Schedule {
    /// Whether `now_ms` falls inside the schedule, read in `zone`.
    pub fn allows(&self, zone: &EstateZone, now_ms: i64) -> bool {
        if self.windows.is_empty() {
            return true;
        }
        let (weekday, minute) = zone.weekday_minute(now_ms);
        self.windows.iter().any(|w| w.contains(weekday, minute))
    }
}
