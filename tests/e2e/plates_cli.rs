//! `gatehouse plates …`: CSV import with rejected rows reported by line, and
//! a change made from the command line reaching a running gateway; the
//! processing record of what those lists hold (`gatehouse privacy report`).

use std::process::Command;

use drivers::PlateColour;
use drivers::lpr::Vendor;
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig};
use drivers::sim::camera::CameraSim;
use gatehouse_tests::{DEADLINE, eventually};

fn gatehouse(args: &[&str]) -> std::process::Output {
    Command::new(crate::GATEHOUSE)
        .args(args)
        .output()
        .expect("gatehouse runs")
}

#[test]
fn plates_cli_import_is_all_or_nothing_reports_rejected_rows_by_line_and_reads_gbk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let csv = dir.path().join("residents.csv");
    std::fs::write(
        &csv,
        "plate,house,owner,valid_from,valid_to,lanes\n\
         苏A8HK52,3-2-1201,王芳,,,\n\
         not-a-plate,1-1-101,李雷,,,\n\
         浙B12345,2-2-202,张伟,2026-01-01,2026-12-31,south-in\n",
    )
    .expect("csv");
    let data_arg = data.display().to_string();
    let csv_arg = csv.display().to_string();
    // All or nothing by default: nothing is written, every rejected row
    // is reported by line.
    let import = gatehouse(&["plates", "import", &csv_arg, "--data-dir", &data_arg]);
    let stderr = String::from_utf8_lossy(&import.stderr);
    let stdout = String::from_utf8_lossy(&import.stdout);
    assert_eq!(
        import.status.code(),
        Some(1),
        "rejected rows make it fail: {stdout}{stderr}"
    );
    assert!(
        stdout.contains("(UTF-8): 0 row(s) written, 1 rejected"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{csv_arg}:3: invalid plate")),
        "{stderr}"
    );
    assert!(stderr.contains("--keep-good"), "{stderr}");
    let list = gatehouse(&["plates", "list", "--data-dir", &data_arg]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).lines().count(),
        1,
        "only the header: nothing was written"
    );

    // Asked to keep the good rows, it writes them.
    let import = gatehouse(&[
        "plates",
        "import",
        &csv_arg,
        "--keep-good",
        "--data-dir",
        &data_arg,
    ]);
    let stdout = String::from_utf8_lossy(&import.stdout);
    assert_eq!(import.status.code(), Some(1));
    assert!(stdout.contains("2 row(s) written, 1 rejected"), "{stdout}");

    let list = gatehouse(&["plates", "list", "--data-dir", &data_arg]);
    assert!(list.status.success());
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.starts_with("plate,house,owner,valid_from,valid_to,lanes"),
        "{listed}"
    );
    assert!(listed.contains("苏A8HK52,3-2-1201,王芳"), "{listed}");
    assert!(
        listed.contains("浙B12345,2-2-202,张伟,2026-01-01,2026-12-31,south-in"),
        "{listed}"
    );
    assert!(!listed.contains("not-a-plate"));

    let dry = gatehouse(&[
        "plates",
        "import",
        &csv_arg,
        "--dry-run",
        "--data-dir",
        &data_arg,
    ]);
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would be written"));

    // Saved by Excel on Chinese Windows: GBK bytes, read and named.
    let gbk = dir.path().join("gbk.csv");
    let mut bytes = b"plate,house,owner,valid_from,valid_to,lanes\r\n".to_vec();
    // 苏A8HK52,3-2-1201,王芳 in GBK.
    bytes.extend_from_slice(&[
        0xcb, 0xd5, b'A', b'8', b'H', b'K', b'5', b'2', b',', b'3', b'-', b'2', b'-', b'1', b'2',
        b'0', b'1', b',', 0xcd, 0xf5, 0xb7, 0xbc,
    ]);
    bytes.extend_from_slice(b",,,\r\n");
    std::fs::write(&gbk, bytes).expect("gbk csv");
    let gbk_arg = gbk.display().to_string();
    let import = gatehouse(&["plates", "import", &gbk_arg, "--data-dir", &data_arg]);
    let stdout = String::from_utf8_lossy(&import.stdout);
    assert!(import.status.success(), "{stdout}");
    assert!(
        stdout.contains("(GB18030/GBK): 1 row(s) written"),
        "{stdout}"
    );
    let list = gatehouse(&["plates", "list", "--data-dir", &data_arg]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("苏A8HK52,3-2-1201,王芳"));
}

#[tokio::test(flavor = "multi_thread")]
async fn plates_cli_change_reaches_a_running_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (addr, _barrier) = BarrierSim::spawn_tcp(BarrierSimConfig::default())
        .await
        .expect("barrier simulator");
    let text = gatehouse_tests::lanes_config(&data, addr);
    let config = gateway::config::parse(&text, "lanes.toml").expect("config");
    let running = gateway::app::start(config).await.expect("starts");

    let data_arg = data.display().to_string();
    let added = tokio::task::spawn_blocking(move || {
        gatehouse(&[
            "plates",
            "add",
            "京C99999",
            "--house",
            "7-1-701",
            "--owner",
            "赵敏",
            "--data-dir",
            &data_arg,
        ])
    })
    .await
    .expect("cli");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let plates = running.plates.clone();
    eventually("the running gateway to reload its lists", DEADLINE, || {
        let plates = plates.clone();
        async move {
            plates
                .snapshot()
                .residents
                .contains("京C99999")
                .then_some(())
        }
    })
    .await
    .expect("reloaded");

    let ingress = running.ingress_addr.expect("listener");
    let camera = CameraSim::new(
        &format!("http://{ingress}"),
        "cam-south-in",
        Vendor::Vzenith,
    )
    .expect("camera");
    camera
        .push_plate("京C99999", PlateColour::Blue, 95)
        .await
        .expect("push");
    let events = running.store.read_after(0, 10_000).await.expect("read");
    let read = events
        .iter()
        .find(|e| e.kind == "plate_read")
        .expect("the read is stored before the camera gets its reply");
    assert_eq!(read.body["decision"], "allow");
    assert_eq!(read.body["reason"]["house"], "7-1-701");
    assert!(running.shutdown().await.is_clean());
}

#[test]
fn privacy_report_lists_what_personal_information_is_held_and_for_how_long() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let csv = dir.path().join("residents.csv");
    std::fs::write(
        &csv,
        "plate,house,owner,valid_from,valid_to,lanes\n苏A8HK52,3-2-1201,王芳,,,\n浙B12345,2-2-202,张伟,,,\n",
    )
    .expect("csv");
    let data_arg = data.display().to_string();
    let import = gatehouse(&[
        "plates",
        "import",
        &csv.display().to_string(),
        "--data-dir",
        &data_arg,
    ]);
    assert!(import.status.success(), "{import:?}");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nestate_id = \"e1\"\ngateway_id = \"g1\"\ndata_dir = \"{data_arg}\"\n\
             [privacy]\nsnapshots = \"14d\"\n"
        ),
    )
    .expect("config");
    let config_arg = config.display().to_string();
    let report = gatehouse(&["privacy", "report", "--config", &config_arg, "--json"]);
    assert!(report.status.success(), "{report:?}");
    let record: serde_json::Value = serde_json::from_slice(&report.stdout).expect("JSON");
    let holding = |name: &str| {
        record["holdings"]
            .as_array()
            .expect("holdings")
            .iter()
            .find(|h| h["record"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {record}"))
    };
    assert_eq!(holding("residents_vehicles")["count"], 2);
    assert_eq!(holding("snapshots")["kept"], "14 days", "from [privacy]");
    assert_eq!(holding("audit")["kept"], "365 days", "the default");
    assert!(
        holding("access_records")["sent_to"]
            .as_str()
            .is_some_and(|s| s.contains("no uplink")),
        "{record}"
    );
    // The table says the same to a person.
    let table = gatehouse(&["privacy", "report", "--config", &config_arg]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{table:?}");
    assert!(text.contains("residents_vehicles: 2 held"), "{text}");
    assert!(text.contains("kept: 14 days"), "{text}");
}
