//! The WG/UHPPOTE (微耕, UT0311-L0x) UDP access-controller protocol: a pure
//! packet codec (no sockets).
//!
//! Every packet is 64 bytes: byte 0 start of message (`0x17`; events from
//! firmware v6.62 use `0x19`), byte 1 the function, bytes 2–3 zero, bytes
//! 4–7 the controller serial number (little-endian u32), payload from byte
//! 8. Dates and times are BCD, card numbers little-endian u32. Requests and
//! replies share a function code, so each direction has its own type:
//! [`Request`] and [`Response`]. Events pushed to the listener use the
//! get-status layout ([`Status`]); get-event (0xB0) returns one record of
//! the controller's log by its index, in the same layout.
//!
//! A time field that is not BCD (controllers with a flat clock battery send
//! them) never drops the packet: the field decodes as `None` and the
//! receiver stamps the event with its own receive time.
//!
//! Field offsets follow uhppoted/uhppote-core (MIT); the tests check the
//! codec against that project's test vectors.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Packet length.
pub const PACKET_LEN: usize = 64;
/// The controllers' UDP port.
pub const DEFAULT_PORT: u16 = 60000;
/// Start of message.
pub const SOM: u8 = 0x17;
/// Start of message of events from firmware v6.62.
pub const SOM_V6_62: u8 = 0x19;
/// Magic word that confirms a set-PC-control request.
const PC_CONTROL_MAGIC: [u8; 4] = [0x55, 0xaa, 0xaa, 0x55];

/// One packet.
pub type Packet = [u8; PACKET_LEN];

/// Function codes.
pub mod function {
    /// Get device (discovery when sent with serial number 0).
    pub const GET_DEVICE: u8 = 0x94;
    /// Get status; also the layout of pushed events.
    pub const GET_STATUS: u8 = 0x20;
    /// Open (unlock) a door.
    pub const OPEN_DOOR: u8 = 0x40;
    /// Set a door's control mode and open delay.
    pub const SET_DOOR_CONTROL: u8 = 0x80;
    /// Set the event listener address.
    pub const SET_LISTENER: u8 = 0x90;
    /// Read the event listener address back.
    pub const GET_LISTENER: u8 = 0x92;
    /// Read one record of the event log by its index.
    pub const GET_EVENT: u8 = 0xB0;
    /// Enable or disable PC control.
    pub const SET_PC_CONTROL: u8 = 0xA0;
}

/// Event types (byte 12 of an event).
pub mod event_type {
    /// No event.
    pub const NONE: u8 = 0x00;
    /// A card was swiped.
    pub const SWIPE: u8 = 0x01;
    /// A door event (contact, button, remote open).
    pub const DOOR: u8 = 0x02;
    /// An alarm.
    pub const ALARM: u8 = 0x03;
    /// The record was overwritten.
    pub const OVERWRITTEN: u8 = 0xFF;
}

/// Event reasons (byte 27 of an event).
pub mod reason {
    /// Swipe, access granted.
    pub const SWIPE_PASS: u8 = 0x01;
    /// Swipe refused: the card has no privilege for the door.
    pub const NO_PRIVILEGE: u8 = 0x06;
    /// Exit push button pressed.
    pub const PUSH_BUTTON: u8 = 0x14;
    /// Door opened.
    pub const DOOR_OPEN: u8 = 0x17;
    /// Door closed.
    pub const DOOR_CLOSED: u8 = 0x18;
    /// Door open too long (held open).
    pub const OPEN_TOO_LONG: u8 = 0x25;
    /// Door forced open.
    pub const FORCED_OPEN: u8 = 0x26;
    /// Door opened remotely (by a host command).
    pub const REMOTE_OPEN: u8 = 0x2C;
    /// Door opened remotely via a USB reader.
    pub const REMOTE_OPEN_USB: u8 = 0x2D;
}

/// The name of a reason code, as recorded (`swipe_pass`, `no_privilege` …);
/// codes without a name are recorded by number (`reason_0x2e`).
pub fn reason_name(code: u8) -> String {
    let name = match code {
        0x01 => "swipe_pass",
        0x05 => "denied_pc_control",
        0x06 => "no_privilege",
        0x07 => "wrong_password",
        0x08 => "anti_passback",
        0x09 => "more_cards",
        0x0A => "first_card_open",
        0x0B => "door_normally_closed",
        0x0C => "interlock",
        0x0D => "limited_times",
        0x0F => "invalid_time_zone",
        0x12 => "denied",
        0x14 => "push_button",
        0x17 => "door_opened",
        0x18 => "door_closed",
        0x19 => "super_password_open",
        0x1C => "controller_power_on",
        0x1D => "controller_reset",
        0x25 => "open_too_long",
        0x26 => "forced_open",
        0x27 => "fire",
        0x28 => "forced_close",
        0x29 => "theft_prevention",
        0x2A => "zone_24x7",
        0x2B => "emergency",
        0x2C => "remote_open",
        0x2D => "remote_open_usb",
        other => return format!("reason_{other:#04x}"),
    };
    name.to_owned()
}

/// Why bytes are not a packet of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WgError {
    /// Not 64 bytes.
    #[error("wg: packet is {0} bytes, not 64")]
    Length(usize),
    /// Unknown start-of-message byte.
    #[error("wg: bad start of message {0:#04x}")]
    Som(u8),
    /// A function this codec does not know (or not the one expected).
    #[error("wg: unexpected function {0:#04x}")]
    Function(u8),
    /// A BCD digit out of range.
    #[error("wg: bad BCD byte {value:#04x} at offset {offset}")]
    Bcd {
        /// Offset in the packet.
        offset: usize,
        /// The byte.
        value: u8,
    },
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// Year (e.g. 2019).
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
}

/// A time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Hour 0–23.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
}

/// A controller-local date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// The date.
    pub date: Date,
    /// The time.
    pub time: Time,
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, t) = (self.date, self.time);
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            d.year, d.month, d.day, t.hour, t.minute, t.second
        )
    }
}

/// A get-device reply: the controller's network identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Serial number.
    pub serial: u32,
    /// IPv4 address.
    pub address: Ipv4Addr,
    /// Subnet mask.
    pub netmask: Ipv4Addr,
    /// Gateway.
    pub gateway: Ipv4Addr,
    /// MAC address.
    pub mac: [u8; 6],
    /// Firmware version as two BCD bytes (`[0x08, 0x92]` = v8.92).
    pub version: [u8; 2],
    /// Firmware date.
    pub date: Option<Date>,
}

impl DeviceInfo {
    /// The firmware version as text (`v8.92`).
    pub fn version_text(&self) -> String {
        format!("v{:x}.{:02x}", self.version[0], self.version[1])
    }
}

/// The most recent event record (bytes 8–27 of a status or event packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecord {
    /// The event's index in the controller's log.
    pub index: u32,
    /// Event type ([`event_type`]).
    pub kind: u8,
    /// Whether access was granted.
    pub granted: bool,
    /// Door 1–4.
    pub door: u8,
    /// 1 in, 2 out.
    pub direction: u8,
    /// Card number (swipes).
    pub card: u32,
    /// When, controller-local.
    pub timestamp: Option<DateTime>,
    /// Reason ([`reason`]).
    pub reason: u8,
}

/// A get-status reply, and the body of every pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Serial number.
    pub serial: u32,
    /// The latest event.
    pub event: EventRecord,
    /// Door contacts 1–4, `true` when open.
    pub doors_open: [bool; 4],
    /// Exit buttons 1–4, `true` while pressed.
    pub buttons: [bool; 4],
    /// System error code.
    pub system_error: u8,
    /// Controller date.
    pub system_date: Option<Date>,
    /// Controller time.
    pub system_time: Option<Time>,
    /// Packet sequence number.
    pub sequence: u32,
    /// Special info byte.
    pub special_info: u8,
    /// Relay bitmap (bit n set: door n+1 unlocked).
    pub relay_state: u8,
    /// Input bitmap (bit 0 force-lock, bit 1 fire alarm).
    pub input_state: u8,
}

/// What a host sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Get device; serial 0 addresses every controller (discovery).
    GetDevice {
        /// Serial number, or 0.
        serial: u32,
    },
    /// Get status.
    GetStatus {
        /// Serial number.
        serial: u32,
    },
    /// Unlock a door for its configured open delay.
    OpenDoor {
        /// Serial number.
        serial: u32,
        /// Door 1–4.
        door: u8,
    },
    /// Set a door's mode (1 normally open, 2 normally closed, 3 controlled)
    /// and open delay in seconds.
    SetDoorControl {
        /// Serial number.
        serial: u32,
        /// Door 1–4.
        door: u8,
        /// Mode.
        mode: u8,
        /// Open delay, seconds.
        delay: u8,
    },
    /// Send events to `address`; `interval` is the auto-send period in
    /// seconds (0: events only).
    SetListener {
        /// Serial number.
        serial: u32,
        /// Where events go.
        address: SocketAddrV4,
        /// Auto-send interval, seconds.
        interval: u8,
    },
    /// Enable or disable PC control (the host decides access).
    SetPcControl {
        /// Serial number.
        serial: u32,
        /// Enabled.
        enabled: bool,
    },
    /// Read the event listener address back.
    GetListener {
        /// Serial number.
        serial: u32,
    },
    /// Read the record at `index` of the controller's event log.
    GetEvent {
        /// Serial number.
        serial: u32,
        /// The record's index.
        index: u32,
    },
}

/// What a controller sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Get-device reply.
    Device(DeviceInfo),
    /// Get-status reply or pushed event; `v6_62` when sent with SOM 0x19.
    Status {
        /// The status.
        status: Status,
        /// Sent with the v6.62 event start byte.
        v6_62: bool,
    },
    /// Open-door reply.
    OpenDoor {
        /// Serial number.
        serial: u32,
        /// The door was unlocked.
        ok: bool,
    },
    /// Set-door-control reply (echoes the settings now in force).
    SetDoorControl {
        /// Serial number.
        serial: u32,
        /// Door.
        door: u8,
        /// Mode.
        mode: u8,
        /// Delay.
        delay: u8,
    },
    /// Set-listener reply.
    SetListener {
        /// Serial number.
        serial: u32,
        /// Accepted.
        ok: bool,
    },
    /// Set-PC-control reply.
    SetPcControl {
        /// Serial number.
        serial: u32,
        /// Accepted.
        ok: bool,
    },
    /// Get-listener reply: where the controller sends its events now.
    Listener {
        /// Serial number.
        serial: u32,
        /// The listener (0.0.0.0:0 when none is set).
        address: SocketAddrV4,
        /// Auto-send interval, seconds.
        interval: u8,
    },
    /// Get-event reply: the record at the asked index (`kind`
    /// [`event_type::NONE`] when there is none, [`event_type::OVERWRITTEN`]
    /// when it is gone).
    Event {
        /// Serial number.
        serial: u32,
        /// The record.
        event: EventRecord,
    },
}

// ---- byte helpers -------------------------------------------------------

fn new_packet(som: u8, function: u8, serial: u32) -> Packet {
    let mut p = [0u8; PACKET_LEN];
    p[0] = som;
    p[1] = function;
    p[4..8].copy_from_slice(&serial.to_le_bytes());
    p
}

fn u32_at(p: &Packet, at: usize) -> u32 {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn ipv4_at(p: &Packet, at: usize) -> Ipv4Addr {
    Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3])
}

fn bcd_at(p: &Packet, at: usize) -> Result<u8, WgError> {
    let value = p[at];
    let (hi, lo) = (value >> 4, value & 0x0f);
    if hi > 9 || lo > 9 {
        return Err(WgError::Bcd { offset: at, value });
    }
    Ok(hi * 10 + lo)
}

fn to_bcd(n: u8) -> u8 {
    ((n / 10 % 10) << 4) | (n % 10)
}

/// Date from `century`-less `yy mm dd` (3 bytes) or `cc yy mm dd` (4 bytes).
fn date_at(p: &Packet, at: usize, with_century: bool) -> Result<Option<Date>, WgError> {
    let len = if with_century { 4 } else { 3 };
    if p[at..at + len].iter().all(|b| *b == 0) {
        return Ok(None);
    }
    let (year, rest) = if with_century {
        (
            u16::from(bcd_at(p, at)?) * 100 + u16::from(bcd_at(p, at + 1)?),
            at + 2,
        )
    } else {
        (2000 + u16::from(bcd_at(p, at)?), at + 1)
    };
    Ok(Some(Date {
        year,
        month: bcd_at(p, rest)?,
        day: bcd_at(p, rest + 1)?,
    }))
}

fn put_date(p: &mut Packet, at: usize, date: Option<Date>, with_century: bool) {
    let Some(d) = date else { return };
    let mut at = at;
    if with_century {
        p[at] = to_bcd(u8::try_from(d.year / 100).unwrap_or(0));
        at += 1;
    }
    p[at] = to_bcd(u8::try_from(d.year % 100).unwrap_or(0));
    p[at + 1] = to_bcd(d.month);
    p[at + 2] = to_bcd(d.day);
}

fn time_at(p: &Packet, at: usize) -> Result<Time, WgError> {
    Ok(Time {
        hour: bcd_at(p, at)?,
        minute: bcd_at(p, at + 1)?,
        second: bcd_at(p, at + 2)?,
    })
}

fn put_time(p: &mut Packet, at: usize, t: Time) {
    p[at] = to_bcd(t.hour);
    p[at + 1] = to_bcd(t.minute);
    p[at + 2] = to_bcd(t.second);
}

/// A time field that is not BCD reads as absent: the event itself is
/// still good, and the receiver stamps it with its own clock.
fn lenient<T>(field: Result<Option<T>, WgError>) -> Option<T> {
    field.unwrap_or_else(|error| {
        tracing::debug!(%error, "unreadable controller time; using the receive time");
        None
    })
}

fn datetime_at(p: &Packet, at: usize) -> Result<Option<DateTime>, WgError> {
    if p[at..at + 7].iter().all(|b| *b == 0) {
        return Ok(None);
    }
    let date = date_at(p, at, true)?.ok_or(WgError::Bcd {
        offset: at,
        value: 0,
    })?;
    Ok(Some(DateTime {
        date,
        time: time_at(p, at + 4)?,
    }))
}

fn put_datetime(p: &mut Packet, at: usize, dt: Option<DateTime>) {
    if let Some(dt) = dt {
        put_date(p, at, Some(dt.date), true);
        put_time(p, at + 4, dt.time);
    }
}

fn packet(bytes: &[u8]) -> Result<(&Packet, bool), WgError> {
    let p: &Packet = bytes.try_into().map_err(|_| WgError::Length(bytes.len()))?;
    match p[0] {
        SOM => Ok((p, false)),
        SOM_V6_62 => Ok((p, true)),
        other => Err(WgError::Som(other)),
    }
}

// ---- requests -------------------------------------------------------------

impl Request {
    /// The addressed controller.
    pub fn serial(&self) -> u32 {
        match *self {
            Request::GetDevice { serial }
            | Request::GetStatus { serial }
            | Request::OpenDoor { serial, .. }
            | Request::SetDoorControl { serial, .. }
            | Request::SetListener { serial, .. }
            | Request::SetPcControl { serial, .. }
            | Request::GetListener { serial }
            | Request::GetEvent { serial, .. } => serial,
        }
    }

    /// The function code.
    pub fn function(&self) -> u8 {
        match self {
            Request::GetDevice { .. } => function::GET_DEVICE,
            Request::GetStatus { .. } => function::GET_STATUS,
            Request::OpenDoor { .. } => function::OPEN_DOOR,
            Request::SetDoorControl { .. } => function::SET_DOOR_CONTROL,
            Request::SetListener { .. } => function::SET_LISTENER,
            Request::SetPcControl { .. } => function::SET_PC_CONTROL,
            Request::GetListener { .. } => function::GET_LISTENER,
            Request::GetEvent { .. } => function::GET_EVENT,
        }
    }

    /// The request as a packet.
    pub fn encode(&self) -> Packet {
        let mut p = new_packet(SOM, self.function(), self.serial());
        match *self {
            Request::GetDevice { .. } | Request::GetStatus { .. } | Request::GetListener { .. } => {
            }
            Request::GetEvent { index, .. } => p[8..12].copy_from_slice(&index.to_le_bytes()),
            Request::OpenDoor { door, .. } => p[8] = door,
            Request::SetDoorControl {
                door, mode, delay, ..
            } => {
                p[8] = door;
                p[9] = mode;
                p[10] = delay;
            }
            Request::SetListener {
                address, interval, ..
            } => {
                p[8..12].copy_from_slice(&address.ip().octets());
                p[12..14].copy_from_slice(&address.port().to_le_bytes());
                p[14] = interval;
            }
            Request::SetPcControl { enabled, .. } => {
                p[8..12].copy_from_slice(&PC_CONTROL_MAGIC);
                p[12] = u8::from(enabled);
            }
        }
        p
    }

    /// Parses a request (the simulator's side).
    pub fn decode(bytes: &[u8]) -> Result<Self, WgError> {
        let (p, _) = packet(bytes)?;
        let serial = u32_at(p, 4);
        Ok(match p[1] {
            function::GET_DEVICE => Request::GetDevice { serial },
            function::GET_STATUS => Request::GetStatus { serial },
            function::OPEN_DOOR => Request::OpenDoor { serial, door: p[8] },
            function::SET_DOOR_CONTROL => Request::SetDoorControl {
                serial,
                door: p[8],
                mode: p[9],
                delay: p[10],
            },
            function::SET_LISTENER => Request::SetListener {
                serial,
                address: SocketAddrV4::new(ipv4_at(p, 8), u16::from_le_bytes([p[12], p[13]])),
                interval: p[14],
            },
            function::SET_PC_CONTROL => Request::SetPcControl {
                serial,
                enabled: p[8..12] == PC_CONTROL_MAGIC && p[12] == 1,
            },
            function::GET_LISTENER => Request::GetListener { serial },
            function::GET_EVENT => Request::GetEvent {
                serial,
                index: u32_at(p, 8),
            },
            other => return Err(WgError::Function(other)),
        })
    }
}

// ---- responses ------------------------------------------------------------

impl EventRecord {
    /// Bytes 8–27 of a status, event or get-event packet.
    fn decode(p: &Packet) -> Self {
        EventRecord {
            index: u32_at(p, 8),
            kind: p[12],
            granted: p[13] != 0,
            door: p[14],
            direction: p[15],
            card: u32_at(p, 16),
            timestamp: lenient(datetime_at(p, 20)),
            reason: p[27],
        }
    }

    fn encode_into(&self, p: &mut Packet) {
        p[8..12].copy_from_slice(&self.index.to_le_bytes());
        p[12] = self.kind;
        p[13] = u8::from(self.granted);
        p[14] = self.door;
        p[15] = self.direction;
        p[16..20].copy_from_slice(&self.card.to_le_bytes());
        put_datetime(p, 20, self.timestamp);
        p[27] = self.reason;
    }
}

impl Status {
    fn decode(p: &Packet) -> Self {
        let flag = |at: usize| p[at] != 0;
        Status {
            serial: u32_at(p, 4),
            event: EventRecord::decode(p),
            doors_open: [flag(28), flag(29), flag(30), flag(31)],
            buttons: [flag(32), flag(33), flag(34), flag(35)],
            system_error: p[36],
            system_time: if p[37..40].iter().all(|b| *b == 0) {
                None
            } else {
                lenient(time_at(p, 37).map(Some))
            },
            sequence: u32_at(p, 40),
            special_info: p[48],
            relay_state: p[49],
            input_state: p[50],
            system_date: lenient(date_at(p, 51, false)),
        }
    }

    fn encode_into(&self, p: &mut Packet) {
        self.event.encode_into(p);
        for i in 0..4 {
            p[28 + i] = u8::from(self.doors_open[i]);
            p[32 + i] = u8::from(self.buttons[i]);
        }
        p[36] = self.system_error;
        if let Some(t) = self.system_time {
            put_time(p, 37, t);
        }
        p[40..44].copy_from_slice(&self.sequence.to_le_bytes());
        p[48] = self.special_info;
        p[49] = self.relay_state;
        p[50] = self.input_state;
        put_date(p, 51, self.system_date, false);
    }
}

impl Response {
    /// The answering controller.
    pub fn serial(&self) -> u32 {
        match *self {
            Response::Device(DeviceInfo { serial, .. })
            | Response::Status {
                status: Status { serial, .. },
                ..
            }
            | Response::OpenDoor { serial, .. }
            | Response::SetDoorControl { serial, .. }
            | Response::SetListener { serial, .. }
            | Response::SetPcControl { serial, .. }
            | Response::Listener { serial, .. }
            | Response::Event { serial, .. } => serial,
        }
    }

    /// The response as a packet.
    pub fn encode(&self) -> Packet {
        match *self {
            Response::Device(ref d) => {
                let mut p = new_packet(SOM, function::GET_DEVICE, d.serial);
                p[8..12].copy_from_slice(&d.address.octets());
                p[12..16].copy_from_slice(&d.netmask.octets());
                p[16..20].copy_from_slice(&d.gateway.octets());
                p[20..26].copy_from_slice(&d.mac);
                p[26..28].copy_from_slice(&d.version);
                put_date(&mut p, 28, d.date, true);
                p
            }
            Response::Status { ref status, v6_62 } => {
                let som = if v6_62 { SOM_V6_62 } else { SOM };
                let mut p = new_packet(som, function::GET_STATUS, status.serial);
                status.encode_into(&mut p);
                p
            }
            Response::OpenDoor { serial, ok } => ok_packet(function::OPEN_DOOR, serial, ok),
            Response::SetListener { serial, ok } => ok_packet(function::SET_LISTENER, serial, ok),
            Response::SetPcControl { serial, ok } => {
                ok_packet(function::SET_PC_CONTROL, serial, ok)
            }
            Response::SetDoorControl {
                serial,
                door,
                mode,
                delay,
            } => {
                let mut p = new_packet(SOM, function::SET_DOOR_CONTROL, serial);
                p[8] = door;
                p[9] = mode;
                p[10] = delay;
                p
            }
            Response::Listener {
                serial,
                address,
                interval,
            } => {
                let mut p = new_packet(SOM, function::GET_LISTENER, serial);
                p[8..12].copy_from_slice(&address.ip().octets());
                p[12..14].copy_from_slice(&address.port().to_le_bytes());
                p[14] = interval;
                p
            }
            Response::Event { serial, ref event } => {
                let mut p = new_packet(SOM, function::GET_EVENT, serial);
                event.encode_into(&mut p);
                p
            }
        }
    }

    /// Parses a controller packet.
    pub fn decode(bytes: &[u8]) -> Result<Self, WgError> {
        let (p, v6_62) = packet(bytes)?;
        let serial = u32_at(p, 4);
        let ok = p[8] == 1;
        Ok(match p[1] {
            function::GET_DEVICE => Response::Device(DeviceInfo {
                serial,
                address: ipv4_at(p, 8),
                netmask: ipv4_at(p, 12),
                gateway: ipv4_at(p, 16),
                mac: [p[20], p[21], p[22], p[23], p[24], p[25]],
                version: [p[26], p[27]],
                date: lenient(date_at(p, 28, true)),
            }),
            function::GET_STATUS => Response::Status {
                status: Status::decode(p),
                v6_62,
            },
            function::GET_LISTENER => Response::Listener {
                serial,
                address: SocketAddrV4::new(ipv4_at(p, 8), u16::from_le_bytes([p[12], p[13]])),
                interval: p[14],
            },
            function::GET_EVENT => Response::Event {
                serial,
                event: EventRecord::decode(p),
            },
            function::OPEN_DOOR => Response::OpenDoor { serial, ok },
            function::SET_LISTENER => Response::SetListener { serial, ok },
            function::SET_PC_CONTROL => Response::SetPcControl { serial, ok },
            function::SET_DOOR_CONTROL => Response::SetDoorControl {
                serial,
                door: p[8],
                mode: p[9],
                delay: p[10],
            },
            other => return Err(WgError::Function(other)),
        })
    }
}

fn ok_packet(function: u8, serial: u32, ok: bool) -> Packet {
    let mut p = new_packet(SOM, function, serial);
    p[8] = u8::from(ok);
    p
}
