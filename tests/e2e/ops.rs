//! Operations, end to end: the dashboard and alert rules name only metrics
//! a running gateway exports; systemd hears READY, STATUS and watchdog
//! pings; a backup taken under load restores every acknowledged event and
//! every list row, and a restore is refused while the gateway runs;
//! `gatehouse doctor` reports what needs attention.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use gatehouse_tests::{DEADLINE, GatewayProcess, eventually, test_config};
use nix::sys::signal::Signal;

use crate::{GATEHOUSE, read_all};

fn gatehouse(args: &[&str]) -> Output {
    std::process::Command::new(GATEHOUSE)
        .args(args)
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .expect("run gatehouse")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every `gatehouse_*` name in a dashboard or rule file.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("gatehouse_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        // Prose such as "gatehouse_* metrics" names no metric.
        if !name.ends_with('_') {
            names.insert(name.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Whether a scrape exports `name` (a sample, or a family described by
/// `# TYPE`, counters without their `_total`).
fn exported(scrape: &str, name: &str) -> bool {
    let family = name.strip_suffix("_total").unwrap_or(name);
    scrape.lines().any(|line| {
        line.starts_with(&format!("{name} "))
            || line.starts_with(&format!("{name}{{"))
            || line.starts_with(&format!("# TYPE {family} "))
    })
}

#[tokio::test]
async fn the_dashboard_and_alert_rules_name_only_exported_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gateway = GatewayProcess::demo(GATEHOUSE, dir.path())
        .await
        .expect("demo starts");
    gateway.wait_ready().await.expect("ready");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard =
        std::fs::read_to_string(root.join("deploy/grafana/gatehouse.json")).expect("dashboard");
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/gatehouse-alerts.yml"))
        .expect("rules");
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    let wanted: BTreeSet<String> = metric_names(&dashboard)
        .into_iter()
        .chain(metric_names(&rules))
        .collect();
    assert!(wanted.len() >= 10, "{wanted:?}");
    // The uplink's families appear once it has been polled; wait for them.
    let scrape = eventually("every metric the dashboards name", DEADLINE, || {
        let scrape = gateway.metrics();
        let wanted = wanted.clone();
        async move {
            let scrape = scrape.await.ok()?;
            wanted
                .iter()
                .all(|name| exported(&scrape, name))
                .then_some(scrape)
        }
    })
    .await;
    if let Err(error) = scrape {
        let scrape = gateway.metrics().await.unwrap_or_default();
        let missing: Vec<_> = wanted.iter().filter(|n| !exported(&scrape, n)).collect();
        panic!("{error}: not exported: {missing:?}");
    }
    gateway.signal(Signal::SIGTERM).expect("term");
    gateway.wait_exit(DEADLINE).await.expect("exit");
}

#[tokio::test]
async fn systemd_hears_ready_status_and_watchdog_pings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).expect("notify socket");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, test_config(&dir.path().join("data"))).expect("config");
    let socket_env = socket_path.display().to_string();
    let mut gateway = GatewayProcess::run_with_env(
        GATEHOUSE,
        &config,
        &[("NOTIFY_SOCKET", &socket_env), ("WATCHDOG_USEC", "1000000")],
    )
    .await
    .expect("gateway starts");
    let mut heard = String::new();
    let mut buf = vec![0u8; 4096];
    let all = tokio::time::timeout(DEADLINE, async {
        while !(heard.contains("READY=1")
            && heard.contains("STATUS=")
            && heard.contains("WATCHDOG=1"))
        {
            let n = socket.recv(&mut buf).await.expect("recv");
            heard.push_str(&String::from_utf8_lossy(&buf[..n]));
            heard.push('\n');
        }
    })
    .await;
    assert!(all.is_ok(), "heard only:\n{heard}");
    let status = heard
        .lines()
        .find(|l| l.starts_with("STATUS=") && l.contains("queue"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        status.contains("devices"),
        "status line: {status:?}\n{heard}"
    );
    gateway.signal(Signal::SIGTERM).expect("term");
    let stopping = tokio::time::timeout(DEADLINE, async {
        loop {
            let n = socket.recv(&mut buf).await.expect("recv");
            if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
                return;
            }
        }
    })
    .await;
    assert!(stopping.is_ok(), "no STOPPING=1 on SIGTERM");
    assert!(gateway.wait_exit(DEADLINE).await.expect("exit").success());
}

#[tokio::test]
async fn a_backup_under_load_restores_every_acknowledged_event_and_list_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    std::fs::create_dir_all(&data).expect("data dir");
    let csv = dir.path().join("residents.csv");
    let mut rows = String::from("plate,house,owner,valid_from,valid_to,lanes\n");
    for i in 0..40 {
        rows.push_str(&format!(
            "苏A{:05},3-2-{},业主{i},,,\n",
            10_000 + i,
            100 + i
        ));
    }
    std::fs::write(&csv, rows).expect("csv");
    let import = gatehouse(&[
        "plates",
        "import",
        &csv.display().to_string(),
        "--data-dir",
        &data_arg,
    ]);
    assert!(import.status.success(), "{}", text(&import));

    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, test_config(&data)).expect("config");
    let config_arg = config.display().to_string();
    let mut gateway = GatewayProcess::run(GATEHOUSE, &config)
        .await
        .expect("gateway starts");
    gateway.wait_ready().await.expect("ready");
    // The simulated tank keeps appending while the backup runs.
    let db = gatehouse_tests::database(&data);
    // (Numbers have gaps: a start skips some. What counts is every row on
    // disk at this moment.)
    let (acknowledged, on_disk) = eventually("200 events on disk", DEADLINE, || {
        let db = db.clone();
        async move {
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .ok()?;
            let (max, count): (i64, i64) = conn
                .query_row(
                    "SELECT coalesce(max(seq), 0), count(*) FROM events",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ok()?;
            (count >= 200).then_some((max, count))
        }
    })
    .await
    .expect("events flow");

    let backup_file = dir.path().join("backup.db");
    let backup_arg = backup_file.display().to_string();
    let backup = gatehouse(&["backup", "--config", &config_arg, &backup_arg]);
    assert!(backup.status.success(), "{}", text(&backup));
    assert!(text(&backup).contains("events"), "{}", text(&backup));

    let refused = gatehouse(&["restore", "--config", &config_arg, &backup_arg]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("running"), "{}", text(&refused));

    gateway.signal(Signal::SIGTERM).expect("term");
    assert!(gateway.wait_exit(DEADLINE).await.expect("exit").success());

    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).expect("restored dir");
    let config2 = dir.path().join("restored.toml");
    std::fs::write(&config2, test_config(&restored)).expect("config");
    let restore = gatehouse(&[
        "restore",
        "--config",
        &config2.display().to_string(),
        &backup_arg,
    ]);
    assert!(restore.status.success(), "{}", text(&restore));

    let live: BTreeSet<_> = read_all(&data)
        .await
        .into_iter()
        .filter(|e| e.seq <= acknowledged as u64)
        .map(|e| (e.seq, e.id))
        .collect();
    let back: BTreeSet<_> = read_all(&restored)
        .await
        .into_iter()
        .map(|e| (e.seq, e.id))
        .collect();
    assert_eq!(
        live.len(),
        on_disk as usize,
        "every row that was on disk is still in the live queue"
    );
    let missing: Vec<_> = live.difference(&back).collect();
    assert!(
        missing.is_empty(),
        "acknowledged events missing from the backup: {missing:?}"
    );

    let list = gatehouse(&[
        "plates",
        "list",
        "--data-dir",
        &restored.display().to_string(),
    ]);
    let listed = String::from_utf8_lossy(&list.stdout);
    for i in 0..40 {
        assert!(
            listed.contains(&format!("苏A{:05}", 10_000 + i)),
            "{listed}"
        );
    }
}

#[tokio::test]
async fn doctor_names_what_needs_attention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // A barrier module nobody answers for, and a serial reader that is not plugged in.
    let closed = testkit::free_addr();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"{base}
[[devices]]
id = "barrier-1"
type = "modbus-barrier"
address = "{closed}"

[[devices]]
id = "reader-1"
type = "serial-reader"
path = "/dev/gatehouse-no-such-tty"
framing = "ascii-hex"
"#,
            base = test_config(&data)
        ),
    )
    .expect("config");
    let check = gatehouse(&["check-config", &config.display().to_string()]);
    assert!(
        check.status.success(),
        "the test's own config: {}",
        text(&check)
    );
    let doctor = gatehouse(&["doctor", "--config", &config.display().to_string()]);
    let out = text(&doctor);
    assert_eq!(doctor.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "FAIL  device       barrier-1: {closed} does not answer"
        )),
        "{out}"
    );
    assert!(out.contains("FAIL  serial       reader-1"), "{out}");
    assert!(out.contains("ok    config"), "{out}");
    assert!(out.contains("need attention"), "{out}");
}
