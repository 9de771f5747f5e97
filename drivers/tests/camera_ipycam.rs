//! The ONVIF client and camera driver against a camera nobody here wrote:
//! IPyCam, a virtual IP camera from PyPI (`tests/peers/ipycam_camera.py`
//! starts its ONVIF HTTP server on loopback). It checks WS-Security
//! UsernameToken itself (also for `GetSystemDateAndTime`, which ONVIF says
//! should be open), serves its snapshot behind HTTP Basic and has no event
//! service: the driver must still identify it, list its streams and fetch
//! its snapshot, report a wrong password, measure a skewed clock, and see
//! it drop off and come back.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use drivers::camera::client::{CameraError, OnvifClient};
use drivers::camera::soap::{self, Credentials};
use drivers::camera::{CameraConfig, CameraDriver, EventsState};
use drivers::{
    CameraAlarmKind, DeviceEvent, Driver, DriverContext, DriverError, Inbound, TestContext,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// A running IPyCam; killed when dropped.
struct Ipycam {
    child: Child,
    port: u16,
}

impl Ipycam {
    /// Starts IPyCam on `port` (0: any), with `user`/`password` ("" for
    /// none) and its clock `skew_s` seconds off; `None` when the peer is
    /// missing outside CI.
    async fn start(port: u16, user: &str, password: &str, skew_s: i64) -> Option<Self> {
        let python = testkit::python_peer("ipycam (PyPI)", &["ipycam", "numpy"])?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ipycam_camera.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([
                port.to_string(),
                user.into(),
                password.into(),
                skew_s.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python starts");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::time::timeout(WAIT, BufReader::new(stdout).lines().next_line())
            .await
            .expect("IPyCam answers in time")
            .expect("reading IPyCam")
            .expect("IPyCam printed its port");
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Some(Self { child, port })
    }

    fn device_url(&self) -> String {
        format!("http://127.0.0.1:{}/onvif/device_service", self.port)
    }

    async fn stop(mut self) {
        self.child.kill().await.expect("kill IPyCam");
    }
}

fn creds(password: &str) -> Credentials {
    Credentials {
        username: "gatehouse".into(),
        password: password.into(),
    }
}

fn fast_config(url: &str, creds: Option<Credentials>) -> CameraConfig {
    let mut config = CameraConfig::new(url, creds);
    config.timeout = Duration::from_secs(2);
    config.poll = Duration::from_millis(300);
    config.drift_alarm = Duration::from_secs(30);
    config
}

type Ran = (CameraDriver, DriverContext, Result<(), DriverError>);

struct Running {
    events: mpsc::Receiver<Inbound>,
    cancel: CancellationToken,
    task: JoinHandle<Ran>,
}

/// Runs `driver` in `ctx` again, as the supervisor does after an error.
fn rerun(mut driver: CameraDriver, mut ctx: DriverContext) -> JoinHandle<Ran> {
    tokio::spawn(async move {
        let result = driver.run(&mut ctx).await;
        (driver, ctx, result)
    })
}

fn start(mut driver: CameraDriver) -> Running {
    let TestContext {
        mut ctx,
        events,
        commands: _commands,
        cancel,
        ..
    } = DriverContext::for_test("cctv-ipycam", 256);
    let task = tokio::spawn(async move {
        let result = driver.run(&mut ctx).await;
        (driver, ctx, result)
    });
    Running {
        events,
        cancel,
        task,
    }
}

async fn next_matching(
    rx: &mut mpsc::Receiver<Inbound>,
    want: impl Fn(&DeviceEvent) -> bool,
) -> DeviceEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("expected event in time")
            .expect("driver alive");
        if want(&got.event) {
            return got.event;
        }
    }
}

fn is_link(online: bool) -> impl Fn(&DeviceEvent) -> bool {
    move |e| matches!(e, DeviceEvent::DeviceLink { online: o, .. } if *o == online)
}

#[tokio::test]
async fn ipycam_is_identified_listed_and_snapshotted_with_its_token_and_basic_auth() {
    let Some(camera) = Ipycam::start(0, "gatehouse", "cam-pass-7", 0).await else {
        return;
    };
    let driver = CameraDriver::new(fast_config(&camera.device_url(), Some(creds("cam-pass-7"))));
    let handle = driver.handle();
    let mut run = start(driver);
    let link = next_matching(&mut run.events, is_link(true)).await;
    let DeviceEvent::DeviceLink { detail, .. } = link else {
        unreachable!()
    };
    assert!(detail.contains("VirtualCam-Gate"), "{detail}");
    let status = handle.view().current();
    let info = status.info.expect("GetDeviceInformation answered");
    assert_eq!(info.manufacturer, "PythonCam");
    assert_eq!(info.model, "VirtualCam-Gate");
    assert_eq!(info.serial, "PY-GATE-0002");
    // Its clock is ours: a small offset, no drift alarm.
    assert!(status.offset_ms.expect("clock measured").abs() < 2_000);
    // Both profiles' RTSP URIs, listed for operators.
    assert!(
        status.streams.len() >= 2
            && status
                .streams
                .iter()
                .all(|(_, uri)| uri.starts_with("rtsp://")),
        "{:?}",
        status.streams
    );
    let uri = status.snapshot_uri.expect("GetSnapshotUri answered");
    assert!(uri.ends_with("/snapshot.jpg"), "{uri}");
    // No event service: the camera still works for the rest.
    assert_ne!(status.events, EventsState::Subscribed);
    // Its snapshot sits behind HTTP Basic.
    let jpeg = handle
        .snapshot(4 << 20, Duration::from_secs(5))
        .await
        .expect("snapshot");
    assert!(
        jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]),
        "a JPEG"
    );
    // A snapshot above the byte limit is refused, not truncated.
    let small = handle.snapshot(100, Duration::from_secs(5)).await;
    assert_eq!(small.expect_err("too large"), CameraError::TooLarge(100));
    run.cancel.cancel();
    assert_eq!(run.task.await.expect("driver task").2, Ok(()));
    camera.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_credentials_at_ipycam() {
    let Some(camera) = Ipycam::start(0, "gatehouse", "cam-pass-7", 0).await else {
        return;
    };
    let client = OnvifClient::new(&camera.device_url(), Some(creds("wrong")), WAIT);
    let err = client
        .call(&camera.device_url(), &soap::Request::GetDeviceInformation)
        .await
        .expect_err("refused");
    assert_eq!(err, CameraError::Unauthorized);

    let driver = CameraDriver::new(fast_config(&camera.device_url(), Some(creds("wrong"))));
    let handle = driver.handle();
    let mut run = start(driver);
    let event = next_matching(&mut run.events, is_link(false)).await;
    assert!(
        matches!(event, DeviceEvent::DeviceLink { ref detail, .. } if detail.contains("credentials")),
        "{event:?}"
    );
    let (_, _, result) = run.task.await.expect("driver task");
    assert!(matches!(result, Err(DriverError::Device(_))), "{result:?}");
    assert_eq!(
        handle.view().current().last_error.as_deref(),
        Some("credentials refused")
    );
    camera.stop().await;
}

#[tokio::test]
async fn ipycam_ten_minutes_ahead_is_measured_and_raises_the_drift_alarm() {
    let Some(camera) = Ipycam::start(0, "", "", 600).await else {
        return;
    };
    let driver = CameraDriver::new(fast_config(&camera.device_url(), None));
    let handle = driver.handle();
    let mut run = start(driver);
    let alarm = next_matching(&mut run.events, |e| {
        matches!(
            e,
            DeviceEvent::CameraAlarm {
                alarm: CameraAlarmKind::ClockDrift,
                active: true,
                ..
            }
        )
    })
    .await;
    let offset = handle.view().current().offset_ms.expect("clock measured");
    assert!(
        (offset - 600_000).abs() < 2_000,
        "offset {offset} ms: {alarm:?}"
    );
    run.cancel.cancel();
    assert_eq!(run.task.await.expect("driver task").2, Ok(()));
    camera.stop().await;
}

#[tokio::test]
async fn ipycam_that_drops_off_is_reported_offline_and_online_again_when_it_returns() {
    let Some(camera) = Ipycam::start(0, "gatehouse", "cam-pass-7", 0).await else {
        return;
    };
    let port = camera.port;
    let driver = CameraDriver::new(fast_config(&camera.device_url(), Some(creds("cam-pass-7"))));
    let handle = driver.handle();
    let mut run = start(driver);
    next_matching(&mut run.events, is_link(true)).await;
    camera.stop().await;
    next_matching(&mut run.events, is_link(false)).await;
    assert!(!handle.view().current().online);
    let (driver, ctx, result) = run.task.await.expect("driver task");
    assert!(
        matches!(result, Err(DriverError::Transient(_))),
        "{result:?}"
    );
    // Back on the same address (a camera that rebooted); the supervisor
    // runs the driver again.
    let camera = Ipycam::start(port, "gatehouse", "cam-pass-7", 0)
        .await
        .expect("IPyCam restarts");
    let task = rerun(driver, ctx);
    next_matching(&mut run.events, is_link(true)).await;
    let jpeg = handle
        .snapshot(4 << 20, Duration::from_secs(5))
        .await
        .expect("snapshot after the return");
    assert!(jpeg.starts_with(&[0xff, 0xd8]));
    run.cancel.cancel();
    assert_eq!(task.await.expect("driver task").2, Ok(()));
    camera.stop().await;
}
