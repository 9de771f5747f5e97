//! Surveillance cameras (`type = "onvif-camera"`) in a running gateway:
//! a configured camera with a password from a secret file, spoken to
//! over ONVIF by its owned driver task, its tamper stored as an alarm.

use drivers::Class;
use drivers::sim::onvif::{OnvifSim, SimAuth, SimCameraConfig};
use gatehouse_tests::{DEADLINE, eventually};

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
