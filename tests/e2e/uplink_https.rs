//! The HTTPS sink against a fake platform (an axum server on port 0) that
//! fails (500), times out, rate-limits (429 with Retry-After) and rejects a
//! poison event (400): every other event arrives, exactly once by id after
//! de-duplication, in per-device order; the poison event is dead-lettered.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_tests::{eventually, metric_sum};
use gateway::uplink::db::UplinkDb;
use gateway::wire::Envelope;
use serde_json::{Value, json};

use crate::uplink_peers::{ESTATE, GATEWAY, KEY, check_delivery, parse};
use crate::{card_number, card_read};

#[derive(Debug, Default)]
struct Platform {
    requests: Vec<(Instant, u16)>,
    accepted: Vec<Envelope>,
}

async fn events(
    State(platform): State<Arc<Mutex<Platform>>>,
    headers: HeaderMap,
    Json(batch): Json<Value>,
) -> Response {
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {KEY}"));
    let events: Vec<Envelope> = batch["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| serde_json::from_value(e.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let n = {
        let p = platform.lock().expect("lock");
        p.requests.len()
    };
    let answer = |status: u16| {
        if let Ok(mut p) = platform.lock() {
            p.requests.push((Instant::now(), status));
        }
    };
    if !authorised {
        answer(401);
        return (StatusCode::UNAUTHORIZED, "no token").into_response();
    }
    match n {
        0 | 1 => {
            answer(500);
            (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response()
        }
        2 => {
            // Processed, but the answer comes too late: the gateway times
            // out and sends the batch again (a duplicate for the platform).
            answer(200);
            if let Ok(mut p) = platform.lock() {
                p.accepted.extend(events);
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::OK.into_response()
        }
        3 => {
            answer(429);
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response()
        }
        _ => {
            if events.iter().any(|e| e.body["card"] == POISON) {
                answer(400);
                return (StatusCode::BAD_REQUEST, "schema: poison is not allowed").into_response();
            }
            answer(200);
            if let Ok(mut p) = platform.lock() {
                p.accepted.extend(events);
            }
            Json(json!({"accepted": true})).into_response()
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_sink_survives_failures_timeouts_and_rate_limits_and_dead_letters_rejections() {
    let platform = Arc::new(Mutex::new(Platform::default()));
    let app = axum::Router::new()
        .route(
            &format!("/v1/estates/{ESTATE}/gateways/{GATEWAY}/events"),
            axum::routing::post(events),
        )
        .with_state(platform.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"
[gateway]
estate_id = "{ESTATE}"
gateway_id = "{GATEWAY}"
data_dir = "{}"

[panel]
listen = "127.0.0.1:0"

[uplink]
sink = "https"
batch_size = 50
reconnect_max = "500ms"

[uplink.https]
base_url = "http://{addr}"
token = {{ env = "GATEHOUSE_TEST_COMMAND_KEY" }}
timeout = "500ms"
"#,
        dir.path().join("data").display()
    );
    let running = gateway::app::start(parse(&text)).await.expect("starts");

    const TOTAL: u64 = 120;
    for n in 0..TOTAL {
        let device = format!("door-{}", n % 4);
        running
            .pipeline
            .record(&device, card_read(&format!("{n:06}"), "w34"))
            .await
            .expect("recorded");
        if n == TOTAL / 2 {
            running
                .pipeline
                .record("door-9", card_read(POISON, "w34"))
                .await
                .expect("recorded");
        }
    }

    let store = running.store.clone();
    eventually("the store to drain", Duration::from_secs(60), || {
        let store = store.clone();
        async move { (store.stats().depth == 0).then_some(()) }
    })
    .await
    .expect("drained");

    let (accepted, requests) = {
        let p = platform.lock().expect("lock");
        (p.accepted.clone(), p.requests.clone())
    };
    let cards: Vec<Envelope> = accepted
        .iter()
        .filter(|e| e.kind == "card_read")
        .cloned()
        .collect();
    let delivery = check_delivery(&cards, &[]);
    let ns: HashSet<u64> = cards.iter().filter_map(card_number).collect();
    assert_eq!(ns.len() as u64, TOTAL, "every card read accepted");
    assert_eq!(
        delivery.unique as u64, TOTAL,
        "once by id after de-dup (poison excluded)"
    );
    eprintln!(
        "https: {} events accepted, {} raw duplicates, {} requests",
        delivery.unique,
        delivery.duplicates,
        requests.len()
    );
    let statuses: Vec<u16> = requests.iter().map(|(_, s)| *s).collect();
    assert_eq!(&statuses[..4], &[500, 500, 200, 429], "{statuses:?}");
    // Retry-After: 1 was honoured.
    let after_429 = requests[4].0.duration_since(requests[3].0);
    assert!(
        after_429 >= Duration::from_millis(900),
        "retried after {after_429:?}"
    );
    assert!(statuses.contains(&400), "the poison batch was rejected");

    let letters = UplinkDb::open(&running.store)
        .expect("db")
        .dead_letters()
        .expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].reason.contains("400"), "{letters:?}");
    assert!(letters[0].reason.contains("poison"), "{letters:?}");
    let metrics = reqwest::get(format!("http://{}/metrics", running.panel_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        metric_sum(&metrics, "gatehouse_uplink_rejected_total", ""),
        1.0,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "gatehouse_uplink_retries_total", "") >= 4.0,
        "{metrics}"
    );
    assert!(running.shutdown().await.is_clean());
    server.abort();
}

/// A platform that refuses the gateway (`refuse` = 401, 403, 404, …) until
/// told otherwise, then accepts everything but a poison event (400).
#[derive(Debug, Default)]
struct Refusing {
    refuse: u16,
    answers: Vec<u16>,
    accepted: Vec<Envelope>,
}

async fn refusing(
    State(platform): State<Arc<Mutex<Refusing>>>,
    Json(batch): Json<Value>,
) -> Response {
    let events: Vec<Envelope> = batch["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| serde_json::from_value(e.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut p = platform.lock().expect("lock");
    let status = if p.refuse != 0 {
        p.refuse
    } else if events.iter().any(|e| e.body["card"] == POISON) {
        400
    } else {
        p.accepted.extend(events);
        200
    };
    p.answers.push(status);
    let code = StatusCode::from_u16(status).expect("status");
    (code, "platform says so").into_response()
}

/// A wrong token (401, 403) or URL (404) never deletes an event: the
/// events stay queued, are retried with backoff, and an alarm says the
/// platform refused the gateway. Only the documented per-event rejection
/// (400) dead-letters, and so does a queued row the uplink cannot decode
/// (kept, not deleted). `gatehouse deadletters` lists, exports and requeues
/// them.
#[tokio::test(flavor = "multi_thread")]
async fn https_refusals_retry_and_alarm_and_dead_letters_are_kept_listed_and_requeued() {
    let platform = Arc::new(Mutex::new(Refusing {
        refuse: 401,
        ..Refusing::default()
    }));
    let app = axum::Router::new()
        .route(
            &format!("/v1/estates/{ESTATE}/gateways/{GATEWAY}/events"),
            axum::routing::post(refusing),
        )
        .with_state(platform.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let text = format!(
        r#"
[gateway]
estate_id = "{ESTATE}"
gateway_id = "{GATEWAY}"
data_dir = "{}"

[panel]
listen = "127.0.0.1:0"

[uplink]
sink = "https"
batch_size = 10
reconnect_max = "200ms"

[uplink.https]
base_url = "http://{addr}"
timeout = "2s"
"#,
        data_dir.display()
    );
    let running = gateway::app::start(parse(&text)).await.expect("starts");
    const CARDS: u64 = 12;
    let mut seqs = Vec::new();
    for n in 0..CARDS {
        let receipt = running
            .pipeline
            .record("door-1", card_read(&n.to_string(), "w34"))
            .await
            .expect("recorded");
        seqs.push(receipt.seq);
    }
    // One queued row is damaged so that it cannot be decoded.
    let damaged = seqs[5];
    running
        .store
        .connect()
        .expect("connect")
        .execute(
            "UPDATE events SET payload = 'not json {' WHERE seq = ?1",
            [i64::try_from(damaged).expect("seq")],
        )
        .expect("damage");

    let answers = |p: &Arc<Mutex<Refusing>>| p.lock().expect("lock").answers.clone();
    let refused_for = |status: u16| {
        let platform = platform.clone();
        async move {
            eventually("three refusals", Duration::from_secs(20), || {
                let seen = answers(&platform);
                async move { (seen.iter().filter(|s| **s == status).count() >= 3).then_some(()) }
            })
            .await
            .expect("refused");
        }
    };
    refused_for(401).await;
    platform.lock().expect("lock").refuse = 404;
    refused_for(404).await;
    platform.lock().expect("lock").refuse = 403;
    refused_for(403).await;

    let db = UplinkDb::open(&running.store).expect("db");
    let letters = db.dead_letters().expect("dead letters");
    assert!(
        letters.iter().all(|l| l.seq == damaged),
        "a refusal dead-lettered events: {letters:?}"
    );
    assert!(
        running.store.stats().depth >= CARDS - 1,
        "refused events stay queued"
    );
    let alarm = eventually("the refusal alarm", Duration::from_secs(10), || {
        let store = running.store.clone();
        async move {
            let events = store.read_after(0, 10_000).await.ok()?;
            events
                .into_iter()
                .find(|e| e.kind == "device_alarm" && e.body["code"] == "platform_refused")
        }
    })
    .await
    .expect("alarm raised");
    assert_eq!(alarm.body["active"], true);
    assert!(
        alarm.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("platform refused the gateway's credentials")),
        "{alarm:?}"
    );

    // The operator fixes the token: everything is delivered, the alarm
    // clears, and a poison event is the only new dead letter.
    running
        .pipeline
        .record("door-9", card_read(POISON, "w34"))
        .await
        .expect("recorded");
    platform.lock().expect("lock").refuse = 0;
    let store = running.store.clone();
    eventually("the queue to drain", Duration::from_secs(30), || {
        let store = store.clone();
        async move { (store.stats().depth == 0).then_some(()) }
    })
    .await
    .expect("drained");
    let accepted = platform.lock().expect("lock").accepted.clone();
    let ns: HashSet<u64> = accepted
        .iter()
        .filter(|e| e.kind == "card_read")
        .filter_map(card_number)
        .collect();
    assert_eq!(
        ns.len() as u64,
        CARDS - 1,
        "every readable card read delivered"
    );
    assert!(
        accepted
            .iter()
            .any(|e| e.body["code"] == "platform_refused" && e.body["active"] == false),
        "the alarm was cleared"
    );
    let letters = db.dead_letters().expect("dead letters");
    assert_eq!(letters.len(), 2, "{letters:?}");
    let raw = letters
        .iter()
        .find(|l| l.seq == damaged)
        .expect("damaged row kept");
    assert_eq!(raw.payload, "not json {");
    assert!(raw.reason.contains("unreadable"), "{raw:?}");
    let poison = letters
        .iter()
        .find(|l| l.seq != damaged)
        .expect("poison kept");
    assert!(poison.reason.contains("400"), "{poison:?}");
    drop(db);
    assert!(running.shutdown().await.is_clean());
    server.abort();

    // The command line: list, export, requeue.
    let cli = |args: &[&str]| {
        std::process::Command::new(crate::GATEHOUSE)
            .arg("deadletters")
            .args(args)
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .expect("runs")
    };
    let listed = cli(&["list"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{listed:?}");
    assert!(stdout.contains("2 dead letter(s)."), "{stdout}");
    assert!(stdout.contains(&format!("{damaged}\t")), "{stdout}");
    let export = dir.path().join("dead.jsonl");
    let exported = cli(&["export", &export.display().to_string()]);
    assert!(exported.status.success(), "{exported:?}");
    let lines: Vec<Value> = std::fs::read_to_string(&export)
        .expect("export")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event"], "not json {");
    assert_eq!(lines[1]["event"]["body"]["card"], POISON);

    let requeued = cli(&["requeue", "--all"]);
    let stderr = String::from_utf8_lossy(&requeued.stderr);
    assert_eq!(
        requeued.status.code(),
        Some(1),
        "the damaged row cannot go back"
    );
    assert!(stderr.contains("not an event"), "{stderr}");
    let queued = crate::read_all(&data_dir).await;
    let back: Vec<&Envelope> = queued.iter().filter(|e| e.body["card"] == POISON).collect();
    assert_eq!(back.len(), 1, "the poison event is queued again");
    assert_eq!(back[0].id.to_string(), poison.id, "with its id");
    let listed = cli(&["list"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("1 dead letter(s)."),
        "{listed:?}"
    );
}

/// The card number of the event the mock platform refuses for good.
const POISON: &str = "poison";
