//! Hikvision video-intercom ISAPI, pure: alert-stream parts (XML or JSON
//! `EventNotificationAlert`), `callStatus`, and the `RemoteControl/door`
//! request and its answer.
//!
//! Access-controller events are mapped by their major/minor codes (Hikvision
//! HCNetSDK tables): major 5 minor `0x01` card, `0x26` fingerprint, `0x4b`
//! face, `0x17` exit button, `0x19`/`0x1a` door contact, `0x1b` forced open,
//! `0x1c` held open, `0x25` doorbell ringing; major 3 minor `0x400` remote
//! open; major 1 minor `0x404`/`0x405` tamper raised/cleared. XML is read
//! with `quick-xml`: a `<!DOCTYPE>` is refused, only predefined entities are
//! resolved. JSON nesting is bounded by `serde_json`'s recursion limit.

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::Value;

use super::{Signal, clip};
use crate::event::{Answerer, DeviceEvent, DoorAlarmKind, UnlockMethod};

/// Path of the alert stream.
pub const ALERT_STREAM: &str = "/ISAPI/Event/notification/alertStream";
/// Path of the call state.
pub const CALL_STATUS: &str = "/ISAPI/VideoIntercom/callStatus?format=json";
/// The body of a remote unlock.
pub const REMOTE_OPEN_BODY: &str = "<RemoteControlDoor><cmd>open</cmd></RemoteControlDoor>";

/// Path of the remote unlock of door `n` (1-based).
pub fn remote_control_path(door: u8) -> String {
    format!("/ISAPI/AccessControl/RemoteControl/door/{door}")
}

/// Deepest XML nesting accepted.
const MAX_DEPTH: usize = 16;
/// Most fields kept from one alert.
const MAX_FIELDS: usize = 200;

/// Why a part was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HikError {
    /// Not JSON or XML, or broken.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A DTD was declared (refused: no entity expansion, ever).
    #[error("DOCTYPE refused")]
    Doctype,
}

/// The call state `callStatus` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// No call.
    Idle,
    /// A call is ringing.
    Ringing,
    /// A call is in progress.
    OnCall,
}

impl CallState {
    /// The signal for the tracker.
    pub fn signal(self) -> Signal {
        match self {
            CallState::Idle => Signal::Idle,
            CallState::Ringing => Signal::Ringing {
                call: None,
                unit: None,
            },
            CallState::OnCall => Signal::Answered {
                by: Answerer::Unknown,
            },
        }
    }
}

/// Reads `{"CallStatus":{"status":"…"}}`.
pub fn parse_call_status(body: &[u8]) -> Result<CallState, HikError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| HikError::Malformed(clip(&e.to_string(), 120)))?;
    let status = v
        .pointer("/CallStatus/status")
        .and_then(Value::as_str)
        .ok_or_else(|| HikError::Malformed("no CallStatus.status".into()))?;
    Ok(match status {
        "ring" | "ringing" | "calling" => CallState::Ringing,
        "onCall" | "answered" | "talking" => CallState::OnCall,
        _ => CallState::Idle,
    })
}

/// Whether a `ResponseStatus` answer (XML or JSON) says OK.
pub fn response_ok(body: &[u8]) -> bool {
    let fields = match flatten(body) {
        Ok(f) => f,
        Err(_) => return false,
    };
    field(&fields, "statusCode").is_some_and(|c| c == "1")
        || field(&fields, "statusString").is_some_and(|s| s.eq_ignore_ascii_case("ok"))
}

/// Decodes one alert-stream part into signals.
pub fn parse_alert(body: &[u8]) -> Result<Vec<Signal>, HikError> {
    let fields = flatten(body)?;
    let event_type = field(&fields, "eventType").unwrap_or_default();
    let active = field(&fields, "eventState").is_none_or(|s| s != "inactive");
    let num = |name: &str| {
        field(&fields, name).and_then(|v| {
            v.strip_prefix("0x").map_or_else(
                || v.parse::<u32>().ok(),
                |h| u32::from_str_radix(h, 16).ok(),
            )
        })
    };
    let text = |name: &str| {
        field(&fields, name)
            .filter(|v| !v.is_empty())
            .map(|v| clip(v, 64))
    };
    let door = num("doorNo").and_then(|d| u8::try_from(d).ok());
    let signals = match event_type.to_ascii_lowercase().as_str() {
        "heartbeat" | "videoloss" => vec![Signal::Heartbeat],
        "accesscontrollerevent" => {
            let unlock =
                |method, who| Signal::Event(DeviceEvent::StationUnlock { method, who, door });
            match (num("majorEventType"), num("subEventType")) {
                (Some(5), Some(0x01)) => vec![unlock(UnlockMethod::Card, text("cardNo"))],
                (Some(5), Some(0x26)) => {
                    vec![unlock(UnlockMethod::Fingerprint, text("employeeNoString"))]
                }
                (Some(5), Some(0x4b)) => vec![unlock(UnlockMethod::Face, text("employeeNoString"))],
                (Some(5), Some(0x17)) => vec![unlock(UnlockMethod::ExitButton, None)],
                (Some(5), Some(0x19)) => {
                    vec![Signal::Event(DeviceEvent::DoorState { open: true, door })]
                }
                (Some(5), Some(0x1a)) => {
                    vec![Signal::Event(DeviceEvent::DoorState { open: false, door })]
                }
                (Some(5), Some(0x1b)) => vec![Signal::Event(DeviceEvent::DoorAlarm {
                    alarm: DoorAlarmKind::ForcedOpen,
                    active: true,
                    door,
                })],
                (Some(5), Some(0x1c)) => vec![Signal::Event(DeviceEvent::DoorAlarm {
                    alarm: DoorAlarmKind::HeldOpen,
                    active: true,
                    door,
                })],
                (Some(5), Some(0x25)) => vec![Signal::Ringing {
                    call: None,
                    unit: text("roomNumber").or_else(|| text("callNumber")),
                }],
                (Some(3), Some(0x400)) => vec![unlock(UnlockMethod::Remote, text("netUser"))],
                (Some(1), Some(0x404)) => vec![tamper(true)],
                (Some(1), Some(0x405)) => vec![tamper(false)],
                _ => Vec::new(),
            }
        }
        "io" => vec![Signal::Event(DeviceEvent::DeviceAlarm {
            code: "alarm_input".into(),
            message: format!("alarm input {}", text("inputIOPortID").unwrap_or_default()),
            active,
        })],
        _ => Vec::new(),
    };
    Ok(signals)
}

fn tamper(active: bool) -> Signal {
    Signal::Event(DeviceEvent::DeviceAlarm {
        code: "tamper".into(),
        message: if active {
            "station cover opened".into()
        } else {
            "station cover closed".into()
        },
        active,
    })
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The leaf fields of a JSON or XML document, by local name, in order.
fn flatten(body: &[u8]) -> Result<Vec<(String, String)>, HikError> {
    let trimmed = body.trim_ascii_start();
    let mut out = Vec::new();
    if trimmed.starts_with(b"{") {
        let v: Value = serde_json::from_slice(trimmed)
            .map_err(|e| HikError::Malformed(clip(&e.to_string(), 120)))?;
        flatten_json(None, &v, &mut out);
        Ok(out)
    } else if trimmed.starts_with(b"<") {
        let text = std::str::from_utf8(trimmed)
            .map_err(|_| HikError::Malformed("XML is not UTF-8".into()))?;
        flatten_xml(text, &mut out)?;
        Ok(out)
    } else {
        Err(HikError::Malformed("neither JSON nor XML".into()))
    }
}

fn flatten_json(name: Option<&str>, v: &Value, out: &mut Vec<(String, String)>) {
    if out.len() >= MAX_FIELDS {
        return;
    }
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| flatten_json(Some(k), v, out)),
        Value::Array(a) => a.iter().for_each(|v| flatten_json(name, v, out)),
        Value::String(s) => out.extend(name.map(|n| (n.to_owned(), s.clone()))),
        Value::Number(_) | Value::Bool(_) => {
            out.extend(name.map(|n| (n.to_owned(), v.to_string())))
        }
        Value::Null => {}
    }
}

fn flatten_xml(xml: &str, out: &mut Vec<(String, String)>) -> Result<(), HikError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let bad = |e: quick_xml::Error| HikError::Malformed(clip(&e.to_string(), 120));
    loop {
        match reader.read_event().map_err(bad)? {
            Event::DocType(_) => return Err(HikError::Doctype),
            Event::Start(s) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(HikError::Malformed("nested too deeply".into()));
                }
                stack.push(s.local_name().as_ref().to_owned());
                text.clear();
            }
            Event::End(_) => {
                if let Some(name) = stack.pop()
                    && !text.trim().is_empty()
                    && out.len() < MAX_FIELDS
                {
                    out.push((name, text.trim().to_owned()));
                }
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(c) => text.push_str(&c),
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    match r.resolve_char_ref().map_err(bad)? {
                        Some(ch) => text.push(ch),
                        None => return Err(HikError::Malformed("bad character reference".into())),
                    }
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    text.push_str(s);
                } else {
                    return Err(HikError::Malformed("undeclared entity".into()));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(HikError::Malformed(
            "document ends inside an element".into(),
        ));
    }
    Ok(())
}

/// A JSON alert as door stations send them (used by the simulator and tests).
pub fn access_event_json(major: u32, minor: u32, extra: &Value) -> String {
    let mut ace = serde_json::json!({"majorEventType": major, "subEventType": minor});
    if let (Some(ace), Some(extra)) = (ace.as_object_mut(), extra.as_object()) {
        ace.extend(extra.clone());
    }
    serde_json::json!({
        "ipAddress": "127.0.0.1",
        "eventType": "AccessControllerEvent",
        "eventState": "active",
        "AccessControllerEvent": ace,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn access_events_map_to_the_intercom_vocabulary() {
        let card = access_event_json(5, 1, &json!({"cardNo": "3558822549", "doorNo": 1}));
        assert_eq!(
            parse_alert(card.as_bytes()).expect("parses"),
            vec![Signal::Event(DeviceEvent::StationUnlock {
                method: UnlockMethod::Card,
                who: Some("3558822549".into()),
                door: Some(1)
            })]
        );
        let face = access_event_json(5, 0x4b, &json!({"employeeNoString": "1001"}));
        assert!(matches!(&parse_alert(face.as_bytes()).expect("parses")[..],
            [Signal::Event(DeviceEvent::StationUnlock { method: UnlockMethod::Face, who: Some(w), .. })] if w == "1001"));
        let ring = access_event_json(5, 0x25, &json!({"roomNumber": "3-1-502"}));
        assert_eq!(
            parse_alert(ring.as_bytes()).expect("parses"),
            vec![Signal::Ringing {
                call: None,
                unit: Some("3-1-502".into())
            }]
        );
        let remote = access_event_json(3, 0x400, &json!({}));
        assert!(matches!(
            &parse_alert(remote.as_bytes()).expect("parses")[..],
            [Signal::Event(DeviceEvent::StationUnlock {
                method: UnlockMethod::Remote,
                ..
            })]
        ));
        let tamper = access_event_json(1, 0x404, &json!({}));
        assert!(
            matches!(&parse_alert(tamper.as_bytes()).expect("parses")[..],
            [Signal::Event(DeviceEvent::DeviceAlarm { code, active: true, .. })] if code == "tamper")
        );
        let door = access_event_json(5, 0x19, &json!({"doorNo": 1}));
        assert_eq!(
            parse_alert(door.as_bytes()).expect("parses"),
            vec![Signal::Event(DeviceEvent::DoorState {
                open: true,
                door: Some(1)
            })]
        );
    }

    #[test]
    fn xml_alerts_and_heartbeats() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">
<eventType>AccessControllerEvent</eventType><eventState>active</eventState>
<AccessControllerEvent><majorEventType>5</majorEventType><subEventType>1</subEventType><cardNo>42</cardNo></AccessControllerEvent>
</EventNotificationAlert>"#;
        assert!(matches!(&parse_alert(xml.as_bytes()).expect("parses")[..],
            [Signal::Event(DeviceEvent::StationUnlock { method: UnlockMethod::Card, who: Some(w), .. })] if w == "42"));
        let hb = "<EventNotificationAlert><eventType>videoloss</eventType><eventState>inactive</eventState></EventNotificationAlert>";
        assert_eq!(
            parse_alert(hb.as_bytes()).expect("parses"),
            vec![Signal::Heartbeat]
        );
    }

    #[test]
    fn hostile_parts_are_errors_not_panics() {
        let doctype =
            r#"<!DOCTYPE x [<!ENTITY a "b">]><EventNotificationAlert>&a;</EventNotificationAlert>"#;
        assert_eq!(parse_alert(doctype.as_bytes()), Err(HikError::Doctype));
        let entity =
            "<EventNotificationAlert><eventType>&xxe;</eventType></EventNotificationAlert>";
        assert!(parse_alert(entity.as_bytes()).is_err());
        let bomb = "[".repeat(100_000);
        assert!(parse_alert(format!("{{\"a\":{bomb}").as_bytes()).is_err());
        let deep = "<a>".repeat(100);
        assert!(parse_alert(deep.as_bytes()).is_err());
        assert!(parse_alert(b"\xff\xfe").is_err());
        assert!(
            parse_alert(b"{\"eventType\":\"AccessControllerEvent\"}")
                .expect("parses")
                .is_empty()
        );
    }

    #[test]
    fn call_status_and_responses() {
        assert_eq!(
            parse_call_status(br#"{"CallStatus":{"status":"ring"}}"#),
            Ok(CallState::Ringing)
        );
        assert_eq!(
            parse_call_status(br#"{"CallStatus":{"status":"onCall"}}"#),
            Ok(CallState::OnCall)
        );
        assert_eq!(
            parse_call_status(br#"{"CallStatus":{"status":"idle"}}"#),
            Ok(CallState::Idle)
        );
        assert!(parse_call_status(b"{}").is_err());
        assert!(response_ok(b"<ResponseStatus><statusCode>1</statusCode><statusString>OK</statusString></ResponseStatus>"));
        assert!(response_ok(
            br#"{"statusCode":1,"statusString":"OK","subStatusCode":"ok"}"#
        ));
        assert!(!response_ok(b"<ResponseStatus><statusCode>4</statusCode><statusString>Invalid Operation</statusString></ResponseStatus>"));
        assert_eq!(
            remote_control_path(2),
            "/ISAPI/AccessControl/RemoteControl/door/2"
        );
    }
}
