//! The uplink against real brokers: live-first draining, outages of the
//! embedded rumqttd (link cut at a proxy), mosquitto and nats-server (the
//! process stopped and restarted), a SIGKILL mid-drain, and a peer that
//! never sends PUBACK.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use gatehouse_tests::{DEADLINE, GatewayProcess, eventually};
use gateway::app::Running;
use gateway::wire::Envelope;
use nix::sys::signal::Signal;
use rumqttc::{ConnAck, ConnectReturnCode, Packet, PubAck, QoS, SubAck, SubscribeReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::uplink_peers::{
    CutProxy, PeerProcess, Subscriber, check_delivery, embedded_broker, mqtt_config, parse,
    prefill, wait_delivered,
};
use crate::{card_number, card_read};

/// How long a whole drain or recovery may take in a test.
const LONG: Duration = Duration::from_secs(90);

async fn start(data_dir: &std::path::Path, port: u16) -> Running {
    gateway::app::start(parse(&mqtt_config(data_dir, port, "")))
        .await
        .expect("gateway starts")
}

async fn wait_connected(running: &Running, up: bool) {
    let status = running.uplink_status.clone();
    eventually(
        if up {
            "the uplink to connect"
        } else {
            "the uplink to notice the outage"
        },
        DEADLINE,
        || {
            let status = status.clone();
            async move { (status.connected() == up).then_some(()) }
        },
    )
    .await
    .expect("uplink state");
}

async fn wait_store_empty(running: &Running) {
    let store = running.store.clone();
    eventually("the store to drain", LONG, || {
        let store = store.clone();
        async move { (store.stats().depth == 0).then_some(()) }
    })
    .await
    .expect("drained");
}

/// Records access events from three devices, paced, counting them.
fn produce(running: &Running, total: u64, produced: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    let pipeline = running.pipeline.clone();
    tokio::spawn(async move {
        for n in 0..total {
            let device = format!("gate-{}", n % 3);
            pipeline
                .record(&device, card_read(&format!("{n:08}"), "w26"))
                .await
                .expect("recorded");
            produced.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    })
}

/// Every produced `card_read` (by its `n`) arrived; returns (unique ids,
/// raw duplicates). Also checks per-device order of first arrivals.
fn check_produced(received: &[Envelope], total: u64) -> (usize, usize) {
    let cards: Vec<Envelope> = received
        .iter()
        .filter(|e| e.kind == "card_read")
        .cloned()
        .collect();
    let delivery = check_delivery(&cards, &[]);
    let ns: HashSet<u64> = cards.iter().filter_map(card_number).collect();
    let missing: Vec<u64> = (0..total).filter(|n| !ns.contains(n)).collect();
    assert!(missing.is_empty(), "missing card reads: {missing:?}");
    assert_eq!(
        delivery.unique as u64, total,
        "exactly once by id after de-dup"
    );
    (delivery.unique, delivery.duplicates)
}

async fn all_produced(subscriber: &Subscriber, running: &Running, total: u64) {
    let waited = eventually("every produced event at the broker", LONG, || {
        let n: HashSet<u64> = subscriber
            .events()
            .iter()
            .filter(|e| e.kind == "card_read")
            .filter_map(card_number)
            .collect();
        async move { (n.len() as u64 == total).then_some(()) }
    })
    .await;
    if let Err(error) = waited {
        let n: HashSet<u64> = subscriber.events().iter().filter_map(card_number).collect();
        let missing: Vec<u64> = (0..total).filter(|i| !n.contains(i)).collect();
        panic!(
            "{error}: missing {missing:?}; gateway store depth {}",
            running.store.stats().depth
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_first_access_event_overtakes_a_telemetry_backlog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    const BACKLOG: u64 = 30_000;
    let backlog = prefill(&data_dir, "bulk-1", BACKLOG).await;
    let broker = embedded_broker();
    let subscriber = Subscriber::connect(broker, "reader-live-first").await;
    let running = start(&data_dir, broker.port()).await;

    eventually("the backlog drain to start", DEADLINE, || {
        let n = subscriber.events().len();
        async move { (n >= 100).then_some(()) }
    })
    .await
    .expect("draining");
    let receipt = running
        .pipeline
        .record("gate-1", card_read("123", "w26"))
        .await
        .expect("recorded");
    let at_arrival = eventually("the live access event at the broker", DEADLINE, || {
        let events = subscriber.events();
        let arrived = events
            .iter()
            .any(|e| e.seq == receipt.seq && e.kind == "card_read");
        let telemetry = events.iter().filter(|e| e.device_id == "bulk-1").count();
        async move { arrived.then_some(telemetry) }
    })
    .await
    .expect("live event delivered");
    assert!(
        (at_arrival as u64) < BACKLOG,
        "the live event waited for the whole backlog ({at_arrival} of {BACKLOG} sent first)"
    );
    eprintln!(
        "live_first: the access event arrived after {at_arrival} of {BACKLOG} backlog events"
    );

    let delivery = wait_delivered(&subscriber, &backlog, LONG)
        .await
        .expect("backlog");
    eprintln!(
        "live_first: backlog delivered, {} raw duplicates",
        delivery.duplicates
    );
    wait_store_empty(&running).await;
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn outage_of_the_embedded_broker_loses_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = embedded_broker();
    let proxy = CutProxy::start(broker).await;
    let subscriber = Subscriber::connect(broker, "reader-outage-embedded").await;
    let running = start(&dir.path().join("data"), proxy.addr.port()).await;
    wait_connected(&running, true).await;

    const TOTAL: u64 = 300;
    let produced = Arc::new(AtomicU64::new(0));
    let producer = produce(&running, TOTAL, produced.clone());
    let p = produced.clone();
    eventually("a third of the events", DEADLINE, || {
        let p = p.clone();
        async move { (p.load(Ordering::SeqCst) >= TOTAL / 3).then_some(()) }
    })
    .await
    .expect("producing");
    proxy.cut();
    wait_connected(&running, false).await;
    let p = produced.clone();
    eventually("events produced during the outage", DEADLINE, || {
        let p = p.clone();
        async move { (p.load(Ordering::SeqCst) >= 2 * TOTAL / 3).then_some(()) }
    })
    .await
    .expect("producing");
    assert!(
        running.store.stats().depth > 0,
        "events wait in the store during the outage"
    );
    proxy.restore();
    producer.await.expect("producer");

    all_produced(&subscriber, &running, TOTAL).await;
    let (unique, duplicates) = check_produced(&subscriber.events(), TOTAL);
    eprintln!("outage (embedded rumqttd): {unique} events, {duplicates} raw duplicates");
    wait_store_empty(&running).await;
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn outage_of_mosquitto_loses_nothing_and_keeps_order() {
    let Some(mut mosquitto) = PeerProcess::mosquitto().await.expect("mosquitto") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let subscriber = Subscriber::connect(mosquitto.addr(), "reader-outage-mosquitto").await;
    // The gateway reaches mosquitto through a proxy, so that after the
    // restart the test can let the platform's subscriber back in before the
    // gateway (a subscriber that is not there yet would miss what the broker
    // accepted: that is the platform's problem, not the gateway's).
    let proxy = CutProxy::start(mosquitto.addr()).await;
    let running = start(&dir.path().join("data"), proxy.addr.port()).await;
    wait_connected(&running, true).await;

    const TOTAL: u64 = 300;
    let produced = Arc::new(AtomicU64::new(0));
    let producer = produce(&running, TOTAL, produced.clone());
    let p = produced.clone();
    eventually("a third of the events", DEADLINE, || {
        let p = p.clone();
        async move { (p.load(Ordering::SeqCst) >= TOTAL / 3).then_some(()) }
    })
    .await
    .expect("producing");
    proxy.cut();
    mosquitto.stop().await.expect("mosquitto stops");
    wait_connected(&running, false).await;
    subscriber.wait_link(false).await;
    let p = produced.clone();
    eventually("events produced during the outage", DEADLINE, || {
        let p = p.clone();
        async move { (p.load(Ordering::SeqCst) >= 2 * TOTAL / 3).then_some(()) }
    })
    .await
    .expect("producing");
    mosquitto.restart().await.expect("mosquitto restarts");
    subscriber.wait_link(true).await;
    proxy.restore();
    producer.await.expect("producer");

    all_produced(&subscriber, &running, TOTAL).await;
    let (unique, duplicates) = check_produced(&subscriber.events(), TOTAL);
    eprintln!("outage (mosquitto): {unique} events, {duplicates} raw duplicates");
    wait_store_empty(&running).await;
    // The retained presence says online again.
    let status = subscriber.json("/status");
    assert!(status.iter().any(|s| s["state"] == "online"), "{status:?}");
    assert!(running.shutdown().await.is_clean());
}

/// Reads every event envelope from the JetStream stream.
async fn read_stream(client_port: u16) -> anyhow::Result<Vec<Envelope>> {
    let client = async_nats::connect(format!("127.0.0.1:{client_port}")).await?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("GATEHOUSE").await?;
    let state = stream.info().await?.state.clone();
    let mut events = Vec::new();
    if state.messages == 0 {
        return Ok(events);
    }
    for seq in state.first_sequence..=state.last_sequence {
        let Ok(message) = stream.get_raw_message(seq).await else {
            continue;
        };
        if message.subject.contains(".events.")
            && let Ok(event) = serde_json::from_slice::<Envelope>(&message.payload)
        {
            events.push(event);
        }
    }
    Ok(events)
}

#[tokio::test(flavor = "multi_thread")]
async fn outage_of_nats_jetstream_loses_nothing_and_keeps_order() {
    let Some((mut nats, client_port)) = PeerProcess::nats().await.expect("nats-server") else {
        return;
    };
    // The platform side: a JetStream stream bound to the gateway subjects
    // (NATS maps MQTT `a/b/c` to the subject `a.b.c`). The gateway talks
    // MQTT to the server's MQTT listener; the test reads the stream with a
    // NATS client, as the platform would.
    {
        let client = async_nats::connect(format!("127.0.0.1:{client_port}"))
            .await
            .expect("nats client");
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "GATEHOUSE".into(),
            subjects: vec!["gatehouse.v1.>".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("stream");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&dir.path().join("data"), nats.port).await;
    wait_connected(&running, true).await;

    const TOTAL: u64 = 300;
    let produced = Arc::new(AtomicU64::new(0));
    let producer = produce(&running, TOTAL, produced.clone());
    let p = produced.clone();
    eventually("a third of the events", DEADLINE, || {
        let p = p.clone();
        async move { (p.load(Ordering::SeqCst) >= TOTAL / 3).then_some(()) }
    })
    .await
    .expect("producing");
    nats.stop().await.expect("nats stops");
    wait_connected(&running, false).await;
    let p = produced.clone();
    eventually("events produced during the outage", DEADLINE, || {
        let p = p.clone();
        async move { (p.load(Ordering::SeqCst) >= 2 * TOTAL / 3).then_some(()) }
    })
    .await
    .expect("producing");
    nats.restart().await.expect("nats restarts");
    producer.await.expect("producer");
    wait_store_empty(&running).await;

    let events = eventually("every event in the JetStream stream", LONG, || async move {
        let events = read_stream(client_port).await.ok()?;
        let n: HashSet<u64> = events
            .iter()
            .filter(|e| e.kind == "card_read")
            .filter_map(card_number)
            .collect();
        (n.len() as u64 == TOTAL).then_some(events)
    })
    .await
    .expect("stream complete");
    let (unique, duplicates) = check_produced(&events, TOTAL);
    eprintln!("outage (nats-server JetStream): {unique} events, {duplicates} raw duplicates");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn outage_sigkill_mid_drain_then_restart_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    const BACKLOG: u64 = 30_000;
    let backlog = prefill(&data_dir, "bulk-1", BACKLOG).await;
    let broker = embedded_broker();
    let subscriber = Subscriber::connect(broker, "reader-sigkill").await;
    let config = dir.path().join("gateway.toml");
    // The process gets no command key (the test does not touch the environment).
    let text = mqtt_config(&data_dir, broker.port(), "").replace(
        "command_key = { env = \"GATEHOUSE_TEST_COMMAND_KEY\" }\n",
        "",
    );
    std::fs::write(&config, text).expect("config");

    let gateway = GatewayProcess::run(crate::GATEHOUSE, &config)
        .await
        .expect("starts");
    eventually("the drain to be under way", LONG, || {
        let n = subscriber.events().len();
        async move { (n >= 2_000).then_some(()) }
    })
    .await
    .expect("draining");
    gateway.signal(Signal::SIGKILL).expect("sigkill");
    let mut gateway = gateway;
    gateway.wait_exit(DEADLINE).await.expect("killed");
    let left = crate::read_all(&data_dir).await.len();
    assert!(left > 0, "killed mid-drain: events are left in the store");
    eprintln!("sigkill: {left} events left in the store after the kill");

    let mut gateway = GatewayProcess::run(crate::GATEHOUSE, &config)
        .await
        .expect("restarts");
    let delivery = wait_delivered(&subscriber, &backlog, LONG)
        .await
        .expect("all delivered");
    eprintln!(
        "sigkill: every event delivered, {} raw duplicates",
        delivery.duplicates
    );
    gateway.signal(Signal::SIGTERM).expect("sigterm");
    let status = gateway.wait_exit(DEADLINE).await.expect("exits");
    assert!(status.success(), "{}", gateway.log_text());
    let remaining: Vec<Envelope> = crate::read_all(&data_dir)
        .await
        .into_iter()
        .filter(|e| e.device_id == "bulk-1")
        .collect();
    assert!(
        remaining.is_empty(),
        "{} backlog events still stored",
        remaining.len()
    );
}

/// A scripted MQTT broker on a real socket: CONNACK and SUBACK as a broker
/// would, and PUBACK only when `ack` is set. Returns every PUBLISH it got
/// (topic, payload) when the peer disconnects or `stop` fires.
async fn scripted_broker_session(
    stream: &mut TcpStream,
    ack: bool,
    mut stop: impl FnMut(&rumqttc::Publish) -> bool,
) -> Vec<rumqttc::Publish> {
    let mut buffer = BytesMut::new();
    let mut received = Vec::new();
    loop {
        let packet = match Packet::read(&mut buffer, 1 << 20) {
            Ok(packet) => packet,
            Err(rumqttc::Error::InsufficientBytes(_)) => {
                let mut chunk = [0u8; 8192];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return received,
                    Ok(n) => {
                        buffer.extend_from_slice(&chunk[..n]);
                        continue;
                    }
                }
            }
            Err(_) => return received,
        };
        let mut out = BytesMut::new();
        match packet {
            Packet::Connect(_) => {
                let _ = ConnAck::new(ConnectReturnCode::Success, false).write(&mut out);
            }
            Packet::Subscribe(s) => {
                let codes = s
                    .filters
                    .iter()
                    .map(|_| SubscribeReasonCode::Success(QoS::AtLeastOnce))
                    .collect();
                let _ = SubAck::new(s.pkid, codes).write(&mut out);
            }
            Packet::PingReq => {
                let _ = Packet::PingResp.write(&mut out, 1 << 20);
            }
            Packet::Publish(p) => {
                if ack {
                    let _ = PubAck::new(p.pkid).write(&mut out);
                }
                let done = stop(&p);
                received.push(p);
                if done {
                    // Answer (when acking) before handing the session back.
                    let _ = stream.write_all(&out).await;
                    return received;
                }
            }
            Packet::Disconnect => return received,
            _ => {}
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return received;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn puback_never_sent_keeps_the_event_stored_and_it_is_re_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&dir.path().join("data"), port).await;

    // First connection: take everything, acknowledge nothing, and hang up
    // once the first event has arrived (a broker that dies before PUBACK).
    let (mut first, _) = tokio::time::timeout(DEADLINE, listener.accept())
        .await
        .expect("the gateway connects")
        .expect("accept");
    let is_event = |p: &rumqttc::Publish| p.topic.contains("/events/");
    let got = tokio::time::timeout(
        DEADLINE,
        scripted_broker_session(&mut first, false, is_event),
    )
    .await
    .expect("an event is published");
    let sent = got
        .iter()
        .filter(|p| is_event(p))
        .find_map(|p| serde_json::from_slice::<Envelope>(&p.payload).ok())
        .expect("an event was published");
    let stored = running
        .store
        .read_after(sent.seq - 1, 1)
        .await
        .expect("read");
    assert_eq!(
        stored.first().map(|e| e.id),
        Some(sent.id),
        "no PUBACK: still stored"
    );
    drop(first);

    // Second connection: a proper broker; the same event comes again.
    let (mut second, _) = tokio::time::timeout(DEADLINE, listener.accept())
        .await
        .expect("the gateway reconnects")
        .expect("accept");
    let again = tokio::time::timeout(
        DEADLINE,
        scripted_broker_session(&mut second, true, |p| {
            serde_json::from_slice::<Envelope>(&p.payload).is_ok_and(|e| e.id == sent.id)
        }),
    )
    .await
    .expect("re-sent after the reconnect");
    assert!(
        again
            .iter()
            .any(|p| serde_json::from_slice::<Envelope>(&p.payload).is_ok_and(|e| e.id == sent.id)),
        "the unacknowledged event was re-sent"
    );
    // Keep serving so the PUBACK is read, then the event leaves the store.
    let serve =
        tokio::spawn(async move { scripted_broker_session(&mut second, true, |_| false).await });
    let store = running.store.clone();
    eventually(
        "the acknowledged event to leave the store",
        DEADLINE,
        || {
            let store = store.clone();
            let seq = sent.seq;
            async move {
                let left = store.read_after(seq - 1, 1).await.ok()?;
                (left.first().is_none_or(|e| e.seq != seq)).then_some(())
            }
        },
    )
    .await
    .expect("acked after PUBACK");
    assert!(running.shutdown().await.is_clean());
    serve.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn status_is_retained_online_and_metrics_show_the_uplink() {
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&dir.path().join("data"), broker.port()).await;
    wait_connected(&running, true).await;
    // A subscriber that arrives later still gets the retained status.
    let subscriber = Subscriber::connect(broker, "reader-status").await;
    let status = eventually("the retained status", DEADLINE, || {
        let s = subscriber.json("/status");
        async move { s.into_iter().next() }
    })
    .await
    .expect("retained status");
    assert_eq!(status["state"], "online");
    assert!(status["version"].is_string());
    let heartbeat = eventually("a heartbeat", DEADLINE, || {
        let h = subscriber.json("/heartbeat");
        async move { h.into_iter().next() }
    })
    .await
    .expect("heartbeat");
    assert!(heartbeat["devices"].is_array(), "{heartbeat}");
    assert!(heartbeat["uplink"]["state"].is_string(), "{heartbeat}");

    let metrics = reqwest::get(format!("http://{}/metrics", running.panel_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("gatehouse_uplink_up 1"), "{metrics}");
    assert!(
        metrics.contains(r#"gatehouse_uplink_state{state="online"} 1"#)
            || metrics.contains(r#"gatehouse_uplink_state{state="backlogged"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("gatehouse_uplink_sent_total"), "{metrics}");
    assert!(
        metrics.contains("gatehouse_oldest_unsent_age_seconds"),
        "{metrics}"
    );

    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    // A clean shutdown replaces the retained status with `offline`.
    let offline = eventually("the offline status", DEADLINE, || {
        let s = subscriber.json("/status");
        async move { s.into_iter().find(|s| s["state"] == "offline") }
    })
    .await
    .expect("offline published");
    assert_eq!(offline["reason"], "shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn clean_shutdown_leaves_the_retained_status_shutdown_on_mosquitto() {
    let Some(mosquitto) = PeerProcess::mosquitto().await.expect("mosquitto") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&dir.path().join("data"), mosquitto.addr().port()).await;
    wait_connected(&running, true).await;
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    // The gateway said DISCONNECT before closing the connection, so the
    // broker did not publish its last will over the retained `shutdown`:
    // a platform client that connects afterwards reads `shutdown`.
    let later = Subscriber::connect(mosquitto.addr(), "reader-after-shutdown").await;
    let status = eventually("the retained status", DEADLINE, || {
        let s = later.json("/status");
        async move { s.into_iter().next() }
    })
    .await
    .expect("retained status");
    assert_eq!(status["state"], "offline", "{status}");
    assert_eq!(status["reason"], "shutdown", "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_broker_fails_over_to_the_next_node_and_loses_nothing() {
    let Some(mut first) = PeerProcess::mosquitto().await.expect("mosquitto") else {
        return;
    };
    let Some(second) = PeerProcess::mosquitto().await.expect("mosquitto") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // The platform reads both nodes (persistent sessions: what a node
    // accepted reaches its reader, after a restart too).
    let on_first = Subscriber::connect(first.addr(), "reader-failover-1").await;
    let on_second = Subscriber::connect(second.addr(), "reader-failover-2").await;
    let failover = format!("failover = [\"127.0.0.1:{}\"]", second.addr().port());
    let running = gateway::app::start(parse(&mqtt_config(
        &dir.path().join("data"),
        first.addr().port(),
        &failover,
    )))
    .await
    .expect("gateway starts");
    wait_connected(&running, true).await;

    const TOTAL: u64 = 300;
    let produced = Arc::new(AtomicU64::new(0));
    let producer = produce(&running, TOTAL, produced.clone());
    let p = produced.clone();
    eventually("a third of the events", DEADLINE, || {
        let p = p.clone();
        async move { (p.load(Ordering::SeqCst) >= TOTAL / 3).then_some(()) }
    })
    .await
    .expect("producing");
    first.stop().await.expect("the first node stops");
    // The gateway moves to the second node while events keep coming.
    eventually("events at the second node", DEADLINE, || {
        let n = on_second
            .events()
            .iter()
            .filter(|e| e.kind == "card_read")
            .count();
        async move { (n > 0).then_some(()) }
    })
    .await
    .expect("failed over");
    producer.await.expect("producer");
    wait_store_empty(&running).await;

    // Every event is at one node or the other: the first node's reader
    // collects what that node accepted once it is back.
    first.restart().await.expect("the first node restarts");
    on_first.wait_link(true).await;
    let union = || {
        let mut all = on_first.events();
        all.extend(on_second.events());
        all
    };
    eventually("every event at one node or the other", LONG, || {
        let n: HashSet<u64> = union()
            .iter()
            .filter(|e| e.kind == "card_read")
            .filter_map(card_number)
            .collect();
        async move { (n.len() as u64 == TOTAL).then_some(()) }
    })
    .await
    .expect("nothing lost");
    let (unique, duplicates) = check_produced(&union(), TOTAL);
    eprintln!("failover: {unique} events, {duplicates} raw duplicates");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn house_numbers_stay_in_the_store_and_never_reach_mosquitto() {
    let Some(mosquitto) = PeerProcess::mosquitto().await.expect("mosquitto") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let subscriber = Subscriber::connect(mosquitto.addr(), "reader-policy").await;
    let running = start(&dir.path().join("data"), mosquitto.addr().port()).await;
    wait_connected(&running, true).await;
    // A call for a flat, and a guard registering a visitor for one.
    running
        .pipeline
        .record(
            "station-b3",
            drivers::DeviceEvent::CallStarted {
                call: "c-7".into(),
                unit: Some("3-2-1201".into()),
                snapshot: None,
            },
        )
        .await
        .expect("recorded");
    let mut audit = gateway::events::PanelAudit::new(
        gateway::events::PanelAction::VisitorRegistered,
        "guard-li",
        Some("192.0.2.7".into()),
    )
    .on("苏A8HK52");
    audit.host_unit = Some("5-1-302".into());
    running
        .pipeline
        .record("gateway", gateway::events::Event::Gateway(audit.into()))
        .await
        .expect("recorded");
    let stored = running.store.read_after(0, 1_000).await.expect("queue");
    let stored_text = serde_json::to_string(&stored).expect("json");
    assert!(
        stored_text.contains("3-2-1201") && stored_text.contains("5-1-302"),
        "the store keeps the events whole"
    );
    let sent = eventually("both events at mosquitto", DEADLINE, || {
        let sent = subscriber.events();
        let both = ["call_started", "visitor_registered"]
            .iter()
            .all(|k| sent.iter().any(|e| e.kind == *k));
        async move { both.then_some(sent) }
    })
    .await
    .expect("delivered");
    let call = sent
        .iter()
        .find(|e| e.kind == "call_started")
        .expect("the call reached mosquitto");
    assert_eq!(call.body["call"], "c-7");
    assert!(call.body.get("unit").is_none(), "{:?}", call.body);
    let visitor = sent
        .iter()
        .find(|e| e.kind == "visitor_registered")
        .expect("the audit reached mosquitto");
    assert_eq!(
        visitor.body["target"], "苏A8HK52",
        "plates go whole by default"
    );
    let sent_text = serde_json::to_string(&sent).expect("json");
    assert!(
        !sent_text.contains("3-2-1201") && !sent_text.contains("5-1-302"),
        "{sent_text}"
    );
    assert!(running.shutdown().await.is_clean());
}
