//! The versioned wire schema: the [`Envelope`] every recorded event travels
//! in, in the store and (later) on the uplink. This is the one serde boundary
//! with the outside world; internal types are mapped into it here and
//! nowhere else, so a refactor cannot silently change the platform contract.

use drivers::Class;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Version of the envelope layout. Bump it on any incompatible change of
/// the envelope or of a member it carries (docs/uplink.md lists them): 2
/// names a door event's door by its id (`body.door`), its controller number
/// moved to `door_number`.
pub const SCHEMA_VERSION: u32 = 2;

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope schema version ([`SCHEMA_VERSION`] when written).
    pub schema: u32,
    /// Time-ordered unique id (UUIDv7); the platform de-duplicates on it.
    pub id: Uuid,
    /// Per-gateway monotonic sequence number, assigned by the store when the
    /// event is appended (0 before that). Never reused, never goes back.
    pub seq: u64,
    /// Gateway wall-clock time of recording, Unix milliseconds.
    pub time_ms: i64,
    /// Whether the gateway's clock was synchronised when it stamped `time_ms`.
    pub clock_synced: bool,
    /// The device's own clock reading, when the device gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_time_ms: Option<i64>,
    /// The estate this gateway serves.
    pub estate_id: String,
    /// This gateway.
    pub gateway_id: String,
    /// The device the event is about (`gateway` for the gateway itself).
    pub device_id: String,
    /// Event kind, e.g. `point_value`, `threshold_alarm`, `store_quarantined`.
    pub kind: String,
    /// Priority class.
    pub class: Class,
    /// Kind-specific body.
    pub body: serde_json::Value,
}

impl Envelope {
    /// Serialised size in bytes, as the store accounts for it.
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self).map(|v| v.len()).unwrap_or(0)
    }

    /// An access-class event of `kind` from `device` for unit tests, stored
    /// as number `seq` at `seq` seconds past the epoch.
    #[cfg(test)]
    pub(crate) fn for_test(seq: u64, kind: &str, device: &str, body: serde_json::Value) -> Self {
        Envelope {
            schema: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            seq,
            time_ms: 1_000 * seq as i64,
            clock_synced: true,
            device_time_ms: None,
            estate_id: "e".into(),
            gateway_id: "g".into(),
            device_id: device.into(),
            kind: kind.into(),
            class: drivers::Class::Access,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_through_json_and_omits_absent_device_time() {
        let env = Envelope {
            schema: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            seq: 3,
            time_ms: 1_764_000_000_000,
            clock_synced: true,
            device_time_ms: None,
            estate_id: "e1".into(),
            gateway_id: "g1".into(),
            device_id: "tank-1".into(),
            kind: "point_value".into(),
            class: Class::Telemetry,
            body: serde_json::json!({"point": "level", "value": 1.0, "unit": "m"}),
        };
        let text = serde_json::to_string(&env).expect("serialises");
        assert!(!text.contains("device_time_ms"));
        assert!(text.contains(r#""class":"telemetry""#));
        let back: Envelope = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, env);
    }
}
