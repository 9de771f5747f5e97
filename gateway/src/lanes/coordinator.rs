//! The vehicle-lane coordinator: turns a camera's plate read into a
//! decision (allow / deny / ask the guard, with the reason), the barrier
//! command, the vehicle entered/exited records, and the lanes board; and
//! follows each lane's barrier events for the board.
//!
//! Runs inside the pipeline; decisions read the in-memory list snapshot.
//! State changes (a visitor pass used, a vehicle inside or gone) are made in
//! memory at once and returned as effects, which the store writer commits
//! in the same transaction as the event recording them: never out of order,
//! never on the barrier's path.
//!
//! A read decided allow at a Modbus barrier is only a passage once the
//! module confirmed the OPEN: then a single-use pass is used up and the
//! entry or exit recorded. An OPEN that failed consumes nothing: it raises
//! an `open_failed` alarm, puts the read on the guard's pending list, and
//! forgets it in the repeat filter, so the next read of the car (after the
//! module is back) is decided and opens.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use drivers::contract::OpenVia;
use drivers::{ArmState, Command, CommandOutcome, DeviceEvent};
use uuid::Uuid;

use super::board::{LaneBoard, LastVehicle, PendingRead};
use crate::config::diff::ConfigDiff;
use crate::config::{Config, DeviceKind, LaneConfig};
use crate::events::{
    Annotation, BlacklistedVehicle, Exited, GatewayEvent, LaneNote, LaneReason, LaneVerdict,
    OpenFailed, Passage, ReadDecision, Undecided,
};
use crate::lists::plates::PlateRegistry;
use crate::pipeline::{Coordinator, Decided, Record};
use crate::rules::plate::{PlateText, normalise};
use crate::rules::vehicle::{Deduper, LanePolicy, ReadFacts, Reason, Verdict, decide};
use crate::store::Effect;
use crate::vocab::lane::Direction;

/// Remembered camera read ids (for resend detection).
const READ_ID_MEMORY: usize = 4096;

/// The lanes, their cameras and barriers.
#[derive(Debug)]
pub struct LaneCoordinator {
    lanes: HashMap<String, (LaneConfig, LanePolicy)>,
    camera_lane: HashMap<String, String>,
    barrier_lane: HashMap<String, String>,
    registry: Arc<PlateRegistry>,
    board: LaneBoard,
    deduper: Deduper,
    /// The repeat window the deduper was built with (the lanes' longest).
    window_ms: i64,
    /// Allowed reads waiting for their barrier's answer to the OPEN, by
    /// barrier device, oldest first.
    awaiting: HashMap<String, VecDeque<Awaiting>>,
}

/// The lanes' settings and the devices that belong to them, as the
/// configuration says.
struct LaneMaps {
    lanes: HashMap<String, (LaneConfig, LanePolicy)>,
    camera_lane: HashMap<String, String>,
    barrier_lane: HashMap<String, String>,
    window_ms: i64,
}

impl LaneMaps {
    fn from(config: &Config) -> Self {
        let lanes = config
            .lanes
            .iter()
            .map(|l| {
                let policy = LanePolicy {
                    lane: l.id.clone(),
                    direction: l.direction,
                    min_confidence: l.min_confidence,
                    exit_policy: l.exit_policy,
                };
                (l.id.clone(), (l.clone(), policy))
            })
            .collect();
        let camera_lane = config
            .devices
            .iter()
            .filter_map(|d| match &d.kind {
                DeviceKind::LprCamera { lane, .. } => Some((d.id.clone(), lane.clone())),
                _ => None,
            })
            .collect();
        let barrier_lane = config
            .lanes
            .iter()
            .filter_map(|l| Some((l.barrier.clone()?, l.id.clone())))
            .collect();
        let window = config
            .lanes
            .iter()
            .map(|l| l.repeat_window)
            .max()
            .unwrap_or_default();
        Self {
            lanes,
            camera_lane,
            barrier_lane,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// An allowed read whose OPEN is on its way to the barrier.
#[derive(Debug)]
struct Awaiting {
    lane: String,
    direction: Direction,
    camera: String,
    plate: String,
    pass: Option<i64>,
    images: Vec<String>,
    time_ms: i64,
}

impl LaneCoordinator {
    /// Builds the coordinator from the configuration.
    pub fn new(config: &Config, registry: Arc<PlateRegistry>, board: LaneBoard) -> Self {
        let maps = LaneMaps::from(config);
        Self {
            deduper: Deduper::new(maps.window_ms, READ_ID_MEMORY),
            window_ms: maps.window_ms,
            lanes: maps.lanes,
            camera_lane: maps.camera_lane,
            barrier_lane: maps.barrier_lane,
            registry,
            board,
            awaiting: HashMap::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_plate(
        &mut self,
        camera: &str,
        raw: &str,
        confidence: Option<u8>,
        read_id: Option<&str>,
        resend: bool,
        images: &[String],
        now: i64,
    ) -> Option<Decided> {
        let lane_id = self.camera_lane.get(camera)?.clone();
        let (lane, policy) = self.lanes.get(&lane_id)?;
        let undecided = |plate_normalised: Option<&str>, decision, why| {
            Some(Decided {
                annotate: Some(lane_note(
                    &lane.id,
                    ReadDecision {
                        direction: lane.direction,
                        plate_normalised: plate_normalised.map(str::to_owned),
                        decision,
                        reason: LaneReason::Undecided(why),
                        open_via: None,
                        pending_id: None,
                        candidate: None,
                    },
                )),
                ..Decided::default()
            })
        };
        let plate = match normalise(raw) {
            Ok(plate) => plate,
            Err(error) => {
                let detail = error.to_string();
                return undecided(None, LaneVerdict::Ignored, Undecided::Unreadable { detail });
            }
        };
        let text = match &plate {
            PlateText::Plate { text, .. } => text.clone(),
            PlateText::NoPlate => String::new(),
        };
        if resend {
            // A stored read the camera re-sends after an outage: the car has
            // long gone; record it, do not open.
            return undecided(Some(&text), LaneVerdict::Ignored, Undecided::Resend);
        }
        if !self
            .deduper
            .admit(camera, &lane.id, &text, read_id, confidence, now)
        {
            return undecided(Some(&text), LaneVerdict::Repeat, Undecided::Repeat);
        }
        let lists = self.registry.snapshot();
        let inside = !text.is_empty() && self.registry.is_inside(&text);
        let decision = decide(
            &lists,
            policy,
            &ReadFacts {
                plate: &plate,
                confidence,
                now_ms: now,
                inside,
            },
        );
        let mut read = ReadDecision {
            direction: lane.direction,
            plate_normalised: Some(text.clone()),
            decision: decision.verdict.into(),
            reason: LaneReason::Rules(decision.reason.clone()),
            open_via: None,
            pending_id: None,
            candidate: None,
        };
        let unsure = matches!(decision.reason, Reason::LowConfidence { .. });
        self.deduper.settle(&lane.id, &text, !unsure);
        let mut decided = Decided::default();
        if !unsure && !text.is_empty() {
            // A better read of a car already waiting for the guard decides it.
            self.board.drop_pending(&lane.id, &text);
        }
        if let Reason::Blacklisted { reason } = &decision.reason {
            decided.records.push(Record {
                device_id: camera.to_owned(),
                event: GatewayEvent::BlacklistedVehicle(BlacklistedVehicle {
                    plate: text.clone(),
                    lane: lane.id.clone(),
                    direction: lane.direction,
                    listed_reason: reason.clone(),
                    decision: decision.verdict,
                }),
            });
        }
        match decision.verdict {
            Verdict::Allow => match &lane.barrier {
                Some(barrier) => {
                    decided
                        .commands
                        .push((barrier.clone(), Command::OpenBarrier));
                    read.open_via = Some(OpenVia::Barrier);
                    // Passed only once the module confirms the OPEN.
                    self.awaiting
                        .entry(barrier.clone())
                        .or_default()
                        .push_back(Awaiting {
                            lane: lane.id.clone(),
                            direction: lane.direction,
                            camera: camera.to_owned(),
                            plate: text.clone(),
                            pass: decision.consumes_pass,
                            images: images.to_vec(),
                            time_ms: now,
                        });
                }
                None => {
                    read.open_via = Some(OpenVia::Camera);
                    if let Some(pass) = decision.consumes_pass {
                        decided.effects.push(self.registry.use_pass(&text, pass));
                    }
                    if !text.is_empty() {
                        let (record, effect) = self.passage(&lane.id, lane.direction, &text, now);
                        decided.records.push(record);
                        decided.effects.push(effect);
                    }
                }
            },
            Verdict::AskGuard => {
                let id = Uuid::now_v7().to_string();
                let candidate = match &decision.reason {
                    Reason::FuzzyMatch { candidate } => Some(candidate.clone()),
                    _ => None,
                };
                read.pending_id = Some(id.clone());
                read.candidate.clone_from(&candidate);
                self.board.add_pending(PendingRead {
                    id,
                    lane: lane.id.clone(),
                    camera: camera.to_owned(),
                    plate: text.clone(),
                    candidate,
                    reason: decision.reason.clone(),
                    images: images.to_vec(),
                    time_ms: now,
                });
            }
            Verdict::Deny => {}
        }
        let last = LastVehicle {
            plate: text,
            time_ms: now,
            verdict: decision.verdict,
            reason: decision.reason,
            images: images.to_vec(),
        };
        self.board.update(&lane.id, |view| view.last = Some(last));
        decided.annotate = Some(lane_note(&lane.id, read));
        Some(decided)
    }

    /// The barrier answered an OPEN: the oldest read waiting for it passed,
    /// or goes to the guard.
    fn opened(&mut self, barrier: &str, outcome: &CommandOutcome, now: i64) -> Option<Decided> {
        let waiting = self.awaiting.get_mut(barrier)?;
        let read = waiting.pop_front()?;
        if waiting.is_empty() {
            self.awaiting.remove(barrier);
        }
        let mut decided = Decided::default();
        if *outcome == CommandOutcome::Done {
            if let Some(pass) = read.pass {
                decided
                    .effects
                    .push(self.registry.use_pass(&read.plate, pass));
            }
            if !read.plate.is_empty() {
                let (record, effect) =
                    self.passage(&read.lane, read.direction, &read.plate, read.time_ms);
                decided.records.push(record);
                decided.effects.push(effect);
            }
            return Some(decided);
        }
        let detail = match outcome {
            CommandOutcome::Failed(why) | CommandOutcome::Refused(why) => why.clone(),
            other => format!("{other:?}"),
        };
        let id = Uuid::now_v7().to_string();
        decided.records.push(Record {
            device_id: barrier.to_owned(),
            event: GatewayEvent::OpenFailed(OpenFailed {
                lane: read.lane.clone(),
                plate: read.plate.clone(),
                camera: read.camera.clone(),
                read_ms: read.time_ms,
                detail: detail.clone(),
                pending_id: id.clone(),
            }),
        });
        let reason = Reason::BarrierFailed { detail };
        self.deduper.forget(&read.lane, &read.plate);
        self.board.update(&read.lane, |view| {
            if let Some(last) = view.last.as_mut().filter(|l| l.time_ms == read.time_ms) {
                last.verdict = Verdict::AskGuard;
                last.reason = reason.clone();
            }
        });
        self.board.add_pending(PendingRead {
            id,
            lane: read.lane,
            camera: read.camera,
            plate: read.plate,
            candidate: None,
            reason,
            images: read.images,
            time_ms: read.time_ms.max(now - super::board::PENDING_TTL_MS + 1),
        });
        Some(decided)
    }

    /// Records a vehicle entering or leaving through a lane.
    fn passage(&self, lane: &str, direction: Direction, plate: &str, now: i64) -> (Record, Effect) {
        passage_record(&self.registry, lane, direction, plate, now)
    }

    fn on_barrier(&mut self, device: &str, event: &DeviceEvent) -> Option<Decided> {
        let lane = self.barrier_lane.get(device)?;
        match event {
            DeviceEvent::BarrierState { state } => self.board.update(lane, |v| {
                v.arm = Some(*state);
                if *state != ArmState::Unknown {
                    v.fault = None;
                }
            }),
            DeviceEvent::LoopState { occupied } => {
                self.board
                    .update(lane, |v| v.loop_occupied = Some(*occupied));
            }
            DeviceEvent::BarrierFault { message } => {
                self.board.update(lane, |v| v.fault = Some(message.clone()));
            }
            _ => return None,
        }
        Some(Decided {
            annotate: Some(Annotation::Lane(LaneNote {
                lane: lane.clone(),
                read: None,
            })),
            ..Decided::default()
        })
    }
}

/// A lane's annotation of a plate read.
fn lane_note(lane: &str, read: ReadDecision) -> Annotation {
    Annotation::Lane(LaneNote {
        lane: lane.to_owned(),
        read: Some(read),
    })
}

/// The `vehicle_entered` / `vehicle_exited` / `exit_without_entry` record for
/// a vehicle let through, with who is inside updated in memory now and the
/// effect that stores it (committed with the record).
pub(crate) fn passage_record(
    registry: &PlateRegistry,
    lane: &str,
    direction: Direction,
    plate: &str,
    now: i64,
) -> (Record, Effect) {
    let record = |event| Record {
        device_id: crate::pipeline::GATEWAY_DEVICE.to_owned(),
        event,
    };
    let passage = Passage {
        plate: plate.to_owned(),
        lane: lane.to_owned(),
    };
    match direction {
        Direction::Entry => (
            record(GatewayEvent::VehicleEntered(passage)),
            registry.enter(plate, lane, now),
        ),
        Direction::Exit => {
            let (entered, effect) = registry.exit(plate);
            let record = match entered {
                Some(t) => record(GatewayEvent::VehicleExited(Exited {
                    plate: passage.plate,
                    lane: passage.lane,
                    entered_ms: t,
                    dwell_s: (now - t).max(0) / 1000,
                })),
                None => record(GatewayEvent::ExitWithoutEntry(passage)),
            };
            (record, effect)
        }
    }
}

impl Coordinator for LaneCoordinator {
    fn name(&self) -> &'static str {
        "lanes"
    }

    /// A lane's commands go to its barrier, or to its camera when the
    /// camera's relay is the barrier (which opens with its next reply).
    fn route(&self, target: &str) -> Option<String> {
        let (lane, _) = self.lanes.get(target)?;
        lane.barrier.clone().or_else(|| {
            let mut cameras: Vec<&String> = self
                .camera_lane
                .iter()
                .filter(|(_, l)| l.as_str() == target)
                .map(|(camera, _)| camera)
                .collect();
            cameras.sort();
            cameras.first().map(|c| (*c).clone())
        })
    }

    /// Added, removed and changed lanes take their new settings (and the
    /// board shows them); reads already in flight finish, the repeated-read
    /// memory stays unless the longest repeat window changed.
    fn reconfigure(&mut self, config: &Config, diff: &ConfigDiff) {
        let maps = LaneMaps::from(config);
        if maps.window_ms != self.window_ms {
            self.deduper = Deduper::new(maps.window_ms, READ_ID_MEMORY);
            self.window_ms = maps.window_ms;
        }
        self.lanes = maps.lanes;
        self.camera_lane = maps.camera_lane;
        self.barrier_lane = maps.barrier_lane;
        self.board.reconfigure(&config.lanes, &diff.lanes);
    }

    fn on_outcome(
        &mut self,
        device_id: &str,
        command: &Command,
        outcome: &CommandOutcome,
        now_ms: i64,
    ) -> Option<Decided> {
        match command {
            Command::OpenBarrier => self.opened(device_id, outcome, now_ms),
            _ => None,
        }
    }

    fn on_event(&mut self, device_id: &str, event: &DeviceEvent, now_ms: i64) -> Option<Decided> {
        match event {
            DeviceEvent::PlateRead {
                plate,
                confidence,
                read_id,
                resend,
                images,
                ..
            } => self.on_plate(
                device_id,
                plate,
                *confidence,
                read_id.as_deref(),
                *resend,
                images,
                now_ms,
            ),
            DeviceEvent::BarrierState { .. }
            | DeviceEvent::LoopState { .. }
            | DeviceEvent::BarrierFault { .. } => self.on_barrier(device_id, event),
            _ => None,
        }
    }
}
