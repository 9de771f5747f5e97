//! Wiegand frame codec (pure: no I/O, no clock of its own).
//!
//! The decoder is fed timed edges from the D0 and D1 lines: a falling edge on
//! D0 is a `0` bit, a falling edge on D1 a `1` (the lines idle high and are
//! pulled low for about 50 µs per bit, one bit every ~2 ms). A frame ends
//! after a configurable silence (default 5 ms), judged from the edge
//! timestamps when the next edge arrives late, or by the caller's tick
//! ([`WiegandDecoder::tick`]) when no edge follows.
//!
//! Formats: W26 (HID H10301: even parity over bits 1–13, 8-bit facility,
//! 16-bit card, odd parity over bits 14–26) and W34 (HID H10306: even parity
//! over the next 16 bits, 16-bit facility, 16-bit card, odd parity over the
//! previous 16). Many Chinese readers carry a 32-bit card UID in W34 (and its
//! low 24 bits in W26), so how the data bits map to a card number is
//! configurable ([`CardMapping`]). A frame with bad parity or an unknown
//! length is a [`WiegandError`], never a credential.
//!
//! The encoder ([`encode_w26`], [`encode_w34`]) exists for the simulators.

use std::time::Duration;

/// How the data bits of a frame become a card number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CardMapping {
    /// Facility code and card number (HID style): W26 8 + 16, W34 16 + 16.
    #[default]
    FacilityCard,
    /// All data bits as one number (W26: 24-bit, W34: the 32-bit card UID),
    /// no facility code. Common for Chinese IC/ID card readers.
    Uid,
}

/// Decoder configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WiegandConfig {
    /// Silence that ends a frame, in microseconds.
    pub frame_gap_us: u64,
    /// Mapping for 26-bit frames.
    pub w26: CardMapping,
    /// Mapping for 34-bit frames.
    pub w34: CardMapping,
}

impl Default for WiegandConfig {
    fn default() -> Self {
        Self {
            frame_gap_us: 5_000,
            w26: CardMapping::FacilityCard,
            w34: CardMapping::Uid,
        }
    }
}

impl WiegandConfig {
    /// The frame gap as a duration.
    pub fn frame_gap(&self) -> Duration {
        Duration::from_micros(self.frame_gap_us)
    }
}

/// A decoded credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiegandCard {
    /// Frame format: `w26` or `w34`.
    pub format: &'static str,
    /// Card number (per the configured mapping).
    pub card: u64,
    /// Facility code, under [`CardMapping::FacilityCard`].
    pub facility: Option<u32>,
}

/// Why a frame is not a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WiegandError {
    /// Neither 26 nor 34 bits.
    #[error("wiegand: unsupported frame length {0} bits")]
    Length(usize),
    /// The leading even-parity bit does not match.
    #[error("{0}: even parity error")]
    EvenParity(&'static str),
    /// The trailing odd-parity bit does not match.
    #[error("{0}: odd parity error")]
    OddParity(&'static str),
}

/// The outcome of one complete frame.
pub type WiegandFrame = Result<WiegandCard, WiegandError>;

/// Which data line an edge came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLine {
    /// D0 (green): a pulse is a `0`.
    D0,
    /// D1 (white): a pulse is a `1`.
    D1,
}

/// Longest frame the decoder collects; longer bursts are noise.
const MAX_BITS: usize = 64;

/// Accumulates bits into frames.
#[derive(Debug, Clone)]
pub struct WiegandDecoder {
    config: WiegandConfig,
    bits: Vec<bool>,
    overflow: bool,
    last_bit_at: Option<Duration>,
}

impl WiegandDecoder {
    /// A decoder with `config`.
    pub fn new(config: WiegandConfig) -> Self {
        Self {
            config,
            bits: Vec::with_capacity(MAX_BITS),
            overflow: false,
            last_bit_at: None,
        }
    }

    /// Feeds one edge. Only falling edges (the line pulled low) carry bits.
    /// Returns the previous frame if this edge came after the frame gap.
    ///
    /// The edge's `falling` is the *electrical* sense: with lines configured
    /// `active_low`, a logical rising edge is an electrical fall.
    pub fn edge(&mut self, line: DataLine, falling: bool, at: Duration) -> Option<WiegandFrame> {
        if !falling {
            return None;
        }
        self.bit(line == DataLine::D1, at)
    }

    /// Feeds one bit received at `at`. Returns the previous frame if this
    /// bit came after the frame gap.
    pub fn bit(&mut self, one: bool, at: Duration) -> Option<WiegandFrame> {
        let finished = self.tick(at);
        if self.bits.len() < MAX_BITS {
            self.bits.push(one);
        } else {
            self.overflow = true;
        }
        self.last_bit_at = Some(at);
        finished
    }

    /// Ends the pending frame if the gap has passed at `now`.
    pub fn tick(&mut self, now: Duration) -> Option<WiegandFrame> {
        let last = self.last_bit_at?;
        if now.saturating_sub(last) >= self.config.frame_gap() {
            self.flush()
        } else {
            None
        }
    }

    /// When the pending frame ends if no bit follows (edge-clock time).
    pub fn deadline(&self) -> Option<Duration> {
        self.last_bit_at.map(|t| t + self.config.frame_gap())
    }

    /// Ends the pending frame now, whatever the time.
    pub fn flush(&mut self) -> Option<WiegandFrame> {
        self.last_bit_at.take()?;
        let bits = std::mem::take(&mut self.bits);
        if std::mem::take(&mut self.overflow) {
            return Some(Err(WiegandError::Length(MAX_BITS + 1)));
        }
        Some(decode(&bits, &self.config))
    }
}

/// Decodes a complete frame (bits in transmission order).
pub fn decode(bits: &[bool], config: &WiegandConfig) -> WiegandFrame {
    let (format, mapping, facility_bits) = match bits.len() {
        26 => ("w26", config.w26, 8),
        34 => ("w34", config.w34, 16),
        n => return Err(WiegandError::Length(n)),
    };
    let n = bits.len();
    let half = n / 2;
    // Even parity over the first half (parity bit included), odd over the second.
    if odd(&bits[..half]) {
        return Err(WiegandError::EvenParity(format));
    }
    if !odd(&bits[half..]) {
        return Err(WiegandError::OddParity(format));
    }
    let data = &bits[1..n - 1];
    let card = match mapping {
        CardMapping::Uid => WiegandCard {
            format,
            card: number(data),
            facility: None,
        },
        CardMapping::FacilityCard => WiegandCard {
            format,
            card: number(&data[facility_bits..]),
            facility: u32::try_from(number(&data[..facility_bits])).ok(),
        },
    };
    Ok(card)
}

/// Whether `bits` hold an odd number of ones.
fn odd(bits: &[bool]) -> bool {
    bits.iter().filter(|b| **b).count() & 1 == 1
}

fn number(bits: &[bool]) -> u64 {
    bits.iter().fold(0, |acc, b| (acc << 1) | u64::from(*b))
}

fn with_parity(data: Vec<bool>) -> Vec<bool> {
    let half = data.len() / 2;
    let even = odd(&data[..half]);
    let odd = !odd(&data[half..]);
    let mut bits = Vec::with_capacity(data.len() + 2);
    bits.push(even);
    bits.extend(data);
    bits.push(odd);
    bits
}

fn to_bits(value: u64, width: usize) -> impl Iterator<Item = bool> {
    (0..width).rev().map(move |i| (value >> i) & 1 == 1)
}

/// Encodes a W26 frame with facility code `facility` (8 bits) and card
/// number `card` (16 bits); higher bits are cut off.
pub fn encode_w26(facility: u8, card: u16) -> Vec<bool> {
    let data = to_bits(u64::from(facility), 8)
        .chain(to_bits(u64::from(card), 16))
        .collect();
    with_parity(data)
}

/// Encodes a W34 frame carrying the 32 data bits `data` (a card UID, or
/// facility << 16 | card).
pub fn encode_w34(data: u32) -> Vec<bool> {
    with_parity(to_bits(u64::from(data), 32).collect())
}

/// Parses a bit string such as `"0010…"` (for tests and tools); `None` on
/// any other character.
pub fn parse_bits(text: &str) -> Option<Vec<bool>> {
    text.chars()
        .map(|c| match c {
            '0' => Some(false),
            '1' => Some(true),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn decoder() -> WiegandDecoder {
        WiegandDecoder::new(WiegandConfig::default())
    }

    #[test]
    fn wiegand_w26_encoder_matches_the_published_vector() {
        let bits = parse_bits("00101101000000001010001000").expect("bits");
        assert_eq!(encode_w26(90, 324), bits);
    }

    #[test]
    fn wiegand_decoder_ends_a_frame_on_the_tick_after_the_gap() {
        let mut d = decoder();
        let bits = encode_w26(90, 324);
        for (i, b) in bits.iter().enumerate() {
            assert_eq!(d.bit(*b, MS * 2 * i as u32), None);
        }
        let last = MS * 50;
        assert_eq!(d.deadline(), Some(last + MS * 5));
        assert_eq!(d.tick(last + MS * 4), None, "still inside the gap");
        let card = d.tick(last + MS * 5).expect("frame").expect("valid");
        assert_eq!(card.card, 324);
        assert_eq!(card.facility, Some(90));
        assert_eq!(d.tick(last + MS * 100), None, "only once");
    }

    #[test]
    fn wiegand_late_edge_closes_the_previous_frame() {
        let mut d = decoder();
        for (i, b) in encode_w26(1, 2).iter().enumerate() {
            d.bit(*b, MS * 2 * i as u32);
        }
        let next = d.bit(true, Duration::from_secs(1)).expect("previous frame");
        assert_eq!(next.expect("valid").card, 2);
        // The new bit started a frame of its own.
        assert_eq!(d.flush(), Some(Err(WiegandError::Length(1))));
    }

    #[test]
    fn wiegand_rising_edges_carry_no_bits() {
        let mut d = decoder();
        assert_eq!(d.edge(DataLine::D1, false, MS), None);
        assert_eq!(d.flush(), None);
        d.edge(DataLine::D1, true, MS);
        assert_eq!(d.flush(), Some(Err(WiegandError::Length(1))));
    }

    #[test]
    fn wiegand_overlong_burst_is_rejected() {
        let mut d = decoder();
        for i in 0..100u32 {
            d.bit(true, Duration::from_micros(u64::from(i) * 100));
        }
        assert_eq!(d.flush(), Some(Err(WiegandError::Length(65))));
    }
}
