//! The Modbus register map of one barrier lane: which coils pulse the
//! controller's OPEN / CLOSE / STOP inputs and which discrete inputs carry
//! the loop detector and the limit switches, plus the presets for the IO
//! modules we know ([`Preset`]).
//!
//! Plain structs without serde: the gateway's config loader builds them.
//!
//! Pulses are written as "coil on, wait `pulse`, coil off" (FC05 `FF00` then
//! `0000`). The Waveshare modules also have a self-timed "flash on" (FC05 to
//! `0x0200 + ch` with the time in 100 ms as the value, see
//! [`waveshare_flash_pdu`]), which would be safer against a gateway crash
//! mid-pulse. It is not used yet: its value is not a valid FC05 coil value,
//! and tokio-modbus 0.17 rejects it in both its request and its response
//! decoder (`Invalid coil value`), so the echo could not be read back. The
//! driver instead turns every output off when it starts, when it stops and
//! after any error.

use std::time::Duration;

/// A discrete input (FC02) and its polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitalInput {
    /// 0-based discrete-input address.
    pub address: u16,
    /// The signal is active when the input reads `0`.
    pub active_low: bool,
}

impl DigitalInput {
    /// An active-high input at `address`.
    pub const fn high(address: u16) -> Self {
        Self {
            address,
            active_low: false,
        }
    }

    /// Whether the signal is active given the raw bit.
    pub fn active(&self, raw: bool) -> bool {
        raw != self.active_low
    }
}

/// Where one lane's signals are on its IO module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterMap {
    /// Coil (0-based) wired to the controller's OPEN input.
    pub open_coil: u16,
    /// Coil wired to the CLOSE input.
    pub close_coil: u16,
    /// Coil wired to the STOP input, if any.
    pub stop_coil: Option<u16>,
    /// How long a pulse keeps the contact closed.
    pub pulse: Duration,
    /// The loop detector (地感) under the arm; required.
    pub loop_detector: DigitalInput,
    /// The open-limit switch, if wired.
    pub open_limit: Option<DigitalInput>,
    /// The closed-limit switch, if wired.
    pub closed_limit: Option<DigitalInput>,
}

impl RegisterMap {
    /// Every output coil of the lane.
    pub fn coils(&self) -> impl Iterator<Item = u16> + '_ {
        [Some(self.open_coil), Some(self.close_coil), self.stop_coil]
            .into_iter()
            .flatten()
    }

    /// Every wired input.
    pub fn inputs(&self) -> impl Iterator<Item = DigitalInput> + '_ {
        [Some(self.loop_detector), self.open_limit, self.closed_limit]
            .into_iter()
            .flatten()
    }

    /// The smallest discrete-input block that covers every input:
    /// `(first address, count)`.
    pub fn input_span(&self) -> (u16, u16) {
        let first = self.inputs().map(|i| i.address).min().unwrap_or(0);
        let last = self.inputs().map(|i| i.address).max().unwrap_or(0);
        (first, last - first + 1)
    }

    /// Reads `input` from a block read at `first`.
    pub fn level(input: DigitalInput, first: u16, bits: &[bool]) -> Option<bool> {
        let index = usize::from(input.address.checked_sub(first)?);
        bits.get(index).map(|raw| input.active(*raw))
    }
}

/// Known IO modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Waveshare "Modbus RTU Relay" / "Modbus RTU IO 8CH": relays at coils
    /// 0–7 (OPEN 0, CLOSE 1, STOP 2), opto inputs at discrete inputs 0–7
    /// (loop 0, open limit 1, closed limit 2). RS-485, 9600 baud, slave 1.
    WaveshareRtuRelay,
    /// Advantech ADAM-6050 (Modbus/TCP 502): DI 0–11 from discrete input 0
    /// (loop DI0, open limit DI1, closed limit DI2); DO 0–5 are the coils at
    /// 0-based offset 16–21 (OPEN DO0 = 16, CLOSE DO1 = 17, STOP DO2 = 18).
    ///
    /// Off-by-one trap: the manual numbers DO0 as "00017", which is the
    /// 1-based register number; on the wire it is offset 16 (`0x10`). A
    /// manual example that writes `0x11` for DO0 mixes the two; verify on
    /// hardware.
    Adam6050,
    /// Addresses given one by one in the configuration.
    Custom,
}

impl Preset {
    /// Every preset with its configuration name.
    pub const ALL: [(&'static str, Preset); 3] = [
        ("waveshare-rtu-relay", Preset::WaveshareRtuRelay),
        ("adam-6050", Preset::Adam6050),
        ("custom", Preset::Custom),
    ];

    /// Parses a configuration name (`waveshare-rtu-relay`, `adam-6050`,
    /// `custom`).
    pub fn from_name(name: &str) -> Option<Preset> {
        Self::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, p)| *p)
    }

    /// The preset's configuration name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("custom", |(n, _)| n)
    }

    /// The preset's register map, or `None` for [`Preset::Custom`].
    pub fn map(self) -> Option<RegisterMap> {
        let (coil_base, input_base) = match self {
            Preset::WaveshareRtuRelay => (0, 0),
            Preset::Adam6050 => (16, 0),
            Preset::Custom => return None,
        };
        Some(RegisterMap {
            open_coil: coil_base,
            close_coil: coil_base + 1,
            stop_coil: Some(coil_base + 2),
            pulse: Duration::from_millis(500),
            loop_detector: DigitalInput::high(input_base),
            open_limit: Some(DigitalInput::high(input_base + 1)),
            closed_limit: Some(DigitalInput::high(input_base + 2)),
        })
    }
}

/// Base address of the Waveshare self-timed "flash on" command.
pub const WAVESHARE_FLASH_ON_BASE: u16 = 0x0200;

/// Why a value cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// A flash time that is zero or does not fit the register.
    #[error("flash time {0:?} is not 100 ms to 6553.5 s")]
    FlashTime(Duration),
    /// A relay channel outside 0–255.
    #[error("relay channel {0} out of range")]
    Channel(u16),
}

/// The request PDU (function code and data, without slave address and CRC)
/// of a Waveshare "flash on": relay `channel` closes for `time`, rounded
/// down to 100 ms, and opens by itself.
pub fn waveshare_flash_pdu(channel: u16, time: Duration) -> Result<[u8; 5], MapError> {
    if channel > 0xFF {
        return Err(MapError::Channel(channel));
    }
    let tenths = u16::try_from(time.as_millis() / 100).map_err(|_| MapError::FlashTime(time))?;
    if tenths == 0 {
        return Err(MapError::FlashTime(time));
    }
    let [a_hi, a_lo] = (WAVESHARE_FLASH_ON_BASE + channel).to_be_bytes();
    let [v_hi, v_lo] = tenths.to_be_bytes();
    Ok([0x05, a_hi, a_lo, v_hi, v_lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_through_their_names() {
        for (name, preset) in Preset::ALL {
            assert_eq!(Preset::from_name(name), Some(preset));
            assert_eq!(preset.name(), name);
        }
        assert_eq!(
            Preset::from_name("ADAM-6050"),
            Some(Preset::Adam6050),
            "case-insensitive"
        );
        assert_eq!(Preset::from_name("adam6050"), None);
        assert_eq!(Preset::Custom.map(), None);
    }

    #[test]
    fn adam_6050_outputs_start_at_offset_16_not_17() {
        let map = Preset::Adam6050.map().expect("a map");
        assert_eq!(map.open_coil, 16, "DO0 = register 00017 = offset 16");
        assert_eq!(map.coils().collect::<Vec<_>>(), vec![16, 17, 18]);
        assert_eq!(map.input_span(), (0, 3));
    }

    #[test]
    fn waveshare_preset_uses_relays_0_to_2_and_inputs_0_to_2() {
        let map = Preset::WaveshareRtuRelay.map().expect("a map");
        assert_eq!(map.coils().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(map.loop_detector, DigitalInput::high(0));
    }

    #[test]
    fn input_levels_honour_polarity_and_the_block_offset() {
        let low = DigitalInput {
            address: 5,
            active_low: true,
        };
        let bits = [false, true, false];
        assert_eq!(RegisterMap::level(low, 4, &bits), Some(false));
        assert_eq!(RegisterMap::level(low, 5, &bits), Some(true));
        assert_eq!(RegisterMap::level(DigitalInput::high(9), 5, &bits), None);
        assert_eq!(RegisterMap::level(DigitalInput::high(1), 5, &bits), None);
    }

    #[test]
    fn flash_pdu_rejects_times_that_do_not_fit() {
        assert_eq!(
            waveshare_flash_pdu(0, Duration::from_millis(50)),
            Err(MapError::FlashTime(Duration::from_millis(50)))
        );
        assert!(waveshare_flash_pdu(0, Duration::from_secs(7000)).is_err());
        assert_eq!(
            waveshare_flash_pdu(300, Duration::from_secs(1)),
            Err(MapError::Channel(300))
        );
    }
}
