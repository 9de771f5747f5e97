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
