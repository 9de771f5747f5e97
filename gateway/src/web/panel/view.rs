//! How recorded events look on the panel: one [`EventView`] per envelope,
//! used by the server-rendered rows and the server-sent events alike, one
//! [`AuditView`] per audit record, and local time formatting (the box's
//! time zone: the estate's).

use drivers::Class;
use serde::Serialize;

use super::i18n::Strings;
use crate::supervisor::Drivers;
use crate::wire::Envelope;

/// `YYYY-MM-DD HH:MM:SS` in the system time zone.
pub fn local_time(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => ms.to_string(),
    }
}

/// Start of the day `YYYY-MM-DD` in the system time zone (Unix ms).
pub(crate) fn day_start_ms(date: &str) -> Option<i64> {
    let date: jiff::civil::Date = date.trim().parse().ok()?;
    let zoned = date.to_zoned(jiff::tz::TimeZone::system()).ok()?;
    Some(zoned.timestamp().as_millisecond())
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
}

impl EventView {
    /// The row for `env` in the language of `t`.
    pub(crate) fn new(env: &Envelope, t: &'static Strings, drivers: &Drivers) -> EventView {
        let device = drivers
            .get(&env.device_id)
            .map_or_else(|| env.device_id.clone(), |d| d.name.clone());
        let active = env.body.get("active").and_then(|a| a.as_bool());
        let is_alarm = env.class == Class::Alarm;
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
        }
    }
}

/// The first image of a plate read, as a panel URL.
fn image_of(env: &Envelope) -> Option<String> {
    let name = env.body.get("images")?.as_array()?.first()?.as_str()?;
    super::pages::images::is_safe_name(name).then(|| format!("/images/{name}"))
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A short, mostly language-neutral description of the body.
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
                format!(
                    "{} = {} {} ({} {})",
                    field("point"),
                    field("value"),
                    field("unit"),
                    field("limit"),
                    limit
                )
            }
        }
        "plate_read" => {
            let plate = field("plate");
            match b.get("confidence").map(text) {
                Some(c) if !c.is_empty() => format!("{plate} ({c}%)"),
                _ => plate,
            }
        }
        "card_read" | "access_history" => field("card"),
        "command" => {
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
        "device_alarm" | "barrier_fault" => field("message"),
        "device_link" => field("detail"),
        _ if env.class == Class::Audit => {
            let target = field("target");
            let reason = field("reason");
            [target, reason]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" · ")
        }
        _ => compact(b),
    };
    truncate(&s, 160)
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
        let target = match b.get("target").map(text) {
            Some(t) if !t.is_empty() => t,
            _ => drivers
                .get(&env.device_id)
                .map_or_else(|| env.device_id.clone(), |d| d.name.clone()),
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
            actor: pick("actor"),
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
        assert_eq!(view.summary, "level = 1.2 m (below 1.5)");
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
