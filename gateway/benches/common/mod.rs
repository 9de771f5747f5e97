//! What the store benchmarks share: the queue they fill.

use drivers::Class;
use gateway::wire::{Envelope, SCHEMA_VERSION};
use uuid::Uuid;

/// Event `i` of a benchmark queue: one access event in ten, the rest a tank's
/// telemetry (about 270 bytes encoded).
pub(crate) fn event(i: u64) -> Envelope {
    let class = if i.is_multiple_of(10) {
        Class::Access
    } else {
        Class::Telemetry
    };
    Envelope {
        schema: SCHEMA_VERSION,
        id: Uuid::now_v7(),
        seq: 0,
        time_ms: 1_764_000_000_000 + i as i64,
        clock_synced: true,
        device_time_ms: None,
        estate_id: "estate-0042".into(),
        gateway_id: "gw-0042-a".into(),
        device_id: format!("tank-{}", i % 8),
        kind: "point_value".into(),
        class,
        body: serde_json::json!({ "point": "level", "value": (i % 1000) as f64 / 100.0, "unit": "m" }),
    }
}
