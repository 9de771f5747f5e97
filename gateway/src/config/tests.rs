//! Unit tests of the loader: every problem collected and located, defaults,
//! secrets (never leaked), and the shipped demo and example files.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// A test environment: only the given variables.
fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn check(text: &str) -> Result<Config, ConfigErrors> {
    parse_with(text, "test.toml", &env(&[]))
}

fn problems_in(text: &str) -> Vec<Problem> {
    match check(text) {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(e) => e.problems,
    }
}

/// (line, key) of each problem.
fn located(problems: &[Problem]) -> Vec<(usize, &str)> {
    problems.iter().map(|p| (p.line, p.key.as_str())).collect()
}

fn find<'a>(problems: &'a [Problem], key: &str) -> &'a Problem {
    problems
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("no problem at {key}: {problems:#?}"))
}

const MINIMAL: &str = "[gateway]\nestate_id = \"e1\"\ngateway_id = \"g1\"\n";

#[test]
fn every_problem_is_reported_with_line_and_key() {
    let text = r#"[gateway]
estate_id = "demo"
gateway_id = "gw-1"
colour = "blue"
[store]
max_bytes = 12
group_commit_window = "5 parsecs"
[panel]
listen = 8080
metrics_token = "hunter2-inline"
[[devices]]
id = "tank-1"
type = "sim-tank"
[[devices]]
id = "tank-1"
type = "sim-tank"
intervall = "1s"
[[alarms]]
device = "tank-9"
point = "level"
below = 1.5
"#;
    let problems = problems_in(text);
    assert_eq!(
        located(&problems),
        vec![
            (4, "gateway.colour"),
            (7, "store.group_commit_window"),
            (9, "panel.listen"),
            (10, "panel.metrics_token"),
            (15, "devices[1].id"),
            (17, "devices[1].intervall"),
            (19, "alarms[0].device"),
        ],
        "{problems:#?}"
    );
    assert!(problems.iter().all(|p| p.file == "test.toml"));
    assert!(
        find(&problems, "store.group_commit_window")
            .message
            .contains("invalid duration")
    );
    assert!(
        find(&problems, "panel.listen")
            .message
            .contains("found integer")
    );
    assert!(
        find(&problems, "panel.metrics_token")
            .message
            .contains("must come from a file or an environment variable")
    );
    assert!(
        find(&problems, "devices[1].id")
            .message
            .contains("first defined on line 12")
    );
    assert!(
        find(&problems, "devices[1].intervall")
            .message
            .contains("did you mean `interval`")
    );
    assert!(
        find(&problems, "alarms[0].device")
            .message
            .contains("\"tank-9\"")
    );
    let rendered = ConfigErrors { problems }.render();
    assert!(!rendered.contains("hunter2"), "{rendered}");
}

#[test]
fn render_prints_one_line_per_problem() {
    let errors = check("[gateway]\nestate_id = \"Bad Id\"\ngateway_id = \"g\"\n").unwrap_err();
    assert_eq!(
        errors.render(),
        "test.toml:2: gateway.estate_id: invalid id \"Bad Id\": \
         use 1 to 64 characters from a-z, 0-9, '_' and '-'\n"
    );
    let unreadable = Problem {
        file: "/nope.toml".into(),
        line: 0,
        key: String::new(),
        message: "cannot read".into(),
    };
    assert_eq!(unreadable.to_string(), "/nope.toml: cannot read");
}

#[test]
fn a_syntax_error_is_one_located_problem() {
    let text = "[gateway]\nestate_id = \"unterminated\ngateway_id = 5\n[store\n";
    let problems = problems_in(text);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].line, 2);
    assert_eq!(problems[0].key, "");
    assert!(problems[0].message.starts_with("invalid TOML"));
}

#[test]
fn missing_required_keys_are_reported_at_the_table() {
    let problems = problems_in("# nothing\n");
    assert_eq!(
        located(&problems),
        vec![(1, "gateway.estate_id"), (1, "gateway.gateway_id")]
    );
    let problems = problems_in("\n[gateway]\ngateway_id = \"g\"\n[[devices]]\nname = \"x\"\n");
    assert_eq!(
        located(&problems),
        vec![
            (2, "gateway.estate_id"),
            (4, "devices[0].id"),
            (4, "devices[0].type")
        ]
    );
    assert!(problems.iter().all(|p| p.message == "missing required key"));
}

#[test]
fn defaults_are_applied() {
    let text = format!("{MINIMAL}[[devices]]\nid = \"t1\"\ntype = \"sim-tank\"\n");
    let config = check(&text).unwrap();
    assert_eq!(config.gateway.estate_id, "e1");
    assert_eq!(config.gateway.gateway_id, "g1");
    assert_eq!(config.gateway.data_dir, PathBuf::from("/var/lib/gatehouse"));
    assert_eq!(config.gateway.time_zone.name(), "Asia/Shanghai");
    assert_eq!(config.store.max_bytes, 256 * 1024 * 1024);
    assert_eq!(config.store.critical_reserve_bytes, 32 * 1024 * 1024);
    assert_eq!(config.store.group_commit_window, Duration::from_millis(2));
    assert_eq!(config.panel.listen.to_string(), "127.0.0.1:8080");
    assert!(config.panel.metrics_token.is_none());
    assert_eq!(
        config.supervisor.backoff_initial,
        Duration::from_millis(500)
    );
    assert_eq!(config.supervisor.backoff_max, Duration::from_secs(30));
    assert_eq!(config.supervisor.drain_budget, Duration::from_secs(10));
    assert!(config.alarms.is_empty());
    let [device] = config.devices.as_slice() else {
        panic!("one device expected: {:?}", config.devices)
    };
    assert_eq!(device.id, "t1");
    assert_eq!(device.name, "t1");
    let DeviceKind::SimTank { height_m, interval } = &device.kind else {
        panic!("expected a sim-tank")
    };
    assert_eq!(*height_m, 4.0);
    assert_eq!(*interval, Duration::from_secs(2));
}

#[test]
fn the_time_zone_is_an_iana_name() {
    let text = MINIMAL.replace("[gateway]\n", "[gateway]\ntime_zone = \"Asia/Urumqi\"\n");
    assert_eq!(
        check(&text).unwrap().gateway.time_zone.name(),
        "Asia/Urumqi"
    );
    let text = MINIMAL.replace("[gateway]\n", "[gateway]\ntime_zone = \"+08:00\"\n");
    let problems = problems_in(&text);
    assert_eq!(located(&problems), [(2, "gateway.time_zone")]);
    assert!(problems[0].message.contains("+08:00"), "{problems:?}");
}

#[test]
fn values_are_converted() {
    let text = format!(
        "{MINIMAL}[store]\nmax_bytes = \"1GB\"\ncritical_reserve_bytes = 4096\n\
         group_commit_window = \"5ms\"\n[panel]\nlisten = \"[::1]:9000\"\n\
         [supervisor]\nbackoff_initial = \"1s\"\nbackoff_max = \"2m\"\ndrain_budget = \"0s\"\n\
         [[devices]]\nid = \"t-1\"\nname = \"1号楼二次供水水箱\"\ntype = \"sim-tank\"\n\
         height_m = 3\ninterval = \"1500ms\"\n\
         [[alarms]]\ndevice = \"t-1\"\npoint = \"level\"\nabove = 2.5\nbelow = 1\nhysteresis = 0.25\n"
    );
    let config = check(&text).unwrap();
    assert_eq!(config.store.max_bytes, 1_000_000_000);
    assert_eq!(config.store.critical_reserve_bytes, 4096);
    assert_eq!(config.store.group_commit_window, Duration::from_millis(5));
    assert_eq!(config.panel.listen.to_string(), "[::1]:9000");
    assert_eq!(config.supervisor.backoff_max, Duration::from_secs(120));
    assert_eq!(config.supervisor.drain_budget, Duration::ZERO);
    assert_eq!(config.devices[0].name, "1号楼二次供水水箱");
    let DeviceKind::SimTank { height_m, interval } = &config.devices[0].kind else {
        panic!("expected a sim-tank")
    };
    assert_eq!((*height_m, *interval), (3.0, Duration::from_millis(1500)));
    let alarm = &config.alarms[0];
    assert_eq!(
        (alarm.device.as_str(), alarm.point.as_str()),
        ("t-1", "level")
    );
    assert_eq!(
        (alarm.above, alarm.below, alarm.hysteresis),
        (Some(2.5), Some(1.0), 0.25)
    );
}

#[test]
fn invalid_values_are_located_problems() {
    let text = format!(
        "{MINIMAL}\
[store]
max_bytes = \"lots\"
critical_reserve_bytes = -1
group_commit_window = \"1s\"
[supervisor]
backoff_initial = \"10s\"
backoff_max = \"5s\"
[[devices]]
id = \"t1\"
type = \"sim-tank\"
height_m = -2.0
interval = \"0s\"
"
    );
    let problems = problems_in(&text);
    assert_eq!(
        located(&problems),
        vec![
            (5, "store.max_bytes"),
            (6, "store.critical_reserve_bytes"),
            (7, "store.group_commit_window"),
            (10, "supervisor.backoff_max"),
            (14, "devices[0].height_m"),
            (15, "devices[0].interval"),
        ],
        "{problems:#?}"
    );
    assert!(
        find(&problems, "store.max_bytes")
            .message
            .contains("invalid byte size")
    );
    assert!(
        find(&problems, "store.critical_reserve_bytes")
            .message
            .contains("negative")
    );
    assert!(
        find(&problems, "store.group_commit_window")
            .message
            .contains("at most 100ms")
    );
    assert!(
        find(&problems, "supervisor.backoff_max")
            .message
            .contains("backoff_initial")
    );
}

#[test]
fn unknown_tables_types_and_device_types_are_reported() {
    let text = format!(
        "{MINIMAL}[gatway]\nx = 1\n[[devices]]\nid = \"t1\"\ntype = \"sim-tnak\"\nheight_m = 2.0\n\
         [[devices]]\nid = \"t2\"\ntype = 7\n[panel]\nmetrics_token = 5\n"
    );
    let problems = problems_in(&text);
    assert_eq!(
        located(&problems),
        vec![
            (4, "gatway"),
            (8, "devices[0].type"),
            (12, "devices[1].type"),
            (14, "panel.metrics_token"),
        ],
        "{problems:#?}"
    );
    assert!(
        find(&problems, "gatway")
            .message
            .contains("did you mean `gateway`")
    );
    let unknown_type = &find(&problems, "devices[0].type").message;
    assert!(
        unknown_type.contains("did you mean \"sim-tank\""),
        "{unknown_type}"
    );
    assert!(
        unknown_type.contains("known types: sim-tank"),
        "{unknown_type}"
    );
    assert!(
        find(&problems, "devices[1].type")
            .message
            .contains("found integer")
    );
}

#[test]
fn alarm_rules_are_checked() {
    let text = format!(
        "{MINIMAL}[[devices]]\nid = \"t1\"\ntype = \"sim-tank\"\n\
[[alarms]]
device = \"t1\"
point = \"level\"
[[alarms]]
device = \"t1\"
point = \"\"
above = 1.0
below = 2.0
hysteresis = -0.5
[[alarms]]
point = \"level\"
below = 1
"
    );
    let problems = problems_in(&text);
    assert_eq!(
        located(&problems),
        vec![
            (7, "alarms[0]"),
            (12, "alarms[1].point"),
            (14, "alarms[1].below"),
            (15, "alarms[1].hysteresis"),
            (16, "alarms[2].device"),
        ],
        "{problems:#?}"
    );
    assert!(
        find(&problems, "alarms[0]")
            .message
            .contains("`above`, `below`")
    );
    assert!(
        find(&problems, "alarms[1].below")
            .message
            .contains("less than above")
    );
}

#[test]
fn secret_from_env_is_resolved_and_never_shown() {
    let text = format!("{MINIMAL}[panel]\nmetrics_token = {{ env = \"GH_TOKEN_TEST\" }}\n");
    let config = parse_with(
        &text,
        "t.toml",
        &env(&[("GH_TOKEN_TEST", "s3cr3t-from-env")]),
    )
    .unwrap();
    let token = config.panel.metrics_token.as_ref().unwrap();
    assert_eq!(token.expose(), "s3cr3t-from-env");
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(debug.contains("<redacted>"));
}

#[test]
fn secret_from_file_is_trimmed_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.token");
    std::fs::write(&path, "s3cr3t-from-file\n").unwrap();
    let text = format!(
        "{MINIMAL}[panel]\nmetrics_token = {{ file = {:?} }}\n",
        path.display().to_string()
    );
    let config = check(&text).unwrap();
    assert_eq!(
        config.panel.metrics_token.as_ref().unwrap().expose(),
        "s3cr3t-from-file"
    );
    assert!(!format!("{config:?}").contains("s3cr3t"));

    // With another problem in the file the secret is still read, and still
    // not shown anywhere.
    let broken = format!("{text}bogus = 1\n");
    let errors = check(&broken).unwrap_err();
    assert_eq!(located(&errors.problems), vec![(6, "panel.bogus")]);
    assert!(!errors.render().contains("s3cr3t"));
    assert!(!format!("{errors:?}").contains("s3cr3t"));
}

#[test]
fn secret_sources_that_fail_are_located_problems() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.token");
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    let text = format!(
        "{MINIMAL}[panel]\nmetrics_token = {{ env = \"UNSET_VAR\" }}\n\
         [[devices]]\nid = \"t1\"\ntype = \"sim-tank\"\n"
    );
    let problems = problems_in(&text);
    assert_eq!(located(&problems), vec![(5, "panel.metrics_token.env")]);
    assert!(problems[0].message.contains("UNSET_VAR is not set"));

    for (source, expect) in [
        (
            format!("file = {:?}", missing.display().to_string()),
            "cannot read secret file",
        ),
        (
            format!("file = {:?}", empty.display().to_string()),
            "is empty",
        ),
        ("env = \"A\", file = \"/b\"".to_owned(), "not both"),
        (String::new(), "needs `env`"),
        ("value = \"s3cr3t\"".to_owned(), "unknown key"),
        (
            "env = \"s3cr3t pasted here\"".to_owned(),
            "not a valid environment variable name",
        ),
    ] {
        let text = format!("{MINIMAL}[panel]\nmetrics_token = {{ {source} }}\n");
        let problems = problems_in(&text);
        assert!(
            problems
                .iter()
                .any(|p| p.line == 5 && p.message.contains(expect)),
            "{source}: {problems:#?}"
        );
        assert!(problems.iter().all(|p| !p.message.contains("s3cr3t")));
    }
}

#[test]
fn load_reads_files_and_reports_unreadable_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(load(&path).unwrap().gateway.gateway_id, "g1");

    let absent = dir.path().join("absent.toml");
    let errors = load(&absent).unwrap_err();
    assert_eq!(errors.problems.len(), 1);
    assert_eq!(errors.problems[0].line, 0);
    assert_eq!(errors.problems[0].file, absent.display().to_string());
}

#[test]
fn demo_config_is_valid() {
    let config = parse_with(DEMO_TOML, "demo.toml", &env(&[])).unwrap();
    assert_eq!(config.gateway.estate_id, "demo-estate");
    assert_eq!(config.gateway.gateway_id, "gw-demo");
    assert_eq!(config.devices.len(), 9);
    assert!(config.devices.iter().all(|d| !d.name.is_ascii()));
    let cameras: Vec<_> = config
        .devices
        .iter()
        .filter_map(|d| match &d.kind {
            DeviceKind::OnvifCamera(c) => Some((c.address.as_str(), c.lanes.len(), c.doors.len())),
            _ => None,
        })
        .collect();
    let sim = "http://127.0.0.1:0/onvif/device_service";
    assert_eq!(
        cameras,
        [(sim, 2, 0), (sim, 0, 1)],
        "south gate and unit door"
    );
    assert_eq!(config.lanes.len(), 2, "an entry and an exit lane");
    assert_eq!(config.doors.len(), 1);
    assert_eq!(config.doors[0].name, "3号楼1单元门");
    let points: Vec<_> = config
        .devices
        .iter()
        .filter_map(|d| match &d.kind {
            DeviceKind::ModbusPoints { table, .. } => Some(table.points().len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        points,
        vec![12, 10],
        "the pump room and the elevator presets"
    );
    // And with the real environment, as the demo mode loads it.
    assert!(parse(DEMO_TOML, "demo.toml").is_ok());
}

#[test]
fn example_config_is_valid() {
    let text = include_str!("../../../config/gateway.example.toml");
    let vars = env(&[
        ("GATEHOUSE_METRICS_TOKEN", "example-token"),
        ("GATEHOUSE_COMMAND_KEY", "example-key"),
        ("GATEHOUSE_MQTT_PASSWORD", "example-password"),
        ("GATEHOUSE_PLATFORM_TOKEN", "example-platform-token"),
        ("GATEHOUSE_API_TOKEN", "example-api-token"),
        ("GATEHOUSE_CCTV_PASSWORD", "example-camera-password"),
        ("GATEHOUSE_STATION_PASSWORD", "example-station-password"),
    ]);
    let config = parse_with(text, "gateway.example.toml", &vars).unwrap();
    assert_eq!(
        config.panel.metrics_token.as_ref().map(Secret::expose),
        Some("example-token")
    );
    assert!(!config.devices.is_empty());
    assert!(!config.alarms.is_empty());
}

#[test]
fn panel_security_keys_have_defaults_and_are_checked() {
    let config = check(MINIMAL).unwrap();
    assert!(config.panel.tls.is_none());
    assert_eq!(config.panel.session_idle, Duration::from_secs(1800));
    assert_eq!(
        config.panel.session_absolute,
        Duration::from_secs(12 * 3600)
    );
    assert_eq!(config.panel.lockout_failures, 5);
    assert_eq!(config.panel.lockout_duration, Duration::from_secs(900));
    assert_eq!(config.store.journal_days, 90);
    assert_eq!(config.store.journal_max_rows, 1_000_000);

    let text = format!(
        "{MINIMAL}[store]\njournal_days = 0\n[panel]\ntls_cert = \"/etc/c.pem\"\n\
         session_idle = \"2h\"\nsession_absolute = \"1h\"\nlockout_failures = -1\n"
    );
    let problems = problems_in(&text);
    assert_eq!(
        located(&problems),
        [
            (5, "store.journal_days"),
            (7, "panel.tls_cert"), // cannot be read
            (7, "panel.tls_cert"), // needs tls_key
            (9, "panel.session_absolute"),
            (10, "panel.lockout_failures"),
        ],
        "{problems:#?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pem_pair(dir.path());
    let text = format!(
        "{MINIMAL}[panel]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let tls = check(&text).unwrap().panel.tls.unwrap();
    assert_eq!(tls.cert, cert);
    assert_eq!(tls.key, key);
}

/// A self-signed certificate and its key, as PEM files in `dir`.
fn pem_pair(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("cert file");
    std::fs::write(&key_path, key.serialize_pem()).expect("key file");
    (cert_path, key_path)
}

#[test]
fn pem_files_are_checked_where_they_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pem_pair(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .expect("garbage");
    let missing = dir.path().join("missing.pem");
    // Key and certificate swapped; a CA file that is not PEM; one missing.
    let text = format!(
        "{MINIMAL}[panel]\ntls_cert = \"{key}\"\ntls_key = \"{cert}\"\n\
         [uplink]\nsink = \"https\"\n[uplink.https]\nbase_url = \"https://p\"\nca_file = \"{garbage}\"\n\
         [broker]\nembedded = true\n",
        key = key.display(),
        cert = cert.display(),
        garbage = garbage.display(),
    );
    let problems = problems_in(&text);
    assert_eq!(
        located(&problems),
        [
            (5, "panel.tls_cert"),
            (6, "panel.tls_key"),
            (11, "uplink.https.ca_file")
        ],
        "{problems:#?}"
    );
    assert!(
        problems[0].message.contains("no PEM certificate"),
        "{problems:#?}"
    );
    assert!(
        problems[1].message.contains("no PEM private key"),
        "{problems:#?}"
    );
    assert!(
        problems[2].message.contains("not valid PEM"),
        "{problems:#?}"
    );
    // The key's bytes are never echoed.
    let secret = std::fs::read_to_string(&key).expect("key");
    let secret_line = secret.lines().nth(1).expect("base64 line");
    assert!(problems.iter().all(|p| !p.message.contains(secret_line)));

    let text = format!(
        "{MINIMAL}[uplink]\nsink = \"mqtt\"\n[uplink.mqtt]\nhost = \"h\"\nca_file = \"{}\"\n",
        missing.display()
    );
    let problems = problems_in(&text);
    assert_eq!(located(&problems), [(8, "uplink.mqtt.ca_file")]);
    assert!(problems[0].message.contains("cannot read"), "{problems:#?}");
}

#[test]
fn door_devices_groups_and_doors_are_read() {
    let text = format!(
        "{MINIMAL}{}",
        r#"
[[devices]]
id = "r1"
type = "wiegand-reader"
gpio = "sim"
d0 = 17
d1 = { line = "WG_D1", active_low = false }
frame_gap = "8ms"
[[devices]]
id = "d1"
type = "door"
relay = 22
contact = { line = 23, active_low = true, pull_up = true }
pulse = "2s"
held_open_after = "45s"
[[devices]]
id = "wg"
type = "wg-controller"
controller = "127.0.0.1:60000"
serial = 423187757
bind = "127.0.0.1:0"
doors = 2
[[devices]]
id = "s1"
type = "serial-reader"
path = "/dev/ttyUSB0"
framing = "binary"
data_len = 4
checksum = "sum"
[[door_groups]]
id = "basement"
schedule = ["mon-fri 06:00-23:00", "sat,sun 22:00-06:00"]
[[doors]]
id = "a"
readers = ["r1", "s1"]
relay = "d1"
group = "basement"
anti_passback_pair = "b"
[[doors]]
id = "b"
readers = ["wg"]
relay = "wg"
controller_door = 2
"#
    );
    let config = check(&text).unwrap();
    let DeviceKind::WiegandReader {
        gpio, wiegand, d1, ..
    } = &config.devices[0].kind
    else {
        panic!("wiegand");
    };
    assert_eq!(*gpio, Gpio::Sim);
    assert_eq!(wiegand.frame_gap_us, 8_000);
    assert_eq!(d1.line, drivers::door::gpio::LineRef::Name("WG_D1".into()));
    let DeviceKind::Door {
        gpio,
        contact,
        hardware,
        ..
    } = &config.devices[1].kind
    else {
        panic!("door");
    };
    assert_eq!(*gpio, Gpio::Chip("gpiochip0".into()));
    assert_eq!(contact.chip.as_deref(), Some("gpiochip0"));
    assert!(contact.active_low && contact.pull_up);
    assert_eq!(hardware.pulse_ms, 2_000);
    assert_eq!(hardware.alarms.held_open_after_s, 45);
    assert!(matches!(&config.devices[2].kind, DeviceKind::WgController(wg) if wg.doors == 2));
    let windows = &config.door_groups[0].schedule.windows;
    assert_eq!(windows.len(), 2);
    assert_eq!(
        (windows[1].start_min, windows[1].end_min),
        (22 * 60, 6 * 60)
    );
    assert_eq!(config.doors[1].controller_door, Some(2));
}

#[test]
fn door_problems_are_each_located() {
    let text = format!(
        "{MINIMAL}{}",
        r#"
[[devices]]
id = "r1"
type = "wiegand-reader"
d0 = 17
d1 = true
w34 = "hex"
[[devices]]
id = "tank"
type = "sim-tank"
[[devices]]
id = "wg"
type = "wg-controller"
controller = "127.0.0.1:60000"
serial = 1
bind = "127.0.0.1:0"
doors = 2
[[door_groups]]
id = "night"
schedule = ["fri-mon 25:00-06:00"]
[[doors]]
id = "a"
readers = ["r9", "tank"]
relay = "tank"
group = "nigth"
anti_passback_pair = "zz"
[[doors]]
id = "b"
readers = ["wg"]
relay = "wg"
controller_door = 3
colour = "red"
[[doors]]
id = "c"
readers = ["wg"]
relay = "wg"
controller_door = 3
"#
    );
    let problems = problems_in(&text);
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "devices[0].d1",
            "devices[0].w34",
            "door_groups[0].schedule",
            "doors[0].readers",
            "doors[0].readers",
            "doors[0].relay",
            "doors[0].group",
            "doors[0].anti_passback_pair",
            "doors[1].controller_door",
            "doors[1].colour",
            "doors[2].readers",
            "doors[2].controller_door",
        ],
        "{problems:#?}"
    );
    assert!(
        find(&problems, "doors[0].group")
            .message
            .contains("did you mean \"night\"")
    );
    assert!(
        find(&problems, "doors[0].relay")
            .message
            .contains("not a door or a wg-controller")
    );
    assert!(
        find(&problems, "doors[1].controller_door")
            .message
            .contains("has 2 door(s)")
    );
    assert!(
        find(&problems, "doors[2].readers")
            .message
            .contains("already serves door \"b\"")
    );
    assert!(problems.iter().all(|p| p.line > 0));
}

#[test]
fn point_tables_report_overlaps_impossible_types_and_ranges_at_their_keys() {
    let text = format!(
        r#"{MINIMAL}
[[devices]]
id = "pumps"
type = "modbus-points"
address = "192.168.1.60:502"
[[devices.poll]]
name = "fast"
interval = "1s"
[[devices.points]]
name = "pressure"
register = "holding"
address = 0
type = "f32"
[[devices.points]]
name = "freq"
register = "holding"
address = 1
[[devices.points]]
name = "fault"
register = "coil"
address = 0
type = "u16"
[[devices.points]]
name = "count"
register = "input"
address = 65534
type = "u64"
[[devices.points]]
name = "state"
register = "holding"
address = 10
type = "bit"
[[devices.points]]
name = "setpoint"
register = "input"
address = 20
writable = true
min = 0
max = 1
group = "slow"
order = "ABDC"
"#
    );
    let problems = problems_in(&text);
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "devices[0].points[1].address",
        "devices[0].points[2].type",
        "devices[0].points[3].address",
        "devices[0].points[4].bit",
        "devices[0].points[5].writable",
        "devices[0].points[5].group",
        "devices[0].points[5].order",
    ] {
        assert!(keys.contains(&key), "{key} missing: {problems:#?}");
    }
    let overlap = find(&problems, "devices[0].points[1].address");
    assert!(
        overlap.message.contains("overlaps point \"pressure\""),
        "{overlap:?}"
    );
    assert_eq!(overlap.line, 20);
}

#[test]
fn point_presets_are_valid_and_combine_with_the_devices_own_points() {
    for (name, _, _) in super::points::PRESETS {
        let text = format!(
            "{MINIMAL}[[devices]]\nid = \"d\"\ntype = \"modbus-points\"\nserial = \"/dev/ttyUSB0\"\npreset = \"{name}\"\n"
        );
        let config = check(&text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let DeviceKind::ModbusPoints { table, .. } = &config.devices[0].kind else {
            panic!("a point device");
        };
        assert!(table.points().len() >= 10, "{name}");
        assert!(
            table.points().iter().all(|p| !p.display.is_ascii()),
            "{name}: Chinese names"
        );
    }
    // An extra point that overlaps the preset is refused at its own key.
    let text = format!(
        "{MINIMAL}[[devices]]\nid = \"d\"\ntype = \"modbus-points\"\naddress = \"10.0.0.5:502\"\npreset = \"vfd-water-supply\"\n\
         [[devices.points]]\nname = \"extra\"\nregister = \"holding\"\naddress = 3\n"
    );
    let problems = problems_in(&text);
    assert_eq!(
        located(&problems),
        vec![(12, "devices[0].points[0].address")]
    );
    // No table at all.
    let text = format!(
        "{MINIMAL}[[devices]]\nid = \"d\"\ntype = \"modbus-points\"\naddress = \"10.0.0.5:502\"\n"
    );
    let problems = problems_in(&text);
    assert!(
        problems.iter().any(|p| p.key == "devices[0].points"),
        "{problems:#?}"
    );
}

#[test]
fn backups_are_off_by_default_and_checked_when_on() {
    let base = "[gateway]\nestate_id = \"e\"\ngateway_id = \"g\"\n";
    let off = parse(base, "g.toml").expect("valid");
    assert_eq!(off.backup, None);
    let on = parse(
        &format!("{base}[backup]\ndir = \"/var/backups/gatehouse\"\n"),
        "g.toml",
    )
    .expect("valid");
    let on = on.backup.expect("configured");
    assert_eq!(on.keep, 7);
    assert_eq!(on.interval, std::time::Duration::from_secs(24 * 3600));
    let errors = parse(
        &format!("{base}[backup]\ninterval = \"10s\"\nkeep = 0\n"),
        "g.toml",
    )
    .expect_err("invalid");
    let text = errors.render();
    assert!(text.contains("backup.dir"), "{text}");
    assert!(text.contains("backup.interval"), "{text}");
    assert!(text.contains("backup.keep"), "{text}");
}

#[test]
fn the_device_listeners_limits_are_read_and_checked() {
    let text = format!(
        "{MINIMAL}[ingress]\nmax_connections = 8\nbody_timeout = \"2s\"\nallow_from = [\"192.168.10.0/24\", \"10.0.0.7\", \"fd00::/8\"]\n"
    );
    let config = check(&text).unwrap();
    assert_eq!(config.ingress.max_connections, 8);
    assert_eq!(config.ingress.header_timeout, Duration::from_secs(10));
    assert_eq!(config.ingress.body_timeout, Duration::from_secs(2));
    let allowed: Vec<String> = config
        .ingress
        .allow_from
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(allowed, ["192.168.10.0/24", "10.0.0.7/32", "fd00::/8"]);
    // Defaults: no allow-list.
    assert!(check(MINIMAL).unwrap().ingress.allow_from.is_empty());

    let text = format!(
        "{MINIMAL}[ingress]\nmax_connections = 0\nheader_timeout = \"10ms\"\nallow_from = [\"cameras\"]\n"
    );
    let problems = problems_in(&text);
    assert_eq!(
        located(&problems),
        vec![
            (5, "ingress.max_connections"),
            (6, "ingress.header_timeout"),
            (7, "ingress.allow_from"),
        ],
        "{problems:#?}"
    );
    assert!(
        find(&problems, "ingress.allow_from")
            .message
            .contains("\"cameras\"")
    );
}

#[test]
fn mqtt_failover_brokers_are_read_and_bad_ones_located() {
    let text = format!(
        "{MINIMAL}[uplink]\nsink = \"mqtt\"\n[uplink.mqtt]\nhost = \"nats-1\"\nport = 1884\nfailover = [\"nats-2\", \"nats-3:1885\", \"[fd00::3]:1886\", \"[fd00::4]\"]\n"
    );
    let config = check(&text).expect("valid");
    let SinkConfig::Mqtt(mqtt) = config.uplink.sink else {
        panic!("an MQTT uplink");
    };
    assert_eq!(
        mqtt.failover,
        [
            ("nats-2".to_owned(), 1883),
            ("nats-3".to_owned(), 1885),
            ("fd00::3".to_owned(), 1886),
            ("fd00::4".to_owned(), 1883),
        ],
        "the port defaults as `port` does (1883 without TLS)"
    );

    let text = format!(
        "{MINIMAL}[uplink]\nsink = \"mqtt\"\n[uplink.mqtt]\nhost = \"nats-1\"\nfailover = [\"nats-2:0\", \"fd00::3:1883\", \"\", \"ok:1883\"]\n"
    );
    let problems = problems_in(&text);
    assert_eq!(
        located(&problems),
        [(8, "uplink.mqtt.failover"); 3],
        "{problems:#?}"
    );
    assert!(
        problems[0].message.contains("\"nats-2:0\""),
        "{problems:#?}"
    );
    assert!(problems[1].message.contains("brackets"), "{problems:#?}");

    let text = format!(
        "{MINIMAL}[broker]\nembedded = true\n[uplink]\nsink = \"mqtt\"\n[uplink.mqtt]\nhost = \"embedded\"\nfailover = [\"nats-2\"]\n"
    );
    let problems = problems_in(&text);
    assert_eq!(
        located(&problems),
        [(10, "uplink.mqtt.failover")],
        "{problems:#?}"
    );
}

#[test]
fn privacy_retention_has_conservative_defaults_and_takes_whole_days() {
    let config = check(MINIMAL).expect("minimal");
    let day = Duration::from_secs(86_400);
    assert_eq!(config.privacy.snapshots, 30 * day);
    assert_eq!(config.privacy.access_records, 90 * day);
    assert_eq!(config.privacy.audit, 365 * day);
    let config = check(&format!(
        "{MINIMAL}[privacy]\nsnapshots = \"7d\"\ncall_logs = \"14d\"\n"
    ))
    .expect("valid");
    assert_eq!(config.privacy.snapshots, 7 * day);
    assert_eq!(config.privacy.call_logs, 14 * day);
    assert_eq!(
        config.privacy.visitors,
        30 * day,
        "the rest keep their defaults"
    );
    let problems = problems_in(&format!(
        "{MINIMAL}[privacy]\nsnapshots = \"12h\"\naudit = \"2000d\"\nvisitors = \"0d\"\nfaces = \"1d\"\n"
    ));
    assert_eq!(
        located(&problems),
        [
            (5, "privacy.snapshots"),
            (6, "privacy.audit"),
            (7, "privacy.visitors"),
            (8, "privacy.faces"),
        ],
        "{problems:#?}"
    );
    assert!(problems[0].message.contains("whole days"), "{problems:#?}");
}

#[test]
fn a_cameras_snapshot_bounds_default_and_are_checked_where_written() {
    let camera =
        "[[devices]]\nid = \"cctv-1\"\ntype = \"onvif-camera\"\naddress = \"192.168.1.64\"\n";
    let bounds = |config: &Config| {
        config.devices.iter().find_map(|d| match &d.kind {
            DeviceKind::OnvifCamera(c) => Some((c.snapshot_timeout, c.snapshot_max_bytes)),
            _ => None,
        })
    };
    let config = check(&format!("{MINIMAL}{camera}")).expect("valid");
    assert_eq!(
        bounds(&config),
        Some((DEFAULT_SNAPSHOT_TIMEOUT, DEFAULT_SNAPSHOT_MAX_BYTES))
    );
    let config = check(&format!(
        "{MINIMAL}{camera}snapshot_timeout = \"1500ms\"\nsnapshot_max_bytes = \"512KiB\"\n"
    ))
    .expect("valid");
    assert_eq!(
        bounds(&config),
        Some((Duration::from_millis(1500), 512 * 1024))
    );
    let problems = problems_in(&format!(
        "{MINIMAL}{camera}snapshot_timeout = \"1m\"\nsnapshot_max_bytes = \"64MiB\"\n"
    ));
    assert_eq!(
        located(&problems),
        [
            (8, "devices[0].snapshot_timeout"),
            (9, "devices[0].snapshot_max_bytes"),
        ],
        "{problems:#?}"
    );
}
