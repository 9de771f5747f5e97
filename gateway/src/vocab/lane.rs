//! A vehicle lane's direction and exit policy, as configured and as the
//! lane rules read them.

use serde::Serialize;

/// Entry or exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Vehicles enter the estate here.
    Entry,
    /// Vehicles leave here.
    Exit,
}

/// Who may leave through an exit lane without the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitPolicy {
    /// Everyone.
    OpenAll,
    /// Vehicles recorded entering, or on a list.
    RecordedOrListed,
}
