//! The barrier driver against the simulated controller over Modbus/TCP.

mod barrier_support;

use std::time::Duration;

use barrier_support::{DEADLINE, Rig, lane_config, sim_config};
use drivers::barrier::{BusConfig, BusError, BusHandle, ModbusBus, Transport};
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig, SimArm, SimCommand, SimHandle};
use drivers::{ArmState, Command, CommandOutcome, DeviceEvent};
use tokio_modbus::{Request, Response};

async fn sim_and_bus(config: BarrierSimConfig, timeout: Duration) -> (SimHandle, BusHandle) {
    let (addr, sim) = BarrierSim::spawn_tcp(config).await.expect("sim binds");
    let bus = ModbusBus::spawn(BusConfig {
        transport: Transport::Tcp { addr },
        timeout,
    });
    (sim, bus)
}

#[tokio::test]
async fn barrier_tcp_opens_and_closes_after_the_car_has_left() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(500)).await;
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
    assert_eq!(sim.arm(), SimArm::Open);

    sim.vehicle_arrives();
    rig.wait_for("loop occupied", |e| {
        *e == DeviceEvent::LoopState { occupied: true }
    })
    .await;
    // The car stays on the loop for several poll cycles: no close.
    let polls = sim.requests();
    tokio::time::timeout(DEADLINE, async {
        while sim.requests() < polls + 10 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the driver keeps polling");
    assert_eq!(sim.close_commands(), 0);
    assert_eq!(sim.arm(), SimArm::Open);

    sim.vehicle_leaves();
    rig.wait_for("loop clear", |e| {
        *e == DeviceEvent::LoopState { occupied: false }
    })
    .await;
    rig.arm(ArmState::Closing).await;
    rig.arm(ArmState::Closed).await;
    assert_eq!(sim.arm(), SimArm::Closed);
    assert_eq!(
        sim.commands_seen(),
        vec![SimCommand::Open, SimCommand::Close]
    );
    assert_eq!(sim.closes_onto_occupied_loop(), 0);
    assert_eq!(sim.coils(), [false; 8], "every pulse ended");
    assert_eq!(rig.stop().await, Ok(()));
}

#[tokio::test]
async fn lane_interlock_tcp_close_command_while_occupied_never_reaches_the_coil() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(500)).await;
    let mut rig = Rig::start(bus, lane_config());
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

    for _ in 0..3 {
        let outcome = rig.command(Command::CloseBarrier).await;
        assert!(
            matches!(&outcome, CommandOutcome::Refused(r) if r.contains("loop occupied")),
            "{outcome:?}"
        );
    }
    rig.wait_for("interlock fault", |e| {
        matches!(e, DeviceEvent::BarrierFault { message } if message.contains("close_barrier refused"))
    })
    .await;
    let close_coil_on = sim.coil_writes().iter().any(|w| w.coil == 1 && w.on);
    assert!(
        !close_coil_on,
        "a close reached the coil: {:?}",
        sim.coil_writes()
    );
    assert_eq!(sim.close_commands(), 0);
    assert_eq!(sim.arm(), SimArm::Open);

    // Once the car has gone, the lane closes by itself.
    sim.vehicle_leaves();
    rig.arm(ArmState::Closed).await;
    assert_eq!(sim.close_commands(), 1);
    assert_eq!(sim.closes_onto_occupied_loop(), 0);
    assert_eq!(rig.stop().await, Ok(()));
}

#[tokio::test]
async fn barrier_tcp_jammed_arm_raises_a_fault() {
    let config = BarrierSimConfig {
        jammed: true,
        ..sim_config()
    };
    let (sim, bus) = sim_and_bus(config, Duration::from_millis(500)).await;
    let mut lane = lane_config();
    lane.lane.travel_timeout = Duration::from_millis(300);
    let mut rig = Rig::start(bus, lane);
    rig.arm(ArmState::Closed).await;
    assert_eq!(
        rig.command(Command::OpenBarrier).await,
        CommandOutcome::Done
    );
    rig.arm(ArmState::Opening).await;
    let fault = rig
        .wait_for("travel fault", |e| {
            matches!(e, DeviceEvent::BarrierFault { .. })
        })
        .await;
    assert!(
        matches!(&fault, DeviceEvent::BarrierFault { message } if message.contains("open limit")),
        "{fault:?}"
    );
    rig.arm(ArmState::Unknown).await;
    assert_eq!(
        sim.commands_seen(),
        vec![SimCommand::Open, SimCommand::Stop]
    );
    assert_eq!(sim.arm(), SimArm::Closed, "the jammed arm never moved");
    assert_eq!(rig.stop().await, Ok(()));
}

#[tokio::test]
async fn barrier_tcp_jammed_arm_with_only_a_closed_limit_is_a_fault_not_open() {
    let config = BarrierSimConfig {
        jammed: true,
        ..sim_config()
    };
    let (sim, bus) = sim_and_bus(config, Duration::from_millis(500)).await;
    let mut lane = lane_config();
    // An installation wired with the closed limit only.
    lane.map.open_limit = None;
    lane.lane.travel_timeout = Duration::from_millis(300);
    let mut rig = Rig::start(bus, lane);
    rig.arm(ArmState::Closed).await;
    assert_eq!(
        rig.command(Command::OpenBarrier).await,
        CommandOutcome::Done
    );
    rig.arm(ArmState::Opening).await;
    // The closed limit never went off: the arm is not believed open.
    let next = rig
        .wait_for("fault or open", |e| {
            matches!(
                e,
                DeviceEvent::BarrierFault { .. }
                    | DeviceEvent::BarrierState {
                        state: ArmState::Open
                    }
            )
        })
        .await;
    assert!(
        matches!(&next, DeviceEvent::BarrierFault { message } if message.contains("open limit")),
        "{next:?}"
    );
    assert_eq!(sim.arm(), SimArm::Closed, "the jammed arm never moved");
    assert_eq!(rig.stop().await, Ok(()));
}

#[tokio::test]
async fn barrier_tcp_peer_restart_goes_offline_then_online_and_works_again() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(200)).await;
    let mut rig = Rig::start(bus, lane_config());
    rig.arm(ArmState::Closed).await;

    sim.stop().await;
    rig.wait_for("link down", |e| {
        matches!(e, DeviceEvent::DeviceLink { online: false, .. })
    })
    .await;
    rig.arm(ArmState::Unknown).await;
    assert_eq!(
        rig.health.borrow().state,
        drivers::contract::HealthState::Degraded
    );

    sim.restart().await.expect("rebinds the same port");
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
    assert_eq!(sim.arm(), SimArm::Open);
    assert_eq!(
        rig.health.borrow().state,
        drivers::contract::HealthState::Ok
    );
    assert_eq!(rig.stop().await, Ok(()));
}

#[tokio::test]
async fn a_shared_bus_times_each_request_out_by_its_own_handles_timeout() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_secs(5)).await;
    let quick = bus.with_timeout(Duration::from_millis(100));
    assert_eq!(
        quick.read_inputs(1, 0, 3).await,
        Ok(vec![false, false, true])
    );
    sim.delay_next_reply(Duration::from_millis(300));
    assert_eq!(
        quick.read_inputs(1, 0, 3).await,
        Err(BusError::Timeout(Duration::from_millis(100))),
        "the handle's own timeout, not the bus's 5 s"
    );
    // The same bus serves a patient handle: its slow answer is waited for.
    let patient = bus.with_timeout(Duration::from_secs(2));
    sim.delay_next_reply(Duration::from_millis(300));
    assert_eq!(
        patient.read_inputs(1, 0, 3).await,
        Ok(vec![false, false, true])
    );
}

#[tokio::test]
async fn barrier_tcp_late_reply_does_not_corrupt_the_next_request() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(100)).await;
    // Settle the connection, then make the next answer arrive late.
    assert_eq!(bus.read_inputs(1, 0, 3).await, Ok(vec![false, false, true]));
    sim.delay_next_reply(Duration::from_millis(300));
    assert_eq!(
        bus.read_inputs(1, 0, 3).await,
        Err(BusError::Timeout(Duration::from_millis(100)))
    );
    // The next requests get their own answers, not the late one.
    bus.write_coil(1, 5, true).await.expect("write answered");
    match bus.call(1, Request::ReadCoils(0, 8)).await {
        Ok(Response::ReadCoils(bits)) => {
            assert_eq!(
                bits[..8],
                [false, false, false, false, false, true, false, false]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    sim.vehicle_arrives();
    assert_eq!(bus.read_inputs(1, 0, 1).await, Ok(vec![true]));
    assert!(sim.coils()[5]);
}

#[tokio::test]
async fn barrier_tcp_cancel_turns_outputs_off_and_leaves_the_arm_up() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(500)).await;
    let mut rig = Rig::start(bus, lane_config());
    rig.arm(ArmState::Closed).await;
    assert_eq!(rig.command(Command::HoldOpen).await, CommandOutcome::Done);
    rig.arm(ArmState::HeldOpen).await;
    let health = rig.health.clone();
    assert_eq!(rig.stop().await, Ok(()));

    let writes = sim.coil_writes();
    let last: Vec<(u16, bool)> = writes
        .iter()
        .rev()
        .take(3)
        .map(|w| (w.coil, w.on))
        .collect();
    assert_eq!(last, vec![(2, false), (1, false), (0, false)]);
    assert_eq!(sim.close_commands(), 0, "safe state never closes");
    assert_eq!(sim.arm(), SimArm::Open);
    assert_eq!(
        health.borrow().state,
        drivers::contract::HealthState::Stopped
    );
}

#[tokio::test]
async fn barrier_tcp_commands_other_than_barrier_ones_are_unsupported() {
    let (_sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(500)).await;
    let mut rig = Rig::start(bus, lane_config());
    rig.arm(ArmState::Closed).await;
    let outcome = rig
        .command(Command::PulseDoor {
            door: None,
            duration_ms: None,
        })
        .await;
    assert_eq!(outcome, CommandOutcome::Unsupported);
    assert_eq!(rig.command(Command::Poll).await, CommandOutcome::Done);
    assert_eq!(rig.command(Command::SafeState).await, CommandOutcome::Done);
    assert_eq!(rig.stop().await, Ok(()));
}

#[tokio::test]
async fn barrier_tcp_shared_bus_serialises_requests_from_many_handles() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(500)).await;
    let calls = (0..20u16).map(|i| {
        let bus = bus.clone();
        tokio::spawn(async move { bus.write_coil(1, i % 8, i % 2 == 0).await })
    });
    for call in calls {
        assert_eq!(call.await.expect("joined"), Ok(()));
    }
    assert_eq!(sim.coil_writes().len(), 20);
    // A request to a slave id that does not answer times out, and the bus
    // still serves the next one.
    assert!(matches!(
        bus.read_inputs(9, 0, 1).await,
        Err(BusError::Timeout(_))
    ));
    assert_eq!(bus.read_inputs(1, 0, 1).await, Ok(vec![false]));
}

/// Waits (with the deadline) until every coil of the simulated module is off.
async fn all_coils_off(sim: &SimHandle) -> bool {
    tokio::time::timeout(DEADLINE, async {
        while sim.coils() != [false; 8] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .is_ok()
}

/// A lane whose OPEN pulse lasts far longer than the test: any coil still
/// on at the end was left on by the way the driver stopped.
fn long_pulse_lane() -> drivers::barrier::BarrierConfig {
    let mut lane = lane_config();
    lane.map.pulse = Duration::from_secs(60);
    lane
}

#[tokio::test]
async fn barrier_tcp_pipeline_gone_mid_pulse_still_switches_the_coil_off() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(500)).await;
    let mut rig = Rig::start(bus, long_pulse_lane());
    rig.arm(ArmState::Closed).await;
    assert_eq!(
        rig.command(Command::OpenBarrier).await,
        CommandOutcome::Done
    );
    assert!(sim.coils()[0], "the OPEN coil is energised mid-pulse");
    // The error: the pipeline goes away while the coil is on. The next
    // event the driver reports (the arm reaching its open limit) fails.
    let Rig {
        events,
        task,
        commands: _commands,
        cancel: _cancel,
        ..
    } = rig;
    drop(events);
    let ended = tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the driver ends")
        .expect("joined");
    assert_eq!(ended, Err(drivers::DriverError::PipelineClosed));
    assert_eq!(sim.coils(), [false; 8], "every output de-energised");
}

#[tokio::test]
async fn barrier_tcp_driver_dropped_mid_pulse_switches_the_coil_off() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(500)).await;
    let mut rig = Rig::start(bus, long_pulse_lane());
    rig.arm(ArmState::Closed).await;
    assert_eq!(
        rig.command(Command::OpenBarrier).await,
        CommandOutcome::Done
    );
    assert!(sim.coils()[0], "the OPEN coil is energised mid-pulse");
    // The run future is dropped without a chance to clean up (a task
    // aborted at the end of a shutdown budget).
    rig.task.abort();
    assert!(
        rig.task.await.expect_err("aborted").is_cancelled(),
        "the task was aborted"
    );
    assert!(
        all_coils_off(&sim).await,
        "a coil stayed on: {:?}",
        sim.coils()
    );
}

#[tokio::test]
async fn barrier_tcp_open_that_failed_while_the_module_was_down_is_written_once_it_is_back() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_millis(200)).await;
    let mut lane = lane_config();
    // Long enough that the lane cannot drift back by its travel timer
    // during the test: only the rollback makes the second OPEN work.
    lane.lane.travel_timeout = Duration::from_secs(30);
    let mut rig = Rig::start(bus, lane);
    rig.arm(ArmState::Closed).await;

    sim.stop().await;
    rig.wait_for("link down", |e| {
        matches!(e, DeviceEvent::DeviceLink { online: false, .. })
    })
    .await;
    let failed = rig.command(Command::OpenBarrier).await;
    assert!(matches!(failed, CommandOutcome::Failed(_)), "{failed:?}");

    sim.restart().await.expect("rebinds the same port");
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
    assert_eq!(sim.commands_seen(), vec![SimCommand::Open]);
    assert_eq!(rig.stop().await, Ok(()));
}

#[tokio::test]
async fn barrier_tcp_command_past_its_deadline_is_never_written_late() {
    let (sim, bus) = sim_and_bus(sim_config(), Duration::from_secs(2)).await;
    let mut rig = Rig::start(bus, lane_config());
    rig.arm(ArmState::Closed).await;
    // The module hangs on the next request (a poll) for 800 ms.
    sim.delay_next_reply(Duration::from_millis(800));
    let served = sim.requests();
    tokio::time::timeout(DEADLINE, async {
        while sim.requests() == served {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("a poll reached the hung module");
    // An OPEN that is only good for 100 ms waits behind the hung poll.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    let (request, outcome) = drivers::CommandRequest::with_deadline(Command::OpenBarrier, deadline);
    rig.commands.send(request).await.expect("inbox");
    let outcome = tokio::time::timeout(DEADLINE, outcome)
        .await
        .expect("answered")
        .expect("answered");
    assert!(
        matches!(&outcome, CommandOutcome::Failed(why) if why.contains("expired")),
        "{outcome:?}"
    );
    // The module answers again; still nothing was written.
    let polls = sim.requests();
    tokio::time::timeout(DEADLINE, async {
        while sim.requests() < polls + 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("polling again");
    assert!(
        !sim.coil_writes().iter().any(|w| w.on),
        "a coil was energised late: {:?}",
        sim.coil_writes()
    );
    assert!(sim.commands_seen().is_empty());
    assert_eq!(rig.stop().await, Ok(()));
}
