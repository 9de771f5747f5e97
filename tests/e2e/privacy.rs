//! `gatehouse privacy erase`, run as the real binary: a household's cards
//! and vehicles erased by house leave no byte of the household in the
//! database files, the erasure is recorded without it, and a missing or
//! unusable identifier is refused with why. The data directory and the
//! database files are the service user's alone (0700 / 0600).

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
"#,
            dir.join("data").display()
        ),
    )
    .expect("write config");
    file
}

fn gatehouse(config: &Path, args: &[&str]) -> Output {
    Command::new(crate::GATEHOUSE)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether `needle` is in the database or its WAL.
fn on_disk(data: &Path, needle: &str) -> bool {
    ["gatehouse.db", "gatehouse.db-wal"].iter().any(|name| {
        std::fs::read(data.join(name))
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

#[test]
fn privacy_erase_by_house_leaves_no_trace_of_the_household_and_records_only_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let (plate, owner, house, card, holder) =
        ("苏A8HK52", "王小芳", "3-1-1201", "3054391123", "王大明");
    for args in [
        &["plates", "add", plate, "--house", house, "--owner", owner][..],
        &[
            "plates",
            "add",
            "苏B77777",
            "--house",
            "5-1-101",
            "--owner",
            "李四",
        ],
        &["cards", "add", card, "--holder", holder, "--house", house],
    ] {
        let out = gatehouse(&config, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    for held in [plate, owner, house, card, holder] {
        assert!(on_disk(&data, held), "{held} is held before the erasure");
    }

    let erased = gatehouse(
        &config,
        &[
            "privacy",
            "erase",
            "--house",
            house,
            "--reason",
            "moved out, asked in writing",
        ],
    );
    let out = text(&erased);
    assert!(erased.status.success(), "{out}");
    assert!(out.contains("Erased house 3*******."), "{out}");
    assert!(out.contains("residents 1"), "{out}");
    assert!(out.contains("cards 1"), "{out}");
    assert!(out.contains("Recorded as privacy_erasure event"), "{out}");
    for gone in [plate, owner, house, card, holder] {
        assert!(!out.contains(gone), "the output names nobody: {out}");
        assert!(
            !on_disk(&data, gone),
            "{gone} is still in the database files"
        );
    }
    assert!(
        on_disk(&data, "苏B77777") && on_disk(&data, "李四"),
        "the neighbours stay"
    );
    assert!(on_disk(&data, "privacy_erasure") && on_disk(&data, "moved out, asked in writing"));
    // The data directory and the database are the service user's alone.
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).expect("meta").permissions())
            & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    for name in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let listed = gatehouse(&config, &["cards", "list"]);
    assert!(
        listed.status.success() && !text(&listed).contains(card),
        "{}",
        text(&listed)
    );

    // Nothing to identify the person by, or an unusable plate: refused, and
    // nothing is recorded.
    let missing = gatehouse(&config, &["privacy", "erase", "--reason", "x"]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("--plate"), "{}", text(&missing));
    let bad = gatehouse(
        &config,
        &[
            "privacy",
            "erase",
            "--plate",
            "not a plate",
            "--reason",
            "x",
        ],
    );
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("invalid plate"), "{}", text(&bad));
    let no_reason = gatehouse(
        &config,
        &["privacy", "erase", "--plate", "苏B77777", "--reason", " "],
    );
    assert_eq!(no_reason.status.code(), Some(1), "{}", text(&no_reason));
    assert!(
        text(&no_reason).contains("--reason"),
        "{}",
        text(&no_reason)
    );
    assert!(
        on_disk(&data, "苏B77777"),
        "a refused erasure erases nothing"
    );
}
