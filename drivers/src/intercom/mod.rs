//! Door stations (门口机) of video intercoms: one vocabulary for three
//! families, their codecs (pure) and their drivers (IO).
//!
//! The vocabulary is [`DeviceEvent`]'s intercom kinds — `call_started`,
//! `call_answered`, `call_ended`, `call_missed`, `station_unlock` — plus the
//! shared ones a station also reports: `device_link` (online/offline),
//! `device_alarm` with code `tamper`, and `door_state` (door contact).
//! A remote unlock is [`crate::Command::PulseDoor`], whoever asks.
//!
//! - [`calls`]: the call tracker, turning what a station signals (ringing,
//!   answered, idle, no answer) into call events with ids and durations.
//! - [`stream`]: an incremental, bounded multipart splitter (alert streams).
//! - [`hikvision`] + [`hik_driver`]: ISAPI over HTTP Digest — the
//!   `alertStream`, `callStatus`, `RemoteControl/door`.
//! - [`dahua`] + [`dahua_driver`]: the VTO's JSON-RPC on TCP 5000 (binary
//!   header framing, realm/random login, keep-alive, `eventManager.attach`,
//!   `accessControl` open door) with the HTTP CGI fallback.
//! - [`mqtt`] + [`mqtt_driver`]: stations or bridges that publish JSON, with
//!   configured topics and JSON pointers.
//!
//! **Codes never in clear:** a PIN a station reports (Dahua sends
//! `Password` in its `AccessControl` events) is dropped by the codecs; only
//! the method `pin` is kept.

use crate::event::{Answerer, DeviceEvent};

pub mod calls;
pub mod dahua;
pub mod dahua_driver;
pub mod digest;
pub mod hik_driver;
pub mod hikvision;
pub mod mqtt;
pub mod mqtt_driver;
pub mod stream;

/// What a codec read from a station, before call tracking.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// An event that needs no tracking (unlock, tamper, door contact).
    Event(DeviceEvent),
    /// A call is ringing (the station's call id when it gives one).
    Ringing {
        /// The station's call id.
        call: Option<String>,
        /// The unit or room called.
        unit: Option<String>,
    },
    /// The ringing call was answered.
    Answered {
        /// Where.
        by: Answerer,
    },
    /// The station is idle again: the call ended (answered) or was given up.
    Idle,
    /// The station says the call is over and does not say it went
    /// unanswered (it reports those separately).
    Ended,
    /// The station says the call was not answered.
    NoAnswer {
        /// The station's call id.
        call: Option<String>,
    },
    /// Proof of life, nothing else.
    Heartbeat,
}

/// Cuts untrusted text for messages and ids.
pub(crate) fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
