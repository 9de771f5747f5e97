//! Door stations against their simulators (and an MQTT station on
//! mosquitto): calls answered and missed, unlocks by every origin, wrong
//! credentials, a station that drops off mid-call and comes back, a stalled
//! alert stream, and hostile input. The simulators are checked against
//! third-party clients in `intercom_peers.rs`.

use std::time::Duration;

use drivers::TestContext;
use drivers::command::{Command, CommandOutcome, CommandRequest};
use drivers::contract::{Driver, DriverContext, DriverError, Inbound};
use drivers::event::{Answerer, DeviceEvent, UnlockMethod};
use drivers::intercom::dahua_driver::{DahuaVto, VtoConfig};
use drivers::intercom::hik_driver::{HikConfig, HikStation};
use drivers::sim::dahua_vto::VtoSim;
use drivers::sim::hik_station::HikStationSim;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

/// A driver run the way the supervisor runs it: restarted after a
/// retryable error (after a short pause), stopped by any other.
struct Rig {
    events: mpsc::Receiver<Inbound>,
    errors: mpsc::UnboundedReceiver<DriverError>,
    commands: mpsc::Sender<CommandRequest>,
    cancel: CancellationToken,
    seen: Vec<DeviceEvent>,
}

impl Rig {
    fn start(mut driver: impl Driver) -> Self {
        let (err_tx, errors) = mpsc::unbounded_channel();
        let TestContext {
            mut ctx,
            events,
            commands: cmd_tx,
            cancel,
            ..
        } = DriverContext::for_test("station-1", 64);
        tokio::spawn(async move {
            loop {
                match driver.run(&mut ctx).await {
                    Ok(()) => return,
                    Err(e) => {
                        let retry = e.is_retryable();
                        let _ = err_tx.send(e);
                        if !retry || ctx.cancel.is_cancelled() {
                            return;
                        }
                        // The supervisor's backoff, short.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
        Self {
            events,
            errors,
            commands: cmd_tx,
            cancel,
            seen: Vec::new(),
        }
    }

    /// Waits for an event `pred` accepts; others are kept in `seen`.
    async fn expect(&mut self, what: &str, pred: impl Fn(&DeviceEvent) -> bool) -> DeviceEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(inbound)) => {
                    if pred(&inbound.event) {
                        return inbound.event;
                    }
                    self.seen.push(inbound.event);
                }
                _ => panic!("no {what}; saw {:?}", self.seen),
            }
        }
    }

    async fn error(&mut self, what: &str) -> DriverError {
        tokio::time::timeout(WAIT, self.errors.recv())
            .await
            .unwrap_or_else(|_| panic!("no error: {what}"))
            .expect("driver task alive")
    }

    async fn command(&self, command: Command) -> CommandOutcome {
        let (request, rx) = CommandRequest::new(command);
        self.commands.send(request).await.expect("driver listening");
        tokio::time::timeout(WAIT, rx)
            .await
            .expect("answered in time")
            .expect("answered")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn unlock() -> Command {
    Command::PulseDoor {
        door: None,
        duration_ms: None,
    }
}

fn is_link(online: bool) -> impl Fn(&DeviceEvent) -> bool {
    move |e| matches!(e, DeviceEvent::DeviceLink { online: o, .. } if *o == online)
}

mod hikvision {
    use super::*;

    fn config(sim: &HikStationSim) -> HikConfig {
        let mut c = HikConfig::new(&sim.base(), "admin", "station-pass-1");
        c.call_poll = Duration::from_millis(50);
        c.stall_after = Duration::from_millis(800);
        c.timeout = Duration::from_secs(2);
        c.max_part = 4096;
        c
    }

    async fn sim() -> HikStationSim {
        HikStationSim::start_on(
            "127.0.0.1:0".parse().expect("addr"),
            "admin",
            "station-pass-1",
            Duration::from_millis(100),
        )
        .await
        .expect("sim starts")
    }

    #[tokio::test]
    async fn an_answered_call_starts_is_answered_and_ends() {
        let sim = sim().await;
        let mut rig = Rig::start(HikStation::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        sim.ring("3-1-502");
        let started = rig
            .expect("call started", |e| {
                matches!(e, DeviceEvent::CallStarted { .. })
            })
            .await;
        let DeviceEvent::CallStarted { call, unit, .. } = started else {
            unreachable!()
        };
        assert_eq!(unit.as_deref(), Some("3-1-502"));
        sim.answer();
        let answered = rig
            .expect("answered", |e| {
                matches!(e, DeviceEvent::CallAnswered { .. })
            })
            .await;
        assert_eq!(
            answered,
            DeviceEvent::CallAnswered {
                call: call.clone(),
                by: Answerer::Unknown
            }
        );
        sim.hang_up();
        let ended = rig
            .expect("ended", |e| matches!(e, DeviceEvent::CallEnded { .. }))
            .await;
        assert!(
            matches!(ended, DeviceEvent::CallEnded { call: c, duration_ms: Some(_) } if c == call)
        );
    }

    #[tokio::test]
    async fn a_call_nobody_answers_is_missed() {
        let sim = sim().await;
        let mut rig = Rig::start(HikStation::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        sim.ring("3-2-101");
        rig.expect("call started", |e| {
            matches!(e, DeviceEvent::CallStarted { .. })
        })
        .await;
        sim.hang_up();
        let missed = rig
            .expect("missed", |e| matches!(e, DeviceEvent::CallMissed { .. }))
            .await;
        assert!(
            matches!(&missed, DeviceEvent::CallMissed { unit: Some(u), .. } if u == "3-2-101"),
            "{missed:?} after {:?}",
            rig.seen
        );
    }

    #[tokio::test]
    async fn unlocks_by_card_face_tamper_and_remote_command() {
        let sim = sim().await;
        let mut rig = Rig::start(HikStation::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        sim.access_event(5, 0x01, json!({"cardNo": "3558822549", "doorNo": 1}));
        let card = rig
            .expect("card unlock", |e| {
                matches!(e, DeviceEvent::StationUnlock { .. })
            })
            .await;
        assert_eq!(
            card,
            DeviceEvent::StationUnlock {
                method: UnlockMethod::Card,
                who: Some("3558822549".into()),
                door: Some(1)
            }
        );
        sim.access_event(5, 0x4b, json!({"employeeNoString": "1001"}));
        rig.expect("face unlock", |e| {
            matches!(
                e,
                DeviceEvent::StationUnlock {
                    method: UnlockMethod::Face,
                    ..
                }
            )
        })
        .await;
        sim.access_event(1, 0x404, json!({}));
        rig.expect("tamper", |e| matches!(e, DeviceEvent::DeviceAlarm { code, active: true, .. } if code == "tamper")).await;
        let mut unlocks = sim.unlocks();
        assert_eq!(rig.command(unlock()).await, CommandOutcome::Done);
        assert_eq!(*unlocks.borrow_and_update(), vec![1]);
        rig.expect("remote unlock reported", |e| {
            matches!(
                e,
                DeviceEvent::StationUnlock {
                    method: UnlockMethod::Remote,
                    ..
                }
            )
        })
        .await;
        assert_eq!(
            rig.command(Command::PulseDoor {
                door: Some(9),
                duration_ms: None
            })
            .await,
            CommandOutcome::Failed("station refused the unlock (HTTP 400)".into())
        );
    }

    #[tokio::test]
    async fn wrong_credentials_stop_the_driver_after_one_try() {
        let sim = sim().await;
        let mut c = config(&sim);
        c.password = "wrong".into();
        let mut rig = Rig::start(HikStation::new(c));
        let error = rig.error("refused").await;
        assert!(
            matches!(&error, DriverError::Misconfigured(m) if m.contains("password")),
            "{error:?}"
        );
        assert_eq!(sim.refused(), 1, "one signed attempt, no lock-out spiral");
        assert!(rig.errors.try_recv().is_err(), "not retried");
    }

    #[tokio::test]
    async fn a_station_that_drops_mid_call_and_returns_closes_the_call() {
        let sim = sim().await;
        let addr = sim.addr();
        let mut rig = Rig::start(HikStation::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        sim.ring("3-1-502");
        rig.expect("call started", |e| {
            matches!(e, DeviceEvent::CallStarted { .. })
        })
        .await;
        sim.stop();
        drop(sim);
        rig.expect("offline", is_link(false)).await;
        let back =
            HikStationSim::start_on(addr, "admin", "station-pass-1", Duration::from_millis(100))
                .await
                .expect("restarts on its address");
        rig.expect("online again", is_link(true)).await;
        rig.expect("the call it lost is missed", |e| {
            matches!(e, DeviceEvent::CallMissed { .. })
        })
        .await;
        assert_eq!(back.streams(), 1);
    }

    #[tokio::test]
    async fn a_stalled_stream_is_detected_and_reconnected() {
        let sim = sim().await;
        let mut rig = Rig::start(HikStation::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        sim.stall(true);
        let error = rig.error("stall").await;
        assert_eq!(error, DriverError::Transient("alert stream stalled".into()));
        rig.expect("offline", is_link(false)).await;
        sim.stall(false);
        rig.expect("online again", is_link(true)).await;
        sim.access_event(5, 0x01, json!({"cardNo": "7"}));
        rig.expect("events flow again", |e| {
            matches!(e, DeviceEvent::StationUnlock { .. })
        })
        .await;
    }

    #[tokio::test]
    async fn hostile_parts_are_skipped_and_the_stream_goes_on() {
        let sim = sim().await;
        let mut rig = Rig::start(HikStation::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        // Oversized part with a length, then one without, then broken
        // multipart, a JSON bomb and an entity bomb.
        let mut huge =
            b"--MIME_boundary\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                .to_vec();
        huge.extend(vec![b'{'; 100_000]);
        sim.raw(&huge);
        let mut open = b"\r\n--MIME_boundary\r\nContent-Type: application/json\r\n\r\n".to_vec();
        open.extend(vec![b'['; 20_000]);
        sim.raw(&open);
        sim.raw(b"\r\n--MIME_boundary\r\nContent-Length: -5\r\n\r\ngarbage\r\n");
        let bomb = format!("{}1{}", "[".repeat(3000), "]".repeat(3000));
        sim.raw(format!("--MIME_boundary\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{bomb}\r\n", bomb.len()).as_bytes());
        let xxe = "<!DOCTYPE a [<!ENTITY b \"c\">]><EventNotificationAlert><eventType>&b;</eventType></EventNotificationAlert>";
        sim.raw(format!("--MIME_boundary\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xxe}\r\n", xxe.len()).as_bytes());
        sim.access_event(5, 0x01, json!({"cardNo": "after-the-garbage"}));
        let unlock = rig
            .expect("the good part after the bad ones", |e| {
                matches!(e, DeviceEvent::StationUnlock { .. })
            })
            .await;
        assert!(
            matches!(unlock, DeviceEvent::StationUnlock { who: Some(w), .. } if w == "after-the-garbage")
        );
        assert!(rig.errors.try_recv().is_err(), "the stream was not dropped");
    }
}

mod dahua {
    use super::*;

    fn config(sim: &VtoSim) -> VtoConfig {
        let mut c = VtoConfig::new(&sim.tcp_addr().to_string(), "admin", "vto-pass-1");
        c.http_base = Some(format!("http://{}", sim.http_addr()));
        c.reply_timeout = Duration::from_millis(500);
        c.keep_alive = Duration::from_millis(200);
        c
    }

    async fn sim() -> VtoSim {
        VtoSim::start("admin", "vto-pass-1")
            .await
            .expect("sim starts")
    }

    #[tokio::test]
    async fn calls_missed_and_ended() {
        let sim = sim().await;
        let mut rig = Rig::start(DahuaVto::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        let id = sim.ring("9901");
        let started = rig
            .expect("started", |e| matches!(e, DeviceEvent::CallStarted { .. }))
            .await;
        assert_eq!(
            started,
            DeviceEvent::CallStarted {
                call: id.clone(),
                unit: Some("9901".into()),
                snapshot: None
            }
        );
        sim.no_answer(&id);
        let missed = rig
            .expect("missed", |e| matches!(e, DeviceEvent::CallMissed { .. }))
            .await;
        assert_eq!(
            missed,
            DeviceEvent::CallMissed {
                call: id,
                unit: Some("9901".into())
            }
        );
        let id = sim.ring("9902");
        rig.expect("started", |e| matches!(e, DeviceEvent::CallStarted { .. }))
            .await;
        sim.hang_up(&id);
        let ended = rig
            .expect("ended", |e| matches!(e, DeviceEvent::CallEnded { .. }))
            .await;
        assert!(matches!(ended, DeviceEvent::CallEnded { call, .. } if call == id));
    }

    #[tokio::test]
    async fn unlocks_at_the_station_never_carry_the_pin() {
        let sim = sim().await;
        let mut rig = Rig::start(DahuaVto::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        sim.access(1, "7a087d0f", "");
        let card = rig
            .expect("card", |e| matches!(e, DeviceEvent::StationUnlock { .. }))
            .await;
        assert_eq!(
            card,
            DeviceEvent::StationUnlock {
                method: UnlockMethod::Card,
                who: Some("7a087d0f".into()),
                door: None
            }
        );
        sim.access(2, "", "135790");
        let pin = rig
            .expect("pin", |e| matches!(e, DeviceEvent::StationUnlock { .. }))
            .await;
        assert_eq!(
            pin,
            DeviceEvent::StationUnlock {
                method: UnlockMethod::Pin,
                who: None,
                door: None
            }
        );
        assert!(
            !serde_json::to_string(&pin)
                .expect("serialises")
                .contains("135790")
        );
        sim.access(4, "", "");
        rig.expect("indoor monitor", |e| {
            matches!(
                e,
                DeviceEvent::StationUnlock {
                    method: UnlockMethod::IndoorMonitor,
                    ..
                }
            )
        })
        .await;
        sim.tamper(true);
        rig.expect("tamper", |e| matches!(e, DeviceEvent::DeviceAlarm { code, active: true, .. } if code == "tamper")).await;
        sim.door(true);
        rig.expect("door open", |e| {
            matches!(e, DeviceEvent::DoorState { open: true, .. })
        })
        .await;
    }

    #[tokio::test]
    async fn remote_unlock_over_json_rpc_and_the_cgi_fallback() {
        let sim = sim().await;
        let mut rig = Rig::start(DahuaVto::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        let mut unlocks = sim.unlocks();
        assert_eq!(rig.command(unlock()).await, CommandOutcome::Done);
        assert_eq!(*unlocks.borrow_and_update(), vec!["rpc".to_owned()]);
        sim.refuse_rpc_open(true);
        assert_eq!(rig.command(unlock()).await, CommandOutcome::Done);
        assert_eq!(
            *unlocks.borrow_and_update(),
            vec!["rpc".to_owned(), "cgi".to_owned()]
        );
        rig.expect("door contact", |e| {
            matches!(e, DeviceEvent::DoorState { open: true, .. })
        })
        .await;
    }

    #[tokio::test]
    async fn wrong_password_stops_and_a_login_that_never_answers_is_retried() {
        let sim = sim().await;
        let mut c = config(&sim);
        c.password = "wrong".into();
        let mut rig = Rig::start(DahuaVto::new(c));
        let error = rig.error("refused").await;
        assert!(matches!(&error, DriverError::Misconfigured(_)), "{error:?}");
        drop(rig);

        sim.silent_login(true);
        let mut rig = Rig::start(DahuaVto::new(config(&sim)));
        let error = rig.error("silent").await;
        assert!(
            matches!(&error, DriverError::Transient(m) if m.contains("login")),
            "{error:?}"
        );
        let again = rig.error("retried").await;
        assert!(again.is_retryable());
        sim.silent_login(false);
        rig.expect("online once it answers", is_link(true)).await;
    }

    #[tokio::test]
    async fn a_station_that_drops_mid_call_and_returns_closes_the_call() {
        let sim = sim().await;
        let (tcp, http) = (sim.tcp_addr(), sim.http_addr());
        let mut rig = Rig::start(DahuaVto::new(config(&sim)));
        rig.expect("online", is_link(true)).await;
        sim.ring("9901");
        rig.expect("started", |e| matches!(e, DeviceEvent::CallStarted { .. }))
            .await;
        sim.stop();
        drop(sim);
        rig.expect("offline", is_link(false)).await;
        let back = VtoSim::start_on(tcp, http, "admin", "vto-pass-1")
            .await
            .expect("restarts");
        rig.expect("online again", is_link(true)).await;
        rig.expect("call closed", |e| {
            matches!(e, DeviceEvent::CallMissed { .. })
        })
        .await;
        back.door(false);
        rig.expect("events flow again", |e| {
            matches!(e, DeviceEvent::DoorState { open: false, .. })
        })
        .await;
    }

    #[tokio::test]
    async fn hostile_frames_end_the_session() {
        // A "station" that answers with a frame announcing 4 GiB.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let mut frame = b"\x20\0\0\0DHIP".to_vec();
                frame.extend([0u8; 8]);
                frame.extend(u64::from(u32::MAX).to_le_bytes());
                frame.extend(u64::from(u32::MAX).to_le_bytes());
                let _ = s.write_all(&frame).await;
            }
        });
        let mut c = VtoConfig::new(&addr.to_string(), "admin", "x");
        c.reply_timeout = Duration::from_millis(500);
        let mut rig = Rig::start(DahuaVto::new(c));
        let error = rig.error("too large").await;
        assert!(error.to_string().contains("too large"), "{error}");
    }
}
