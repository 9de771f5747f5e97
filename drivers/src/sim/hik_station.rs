//! A simulated Hikvision door station (门口机): ISAPI over HTTP Digest with
//! `deviceInfo`, `Event/triggers`, the multipart `alertStream` (JSON and XML
//! parts, a heartbeat part every `heartbeat`), `VideoIntercom/callStatus`
//! and `callSignal`, and `AccessControl/RemoteControl/door/{n}`.
//!
//! Built from the public descriptions of ISAPI (paths, bodies, the
//! `--MIME_boundary` stream of `EventNotificationAlert` parts). Test hooks
//! ring, answer and hang up calls, report card/face/tamper events, stall the
//! stream, push raw bytes into it, and stop the whole station.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::digest_server::DigestGate;
use crate::intercom::hikvision::access_event_json;

const BOUNDARY: &str = "MIME_boundary";
const NS: &str = "http://www.hikvision.com/ver20/XMLSchema";

#[derive(Debug)]
struct Shared {
    gate: DigestGate,
    parts: broadcast::Sender<Bytes>,
    call: Mutex<&'static str>,
    unlocks: watch::Sender<Vec<u8>>,
    stalled: AtomicBool,
    streams: AtomicUsize,
    refused: AtomicUsize,
    heartbeat: Duration,
    stop: CancellationToken,
}

/// A running simulated station.
#[derive(Debug)]
pub struct HikStationSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl HikStationSim {
    /// Starts a station on a free loopback port.
    pub async fn start(user: &str, password: &str) -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().expect("literal"),
            user,
            password,
            Duration::from_secs(10),
        )
        .await
    }

    /// Starts a station on `addr` (a stopped station's address, to bring it
    /// back) with a heartbeat part every `heartbeat`.
    pub async fn start_on(
        addr: SocketAddr,
        user: &str,
        password: &str,
        heartbeat: Duration,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (parts, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            gate: DigestGate::new("DS-KV6113", user, password),
            parts,
            call: Mutex::new("idle"),
            unlocks: watch::channel(Vec::new()).0,
            stalled: AtomicBool::new(false),
            streams: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            heartbeat,
            stop: CancellationToken::new(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(Self { addr, shared })
    }

    /// The station's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Alert streams open right now.
    pub fn streams(&self) -> usize {
        self.shared.streams.load(Ordering::SeqCst)
    }

    /// Requests refused for bad credentials so far.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// The doors opened remotely, in order.
    pub fn unlocks(&self) -> watch::Receiver<Vec<u8>> {
        self.shared.unlocks.subscribe()
    }

    /// A visitor presses the call button for `room`.
    pub fn ring(&self, room: &str) {
        *self.shared.call.lock().unwrap_or_else(|p| p.into_inner()) = "ring";
        self.json_part(&access_event_json(5, 0x25, &json!({"roomNumber": room})));
    }

    /// The resident answers.
    pub fn answer(&self) {
        *self.shared.call.lock().unwrap_or_else(|p| p.into_inner()) = "onCall";
    }

    /// The call ends (or rings out).
    pub fn hang_up(&self) {
        *self.shared.call.lock().unwrap_or_else(|p| p.into_inner()) = "idle";
    }

    /// An access-controller event (major, minor, extra fields) as a JSON part.
    pub fn access_event(&self, major: u32, minor: u32, extra: Value) {
        self.json_part(&access_event_json(major, minor, &extra));
    }

    /// An XML `EventNotificationAlert` part with `eventType` and fields.
    pub fn xml_event(&self, event_type: &str, state: &str, fields: &str) {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<EventNotificationAlert version=\"2.0\" xmlns=\"{NS}\">\r\n<ipAddress>127.0.0.1</ipAddress>\r\n<portNo>80</portNo>\r\n<protocol>HTTP</protocol>\r\n<channelID>1</channelID>\r\n<dateTime>2026-12-01T09:00:00+08:00</dateTime>\r\n<activePostCount>1</activePostCount>\r\n<eventType>{event_type}</eventType>\r\n<eventState>{state}</eventState>\r\n<eventDescription>{event_type} alarm</eventDescription>\r\n{fields}\r\n</EventNotificationAlert>\r\n"
        );
        let _ = self
            .shared
            .parts
            .send(part("application/xml", xml.as_bytes()));
    }

    /// Raw bytes into every open stream (hostile input).
    pub fn raw(&self, bytes: &[u8]) {
        let _ = self.shared.parts.send(Bytes::copy_from_slice(bytes));
    }

    /// Keeps streams open but silent (no parts, no heartbeats) while `true`.
    pub fn stall(&self, stalled: bool) {
        self.shared.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Stops the station: the listener closes and every stream ends.
    pub fn stop(&self) {
        self.shared.stop.cancel();
    }

    fn json_part(&self, json: &str) {
        let _ = self
            .shared
            .parts
            .send(part("application/json", json.as_bytes()));
    }
}

impl Drop for HikStationSim {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

fn part(media_type: &str, body: &[u8]) -> Bytes {
    let mut out = format!(
        "--{BOUNDARY}\r\nContent-Type: {media_type}; charset=\"UTF-8\"\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn response_status(code: u8, text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ResponseStatus version=\"2.0\" xmlns=\"{NS}\"><requestURL></requestURL><statusCode>{code}</statusCode><statusString>{text}</statusString><subStatusCode>ok</subStatusCode></ResponseStatus>"
    )
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !s.gate.check(method.as_str(), auth) {
        if auth.is_some_and(|a| a.starts_with("Digest")) {
            s.refused.fetch_add(1, Ordering::SeqCst);
        }
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, s.gate.challenge())],
            response_status(4, "Unauthorized"),
        )
            .into_response();
    }
    let path = uri.path();
    match (method.as_str(), path) {
        ("GET", "/ISAPI/System/deviceInfo") => xml(
            StatusCode::OK,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DeviceInfo version=\"2.0\" xmlns=\"{NS}\"><deviceName>Door Station</deviceName><deviceID>88a5d3a6-0000-4000-8000-sim0000kv6113</deviceID><model>DS-KV6113-WPE1</model><serialNumber>DS-KV6113SIM</serialNumber><deviceType>DoorStation</deviceType></DeviceInfo>"
            ),
        ),
        ("GET", "/ISAPI/Event/triggers") => xml(
            StatusCode::OK,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><EventTriggerList version=\"2.0\" xmlns=\"{NS}\"><EventTrigger><id>IO-1</id><eventType>IO</eventType><inputIOPortID>1</inputIOPortID><EventTriggerNotificationList><EventTriggerNotification><id>center</id><notificationMethod>center</notificationMethod></EventTriggerNotification></EventTriggerNotificationList></EventTrigger></EventTriggerList>"
            ),
        ),
        ("GET", "/ISAPI/Event/notification/alertStream") => alert_stream(s),
        ("GET", "/ISAPI/VideoIntercom/callStatus") => {
            let status = *s.call.lock().unwrap_or_else(|p| p.into_inner());
            axum::Json(json!({"CallStatus": {"status": status}})).into_response()
        }
        ("PUT", "/ISAPI/VideoIntercom/callSignal") => {
            let cmd: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let next = match cmd.pointer("/CallSignal/cmdType").and_then(Value::as_str) {
                Some("answer") => "onCall",
                Some("reject" | "hangUp") => "idle",
                _ => {
                    return axum::Json(
                        json!({"statusCode": 4, "statusString": "Invalid Operation"}),
                    )
                    .into_response();
                }
            };
            *s.call.lock().unwrap_or_else(|p| p.into_inner()) = next;
            axum::Json(json!({"statusCode": 1, "statusString": "OK", "subStatusCode": "ok"}))
                .into_response()
        }
        ("PUT", p) if p.starts_with("/ISAPI/AccessControl/RemoteControl/door/") => {
            let door = p.rsplit('/').next().and_then(|d| d.parse::<u8>().ok());
            let text = String::from_utf8_lossy(&body);
            match door {
                Some(door @ 1..=4) if text.contains("<cmd>open</cmd>") => {
                    s.unlocks.send_modify(|v| v.push(door));
                    let event =
                        access_event_json(3, 0x400, &json!({"doorNo": door, "netUser": "admin"}));
                    let _ = s.parts.send(part("application/json", event.as_bytes()));
                    xml(StatusCode::OK, response_status(1, "OK"))
                }
                _ => xml(
                    StatusCode::BAD_REQUEST,
                    response_status(4, "Invalid Operation"),
                ),
            }
        }
        _ => xml(
            StatusCode::NOT_FOUND,
            response_status(4, "Invalid Operation"),
        ),
    }
}

/// Decrements the open-stream count when the stream is dropped.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

fn alert_stream(s: Arc<Shared>) -> Response {
    s.streams.fetch_add(1, Ordering::SeqCst);
    let parts = s.parts.subscribe();
    let mut beat = tokio::time::interval(s.heartbeat);
    beat.reset();
    let state = (parts, beat, Counted(s));
    let stream = futures::stream::unfold(state, |(mut parts, mut beat, counted)| async move {
        let s = counted.0.clone();
        loop {
            let chunk = tokio::select! {
                () = s.stop.cancelled() => return None,
                got = parts.recv() => match got {
                    Ok(bytes) => bytes,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = beat.tick() => part(
                    "application/xml",
                    format!("<EventNotificationAlert version=\"2.0\" xmlns=\"{NS}\"><eventType>videoloss</eventType><eventState>inactive</eventState></EventNotificationAlert>").as_bytes(),
                ),
            };
            if s.stalled.load(Ordering::SeqCst) {
                continue;
            }
            return Some((
                Ok::<_, std::convert::Infallible>(chunk),
                (parts, beat, counted),
            ));
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/mixed; boundary={BOUNDARY}"),
        )
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
