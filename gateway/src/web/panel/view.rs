//! How recorded events look on the panel: one [`EventView`] per envelope,
//! used by the server-rendered rows and the server-sent events alike (every
//! kind summarised in the viewer's language, plate reads with their verdict
//! and reason), one [`AuditView`] per audit record, and local time
//! formatting (in the estate's zone, `[gateway] time_zone`, whatever the
//! box's own zone is).

use drivers::Class;
use serde::Serialize;

use super::i18n::Strings;
use crate::pipeline::GATEWAY_DEVICE;
use crate::rules::vehicle::Reason;
use crate::supervisor::Drivers;
use crate::vocab::time::estate_zone;
use crate::wire::Envelope;

/// The longest text shown for one field of an event (names typed at a
/// login form can be anything).
const MAX_FIELD_CHARS: usize = 64;

/// A device's name as people read it (the gateway itself is "网关").
pub(crate) fn device_name(t: &'static Strings, drivers: &Drivers, id: &str) -> String {
    if id == GATEWAY_DEVICE {
        return t.gateway_name.to_owned();
    }
    drivers
        .get(id)
        .map_or_else(|| truncate(id, MAX_FIELD_CHARS), |d| d.name.clone())
}

/// A vehicle reason as the guard reads it.
pub(crate) fn reason_label(t: &'static Strings, reason: &Reason) -> String {
    match reason {
        Reason::Resident { house } => format!("{} {house}", t.reason_resident),
        Reason::Visitor { host_unit, .. } => format!("{} {host_unit}", t.reason_visitor),
        Reason::Blacklisted { reason } => format!("{} ({reason})", t.reason_blacklisted),
        Reason::Expired => t.reason_expired.to_owned(),
        Reason::NotYetValid => t.reason_not_yet_valid.to_owned(),
        Reason::PassUsed => t.reason_pass_used.to_owned(),
        Reason::LaneNotAllowed => t.reason_lane_not_allowed.to_owned(),
        Reason::UnknownPlate => t.reason_unknown_plate.to_owned(),
        Reason::LowConfidence { confidence } => {
            format!("{} ({confidence})", t.reason_low_confidence)
        }
        Reason::FuzzyMatch { candidate } => format!("{} {candidate}", t.reason_fuzzy),
        Reason::NoPlate => t.reason_no_plate.to_owned(),
        Reason::ExitOpen => t.reason_exit_open.to_owned(),
        Reason::ExitKnown => t.reason_exit_known.to_owned(),
        Reason::ExitUnknown => t.reason_exit_unknown.to_owned(),
        Reason::BarrierFailed { detail } => format!("{} ({detail})", t.reason_barrier_failed),
    }
}

/// `(css class, label)` of a recorded decision (`allow`/`grant`, `deny`,
/// `ask_guard`); `("", "")` when the body has none.
fn verdict_of(t: &'static Strings, body: &serde_json::Value) -> (&'static str, &'static str) {
    match body.get("decision").and_then(|d| d.as_str()) {
        Some("allow" | "grant") => ("allow", t.verdict_allow),
        Some("deny") => ("deny", t.verdict_deny),
        Some("ask_guard") => ("ask", t.verdict_ask),
        _ => ("", ""),
    }
}

/// The reason of a recorded decision, in words: a vehicle reason, or a
/// door reason's label (with the house or the block reason it carries).
fn decision_reason(t: &'static Strings, body: &serde_json::Value) -> String {
    let Some(reason) = body.get("reason") else {
        return String::new();
    };
    if let Ok(vehicle) = serde_json::from_value::<Reason>(reason.clone()) {
        return reason_label(t, &vehicle);
    }
    let code = reason.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let label = t.door_reason(code);
    let extra = ["house", "reason"]
        .iter()
        .find_map(|k| reason.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("");
    if extra.is_empty() {
        label.to_owned()
    } else {
        format!("{label} {extra}")
    }
}

/// `YYYY-MM-DD HH:MM:SS` in the estate's time zone.
pub fn local_time(ms: i64) -> String {
    estate_zone().format(ms, "%Y-%m-%d %H:%M:%S")
}

/// Start of the day `YYYY-MM-DD` in the estate's time zone (Unix ms).
pub(crate) fn day_start_ms(date: &str) -> Option<i64> {
    estate_zone().day_start_ms(date)
}

/// A stamp for a downloaded file's name (`20261231-1830`), local time now.
pub(crate) fn file_stamp() -> String {
    estate_zone().format(drivers::contract::now_ms(), "%Y%m%d-%H%M")
}

/// One event as a row.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventView {
    pub(crate) seq: u64,
    pub(crate) time: String,
    pub(crate) device: String,
    pub(crate) kind_label: String,
    pub(crate) class: &'static str,
    pub(crate) class_label: &'static str,
    pub(crate) summary: String,
    /// An alarm that is active (raised, not cleared): shown loudly.
    pub(crate) alarm: bool,
    /// An alarm clearing.
    pub(crate) cleared: bool,
    /// Plate thumbnail URL, when the event carries an image.
    pub(crate) image: Option<String>,
    /// `allow`, `deny`, `ask` for a decided read; empty otherwise.
    pub(crate) verdict: &'static str,
    pub(crate) verdict_label: &'static str,
    /// A blacklisted vehicle: shown as loudly as an alarm.
    pub(crate) blacklisted: bool,
}

impl EventView {
    /// The row for `env` in the language of `t`.
    pub(crate) fn new(env: &Envelope, t: &'static Strings, drivers: &Drivers) -> EventView {
        let device = device_name(t, drivers, &env.device_id);
        let active = env.body.get("active").and_then(|a| a.as_bool());
        let is_alarm = env.class == Class::Alarm;
        let (verdict, verdict_label) = verdict_of(t, &env.body);
        let blacklisted = env
            .body
            .get("reason")
            .and_then(|r| r.get("code"))
            .and_then(|c| c.as_str())
            .is_some_and(|c| c == "blacklisted")
            || env.kind == "blacklisted_vehicle";
        EventView {
            seq: env.seq,
            time: local_time(env.time_ms),
            device,
            kind_label: t.kind(&env.kind).to_owned(),
            class: env.class.as_str(),
            class_label: t.class(env.class),
            summary: summary(env, t),
            alarm: is_alarm && active != Some(false),
            cleared: is_alarm && active == Some(false),
            image: image_of(env),
            verdict,
            verdict_label,
            blacklisted,
        }
    }
}

/// The first image of a plate read, a camera snapshot's image or a
/// call's snapshot, as a panel URL.
fn image_of(env: &Envelope) -> Option<String> {
    let b = &env.body;
    let name = match b.get("images") {
        Some(images) => images.as_array()?.first()?.as_str()?,
        None => b.get("image").or_else(|| b.get("snapshot"))?.as_str()?,
    };
    super::pages::images::is_safe_name(name).then(|| format!("/images/{name}"))
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A door, by id or number.
fn door_of(t: &'static Strings, b: &serde_json::Value) -> String {
    match b.get("door").or_else(|| b.get("door_number")) {
        Some(door) if !door.is_null() => format!("{} {}", t.col_door, text(door)),
        _ => String::new(),
    }
}

fn joined(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A short description of the body in the viewer's language.
fn summary(env: &Envelope, t: &'static Strings) -> String {
    let b = &env.body;
    let field = |k: &str| b.get(k).map(text).unwrap_or_default();
    let s = match env.kind.as_str() {
        "point_value" => format!("{} = {} {}", field("point"), field("value"), field("unit")),
        "threshold_alarm" => {
            let limit = b.get("threshold").map(text).unwrap_or_default();
            if limit.is_empty() {
                format!("{} = {} {}", field("point"), field("value"), field("unit"))
            } else {
                let limit_kind = field("limit");
                let direction = match limit_kind.as_str() {
                    "below" => t.limit_below,
                    "above" => t.limit_above,
                    other => other,
                };
                format!(
                    "{} = {} {} ({} {})",
                    field("point"),
                    field("value"),
                    field("unit"),
                    direction,
                    limit
                )
            }
        }
        "plate_read" => {
            let plate = match field("plate") {
                p if p.is_empty() => t.reason_no_plate.to_owned(),
                p => p,
            };
            let plate = match b.get("confidence").map(text) {
                Some(c) if !c.is_empty() => format!("{plate} ({c}%)"),
                _ => plate,
            };
            joined(&[&plate, &decision_reason(t, b)])
        }
        "card_read" | "access_history" => joined(&[
            &field("card"),
            &field("holder"),
            &door_of(t, b),
            &decision_reason(t, b),
        ]),
        "barrier_state" => {
            let state = match field("state").as_str() {
                "closed" => t.arm_closed,
                "opening" => t.arm_opening,
                "open" => t.arm_open,
                "closing" => t.arm_closing,
                "held_open" => t.arm_held_open,
                _ => t.unknown,
            };
            joined(&[&field("lane"), state])
        }
        "loop_state" => {
            let occupied = b.get("occupied").and_then(|o| o.as_bool());
            let label = if occupied == Some(true) {
                t.loop_occupied
            } else {
                t.loop_free
            };
            joined(&[&field("lane"), label])
        }
        "door_state" => {
            let open = b.get("open").and_then(|o| o.as_bool()) == Some(true);
            joined(&[
                &door_of(t, b),
                if open { t.door_open } else { t.door_closed },
            ])
        }
        "door_alarm" => {
            let alarm = match field("alarm").as_str() {
                "held_open" => t.door_held_open,
                "forced_open" => t.door_forced_open,
                _ => t.class_alarm,
            };
            joined(&[&door_of(t, b), alarm])
        }
        "exit_button" | "relay_pulse" | "keypad_locked" => door_of(t, b),
        "blacklisted_vehicle" => {
            let listed = format!("{} ({})", t.reason_blacklisted, field("listed_reason"));
            joined(&[&field("plate"), &field("lane"), &listed])
        }
        "exit_without_entry" | "vehicle_entered" | "vehicle_exited" | "pending_expired" => {
            joined(&[&field("plate"), &field("lane")])
        }
        "guard_decision" => {
            let (_, verdict) = verdict_of(t, b);
            joined(&[&field("plate"), verdict, &field("reason")])
        }
        "read_rejected" => t.read_rejected_text.to_owned(),
        "command" | "command_failed" => {
            let command = b
                .get("command")
                .and_then(|c| c.get("command"))
                .map(text)
                .unwrap_or_default();
            let outcome = b
                .get("outcome")
                .and_then(|o| o.get("outcome"))
                .map(text)
                .unwrap_or_default();
            let reason = b
                .get("origin")
                .and_then(|o| o.get("reason"))
                .map(text)
                .unwrap_or_default();
            let outcome = match outcome.as_str() {
                "done" => t.outcome_done,
                "refused" => t.outcome_refused,
                "failed" => t.outcome_failed,
                "unsupported" => t.outcome_unsupported,
                other => other,
            };
            format!("{} → {outcome} · {reason}", t.command(&command))
        }
        "camera_snapshot" => joined(&[&field("place"), &format!("#{}", field("of_seq"))]),
        "device_alarm" | "barrier_fault" => field("message"),
        "device_link" => {
            let online = b.get("online").and_then(|o| o.as_bool()) == Some(true);
            joined(&[
                if online {
                    t.link_online
                } else {
                    t.link_offline
                },
                &link_detail(t, &field("detail")),
            ])
        }
        "point_report" => {
            let n = b
                .get("samples")
                .and_then(|s| s.as_array())
                .map_or(0, Vec::len);
            t.count_points.replace("{n}", &n.to_string())
        }
        "point_alarm" => {
            let alarm = match field("alarm").as_str() {
                "high" => t.alarm_high,
                "low" => t.alarm_low,
                _ => t.alarm_state,
            };
            let limit = field("limit");
            let value = format!("{} = {}", field("point"), field("value"));
            if limit.is_empty() {
                joined(&[&value, alarm])
            } else {
                format!("{value} ({alarm} {limit})")
            }
        }
        "camera_signal" | "camera_alarm" => {
            let what = b.get("signal").or_else(|| b.get("alarm")).map(text);
            let active = b.get("active").and_then(|a| a.as_bool()) == Some(true);
            joined(&[
                t.word(&what.unwrap_or_default()),
                &field("source"),
                if active {
                    t.signal_started
                } else {
                    t.signal_ended
                },
                t.word(&field("detail")),
            ])
        }
        "call_started" | "call_missed" => field("unit"),
        "call_answered" => t.word(&field("by")).to_owned(),
        "call_ended" => match b.get("duration_ms").and_then(|d| d.as_i64()) {
            Some(ms) => format!("{} {}", ms / 1000, t.unit_s),
            None => String::new(),
        },
        "station_unlock" => joined(&[t.word(&field("method")), &field("who"), &door_of(t, b)]),
        "open_failed" => joined(&[
            &field("plate"),
            &field("lane"),
            &format!("{} ({})", t.reason_barrier_failed, field("detail")),
        ]),
        "store_quarantined" => field("moved_to"),
        "store_pressure" => t.word(&field("state")).to_owned(),
        "store_unavailable" => {
            let active = b.get("active").and_then(|a| a.as_bool()) == Some(true);
            joined(&[
                t.word(&field("reason")),
                if active {
                    t.badge_alarm
                } else {
                    t.badge_cleared
                },
            ])
        }
        "config_rejected" => {
            let n = b
                .get("problems")
                .and_then(|p| p.as_array())
                .map_or(0, Vec::len);
            t.count_problems.replace("{n}", &n.to_string())
        }
        _ if env.class == Class::Audit => {
            let target = audit_target(t, b);
            let reason = field("reason");
            joined(&[&target, &reason])
        }
        _ => compact(b),
    };
    truncate(&s, 160)
}

/// A driver's link detail in the viewer's language: its fixed phrases and
/// the two it fills in (how long a camera was silent, how many polls went
/// unanswered); anything else (an error's own text, a port, a camera's
/// model) as the device said it.
fn link_detail(t: &'static Strings, detail: &str) -> String {
    if let Some(d) = detail.strip_prefix("no push or heartbeat for ") {
        return t.link_silent.replace("{d}", d);
    }
    if let Some(n) = detail
        .strip_suffix(" unanswered status polls")
        .filter(|n| n.parse::<u32>().is_ok())
    {
        return t.link_unanswered.replace("{n}", n);
    }
    t.word(detail).to_owned()
}

/// The object of an audit record: a user name (capped), a plate, a card —
/// or the gateway itself, in words.
fn audit_target(t: &'static Strings, b: &serde_json::Value) -> String {
    match b.get("target").map(text) {
        Some(target) if target == GATEWAY_DEVICE => t.gateway_name.to_owned(),
        Some(target) => truncate(&target, MAX_FIELD_CHARS),
        None => String::new(),
    }
}

fn compact(body: &serde_json::Value) -> String {
    match body.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        None => text(body),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// One audit record as a row (and a CSV line).
#[derive(Debug, Clone)]
pub(crate) struct AuditView {
    pub(crate) seq: u64,
    pub(crate) time: String,
    pub(crate) actor: String,
    pub(crate) kind: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) detail: String,
    pub(crate) reason: String,
    pub(crate) remote: String,
}

impl AuditView {
    /// The row for an audit envelope.
    pub(crate) fn new(env: &Envelope, t: &'static Strings, drivers: &Drivers) -> AuditView {
        let b = &env.body;
        let origin = b.get("origin");
        let pick = |k: &str| {
            b.get(k)
                .or_else(|| origin.and_then(|o| o.get(k)))
                .map(text)
                .unwrap_or_default()
        };
        let target = match audit_target(t, b) {
            target if !target.is_empty() => target,
            _ => device_name(t, drivers, &env.device_id),
        };
        let detail = if env.kind == "command" {
            summary(env, t)
                .split(" · ")
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            b.get("detail").map(text).unwrap_or_default()
        };
        AuditView {
            seq: env.seq,
            time: local_time(env.time_ms),
            actor: truncate(&pick("actor"), MAX_FIELD_CHARS),
            kind: env.kind.clone(),
            action: t.kind(&env.kind).to_owned(),
            target,
            detail,
            reason: pick("reason"),
            remote: pick("remote"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::panel::i18n::Lang;

    fn env(kind: &str, class: Class, body: serde_json::Value) -> Envelope {
        Envelope {
            schema: 1,
            id: uuid::Uuid::now_v7(),
            seq: 7,
            time_ms: 1_764_000_000_000,
            clock_synced: true,
            device_time_ms: None,
            estate_id: "e".into(),
            gateway_id: "g".into(),
            device_id: "lane-1".into(),
            kind: kind.into(),
            class,
            body,
        }
    }

    #[test]
    fn times_show_in_the_estate_zone_not_the_box_zone() {
        // The box running the tests may be set to UTC; the panel shows the
        // estate's time (Asia/Shanghai unless configured otherwise).
        assert_eq!(local_time(0), "1970-01-01 08:00:00");
        assert_eq!(day_start_ms("1970-01-02"), Some(16 * 3_600_000));
    }

    #[test]
    fn event_view_marks_active_alarms_and_finds_plate_images() {
        let t = Lang::ZhCn.strings();
        let drivers = Drivers::default();
        let alarm = env(
            "threshold_alarm",
            Class::Alarm,
            serde_json::json!({"point": "level", "value": 1.2, "unit": "m", "active": true, "limit": "below", "threshold": 1.5}),
        );
        let view = EventView::new(&alarm, t, &drivers);
        assert!(view.alarm && !view.cleared);
        assert_eq!(view.kind_label, "阈值告警");
        assert_eq!(view.summary, "level = 1.2 m (低于 1.5)");
        let cleared = env(
            "threshold_alarm",
            Class::Alarm,
            serde_json::json!({"active": false}),
        );
        assert!(EventView::new(&cleared, t, &drivers).cleared);

        let read = env(
            "plate_read",
            Class::Access,
            serde_json::json!({"plate": "苏A8HK52", "confidence": 93, "images": ["2025/a.jpg"]}),
        );
        let view = EventView::new(&read, t, &drivers);
        assert_eq!(view.summary, "苏A8HK52 (93%)");
        assert_eq!(view.image.as_deref(), Some("/images/2025/a.jpg"));
        let sneaky = env(
            "plate_read",
            Class::Access,
            serde_json::json!({"plate": "x", "images": ["../../etc/passwd"]}),
        );
        assert_eq!(EventView::new(&sneaky, t, &drivers).image, None);
        let snapshot = env(
            "camera_snapshot",
            Class::Access,
            serde_json::json!({"image": "20261202/b-full.jpg", "of_seq": 41, "of_id": "x", "place": "south-in"}),
        );
        let view = EventView::new(&snapshot, t, &drivers);
        assert_eq!(view.image.as_deref(), Some("/images/20261202/b-full.jpg"));
        assert_eq!(view.summary, "south-in · #41");
    }

    /// Every kind the gateway records (the wire contract's sample of each)
    /// reads as words on the panel in both languages: none falls back to
    /// its body as raw `key=value`.
    #[test]
    fn every_recorded_kind_is_summarised_in_words() {
        use crate::uplink::contract_tests::{sample, stamp};
        let stamper = crate::pipeline::Stamper::new("e", "g");
        let drivers = Drivers::default();
        let mut raw = Vec::new();
        for lang in [Lang::ZhCn, Lang::En] {
            for &kind in crate::events::Kind::ALL {
                for one in sample(kind) {
                    let env = stamp(&stamper, &one);
                    let view = EventView::new(&env, lang.strings(), &drivers);
                    let keys = env.body.as_object().into_iter().flat_map(|m| m.keys());
                    if let Some(key) = keys
                        .into_iter()
                        .find(|k| view.summary.contains(&format!("{k}=")))
                    {
                        raw.push(format!(
                            "{kind} ({}): {key}= in {:?}",
                            lang.code(),
                            view.summary
                        ));
                    }
                }
            }
        }
        assert!(raw.is_empty(), "{raw:#?}");
    }

    #[test]
    fn drivers_link_details_and_body_words_read_in_chinese() {
        let t = Lang::ZhCn.strings();
        let drivers = Drivers::default();
        let summary = |kind: &str, class: Class, body: serde_json::Value| {
            EventView::new(&env(kind, class, body), t, &drivers).summary
        };
        let link = |online: bool, detail: &str| {
            summary(
                "device_link",
                Class::Alarm,
                serde_json::json!({"online": online, "detail": detail}),
            )
        };
        assert_eq!(link(true, "answering"), "已连接 · 应答正常");
        assert_eq!(link(true, "alert stream open"), "已连接 · 事件流已连接");
        assert_eq!(
            link(false, "no push or heartbeat for 1m 30s"),
            "已断开 · 1m 30s 内无推送或心跳"
        );
        assert_eq!(
            link(false, "3 unanswered status polls"),
            "已断开 · 连续 3 次状态查询无应答"
        );
        // A device's own error text is shown as it said it.
        assert_eq!(
            link(false, "connection refused"),
            "已断开 · connection refused"
        );
        assert_eq!(
            summary(
                "camera_alarm",
                Class::Alarm,
                serde_json::json!({"alarm": "video_loss", "active": true, "source": "1", "detail": "state when subscribed"}),
            ),
            "视频丢失 · 1 · 开始 · 订阅时的状态"
        );
        assert_eq!(
            summary(
                "station_unlock",
                Class::Access,
                serde_json::json!({"method": "face", "who": null, "door": 1}),
            ),
            "人脸 · 门 1"
        );
        assert_eq!(
            summary(
                "store_pressure",
                Class::Alarm,
                serde_json::json!({"state": "over_capacity", "active": true}),
            ),
            "存储超出容量"
        );
    }

    #[test]
    fn audit_view_reads_command_origins_and_panel_records() {
        let t = Lang::En.strings();
        let drivers = Drivers::default();
        let command = env(
            "command",
            Class::Audit,
            serde_json::json!({"command": {"command": "open_barrier"}, "outcome": {"outcome": "done"},
                "origin": {"actor": "wang", "via": "panel", "reason": "visitor", "remote": "10.0.0.5"}}),
        );
        let row = AuditView::new(&command, t, &drivers);
        assert_eq!(
            (row.actor.as_str(), row.reason.as_str(), row.remote.as_str()),
            ("wang", "visitor", "10.0.0.5")
        );
        assert_eq!(row.detail, "Open barrier → Done");
        assert_eq!(row.target, "lane-1");
        let login = env(
            "user_added",
            Class::Audit,
            serde_json::json!({"actor": "admin", "target": "li", "remote": "127.0.0.1"}),
        );
        let row = AuditView::new(&login, t, &drivers);
        assert_eq!((row.actor.as_str(), row.target.as_str()), ("admin", "li"));
        assert_eq!(row.action, "User added");
    }
}
