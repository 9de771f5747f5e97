//! A simulated Wiegand reader: encodes a card and plays it onto two fake
//! GPIO lines as timestamped edges with real Wiegand timing — each bit pulls
//! its line low for 50 µs, one bit every 2 ms, lines idle high.

use std::time::Duration;

use crate::door::gpio::{FakeInput, FakeInputHandle, fake_input};
use crate::door::wiegand::{encode_w26, encode_w34};

/// Pulse width.
pub const PULSE: Duration = Duration::from_micros(50);
/// Bit period.
pub const BIT_INTERVAL: Duration = Duration::from_millis(2);
/// Quiet time the simulator leaves after each frame (well past the 5 ms gap).
pub const FRAME_SPACING: Duration = Duration::from_millis(100);

/// Drives the D0 and D1 lines of a [`crate::door::wiegand_driver::WiegandReader`].
#[derive(Debug)]
pub struct WiegandSim {
    d0: FakeInputHandle,
    d1: FakeInputHandle,
    clock: Duration,
}

impl WiegandSim {
    /// The reader's D0 and D1 lines (idle high) and the simulator driving them.
    pub fn new() -> (FakeInput, FakeInput, Self) {
        let (d0, d0_handle) = fake_input(true);
        let (d1, d1_handle) = fake_input(true);
        let sim = Self {
            d0: d0_handle,
            d1: d1_handle,
            clock: Duration::from_secs(1),
        };
        (d0, d1, sim)
    }

    /// The simulated edge clock (the timestamp of the next bit).
    pub fn clock(&self) -> Duration {
        self.clock
    }

    /// Plays `bits` in transmission order, then leaves [`FRAME_SPACING`].
    pub fn send_bits(&mut self, bits: &[bool]) {
        for bit in bits {
            let line = if *bit { &self.d1 } else { &self.d0 };
            line.set(false, self.clock);
            line.set(true, self.clock + PULSE);
            self.clock += BIT_INTERVAL;
        }
        self.clock += FRAME_SPACING;
    }

    /// Plays a W26 frame.
    pub fn send_w26(&mut self, facility: u8, card: u16) {
        self.send_bits(&encode_w26(facility, card));
    }

    /// Plays a W34 frame carrying `data` (a card UID).
    pub fn send_w34(&mut self, data: u32) {
        self.send_bits(&encode_w34(data));
    }
}
