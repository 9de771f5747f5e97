//! Registers ⇄ values for one point: data type, byte and word order, scale
//! and offset. Pure.

use crate::event::Reading;
use crate::points::table::{DataType, Point, WordOrder};

/// Decodes a bit-table point (coil, discrete input).
pub fn decode_bit(bit: bool) -> Reading {
    Reading::Bool(bit)
}

/// Puts `words` into big-endian byte order (`A B C D …`) according to
/// `order`.
fn ordered_bytes(words: &[u16], order: WordOrder) -> Vec<u8> {
    let mut out = Vec::with_capacity(words.len() * 2);
    let mut push = |w: &u16| {
        let bytes = if order.bytes_swapped() {
            w.to_le_bytes()
        } else {
            w.to_be_bytes()
        };
        out.extend_from_slice(&bytes);
    };
    if order.words_swapped() {
        words.iter().rev().for_each(&mut push);
    } else {
        words.iter().for_each(&mut push);
    }
    out
}

/// The inverse of [`ordered_bytes`].
fn ordered_words(bytes: &[u8], order: WordOrder) -> Vec<u16> {
    let mut words: Vec<u16> = bytes
        .chunks(2)
        .map(|c| {
            let pair = [c[0], c.get(1).copied().unwrap_or(0)];
            if order.bytes_swapped() {
                u16::from_le_bytes(pair)
            } else {
                u16::from_be_bytes(pair)
            }
        })
        .collect();
    if order.words_swapped() {
        words.reverse();
    }
    words
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&bytes[..N]);
    a
}

/// Decodes a register-table point from its registers (`words` holds at
/// least `point.width()` registers, starting at the point's address).
/// Returns `None` when too few registers were given.
pub fn decode_registers(point: &Point, words: &[u16]) -> Option<Reading> {
    let words = words.get(..usize::from(point.data_type.width()))?;
    let raw = match point.data_type {
        DataType::Bool => return Some(Reading::Bool(words[0] != 0)),
        DataType::Bit(b) => return Some(Reading::Bool(words[0] >> b & 1 == 1)),
        DataType::Str(len) => {
            let order = if point.order.bytes_swapped() {
                WordOrder::Badc
            } else {
                WordOrder::Abcd
            };
            let mut bytes = ordered_bytes(words, order);
            bytes.truncate(usize::from(len));
            let text = String::from_utf8_lossy(&bytes);
            return Some(Reading::Text(text.trim_end_matches(['\0', ' ']).to_owned()));
        }
        t => {
            let b = ordered_bytes(words, point.order);
            match t {
                DataType::U16 => f64::from(u16::from_be_bytes(array(&b))),
                DataType::I16 => f64::from(i16::from_be_bytes(array(&b))),
                DataType::U32 => f64::from(u32::from_be_bytes(array(&b))),
                DataType::I32 => f64::from(i32::from_be_bytes(array(&b))),
                DataType::F32 => f64::from(f32::from_be_bytes(array(&b))),
                DataType::F64 => f64::from_be_bytes(array(&b)),
                // Counters past 2^53 lose their last digits as f64; a
                // gateway reports them as numbers all the same.
                #[allow(clippy::cast_precision_loss)]
                DataType::U64 => u64::from_be_bytes(array(&b)) as f64,
                #[allow(clippy::cast_precision_loss)]
                DataType::I64 => i64::from_be_bytes(array(&b)) as f64,
                _ => return None,
            }
        }
    };
    Some(Reading::Number(raw * point.scale + point.offset))
}

/// What to write for a point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encoded {
    /// One coil.
    Coil(bool),
    /// Registers from the point's address.
    Registers(Vec<u16>),
}

/// Why a value cannot be written to a point.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// The point is read-only.
    #[error("point {0:?} is not writable")]
    ReadOnly(String),
    /// The value is outside the point's configured limits.
    #[error("{value} is outside {min}..={max}")]
    OutOfRange {
        /// Asked for.
        value: f64,
        /// Lowest allowed.
        min: f64,
        /// Highest allowed.
        max: f64,
    },
    /// The raw value does not fit the data type.
    #[error("{0} does not fit the register type")]
    DoesNotFit(f64),
}

/// Encodes `value` (engineering units; booleans as 0/1) for writing to
/// `point`, checking the point's write limits first.
pub fn encode(point: &Point, value: f64) -> Result<Encoded, EncodeError> {
    let limits = point
        .write
        .ok_or_else(|| EncodeError::ReadOnly(point.name.clone()))?;
    if !value.is_finite() || value < limits.min || value > limits.max {
        return Err(EncodeError::OutOfRange {
            value,
            min: limits.min,
            max: limits.max,
        });
    }
    if point.kind.is_bits() {
        return Ok(Encoded::Coil(value != 0.0));
    }
    let raw = (value - point.offset) / point.scale;
    let fit = |lo: f64, hi: f64| {
        let r = raw.round();
        (lo..=hi)
            .contains(&r)
            .then_some(r)
            .ok_or(EncodeError::DoesNotFit(raw))
    };
    // The range checks above make the integer casts exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bytes: Vec<u8> = match point.data_type {
        DataType::Bool => return Ok(Encoded::Registers(vec![u16::from(value != 0.0)])),
        DataType::U16 => (fit(0.0, 65_535.0)? as u16).to_be_bytes().to_vec(),
        DataType::I16 => (fit(-32_768.0, 32_767.0)? as i16).to_be_bytes().to_vec(),
        DataType::U32 => (fit(0.0, 4_294_967_295.0)? as u32).to_be_bytes().to_vec(),
        DataType::I32 => (fit(-2_147_483_648.0, 2_147_483_647.0)? as i32)
            .to_be_bytes()
            .to_vec(),
        DataType::U64 => (fit(0.0, 1.8e19)? as u64).to_be_bytes().to_vec(),
        DataType::I64 => (fit(-9.2e18, 9.2e18)? as i64).to_be_bytes().to_vec(),
        DataType::F32 => (raw as f32).to_be_bytes().to_vec(),
        DataType::F64 => raw.to_be_bytes().to_vec(),
        DataType::Bit(_) | DataType::Str(_) => {
            return Err(EncodeError::ReadOnly(point.name.clone()));
        }
    };
    Ok(Encoded::Registers(ordered_words(&bytes, point.order)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::table::{RegisterKind, WriteLimits};

    fn point(t: DataType, order: WordOrder) -> Point {
        let mut p = Point::new("p", RegisterKind::Holding, 0, t);
        p.order = order;
        p
    }

    #[test]
    fn every_word_order_of_a_float_decodes_to_the_same_value() {
        // 123.456 as f32 is 0x42F6E979: A=42 B=F6 C=E9 D=79.
        let cases = [
            (WordOrder::Abcd, [0x42F6, 0xE979]),
            (WordOrder::Cdab, [0xE979, 0x42F6]),
            (WordOrder::Badc, [0xF642, 0x79E9]),
            (WordOrder::Dcba, [0x79E9, 0xF642]),
        ];
        for (order, words) in cases {
            let Some(Reading::Number(v)) = decode_registers(&point(DataType::F32, order), &words)
            else {
                panic!("{order:?} decodes");
            };
            assert!((v - 123.456).abs() < 1e-4, "{order:?}: {v}");
        }
    }

    #[test]
    fn integers_strings_bits_scale_and_offset_decode() {
        let mut p = point(DataType::I16, WordOrder::Abcd);
        p.scale = 0.01;
        p.offset = 1.0;
        assert_eq!(
            decode_registers(&p, &[0xFF38]),
            Some(Reading::Number(-200.0 * 0.01 + 1.0))
        );
        let u64p = point(DataType::U64, WordOrder::Cdab);
        assert_eq!(
            decode_registers(&u64p, &[0x0004, 0x0003, 0x0002, 0x0001]),
            Some(Reading::Number(0x0001_0002_0003_0004_u64 as f64))
        );
        let i32p = point(DataType::I32, WordOrder::Dcba);
        assert_eq!(
            decode_registers(&i32p, &[0xFFFF, 0xFFFF]),
            Some(Reading::Number(-1.0))
        );
        let s = point(DataType::Str(5), WordOrder::Abcd);
        assert_eq!(
            decode_registers(&s, &[0x4142, 0x4344, 0x4500]),
            Some(Reading::Text("ABCDE".into()))
        );
        let s = point(DataType::Str(4), WordOrder::Badc);
        assert_eq!(
            decode_registers(&s, &[0x4241, 0x0043]),
            Some(Reading::Text("ABC".into()))
        );
        let bit = point(DataType::Bit(3), WordOrder::Abcd);
        assert_eq!(decode_registers(&bit, &[0b1000]), Some(Reading::Bool(true)));
        assert_eq!(
            decode_registers(&bit, &[0b0111]),
            Some(Reading::Bool(false))
        );
        assert_eq!(decode_registers(&u64p, &[1, 2]), None, "too short");
    }

    #[test]
    fn encode_round_trips_through_decode_and_checks_limits() {
        for order in [
            WordOrder::Abcd,
            WordOrder::Cdab,
            WordOrder::Badc,
            WordOrder::Dcba,
        ] {
            for t in [
                DataType::U16,
                DataType::I16,
                DataType::U32,
                DataType::I32,
                DataType::U64,
                DataType::I64,
                DataType::F32,
                DataType::F64,
            ] {
                let mut p = point(t, order);
                p.scale = 0.5;
                p.write = Some(WriteLimits {
                    min: -100.0,
                    max: 100.0,
                });
                let value = if matches!(t, DataType::U16 | DataType::U32 | DataType::U64) {
                    42.5
                } else {
                    -42.5
                };
                let Ok(Encoded::Registers(words)) = encode(&p, value) else {
                    panic!("{t:?} encodes");
                };
                assert_eq!(
                    decode_registers(&p, &words),
                    Some(Reading::Number(value)),
                    "{t:?} {order:?}"
                );
            }
        }
        let mut p = point(DataType::U16, WordOrder::Abcd);
        assert!(matches!(encode(&p, 1.0), Err(EncodeError::ReadOnly(_))));
        p.write = Some(WriteLimits {
            min: 0.0,
            max: 10.0,
        });
        assert!(matches!(
            encode(&p, 11.0),
            Err(EncodeError::OutOfRange { .. })
        ));
        assert!(matches!(
            encode(&p, f64::NAN),
            Err(EncodeError::OutOfRange { .. })
        ));
        p.write = Some(WriteLimits {
            min: -10.0,
            max: 10.0,
        });
        assert!(matches!(encode(&p, -1.0), Err(EncodeError::DoesNotFit(_))));
        let mut coil = Point::new("pump", RegisterKind::Coil, 3, DataType::Bool);
        coil.write = Some(WriteLimits { min: 0.0, max: 1.0 });
        assert_eq!(encode(&coil, 1.0), Ok(Encoded::Coil(true)));
    }
}
