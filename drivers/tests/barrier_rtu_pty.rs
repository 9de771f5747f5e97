//! The barrier driver against the simulated controller over Modbus RTU on
//! real pseudo-terminals. The driver opens a pty slave by its path, as it
//! would `/dev/ttyUSB0`; a relay task (an in-process `socat`) copies bytes
//! between that pty's master and a second pty pair whose other end the
//! simulator serves. Two pairs, because tokio-serial's own pair keeps a
//! lock on its slave that the driver's exclusive open would hit.

mod barrier_support;

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use barrier_support::{Rig, lane_config, sim_config};
use drivers::barrier::{BusConfig, ModbusBus, Transport};
use drivers::sim::barrier::{BarrierSim, SimArm, SimCommand, SimHandle};
use drivers::{ArmState, Command, CommandOutcome, DeviceEvent};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::net::unix::pipe;
use tokio_serial::SerialStream;

/// Copies bytes both ways between a pty master and a serial stream.
async fn relay(master: OwnedFd, mut peer: SerialStream) -> io::Result<()> {
    fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    // A pty master is not a pipe, but reads and writes the same way.
    let reader = pipe::Receiver::from_owned_fd_unchecked(master.try_clone()?)?;
    let writer = pipe::Sender::from_owned_fd_unchecked(master)?;
    let mut master = tokio::io::join(reader, writer);
    tokio::io::copy_bidirectional(&mut master, &mut peer).await?;
    Ok(())
}

/// Starts the simulator behind a pty; returns it, the path the driver
/// opens, and the slave fd, kept open while the test runs (a pty whose
/// slave side has closed hangs up).
fn sim_on_pty() -> (SimHandle, PathBuf, OwnedFd) {
    let pty = nix::pty::openpty(None, None).expect("a pty");
    let mut termios = tcgetattr(&pty.slave).expect("termios");
    cfmakeraw(&mut termios);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).expect("raw mode");
    let path = nix::unistd::ttyname(&pty.slave).expect("the slave has a path");
    assert!(path.starts_with("/dev/pts"), "{path:?}");

    let (sim_side, relay_side) = SerialStream::pair().expect("a second pty pair");
    let sim = BarrierSim::spawn_rtu(sim_config(), sim_side);
    tokio::spawn(relay(pty.master, relay_side));
    (sim, path, pty.slave)
}

#[tokio::test]
async fn barrier_rtu_pty_opens_and_closes_after_the_car_has_left() {
    let (sim, path, _slave) = sim_on_pty();
    let bus = ModbusBus::spawn(BusConfig {
        transport: Transport::Rtu { path, baud: 9600 },
        timeout: Duration::from_millis(500),
    });
    let mut rig = Rig::start(bus, lane_config());
    rig.wait_for("link up", |e| {
        matches!(e, DeviceEvent::DeviceLink { online: true, .. })
    })
    .await;
    rig.arm(ArmState::Closed).await;

    assert_eq!(
        rig.command(Command::OpenBarrier).await,
        CommandOutcome::Done
    );
    rig.arm(ArmState::Open).await;
    sim.vehicle_arrives();
    rig.wait_for("loop occupied", |e| {
        *e == DeviceEvent::LoopState { occupied: true }
    })
    .await;
    let outcome = rig.command(Command::CloseBarrier).await;
    assert!(matches!(outcome, CommandOutcome::Refused(_)), "{outcome:?}");
    sim.vehicle_leaves();
    rig.arm(ArmState::Closed).await;

    assert_eq!(sim.arm(), SimArm::Closed);
    assert_eq!(
        sim.commands_seen(),
        vec![SimCommand::Open, SimCommand::Close]
    );
    assert_eq!(sim.closes_onto_occupied_loop(), 0);
    assert_eq!(rig.stop().await, Ok(()));
    assert_eq!(sim.coils(), [false; 8]);
}

#[tokio::test]
async fn barrier_rtu_pty_wrong_slave_id_reports_the_module_offline() {
    let (sim, path, _slave) = sim_on_pty();
    let bus = ModbusBus::spawn(BusConfig {
        transport: Transport::Rtu { path, baud: 9600 },
        timeout: Duration::from_millis(100),
    });
    let mut config = lane_config();
    config.slave = 7;
    let mut rig = Rig::start(bus, config);
    let event = rig
        .wait_for("link down", |e| matches!(e, DeviceEvent::DeviceLink { .. }))
        .await;
    assert!(
        matches!(&event, DeviceEvent::DeviceLink { online: false, detail } if detail.contains("no answer")),
        "{event:?}"
    );
    assert_eq!(sim.requests(), 0, "requests to slave 7 are not served");
    assert_eq!(rig.stop().await, Ok(()));
}
