//! `gatehouse cards …` and `gatehouse check-config` for doors, run as the
//! real binary: CSV import with rejected rows by line, export round trip,
//! add / block / list / remove, and door problems located with exit 64.

use std::path::Path;
use std::process::{Command, Output};

fn config(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        format!(
            r#"[gateway]
estate_id = "e1"
gateway_id = "g1"
data_dir = "{}"

[[door_groups]]
id = "b3"
"#,
            dir.join("data").display()
        ),
    )
    .expect("write config");
    file
}

fn cards(config: &Path, args: &[&str]) -> Output {
    Command::new(crate::GATEHOUSE)
        .arg("cards")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn cards_csv_cli_imports_reports_rejected_lines_and_exports_the_same_cards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let csv = dir.path().join("cards.csv");
    std::fs::write(
        &csv,
        "number,holder,house,valid_from,valid_to,groups\n\
         3054391123,王芳,3-1-1201,,2027-12-31,b3\n\
         notanumber,李雷,3-1-1202,,,\n\
         2871005410,韩梅梅,3-1-0801,2026-01-01,,\n\
         1190347702,张伟,3-1-0802,,,gym\n",
    )
    .expect("csv");
    let refused = cards(&config, &["import", csv.to_str().expect("utf-8")]);
    let out = stdout(&refused);
    assert!(
        out.contains("0 card(s) written, 2 row(s) rejected"),
        "all or nothing by default: {out}"
    );
    assert!(out.contains("--keep-good"), "{out}");
    let import = cards(
        &config,
        &["import", csv.to_str().expect("utf-8"), "--keep-good"],
    );
    let out = stdout(&import);
    assert!(
        import.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert!(
        out.contains("2 card(s) written, 2 row(s) rejected"),
        "{out}"
    );
    assert!(out.contains("line 3: card number \"notanumber\""), "{out}");
    assert!(out.contains("line 5: no door group \"gym\""), "{out}");

    let exported = dir.path().join("out.csv");
    let export = cards(&config, &["export", exported.to_str().expect("utf-8")]);
    assert!(export.status.success());
    let text = std::fs::read_to_string(&exported).expect("exported");
    let (rows, watermark) = text
        .split_once("# exported by ")
        .expect("the export ends with its watermark");
    assert_eq!(
        rows,
        "number,holder,house,valid_from,valid_to,groups\n\
         2871005410,韩梅梅,3-1-0801,2026-01-01,,\n\
         3054391123,王芳,3-1-1201,,2027-12-31,b3\n"
    );
    assert!(watermark.contains("(command line) at "), "{watermark}");
    assert_eq!(watermark.lines().count(), 1, "{watermark}");
    // The exported file, watermark and all, imports again.
    let again = cards(&config, &["import", exported.to_str().expect("utf-8")]);
    assert!(
        stdout(&again).contains("2 card(s) written, 0 row(s) rejected"),
        "{}",
        stdout(&again)
    );

    let add = cards(
        &config,
        &["add", "0042", "--holder", "李雷", "--house", "3-1-1202"],
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    assert!(
        cards(&config, &["block", "42", "--reason", "lost"])
            .status
            .success()
    );
    let list = stdout(&cards(&config, &["list"]));
    assert!(list.contains("42\t李雷\t3-1-1202"), "{list}");
    assert!(list.contains("BLOCKED (lost)"), "{list}");
    assert!(cards(&config, &["remove", "42"]).status.success());
    let missing = cards(&config, &["remove", "42"]);
    assert_eq!(missing.status.code(), Some(1), "nothing to remove");
    assert!(!stdout(&cards(&config, &["list"])).contains("李雷"));
}

#[test]
fn check_config_lists_door_problems_with_their_lines_and_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("doors.toml");
    std::fs::write(
        &file,
        r#"[gateway]
estate_id = "e1"
gateway_id = "g1"

[[devices]]
id = "reader"
type = "wiegand-reader"
gpio = "sim"
d0 = 17

[[door_groups]]
id = "b3"
schedule = ["mon-fri 6am-11pm"]

[[doors]]
id = "b3-u1"
readers = ["reader", "readr2"]
relay = "lock"
group = "b5"
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
    for expected in [
        format!("{name}:5: devices[0].d1: missing required key"),
        format!("{name}:13: door_groups[0].schedule: invalid time"),
        format!("{name}:17: doors[0].readers: no device with id \"readr2\""),
        format!("{name}:18: doors[0].relay: no device with id \"lock\""),
        format!("{name}:19: doors[0].group: no door group with id \"b5\""),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("5 problem(s) found."), "{stderr}");
}
