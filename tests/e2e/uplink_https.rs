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
use drivers::Class;
use gatehouse_tests::{eventually, metric_sum};
use gateway::uplink::db::UplinkDb;
use gateway::wire::Envelope;
use serde_json::{Value, json};

use crate::uplink_peers::{ESTATE, GATEWAY, KEY, check_delivery, parse};

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
            if events.iter().any(|e| e.body["poison"] == true) {
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
        let body = json!({"n": n, "card": format!("{n:06}"), "format": "w34"});
        running
            .pipeline
            .record(&device, "card_read", Class::Access, body)
            .await
            .expect("recorded");
        if n == TOTAL / 2 {
            running
                .pipeline
                .record(
                    "door-9",
                    "card_read",
                    Class::Access,
                    json!({"poison": true}),
                )
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
    let ns: HashSet<u64> = cards.iter().filter_map(|e| e.body["n"].as_u64()).collect();
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
