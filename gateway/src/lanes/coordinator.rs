//! The vehicle-lane coordinator: turns a camera's plate read into a
//! decision (allow / deny / ask the guard, with the reason), the barrier
//! command, the vehicle entered/exited records, and the lanes board; and
//! follows each lane's barrier events for the board.
//!
//! Runs inside the pipeline; decisions read the in-memory list snapshot.
//! State changes (a visitor pass used, a vehicle inside or gone) are made in
//! memory at once and returned as effects, which the store writer commits
//! in the same transaction as the read's event: never out of order, never
//! on the barrier's path.

use std::collections::HashMap;
use std::sync::Arc;

use drivers::{ArmState, Class, Command, DeviceEvent};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::board::{LaneBoard, LastVehicle, PendingRead};
use crate::config::{Config, DeviceKind, LaneConfig, LaneDirection};
use crate::lists::plates::PlateRegistry;
use crate::pipeline::{Coordinator, Decided, Record};
use crate::store::Effect;
use crate::rules::plate::{PlateText, normalise};
use crate::rules::vehicle::{Deduper, LanePolicy, ReadFacts, Reason, Verdict, decide};

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
}

impl LaneCoordinator {
    /// Builds the coordinator from the configuration.
    pub fn new(config: &Config, registry: Arc<PlateRegistry>, board: LaneBoard) -> Self {
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
            registry,
            board,
            deduper: Deduper::new(
                i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
                READ_ID_MEMORY,
            ),
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
        let mut annotate = Map::new();
        annotate.insert("lane".into(), json!(lane.id));
        annotate.insert("direction".into(), json!(lane.direction));
        let plate = match normalise(raw) {
            Ok(plate) => plate,
            Err(error) => {
                annotate.insert("decision".into(), json!("ignored"));
                annotate.insert(
                    "reason".into(),
                    json!({"code": "unreadable", "detail": error.to_string()}),
                );
                return Some(Decided {
                    annotate,
                    ..Decided::default()
                });
            }
        };
        let text = match &plate {
            PlateText::Plate { text, .. } => text.clone(),
            PlateText::NoPlate => String::new(),
        };
        annotate.insert("plate_normalised".into(), json!(text));
        if resend {
            // A stored read the camera re-sends after an outage: the car has
            // long gone; record it, do not open.
            annotate.insert("decision".into(), json!("ignored"));
            annotate.insert("reason".into(), json!({"code": "resend"}));
            return Some(Decided {
                annotate,
                ..Decided::default()
            });
        }
        if !self.deduper.admit(camera, &lane.id, &text, read_id, now) {
            annotate.insert("decision".into(), json!("repeat"));
            annotate.insert("reason".into(), json!({"code": "repeat"}));
            return Some(Decided {
                annotate,
                ..Decided::default()
            });
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
        // Let go of the snapshot so a used pass is marked without a copy.
        drop(lists);
        annotate.insert("decision".into(), json!(decision.verdict));
        annotate.insert("reason".into(), json!(decision.reason));
        let mut decided = Decided::default();
        match decision.verdict {
            Verdict::Allow => {
                match &lane.barrier {
                    Some(barrier) => {
                        decided
                            .commands
                            .push((barrier.clone(), Command::OpenBarrier));
                        annotate.insert("open_via".into(), json!("barrier"));
                    }
                    None => {
                        annotate.insert("open_via".into(), json!("camera"));
                    }
                }
                if let Some(pass) = decision.consumes_pass {
                    decided.effects.push(self.registry.use_pass(&text, pass));
                }
                if !text.is_empty() {
                    let (record, effect) = self.passage(&lane.id, lane.direction, &text, now);
                    decided.records.push(record);
                    decided.effects.push(effect);
                }
            }
            Verdict::AskGuard => {
                let id = Uuid::now_v7().to_string();
                let candidate = match &decision.reason {
                    Reason::FuzzyMatch { candidate } => Some(candidate.clone()),
                    _ => None,
                };
                annotate.insert("pending_id".into(), json!(id));
                if let Some(candidate) = &candidate {
                    annotate.insert("candidate".into(), json!(candidate));
                }
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
        decided.annotate = annotate;
        Some(decided)
    }

    /// Records a vehicle entering or leaving through a lane.
    fn passage(
        &self,
        lane: &str,
        direction: LaneDirection,
        plate: &str,
        now: i64,
    ) -> (Record, Effect) {
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
        let mut annotate = Map::new();
        annotate.insert("lane".into(), Value::String(lane.clone()));
        Some(Decided {
            annotate,
            ..Decided::default()
        })
    }
}

/// The `vehicle_entered` / `vehicle_exited` / `exit_without_entry` record for
/// a vehicle let through, with who is inside updated in memory now and the
/// effect that stores it (committed with the record).
pub(crate) fn passage_record(
    registry: &PlateRegistry,
    lane: &str,
    direction: LaneDirection,
    plate: &str,
    now: i64,
) -> (Record, Effect) {
    let record = |kind: &str, body: Value| Record {
        device_id: crate::pipeline::GATEWAY_DEVICE.to_owned(),
        kind: kind.to_owned(),
        class: Class::Access,
        body,
    };
    match direction {
        LaneDirection::Entry => (
            record("vehicle_entered", json!({"plate": plate, "lane": lane})),
            registry.enter(plate, lane, now),
        ),
        LaneDirection::Exit => {
            let (entered, effect) = registry.exit(plate);
            let record = match entered {
                Some(t) => record(
                    "vehicle_exited",
                    json!({"plate": plate, "lane": lane, "entered_ms": t, "dwell_s": (now - t).max(0) / 1000}),
                ),
                None => record("exit_without_entry", json!({"plate": plate, "lane": lane})),
            };
            (record, effect)
        }
    }
}

impl Coordinator for LaneCoordinator {
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
