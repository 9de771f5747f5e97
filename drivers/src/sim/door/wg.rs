//! A simulated WG/UHPPOTE controller speaking the UDP protocol on loopback.
//!
//! It answers get-device, get-status, get-event, open-door, set-listener,
//! get-listener, set-door-control and set-PC-control, keeps its event log,
//! and pushes event packets to the configured listener. The test (or the
//! demo) drives it: swipe a card, open or close a door, press the exit
//! button, hold a door open, force it, or take the controller offline; and
//! the network's faults: pushes dropped or reordered, the listener lost (a
//! controller restart), a clock that sends non-BCD time. It binds and sends
//! to loopback addresses only.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::door::wg::{
    Date, DateTime, DeviceInfo, EventRecord, Packet, Request, Response, Status, Time, event_type,
    reason,
};

#[derive(Debug)]
struct State {
    serial: u32,
    online: bool,
    refuse_open: bool,
    doors_open: [bool; 4],
    last_event: EventRecord,
    /// Every record since the start, oldest first (get-event reads it).
    log: Vec<EventRecord>,
    open_requests: Vec<u8>,
    sequence: u32,
    /// Pushes still to lose on the way.
    drop_pushes: u32,
    /// A push held back, sent after the next one (reordering).
    hold_next: bool,
    held: Option<Packet>,
    /// Send a non-BCD nibble in every event timestamp.
    garbled_clock: bool,
    requests: Vec<u8>,
}

impl State {
    fn status(&mut self) -> Status {
        self.sequence += 1;
        Status {
            serial: self.serial,
            event: self.last_event,
            doors_open: self.doors_open,
            buttons: [false; 4],
            system_error: 0,
            system_date: Some(SIM_DATE),
            system_time: Some(SIM_TIME),
            sequence: self.sequence,
            special_info: 0,
            relay_state: 0,
            input_state: 0,
        }
    }

    fn record(&mut self, kind: u8, door: u8, card: u32, reason: u8) -> Status {
        self.record_as(kind, door, card, reason, kind != event_type::ALARM)
    }

    fn record_as(&mut self, kind: u8, door: u8, card: u32, reason: u8, granted: bool) -> Status {
        self.last_event = EventRecord {
            index: self.last_event.index + 1,
            kind,
            granted,
            door,
            direction: 1,
            card,
            timestamp: Some(DateTime {
                date: SIM_DATE,
                time: SIM_TIME,
            }),
            reason,
        };
        self.log.push(self.last_event);
        self.status()
    }

    /// The packet for `response`, with the clock garbled if asked.
    fn packet(&self, response: &Response) -> Packet {
        let mut packet = response.encode();
        if self.garbled_clock
            && matches!(response, Response::Status { .. } | Response::Event { .. })
        {
            packet[22] = 0x1A; // month "1A": not BCD
        }
        packet
    }
}

const SIM_DATE: Date = Date {
    year: 2024,
    month: 6,
    day: 1,
};
const SIM_TIME: Time = Time {
    hour: 8,
    minute: 30,
    second: 0,
};

/// A running simulated controller; stops when dropped.
#[derive(Debug)]
pub struct WgControllerSim {
    addr: SocketAddr,
    socket: Arc<UdpSocket>,
    state: Arc<Mutex<State>>,
    listener: watch::Receiver<Option<SocketAddrV4>>,
    listener_tx: Arc<watch::Sender<Option<SocketAddrV4>>>,
    task: JoinHandle<()>,
}

impl Drop for WgControllerSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn loopback_only(addr: SocketAddr) -> io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the simulator uses loopback only, not {addr}"),
        ))
    }
}

impl WgControllerSim {
    /// Starts a controller with `serial` on `bind` (a loopback address;
    /// port 0 picks a free one).
    pub async fn start(bind: SocketAddr, serial: u32) -> io::Result<Self> {
        loopback_only(bind)?;
        let socket = Arc::new(UdpSocket::bind(bind).await?);
        let addr = socket.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            serial,
            online: true,
            refuse_open: false,
            doors_open: [false; 4],
            last_event: EventRecord {
                index: 100,
                kind: event_type::SWIPE,
                granted: true,
                door: 1,
                direction: 1,
                card: 1,
                timestamp: None,
                reason: reason::SWIPE_PASS,
            },
            log: Vec::new(),
            open_requests: Vec::new(),
            sequence: 0,
            drop_pushes: 0,
            hold_next: false,
            held: None,
            garbled_clock: false,
            requests: Vec::new(),
        }));
        let (listener_tx, listener) = watch::channel(None);
        let listener_tx = Arc::new(listener_tx);
        let task = tokio::spawn(serve(socket.clone(), state.clone(), listener_tx.clone()));
        Ok(Self {
            addr,
            socket,
            state,
            listener,
            listener_tx,
            task,
        })
    }

    /// Where the controller listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until a host has set the event listener; returns it.
    pub async fn wait_for_listener(&self) -> SocketAddrV4 {
        let mut rx = self.listener.clone();
        loop {
            if let Some(addr) = *rx.borrow_and_update() {
                return addr;
            }
            if rx.changed().await.is_err() {
                // The server task is gone; nothing will set it any more.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Answers (`true`) or ignores (`false`) every request from now on.
    pub fn set_online(&self, online: bool) {
        self.with(|s| s.online = online);
    }

    /// Makes open-door requests fail (`ok = false`).
    pub fn refuse_open(&self, refuse: bool) {
        self.with(|s| s.refuse_open = refuse);
    }

    /// Doors named in open-door requests so far.
    pub fn open_requests(&self) -> Vec<u8> {
        self.with(|s| s.open_requests.clone())
    }

    async fn push(&self, status: Status) -> io::Result<()> {
        let target = *self.listener.borrow();
        push(&self.socket, &self.state, target, status).await
    }

    /// A card is swiped at `door` and let through by the controller.
    pub async fn swipe(&self, card: u32, door: u8) -> io::Result<()> {
        let status = self.with(|s| s.record(event_type::SWIPE, door, card, reason::SWIPE_PASS));
        self.push(status).await
    }

    /// A card is swiped at `door` and refused by the controller (no
    /// privilege).
    pub async fn swipe_refused(&self, card: u32, door: u8) -> io::Result<()> {
        let status =
            self.with(|s| s.record_as(event_type::SWIPE, door, card, reason::NO_PRIVILEGE, false));
        self.push(status).await
    }

    /// The next `count` pushed events are lost on the way.
    pub fn drop_pushes(&self, count: u32) {
        self.with(|s| s.drop_pushes = count);
    }

    /// The next pushed event arrives after the one following it.
    pub fn reorder_next_push(&self) {
        self.with(|s| s.hold_next = true);
    }

    /// The controller restarts and forgets its listener (it keeps
    /// answering; its pushes go nowhere until a host sets one again).
    pub fn forget_listener(&self) {
        self.with(|s| {
            s.held = None;
        });
        self.listener_tx.send_replace(None);
    }

    /// Sends a non-BCD digit in every event timestamp from now on (a
    /// controller whose clock battery has run flat).
    pub fn garble_clock(&self, garbled: bool) {
        self.with(|s| s.garbled_clock = garbled);
    }

    /// The last event index in the controller's log.
    pub fn last_index(&self) -> u32 {
        self.with(|s| s.last_event.index)
    }

    /// Function codes of the requests answered so far, in order.
    pub fn requests(&self) -> Vec<u8> {
        self.with(|s| s.requests.clone())
    }

    /// The door contact opens or closes.
    pub async fn set_door(&self, door: u8, open: bool) -> io::Result<()> {
        let status = self.with(|s| {
            set_door(s, door, open);
            let why = if open {
                reason::DOOR_OPEN
            } else {
                reason::DOOR_CLOSED
            };
            s.record(event_type::DOOR, door, 0, why)
        });
        self.push(status).await
    }

    /// The exit button is pressed.
    pub async fn press_button(&self, door: u8) -> io::Result<()> {
        let status = self.with(|s| s.record(event_type::DOOR, door, 0, reason::PUSH_BUTTON));
        self.push(status).await
    }

    /// The door has been open too long (opens it if closed).
    pub async fn hold_open(&self, door: u8) -> io::Result<()> {
        let status = self.with(|s| {
            set_door(s, door, true);
            s.record(event_type::ALARM, door, 0, reason::OPEN_TOO_LONG)
        });
        self.push(status).await
    }

    /// The door is forced open.
    pub async fn force_open(&self, door: u8) -> io::Result<()> {
        let status = self.with(|s| {
            set_door(s, door, true);
            s.record(event_type::ALARM, door, 0, reason::FORCED_OPEN)
        });
        self.push(status).await
    }
}

fn set_door(state: &mut State, door: u8, open: bool) {
    if let Some(slot) = state.doors_open.get_mut(usize::from(door).wrapping_sub(1)) {
        *slot = open;
    }
}

async fn push(
    socket: &UdpSocket,
    state: &Mutex<State>,
    listener: Option<SocketAddrV4>,
    status: Status,
) -> io::Result<()> {
    let Some(listener) = listener else {
        return Ok(()); // no listener: the event only shows in status
    };
    let packets = {
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        let packet = s.packet(&Response::Status {
            status,
            v6_62: false,
        });
        if s.drop_pushes > 0 {
            s.drop_pushes -= 1;
            return Ok(());
        }
        if std::mem::take(&mut s.hold_next) {
            s.held = Some(packet);
            return Ok(());
        }
        let mut packets = vec![packet];
        packets.extend(s.held.take());
        packets
    };
    for packet in packets {
        socket.send_to(&packet, listener).await?;
    }
    Ok(())
}

async fn serve(
    socket: Arc<UdpSocket>,
    state: Arc<Mutex<State>>,
    listener: Arc<watch::Sender<Option<SocketAddrV4>>>,
) {
    let mut buf = [0u8; 128];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(request) = Request::decode(&buf[..n]) else {
            continue;
        };
        let (reply, event) = {
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            let addressed =
                request.serial() == s.serial || matches!(request, Request::GetDevice { serial: 0 });
            if !s.online || !addressed {
                continue;
            }
            s.requests.push(request.function());
            let (reply, event) = answer(&mut s, request, &listener);
            (s.packet(&reply), event)
        };
        if loopback_only(from).is_ok() {
            let _ = socket.send_to(&reply, from).await;
        }
        if let Some(status) = event {
            let target = *listener.borrow();
            let _ = push(&socket, &state, target, status).await;
        }
    }
}

/// The reply to `request`, and an event to push after it.
fn answer(
    s: &mut State,
    request: Request,
    listener: &watch::Sender<Option<SocketAddrV4>>,
) -> (Response, Option<Status>) {
    let serial = s.serial;
    match request {
        Request::GetDevice { .. } => (
            Response::Device(DeviceInfo {
                serial,
                address: Ipv4Addr::LOCALHOST,
                netmask: Ipv4Addr::new(255, 0, 0, 0),
                gateway: Ipv4Addr::UNSPECIFIED,
                mac: [0x00, 0x66, 0x19, 0x39, 0x55, 0x2d],
                version: [0x08, 0x92],
                date: Some(SIM_DATE),
            }),
            None,
        ),
        Request::GetStatus { .. } => (
            Response::Status {
                status: s.status(),
                v6_62: false,
            },
            None,
        ),
        Request::GetEvent { index, .. } => {
            let event = s
                .log
                .iter()
                .find(|e| e.index == index)
                .copied()
                .unwrap_or(EventRecord {
                    index,
                    kind: event_type::NONE,
                    granted: false,
                    door: 0,
                    direction: 0,
                    card: 0,
                    timestamp: None,
                    reason: 0,
                });
            (Response::Event { serial, event }, None)
        }
        Request::GetListener { .. } => {
            let address =
                (*listener.borrow()).unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
            (
                Response::Listener {
                    serial,
                    address,
                    interval: 0,
                },
                None,
            )
        }
        Request::OpenDoor { door, .. } => {
            s.open_requests.push(door);
            let ok = !s.refuse_open && (1..=4).contains(&door);
            let event = ok.then(|| s.record(event_type::DOOR, door, 0, reason::REMOTE_OPEN));
            (Response::OpenDoor { serial, ok }, event)
        }
        Request::SetListener { address, .. } => {
            let ok = address.ip().is_loopback();
            if ok {
                listener.send_replace(Some(address));
            }
            (Response::SetListener { serial, ok }, None)
        }
        Request::SetDoorControl {
            door, mode, delay, ..
        } => (
            Response::SetDoorControl {
                serial,
                door,
                mode,
                delay,
            },
            None,
        ),
        Request::SetPcControl { .. } => (Response::SetPcControl { serial, ok: true }, None),
    }
}
