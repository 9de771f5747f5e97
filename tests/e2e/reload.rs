//! Reloading the configuration of a running gateway (SIGHUP, as
//! `systemctl reload gatehouse` sends it): added devices and doors start
//! while a device that did not change keeps its connection to its peer (a
//! simulated Dahua VTO), and a changed one reconnects; a setting that needs
//! a restart is reported as such, the reload is audited; a configuration `check-config` would refuse is
//! logged problem by problem with its location, alarmed, and the gateway
//! runs on with the previous one.

use std::path::Path;

use drivers::Class;
use drivers::sim::dahua_vto::VtoSim;
use gatehouse_tests::{DEADLINE, GatewayProcess, eventually, metric_sum};
use nix::sys::signal::Signal;

/// A gateway with a tank and a Dahua door station (at `vto`), plus `extra`.
fn config(data_dir: &Path, vto: &VtoSim, secret: &Path, drain: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
estate_id = "test-estate"
gateway_id = "gw-test"
data_dir = "{}"

[panel]
listen = "127.0.0.1:0"

[supervisor]
drain_budget = "{drain}"

[[devices]]
id = "tank-1"
name = "1号楼水箱"
type = "sim-tank"
height_m = 4.0
interval = "50ms"
{station}{extra}"#,
        data_dir.display(),
        station = crate::intercom::dahua_station(vto, secret),
    )
}

/// A unit door on simulated lines: its reader, its lock, the door.
const ADDED_DOOR: &str = r#"
[[devices]]
id = "tank-2"
name = "2号楼水箱"
type = "sim-tank"
height_m = 3.0
interval = "50ms"

[[devices]]
id = "b7-reader"
type = "wiegand-reader"
gpio = "sim"
d0 = 17
d1 = 18

[[devices]]
id = "b7-lock"
type = "door"
gpio = "sim"
relay = 22
contact = 23

[[doors]]
id = "b7-u1"
readers = ["b7-reader"]
relay = "b7-lock"
"#;

async fn device_up(gateway: &GatewayProcess, device: &str) -> bool {
    let text = gateway.metrics().await.unwrap_or_default();
    metric_sum(
        &text,
        "gatehouse_driver_up",
        &format!("device=\"{device}\""),
    ) == 1.0
}

async fn wait_up(gateway: &GatewayProcess, device: &str) {
    eventually(&format!("{device} up"), DEADLINE, || async {
        device_up(gateway, device).await.then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", gateway.log_text()));
}

struct Estate {
    dir: tempfile::TempDir,
    vto: VtoSim,
    file: std::path::PathBuf,
    secret: std::path::PathBuf,
}

impl Estate {
    async fn new() -> Self {
        let vto = VtoSim::start("admin", "vto-pw").await.expect("vto sim");
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("vto.pw");
        std::fs::write(&secret, "vto-pw\n").expect("secret");
        let file = dir.path().join("gateway.toml");
        let estate = Self {
            dir,
            vto,
            file,
            secret,
        };
        estate.write("5s", "");
        estate
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn write(&self, drain: &str, extra: &str) {
        let text = config(&self.data_dir(), &self.vto, &self.secret, drain, extra);
        std::fs::write(&self.file, text).expect("config");
    }

    /// Starts the gateway and waits until the station is connected.
    async fn start(&self) -> GatewayProcess {
        let gateway = GatewayProcess::run(crate::GATEHOUSE, &self.file)
            .await
            .expect("starts");
        gateway.wait_ready().await.expect("ready");
        wait_up(&gateway, "b5-door").await;
        wait_up(&gateway, "tank-1").await;
        assert_eq!(self.vto.connections(), 1, "one connection to the station");
        gateway
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_starts_added_devices_and_doors_and_leaves_the_others_running() {
    let estate = Estate::new().await;
    let mut gateway = estate.start().await;
    let accepted = estate.vto.accepted();

    // A tank and a unit door are added; the drain budget changes too,
    // which only a restart applies.
    estate.write("6s", ADDED_DOOR);
    gateway.signal(Signal::SIGHUP).expect("sighup");

    for device in ["tank-2", "b7-reader", "b7-lock"] {
        wait_up(&gateway, device).await;
    }
    eventually("the reload logged", DEADLINE, || {
        let log = gateway.log_text();
        async move { log.contains("Configuration reloaded").then_some(()) }
    })
    .await
    .expect("logged");
    let log = gateway.log_text();
    assert!(
        log.contains("devices: added tank-2, b7-reader, b7-lock; doors: added b7-u1"),
        "{log}"
    );
    assert!(log.contains("needs a restart: [supervisor]"), "{log}");
    assert!(log.contains("take effect only after a restart"), "{log}");

    // The station was not touched: the same connection, never restarted.
    assert!(device_up(&gateway, "b5-door").await);
    assert_eq!(estate.vto.connections(), 1);
    assert_eq!(estate.vto.accepted(), accepted, "no new connection");
    let metrics = gateway.metrics().await.expect("metrics");
    assert_eq!(
        metric_sum(&metrics, "gatehouse_driver_restarts", "device=\"b5-door\""),
        0.0
    );
    assert!(
        gateway.wait_ready().await.is_ok(),
        "still ready after the reload"
    );

    // A changed station is restarted: a new connection, the old one closed;
    // the tanks run on.
    let text = std::fs::read_to_string(&estate.file).expect("read back");
    std::fs::write(
        &estate.file,
        text.replace("reply_timeout = \"2s\"", "reply_timeout = \"3s\""),
    )
    .expect("config");
    gateway.signal(Signal::SIGHUP).expect("sighup");
    eventually("the station's new connection", DEADLINE, || {
        let (now, total) = (estate.vto.connections(), estate.vto.accepted());
        async move { (now == 1 && total > accepted).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", gateway.log_text()));
    wait_up(&gateway, "b5-door").await;
    assert!(device_up(&gateway, "tank-2").await);

    gateway.signal(Signal::SIGTERM).expect("sigterm");
    let status = gateway.wait_exit(DEADLINE).await.expect("exits");
    assert!(status.success(), "log:\n{}", gateway.log_text());
    let events = crate::read_all(&estate.data_dir()).await;
    let reloaded: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "config_reloaded")
        .collect();
    assert_eq!(reloaded.len(), 2, "each reload audited");
    let audit = reloaded[0];
    assert_eq!(audit.class, Class::Audit);
    assert_eq!(
        audit.body["devices"]["added"],
        serde_json::json!(["tank-2", "b7-reader", "b7-lock"])
    );
    assert_eq!(audit.body["devices"]["changed"], serde_json::json!([]));
    assert_eq!(audit.body["doors"]["added"], serde_json::json!(["b7-u1"]));
    assert_eq!(
        audit.body["needs_restart"],
        serde_json::json!(["[supervisor]"])
    );
    // The second compares with what ran: the drain budget still waits for
    // a restart, the station changed.
    let second = reloaded[1];
    assert_eq!(
        second.body["devices"]["changed"],
        serde_json::json!(["b5-door"])
    );
    assert_eq!(second.body["devices"]["added"], serde_json::json!([]));
    assert_eq!(
        second.body["needs_restart"],
        serde_json::json!(["[supervisor]"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_configuration_is_refused_alarmed_and_the_gateway_runs_on() {
    let estate = Estate::new().await;
    let mut gateway = estate.start().await;
    let accepted = estate.vto.accepted();

    // A wrong type and an unknown key: both reported with their lines.
    estate.write("5s", ADDED_DOOR);
    let text = std::fs::read_to_string(&estate.file).expect("read back");
    let text = text
        .replace("height_m = 3.0", "height_m = \"tall\"")
        .replace("relay = 22", "relay = 22\ncolour = \"red\"");
    std::fs::write(&estate.file, &text).expect("config");
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("in the file")
            + 1
    };
    let file = estate.file.display().to_string();
    let expected = [
        format!("{file}:{}: devices[1].height_m", line_of("\"tall\"")),
        format!("{file}:{}: devices[3].colour", line_of("colour")),
    ];
    gateway.signal(Signal::SIGHUP).expect("sighup");

    eventually("the refusal logged", DEADLINE, || {
        let log = gateway.log_text();
        async move {
            log.contains("keeps running on the previous one")
                .then_some(())
        }
    })
    .await
    .expect("logged");
    let log = gateway.log_text();
    for location in &expected {
        assert!(log.contains(location.as_str()), "{location} not in:\n{log}");
    }

    // The old configuration runs on, untouched.
    gateway.wait_ready().await.expect("still ready");
    assert!(device_up(&gateway, "tank-1").await);
    assert!(device_up(&gateway, "b5-door").await);
    assert!(
        !device_up(&gateway, "tank-2").await,
        "nothing of it applied"
    );
    assert_eq!(estate.vto.accepted(), accepted, "the station untouched");

    gateway.signal(Signal::SIGTERM).expect("sigterm");
    let status = gateway.wait_exit(DEADLINE).await.expect("exits");
    assert!(status.success(), "log:\n{}", gateway.log_text());
    let events = crate::read_all(&estate.data_dir()).await;
    let alarm = events
        .iter()
        .find(|e| e.kind == "config_rejected")
        .expect("the refusal alarmed");
    assert_eq!(alarm.class, Class::Alarm);
    let problems: Vec<&str> = alarm.body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    for (problem, location) in problems.iter().zip(&expected) {
        assert!(
            problem.starts_with(location.as_str()),
            "{problem} vs {location}"
        );
    }
    assert!(
        !events.iter().any(|e| e.kind == "config_reloaded"),
        "nothing was reloaded"
    );
}
