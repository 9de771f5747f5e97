//! The unit-door (单元门禁) device side: card readers and door hardware.
//!
//! Pure codecs and state machines (no I/O, fully unit-tested):
//! - [`wiegand`]: Wiegand W26/W34 frame decoder (and encoder for simulators);
//! - [`serial`]: RS-485 card-reader framing (ASCII hex lines, STX…ETX binary);
//! - [`wg`]: the WG/UHPPOTE UDP controller packet codec;
//! - [`state`]: the door-state machine (held-open and forced-open alarms);
//! - [`reject`]: rejected reads aggregated per reader (noise never floods
//!   the journal) and the noisy-line alarm.
//!
//! Drivers (each a [`crate::Driver`]):
//! - [`wiegand_driver::WiegandReader`]: two GPIO input lines → card reads;
//! - [`serial_driver::SerialReader`]: a serial card reader with reconnects;
//! - [`wg_driver::WgController`]: a WG/UHPPOTE controller over UDP;
//! - [`door_driver::DoorDriver`]: strike relay, door contact, exit button.
//!
//! The hardware seam is [`gpio`]: narrow line traits with a gpiocdev
//! implementation and an in-memory fake used by tests and the demo.

pub mod door_driver;
pub mod gpio;
pub mod reject;
pub mod serial;
pub mod serial_driver;
pub mod state;
pub mod wg;
pub mod wg_driver;
pub mod wiegand;
pub mod wiegand_driver;
