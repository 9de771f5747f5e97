//! The panel in a real headless Chromium (see `gatehouse_tests::browser`):
//! log in, live events without reload, a manual command found in the audit
//! log, a guard kept out of user management, a form without its CSRF token
//! refused, lockout; and the vehicle lanes (an in-process gateway with a
//! simulated barrier and plate camera): a pending fuzzy read decided with
//! one click, a registered visitor let in by the camera's next read, a lane
//! opened with a reason and found in the audit log. The guard's flows
//! (acknowledge an alarm, decide a pending read, open a lane with a reason)
//! run at phone size (390×844); every page (the login page, 对讲 and a page
//! not found included) is checked with axe-core (no serious or critical
//! accessibility violation) at 390×844 and 1366×768, and held to 100 KB.
//! Screenshots of the main pages at both sizes are saved under
//! `$CARGO_TARGET_DIR/screenshots/`.

use drivers::PlateColour;
use drivers::lpr::Vendor;
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig, SimCommand, SimHandle};
use drivers::sim::camera::CameraSim;
use drivers::sim::hik_station::HikStationSim;
use gatehouse_tests::browser::Browser;
use gatehouse_tests::{DEADLINE, GatewayProcess, eventually, user_cli};
use gateway::app::Running;
use gateway::auth::Role;
use gateway::rules::vehicle::Resident;

const ADMIN_PASSWORD: &str = "门岗管理员密码2025";
/// A guard's phone at the barrier.
const PHONE: (u32, u32) = (390, 844);
/// The guard-room screen.
const DESKTOP: (u32, u32) = (1366, 768);
/// Bytes a page may cost without snapshots (the panel runs on a Pi over
/// Wi-Fi).
const PAGE_BUDGET: u64 = 100 * 1024;

/// axe-core's source (`tests/peers/package.json`, installed with npm on
/// first use), or `None` (skipped, unless peers are required).
fn axe_source() -> Option<&'static str> {
    static AXE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    AXE.get_or_init(|| match testkit::node_file("axe-core/axe.min.js") {
        Ok(path) => Some(std::fs::read_to_string(path).expect("axe.min.js")),
        Err(why) => {
            testkit::require_peer("axe-core (npm)", &why);
            None
        }
    })
    .as_deref()
}

/// Checks the page with axe-core: no serious or critical violation.
async fn assert_accessible(browser: &Browser, page: &str) {
    let Some(axe) = axe_source() else {
        return;
    };
    browser.script(axe).await.expect("axe injected");
    let found = browser
        .script_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']})\
               .then(r => done(r.violations\
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))))\
               .catch(e => done(['axe failed: ' + e]));",
        )
        .await
        .expect("axe ran");
    let problems: Vec<String> = serde_json::from_value(found).expect("a list");
    assert!(problems.is_empty(), "{page}: {problems:#?}");
}

/// What the page cost to load: bytes transferred without images (HTML,
/// CSS, JS; 0 for a cached asset) and the first contentful paint (ms),
/// from the browser's own timing. Reported (`page-weight.txt` beside the
/// screenshots, the README's table); the weight is held to the budget
/// (bytes, not time), the paint never asserted.
async fn page_cost(browser: &Browser) -> (u64, f64) {
    let found = browser
        .script(
            "const nav = performance.getEntriesByType('navigation')[0];\
             const res = performance.getEntriesByType('resource')\
               .filter(r => r.initiatorType !== 'img')\
               .reduce((n, r) => n + (r.encodedBodySize || 0), 0);\
             const paint = performance.getEntriesByName('first-contentful-paint')[0];\
             return [(nav ? nav.encodedBodySize : 0) + res, paint ? paint.startTime : -1];",
        )
        .await
        .expect("timing");
    let bytes = found[0].as_u64().unwrap_or(0);
    let paint = found[1].as_f64().unwrap_or(-1.0);
    (bytes, paint)
}

/// Every listed page at both sizes: a screenshot, the axe check and the
/// page's cost. Leaves the window at desktop size.
async fn check_pages(browser: &Browser, base: &str, pages: &[(&str, &str, &str)]) {
    for (size, (w, h)) in [("phone", PHONE), ("desktop", DESKTOP)] {
        browser.set_size(w, h).await.expect("size");
        for (path, ready, name) in pages {
            browser.goto(&format!("{base}{path}")).await.expect("page");
            browser.wait_for(ready).await.expect("page ready");
            browser
                .screenshot(&format!("{name}-{size}"))
                .await
                .expect("screenshot");
            let (bytes, paint) = page_cost(browser).await;
            assert!(
                bytes <= PAGE_BUDGET,
                "{path} at {size}: {bytes} B, over the {PAGE_BUDGET} B budget"
            );
            let report = gatehouse_tests::browser::screenshot_dir().join("page-weight.txt");
            let line = format!("{path}\t{size}\t{bytes} B\tFCP {paint:.0} ms\n");
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(report)
                .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
            assert_accessible(browser, &format!("{path} at {size}")).await;
        }
    }
}
const GUARD_PASSWORD: &str = "guard password 1";

/// A gateway (test config: a 20 ms tank with a threshold alarm) with an
/// admin `admin`, a guard `wang` and a guard `sun`, and a browser; `None`
/// when the browser is missing (and not required).
async fn start(dir: &std::path::Path) -> Option<(GatewayProcess, Browser)> {
    let (gateway, browser, station) = start_with_station(dir).await?;
    // It serves until the test's runtime ends, like the pump room.
    std::mem::forget(station);
    Some((gateway, browser))
}

/// [`start`], and the simulated Hikvision door station `b3-door` of the
/// gateway's `[[intercom]]`.
async fn start_with_station(
    dir: &std::path::Path,
) -> Option<(GatewayProcess, Browser, HikStationSim)> {
    let browser = Browser::start().await.expect("browser starts")?;
    // Building 3's door station for the 对讲 page and the ringing banner.
    let station = HikStationSim::start("admin", "station-pw")
        .await
        .expect("door station simulator");
    let station_pw = dir.join("station.pw");
    std::fs::write(&station_pw, "station-pw\n").expect("station password file");
    let data_dir = dir.join("data");
    let file = dir.join("gateway.toml");
    // A pump room over Modbus/TCP for the facility (设施) pages.
    let pumps = drivers::sim::facility::FacilitySim::new();
    pumps.add(
        1,
        drivers::sim::facility::Dynamics::WaterSupply(drivers::sim::facility::WaterSupply::new(3)),
    );
    let pumps_addr = pumps.serve_tcp().await.expect("pump room simulator");
    // A surveillance camera for the 监控 page; it serves until the test's
    // runtime ends, like the pump room.
    let cctv =
        drivers::sim::onvif::OnvifSim::start(drivers::sim::onvif::SimCameraConfig::default())
            .await
            .expect("camera simulator");
    let cctv_url = cctv.device_url();
    std::mem::forget(cctv);
    let config = format!(
        "{}\n[[devices]]\nid = \"pumps\"\nname = \"1号泵房\"\ntype = \"modbus-points\"\n\
         address = \"{pumps_addr}\"\nslave = 1\npreset = \"vfd-water-supply\"\n\
         \n[[devices]]\nid = \"cctv-1\"\nname = \"南门监控\"\ntype = \"onvif-camera\"\n\
         address = \"{cctv_url}\"\ndoors = [\"b3-door\"]\n\
         \n[[intercom]]\nid = \"b3-door\"\nname = \"3号楼门口机\"\ntype = \"hik-intercom\"\n\
         url = \"{station_url}\"\nuser = \"admin\"\npassword = {{ file = \"{station_pw}\" }}\n\
         call_poll = \"100ms\"\ntimeout = \"2s\"\n",
        gatehouse_tests::test_config(&data_dir),
        station_url = station.base(),
        station_pw = station_pw.display(),
    );
    std::fs::write(&file, config).expect("config");
    let file = file.display().to_string();
    for (role, name, password) in [
        ("admin", "admin", ADMIN_PASSWORD),
        ("guard", "wang", GUARD_PASSWORD),
        ("guard", "sun", GUARD_PASSWORD),
    ] {
        let (code, out, err) = user_cli(
            crate::GATEHOUSE,
            &["add", "--config", &file, "--role", role, name],
            &format!("{password}\n"),
        )
        .await
        .expect("user add runs");
        assert_eq!(code, Some(0), "{out}{err}");
    }
    let gateway = GatewayProcess::run(crate::GATEHOUSE, std::path::Path::new(&file))
        .await
        .expect("gateway starts");
    gateway.wait_ready().await.expect("ready");
    Some((gateway, browser, station))
}

/// Logs in and waits for the logged-in page, so that the next navigation
/// cannot cut the login's POST short (and land on the login page again).
async fn login(gateway: &GatewayProcess, browser: &Browser, name: &str, password: &str) {
    login_at(&gateway.url("/login"), browser, name, password).await;
    browser.wait_for("nav.nav").await.expect("logged in");
}

async fn login_at(url: &str, browser: &Browser, name: &str, password: &str) {
    browser.goto(url).await.expect("login page");
    browser.fill("#name", name).await.expect("name");
    browser.fill("#password", password).await.expect("password");
    browser.click("#login-submit").await.expect("submit");
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_login_then_live_events_and_alarms_arrive_without_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((gateway, browser)) = start(dir.path()).await else {
        return;
    };
    // The login page is checked at both sizes before anyone logs in.
    for (size, (w, h)) in [("phone", PHONE), ("desktop", DESKTOP)] {
        browser.set_size(w, h).await.expect("size");
        browser.goto(&gateway.url("/login")).await.expect("goto");
        browser.wait_for("#login-form").await.expect("login form");
        browser
            .screenshot(&format!("login-{size}"))
            .await
            .expect("screenshot");
        assert_accessible(&browser, &format!("/login at {size}")).await;
    }
    browser.screenshot("login").await.expect("screenshot");

    login(&gateway, &browser, "admin", ADMIN_PASSWORD).await;
    browser.set_size(PHONE.0, PHONE.1).await.expect("phone");
    // Telemetry is off the live page unless asked for.
    browser
        .goto(&gateway.url("/live?telemetry=1"))
        .await
        .expect("live");
    browser.wait_for("#events").await.expect("live page");
    // A marker that a reload would wipe.
    browser
        .script("window.gatehouseMarker = 42;")
        .await
        .expect("script");
    // Point values are telemetry: never in the history, so a row of one
    // can only have come over the event stream.
    browser
        .wait_for("li.ev.class-telemetry")
        .await
        .expect("a telemetry row pushed by the server");
    browser
        .wait_for("li.ev.alarm")
        .await
        .expect("the threshold alarm stands out");
    browser
        .wait_for("#alarm-strip .strip-alarm button.ack")
        .await
        .expect("the alarm waits in the strip for a guard");
    browser
        .wait_for("#live-status.on")
        .await
        .expect("the stream is connected");
    let marker = browser
        .script("return window.gatehouseMarker;")
        .await
        .expect("script");
    assert_eq!(marker, serde_json::json!(42), "the page was not reloaded");
    let text = browser.text().await.expect("text");
    assert!(
        text.contains("测点数值") && text.contains("阈值告警"),
        "{text}"
    );
    browser.screenshot("live-zh").await.expect("screenshot");
    // The guard acknowledges the alarm on the phone: it leaves the strip,
    // and the acknowledgement is audited with who.
    browser
        .click("#alarm-strip .strip-alarm button.ack")
        .await
        .expect("acknowledge");
    let flash = browser.wait_for("#flash").await.expect("acknowledged");
    assert!(
        flash.text().await.expect("text").contains("告警已确认"),
        "acknowledged"
    );
    browser
        .screenshot("live-acknowledged-phone")
        .await
        .expect("screenshot");
    let base = gateway.url("");
    check_pages(
        &browser,
        base.trim_end_matches('/'),
        &[
            ("/live", "#events", "live"),
            ("/devices", "#device-tank-1", "devices"),
            ("/devices/tank-1", "#command-form", "device"),
            ("/facility", "#point-pumps-outlet_pressure", "facility"),
            ("/cctv", "#camera-cctv-1", "cctv"),
            ("/intercom", "#station-b3-door", "intercom"),
            (
                "/facility/pumps/pressure_setpoint",
                "#write-form",
                "facility-point",
            ),
            ("/intercom", "main h1", "intercom"),
            ("/users", "#add-user", "users"),
            ("/audit", "#audit", "audit"),
            ("/no-such-page", "main h1", "not-found"),
        ],
    )
    .await;
    browser
        .goto(&gateway.url("/audit?kind=alarm_acknowledged"))
        .await
        .expect("audit");
    browser
        .wait_for("tr.audit-alarm_acknowledged")
        .await
        .expect("the acknowledgement is in the audit log");

    browser
        .goto(&gateway.url("/devices"))
        .await
        .expect("devices");
    browser
        .wait_for("#device-tank-1")
        .await
        .expect("device row");
    browser.screenshot("devices").await.expect("screenshot");
    browser.goto(&gateway.url("/users")).await.expect("users");
    browser.wait_for("#add-user").await.expect("users page");
    browser.screenshot("users").await.expect("screenshot");
    browser
        .goto(&gateway.url("/lang/en?next=/live"))
        .await
        .expect("english");
    browser.wait_for_text("Live events").await.expect("English");
    browser.wait_for("li.ev.alarm").await.expect("rows");
    browser.screenshot("live-en").await.expect("screenshot");
    browser.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_manual_command_with_a_reason_is_found_in_the_audit_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((gateway, browser)) = start(dir.path()).await else {
        return;
    };
    login(&gateway, &browser, "admin", ADMIN_PASSWORD).await;
    browser
        .goto(&gateway.url("/devices/tank-1"))
        .await
        .expect("device");
    let reason = "访客车辆，已电话确认业主";
    browser.fill("#reason", reason).await.expect("reason");
    browser.click("#command-submit").await.expect("send");
    let flash = browser.wait_for("#flash").await.expect("outcome shown");
    let text = flash.text().await.expect("text");
    assert!(
        text.contains("已执行") && text.contains("审计记录号"),
        "{text}"
    );
    browser
        .screenshot("device-command")
        .await
        .expect("screenshot");

    browser
        .goto(&gateway.url("/audit?kind=command"))
        .await
        .expect("audit");
    browser
        .wait_for("tr.audit-command")
        .await
        .expect("an audit row");
    let row = browser
        .wait_for("tr.audit-command td.reason")
        .await
        .expect("reason cell");
    assert_eq!(row.text().await.expect("text"), reason);
    let page = browser.text().await.expect("text");
    assert!(
        page.contains("admin") && page.contains("127.0.0.1"),
        "{page}"
    );
    browser.screenshot("audit").await.expect("screenshot");
    browser.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_role_guard_cannot_reach_user_management() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((gateway, browser)) = start(dir.path()).await else {
        return;
    };
    login(&gateway, &browser, "wang", GUARD_PASSWORD).await;
    browser.wait_for("nav.nav").await.expect("logged in");
    let nav = browser.wait_for("nav.nav").await.expect("nav");
    let links = nav.text().await.expect("text");
    assert!(!links.contains("用户管理"), "{links}");
    browser.goto(&gateway.url("/users")).await.expect("users");
    browser
        .wait_for_text("无权访问")
        .await
        .expect("forbidden page");
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#add-user"))
            .await
            .is_err()
    );
    browser
        .screenshot("guard-forbidden")
        .await
        .expect("screenshot");
    browser.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_csrf_form_post_without_the_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((gateway, browser)) = start(dir.path()).await else {
        return;
    };
    login(&gateway, &browser, "admin", ADMIN_PASSWORD).await;
    browser
        .goto(&gateway.url("/devices/tank-1"))
        .await
        .expect("device");
    browser
        .fill("#reason", "should not run")
        .await
        .expect("reason");
    browser
        .script("document.querySelector('#command-form input[name=csrf]').remove();")
        .await
        .expect("remove token");
    browser.click("#command-submit").await.expect("send");
    browser.wait_for_text("请求被拒绝").await.expect("refused");
    let metrics = gateway.metrics().await.expect("metrics");
    assert!(
        metrics.contains(r#"gatehouse_http_rejected_total{route="panel",reason="csrf"} 1"#),
        "{metrics}"
    );
    browser
        .goto(&gateway.url("/audit?kind=command"))
        .await
        .expect("audit");
    browser.wait_for("#audit").await.expect("audit page");
    let page = browser.text().await.expect("text");
    assert!(!page.contains("should not run"), "nothing was done");
    browser.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_login_lockout_after_repeated_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((gateway, browser)) = start(dir.path()).await else {
        return;
    };
    // Wrong passwords make the next attempt wait, longer each time.
    let mut waited = false;
    for attempt in 0..8 {
        login_at(&gateway.url("/login"), &browser, "sun", "wrong password!").await;
        let error = browser
            .wait_for("#login-error")
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        if error.text().await.expect("text").contains("秒后再试") {
            waited = true;
            break;
        }
    }
    assert!(waited, "a delay after repeated failures");
    browser
        .screenshot("login-locked")
        .await
        .expect("screenshot");
    // Others are not locked out.
    login(&gateway, &browser, "wang", GUARD_PASSWORD).await;
    browser.wait_for("nav.nav").await.expect("wang logs in");
    browser.close().await.expect("close");
}

/// An estate with lanes (`lanes_config`) running in this process, a
/// simulated barrier on `south-in`, resident 苏A8HK52, a guard `wang` and a
/// manager `li`.
struct Lanes {
    running: Running,
    barrier: SimHandle,
    _dir: tempfile::TempDir,
}

impl Lanes {
    async fn start() -> Option<(Lanes, Browser)> {
        let browser = Browser::start().await.expect("browser starts")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let (addr, barrier) = BarrierSim::spawn_tcp(BarrierSimConfig {
            rise: std::time::Duration::from_millis(100),
            fall: std::time::Duration::from_millis(100),
            ..BarrierSimConfig::default()
        })
        .await
        .expect("barrier simulator");
        let text = gatehouse_tests::lanes_config(&dir.path().join("data"), addr);
        let config = gateway::config::parse(&text, "lanes.toml").expect("valid lanes config");
        let running = gateway::app::start(config).await.expect("starts");
        running
            .auth
            .add_user("wang", Role::Guard, GUARD_PASSWORD)
            .await
            .expect("guard");
        running
            .auth
            .add_user("li", Role::Manager, GUARD_PASSWORD)
            .await
            .expect("manager");
        let plates = running.plates.clone();
        tokio::task::spawn_blocking(move || {
            plates.upsert_resident(&Resident {
                plate: "苏A8HK52".into(),
                house: "3-2-1201".into(),
                owner: "王芳".into(),
                valid_from: None,
                valid_to: None,
                lanes: vec![],
            })
        })
        .await
        .expect("join")
        .expect("resident");
        Some((
            Lanes {
                running,
                barrier,
                _dir: dir,
            },
            browser,
        ))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running.panel_addr, path)
    }

    /// Logs in and waits until the session's first page is shown.
    async fn login(&self, browser: &Browser, name: &str) {
        login_at(&self.url("/login"), browser, name, GUARD_PASSWORD).await;
        browser.wait_for("nav.nav").await.expect("logged in");
    }

    fn camera(&self) -> CameraSim {
        let addr = self.running.ingress_addr.expect("device listener");
        CameraSim::new(&format!("http://{addr}"), "cam-south-in", Vendor::Vzenith)
            .expect("camera sim")
    }

    fn opens(&self) -> usize {
        self.barrier
            .commands_seen()
            .iter()
            .filter(|c| **c == SimCommand::Open)
            .count()
    }

    async fn wait_opens(&self, n: usize, what: &str) {
        eventually(what, DEADLINE, || async move {
            (self.opens() >= n).then_some(())
        })
        .await
        .expect(what);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_lanes_pending_fuzzy_read_allowed_with_one_click_opens_the_barrier() {
    let Some((lanes, browser)) = Lanes::start().await else {
        return;
    };
    lanes.login(&browser, "wang").await;
    browser.set_size(PHONE.0, PHONE.1).await.expect("phone");
    browser.goto(&lanes.url("/lanes")).await.expect("lanes");
    browser
        .wait_for("#pending-empty")
        .await
        .expect("nothing pending");
    browser
        .script("window.gatehouseMarker = 7;")
        .await
        .expect("script");
    // The resident 苏A8HK52, misread: the guard decides.
    lanes
        .camera()
        .push_plate("苏ABHK52", PlateColour::Blue, 95)
        .await
        .expect("push");
    browser
        .wait_for(".pending-read button.allow")
        .await
        .expect("the pending read appears without a reload");
    let text = browser.text().await.expect("text");
    assert!(
        text.contains("苏ABHK52") && text.contains("苏A8HK52"),
        "{text}"
    );
    let marker = browser
        .script("return window.gatehouseMarker;")
        .await
        .expect("script");
    assert_eq!(marker, serde_json::json!(7), "the page was not reloaded");
    assert_eq!(lanes.opens(), 0, "a fuzzy read never opens by itself");
    browser
        .screenshot("lanes-pending-phone")
        .await
        .expect("screenshot");
    assert_accessible(&browser, "/lanes with a pending read at phone size").await;
    browser
        .click(".pending-read button.allow")
        .await
        .expect("one click");
    let flash = browser.wait_for("#flash").await.expect("outcome");
    let flash = flash.text().await.expect("text");
    assert!(
        flash.contains("已放行") && flash.contains("已执行"),
        "{flash}"
    );
    lanes
        .wait_opens(1, "the barrier simulator to see OPEN")
        .await;
    assert!(lanes.running.board.pending().is_empty());
    browser.close().await.expect("close");
    assert!(lanes.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_visitors_registered_plate_opens_the_gate_on_the_next_read() {
    let Some((lanes, browser)) = Lanes::start().await else {
        return;
    };
    lanes.login(&browser, "wang").await;
    browser
        .goto(&lanes.url("/visitors"))
        .await
        .expect("visitors");
    // A bad plate first: the message is next to the field, nothing stored.
    browser.fill("#plate", "ABC").await.expect("plate");
    browser.fill("#host-unit", "5-1-302").await.expect("host");
    browser.click("#visitor-submit").await.expect("submit");
    browser
        .wait_for("#plate-error")
        .await
        .expect("plate message");
    browser.fill("#plate", "浙B12345").await.expect("plate");
    browser.click("#visitor-submit").await.expect("submit");
    browser.wait_for("#flash").await.expect("registered");
    browser.wait_for("#passes td.plate").await.expect("listed");
    browser.screenshot("visitors").await.expect("screenshot");
    lanes
        .camera()
        .push_plate("浙B12345", PlateColour::Blue, 95)
        .await
        .expect("push");
    lanes
        .wait_opens(1, "the visitor's read to open the gate")
        .await;
    browser.goto(&lanes.url("/lanes")).await.expect("lanes");
    browser
        .wait_for("#lane-south-in .verdict.allow")
        .await
        .expect("last vehicle allowed");
    browser
        .wait_for_text("浙B12345")
        .await
        .expect("plate on the board");
    browser.screenshot("lanes").await.expect("screenshot");
    browser.close().await.expect("close");
    assert!(lanes.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_lanes_open_with_a_reason_is_found_in_the_audit_log() {
    let Some((lanes, browser)) = Lanes::start().await else {
        return;
    };
    lanes.login(&browser, "li").await;
    browser.set_size(PHONE.0, PHONE.1).await.expect("phone");
    browser.goto(&lanes.url("/lanes")).await.expect("lanes");
    let reason = "救护车进入，已核实";
    browser
        .click("#lane-south-in details.lane-command summary")
        .await
        .expect("the lane's command sheet");
    browser
        .fill("#reason-south-in", reason)
        .await
        .expect("reason");
    browser
        .click("#command-south-in button.open")
        .await
        .expect("open");
    let flash = browser.wait_for("#flash").await.expect("outcome");
    let flash = flash.text().await.expect("text");
    assert!(
        flash.contains("已执行") && flash.contains("审计记录号"),
        "{flash}"
    );
    browser
        .screenshot("lanes-opened-phone")
        .await
        .expect("screenshot");
    lanes.wait_opens(1, "the barrier to open").await;
    browser
        .goto(&lanes.url("/audit?kind=command"))
        .await
        .expect("audit");
    let cell = browser
        .wait_for("tr.audit-command td.reason")
        .await
        .expect("an audit row");
    assert_eq!(cell.text().await.expect("text"), reason);
    check_pages(
        &browser,
        &lanes.url(""),
        &[
            ("/lanes", "#lanes-live", "lanes"),
            ("/visitors", "#visitor-form", "visitors"),
            ("/vehicles", "#residents", "vehicles"),
            ("/cards", "#card-form", "cards"),
            ("/traffic", "#traffic-chart", "traffic"),
            ("/platform", "#platform-state", "platform"),
        ],
    )
    .await;
    browser.close().await.expect("close");
    assert!(lanes.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_a_ringing_call_shows_its_banner_on_another_page_and_its_unlock_opens_the_station()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((gateway, browser, station)) = start_with_station(dir.path()).await else {
        return;
    };
    login(&gateway, &browser, "wang", GUARD_PASSWORD).await;
    browser.set_size(PHONE.0, PHONE.1).await.expect("phone");
    browser
        .goto(&gateway.url("/devices"))
        .await
        .expect("devices");
    browser
        .wait_for("#device-b3-door")
        .await
        .expect("the devices page");
    assert!(
        browser
            .wait_for("#ring-banner")
            .await
            .expect("the banner's place")
            .attr("hidden")
            .await
            .expect("attribute")
            .is_some(),
        "nothing rings yet"
    );
    eventually("the station's alert stream", DEADLINE, || {
        let n = station.streams();
        async move { (n > 0).then_some(()) }
    })
    .await
    .expect("the driver opened the stream");
    browser
        .script("window.gatehouseMarker = 7;")
        .await
        .expect("script");

    // A visitor calls 3-1-502: the banner comes up on the devices page,
    // without a reload, with the caller's snapshot from the camera that
    // watches the station.
    station.ring("3-1-502");
    let call = browser
        .wait_for("#ring-banner:not([hidden]) li.ring-call")
        .await
        .expect("the ringing banner");
    let text = call.text().await.expect("text");
    assert!(
        text.contains("3号楼门口机") && text.contains("3-1-502"),
        "{text}"
    );
    browser
        .wait_for("#ring-banner li.ring-call img.ring-snap")
        .await
        .expect("the caller's snapshot");
    let marker = browser
        .script("return window.gatehouseMarker;")
        .await
        .expect("script");
    assert_eq!(marker, serde_json::json!(7), "the page was not reloaded");
    browser
        .screenshot("ring-banner-phone")
        .await
        .expect("screenshot");
    assert_accessible(&browser, "/devices with a call ringing").await;

    // Without a reason nothing is sent (the field is required).
    browser
        .click("#ring-banner li.ring-call button.unlock")
        .await
        .expect("unlock without a reason");
    assert!(
        station.unlocks().borrow().is_empty(),
        "no unlock without a reason"
    );
    // With one, the station's door opens, and the guard is back on the
    // page with the outcome.
    browser
        .fill(
            "#ring-banner li.ring-call input[name=reason]",
            "访客 3-1-502，已与业主通话",
        )
        .await
        .expect("reason");
    browser
        .click("#ring-banner li.ring-call button.unlock")
        .await
        .expect("unlock");
    let mut unlocks = station.unlocks();
    tokio::time::timeout(DEADLINE, unlocks.wait_for(|doors| doors == &[1]))
        .await
        .expect("the station's door opened in time")
        .expect("station running");
    let flash = browser.wait_for("#flash").await.expect("outcome shown");
    let text = flash.text().await.expect("text");
    assert!(
        text.contains("已执行") && text.contains("审计记录号"),
        "{text}"
    );
    browser
        .wait_for("#device-b3-door")
        .await
        .expect("back on the devices page");

    // The call rings out: the banner goes.
    station.hang_up();
    browser
        .wait_for("#ring-banner[hidden]")
        .await
        .expect("the banner gone once the call is missed");

    // The 对讲 page: the station online, the call in the log, found again
    // by its unit and among the missed calls; another unit finds nothing.
    browser
        .goto(&gateway.url("/intercom?unit=1-502&missed=1"))
        .await
        .expect("intercom");
    browser
        .wait_for("#station-b3-door .pill.ok")
        .await
        .expect("the station online");
    browser
        .wait_for("#calls li.ev")
        .await
        .expect("the missed call, by its unit");
    browser
        .goto(&gateway.url("/intercom?unit=9-9-999"))
        .await
        .expect("intercom");
    browser.wait_for("#call-log").await.expect("the call log");
    assert!(
        browser
            .client
            .find_all(fantoccini::Locator::Css("#calls li.ev"))
            .await
            .expect("rows")
            .is_empty(),
        "another unit's calls"
    );
    // The unlock is audited with the guard's reason (an admin reads it).
    browser
        .click("form[action='/logout'] button")
        .await
        .expect("log out");
    browser.wait_for("#login-form").await.expect("logged out");
    login(&gateway, &browser, "admin", ADMIN_PASSWORD).await;
    browser
        .goto(&gateway.url("/audit?kind=command"))
        .await
        .expect("audit");
    let row = browser
        .wait_for("tr.audit-command td.reason")
        .await
        .expect("the unlock in the audit log");
    assert_eq!(
        row.text().await.expect("text"),
        "访客 3-1-502，已与业主通话"
    );
    browser.close().await.expect("close");
}
