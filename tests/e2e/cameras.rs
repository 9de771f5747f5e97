//! Surveillance cameras (`type = "onvif-camera"`) in a running gateway:
//! a configured camera with a password from a secret file, spoken to
//! over ONVIF by its owned driver task, its tamper stored as an alarm; a
//! camera watching a lane takes a snapshot of each plate read there
//! (stored, referenced by a `camera_snapshot`, fetched through the API),
//! and one whose snapshot hangs delays nothing and is given up in time;
//! `gatehouse cameras discover` and `cameras check` against the simulator.

use std::time::Instant;

use drivers::lpr::Vendor;
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig, SimCommand};
use drivers::sim::camera::CameraSim;
use drivers::sim::onvif::{OnvifSim, SimAuth, SimCameraConfig, SimSnapshot};
use drivers::{Class, PlateColour};
use gatehouse_tests::{DEADLINE, eventually, metric_sum};
use gateway::wire::Envelope;

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_cameras_tamper_is_stored_as_an_alarm_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = OnvifSim::start(SimCameraConfig {
        auth: SimAuth::UsernameToken {
            username: "gatehouse".into(),
            password: "s3cret-camera".into(),
        },
        // Ten minutes off: the driver must sign with the camera's clock.
        skew_ms: 600_000,
        ..SimCameraConfig::default()
    })
    .await
    .expect("camera simulator");
    let secret = dir.path().join("cctv-password");
    std::fs::write(&secret, "s3cret-camera\n").expect("secret file");
    let text = format!(
        r#"{}
[[devices]]
id = "cctv-1"
name = "南门监控"
type = "onvif-camera"
address = "{}"
username = "gatehouse"
password = {{ file = "{}" }}
drift_alarm = "1h"
"#,
        gatehouse_tests::test_config(&dir.path().join("data")),
        sim.device_url(),
        secret.display()
    );
    let config = gateway::config::parse(&text, "test.toml").expect("valid config");
    assert!(
        !format!("{config:?}").contains("s3cret-camera"),
        "the password is a secret"
    );
    let running = gateway::app::start(config).await.expect("starts");
    let stats = || sim.control().stats();
    eventually("the camera subscribed to events", DEADLINE, || {
        let subscribed = stats().pulls > 0;
        async move { subscribed.then_some(()) }
    })
    .await
    .expect("subscribed");

    sim.control().tamper(true);
    let store = running.store.clone();
    let alarm = eventually("a camera_alarm in the store", DEADLINE, || {
        let store = store.clone();
        async move {
            let events = store.read_after(0, 10_000).await.ok()?;
            events.into_iter().find(|e| e.kind == "camera_alarm")
        }
    })
    .await
    .expect("tamper stored");
    assert_eq!(alarm.class, Class::Alarm);
    assert_eq!(alarm.device_id, "cctv-1");
    assert_eq!(alarm.body["alarm"], "tamper");
    assert_eq!(alarm.body["active"], true);
    assert!(running.shutdown().await.is_clean());
    assert!(
        sim.control().stats().unsubscribed > 0,
        "the subscription slot is given back on shutdown"
    );
}

#[test]
fn a_camera_without_its_password_or_at_an_unknown_lane_is_refused_with_locations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"{}
[[devices]]
id = "cctv-1"
name = "南门监控"
type = "onvif-camera"
address = "ftp://camera"
username = "gatehouse"
lanes = ["nowhere"]
drift_alarm = "0s"
"#,
        gatehouse_tests::test_config(&dir.path().join("data")),
    );
    let errors = gateway::config::parse(&text, "test.toml").expect_err("refused");
    let located: Vec<&str> = errors
        .problems
        .iter()
        .filter(|p| p.file == "test.toml" && p.line > 0)
        .map(|p| p.key.as_str())
        .collect();
    for key in ["address", "password", "lanes", "drift_alarm"] {
        let key = format!("devices[1].{key}");
        assert!(located.contains(&key.as_str()), "{key} in {located:?}");
    }
}

/// A gateway with the lanes of [`gatehouse_tests::lanes_config`], a
/// surveillance camera (`cctv-south`, the simulator `sim`) watching the
/// `south-in` lane, and the platform API's token `api-t0ken`.
struct Watched {
    running: gateway::app::Running,
    barrier: drivers::sim::barrier::SimHandle,
    sim: OnvifSim,
    _dir: tempfile::TempDir,
}

impl Watched {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (addr, barrier) = BarrierSim::spawn_tcp(BarrierSimConfig::default())
            .await
            .expect("barrier simulator");
        let sim = OnvifSim::start(SimCameraConfig::default())
            .await
            .expect("camera simulator");
        let token = dir.path().join("api-token");
        std::fs::write(&token, "api-t0ken\n").expect("token file");
        let text = format!(
            r#"{}
[[devices]]
id = "cctv-south"
name = "南门监控"
type = "onvif-camera"
address = "{}"
lanes = ["south-in"]
snapshot_timeout = "2s"
snapshot_max_bytes = "256KiB"

[api]
token = {{ file = "{}" }}
"#,
            gatehouse_tests::lanes_config(&dir.path().join("data"), addr),
            sim.device_url(),
            token.display(),
        );
        let config = gateway::config::parse(&text, "cctv.toml").expect("valid config");
        let running = gateway::app::start(config).await.expect("starts");
        let plates = running.plates.clone();
        tokio::task::spawn_blocking(move || {
            plates
                .upsert_resident(&gateway::rules::vehicle::Resident {
                    plate: "苏A8HK52".into(),
                    house: "3-2-1201".into(),
                    owner: "王芳".into(),
                    valid_from: None,
                    valid_to: None,
                    lanes: vec![],
                })
                .expect("resident");
        })
        .await
        .expect("lists");
        let cctv = running.cctv.clone();
        eventually("the camera's snapshot URI is known", DEADLINE, || {
            let known = cctv
                .device("cctv-south")
                .is_some_and(|d| d.handle.view().current().snapshot_uri.is_some());
            async move { known.then_some(()) }
        })
        .await
        .expect("camera connected");
        Self {
            running,
            barrier,
            sim,
            _dir: dir,
        }
    }

    fn camera(&self) -> CameraSim {
        let addr = self.running.ingress_addr.expect("device listener");
        CameraSim::new(&format!("http://{addr}"), "cam-south-in", Vendor::Vzenith)
            .expect("plate camera sim")
    }

    async fn events(&self) -> Vec<Envelope> {
        self.running
            .store
            .read_after(0, 100_000)
            .await
            .expect("read the queue")
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.running.panel_addr))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plate_read_at_a_watched_lane_gets_a_stored_snapshot_the_platform_can_fetch() {
    let estate = Watched::start().await;
    let reply = estate
        .camera()
        .push_plate("苏A8HK52", PlateColour::Blue, 95)
        .await
        .expect("push");
    assert_eq!(reply.status, 200);
    let store = estate.running.store.clone();
    let snapshot = eventually("a camera_snapshot in the store", DEADLINE, || {
        let store = store.clone();
        async move {
            let events = store.read_after(0, 100_000).await.ok()?;
            events.into_iter().find(|e| e.kind == "camera_snapshot")
        }
    })
    .await
    .expect("snapshot recorded");
    let events = estate.events().await;
    let read = events
        .iter()
        .find(|e| e.kind == "plate_read")
        .expect("the read");
    assert_eq!(snapshot.class, Class::Access);
    assert_eq!(snapshot.device_id, "cctv-south");
    assert_eq!(snapshot.body["place"], "south-in");
    assert_eq!(snapshot.body["of_seq"], read.seq);
    assert_eq!(snapshot.body["of_id"], read.id.to_string());
    assert!(snapshot.seq > read.seq, "recorded after the read");
    assert_eq!(estate.sim.control().stats().snapshots, 1);

    // The platform fetches the image through the API, with its token.
    let image = snapshot.body["image"].as_str().expect("image name");
    let url = format!("http://{}/api/v1/images/{image}", estate.running.panel_addr);
    let client = reqwest::Client::new();
    let refused = client.get(&url).send().await.expect("request");
    assert_eq!(refused.status(), 401, "not without the token");
    let answer = client
        .get(&url)
        .bearer_auth("api-t0ken")
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "image/jpeg");
    let bytes = answer.bytes().await.expect("image bytes");
    assert!(bytes.starts_with(&[0xff, 0xd8]), "a JPEG");
    let n = metric_sum(
        &estate.metrics().await,
        "gatehouse_camera_snapshots_total",
        "outcome=\"stored\"",
    );
    assert!((n - 1.0).abs() < f64::EPSILON, "counted once: {n}");
    assert!(estate.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_or_huge_snapshot_delays_no_open_and_is_given_up_within_its_bounds() {
    let estate = Watched::start().await;
    estate.sim.control().snapshot(SimSnapshot::Hang);
    let panel = estate.running.panel_addr;
    let timeouts = || async move {
        let text = reqwest::get(format!("http://{panel}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(metric_sum(
            &text,
            "gatehouse_camera_snapshots_total",
            "outcome=\"timeout\"",
        ))
    };
    let pushed = Instant::now();
    let reply = estate
        .camera()
        .push_plate("苏A8HK52", PlateColour::Blue, 95)
        .await
        .expect("push");
    assert_eq!(reply.status, 200);
    // The snapshot hangs until it is given up: had the reply waited for it,
    // the give-up would already be counted.
    assert_eq!(
        timeouts().await,
        Some(0.0),
        "the camera's reply waited for nothing of the snapshot"
    );
    let barrier = estate.barrier.clone();
    eventually("the OPEN relay pulsed", DEADLINE, || {
        let opened = barrier.commands_seen().contains(&SimCommand::Open);
        async move { opened.then_some(()) }
    })
    .await
    .expect("barrier opened");
    assert_eq!(
        timeouts().await,
        Some(0.0),
        "the OPEN waited for nothing of the snapshot"
    );
    let read = estate
        .events()
        .await
        .into_iter()
        .find(|e| e.kind == "plate_read")
        .expect("the read is stored");
    assert_eq!(read.body["decision"], "allow");

    // Given up at its bound, never before: counted as a timeout, nothing
    // recorded.
    let given_up = eventually(
        "the snapshot counted as timed out",
        DEADLINE,
        || async move {
            let n = timeouts().await?;
            (n >= 1.0).then(Instant::now)
        },
    )
    .await
    .expect("given up");
    let bound = std::time::Duration::from_secs(2);
    let took = given_up.duration_since(pushed);
    assert!(
        took >= bound,
        "given up before its bound ({bound:?}): {took:?}"
    );
    assert!(
        !estate
            .events()
            .await
            .iter()
            .any(|e| e.kind == "camera_snapshot"),
        "no snapshot recorded"
    );

    // Too large: refused at its byte bound, counted, nothing recorded.
    estate
        .sim
        .control()
        .snapshot(SimSnapshot::Huge(256 * 1024 + 1));
    estate
        .camera()
        .push_plate("苏A8HK52", PlateColour::Blue, 95)
        .await
        .expect("push");
    eventually(
        "the snapshot counted as too large",
        DEADLINE,
        || async move {
            let text = reqwest::get(format!("http://{panel}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let n = metric_sum(
                &text,
                "gatehouse_camera_snapshots_total",
                "outcome=\"too_large\"",
            );
            (n >= 1.0).then_some(())
        },
    )
    .await
    .expect("refused");
    assert!(
        !estate
            .events()
            .await
            .iter()
            .any(|e| e.kind == "camera_snapshot"),
        "no snapshot recorded"
    );
    assert!(estate.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn cameras_discover_prints_a_config_block_and_check_reports_what_works() {
    let mut sim = OnvifSim::start(SimCameraConfig {
        auth: SimAuth::UsernameToken {
            username: "gatehouse".into(),
            password: "s3cret-camera".into(),
        },
        ..SimCameraConfig::default()
    })
    .await
    .expect("camera simulator");
    let probe_at = sim
        .discovery("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("discovery responder");
    let discover = tokio::process::Command::new(crate::GATEHOUSE)
        .args(["cameras", "discover", "--wait", "1s", "--target"])
        .arg(probe_at.to_string())
        .output()
        .await
        .expect("runs");
    let block = String::from_utf8_lossy(&discover.stdout).into_owned();
    assert!(discover.status.success(), "{block}");
    assert!(block.contains("type = \"onvif-camera\""), "{block}");
    assert!(
        block.contains(&format!("address = \"{}\"", sim.device_url())),
        "the simulator's address, not the link-local one: {block}"
    );
    assert!(!block.contains("address = \"http://169.254"), "{block}");

    // The printed block, with the credentials filled in, is a valid config
    // that `cameras check` connects with.
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("cctv-password");
    std::fs::write(&secret, "s3cret-camera\n").expect("secret file");
    let with_credentials = block.replace("# username", "username").replace(
        "# password = { env = \"GATEHOUSE_CCTV_PASSWORD\" }",
        &format!("password = {{ file = \"{}\" }}", secret.display()),
    );
    let file = dir.path().join("gateway.toml");
    let text = format!(
        "{}\n{with_credentials}",
        gatehouse_tests::test_config(&dir.path().join("data"))
    );
    std::fs::write(&file, &text).expect("config");
    let check = tokio::process::Command::new(crate::GATEHOUSE)
        .args(["cameras", "check"])
        .arg(&file)
        .output()
        .await
        .expect("runs");
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for step in [
        "ok clock",
        "ok GetDeviceInformation",
        "ok GetProfiles",
        "ok GetStreamUri",
        "ok snapshot",
    ] {
        assert!(report.contains(step), "{step} in {report}");
    }

    // A wrong password is reported and fails the check.
    std::fs::write(&secret, "wrong\n").expect("secret file");
    let check = tokio::process::Command::new(crate::GATEHOUSE)
        .args(["cameras", "check"])
        .arg(&file)
        .output()
        .await
        .expect("runs");
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{report}");
    assert!(report.contains("credentials refused"), "{report}");
}
