//! [`WgController`]: a WG/UHPPOTE access controller over UDP, and
//! [`discover`] for finding controllers.
//!
//! The driver binds one UDP socket, points the controller's event listener
//! (function 0x90) at it, and then:
//! - turns pushed events (and the latest event seen in status replies) into
//!   `CardRead`, `ExitButton` and `DoorAlarm` events, each event index once;
//! - reports door contacts as `DoorState` from the door bits every status
//!   and event packet carries, clearing door alarms when a door closes;
//! - polls status every `poll_interval_ms`, reporting `DeviceLink` offline
//!   after `offline_after_missed` unanswered polls and online again on the
//!   next packet;
//! - answers `Command::PulseDoor` with an open-door request (0x40) and the
//!   controller's reply (the controller times the unlock itself).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::wg::{
    DeviceInfo, EventRecord, PACKET_LEN, Request, Response, Status, event_type, reason,
};
use crate::command::{Command, CommandOutcome, CommandRequest};
use crate::contract::{Driver, DriverContext, DriverError};
use crate::event::{DeviceEvent, DoorAlarmKind};

/// Configuration of one WG controller.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WgConfig {
    /// The controller's address (port 60000 normally).
    pub controller: SocketAddr,
    /// The controller's serial number.
    pub serial: u32,
    /// Local address to bind (events and replies arrive here).
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    /// Where the controller should send events, if not the bound address
    /// (required when binding 0.0.0.0).
    #[serde(default)]
    pub listener: Option<SocketAddrV4>,
    /// Doors on the controller (1, 2 or 4).
    #[serde(default = "default_doors")]
    pub doors: u8,
    /// Status poll period, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// How long to wait for a reply, in milliseconds.
    #[serde(default = "default_reply_ms")]
    pub reply_timeout_ms: u64,
    /// Unanswered polls before the controller counts as offline.
    #[serde(default = "default_missed")]
    pub offline_after_missed: u32,
}

fn default_bind() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 60001))
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

impl WgConfig {
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
        }
    }
}

/// Events for one controller event record (door contacts excepted: those
/// come from the door bits). Pure.
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
        }],
        (_, reason::PUSH_BUTTON) => vec![DeviceEvent::ExitButton { door }],
        (_, reason::OPEN_TOO_LONG) => vec![alarm(DoorAlarmKind::HeldOpen)],
        (_, reason::FORCED_OPEN) => vec![alarm(DoorAlarmKind::ForcedOpen)],
        _ => vec![],
    }
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

/// The WG controller driver.
#[derive(Debug)]
pub struct WgController {
    config: WgConfig,
}

impl WgController {
    /// A driver for `config`.
    pub fn new(config: WgConfig) -> Self {
        Self { config }
    }
}

/// One run's state.
struct Session<'a> {
    config: &'a WgConfig,
    socket: UdpSocket,
    listener: SocketAddrV4,
    listener_ok: bool,
    online: Option<bool>,
    poll_pending: bool,
    missed: u32,
    last_index: Option<u32>,
    doors_open: [Option<bool>; 4],
    alarms: [[bool; 2]; 4],
    opens: VecDeque<(Instant, CommandRequest)>,
}

/// An event index this far below the last one means a reset log.
const RESET_MARGIN: u32 = 10_000;

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
        if self.online == Some(online) {
            return Ok(());
        }
        self.online = Some(online);
        ctx.events
            .emit(DeviceEvent::DeviceLink { online, detail })
            .await
    }

    async fn poll(&mut self, ctx: &DriverContext) -> Result<(), DriverError> {
        if self.poll_pending {
            self.missed += 1;
            if self.missed >= self.config.offline_after_missed {
                let detail = format!("{} unanswered status polls", self.missed);
                self.link(ctx, false, detail).await?;
            }
        }
        if !self.listener_ok {
            let serial = self.config.serial;
            let listener = self.listener;
            self.send(Request::SetListener {
                serial,
                address: listener,
                interval: 0,
            })
            .await?;
        }
        self.poll_pending = true;
        self.send(Request::GetStatus {
            serial: self.config.serial,
        })
        .await
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
        let record = status.event;
        let previous = self.last_index.replace(record.index);
        // The first record seen is history (it may be days old): skip it.
        // Later, only newer records count (a status reply may overtake a
        // push); a much smaller index means the controller's log was reset.
        let newer = previous.is_some_and(|last| {
            record.index > last || record.index.saturating_add(RESET_MARGIN) < last
        });
        if !newer {
            if let Some(last) = previous {
                self.last_index = Some(last.max(record.index));
            }
            return Ok(());
        }
        for event in record_events(&record) {
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

    async fn command(&mut self, request: CommandRequest) -> Result<(), DriverError> {
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
                online: None,
                poll_pending: false,
                missed: 0,
                last_index: None,
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
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Ok(()),
                    _ = ticker.tick() => s.poll(ctx).await?,
                    received = s.socket.recv_from(&mut buf) => {
                        let (n, from) = received.map_err(transient)?;
                        s.packet(ctx, &buf[..n], from).await?;
                    }
                    () = async {
                        match next_expiry {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => s.expire_opens(Instant::now()),
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
                door: Some(2)
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
