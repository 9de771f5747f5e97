//! `gatehouse demo`: becomes ready, events flow to the store and up to the
//! embedded broker, SIGTERM drains.

use std::time::Duration;

use gatehouse_tests::{DEADLINE, GatewayProcess, eventually, metric_sum};
use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread")]
async fn demo_becomes_ready_and_its_events_reach_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut gateway = GatewayProcess::demo(crate::GATEHOUSE, &data_dir)
        .await
        .expect("demo starts");
    gateway.wait_ready().await.expect("demo ready");

    // The demo's pump room and elevator are polled over Modbus/TCP: a full
    // report each at start, then reports by exception.
    let appended = eventually("point reports appended by the demo", DEADLINE, || {
        let gateway = &gateway;
        async move {
            let text = gateway.metrics().await.ok()?;
            let n = metric_sum(
                &text,
                "gatehouse_events_appended_total",
                r#"kind="point_report""#,
            );
            (n >= 4.0).then_some(text)
        }
    })
    .await
    .expect("events flow");
    assert!(appended.contains("gatehouse_driver_up{"), "{appended}");
    // Building 3's door station (a simulated Hikvision intercom) is a
    // device whose driver holds its alert stream.
    eventually("the demo's door station online", DEADLINE, || {
        let gateway = &gateway;
        async move {
            let text = gateway.metrics().await.ok()?;
            text.contains(
                r#"gatehouse_driver_up{device="b3-door-station",kind="hik-intercom",state="ok"} 1"#,
            )
            .then_some(())
        }
    })
    .await
    .expect("the door station's driver is up");
    eventually("a simulated car at the south gate", DEADLINE, || {
        let gateway = &gateway;
        async move {
            let text = gateway.metrics().await.ok()?;
            let n = metric_sum(
                &text,
                "gatehouse_events_appended_total",
                r#"kind="plate_read""#,
            );
            (n >= 1.0).then_some(())
        }
    })
    .await
    .expect("demo traffic reaches the gateway");
    eventually(
        "the south gate camera's snapshot of a read",
        DEADLINE,
        || {
            let gateway = &gateway;
            async move {
                let text = gateway.metrics().await.ok()?;
                let n = metric_sum(
                    &text,
                    "gatehouse_events_appended_total",
                    r#"kind="camera_snapshot""#,
                );
                (n >= 1.0).then_some(())
            }
        },
    )
    .await
    .expect("the demo's cameras take snapshots of access events");
    assert!(appended.contains("gatehouse_build_info"), "{appended}");

    // The demo uplinks to its embedded broker: events leave the store once
    // the broker confirmed them, so what was recorded is what is still
    // stored plus what was sent.
    let sent = metric_sum(&appended, "gatehouse_uplink_sent_total", "");
    let uplink = eventually("the demo uplink to deliver", DEADLINE, || {
        let gateway = &gateway;
        async move {
            let text = gateway.metrics().await.ok()?;
            (metric_sum(&text, "gatehouse_uplink_sent_total", "") >= 1.0
                && text.contains("gatehouse_uplink_up 1"))
            .then_some(text)
        }
    })
    .await
    .expect("uplink online");
    assert!(metric_sum(&uplink, "gatehouse_uplink_sent_total", "") >= sent);

    // A clean first screen: when nothing is wrong, a newcomer sees no ERROR
    // or WARN line from start to running traffic (start-up's 503s, the
    // embedded broker's chatter and the readiness probe included).
    let log = gateway.log_text();
    let alarming: Vec<&str> = log
        .lines()
        .filter(|line| matches!(level_of(line).as_deref(), Some("WARN" | "ERROR")))
        .collect();
    assert!(
        alarming.is_empty(),
        "the demo logged:\n{}",
        alarming.join("\n")
    );

    gateway.signal(Signal::SIGTERM).expect("sigterm");
    let status = gateway.wait_exit(DEADLINE).await.expect("exits");
    assert!(
        status.success(),
        "demo exit {status}; log:\n{}",
        gateway.log_text()
    );

    // The queue was drained to the broker; the local journal keeps every
    // access, alarm and audit event.
    let (store, _) = gateway::store::Store::open(gateway::store::StoreConfig::new(
        gatehouse_tests::database(&data_dir),
    ))
    .expect("store opens");
    let journal = gateway::store::Journal::new(&store).expect("journal");
    let mut events = journal
        .query(gateway::store::JournalQuery {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .expect("journal");
    events.reverse();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"gateway_started"), "{kinds:?}");
    assert!(kinds.contains(&"plate_read"), "{kinds:?}");
    assert!(kinds.contains(&"camera_snapshot"), "{kinds:?}");
    assert!(kinds.contains(&"gateway_stopping"), "{kinds:?}");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers increase"
    );
    assert!(events.iter().all(|e| e.estate_id == "demo-estate"));
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_exits_zero_within_the_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, gatehouse_tests::test_config(&data_dir)).expect("config");
    let mut gateway = GatewayProcess::run(crate::GATEHOUSE, &config)
        .await
        .expect("starts");
    gateway.wait_ready().await.expect("ready");
    gateway.signal(Signal::SIGTERM).expect("sigterm");
    // The test config's drain budget is 5 s; allow process exit overhead.
    let status = gateway
        .wait_exit(Duration::from_secs(5) + Duration::from_secs(2))
        .await
        .expect("exits within the drain budget");
    assert_eq!(status.code(), Some(0), "log:\n{}", gateway.log_text());
    assert!(
        gateway.log_text().contains("Stopped."),
        "{}",
        gateway.log_text()
    );
}

/// The level of a log line (`2026-12-01T04:50:00.1Z  INFO target: …`),
/// colours removed.
fn level_of(line: &str) -> Option<String> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An SGR sequence: ESC [ … m.
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain.split_whitespace().nth(1).map(str::to_owned)
}
