//! The gateway started in-process: rules, commands and audit through the
//! pipeline, with a real store.

use drivers::{Class, Command, CommandOutcome};
use gatehouse_tests::{DEADLINE, eventually};
use gateway::pipeline::Origin;
use gateway::web::Readiness;

async fn start(dir: &std::path::Path) -> gateway::app::Running {
    let text = gatehouse_tests::test_config(&dir.join("data"));
    let config = gateway::config::parse(&text, "test.toml").expect("valid test config");
    gateway::app::start(config).await.expect("starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn threshold_alarm_is_recorded_when_the_simulated_level_crosses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(dir.path()).await;
    let store = running.store.clone();
    let alarm = eventually("a threshold alarm in the store", DEADLINE, || {
        let store = store.clone();
        async move {
            let events = store.read_after(0, 10_000).await.ok()?;
            events.into_iter().find(|e| e.kind == "threshold_alarm")
        }
    })
    .await
    .expect("alarm raised");
    assert_eq!(alarm.class, Class::Alarm);
    assert_eq!(alarm.device_id, "tank-1");
    assert_eq!(alarm.body["active"], true);
    assert_eq!(alarm.body["limit"], "below");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_are_carried_out_and_audited_with_their_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(dir.path()).await;
    let origin = Origin {
        actor: "guard-wang".into(),
        via: "panel".into(),
        reason: Some("检查水位".into()),
        remote: Some("127.0.0.1".into()),
    };
    let report = running
        .pipeline
        .command("tank-1", Command::Poll, origin)
        .await;
    assert_eq!(report.outcome, CommandOutcome::Done);
    let seq = report.audit_seq.expect("audited");

    let unknown = running
        .pipeline
        .command(
            "no-such-device",
            Command::Poll,
            Origin {
                actor: "platform".into(),
                via: "platform".into(),
                reason: None,
                remote: None,
            },
        )
        .await;
    assert!(
        matches!(unknown.outcome, CommandOutcome::Failed(ref m) if m.contains("unknown device"))
    );
    assert!(
        unknown.audit_seq.is_some(),
        "refused commands are audited too"
    );

    let events = running.store.read_after(seq - 1, 1).await.expect("read");
    let audit = &events[0];
    assert_eq!(audit.kind, "command");
    assert_eq!(audit.class, Class::Audit);
    assert_eq!(audit.body["origin"]["actor"], "guard-wang");
    assert_eq!(audit.body["origin"]["reason"], "检查水位");
    assert_eq!(audit.body["command"]["command"], "poll");
    assert_eq!(audit.body["outcome"]["outcome"], "done");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn event_feed_publishes_recorded_events_with_their_sequence_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(dir.path()).await;
    let mut feed = running.feed.subscribe();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(DEADLINE, feed.recv())
            .await
            .expect("an event within the deadline")
            .expect("feed open");
        seen.push(event);
    }
    assert!(
        seen.iter().all(|e| e.seq > 0),
        "published after the store assigned seq"
    );
    assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq));
    let stored = running
        .store
        .read_after(seen[0].seq - 1, 1)
        .await
        .expect("read");
    assert_eq!(stored[0].id, seen[0].id, "the feed carries what is on disk");
    assert!(running.shutdown().await.is_clean());
}

/// A core task forced to fail: the store's writer ends under a running
/// gateway. Readiness turns 503 with the reason, the drivers stop, and the
/// run ends with the failure (the CLI turns it into exit status 70).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_core_task_fails_readiness_stops_the_drivers_and_ends_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(dir.path()).await;
    let readyz = format!("http://{}/readyz", running.panel_addr);
    assert_eq!(reqwest::get(&readyz).await.expect("readyz").status(), 200);
    let drivers = running.drivers.clone();
    let store = running.store.clone();
    let mut readiness = running.readiness();
    let run = tokio::spawn(running.run_until(std::future::pending()));

    store.close().await.expect("the writer ends");

    let failed = tokio::time::timeout(
        DEADLINE,
        readiness.wait_for(|r| matches!(r, Readiness::Failed(_))),
    )
    .await
    .expect("readiness turns to failed")
    .expect("readiness sender alive")
    .clone();
    assert!(
        matches!(failed, Readiness::Failed(ref reason) if reason.contains("store writer")),
        "{failed:?}"
    );
    let report = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("the run ends by itself")
        .expect("joined");
    assert!(!report.is_clean());
    let failure = report.failure.expect("the failure is reported");
    assert_eq!(failure.task, "store writer");
    for handle in drivers.iter() {
        assert_eq!(
            handle.health().state,
            drivers::contract::HealthState::Stopped,
            "{} stopped",
            handle.id
        );
    }
}

/// A start that fails half-way (the device listener's port is taken, after
/// the store, the panel, the drivers and the pipeline are up) stops what it
/// started before returning the error: the panel's port is free again.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_start_stops_what_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let panel_port = testkit::free_port();
    let text = gatehouse_tests::test_config(&dir.path().join("data")).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{panel_port}\""),
    ) + &format!(
        "\n[ingress]\nlisten = \"{taken_addr}\"\n\n[[devices]]\nid = \"cam-1\"\n\
             type = \"lpr-camera\"\nvendor = \"vzenith\"\nlane = \"out\"\n\n\
             [[lanes]]\nid = \"out\"\nname = \"出口\"\ndirection = \"exit\"\n\
             barrier = \"camera\"\nexit_policy = \"open_all\"\n"
    );
    let config = gateway::config::parse(&text, "test.toml").expect("valid test config");
    let error = gateway::app::start(config)
        .await
        .expect_err("the device listener cannot bind");
    assert!(
        matches!(error, gateway::app::StartError::BindIngress { .. }),
        "{error}"
    );
    std::net::TcpListener::bind(("127.0.0.1", panel_port))
        .expect("the panel listener was stopped with the failed start");
}
