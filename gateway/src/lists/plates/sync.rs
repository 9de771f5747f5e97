//! A platform sync of one vehicle list applied to the database: a
//! snapshot (the list replaced) or a delta from the version held, every
//! row validated first, written in bounded chunks; and the lists' synced
//! versions. The wire side (rows as JSON, the [`crate::vocab::sync::ListTarget`]s)
//! is [`crate::lists::sync`].

use rusqlite::params;

use super::{NewVisitorPass, PlateRegistry, Row, canonical_plate, check_window, now_ms, write_row};
use crate::lists::sync::PLATFORM_CREATOR;
use crate::rules::vehicle::{Blacklisted, Resident};
use crate::store::{list_version, set_list_version};
use crate::vocab::records::ListError;

/// Rows of one list coming from the platform.
#[derive(Debug, Clone)]
pub enum SyncRows {
    /// Residents' vehicles.
    Residents(Vec<Resident>),
    /// Visitor passes (replacing the platform's own passes).
    Visitors(Vec<NewVisitorPass>),
    /// Blacklist entries.
    Blacklist(Vec<Blacklisted>),
}

impl PlateRegistry {
    /// Applies a platform sync of one list: a snapshot (`from = None`: the
    /// list is replaced) or a delta from version `from` (upserts, then
    /// `deletes` by plate), in bounded chunks. Every row is validated
    /// first; on any invalid row or a version gap nothing changes and the
    /// previous version stays in force.
    pub fn sync_apply(
        &self,
        list: &str,
        from: Option<u64>,
        to: u64,
        rows: SyncRows,
        deletes: &[String],
    ) -> Result<(), ListError> {
        let deletes = deletes
            .iter()
            .map(|p| canonical_plate(p))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = match rows {
            SyncRows::Residents(rows) => SyncRows::Residents(
                rows.into_iter()
                    .map(|mut r| {
                        r.plate = canonical_plate(&r.plate)?;
                        check_window(r.valid_from, r.valid_to)?;
                        if r.house.trim().is_empty() {
                            return Err(ListError::Invalid(format!(
                                "{}: house is required",
                                r.plate
                            )));
                        }
                        Ok(r)
                    })
                    .collect::<Result<_, ListError>>()?,
            ),
            SyncRows::Visitors(rows) => SyncRows::Visitors(
                rows.into_iter()
                    .map(|mut v| {
                        v.plate = canonical_plate(&v.plate)?;
                        check_window(Some(v.valid_from), Some(v.valid_to))?;
                        Ok(v)
                    })
                    .collect::<Result<_, ListError>>()?,
            ),
            SyncRows::Blacklist(rows) => SyncRows::Blacklist(
                rows.into_iter()
                    .map(|mut b| {
                        b.plate = canonical_plate(&b.plate)?;
                        Ok(b)
                    })
                    .collect::<Result<_, ListError>>()?,
            ),
        };
        if let Some(from) = from {
            let held = self.list_version(list)?;
            if held != from {
                return Err(ListError::Invalid(format!(
                    "version gap: holding {held}, the delta starts at {from}"
                )));
            }
        }
        // In bounded chunks, rows stamped with this sync's time: first the
        // new rows, then (for a snapshot) the rows not stamped, or (for a
        // delta) the deleted plates, then the version. Interrupted, the
        // table holds the old rows and some new ones at the old version (no
        // resident is refused), and the next sync starts again.
        let stamp = now_ms();
        let platform = PLATFORM_CREATOR;
        let chunks = &self.writer;
        let (rows, table): (Vec<Row>, _) = match rows {
            SyncRows::Residents(rows) => (
                rows.into_iter().map(Row::Resident).collect(),
                "resident_vehicles",
            ),
            SyncRows::Visitors(rows) => (
                rows.into_iter().map(Row::Visitor).collect(),
                "visitor_passes",
            ),
            SyncRows::Blacklist(rows) => (
                rows.into_iter().map(Row::Blacklisted).collect(),
                "blacklist",
            ),
        };
        let replaced: Vec<String> = match table {
            // A delta replaces each named plate's platform passes.
            "visitor_passes" => rows
                .iter()
                .filter_map(|r| match r {
                    Row::Visitor(v) => Some(v.plate.clone()),
                    _ => None,
                })
                .chain(deletes.iter().cloned())
                .collect(),
            _ => deletes.clone(),
        };
        chunks.write_in_chunks(rows, move |tx, row| write_row(tx, row, stamp), |_| {})?;
        if from.is_none() {
            chunks.delete_in_chunks(
                match table {
                    "resident_vehicles" => {
                        "DELETE FROM resident_vehicles WHERE rowid IN (SELECT rowid FROM
                             resident_vehicles WHERE updated_ms <> ?1 LIMIT 256)"
                    }
                    "visitor_passes" => {
                        "DELETE FROM visitor_passes WHERE rowid IN (SELECT rowid FROM
                             visitor_passes WHERE created_by = 'platform' AND created_ms <> ?1
                             LIMIT 256)"
                    }
                    _ => {
                        "DELETE FROM blacklist WHERE rowid IN (SELECT rowid FROM blacklist
                             WHERE updated_ms <> ?1 LIMIT 256)"
                    }
                },
                stamp,
            )?;
        } else {
            chunks.write_in_chunks(
                replaced,
                move |tx, plate| {
                    match table {
                        "visitor_passes" => tx.execute(
                            "DELETE FROM visitor_passes
                             WHERE plate = ?1 AND created_by = ?2 AND created_ms <> ?3",
                            params![plate, platform, stamp],
                        ),
                        "resident_vehicles" => {
                            tx.execute("DELETE FROM resident_vehicles WHERE plate = ?1", [plate])
                        }
                        _ => tx.execute("DELETE FROM blacklist WHERE plate = ?1", [plate]),
                    }
                    .map(drop)
                    .map_err(ListError::from)
                },
                |_| {},
            )?;
        }
        let (list, to) = (list.to_owned(), i64::try_from(to).unwrap_or(i64::MAX));
        self.write(move |tx| set_list_version(tx, &list, to))?;
        Ok(())
    }

    /// The version of a synced list (0 when never synced).
    pub fn list_version(&self, list: &str) -> Result<u64, ListError> {
        Ok(list_version(&self.lock(), list)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::registry;
    use super::*;

    #[tokio::test]
    async fn sync_snapshot_and_delta_apply_atomically_and_keep_guards_passes() {
        let (_dir, _store, registry) = registry();
        let guard_pass = registry
            .add_visitor(&NewVisitorPass {
                plate: "浙B66666".into(),
                host_unit: "1-1".into(),
                valid_from: 0,
                valid_to: 10,
                single_use: false,
                created_by: "guard-li".into(),
            })
            .expect("guard's pass");
        let resident = |plate: &str| Resident {
            plate: plate.into(),
            house: "1-1-101".into(),
            owner: "x".into(),
            valid_from: None,
            valid_to: None,
            lanes: vec![],
        };
        registry
            .sync_apply(
                "residents",
                None,
                3,
                SyncRows::Residents(vec![resident("苏A8HK52"), resident("苏E12345")]),
                &[],
            )
            .expect("snapshot");
        assert_eq!(registry.list_version("residents").expect("v"), 3);
        registry
            .sync_apply(
                "residents",
                Some(3),
                4,
                SyncRows::Residents(vec![resident("沪B77777")]),
                &["苏E12345".into()],
            )
            .expect("delta");
        let lists = registry.snapshot();
        let plates: Vec<&str> = lists.residents.iter().map(|r| r.plate).collect();
        assert_eq!(plates, vec!["沪B77777", "苏A8HK52"]);
        // A gap and a bad row are both refused whole.
        assert!(
            registry
                .sync_apply(
                    "residents",
                    Some(7),
                    8,
                    SyncRows::Residents(vec![resident("京A11111")]),
                    &[]
                )
                .is_err()
        );
        let mut bad = resident("京A22222");
        bad.house = String::new();
        assert!(
            registry
                .sync_apply(
                    "residents",
                    None,
                    9,
                    SyncRows::Residents(vec![resident("京A33333"), bad]),
                    &[]
                )
                .is_err()
        );
        assert_eq!(registry.list_version("residents").expect("v"), 4);
        assert!(!registry.snapshot().residents.contains("京A33333"));
        // A visitors snapshot replaces only the platform's passes.
        registry
            .sync_apply(
                "visitors",
                None,
                1,
                SyncRows::Visitors(vec![NewVisitorPass {
                    plate: "粤B12345".into(),
                    host_unit: "2-2".into(),
                    valid_from: 0,
                    valid_to: 10,
                    single_use: true,
                    created_by: PLATFORM_CREATOR.into(),
                }]),
                &[],
            )
            .expect("visitors");
        let ids: Vec<i64> = registry
            .visitor_passes()
            .expect("passes")
            .iter()
            .map(|p| p.id)
            .collect();
        assert!(ids.contains(&guard_pass), "the guard's own pass stays");
        assert_eq!(ids.len(), 2);
    }
}
