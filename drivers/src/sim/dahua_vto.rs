//! A simulated Dahua VTO door station: the JSON-RPC service on TCP (the
//! 32-byte `DHIP` header framing, the `global.login` realm/random
//! challenge, `global.keepAlive`, `eventManager.attach` and
//! `client.notifyEventStream`, `accessControl.factory.instance` /
//! `openDoor` / `destroy`) and the same JSON-RPC over HTTP (`/RPC2_Login`,
//! `/RPC2`) with the Digest-protected CGI `accessControl.cgi?action=openDoor`.
//!
//! Built from the public descriptions of the protocol. Test hooks ring,
//! give up calls, report unlocks, tamper and the door contact, make the
//! station never answer a login, refuse `openDoor` over JSON-RPC (a
//! firmware that needs the CGI), and stop it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::digest_server::DigestGate;
use crate::intercom::dahua::{self, FrameDecoder, LOGIN_CHALLENGE};

const REALM: &str = "Login to SIMVTO2202F";
const WRONG_PASSWORD: i64 = 268_632_085;
const NO_SESSION: i64 = 287_637_505;
const NO_METHOD: i64 = 268_894_210;

#[derive(Debug)]
struct Shared {
    user: String,
    password: String,
    gate: DigestGate,
    events: broadcast::Sender<Value>,
    unlocks: watch::Sender<Vec<String>>,
    /// session id → (random, logged in)
    sessions: Mutex<HashMap<u32, (String, bool)>>,
    silent_login: AtomicBool,
    refuse_rpc_open: AtomicBool,
    next_call: AtomicU32,
    connections: AtomicUsize,
    /// Every TCP connection accepted since the start.
    accepted: AtomicUsize,
    stop: CancellationToken,
}

/// A running simulated VTO.
#[derive(Debug)]
pub struct VtoSim {
    tcp: SocketAddr,
    http: SocketAddr,
    shared: Arc<Shared>,
}

impl VtoSim {
    /// Starts a VTO on free loopback ports.
    pub async fn start(user: &str, password: &str) -> std::io::Result<Self> {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal");
        Self::start_on(any, any, user, password).await
    }

    /// Starts a VTO on the given addresses (a stopped one's, to bring it back).
    pub async fn start_on(
        tcp: SocketAddr,
        http: SocketAddr,
        user: &str,
        password: &str,
    ) -> std::io::Result<Self> {
        let tcp_listener = TcpListener::bind(tcp).await?;
        let http_listener = TcpListener::bind(http).await?;
        let shared = Arc::new(Shared {
            user: user.to_owned(),
            password: password.to_owned(),
            gate: DigestGate::new(REALM, user, password),
            events: broadcast::channel(64).0,
            unlocks: watch::channel(Vec::new()).0,
            sessions: Mutex::new(HashMap::new()),
            silent_login: AtomicBool::new(false),
            refuse_rpc_open: AtomicBool::new(false),
            next_call: AtomicU32::new(1),
            connections: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            stop: CancellationToken::new(),
        });
        let sim = Self {
            tcp: tcp_listener.local_addr()?,
            http: http_listener.local_addr()?,
            shared: shared.clone(),
        };
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = s.stop.cancelled() => return,
                    accepted = tcp_listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(serve_tcp(s.clone(), stream));
                        }
                    }
                }
            }
        });
        let app = Router::new()
            .fallback(http_handle)
            .with_state(shared.clone());
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(http_listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(sim)
    }

    /// The JSON-RPC TCP address (port 5000 on a real VTO).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// TCP clients logged in and attached right now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// TCP connections accepted since the start (a client that reconnects
    /// counts again).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Doors opened, each as `rpc` or `cgi`.
    pub fn unlocks(&self) -> watch::Receiver<Vec<String>> {
        self.shared.unlocks.subscribe()
    }

    /// A visitor calls `room`; returns the call id.
    pub fn ring(&self, room: &str) -> String {
        let id = self
            .shared
            .next_call
            .fetch_add(1, Ordering::SeqCst)
            .to_string();
        self.event(
            "Invite",
            "Start",
            json!({"CallID": id, "UserID": room, "LockNum": 1}),
        );
        id
    }

    /// Nobody answered call `id`.
    pub fn no_answer(&self, id: &str) {
        self.event("CallNoAnswered", "Pulse", json!({"CallID": id}));
    }

    /// The call is over.
    pub fn hang_up(&self, id: &str) {
        self.event("Invite", "Stop", json!({"CallID": id}));
    }

    /// An unlock at the station: `method` as the VTO numbers it, with a
    /// card number and (for PIN methods) the code typed.
    pub fn access(&self, method: u64, card: &str, password: &str) {
        self.event(
            "AccessControl",
            "Pulse",
            json!({"Name": "OpenDoor", "Method": method, "CardNo": card, "UserID": "", "Password": password, "Status": 1, "Type": "Entry", "ReaderID": "1"}),
        );
    }

    /// The tamper switch.
    pub fn tamper(&self, active: bool) {
        let action = if active { "Start" } else { "Stop" };
        self.event(
            "ProfileAlarmTransmit",
            action,
            json!({"SenseMethod": "Tamper", "AlarmType": "Alarm"}),
        );
    }

    /// The door contact.
    pub fn door(&self, open: bool) {
        self.event(
            "DoorStatus",
            "Pulse",
            json!({"Status": if open { "Open" } else { "Close" }}),
        );
    }

    /// Never answers `global.login` while `true`.
    pub fn silent_login(&self, silent: bool) {
        self.shared.silent_login.store(silent, Ordering::SeqCst);
    }

    /// Answers `accessControl.openDoor` with "Method not found" while `true`.
    pub fn refuse_rpc_open(&self, refuse: bool) {
        self.shared.refuse_rpc_open.store(refuse, Ordering::SeqCst);
    }

    /// Stops the VTO: listeners close, every connection is dropped.
    pub fn stop(&self) {
        self.shared.stop.cancel();
    }

    fn event(&self, code: &str, action: &str, mut data: Value) {
        if let Some(d) = data.as_object_mut() {
            d.insert("LocaleTime".into(), "2026-12-01 09:00:00".into());
            d.insert("UTC".into(), 1_796_086_800.into());
        }
        let _ = self
            .shared
            .events
            .send(json!({"Action": action, "Code": code, "Data": data, "Index": 0}));
    }
}

impl Drop for VtoSim {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

impl Shared {
    /// Answers one JSON-RPC request; `None` means no answer at all.
    fn rpc(&self, request: &Value) -> Option<Value> {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let method = request.get("method").and_then(Value::as_str).unwrap_or("");
        let session = dahua::session_of(request).unwrap_or(0);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if method == "global.login" {
            if self.silent_login.load(Ordering::SeqCst) {
                return None;
            }
            if let Some((random, _)) = sessions.get(&session).cloned() {
                let given = request
                    .pointer("/params/password")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let user = request
                    .pointer("/params/userName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let expected = dahua::login_hash(&self.user, &self.password, REALM, &random);
                if user == self.user && given == expected {
                    sessions.insert(session, (random, true));
                    return Some(
                        json!({"id": id, "params": {"keepAliveInterval": 60}, "result": true, "session": session}),
                    );
                }
                sessions.remove(&session);
                return Some(
                    json!({"error": {"code": WRONG_PASSWORD, "message": "Invalid password!"}, "id": id, "result": false, "session": session}),
                );
            }
            let session = rand::random_range(1..i32::MAX as u32);
            let random: String = (0..8)
                .map(|_| char::from(b'0' + rand::random_range(0..10u8)))
                .collect();
            sessions.insert(session, (random.clone(), false));
            return Some(json!({
                "error": {"code": LOGIN_CHALLENGE, "message": "Component error: login challenge!"},
                "id": id,
                "params": {"authorization": "0000000000000000000000000000000000000000", "encryption": "Default", "mac": "3CEF8C000000", "random": random, "realm": REALM},
                "session": session,
            }));
        }
        if !sessions.get(&session).is_some_and(|(_, ok)| *ok) {
            return Some(
                json!({"error": {"code": NO_SESSION, "message": "Invalid session in request data!"}, "id": id, "result": false, "session": session}),
            );
        }
        drop(sessions);
        let ok = |params: Value| {
            Some(json!({"id": id, "params": params, "result": true, "session": session}))
        };
        match method {
            "global.keepAlive" => ok(json!({"timeout": 60})),
            "global.logout" => {
                self.sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&session);
                ok(Value::Null)
            }
            "eventManager.attach" => ok(json!({"SID": 513})),
            "magicBox.getDeviceType" => ok(json!({"type": "VTO2202F-P-S2"})),
            "magicBox.getSystemInfo" => {
                ok(json!({"deviceType": "VTO2202F-P-S2", "serialNumber": "SIMVTO0000001"}))
            }
            "accessControl.factory.instance" => {
                Some(json!({"id": id, "result": 1_073_741_823, "session": session}))
            }
            "accessControl.destroy" => ok(Value::Null),
            "accessControl.openDoor" => {
                if self.refuse_rpc_open.load(Ordering::SeqCst) {
                    return Some(
                        json!({"error": {"code": NO_METHOD, "message": "Method not found!"}, "id": id, "result": false, "session": session}),
                    );
                }
                self.opened("rpc");
                ok(Value::Null)
            }
            _ => Some(
                json!({"error": {"code": NO_METHOD, "message": "Method not found!"}, "id": id, "result": false, "session": session}),
            ),
        }
    }

    fn opened(&self, how: &str) {
        self.unlocks.send_modify(|v| v.push(how.to_owned()));
        let _ = self.events.send(json!({"Action": "Pulse", "Code": "DoorStatus", "Data": {"Status": "Open"}, "Index": 0}));
    }
}

async fn serve_tcp(s: Arc<Shared>, mut stream: TcpStream) {
    let mut decoder = FrameDecoder::new();
    let mut events = s.events.subscribe();
    let mut attached: Option<u32> = None;
    let mut buf = [0u8; 4096];
    let mut pushed = 0u32;
    let _counted = Counted::new(&s);
    loop {
        tokio::select! {
            () = s.stop.cancelled() => return,
            n = stream.read(&mut buf) => {
                let Ok(n) = n else { return };
                if n == 0 {
                    return;
                }
                decoder.push(&buf[..n]);
                while let Some(frame) = decoder.next_frame() {
                    let Ok(request) = frame else { return };
                    let Some(reply) = s.rpc(&request) else { continue };
                    let session = dahua::session_of(&reply).unwrap_or(0);
                    if request.get("method").and_then(Value::as_str) == Some("eventManager.attach")
                        && dahua::succeeded(&reply)
                    {
                        attached = Some(session);
                    }
                    let id = request.get("id").and_then(Value::as_u64).unwrap_or(0) as u32;
                    if stream.write_all(&dahua::encode(session, id, &reply)).await.is_err() {
                        return;
                    }
                }
            }
            event = events.recv(), if attached.is_some() => {
                let Ok(event) = event else { continue };
                let session = attached.unwrap_or(0);
                pushed += 1;
                let message = json!({"id": pushed, "method": "client.notifyEventStream", "params": {"SID": 513, "eventList": [event]}, "session": session});
                if stream.write_all(&dahua::encode(session, pushed, &message)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Counts a TCP connection while it lives.
struct Counted(Arc<Shared>);

impl Counted {
    fn new(s: &Arc<Shared>) -> Self {
        s.connections.fetch_add(1, Ordering::SeqCst);
        s.accepted.fetch_add(1, Ordering::SeqCst);
        Self(s.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn http_handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match (method.as_str(), uri.path()) {
        ("POST", "/RPC2_Login" | "/RPC2") => {
            let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "not JSON").into_response();
            };
            match s.rpc(&request) {
                Some(reply) => axum::Json(reply).into_response(),
                None => StatusCode::GATEWAY_TIMEOUT.into_response(),
            }
        }
        ("GET", "/cgi-bin/accessControl.cgi") => {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if !s.gate.check("GET", auth) {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, s.gate.challenge())],
                    "",
                )
                    .into_response();
            }
            if uri.query().is_some_and(|q| q.contains("action=openDoor")) {
                s.opened("cgi");
                (StatusCode::OK, "OK\r\n").into_response()
            } else {
                (StatusCode::BAD_REQUEST, "Error\r\nBad Request!\r\n").into_response()
            }
        }
        _ => (StatusCode::NOT_FOUND, "Error\r\n").into_response(),
    }
}
