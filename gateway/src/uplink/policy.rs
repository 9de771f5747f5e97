//! What of an event leaves the box: the uplink's field policy
//! (`[privacy]` `uplink_names`, `uplink_houses`, `uplink_plates`). The store
//! keeps every event whole (the panel and the journal need it); the drain
//! hands the sink a copy this has been applied to, so a changed policy
//! holds for everything not yet sent. Pure.
//!
//! The personal fields are found by name, wherever they sit in a body (a
//! read's `reason`, an audit record): `holder` and `owner` are names;
//! `house` and `host_unit` are house numbers, and so is a call's `unit`
//! (elsewhere `unit` is a measuring unit); `plate`, `plate_normalised` and
//! `candidate` are plates. Images never travel in events: a snapshot is an
//! image name the platform fetches with its token.

use std::borrow::Cow;

use serde_json::Value;

use crate::config::{PlateDisclosure, UplinkDisclosure};
use crate::rules::erasure::mask_plate;
use crate::wire::Envelope;

/// Keys holding a person's name.
pub const NAME_KEYS: &[&str] = &["holder", "owner"];
/// Keys holding a house number.
pub const HOUSE_KEYS: &[&str] = &["house", "host_unit"];
/// Kinds whose top-level `unit` is the flat a call was for.
pub const CALL_UNIT_KINDS: &[&str] = &["call_started", "call_missed"];
/// Keys holding a plate.
pub const PLATE_KEYS: &[&str] = &["plate", "plate_normalised", "candidate"];

/// Whether `policy` changes anything of `envelope`.
fn touches(policy: UplinkDisclosure, envelope: &Envelope) -> bool {
    let mut keys: Vec<&str> = Vec::new();
    if !policy.names {
        keys.extend(NAME_KEYS);
    }
    if !policy.houses {
        keys.extend(HOUSE_KEYS);
        if CALL_UNIT_KINDS.contains(&envelope.kind.as_str()) && envelope.body.get("unit").is_some()
        {
            return true;
        }
    }
    if policy.plates == PlateDisclosure::Masked {
        keys.extend(PLATE_KEYS);
    }
    !keys.is_empty() && holds_any(&envelope.body, &keys)
}

fn holds_any(value: &Value, keys: &[&str]) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| keys.contains(&k.as_str()) || holds_any(v, keys)),
        Value::Array(items) => items.iter().any(|v| holds_any(v, keys)),
        _ => false,
    }
}

fn apply_to(policy: UplinkDisclosure, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if !policy.names {
                map.retain(|k, _| !NAME_KEYS.contains(&k.as_str()));
            }
            if !policy.houses {
                map.retain(|k, _| !HOUSE_KEYS.contains(&k.as_str()));
            }
            for (key, v) in map.iter_mut() {
                if policy.plates == PlateDisclosure::Masked
                    && PLATE_KEYS.contains(&key.as_str())
                    && let Value::String(plate) = v
                {
                    *plate = mask_plate(plate);
                } else {
                    apply_to(policy, v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| apply_to(policy, v)),
        _ => {}
    }
}

/// `envelope` as `policy` lets it leave the box.
pub fn apply(policy: UplinkDisclosure, envelope: &Envelope) -> Cow<'_, Envelope> {
    if !touches(policy, envelope) {
        return Cow::Borrowed(envelope);
    }
    let mut out = envelope.clone();
    if !policy.houses
        && CALL_UNIT_KINDS.contains(&out.kind.as_str())
        && let Value::Object(map) = &mut out.body
    {
        map.remove("unit");
    }
    apply_to(policy, &mut out.body);
    Cow::Owned(out)
}

/// A batch as `policy` lets it leave the box: borrowed when nothing in it
/// is personal (telemetry, alarms), so the common case copies nothing.
pub fn apply_batch(policy: UplinkDisclosure, batch: &[Envelope]) -> Cow<'_, [Envelope]> {
    if !batch.iter().any(|e| touches(policy, e)) {
        return Cow::Borrowed(batch);
    }
    Cow::Owned(
        batch
            .iter()
            .map(|e| apply(policy, e).into_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_names_and_houses_are_held_back_and_plates_go_whole() {
        let read = Envelope::for_test(
            7,
            "plate_read",
            "d1",
            serde_json::json!({"plate": "苏A8HK52", "plate_normalised": "苏A8HK52",
                "reason": {"code": "resident", "house": "3-2-1201"}, "decision": "allow"}),
        );
        let sent = apply(UplinkDisclosure::default(), &read);
        assert_eq!(
            sent.body,
            serde_json::json!({"plate": "苏A8HK52", "plate_normalised": "苏A8HK52",
                "reason": {"code": "resident"}, "decision": "allow"})
        );
        let card = Envelope::for_test(
            7,
            "card_read",
            "d1",
            serde_json::json!({"card": "3847561", "holder": "王芳", "reason": {"code": "card", "house": "3-2-1201"}}),
        );
        let sent = apply(UplinkDisclosure::default(), &card);
        assert_eq!(
            sent.body,
            serde_json::json!({"card": "3847561", "reason": {"code": "card"}})
        );
        let call = Envelope::for_test(
            7,
            "call_started",
            "d1",
            serde_json::json!({"call": "c1", "unit": "3-2-1201"}),
        );
        assert_eq!(
            apply(UplinkDisclosure::default(), &call).body,
            serde_json::json!({"call": "c1"})
        );
    }

    #[test]
    fn a_measuring_unit_and_telemetry_are_left_alone_without_a_copy() {
        let value = Envelope::for_test(
            7,
            "point_value",
            "d1",
            serde_json::json!({"point": "level", "value": 1.5, "unit": "m"}),
        );
        assert!(matches!(
            apply(UplinkDisclosure::default(), &value),
            Cow::Borrowed(_)
        ));
        let batch = vec![value.clone(), value];
        assert!(matches!(
            apply_batch(UplinkDisclosure::default(), &batch),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn an_estate_may_send_names_and_houses_or_mask_plates() {
        let read = Envelope::for_test(
            7,
            "plate_read",
            "d1",
            serde_json::json!({"plate": "苏A8HK52", "candidate": "苏A8HK53",
                "reason": {"code": "resident", "house": "3-2-1201"}}),
        );
        let open = UplinkDisclosure {
            names: true,
            houses: true,
            plates: PlateDisclosure::Full,
        };
        assert!(matches!(apply(open, &read), Cow::Borrowed(_)));
        let masked = UplinkDisclosure {
            plates: PlateDisclosure::Masked,
            ..open
        };
        assert_eq!(
            apply(masked, &read).body,
            serde_json::json!({"plate": "苏A8***2", "candidate": "苏A8***3",
                "reason": {"code": "resident", "house": "3-2-1201"}})
        );
    }
}
