//! The lanes board: what the guard sees of each lane (arm position, loop,
//! the last vehicle, the last fault) and the reads waiting for a guard's
//! decision. Shared between the lane coordinator (which writes it from
//! events) and the panel and platform (which read it and take pending reads).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use drivers::ArmState;
use serde::Serialize;

use crate::config::LaneConfig;
use crate::config::diff::Changes;
use crate::rules::vehicle::{Reason, Verdict};
use crate::vocab::lane::Direction;

/// Pending reads older than this expire (the car has gone): a timer takes
/// them off the board, and a guard's decision on one is refused.
pub const PENDING_TTL_MS: i64 = 10 * 60 * 1000;

/// Why a pending read cannot be taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Untaken {
    /// No such read (already decided, replaced or removed).
    NotFound,
    /// It waited longer than [`PENDING_TTL_MS`]; it is removed now.
    Expired(Box<PendingRead>),
}

/// The last vehicle a lane saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastVehicle {
    /// Canonical plate ("" for no plate).
    pub plate: String,
    /// When (Unix ms).
    pub time_ms: i64,
    /// The decision.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// Snapshot files.
    pub images: Vec<String>,
}

/// One lane as the guard sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaneView {
    /// Lane id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Entry or exit.
    pub direction: Direction,
    /// The barrier device, or `None` for a camera relay.
    pub barrier: Option<String>,
    /// Arm position, once reported.
    pub arm: Option<ArmState>,
    /// Loop occupied, once reported.
    pub loop_occupied: Option<bool>,
    /// The last vehicle.
    pub last: Option<LastVehicle>,
    /// The last barrier fault, until the arm moves normally again.
    pub fault: Option<String>,
}

impl LaneView {
    /// A lane as configured, before its barrier reports.
    fn new(lane: &LaneConfig) -> Self {
        Self {
            id: lane.id.clone(),
            name: lane.name.clone(),
            direction: lane.direction,
            barrier: lane.barrier.clone(),
            arm: None,
            loop_occupied: None,
            last: None,
            fault: None,
        }
    }
}

/// A read waiting for a guard: the car is at the barrier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingRead {
    /// Pending id (used by the Allow / Deny buttons).
    pub id: String,
    /// Lane id.
    pub lane: String,
    /// Camera device id.
    pub camera: String,
    /// The plate as normalised ("" for no plate).
    pub plate: String,
    /// The listed plate it resembles, for a fuzzy match.
    pub candidate: Option<String>,
    /// Why the guard is asked.
    pub reason: Reason,
    /// Snapshot files.
    pub images: Vec<String>,
    /// When (Unix ms).
    pub time_ms: i64,
}

#[derive(Debug, Default)]
struct Board {
    lanes: BTreeMap<String, LaneView>,
    pending: Vec<PendingRead>,
}

/// The shared board (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct LaneBoard(Arc<Mutex<Board>>);

impl LaneBoard {
    /// A board for the configured lanes.
    pub fn new(lanes: &[LaneConfig]) -> Self {
        let board = Board {
            lanes: lanes
                .iter()
                .map(|l| (l.id.clone(), LaneView::new(l)))
                .collect(),
            pending: Vec::new(),
        };
        Self(Arc::new(Mutex::new(board)))
    }

    /// After a reload: removed lanes leave the board (with their waiting
    /// reads), added ones join it, changed ones show their new settings and
    /// start again from what their barrier reports next; the others stay
    /// as they are.
    pub fn reconfigure(&self, lanes: &[LaneConfig], changes: &Changes) {
        self.with(|b| {
            for id in &changes.removed {
                b.lanes.remove(id);
                b.pending.retain(|p| &p.lane != id);
            }
            for lane in lanes {
                if changes.added.contains(&lane.id) || changes.changed.contains(&lane.id) {
                    let last = b.lanes.remove(&lane.id).and_then(|v| v.last);
                    let view = LaneView {
                        last,
                        ..LaneView::new(lane)
                    };
                    b.lanes.insert(lane.id.clone(), view);
                }
            }
        });
    }

    fn with<T>(&self, f: impl FnOnce(&mut Board) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every lane, ordered by id.
    pub fn lanes(&self) -> Vec<LaneView> {
        self.with(|b| b.lanes.values().cloned().collect())
    }

    /// One lane.
    pub fn lane(&self, id: &str) -> Option<LaneView> {
        self.with(|b| b.lanes.get(id).cloned())
    }

    /// Reads waiting for a guard, oldest first.
    pub fn pending(&self) -> Vec<PendingRead> {
        self.with(|b| b.pending.clone())
    }

    /// Removes and returns a pending read a guard decided at `now_ms`; an
    /// expired one is removed and refused.
    pub fn take_pending(&self, id: &str, now_ms: i64) -> Result<PendingRead, Untaken> {
        self.with(|b| {
            let index = b
                .pending
                .iter()
                .position(|p| p.id == id)
                .ok_or(Untaken::NotFound)?;
            let read = b.pending.remove(index);
            if read.time_ms + PENDING_TTL_MS <= now_ms {
                return Err(Untaken::Expired(Box::new(read)));
            }
            Ok(read)
        })
    }

    /// Removes and returns the reads that expired by `now_ms`.
    pub fn expire(&self, now_ms: i64) -> Vec<PendingRead> {
        self.with(|b| {
            let (expired, kept) = std::mem::take(&mut b.pending)
                .into_iter()
                .partition(|p| p.time_ms + PENDING_TTL_MS <= now_ms);
            b.pending = kept;
            expired
        })
    }

    /// Removes the pending read of `plate` at `lane` (a better read of the
    /// same car was decided); returns it.
    pub(crate) fn drop_pending(&self, lane: &str, plate: &str) -> Option<PendingRead> {
        self.with(|b| {
            let index = b
                .pending
                .iter()
                .position(|p| p.lane == lane && p.plate == plate)?;
            Some(b.pending.remove(index))
        })
    }

    pub(crate) fn add_pending(&self, read: PendingRead) {
        self.with(|b| {
            let horizon = read.time_ms - PENDING_TTL_MS;
            b.pending.retain(|p| {
                let expired = p.time_ms < horizon;
                let same_car = p.lane == read.lane && p.plate == read.plate;
                !expired && !same_car
            });
            b.pending.push(read);
        });
    }

    pub(crate) fn update(&self, lane: &str, f: impl FnOnce(&mut LaneView)) {
        self.with(|b| {
            if let Some(view) = b.lanes.get_mut(lane) {
                f(view);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, lane: &str, plate: &str, t: i64) -> PendingRead {
        PendingRead {
            id: id.into(),
            lane: lane.into(),
            camera: "cam".into(),
            plate: plate.into(),
            candidate: None,
            reason: Reason::UnknownPlate,
            images: vec![],
            time_ms: t,
        }
    }

    #[test]
    fn pending_reads_expire_and_a_new_read_of_the_same_car_replaces_the_old() {
        let board = LaneBoard::default();
        board.add_pending(pending("a", "in", "京A11111", 0));
        board.add_pending(pending("b", "in", "京A22222", 1));
        board.add_pending(pending("c", "in", "京A11111", 2));
        let ids: Vec<_> = board.pending().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, vec!["b", "c"]);
        board.add_pending(pending("d", "out", "京A33333", PENDING_TTL_MS + 2));
        let ids: Vec<_> = board.pending().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, vec!["c", "d"], "b expired");
        assert_eq!(
            board.take_pending("c", 3).map(|p| p.plate),
            Ok("京A11111".into())
        );
        assert_eq!(board.take_pending("c", 3), Err(Untaken::NotFound));
    }

    #[test]
    fn pending_reads_expire_on_the_timer_and_cannot_be_decided_late() {
        let board = LaneBoard::default();
        board.add_pending(pending("a", "in", "京A11111", 0));
        board.add_pending(pending("b", "in", "京A22222", 1_000));
        assert!(board.expire(PENDING_TTL_MS - 1).is_empty());
        let expired: Vec<_> = board
            .expire(PENDING_TTL_MS)
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(expired, vec!["a"]);
        assert_eq!(board.pending().len(), 1, "the timer took it off the board");
        assert!(matches!(
            board.take_pending("b", 1_000 + PENDING_TTL_MS),
            Err(Untaken::Expired(read)) if read.id == "b"
        ));
        assert!(board.pending().is_empty());
    }

    fn lane(id: &str, name: &str) -> LaneConfig {
        LaneConfig {
            id: id.into(),
            name: name.into(),
            direction: Direction::Entry,
            barrier: None,
            min_confidence: 80,
            exit_policy: crate::vocab::lane::ExitPolicy::OpenAll,
            repeat_window: std::time::Duration::from_secs(10),
        }
    }

    #[test]
    fn a_reload_adds_removes_and_renames_lanes_and_leaves_the_others() {
        let board = LaneBoard::new(&[lane("a", "南门"), lane("b", "北门"), lane("k", "东门")]);
        board.add_pending(pending("p1", "b", "京A11111", 0));
        board.add_pending(pending("p2", "k", "京A22222", 0));
        let changes = Changes {
            added: vec!["c".into()],
            removed: vec!["b".into()],
            changed: vec!["a".into()],
        };
        board.reconfigure(
            &[lane("a", "南门入口"), lane("k", "东门"), lane("c", "西门")],
            &changes,
        );
        let names: Vec<_> = board.lanes().into_iter().map(|l| (l.id, l.name)).collect();
        assert_eq!(
            names,
            [
                ("a".into(), "南门入口".into()),
                ("c".into(), "西门".into()),
                ("k".into(), "东门".into())
            ]
        );
        let waiting: Vec<_> = board.pending().into_iter().map(|p| p.id).collect();
        assert_eq!(waiting, ["p2"], "the removed lane's read left with it");
    }
}
