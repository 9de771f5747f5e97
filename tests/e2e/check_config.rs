//! `gatehouse check-config`: every problem listed with its location, exit 64.

use std::process::Command;

#[test]
fn check_config_lists_every_problem_with_its_line_and_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        r#"[gateway]
estate_id = "e1"
gateway_id = "g1"
colour = "blue"

[store]
group_commit_window = "soon"

[[devices]]
id = "tank-1"
type = "sim-tank"
height_m = "tall"

[[alarms]]
device = "tank-9"
point = "level"
below = 1.0
"#,
    )
    .expect("write");
    let output = Command::new(crate::GATEHOUSE)
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "stderr:\n{stderr}");
    let name = file.display().to_string();
    for (line, key) in [
        (4, "gateway.colour"),
        (7, "store.group_commit_window"),
        (12, "devices[0].height_m"),
        (15, "alarms[0].device"),
    ] {
        let expected = format!("{name}:{line}: {key}:");
        assert!(
            stderr.contains(&expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert!(stderr.contains("tank-9"), "{stderr}");
}

#[test]
fn check_config_accepts_the_example_file_and_exits_0() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/gateway.example.toml"
    );
    let output = Command::new(crate::GATEHOUSE)
        .arg("check-config")
        .arg(example)
        .env("GATEHOUSE_METRICS_TOKEN", "example-token")
        .env("GATEHOUSE_COMMAND_KEY", "example-key")
        .env("GATEHOUSE_MQTT_PASSWORD", "example-password")
        .env("GATEHOUSE_PLATFORM_TOKEN", "example-platform-token")
        .env("GATEHOUSE_API_TOKEN", "example-api-token")
        .env("GATEHOUSE_STATION_PASSWORD", "example-station-password")
        .env("GATEHOUSE_CCTV_PASSWORD", "example-camera-password")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(!stdout.contains("example-token") && !stderr.contains("example-token"));
}

#[test]
fn check_config_lists_lane_problems_with_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lanes.toml");
    std::fs::write(
        &file,
        r#"[gateway]
estate_id = "e1"
gateway_id = "g1"

[[devices]]
id = "cam-1"
type = "lpr-camera"
vendor = "hikvision"
lane = "north-in"

[[devices]]
id = "barrier-1"
type = "modbus-barrier"
preset = "waveshare"

[[lanes]]
id = "south-in"
direction = "sideways"
barrier = "camera"

[[lanes]]
id = "south-out"
direction = "exit"
barrier = "barrier-9"
min_confidence = 120
"#,
    )
    .expect("write");
    let output = Command::new(crate::GATEHOUSE)
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "stderr:\n{stderr}");
    let name = file.display().to_string();
    for (line, key) in [
        (9, "devices[0].lane"),
        (11, "devices[1]"),
        (14, "devices[1].preset"),
        (18, "lanes[0].direction"),
        (19, "lanes[0].barrier"),
        (24, "lanes[1].barrier"),
        (25, "lanes[1].min_confidence"),
    ] {
        let expected = format!("{name}:{line}: {key}");
        assert!(
            stderr.contains(&expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
}

#[test]
fn check_config_reads_the_tls_files_and_names_the_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A certificate file that is not PEM (a copy of the wrong file, say).
    let cert = dir.path().join("panel.crt");
    std::fs::write(&cert, "this is not a certificate\n").expect("cert");
    let key = dir.path().join("panel.key");
    let file = dir.path().join("tls.toml");
    std::fs::write(
        &file,
        format!(
            "[gateway]\nestate_id = \"e1\"\ngateway_id = \"g1\"\n\n[panel]\n\
             tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("write");
    let output = Command::new(crate::GATEHOUSE)
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "stderr:\n{stderr}");
    let name = file.display().to_string();
    assert!(
        stderr.contains(&format!("{name}:6: panel.tls_cert:"))
            && stderr.contains("holds no PEM certificate"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}:7: panel.tls_key:")) && stderr.contains("cannot read"),
        "{stderr}"
    );
}
