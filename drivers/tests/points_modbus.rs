//! The `modbus-points` driver against real Modbus servers: Gatehouse's own
//! tokio-modbus simulator and the third-party pymodbus server, over TCP and
//! over RTU on a pair of pseudo-terminals. Every data type in every word
//! order reads as its known value; writes are range-checked and read back;
//! a silent, a refusing and a slow device share a bus with a healthy one,
//! which keeps its schedule.

mod points_support;

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use drivers::barrier::{BusConfig, ModbusBus, Transport};
use drivers::points::{PointTable, PointsConfig};
use drivers::sim::facility::{Dynamics, FacilitySim, Fault};
use drivers::{Command, CommandOutcome, DeviceEvent, Quality, Reading};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use points_support::{Known, Rig, assert_known, groups, known, small_table};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::pipe;
use tokio_modbus::ExceptionCode;

fn tcp_bus(addr: std::net::SocketAddr, timeout: Duration) -> drivers::barrier::BusHandle {
    ModbusBus::spawn(BusConfig {
        transport: Transport::Tcp { addr },
        timeout,
    })
}

fn known_config(k: &Known, slave: u8) -> PointsConfig {
    let table = PointTable::new(k.points.clone(), groups(Duration::from_millis(100)))
        .expect("the known table is valid");
    PointsConfig::new(slave, Arc::new(table))
}

fn sim_with_known(k: &Known, slave: u8) -> FacilitySim {
    let sim = FacilitySim::new();
    sim.add(slave, Dynamics::Static);
    sim.with(slave, |bank, _| {
        bank.holding[..k.holding.len()].copy_from_slice(&k.holding);
        bank.input[..k.input.len()].copy_from_slice(&k.input);
        bank.coils[..k.coils.len()].copy_from_slice(&k.coils);
        bank.discrete[..k.discrete.len()].copy_from_slice(&k.discrete);
    });
    sim
}

#[tokio::test]
async fn points_tcp_every_type_and_order_reads_its_known_value() {
    let k = known();
    let sim = sim_with_known(&k, 3);
    let addr = sim.serve_tcp().await.expect("serving");
    let mut rig = Rig::start(
        tcp_bus(addr, Duration::from_millis(500)),
        known_config(&k, 3),
    );
    let got = rig.full_report().await;
    assert_known(&got, &k);
    // Merged reads: the whole table in one read per register kind.
    assert_eq!(sim.requests(3), 4, "coils, discrete, holding, input");
    for status in rig.view.snapshot() {
        assert_eq!(status.quality, Quality::Good);
        assert!(status.read_at_ms.is_some());
    }
    assert_eq!(rig.stop().await, Ok(()));
    sim.stop();
}

#[tokio::test]
async fn points_tcp_writes_are_range_checked_written_and_read_back() {
    let k = known();
    let sim = sim_with_known(&k, 1);
    let addr = sim.serve_tcp().await.expect("serving");
    let mut rig = Rig::start(
        tcp_bus(addr, Duration::from_millis(500)),
        known_config(&k, 1),
    );
    rig.full_report().await;
    let write = |point: &str, value: f64| Command::WritePoint {
        point: point.into(),
        value,
    };
    assert_eq!(
        rig.command(write("setpoint", 0.45)).await,
        CommandOutcome::Done
    );
    assert_eq!(
        sim.with(1, |bank, _| bank.holding[k.holding.len() - 1]),
        Some(450)
    );
    let refused = rig.command(write("setpoint", 0.95)).await;
    assert!(
        matches!(&refused, CommandOutcome::Refused(r) if r.contains("outside")),
        "{refused:?}"
    );
    let refused = rig.command(write("u16_abcd", 1.0)).await;
    assert!(
        matches!(&refused, CommandOutcome::Refused(r) if r.contains("not writable")),
        "{refused:?}"
    );
    let refused = rig.command(write("nope", 1.0)).await;
    assert!(matches!(refused, CommandOutcome::Refused(_)), "{refused:?}");
    assert_eq!(rig.command(write("coil0", 1.0)).await, CommandOutcome::Done);
    assert_eq!(sim.with(1, |bank, _| bank.coils[0]), Some(true));
    // The confirmed set-point is reported by exception.
    rig.wait_for("the new set-point", |e| {
        matches!(e, DeviceEvent::PointReport { samples, .. }
            if samples.iter().any(|s| s.point == "setpoint" && s.value == Some(Reading::Number(0.45))))
    })
    .await;
    assert_eq!(rig.stop().await, Ok(()));
    sim.stop();
}

#[tokio::test]
async fn points_tcp_alarms_raise_and_clear_and_reports_follow_the_deadband() {
    let sim = FacilitySim::new();
    sim.add(1, Dynamics::Static);
    sim.with(1, |bank, _| bank.set_f32(1, 0.40));
    let addr = sim.serve_tcp().await.expect("serving");
    let table = small_table(Duration::from_millis(20));
    let mut rig = Rig::start(
        tcp_bus(addr, Duration::from_millis(500)),
        PointsConfig::new(1, table),
    );
    rig.full_report().await;
    // Within the deadband: no report; beyond it: reported.
    sim.with(1, |bank, _| bank.set_f32(1, 0.405));
    sim.with(1, |bank, _| bank.set_f32(1, 0.30));
    let event = rig
        .wait_for("a pressure report", |e| {
            matches!(e, DeviceEvent::PointReport { full: false, .. })
        })
        .await;
    assert!(
        matches!(&event, DeviceEvent::PointReport { samples, .. }
            if samples.len() == 1 && samples[0].value.as_ref().and_then(Reading::as_f64).is_some_and(|v| (v - 0.30).abs() < 1e-6)),
        "{event:?}"
    );
    sim.with(1, |bank, _| bank.holding[0] = 0b100);
    rig.wait_for("pump fault raised", |e| {
        matches!(e, DeviceEvent::PointAlarm { point, active: true, alarm, .. } if point == "pump_fault" && alarm == "state")
    })
    .await;
    sim.with(1, |bank, _| bank.set_f32(1, 0.1));
    rig.wait_for("low pressure raised", |e| {
        matches!(e, DeviceEvent::PointAlarm { point, active: true, alarm, limit: Some(l), .. } if point == "pressure" && alarm == "low" && (*l - 0.2).abs() < 1e-9)
    })
    .await;
    // Inside the hysteresis band: stays raised; past it: cleared.
    sim.with(1, |bank, _| {
        bank.set_f32(1, 0.21);
        bank.holding[0] = 0;
    });
    rig.wait_for("pump fault cleared", |e| {
        matches!(e, DeviceEvent::PointAlarm { point, active: false, .. } if point == "pump_fault")
    })
    .await;
    assert!(!rig.seen.iter().any(
        |e| matches!(e, DeviceEvent::PointAlarm { point, active: false, .. } if point == "pressure")
    ));
    sim.with(1, |bank, _| bank.set_f32(1, 0.25));
    rig.wait_for("low pressure cleared", |e| {
        matches!(e, DeviceEvent::PointAlarm { point, active: false, .. } if point == "pressure")
    })
    .await;
    assert_eq!(rig.stop().await, Ok(()));
    sim.stop();
}

/// Polls of unit `slave` the simulator has seen over `window`.
async fn polls_during(sim: &FacilitySim, slave: u8, window: Duration) -> u64 {
    let before = sim.requests(slave);
    tokio::time::sleep(window).await;
    sim.requests(slave) - before
}

#[tokio::test]
async fn points_bus_a_silent_a_refusing_and_a_slow_device_leave_the_others_on_schedule() {
    let sim = FacilitySim::new();
    for slave in 1..=4 {
        sim.add(slave, Dynamics::Static);
        sim.with(slave, |bank, _| bank.set_f32(1, 0.4));
    }
    let addr = sim.serve_tcp().await.expect("serving");
    // One bus (one TCP peer, four unit ids): one request in flight.
    let bus = tcp_bus(addr, Duration::from_millis(150));
    let interval = Duration::from_millis(50);
    let rigs: Vec<Rig> = (1..=4u8)
        .map(|slave| {
            let mut config = PointsConfig::new(slave, small_table(interval));
            config.backoff_initial = Duration::from_millis(500);
            config.backoff_max = Duration::from_secs(2);
            Rig::start(bus.clone(), config)
        })
        .collect();
    let mut rigs = rigs.into_iter();
    let (mut healthy, mut silent, mut refusing, mut slow) = (
        rigs.next().expect("1"),
        rigs.next().expect("2"),
        rigs.next().expect("3"),
        rigs.next().expect("4"),
    );
    for rig in [&mut healthy, &mut silent, &mut refusing, &mut slow] {
        rig.full_report().await;
    }
    let baseline = polls_during(&sim, 1, Duration::from_millis(1000)).await;
    assert!(
        baseline >= 10,
        "the healthy unit polled {baseline} times in 1 s"
    );

    sim.set_fault(2, Fault::Silent);
    sim.set_fault(3, Fault::Exception(ExceptionCode::ServerDeviceFailure));
    sim.set_fault(4, Fault::Slow(Duration::from_millis(30)));
    silent
        .wait_for("the silent unit offline", |e| {
            matches!(e, DeviceEvent::DeviceLink { online: false, .. })
        })
        .await;
    refusing
        .wait_for("comm failed on the refusing unit", |e| {
            matches!(e, DeviceEvent::PointReport { samples, .. } if samples.iter().all(|s| s.quality == Quality::CommFailed))
        })
        .await;
    let with_faults = polls_during(&sim, 1, Duration::from_millis(1000)).await;
    // The silent unit costs one timeout per back-off, the slow one 30 ms a
    // poll: the healthy unit keeps most of its schedule.
    assert!(
        with_faults * 2 >= baseline,
        "healthy unit: {with_faults} polls/s with faults against {baseline} without"
    );
    let silent_polls = polls_during(&sim, 2, Duration::from_millis(1000)).await;
    assert!(
        silent_polls <= 3,
        "the silent unit was asked {silent_polls} times in 1 s while backed off"
    );
    assert!(
        refusing
            .view
            .snapshot()
            .iter()
            .all(|s| s.quality == Quality::CommFailed)
    );
    assert!(
        slow.view
            .snapshot()
            .iter()
            .all(|s| s.quality == Quality::Good)
    );
    assert!(
        healthy
            .view
            .snapshot()
            .iter()
            .all(|s| s.quality == Quality::Good)
    );
    // The silent unit comes back.
    sim.set_fault(2, Fault::None);
    silent
        .wait_for("the silent unit back", |e| {
            matches!(e, DeviceEvent::DeviceLink { online: true, .. })
        })
        .await;
    for rig in [healthy, silent, refusing, slow] {
        assert_eq!(rig.stop().await, Ok(()));
    }
    sim.stop();
}

/// A pymodbus server holding the known registers for unit ids `units`.
struct PyModbus(Child);

impl Drop for PyModbus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pymodbus(k: &Known, units: &[u8], endpoint: &[&str]) -> Option<PyModbus> {
    let python = testkit::python_peer("pymodbus", &["pymodbus", "serial"])?;
    let tables = serde_json::json!({
        "units": units, "hr": k.holding, "ir": k.input, "co": k.coils, "di": k.discrete,
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pymodbus_bank.py");
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

#[tokio::test]
async fn points_pymodbus_tcp_every_type_and_order_reads_its_known_value() {
    let k = known();
    let port = testkit::free_port();
    let Some(_server) = pymodbus(&k, &[1, 2], &["--tcp", &port.to_string()]) else {
        return;
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // The bus reconnects on every poll until the Python server listens.
    let bus = tcp_bus(addr, Duration::from_millis(500));
    let mut one = Rig::start(bus.clone(), known_config(&k, 1));
    let mut two = Rig::start(bus, known_config(&k, 2));
    assert_known(&one.good_values().await, &k);
    two.wait_for("unit 2 answers", |e| {
        matches!(e, DeviceEvent::DeviceLink { online: true, .. })
    })
    .await;
    assert_eq!(
        one.command(Command::WritePoint {
            point: "setpoint".into(),
            value: 0.7
        })
        .await,
        CommandOutcome::Done
    );
    assert_eq!(one.stop().await, Ok(()));
    assert_eq!(two.stop().await, Ok(()));
}

/// A pty master as an async byte stream.
fn master_stream(fd: OwnedFd) -> io::Result<impl AsyncRead + AsyncWrite + Unpin> {
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    // A pty master is not a pipe, but reads and writes the same way.
    let reader = pipe::Receiver::from_owned_fd_unchecked(fd.try_clone()?)?;
    let writer = pipe::Sender::from_owned_fd_unchecked(fd)?;
    Ok(tokio::io::join(reader, writer))
}

/// Copies bytes both ways between two streams (a null-modem cable).
async fn relay(
    mut a: impl AsyncRead + AsyncWrite + Unpin,
    mut b: impl AsyncRead + AsyncWrite + Unpin,
) -> io::Result<()> {
    tokio::io::copy_bidirectional(&mut a, &mut b).await?;
    Ok(())
}

/// A raw pty; returns its master, the slave's path and the slave fd (kept
/// open while the test runs: a pty whose slave side closed hangs up).
fn raw_pty() -> (OwnedFd, PathBuf, OwnedFd) {
    let pty = nix::pty::openpty(None, None).expect("a pty");
    let mut termios = tcgetattr(&pty.slave).expect("termios");
    cfmakeraw(&mut termios);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).expect("raw mode");
    let path = nix::unistd::ttyname(&pty.slave).expect("the slave has a path");
    (pty.master, path, pty.slave)
}

#[tokio::test]
async fn points_pymodbus_rtu_pty_every_type_and_order_reads_its_known_value() {
    let k = known();
    // The gateway opens one pty's slave, pymodbus the other's; a relay
    // joins the two masters (a null-modem cable).
    let (gw_master, gw_path, _gw_slave) = raw_pty();
    let (py_master, py_path, _py_slave) = raw_pty();
    let Some(_server) = pymodbus(&k, &[5], &["--serial", &py_path.to_string_lossy()]) else {
        return;
    };
    tokio::spawn(relay(
        master_stream(gw_master).expect("pty"),
        master_stream(py_master).expect("pty"),
    ));
    let bus = ModbusBus::spawn(BusConfig {
        transport: Transport::Rtu {
            path: gw_path,
            baud: 19_200,
        },
        timeout: Duration::from_millis(500),
    });
    let mut rig = Rig::start(bus, known_config(&k, 5));
    assert_known(&rig.good_values().await, &k);
    assert_eq!(rig.stop().await, Ok(()));
}

#[tokio::test]
async fn points_rtu_pty_a_silent_unit_does_not_stall_a_healthy_one() {
    let k = known();
    let sim = sim_with_known(&k, 1);
    sim.add(2, Dynamics::Static);
    sim.set_fault(2, Fault::Silent);
    let (gw_master, gw_path, _gw_slave) = raw_pty();
    let (sim_side, relay_side) = tokio_serial::SerialStream::pair().expect("a pty pair");
    sim.serve_rtu(sim_side);
    tokio::spawn(relay(master_stream(gw_master).expect("pty"), relay_side));
    let bus = ModbusBus::spawn(BusConfig {
        transport: Transport::Rtu {
            path: gw_path,
            baud: 19_200,
        },
        timeout: Duration::from_millis(200),
    });
    let mut good = Rig::start(bus.clone(), known_config(&k, 1));
    let mut dead = Rig::start(
        bus,
        PointsConfig::new(2, small_table(Duration::from_millis(100))),
    );
    dead.wait_for("the silent unit offline", |e| {
        matches!(e, DeviceEvent::DeviceLink { online: false, .. })
    })
    .await;
    assert_known(&good.good_values().await, &k);
    // The healthy unit keeps being polled while the silent one times out.
    let before = sim.requests(1);
    good.wait_for("another report", |e| {
        matches!(
            e,
            DeviceEvent::PointReport { .. } | DeviceEvent::DeviceLink { .. }
        )
    })
    .await;
    let polled = tokio::time::timeout(points_support::DEADLINE, async {
        while sim.requests(1) < before + 8 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "the healthy unit stopped being polled");
    assert_eq!(good.stop().await, Ok(()));
    assert_eq!(dead.stop().await, Ok(()));
    sim.stop();
}
