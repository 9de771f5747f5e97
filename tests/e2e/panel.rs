//! The panel through the real binary: `gatehouse user …` on the database,
//! the one-time setup link printed on the first start, login over HTTP.

use gatehouse_tests::{DEADLINE, GatewayProcess, eventually, user_cli};

/// Writes the test config and returns its path and the data directory.
fn config(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data_dir = dir.join("data");
    let file = dir.join("gateway.toml");
    std::fs::write(&file, gatehouse_tests::test_config(&data_dir)).expect("config");
    (file, data_dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn user_cli_adds_lists_changes_and_removes_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _) = config(dir.path());
    let file = file.display().to_string();
    let bin = crate::GATEHOUSE;

    let (code, out, err) = user_cli(
        bin,
        &["add", "--config", &file, "--role", "admin", "管理员"],
        "a long password\n",
    )
    .await
    .expect("runs");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Added admin"), "{out}");
    assert!(!out.contains("a long password") && !err.contains("a long password"));

    let (code, _, err) = user_cli(
        bin,
        &["add", "--config", &file, "--role", "guard", "wang"],
        "short\n",
    )
    .await
    .expect("runs");
    assert_eq!(code, Some(1), "a short password is refused");
    assert!(err.contains("at least 10"), "{err}");

    let (code, _, err) = user_cli(
        bin,
        &["add", "--config", &file, "--role", "boss", "wang"],
        "",
    )
    .await
    .expect("runs");
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("unknown role"), "{err}");

    let (code, ..) = user_cli(
        bin,
        &["add", "--config", &file, "--role", "guard", "wang"],
        "guard password\n",
    )
    .await
    .expect("runs");
    assert_eq!(code, Some(0));
    let (code, out, _) = user_cli(bin, &["list", "--config", &file], "")
        .await
        .expect("runs");
    assert_eq!(code, Some(0));
    assert!(
        out.contains("管理员\tadmin") && out.contains("wang\tguard"),
        "{out}"
    );

    let (code, out, _) = user_cli(
        bin,
        &["passwd", "--config", &file, "wang"],
        "another long password\n",
    )
    .await
    .expect("runs");
    assert_eq!(code, Some(0));
    assert!(out.contains("0 session(s) ended"), "{out}");

    let (code, _, err) = user_cli(bin, &["remove", "--config", &file, "管理员"], "")
        .await
        .expect("runs");
    assert_eq!(code, Some(1));
    assert!(err.contains("last admin"), "{err}");
    let (code, ..) = user_cli(bin, &["remove", "--config", &file, "wang"], "")
        .await
        .expect("runs");
    assert_eq!(code, Some(0));

    let (code, _, _) = user_cli(bin, &["list"], "").await.expect("runs");
    assert_eq!(code, Some(2), "--config or --data-dir is required");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_setup_link_on_first_start_creates_the_admin_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _) = config(dir.path());
    let gateway = GatewayProcess::run(crate::GATEHOUSE, &file)
        .await
        .expect("starts");
    gateway.wait_ready().await.expect("ready");
    let link = eventually("the setup link on stdout", DEADLINE, || {
        let text = gateway.stdout_text();
        async move {
            text.lines()
                .find_map(|l| l.strip_prefix("Gatehouse setup: "))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        }
    })
    .await
    .expect("setup link printed");
    assert!(link.starts_with(&gateway.url("/setup?token=")), "{link}");
    assert!(
        !gateway
            .log_text()
            .contains(link.rsplit('=').next().unwrap_or("-")),
        "the token is not in the log"
    );

    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(&link)
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    let token = crate::hidden_field(&page, "token");
    let csrf = crate::hidden_field(&page, "csrf");
    let created = client
        .post(gateway.url("/setup"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", &token),
            ("name", "zhang"),
            ("password", "a long password"),
            ("confirm", "a long password"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), 303);
    let users = client.get(gateway.url("/users")).send().await.expect("get");
    assert_eq!(users.status(), 200, "logged in as the new admin");
    let again = reqwest::get(&link).await.expect("get");
    assert_eq!(again.status(), 404, "the link works once");
}
