//! The panel in a real headless Chromium (see `gatehouse_tests::browser`):
//! log in, live events without reload, a manual command found in the audit
//! log, a guard kept out of user management, a form without its CSRF token
//! refused, lockout. Screenshots of the main pages are saved under
//! `$CARGO_TARGET_DIR/screenshots/`.

use gatehouse_tests::browser::Browser;
use gatehouse_tests::{GatewayProcess, user_cli};

const ADMIN_PASSWORD: &str = "门岗管理员密码2025";
const GUARD_PASSWORD: &str = "guard password 1";

/// A gateway (test config: a 20 ms tank with a threshold alarm) with an
/// admin `admin`, a guard `wang` and a guard `sun`, and a browser; `None`
/// when the browser is missing (and not required).
async fn start(dir: &std::path::Path) -> Option<(GatewayProcess, Browser)> {
    let browser = Browser::start().await.expect("browser starts")?;
    let data_dir = dir.join("data");
    let file = dir.join("gateway.toml");
    std::fs::write(&file, gatehouse_tests::test_config(&data_dir)).expect("config");
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
    Some((gateway, browser))
}

async fn login(gateway: &GatewayProcess, browser: &Browser, name: &str, password: &str) {
    browser
        .goto(&gateway.url("/login"))
        .await
        .expect("login page");
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
    browser.goto(&gateway.url("/login")).await.expect("goto");
    browser.wait_for("#login-form").await.expect("login form");
    browser.screenshot("login").await.expect("screenshot");

    login(&gateway, &browser, "admin", ADMIN_PASSWORD).await;
    browser.goto(&gateway.url("/live")).await.expect("live");
    browser.wait_for("#events").await.expect("live page");
    // A marker that a reload would wipe.
    browser
        .script("window.gatehouseMarker = 42;")
        .await
        .expect("script");
    // Point values are telemetry: never in the history, so a row of one
    // can only have come over the event stream.
    browser
        .wait_for("tr.class-telemetry")
        .await
        .expect("a telemetry row pushed by the server");
    browser
        .wait_for("tr.alarm")
        .await
        .expect("the threshold alarm stands out");
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
    browser.wait_for("tr.class-telemetry").await.expect("rows");
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
    for attempt in 0..5 {
        login(&gateway, &browser, "sun", "wrong password!").await;
        browser
            .wait_for("#login-error")
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
    }
    login(&gateway, &browser, "sun", GUARD_PASSWORD).await;
    browser.wait_for_text("已临时锁定").await.expect("locked");
    browser
        .screenshot("login-locked")
        .await
        .expect("screenshot");
    // Others are not locked out.
    login(&gateway, &browser, "wang", GUARD_PASSWORD).await;
    browser.wait_for("nav.nav").await.expect("wang logs in");
    browser.close().await.expect("close");
}
