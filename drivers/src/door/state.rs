//! The door-state machine (pure: inputs and the time in, events out).
//!
//! Inputs: the contact opened or closed, the exit button, a grant (a card
//! granted, a remote open, a relay pulse) and ticks. Outputs: `DoorState`,
//! `ExitButton`, and the alarms:
//! - **held open**: raised once the door has been open for `held_open_after`,
//!   cleared when it closes;
//! - **forced open**: raised when the door opens with no grant, exit-button
//!   press or remote open within the preceding `grant_window`, cleared when
//!   it closes.
//!
//! Time is a [`tokio::time::Instant`] passed in by the caller, so paused
//! test time drives it; the machine never reads a clock itself.

use std::time::Duration;

use tokio::time::Instant;

use crate::event::{DeviceEvent, DoorAlarmKind};

/// Alarm timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorConfig {
    /// Seconds open before the held-open alarm.
    pub held_open_after_s: u64,
    /// Seconds after a grant during which opening is not forced.
    pub grant_window_s: u64,
}

impl Default for DoorConfig {
    fn default() -> Self {
        Self {
            held_open_after_s: 30,
            grant_window_s: 5,
        }
    }
}

/// One input to the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorInput {
    /// The contact reports the door open (`true`) or closed.
    Contact(bool),
    /// The exit button was pressed.
    ExitButton,
    /// Entry was granted (card, remote open, relay pulse).
    Granted,
    /// Time passed.
    Tick,
}

/// The state of one door.
#[derive(Debug, Clone)]
pub struct DoorMachine {
    config: DoorConfig,
    door: Option<u8>,
    open: Option<bool>,
    opened_at: Option<Instant>,
    last_grant: Option<Instant>,
    held_alarm: bool,
    forced_alarm: bool,
}

impl DoorMachine {
    /// A door in unknown state.
    pub fn new(config: DoorConfig, door: Option<u8>) -> Self {
        Self {
            config,
            door,
            open: None,
            opened_at: None,
            last_grant: None,
            held_alarm: false,
            forced_alarm: false,
        }
    }

    /// Whether the door is open, once known.
    pub fn is_open(&self) -> Option<bool> {
        self.open
    }

    /// Whether the held-open alarm is active.
    pub fn held_open(&self) -> bool {
        self.held_alarm
    }

    /// Whether the forced-open alarm is active.
    pub fn forced_open(&self) -> bool {
        self.forced_alarm
    }

    /// When the next [`DoorInput::Tick`] can change anything.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.opened_at, self.held_alarm) {
            (Some(at), false) => Some(at + self.held_after()),
            _ => None,
        }
    }

    fn held_after(&self) -> Duration {
        Duration::from_secs(self.config.held_open_after_s)
    }

    fn alarm(&self, alarm: DoorAlarmKind, active: bool) -> DeviceEvent {
        DeviceEvent::DoorAlarm {
            alarm,
            active,
            door: self.door,
        }
    }

    fn recently_granted(&self, now: Instant) -> bool {
        let window = Duration::from_secs(self.config.grant_window_s);
        self.last_grant
            .is_some_and(|at| now.saturating_duration_since(at) <= window)
    }

    /// Applies `input` at `now`; returns the events it causes.
    pub fn handle(&mut self, input: DoorInput, now: Instant) -> Vec<DeviceEvent> {
        let mut events = Vec::new();
        match input {
            DoorInput::Granted => self.last_grant = Some(now),
            DoorInput::ExitButton => {
                self.last_grant = Some(now);
                events.push(DeviceEvent::ExitButton { door: self.door });
            }
            DoorInput::Contact(open) => {
                let previous = self.open.replace(open);
                if previous != Some(open) {
                    events.push(DeviceEvent::DoorState {
                        open,
                        door: self.door,
                    });
                }
                match (previous, open) {
                    (Some(false), true) => {
                        self.opened_at = Some(now);
                        if !self.recently_granted(now) {
                            self.forced_alarm = true;
                            events.push(self.alarm(DoorAlarmKind::ForcedOpen, true));
                        }
                    }
                    // Found open at start: not forced (history unknown), but timed.
                    (None, true) => self.opened_at = Some(now),
                    (_, false) => {
                        self.opened_at = None;
                        if std::mem::take(&mut self.held_alarm) {
                            events.push(self.alarm(DoorAlarmKind::HeldOpen, false));
                        }
                        if std::mem::take(&mut self.forced_alarm) {
                            events.push(self.alarm(DoorAlarmKind::ForcedOpen, false));
                        }
                    }
                    (Some(true), true) => {}
                }
            }
            DoorInput::Tick => {}
        }
        if let Some(deadline) = self.next_deadline()
            && now >= deadline
        {
            self.held_alarm = true;
            events.push(self.alarm(DoorAlarmKind::HeldOpen, true));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> (DoorMachine, Instant) {
        let mut m = DoorMachine::new(DoorConfig::default(), Some(1));
        let t0 = Instant::now();
        assert_eq!(
            m.handle(DoorInput::Contact(false), t0),
            vec![DeviceEvent::DoorState {
                open: false,
                door: Some(1)
            }]
        );
        (m, t0)
    }

    fn alarm(alarm: DoorAlarmKind, active: bool) -> DeviceEvent {
        DeviceEvent::DoorAlarm {
            alarm,
            active,
            door: Some(1),
        }
    }

    #[test]
    fn held_open_is_raised_at_the_deadline_and_cleared_on_close() {
        let (mut m, t0) = machine();
        m.handle(DoorInput::Granted, t0);
        let opened = m.handle(DoorInput::Contact(true), t0 + Duration::from_secs(1));
        assert_eq!(
            opened.len(),
            1,
            "a granted opening is not forced: {opened:?}"
        );
        let deadline = m.next_deadline().expect("timed");
        assert_eq!(deadline, t0 + Duration::from_secs(31));
        assert!(
            m.handle(DoorInput::Tick, deadline - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(
            m.handle(DoorInput::Tick, deadline),
            vec![alarm(DoorAlarmKind::HeldOpen, true)]
        );
        assert!(
            m.handle(DoorInput::Tick, deadline + Duration::from_secs(9))
                .is_empty()
        );
        let closed = m.handle(
            DoorInput::Contact(false),
            deadline + Duration::from_secs(10),
        );
        assert!(closed.contains(&alarm(DoorAlarmKind::HeldOpen, false)));
        assert!(!m.held_open());
    }

    #[test]
    fn forced_open_without_a_grant_and_not_after_the_exit_button() {
        let (mut m, t0) = machine();
        let events = m.handle(DoorInput::Contact(true), t0 + Duration::from_secs(60));
        assert!(events.contains(&alarm(DoorAlarmKind::ForcedOpen, true)));
        let events = m.handle(DoorInput::Contact(false), t0 + Duration::from_secs(61));
        assert!(events.contains(&alarm(DoorAlarmKind::ForcedOpen, false)));

        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(
            m.handle(DoorInput::ExitButton, t1),
            vec![DeviceEvent::ExitButton { door: Some(1) }]
        );
        let events = m.handle(DoorInput::Contact(true), t1 + Duration::from_secs(5));
        assert!(!m.forced_open(), "{events:?}");
    }

    #[test]
    fn forced_open_once_the_grant_window_has_passed() {
        let (mut m, t0) = machine();
        m.handle(DoorInput::Granted, t0);
        m.handle(DoorInput::Contact(true), t0 + Duration::from_secs(6));
        assert!(m.forced_open());
    }

    #[test]
    fn held_open_timer_runs_for_a_door_found_open_but_it_is_not_forced() {
        let mut m = DoorMachine::new(DoorConfig::default(), None);
        let t0 = Instant::now();
        m.handle(DoorInput::Contact(true), t0);
        assert!(!m.forced_open());
        let events = m.handle(DoorInput::Tick, t0 + Duration::from_secs(30));
        assert!(matches!(
            events.as_slice(),
            [DeviceEvent::DoorAlarm {
                alarm: DoorAlarmKind::HeldOpen,
                active: true,
                ..
            }]
        ));
    }
}
