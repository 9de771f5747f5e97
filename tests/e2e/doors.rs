//! Unit doors end to end, through a gateway started in-process: a Wiegand
//! reader and a door on simulated GPIO lines (`gpio = "sim"`), and a WG
//! controller simulator on loopback UDP. Decisions are recorded on the
//! `card_read` events; grants energise the relay (observed on the fake
//! line) or open the controller's door; held-open and forced-open alarms
//! are recorded.

use drivers::sim::door::WgControllerSim;
use gatehouse_tests::{DEADLINE, eventually};
use gateway::app::Running;
use gateway::rules::door::Card;
use gateway::wire::Envelope;

const RESIDENT_UID: u32 = 3_054_391_123;
const UNKNOWN_UID: u32 = 77_001;
const WG_CARD: u32 = 10_203_040;

fn config(data_dir: &std::path::Path, controller: std::net::SocketAddr) -> String {
    format!(
        r#"
[gateway]
estate_id = "test-estate"
gateway_id = "gw-test"
data_dir = "{data}"

[panel]
listen = "127.0.0.1:0"

[supervisor]
drain_budget = "5s"

[[devices]]
id = "b3-reader"
type = "wiegand-reader"
gpio = "sim"
d0 = 17
d1 = 27

[[devices]]
id = "b3-door"
type = "door"
gpio = "sim"
relay = 22
contact = 23
pulse = "300ms"
held_open_after = "1s"
grant_window = "1s"

[[devices]]
id = "wg"
type = "wg-controller"
controller = "{controller}"
serial = 423187757
bind = "127.0.0.1:0"
poll_interval = "100ms"

[[door_groups]]
id = "b3"
name = "3号楼"

[[doors]]
id = "b3-u1"
name = "3号楼1单元门"
readers = ["b3-reader"]
relay = "b3-door"
group = "b3"

[[doors]]
id = "garage"
name = "地库门"
readers = ["wg"]
relay = "wg"
controller_door = 1
"#,
        data = data_dir.display()
    )
}

fn card(number: u32, holder: &str) -> Card {
    Card {
        number: number.to_string(),
        holder: holder.into(),
        house: "3-1-1201".into(),
        valid_from: None,
        valid_to: None,
        groups: vec!["b3".into()],
    }
}

/// A WG controller simulator on loopback and a gateway using it, with two
/// residents' cards enrolled.
async fn start(dir: &std::path::Path) -> (WgControllerSim, Running) {
    let controller = WgControllerSim::start("127.0.0.1:0".parse().expect("addr"), 423_187_757)
        .await
        .expect("wg sim");
    let text = config(&dir.join("data"), controller.addr());
    let config = gateway::config::parse(&text, "doors.toml").expect("valid door config");
    let running = gateway::app::start(config).await.expect("starts");
    let credentials = running.doors.credentials.clone();
    tokio::task::spawn_blocking(move || {
        credentials.upsert_card(&card(RESIDENT_UID, "王芳"))?;
        credentials.upsert_card(&card(WG_CARD, "李雷"))
    })
    .await
    .expect("join")
    .expect("cards stored");
    (controller, running)
}

/// Waits for the first stored event after `after` that `matches`.
async fn stored(
    running: &Running,
    what: &str,
    after: u64,
    matches: impl Fn(&Envelope) -> bool,
) -> Envelope {
    let matches = &matches;
    eventually(what, DEADLINE, || async move {
        let events = running.store.read_after(after, 100_000).await.ok()?;
        events.into_iter().find(|e| matches(e))
    })
    .await
    .expect(what)
}

fn is(kind: &'static str, device: &'static str) -> impl Fn(&Envelope) -> bool {
    move |e| e.kind == kind && e.device_id == device
}

#[tokio::test(flavor = "multi_thread")]
async fn door_e2e_wiegand_grant_pulses_the_relay_and_unknown_card_is_denied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_controller, running) = start(dir.path()).await;
    let door = running.doors.sim.door("b3-door").expect("simulated door");
    assert!(!door.relay.level(), "locked at start");

    assert!(running.doors.sim.present_w34("b3-reader", RESIDENT_UID));
    tokio::time::timeout(DEADLINE, door.relay.wait_for(true))
        .await
        .expect("the relay is energised for a resident's card");
    let granted = stored(
        &running,
        "a granted card_read",
        0,
        is("card_read", "b3-reader"),
    )
    .await;
    assert_eq!(granted.body["decision"], "grant", "{:?}", granted.body);
    assert_eq!(granted.body["door"], "b3-u1");
    assert_eq!(granted.body["card"], RESIDENT_UID.to_string());
    assert_eq!(granted.body["holder"], "王芳");
    assert_eq!(granted.body["reason"]["code"], "card");
    let pulse = stored(&running, "the relay pulse", 0, is("relay_pulse", "b3-door")).await;
    assert_eq!(pulse.body["door"], "b3-u1", "door events carry the door id");
    tokio::time::timeout(DEADLINE, door.relay.wait_for(false))
        .await
        .expect("the relay de-energises after the pulse");

    assert!(running.doors.sim.present_w34("b3-reader", UNKNOWN_UID));
    let denied = stored(
        &running,
        "a denied card_read",
        granted.seq,
        is("card_read", "b3-reader"),
    )
    .await;
    assert_eq!(denied.body["decision"], "deny");
    assert_eq!(denied.body["reason"]["code"], "unknown_card");
    assert_eq!(denied.body["card"], UNKNOWN_UID.to_string());
    assert!(!door.relay.level());
    // A pulse the deny might have sent would reach the door driver (one
    // command inbox, in order) before the next grant's: after that
    // grant's pulse there must be exactly two pulses in all.
    assert!(running.doors.sim.present_w34("b3-reader", RESIDENT_UID));
    let again = stored(
        &running,
        "a second grant",
        denied.seq,
        is("card_read", "b3-reader"),
    )
    .await;
    assert_eq!(again.body["decision"], "grant");
    stored(
        &running,
        "its pulse",
        again.seq,
        is("relay_pulse", "b3-door"),
    )
    .await;
    let events = running.store.read_after(0, 100_000).await.expect("read");
    let pulses = events.iter().filter(|e| e.kind == "relay_pulse").count();
    assert_eq!(pulses, 2, "never a pulse for the unknown card");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn held_open_and_forced_open_alarms_are_recorded_for_the_door() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_controller, running) = start(dir.path()).await;
    let door = running.doors.sim.door("b3-door").expect("simulated door");

    // Held open: a resident opens the door and props it.
    assert!(running.doors.sim.present_w34("b3-reader", RESIDENT_UID));
    tokio::time::timeout(DEADLINE, door.relay.wait_for(true))
        .await
        .expect("granted");
    door.contact.set_now(true);
    let held = stored(&running, "a held-open alarm", 0, |e| {
        e.kind == "door_alarm" && e.body["alarm"] == "held_open" && e.body["active"] == true
    })
    .await;
    assert_eq!(held.device_id, "b3-door");
    assert_eq!(held.body["door"], "b3-u1");
    door.contact.set_now(false);
    let cleared = stored(&running, "the held-open alarm cleared", held.seq, |e| {
        e.kind == "door_alarm" && e.body["alarm"] == "held_open" && e.body["active"] == false
    })
    .await;

    // Forced open: the door opens with no grant in the last second (the
    // grant above is older than the held-open delay, which is longer).
    door.contact.set_now(true);
    let forced = stored(&running, "a forced-open alarm", cleared.seq, |e| {
        e.kind == "door_alarm" && e.body["alarm"] == "forced_open" && e.body["active"] == true
    })
    .await;
    assert_eq!(forced.body["door"], "b3-u1");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_controller_swipe_is_decided_and_opens_the_controller_door() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (controller, running) = start(dir.path()).await;
    // The driver skips the first record it sees (history): wait until it
    // has read the controller's status once.
    stored(
        &running,
        "the controller's first status",
        0,
        is("door_state", "wg"),
    )
    .await;
    controller.swipe(WG_CARD, 1).await.expect("swipe");
    let read = stored(&running, "the swipe recorded", 0, is("card_read", "wg")).await;
    assert_eq!(read.body["decision"], "grant", "{:?}", read.body);
    assert_eq!(read.body["door"], "garage");
    assert_eq!(
        read.body["door_number"], 1,
        "the controller's door number is kept"
    );
    eventually("an open-door request at the controller", DEADLINE, || {
        let requests = controller.open_requests();
        async move { requests.contains(&1).then_some(()) }
    })
    .await
    .expect("the gateway opened door 1");

    controller.swipe(UNKNOWN_UID, 1).await.expect("swipe");
    let denied = stored(
        &running,
        "the unknown swipe",
        read.seq,
        is("card_read", "wg"),
    )
    .await;
    assert_eq!(denied.body["decision"], "deny");
    assert_eq!(controller.open_requests(), vec![1], "no open for a deny");
    assert!(running.shutdown().await.is_clean());
}
