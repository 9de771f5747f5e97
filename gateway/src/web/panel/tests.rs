//! Router-level tests of the panel (`tower::ServiceExt::oneshot`, no
//! socket): login and sessions, CSRF on every state-changing route, roles,
//! lockout, security headers, setup link, forms that refuse half-written
//! input. A real store, pipeline and simulated tank sit behind the router.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use drivers::Class;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::*;
use crate::auth::{LockoutPolicy, Role, SessionPolicy};
use crate::config::{DeviceConfig, DeviceKind, SupervisorConfig};
use crate::pipeline::{Pipeline, Stamper};
use crate::store::{JournalQuery, Store, StoreConfig};
use crate::tasks::Tasks;
use crate::web::{self, PanelState, Readiness};

const REMOTE: ([u8; 4], u16) = ([10, 0, 0, 9], 50_000);

struct Harness {
    router: Router,
    auth: Auth,
    board: LaneBoard,
    plates: Arc<PlateRegistry>,
    credentials: Arc<CredentialStore>,
    journal: Journal,
    pipeline: crate::pipeline::PipelineHandle,
    facility: crate::facility::Facility,
    cctv: crate::surveillance::Surveillance,
    intercom: crate::intercom::Intercom,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    _tasks: Tasks,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn harness() -> Harness {
    harness_with(None).await
}

/// The harness, with a `modbus-points` device when given one.
async fn harness_with(points: Option<DeviceConfig>) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        group_commit_window: Duration::ZERO,
        ..StoreConfig::new(dir.path().join("g.db"))
    };
    let (store, _) = Store::open(config).expect("store");
    let auth = Auth::new(
        store.connect().expect("connect"),
        SessionPolicy {
            idle: Duration::from_secs(600),
            absolute: Duration::from_secs(3600),
        },
        LockoutPolicy {
            user_failures: 3,
            address_failures: 100,
            duration: Duration::from_secs(900),
        },
    );
    let metrics = Arc::new(Metrics::new());
    let cancel = CancellationToken::new();
    let mut tasks = Tasks::default();
    let (device_tx, device_rx) = mpsc::channel(64);
    let devices: Vec<DeviceConfig> = [DeviceConfig {
        id: "tank-1".into(),
        name: "1号楼水箱".into(),
        kind: DeviceKind::SimTank {
            height_m: 4.0,
            interval: Duration::from_secs(3600),
        },
    }]
    .into_iter()
    .chain(points)
    .collect();
    let built = crate::devices::build(
        &devices,
        &crate::doors::hardware::SimHardware::default(),
        &mut crate::devices::Buses::default(),
    );
    for (name, bus) in built.buses {
        tasks.spawn(name, bus.run());
    }
    let facility = crate::facility::Facility::new(built.points);
    let images =
        crate::lanes::images::ImageStore::open(dir.path().join("images"), 1 << 30, metrics.clone())
            .expect("images");
    let cctv = crate::surveillance::Surveillance::new(
        built.cctv,
        images,
        metrics.clone(),
        crate::surveillance::Limits::default(),
    );
    let drivers = crate::supervisor::start(
        built.supervised,
        &device_tx,
        &SupervisorConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            drain_budget: Duration::from_secs(1),
        },
        &cancel,
        &mut tasks,
        &crate::tasks::CoreWatch::detached(),
    );
    let feed = EventFeed::new();
    let (pipeline, handle) = Pipeline::new(
        device_rx,
        store.clone(),
        drivers.clone(),
        Stamper::new("e1", "g1"),
        Vec::new(),
        metrics.clone(),
        feed.clone(),
    );
    tokio::spawn(pipeline.run(cancel.clone()));
    let journal = Journal::new(&store).expect("journal");
    let panel = Panel::new(metrics.clone(), cancel.clone(), false);
    let intercom = crate::intercom::Intercom::new();
    let board = LaneBoard::new(&[
        crate::config::LaneConfig {
            id: "south-in".into(),
            name: "南门入口".into(),
            direction: crate::vocab::lane::Direction::Entry,
            barrier: Some("tank-1".into()),
            min_confidence: 80,
            exit_policy: crate::vocab::lane::ExitPolicy::RecordedOrListed,
            repeat_window: Duration::from_secs(10),
        },
        crate::config::LaneConfig {
            id: "south-out".into(),
            name: "南门出口".into(),
            direction: crate::vocab::lane::Direction::Exit,
            barrier: None,
            min_confidence: 80,
            exit_policy: crate::vocab::lane::ExitPolicy::RecordedOrListed,
            repeat_window: Duration::from_secs(10),
        },
    ]);
    let plates = Arc::new(PlateRegistry::open(&store).expect("plates"));
    let credentials = Arc::new(
        CredentialStore::open(&store)
            .expect("credentials")
            .with_known_groups(["b3".to_owned(), "basement".to_owned()]),
    );
    panel.set_core(PanelCore {
        auth: auth.clone(),
        journal: journal.clone(),
        pipeline: handle.clone(),
        drivers,
        feed,
        images_dir: dir.path().join("images"),
        board: board.clone(),
        plates: plates.clone(),
        credentials: credentials.clone(),
        uplink_status: Arc::new(UplinkStatus::default()),
        facility: facility.clone(),
        cctv: cctv.clone(),
        intercom: intercom.clone(),
        eraser: crate::privacy::Eraser {
            store: store.clone(),
            images: crate::lanes::images::ImageStore::open(
                dir.path().join("images"),
                1 << 30,
                metrics.clone(),
            )
            .expect("images"),
            key: None,
        },
    });
    let (_tx, readiness) = watch::channel(Readiness::Ready);
    let router = web::router(PanelState {
        metrics: metrics.clone(),
        readiness,
        metrics_token: None,
        panel,
        api: None,
    })
    .layer(MockConnectInfo(SocketAddr::from(REMOTE)));
    Harness {
        router,
        auth,
        board,
        plates,
        credentials,
        journal,
        pipeline: handle,
        facility,
        cctv,
        intercom,
        metrics,
        cancel,
        _tasks: tasks,
        _dir: dir,
    }
}

/// A response, read whole.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    /// The page after a panel action's `303` (post/redirect/get), followed
    /// like a browser does.
    followed: bool,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

/// A browser: a cookie jar in front of the router.
struct Browser<'h> {
    h: &'h Harness,
    cookies: HashMap<String, String>,
}

impl<'h> Browser<'h> {
    fn new(h: &'h Harness) -> Self {
        Self {
            h,
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, request: axum::http::request::Builder, body: Body) -> Reply {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = request
            .header(header::COOKIE, cookie)
            .body(body)
            .expect("request");
        let response = self
            .h
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .expect("body");
        let reply = Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            followed: false,
        };
        for set in reply.set_cookies() {
            let pair = set.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || set.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        reply
    }

    async fn get(&mut self, uri: &str) -> Reply {
        self.send(Request::get(uri), Body::empty()).await
    }

    /// Posts a form; a panel action's `303` is followed to the page it
    /// leads to (the login, logout and setup redirects are not).
    async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let reply = self
            .send(
                Request::post(uri)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
                Body::from(body),
            )
            .await;
        let session_route = ["/login", "/logout", "/setup"]
            .iter()
            .any(|r| uri.starts_with(r));
        if reply.status == StatusCode::SEE_OTHER && !session_route {
            let location = reply.location().to_owned();
            let mut page = self.get(&location).await;
            page.followed = true;
            return page;
        }
        reply
    }

    /// The login form's double-submit token.
    async fn login(&mut self, name: &str, password: &str) -> Reply {
        let page = self.get("/login").await;
        let pre = hidden(&page.body, "csrf");
        self.post(
            "/login",
            &[
                ("csrf", &pre),
                ("name", name),
                ("password", password),
                ("next", "/devices"),
            ],
        )
        .await
    }

    /// The session's CSRF token, from a page's meta tag.
    async fn csrf(&mut self) -> String {
        let page = self.get("/devices").await;
        meta(&page.body, "csrf-token")
    }
}

/// The value of the first hidden input `name`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).map(|i| i + marker.len()).unwrap_or(0);
    html[start..].split('"').next().unwrap_or("").to_owned()
}

fn meta(html: &str, name: &str) -> String {
    let marker = format!("<meta name=\"{name}\" content=\"");
    let start = html.find(&marker).map(|i| i + marker.len()).unwrap_or(0);
    html[start..].split('"').next().unwrap_or("").to_owned()
}

async fn add(h: &Harness, name: &str, role: Role) {
    h.auth
        .add_user(name, role, "a long password")
        .await
        .expect("add user");
}

async fn journal_kinds(h: &Harness) -> Vec<String> {
    h.journal
        .query(JournalQuery {
            classes: vec![Class::Audit],
            limit: 1000,
            ..JournalQuery::default()
        })
        .await
        .expect("journal")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn headers_forbid_inline_script_framing_and_sniffing() {
    let h = harness().await;
    let mut b = Browser::new(&h);
    for uri in ["/login", "/live", "/nonexistent"] {
        let reply = b.get(uri).await;
        let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(csp.contains("default-src 'self'"), "{uri}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(reply.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(reply.headers[header::REFERRER_POLICY], "same-origin");
    }
    let page = b.get("/login").await;
    assert!(!page.body.contains("<script>"), "no inline script");
    assert!(!page.body.contains("style="), "no inline style");
}

#[tokio::test]
async fn login_sets_a_strict_httponly_cookie_and_rotates_the_session() {
    let h = harness().await;
    add(&h, "王保安", Role::Guard).await;
    let mut b = Browser::new(&h);

    let page = b.get("/live").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=%2Flive");

    let reply = b.login("王保安", "a long password").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), "/devices");
    let cookie = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("gh_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "no TLS here: {cookie}");
    let first = b.cookies["gh_session"].clone();
    let live = b.get("/live").await;
    assert_eq!(live.status, StatusCode::OK);
    assert!(live.body.contains("实时事件"), "zh-CN by default");

    // A logged-in browser is sent on from the login page.
    assert_eq!(b.get("/login").await.status, StatusCode::SEE_OTHER);
    // Logging in over an existing session token (e.g. one planted by an
    // attacker) ends that session and issues a new one.
    let mut fixated = Browser::new(&h);
    let page = fixated.get("/login").await;
    let pre = hidden(&page.body, "csrf");
    fixated.cookies.insert("gh_session".into(), first.clone());
    let again = fixated
        .post(
            "/login",
            &[
                ("csrf", &pre),
                ("name", "王保安"),
                ("password", "a long password"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let second = fixated.cookies["gh_session"].clone();
    assert_ne!(first, second);
    assert!(h.auth.session(&first, false).await.expect("q").is_none());
    assert!(h.auth.session(&second, false).await.expect("q").is_some());
    assert!(journal_kinds(&h).await.contains(&"user_login".to_owned()));

    let english = fixated.get("/live?lang=en").await;
    assert!(english.body.contains("Live events"), "English switchable");
}

#[tokio::test]
async fn login_with_a_wrong_password_is_refused_and_audited_without_the_password() {
    let h = harness().await;
    add(&h, "li", Role::Manager).await;
    let mut b = Browser::new(&h);
    let reply = b.login("li", "not-the-password-xyz").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("用户名或密码错误"), "{}", reply.body);
    assert!(!b.cookies.contains_key("gh_session"));
    let failed = h
        .journal
        .query(JournalQuery {
            kind: Some("user_login_failed".into()),
            limit: 10,
            ..JournalQuery::default()
        })
        .await
        .expect("journal");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].body["actor"], "li");
    assert_eq!(failed[0].body["remote"], "10.0.0.9");
    assert!(!failed[0].body.to_string().contains("not-the-password-xyz"));
}

/// The panel answers only to its addresses, `localhost` and `[panel]
/// hosts` (421 otherwise: DNS rebinding), and sends Strict-Transport-
/// Security when it is served over TLS, never over plain HTTP.
#[tokio::test]
async fn host_header_is_checked_and_hsts_is_sent_only_under_tls() {
    for tls in [false, true] {
        let metrics = Arc::new(Metrics::new());
        let panel = Panel::new(metrics.clone(), CancellationToken::new(), tls)
            .with_hosts(vec!["gate.estate.example".to_owned()]);
        let (_tx, readiness) = watch::channel(Readiness::Ready);
        let router = web::router(PanelState {
            metrics,
            readiness,
            metrics_token: None,
            panel,
            api: None,
        })
        .layer(MockConnectInfo(SocketAddr::from(REMOTE)));
        let get = |host: &'static str| {
            router.clone().oneshot(
                Request::get("/login")
                    .header(header::HOST, host)
                    .body(Body::empty())
                    .expect("request"),
            )
        };
        for host in ["gate.estate.example", "192.168.1.10:8080", "localhost"] {
            let reply = get(host).await.expect("infallible");
            assert_ne!(reply.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
            assert_eq!(
                reply
                    .headers()
                    .get(header::STRICT_TRANSPORT_SECURITY)
                    .is_some(),
                tls,
                "{host}, TLS {tls}"
            );
        }
        let rebound = get("attacker.example").await.expect("infallible");
        assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST);
    }
}

#[tokio::test]
async fn csrf_token_is_required_on_every_state_changing_route() {
    let h = harness().await;
    add(&h, "admin", Role::Admin).await;
    add(&h, "guard-1", Role::Guard).await;
    let mut b = Browser::new(&h);
    assert_eq!(
        b.login("admin", "a long password").await.status,
        StatusCode::SEE_OTHER
    );
    let token = b.csrf().await;
    assert_eq!(token.len(), 64);
    let routes = [
        "/logout",
        "/devices/tank-1/command",
        "/devices/tank-1/restart",
        "/users",
        "/users/guard-1/password",
        "/users/guard-1/remove",
        "/cctv/cctv-1/snapshot",
        "/intercom/b3-door/unlock",
    ];
    for route in routes {
        let missing = b
            .post(route, &[("reason", "test"), ("command", "poll")])
            .await;
        assert_eq!(
            missing.status,
            StatusCode::FORBIDDEN,
            "{route} without token"
        );
        let wrong = b
            .post(route, &[("csrf", "0".repeat(64).as_str()), ("reason", "x")])
            .await;
        assert_eq!(
            wrong.status,
            StatusCode::FORBIDDEN,
            "{route} with a wrong token"
        );
    }
    let text = h.metrics.render();
    assert!(
        text.contains(r#"gatehouse_http_rejected_total{route="panel",reason="csrf"} 16"#),
        "{text}"
    );
    // Nothing happened: the guard still exists, we are still logged in.
    assert_eq!(h.auth.user_count().await.expect("count"), 2);
    assert_eq!(b.get("/users").await.status, StatusCode::OK);

    // The header form, as fetch() sends it, is accepted.
    let reply = b
        .send(
            Request::post("/devices/tank-1/command")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("X-CSRF-Token", &token),
            Body::from("command=poll&reason=%E6%A3%80%E6%9F%A5"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);

    // The login form needs its double-submit token too.
    let mut other = Browser::new(&h);
    let login = other
        .post(
            "/login",
            &[("name", "admin"), ("password", "a long password")],
        )
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn role_guard_cannot_reach_user_management_audit_or_restart() {
    let h = harness().await;
    add(&h, "admin", Role::Admin).await;
    add(&h, "guard-1", Role::Guard).await;
    let mut guard = Browser::new(&h);
    guard.login("guard-1", "a long password").await;
    let token = guard.csrf().await;
    assert_eq!(guard.get("/users").await.status, StatusCode::FORBIDDEN);
    assert_eq!(guard.get("/audit").await.status, StatusCode::FORBIDDEN);
    assert_eq!(guard.get("/audit.csv").await.status, StatusCode::FORBIDDEN);
    let add_user = guard
        .post(
            "/users",
            &[
                ("csrf", &token),
                ("name", "evil"),
                ("role", "admin"),
                ("password", "a long password"),
                ("confirm", "a long password"),
            ],
        )
        .await;
    assert_eq!(add_user.status, StatusCode::FORBIDDEN);
    assert_eq!(h.auth.user_count().await.expect("count"), 2);
    let restart = guard
        .post(
            "/devices/tank-1/restart",
            &[("csrf", &token), ("reason", "x")],
        )
        .await;
    assert_eq!(restart.status, StatusCode::FORBIDDEN);
    let page = guard.get("/devices/tank-1").await;
    assert!(
        !page.body.contains("/restart"),
        "no restart form for a guard"
    );
    assert!(
        !page.body.contains("href=\"/users\""),
        "no users link for a guard"
    );
    // A guard may actuate with a reason.
    let command = guard
        .post(
            "/devices/tank-1/command",
            &[
                ("csrf", &token),
                ("command", "poll"),
                ("reason", "例行检查"),
            ],
        )
        .await;
    assert_eq!(command.status, StatusCode::OK);
    assert!(command.body.contains("已执行"), "{}", command.body);

    let mut admin = Browser::new(&h);
    admin.login("admin", "a long password").await;
    assert_eq!(admin.get("/users").await.status, StatusCode::OK);
    let token = admin.csrf().await;
    let restart = admin
        .post(
            "/devices/tank-1/restart",
            &[("csrf", &token), ("reason", "升级后重连")],
        )
        .await;
    assert_eq!(restart.status, StatusCode::OK);
    assert!(restart.body.contains("已重启驱动"), "{}", restart.body);
    let audit = admin.get("/audit").await;
    assert!(audit.body.contains("升级后重连"), "restart audited");
    assert!(audit.body.contains("例行检查"), "command audited");
}

#[tokio::test]
async fn lockout_after_repeated_failures_refuses_the_right_password() {
    let h = harness().await;
    add(&h, "sun", Role::Guard).await;
    add(&h, "admin", Role::Admin).await;
    let mut b = Browser::new(&h);
    // From the third failure on, each one makes the next attempt wait.
    for _ in 0..3 {
        assert_eq!(
            b.login("sun", "wrong password!!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let waiting = b.login("sun", "a long password").await;
    assert_eq!(waiting.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(waiting.body.contains("1 秒后再试"), "{}", waiting.body);
    assert!(!b.cookies.contains_key("gh_session"));
    let kinds = journal_kinds(&h).await;
    assert_eq!(kinds.iter().filter(|k| *k == "user_locked").count(), 1);
    assert_eq!(
        kinds.iter().filter(|k| *k == "user_login_failed").count(),
        3
    );
    // A name typed at the form is capped before it is counted or audited.
    let long = "x".repeat(50_000);
    b.login(&long, "wrong password!!").await;
    let failed = audit_bodies(&h, "user_login_failed").await;
    assert!(
        failed
            .iter()
            .all(|f| f["actor"].as_str().is_some_and(|a| a.chars().count() <= 64))
    );

    // An admin clears the delay (audited); the right password works again.
    let mut admin = Browser::new(&h);
    admin.login("admin", "a long password").await;
    let token = admin.csrf().await;
    let cleared = admin.post("/users/sun/unlock", &[("csrf", &token)]).await;
    assert!(
        cleared.followed && cleared.body.contains("已解除登录限制"),
        "{}",
        cleared.body
    );
    assert!(
        journal_kinds(&h)
            .await
            .contains(&"user_unlocked".to_owned())
    );
    assert_eq!(
        b.login("sun", "a long password").await.status,
        StatusCode::SEE_OTHER
    );
}

/// `gatehouse user unlock NAME` leaves a request in the shared database;
/// the running panel applies it at the name's next login attempt, audited
/// as done from the command line, so the right password works at once.
#[tokio::test]
async fn an_unlock_requested_from_the_command_line_clears_the_delay_and_is_audited() {
    let h = harness().await;
    add(&h, "sun", Role::Guard).await;
    let mut b = Browser::new(&h);
    for _ in 0..3 {
        b.login("sun", "wrong password!!").await;
    }
    assert_eq!(
        b.login("sun", "a long password").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // What `gatehouse user unlock sun` writes.
    h.auth.request_unlock("sun").await.expect("requested");
    assert_eq!(
        b.login("sun", "a long password").await.status,
        StatusCode::SEE_OTHER
    );
    let unlocked = audit_bodies(&h, "user_unlocked").await;
    assert_eq!(unlocked.len(), 1, "{unlocked:?}");
    assert_eq!(unlocked[0]["actor"], "gatehouse user unlock");
    assert_eq!(unlocked[0]["target"], "sun");
    // The request was used up.
    assert!(!h.auth.apply_unlock_request("sun").await.expect("read"));
}

#[tokio::test]
async fn session_ends_everywhere_when_an_admin_resets_the_password() {
    let h = harness().await;
    add(&h, "admin", Role::Admin).await;
    add(&h, "guard-1", Role::Guard).await;
    let mut guard = Browser::new(&h);
    guard.login("guard-1", "a long password").await;
    assert_eq!(guard.get("/live").await.status, StatusCode::OK);
    let mut admin = Browser::new(&h);
    admin.login("admin", "a long password").await;
    let token = admin.csrf().await;
    let short = admin
        .post(
            "/users/guard-1/password",
            &[("csrf", &token), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.body.contains("密码至少需要 10 个字符"));
    let reset = admin
        .post(
            "/users/guard-1/password",
            &[("csrf", &token), ("password", "a new long password")],
        )
        .await;
    assert!(reset.followed && reset.status == StatusCode::OK);
    assert_eq!(guard.get("/live").await.status, StatusCode::SEE_OTHER);
    assert!(
        journal_kinds(&h)
            .await
            .contains(&"password_changed".to_owned())
    );
    let removed = admin.post("/users/admin/remove", &[("csrf", &token)]).await;
    assert_eq!(removed.status, StatusCode::CONFLICT, "not the last admin");
}

/// An open live stream ends with its session: after a logout and after
/// the user's removal, within its re-check (seconds), not at the next
/// event or keep-alive. A stream that outlived its session would hang here
/// (the generous bound only turns a hang into a failure).
#[tokio::test]
async fn live_stream_ends_after_logout_or_the_users_removal() {
    let h = harness().await;
    add(&h, "admin", Role::Admin).await;
    add(&h, "sun", Role::Guard).await;
    add(&h, "li", Role::Guard).await;
    let mut admin = Browser::new(&h);
    admin.login("admin", "a long password").await;
    let admin_token = admin.csrf().await;
    for (name, by_removal) in [("sun", false), ("li", true)] {
        let mut guard = Browser::new(&h);
        guard.login(name, "a long password").await;
        let cookie = guard
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let stream = h
            .router
            .clone()
            .oneshot(
                Request::get("/live/stream")
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(stream.status(), StatusCode::OK, "{name}");
        if by_removal {
            let removed = admin
                .post(&format!("/users/{name}/remove"), &[("csrf", &admin_token)])
                .await;
            assert!(removed.followed, "{}", removed.body);
        } else {
            let token = guard.csrf().await;
            let out = guard.post("/logout", &[("csrf", &token)]).await;
            assert_eq!(out.status, StatusCode::SEE_OTHER);
            assert_eq!(guard.get("/live").await.status, StatusCode::SEE_OTHER);
        }
        tokio::time::timeout(
            Duration::from_secs(60),
            axum::body::to_bytes(stream.into_body(), 1 << 22),
        )
        .await
        .unwrap_or_else(|_| panic!("the stream of {name} did not end"))
        .expect("body");
    }
}

#[tokio::test]
async fn forms_show_errors_next_to_fields_and_store_nothing_half_written() {
    let h = harness().await;
    add(&h, "admin", Role::Admin).await;
    let mut b = Browser::new(&h);
    b.login("admin", "a long password").await;
    let token = b.csrf().await;
    let no_reason = b
        .post(
            "/devices/tank-1/command",
            &[("csrf", &token), ("command", "poll"), ("reason", "  ")],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_reason.body.contains("请填写原因"), "{}", no_reason.body);
    let not_offered = b
        .post(
            "/devices/tank-1/command",
            &[
                ("csrf", &token),
                ("command", "open_barrier"),
                ("reason", "test"),
            ],
        )
        .await;
    assert_eq!(not_offered.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!journal_kinds(&h).await.contains(&"command".to_owned()));

    let bad_user = b
        .post(
            "/users",
            &[
                ("csrf", &token),
                ("name", "bad name"),
                ("role", "guard"),
                ("password", "a long password"),
                ("confirm", "another password"),
            ],
        )
        .await;
    assert_eq!(bad_user.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_user.body.contains("只能使用字母"), "{}", bad_user.body);
    assert!(bad_user.body.contains("两次输入的密码不一致"));
    assert_eq!(h.auth.user_count().await.expect("count"), 1);

    let bad_date = b.get("/audit?from=2025-13-45").await;
    assert_eq!(bad_date.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_date.body.contains("日期格式"));
}

#[tokio::test]
async fn audit_csv_exports_the_log_with_a_bom_and_defused_cells() {
    let h = harness().await;
    add(&h, "admin", Role::Admin).await;
    let mut b = Browser::new(&h);
    b.login("admin", "a long password").await;
    let token = b.csrf().await;
    b.post(
        "/devices/tank-1/command",
        &[
            ("csrf", &token),
            ("command", "poll"),
            ("reason", "=HYPERLINK(\"x\")"),
        ],
    )
    .await;
    let csv = b.get("/audit.csv?kind=command").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.body.starts_with('\u{feff}'), "BOM for Excel");
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );
    assert!(csv.body.contains("'=HYPERLINK"), "{}", csv.body);
    assert_eq!(csv.body.lines().count(), 3, "{}", csv.body);
    let last = csv.body.lines().last().expect("a last line");
    assert!(
        last.starts_with("# exported by admin at "),
        "the watermark names who and when: {last}"
    );
    let exports = audit_bodies(&h, "data_exported").await;
    assert_eq!(exports.len(), 1, "{exports:?}");
    assert_eq!(exports[0]["actor"], "admin");
    assert_eq!(exports[0]["target"], "audit");
    assert_eq!(exports[0]["detail"], "1 rows", "counts, not contents");
}

#[tokio::test]
async fn setup_link_creates_the_first_admin_once() {
    let h = harness().await;
    let token = h.auth.setup().issue(std::time::Instant::now());
    let mut b = Browser::new(&h);
    let login = b.get("/login").await;
    assert!(
        login.body.contains("gatehouse user add"),
        "hint when no users"
    );
    assert_eq!(
        b.get("/setup?token=wrong").await.status,
        StatusCode::NOT_FOUND
    );
    let page = b.get(&format!("/setup?token={token}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let pre = hidden(&page.body, "csrf");
    let short = b
        .post(
            "/setup",
            &[
                ("csrf", &pre),
                ("token", &token),
                ("name", "zhang"),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pre = hidden(&short.body, "csrf");
    let created = b
        .post(
            "/setup",
            &[
                ("csrf", &pre),
                ("token", &token),
                ("name", "zhang"),
                ("password", "a long password"),
                ("confirm", "a long password"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert_eq!(
        b.get("/users").await.status,
        StatusCode::OK,
        "logged in as admin"
    );
    let again = b.get(&format!("/setup?token={token}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "single use");
    assert!(journal_kinds(&h).await.contains(&"user_added".to_owned()));
}

fn pending_read(id: &str, plate: &str, candidate: &str) -> crate::lanes::PendingRead {
    crate::lanes::PendingRead {
        id: id.into(),
        lane: "south-in".into(),
        camera: "cam-south-in".into(),
        plate: plate.into(),
        candidate: Some(candidate.into()),
        reason: crate::rules::vehicle::Reason::FuzzyMatch {
            candidate: candidate.into(),
        },
        images: vec![],
        time_ms: drivers::contract::now_ms(),
    }
}

/// While a car waits for a guard, every page's navigation carries a badge
/// with the count (so a guard on another page sees it); none otherwise.
#[tokio::test]
async fn a_waiting_car_shows_a_badge_on_every_page() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    let mut b = Browser::new(&h);
    b.login("guard-1", "a long password").await;
    let pages = ["/live", "/lanes", "/visitors", "/devices", "/traffic"];
    for page in pages {
        let reply = b.get(page).await;
        assert_eq!(reply.status, StatusCode::OK, "{page}");
        assert!(!reply.body.contains("id=\"waiting-badge\""), "{page}");
    }
    h.board
        .add_pending(pending_read("p1", "苏ABHK52", "苏A8HK52"));
    h.board
        .add_pending(pending_read("p2", "苏ABHK53", "苏A8HK52"));
    for page in pages {
        let body = b.get(page).await.body;
        let badge = body
            .split("id=\"waiting-badge\"")
            .nth(1)
            .unwrap_or_else(|| panic!("no badge on {page}"));
        assert!(
            badge.starts_with(" title=\"有车辆等待确认\">2</span>"),
            "{page}: {badge:.80}"
        );
    }
}

async fn audit_bodies(h: &Harness, kind: &str) -> Vec<serde_json::Value> {
    h.journal
        .query(JournalQuery {
            classes: vec![Class::Audit],
            limit: 1000,
            ..JournalQuery::default()
        })
        .await
        .expect("journal")
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.body)
        .collect()
}

#[tokio::test]
async fn csrf_and_roles_on_the_lanes_and_visitors_forms() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    h.board
        .add_pending(pending_read("p1", "苏ABHK52", "苏A8HK52"));
    let mut b = Browser::new(&h);
    b.login("guard-1", "a long password").await;
    for route in [
        "/lanes/south-in/command",
        "/lanes/pending/p1",
        "/visitors",
        "/visitors/1/revoke",
    ] {
        let reply = b
            .post(
                route,
                &[
                    ("reason", "x"),
                    ("command", "open_barrier"),
                    ("decision", "allow"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{route}");
    }
    assert_eq!(h.board.pending().len(), 1, "nothing was decided");
    let page = b.get("/lanes").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("苏ABHK52") && page.body.contains("苏A8HK52"));
    assert!(page.body.contains("/lanes/pending/p1"));
    let live = b.get("/lanes/live").await;
    assert!(live.body.contains("id=\"lanes-live\"") && !live.body.contains("<html"));
    assert_eq!(b.get("/visitors").await.status, StatusCode::OK);
}

#[tokio::test]
async fn lanes_command_needs_a_reason_and_is_audited() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    let mut b = Browser::new(&h);
    b.login("guard-1", "a long password").await;
    let csrf = b.csrf().await;
    let missing = b
        .post(
            "/lanes/south-in/command",
            &[
                ("csrf", &csrf),
                ("command", "open_barrier"),
                ("reason", " "),
            ],
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        missing.body.contains("id=\"reason-error\""),
        "{}",
        missing.body
    );
    assert!(audit_bodies(&h, "command").await.is_empty());
    let unknown = b
        .post(
            "/lanes/nowhere/command",
            &[
                ("csrf", &csrf),
                ("command", "open_barrier"),
                ("reason", "r"),
            ],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let done = b
        .post(
            "/lanes/south-in/command",
            &[
                ("csrf", &csrf),
                ("command", "open_barrier"),
                ("reason", "救护车"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("id=\"flash\""), "{}", done.body);
    let audits = audit_bodies(&h, "command").await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    let text = audits[0].to_string();
    assert!(
        text.contains("救护车") && text.contains("guard-1"),
        "{text}"
    );
}

/// A lane whose barrier is the camera's relay says so, offers only what it
/// can do (open, with a reason, audited), and refuses the rest without
/// sending anything.
#[tokio::test]
async fn camera_relay_lane_offers_and_sends_only_open() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    let mut b = Browser::new(&h);
    b.login("guard-1", "a long password").await;
    let page = b.get("/lanes").await;
    let card = page
        .body
        .split("id=\"lane-south-out\"")
        .nth(1)
        .and_then(|rest| rest.split("</article>").next())
        .expect("the camera lane's card");
    assert!(card.contains("由相机控制"), "{card}");
    assert!(card.contains("value=\"open_barrier\""), "{card}");
    for other in ["close_barrier", "hold_open", "release_hold"] {
        assert!(!card.contains(other), "{other} offered: {card}");
    }
    let barrier_lane = page
        .body
        .split("id=\"lane-south-in\"")
        .nth(1)
        .and_then(|rest| rest.split("</article>").next())
        .expect("the barrier lane's card");
    assert!(
        barrier_lane.contains("value=\"hold_open\""),
        "{barrier_lane}"
    );
    let csrf = b.csrf().await;
    let close = b
        .post(
            "/lanes/south-out/command",
            &[
                ("csrf", &csrf),
                ("command", "close_barrier"),
                ("reason", "试试"),
            ],
        )
        .await;
    assert!(
        close.followed && close.body.contains("南门出口: 由相机控制"),
        "{}",
        close.body
    );
    assert!(audit_bodies(&h, "command").await.is_empty(), "nothing sent");
    let open = b
        .post(
            "/lanes/south-out/command",
            &[
                ("csrf", &csrf),
                ("command", "open_barrier"),
                ("reason", "送货车"),
            ],
        )
        .await;
    assert!(open.followed, "{}", open.body);
    let audits = audit_bodies(&h, "command").await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["command"]["command"], "open_barrier");
    assert_eq!(audits[0]["origin"]["reason"], "送货车");
}

#[tokio::test]
async fn lanes_pending_read_is_decided_once_by_the_guard() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    h.board
        .add_pending(pending_read("p1", "苏ABHK52", "苏A8HK52"));
    let mut b = Browser::new(&h);
    b.login("guard-1", "a long password").await;
    let csrf = b.csrf().await;
    let deny = b
        .post(
            "/lanes/pending/p1",
            &[("csrf", &csrf), ("decision", "deny"), ("reason", "")],
        )
        .await;
    assert_eq!(deny.status, StatusCode::OK, "{}", deny.body);
    assert!(h.board.pending().is_empty());
    let decisions = audit_bodies(&h, "guard_decision").await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["allowed"], false);
    assert_eq!(decisions[0]["origin"]["actor"], "guard-1");
    assert_eq!(decisions[0]["origin"]["reason"], "保安确认拒绝");
    let again = b
        .post(
            "/lanes/pending/p1",
            &[("csrf", &csrf), ("decision", "allow")],
        )
        .await;
    assert!(again.followed, "post/redirect/get");
    assert!(
        again.body.contains("class=\"flash warn\""),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn visitors_form_shows_errors_next_to_fields_and_writes_nothing_half() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    let mut b = Browser::new(&h);
    b.login("guard-1", "a long password").await;
    let csrf = b.csrf().await;
    let bad = b
        .post(
            "/visitors",
            &[
                ("csrf", &csrf),
                ("plate", "ABC"),
                ("host_unit", "3-2-1201"),
                ("valid_from", "2026-05-02 10:00"),
                ("valid_to", "2026-05-01 10:00"),
                ("usage", "single"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"plate-error\""), "{}", bad.body);
    assert!(
        bad.body.contains("结束时间必须晚于开始时间"),
        "{}",
        bad.body
    );
    assert!(h.plates.visitor_passes().expect("passes").is_empty());
    assert!(audit_bodies(&h, "visitor_registered").await.is_empty());

    let good = b
        .post(
            "/visitors",
            &[
                ("csrf", &csrf),
                ("plate", "苏e12345"),
                ("host_unit", "3-2-1201"),
                ("valid_from", "2026-05-01 10:00"),
                ("valid_to", "2099-05-02 10:00"),
                ("usage", "multiple"),
            ],
        )
        .await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.body);
    let passes = h.plates.visitor_passes().expect("passes");
    assert_eq!(passes.len(), 1);
    assert_eq!(passes[0].plate, "苏E12345");
    assert!(!passes[0].single_use);
    assert!(good.body.contains("苏E12345"));
    let audits = audit_bodies(&h, "visitor_registered").await;
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0]["actor"], "guard-1");

    let revoke = b
        .post(
            &format!("/visitors/{}/revoke", passes[0].id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    assert_eq!(audit_bodies(&h, "visitor_revoked").await.len(), 1);
    let after = b.get("/visitors").await;
    assert!(
        !after.body.contains("苏E12345"),
        "revoked passes are not listed"
    );
}

#[tokio::test]
async fn role_guard_cannot_reach_residents_vehicles() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    let mut b = Browser::new(&h);
    b.login("guard-1", "a long password").await;
    let csrf = b.csrf().await;
    assert_eq!(b.get("/vehicles").await.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get("/vehicles.csv").await.status, StatusCode::FORBIDDEN);
    for route in ["/vehicles", "/vehicles/import", "/vehicles/blacklist"] {
        let reply = b
            .post(
                route,
                &[
                    ("csrf", &csrf),
                    ("plate", "苏A8HK52"),
                    ("house", "1"),
                    ("reason", "x"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{route}");
    }
    assert!(h.plates.snapshot().residents.is_empty());
    assert!(h.plates.snapshot().blacklist.is_empty());
    let nav = b.get("/lanes").await.body;
    assert!(!nav.contains("href=\"/vehicles\""));
    // Every role sees the lanes, traffic and platform pages.
    for page in ["/lanes", "/traffic", "/platform"] {
        assert_eq!(b.get(page).await.status, StatusCode::OK, "{page}");
    }
}

#[tokio::test]
async fn vehicles_csv_import_previews_rejected_lines_before_writing() {
    let h = harness().await;
    add(&h, "mgr", Role::Manager).await;
    let mut b = Browser::new(&h);
    b.login("mgr", "a long password").await;
    let csrf = b.csrf().await;
    let csv = "plate,house,owner,valid_from,valid_to,lanes\n\
               苏A8HK52,3-2-1201,王芳,,,\n\
               not a plate,1-1-101,李雷,,,\n\
               苏B12345,5-1-302,韩梅梅,2026-01-01,2026-12-31,south-in\n";
    let check = b
        .post(
            "/vehicles/import",
            &[("csrf", &csrf), ("step", "check"), ("csv", csv)],
        )
        .await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.body);
    assert!(check.body.contains("id=\"rows-ok\">2<"), "{}", check.body);
    assert!(
        check.body.contains("id=\"rows-rejected\">1<"),
        "{}",
        check.body
    );
    assert!(
        check.body.contains("<td>3</td>"),
        "the rejected line number"
    );
    assert!(
        h.plates.snapshot().residents.is_empty(),
        "nothing written yet"
    );
    assert!(
        journal_kinds(&h)
            .await
            .iter()
            .all(|k| k != "residents_imported")
    );

    // All or nothing: writing a file with a rejected row writes nothing.
    let refused = b
        .post(
            "/vehicles/import",
            &[("csrf", &csrf), ("step", "write"), ("csv", csv)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.body);
    assert!(h.plates.snapshot().residents.is_empty(), "nothing written");
    let good: String = csv
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let write = b
        .post(
            "/vehicles/import",
            &[("csrf", &csrf), ("step", "write"), ("csv", &good)],
        )
        .await;
    assert_eq!(write.status, StatusCode::OK, "{}", write.body);
    let lists = h.plates.snapshot();
    assert_eq!(lists.residents.len(), 2);
    let lanes = lists
        .residents
        .get("苏B12345")
        .map(|r| r.to_resident().lanes);
    assert_eq!(lanes, Some(vec!["south-in".to_owned()]));
    assert!(
        journal_kinds(&h)
            .await
            .iter()
            .any(|k| k == "residents_imported")
    );

    let bad_header = b
        .post(
            "/vehicles/import",
            &[("csrf", &csrf), ("step", "write"), ("csv", "a,b\n1,2\n")],
        )
        .await;
    assert_eq!(bad_header.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_header.body.contains("id=\"import-error\""));

    let export = b.get("/vehicles.csv").await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(export.body.starts_with('\u{feff}'));
    assert!(
        export
            .body
            .contains("苏B12345,5-1-302,韩梅梅,2026-01-01,2026-12-31,south-in")
    );
}

#[tokio::test]
async fn vehicles_form_and_blacklist_validate_next_to_the_field_and_audit() {
    let h = harness().await;
    add(&h, "mgr", Role::Manager).await;
    let mut b = Browser::new(&h);
    b.login("mgr", "a long password").await;
    let csrf = b.csrf().await;
    let bad = b
        .post(
            "/vehicles",
            &[
                ("csrf", &csrf),
                ("plate", "苏A8HK5"),
                ("house", ""),
                ("valid_from", "2026-05-02"),
                ("valid_to", "2026-05-01"),
                ("lanes", "nowhere"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    for id in [
        "r-plate-error",
        "r-house-error",
        "r-to-error",
        "r-lanes-error",
    ] {
        assert!(
            bad.body.contains(&format!("id=\"{id}\"")),
            "{id}: {}",
            bad.body
        );
    }
    assert!(h.plates.snapshot().residents.is_empty());
    let good = b
        .post(
            "/vehicles",
            &[
                ("csrf", &csrf),
                ("plate", "苏a8hk52"),
                ("house", "3-2-1201"),
                ("owner", "王芳"),
                ("lanes", "south-in"),
            ],
        )
        .await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.body);
    let lists = h.plates.snapshot();
    assert_eq!(
        lists.residents.get("苏A8HK52").map(|r| r.house),
        Some("3-2-1201")
    );
    let search = b.get("/vehicles?q=3-2").await;
    assert!(search.body.contains("苏A8HK52"));
    let searches = audit_bodies(&h, "data_searched").await;
    assert_eq!(searches.len(), 1, "{searches:?}");
    assert_eq!(searches[0]["actor"], "mgr");
    assert_eq!(searches[0]["target"], "residents");
    assert_eq!(searches[0]["detail"], "1 found");
    assert!(
        !searches[0].to_string().contains("3-2"),
        "never what was searched for: {}",
        searches[0]
    );
    let none = b.get("/vehicles?q=9-9").await;
    assert!(!none.body.contains("<td class=\"plate\">苏A8HK52"));
    let edit = b.get("/vehicles?edit=%E8%8B%8FA8HK52").await;
    assert!(edit.body.contains("value=\"3-2-1201\""));
    let removed = b
        .post("/vehicles/%E8%8B%8FA8HK52/remove", &[("csrf", &csrf)])
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    assert!(h.plates.snapshot().residents.is_empty());

    let black = b
        .post(
            "/vehicles/blacklist",
            &[("csrf", &csrf), ("plate", "苏A00000"), ("reason", "")],
        )
        .await;
    assert!(black.body.contains("id=\"b-reason-error\""));
    let black = b
        .post(
            "/vehicles/blacklist",
            &[("csrf", &csrf), ("plate", "苏A00000"), ("reason", "欠费")],
        )
        .await;
    assert_eq!(black.status, StatusCode::OK);
    assert_eq!(h.plates.snapshot().blacklist["苏A00000"].reason, "欠费");
    let unblack = b
        .post(
            "/vehicles/blacklist/%E8%8B%8FA00000/remove",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(unblack.status, StatusCode::OK);
    let kinds = journal_kinds(&h).await;
    for kind in [
        "resident_saved",
        "resident_removed",
        "blacklist_added",
        "blacklist_removed",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
}

#[tokio::test]
async fn cards_page_roles_csrf_field_errors_preview_block_and_audit() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    add(&h, "mgr", Role::Manager).await;

    // A guard gets 403 everywhere and no nav entry.
    let mut g = Browser::new(&h);
    g.login("guard-1", "a long password").await;
    let csrf = g.csrf().await;
    assert_eq!(g.get("/cards").await.status, StatusCode::FORBIDDEN);
    assert_eq!(g.get("/cards.csv").await.status, StatusCode::FORBIDDEN);
    for route in ["/cards", "/cards/import", "/cards/block"] {
        let reply = g
            .post(
                route,
                &[
                    ("csrf", &csrf),
                    ("number", "1001"),
                    ("holder", "王芳"),
                    ("house", "3-1-1201"),
                    ("reason", "x"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{route}");
    }
    assert!(!g.get("/lanes").await.body.contains("href=\"/cards\""));
    assert!(h.credentials.cards().is_empty());

    let mut b = Browser::new(&h);
    b.login("mgr", "a long password").await;
    let csrf = b.csrf().await;
    assert!(b.get("/lanes").await.body.contains("href=\"/cards\""));

    // Without the CSRF token: refused, nothing written.
    let no_csrf = b
        .post(
            "/cards",
            &[
                ("number", "1001"),
                ("holder", "王芳"),
                ("house", "3-1-1201"),
            ],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN, "{}", no_csrf.body);
    assert!(h.credentials.cards().is_empty());

    // A bad card: errors next to the fields, nothing written.
    let bad = b
        .post(
            "/cards",
            &[
                ("csrf", &csrf),
                ("number", "12ab"),
                ("holder", ""),
                ("house", "3-1-1201"),
                ("valid_from", "2026-05-02"),
                ("valid_to", "2026-05-01"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    for id in ["c-number-error", "c-holder-error", "c-to-error"] {
        assert!(bad.body.contains(&format!("id=\"{id}\"")), "{id}");
    }
    let bad_group = b
        .post(
            "/cards",
            &[
                ("csrf", &csrf),
                ("number", "1001"),
                ("holder", "王芳"),
                ("house", "3-1-1201"),
                ("groups", "nowhere"),
            ],
        )
        .await;
    assert_eq!(bad_group.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_group.body.contains("id=\"c-groups-error\""));
    assert!(h.credentials.cards().is_empty());

    // A good card.
    let good = b
        .post(
            "/cards",
            &[
                ("csrf", &csrf),
                ("number", "0001001"),
                ("holder", "王芳"),
                ("house", "3-1-1201"),
                ("valid_to", "2026-12-31"),
                ("groups", "b3"),
            ],
        )
        .await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.body);
    let cards = h.credentials.cards();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].number, "1001");
    assert_eq!(cards[0].groups, vec!["b3"]);
    assert!(b.get("/cards?q=3-1").await.body.contains("王芳"));
    assert!(!b.get("/cards?q=9-9").await.body.contains("王芳"));
    assert!(
        b.get("/cards?edit=1001")
            .await
            .body
            .contains("value=\"3-1-1201\"")
    );

    // Block with a reason (the reason is required), then unblock.
    let no_reason = b
        .post("/cards/block", &[("csrf", &csrf), ("number", "1001")])
        .await;
    assert!(no_reason.body.contains("id=\"b-reason-error\""));
    assert!(h.credentials.snapshot().blocked.is_empty());
    let blocked = b
        .post(
            "/cards/block",
            &[("csrf", &csrf), ("number", "1001"), ("reason", "挂失")],
        )
        .await;
    assert_eq!(blocked.status, StatusCode::OK);
    assert_eq!(h.credentials.snapshot().blocked["1001"].reason, "挂失");
    let unblocked = b.post("/cards/1001/unblock", &[("csrf", &csrf)]).await;
    assert_eq!(unblocked.status, StatusCode::OK);
    assert!(h.credentials.snapshot().blocked.is_empty());

    // CSV: the preview writes nothing and shows the rejected line.
    let csv = "number,holder,house,valid_from,valid_to,groups\n\
               2002,李雷,1-1-101,,,\n\
               not-a-card,韩梅梅,1-1-102,,,\n\
               3003,韩梅梅,5-1-302,2026-01-01,2026-12-31,basement\n";
    let check = b
        .post(
            "/cards/import",
            &[("csrf", &csrf), ("step", "check"), ("csv", csv)],
        )
        .await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.body);
    assert!(check.body.contains("id=\"rows-ok\">2<"), "{}", check.body);
    assert!(check.body.contains("id=\"rows-rejected\">1<"));
    assert!(
        check.body.contains("<td>3</td>"),
        "the rejected line number"
    );
    assert_eq!(h.credentials.cards().len(), 1, "nothing written yet");
    let refused = b
        .post(
            "/cards/import",
            &[("csrf", &csrf), ("step", "write"), ("csv", csv)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.body);
    assert_eq!(h.credentials.cards().len(), 1, "all or nothing");
    let good: String = csv
        .lines()
        .filter(|l| !l.starts_with("not-a-card"))
        .map(|l| format!("{l}\n"))
        .collect();
    let write = b
        .post(
            "/cards/import",
            &[("csrf", &csrf), ("step", "write"), ("csv", &good)],
        )
        .await;
    assert_eq!(write.status, StatusCode::OK, "{}", write.body);
    assert_eq!(h.credentials.cards().len(), 3);

    let export = b.get("/cards.csv").await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(export.body.starts_with('\u{feff}'));
    assert!(
        export
            .body
            .contains("3003,韩梅梅,5-1-302,2026-01-01,2026-12-31,basement")
    );

    let removed = b.post("/cards/2002/remove", &[("csrf", &csrf)]).await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_eq!(h.credentials.cards().len(), 2);

    let saved = audit_bodies(&h, "card_saved").await;
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["actor"], "mgr");
    assert_eq!(saved[0]["target"], "1001");
    let kinds = journal_kinds(&h).await;
    for kind in [
        "card_saved",
        "card_removed",
        "card_blocked",
        "card_unblocked",
        "cards_imported",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
}

#[tokio::test]
async fn actions_redirect_once_exports_are_defused_and_guards_see_no_audit_stream() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    add(&h, "mgr", Role::Manager).await;
    let mut g = Browser::new(&h);
    g.login("guard-1", "a long password").await;
    let csrf = g.csrf().await;

    // A lane command ends in a redirect; the same one-time key twice (a
    // double tap, a resubmitted form) is sent once.
    let form = [
        ("csrf", csrf.as_str()),
        ("command", "open_barrier"),
        ("reason", "救护车"),
        ("key", "k-1"),
    ];
    let first = g.post("/lanes/south-in/command", &form).await;
    assert!(
        first.followed && first.body.contains("id=\"flash\""),
        "{}",
        first.body
    );
    let second = g.post("/lanes/south-in/command", &form).await;
    assert!(
        second.body.contains("class=\"flash warn\""),
        "{}",
        second.body
    );
    assert_eq!(audit_bodies(&h, "command").await.len(), 1, "sent once");
    // The flash is shown once: a reload does not repeat it.
    assert!(!g.get("/lanes").await.body.contains("id=\"flash\""));

    // Guards do not read audit records on the live page or its stream.
    assert_eq!(
        g.get("/live?class=audit").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        g.get("/live/stream?class=audit").await.status,
        StatusCode::FORBIDDEN
    );
    let live = g.get("/live").await;
    assert!(
        !live.body.contains("value=\"audit\""),
        "no audit filter for guards"
    );
    assert!(!live.body.contains("class-audit"), "{}", live.body);

    // An alarm stays in the strip until a guard acknowledges it (audited).
    h.pipeline
        .record(
            "tank-1",
            crate::events::GatewayEvent::ThresholdAlarm(crate::events::ThresholdAlarm {
                point: "level".into(),
                value: 0.2,
                unit: "m".into(),
                active: true,
                limit: Some(crate::rules::threshold::Limit::Below),
                threshold: Some(0.5),
            }),
        )
        .await
        .expect("alarm recorded");
    let live = g.get("/live").await;
    let marker = "action=\"/live/ack/";
    let start = live.body.find(marker).expect("the alarm is in the strip") + marker.len();
    let seq: String = live.body[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let acked = g
        .post(&format!("/live/ack/{seq}"), &[("csrf", &csrf)])
        .await;
    assert!(acked.followed, "{}", acked.body);
    assert!(!acked.body.contains(marker), "gone from the strip");
    let acks = audit_bodies(&h, "alarm_acknowledged").await;
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["actor"], "guard-1");
    assert_eq!(acks[0]["seq"].to_string(), seq);

    // Exports are formula-safe; the blacklist and visitors have CSV too.
    let mut m = Browser::new(&h);
    m.login("mgr", "a long password").await;
    let csrf = m.csrf().await;
    let saved = m
        .post(
            "/vehicles",
            &[
                ("csrf", &csrf),
                ("plate", "苏A8HK52"),
                ("house", "=HYPERLINK(\"http://x\")"),
                ("owner", "@SUM(1)"),
            ],
        )
        .await;
    assert!(saved.followed, "{}", saved.body);
    let export = m.get("/vehicles.csv").await;
    assert!(
        export.body.contains("'=HYPERLINK") && export.body.contains("'@SUM(1)"),
        "{}",
        export.body
    );
    let blacklist = "plate,reason\n苏E99999,逃费\nNOTAPLATE,x\n";
    let check = m
        .post(
            "/vehicles/import?list=blacklist",
            &[("csrf", &csrf), ("step", "check"), ("csv", blacklist)],
        )
        .await;
    assert!(
        check.body.contains("id=\"rows-ok\">1<") && check.body.contains("id=\"rows-rejected\">1<"),
        "{}",
        check.body
    );
    // All or nothing: the clean file is written.
    let clean = "plate,reason\n苏E99999,逃费\n";
    let write = m
        .post(
            "/vehicles/import?list=blacklist",
            &[("csrf", &csrf), ("step", "write"), ("csv", clean)],
        )
        .await;
    assert!(write.followed, "{}", write.body);
    assert!(h.plates.snapshot().blacklist.contains_key("苏E99999"));
    let black = m.get("/vehicles.csv?list=blacklist").await;
    assert!(black.body.contains("苏E99999,逃费"), "{}", black.body);
    assert!(
        m.get("/vehicles.csv?list=visitors")
            .await
            .body
            .starts_with('\u{feff}')
    );

    // A visitor for a blacklisted plate: warned first, registered only when
    // confirmed.
    let warned = m
        .post(
            "/visitors",
            &[
                ("csrf", &csrf),
                ("plate", "苏E99999"),
                ("host_unit", "3-1-1201"),
                ("valid_from", "2026-01-01T08:00"),
                ("valid_to", "2036-01-01T08:00"),
            ],
        )
        .await;
    assert_eq!(warned.status, StatusCode::CONFLICT);
    assert!(warned.body.contains("id=\"blacklisted-warning\"") && warned.body.contains("逃费"));
    assert!(h.plates.visitor_passes().expect("passes").is_empty());
    let confirmed = m
        .post(
            "/visitors",
            &[
                ("csrf", &csrf),
                ("plate", "苏E99999"),
                ("host_unit", "3-1-1201"),
                ("valid_from", "2026-01-01T08:00"),
                ("valid_to", "2036-01-01T08:00"),
                ("blacklisted_ok", "1"),
            ],
        )
        .await;
    assert!(confirmed.followed, "{}", confirmed.body);
    assert_eq!(h.plates.visitor_passes().expect("passes").len(), 1);
}

/// Waits (polling, with a deadline) until `check` holds for the facility.
async fn until_facility(
    h: &Harness,
    what: &str,
    check: impl Fn(&crate::facility::Facility) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check(&h.facility) {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn point_status(
    f: &crate::facility::Facility,
    point: &str,
) -> Option<drivers::points::PointStatus> {
    let d = f.device("pumps")?;
    let i = d.view.table().find(point)?;
    Some(d.view.read()[i].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn facility_page_shows_points_acknowledges_alarms_and_lets_only_admins_write() {
    use drivers::sim::facility::{Dynamics, FacilitySim, WaterSupply};
    let sim = FacilitySim::new();
    sim.add(1, Dynamics::WaterSupply(WaterSupply::new(7)));
    let addr = sim.serve_tcp().await.expect("simulator listens");
    let config = crate::config::parse(
        &format!(
            "[gateway]\nestate_id = \"e1\"\ngateway_id = \"g1\"\n[[devices]]\nid = \"pumps\"\n\
             name = \"1号泵房\"\ntype = \"modbus-points\"\naddress = \"{addr}\"\nslave = 1\n\
             preset = \"vfd-water-supply\"\n"
        ),
        "g.toml",
    )
    .expect("valid");
    let h = harness_with(config.devices.into_iter().next()).await;
    add(&h, "wang", Role::Guard).await;
    add(&h, "root", Role::Admin).await;
    until_facility(&h, "outlet pressure read", |f| {
        point_status(f, "outlet_pressure").is_some_and(|s| s.quality == drivers::Quality::Good)
    })
    .await;

    // The page: every point with value, unit and quality.
    let mut guard = Browser::new(&h);
    guard.login("wang", "a long password").await;
    let page = guard.get("/facility").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"facility-pumps\""), "{}", page.body);
    let row = page
        .body
        .split("id=\"point-pumps-outlet_pressure\"")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("outlet pressure row");
    assert!(row.contains("MPa") && row.contains("pill ok"), "{row}");

    // The trend: a slot in the ring is drawn as a line.
    let trends = h._dir.path().join("trends");
    crate::facility::trend::open(&h.facility, &trends).expect("rings open");
    let table = h
        .facility
        .device("pumps")
        .expect("device")
        .view
        .table()
        .clone();
    let index = table.find("outlet_pressure").expect("point");
    let now = crate::facility::trend::slot_of(drivers::contract::now_ms());
    let ring = h.facility.ring("pumps").expect("ring");
    for slot in now - 3..now {
        let mut values = vec![f32::NAN; table.points().len()];
        values[index] = 0.40 + (now - slot) as f32 / 100.0;
        ring.write(slot, &values).expect("slot written");
    }
    let point = guard.get("/facility/pumps/outlet_pressure").await;
    assert_eq!(point.status, StatusCode::OK);
    let figure = point
        .body
        .split("id=\"trend\"")
        .nth(1)
        .expect("trend figure");
    assert!(
        figure.contains("<svg") && figure.contains("d=\"M"),
        "{figure}"
    );
    assert_eq!(
        guard.get("/facility/pumps/nope").await.status,
        StatusCode::NOT_FOUND
    );

    // A guard sees no write form and cannot write, even with the token.
    let setpoint = guard.get("/facility/pumps/pressure_setpoint").await;
    assert!(!setpoint.body.contains("id=\"write-form\""));
    let csrf = guard.csrf().await;
    let refused = guard
        .post(
            "/facility/pumps/pressure_setpoint/write",
            &[("csrf", &csrf), ("value", "0.38"), ("reason", "夜间降压")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // A pump trips: the alarm shows, a guard acknowledges it (audited).
    sim.with(1, |_, dynamics| {
        if let Dynamics::WaterSupply(w) = dynamics {
            w.trip();
        }
    });
    until_facility(&h, "a pump fault alarm", |f| {
        ["pump1_fault", "pump2_fault"]
            .iter()
            .any(|p| point_status(f, p).is_some_and(|s| s.alarm.is_some()))
    })
    .await;
    let tripped = ["pump1_fault", "pump2_fault"]
        .into_iter()
        .find(|p| point_status(&h.facility, p).is_some_and(|s| s.alarm.is_some()))
        .expect("a tripped pump");
    let ack = format!("/facility/pumps/{tripped}/ack");
    let forged = guard.post(&ack, &[]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "no CSRF token");
    let acked = guard.post(&ack, &[("csrf", &csrf)]).await;
    assert!(acked.followed && acked.status == StatusCode::OK);
    assert!(acked.body.contains("class=\"acked\""), "{}", acked.body);
    let audits = audit_bodies(&h, "alarm_acknowledged").await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["point"], tripped);
    assert_eq!(audits[0]["actor"], "wang");
    let quiet = guard
        .post("/facility/pumps/outlet_pressure/ack", &[("csrf", &csrf)])
        .await;
    assert!(quiet.body.contains("id=\"flash\""), "{}", quiet.body);
    assert_eq!(audit_bodies(&h, "alarm_acknowledged").await.len(), 1);

    // An administrator writes the set-point: out of range and without a
    // reason is refused at the field, then written, read back and audited.
    let mut admin = Browser::new(&h);
    admin.login("root", "a long password").await;
    let form = admin.get("/facility/pumps/pressure_setpoint").await;
    assert!(form.body.contains("id=\"write-form\""), "{}", form.body);
    assert!(
        form.body.contains("data-confirm="),
        "the write is confirmed"
    );
    let csrf = admin.csrf().await;
    // Each refused form comes back with a fresh one-time key.
    let key_of = |body: &str| hidden(body.split("id=\"write-form\"").nth(1).unwrap_or(""), "key");
    let mut key = key_of(&form.body);
    let write = "/facility/pumps/pressure_setpoint/write";
    for (value, reason, field) in [
        ("0.9", "夜间降压", "write-value"),
        ("abc", "夜间降压", "write-value"),
        ("0.38", " ", "write-reason"),
    ] {
        let bad = admin
            .post(
                write,
                &[
                    ("csrf", &csrf),
                    ("value", value),
                    ("reason", reason),
                    ("key", &key),
                ],
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{value}");
        assert!(
            bad.body.contains(&format!("id=\"{field}-error\"")),
            "{}",
            bad.body
        );
        key = key_of(&bad.body);
    }
    assert!(audit_bodies(&h, "command").await.is_empty(), "nothing sent");
    let written = admin
        .post(
            write,
            &[
                ("csrf", &csrf),
                ("value", "0.38"),
                ("reason", "夜间降压"),
                ("key", &key),
            ],
        )
        .await;
    assert!(written.followed, "post/redirect/get");
    assert!(written.body.contains("flash ok"), "{}", written.body);
    let confirmed = point_status(&h.facility, "pressure_setpoint").and_then(|s| s.value);
    assert_eq!(confirmed, Some(drivers::Reading::Number(0.38)));
    assert_eq!(sim.with(1, |bank, _| bank.holding[2]), Some(380));
    let audits = audit_bodies(&h, "command").await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    let text = audits[0].to_string();
    assert!(
        text.contains("root") && text.contains("夜间降压") && text.contains("write_point"),
        "{text}"
    );
    let again = admin
        .post(
            write,
            &[
                ("csrf", &csrf),
                ("value", "0.38"),
                ("reason", "夜间降压"),
                ("key", &key),
            ],
        )
        .await;
    assert!(
        again.body.contains("flash warn"),
        "a repeated key does nothing"
    );
    assert_eq!(audit_bodies(&h, "command").await.len(), 1);
    sim.stop();
}

#[tokio::test]
async fn the_intercom_page_lists_door_stations_only() {
    let h = harness().await;
    add(&h, "guard-1", Role::Guard).await;
    let mut guard = Browser::new(&h);
    guard.login("guard-1", "a long password").await;
    let page = guard.get("/intercom").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("href=\"/intercom\""), "{}", page.body);
    // The tank is a device but no door station.
    assert!(page.body.contains("未配置门口机"), "{}", page.body);
    assert!(!page.body.contains("station-tank-1"), "{}", page.body);
}

#[tokio::test]
async fn a_ringing_call_is_on_every_page_and_its_unlock_needs_a_reason_opens_the_station_once_and_is_audited()
 {
    use drivers::intercom::hik_driver::HikConfig;
    use drivers::sim::hik_station::HikStationSim;
    let station = HikStationSim::start("admin", "station-pw")
        .await
        .expect("station");
    let mut hik = HikConfig::new(&station.base(), "admin", "station-pw");
    hik.timeout = Duration::from_secs(5);
    let h = harness_with(Some(DeviceConfig {
        id: "b3-door".into(),
        name: "3号楼门口机".into(),
        kind: DeviceKind::Intercom(crate::config::Station::Hik(Box::new(hik))),
    }))
    .await;
    add(&h, "guard-1", Role::Guard).await;
    let mut b = Browser::new(&h);
    b.login("guard-1", "a long password").await;
    let quiet = b.get("/devices").await;
    assert!(quiet.body.contains("id=\"ring-banner\""), "{}", quiet.body);
    assert!(
        !quiet.body.contains("class=\"ring-call\""),
        "{}",
        quiet.body
    );

    // A call rings (as the feed would deliver it): every page shows it,
    // with the caller's snapshot and an unlock that comes back here.
    let started = crate::wire::Envelope {
        schema: crate::wire::SCHEMA_VERSION,
        id: uuid::Uuid::now_v7(),
        seq: 41,
        time_ms: drivers::contract::now_ms(),
        clock_synced: true,
        device_time_ms: None,
        estate_id: "e1".into(),
        gateway_id: "g1".into(),
        device_id: "b3-door".into(),
        kind: "call_started".into(),
        class: Class::Access,
        body: serde_json::json!({"call": "9", "unit": "3-1-502", "snapshot": "2026/caller.jpg"}),
    };
    h.intercom.observe(&started);
    for page in ["/devices", "/traffic", "/intercom"] {
        let reply = b.get(page).await;
        assert!(
            reply.body.contains("class=\"ring-call\""),
            "{page}: {}",
            reply.body
        );
        assert!(reply.body.contains("3-1-502"), "{page}");
        assert!(
            reply.body.contains("src=\"/images/2026/caller.jpg\""),
            "{page}"
        );
        assert!(
            reply.body.contains("action=\"/intercom/b3-door/unlock\""),
            "{page}"
        );
        assert!(
            reply
                .body
                .contains(&format!("name=\"next\" value=\"{page}\"")),
            "{page}"
        );
    }
    // The 对讲 page: the station's health and its own unlock form.
    let page = b.get("/intercom").await;
    assert!(
        page.body.contains("id=\"station-b3-door\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"unlock-b3-door\""), "{}", page.body);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while station.streams() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: the station's alert stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let csrf = b.csrf().await;
    // Without the CSRF token: refused before anything happens.
    let forged = b
        .post(
            "/intercom/b3-door/unlock",
            &[("reason", "x"), ("next", "/devices")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Without a reason: nothing sent, said on the page the guard was on.
    let missing = b
        .post(
            "/intercom/b3-door/unlock",
            &[
                ("csrf", &csrf),
                ("reason", " "),
                ("next", "/devices"),
                ("key", "k0"),
            ],
        )
        .await;
    assert!(missing.followed, "back to the page");
    assert!(missing.body.contains("flash bad"), "{}", missing.body);
    assert!(audit_bodies(&h, "command").await.is_empty());
    assert!(station.unlocks().borrow().is_empty());
    // Not a door station: no such thing to open.
    let tank = b
        .post(
            "/intercom/tank-1/unlock",
            &[("csrf", &csrf), ("reason", "r"), ("next", "/devices")],
        )
        .await;
    assert_eq!(tank.status, StatusCode::NOT_FOUND);
    // With a reason: the station's door opens, once for a double tap.
    let mut unlocks = station.unlocks();
    let form = [
        ("csrf", csrf.as_str()),
        ("reason", "访客 3-1-502"),
        ("next", "/traffic"),
        ("key", "k1"),
    ];
    let done = b.post("/intercom/b3-door/unlock", &form).await;
    assert!(done.followed, "back to the page");
    assert!(done.body.contains("flash ok"), "{}", done.body);
    tokio::time::timeout(Duration::from_secs(10), unlocks.wait_for(|d| d == &[1]))
        .await
        .expect("the station's door opened")
        .expect("station running");
    let again = b.post("/intercom/b3-door/unlock", &form).await;
    assert!(again.body.contains("flash warn"), "{}", again.body);
    let audits = audit_bodies(&h, "command").await;
    assert_eq!(audits.len(), 1, "{audits:?}");
    let text = audits[0].to_string();
    assert!(
        text.contains("访客 3-1-502") && text.contains("guard-1") && text.contains("pulse_door"),
        "{text}"
    );
    assert_eq!(*station.unlocks().borrow(), [1]);

    // Answered: the banner goes from every page.
    h.intercom.observe(&crate::wire::Envelope {
        seq: 42,
        kind: "call_answered".into(),
        body: serde_json::json!({"call": "9", "by": "indoor_monitor"}),
        id: uuid::Uuid::now_v7(),
        ..started
    });
    let quiet = b.get("/devices").await;
    assert!(
        !quiet.body.contains("class=\"ring-call\""),
        "{}",
        quiet.body
    );
    station.stop();
}

#[tokio::test]
async fn the_cctv_page_shows_each_cameras_state_streams_and_takes_a_snapshot_on_request() {
    use drivers::sim::onvif::{OnvifSim, SimCameraConfig};
    let sim = OnvifSim::start(SimCameraConfig {
        model: "DS-2CD2T47".into(),
        ..SimCameraConfig::default()
    })
    .await
    .expect("camera simulator");
    let camera = DeviceConfig {
        id: "cctv-1".into(),
        name: "南门监控".into(),
        kind: DeviceKind::OnvifCamera(crate::config::OnvifCameraConfig {
            address: sim.device_url(),
            username: None,
            password: None,
            lanes: vec!["south-in".into()],
            doors: vec![],
            drift_alarm: Duration::from_secs(30),
            snapshot_timeout: crate::config::DEFAULT_SNAPSHOT_TIMEOUT,
            snapshot_max_bytes: crate::config::DEFAULT_SNAPSHOT_MAX_BYTES,
        }),
    };
    let h = harness_with(Some(camera)).await;
    add(&h, "guard-1", Role::Guard).await;
    let mut guard = Browser::new(&h);
    guard.login("guard-1", "a long password").await;
    let mut status = h
        .cctv
        .device("cctv-1")
        .expect("the camera")
        .handle
        .view()
        .subscribe();
    tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| s.online && s.snapshot_uri.is_some() && !s.streams.is_empty()),
    )
    .await
    .expect("the camera connects")
    .expect("status");
    let page = guard.get("/cctv").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("href=\"/cctv\""), "in the navigation");
    assert!(page.body.contains("id=\"camera-cctv-1\""), "{}", page.body);
    assert!(page.body.contains("在线"), "online: {}", page.body);
    assert!(page.body.contains("DS-2CD2T47"), "model: {}", page.body);
    assert!(page.body.contains("rtsp://"), "stream URIs: {}", page.body);
    assert!(page.body.contains("south-in"), "what it watches");
    assert!(page.body.contains("暂无抓拍"), "no snapshot yet");

    // A snapshot on request: CSRF-checked, audited, post/redirect/get.
    let token = guard.csrf().await;
    let taken = guard
        .post("/cctv/cctv-1/snapshot", &[("csrf", &token)])
        .await;
    assert!(taken.followed, "redirected back to the page");
    assert!(taken.body.contains("flash ok"), "{}", taken.body);
    assert!(taken.body.contains("<img src=\"/images/"), "{}", taken.body);
    let audits = audit_bodies(&h, "camera_snapshot_taken").await;
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0]["actor"], "guard-1");
    assert_eq!(audits[0]["device"], "cctv-1");
    let image = audits[0]["detail"].as_str().expect("image name").to_owned();
    let served = guard.get(&format!("/images/{image}")).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(sim.control().stats().snapshots, 1);

    let unknown = guard
        .post("/cctv/nowhere/snapshot", &[("csrf", &token)])
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn privacy_erasure_is_an_admins_with_a_reason_and_a_confirmation_and_names_nobody() {
    let h = harness().await;
    add(&h, "admin", Role::Admin).await;
    add(&h, "mgr", Role::Manager).await;
    {
        let plates = h.plates.clone();
        tokio::task::spawn_blocking(move || {
            plates.upsert_resident(&crate::rules::vehicle::Resident {
                plate: "苏A8HK52".into(),
                house: "3-2-1201".into(),
                owner: "王芳".into(),
                valid_from: None,
                valid_to: None,
                lanes: Vec::new(),
            })
        })
        .await
        .expect("join")
        .expect("resident");
    }
    let erase = |csrf: &str, reason: &str, confirm: bool, value: &str| {
        let mut form = vec![
            ("csrf", csrf.to_owned()),
            ("by", "plate".to_owned()),
            ("value", value.to_owned()),
            ("reason", reason.to_owned()),
        ];
        if confirm {
            form.push(("confirm", "yes".to_owned()));
        }
        form
    };
    let mut manager = Browser::new(&h);
    manager.login("mgr", "a long password").await;
    assert_eq!(manager.get("/privacy").await.status, StatusCode::FORBIDDEN);
    let csrf = manager.csrf().await;
    let form = erase(&csrf, "asked", true, "苏A8HK52");
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        manager.post("/privacy/erase", &refs).await.status,
        StatusCode::FORBIDDEN
    );

    let mut b = Browser::new(&h);
    b.login("admin", "a long password").await;
    assert!(b.get("/users").await.body.contains("href=\"/privacy\""));
    let page = b.get("/privacy").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("action=\"/privacy/erase\""),
        "{}",
        page.body
    );
    let csrf = b.csrf().await;
    for (reason, confirm, value) in [
        ("", true, "苏A8HK52"),
        ("asked", false, "苏A8HK52"),
        ("asked", true, "not a plate"),
    ] {
        let form = erase(&csrf, reason, confirm, value);
        let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = b.post("/privacy/erase", &refs).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reason} {confirm} {value}"
        );
        assert!(refused.body.contains("class=\"error\""), "{}", refused.body);
    }
    let form = erase("", "asked in writing", true, "苏A8HK52");
    let refs: Vec<(&str, &str)> = form[1..].iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        b.post("/privacy/erase", &refs).await.status,
        StatusCode::FORBIDDEN,
        "no CSRF token"
    );
    assert!(
        h.plates.snapshot().residents.get("苏A8HK52").is_some(),
        "nothing erased yet"
    );

    let form = erase(&csrf, "asked in writing", true, "苏a8hk52");
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = b.post("/privacy/erase", &refs).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("苏A8***2"), "{}", done.body);
    assert!(
        h.plates.snapshot().residents.is_empty(),
        "the lists in memory follow at once"
    );
    let records = audit_bodies(&h, "privacy_erasure").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record["actor"], "admin");
    assert_eq!(record["via"], "panel");
    assert_eq!(record["reason"], "asked in writing");
    assert_eq!(record["removed"]["residents"], 1);
    let text = record.to_string();
    for gone in ["苏A8HK52", "王芳", "3-2-1201"] {
        assert!(!text.contains(gone), "{text}");
    }
}
