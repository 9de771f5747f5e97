//! A Hikvision door station (the simulator: digest auth, alert stream,
//! call status, remote unlock) configured in `[[intercom]]` of a running
//! gateway with the embedded broker: its calls reach the platform as
//! stored, forwarded events; the platform's signed `pulse_door` for the
//! station opens the station's door through the pipeline and is audited; a
//! station that goes away is reported offline and picked up again when it
//! is back. The same for a Dahua VTO on its TCP 5000 protocol and for a
//! station that publishes JSON over MQTT.

use std::path::Path;
use std::time::Duration;

use drivers::Class;
use drivers::contract::now_ms;
use drivers::sim::dahua_vto::VtoSim;
use drivers::sim::hik_station::HikStationSim;
use gatehouse_tests::{DEADLINE, eventually};
use gateway::uplink::sync::ListRegistry;
use gateway::wire::Envelope;
use serde_json::json;

use crate::uplink_peers::{Subscriber, embedded_broker, mqtt_config, parse, signed};

async fn uplinked(
    subscriber: &Subscriber,
    kind: &str,
    pred: impl Fn(&Envelope) -> bool,
) -> Envelope {
    eventually(&format!("an uplinked {kind} event"), DEADLINE, || {
        let found = subscriber
            .events()
            .into_iter()
            .find(|e| e.kind == kind && pred(e));
        async move { found }
    })
    .await
    .expect("uplinked event")
}

/// The flat a call was for, as the gateway's journal keeps it.
async fn called_flat(
    running: &gateway::app::Running,
    call: &serde_json::Value,
) -> serde_json::Value {
    let journal = gateway::store::Journal::new(&running.store).expect("journal");
    let calls = journal
        .query(gateway::store::JournalQuery {
            kind: Some("call_started".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("journal query");
    calls
        .into_iter()
        .find(|e| e.body["call"] == *call)
        .map(|e| e.body["unit"].clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hikvision_station_rings_through_the_gateway_and_the_platform_unlocks_it() {
    let station = HikStationSim::start("admin", "station-pw")
        .await
        .expect("sim");
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("station.pw");
    std::fs::write(&secret, "station-pw\n").expect("secret file");
    let subscriber = Subscriber::connect(broker, "platform-intercom").await;
    let stations = format!(
        r#"
[[intercom]]
id = "b3-door"
name = "3号楼门口机"
type = "hik-intercom"
url = "{}"
user = "admin"
password = {{ file = "{}" }}
call_poll = "100ms"
timeout = "2s"
"#,
        station.base(),
        secret.display()
    );
    let config = parse(&mqtt_config(
        &dir.path().join("data"),
        broker.port(),
        &stations,
    ));
    let running = gateway::app::start_with(config, ListRegistry::default())
        .await
        .expect("starts");
    eventually("the station's alert stream", DEADLINE, || {
        let n = station.streams();
        async move { (n > 0).then_some(()) }
    })
    .await
    .expect("the driver opened the stream");

    // A visitor calls 3-1-502 and gives up: a call and a missed call.
    station.ring("3-1-502");
    let started = uplinked(&subscriber, "call_started", |_| true).await;
    assert_eq!(started.device_id, "b3-door");
    assert_eq!(started.class, Class::Access);
    // The called flat stays on the box ([privacy] uplink_houses).
    assert!(started.body.get("unit").is_none(), "{:?}", started.body);
    assert_eq!(
        called_flat(&running, &started.body["call"]).await,
        "3-1-502"
    );
    station.hang_up();
    let missed = uplinked(&subscriber, "call_missed", |_| true).await;
    assert_eq!(missed.body["call"], started.body["call"]);

    // The platform opens the station's door for a visitor.
    let now = now_ms();
    let command = json!({"id": "open-b3", "issued_ms": now - 1000, "expires_ms": now + 60_000,
        "action": "pulse_door", "device_id": "b3-door",
        "issuer": "resident-app", "reason": "访客 3-1-502"});
    subscriber
        .publish("commands/b3-door", signed(command))
        .await;
    let mut unlocks = station.unlocks();
    tokio::time::timeout(DEADLINE, unlocks.wait_for(|doors| doors == &[1]))
        .await
        .expect("the station's door opened in time")
        .expect("station running");
    let audit = uplinked(&subscriber, "command", |e| {
        e.device_id == "b3-door" && e.body["origin"]["via"] == "platform"
    })
    .await;
    assert_eq!(audit.class, Class::Audit);
    assert_eq!(audit.body["command"]["command"], "pulse_door");
    assert_eq!(audit.body["outcome"]["outcome"], "done", "{:?}", audit.body);

    // The station goes away: offline; a new one on the same address: back.
    let addr = station.addr();
    station.stop();
    let offline = uplinked(&subscriber, "device_link", |e| {
        e.device_id == "b3-door" && e.body["online"] == false
    })
    .await;
    assert_eq!(offline.class, Class::Alarm);
    let again = eventually("the station back on its address", DEADLINE, || async move {
        HikStationSim::start_on(addr, "admin", "station-pw", Duration::from_millis(500))
            .await
            .ok()
    })
    .await
    .expect("sim restarts on its address");
    uplinked(&subscriber, "device_link", |e| {
        e.device_id == "b3-door" && e.body["online"] == true && e.seq > offline.seq
    })
    .await;
    again.ring("3-1-503");
    uplinked(&subscriber, "call_started", |e| e.seq > offline.seq).await;
    running.shutdown().await;
}

/// A Dahua VTO on its TCP 5000 protocol (the simulator: realm/random
/// login, events, openDoor) in `[[intercom]]`: a missed call reaches the
/// platform and the platform opens its door.
#[tokio::test(flavor = "multi_thread")]
async fn a_dahua_vto_rings_through_the_gateway_and_the_platform_unlocks_it() {
    let vto = VtoSim::start("admin", "vto-pw").await.expect("sim");
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("vto.pw");
    std::fs::write(&secret, "vto-pw").expect("secret file");
    let subscriber = Subscriber::connect(broker, "platform-vto").await;
    let stations = dahua_station(&vto, &secret);
    let config = parse(&mqtt_config(
        &dir.path().join("data"),
        broker.port(),
        &stations,
    ));
    let running = gateway::app::start_with(config, ListRegistry::default())
        .await
        .expect("starts");
    uplinked(&subscriber, "device_link", |e| {
        e.device_id == "b5-door" && e.body["online"] == true
    })
    .await;
    let call = vto.ring("5-2-301");
    let started = uplinked(&subscriber, "call_started", |e| e.device_id == "b5-door").await;
    // The called flat stays on the box ([privacy] uplink_houses).
    assert!(started.body.get("unit").is_none(), "{:?}", started.body);
    assert_eq!(
        called_flat(&running, &started.body["call"]).await,
        "5-2-301"
    );
    vto.no_answer(&call);
    uplinked(&subscriber, "call_missed", |e| e.device_id == "b5-door").await;

    let now = now_ms();
    let command = json!({"id": "open-b5", "issued_ms": now - 1000, "expires_ms": now + 60_000,
        "action": "pulse_door", "device_id": "b5-door", "issuer": "resident-app"});
    subscriber
        .publish("commands/b5-door", signed(command))
        .await;
    let mut unlocks = vto.unlocks();
    tokio::time::timeout(DEADLINE, unlocks.wait_for(|opened| !opened.is_empty()))
        .await
        .expect("the VTO's door opened in time")
        .expect("sim running");
    let audit = uplinked(&subscriber, "command", |e| e.device_id == "b5-door").await;
    assert_eq!(audit.body["outcome"]["outcome"], "done", "{:?}", audit.body);
    running.shutdown().await;
}

/// A station that publishes JSON over MQTT (here on the platform's broker):
/// its call is recorded and forwarded, and the platform's unlock is
/// published to the station's command topic.
#[tokio::test(flavor = "multi_thread")]
async fn an_mqtt_station_rings_through_the_gateway_and_the_platform_unlocks_it() {
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let subscriber = Subscriber::connect(broker, "platform-mqtt-station").await;
    subscriber
        .client
        .subscribe("b7/door/cmd", rumqttc::QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let stations = format!(
        r#"
[[intercom]]
id = "b7-door"
type = "mqtt-intercom"
broker = "{broker}"
topics = {{ call = "b7/door/call", missed = "b7/door/missed" }}
command_topic = "b7/door/cmd"
"#
    );
    let config = parse(&mqtt_config(
        &dir.path().join("data"),
        broker.port(),
        &stations,
    ));
    let running = gateway::app::start_with(config, ListRegistry::default())
        .await
        .expect("starts");
    // The station's session subscribes after connecting: publish (at the
    // poll's pace) until the call is recorded.
    let started = eventually("the MQTT station's call forwarded", DEADLINE, || {
        let subscriber = &subscriber;
        async move {
            if let Some(e) = subscriber
                .events()
                .into_iter()
                .find(|e| e.kind == "call_started" && e.device_id == "b7-door")
            {
                return Some(e);
            }
            let _ = subscriber
                .client
                .publish(
                    "b7/door/call",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    br#"{"call":"c-1","unit":"7-1-101"}"#.to_vec(),
                )
                .await;
            None
        }
    })
    .await
    .expect("call forwarded");
    // The called flat stays on the box ([privacy] uplink_houses).
    assert!(started.body.get("unit").is_none(), "{:?}", started.body);
    assert_eq!(
        called_flat(&running, &started.body["call"]).await,
        "7-1-101"
    );

    let now = now_ms();
    let command = json!({"id": "open-b7", "issued_ms": now - 1000, "expires_ms": now + 60_000,
        "action": "pulse_door", "device_id": "b7-door", "issuer": "resident-app"});
    subscriber
        .publish("commands/b7-door", signed(command))
        .await;
    let payload = eventually("the unlock on the station's topic", DEADLINE, || {
        let found = subscriber
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.topic == "b7/door/cmd");
        async move { found }
    })
    .await
    .expect("unlock published");
    assert_eq!(payload.payload, br#"{"cmd":"unlock","door":1}"#);
    running.shutdown().await;
}

/// The `[[intercom]]` table of door station `b5-door`: the simulated Dahua
/// VTO `vto`, its password in the file `secret`.
pub(crate) fn dahua_station(vto: &VtoSim, secret: &Path) -> String {
    format!(
        r#"
[[intercom]]
id = "b5-door"
type = "dahua-vto"
address = "{}"
http_url = "http://{}"
user = "admin"
password = {{ file = "{}" }}
reply_timeout = "2s"
"#,
        vto.tcp_addr(),
        vto.http_addr(),
        secret.display()
    )
}
