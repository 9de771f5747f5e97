//! ONVIF cameras: the codecs against real captured replies, hostile XML,
//! and the client and driver against the simulated camera over loopback
//! HTTP (clock skew, both kinds of authentication, wrong passwords,
//! subscriptions killed or not renewed, a camera that drops off and comes
//! back, snapshot endpoints that hang or flood) and WS-Discovery.

use std::time::Duration;

use drivers::TestContext;
use drivers::camera::client::{CameraError, OnvifClient};
use drivers::camera::discovery;
use drivers::camera::events::{SignalKind, SignalState, classify};
use drivers::camera::soap::{self, Credentials, PropertyOperation, SoapError};
use drivers::camera::xml::XmlError;
use drivers::camera::{CameraConfig, CameraDriver, EventsState};
use drivers::sim::onvif::{OnvifSim, SimAuth, SimCameraConfig, SimFailure, SimSnapshot};
use drivers::{
    CameraAlarmKind, CameraSignalKind, DeviceEvent, Driver, DriverContext, DriverError, Inbound,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/onvif/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn creds(password: &str) -> Credentials {
    Credentials {
        username: "admin".into(),
        password: password.into(),
    }
}

fn token_auth() -> SimAuth {
    SimAuth::UsernameToken {
        username: "admin".into(),
        password: "s3cret-cam".into(),
    }
}

// ---------------------------------------------------------------- codecs

#[test]
fn dahua_capabilities_give_the_service_addresses() {
    let reply = soap::reply(&fixture("go2rtc_dahua_GetCapabilitiesResponse.xml")).expect("reply");
    let services = soap::capabilities(&reply).expect("capabilities");
    assert_eq!(
        services.media.as_deref(),
        Some("http://192.168.1.123/onvif/media_service")
    );
    assert_eq!(
        services.events.as_deref(),
        Some("http://192.168.1.123/onvif/event_service")
    );
    assert_eq!(services.pull_point, Some(true));
    assert_eq!(services.inputs, Some(2));
}

#[test]
fn media_uris_are_unescaped() {
    let snap = soap::reply(&fixture("go2rtc_dahua_GetSnapshotUriResponse.xml")).expect("reply");
    assert_eq!(
        soap::media_uri(&snap).expect("uri"),
        "http://192.168.1.123/onvifsnapshot/media_service/snapshot?channel=1&subtype=1"
    );
    let stream = soap::reply(&fixture("go2rtc_dahua_GetStreamUriResponse.xml")).expect("reply");
    assert_eq!(
        soap::media_uri(&stream).expect("uri"),
        "rtsp://192.168.1.123:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif"
    );
}

#[test]
fn device_information_clock_and_subscription_replies_parse() {
    let info = soap::reply(&fixture("onvifrs_GetDeviceInformationResponse.xml")).expect("reply");
    let info = soap::device_info(&info).expect("info");
    assert_eq!(
        (
            info.model.as_str(),
            info.firmware.as_str(),
            info.serial.as_str()
        ),
        ("IPCamera", "1.5", "a12b34")
    );
    let time = soap::reply(&fixture("onvifrs_GetSystemDateAndTimeResponse.xml")).expect("reply");
    assert_eq!(
        soap::system_time(&time).expect("time"),
        soap::parse_time("2019-11-21T08:05:40Z").expect("time")
    );
    let sub =
        soap::reply(&fixture("onvifrs_CreatePullPointSubscriptionResponse.xml")).expect("reply");
    let sub = soap::subscription(&sub).expect("subscription");
    assert_eq!(
        sub.address,
        "http://192.168.88.108/onvif/Subscription?Idx=5"
    );
    assert_eq!(sub.lifetime_ms(), Some(600_000));
}

#[test]
fn captured_motion_messages_become_signals() {
    let reply = soap::reply(&fixture(
        "pullmessages_response_cellmotion_and_motionalarm.xml",
    ))
    .expect("reply");
    let pulled = soap::pulled(&reply).expect("pulled");
    assert_eq!(pulled.messages.len(), 2);
    let signals: Vec<_> = pulled.messages.iter().filter_map(classify).collect();
    assert_eq!(signals.len(), 2);
    assert!(
        signals
            .iter()
            .all(|s| s.kind == SignalKind::Motion && s.active && !s.initial)
    );

    let reply = soap::reply(&fixture(
        "onvifrs_PullMessagesResponse_CellMotionDetector.xml",
    ))
    .expect("reply");
    let pulled = soap::pulled(&reply).expect("pulled");
    assert_eq!(pulled.messages[0].operation, PropertyOperation::Initialized);
    let initial = classify(&pulled.messages[0]).expect("signal");
    assert!(initial.initial && !initial.active);
    // The initial "no motion" is state, not an event.
    assert_eq!(SignalState::default().update(initial), None);
}

#[test]
fn probe_matches_skip_link_local_addresses() {
    let body = fixture("onvifrs_wsdiscovery_ProbeMatches_from_ONVIF_APG.xml");
    let matches = discovery::parse_matches(&body, "uuid:84ede3de-7dec-11d0-c360-F01234567890")
        .expect("parses");
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].xaddrs.len(), 2);
    assert_eq!(
        matches[0].device_url(),
        Some("http://192.168.1.24/onvif/services")
    );
    assert_eq!(matches[0].scope("name").as_deref(), Some("VENDOR MODEL"));
    // An answer to somebody else's probe is ignored.
    assert!(
        discovery::parse_matches(&body, "uuid:other")
            .expect("parses")
            .is_empty()
    );
}

#[test]
fn hostile_replies_are_refused() {
    let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&lol1;</s:Body></s:Envelope>"#;
    assert_eq!(soap::reply(laughs), Err(SoapError::Xml(XmlError::Doctype)));
    let external = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><a>&xxe;</a></s:Body></s:Envelope>"#;
    assert!(matches!(
        soap::reply(external),
        Err(SoapError::Xml(XmlError::Entity(_)))
    ));
    let deep = format!("<a>{}{}</a>", "<b>".repeat(10_000), "</b>".repeat(10_000));
    assert_eq!(
        soap::reply(deep.as_bytes()),
        Err(SoapError::Xml(XmlError::TooComplex))
    );
    let huge = vec![b'a'; 10 * 1024 * 1024];
    assert_eq!(soap::reply(&huge), Err(SoapError::Xml(XmlError::TooLarge)));
}

// ---------------------------------------------------------------- client

#[tokio::test]
async fn usernametoken_works_with_the_camera_clock_ten_minutes_off_either_way() {
    for skew in [10 * 60 * 1000, -10 * 60 * 1000] {
        let sim = OnvifSim::start(SimCameraConfig {
            auth: token_auth(),
            skew_ms: skew,
            ..SimCameraConfig::default()
        })
        .await
        .expect("sim");
        let client = OnvifClient::new(
            &sim.device_url(),
            Some(creds("s3cret-cam")),
            Duration::from_secs(2),
        );
        // Without the offset the token is refused (outside the 5-minute window).
        let early = client
            .call(&sim.device_url(), &soap::Request::GetDeviceInformation)
            .await;
        assert_eq!(early.expect_err("stale token"), CameraError::Unauthorized);
        let offset = client.sync_clock().await.expect("clock");
        assert!(
            (offset - skew).abs() < 2_000,
            "offset {offset} for skew {skew}"
        );
        let info = client
            .call(&sim.device_url(), &soap::Request::GetDeviceInformation)
            .await
            .expect("authenticated");
        assert_eq!(soap::device_info(&info).expect("info").model, "IPCamera");
    }
}

#[tokio::test]
async fn a_wrong_password_is_reported_as_refused_credentials() {
    for auth in [
        token_auth(),
        SimAuth::Digest {
            username: "admin".into(),
            password: "s3cret-cam".into(),
        },
    ] {
        let sim = OnvifSim::start(SimCameraConfig {
            auth,
            ..SimCameraConfig::default()
        })
        .await
        .expect("sim");
        let client = OnvifClient::new(
            &sim.device_url(),
            Some(creds("wrong")),
            Duration::from_secs(2),
        );
        let err = client
            .call(&sim.device_url(), &soap::Request::GetDeviceInformation)
            .await
            .expect_err("refused");
        assert_eq!(err, CameraError::Unauthorized);
        assert!(sim.control().stats().auth_failures >= 1);
    }
}

#[tokio::test]
async fn http_digest_is_answered_when_the_camera_asks_and_covers_snapshots() {
    let sim = OnvifSim::start(SimCameraConfig {
        auth: SimAuth::Digest {
            username: "admin".into(),
            password: "s3cret-cam".into(),
        },
        ..SimCameraConfig::default()
    })
    .await
    .expect("sim");
    let client = OnvifClient::new(
        &sim.device_url(),
        Some(creds("s3cret-cam")),
        Duration::from_secs(2),
    );
    let reply = client
        .call(&sim.device_url(), &soap::Request::GetDeviceInformation)
        .await
        .expect("digest accepted");
    assert_eq!(soap::device_info(&reply).expect("info").serial, "a12b34");
    let snap_uri = format!(
        "http://{}/onvifsnapshot/media_service/snapshot?channel=1&subtype=1",
        sim.addr()
    );
    let jpeg = client
        .snapshot(&snap_uri, 1 << 20, Duration::from_secs(2))
        .await
        .expect("snapshot");
    assert!(jpeg.starts_with(&[0xff, 0xd8]));
    assert_eq!(sim.control().stats().snapshots, 1);
}

#[tokio::test]
async fn snapshots_that_hang_or_flood_are_cut_off() {
    let sim = OnvifSim::start(SimCameraConfig::default())
        .await
        .expect("sim");
    let client = OnvifClient::new(&sim.device_url(), None, Duration::from_secs(2));
    let uri = format!("http://{}/onvifsnapshot/media_service/snapshot", sim.addr());
    sim.control().snapshot(SimSnapshot::Hang);
    let started = Instant::now();
    let err = client
        .snapshot(&uri, 1 << 20, Duration::from_millis(300))
        .await
        .expect_err("hangs");
    assert_eq!(err, CameraError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    sim.control().snapshot(SimSnapshot::Huge(50 * 1024 * 1024));
    let err = client
        .snapshot(&uri, 2 << 20, Duration::from_secs(5))
        .await
        .expect_err("too big");
    assert_eq!(err, CameraError::TooLarge(2 << 20));
}

#[tokio::test]
async fn a_hostile_camera_cannot_make_the_client_expand_entities_or_read_forever() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bodies: Vec<Vec<u8>> = vec![
        br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><x>&a;</x>"#.to_vec(),
        format!("<a>{}</a>", "<b>".repeat(5_000)).into_bytes(),
        vec![b'<'; 8 * 1024 * 1024],
    ];
    for body in bodies {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 64 * 1024];
            let _ = stream.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        });
        let url = format!("http://{addr}/onvif/device_service");
        let client = OnvifClient::new(&url, None, Duration::from_secs(2));
        let err = client
            .call(&url, &soap::Request::GetDeviceInformation)
            .await
            .expect_err("refused");
        assert!(
            matches!(
                err,
                CameraError::Soap(SoapError::Xml(_)) | CameraError::TooLarge(_)
            ),
            "{err:?}"
        );
        server.abort();
    }
}

#[tokio::test]
async fn discovery_finds_the_simulator_and_skips_its_link_local_address() {
    let mut sim = OnvifSim::start(SimCameraConfig::default())
        .await
        .expect("sim");
    let udp = sim
        .discovery("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("udp");
    let found = discovery::probe(udp, Duration::from_millis(500))
        .await
        .expect("probe");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].xaddrs.len(), 2);
    assert!(discovery::is_link_local(&found[0].xaddrs[0]));
    assert_eq!(found[0].device_url(), Some(sim.device_url().as_str()));
}

// ---------------------------------------------------------------- driver

struct Running {
    events: mpsc::Receiver<Inbound>,
    cancel: CancellationToken,
    task: JoinHandle<(CameraDriver, DriverContext, Result<(), DriverError>)>,
}

fn fast_config(url: &str, creds: Option<Credentials>) -> CameraConfig {
    let mut config = CameraConfig::new(url, creds);
    config.timeout = Duration::from_millis(800);
    config.pull = Duration::from_secs(1);
    config.subscription = Duration::from_secs(60);
    config.motion_hold = Duration::from_millis(300);
    config.drift_alarm = Duration::from_secs(30);
    config.poll = Duration::from_millis(300);
    config
}

fn start(mut driver: CameraDriver) -> Running {
    let TestContext {
        mut ctx,
        events,
        commands: _commands,
        cancel,
        ..
    } = DriverContext::for_test("cam-1", 256);
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

/// The next event matching `want`, within `within`.
async fn next_matching(
    rx: &mut mpsc::Receiver<Inbound>,
    within: Duration,
    want: impl Fn(&DeviceEvent) -> bool,
) -> DeviceEvent {
    let deadline = Instant::now() + within;
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

async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_link(online: bool) -> impl Fn(&DeviceEvent) -> bool {
    move |e| matches!(e, DeviceEvent::DeviceLink { online: o, .. } if *o == online)
}

#[tokio::test]
async fn the_driver_reports_motion_tamper_and_inputs_and_unsubscribes_on_shutdown() {
    let sim = OnvifSim::start(SimCameraConfig {
        auth: token_auth(),
        skew_ms: -9 * 60 * 1000,
        ..SimCameraConfig::default()
    })
    .await
    .expect("sim");
    let ctl = sim.control().clone();
    // Tampered before the gateway looked: reported once, as state.
    ctl.tamper(true);
    let driver = CameraDriver::new(fast_config(&sim.device_url(), Some(creds("s3cret-cam"))));
    let view = driver.handle();
    let mut run = start(driver);
    let link = next_matching(&mut run.events, Duration::from_secs(5), is_link(true)).await;
    let DeviceEvent::DeviceLink { detail, .. } = link else {
        unreachable!()
    };
    assert!(detail.contains("IPCamera"), "{detail}");
    // A 9-minute skew is above the drift threshold: an alarm.
    next_matching(&mut run.events, Duration::from_secs(5), |e| {
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
    eventually(Duration::from_secs(5), "a subscription", || {
        ctl.stats().live == 1
    })
    .await;
    ctl.motion(true);
    next_matching(&mut run.events, Duration::from_secs(5), |e| {
        matches!(
            e,
            DeviceEvent::CameraSignal {
                signal: CameraSignalKind::Motion,
                active: true,
                ..
            }
        )
    })
    .await;
    ctl.motion(false);
    next_matching(&mut run.events, Duration::from_secs(5), |e| {
        matches!(
            e,
            DeviceEvent::CameraSignal {
                signal: CameraSignalKind::Motion,
                active: false,
                ..
            }
        )
    })
    .await;
    ctl.tamper(false);
    next_matching(&mut run.events, Duration::from_secs(5), |e| {
        matches!(
            e,
            DeviceEvent::CameraAlarm {
                alarm: CameraAlarmKind::Tamper,
                active: false,
                ..
            }
        )
    })
    .await;
    ctl.video_loss(true);
    next_matching(&mut run.events, Duration::from_secs(5), |e| {
        matches!(
            e,
            DeviceEvent::CameraAlarm {
                alarm: CameraAlarmKind::VideoLoss,
                active: true,
                ..
            }
        )
    })
    .await;
    ctl.input(true);
    let input = next_matching(&mut run.events, Duration::from_secs(5), |e| {
        matches!(
            e,
            DeviceEvent::CameraSignal {
                signal: CameraSignalKind::DigitalInput,
                ..
            }
        )
    })
    .await;
    assert!(
        matches!(input, DeviceEvent::CameraSignal { active: true, ref source, .. } if source == "DI_1")
    );
    let status = view.view().current();
    assert!(status.online && status.video_loss && !status.tamper);
    assert_eq!(status.streams.len(), 2);
    assert!(status.snapshot_uri.is_some());
    let jpeg = view
        .snapshot(1 << 20, Duration::from_secs(2))
        .await
        .expect("snapshot");
    assert!(jpeg.starts_with(&[0xff, 0xd8]));

    run.cancel.cancel();
    let (_, _, result) = run.task.await.expect("driver task");
    assert_eq!(result, Ok(()));
    assert_eq!(ctl.stats().live, 0, "the slot was freed");
    assert_eq!(ctl.stats().unsubscribed, 1);
}

#[tokio::test]
async fn the_tamper_seen_at_subscription_is_reported_once_and_initialized_motion_is_not() {
    let sim = OnvifSim::start(SimCameraConfig::default())
        .await
        .expect("sim");
    let ctl = sim.control().clone();
    ctl.tamper(true);
    ctl.motion(true);
    let mut run = start(CameraDriver::new(fast_config(&sim.device_url(), None)));
    let first = next_matching(&mut run.events, Duration::from_secs(5), |e| {
        matches!(
            e,
            DeviceEvent::CameraAlarm {
                alarm: CameraAlarmKind::Tamper,
                ..
            } | DeviceEvent::CameraSignal { .. }
        )
    })
    .await;
    assert!(
        matches!(first, DeviceEvent::CameraAlarm { active: true, .. }),
        "{first:?}"
    );
    // The re-created subscription re-announces the same state: no new alarm.
    ctl.kill_subscriptions();
    eventually(Duration::from_secs(5), "a second subscription", || {
        ctl.stats().created >= 2
    })
    .await;
    ctl.input(true);
    let next = next_matching(&mut run.events, Duration::from_secs(5), |e| {
        matches!(
            e,
            DeviceEvent::CameraAlarm { .. }
                | DeviceEvent::CameraSignal {
                    signal: CameraSignalKind::DigitalInput,
                    ..
                }
        )
    })
    .await;
    assert!(matches!(next, DeviceEvent::CameraSignal { .. }), "{next:?}");
    run.cancel.cancel();
    let _ = run.task.await;
}

#[tokio::test]
async fn subscriptions_are_renewed_and_recreated_when_the_camera_kills_them() {
    let sim = OnvifSim::start(SimCameraConfig::default())
        .await
        .expect("sim");
    let ctl = sim.control().clone();
    let mut config = fast_config(&sim.device_url(), None);
    config.subscription = Duration::from_secs(4);
    let mut run = start(CameraDriver::new(config));
    eventually(Duration::from_secs(8), "a renewal", || {
        ctl.stats().renewed >= 1
    })
    .await;
    assert_eq!(ctl.stats().created, 1, "renewed, not re-created");
    // The camera's next renew kills the subscription: a new one is made.
    ctl.renew_kills(true);
    eventually(Duration::from_secs(8), "a new subscription", || {
        ctl.stats().created >= 2
    })
    .await;
    // The camera drops all subscriptions: a new one is made and events flow.
    ctl.kill_subscriptions();
    eventually(Duration::from_secs(8), "another subscription", || {
        ctl.stats().created >= 3
    })
    .await;
    ctl.tamper(true);
    next_matching(&mut run.events, Duration::from_secs(5), |e| {
        matches!(
            e,
            DeviceEvent::CameraAlarm {
                alarm: CameraAlarmKind::Tamper,
                active: true,
                ..
            }
        )
    })
    .await;
    assert!(ctl.stats().live <= 1, "never more than one slot held");
    run.cancel.cancel();
    let _ = run.task.await;
}

#[tokio::test]
async fn a_camera_with_no_free_slot_stays_online_and_subscribes_when_one_frees() {
    let sim = OnvifSim::start(SimCameraConfig {
        slots: 1,
        ..SimCameraConfig::default()
    })
    .await
    .expect("sim");
    let ctl = sim.control().clone();
    // Somebody else (an NVR) holds the only slot.
    let other = OnvifClient::new(&sim.device_url(), None, Duration::from_secs(2));
    let event_url = format!("http://{}/onvif/event_service", sim.addr());
    let reply = other
        .call(
            &event_url,
            &soap::Request::CreatePullPointSubscription { seconds: 60 },
        )
        .await
        .expect("subscribed");
    let held = soap::subscription(&reply).expect("subscription");
    let driver = CameraDriver::new(fast_config(&sim.device_url(), None));
    let handle = driver.handle();
    let mut run = start(driver);
    next_matching(&mut run.events, Duration::from_secs(5), is_link(true)).await;
    eventually(Duration::from_secs(5), "a refused subscription", || {
        ctl.stats().refused >= 1
    })
    .await;
    assert_eq!(handle.view().current().events, EventsState::Failing);
    other
        .call(&held.address, &soap::Request::Unsubscribe)
        .await
        .expect("unsubscribed");
    eventually(Duration::from_secs(8), "the driver's subscription", || {
        handle.view().current().events == EventsState::Subscribed
    })
    .await;
    run.cancel.cancel();
    let _ = run.task.await;
}

#[tokio::test]
async fn a_camera_that_drops_off_is_reported_offline_and_online_again_when_it_returns() {
    let sim = OnvifSim::start(SimCameraConfig::default())
        .await
        .expect("sim");
    let ctl = sim.control().clone();
    let mut run = start(CameraDriver::new(fast_config(&sim.device_url(), None)));
    next_matching(&mut run.events, Duration::from_secs(5), is_link(true)).await;
    ctl.fail(SimFailure::Offline);
    next_matching(&mut run.events, Duration::from_secs(8), is_link(false)).await;
    let (mut driver, mut ctx, result) = run.task.await.expect("driver task");
    assert!(
        matches!(result, Err(DriverError::Transient(_))),
        "{result:?}"
    );
    // The supervisor runs it again; the camera is back.
    ctl.fail(SimFailure::None);
    let task = tokio::spawn(async move {
        let result = driver.run(&mut ctx).await;
        (driver, ctx, result)
    });
    next_matching(&mut run.events, Duration::from_secs(5), is_link(true)).await;
    run.cancel.cancel();
    let (_, _, result) = task.await.expect("driver task");
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn a_wrong_password_stops_the_run_with_a_device_error_and_reports_offline() {
    let sim = OnvifSim::start(SimCameraConfig {
        auth: token_auth(),
        ..SimCameraConfig::default()
    })
    .await
    .expect("sim");
    let driver = CameraDriver::new(fast_config(&sim.device_url(), Some(creds("nope"))));
    let handle = driver.handle();
    let mut run = start(driver);
    let event = next_matching(&mut run.events, Duration::from_secs(5), is_link(false)).await;
    assert!(
        matches!(event, DeviceEvent::DeviceLink { ref detail, .. } if detail.contains("credentials"))
    );
    let (_, _, result) = run.task.await.expect("driver task");
    assert!(matches!(result, Err(DriverError::Device(_))), "{result:?}");
    assert_eq!(
        handle.view().current().last_error.as_deref(),
        Some("credentials refused")
    );
}

#[tokio::test]
async fn a_camera_without_events_still_works_for_what_it_answers() {
    let sim = OnvifSim::start(SimCameraConfig {
        events: false,
        ..SimCameraConfig::default()
    })
    .await
    .expect("sim");
    let ctl = sim.control().clone();
    let driver = CameraDriver::new(fast_config(&sim.device_url(), None));
    let handle = driver.handle();
    let mut run = start(driver);
    next_matching(&mut run.events, Duration::from_secs(5), is_link(true)).await;
    let status = handle.view().current();
    assert_eq!(status.events, EventsState::Unsupported);
    assert!(status.snapshot_uri.is_some());
    // Health is polled: a camera that stops answering goes offline.
    ctl.fail(SimFailure::ServerError);
    ctl.fail(SimFailure::Offline);
    next_matching(&mut run.events, Duration::from_secs(8), is_link(false)).await;
    let _ = run.task.await;
}
