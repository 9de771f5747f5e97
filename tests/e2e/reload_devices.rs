//! Reloading devices that live beyond their own driver task, in-process
//! (`Running::reload_from`, what SIGHUP runs): a lane added with its plate
//! camera and barrier starts deciding reads; a changed plate camera takes
//! its new settings while the other camera and the barrier run on; a point
//! device (Modbus, a pymodbus peer) changed on a TCP peer or an RTU line
//! (real ptys) that it shares with another point device restarts alone
//! while its neighbour keeps answering on the same bus; a changed
//! threshold alarm takes effect.
//!
//! "Alone" is checked on the handles taken before the reload: a device
//! that was restarted has stopped (its old handle reads `stopped`), one
//! that was left alone has not.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;

use drivers::PlateColour;
use drivers::contract::HealthState;
use drivers::lpr::Vendor;
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig, SimCommand, SimHandle};
use drivers::sim::camera::{CameraSim, SimError};
use gatehouse_tests::{DEADLINE, eventually};
use gateway::app::Running;
use gateway::rules::vehicle::Resident;
use gateway::supervisor::DriverHandle;
use gateway::wire::Envelope;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::pipe;

/// A running gateway, its configuration file and what it was started from.
struct Gateway {
    running: Running,
    file: PathBuf,
    text: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts a gateway from the text `make(data_dir)` returns.
    async fn start(make: impl FnOnce(&Path) -> String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = make(&dir.path().join("data"));
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, &text).expect("config");
        let config = gateway::config::load(&file).expect("valid config");
        let running = gateway::app::start(config).await.expect("starts");
        Self {
            running,
            file,
            text,
            _dir: dir,
        }
    }

    /// Writes `text` as the configuration and reloads it, as SIGHUP does.
    async fn reload(&mut self, text: String) -> gateway::config::diff::ConfigDiff {
        std::fs::write(&self.file, &text).expect("config");
        self.text = text;
        self.running
            .reload_from(&self.file)
            .await
            .expect("the file is accepted")
    }

    fn handle(&self, device: &str) -> DriverHandle {
        self.running.drivers.get(device).expect(device)
    }

    async fn event(&self, what: &str, matches: impl Fn(&Envelope) -> bool) -> Envelope {
        let store = self.running.store.clone();
        let matches = Arc::new(matches);
        eventually(what, DEADLINE, || {
            let store = store.clone();
            let matches = matches.clone();
            async move {
                let events = store.read_after(0, 100_000).await.ok()?;
                events.into_iter().find(|e| matches(e))
            }
        })
        .await
        .expect(what)
    }

    async fn up(&self, device: &str) {
        eventually(&format!("{device} up"), DEADLINE, || async {
            let handle = self.running.drivers.get(device)?;
            (handle.health().state == HealthState::Ok).then_some(())
        })
        .await
        .expect(device);
    }
}

fn stopped(handle: &DriverHandle) -> bool {
    handle.health().state == HealthState::Stopped
}

async fn barrier_sim() -> (std::net::SocketAddr, SimHandle) {
    BarrierSim::spawn_tcp(BarrierSimConfig {
        rise: std::time::Duration::from_millis(100),
        fall: std::time::Duration::from_millis(100),
        ..BarrierSimConfig::default()
    })
    .await
    .expect("barrier simulator")
}

fn opens(barrier: &SimHandle) -> usize {
    barrier
        .commands_seen()
        .iter()
        .filter(|c| **c == SimCommand::Open)
        .count()
}

/// The two lanes of [`gatehouse_tests::lanes_config`], with `苏A8HK52` a
/// resident's vehicle.
async fn lanes(barrier: std::net::SocketAddr) -> Gateway {
    let gateway = Gateway::start(|data| gatehouse_tests::lanes_config(data, barrier)).await;
    let plates = gateway.running.plates.clone();
    tokio::task::spawn_blocking(move || {
        plates.upsert_resident(&Resident {
            plate: "苏A8HK52".into(),
            house: "3-2-1201".into(),
            owner: "王芳".into(),
            valid_from: None,
            valid_to: None,
            lanes: vec![],
        })
    })
    .await
    .expect("joined")
    .expect("resident");
    gateway
}

fn camera(gateway: &Gateway, id: &str, vendor: Vendor) -> CameraSim {
    let addr = gateway.running.ingress_addr.expect("device listener");
    CameraSim::new(&format!("http://{addr}"), id, vendor).expect("camera sim")
}

/// A north entry lane: its Hikvision camera and its barrier at `barrier`.
fn north_lane(barrier: std::net::SocketAddr) -> String {
    format!(
        r#"
[[devices]]
id = "cam-north-in"
name = "北门入口相机"
type = "lpr-camera"
vendor = "hikvision"
lane = "north-in"

[[devices]]
id = "barrier-north-in"
name = "北门入口道闸"
type = "modbus-barrier"
address = "{barrier}"
preset = "waveshare-rtu-relay"
poll_interval = "20ms"
auto_close_delay = "200ms"

[[lanes]]
id = "north-in"
name = "北门入口"
direction = "entry"
barrier = "barrier-north-in"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_a_lane_added_with_its_camera_and_barrier_starts_deciding_reads() {
    let (south_addr, south) = barrier_sim().await;
    let (north_addr, north) = barrier_sim().await;
    let mut gateway = lanes(south_addr).await;
    gateway.up("barrier-south-in").await;
    let (south_barrier, south_camera) = (
        gateway.handle("barrier-south-in"),
        gateway.handle("cam-south-in"),
    );
    let hik = camera(&gateway, "cam-north-in", Vendor::Hikvision);
    let before = hik.push_plate("苏A8HK52", PlateColour::Blue, 95).await;
    assert!(
        matches!(before, Err(SimError::Status { status: 404, .. })),
        "an unknown camera before the reload: {before:?}"
    );

    let text = format!("{}{}", gateway.text, north_lane(north_addr));
    let diff = gateway.reload(text).await;
    assert_eq!(diff.devices.added, ["cam-north-in", "barrier-north-in"]);
    assert_eq!(diff.lanes.added, ["north-in"]);
    assert!(diff.needs_restart.is_empty(), "{:?}", diff.needs_restart);
    gateway.up("barrier-north-in").await;

    let reply = hik
        .push_plate("苏A8HK52", PlateColour::Blue, 95)
        .await
        .expect("the new camera's push is taken");
    assert_eq!(reply.status, 200);
    let read = gateway
        .event("the new lane's read", |e| {
            e.kind == "plate_read" && e.device_id == "cam-north-in"
        })
        .await;
    assert_eq!(read.body["lane"], "north-in");
    assert_eq!(read.body["decision"], "allow");
    assert_eq!(read.body["open_via"], "barrier");
    eventually("the new lane's barrier opened", DEADLINE, || async {
        (opens(&north) == 1).then_some(())
    })
    .await
    .expect("opened");
    assert_eq!(opens(&south), 0, "the other lane's barrier untouched");
    assert!(!stopped(&south_barrier), "the south barrier ran on");
    assert!(!stopped(&south_camera), "the south camera ran on");
    assert!(gateway.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_a_changed_plate_camera_restarts_alone_with_its_new_settings() {
    let (south_addr, _south) = barrier_sim().await;
    let mut gateway = lanes(south_addr).await;
    gateway.up("barrier-south-in").await;
    let (exit_camera, entry_camera, barrier) = (
        gateway.handle("cam-south-out"),
        gateway.handle("cam-south-in"),
        gateway.handle("barrier-south-in"),
    );
    // The exit camera is a Huaxia: a Vzenith push is not its format.
    let vzenith = camera(&gateway, "cam-south-out", Vendor::Vzenith);
    let before = vzenith.push_plate("苏E11111", PlateColour::Blue, 95).await;
    assert!(
        matches!(before, Err(SimError::Status { status: 400, .. })),
        "a Huaxia camera before the reload: {before:?}"
    );

    let text = gateway.text.replace(
        "vendor = \"huaxia\"\nlane = \"south-out\"",
        "vendor = \"vzenith\"\nlane = \"south-out\"",
    );
    assert_ne!(text, gateway.text);
    let diff = gateway.reload(text).await;
    assert_eq!(diff.devices.changed, ["cam-south-out"]);
    assert!(diff.devices.added.is_empty() && diff.devices.removed.is_empty());
    assert!(diff.needs_restart.is_empty(), "{:?}", diff.needs_restart);

    let reply = vzenith
        .push_plate("苏E11111", PlateColour::Blue, 95)
        .await
        .expect("the camera's new format is taken");
    assert_eq!(reply.status, 200);
    assert!(
        reply.opened,
        "an open-to-all exit opens by the camera's reply"
    );
    let read = gateway
        .event("the exit read", |e| {
            e.kind == "plate_read" && e.device_id == "cam-south-out"
        })
        .await;
    assert_eq!(read.body["lane"], "south-out");
    assert!(stopped(&exit_camera), "the changed camera was restarted");
    assert!(!stopped(&entry_camera), "the other camera ran on");
    assert!(!stopped(&barrier), "the barrier ran on");
    assert!(
        gateway.running.drivers.get("cam-south-out").is_some(),
        "and runs again"
    );
    assert!(gateway.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_a_changed_threshold_alarm_takes_effect() {
    let mut gateway = Gateway::start(|data| gatehouse_tests::tank_config(data, "-1.0")).await;
    let tank = gateway.handle("tank-1");
    // Readings arrive under the old limit, which none of them crosses.
    gateway
        .event("a level reading", |e| {
            e.kind == "point_value" && e.device_id == "tank-1"
        })
        .await;
    let text = gateway.text.replace("below = -1.0", "below = 100.0");
    let diff = gateway.reload(text).await;
    assert!(diff.alarms, "{diff:?}");
    assert!(diff.devices.is_empty() && diff.needs_restart.is_empty());

    let alarm = gateway
        .event("the alarm under the new limit", |e| {
            e.kind == "threshold_alarm"
        })
        .await;
    assert_eq!(alarm.device_id, "tank-1");
    assert_eq!(alarm.body["active"], true);
    assert_eq!(alarm.body["threshold"], 100.0);
    let audit = gateway
        .event("the reload audited", |e| e.kind == "config_reloaded")
        .await;
    assert_eq!(audit.body["alarms"], true);
    assert!(!stopped(&tank), "the tank itself was not restarted");
    assert!(gateway.running.shutdown().await.is_clean());
}

/// A pymodbus server (`drivers/tests/peers/pymodbus_bank.py`) answering
/// for units 1 and 2 with the same registers; killed when dropped.
struct PyModbus(Child);

impl Drop for PyModbus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Holding registers 0, 1 and 2 of the bank.
const REGISTERS: [u16; 3] = [11, 22, 33];

fn pymodbus(endpoint: &[&str]) -> Option<PyModbus> {
    let python = testkit::python_peer("pymodbus", &["pymodbus", "serial"])?;
    let tables = serde_json::json!({ "units": [1, 2], "hr": REGISTERS });
    let script = testkit::workspace_root().join("drivers/tests/peers/pymodbus_bank.py");
    let child = Process::new(python)
        .arg(script)
        .args(endpoint)
        .arg(tables.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting pymodbus");
    Some(PyModbus(child))
}

/// A pty master as an async byte stream.
fn master_stream(fd: OwnedFd) -> io::Result<impl AsyncRead + AsyncWrite + Unpin> {
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    // A pty master is not a pipe, but reads and writes the same way.
    let reader = pipe::Receiver::from_owned_fd_unchecked(fd.try_clone()?)?;
    let writer = pipe::Sender::from_owned_fd_unchecked(fd)?;
    Ok(tokio::io::join(reader, writer))
}

/// A raw pty: its master, the slave's path and the slave fd (kept open
/// while the test runs: a pty whose slave side closed hangs up).
fn raw_pty() -> (OwnedFd, PathBuf, OwnedFd) {
    let pty = nix::pty::openpty(None, None).expect("a pty");
    let mut termios = tcgetattr(&pty.slave).expect("termios");
    cfmakeraw(&mut termios);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).expect("raw mode");
    let path = nix::unistd::ttyname(&pty.slave).expect("the slave has a path");
    (pty.master, path, pty.slave)
}

/// Two point devices on one line (`line`: the transport's keys), `pumps`
/// (unit 1, reading register 0) and `lift` (unit 2, register 2).
fn point_devices(data: &Path, line: &str) -> String {
    format!(
        r#"
[gateway]
estate_id = "test-estate"
gateway_id = "gw-test"
data_dir = "{}"

[panel]
listen = "127.0.0.1:0"

[[devices]]
id = "pumps"
name = "泵房"
type = "modbus-points"
{line}
slave = 1
timeout = "500ms"
[[devices.poll]]
name = "fast"
interval = "50ms"
[[devices.points]]
name = "pressure"
register = "holding"
address = 0
type = "u16"

[[devices]]
id = "lift"
name = "电梯"
type = "modbus-points"
{line}
slave = 2
timeout = "500ms"
[[devices.poll]]
name = "fast"
interval = "50ms"
[[devices.points]]
name = "floor"
register = "holding"
address = 2
type = "u16"
"#,
        data.display()
    )
}

/// The value and read time of `point` on `device`, as the facility shows
/// it now.
fn point(gateway: &Gateway, device: &str, point: &str) -> Option<(f64, i64)> {
    let device = gateway.running.facility.device(device)?;
    let index = device.view.table().find(point)?;
    let status = device.view.read()[index].clone();
    Some((status.value?.as_f64()?, status.read_at_ms?))
}

async fn point_value(gateway: &Gateway, device: &str, name: &str) -> (f64, i64) {
    eventually(&format!("{device}.{name} read"), DEADLINE, || async {
        point(gateway, device, name)
    })
    .await
    .expect(name)
}

/// `pumps` gets a second point by reload: it restarts with its new table
/// and reads it, while `lift`, on the same bus, is never stopped and reads
/// on through the reload with the view it had.
async fn a_point_device_restarts_alone_on_a_shared_line(gateway: &mut Gateway) {
    assert_eq!(point_value(gateway, "pumps", "pressure").await.0, 11.0);
    let (floor, read_at) = point_value(gateway, "lift", "floor").await;
    assert_eq!(floor, 33.0);
    let (pumps, lift) = (gateway.handle("pumps"), gateway.handle("lift"));
    let lift_view = gateway.running.facility.device("lift").expect("lift").view;

    let text = gateway.text.replace(
        "type = \"u16\"\n\n[[devices]]\nid = \"lift\"",
        "type = \"u16\"\n[[devices.points]]\nname = \"flow\"\nregister = \"holding\"\naddress = 1\ntype = \"u16\"\n\n[[devices]]\nid = \"lift\"",
    );
    assert_ne!(text, gateway.text);
    let diff = gateway.reload(text).await;
    assert_eq!(diff.devices.changed, ["pumps"]);
    assert!(diff.needs_restart.is_empty(), "{:?}", diff.needs_restart);

    assert_eq!(point_value(gateway, "pumps", "flow").await.0, 22.0);
    assert!(stopped(&pumps), "pumps was restarted");
    assert!(!stopped(&lift), "lift ran on");
    assert_eq!(lift.health().restarts, 0);
    // The neighbour answers after the reload, in the view it always had.
    eventually("lift read again after the reload", DEADLINE, || async {
        let (value, at) = point(gateway, "lift", "floor")?;
        (value == 33.0 && at > read_at).then_some(())
    })
    .await
    .expect("lift answers");
    let now = gateway.running.facility.device("lift").expect("lift").view;
    assert!(
        Arc::ptr_eq(now.table(), lift_view.table()),
        "lift's view is the one it had, not one rebuilt from the new file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_a_point_device_on_a_shared_tcp_peer_restarts_alone() {
    let port = testkit::free_port();
    let Some(_server) = pymodbus(&["--tcp", &port.to_string()]) else {
        return;
    };
    let line = format!("address = \"127.0.0.1:{port}\"");
    let mut gateway = Gateway::start(|data| point_devices(data, &line)).await;
    a_point_device_restarts_alone_on_a_shared_line(&mut gateway).await;
    assert!(gateway.running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_a_point_device_on_a_shared_rtu_line_restarts_alone_while_its_neighbour_answers() {
    // The gateway opens one pty's slave, pymodbus the other's; a relay
    // joins the two masters (a null-modem cable).
    let (gw_master, gw_path, _gw_slave) = raw_pty();
    let (py_master, py_path, _py_slave) = raw_pty();
    let Some(_server) = pymodbus(&["--serial", &py_path.to_string_lossy()]) else {
        return;
    };
    tokio::spawn(async move {
        let mut a = master_stream(gw_master).expect("pty");
        let mut b = master_stream(py_master).expect("pty");
        tokio::io::copy_bidirectional(&mut a, &mut b).await
    });
    let line = format!("serial = \"{}\"\nbaud = 19200", gw_path.display());
    let mut gateway = Gateway::start(|data| point_devices(data, &line)).await;
    a_point_device_restarts_alone_on_a_shared_line(&mut gateway).await;
    assert!(gateway.running.shutdown().await.is_clean());
}
