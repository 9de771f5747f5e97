//! Vehicle lanes end to end: a simulated plate camera pushes real payload
//! shapes to the device listener, the gateway decides, and a simulated
//! barrier controller (a Modbus TCP server) is driven.

use std::sync::Arc;

use drivers::lpr::Vendor;
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig, SimCommand, SimHandle};
use drivers::sim::camera::CameraSim;
use drivers::{Class, PlateColour};
use gatehouse_tests::{DEADLINE, eventually, metric_sum};
use gateway::app::Running;
use gateway::pipeline::Origin;
use gateway::rules::vehicle::{Blacklisted, Resident};
use gateway::wire::Envelope;

struct Estate {
    running: Running,
    barrier: SimHandle,
    _dir: tempfile::TempDir,
}

impl Estate {
    async fn start() -> Self {
        Self::start_with(|text| text).await
    }

    /// Starts the estate with its configuration text changed by `edit`.
    async fn start_with(edit: impl FnOnce(String) -> String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (addr, barrier) = BarrierSim::spawn_tcp(BarrierSimConfig {
            rise: std::time::Duration::from_millis(100),
            fall: std::time::Duration::from_millis(100),
            ..BarrierSimConfig::default()
        })
        .await
        .expect("barrier simulator");
        let text = edit(gatehouse_tests::lanes_config(
            &dir.path().join("data"),
            addr,
        ));
        let config = gateway::config::parse(&text, "lanes.toml").expect("valid lanes config");
        let running = gateway::app::start(config).await.expect("starts");
        let plates = running.plates.clone();
        tokio::task::spawn_blocking(move || {
            plates
                .upsert_resident(&Resident {
                    plate: "苏A8HK52".into(),
                    house: "3-2-1201".into(),
                    owner: "王芳".into(),
                    valid_from: None,
                    valid_to: None,
                    lanes: vec![],
                })
                .expect("resident");
            plates
                .upsert_blacklist(&Blacklisted {
                    plate: "苏A00000".into(),
                    reason: "欠费".into(),
                })
                .expect("blacklist");
        })
        .await
        .expect("lists");
        Self {
            running,
            barrier,
            _dir: dir,
        }
    }

    fn camera(&self, id: &str, vendor: Vendor) -> CameraSim {
        let addr = self.running.ingress_addr.expect("device listener");
        CameraSim::new(&format!("http://{addr}"), id, vendor).expect("camera sim")
    }

    fn opens(&self) -> usize {
        self.barrier
            .commands_seen()
            .iter()
            .filter(|c| **c == SimCommand::Open)
            .count()
    }

    async fn event(&self, what: &str, matches: impl Fn(&Envelope) -> bool) -> Envelope {
        let store = self.running.store.clone();
        let matches = Arc::new(matches);
        eventually(what, DEADLINE, || {
            let store = store.clone();
            let matches = matches.clone();
            async move {
                let events = store.read_after(0, 100_000).await.ok()?;
                events.into_iter().find(|e| matches(e))
            }
        })
        .await
        .expect(what)
    }
}

fn plate_read<'a>(plate: &'a str) -> impl Fn(&Envelope) -> bool + 'a {
    move |e| e.kind == "plate_read" && e.body["plate"] == plate
}

#[tokio::test(flavor = "multi_thread")]
async fn lanes_vzenith_resident_read_opens_the_modbus_barrier_and_is_recorded() {
    let estate = Estate::start().await;
    let camera = estate.camera("cam-south-in", Vendor::Vzenith);
    let reply = camera
        .push_plate("苏A8HK52", PlateColour::Blue, 95)
        .await
        .expect("push");
    assert_eq!(reply.status, 200);
    assert!(
        !reply.opened,
        "this lane opens through its Modbus barrier, not the camera relay"
    );
    eventually("the OPEN relay pulsed", DEADLINE, || async {
        (estate.opens() == 1).then_some(())
    })
    .await
    .expect("barrier opened");

    let read = estate.event("the plate read", plate_read("苏A8HK52")).await;
    assert_eq!(read.class, Class::Access);
    assert_eq!(read.device_id, "cam-south-in");
    assert_eq!(read.body["decision"], "allow");
    assert_eq!(read.body["reason"]["code"], "resident");
    assert_eq!(read.body["reason"]["house"], "3-2-1201");
    assert_eq!(read.body["lane"], "south-in");
    assert_eq!(read.body["open_via"], "barrier");
    let entered = estate
        .event("vehicle entered", |e| e.kind == "vehicle_entered")
        .await;
    assert_eq!(entered.body["plate"], "苏A8HK52");
    // The rule's OPEN is audited like every actuation, with its outcome.
    let audit = estate
        .event("the rule's command audited", |e| {
            e.kind == "command" && e.body["origin"]["via"] == "rule"
        })
        .await;
    assert_eq!(audit.class, Class::Audit);
    assert_eq!(audit.device_id, "barrier-south-in");
    assert_eq!(audit.body["command"]["command"], "open_barrier");
    assert_eq!(audit.body["outcome"]["outcome"], "done");
    assert_eq!(audit.body["origin"]["actor"], "lanes");

    // The same car read again a moment later counts once.
    camera
        .push_plate("苏A8HK52", PlateColour::Blue, 95)
        .await
        .expect("push");
    let repeat = estate
        .event("the repeated read", |e| {
            e.kind == "plate_read" && e.body["decision"] == "repeat"
        })
        .await;
    assert_eq!(repeat.body["plate"], "苏A8HK52");
    assert_eq!(estate.opens(), 1, "a repeated read does not open again");
    assert!(estate.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn lanes_fuzzy_read_never_opens_and_the_guard_decides_with_one_click() {
    let estate = Estate::start().await;
    let camera = estate.camera("cam-south-in", Vendor::Vzenith);
    // 8 read as B: one OCR-confusable character away from a resident.
    camera
        .push_plate("苏ABHK52", PlateColour::Blue, 95)
        .await
        .expect("push");
    let read = estate.event("the fuzzy read", plate_read("苏ABHK52")).await;
    assert_eq!(read.body["decision"], "ask_guard");
    assert_eq!(read.body["reason"]["code"], "fuzzy_match");
    assert_eq!(read.body["candidate"], "苏A8HK52");
    assert_eq!(estate.opens(), 0, "a fuzzy match never opens by itself");

    let pending = estate.running.board.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].candidate.as_deref(), Some("苏A8HK52"));
    let origin = Origin {
        actor: "guard-li".into(),
        via: "panel".into(),
        reason: Some("核对车辆，是业主的车".into()),
        remote: None,
    };
    let outcome = gateway::lanes::guard_decision(
        &estate.running.board,
        &estate.running.plates,
        &estate.running.pipeline,
        &pending[0].id,
        true,
        origin,
    )
    .await
    .expect("decided");
    assert_eq!(outcome.outcome, Some(drivers::CommandOutcome::Done));
    eventually("the guard's open reached the relay", DEADLINE, || async {
        (estate.opens() == 1).then_some(())
    })
    .await
    .expect("opened");
    let audit = estate
        .event("the guard decision", |e| e.kind == "guard_decision")
        .await;
    assert_eq!(audit.class, Class::Audit);
    assert_eq!(audit.body["origin"]["actor"], "guard-li");
    assert_eq!(audit.body["allowed"], true);
    assert!(estate.running.board.pending().is_empty());
    let again = gateway::lanes::guard_decision(
        &estate.running.board,
        &estate.running.plates,
        &estate.running.pipeline,
        &pending[0].id,
        true,
        Origin {
            actor: "guard-li".into(),
            via: "panel".into(),
            reason: None,
            remote: None,
        },
    )
    .await;
    assert!(again.is_err(), "a pending read is decided once");
    assert!(estate.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn lanes_blacklisted_and_unknown_plates_keep_the_barrier_down() {
    let estate = Estate::start().await;
    let camera = estate.camera("cam-south-in", Vendor::Vzenith);
    camera
        .push_plate("苏A00000", PlateColour::Blue, 95)
        .await
        .expect("push");
    camera
        .push_plate("京C99999", PlateColour::Blue, 95)
        .await
        .expect("push");
    let denied = estate
        .event("the blacklisted read", plate_read("苏A00000"))
        .await;
    assert_eq!(denied.body["decision"], "deny");
    assert_eq!(denied.body["reason"]["reason"], "欠费");
    let alarm = estate
        .event("the blacklist alarm", |e| e.kind == "blacklisted_vehicle")
        .await;
    assert_eq!(alarm.class, Class::Alarm);
    assert_eq!(alarm.body["plate"], "苏A00000");
    assert_eq!(alarm.body["lane"], "south-in");
    let unknown = estate
        .event("the unknown read", plate_read("京C99999"))
        .await;
    assert_eq!(unknown.body["decision"], "ask_guard");
    assert_eq!(unknown.body["reason"]["code"], "unknown_plate");
    assert_eq!(estate.opens(), 0);
    assert!(estate.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn lanes_blacklisted_car_at_an_exit_is_alarmed_and_left_to_the_guard() {
    let estate = Estate::start_with(|text| {
        text.replace(
            r#"exit_policy = "open_all""#,
            r#"exit_policy = "recorded_or_listed""#,
        )
    })
    .await;
    let camera = estate.camera("cam-south-out", Vendor::Huaxia);
    let reply = camera
        .push_plate("苏A00000", PlateColour::Blue, 95)
        .await
        .expect("push");
    assert_eq!(reply.status, 200);
    assert!(
        !reply.opened,
        "the camera is not told to open: {:?}",
        reply.json
    );
    let read = estate
        .event("the blacklisted exit read", plate_read("苏A00000"))
        .await;
    assert_eq!(read.body["decision"], "ask_guard");
    assert_eq!(read.body["reason"]["reason"], "欠费");
    let alarm = estate
        .event("the blacklist alarm", |e| e.kind == "blacklisted_vehicle")
        .await;
    assert_eq!(alarm.class, Class::Alarm);
    assert_eq!(alarm.body["lane"], "south-out");
    let events = estate
        .running
        .store
        .read_after(0, 100_000)
        .await
        .expect("read");
    assert!(
        !events.iter().any(|e| e.kind == "vehicle_exited"),
        "a blacklisted car is not let out as a known exit"
    );
    assert!(estate.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn lanes_huaxia_exit_lane_opens_through_the_camera_reply() {
    let estate = Estate::start().await;
    let camera = estate.camera("cam-south-out", Vendor::Huaxia);
    let reply = camera
        .push_plate("浙B12345", PlateColour::Blue, 90)
        .await
        .expect("push");
    assert_eq!(reply.status, 200);
    assert!(
        reply.opened,
        "the reply carries gpio_data to open: {:?}",
        reply.json
    );
    let read = estate.event("the exit read", plate_read("浙B12345")).await;
    assert_eq!(read.body["decision"], "allow");
    assert_eq!(read.body["open_via"], "camera");
    let exit = estate
        .event("exit without entry", |e| e.kind == "exit_without_entry")
        .await;
    assert_eq!(exit.body["plate"], "浙B12345");
    assert!(estate.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_rejects_malformed_unknown_and_oversized_pushes_with_reasons_and_counts() {
    let estate = Estate::start().await;
    let addr = estate.running.ingress_addr.expect("listener");
    let client = reqwest::Client::new();
    let post = |path: &str, body: Vec<u8>| {
        client
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let malformed = post("/lpr/cam-south-in", b"{\"AlarmInfoPlate\": {".to_vec())
        .await
        .expect("answered");
    assert_eq!(malformed.status(), 400);
    assert!(malformed.text().await.expect("body").contains("JSON"));
    let unknown = post("/lpr/cam-nowhere", b"{}".to_vec())
        .await
        .expect("answered");
    assert_eq!(unknown.status(), 404);
    let huge = post("/lpr/cam-south-in", vec![b' '; 128 * 1024])
        .await
        .expect("answered");
    assert_eq!(huge.status(), 413);

    let metrics = reqwest::get(format!("http://{}/metrics", estate.running.panel_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for reason in ["malformed", "unknown_camera", "too_large"] {
        let n = metric_sum(
            &metrics,
            "gatehouse_http_rejected_total",
            &format!("reason=\"{reason}\""),
        );
        assert_eq!(n, 1.0, "{reason} in:\n{metrics}");
    }
    assert!(estate.running.shutdown().await.is_clean());
}

/// Sends `head` (and `body`, if any) on a new connection and returns what
/// the listener answered: the reply's head, or "" when it closed the
/// connection without one.
async fn raw_reply(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body).await.expect("body");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
            if reply.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await
    .expect("the listener answers or closes within the deadline");
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_refuses_before_the_body_and_bounds_slow_and_foreign_pushes() {
    let estate = Estate::start_with(|text| {
        text.replace(
            "max_body_bytes = \"64KiB\"",
            "max_body_bytes = \"64KiB\"\nheader_timeout = \"300ms\"\nbody_timeout = \"300ms\"\nallow_from = [\"127.0.0.0/8\", \"::1\"]",
        )
    })
    .await;
    let addr = estate.running.ingress_addr.expect("listener");
    // An unknown camera and a declared length over the limit are answered
    // before the body is sent at all.
    let unknown = raw_reply(
        addr,
        "POST /lpr/cam-nowhere HTTP/1.1\r\nHost: gw\r\nContent-Length: 7000000\r\n\r\n",
        b"",
    )
    .await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
    let huge = raw_reply(
        addr,
        "POST /lpr/cam-south-in HTTP/1.1\r\nHost: gw\r\nContent-Length: 7000000\r\n\r\n",
        b"",
    )
    .await;
    assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
    // A body that stops arriving gets 408 at the body deadline.
    let stalled = raw_reply(
        addr,
        "POST /lpr/cam-south-in HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        b"{\"AlarmInfoPlate\":",
    )
    .await;
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    // A head that stops arriving is cut off at the head deadline.
    let trickled = raw_reply(addr, "POST /lpr/cam-south-in HTTP/1.1\r\nHost: gw\r\n", b"").await;
    assert!(!trickled.contains(" 200 "), "{trickled}");

    let metrics = reqwest::get(format!("http://{}/metrics", estate.running.panel_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for reason in ["unknown_camera", "too_large", "body_timeout"] {
        let n = metric_sum(
            &metrics,
            "gatehouse_http_rejected_total",
            &format!("reason=\"{reason}\""),
        );
        assert_eq!(n, 1.0, "{reason} in:\n{metrics}");
    }
    assert!(estate.running.shutdown().await.is_clean());

    // A source outside `allow_from` is refused before anything else.
    let estate = Estate::start_with(|text| {
        text.replace(
            "max_body_bytes = \"64KiB\"",
            "max_body_bytes = \"64KiB\"\nallow_from = [\"192.0.2.0/24\"]",
        )
    })
    .await;
    let addr = estate.running.ingress_addr.expect("listener");
    let foreign = raw_reply(
        addr,
        "POST /lpr/cam-south-in HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n",
        b"{}",
    )
    .await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    let metrics = reqwest::get(format!("http://{}/metrics", estate.running.panel_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let n = metric_sum(
        &metrics,
        "gatehouse_http_rejected_total",
        "reason=\"source_not_allowed\"",
    );
    assert_eq!(n, 1.0, "source_not_allowed in:\n{metrics}");
    assert!(estate.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn lanes_open_that_fails_consumes_nothing_asks_the_guard_and_the_next_read_opens() {
    let estate = Estate::start().await;
    let camera = estate.camera("cam-south-in", Vendor::Vzenith);
    // The barrier's Modbus module goes down.
    estate.barrier.stop().await;
    estate
        .event("the module offline", |e| {
            e.kind == "device_link"
                && e.device_id == "barrier-south-in"
                && e.body["online"] == false
        })
        .await;
    camera
        .push_plate("苏A8HK52", PlateColour::Blue, 95)
        .await
        .expect("push");
    let read = estate.event("the plate read", plate_read("苏A8HK52")).await;
    assert_eq!(read.body["decision"], "allow");
    let failed = estate
        .event("the failed OPEN alarm", |e| e.kind == "open_failed")
        .await;
    assert_eq!(failed.class, Class::Alarm);
    assert_eq!(failed.body["plate"], "苏A8HK52");
    let pending = estate.running.board.pending();
    assert!(
        pending.iter().any(|p| p.plate == "苏A8HK52"),
        "the read waits for the guard: {pending:?}"
    );
    let store = estate.running.store.clone();
    let recorded = store.read_after(0, 100_000).await.expect("read");
    assert!(
        !recorded.iter().any(|e| e.kind == "vehicle_entered"),
        "no entry recorded for an arm that never opened"
    );
    assert!(!estate.running.plates.is_inside("苏A8HK52"));

    // The module is back: the next read of the car opens.
    estate.barrier.restart().await.expect("rebinds");
    estate
        .event("the module online", |e| {
            e.kind == "device_link"
                && e.device_id == "barrier-south-in"
                && e.body["online"] == true
                && e.seq > failed.seq
        })
        .await;
    camera
        .push_plate("苏A8HK52", PlateColour::Blue, 95)
        .await
        .expect("push");
    eventually("the OPEN relay pulsed", DEADLINE, || async {
        (estate.opens() == 1).then_some(())
    })
    .await
    .expect("barrier opened");
    estate
        .event("vehicle entered", |e| e.kind == "vehicle_entered")
        .await;
    assert!(estate.running.shutdown().await.is_clean());
}

fn platform(reason: &str) -> Origin {
    Origin {
        actor: "ops-zhang".into(),
        via: "platform".into(),
        reason: Some(reason.into()),
        remote: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lanes_are_commanded_by_lane_id_whatever_drives_their_barrier() {
    use drivers::{Command, CommandOutcome};
    let estate = Estate::start().await;
    let pipeline = estate.running.pipeline.clone();

    // A lane with a barrier module: the OPEN goes to the module.
    let report = pipeline
        .command("south-in", Command::OpenBarrier, platform("访客放行"))
        .await;
    assert_eq!(report.outcome, CommandOutcome::Done);
    assert!(report.audit_seq.is_some(), "audited");
    eventually("the OPEN relay pulsed", DEADLINE, || async {
        (estate.opens() >= 1).then_some(())
    })
    .await
    .expect("opened");

    // A lane whose barrier is the camera's relay: the open rides on the
    // reply to the camera's next request (here, its heartbeat).
    let camera = estate.camera("cam-south-out", Vendor::Huaxia);
    let idle = camera.heartbeat().await.expect("heartbeat");
    assert!(!idle.opened, "nothing waits: {:?}", idle.json);
    let open = tokio::spawn({
        let pipeline = pipeline.clone();
        async move {
            pipeline
                .command("south-out", Command::OpenBarrier, platform("出口放行"))
                .await
        }
    });
    let opened = eventually("a heartbeat reply that opens", DEADLINE, || {
        let camera = &camera;
        async move {
            let reply = camera.heartbeat().await.ok()?;
            reply.opened.then_some(reply)
        }
    })
    .await
    .expect("the camera's reply opened its relay");
    assert_eq!(opened.status, 200);
    let report = open.await.expect("command task");
    assert_eq!(report.outcome, CommandOutcome::Done);
    let after = camera.heartbeat().await.expect("heartbeat");
    assert!(!after.opened, "one open, once: {:?}", after.json);
    let audit = estate
        .event("the audited lane open", |e| {
            e.kind == "command" && e.device_id == "cam-south-out"
        })
        .await;
    assert_eq!(audit.body["origin"]["via"], "platform", "{}", audit.body);

    // A camera relay only opens.
    let close = pipeline
        .command("south-out", Command::CloseBarrier, platform("关闸"))
        .await;
    assert_eq!(close.outcome, CommandOutcome::Unsupported);
    let unknown = pipeline
        .command("north-in", Command::OpenBarrier, platform("开闸"))
        .await;
    assert!(
        matches!(&unknown.outcome, CommandOutcome::Failed(why) if why.contains("north-in")),
        "{:?}",
        unknown.outcome
    );
    assert!(estate.running.shutdown().await.is_clean());
}
