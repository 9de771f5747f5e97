//! Dahua VTO JSON-RPC on TCP 5000, pure: frames, the login challenge, the
//! requests the gateway sends, and the events it reads.
//!
//! A frame is a 32-byte header then a JSON text: bytes `20 00 00 00` and
//! `DHIP`, the session id (u32 little-endian), the request id (u32 LE), the
//! body length (u64 LE) and the body length again (u64 LE). Login is two
//! `global.login` calls: the first is answered with error
//! [`LOGIN_CHALLENGE`] carrying `realm` and `random` (and the session id);
//! the second sends `MD5(user:random:MD5(user:realm:password))` (upper-case
//! hex). Then `global.keepAlive` within the interval the login reply gives,
//! `eventManager.attach` for events (they come as
//! `client.notifyEventStream` with an `eventList`), and the door opens with
//! `accessControl.factory.instance` / `accessControl.openDoor` /
//! `accessControl.destroy`.

use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::{Signal, clip};
use crate::event::{DeviceEvent, UnlockMethod};

/// Error code of the first login's answer: the challenge.
pub const LOGIN_CHALLENGE: i64 = 268_632_079;
/// Header length.
pub const HEADER_LEN: usize = 32;
/// Largest frame body accepted.
pub const MAX_BODY: usize = 256 * 1024;
const MAGIC: [u8; 8] = [0x20, 0, 0, 0, b'D', b'H', b'I', b'P'];

/// A framing error: the connection cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header does not start with the DHIP magic.
    #[error("not a DHIP frame")]
    Magic,
    /// The announced body is larger than [`MAX_BODY`].
    #[error("frame of {0} bytes is too large")]
    TooLarge(u64),
    /// The body is not a JSON object.
    #[error("frame body is not JSON: {0}")]
    Json(String),
}

/// Encodes one frame.
pub fn encode(session: u32, id: u32, body: &Value) -> Vec<u8> {
    let text = body.to_string();
    let len = text.len() as u64;
    let mut out = Vec::with_capacity(HEADER_LEN + text.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&session.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Splits a byte stream into frames; bounded by [`MAX_BODY`].
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame's JSON, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Value, FrameError>> {
        if self.buf.len() < HEADER_LEN {
            return None;
        }
        if self.buf[..8] != MAGIC {
            return Some(Err(FrameError::Magic));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&self.buf[16..24]);
        let len = u64::from_le_bytes(len8);
        if len > MAX_BODY as u64 {
            return Some(Err(FrameError::TooLarge(len)));
        }
        let end = HEADER_LEN + len as usize;
        if self.buf.len() < end {
            return None;
        }
        let body: Vec<u8> = self.buf.drain(..end).skip(HEADER_LEN).collect();
        Some(match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(FrameError::Json("not an object".into())),
            Err(e) => Err(FrameError::Json(clip(&e.to_string(), 120))),
        })
    }
}

/// The login hash.
pub fn login_hash(user: &str, password: &str, realm: &str, random: &str) -> String {
    let inner = hex::encode_upper(Md5::digest(format!("{user}:{realm}:{password}")));
    hex::encode_upper(Md5::digest(format!("{user}:{random}:{inner}")))
}

/// The first `global.login` (asks for the challenge).
pub fn login_request(user: &str) -> Value {
    json!({"method": "global.login", "params": {"userName": user, "password": "", "clientType": "", "ipAddr": "(null)", "loginType": "Direct"}})
}

/// The second `global.login`, with the hash.
pub fn login_answer(user: &str, hash: &str) -> Value {
    json!({"method": "global.login", "params": {"userName": user, "password": hash, "clientType": "", "ipAddr": "(null)", "loginType": "Direct", "authorityType": "Default", "passwordType": "Default"}})
}

/// `global.keepAlive`.
pub fn keep_alive(timeout_s: u64) -> Value {
    json!({"method": "global.keepAlive", "params": {"timeout": timeout_s, "action": true}})
}

/// `eventManager.attach` for every event code.
pub fn attach() -> Value {
    json!({"method": "eventManager.attach", "params": {"codes": ["All"]}})
}

/// `accessControl.factory.instance` for a channel (0-based).
pub fn door_instance(channel: u32) -> Value {
    json!({"method": "accessControl.factory.instance", "params": {"channel": channel}})
}

/// `accessControl.openDoor` on an instance.
pub fn open_door(object: &Value, door_index: u32) -> Value {
    json!({"method": "accessControl.openDoor", "object": object, "params": {"DoorIndex": door_index, "ShortNumber": "gatehouse"}})
}

/// `accessControl.destroy` of an instance.
pub fn destroy(object: &Value) -> Value {
    json!({"method": "accessControl.destroy", "object": object})
}

/// What the station answered to the first login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Session id to use from now on.
    pub session: u32,
    /// The realm.
    pub realm: String,
    /// The random.
    pub random: String,
}

/// Reads the challenge from the first login's answer.
pub fn challenge(reply: &Value) -> Option<Challenge> {
    (reply.pointer("/error/code")?.as_i64()? == LOGIN_CHALLENGE).then_some(())?;
    Some(Challenge {
        session: session_of(reply)?,
        realm: reply.pointer("/params/realm")?.as_str()?.to_owned(),
        random: reply.pointer("/params/random")?.as_str()?.to_owned(),
    })
}

/// A reply's session id (a number; some firmwares send it as a string).
pub fn session_of(reply: &Value) -> Option<u32> {
    match reply.get("session")? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Whether a reply is a success (`"result": true` or an object id).
pub fn succeeded(reply: &Value) -> bool {
    reply.get("error").is_none()
        && reply
            .get("result")
            .is_some_and(|r| r.as_bool().unwrap_or(!r.is_null()))
}

/// The events of a `client.notifyEventStream` message, as signals.
pub fn events(message: &Value) -> Vec<Signal> {
    if message.get("method").and_then(Value::as_str) != Some("client.notifyEventStream") {
        return Vec::new();
    }
    let Some(list) = message
        .pointer("/params/eventList")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter().take(32).filter_map(event).collect()
}

fn event(e: &Value) -> Option<Signal> {
    let code = e.get("Code")?.as_str()?;
    let action = e.get("Action").and_then(Value::as_str).unwrap_or("Pulse");
    let data = e.get("Data").cloned().unwrap_or(Value::Null);
    let text = |name: &str| {
        data.get(name).and_then(|v| match v {
            Value::String(s) if !s.is_empty() => Some(clip(s, 64)),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    match code {
        "Invite" if action == "Start" || action == "Pulse" => Some(Signal::Ringing {
            call: text("CallID"),
            unit: text("UserID"),
        }),
        "Invite" => Some(Signal::Ended),
        "CallNoAnswered" => Some(Signal::NoAnswer {
            call: text("CallID"),
        }),
        "AccessControl" => {
            // `Password` is never read: codes are not recorded in clear.
            let method = match data.get("Method").and_then(Value::as_u64) {
                Some(1) => UnlockMethod::Card,
                Some(2) => UnlockMethod::Pin,
                Some(4) => UnlockMethod::IndoorMonitor,
                Some(5) => UnlockMethod::ExitButton,
                Some(6) => UnlockMethod::Fingerprint,
                Some(15) => UnlockMethod::Face,
                _ => UnlockMethod::Unknown,
            };
            let who = match method {
                UnlockMethod::Card => text("CardNo").or_else(|| text("UserID")),
                UnlockMethod::Pin | UnlockMethod::ExitButton => None,
                _ => text("UserID"),
            };
            let door = data
                .get("Door")
                .and_then(Value::as_u64)
                .and_then(|d| u8::try_from(d + 1).ok());
            Some(Signal::Event(DeviceEvent::StationUnlock {
                method,
                who,
                door,
            }))
        }
        "DoorStatus" => {
            let open = data.get("Status").and_then(Value::as_str)? == "Open";
            Some(Signal::Event(DeviceEvent::DoorState { open, door: None }))
        }
        "ProfileAlarmTransmit" | "AlarmLocal" | "Tamper" | "ChassisIntruded" => {
            let active = action != "Stop";
            let sense = text("SenseMethod").unwrap_or_else(|| code.to_owned());
            let tamper = code == "ChassisIntruded"
                || code == "Tamper"
                || sense.eq_ignore_ascii_case("tamper")
                || sense.eq_ignore_ascii_case("ChassisIntruded");
            Some(Signal::Event(DeviceEvent::DeviceAlarm {
                code: if tamper {
                    "tamper".into()
                } else {
                    "alarm_input".into()
                },
                message: clip(&sense, 64),
                active,
            }))
        }
        "BackKeyLight" => Some(Signal::Heartbeat),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_whole_and_byte_by_byte() {
        let a = encode(7, 1, &json!({"id": 1, "result": true}));
        assert_eq!(&a[..8], b"\x20\0\0\0DHIP");
        assert_eq!(u32::from_le_bytes([a[8], a[9], a[10], a[11]]), 7);
        let b = encode(7, 2, &json!({"id": 2, "method": "x"}));
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for byte in a.iter().chain(&b) {
            d.push(std::slice::from_ref(byte));
            while let Some(f) = d.next_frame() {
                got.push(f.expect("frame"));
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["method"], "x");
    }

    #[test]
    fn hostile_frames_are_refused() {
        let mut d = FrameDecoder::new();
        d.push(&[0u8; 40]);
        assert_eq!(d.next_frame(), Some(Err(FrameError::Magic)));
        let mut huge = MAGIC.to_vec();
        huge.extend([0; 8]);
        huge.extend(u64::MAX.to_le_bytes());
        huge.extend(u64::MAX.to_le_bytes());
        let mut d = FrameDecoder::new();
        d.push(&huge);
        assert!(matches!(d.next_frame(), Some(Err(FrameError::TooLarge(_)))));
        let mut bomb = MAGIC.to_vec();
        let body = "[".repeat(5000);
        bomb.extend([0; 8]);
        bomb.extend((body.len() as u64).to_le_bytes());
        bomb.extend((body.len() as u64).to_le_bytes());
        bomb.extend(body.as_bytes());
        let mut d = FrameDecoder::new();
        d.push(&bomb);
        assert!(matches!(d.next_frame(), Some(Err(FrameError::Json(_)))));
    }

    #[test]
    fn login_hash_matches_the_published_construction() {
        // MD5("admin:Login to 1234:admin") then MD5("admin:5678:<that>"), upper-case.
        let inner = hex::encode_upper(Md5::digest("admin:Login to 1234:admin"));
        let expected = hex::encode_upper(Md5::digest(format!("admin:5678:{inner}")));
        assert_eq!(
            login_hash("admin", "admin", "Login to 1234", "5678"),
            expected
        );
        assert_eq!(expected.len(), 32);
        let reply = json!({"error": {"code": LOGIN_CHALLENGE, "message": "Component error: login challenge!"}, "id": 1, "params": {"realm": "r", "random": "n", "encryption": "Default"}, "session": 2147483638u32});
        assert_eq!(
            challenge(&reply),
            Some(Challenge {
                session: 2_147_483_638,
                realm: "r".into(),
                random: "n".into()
            })
        );
        assert_eq!(challenge(&json!({"result": true})), None);
    }

    #[test]
    fn events_map_and_never_keep_the_password() {
        let msg = json!({"method": "client.notifyEventStream", "params": {"SID": 513, "eventList": [
            {"Action": "Start", "Code": "Invite", "Data": {"CallID": "12", "UserID": "9901"}, "Index": 0},
            {"Action": "Pulse", "Code": "CallNoAnswered", "Data": {"CallID": "12"}, "Index": 0},
            {"Action": "Pulse", "Code": "AccessControl", "Data": {"Method": 2, "Name": "OpenDoor", "Password": "123456", "UserID": "", "Status": 1}, "Index": 0},
            {"Action": "Pulse", "Code": "AccessControl", "Data": {"Method": 4, "Name": "OpenDoor", "CardNo": "", "UserID": "", "Password": ""}, "Index": 0},
            {"Action": "Pulse", "Code": "DoorStatus", "Data": {"Status": "Open"}, "Index": 0},
            {"Action": "Start", "Code": "ProfileAlarmTransmit", "Data": {"SenseMethod": "Tamper"}, "Index": 0}
        ]}});
        let signals = events(&msg);
        assert_eq!(signals.len(), 6);
        assert_eq!(
            signals[0],
            Signal::Ringing {
                call: Some("12".into()),
                unit: Some("9901".into())
            }
        );
        assert_eq!(
            signals[1],
            Signal::NoAnswer {
                call: Some("12".into())
            }
        );
        assert_eq!(
            signals[2],
            Signal::Event(DeviceEvent::StationUnlock {
                method: UnlockMethod::Pin,
                who: None,
                door: None
            })
        );
        assert!(!format!("{signals:?}").contains("123456"));
        assert!(matches!(
            &signals[3],
            Signal::Event(DeviceEvent::StationUnlock {
                method: UnlockMethod::IndoorMonitor,
                ..
            })
        ));
        assert_eq!(
            signals[4],
            Signal::Event(DeviceEvent::DoorState {
                open: true,
                door: None
            })
        );
        assert!(
            matches!(&signals[5], Signal::Event(DeviceEvent::DeviceAlarm { code, active: true, .. }) if code == "tamper")
        );
        assert!(events(&json!({"method": "other"})).is_empty());
    }
}
