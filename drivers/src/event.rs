//! What devices report: [`DeviceEvent`], and the priority [`Class`] that
//! decides how the store treats an event when it is full.
//!
//! These are internal types. The stored and uplinked envelope (the wire
//! schema) lives in the gateway's `wire` module; a device event becomes that
//! envelope's `kind` and `body` there.

use serde::Serialize;

/// Priority class of a recorded event.
///
/// The store never drops `Access`, `Alarm` or `Audit` silently; `Telemetry`
/// is shed first when space runs out.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Somebody or something passed (or was refused at) a gate or door.
    Access,
    /// Something needs a person's attention.
    Alarm,
    /// A person or the platform did something (manual open, configuration).
    Audit,
    /// Measurements and routine device state.
    Telemetry,
}

impl Class {
    /// Every class, in priority order.
    pub const ALL: [Class; 4] = [Class::Access, Class::Alarm, Class::Audit, Class::Telemetry];

    /// The class's wire name (`access`, `alarm`, `audit`, `telemetry`).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Access => "access",
            Class::Alarm => "alarm",
            Class::Audit => "audit",
            Class::Telemetry => "telemetry",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Stable small integer used as a storage key.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Inverse of [`Class::index`].
    pub fn from_index(i: usize) -> Option<Class> {
        Class::ALL.get(i).copied()
    }

    /// Whether the store may drop events of this class when full.
    pub fn is_sheddable(self) -> bool {
        self == Class::Telemetry
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Colour of a licence plate (Chinese plates: blue ordinary, yellow large
/// or coach, green new-energy, white police/military, black foreign/embassy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PlateColour {
    /// Not reported or not recognised.
    #[default]
    Unknown,
    /// 蓝牌: ordinary small vehicles.
    Blue,
    /// 黄牌: large vehicles, coaches, learners.
    Yellow,
    /// 白牌: police, armed police, military.
    White,
    /// 黑牌: foreign-owned, embassy, HK/Macau cross-border.
    Black,
    /// 绿牌: new-energy small vehicles (gradient green).
    Green,
    /// 黄绿牌: new-energy large vehicles.
    YellowGreen,
}

/// Position of a barrier arm, as the lane's limit switches and timers tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmState {
    /// Down, at the closed limit.
    Closed,
    /// Rising.
    Opening,
    /// Up, at the open limit.
    Open,
    /// Falling.
    Closing,
    /// Held up on command (fire, emergency, events) until released.
    HeldOpen,
    /// Position unknown (no limit reached in time, or the module is offline).
    Unknown,
}

/// A door alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorAlarmKind {
    /// Open longer than allowed (propped open).
    HeldOpen,
    /// Opened without a grant, an exit-button press or a remote open.
    ForcedOpen,
}

/// A point's value in engineering units.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reading {
    /// A coil, discrete input, bit or `bool` register.
    Bool(bool),
    /// A scaled number.
    Number(f64),
    /// A string register block.
    Text(String),
}

impl Reading {
    /// The value as a number (`true` = 1), for gauges, trends and alarms.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Reading::Bool(b) => Some(f64::from(u8::from(*b))),
            Reading::Number(n) => Some(*n),
            Reading::Text(_) => None,
        }
    }
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reading::Bool(b) => write!(f, "{}", u8::from(*b)),
            Reading::Number(n) => write!(f, "{n}"),
            Reading::Text(t) => f.write_str(t),
        }
    }
}

/// How much a point's value can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Read in its poll group's last cycle.
    Good,
    /// Not read for longer than its group's staleness limit (the device
    /// is backed off, or the bus is busy); the value is the last good one.
    Stale,
    /// The last read failed (no answer, an exception, a garbled reply).
    CommFailed,
}

impl Quality {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Stale => "stale",
            Quality::CommFailed => "comm_failed",
        }
    }
}

/// One point in a [`DeviceEvent::PointReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointSample {
    /// Point name, unique within the device.
    pub point: String,
    /// The last good value, if there ever was one.
    pub value: Option<Reading>,
    /// How far to trust it.
    pub quality: Quality,
}

/// How a door station's door was unlocked (对讲 unlock methods).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlockMethod {
    /// A card at the station's reader.
    Card,
    /// A PIN or password typed at the station (the code itself is never kept).
    Pin,
    /// Face recognition at the station.
    Face,
    /// A fingerprint at the station.
    Fingerprint,
    /// A resident's indoor monitor (室内机) during or outside a call.
    IndoorMonitor,
    /// The property's app (a resident opening for a visitor).
    App,
    /// A remote open the station cannot attribute further (its SDK, a master
    /// station, or the gateway).
    Remote,
    /// The exit button inside the door.
    ExitButton,
    /// The station did not say.
    Unknown,
}

/// Who answered a door-station call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answerer {
    /// A resident's indoor monitor (室内机).
    IndoorMonitor,
    /// The guard room's master station (管理机).
    MasterStation,
    /// A resident's phone app.
    App,
    /// The station did not say.
    Unknown,
}

/// A surveillance camera's alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraAlarmKind {
    /// Covered, moved, blinded or defocused.
    Tamper,
    /// The video source lost its signal.
    VideoLoss,
    /// The camera's clock is off the gateway's by more than allowed.
    ClockDrift,
}

/// A surveillance camera's routine signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraSignalKind {
    /// Motion in the picture (debounced episodes).
    Motion,
    /// A digital input of the camera.
    DigitalInput,
}

/// An access controller's own decision about a credential, recorded next
/// to the gateway's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ControllerVerdict {
    /// Whether the controller let the card through.
    pub granted: bool,
    /// The controller's reason (`swipe_pass`, `no_privilege` …).
    pub reason: String,
    /// The record's index in the controller's log.
    pub index: u32,
}

/// Something a device reported.
///
/// Each variant is one event `kind` (its snake_case name); the variant's
/// fields are the event body. Device families add variants as they land.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeviceEvent {
    /// A measured value of a named point (tank level, pump pressure …).
    PointValue {
        /// Point name, unique within the device.
        point: String,
        /// The value in `unit`.
        value: f64,
        /// Unit of measure, e.g. `m`, `MPa`.
        unit: String,
    },
    /// Points of a Modbus point table that changed beyond their deadband
    /// or quality (by exception), or every point (`full`, periodically).
    /// The envelope's device time is when the poll answered.
    PointReport {
        /// `true` for the periodic full report.
        full: bool,
        /// The points reported.
        samples: Vec<PointSample>,
    },
    /// A point's threshold or state alarm was raised or cleared.
    PointAlarm {
        /// Point name.
        point: String,
        /// `high`, `low` or `state`.
        alarm: String,
        /// `true` when raised, `false` when cleared.
        active: bool,
        /// The value that raised or cleared it (booleans as 0/1).
        value: f64,
        /// The threshold crossed, for `high`/`low`.
        limit: Option<f64>,
    },
    /// The device itself raised or cleared an alarm.
    DeviceAlarm {
        /// Short machine-readable code, e.g. `tamper`.
        code: String,
        /// Human-readable description.
        message: String,
        /// `true` when raised, `false` when cleared.
        active: bool,
    },
    /// The device (or the module behind it) went offline or came back.
    DeviceLink {
        /// `true` when it answers again.
        online: bool,
        /// Why it is considered offline, or what answered.
        detail: String,
    },
    /// A plate camera read a licence plate.
    PlateRead {
        /// The plate as read, colour prefix removed (`苏A8HK52`), or an
        /// empty string for a vehicle without a readable plate (无牌车).
        plate: String,
        /// Plate colour.
        colour: PlateColour,
        /// Recognition confidence 0–100, when the camera gives one.
        confidence: Option<u8>,
        /// What triggered the read: `video`, `loop`, `software`, `virtual_loop`, `other`.
        trigger: String,
        /// The camera's own id of this read (Vzenith `plateid`, Hikvision
        /// `UUID`), used to recognise resends.
        read_id: Option<String>,
        /// A stored read the camera re-sends after being offline.
        resend: bool,
        /// Saved image files (names relative to the image directory).
        images: Vec<String>,
    },
    /// A barrier arm changed position.
    BarrierState {
        /// The new position.
        state: ArmState,
    },
    /// The loop detector (地感) under the arm changed.
    LoopState {
        /// `true` while a vehicle is on the loop.
        occupied: bool,
    },
    /// The barrier did not do what it was told (limit not reached in time,
    /// a command refused by the interlock, a module error).
    BarrierFault {
        /// What went wrong.
        message: String,
    },
    /// A card (or code) was presented at a reader.
    CardRead {
        /// Card number (decimal) or credential as the reader gives it.
        card: String,
        /// Reader format: `w26`, `w34`, `serial`, `wg`, `keypad`.
        format: String,
        /// Facility code, for Wiegand formats that carry one.
        facility: Option<u32>,
        /// Door number on a multi-door controller (1–4), when known.
        door: Option<u8>,
        /// What an access controller decided by itself (WG controllers
        /// check their own card lists), when the reader is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        controller: Option<ControllerVerdict>,
    },
    /// A record from an access controller's own log that the gateway did
    /// not hear live (made while the gateway was down): recorded as
    /// history, never acted on.
    AccessHistory {
        /// The record's index in the controller's log.
        index: u32,
        /// What the record is: `swipe`, `door`, `alarm`.
        record: String,
        /// Card number (decimal), for swipes.
        card: Option<String>,
        /// Door number on the controller.
        door: Option<u8>,
        /// Whether the controller let the card through.
        granted: bool,
        /// The controller's reason (`swipe_pass`, `no_privilege` …).
        reason: String,
        /// The controller's local time of the record (`YYYY-MM-DD hh:mm:ss`),
        /// or `None` when its clock sent something unreadable.
        controller_time: Option<String>,
    },
    /// A reader delivered something that is not a credential (bad parity,
    /// wrong length, bad checksum).
    ReadRejected {
        /// Why it was rejected (for several, the first one's reason).
        reason: String,
        /// How many rejected reads this event stands for (noise is
        /// aggregated per interval).
        count: u32,
    },
    /// A door contact opened or closed.
    DoorState {
        /// `true` when open.
        open: bool,
        /// Door number on a multi-door controller, when known.
        door: Option<u8>,
    },
    /// A door alarm was raised or cleared.
    DoorAlarm {
        /// Which alarm.
        alarm: DoorAlarmKind,
        /// `true` when raised, `false` when cleared.
        active: bool,
        /// Door number on a multi-door controller, when known.
        door: Option<u8>,
    },
    /// The exit button (出门按钮) was pressed.
    ExitButton {
        /// Door number, when known.
        door: Option<u8>,
    },
    /// A door relay was energised for a pulse.
    RelayPulse {
        /// How long, in milliseconds.
        duration_ms: u64,
        /// Door number, when known.
        door: Option<u8>,
    },
    /// A surveillance camera's motion episode started or ended, or one of
    /// its digital inputs changed.
    CameraSignal {
        /// Which signal.
        signal: CameraSignalKind,
        /// `true` when it starts, `false` when it ends.
        active: bool,
        /// The camera's source token (video source, input), if it gave one.
        source: String,
    },
    /// A surveillance camera raised or cleared an alarm.
    CameraAlarm {
        /// Which alarm.
        alarm: CameraAlarmKind,
        /// `true` when raised, `false` when cleared.
        active: bool,
        /// The camera's source token, if it gave one.
        source: String,
        /// What was measured (for a clock drift: the offset).
        detail: String,
    },
    /// A surveillance camera's snapshot of an access event, recorded after
    /// that event (it never delays a barrier or a door).
    CameraSnapshot {
        /// The saved image (name relative to the image directory).
        image: String,
        /// The `seq` of the access event the snapshot belongs to.
        of_seq: u64,
        /// The envelope `id` of that event (what the platform de-duplicates
        /// on and keys its events by).
        of_id: String,
        /// The lane or door where the event happened.
        place: String,
    },
    /// A visitor called from a door station (门口机).
    CallStarted {
        /// The call's id, unique per station (the station's own where it
        /// gives one).
        call: String,
        /// The unit or room called (`3-1-502`), when the station says.
        unit: Option<String>,
        /// A snapshot of the caller (an image file name), when one was taken.
        snapshot: Option<String>,
    },
    /// A call was answered.
    CallAnswered {
        /// The call's id.
        call: String,
        /// Where it was answered.
        by: Answerer,
    },
    /// An answered call ended.
    CallEnded {
        /// The call's id.
        call: String,
        /// How long it lasted from the first ring, when known.
        duration_ms: Option<u64>,
    },
    /// A call rang out (or was hung up by the caller) without an answer.
    CallMissed {
        /// The call's id.
        call: String,
        /// The unit or room called, when known.
        unit: Option<String>,
    },
    /// A door station unlocked its door.
    StationUnlock {
        /// How.
        method: UnlockMethod,
        /// Who, where the station says: a card number, a person number or
        /// the room of the indoor monitor. Never a PIN.
        who: Option<String>,
        /// Door number on a station with several locks, when known.
        door: Option<u8>,
    },
}

impl DeviceEvent {
    /// The event's kind, as recorded in the envelope.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceEvent::PointValue { .. } => "point_value",
            DeviceEvent::PointReport { .. } => "point_report",
            DeviceEvent::PointAlarm { .. } => "point_alarm",
            DeviceEvent::DeviceAlarm { .. } => "device_alarm",
            DeviceEvent::DeviceLink { .. } => "device_link",
            DeviceEvent::PlateRead { .. } => "plate_read",
            DeviceEvent::BarrierState { .. } => "barrier_state",
            DeviceEvent::LoopState { .. } => "loop_state",
            DeviceEvent::BarrierFault { .. } => "barrier_fault",
            DeviceEvent::CardRead { .. } => "card_read",
            DeviceEvent::AccessHistory { .. } => "access_history",
            DeviceEvent::ReadRejected { .. } => "read_rejected",
            DeviceEvent::DoorState { .. } => "door_state",
            DeviceEvent::DoorAlarm { .. } => "door_alarm",
            DeviceEvent::ExitButton { .. } => "exit_button",
            DeviceEvent::RelayPulse { .. } => "relay_pulse",
            DeviceEvent::CameraSignal { .. } => "camera_signal",
            DeviceEvent::CameraAlarm { .. } => "camera_alarm",
            DeviceEvent::CameraSnapshot { .. } => "camera_snapshot",
            DeviceEvent::CallStarted { .. } => "call_started",
            DeviceEvent::CallAnswered { .. } => "call_answered",
            DeviceEvent::CallEnded { .. } => "call_ended",
            DeviceEvent::CallMissed { .. } => "call_missed",
            DeviceEvent::StationUnlock { .. } => "station_unlock",
        }
    }

    /// The event's priority class.
    pub fn class(&self) -> Class {
        match self {
            DeviceEvent::PointValue { .. }
            | DeviceEvent::PointReport { .. }
            | DeviceEvent::LoopState { .. }
            | DeviceEvent::CameraSignal { .. } => Class::Telemetry,
            DeviceEvent::PointAlarm { .. }
            | DeviceEvent::DeviceAlarm { .. }
            | DeviceEvent::CameraAlarm { .. }
            | DeviceEvent::DeviceLink { .. }
            | DeviceEvent::BarrierFault { .. }
            | DeviceEvent::DoorAlarm { .. } => Class::Alarm,
            DeviceEvent::PlateRead { .. }
            | DeviceEvent::BarrierState { .. }
            | DeviceEvent::CardRead { .. }
            | DeviceEvent::AccessHistory { .. }
            | DeviceEvent::ReadRejected { .. }
            | DeviceEvent::DoorState { .. }
            | DeviceEvent::ExitButton { .. }
            | DeviceEvent::RelayPulse { .. }
            | DeviceEvent::CameraSnapshot { .. }
            | DeviceEvent::CallStarted { .. }
            | DeviceEvent::CallAnswered { .. }
            | DeviceEvent::CallEnded { .. }
            | DeviceEvent::CallMissed { .. }
            | DeviceEvent::StationUnlock { .. } => Class::Access,
        }
    }

    /// The event body: the variant's fields as a JSON object, without `kind`.
    pub fn body(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.remove("kind");
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_round_trips_through_its_name_and_index() {
        for class in Class::ALL {
            assert_eq!(Class::parse(class.as_str()), Some(class));
            assert_eq!(Class::from_index(class.index()), Some(class));
        }
        assert_eq!(Class::parse("bogus"), None);
        assert!(Class::Telemetry.is_sheddable());
        assert!(!Class::Access.is_sheddable());
    }

    #[test]
    fn kind_matches_the_serialised_tag_for_every_variant() {
        let events = [
            DeviceEvent::DeviceLink {
                online: false,
                detail: "timeout".into(),
            },
            DeviceEvent::PlateRead {
                plate: "苏A8HK52".into(),
                colour: PlateColour::Blue,
                confidence: Some(90),
                trigger: "video".into(),
                read_id: None,
                resend: false,
                images: vec![],
            },
            DeviceEvent::BarrierState {
                state: ArmState::Open,
            },
            DeviceEvent::LoopState { occupied: true },
            DeviceEvent::BarrierFault {
                message: "x".into(),
            },
            DeviceEvent::CardRead {
                card: "1".into(),
                format: "w26".into(),
                facility: None,
                door: None,
                controller: None,
            },
            DeviceEvent::AccessHistory {
                index: 7,
                record: "swipe".into(),
                card: Some("1".into()),
                door: Some(1),
                granted: true,
                reason: "swipe_pass".into(),
                controller_time: None,
            },
            DeviceEvent::ReadRejected {
                reason: "parity".into(),
                count: 1,
            },
            DeviceEvent::DoorState {
                open: true,
                door: Some(1),
            },
            DeviceEvent::DoorAlarm {
                alarm: DoorAlarmKind::HeldOpen,
                active: true,
                door: None,
            },
            DeviceEvent::ExitButton { door: None },
            DeviceEvent::PointReport {
                full: true,
                samples: vec![PointSample {
                    point: "outlet_pressure".into(),
                    value: Some(Reading::Number(0.42)),
                    quality: Quality::Good,
                }],
            },
            DeviceEvent::PointAlarm {
                point: "outlet_pressure".into(),
                alarm: "low".into(),
                active: true,
                value: 0.1,
                limit: Some(0.2),
            },
            DeviceEvent::CameraSignal {
                signal: CameraSignalKind::Motion,
                active: true,
                source: "vs0".into(),
            },
            DeviceEvent::CameraAlarm {
                alarm: CameraAlarmKind::Tamper,
                active: true,
                source: String::new(),
                detail: String::new(),
            },
            DeviceEvent::CameraSnapshot {
                image: "a.jpg".into(),
                of_seq: 1,
                of_id: "0190a0b0-0000-7000-8000-000000000001".into(),
                place: "south".into(),
            },
            DeviceEvent::RelayPulse {
                duration_ms: 3000,
                door: None,
            },
            DeviceEvent::CallStarted {
                call: "1".into(),
                unit: Some("3-1-502".into()),
                snapshot: None,
            },
            DeviceEvent::CallAnswered {
                call: "1".into(),
                by: Answerer::IndoorMonitor,
            },
            DeviceEvent::CallEnded {
                call: "1".into(),
                duration_ms: Some(12_000),
            },
            DeviceEvent::CallMissed {
                call: "2".into(),
                unit: None,
            },
            DeviceEvent::StationUnlock {
                method: UnlockMethod::Pin,
                who: None,
                door: Some(1),
            },
        ];
        for event in events {
            let tagged = serde_json::to_value(&event).expect("serialises");
            assert_eq!(tagged["kind"], event.kind());
            assert!(event.body().get("kind").is_none());
        }
    }

    #[test]
    fn body_carries_fields_but_not_kind() {
        let event = DeviceEvent::PointValue {
            point: "level".into(),
            value: 1.5,
            unit: "m".into(),
        };
        assert_eq!(event.kind(), "point_value");
        assert_eq!(event.class(), Class::Telemetry);
        assert_eq!(
            event.body(),
            serde_json::json!({"point": "level", "value": 1.5, "unit": "m"})
        );
    }
}
