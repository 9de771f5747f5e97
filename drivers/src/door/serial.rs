//! Serial (RS-485 / RS-232) card-reader framing (pure: bytes in, frames out).
//!
//! Two framings cover the common readers:
//! - [`Framing::AsciiHex`]: the card number as hex digits, terminated by CR
//!   and/or LF (`"00AB12CD\r\n"`);
//! - [`Framing::Binary`]: `STX`, a fixed number of data bytes (the card
//!   number, big-endian), one checksum byte over the data (XOR or 8-bit
//!   sum), `ETX`.
//!
//! [`SerialDecoder::push`] accepts reads of any size (frames split across
//! reads, several frames in one read) and gives the same frames however the
//! byte stream is split: a UART at 9600 baud hands over a byte at a time.
//! Noise before a frame is skipped; a frame that fails its checksum or
//! framing is reported as a [`SerialError`] and never as a card. An ASCII
//! line that grows past [`MAX_LINE`] bytes is reported once and everything
//! up to its terminator is discarded: a fragment of a line is never decoded.
//! Card numbers come out in decimal.

/// The checksum of a binary frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// XOR of the data bytes.
    Xor,
    /// Sum of the data bytes, modulo 256.
    Sum,
}

impl Checksum {
    /// The checksum of `data`.
    pub fn of(self, data: &[u8]) -> u8 {
        match self {
            Checksum::Xor => data.iter().fold(0, |acc, b| acc ^ b),
            Checksum::Sum => data.iter().fold(0u8, |acc, b| acc.wrapping_add(*b)),
        }
    }
}

/// How a reader frames a card number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Hex digits terminated by CR and/or LF.
    AsciiHex,
    /// `stx`, `data_len` bytes, checksum, `etx`.
    Binary {
        /// Start byte (usually 0x02).
        stx: u8,
        /// End byte (usually 0x03).
        etx: u8,
        /// Number of data bytes (1–8).
        data_len: usize,
        /// Checksum over the data bytes.
        checksum: Checksum,
    },
}

/// Longest ASCII line accepted (a 64-bit card is 16 hex digits).
pub const MAX_LINE: usize = 32;

/// Why a frame is not a card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// A line that is not hex digits.
    #[error("serial: not a hex card number: {0:?}")]
    NotHex(String),
    /// A line longer than any card number; the rest of it, up to its
    /// terminator, is discarded. Carries the limit it passed.
    #[error("serial: line longer than {0} bytes; discarded up to its terminator")]
    LineTooLong(usize),
    /// The checksum byte does not match the data.
    #[error("serial: bad checksum (got {got:#04x}, expected {expected:#04x})")]
    BadChecksum {
        /// Received.
        got: u8,
        /// Computed.
        expected: u8,
    },
    /// No end byte where it belongs.
    #[error("serial: frame not terminated (got {0:#04x} instead of ETX)")]
    Unterminated(u8),
    /// The framing itself cannot work.
    #[error("serial: binary data_len must be 1 to 8, not {0}")]
    BadDataLen(usize),
}

/// One decoded frame: a card number in decimal, or why not.
pub type SerialFrame = Result<String, SerialError>;

/// Incremental frame decoder.
#[derive(Debug, Clone)]
pub struct SerialDecoder {
    framing: Framing,
    buf: Vec<u8>,
    /// An overlong ASCII line was reported: drop bytes up to its terminator.
    discarding: bool,
}

impl SerialDecoder {
    /// A decoder for `framing`.
    pub fn new(framing: Framing) -> Result<Self, SerialError> {
        if let Framing::Binary { data_len, .. } = framing
            && !(1..=8).contains(&data_len)
        {
            return Err(SerialError::BadDataLen(data_len));
        }
        Ok(Self {
            framing,
            buf: Vec::new(),
            discarding: false,
        })
    }

    /// Forgets a partial frame (after a reconnect).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    /// Feeds bytes as read; returns every frame they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SerialFrame> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        match self.framing.clone() {
            Framing::AsciiHex => self.ascii(&mut frames),
            Framing::Binary {
                stx,
                etx,
                data_len,
                checksum,
            } => self.binary(stx, etx, data_len, checksum, &mut frames),
        }
        frames
    }

    fn ascii(&mut self, frames: &mut Vec<SerialFrame>) {
        let terminator = |b: &u8| *b == b'\r' || *b == b'\n';
        loop {
            let end = self.buf.iter().position(terminator);
            if self.discarding {
                // The tail of an overlong line: never a card of its own.
                match end {
                    Some(end) => {
                        self.buf.drain(..=end);
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        self.buf.clear();
                        return;
                    }
                }
            }
            // A line is too long as soon as it passes the limit, whether
            // its terminator came in the same read or not.
            if end.unwrap_or(self.buf.len()) > MAX_LINE {
                frames.push(Err(SerialError::LineTooLong(MAX_LINE)));
                self.discarding = true;
                continue;
            }
            let Some(end) = end else { return };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            let text = text.trim();
            if text.is_empty() {
                continue; // the LF of a CR LF pair, or a blank line
            }
            frames.push(parse_hex(text));
        }
    }

    fn binary(
        &mut self,
        stx: u8,
        etx: u8,
        data_len: usize,
        checksum: Checksum,
        frames: &mut Vec<SerialFrame>,
    ) {
        let frame_len = data_len + 3;
        loop {
            // Skip noise up to the next start byte.
            match self.buf.iter().position(|b| *b == stx) {
                Some(start) => {
                    self.buf.drain(..start);
                }
                None => {
                    self.buf.clear();
                    return;
                }
            }
            if self.buf.len() < frame_len {
                return;
            }
            let end = self.buf[frame_len - 1];
            if end != etx {
                // Not a frame after all: resynchronise after this start byte.
                frames.push(Err(SerialError::Unterminated(end)));
                self.buf.drain(..1);
                continue;
            }
            let frame: Vec<u8> = self.buf.drain(..frame_len).collect();
            let data = &frame[1..=data_len];
            let got = frame[data_len + 1];
            let expected = checksum.of(data);
            frames.push(if got == expected {
                Ok(data
                    .iter()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
                    .to_string())
            } else {
                Err(SerialError::BadChecksum { got, expected })
            });
        }
    }
}

fn parse_hex(text: &str) -> SerialFrame {
    if text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SerialError::NotHex(text.to_owned()));
    }
    u64::from_str_radix(text, 16)
        .map(|n| n.to_string())
        .map_err(|_| SerialError::NotHex(text.to_owned()))
}

/// Encodes `card` as one frame of `framing` (for simulators). Binary frames
/// keep the low `data_len` bytes.
pub fn encode(framing: &Framing, card: u64) -> Vec<u8> {
    match *framing {
        Framing::AsciiHex => format!("{card:08X}\r\n").into_bytes(),
        Framing::Binary {
            stx,
            etx,
            data_len,
            checksum,
        } => {
            let bytes = card.to_be_bytes();
            let data = &bytes[8 - data_len.clamp(1, 8)..];
            let mut frame = vec![stx];
            frame.extend_from_slice(data);
            frame.push(checksum.of(data));
            frame.push(etx);
            frame
        }
    }
}
