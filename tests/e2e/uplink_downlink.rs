//! The downlink against the embedded broker: signed commands through the
//! pipeline, refusals (unsigned, badly signed, expired, replayed — also
//! after a restart) recorded and answered, list sync into a real SQLite
//! table (version gap → snapshot request; malformed snapshot → the old list
//! stays), and the platform's telemetry pull.

use std::sync::Arc;

use drivers::Class;
use drivers::contract::now_ms;
use gatehouse_tests::{DEADLINE, eventually};
use gateway::app::Running;
use gateway::store::Store;
use gateway::uplink::sync::ListRegistry;
use gateway::vocab::sync::{ListTarget, SyncError};
use gateway::wire::Envelope;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Value, json};

use crate::uplink_peers::{Subscriber, embedded_broker, mqtt_config, parse, signed};

/// A small list kept in a real table of the gateway's database: plates
/// with an owner, version in its own row. Every change is one transaction.
struct PlateTable {
    conn: std::sync::Mutex<Connection>,
}

impl PlateTable {
    fn open(store: &Store) -> Arc<Self> {
        let conn = store.connect().expect("connect");
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS test_plates (plate TEXT PRIMARY KEY, owner TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS test_plates_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);",
        )
        .expect("tables");
        Arc::new(Self {
            conn: std::sync::Mutex::new(conn),
        })
    }

    fn rows(&self) -> Vec<(String, String)> {
        let conn = self.conn.lock().expect("lock");
        let mut stmt = conn
            .prepare("SELECT plate, owner FROM test_plates ORDER BY plate")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}

fn row(v: &Value) -> Result<(String, String), SyncError> {
    match (v["plate"].as_str(), v["owner"].as_str()) {
        (Some(plate), Some(owner)) if !plate.is_empty() => Ok((plate.into(), owner.into())),
        _ => Err(SyncError::Malformed(format!(
            "row {v} needs plate and owner"
        ))),
    }
}

fn db(e: rusqlite::Error) -> SyncError {
    SyncError::Storage(e.to_string())
}

impl ListTarget for PlateTable {
    fn name(&self) -> &'static str {
        "plates"
    }

    fn version(&self) -> Result<u64, SyncError> {
        let conn = self
            .conn
            .lock()
            .map_err(|e| SyncError::Storage(e.to_string()))?;
        let v: Option<i64> = conn
            .query_row(
                "SELECT version FROM test_plates_version WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    fn apply_snapshot(&self, version: u64, rows: Vec<Value>) -> Result<(), SyncError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|e| SyncError::Storage(e.to_string()))?;
        let tx = conn.transaction().map_err(db)?;
        tx.execute("DELETE FROM test_plates", []).map_err(db)?;
        for v in &rows {
            let (plate, owner) = row(v)?; // rolls back on drop
            tx.execute("INSERT INTO test_plates VALUES (?1, ?2)", [plate, owner])
                .map_err(db)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO test_plates_version (id, version) VALUES (1, ?1)",
            [version as i64],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn apply_delta(
        &self,
        _from: u64,
        to: u64,
        upserts: Vec<Value>,
        deletes: Vec<String>,
    ) -> Result<(), SyncError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|e| SyncError::Storage(e.to_string()))?;
        let tx = conn.transaction().map_err(db)?;
        for v in &upserts {
            let (plate, owner) = row(v)?;
            tx.execute(
                "INSERT OR REPLACE INTO test_plates VALUES (?1, ?2)",
                [plate, owner],
            )
            .map_err(db)?;
        }
        for plate in &deletes {
            tx.execute("DELETE FROM test_plates WHERE plate = ?1", [plate])
                .map_err(db)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO test_plates_version (id, version) VALUES (1, ?1)",
            [to as i64],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }
}

const SIM_TANK: &str = r#"
[[devices]]
id = "tank-1"
name = "1号楼水箱"
type = "sim-tank"
height_m = 4.0
interval = "1s"

[api]
token = { env = "GATEHOUSE_TEST_COMMAND_KEY" }
"#;

async fn start(data_dir: &std::path::Path, port: u16, lists: ListRegistry) -> Running {
    // The extra text lands after [uplink.mqtt]; devices and [api] are tables
    // of their own, so it is still valid TOML.
    // Refusals are aggregated per second here (a minute by default).
    let text = mqtt_config(data_dir, port, SIM_TANK)
        .replace("[uplink]\n", "[uplink]\nrefusal_interval = \"1s\"\n");
    let config = parse(&text);
    let running = gateway::app::start_with(config, lists)
        .await
        .expect("starts");
    let status = running.uplink_status.clone();
    eventually("the uplink to connect", DEADLINE, || {
        let status = status.clone();
        async move { status.connected().then_some(()) }
    })
    .await
    .expect("connected");
    running
}

fn command(id: &str, action: &str, device: Option<&str>, expires_in_ms: i64) -> Value {
    let now = now_ms();
    let mut c = json!({"id": id, "issued_ms": now - 1000, "expires_ms": now + expires_in_ms,
                       "action": action, "issuer": "ops-zhang", "reason": "测试"});
    if let Some(device) = device {
        c["device_id"] = json!(device);
    }
    c
}

async fn result_for(subscriber: &Subscriber, id: &str, nth: usize) -> Value {
    eventually(&format!("result {nth} of command {id}"), DEADLINE, || {
        let results: Vec<Value> = subscriber
            .json("/command-results")
            .into_iter()
            .filter(|r| r["id"] == id)
            .collect();
        async move { results.get(nth).cloned() }
    })
    .await
    .expect("command result")
}

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
    .expect("uplinked audit event")
}

#[tokio::test(flavor = "multi_thread")]
async fn signature_valid_commands_run_through_the_pipeline_and_bad_ones_are_refused_and_recorded() {
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let subscriber = Subscriber::connect(broker, "platform-signature").await;
    let running = start(
        &dir.path().join("data"),
        broker.port(),
        ListRegistry::default(),
    )
    .await;

    // Valid: carried out by the device and audited with the platform origin.
    subscriber
        .publish(
            "commands/tank-1",
            signed(command("c-ok", "poll", Some("tank-1"), 60_000)),
        )
        .await;
    let ok = result_for(&subscriber, "c-ok", 0).await;
    assert_eq!(ok["status"], "done", "{ok}");
    let audit = uplinked(&subscriber, "command", |e| {
        e.seq == ok["audit_seq"].as_u64().unwrap_or(0)
    })
    .await;
    assert_eq!(audit.class, Class::Audit);
    assert_eq!(audit.body["origin"]["via"], "platform");
    assert_eq!(audit.body["origin"]["actor"], "ops-zhang");
    assert_eq!(audit.body["command"]["command"], "poll");

    // A lane command to a device that cannot do it: decided by the device
    // (unsupported), still audited.
    subscriber
        .publish(
            "commands/tank-1",
            signed(command("c-lane", "open_barrier", Some("tank-1"), 60_000)),
        )
        .await;
    let lane = result_for(&subscriber, "c-lane", 0).await;
    assert_eq!(lane["status"], "unsupported", "{lane}");
    assert!(lane["audit_seq"].is_u64());

    // Unsigned, badly signed, expired: refused, answered and recorded.
    let unsigned = command("c-unsigned", "poll", Some("tank-1"), 60_000)
        .to_string()
        .into_bytes();
    subscriber.publish("commands/tank-1", unsigned).await;
    let mut forged = command("c-forged", "poll", Some("tank-1"), 60_000);
    forged["sig"] = json!("00".repeat(32));
    subscriber
        .publish("commands/tank-1", forged.to_string().into_bytes())
        .await;
    let mut tampered: Value = serde_json::from_slice(&signed(command(
        "c-tampered",
        "poll",
        Some("tank-1"),
        60_000,
    )))
    .expect("json");
    tampered["device_id"] = json!("gate-9");
    subscriber
        .publish("commands/tank-1", tampered.to_string().into_bytes())
        .await;
    subscriber
        .publish(
            "commands/tank-1",
            signed(command("c-expired", "poll", Some("tank-1"), -1)),
        )
        .await;
    // The first refusal is answered and recorded on its own; the rest of
    // the interval is one event with the count per reason.
    let result = result_for(&subscriber, "c-unsigned", 0).await;
    assert_eq!(result["status"], "invalid", "{result}");
    assert_eq!(result["reason"], "unsigned", "{result}");
    let record = uplinked(&subscriber, "command_refused", |e| {
        e.body["id"] == "c-unsigned"
    })
    .await;
    assert_eq!(record.body["reason"], "unsigned");
    assert_eq!(record.class, Class::Audit);
    let summary = uplinked(&subscriber, "command_refused", |e| {
        e.body["reason"] == "aggregated"
    })
    .await;
    assert_eq!(summary.class, Class::Audit);
    assert_eq!(summary.body["count"], 3, "{summary:?}");
    assert_eq!(summary.body["reasons"]["bad_signature"], 2, "{summary:?}");
    assert_eq!(summary.body["reasons"]["expired"], 1, "{summary:?}");
    assert_eq!(
        summary.body["sample_ids"],
        json!(["c-forged", "c-tampered", "c-expired"])
    );
    let metrics = reqwest::get(format!("http://{}/metrics", running.panel_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"gatehouse_uplink_commands_total{result="refused"} 4"#),
        "{metrics}"
    );
    assert!(running.shutdown().await.is_clean());
}

/// Whoever can publish to the command topic cannot fill the disk: a flood
/// of unsigned commands is a handful of events, each interval's refusals
/// counted in one.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_refused_commands_is_recorded_as_counts_per_interval() {
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let subscriber = Subscriber::connect(broker, "platform-flood").await;
    let running = start(
        &dir.path().join("data"),
        broker.port(),
        ListRegistry::default(),
    )
    .await;
    const FLOOD: u64 = 2_000;
    for n in 0..FLOOD {
        let unsigned = command(&format!("f-{n}"), "poll", Some("tank-1"), 60_000);
        subscriber
            .publish("commands/tank-1", unsigned.to_string().into_bytes())
            .await;
    }
    // Every message is refused and counted, or dropped unread and counted.
    let metrics_url = format!("http://{}/metrics", running.panel_addr);
    let refusals = eventually("every message counted", DEADLINE, || {
        let metrics = reqwest::get(metrics_url.clone());
        let refused: Vec<Envelope> = subscriber
            .events()
            .into_iter()
            .filter(|e| e.kind == "command_refused")
            .collect();
        async move {
            let text = metrics.await.ok()?.text().await.ok()?;
            let dropped =
                gatehouse_tests::metric_sum(&text, "gatehouse_uplink_downlink_dropped_total", "")
                    as u64;
            let counted: u64 = refused
                .iter()
                .map(|e| e.body["count"].as_u64().unwrap_or(1))
                .sum();
            (counted + dropped == FLOOD).then_some(refused)
        }
    })
    .await
    .expect("counted");
    assert!(
        refusals.len() <= 20,
        "{} events for {FLOOD} refusals",
        refusals.len()
    );
    let answers = subscriber.json("/command-results").len();
    assert!(answers <= 20, "{answers} answers for {FLOOD} refusals");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_of_a_command_id_is_refused_even_after_a_restart() {
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let subscriber = Subscriber::connect(broker, "platform-replay").await;
    let running = start(&data_dir, broker.port(), ListRegistry::default()).await;
    let message = signed(command("c-once", "poll", Some("tank-1"), 300_000));
    subscriber.publish("commands/tank-1", message.clone()).await;
    assert_eq!(result_for(&subscriber, "c-once", 0).await["status"], "done");
    subscriber.publish("commands/tank-1", message.clone()).await;
    let replay = result_for(&subscriber, "c-once", 1).await;
    assert_eq!(replay["status"], "invalid");
    assert_eq!(replay["reason"], "replayed");
    assert!(running.shutdown().await.is_clean());

    // The seen ids are on disk: a restarted gateway refuses it too.
    let running = start(&data_dir, broker.port(), ListRegistry::default()).await;
    subscriber.publish("commands/tank-1", message).await;
    let replay = result_for(&subscriber, "c-once", 2).await;
    assert_eq!(replay["reason"], "replayed", "{replay}");
    let audits = subscriber
        .events()
        .into_iter()
        .filter(|e| e.kind == "command" && e.body["origin"]["reason"] == "测试")
        .count();
    assert_eq!(audits, 1, "carried out exactly once");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn resync_on_a_version_gap_and_a_malformed_snapshot_keeps_the_old_list() {
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    // The list's table lives in the gateway's database.
    let (store, _) = Store::open(gateway::store::StoreConfig::new(gatehouse_tests::database(
        &data_dir,
    )))
    .expect("store");
    let plates = PlateTable::open(&store);
    let lists = ListRegistry::default().with(plates.clone());
    store.close().await.expect("close");
    let subscriber = Subscriber::connect(broker, "platform-resync").await;
    let running = start(&data_dir, broker.port(), lists).await;

    let sync = |v: Value| signed(v);
    let now = now_ms();
    subscriber
        .publish("sync/plates", sync(json!({"id": "s1", "issued_ms": now, "list": "plates", "type": "snapshot", "version": 1,
            "rows": [{"plate": "苏A8HK52", "owner": "3-1201"}, {"plate": "苏E12345", "owner": "5-302"}]})))
        .await;
    subscriber
        .publish("sync/plates", sync(json!({"id": "s2", "issued_ms": now, "list": "plates", "type": "delta", "from": 1, "to": 2,
            "upserts": [{"plate": "沪B99999", "owner": "7-101"}], "deletes": ["苏E12345"]})))
        .await;
    eventually("version 2 reported", DEADLINE, || {
        let status = subscriber.json("/sync-status");
        async move {
            status
                .iter()
                .any(|s| s["lists"]["plates"] == 2)
                .then_some(())
        }
    })
    .await
    .expect("sync status");
    let at_v2 = plates.rows();
    assert_eq!(
        at_v2,
        vec![
            ("沪B99999".into(), "7-101".into()),
            ("苏A8HK52".into(), "3-1201".into())
        ]
    );

    // A delta that skips version 3: not applied, a snapshot is requested.
    subscriber
        .publish("sync/plates", sync(json!({"id": "s3", "issued_ms": now, "list": "plates", "type": "delta", "from": 3, "to": 4,
            "upserts": [{"plate": "京A00001", "owner": "x"}]})))
        .await;
    let request = eventually("a snapshot request", DEADLINE, || {
        let r = subscriber.json("/sync-requests");
        async move { r.into_iter().find(|r| r["list"] == "plates") }
    })
    .await
    .expect("resync requested");
    assert_eq!(request["held_version"], 2, "{request}");
    assert!(
        request["reason"]
            .as_str()
            .is_some_and(|r| r.contains("gap")),
        "{request}"
    );
    assert_eq!(
        plates.rows(),
        at_v2,
        "nothing applied from the gapped delta"
    );

    // A malformed snapshot (a row without an owner, after good rows): the
    // transaction rolls back, version 2 stays in force, resync requested.
    subscriber
        .publish("sync/plates", sync(json!({"id": "s4", "issued_ms": now, "list": "plates", "type": "snapshot", "version": 5,
            "rows": [{"plate": "京A00001", "owner": "1-1"}, {"plate": "京A00002"}]})))
        .await;
    eventually("a second snapshot request", DEADLINE, || {
        let n = subscriber.json("/sync-requests").len();
        async move { (n >= 2).then_some(()) }
    })
    .await
    .expect("resync after the bad snapshot");
    assert_eq!(plates.rows(), at_v2, "the previous version stays in force");
    assert_eq!(plates.version().expect("version"), 2);
    let record = uplinked(&subscriber, "list_sync", |e| e.body["id"] == "s4").await;
    assert_eq!(record.body["status"], "rejected");
    assert_eq!(record.body["held_version"], 2);

    // An unsigned sync is refused outright.
    subscriber
        .publish(
            "sync/plates",
            json!({"id": "s5", "list": "plates", "type": "snapshot", "version": 9, "rows": []})
                .to_string()
                .into_bytes(),
        )
        .await;
    let refused = uplinked(&subscriber, "list_sync", |e| e.body["id"] == "s5").await;
    assert_eq!(refused.body["status"], "refused");
    assert_eq!(plates.rows(), at_v2);

    // The full snapshot the platform sends back is applied.
    subscriber
        .publish("sync/plates", sync(json!({"id": "s6", "issued_ms": now, "list": "plates", "type": "snapshot", "version": 6,
            "rows": [{"plate": "京A00001", "owner": "1-1"}]})))
        .await;
    eventually("version 6", DEADLINE, || {
        let v = plates.version().ok();
        async move { (v == Some(6)).then_some(()) }
    })
    .await
    .expect("snapshot applied");
    assert_eq!(plates.rows(), vec![("京A00001".into(), "1-1".into())]);
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn telemetry_is_pulled_with_the_platform_token_and_on_request() {
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let subscriber = Subscriber::connect(broker, "platform-telemetry").await;
    let running = start(
        &dir.path().join("data"),
        broker.port(),
        ListRegistry::default(),
    )
    .await;
    let url = format!("http://{}/api/v1/telemetry", running.panel_addr);
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.expect("get").status(), 401);
    assert_eq!(
        client
            .get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .expect("get")
            .status(),
        401
    );
    let snapshot: Value = client
        .get(&url)
        .bearer_auth(crate::uplink_peers::KEY)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(snapshot["gateway_id"], "gw-test");
    assert!(
        snapshot["uplink"]["state"]
            .as_str()
            .is_some_and(|s| s == "online" || s == "backlogged"),
        "{snapshot}"
    );
    assert!(snapshot["store"]["bytes"].is_u64());
    let devices = snapshot["devices"].as_array().expect("devices");
    assert_eq!(devices[0]["id"], "tank-1");
    assert!(devices[0]["state"].is_string());

    subscriber
        .publish(
            "commands/telemetry",
            signed(command("c-tel", "request_telemetry", None, 60_000)),
        )
        .await;
    assert_eq!(result_for(&subscriber, "c-tel", 0).await["status"], "done");
    let pushed = eventually("the telemetry on its topic", DEADLINE, || {
        let t = subscriber.json("/telemetry");
        async move { t.into_iter().next() }
    })
    .await
    .expect("telemetry pushed");
    assert_eq!(pushed["devices"][0]["id"], "tank-1");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn resync_residents_snapshot_from_the_platform_reaches_lane_decisions() {
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let subscriber = Subscriber::connect(broker, "platform-residents").await;
    let running = start(&data_dir, broker.port(), ListRegistry::default()).await;
    let now = now_ms();
    subscriber
        .publish(
            "sync/residents",
            signed(json!({"id": "r1", "issued_ms": now, "list": "residents", "type": "snapshot", "version": 7,
                "rows": [{"plate": "苏A8HK52", "house": "3-2-1201", "owner": "王芳", "valid_from_ms": null,
                          "valid_to_ms": null, "lanes": []}]})),
        )
        .await;
    let plates = running.plates.clone();
    eventually(
        "the synced resident in the decision snapshot",
        DEADLINE,
        || {
            let plates = plates.clone();
            async move {
                plates
                    .snapshot()
                    .residents
                    .get("苏A8HK52")
                    .map(|r| r.house.to_owned())
            }
        },
    )
    .await
    .map(|house| assert_eq!(house, "3-2-1201"))
    .expect("synced");
    assert_eq!(
        running.plates.list_version("residents").expect("version"),
        7
    );
    eventually("version 7 reported", DEADLINE, || {
        let status = subscriber.json("/sync-status");
        async move {
            status
                .iter()
                .any(|s| s["lists"]["residents"] == 7)
                .then_some(())
        }
    })
    .await
    .expect("sync status");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_sync_is_refused_and_resynced_and_a_reused_sync_id_is_refused() {
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    let (store, _) = Store::open(gateway::store::StoreConfig::new(gatehouse_tests::database(
        &data_dir,
    )))
    .expect("store");
    let plates = PlateTable::open(&store);
    let lists = ListRegistry::default().with(plates.clone());
    store.close().await.expect("close");
    let subscriber = Subscriber::connect(broker, "platform-stale-sync").await;
    let running = start(&data_dir, broker.port(), lists).await;
    let now = now_ms();

    // Issued a day ago (it waited in a broker's queue): refused as
    // expired, and a fresh snapshot of that list is asked for.
    subscriber
        .publish(
            "sync/plates",
            signed(
                json!({"id": "old-1", "issued_ms": now - 86_400_000, "list": "plates",
            "type": "snapshot", "version": 3, "rows": [{"plate": "苏A8HK52", "owner": "3-1201"}]}),
            ),
        )
        .await;
    let refused = uplinked(&subscriber, "list_sync", |e| e.body["id"] == "old-1").await;
    assert_eq!(refused.body["status"], "refused", "{}", refused.body);
    assert_eq!(refused.body["detail"], "expired", "{}", refused.body);
    let request = eventually("a snapshot request", DEADLINE, || {
        let r = subscriber.json("/sync-requests");
        async move { r.into_iter().find(|r| r["list"] == "plates") }
    })
    .await
    .expect("resync requested");
    assert_eq!(request["reason"], "sync message expired", "{request}");
    assert_eq!(plates.version().expect("version"), 0, "nothing applied");

    // A current one is applied.
    subscriber
        .publish(
            "sync/plates",
            signed(json!({"id": "s-1", "issued_ms": now, "list": "plates",
            "type": "snapshot", "version": 4, "rows": [{"plate": "苏A8HK52", "owner": "3-1201"}]})),
        )
        .await;
    eventually("version 4", DEADLINE, || {
        let v = plates.version().ok();
        async move { (v == Some(4)).then_some(()) }
    })
    .await
    .expect("applied");

    // Its id again, on a message that would otherwise apply: refused.
    subscriber
        .publish(
            "sync/plates",
            signed(json!({"id": "s-1", "issued_ms": now_ms(), "list": "plates",
            "type": "snapshot", "version": 9, "rows": []})),
        )
        .await;
    // Refusals are aggregated per interval (1 s here): the replay is
    // recorded on its own or in the interval's summary.
    eventually("the replay recorded", DEADLINE, || {
        let events = subscriber.events();
        async move {
            events
                .iter()
                .any(|e| {
                    (e.kind == "list_sync"
                        && e.body["id"] == "s-1"
                        && e.body["status"] == "refused")
                        || (e.kind == "command_refused" && e.body["reasons"]["replayed"] == 1)
                })
                .then_some(())
        }
    })
    .await
    .expect("replay refused");
    assert_eq!(plates.version().expect("version"), 4);
    assert_eq!(plates.rows(), vec![("苏A8HK52".into(), "3-1201".into())]);
    assert!(running.shutdown().await.is_clean());
}

/// Every JSON value in the ```json blocks of `docs/uplink.md`, in order.
fn doc_examples() -> Vec<Value> {
    let doc = include_str!("../../docs/uplink.md");
    let mut examples = Vec::new();
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```json") => block = Some(String::new()),
            (Some(text), "```") => {
                for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
                    examples.push(value.unwrap_or_else(|e| {
                        panic!("docs/uplink.md: an example is not JSON ({e}):\n{text}")
                    }));
                }
                block = None;
            }
            (Some(text), line) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    examples
}

/// The members of `doc` that `real` lacks and the other way round, for
/// objects (recursively) and the first items of arrays both have; a map
/// keyed by names the gateway chooses (`dropped`) is compared too.
fn member_differences(doc: &Value, real: &Value, at: &str, out: &mut Vec<String>) {
    match (doc, real) {
        (Value::Object(d), Value::Object(r)) => {
            for key in d.keys().filter(|k| !r.contains_key(*k)) {
                out.push(format!("{at}.{key}: in the doc, not sent"));
            }
            for key in r.keys().filter(|k| !d.contains_key(*k)) {
                out.push(format!("{at}.{key}: sent, not in the doc"));
            }
            for (key, d) in d {
                if let Some(r) = r.get(key) {
                    member_differences(d, r, &format!("{at}.{key}"), out);
                }
            }
        }
        (Value::Array(d), Value::Array(r)) => {
            if let (Some(d), Some(r)) = (d.first(), r.first()) {
                member_differences(d, r, &format!("{at}[0]"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_sync_result_and_telemetry_example_in_the_uplink_doc_holds() {
    let examples = doc_examples();
    let signed_examples: Vec<&Value> = examples.iter().filter(|e| e.get("sig").is_some()).collect();
    let commands: Vec<&Value> = signed_examples
        .iter()
        .copied()
        .filter(|e| e.get("action").is_some())
        .collect();
    let syncs: Vec<&Value> = signed_examples
        .iter()
        .copied()
        .filter(|e| e.get("list").is_some())
        .collect();
    assert!(commands.len() >= 2, "{commands:?}");
    assert!(syncs.len() >= 5, "{syncs:?}");
    let broker = embedded_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let subscriber = Subscriber::connect(broker, "platform-doc").await;
    let running = start(
        &dir.path().join("data"),
        broker.port(),
        ListRegistry::default(),
    )
    .await;

    // Each sync, made current and signed, is applied by the real lists.
    for (n, example) in syncs.iter().enumerate() {
        let mut message = (*example).clone();
        let id = format!("doc-sync-{n}");
        message["id"] = json!(id);
        message["issued_ms"] = json!(now_ms());
        message.as_object_mut().expect("object").remove("sig");
        let list = message["list"].as_str().expect("list").to_owned();
        subscriber
            .publish(&format!("sync/{list}"), signed(message))
            .await;
        let record = uplinked(&subscriber, "list_sync", |e| e.body["id"] == id).await;
        assert_eq!(
            record.body["status"], "applied",
            "docs/uplink.md sync example {example}: {}",
            record.body
        );
    }

    // Each command, made current and signed, is carried out or answered
    // for its device, never refused as a message.
    let mut results = Vec::new();
    for (n, example) in commands.iter().enumerate() {
        let mut message = (*example).clone();
        let id = format!("doc-command-{n}");
        let now = now_ms();
        message["id"] = json!(id);
        message["issued_ms"] = json!(now - 1000);
        message["expires_ms"] = json!(now + 60_000);
        message.as_object_mut().expect("object").remove("sig");
        subscriber.publish("commands/doc", signed(message)).await;
        let result = result_for(&subscriber, &id, 0).await;
        assert_ne!(
            result["status"], "invalid",
            "docs/uplink.md command example {example}: {result}"
        );
        results.push(result);
    }

    // The result example has the members results have.
    let result_example = examples
        .iter()
        .find(|e| e.get("audit_seq").is_some())
        .expect("a command-result example");
    let mut differences = Vec::new();
    member_differences(result_example, &results[0], "result", &mut differences);

    // The telemetry example has the members the telemetry has.
    subscriber
        .publish(
            "commands/telemetry",
            signed(command("doc-tel", "request_telemetry", None, 60_000)),
        )
        .await;
    assert_eq!(
        result_for(&subscriber, "doc-tel", 0).await["status"],
        "done"
    );
    let telemetry = eventually("the telemetry on its topic", DEADLINE, || {
        let t = subscriber.json("/telemetry");
        async move { t.into_iter().next() }
    })
    .await
    .expect("telemetry pushed");
    let telemetry_example = examples
        .iter()
        .find(|e| e.get("uptime_s").is_some())
        .expect("a telemetry example");
    member_differences(telemetry_example, &telemetry, "telemetry", &mut differences);
    assert!(
        differences.is_empty(),
        "docs/uplink.md differs from what the gateway sends:\n{}",
        differences.join("\n")
    );
    assert!(running.shutdown().await.is_clean());
}
