//! WG/UHPPOTE UDP: the codec against uhppote-core's test vectors, and the
//! driver in a live loopback exchange with the simulated controller
//! (listener set-up, swipes, door states, alarms, exit button, open door,
//! offline detection) plus discovery.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use drivers::command::{Command, CommandOutcome, CommandRequest};
use drivers::contract::{
    DeviceId, DriverContext, EventSender, HealthReporter, HealthState, Inbound,
};
use drivers::door::wg::{Date, DateTime, Request, Response, Time, WgError, event_type};
use drivers::door::wg_driver::{WgConfig, WgController, discover};
use drivers::sim::door::WgControllerSim;
use drivers::{DeviceEvent, DoorAlarmKind, Driver};
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
    let mut status = fixture("get_status__TestUnmarshalGetStatusResponse.goarray.txt");
    status[22] = 0x1A; // month 1A is not BCD
    assert_eq!(
        Response::decode(&status),
        Err(WgError::Bcd {
            offset: 22,
            value: 0x1A
        })
    );
}

struct Harness {
    rx: mpsc::Receiver<Inbound>,
    commands: mpsc::Sender<CommandRequest>,
    health: watch::Receiver<drivers::contract::Health>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), drivers::DriverError>>,
}

impl Harness {
    fn start(sim: &WgControllerSim, poll_ms: u64) -> Self {
        let mut config = WgConfig::new(sim.addr(), SERIAL, "127.0.0.1:0".parse().expect("addr"));
        config.poll_interval_ms = poll_ms;
        config.reply_timeout_ms = 200;
        config.offline_after_missed = 2;
        config.doors = 2;
        let (tx, rx) = mpsc::channel(64);
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let (health, health_rx) = HealthReporter::new();
        let cancel = CancellationToken::new();
        let id = DeviceId::new("wg-1");
        let mut ctx = DriverContext {
            device_id: id.clone(),
            events: EventSender::new(id, tx),
            commands: cmd_rx,
            health,
            cancel: cancel.clone(),
        };
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
            door: Some(1)
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
