//! The lane state machine of one barrier (道闸): pure and sans-IO.
//!
//! [`Lane::step`] takes the current time and one [`Input`] (a command, a
//! loop-detector or limit-switch level, a timer tick) and returns the
//! [`Output`]s: actions for the IO layer ([`Action::PulseOpen`],
//! [`Action::PulseClose`], [`Action::Stop`]) and events (arm state, loop
//! state, faults). It owns no clock, socket or task; the driver passes
//! `Instant`s in, so tests drive it with any time they like.
//!
//! Rules:
//! - the arm closes by itself `auto_close_delay` after a vehicle has **left**
//!   the loop, or `unused_close_after` after opening if no vehicle came;
//! - **anti-smash:** no [`Action::PulseClose`] is ever emitted while the loop
//!   is occupied; a close command then is refused with a reason, and a loop
//!   that becomes occupied while the arm is closing re-opens it;
//! - an arm that does not reach its limit within `travel_timeout` raises a
//!   fault, and its position becomes [`ArmState::Unknown`]; without a limit
//!   switch for that direction the arm is assumed there after the timeout,
//!   unless the other limit says it never left;
//! - the module's limits win over the lane's belief: an arm that comes back
//!   onto the closed limit while believed opening is closed (so the next
//!   allowed read opens it again);
//! - hold-open keeps the arm up until released; a release closes only when
//!   the loop is clear (otherwise it closes after the vehicle leaves).
//!
//! Limit and loop inputs are levels: feeding the same level every poll is
//! fine, only changes produce events.

use std::time::{Duration, Instant};

use crate::event::ArmState;

/// Timing of one lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneConfig {
    /// Close this long after the vehicle has left the loop.
    pub auto_close_delay: Duration,
    /// Close this long after reaching the open limit if no vehicle came
    /// (`None`: stay open until a vehicle passes or a close command).
    pub unused_close_after: Option<Duration>,
    /// The arm must reach its limit within this time after a pulse.
    pub travel_timeout: Duration,
    /// Whether an open-limit switch is wired.
    pub has_open_limit: bool,
    /// Whether a closed-limit switch is wired.
    pub has_closed_limit: bool,
}

impl Default for LaneConfig {
    fn default() -> Self {
        Self {
            auto_close_delay: Duration::from_secs(2),
            unused_close_after: Some(Duration::from_secs(30)),
            travel_timeout: Duration::from_secs(6),
            has_open_limit: true,
            has_closed_limit: true,
        }
    }
}

/// What someone asks of the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneCommand {
    /// Raise the arm; it closes by itself after the vehicle.
    Open,
    /// Lower the arm now (refused while the loop is occupied or held open).
    Close,
    /// Raise the arm and keep it up until released.
    HoldOpen,
    /// End a hold; close when the loop is clear.
    ReleaseHold,
}

/// One input to the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A command.
    Command(LaneCommand),
    /// Loop-detector level: `true` while a vehicle is on the loop.
    Loop(bool),
    /// Open-limit switch level.
    OpenLimit(bool),
    /// Closed-limit switch level.
    ClosedLimit(bool),
    /// Time passed: check timers.
    Tick,
    /// The IO module stopped answering: the arm position is unknown until
    /// the limit switches are read again.
    Offline,
}

/// Something the IO layer must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pulse the controller's OPEN input.
    PulseOpen,
    /// Pulse the controller's CLOSE input.
    PulseClose,
    /// Pulse the controller's STOP input.
    Stop,
}

/// One result of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Drive the controller.
    Action(Action),
    /// The arm's reported position changed.
    Arm(ArmState),
    /// The loop changed (`true`: occupied).
    Loop(bool),
    /// The barrier did not do what it was told.
    Fault(String),
}

/// The result of one [`Lane::step`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// Actions and events, in order.
    pub outputs: Vec<Output>,
    /// Set when a command was refused, with the reason.
    pub refused: Option<String>,
}

impl Step {
    /// The actions in this step, in order.
    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        self.outputs.iter().filter_map(|o| match o {
            Output::Action(a) => Some(*a),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Unknown,
    Closed,
    Opening { since: Instant },
    Open { since: Instant },
    Closing { since: Instant },
}

/// The state of one lane. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct Lane {
    config: LaneConfig,
    phase: Phase,
    hold: bool,
    occupied: bool,
    /// A vehicle was on the loop since the arm began to open.
    vehicle_seen: bool,
    /// When the loop last cleared after a vehicle (auto-close timer).
    cleared_at: Option<Instant>,
    open_limit: Option<bool>,
    closed_limit: Option<bool>,
    reported: Option<ArmState>,
}

impl Lane {
    /// A lane whose arm position is not yet known.
    pub fn new(config: LaneConfig) -> Self {
        Self {
            config,
            phase: Phase::Unknown,
            hold: false,
            occupied: false,
            vehicle_seen: false,
            cleared_at: None,
            open_limit: None,
            closed_limit: None,
            reported: None,
        }
    }

    /// The arm position as last reported.
    pub fn arm(&self) -> ArmState {
        self.arm_state()
    }

    /// Whether the loop is occupied (as last fed).
    pub fn loop_occupied(&self) -> bool {
        self.occupied
    }

    /// Whether a hold-open is in force.
    pub fn held(&self) -> bool {
        self.hold
    }

    /// Feeds one input at time `now`.
    pub fn step(&mut self, now: Instant, input: Input) -> Step {
        let mut step = Step::default();
        match input {
            Input::Command(command) => self.command(now, command, &mut step),
            Input::Loop(occupied) => self.loop_level(now, occupied, &mut step),
            Input::OpenLimit(level) => {
                self.open_limit = Some(level);
                if level && matches!(self.phase, Phase::Opening { .. } | Phase::Unknown) {
                    self.enter_open(now);
                }
            }
            Input::ClosedLimit(level) => {
                let was = self.closed_limit.replace(level);
                // The arm back on the closed limit while believed rising (it
                // left it, then fell: the controller closed it, or the open
                // never took): the module's word wins.
                let fell_back = was == Some(false) && matches!(self.phase, Phase::Opening { .. });
                if level
                    && (fell_back || matches!(self.phase, Phase::Closing { .. } | Phase::Unknown))
                {
                    self.phase = Phase::Closed;
                }
            }
            Input::Tick => self.tick(now, &mut step),
            Input::Offline => {
                self.phase = Phase::Unknown;
                self.open_limit = None;
                self.closed_limit = None;
            }
        }
        self.report(&mut step);
        step
    }

    fn command(&mut self, now: Instant, command: LaneCommand, step: &mut Step) {
        match command {
            LaneCommand::Open => self.open(now, step),
            LaneCommand::HoldOpen => {
                self.hold = true;
                self.open(now, step);
            }
            LaneCommand::Close => {
                if self.hold {
                    step.refused = Some("barrier is held open; release the hold first".into());
                } else if self.phase == Phase::Closed {
                    // Already down: nothing to do.
                } else if let Err(reason) = self.close(now, step) {
                    step.refused = Some(reason);
                }
            }
            LaneCommand::ReleaseHold => {
                if !self.hold {
                    return;
                }
                self.hold = false;
                if matches!(self.phase, Phase::Open { .. }) {
                    if self.occupied {
                        // Close once the vehicle has left.
                        self.vehicle_seen = true;
                    } else {
                        // The loop is clear (checked by `close`).
                        let _ = self.close(now, step);
                    }
                }
            }
        }
    }

    fn open(&mut self, now: Instant, step: &mut Step) {
        match self.phase {
            Phase::Open { .. } => {
                // Already up: restart the "no vehicle came" timer.
                self.phase = Phase::Open { since: now };
            }
            Phase::Opening { .. } => {}
            Phase::Closed | Phase::Closing { .. } | Phase::Unknown => {
                self.start_opening(now, step);
            }
        }
    }

    fn start_opening(&mut self, now: Instant, step: &mut Step) {
        step.outputs.push(Output::Action(Action::PulseOpen));
        self.phase = Phase::Opening { since: now };
        self.vehicle_seen = self.occupied;
        self.cleared_at = None;
        if !self.config.has_open_limit {
            return;
        }
        if self.open_limit == Some(true) {
            self.enter_open(now);
        }
    }

    /// The only place that emits [`Action::PulseClose`].
    fn close(&mut self, now: Instant, step: &mut Step) -> Result<(), String> {
        if self.occupied {
            return Err("loop occupied: a vehicle is under the arm (anti-smash)".into());
        }
        step.outputs.push(Output::Action(Action::PulseClose));
        self.phase = Phase::Closing { since: now };
        self.cleared_at = None;
        self.vehicle_seen = false;
        Ok(())
    }

    fn enter_open(&mut self, now: Instant) {
        self.phase = Phase::Open { since: now };
    }

    fn loop_level(&mut self, now: Instant, occupied: bool, step: &mut Step) {
        if occupied != self.occupied {
            step.outputs.push(Output::Loop(occupied));
        }
        let was = self.occupied;
        self.occupied = occupied;
        if occupied {
            self.cleared_at = None;
            match self.phase {
                Phase::Closing { .. } => {
                    // Anti-smash: a vehicle under a falling arm re-opens it.
                    self.start_opening(now, step);
                    self.vehicle_seen = true;
                }
                Phase::Opening { .. } | Phase::Open { .. } => self.vehicle_seen = true,
                Phase::Closed | Phase::Unknown => {}
            }
        } else if was && self.vehicle_seen {
            self.cleared_at = Some(now);
        }
    }

    fn tick(&mut self, now: Instant, step: &mut Step) {
        let travel = self.config.travel_timeout;
        match self.phase {
            Phase::Opening { since } if now.saturating_duration_since(since) >= travel => {
                // Without an open limit the arm is assumed up after the
                // travel time, unless the closed limit says it never left.
                let never_left = self.config.has_closed_limit && self.closed_limit == Some(true);
                if self.config.has_open_limit || never_left {
                    self.fault("open", step);
                } else {
                    self.enter_open(now);
                }
            }
            Phase::Closing { since } if now.saturating_duration_since(since) >= travel => {
                if self.config.has_closed_limit {
                    self.fault("closed", step);
                } else {
                    self.phase = Phase::Closed;
                }
            }
            Phase::Open { since } if !self.hold && !self.occupied => {
                let after_vehicle = self.cleared_at.is_some_and(|t| {
                    now.saturating_duration_since(t) >= self.config.auto_close_delay
                });
                let unused = !self.vehicle_seen
                    && self
                        .config
                        .unused_close_after
                        .is_some_and(|t| now.saturating_duration_since(since) >= t);
                if after_vehicle || unused {
                    // The loop is clear here; `close` checks it again.
                    let _ = self.close(now, step);
                }
            }
            _ => {}
        }
    }

    fn fault(&mut self, limit: &str, step: &mut Step) {
        step.outputs.push(Output::Action(Action::Stop));
        step.outputs.push(Output::Fault(format!(
            "arm did not reach the {limit} limit within {} ms",
            self.config.travel_timeout.as_millis()
        )));
        self.phase = Phase::Unknown;
    }

    fn arm_state(&self) -> ArmState {
        match self.phase {
            Phase::Unknown => ArmState::Unknown,
            Phase::Closed => ArmState::Closed,
            Phase::Opening { .. } => ArmState::Opening,
            Phase::Open { .. } if self.hold => ArmState::HeldOpen,
            Phase::Open { .. } => ArmState::Open,
            Phase::Closing { .. } => ArmState::Closing,
        }
    }

    fn report(&mut self, step: &mut Step) {
        let now = self.arm_state();
        if self.reported != Some(now) {
            // Unknown at start-up is not news.
            if self.reported.is_some() || now != ArmState::Unknown {
                step.outputs.push(Output::Arm(now));
            }
            self.reported = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    struct Rig {
        lane: Lane,
        now: Instant,
    }

    impl Rig {
        fn new(config: LaneConfig) -> Self {
            Self {
                lane: Lane::new(config),
                now: Instant::now(),
            }
        }

        /// A lane at rest with the arm down and the loop clear.
        fn closed() -> Self {
            let mut rig = Self::new(LaneConfig::default());
            rig.feed(Input::ClosedLimit(true));
            rig.feed(Input::OpenLimit(false));
            rig.feed(Input::Loop(false));
            assert_eq!(rig.lane.arm(), ArmState::Closed);
            rig
        }

        fn feed(&mut self, input: Input) -> Step {
            self.lane.step(self.now, input)
        }

        fn cmd(&mut self, command: LaneCommand) -> Step {
            self.feed(Input::Command(command))
        }

        fn after(&mut self, d: Duration) -> Step {
            self.now += d;
            self.feed(Input::Tick)
        }

        /// Open and let the arm reach the open limit.
        fn opened(&mut self) {
            let s = self.cmd(LaneCommand::Open);
            assert_eq!(s.actions().collect::<Vec<_>>(), vec![Action::PulseOpen]);
            self.feed(Input::ClosedLimit(false));
            self.now += 500 * MS;
            self.feed(Input::OpenLimit(true));
            assert!(matches!(
                self.lane.arm(),
                ArmState::Open | ArmState::HeldOpen
            ));
        }
    }

    fn has(step: &Step, action: Action) -> bool {
        step.actions().any(|a| a == action)
    }

    #[test]
    fn start_up_position_comes_from_the_limit_switches() {
        let mut rig = Rig::new(LaneConfig::default());
        assert_eq!(rig.lane.arm(), ArmState::Unknown);
        let s = rig.feed(Input::OpenLimit(true));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Open)]);
        let mut rig = Rig::new(LaneConfig::default());
        let s = rig.feed(Input::ClosedLimit(true));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Closed)]);
        let s = rig.feed(Input::Tick);
        assert!(s.outputs.is_empty(), "no repeat: {:?}", s.outputs);
    }

    #[test]
    fn full_cycle_opens_passes_and_closes_after_the_vehicle_leaves() {
        let mut rig = Rig::closed();
        let s = rig.cmd(LaneCommand::Open);
        assert_eq!(
            s.outputs,
            vec![
                Output::Action(Action::PulseOpen),
                Output::Arm(ArmState::Opening)
            ]
        );
        rig.feed(Input::ClosedLimit(false));
        let s = rig.feed(Input::OpenLimit(true));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Open)]);

        let s = rig.feed(Input::Loop(true));
        assert_eq!(s.outputs, vec![Output::Loop(true)]);
        // However long the vehicle stays, no close while it is on the loop.
        for _ in 0..100 {
            assert!(!has(&rig.after(Duration::from_secs(1)), Action::PulseClose));
        }
        let s = rig.feed(Input::Loop(false));
        assert_eq!(s.outputs, vec![Output::Loop(false)]);
        assert!(!has(&rig.after(1900 * MS), Action::PulseClose));
        let s = rig.after(100 * MS);
        assert_eq!(
            s.outputs,
            vec![
                Output::Action(Action::PulseClose),
                Output::Arm(ArmState::Closing)
            ]
        );
        rig.feed(Input::OpenLimit(false));
        let s = rig.feed(Input::ClosedLimit(true));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Closed)]);
    }

    #[test]
    fn vehicle_arriving_while_the_arm_rises_counts_as_the_vehicle() {
        let mut rig = Rig::closed();
        rig.cmd(LaneCommand::Open);
        rig.feed(Input::Loop(true));
        rig.feed(Input::Loop(false));
        rig.feed(Input::OpenLimit(true));
        // Left the loop before the open limit: auto-close from its leaving.
        assert!(has(
            &rig.after(2 * Duration::from_secs(1)),
            Action::PulseClose
        ));
    }

    #[test]
    fn closes_after_the_unused_timeout_when_no_vehicle_came() {
        let mut rig = Rig::closed();
        rig.opened();
        assert!(!has(
            &rig.after(Duration::from_secs(29)),
            Action::PulseClose
        ));
        assert!(has(&rig.after(Duration::from_secs(1)), Action::PulseClose));
    }

    #[test]
    fn no_unused_timeout_means_the_arm_stays_up() {
        let mut rig = Rig::new(LaneConfig {
            unused_close_after: None,
            ..LaneConfig::default()
        });
        rig.feed(Input::ClosedLimit(true));
        rig.opened();
        for _ in 0..10 {
            assert!(!has(
                &rig.after(Duration::from_secs(60)),
                Action::PulseClose
            ));
        }
    }

    #[test]
    fn lane_interlock_close_command_while_occupied_is_refused() {
        let mut rig = Rig::closed();
        rig.opened();
        rig.feed(Input::Loop(true));
        let s = rig.cmd(LaneCommand::Close);
        assert!(!has(&s, Action::PulseClose));
        let reason = s.refused.expect("refused");
        assert!(reason.contains("loop occupied"), "{reason}");
        assert_eq!(rig.lane.arm(), ArmState::Open);
    }

    #[test]
    fn lane_interlock_close_command_on_a_clear_loop_closes() {
        let mut rig = Rig::closed();
        rig.opened();
        let s = rig.cmd(LaneCommand::Close);
        assert_eq!(s.refused, None);
        assert!(has(&s, Action::PulseClose));
        // Closing an arm that is already down does nothing.
        rig.feed(Input::ClosedLimit(true));
        let s = rig.cmd(LaneCommand::Close);
        assert_eq!(s, Step::default());
    }

    #[test]
    fn lane_interlock_vehicle_under_a_closing_arm_reopens_it() {
        let mut rig = Rig::closed();
        rig.opened();
        rig.cmd(LaneCommand::Close);
        rig.feed(Input::OpenLimit(false));
        let s = rig.feed(Input::Loop(true));
        assert_eq!(
            s.outputs,
            vec![
                Output::Loop(true),
                Output::Action(Action::PulseOpen),
                Output::Arm(ArmState::Opening)
            ]
        );
        rig.feed(Input::OpenLimit(true));
        rig.feed(Input::Loop(false));
        assert!(has(&rig.after(Duration::from_secs(2)), Action::PulseClose));
    }

    #[test]
    fn fault_when_the_arm_does_not_reach_the_open_limit() {
        let mut rig = Rig::closed();
        rig.cmd(LaneCommand::Open);
        assert!(rig.after(5999 * MS).outputs.is_empty());
        let s = rig.after(MS);
        assert_eq!(s.outputs[0], Output::Action(Action::Stop));
        assert!(matches!(&s.outputs[1], Output::Fault(m) if m.contains("open limit")));
        assert_eq!(s.outputs[2], Output::Arm(ArmState::Unknown));
        // A later open tries again.
        assert!(has(&rig.cmd(LaneCommand::Open), Action::PulseOpen));
    }

    #[test]
    fn fault_when_the_arm_does_not_reach_the_closed_limit() {
        let mut rig = Rig::closed();
        rig.opened();
        rig.cmd(LaneCommand::Close);
        let s = rig.after(Duration::from_secs(6));
        assert!(
            s.outputs
                .iter()
                .any(|o| matches!(o, Output::Fault(m) if m.contains("closed limit")))
        );
        assert_eq!(rig.lane.arm(), ArmState::Unknown);
    }

    #[test]
    fn an_arm_back_on_the_closed_limit_while_opening_is_believed_closed() {
        let mut rig = Rig::closed();
        rig.cmd(LaneCommand::Open);
        rig.feed(Input::ClosedLimit(false));
        assert_eq!(rig.lane.arm(), ArmState::Opening);
        // The controller closed it again before it reached the top.
        let s = rig.feed(Input::ClosedLimit(true));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Closed)]);
        // So the next read opens it again.
        assert!(has(&rig.cmd(LaneCommand::Open), Action::PulseOpen));
    }

    #[test]
    fn the_closed_limit_still_on_at_the_start_of_an_open_is_not_a_close() {
        let mut rig = Rig::closed();
        rig.cmd(LaneCommand::Open);
        // The poll right after the pulse still sees the arm down.
        let s = rig.feed(Input::ClosedLimit(true));
        assert!(s.outputs.is_empty(), "{:?}", s.outputs);
        assert_eq!(rig.lane.arm(), ArmState::Opening);
    }

    #[test]
    fn with_only_a_closed_limit_an_arm_that_never_left_it_is_a_fault_not_open() {
        let mut rig = Rig::new(LaneConfig {
            has_open_limit: false,
            ..LaneConfig::default()
        });
        rig.feed(Input::ClosedLimit(true));
        rig.feed(Input::Loop(false));
        rig.cmd(LaneCommand::Open);
        let s = rig.after(Duration::from_secs(6));
        assert!(
            s.outputs
                .iter()
                .any(|o| matches!(o, Output::Fault(m) if m.contains("open limit"))),
            "{:?}",
            s.outputs
        );
        assert_eq!(rig.lane.arm(), ArmState::Unknown);
        // An arm that did leave the closed limit is assumed up as before.
        rig.feed(Input::ClosedLimit(true));
        rig.cmd(LaneCommand::Open);
        rig.feed(Input::ClosedLimit(false));
        let s = rig.after(Duration::from_secs(6));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Open)]);
    }

    #[test]
    fn without_limit_switches_the_arm_is_assumed_there_after_the_travel_time() {
        let mut rig = Rig::new(LaneConfig {
            has_open_limit: false,
            has_closed_limit: false,
            ..LaneConfig::default()
        });
        rig.cmd(LaneCommand::Open);
        let s = rig.after(Duration::from_secs(6));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Open)]);
        rig.cmd(LaneCommand::Close);
        let s = rig.after(Duration::from_secs(6));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Closed)]);
    }

    #[test]
    fn hold_open_stays_up_until_released() {
        let mut rig = Rig::closed();
        rig.cmd(LaneCommand::HoldOpen);
        rig.feed(Input::OpenLimit(true));
        assert_eq!(rig.lane.arm(), ArmState::HeldOpen);
        rig.feed(Input::Loop(true));
        rig.feed(Input::Loop(false));
        for _ in 0..10 {
            assert!(!has(
                &rig.after(Duration::from_secs(60)),
                Action::PulseClose
            ));
        }
        let s = rig.cmd(LaneCommand::Close);
        assert!(s.refused.expect("refused").contains("held open"));
        let s = rig.cmd(LaneCommand::ReleaseHold);
        assert!(has(&s, Action::PulseClose));
    }

    #[test]
    fn hold_open_on_an_open_arm_reports_held_open_without_a_pulse() {
        let mut rig = Rig::closed();
        rig.opened();
        let s = rig.cmd(LaneCommand::HoldOpen);
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::HeldOpen)]);
    }

    #[test]
    fn release_with_a_vehicle_on_the_loop_closes_after_it_leaves() {
        let mut rig = Rig::closed();
        rig.cmd(LaneCommand::HoldOpen);
        rig.feed(Input::OpenLimit(true));
        rig.feed(Input::Loop(true));
        let s = rig.cmd(LaneCommand::ReleaseHold);
        assert!(!has(&s, Action::PulseClose));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Open)]);
        assert!(!has(
            &rig.after(Duration::from_secs(60)),
            Action::PulseClose
        ));
        rig.feed(Input::Loop(false));
        assert!(has(&rig.after(Duration::from_secs(2)), Action::PulseClose));
    }

    #[test]
    fn offline_makes_the_position_unknown_until_a_limit_is_read() {
        let mut rig = Rig::closed();
        let s = rig.feed(Input::Offline);
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Unknown)]);
        assert!(rig.after(Duration::from_secs(60)).outputs.is_empty());
        let s = rig.feed(Input::OpenLimit(true));
        assert_eq!(s.outputs, vec![Output::Arm(ArmState::Open)]);
    }

    #[test]
    fn release_without_hold_does_nothing() {
        let mut rig = Rig::closed();
        assert_eq!(rig.cmd(LaneCommand::ReleaseHold), Step::default());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Wait(u64),
        In(Input),
    }

    fn op() -> impl Strategy<Value = Op> {
        let command = prop_oneof![
            Just(LaneCommand::Open),
            Just(LaneCommand::Close),
            Just(LaneCommand::HoldOpen),
            Just(LaneCommand::ReleaseHold),
        ];
        prop_oneof![
            (0u64..10_000).prop_map(Op::Wait),
            command.prop_map(|c| Op::In(Input::Command(c))),
            any::<bool>().prop_map(|b| Op::In(Input::Loop(b))),
            any::<bool>().prop_map(|b| Op::In(Input::OpenLimit(b))),
            any::<bool>().prop_map(|b| Op::In(Input::ClosedLimit(b))),
            Just(Op::In(Input::Tick)),
            Just(Op::In(Input::Offline)),
        ]
    }

    fn config() -> impl Strategy<Value = LaneConfig> {
        (
            0u64..5_000,
            proptest::option::of(0u64..20_000),
            1u64..10_000,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(delay, unused, travel, ol, cl)| LaneConfig {
                auto_close_delay: Duration::from_millis(delay),
                unused_close_after: unused.map(Duration::from_millis),
                travel_timeout: Duration::from_millis(travel),
                has_open_limit: ol,
                has_closed_limit: cl,
            })
    }

    proptest! {
        #[test]
        fn lane_interlock_no_close_pulse_while_the_loop_is_occupied(
            config in config(),
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let mut lane = Lane::new(config);
            let mut now = Instant::now();
            let mut occupied = false;
            for op in ops {
                let input = match op {
                    Op::Wait(ms) => {
                        now += Duration::from_millis(ms);
                        Input::Tick
                    }
                    Op::In(input) => input,
                };
                if let Input::Loop(level) = input {
                    occupied = level;
                }
                let before = lane.arm();
                let step = lane.step(now, input);
                let closes = step.actions().filter(|a| *a == Action::PulseClose).count();
                prop_assert!(!(occupied && closes > 0), "close pulse onto an occupied loop: {:?}", step);
                if input == Input::Command(LaneCommand::Close) && occupied && before != ArmState::Closed {
                    prop_assert!(step.refused.is_some());
                }
                prop_assert!(closes <= 1);
            }
        }
    }
}
