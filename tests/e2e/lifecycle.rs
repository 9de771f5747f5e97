//! Gateway lifecycle: a corrupt database is quarantined and the gateway runs.

use drivers::Class;
use gatehouse_tests::{DEADLINE, GatewayProcess};
use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_database_is_quarantined_and_the_gateway_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    let db = gatehouse_tests::database(&data_dir);
    std::fs::write(
        &db,
        b"this is not an SQLite database, it is a power cut".repeat(200),
    )
    .expect("garbage");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, gatehouse_tests::test_config(&data_dir)).expect("config");

    let mut gateway = GatewayProcess::run(crate::GATEHOUSE, &config)
        .await
        .expect("starts");
    gateway
        .wait_ready()
        .await
        .expect("ready despite the corrupt file");
    gateway.signal(Signal::SIGTERM).expect("sigterm");
    let status = gateway.wait_exit(DEADLINE).await.expect("exits");
    assert!(status.success(), "log:\n{}", gateway.log_text());
    assert!(
        gateway.log_text().contains("ERROR"),
        "quarantine logged at ERROR"
    );

    let quarantined: Vec<_> = std::fs::read_dir(&data_dir)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gatehouse.db.corrupt-"))
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");

    let events = crate::read_all(&data_dir).await;
    let alarm = events
        .iter()
        .find(|e| e.kind == "store_quarantined")
        .expect("quarantine alarm recorded");
    assert_eq!(alarm.class, Class::Alarm);
    assert!(
        alarm.body["moved_to"]
            .as_str()
            .is_some_and(|p| p.contains("corrupt-"))
    );
}

#[test]
fn a_database_from_a_newer_gatehouse_exits_65_naming_that_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    let db = gatehouse_tests::database(&data_dir);
    {
        // What a newer Gatehouse leaves behind: a higher schema version and
        // its own version in `meta`.
        let (store, _) =
            gateway::store::Store::open(gateway::store::StoreConfig::new(&db)).expect("open");
        let conn = store.connect().expect("connect");
        conn.pragma_update(None, "user_version", 999).expect("bump");
        conn.execute(
            "UPDATE meta SET value = '7.3.1' WHERE key = 'written_by'",
            [],
        )
        .expect("newer writer");
        drop(conn);
        drop(store);
    }
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, gatehouse_tests::test_config(&data_dir)).expect("config");
    let output = std::process::Command::new(crate::GATEHOUSE)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(65), "stderr:\n{stderr}");
    assert!(stderr.contains("written by Gatehouse 7.3.1"), "{stderr}");
    // Left as it was: not migrated, not claimed, not quarantined.
    let conn = rusqlite::Connection::open(&db).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 999);
    let writer: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'written_by'", [], |r| {
            r.get(0)
        })
        .expect("written_by");
    assert_eq!(writer, "7.3.1");
    assert!(
        std::fs::read_dir(&data_dir).expect("ls").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .contains("corrupt")),
        "nothing quarantined"
    );
    let unit = include_str!("../../deploy/systemd/gatehouse.service");
    assert!(
        unit.lines()
            .any(|l| l.starts_with("RestartPreventExitStatus=") && l.contains(" 65")),
        "the unit does not restart on 65"
    );
    assert!(
        unit.lines()
            .any(|l| l == "ExecReload=/bin/kill -HUP $MAINPID"),
        "systemctl reload sends SIGHUP"
    );
}
