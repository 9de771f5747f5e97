//! The vehicles currently inside the estate: kept in memory (a lane's
//! decision reads them with no IO), changed at once by an entry or an
//! exit, and stored by the [`Effect`] each change returns, committed with
//! the read's event; loaded from the database when the registry opens.

use std::collections::HashMap;
use std::sync::PoisonError;

use rusqlite::{Connection, params};

use super::PlateRegistry;
use crate::store::Effect;
use crate::vocab::records::ListError;

impl PlateRegistry {
    /// Records in memory now that a vehicle entered through `lane`, and
    /// returns the effect that stores it.
    pub fn enter(&self, plate: &str, lane: &str, at_ms: i64) -> Effect {
        self.inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(plate.to_owned(), (lane.to_owned(), at_ms));
        let (plate, lane) = (plate.to_owned(), lane.to_owned());
        Effect::new(format!("{plate} inside through {lane}"), move |conn| {
            conn.execute(
                "INSERT INTO vehicles_inside (plate, lane, entered_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plate) DO UPDATE SET lane = ?2, entered_ms = ?3",
                params![plate, lane, at_ms],
            )
            .map(drop)
        })
    }

    /// Records in memory now that a vehicle left; returns when it entered
    /// (if recorded) and the effect that stores it.
    pub fn exit(&self, plate: &str) -> (Option<i64>, Effect) {
        let entered = self
            .inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(plate)
            .map(|(_, t)| t);
        let plate = plate.to_owned();
        let effect = Effect::new(format!("{plate} gone"), move |conn| {
            conn.execute("DELETE FROM vehicles_inside WHERE plate = ?1", [&plate])
                .map(drop)
        });
        (entered, effect)
    }

    /// When a vehicle recorded inside entered (in memory; no IO).
    pub fn entered_at(&self, plate: &str) -> Option<i64> {
        self.inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(plate)
            .map(|(_, t)| *t)
    }

    /// Whether a vehicle is recorded inside (in memory; no IO).
    pub fn is_inside(&self, plate: &str) -> bool {
        self.inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(plate)
    }

    /// Vehicles currently inside: `(plate, lane, entered_ms)`, oldest first.
    pub fn inside(&self) -> Vec<(String, String, i64)> {
        let mut v: Vec<_> = self
            .inside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(p, (l, t))| (p.clone(), l.clone(), *t))
            .collect();
        v.sort_by_key(|(_, _, t)| *t);
        v
    }
}

/// The vehicles recorded inside, as the database holds them: plate →
/// (lane, entered at).
pub(super) fn load(conn: &Connection) -> Result<HashMap<String, (String, i64)>, ListError> {
    let mut stmt = conn.prepare("SELECT plate, lane, entered_ms FROM vehicles_inside")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))?;
    Ok(rows.collect::<Result<HashMap<_, _>, _>>()?)
}
