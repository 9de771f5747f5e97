//! A full data disk, end to end: the real `gatehouse` binary on a small
//! tmpfs of the test's own (`testkit::disk`), filled after a clean stop.
//! The gateway starts anyway, says "store unavailable: disk full" on
//! `/readyz` and in `gatehouse_store_available`, drives its Modbus barrier
//! from memory, answers a camera's push with 503 and lets a guard log in
//! (even with no reserve file to give back); once
//! space is freed it stores again without a restart and records a
//! `store_unavailable` alarm with what it refused.

use drivers::lpr::Vendor;
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig, SimCommand};
use drivers::sim::camera::{CameraSim, SimError};
use drivers::{Class, PlateColour};
use gatehouse_tests::{DEADLINE, GatewayProcess, eventually, metric_sum};
use nix::sys::signal::Signal;
use testkit::disk::SmallDisk;

/// The gateway's disk: its database, reserve, images and trends fit.
const DISK_BYTES: u64 = 48 << 20;

const RESIDENT: &str = "苏A8HK52";

/// `/readyz`: (status, body).
async fn readyz(client: &reqwest::Client, gateway: &GatewayProcess) -> Option<(u16, String)> {
    let response = client.get(gateway.url("/readyz")).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Waits until `/readyz` answers 200 (the disk has room again).
async fn ready_again(client: &reqwest::Client, gateway: &GatewayProcess) {
    eventually("/readyz to answer 200 again", DEADLINE, || async {
        readyz(client, gateway)
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await
    .expect("ready again");
}

/// The device listener's address, from the line the gateway prints.
fn ingress(gateway: &GatewayProcess) -> Option<String> {
    gateway
        .stdout_text()
        .lines()
        .find_map(|l| l.strip_prefix("Device listener: "))
        .and_then(|rest| rest.strip_suffix("/lpr/{camera_id}"))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_full_gateway_starts_serves_from_memory_and_recovers_without_a_restart() {
    let Some(disk) = SmallDisk::mount_or_skip(DISK_BYTES) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = disk.path().join("data");
    std::fs::create_dir_all(&data).expect("data directory");
    let (barrier_addr, barrier) = BarrierSim::spawn_tcp(BarrierSimConfig {
        rise: std::time::Duration::from_millis(50),
        fall: std::time::Duration::from_millis(50),
        ..BarrierSimConfig::default()
    })
    .await
    .expect("barrier simulator");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, gatehouse_tests::lanes_config(&data, barrier_addr)).expect("config");

    // A resident's car, then one clean run and stop: the data directory as
    // a gateway leaves it.
    let added = std::process::Command::new(crate::GATEHOUSE)
        .args([
            "plates", "add", RESIDENT, "--house", "3-2-1201", "--owner", "王芳",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("gatehouse plates add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let (code, out, err) = gatehouse_tests::user_cli(
        crate::GATEHOUSE,
        &[
            "add",
            "--config",
            &config.display().to_string(),
            "--role",
            "guard",
            "wang",
        ],
        "a long password\n",
    )
    .await
    .expect("gatehouse user add");
    assert_eq!(code, Some(0), "{out}{err}");
    let mut first = GatewayProcess::run(crate::GATEHOUSE, &config)
        .await
        .expect("starts on a disk with room");
    first.wait_ready().await.expect("ready");
    first.signal(Signal::SIGTERM).expect("sigterm");
    assert!(first.wait_exit(DEADLINE).await.expect("exits").success());
    // As a disk that never had room for the store's reserve leaves it: the
    // gateway has nothing of its own to free when it finds the disk full.
    std::fs::remove_file(data.join("gatehouse.db.reserve")).expect("the reserve");

    let filler = disk.fill();
    assert!(disk.free_bytes() < 4096, "the disk is full");

    let mut gateway = GatewayProcess::run(crate::GATEHOUSE, &config)
        .await
        .expect("the gateway starts on a full disk (it exited at start before)");
    let client = reqwest::Client::new();
    let (status, body) = eventually("/readyz to say the disk is full", DEADLINE, || async {
        readyz(&client, &gateway)
            .await
            .filter(|(_, body)| body.contains("store unavailable: disk full"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", gateway.log_text()));
    assert_eq!(status, 503, "{body}");
    let health = client
        .get(gateway.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "the process is live");
    let metrics = gateway.metrics().await.expect("metrics");
    assert_eq!(
        metric_sum(&metrics, "gatehouse_store_available", ""),
        0.0,
        "{metrics}"
    );

    // A resident's read: the barrier opens from memory, the camera gets 503
    // (the read is not on disk, so it is not acknowledged).
    let ingress = eventually("the device listener's address", DEADLINE, || async {
        ingress(&gateway)
    })
    .await
    .expect("the gateway prints its device listener");
    let camera = CameraSim::new(&ingress, "cam-south-in", Vendor::Vzenith).expect("camera");
    let refused = camera.push_plate(RESIDENT, PlateColour::Blue, 95).await;
    match refused {
        Err(SimError::Status { status, body }) => {
            assert_eq!(status, 503, "a read that is not stored is refused");
            assert!(body.contains("store unavailable: disk full"), "{body}");
        }
        other => panic!("a read on a full disk must get 503: {other:?}"),
    }
    eventually("the barrier opened from memory", DEADLINE, || async {
        barrier
            .commands_seen()
            .contains(&SimCommand::Open)
            .then_some(())
    })
    .await
    .expect("barrier");
    let metrics = gateway.metrics().await.expect("metrics");
    assert!(
        metric_sum(&metrics, "gatehouse_http_rejected_total", "not_stored") >= 1.0,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "gatehouse_events_dropped_total", "access") >= 1.0,
        "{metrics}"
    );
    // A guard logs in (the session is held in memory: its row cannot be
    // written) and reaches the live page.
    let panel = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = panel
        .get(gateway.url("/login"))
        .send()
        .await
        .expect("panel");
    assert_eq!(page.status(), 200, "the panel answers");
    let page = page.text().await.expect("login page");
    let csrf = crate::hidden_field(&page, "csrf");
    let login = panel
        .post(gateway.url("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("next", "/"),
            ("name", "wang"),
            ("password", "a long password"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(
        login.status(),
        303,
        "a guard logs in on a full disk; log:\n{}",
        gateway.log_text()
    );
    assert_eq!(
        login
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok()),
        Some("/"),
        "to the page asked for, not back to the login; log:\n{}",
        gateway.log_text()
    );
    let live = panel
        .get(gateway.url("/live"))
        .send()
        .await
        .expect("live page");
    assert_eq!(live.status(), 200, "logged in");

    // Space comes back: no restart, pushes are stored again.
    filler.free();
    ready_again(&client, &gateway).await;
    let reply = camera
        .push_plate("苏B12345", PlateColour::Blue, 95)
        .await
        .expect("push");
    assert_eq!(reply.status, 200, "stored once the disk has room");
    let metrics = gateway.metrics().await.expect("metrics");
    assert_eq!(metric_sum(&metrics, "gatehouse_store_available", ""), 1.0);

    gateway.signal(Signal::SIGTERM).expect("sigterm");
    let status = gateway.wait_exit(DEADLINE).await.expect("exits");
    assert!(status.success(), "log:\n{}", gateway.log_text());
    let log = gateway.log_text();
    assert!(
        log.matches("Plate reads were not stored").count() <= 1,
        "one line a minute:\n{log}"
    );

    let events = crate::read_all(&data).await;
    let alarm = events
        .iter()
        .find(|e| e.kind == "store_unavailable")
        .expect("the outage is recorded as an alarm");
    assert_eq!(alarm.class, Class::Alarm);
    assert_eq!(alarm.body["reason"], "disk full");
    assert!(
        alarm.body["refused"]["access"].as_u64() >= Some(1),
        "{}",
        alarm.body
    );
    assert!(alarm.body["duration_ms"].as_i64().is_some());
    assert!(
        events
            .iter()
            .any(|e| e.kind == "plate_read" && e.body["plate"] == "苏B12345"),
        "the read after the recovery is stored"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.kind == "plate_read" && e.body["plate"] == RESIDENT),
        "the refused read was not stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_filling_while_the_gateway_runs_fails_readiness_refuses_quietly_and_recovers() {
    let Some(disk) = SmallDisk::mount_or_skip(DISK_BYTES) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = disk.path().join("data");
    let (barrier_addr, _barrier) = BarrierSim::spawn_tcp(BarrierSimConfig::default())
        .await
        .expect("barrier simulator");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, gatehouse_tests::lanes_config(&data, barrier_addr)).expect("config");
    let mut gateway = GatewayProcess::run(crate::GATEHOUSE, &config)
        .await
        .expect("starts");
    gateway.wait_ready().await.expect("ready");
    let ingress = eventually("the device listener's address", DEADLINE, || async {
        ingress(&gateway)
    })
    .await
    .expect("the gateway prints its device listener");
    // Huaxia: the exit lane opened by the camera's relay, open to all.
    let camera = CameraSim::new(&ingress, "cam-south-out", Vendor::Huaxia).expect("camera");

    let filler = disk.fill();
    // Reads are stored until the database cannot grow any more: each 200
    // is on disk (checked below), then the disk says no.
    let mut stored = Vec::new();
    let mut refused = 0u64;
    for i in 0..5000 {
        let plate = format!("苏C{i:05}");
        match camera.push_plate(&plate, PlateColour::Blue, 95).await {
            Ok(reply) => {
                assert_eq!(reply.status, 200);
                stored.push(plate);
            }
            Err(SimError::Status { status: 503, .. }) => {
                refused += 1;
                break;
            }
            Err(other) => panic!("push: {other}"),
        }
    }
    assert_eq!(refused, 1, "the disk never filled");
    let client = reqwest::Client::new();
    let (status, body) = eventually("/readyz to say the disk is full", DEADLINE, || async {
        readyz(&client, &gateway)
            .await
            .filter(|(_, body)| body.contains("store unavailable: disk full"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", gateway.log_text()));
    assert_eq!(status, 503, "{body}");
    let lines_before = gateway.log_text().lines().count();
    for i in 0..300 {
        let plate = format!("苏D{i:05}");
        match camera.push_plate(&plate, PlateColour::Blue, 95).await {
            Err(SimError::Status { status: 503, .. }) => refused += 1,
            other => panic!("a push on a full disk must get 503: {other:?}"),
        }
    }
    let metrics = gateway.metrics().await.expect("metrics");
    assert_eq!(metric_sum(&metrics, "gatehouse_store_available", ""), 0.0);
    let log = gateway.log_text();
    let new_lines = log.lines().count() - lines_before;
    assert!(
        new_lines <= 3,
        "300 refused pushes wrote {new_lines} log lines (one a minute per kind, with a count):\n{log}"
    );

    filler.free();
    ready_again(&client, &gateway).await;
    let reply = camera
        .push_plate("苏E00001", PlateColour::Blue, 95)
        .await
        .expect("stored once the disk has room");
    assert_eq!(reply.status, 200);
    stored.push("苏E00001".to_owned());

    gateway.signal(Signal::SIGTERM).expect("sigterm");
    let status = gateway.wait_exit(DEADLINE).await.expect("exits");
    assert!(status.success(), "log:\n{}", gateway.log_text());
    let events = crate::read_all(&data).await;
    for plate in &stored {
        assert!(
            events
                .iter()
                .any(|e| e.kind == "plate_read" && e.body["plate"] == plate.as_str()),
            "acknowledged read {plate} lost"
        );
    }
    let alarm = events
        .iter()
        .find(|e| e.kind == "store_unavailable")
        .expect("the outage is recorded as an alarm");
    assert!(
        alarm.body["refused"]["access"].as_u64() >= Some(refused),
        "{} refused: {}",
        refused,
        alarm.body
    );
}
