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
    /// The device itself raised or cleared an alarm.
    DeviceAlarm {
        /// Short machine-readable code, e.g. `tamper`.
        code: String,
        /// Human-readable description.
        message: String,
        /// `true` when raised, `false` when cleared.
        active: bool,
    },
}

impl DeviceEvent {
    /// The event's kind, as recorded in the envelope.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceEvent::PointValue { .. } => "point_value",
            DeviceEvent::DeviceAlarm { .. } => "device_alarm",
        }
    }

    /// The event's priority class.
    pub fn class(&self) -> Class {
        match self {
            DeviceEvent::PointValue { .. } => Class::Telemetry,
            DeviceEvent::DeviceAlarm { .. } => Class::Alarm,
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
