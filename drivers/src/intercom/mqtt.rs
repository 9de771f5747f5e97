//! Door stations (or bridges) that publish JSON over MQTT, pure: which
//! topic means what, and where in the payload each field is (RFC 6901 JSON
//! pointers). No vendor publishes such a protocol, so everything is
//! configured; the defaults suit a bridge that publishes
//! `{"call": "…", "unit": "…", "by": "…", "method": "…", "who": "…",
//! "active": true, "open": true, "online": true}`.

use serde_json::Value;

use super::{Signal, clip};
use crate::event::{Answerer, DeviceEvent, UnlockMethod};

/// Largest payload read.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The topics a station publishes on; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    /// A call started.
    pub call: Option<String>,
    /// The call was answered.
    pub answered: Option<String>,
    /// The call ended.
    pub ended: Option<String>,
    /// The call was not answered.
    pub missed: Option<String>,
    /// The door was unlocked at the station.
    pub unlock: Option<String>,
    /// The tamper switch changed.
    pub tamper: Option<String>,
    /// The door contact changed.
    pub door: Option<String>,
    /// The station's health (`online` true/false, or a retained last will).
    pub health: Option<String>,
}

impl Topics {
    /// Every configured topic.
    pub fn all(&self) -> Vec<&str> {
        [
            &self.call,
            &self.answered,
            &self.ended,
            &self.missed,
            &self.unlock,
            &self.tamper,
            &self.door,
            &self.health,
        ]
        .into_iter()
        .filter_map(|t| t.as_deref())
        .collect()
    }
}

/// Where each field is in a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointers {
    /// The call id.
    pub call: String,
    /// The unit called.
    pub unit: String,
    /// Who answered (`indoor_monitor`, `master_station`, `app`).
    pub by: String,
    /// The unlock method (`card`, `pin`, `face`, …).
    pub method: String,
    /// Who unlocked.
    pub who: String,
    /// Tamper active (bool).
    pub active: String,
    /// Door open (bool).
    pub open: String,
    /// Online (bool; the strings `online`/`offline` are read too).
    pub online: String,
}

impl Default for Pointers {
    fn default() -> Self {
        Self {
            call: "/call".into(),
            unit: "/unit".into(),
            by: "/by".into(),
            method: "/method".into(),
            who: "/who".into(),
            active: "/active".into(),
            open: "/open".into(),
            online: "/online".into(),
        }
    }
}

/// The mapping of one station.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationMap {
    /// Topics.
    pub topics: Topics,
    /// Pointers.
    pub pointers: Pointers,
}

/// Why a message was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    /// Larger than [`MAX_PAYLOAD`].
    #[error("payload too large")]
    TooLarge,
    /// Not JSON (or nested too deeply).
    #[error("payload is not JSON: {0}")]
    Json(String),
    /// A field the topic needs is missing.
    #[error("missing {0}")]
    Missing(&'static str),
}

impl StationMap {
    /// Decodes a message on `topic`; an unknown topic gives no signal.
    pub fn decode(&self, topic: &str, payload: &[u8]) -> Result<Vec<Signal>, MqttError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(MqttError::TooLarge);
        }
        let is = |t: &Option<String>| t.as_deref() == Some(topic);
        let t = &self.topics;
        let p = &self.pointers;
        if is(&t.health) {
            let text = std::str::from_utf8(payload).unwrap_or_default().trim();
            let online = match text {
                "online" | "\"online\"" => true,
                "offline" | "\"offline\"" => false,
                _ => {
                    let v = parse(payload)?;
                    match v.pointer(&p.online) {
                        Some(Value::Bool(b)) => *b,
                        Some(Value::String(s)) => s == "online",
                        _ => return Err(MqttError::Missing("online")),
                    }
                }
            };
            return Ok(vec![Signal::Event(DeviceEvent::DeviceLink {
                online,
                detail: if online {
                    "station online"
                } else {
                    "station offline"
                }
                .into(),
            })]);
        }
        let known = [
            &t.call,
            &t.answered,
            &t.ended,
            &t.missed,
            &t.unlock,
            &t.tamper,
            &t.door,
        ]
        .into_iter()
        .any(is);
        if !known {
            return Ok(Vec::new());
        }
        let v = parse(payload)?;
        let text = |ptr: &str| {
            v.pointer(ptr).and_then(|x| match x {
                Value::String(s) if !s.is_empty() => Some(clip(s, 64)),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let flag = |ptr: &str, name| {
            v.pointer(ptr)
                .and_then(Value::as_bool)
                .ok_or(MqttError::Missing(name))
        };
        let signal = if is(&t.call) {
            Signal::Ringing {
                call: text(&p.call),
                unit: text(&p.unit),
            }
        } else if is(&t.answered) {
            Signal::Answered {
                by: match text(&p.by).as_deref() {
                    Some("indoor_monitor") => Answerer::IndoorMonitor,
                    Some("master_station") => Answerer::MasterStation,
                    Some("app") => Answerer::App,
                    _ => Answerer::Unknown,
                },
            }
        } else if is(&t.ended) {
            Signal::Idle
        } else if is(&t.missed) {
            Signal::NoAnswer {
                call: text(&p.call),
            }
        } else if is(&t.unlock) {
            let method = match text(&p.method).as_deref() {
                Some("card") => UnlockMethod::Card,
                Some("pin") => UnlockMethod::Pin,
                Some("face") => UnlockMethod::Face,
                Some("fingerprint") => UnlockMethod::Fingerprint,
                Some("indoor_monitor") => UnlockMethod::IndoorMonitor,
                Some("app") => UnlockMethod::App,
                Some("remote") => UnlockMethod::Remote,
                Some("exit_button") => UnlockMethod::ExitButton,
                _ => UnlockMethod::Unknown,
            };
            // A PIN is never kept, even if the bridge puts it in `who`.
            let who = (method != UnlockMethod::Pin)
                .then(|| text(&p.who))
                .flatten();
            Signal::Event(DeviceEvent::StationUnlock {
                method,
                who,
                door: None,
            })
        } else if is(&t.tamper) {
            let active = flag(&p.active, "active")?;
            Signal::Event(DeviceEvent::DeviceAlarm {
                code: "tamper".into(),
                message: if active {
                    "station tamper switch open"
                } else {
                    "station tamper switch closed"
                }
                .into(),
                active,
            })
        } else {
            Signal::Event(DeviceEvent::DoorState {
                open: flag(&p.open, "open")?,
                door: None,
            })
        };
        Ok(vec![signal])
    }
}

fn parse(payload: &[u8]) -> Result<Value, MqttError> {
    serde_json::from_slice(payload).map_err(|e| MqttError::Json(clip(&e.to_string(), 120)))
}

/// The unlock payload: `template` with `{door}` replaced.
pub fn unlock_payload(template: &str, door: u8) -> String {
    template.replace("{door}", &door.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> StationMap {
        StationMap {
            topics: Topics {
                call: Some("b3/door/call".into()),
                answered: Some("b3/door/answered".into()),
                ended: Some("b3/door/ended".into()),
                missed: Some("b3/door/missed".into()),
                unlock: Some("b3/door/unlock".into()),
                tamper: Some("b3/door/tamper".into()),
                door: Some("b3/door/contact".into()),
                health: Some("b3/door/status".into()),
            },
            pointers: Pointers {
                unit: "/call/room".into(),
                ..Pointers::default()
            },
        }
    }

    #[test]
    fn topics_and_pointers_map_to_signals() {
        let m = map();
        assert_eq!(
            m.decode("b3/door/call", br#"{"call": {"room": "3-1-502"}}"#),
            Ok(vec![Signal::Ringing {
                call: None,
                unit: Some("3-1-502".into())
            }])
        );
        assert_eq!(
            m.decode("b3/door/answered", br#"{"by": "app"}"#),
            Ok(vec![Signal::Answered { by: Answerer::App }])
        );
        assert_eq!(m.decode("b3/door/ended", b"{}"), Ok(vec![Signal::Idle]));
        let pin = m
            .decode("b3/door/unlock", br#"{"method": "pin", "who": "123456"}"#)
            .expect("decodes");
        assert_eq!(
            pin,
            vec![Signal::Event(DeviceEvent::StationUnlock {
                method: UnlockMethod::Pin,
                who: None,
                door: None
            })]
        );
        assert!(matches!(
            &m.decode("b3/door/tamper", br#"{"active": true}"#)
                .expect("decodes")[..],
            [Signal::Event(DeviceEvent::DeviceAlarm { active: true, .. })]
        ));
        assert!(matches!(
            &m.decode("b3/door/status", b"offline").expect("decodes")[..],
            [Signal::Event(DeviceEvent::DeviceLink { online: false, .. })]
        ));
        assert_eq!(m.decode("elsewhere", b"not json"), Ok(vec![]));
    }

    #[test]
    fn hostile_payloads_are_errors() {
        let m = map();
        assert_eq!(
            m.decode("b3/door/call", &vec![b' '; MAX_PAYLOAD + 1]),
            Err(MqttError::TooLarge)
        );
        let bomb = "[".repeat(10_000);
        assert!(matches!(
            m.decode("b3/door/call", bomb.as_bytes()),
            Err(MqttError::Json(_))
        ));
        assert_eq!(
            m.decode("b3/door/tamper", b"{}"),
            Err(MqttError::Missing("active"))
        );
        assert_eq!(
            unlock_payload(r#"{"type":"open_door","door":{door}}"#, 2),
            r#"{"type":"open_door","door":2}"#
        );
    }
}
