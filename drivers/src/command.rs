//! What the gateway asks devices to do: [`Command`], its [`CommandOutcome`],
//! and the [`CommandRequest`] that carries a reply channel to the driver.

use serde::Serialize;
use tokio::sync::oneshot;

/// An actuation or query addressed to one device.
///
/// Device families add variants as they land; a driver answers commands it
/// does not implement with [`CommandOutcome::Unsupported`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Read the device now and report its current values.
    Poll,
    /// Drive every actuator of the device to its safe state.
    SafeState,
    /// Raise a barrier arm (it closes by itself once the vehicle has passed).
    OpenBarrier,
    /// Lower a barrier arm now (refused while the loop is occupied).
    CloseBarrier,
    /// Raise a barrier arm and keep it up until released (fire, emergency).
    HoldOpen,
    /// End a hold-open; the arm closes when the loop is clear.
    ReleaseHold,
    /// Unlock a door for a pulse.
    PulseDoor {
        /// Door number on a multi-door controller (1–4); `None` for a single door.
        door: Option<u8>,
        /// Pulse length; `None` uses the door's configured time.
        duration_ms: Option<u64>,
    },
    /// Write a set-point or coil of a Modbus point table (checked against
    /// the point's write limits; booleans as 0/1).
    WritePoint {
        /// Point name.
        point: String,
        /// The value in engineering units.
        value: f64,
    },
}

impl Command {
    /// The command's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Poll => "poll",
            Command::SafeState => "safe_state",
            Command::OpenBarrier => "open_barrier",
            Command::CloseBarrier => "close_barrier",
            Command::HoldOpen => "hold_open",
            Command::ReleaseHold => "release_hold",
            Command::PulseDoor { .. } => "pulse_door",
            Command::WritePoint { .. } => "write_point",
        }
    }
}

/// How a device answered a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Carried out.
    Done,
    /// Refused by a safety rule or the device's state (the reason says which).
    Refused(String),
    /// Attempted but failed (the device or transport said why).
    Failed(String),
    /// The driver does not implement this command.
    Unsupported,
}

/// A command on its way to a driver, with the channel for its answer.
#[derive(Debug)]
pub struct CommandRequest {
    /// What to do.
    pub command: Command,
    /// Where the driver sends the outcome; dropping it reports `Failed`.
    pub reply: oneshot::Sender<CommandOutcome>,
    /// After this the requester has given up (and recorded a failure): the
    /// command is dropped, never carried out late.
    pub deadline: Option<tokio::time::Instant>,
}

impl CommandRequest {
    /// Creates a request and the receiver for its outcome.
    pub fn new(command: Command) -> (Self, oneshot::Receiver<CommandOutcome>) {
        let (reply, rx) = oneshot::channel();
        let request = Self {
            command,
            reply,
            deadline: None,
        };
        (request, rx)
    }

    /// A request that must be carried out by `deadline` or not at all.
    pub fn with_deadline(
        command: Command,
        deadline: tokio::time::Instant,
    ) -> (Self, oneshot::Receiver<CommandOutcome>) {
        let (mut request, rx) = Self::new(command);
        request.deadline = Some(deadline);
        (request, rx)
    }

    /// Whether the deadline has passed at `now`.
    pub fn expired(&self, now: tokio::time::Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// Answers `Failed` when the deadline has passed (and returns `None`);
    /// otherwise gives the request back.
    pub fn unless_expired(self) -> Option<Self> {
        if self.expired(tokio::time::Instant::now()) {
            let name = self.command.name();
            self.answer(CommandOutcome::Failed(format!(
                "{name} expired before the device could take it; not carried out"
            )));
            return None;
        }
        Some(self)
    }

    /// Answers the request; a requester that stopped waiting is not an error.
    pub fn answer(self, outcome: CommandOutcome) {
        let _ = self.reply.send(outcome);
    }
}
