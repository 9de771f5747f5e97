//! Vehicle lanes (道闸): plate reads in, decisions, barrier commands and
//! the lanes board out.
//!
//! - [`coordinator`]: the pipeline's lane rules (decide each read, command the
//!   barrier, record entries and exits, keep the board).
//! - [`board`]: what the guard sees, and the reads waiting for a guard.
//! - [`link`]: plate-camera liveness (online while pushes keep coming).
//! - [`ingress`]: the device-side HTTP listener cameras push to.
//! - [`guard_decision`]: carrying out a guard's Allow / Deny on a pending read.

pub mod board;
pub mod coordinator;
pub mod images;
pub mod ingress;
pub mod link;

use std::sync::Arc;

use drivers::{Command, CommandOutcome};
use serde::Serialize;

use crate::events::{GatewayEvent, GuardDecision, PendingExpired};
use crate::lists::plates::PlateRegistry;
use crate::pipeline::{Origin, PipelineHandle};
use crate::vocab::lane::Direction;
pub use board::{LaneBoard, LaneView, PendingRead, Untaken};

/// What happened when a guard decided a pending read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardOutcome {
    /// The read that was decided.
    pub read: PendingRead,
    /// Whether the guard let it through.
    pub allowed: bool,
    /// The barrier's answer when allowed (`None` when denied).
    pub outcome: Option<CommandOutcome>,
}

/// Why a guard decision could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// No such pending read (already decided, or replaced).
    #[error("no pending read {0}")]
    NotPending(String),
    /// The read waited longer than its limit; nothing was opened.
    #[error(
        "the read of {plate} waited longer than {minutes} minutes; the car has gone — nothing was opened"
    )]
    Expired {
        /// The plate that was read.
        plate: String,
        /// The limit, in minutes.
        minutes: i64,
    },
}

/// How often the pending reads are checked for expiry.
const EXPIRY_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes expired pending reads off the board (the car has gone) and records
/// each as a `pending_expired` audit event, until `cancel`.
pub async fn expire_pending(
    board: LaneBoard,
    pipeline: PipelineHandle,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(EXPIRY_CHECK);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        for read in board.expire(drivers::contract::now_ms()) {
            let expired = GatewayEvent::PendingExpired(PendingExpired {
                pending_id: read.id,
                lane: read.lane,
                plate: read.plate,
                read_ms: read.time_ms,
            });
            if let Err(error) = pipeline.record(&read.camera, expired).await {
                static NOT_STORED: crate::logging::Every = crate::logging::Every::minute();
                if let Some(count) = NOT_STORED.allow() {
                    tracing::error!(%error, count, "Expired pending reads were not recorded (one line a minute, with the count).");
                }
            }
        }
    }
}

/// Carries out a guard's decision on a pending read: Allow raises the lane's
/// barrier (through the pipeline, so it is audited with the guard's name and
/// reason) and records the vehicle's entry or exit; both are recorded as a
/// `guard_decision` audit event.
pub async fn guard_decision(
    board: &LaneBoard,
    registry: &Arc<PlateRegistry>,
    pipeline: &PipelineHandle,
    pending_id: &str,
    allow: bool,
    origin: Origin,
) -> Result<GuardOutcome, GuardError> {
    let read = match board.take_pending(pending_id, drivers::contract::now_ms()) {
        Ok(read) => read,
        Err(Untaken::NotFound) => return Err(GuardError::NotPending(pending_id.to_owned())),
        Err(Untaken::Expired(read)) => {
            return Err(GuardError::Expired {
                plate: read.plate,
                minutes: board::PENDING_TTL_MS / 60_000,
            });
        }
    };
    let lane = board.lane(&read.lane);
    let mut outcome = None;
    if allow {
        let result = match lane.as_ref().and_then(|l| l.barrier.clone()) {
            Some(barrier) => {
                pipeline
                    .command(&barrier, Command::OpenBarrier, origin.clone())
                    .await
                    .outcome
            }
            None => CommandOutcome::Unsupported,
        };
        if let (CommandOutcome::Done, Some(lane)) = (&result, &lane)
            && !read.plate.is_empty()
        {
            let (record, effect) = coordinator::passage_record(
                registry,
                &lane.id,
                lane.direction,
                &read.plate,
                // The car passed when it was read, not when the guard clicked.
                read.time_ms,
            );
            let _ = pipeline
                .record_with(&record.device_id, record.event, vec![effect])
                .await;
        }
        outcome = Some(result);
    }
    let decision = GatewayEvent::GuardDecision(GuardDecision {
        pending_id: read.id.clone(),
        lane: read.lane.clone(),
        plate: read.plate.clone(),
        candidate: read.candidate.clone(),
        allowed: allow,
        outcome: outcome.clone(),
        origin,
        direction: lane.map(|l| l.direction).unwrap_or(Direction::Entry),
    });
    if let Err(error) = pipeline.record(&read.camera, decision).await {
        static NOT_STORED: crate::logging::Every = crate::logging::Every::minute();
        if let Some(count) = NOT_STORED.allow() {
            tracing::error!(%error, count, "Guard decisions were not recorded (one line a minute, with the count).");
        }
    }
    Ok(GuardOutcome {
        read,
        allowed: allow,
        outcome,
    })
}
