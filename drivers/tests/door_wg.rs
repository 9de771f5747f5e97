//! WG/UHPPOTE UDP: the codec against uhppote-core's test vectors, and the
//! driver in a live loopback exchange with the simulated controller
//! (listener set-up, swipes, door states, alarms, exit button, open door,
//! offline detection) plus discovery.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use drivers::TestContext;
use drivers::command::{Command, CommandOutcome, CommandRequest};
use drivers::contract::{DriverContext, HealthState, Inbound};
use drivers::door::wg::{
    Date, DateTime, Request, Response, Time, WgError, event_type, function, reason_name,
};
use drivers::door::wg_driver::{WgConfig, WgController, discover};
use drivers::sim::door::WgControllerSim;
use drivers::{ControllerVerdict, DeviceEvent, DoorAlarmKind, Driver};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const SERIAL: u32 = 423_187_757;

/// The bytes of a Go `[]byte{0x17, …}` fixture.
fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/access/wg_udp")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    let body = text.split_once("[]byte{").expect("a Go byte array").1;
    let bytes: Vec<u8> = body
        .split(|c: char| c == ',' || c.is_whitespace() || c == '}')
        .filter_map(|t| t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")))
        .map(|h| u8::from_str_radix(h, 16).expect("hex byte"))
        .collect();
    assert_eq!(bytes.len(), 64, "{name}");
    bytes
}

#[test]
fn udp_requests_encode_exactly_as_the_fixtures() {
    let cases = [
        (
            "get_device__TestMarshalGetDeviceRequest.goarray.txt",
            Request::GetDevice { serial: 0 },
        ),
        (
            "get_status__TestMarshalGetStatusRequest.goarray.txt",
            Request::GetStatus { serial: SERIAL },
        ),
        (
            "open_door__TestMarshalOpenDoorRequest.goarray.txt",
            Request::OpenDoor {
                serial: SERIAL,
                door: 3,
            },
        ),
        (
            "set_door_control_state__TestMarshalSetDoorControlStateRequest.goarray.txt",
            Request::SetDoorControl {
                serial: SERIAL,
                door: 4,
                mode: 2,
                delay: 5,
            },
        ),
        (
            "set_listener__TestMarshalSetListenerRequest.goarray.txt",
            Request::SetListener {
                serial: SERIAL,
                address: SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 100), 40000),
                interval: 13,
            },
        ),
        (
            "set_pc_control__TestMarshalSetPCControlRequest.goarray.txt",
            Request::SetPcControl {
                serial: SERIAL,
                enabled: true,
            },
        ),
    ];
    for (name, request) in cases {
        let bytes = fixture(name);
        assert_eq!(request.encode().to_vec(), bytes, "{name}");
        assert_eq!(Request::decode(&bytes), Ok(request), "{name}");
    }
}

#[test]
fn udp_discovery_broadcast_in_the_capture_is_a_get_device_request() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/access/wg_udp/tcpdump_0x94_search_broadcast_port60000.txt");
    let text = std::fs::read_to_string(path).expect("capture");
    // Hex words of the dump lines, IP header included (28 bytes of IP + UDP).
    let mut frame = Vec::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with("0x00")) {
        let hex = line.split_once(':').expect("offset").1;
        for word in hex
            .split_whitespace()
            .take_while(|w| w.len() == 4 && w.chars().all(|c| c.is_ascii_hexdigit()))
        {
            let v = u16::from_str_radix(word, 16).expect("hex");
            frame.extend_from_slice(&v.to_be_bytes());
        }
    }
    let payload = &frame[28..];
    assert_eq!(payload.len(), 64);
    assert_eq!(
        payload,
        Request::GetDevice { serial: 0 }.encode().as_slice()
    );
}

#[test]
fn udp_get_device_reply_decodes_from_the_fixture() {
    let bytes = fixture("get_device__TestUnmarshalGetDeviceResponse.goarray.txt");
    let Ok(Response::Device(info)) = Response::decode(&bytes) else {
        panic!("not a device reply");
    };
    assert_eq!(info.serial, SERIAL);
    assert_eq!(info.address, Ipv4Addr::new(192, 168, 0, 0));
    assert_eq!(info.netmask, Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(info.mac, [0x00, 0x66, 0x19, 0x39, 0x55, 0x2d]);
    assert_eq!(info.version_text(), "v8.92");
    assert_eq!(
        info.date,
        Some(Date {
            year: 2018,
            month: 8,
            day: 16
        })
    );
    assert_eq!(Response::Device(info).encode().to_vec(), bytes);
}

#[test]
fn udp_status_reply_decodes_from_the_fixture() {
    let bytes = fixture("get_status__TestUnmarshalGetStatusResponse.goarray.txt");
    let Ok(Response::Status { status, v6_62 }) = Response::decode(&bytes) else {
        panic!("not a status reply");
    };
    assert!(!v6_62);
    assert_eq!(status.serial, SERIAL);
    let e = status.event;
    assert_eq!(
        (e.index, e.kind, e.granted, e.door, e.direction),
        (57, event_type::SWIPE, false, 3, 1)
    );
    assert_eq!(e.card, 6_154_410);
    assert_eq!(
        e.timestamp,
        Some(DateTime {
            date: Date {
                year: 2019,
                month: 4,
                day: 19
            },
            time: Time {
                hour: 17,
                minute: 0,
                second: 9
            },
        })
    );
    assert_eq!(
        e.timestamp.map(|t| t.to_string()).as_deref(),
        Some("2019-04-19 17:00:09")
    );
    assert_eq!(e.reason, 6);
    assert_eq!(status.doors_open, [true, false, true, true]);
    assert_eq!(status.buttons, [false, false, true, true]);
    assert_eq!(status.system_error, 9);
    assert_eq!(
        status.system_time,
        Some(Time {
            hour: 14,
            minute: 37,
            second: 2
        })
    );
    assert_eq!(
        status.system_date,
        Some(Date {
            year: 2019,
            month: 4,
            day: 20
        })
    );
    assert_eq!(
        (status.special_info, status.relay_state, status.input_state),
        (0x2b, 0x04, 0x01)
    );
}

#[test]
fn udp_event_round_trips_through_the_fixture_bytes() {
    let bytes = fixture("events__TestMarshalEvent.goarray.txt");
    let response = Response::decode(&bytes).expect("event");
    assert_eq!(response.encode().to_vec(), bytes);
    let Response::Status { status, .. } = response else {
        panic!("not an event");
    };
    assert_eq!(
        (status.event.kind, status.event.granted),
        (event_type::DOOR, true)
    );

    // The same record with the v6.62 start byte.
    let mut v6 = bytes.clone();
    v6[0] = 0x19;
    assert!(matches!(
        Response::decode(&v6),
        Ok(Response::Status { v6_62: true, .. })
    ));
}

#[test]
fn udp_command_replies_decode_from_the_fixtures() {
    let open = fixture("open_door__TestUnmarshalOpenDoorResponse.goarray.txt");
    assert_eq!(
        Response::decode(&open),
        Ok(Response::OpenDoor {
            serial: SERIAL,
            ok: true
        })
    );
    let pc = fixture("set_pc_control__TestUnmarshalSetPCControlResponse.goarray.txt");
    assert_eq!(
        Response::decode(&pc),
        Ok(Response::SetPcControl {
            serial: SERIAL,
            ok: true
        })
    );
    let door =
        fixture("set_door_control_state__TestUnmarshalSetDoorControlStateResponse.goarray.txt");
    let decoded = Response::decode(&door).expect("reply");
    assert_eq!(
        decoded,
        Response::SetDoorControl {
            serial: SERIAL,
            door: 4,
            mode: 2,
            delay: 5
        }
    );
    assert_eq!(decoded.encode().to_vec(), door);
}

#[test]
fn udp_malformed_packets_are_errors() {
    let mut bytes = fixture("open_door__TestUnmarshalOpenDoorResponse.goarray.txt");
    assert_eq!(Response::decode(&bytes[..63]), Err(WgError::Length(63)));
    bytes[0] = 0x18;
    assert_eq!(Response::decode(&bytes), Err(WgError::Som(0x18)));
    bytes[0] = 0x17;
    bytes[1] = 0x33;
    assert_eq!(Response::decode(&bytes), Err(WgError::Function(0x33)));
}

#[test]
fn udp_non_bcd_event_time_keeps_the_event_without_its_time() {
    let bytes = fixture("get_status__TestUnmarshalGetStatusResponse.goarray.txt");
    let Ok(Response::Status { status: good, .. }) = Response::decode(&bytes) else {
        panic!("not a status reply");
    };
    let mut garbled = bytes.clone();
    garbled[22] = 0x1A; // month 1A is not BCD
    garbled[38] = 0xF0; // nor is minute F0 of the system time
    let Ok(Response::Status { status, .. }) = Response::decode(&garbled) else {
        panic!("a status reply with an unreadable clock is still a status reply");
    };
    assert_eq!(status.event.timestamp, None, "the receiver stamps it");
    assert_eq!(status.system_time, None);
    assert_eq!(
        (status.event.index, status.event.card, status.event.granted),
        (good.event.index, good.event.card, good.event.granted)
    );
    assert_eq!(status.doors_open, good.doors_open);
}

#[test]
fn udp_get_event_reply_has_the_record_layout_of_the_fixtures() {
    // uhppote-core's status vector carries a refused swipe (reason 6, no
    // privilege); a get-event reply carries a record at the same offsets.
    let mut bytes = fixture("get_status__TestUnmarshalGetStatusResponse.goarray.txt");
    let Ok(Response::Status { status, .. }) = Response::decode(&bytes) else {
        panic!("not a status reply");
    };
    bytes[1] = 0xB0;
    bytes[28..].fill(0);
    let decoded = Response::decode(&bytes).expect("get-event reply");
    assert_eq!(
        decoded,
        Response::Event {
            serial: SERIAL,
            event: status.event
        }
    );
    assert_eq!(decoded.encode().to_vec(), bytes);
    assert_eq!(reason_name(status.event.reason), "no_privilege");
    assert_eq!(reason_name(0x99), "reason_0x99");

    let get = Request::GetEvent {
        serial: SERIAL,
        index: 0x0102_0304,
    };
    let packet = get.encode();
    assert_eq!((packet[0], packet[1]), (0x17, 0xB0));
    assert_eq!(packet[8..12], [0x04, 0x03, 0x02, 0x01]);
    assert_eq!(Request::decode(&packet), Ok(get));
    let listener = Response::Listener {
        serial: SERIAL,
        address: SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 100), 40000),
        interval: 0,
    };
    assert_eq!(Response::decode(&listener.encode()), Ok(listener));
    let get_listener = Request::GetListener { serial: SERIAL };
    assert_eq!(get_listener.encode()[1], 0x92);
    assert_eq!(Request::decode(&get_listener.encode()), Ok(get_listener));
}

struct Harness {
    rx: mpsc::Receiver<Inbound>,
    commands: mpsc::Sender<CommandRequest>,
    health: watch::Receiver<drivers::contract::Health>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), drivers::DriverError>>,
}

fn config_for(sim: &WgControllerSim, poll_ms: u64) -> WgConfig {
    let mut config = WgConfig::new(sim.addr(), SERIAL, "127.0.0.1:0".parse().expect("addr"));
    config.poll_interval_ms = poll_ms;
    config.reply_timeout_ms = 200;
    config.offline_after_missed = 2;
    config.doors = 2;
    config
}

impl Harness {
    fn start(sim: &WgControllerSim, poll_ms: u64) -> Self {
        Self::with_config(config_for(sim, poll_ms))
    }

    fn with_config(config: WgConfig) -> Self {
        let TestContext {
            mut ctx,
            events: rx,
            commands: cmd_tx,
            health: health_rx,
            cancel,
            ..
        } = DriverContext::for_test("wg-1", 64);
        let mut driver = WgController::new(config);
        let task = tokio::spawn(async move { driver.run(&mut ctx).await });
        Self {
            rx,
            commands: cmd_tx,
            health: health_rx,
            cancel,
            task,
        }
    }

    async fn next(&mut self) -> DeviceEvent {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("an event within the deadline")
            .expect("driver alive")
            .event
    }

    async fn command(&self, command: Command) -> CommandOutcome {
        let (request, outcome) = CommandRequest::new(command);
        self.commands.send(request).await.expect("inbox");
        tokio::time::timeout(Duration::from_secs(10), outcome)
            .await
            .expect("answered in time")
            .expect("answered")
    }

    async fn stop(self) {
        self.cancel.cancel();
        assert_eq!(self.task.await.expect("joined"), Ok(()));
    }
}

fn door_state(open: bool, door: u8) -> DeviceEvent {
    DeviceEvent::DoorState {
        open,
        door: Some(door),
    }
}

fn alarm(alarm: DoorAlarmKind, active: bool, door: u8) -> DeviceEvent {
    DeviceEvent::DoorAlarm {
        alarm,
        active,
        door: Some(door),
    }
}

#[tokio::test]
async fn udp_driver_reports_controller_events_and_opens_doors() {
    let sim = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect("sim");
    let mut h = Harness::start(&sim, 100);

    // Start-up: online, both doors closed; the old record in the first
    // status is not replayed.
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));
    assert_eq!(h.next().await, door_state(false, 1));
    assert_eq!(h.next().await, door_state(false, 2));
    let listener = sim.wait_for_listener().await;
    assert!(listener.ip().is_loopback());
    assert_eq!(h.health.borrow().state, HealthState::Ok);

    sim.swipe(10_058_400, 1).await.expect("push");
    assert_eq!(
        h.next().await,
        DeviceEvent::CardRead {
            card: "10058400".into(),
            format: "wg".into(),
            facility: None,
            door: Some(1),
            controller: Some(ControllerVerdict {
                granted: true,
                reason: "swipe_pass".into(),
                index: 101,
            }),
        }
    );
    sim.press_button(2).await.expect("push");
    assert_eq!(h.next().await, DeviceEvent::ExitButton { door: Some(2) });

    sim.set_door(1, true).await.expect("push");
    assert_eq!(h.next().await, door_state(true, 1));
    sim.hold_open(1).await.expect("push");
    assert_eq!(h.next().await, alarm(DoorAlarmKind::HeldOpen, true, 1));
    sim.set_door(1, false).await.expect("push");
    assert_eq!(h.next().await, door_state(false, 1));
    assert_eq!(h.next().await, alarm(DoorAlarmKind::HeldOpen, false, 1));

    sim.force_open(2).await.expect("push");
    assert_eq!(h.next().await, door_state(true, 2));
    assert_eq!(h.next().await, alarm(DoorAlarmKind::ForcedOpen, true, 2));
    sim.set_door(2, false).await.expect("push");
    assert_eq!(h.next().await, door_state(false, 2));
    assert_eq!(h.next().await, alarm(DoorAlarmKind::ForcedOpen, false, 2));

    let open = Command::PulseDoor {
        door: Some(2),
        duration_ms: None,
    };
    assert_eq!(h.command(open.clone()).await, CommandOutcome::Done);
    assert_eq!(sim.open_requests(), vec![2]);
    sim.refuse_open(true);
    assert!(matches!(h.command(open).await, CommandOutcome::Failed(_)));
    let bad_door = Command::PulseDoor {
        door: Some(3),
        duration_ms: None,
    };
    assert!(matches!(
        h.command(bad_door).await,
        CommandOutcome::Refused(_)
    ));
    assert_eq!(
        sim.open_requests(),
        vec![2, 2],
        "door 3 never reached the controller"
    );
    h.stop().await;
}

#[tokio::test]
async fn udp_driver_reports_offline_after_missed_polls_and_online_again() {
    let sim = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect("sim");
    let mut h = Harness::start(&sim, 50);
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));

    sim.set_online(false);
    loop {
        match h.next().await {
            DeviceEvent::DeviceLink {
                online: false,
                detail,
            } => {
                assert!(detail.contains("unanswered"), "{detail}");
                break;
            }
            DeviceEvent::DoorState { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(h.health.borrow().state, HealthState::Degraded);
    let open = Command::PulseDoor {
        door: None,
        duration_ms: None,
    };
    assert!(
        matches!(h.command(open).await, CommandOutcome::Failed(reason) if reason.contains("no reply"))
    );

    sim.set_online(true);
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));
    assert_eq!(h.health.borrow().state, HealthState::Ok);
    h.stop().await;
}

#[tokio::test]
async fn udp_discovery_finds_the_simulated_controller_on_loopback() {
    let sim = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect("sim");
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let found = discover(bind, sim.addr(), Duration::from_millis(300))
        .await
        .expect("discover");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].serial, SERIAL);
    assert_eq!(found[0].version_text(), "v8.92");
}

#[tokio::test]
async fn udp_simulator_refuses_non_loopback_addresses() {
    let error = WgControllerSim::start("192.0.2.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect_err("not loopback");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

fn swiped(card: u32, granted: bool, reason: &str, index: u32) -> DeviceEvent {
    DeviceEvent::CardRead {
        card: card.to_string(),
        format: "wg".into(),
        facility: None,
        door: Some(1),
        controller: Some(ControllerVerdict {
            granted,
            reason: reason.into(),
            index,
        }),
    }
}

impl Harness {
    /// The next event that is not a link or door-contact report.
    async fn next_access(&mut self) -> DeviceEvent {
        loop {
            match self.next().await {
                DeviceEvent::DeviceLink { online: true, .. } | DeviceEvent::DoorState { .. } => {}
                other => return other,
            }
        }
    }
}

/// Waits (with a deadline) until the simulator has answered `more` status
/// polls from now.
async fn polls_answered(sim: &WgControllerSim, more: usize) {
    let polls = || {
        sim.requests()
            .iter()
            .filter(|f| **f == function::GET_STATUS)
            .count()
    };
    let until = polls() + more;
    tokio::time::timeout(Duration::from_secs(10), async {
        while polls() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("polls answered");
}

async fn started(sim: &WgControllerSim, config: WgConfig) -> Harness {
    let mut h = Harness::with_config(config);
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));
    tokio::time::timeout(Duration::from_secs(10), sim.wait_for_listener())
        .await
        .expect("listener set");
    h
}

#[tokio::test]
async fn udp_driver_fetches_a_swipe_whose_push_was_lost() {
    let sim = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect("sim");
    // Polls far apart: the second swipe's push, not a poll, shows the gap.
    let mut h = started(&sim, config_for(&sim, 60_000)).await;
    sim.drop_pushes(1);
    sim.swipe(1111, 1).await.expect("push (lost)");
    sim.swipe_refused(2222, 1).await.expect("push");
    assert_eq!(
        h.next_access().await,
        swiped(2222, false, "no_privilege", 102)
    );
    assert_eq!(
        h.next_access().await,
        swiped(1111, true, "swipe_pass", 101),
        "the lost swipe is fetched with get-event"
    );
    assert!(sim.requests().contains(&function::GET_EVENT));
    sim.swipe(3333, 1).await.expect("push");
    assert_eq!(h.next_access().await, swiped(3333, true, "swipe_pass", 103));
    h.stop().await;
}

#[tokio::test]
async fn udp_driver_reports_reordered_pushes_once_each() {
    let sim = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect("sim");
    let mut h = started(&sim, config_for(&sim, 60_000)).await;
    sim.reorder_next_push();
    sim.swipe(1111, 1).await.expect("push (held)");
    sim.swipe(2222, 1).await.expect("push, then the held one");
    let mut cards = vec![h.next_access().await, h.next_access().await];
    cards.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        cards,
        vec![
            swiped(1111, true, "swipe_pass", 101),
            swiped(2222, true, "swipe_pass", 102)
        ]
    );
    // Nothing twice: the next event is the next swipe.
    sim.swipe(3333, 1).await.expect("push");
    assert_eq!(h.next_access().await, swiped(3333, true, "swipe_pass", 103));
    h.stop().await;
}

#[tokio::test]
async fn udp_driver_backfills_what_the_controller_logged_while_the_gateway_was_down() {
    let sim = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect("sim");
    let mut h = started(&sim, config_for(&sim, 50)).await;
    sim.swipe(1111, 1).await.expect("push");
    assert_eq!(h.next_access().await, swiped(1111, true, "swipe_pass", 101));
    h.stop().await;

    // The gateway is down: two swipes reach nobody.
    let _ = sim.swipe(2222, 1).await;
    let _ = sim.swipe_refused(3333, 1).await;
    assert_eq!(sim.last_index(), 103);

    // It comes back knowing (from its journal) it recorded index 101.
    let mut config = config_for(&sim, 50);
    config.resume_after = Some(101);
    let mut h = started(&sim, config).await;
    let mut history = vec![h.next_access().await, h.next_access().await];
    history.sort_by_key(|e| format!("{e:?}"));
    let expected = |index, card: u32, granted, reason: &str| DeviceEvent::AccessHistory {
        index,
        record: "swipe".into(),
        card: Some(card.to_string()),
        door: Some(1),
        granted,
        reason: reason.into(),
        controller_time: Some("2024-06-01 08:30:00".into()),
    };
    assert_eq!(
        history,
        vec![
            expected(102, 2222, true, "swipe_pass"),
            expected(103, 3333, false, "no_privilege")
        ],
        "recorded as history, not as reads to act on"
    );
    sim.swipe(4444, 1).await.expect("push");
    assert_eq!(h.next_access().await, swiped(4444, true, "swipe_pass", 104));
    h.stop().await;
}

#[tokio::test]
async fn udp_driver_sets_its_listener_again_when_the_controller_lost_it() {
    let sim = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect("sim");
    let mut config = config_for(&sim, 50);
    config.listener_check_polls = 3;
    let mut h = started(&sim, config).await;
    polls_answered(&sim, 2).await; // no set-listener in flight any more
    // The controller restarts and forgets the listener, answering polls
    // all along: only get-listener shows it.
    sim.forget_listener();
    tokio::time::timeout(Duration::from_secs(10), sim.wait_for_listener())
        .await
        .expect("the driver sets its listener again");
    assert!(sim.requests().contains(&function::GET_LISTENER));
    sim.swipe(1111, 1).await.expect("push");
    assert_eq!(h.next_access().await, swiped(1111, true, "swipe_pass", 101));
    h.stop().await;
}

#[tokio::test]
async fn udp_driver_sets_its_listener_on_every_online_transition() {
    let sim = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect("sim");
    let mut config = config_for(&sim, 50);
    config.listener_check_polls = u32::MAX; // no read-back in this test
    let mut h = started(&sim, config).await;
    sim.set_online(false);
    loop {
        if let DeviceEvent::DeviceLink { online: false, .. } = h.next().await {
            break;
        }
    }
    sim.forget_listener();
    sim.set_online(true);
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));
    tokio::time::timeout(Duration::from_secs(10), sim.wait_for_listener())
        .await
        .expect("set again on the way back online");
    sim.swipe(1111, 1).await.expect("push");
    assert_eq!(h.next_access().await, swiped(1111, true, "swipe_pass", 101));
    h.stop().await;
}

#[tokio::test]
async fn udp_driver_keeps_a_controller_with_a_garbled_clock_online_and_reads_its_swipes() {
    let sim = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), SERIAL)
        .await
        .expect("sim");
    let mut h = started(&sim, config_for(&sim, 20)).await;
    sim.garble_clock(true);
    sim.swipe(1111, 1).await.expect("push");
    assert_eq!(h.next_access().await, swiped(1111, true, "swipe_pass", 101));
    // Many polls answered with the garbled clock: the controller stays
    // online (two unanswered polls would take it offline).
    polls_answered(&sim, 10).await;
    while let Ok(inbound) = h.rx.try_recv() {
        assert!(
            !matches!(inbound.event, DeviceEvent::DeviceLink { online: false, .. }),
            "went offline although every poll was answered"
        );
    }
    assert_eq!(h.health.borrow().state, HealthState::Ok);
    h.stop().await;
}
