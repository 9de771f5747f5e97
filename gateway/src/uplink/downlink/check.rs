//! The pure side of the downlink: a command parsed, its signature verified
//! ([`super::super::sign`]) and its issue time, expiry and lifetime checked
//! against a clock reading it is given ([`Checker`]), the reasons a message
//! is refused ([`Refusal`]), and the per-interval aggregation of refusals
//! ([`RefusalWindow`]). No IO, no clock.

use std::collections::BTreeMap;
use std::time::Duration;

use drivers::Command;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::super::sign::{self, SignatureError};
use crate::config::Secret;
use crate::events::CommandRefused;
#[cfg(test)]
use crate::events::GatewayEvent;
#[cfg(test)]
use serde_json::json;

/// How far in the future an issue time may be (clock skew).
const MAX_SKEW_MS: i64 = 60_000;
/// Longest accepted command id.
const MAX_ID_LEN: usize = 128;

/// What a valid command asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A device command through the pipeline.
    Device {
        /// The device.
        device_id: String,
        /// The command.
        command: Command,
    },
    /// Ask the platform for full snapshots (of one list, or all).
    ResyncLists(Option<String>),
    /// Publish the telemetry snapshot on `…/telemetry`.
    RequestTelemetry,
}

/// A verified, current command.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformCommand {
    /// Its id (unique per gateway; replays are refused).
    pub id: String,
    /// When the platform issued it (Unix ms).
    pub issued_ms: i64,
    /// When it expires (Unix ms).
    pub expires_ms: i64,
    /// The action's wire name.
    pub action_name: String,
    /// What to do.
    pub action: Action,
    /// Who at the platform asked, if given (`issuer`).
    pub issuer: Option<String>,
    /// Why, if given (`reason`).
    pub reason: Option<String>,
}

/// A verified, current list sync.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedSync {
    /// Its id (unique per gateway; replays are refused).
    pub id: String,
    /// Until when its id is remembered (its issue time plus the longest
    /// lifetime: after that it would be refused as expired anyway).
    pub remember_until: i64,
    /// The message.
    pub message: Map<String, Value>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a JSON object with the required members.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The gateway has no command key configured.
    #[error("no command key configured")]
    NoKey,
    /// The signature is missing, malformed or wrong.
    #[error("signature: {0}")]
    Signature(SignatureError),
    /// `expires_ms` has passed.
    #[error("expired")]
    Expired,
    /// `issued_ms` is in the future (beyond the allowed skew).
    #[error("issued in the future")]
    NotYetValid,
    /// `expires_ms - issued_ms` exceeds the configured maximum.
    #[error("lifetime longer than allowed")]
    LifetimeTooLong,
    /// A door pulse longer than `[uplink] door_pulse_max` (milliseconds).
    #[error("door pulse longer than the allowed {0} ms")]
    PulseTooLong(u64),
    /// The id was seen before.
    #[error("replayed id")]
    Replayed,
    /// An action this gateway does not know.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
}

impl Refusal {
    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::NoKey => "no_key",
            Refusal::Signature(SignatureError::Missing) => "unsigned",
            // Not a signature problem: the message cannot be signed at all.
            Refusal::Signature(SignatureError::Float) => "fractional_number",
            Refusal::Signature(_) => "bad_signature",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::LifetimeTooLong => "lifetime_too_long",
            Refusal::PulseTooLong(_) => "pulse_too_long",
            Refusal::Replayed => "replayed",
            Refusal::UnknownAction(_) => "unknown_action",
        }
    }
}

/// Verifies downlink messages (pure; the clock is a parameter).
#[derive(Debug, Clone)]
pub struct Checker {
    /// The per-gateway HMAC key.
    pub key: Option<Secret>,
    /// This estate.
    pub estate_id: String,
    /// This gateway.
    pub gateway_id: String,
    /// Longest accepted lifetime (ms).
    pub max_lifetime_ms: i64,
    /// Longest door pulse a command may ask for (ms).
    pub max_pulse_ms: u64,
}

/// The id of a message, when it has a usable one (for reporting refusals).
pub fn message_id(m: &Map<String, Value>) -> Option<String> {
    m.get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
        .map(str::to_owned)
}

fn object(payload: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Refusal::Malformed("not a JSON object".into())),
        Err(e) => Err(Refusal::Malformed(format!("not JSON: {e}"))),
    }
}

fn int(m: &Map<String, Value>, key: &str) -> Result<i64, Refusal> {
    m.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| Refusal::Malformed(format!("`{key}` must be an integer (Unix ms)")))
}

fn opt_str(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Checker {
    /// Parses and verifies a signed message (commands and syncs alike).
    pub fn verified(
        &self,
        payload: &[u8],
    ) -> Result<Map<String, Value>, (Option<String>, Refusal)> {
        let m = object(payload).map_err(|r| (None, r))?;
        let id = message_id(&m);
        let Some(key) = &self.key else {
            return Err((id, Refusal::NoKey));
        };
        sign::verify(
            key.expose().as_bytes(),
            &self.estate_id,
            &self.gateway_id,
            &m,
        )
        .map_err(|e| (id.clone(), Refusal::Signature(e)))?;
        if id.is_none() {
            return Err((
                None,
                Refusal::Malformed(format!(
                    "`id` must be a string of 1 to {MAX_ID_LEN} characters"
                )),
            ));
        }
        Ok(m)
    }

    /// Parses, verifies and checks a list sync at time `now_ms`: it needs
    /// `issued_ms`, not more than the allowed skew ahead and not older than
    /// the longest command lifetime (a sync that waited longer, in a
    /// broker's queue, is stale: the gateway asks for a fresh snapshot
    /// instead). Returns the message, its id and until when the id must be
    /// remembered.
    pub fn sync(
        &self,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedSync, (Option<String>, Refusal)> {
        let message = self.verified(payload)?;
        let id = message_id(&message).unwrap_or_default();
        let fail = |r: Refusal| (Some(id.clone()), r);
        let issued_ms = int(&message, "issued_ms").map_err(fail)?;
        if issued_ms > now_ms + MAX_SKEW_MS {
            return Err(fail(Refusal::NotYetValid));
        }
        let remember_until = issued_ms.saturating_add(self.max_lifetime_ms);
        if now_ms >= remember_until {
            return Err(fail(Refusal::Expired));
        }
        Ok(VerifiedSync {
            id,
            remember_until,
            message,
        })
    }

    /// Parses, verifies and checks a command at time `now_ms`.
    pub fn command(
        &self,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<PlatformCommand, (Option<String>, Refusal)> {
        let m = self.verified(payload)?;
        let id = message_id(&m).unwrap_or_default();
        let fail = |r: Refusal| (Some(id.clone()), r);
        let issued_ms = int(&m, "issued_ms").map_err(fail)?;
        let expires_ms = int(&m, "expires_ms").map_err(fail)?;
        if expires_ms <= issued_ms {
            return Err(fail(Refusal::Malformed(
                "`expires_ms` must be after `issued_ms`".into(),
            )));
        }
        if now_ms >= expires_ms {
            return Err(fail(Refusal::Expired));
        }
        if issued_ms > now_ms + MAX_SKEW_MS {
            return Err(fail(Refusal::NotYetValid));
        }
        // Checked: both ends come from the platform and may be extreme.
        if expires_ms
            .checked_sub(issued_ms)
            .is_none_or(|lifetime| lifetime > self.max_lifetime_ms)
        {
            return Err(fail(Refusal::LifetimeTooLong));
        }
        let action_name = opt_str(&m, "action")
            .ok_or_else(|| fail(Refusal::Malformed("`action` is missing".into())))?;
        let args = m
            .get("args")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let device = || {
            opt_str(&m, "device_id")
                .filter(|d| !d.is_empty())
                .ok_or_else(|| {
                    fail(Refusal::Malformed(format!(
                        "`{action_name}` needs `device_id`"
                    )))
                })
        };
        let action = match action_name.as_str() {
            "open_barrier" | "close_barrier" | "hold_open" | "release_hold" | "poll"
            | "pulse_door" => {
                let command = match action_name.as_str() {
                    "open_barrier" => Command::OpenBarrier,
                    "close_barrier" => Command::CloseBarrier,
                    "hold_open" => Command::HoldOpen,
                    "release_hold" => Command::ReleaseHold,
                    "poll" => Command::Poll,
                    _ => {
                        let duration_ms = match args.get("duration_ms") {
                            None | Some(Value::Null) => None,
                            Some(value) => Some(value.as_u64().ok_or_else(|| {
                                fail(Refusal::Malformed(
                                    "`duration_ms` must be a whole number of milliseconds".into(),
                                ))
                            })?),
                        };
                        if duration_ms.is_some_and(|ms| ms > self.max_pulse_ms) {
                            return Err(fail(Refusal::PulseTooLong(self.max_pulse_ms)));
                        }
                        Command::PulseDoor {
                            door: args
                                .get("door")
                                .and_then(Value::as_u64)
                                .and_then(|d| u8::try_from(d).ok()),
                            duration_ms,
                        }
                    }
                };
                Action::Device {
                    device_id: device()?,
                    command,
                }
            }
            "write_point" => {
                let point = opt_str(&args, "point").filter(|p| !p.is_empty());
                // Signed messages hold integers only (`sign`): a fractional
                // value comes as a decimal string, e.g. "0.38".
                let value = args.get("value").and_then(|v| match v {
                    Value::Bool(b) => Some(f64::from(u8::from(*b))),
                    Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                    other => other.as_f64(),
                });
                let (Some(point), Some(value)) = (point, value) else {
                    return Err(fail(Refusal::Malformed(
                        "`write_point` needs `args.point` and `args.value`: an integer, a boolean or a decimal string such as \"0.38\"".into(),
                    )));
                };
                Action::Device {
                    device_id: device()?,
                    command: Command::WritePoint { point, value },
                }
            }
            "resync_lists" => Action::ResyncLists(opt_str(&args, "list")),
            "request_telemetry" => Action::RequestTelemetry,
            other => return Err(fail(Refusal::UnknownAction(other.to_owned()))),
        };
        Ok(PlatformCommand {
            id: id.clone(),
            issued_ms,
            expires_ms,
            action_name,
            action,
            issuer: opt_str(&m, "issuer"),
            reason: opt_str(&m, "reason"),
        })
    }
}

/// How many sample ids an aggregated refusal keeps.
const SAMPLE_IDS: usize = 10;

/// Whether a refusal is handled on its own or only counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The first of an interval: log, record and answer it.
    Single,
    /// Counted into the interval's summary.
    Counted,
}

/// Aggregates refused downlink messages per interval (pure; the clock is a
/// parameter).
#[derive(Debug)]
pub struct RefusalWindow {
    interval: Duration,
    opened: Option<Instant>,
    count: u64,
    reasons: BTreeMap<&'static str, u64>,
    ids: Vec<String>,
    first_ms: i64,
    last_ms: i64,
}

impl RefusalWindow {
    /// A window of `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            opened: None,
            count: 0,
            reasons: BTreeMap::new(),
            ids: Vec::new(),
            first_ms: 0,
            last_ms: 0,
        }
    }

    /// Takes a refusal at `now`.
    pub fn admit(
        &mut self,
        now: Instant,
        now_ms: i64,
        code: &'static str,
        id: Option<&str>,
    ) -> Admission {
        if self.opened.is_none() {
            self.opened = Some(now);
            return Admission::Single;
        }
        if self.count == 0 {
            self.first_ms = now_ms;
        }
        self.count += 1;
        self.last_ms = now_ms;
        *self.reasons.entry(code).or_default() += 1;
        if let Some(id) = id
            && self.ids.len() < SAMPLE_IDS
        {
            self.ids.push(id.to_owned());
        }
        Admission::Counted
    }

    /// When the interval has ended at `now`: closes it and returns its
    /// summary event, if anything was counted.
    pub fn due(&mut self, now: Instant) -> Option<CommandRefused> {
        let opened = self.opened?;
        if now.duration_since(opened) < self.interval {
            return None;
        }
        self.opened = None;
        if self.count == 0 {
            return None;
        }
        let count = std::mem::take(&mut self.count);
        Some(CommandRefused::Aggregated {
            id: None,
            reason: "aggregated",
            detail: format!(
                "{count} more refused message(s) in {}s",
                self.interval.as_secs()
            ),
            count,
            reasons: std::mem::take(&mut self.reasons),
            sample_ids: std::mem::take(&mut self.ids),
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            via: "platform",
        })
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_is_one_event_per_interval_with_its_count() {
        let mut window = RefusalWindow::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(
            window.admit(t0, 1, "unsigned", Some("a")),
            Admission::Single
        );
        for n in 0..10_000u64 {
            let at = t0 + Duration::from_millis(n);
            let code = if n % 2 == 0 {
                "unsigned"
            } else {
                "bad_signature"
            };
            let id = format!("x{n}");
            assert_eq!(window.admit(at, 2, code, Some(&id)), Admission::Counted);
            assert_eq!(window.due(at), None, "nothing due inside the interval");
        }
        let summary =
            GatewayEvent::CommandRefused(window.due(t0 + Duration::from_secs(60)).expect("due"))
                .body();
        assert_eq!(summary["count"], 10_000);
        assert_eq!(summary["reasons"]["unsigned"], 5_000);
        assert_eq!(summary["reasons"]["bad_signature"], 5_000);
        assert_eq!(
            summary["sample_ids"].as_array().map(Vec::len),
            Some(SAMPLE_IDS)
        );
        // The next refusal opens a new interval and is handled on its own.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(window.due(later), None);
        assert_eq!(window.admit(later, 3, "expired", None), Admission::Single);
        // A quiet interval leaves no summary.
        assert_eq!(window.due(later + Duration::from_secs(60)), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000_000;

    fn checker(key: Option<&str>) -> Checker {
        Checker {
            key: key.map(|k| Secret::new(k.to_owned())),
            estate_id: "e".into(),
            gateway_id: "g".into(),
            max_lifetime_ms: 600_000,
            max_pulse_ms: 60_000,
        }
    }

    fn pulse(id: &str, duration_ms: Value) -> Value {
        json!({"id": id, "issued_ms": NOW, "expires_ms": NOW + 1000, "action": "pulse_door",
               "device_id": "door-1", "args": {"door": 1, "duration_ms": duration_ms}})
    }

    #[test]
    fn door_pulses_above_the_configured_cap_are_refused() {
        let c = checker(Some("k"));
        let check = |v: Value| {
            c.command(&signed("k", v), NOW)
                .map(|cmd| cmd.action)
                .map_err(|(_, r)| r)
        };
        assert!(check(pulse("p1", json!(60_000))).is_ok(), "at the cap");
        assert_eq!(
            check(pulse("p2", json!(60_001))),
            Err(Refusal::PulseTooLong(60_000))
        );
        assert_eq!(
            check(pulse("p3", json!(u64::MAX))).map_err(|r| r.code()),
            Err("pulse_too_long")
        );
        assert_eq!(
            check(pulse("p4", json!(-5))).map_err(|r| r.code()),
            Err("malformed"),
            "not a duration: refused, not ignored"
        );
        assert!(matches!(
            check(pulse("p5", Value::Null)),
            Ok(Action::Device {
                command: Command::PulseDoor {
                    duration_ms: None,
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn a_fractional_number_is_refused_for_what_it_is_and_set_points_come_as_decimal_strings() {
        let c = checker(Some("k"));
        let write = |value: Value| {
            json!({"id": "w1", "issued_ms": NOW, "expires_ms": NOW + 1000, "action": "write_point",
                   "device_id": "pump-room-1", "args": {"point": "pressure_setpoint", "value": value}})
        };
        // A float cannot be signed canonically: refused, and said so.
        let mut m = write(json!(1)).as_object().cloned().expect("object");
        m.insert("sig".into(), Value::String("0".repeat(64)));
        m["args"]["value"] = json!(0.38);
        let payload = Value::Object(m).to_string().into_bytes();
        let (_, refusal) = c.command(&payload, NOW).expect_err("a float is refused");
        assert_eq!(refusal.code(), "fractional_number");
        assert!(refusal.to_string().contains("fractional"), "{refusal}");
        // The same set-point as a decimal string is accepted.
        let cmd = c
            .command(&signed("k", write(json!("0.38"))), NOW)
            .expect("a decimal string");
        assert_eq!(
            cmd.action,
            Action::Device {
                device_id: "pump-room-1".into(),
                command: Command::WritePoint {
                    point: "pressure_setpoint".into(),
                    value: 0.38
                }
            }
        );
        for bad in [json!("abc"), json!("NaN"), json!("inf"), json!([1])] {
            let (_, refusal) = c
                .command(&signed("k", write(bad.clone())), NOW)
                .expect_err("not a number");
            assert_eq!(refusal.code(), "malformed", "{bad}");
        }
    }

    #[test]
    fn syncs_are_bounded_in_time() {
        let c = checker(Some("k"));
        let sync = |issued: Value| {
            json!({"id": "s1", "issued_ms": issued, "list": "blacklist", "type": "snapshot",
                   "version": 1, "rows": []})
        };
        let code = |v: Value| {
            c.sync(&signed("k", v), NOW)
                .map(|s| s.remember_until)
                .map_err(|(_, r)| r.code())
        };
        assert_eq!(code(sync(json!(NOW - 1000))), Ok(NOW - 1000 + 600_000));
        assert_eq!(code(sync(json!(NOW - 600_000))), Err("expired"));
        assert_eq!(
            code(sync(json!(NOW - 86_400_000))),
            Err("expired"),
            "a day old"
        );
        assert_eq!(code(sync(json!(NOW + 120_000))), Err("not_yet_valid"));
        assert_eq!(code(sync(Value::Null)), Err("malformed"));
        let mut no_time = sync(Value::Null);
        no_time.as_object_mut().expect("object").remove("issued_ms");
        assert_eq!(code(no_time), Err("malformed"));
        let (id, refusal) = c
            .sync(&signed("wrong", sync(json!(NOW))), NOW)
            .expect_err("bad signature");
        assert_eq!(
            (id.as_deref(), refusal.code()),
            (Some("s1"), "bad_signature")
        );
    }

    #[test]
    fn extreme_command_times_are_refused_without_overflow() {
        let c = checker(Some("k"));
        let code = |issued: i64, expires: i64| {
            c.command(&signed("k", open("c1", issued, expires)), NOW)
                .map(|_| ())
                .map_err(|(_, r)| r.code())
        };
        assert_eq!(code(i64::MIN, NOW + 1000), Err("lifetime_too_long"));
        assert_eq!(code(i64::MIN, i64::MAX), Err("lifetime_too_long"));
    }

    fn signed(key: &str, v: Value) -> Vec<u8> {
        let Value::Object(mut m) = v else {
            unreachable!("objects only")
        };
        let sig = sign::sign(key.as_bytes(), "e", "g", &m).expect("sign");
        m.insert("sig".into(), Value::String(sig));
        Value::Object(m).to_string().into_bytes()
    }

    fn open(id: &str, issued: i64, expires: i64) -> Value {
        json!({"id": id, "issued_ms": issued, "expires_ms": expires,
               "action": "open_barrier", "device_id": "lane-1", "issuer": "ops-li"})
    }

    #[test]
    fn a_valid_command_is_accepted() {
        let c = checker(Some("k"));
        let cmd = c
            .command(&signed("k", open("c1", NOW - 1000, NOW + 60_000)), NOW)
            .expect("valid");
        assert_eq!(cmd.id, "c1");
        assert_eq!(
            cmd.action,
            Action::Device {
                device_id: "lane-1".into(),
                command: Command::OpenBarrier
            }
        );
        assert_eq!(cmd.issuer.as_deref(), Some("ops-li"));
        let pulse = c
            .command(
                &signed(
                    "k",
                    json!({"id": "c2", "issued_ms": NOW, "expires_ms": NOW + 1000, "action": "pulse_door",
                           "device_id": "door-1", "args": {"door": 2, "duration_ms": 3000}}),
                ),
                NOW,
            )
            .expect("valid");
        assert_eq!(
            pulse.action,
            Action::Device {
                device_id: "door-1".into(),
                command: Command::PulseDoor {
                    door: Some(2),
                    duration_ms: Some(3000)
                }
            }
        );
    }

    #[test]
    fn unsigned_badly_signed_expired_and_odd_commands_are_refused() {
        let c = checker(Some("k"));
        let code = |payload: &[u8]| {
            c.command(payload, NOW)
                .map(|_| ())
                .map_err(|(_, r)| r.code())
        };
        let unsigned = open("c1", NOW, NOW + 1000).to_string().into_bytes();
        assert_eq!(code(&unsigned), Err("unsigned"));
        assert_eq!(
            code(&signed("wrong", open("c1", NOW, NOW + 1000))),
            Err("bad_signature")
        );
        assert_eq!(
            code(&signed("k", open("c1", NOW - 2000, NOW - 1))),
            Err("expired")
        );
        assert_eq!(
            code(&signed("k", open("c1", NOW + 120_000, NOW + 130_000))),
            Err("not_yet_valid")
        );
        assert_eq!(
            code(&signed("k", open("c1", NOW, NOW + 3_600_000))),
            Err("lifetime_too_long")
        );
        assert_eq!(code(b"not json"), Err("malformed"));
        assert_eq!(
            code(&signed(
                "k",
                json!({"id": "c1", "issued_ms": NOW, "expires_ms": NOW + 5, "action": "launch"})
            )),
            Err("unknown_action")
        );
        assert_eq!(
            code(&signed(
                "k",
                json!({"id": "c1", "issued_ms": NOW, "expires_ms": NOW + 5, "action": "open_barrier"})
            )),
            Err("malformed")
        );
        assert_eq!(
            checker(None)
                .command(&signed("k", open("c1", NOW, NOW + 1000)), NOW)
                .map_err(|(_, r)| r.code())
                .map(|_| ()),
            Err("no_key")
        );
        // The id of a refused message is reported when there is one.
        let (id, _) = c.command(&unsigned, NOW).expect_err("refused");
        assert_eq!(id.as_deref(), Some("c1"));
    }
}
