//! Every event kind the gateway records, and the typed bodies of the
//! gateway's own events.
//!
//! [`Kind`] names every kind once, with its priority class; its
//! [`Kind::ALL`] list is made by the same macro as the enum, so it cannot
//! miss one. A device's events are [`DeviceEvent`]s (the `drivers` crate);
//! the gateway's own (lanes, doors, commands, the store, the panel's audit
//! records) are [`GatewayEvent`]s, one variant per kind with a serde struct
//! as its body. The coordinators' decisions about a device event are an
//! [`Annotation`], merged into that event's body. All of them become an
//! envelope's `kind` and `body` only when the pipeline stamps them
//! ([`Event::body`]): the JSON on the wire is made there and nowhere else.
//! `docs/schema/events.json` publishes each kind's class and body; a test
//! validates one event of every kind against it.

use std::collections::BTreeMap;

use drivers::contract::{Decision, OpenVia};
use drivers::{Class, Command, CommandOutcome, DeviceEvent};
use serde::Serialize;
use serde_json::Value;

use crate::config::diff::Changes;
use crate::rules::threshold::Limit;
use crate::rules::{door, vehicle};
use crate::store::{Outage, TableSalvage};
use crate::vocab::lane::Direction;

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $class:ident;)*) => {
        /// An event kind: the envelope's `kind`, with its class.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $($(#[$doc])* $variant,)*
        }

        impl Kind {
            /// Every kind, in the order of the table above.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The wire name (`plate_read`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }

            /// The priority class every event of this kind has.
            pub fn class(self) -> Class {
                match self {
                    $(Kind::$variant => Class::$class,)*
                }
            }
        }
    };
}

kinds! {
    /// A point's measured value.
    PointValue = "point_value", Telemetry;
    /// A Modbus point table's values (by exception, or full).
    PointReport = "point_report", Telemetry;
    /// A point's threshold or state alarm, raised or cleared by its device.
    PointAlarm = "point_alarm", Alarm;
    /// A device's own alarm (also the platform refusing the gateway).
    DeviceAlarm = "device_alarm", Alarm;
    /// A device went offline or came back.
    DeviceLink = "device_link", Alarm;
    /// A plate camera's read, with the lane's decision.
    PlateRead = "plate_read", Access;
    /// A barrier arm moved.
    BarrierState = "barrier_state", Access;
    /// A lane's loop detector changed.
    LoopState = "loop_state", Telemetry;
    /// A barrier did not do what it was told.
    BarrierFault = "barrier_fault", Alarm;
    /// A card or code at a door's reader, with the door's decision.
    CardRead = "card_read", Access;
    /// An access controller's record from while the gateway was away.
    AccessHistory = "access_history", Access;
    /// A reader delivered something that is not a credential.
    ReadRejected = "read_rejected", Access;
    /// A door contact opened or closed.
    DoorState = "door_state", Access;
    /// A door was held or forced open (or that ended).
    DoorAlarm = "door_alarm", Alarm;
    /// A door's exit button was pressed.
    ExitButton = "exit_button", Access;
    /// A door relay was pulsed.
    RelayPulse = "relay_pulse", Access;
    /// A surveillance camera's motion or digital input.
    CameraSignal = "camera_signal", Telemetry;
    /// A surveillance camera's alarm.
    CameraAlarm = "camera_alarm", Alarm;
    /// A surveillance camera's snapshot of an access event.
    CameraSnapshot = "camera_snapshot", Access;
    /// A visitor called from a door station.
    CallStarted = "call_started", Access;
    /// A door-station call was answered.
    CallAnswered = "call_answered", Access;
    /// An answered call ended.
    CallEnded = "call_ended", Access;
    /// A call rang out unanswered.
    CallMissed = "call_missed", Access;
    /// A door station unlocked its door.
    StationUnlock = "station_unlock", Access;
    /// A configured threshold alarm (`[[alarms]]`) was raised or cleared.
    ThresholdAlarm = "threshold_alarm", Alarm;
    /// A blacklisted plate was read at a lane.
    BlacklistedVehicle = "blacklisted_vehicle", Alarm;
    /// An allowed read's barrier did not open; the guard decides it.
    OpenFailed = "open_failed", Alarm;
    /// A read waiting for the guard was not decided in time.
    PendingExpired = "pending_expired", Audit;
    /// A guard decided a read waiting for them.
    GuardDecision = "guard_decision", Audit;
    /// A vehicle entered through an entry lane.
    VehicleEntered = "vehicle_entered", Access;
    /// A vehicle left through an exit lane.
    VehicleExited = "vehicle_exited", Access;
    /// A vehicle left that the gateway had not seen enter.
    ExitWithoutEntry = "exit_without_entry", Access;
    /// Too many wrong codes at a keypad: it refuses codes for a while.
    KeypadLocked = "keypad_locked", Alarm;
    /// An actuation, with its origin and the device's outcome.
    Command = "command", Audit;
    /// A rule's command was not carried out.
    CommandFailed = "command_failed", Alarm;
    /// A platform command or sync was refused (or a summary of several).
    CommandRefused = "command_refused", Audit;
    /// A platform list sync was applied, ignored or refused.
    ListSync = "list_sync", Audit;
    /// The gateway started.
    GatewayStarted = "gateway_started", Audit;
    /// The gateway is stopping.
    GatewayStopping = "gateway_stopping", Audit;
    /// An unreadable database was moved aside and salvaged.
    StoreQuarantined = "store_quarantined", Alarm;
    /// The store's queue neared or reached its byte bound (or recovered).
    StorePressure = "store_pressure", Alarm;
    /// The configuration file was read again and applied.
    ConfigReloaded = "config_reloaded", Audit;
    /// A reload found problems: the previous configuration stays in force.
    ConfigRejected = "config_rejected", Alarm;
    /// The data disk was full for a while (recorded when it ended).
    StoreUnavailable = "store_unavailable", Alarm;
    /// The daily purge of personal information past its retention.
    PrivacyPurge = "privacy_purge", Audit;
    /// One person's personal information erased on request.
    PrivacyErasure = "privacy_erasure", Audit;
    /// Panel: a user logged in.
    UserLogin = "user_login", Audit;
    /// Panel: a login failed.
    UserLoginFailed = "user_login_failed", Audit;
    /// Panel: repeated failures delay the next login.
    UserLocked = "user_locked", Audit;
    /// Panel: a login delay was cleared (panel or command line).
    UserUnlocked = "user_unlocked", Audit;
    /// Panel: a user logged out.
    UserLogout = "user_logout", Audit;
    /// Panel: a user was added (also the first admin, by the setup link).
    UserAdded = "user_added", Audit;
    /// Panel: a user was removed.
    UserRemoved = "user_removed", Audit;
    /// Panel: a password was changed.
    PasswordChanged = "password_changed", Audit;
    /// Panel: a driver's restart was requested.
    DriverRestarted = "driver_restarted", Audit;
    /// Panel: a surveillance camera's snapshot was taken on request.
    CameraSnapshotTaken = "camera_snapshot_taken", Audit;
    /// Panel: an alarm (an event, or a point's alarm) was acknowledged.
    AlarmAcknowledged = "alarm_acknowledged", Audit;
    /// Panel: a visitor pass was registered.
    VisitorRegistered = "visitor_registered", Audit;
    /// Panel: a visitor pass was revoked.
    VisitorRevoked = "visitor_revoked", Audit;
    /// Panel: a resident's vehicle was saved.
    ResidentSaved = "resident_saved", Audit;
    /// Panel: a resident's vehicle was removed.
    ResidentRemoved = "resident_removed", Audit;
    /// Panel: residents' vehicles were imported from CSV.
    ResidentsImported = "residents_imported", Audit;
    /// Panel: visitor passes were imported from CSV.
    VisitorsImported = "visitors_imported", Audit;
    /// Panel: a plate was blacklisted.
    BlacklistAdded = "blacklist_added", Audit;
    /// Panel: a plate was removed from the blacklist.
    BlacklistRemoved = "blacklist_removed", Audit;
    /// Panel: the blacklist was imported from CSV.
    BlacklistImported = "blacklist_imported", Audit;
    /// Panel: a door card was saved.
    CardSaved = "card_saved", Audit;
    /// Panel: a door card was removed.
    CardRemoved = "card_removed", Audit;
    /// Panel: a door card was blocked (挂失).
    CardBlocked = "card_blocked", Audit;
    /// Panel: a door card was unblocked.
    CardUnblocked = "card_unblocked", Audit;
    /// Panel: door cards were imported from CSV.
    CardsImported = "cards_imported", Audit;
    /// Panel: a CSV file was exported (which list, how many rows).
    DataExported = "data_exported", Audit;
    /// Panel: a list of people's data was searched (which, how many found).
    DataSearched = "data_searched", Audit;
}

impl Kind {
    /// The kind of a device event.
    pub fn of_device(event: &DeviceEvent) -> Kind {
        match event {
            DeviceEvent::PointValue { .. } => Kind::PointValue,
            DeviceEvent::PointReport { .. } => Kind::PointReport,
            DeviceEvent::PointAlarm { .. } => Kind::PointAlarm,
            DeviceEvent::DeviceAlarm { .. } => Kind::DeviceAlarm,
            DeviceEvent::DeviceLink { .. } => Kind::DeviceLink,
            DeviceEvent::PlateRead { .. } => Kind::PlateRead,
            DeviceEvent::BarrierState { .. } => Kind::BarrierState,
            DeviceEvent::LoopState { .. } => Kind::LoopState,
            DeviceEvent::BarrierFault { .. } => Kind::BarrierFault,
            DeviceEvent::CardRead { .. } => Kind::CardRead,
            DeviceEvent::AccessHistory { .. } => Kind::AccessHistory,
            DeviceEvent::ReadRejected { .. } => Kind::ReadRejected,
            DeviceEvent::DoorState { .. } => Kind::DoorState,
            DeviceEvent::DoorAlarm { .. } => Kind::DoorAlarm,
            DeviceEvent::ExitButton { .. } => Kind::ExitButton,
            DeviceEvent::RelayPulse { .. } => Kind::RelayPulse,
            DeviceEvent::CameraSignal { .. } => Kind::CameraSignal,
            DeviceEvent::CameraAlarm { .. } => Kind::CameraAlarm,
            DeviceEvent::CameraSnapshot { .. } => Kind::CameraSnapshot,
            DeviceEvent::CallStarted { .. } => Kind::CallStarted,
            DeviceEvent::CallAnswered { .. } => Kind::CallAnswered,
            DeviceEvent::CallEnded { .. } => Kind::CallEnded,
            DeviceEvent::CallMissed { .. } => Kind::CallMissed,
            DeviceEvent::StationUnlock { .. } => Kind::StationUnlock,
        }
    }

    /// The kind of a wire name, if the gateway records it.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Any event the gateway records.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// What a device reported.
    Device(DeviceEvent),
    /// What the gateway itself records.
    Gateway(GatewayEvent),
}

impl Event {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Event::Device(event) => Kind::of_device(event),
            Event::Gateway(event) => event.kind(),
        }
    }

    /// Its body as it goes on the wire (the envelope's `body`).
    pub fn body(&self) -> Value {
        match self {
            Event::Device(event) => event.body(),
            Event::Gateway(event) => event.body(),
        }
    }
}

impl From<DeviceEvent> for Event {
    fn from(event: DeviceEvent) -> Self {
        Event::Device(event)
    }
}

impl From<GatewayEvent> for Event {
    fn from(event: GatewayEvent) -> Self {
        Event::Gateway(event)
    }
}

/// An event the gateway records itself: one variant per kind, its body a
/// serde struct.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum GatewayEvent {
    /// `threshold_alarm`.
    ThresholdAlarm(ThresholdAlarm),
    /// `blacklisted_vehicle`.
    BlacklistedVehicle(BlacklistedVehicle),
    /// `open_failed`.
    OpenFailed(OpenFailed),
    /// `pending_expired`.
    PendingExpired(PendingExpired),
    /// `guard_decision`.
    GuardDecision(GuardDecision),
    /// `vehicle_entered`.
    VehicleEntered(Passage),
    /// `vehicle_exited`.
    VehicleExited(Exited),
    /// `exit_without_entry`.
    ExitWithoutEntry(Passage),
    /// `keypad_locked`.
    KeypadLocked(KeypadLocked),
    /// `command`.
    Command(CommandAudit),
    /// `command_failed`.
    CommandFailed(CommandFailed),
    /// `command_refused`.
    CommandRefused(CommandRefused),
    /// `list_sync`.
    ListSync(ListSync),
    /// `gateway_started`.
    GatewayStarted(GatewayStarted),
    /// `gateway_stopping`.
    GatewayStopping(GatewayStopping),
    /// `store_quarantined`.
    StoreQuarantined(StoreQuarantined),
    /// `store_pressure`.
    StorePressure(StorePressure),
    /// `store_unavailable`.
    StoreUnavailable(StoreUnavailable),
    /// `config_reloaded`.
    ConfigReloaded(ConfigReloaded),
    /// `config_rejected`.
    ConfigRejected(ConfigRejected),
    /// `privacy_purge`.
    PrivacyPurge(PrivacyPurge),
    /// `privacy_erasure`.
    PrivacyErasure(PrivacyErasure),
    /// One of the panel's audit kinds (its [`PanelAction`]).
    Panel(Box<PanelAudit>),
}

impl GatewayEvent {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            GatewayEvent::ThresholdAlarm(_) => Kind::ThresholdAlarm,
            GatewayEvent::BlacklistedVehicle(_) => Kind::BlacklistedVehicle,
            GatewayEvent::OpenFailed(_) => Kind::OpenFailed,
            GatewayEvent::PendingExpired(_) => Kind::PendingExpired,
            GatewayEvent::GuardDecision(_) => Kind::GuardDecision,
            GatewayEvent::VehicleEntered(_) => Kind::VehicleEntered,
            GatewayEvent::VehicleExited(_) => Kind::VehicleExited,
            GatewayEvent::ExitWithoutEntry(_) => Kind::ExitWithoutEntry,
            GatewayEvent::KeypadLocked(_) => Kind::KeypadLocked,
            GatewayEvent::Command(_) => Kind::Command,
            GatewayEvent::CommandFailed(_) => Kind::CommandFailed,
            GatewayEvent::CommandRefused(_) => Kind::CommandRefused,
            GatewayEvent::ListSync(_) => Kind::ListSync,
            GatewayEvent::GatewayStarted(_) => Kind::GatewayStarted,
            GatewayEvent::GatewayStopping(_) => Kind::GatewayStopping,
            GatewayEvent::StoreQuarantined(_) => Kind::StoreQuarantined,
            GatewayEvent::StorePressure(_) => Kind::StorePressure,
            GatewayEvent::StoreUnavailable(_) => Kind::StoreUnavailable,
            GatewayEvent::ConfigReloaded(_) => Kind::ConfigReloaded,
            GatewayEvent::ConfigRejected(_) => Kind::ConfigRejected,
            GatewayEvent::PrivacyPurge(_) => Kind::PrivacyPurge,
            GatewayEvent::PrivacyErasure(_) => Kind::PrivacyErasure,
            GatewayEvent::Panel(audit) => audit.action.kind(),
        }
    }

    /// The body as it goes on the wire.
    pub fn body(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Who asked for a command, through which door, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    /// User name, platform id, or rule name.
    pub actor: String,
    /// The channel: `panel`, `platform`, `cli`, `rule`.
    pub via: String,
    /// The reason given (mandatory for manual actuation at the panel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The remote address, when the command came over the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// `threshold_alarm`: a configured alarm on a point's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdAlarm {
    /// The point.
    pub point: String,
    /// The value that raised or cleared it.
    pub value: f64,
    /// The point's unit.
    pub unit: String,
    /// Raised (`true`) or cleared.
    pub active: bool,
    /// Which side was crossed (raised only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// The limit's value (raised only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// `blacklisted_vehicle`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlacklistedVehicle {
    /// The plate, normalised.
    pub plate: String,
    /// The lane it was read at.
    pub lane: String,
    /// The lane's direction.
    pub direction: Direction,
    /// Why it is listed.
    pub listed_reason: String,
    /// What the lane decided.
    pub decision: vehicle::Verdict,
}

/// `open_failed`: an allowed read's barrier did not open.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenFailed {
    /// The lane.
    pub lane: String,
    /// The plate.
    pub plate: String,
    /// The camera that read it.
    pub camera: String,
    /// When it was read (Unix ms).
    pub read_ms: i64,
    /// What the barrier answered.
    pub detail: String,
    /// The read's id on the guard's pending list.
    pub pending_id: String,
}

/// `pending_expired`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingExpired {
    /// The read's id on the pending list.
    pub pending_id: String,
    /// The lane.
    pub lane: String,
    /// The plate.
    pub plate: String,
    /// When it was read (Unix ms).
    pub read_ms: i64,
}

/// `guard_decision`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardDecision {
    /// The read's id on the pending list.
    pub pending_id: String,
    /// The lane.
    pub lane: String,
    /// The plate as read.
    pub plate: String,
    /// The listed plate it resembled, for a fuzzy match.
    pub candidate: Option<String>,
    /// Whether the guard let it through.
    pub allowed: bool,
    /// The barrier's answer, when allowed.
    pub outcome: Option<CommandOutcome>,
    /// The guard.
    pub origin: Origin,
    /// The lane's direction.
    pub direction: Direction,
}

/// `vehicle_entered` and `exit_without_entry`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// The plate.
    pub plate: String,
    /// The lane.
    pub lane: String,
}

/// `vehicle_exited`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exited {
    /// The plate.
    pub plate: String,
    /// The lane.
    pub lane: String,
    /// When it entered (Unix ms).
    pub entered_ms: i64,
    /// How long it stayed, in seconds.
    pub dwell_s: i64,
}

/// `keypad_locked`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeypadLocked {
    /// The door's id.
    pub door: String,
    /// Until when codes are refused (Unix ms).
    pub until_ms: i64,
    /// Wrong codes that locked it.
    pub failures: usize,
}

/// What a `command` audit says was commanded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Commanded {
    /// A device command.
    Device(Command),
    /// A platform command the gateway carries out itself.
    Gateway {
        /// The command's action name.
        command: String,
        /// The platform's id of the command.
        id: String,
    },
}

/// `command`: every actuation, audited.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandAudit {
    /// What was commanded.
    pub command: Commanded,
    /// The device's (or the gateway's) answer.
    pub outcome: CommandOutcome,
    /// Who asked.
    pub origin: Origin,
}

/// `command_failed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandFailed {
    /// The rule's command.
    pub command: Command,
    /// What the device answered instead of done.
    pub outcome: CommandOutcome,
}

/// `command_refused`: one platform message refused, or a summary of the
/// refusals counted in an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CommandRefused {
    /// One refused message.
    One {
        /// The message's id, if it had one.
        id: Option<String>,
        /// Its action, if it could be read.
        action: Option<String>,
        /// The refusal's code (`bad_signature`, `replayed` …).
        reason: String,
        /// In words.
        detail: String,
        /// Always `platform`.
        via: &'static str,
    },
    /// Further refusals of an interval, counted.
    Aggregated {
        /// Always `null`.
        id: Option<String>,
        /// Always `aggregated`.
        reason: &'static str,
        /// In words.
        detail: String,
        /// How many.
        count: u64,
        /// How many per refusal code.
        reasons: BTreeMap<&'static str, u64>,
        /// Some of their ids.
        sample_ids: Vec<String>,
        /// The first one's time (Unix ms).
        first_ms: i64,
        /// The last one's time (Unix ms).
        last_ms: i64,
        /// Always `platform`.
        via: &'static str,
    },
}

/// `list_sync`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListSync {
    /// The list.
    pub list: String,
    /// The message's id.
    pub id: Option<String>,
    /// `applied`, `ignored`, `refused`, `failed` …
    pub status: String,
    /// The version held afterwards.
    pub held_version: Option<u64>,
    /// Why, when not applied.
    pub detail: Option<String>,
}

/// `gateway_started`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayStarted {
    /// The gateway's version.
    pub version: String,
    /// Configured devices.
    pub devices: usize,
    /// Events queued at the start.
    pub queued: u64,
}

/// `gateway_stopping`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayStopping {
    /// The gateway's version.
    pub version: String,
}

/// `store_quarantined`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreQuarantined {
    /// Where the unreadable file went.
    pub moved_to: String,
    /// Why it was unreadable.
    pub reason: String,
    /// Rows salvaged and lost, per table.
    pub salvaged: Vec<TableSalvage>,
}

/// `store_pressure`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorePressure {
    /// `normal`, `shedding_telemetry` or `over_capacity`.
    pub state: &'static str,
    /// Whether it is not `normal`.
    pub active: bool,
}

/// `privacy_purge`: what the daily purge deleted, per kind of record, and
/// the retention (days) it applied. Counts only: never whose records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrivacyPurge {
    /// Records deleted, by kind of record (`snapshots`, `access_records`,
    /// `visitors`, `call_logs`, `audit`).
    pub deleted: BTreeMap<&'static str, u64>,
    /// The retention applied, in days, by the same names.
    pub retention_days: BTreeMap<&'static str, u64>,
    /// Kinds of record the purge could not finish, with why (`{}` when
    /// every kind was purged).
    pub failed: BTreeMap<&'static str, String>,
}

/// `privacy_erasure`: one person's personal information erased on request
/// (`gatehouse privacy erase`, or an administrator at the panel). It holds
/// no personal information itself: the identifier only masked and as a
/// one-way reference, counts, the reason and who.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrivacyErasure {
    /// What identified the person: `plate`, `card` or `house`.
    pub by: &'static str,
    /// The identifier masked (`苏A8***2`, `******78`, `3*******`).
    pub masked: String,
    /// HMAC-SHA256 (hex) of `by:identifier` under the gateway's
    /// `[uplink] command_key`, which the platform holds too: it finds its
    /// own records of the person with it. `null` without a key.
    pub reference: Option<String>,
    /// Why (as the administrator gave it).
    pub reason: String,
    /// Who erased: the panel user, or `cli`.
    pub actor: String,
    /// `panel` or `cli`.
    pub via: &'static str,
    /// The administrator's address, for an erasure at the panel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// List entries deleted, by list (`residents`, `visitors`, `blacklist`,
    /// `inside`, `cards`, `blocked_cards`, `pins`, `temp_codes`).
    pub removed: BTreeMap<&'static str, u64>,
    /// Recorded events stripped of the person, by where they were
    /// (`journal`, `queue`, `dead_letters`), and snapshot images deleted
    /// (`snapshots`).
    pub stripped: BTreeMap<&'static str, u64>,
    /// Whether the database file and its WAL were rewritten without the
    /// deleted bytes at once (`false`: a reader held the checkpoint back;
    /// the next checkpoint completes it).
    pub scrubbed: bool,
}

/// `store_unavailable`: an outage of the store that ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreUnavailable {
    /// Why (`disk full`).
    pub reason: String,
    /// Always `false` (recorded once it ended).
    pub active: bool,
    /// When it began (Unix ms).
    pub since_ms: i64,
    /// When the store wrote again (Unix ms).
    pub until_ms: i64,
    /// How long it lasted.
    pub duration_ms: i64,
    /// Events refused meanwhile, by class name.
    pub refused: BTreeMap<&'static str, u64>,
    /// Writes to the other tables refused meanwhile.
    pub writes_refused: u64,
}

impl From<&Outage> for StoreUnavailable {
    fn from(outage: &Outage) -> Self {
        StoreUnavailable {
            reason: outage.reason.clone(),
            active: false,
            since_ms: outage.since_ms,
            until_ms: outage.until_ms,
            duration_ms: (outage.until_ms - outage.since_ms).max(0),
            refused: Class::ALL
                .iter()
                .map(|c| (c.as_str(), outage.refused[c.index()]))
                .collect(),
            writes_refused: outage.writes_refused,
        }
    }
}

/// `config_reloaded`: what a reload started, stopped and restarted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigReloaded {
    /// Devices added, removed and changed, by id.
    pub devices: Changes,
    /// Lanes added, removed and changed.
    pub lanes: Changes,
    /// Doors added, removed and changed.
    pub doors: Changes,
    /// Whether the threshold alarms changed (the new ones are in force).
    pub alarms: bool,
    /// What changed but keeps its previous settings until the next start.
    pub needs_restart: Vec<String>,
}

/// `config_rejected`: a reload refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigRejected {
    /// Each problem as `check-config` prints it.
    pub problems: Vec<String>,
}

/// The panel's audit kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PanelAction {
    /// `user_login`.
    UserLogin,
    /// `user_login_failed`.
    UserLoginFailed,
    /// `user_locked`.
    UserLocked,
    /// `user_unlocked`.
    UserUnlocked,
    /// `user_logout`.
    UserLogout,
    /// `user_added`.
    UserAdded,
    /// `user_removed`.
    UserRemoved,
    /// `password_changed`.
    PasswordChanged,
    /// `driver_restarted`.
    DriverRestarted,
    /// `camera_snapshot_taken`.
    CameraSnapshotTaken,
    /// `alarm_acknowledged`.
    AlarmAcknowledged,
    /// `visitor_registered`.
    VisitorRegistered,
    /// `visitor_revoked`.
    VisitorRevoked,
    /// `resident_saved`.
    ResidentSaved,
    /// `resident_removed`.
    ResidentRemoved,
    /// `residents_imported`.
    ResidentsImported,
    /// `visitors_imported`.
    VisitorsImported,
    /// `blacklist_added`.
    BlacklistAdded,
    /// `blacklist_removed`.
    BlacklistRemoved,
    /// `blacklist_imported`.
    BlacklistImported,
    /// `card_saved`.
    CardSaved,
    /// `card_removed`.
    CardRemoved,
    /// `card_blocked`.
    CardBlocked,
    /// `card_unblocked`.
    CardUnblocked,
    /// `cards_imported`.
    CardsImported,
    /// `data_exported`.
    DataExported,
    /// `data_searched`.
    DataSearched,
}

impl PanelAction {
    /// Its event kind.
    pub fn kind(self) -> Kind {
        match self {
            PanelAction::UserLogin => Kind::UserLogin,
            PanelAction::UserLoginFailed => Kind::UserLoginFailed,
            PanelAction::UserLocked => Kind::UserLocked,
            PanelAction::UserUnlocked => Kind::UserUnlocked,
            PanelAction::UserLogout => Kind::UserLogout,
            PanelAction::UserAdded => Kind::UserAdded,
            PanelAction::UserRemoved => Kind::UserRemoved,
            PanelAction::PasswordChanged => Kind::PasswordChanged,
            PanelAction::DriverRestarted => Kind::DriverRestarted,
            PanelAction::CameraSnapshotTaken => Kind::CameraSnapshotTaken,
            PanelAction::AlarmAcknowledged => Kind::AlarmAcknowledged,
            PanelAction::VisitorRegistered => Kind::VisitorRegistered,
            PanelAction::VisitorRevoked => Kind::VisitorRevoked,
            PanelAction::ResidentSaved => Kind::ResidentSaved,
            PanelAction::ResidentRemoved => Kind::ResidentRemoved,
            PanelAction::ResidentsImported => Kind::ResidentsImported,
            PanelAction::VisitorsImported => Kind::VisitorsImported,
            PanelAction::BlacklistAdded => Kind::BlacklistAdded,
            PanelAction::BlacklistRemoved => Kind::BlacklistRemoved,
            PanelAction::BlacklistImported => Kind::BlacklistImported,
            PanelAction::CardSaved => Kind::CardSaved,
            PanelAction::CardRemoved => Kind::CardRemoved,
            PanelAction::CardBlocked => Kind::CardBlocked,
            PanelAction::CardUnblocked => Kind::CardUnblocked,
            PanelAction::CardsImported => Kind::CardsImported,
            PanelAction::DataExported => Kind::DataExported,
            PanelAction::DataSearched => Kind::DataSearched,
        }
    }
}

/// The body of a panel audit event: who, from where, on what, and what
/// else the action has to say (absent members are left out).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PanelAudit {
    /// Which action (the event's kind).
    #[serde(skip)]
    pub action: PanelAction,
    /// The user (the name typed, for a failed login; `setup` for the
    /// setup link; the command for one from the command line).
    pub actor: String,
    /// The client's address (`null` when unknown); absent for an action
    /// from the command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<Option<String>>,
    /// What it was done to (a user, a plate, a card, a list, a driver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `cli` or `setup_link`, when not the panel's pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'static str>,
    /// The reason given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was done, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The user's role (`user_login`, `user_added`, `user_removed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Sessions ended by a password change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_ended: Option<usize>,
    /// The acknowledged event (`alarm_acknowledged` of an event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The device of the acknowledged alarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The point of an acknowledged point alarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
    /// Which of the point's alarms (`high`, `low`, `state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<&'static str>,
    /// The visitor pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_id: Option<i64>,
    /// The visitor's host unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_unit: Option<String>,
    /// The pass's start (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<i64>,
    /// The pass's end (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<i64>,
    /// Whether the pass opens once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_use: Option<bool>,
}

impl PanelAudit {
    /// An audit of `action` by `actor` from `remote`, nothing else said yet.
    pub fn new(action: PanelAction, actor: &str, remote: Option<String>) -> Self {
        PanelAudit {
            action,
            actor: actor.to_owned(),
            remote: Some(remote),
            target: None,
            via: None,
            reason: None,
            detail: None,
            role: None,
            sessions_ended: None,
            seq: None,
            device: None,
            point: None,
            alarm: None,
            pass_id: None,
            host_unit: None,
            valid_from: None,
            valid_to: None,
            single_use: None,
        }
    }

    /// The same, about `target`.
    pub fn on(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// The same, with `detail`.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl From<PanelAudit> for GatewayEvent {
    fn from(audit: PanelAudit) -> Self {
        GatewayEvent::Panel(Box::new(audit))
    }
}

/// What a coordinator decided about a device event: merged into the
/// event's body when it is stamped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Annotation {
    /// A lane's: the lane, and for a plate read its decision.
    Lane(LaneNote),
    /// A door's: the door, and for a card read its decision.
    Door(DoorNote),
}

impl Annotation {
    /// The producer's view of the decision, when one was made.
    pub fn decision(&self) -> Option<Decision> {
        match self {
            Annotation::Lane(LaneNote {
                read: Some(read), ..
            }) => Some(Decision {
                allowed: read.decision == LaneVerdict::Allow,
                open_via: read.open_via,
            }),
            Annotation::Door(DoorNote {
                decided: Some(decided),
                ..
            }) => Some(Decision {
                allowed: decided.decision == door::Verdict::Grant,
                open_via: None,
            }),
            Annotation::Lane(_) | Annotation::Door(_) => None,
        }
    }

    /// The members it adds to (or replaces in) the event's body.
    pub fn members(&self) -> serde_json::Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }
}

/// A lane's annotation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaneNote {
    /// The lane's id.
    pub lane: String,
    /// For a plate read: what was decided.
    #[serde(flatten)]
    pub read: Option<ReadDecision>,
}

/// What a lane decided about a plate read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadDecision {
    /// The lane's direction.
    pub direction: Direction,
    /// The plate as normalised (empty for 无牌车); absent when unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate_normalised: Option<String>,
    /// The decision.
    pub decision: LaneVerdict,
    /// Why.
    pub reason: LaneReason,
    /// For an allowed read: who raises the barrier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_via: Option<OpenVia>,
    /// For a read left to the guard: its id on the pending list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_id: Option<String>,
    /// For a fuzzy match: the listed plate it resembles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
}

/// A lane's decision about a read (`decision` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneVerdict {
    /// Let through.
    Allow,
    /// Kept out.
    Deny,
    /// Left to the guard.
    AskGuard,
    /// Not decided: unreadable, or a resend of an old read.
    Ignored,
    /// Not decided again: the same car read again within the repeat window.
    Repeat,
}

impl From<vehicle::Verdict> for LaneVerdict {
    fn from(verdict: vehicle::Verdict) -> Self {
        match verdict {
            vehicle::Verdict::Allow => LaneVerdict::Allow,
            vehicle::Verdict::Deny => LaneVerdict::Deny,
            vehicle::Verdict::AskGuard => LaneVerdict::AskGuard,
        }
    }
}

/// Why a lane decided as it did (`reason`, an object with a `code`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LaneReason {
    /// The lane rules' reason.
    Rules(vehicle::Reason),
    /// Why a read was not decided.
    Undecided(Undecided),
}

/// Why a read was not decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Undecided {
    /// The plate text could not be read as a plate.
    Unreadable {
        /// What was wrong with it.
        detail: String,
    },
    /// A stored read the camera re-sent after an outage.
    Resend,
    /// The same car, read again within the repeat window.
    Repeat,
}

/// A door's annotation: the door's id replaces the event's own `door` (a
/// controller's door number), which is kept as `door_number`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoorNote {
    /// The door's id.
    pub door: String,
    /// The door's number on its controller, when the event gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub door_number: Option<u8>,
    /// A keypad entry's code, masked (codes never reach the store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<&'static str>,
    /// For a card or code presented: what was decided.
    #[serde(flatten)]
    pub decided: Option<DoorDecision>,
}

/// What a door decided about a card or code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoorDecision {
    /// Grant or deny.
    pub decision: door::Verdict,
    /// Why.
    pub reason: door::Reason,
    /// Whose credential, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_name_that_parses_back() {
        let mut names = std::collections::HashSet::new();
        for &kind in Kind::ALL {
            assert!(names.insert(kind.as_str()), "{kind} twice");
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::parse("bogus"), None);
    }

    #[test]
    fn a_lane_decision_tells_the_camera_whether_to_open() {
        let read = |decision, open_via| {
            Annotation::Lane(LaneNote {
                lane: "south-in".into(),
                read: Some(ReadDecision {
                    direction: Direction::Entry,
                    plate_normalised: Some("苏A8HK52".into()),
                    decision,
                    reason: LaneReason::Undecided(Undecided::Repeat),
                    open_via,
                    pending_id: None,
                    candidate: None,
                }),
            })
        };
        let allowed = read(LaneVerdict::Allow, Some(OpenVia::Camera));
        assert_eq!(
            allowed.decision(),
            Some(Decision {
                allowed: true,
                open_via: Some(OpenVia::Camera)
            })
        );
        assert_eq!(allowed.members()["open_via"], "camera");
        assert_eq!(allowed.members()["reason"]["code"], "repeat");
        let denied = read(LaneVerdict::Deny, None).decision().expect("decided");
        assert!(!denied.allowed);
        let barrier = Annotation::Lane(LaneNote {
            lane: "south-in".into(),
            read: None,
        });
        assert_eq!(barrier.decision(), None);
        assert_eq!(barrier.members().len(), 1, "only the lane");
    }
}
