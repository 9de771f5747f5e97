//! What the benchmarks share: the queue the store benchmarks fill, and
//! the numbers read from `/proc`. Each benchmark uses a part of it.
#![allow(dead_code)]

use anyhow::Context;
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

/// The number after `field` in `/proc/{pid}/{file}` (`pid` may be `self`):
/// `VmRSS:` or `VmHWM:` in `status` (KiB), `write_bytes:` in `io` (bytes).
pub(crate) fn proc_field(
    pid: impl std::fmt::Display,
    file: &str,
    field: &str,
) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/{file}");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .with_context(|| format!("{field} in {path}"))
}

/// User + system CPU time of process `pid` (`/proc/{pid}/stat`, at the
/// kernel's 100 Hz clock tick).
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(std::time::Duration::from_millis(ticks * 10))
}

/// The number in environment variable `name`, or `default`.
pub(crate) fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
