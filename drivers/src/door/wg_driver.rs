//! [`WgController`]: a WG/UHPPOTE access controller over UDP, and
//! [`discover`] for finding controllers.
//!
//! The driver binds one UDP socket, points the controller's event listener
//! (function 0x90) at it, and then:
//! - turns pushed events (and the latest event seen in status replies) into
//!   `CardRead` (with the controller's own granted flag and reason),
//!   `ExitButton` and `DoorAlarm` events, each event index once;
//! - tracks the controller's event index: a gap (a push lost on the way,
//!   followed by another swipe before the next poll) is fetched record by
//!   record with get-event (0xB0), retried until answered; the records the
//!   controller logged while this driver was not running (the gateway down
//!   or restarting; `resume_after` says where it stopped) are fetched the
//!   same way and reported as `AccessHistory`, never acted on;
//! - reports door contacts as `DoorState` from the door bits every status
//!   and event packet carries, clearing door alarms when a door closes;
//! - polls status every `poll_interval_ms`, reporting `DeviceLink` offline
//!   after `offline_after_missed` unanswered polls and online again on the
//!   next packet; a packet with an unreadable clock still counts (the codec
//!   decodes it without its time);
//! - sets the listener again on every online transition (a controller that
//!   restarted may have lost it) and reads it back with get-listener every
//!   `listener_check_polls` polls, setting it again when it is not ours;
//! - answers `Command::PulseDoor` with an open-door request (0x40) and the
//!   controller's reply (the controller times the unlock itself).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::wg::{
    DeviceInfo, EventRecord, PACKET_LEN, Request, Response, Status, event_type, reason, reason_name,
};
use crate::command::{Command, CommandOutcome, CommandRequest};
use crate::contract::{Driver, DriverContext, DriverError, Link};
use crate::event::{ControllerVerdict, DeviceEvent, DoorAlarmKind};

/// Configuration of one WG controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgConfig {
    /// The controller's address (port 60000 normally).
    pub controller: SocketAddr,
    /// The controller's serial number.
    pub serial: u32,
    /// Local address to bind (events and replies arrive here).
    pub bind: SocketAddr,
    /// Where the controller should send events, if not the bound address
    /// (required when binding 0.0.0.0).
    pub listener: Option<SocketAddrV4>,
    /// Doors on the controller (1, 2 or 4).
    pub doors: u8,
    /// Status poll period, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long to wait for a reply, in milliseconds.
    pub reply_timeout_ms: u64,
    /// Unanswered polls before the controller counts as offline.
    pub offline_after_missed: u32,
    /// Every how many polls the listener is read back (get-listener).
    pub listener_check_polls: u32,
    /// The last event index already recorded (from the journal): the
    /// records after it are fetched as history when the driver starts.
    pub resume_after: Option<u32>,
}

fn default_doors() -> u8 {
    4
}
fn default_poll_ms() -> u64 {
    5_000
}
fn default_reply_ms() -> u64 {
    1_000
}
fn default_missed() -> u32 {
    3
}
fn default_listener_check() -> u32 {
    12
}

impl WgConfig {
    /// Where the driver binds unless told otherwise.
    pub const DEFAULT_BIND: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 60001));

    /// A configuration with defaults for `controller` and `serial`, bound to `bind`.
    pub fn new(controller: SocketAddr, serial: u32, bind: SocketAddr) -> Self {
        Self {
            controller,
            serial,
            bind,
            listener: None,
            doors: default_doors(),
            poll_interval_ms: default_poll_ms(),
            reply_timeout_ms: default_reply_ms(),
            offline_after_missed: default_missed(),
            listener_check_polls: default_listener_check(),
            resume_after: None,
        }
    }
}

/// Events for one controller event record heard live (door contacts
/// excepted: those come from the door bits). Pure.
pub fn record_events(record: &EventRecord) -> Vec<DeviceEvent> {
    let door = Some(record.door);
    let alarm = |alarm| DeviceEvent::DoorAlarm {
        alarm,
        active: true,
        door,
    };
    match (record.kind, record.reason) {
        (event_type::NONE | event_type::OVERWRITTEN, _) => vec![],
        (event_type::SWIPE, _) => vec![DeviceEvent::CardRead {
            card: record.card.to_string(),
            format: "wg".into(),
            facility: None,
            door,
            controller: Some(ControllerVerdict {
                granted: record.granted,
                reason: reason_name(record.reason),
                index: record.index,
            }),
        }],
        (_, reason::PUSH_BUTTON) => vec![DeviceEvent::ExitButton { door }],
        (_, reason::OPEN_TOO_LONG) => vec![alarm(DoorAlarmKind::HeldOpen)],
        (_, reason::FORCED_OPEN) => vec![alarm(DoorAlarmKind::ForcedOpen)],
        _ => vec![],
    }
}

/// The history event for a record the gateway did not hear live, if it is
/// a record at all. Pure.
pub fn history_event(record: &EventRecord) -> Option<DeviceEvent> {
    let what = match record.kind {
        event_type::SWIPE => "swipe",
        event_type::DOOR => "door",
        event_type::ALARM => "alarm",
        _ => return None,
    };
    Some(DeviceEvent::AccessHistory {
        index: record.index,
        record: what.into(),
        card: (record.kind == event_type::SWIPE).then(|| record.card.to_string()),
        door: Some(record.door),
        granted: record.granted,
        reason: reason_name(record.reason),
        controller_time: record.timestamp.map(|t| t.to_string()),
    })
}

/// Broadcasts (or unicasts) a get-device request with serial 0 to `target`
/// from `bind`, and collects the replies that arrive within `wait`.
pub async fn discover(
    bind: SocketAddr,
    target: SocketAddr,
    wait: Duration,
) -> io::Result<Vec<DeviceInfo>> {
    let socket = UdpSocket::bind(bind).await?;
    socket.set_broadcast(true)?;
    socket
        .send_to(&Request::GetDevice { serial: 0 }.encode(), target)
        .await?;
    let deadline = Instant::now() + wait;
    let mut found: Vec<DeviceInfo> = Vec::new();
    let mut buf = [0u8; 128];
    while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        let (n, _) = received?;
        if let Ok(Response::Device(info)) = Response::decode(&buf[..n])
            && !found.iter().any(|f| f.serial == info.serial)
        {
            found.push(info);
        }
    }
    Ok(found)
}

/// The WG controller driver. The last event index it saw outlives a run,
/// so a restarted driver fetches what it missed.
#[derive(Debug)]
pub struct WgController {
    config: WgConfig,
    last_index: Option<u32>,
}

impl WgController {
    /// A driver for `config`.
    pub fn new(config: WgConfig) -> Self {
        let last_index = config.resume_after;
        Self { config, last_index }
    }
}

/// One run's state.
struct Session<'a> {
    config: &'a WgConfig,
    socket: UdpSocket,
    listener: SocketAddrV4,
    listener_ok: bool,
    link: Link,
    poll_pending: bool,
    missed: u32,
    polls: u32,
    last_index: &'a mut Option<u32>,
    /// No record of this run handled yet: what comes first was made while
    /// nobody listened.
    starting: bool,
    /// Indices still to fetch with get-event, and whether each is history.
    missing: BTreeMap<u32, bool>,
    /// The get-event request in flight: index, reply deadline, attempts.
    fetching: Option<(u32, Instant, u32)>,
    doors_open: [Option<bool>; 4],
    alarms: [[bool; 2]; 4],
    opens: VecDeque<(Instant, CommandRequest)>,
}

/// An event index this far below the last one means a reset log.
const RESET_MARGIN: u32 = 10_000;
/// The most records fetched for one gap (older ones are left in the
/// controller's log).
const MAX_GAP: u32 = 1_000;
/// Attempts at fetching one record before giving up on it.
const FETCH_ATTEMPTS: u32 = 5;

fn transient(e: io::Error) -> DriverError {
    DriverError::Transient(format!("wg udp: {e}"))
}

impl Session<'_> {
    fn reply_timeout(&self) -> Duration {
        Duration::from_millis(self.config.reply_timeout_ms)
    }

    async fn send(&self, request: Request) -> Result<(), DriverError> {
        self.socket
            .send_to(&request.encode(), self.config.controller)
            .await
            .map(drop)
            .map_err(transient)
    }

    async fn set_listener(&mut self) -> Result<(), DriverError> {
        self.send(Request::SetListener {
            serial: self.config.serial,
            address: self.listener,
            interval: 0,
        })
        .await
    }

    async fn link(
        &mut self,
        ctx: &DriverContext,
        online: bool,
        detail: String,
    ) -> Result<(), DriverError> {
        if online {
            ctx.health.ok();
        } else {
            ctx.health.degraded(&detail);
        }
        if self.link.known() == Some(online) {
            return Ok(());
        }
        if !online {
            // What the controller logs while it cannot be reached is
            // history by the time it is fetched.
            self.starting = true;
        }
        if online {
            // A controller that was away may have restarted without our
            // listener: set it again on every way back.
            self.listener_ok = false;
            self.set_listener().await?;
        }
        self.link.report(&ctx.events, online, || detail).await?;
        Ok(())
    }

    async fn poll(&mut self, ctx: &DriverContext) -> Result<(), DriverError> {
        if self.poll_pending {
            self.missed += 1;
            if self.missed >= self.config.offline_after_missed {
                let detail = format!("{} unanswered status polls", self.missed);
                self.link(ctx, false, detail).await?;
            }
        }
        self.polls = self.polls.wrapping_add(1);
        let serial = self.config.serial;
        if !self.listener_ok {
            self.set_listener().await?;
        } else if self
            .polls
            .is_multiple_of(self.config.listener_check_polls.max(1))
        {
            self.send(Request::GetListener { serial }).await?;
        }
        self.poll_pending = true;
        self.send(Request::GetStatus { serial }).await
    }

    async fn packet(
        &mut self,
        ctx: &DriverContext,
        bytes: &[u8],
        from: SocketAddr,
    ) -> Result<(), DriverError> {
        if from.ip() != self.config.controller.ip() {
            tracing::debug!(%from, "ignoring a packet from another host");
            return Ok(());
        }
        let response = match Response::decode(bytes) {
            Ok(r) if r.serial() == self.config.serial => r,
            Ok(r) => {
                tracing::debug!(serial = r.serial(), "ignoring another controller");
                return Ok(());
            }
            Err(error) => {
                tracing::debug!(%error, "ignoring a malformed packet");
                return Ok(());
            }
        };
        self.missed = 0;
        self.link(ctx, true, format!("controller {}", self.config.serial))
            .await?;
        match response {
            Response::Status { status, .. } => {
                self.poll_pending = false;
                self.status(ctx, &status).await?;
            }
            Response::SetListener { ok, .. } => self.listener_ok = ok,
            Response::Listener { address, .. } => {
                if address != self.listener {
                    tracing::warn!(
                        serial = self.config.serial,
                        %address,
                        "the controller's event listener is not this gateway; setting it again"
                    );
                    self.listener_ok = false;
                    self.set_listener().await?;
                }
            }
            Response::Event { event, .. } => self.fetched(ctx, event).await?,
            Response::OpenDoor { ok, .. } => {
                if let Some((_, request)) = self.opens.pop_front() {
                    request.answer(if ok {
                        CommandOutcome::Done
                    } else {
                        CommandOutcome::Failed("the controller did not open the door".into())
                    });
                }
            }
            Response::Device(_)
            | Response::SetDoorControl { .. }
            | Response::SetPcControl { .. } => {}
        }
        Ok(())
    }

    async fn status(&mut self, ctx: &DriverContext, status: &Status) -> Result<(), DriverError> {
        let doors = usize::from(self.config.doors.clamp(1, 4));
        for i in 0..doors {
            let open = status.doors_open[i];
            if self.doors_open[i].replace(open) == Some(open) {
                continue;
            }
            let door = u8::try_from(i + 1).ok();
            ctx.events
                .emit(DeviceEvent::DoorState { open, door })
                .await?;
            if !open {
                for (k, alarm) in [DoorAlarmKind::HeldOpen, DoorAlarmKind::ForcedOpen]
                    .into_iter()
                    .enumerate()
                {
                    if std::mem::take(&mut self.alarms[i][k]) {
                        ctx.events
                            .emit(DeviceEvent::DoorAlarm {
                                alarm,
                                active: false,
                                door,
                            })
                            .await?;
                    }
                }
            }
        }
        self.newest(ctx, status.event).await
    }

    /// The newest record, as a status reply or a pushed event shows it.
    async fn newest(
        &mut self,
        ctx: &DriverContext,
        record: EventRecord,
    ) -> Result<(), DriverError> {
        if record.kind == event_type::NONE || record.index == 0 {
            return Ok(());
        }
        let history = std::mem::take(&mut self.starting);
        let Some(last) = *self.last_index else {
            // Nothing recorded yet: the log before this record is somebody
            // else's past, and this record itself may be days old.
            *self.last_index = Some(record.index);
            return Ok(());
        };
        if record.index > last {
            let from = (last + 1).max(record.index.saturating_sub(MAX_GAP));
            if from > last + 1 {
                tracing::warn!(
                    serial = self.config.serial,
                    skipped = from - last - 1,
                    "too many records missed; fetching only the newest"
                );
            }
            for index in from..record.index {
                self.missing.insert(index, history);
            }
            *self.last_index = Some(record.index);
            self.emit(ctx, &record, history).await?;
        } else if record.index.saturating_add(RESET_MARGIN) < last {
            // The controller's log was reset: start again from here.
            self.missing.clear();
            self.fetching = None;
            *self.last_index = Some(record.index);
            self.emit(ctx, &record, history).await?;
        } else if let Some(history) = self.missing.remove(&record.index) {
            // A push that overtook the fetch of its own gap.
            self.emit(ctx, &record, history).await?;
        }
        self.fetch_next().await
    }

    /// A get-event reply: the record of a gap, or none at that index.
    async fn fetched(
        &mut self,
        ctx: &DriverContext,
        record: EventRecord,
    ) -> Result<(), DriverError> {
        let asked = self.fetching.map(|(index, ..)| index);
        if let Some(history) = self.missing.remove(&record.index) {
            self.emit(ctx, &record, history).await?;
        }
        if let Some(asked) = asked
            && (asked == record.index || record.index == 0 || record.kind == event_type::NONE)
        {
            // Answered (an empty or overwritten record is an answer too).
            self.missing.remove(&asked);
            self.fetching = None;
        }
        self.fetch_next().await
    }

    async fn emit(
        &mut self,
        ctx: &DriverContext,
        record: &EventRecord,
        history: bool,
    ) -> Result<(), DriverError> {
        if history {
            if let Some(event) = history_event(record) {
                ctx.events.emit(event).await?;
            }
            return Ok(());
        }
        for event in record_events(record) {
            if let DeviceEvent::DoorAlarm {
                alarm,
                door: Some(d),
                ..
            } = event
                && let Some(slot) = self.alarms.get_mut(usize::from(d).wrapping_sub(1))
            {
                slot[usize::from(alarm == DoorAlarmKind::ForcedOpen)] = true;
            }
            ctx.events.emit(event).await?;
        }
        Ok(())
    }

    /// Asks for the oldest missing record, unless a request is in flight.
    async fn fetch_next(&mut self) -> Result<(), DriverError> {
        if self.fetching.is_some() {
            return Ok(());
        }
        let Some(&index) = self.missing.keys().next() else {
            return Ok(());
        };
        self.fetching = Some((index, Instant::now() + self.reply_timeout(), 1));
        self.send(Request::GetEvent {
            serial: self.config.serial,
            index,
        })
        .await
    }

    /// The fetch in flight got no answer in time: ask again, or give up on
    /// that record after [`FETCH_ATTEMPTS`].
    async fn fetch_timed_out(&mut self) -> Result<(), DriverError> {
        let Some((index, _, attempts)) = self.fetching.take() else {
            return Ok(());
        };
        if attempts >= FETCH_ATTEMPTS {
            tracing::warn!(
                serial = self.config.serial,
                index,
                "event record not fetched; giving up"
            );
            self.missing.remove(&index);
            return self.fetch_next().await;
        }
        self.fetching = Some((index, Instant::now() + self.reply_timeout(), attempts + 1));
        self.send(Request::GetEvent {
            serial: self.config.serial,
            index,
        })
        .await
    }

    async fn command(&mut self, request: CommandRequest) -> Result<(), DriverError> {
        // Past its deadline: dropped, never sent late.
        let Some(request) = request.unless_expired() else {
            return Ok(());
        };
        match request.command {
            Command::PulseDoor { door, .. } => {
                let door = door.unwrap_or(1);
                if door == 0 || door > self.config.doors.clamp(1, 4) {
                    request.answer(CommandOutcome::Refused(format!(
                        "no door {door} on this controller"
                    )));
                    return Ok(());
                }
                self.send(Request::OpenDoor {
                    serial: self.config.serial,
                    door,
                })
                .await?;
                let deadline = Instant::now() + self.reply_timeout();
                self.opens.push_back((deadline, request));
            }
            // The controller locks by itself; there is nothing to drive.
            Command::SafeState => request.answer(CommandOutcome::Done),
            Command::Poll => {
                self.send(Request::GetStatus {
                    serial: self.config.serial,
                })
                .await?;
                request.answer(CommandOutcome::Done);
            }
            _ => request.answer(CommandOutcome::Unsupported),
        }
        Ok(())
    }

    fn expire_opens(&mut self, now: Instant) {
        while self
            .opens
            .front()
            .is_some_and(|(deadline, _)| *deadline <= now)
        {
            if let Some((_, request)) = self.opens.pop_front() {
                request.answer(CommandOutcome::Failed(
                    "no reply from the controller".into(),
                ));
            }
        }
    }
}

async fn listener_address(
    config: &WgConfig,
    socket: &UdpSocket,
) -> Result<SocketAddrV4, DriverError> {
    if let Some(listener) = config.listener {
        return Ok(listener);
    }
    match socket.local_addr().map_err(transient)? {
        SocketAddr::V4(addr) if !addr.ip().is_unspecified() => Ok(addr),
        other => Err(DriverError::Misconfigured(format!(
            "bound to {other}: set `listener` to the IPv4 address the controller can reach"
        ))),
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver for WgController {
    fn kind(&self) -> &'static str {
        "wg-controller"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            let config = &self.config;
            if !matches!(config.controller.ip(), IpAddr::V4(_)) {
                return Err(DriverError::Misconfigured(
                    "WG controllers speak IPv4 only".into(),
                ));
            }
            let socket = UdpSocket::bind(config.bind)
                .await
                .map_err(|e| match e.kind() {
                    io::ErrorKind::AddrNotAvailable => {
                        DriverError::Misconfigured(format!("cannot bind {}: {e}", config.bind))
                    }
                    _ => transient(e),
                })?;
            let listener = listener_address(config, &socket).await?;
            let mut s = Session {
                config,
                socket,
                listener,
                listener_ok: false,
                link: Link::default(),
                poll_pending: false,
                missed: 0,
                polls: 0,
                last_index: &mut self.last_index,
                starting: true,
                missing: BTreeMap::new(),
                fetching: None,
                doors_open: [None; 4],
                alarms: [[false; 2]; 4],
                opens: VecDeque::new(),
            };
            let mut ticker =
                tokio::time::interval(Duration::from_millis(config.poll_interval_ms.max(1)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut buf = [0u8; 2 * PACKET_LEN];
            loop {
                let next_expiry = s.opens.front().map(|(deadline, _)| *deadline);
                let fetch_deadline = s.fetching.map(|(_, deadline, _)| deadline);
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Ok(()),
                    _ = ticker.tick() => s.poll(ctx).await?,
                    received = s.socket.recv_from(&mut buf) => {
                        let (n, from) = received.map_err(transient)?;
                        s.packet(ctx, &buf[..n], from).await?;
                    }
                    () = sleep_until_some(next_expiry) => s.expire_opens(Instant::now()),
                    () = sleep_until_some(fetch_deadline) => s.fetch_timed_out().await?,
                    request = ctx.commands.recv() => match request {
                        Some(request) => s.command(request).await?,
                        None => return Ok(()),
                    },
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, reason: u8) -> EventRecord {
        EventRecord {
            index: 1,
            kind,
            granted: true,
            door: 2,
            direction: 1,
            card: 6154410,
            timestamp: None,
            reason,
        }
    }

    #[test]
    fn udp_event_records_map_to_device_events() {
        assert_eq!(
            record_events(&record(event_type::SWIPE, reason::SWIPE_PASS)),
            vec![DeviceEvent::CardRead {
                card: "6154410".into(),
                format: "wg".into(),
                facility: None,
                door: Some(2),
                controller: Some(ControllerVerdict {
                    granted: true,
                    reason: "swipe_pass".into(),
                    index: 1
                }),
            }]
        );
        assert_eq!(
            record_events(&record(event_type::DOOR, reason::PUSH_BUTTON)),
            vec![DeviceEvent::ExitButton { door: Some(2) }]
        );
        assert!(matches!(
            record_events(&record(event_type::ALARM, reason::FORCED_OPEN)).as_slice(),
            [DeviceEvent::DoorAlarm {
                alarm: DoorAlarmKind::ForcedOpen,
                active: true,
                door: Some(2)
            }]
        ));
        assert!(matches!(
            record_events(&record(event_type::ALARM, reason::OPEN_TOO_LONG)).as_slice(),
            [DeviceEvent::DoorAlarm {
                alarm: DoorAlarmKind::HeldOpen,
                active: true,
                ..
            }]
        ));
        assert!(record_events(&record(event_type::DOOR, reason::DOOR_OPEN)).is_empty());
        assert!(record_events(&record(event_type::OVERWRITTEN, 0)).is_empty());
    }

    #[test]
    fn udp_listener_must_be_reachable_when_bound_to_any() {
        let config = WgConfig::new(
            "127.0.0.1:60000".parse().expect("addr"),
            1,
            "0.0.0.0:0".parse().expect("addr"),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let error = rt.block_on(async {
            let socket = UdpSocket::bind(config.bind).await.expect("bind");
            listener_address(&config, &socket)
                .await
                .expect_err("no listener")
        });
        assert!(matches!(error, DriverError::Misconfigured(_)));
    }
}
