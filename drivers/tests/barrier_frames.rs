//! The Waveshare frames we encode, checked against the vendor frames quoted
//! in `data/barrier/waveshare_modbus_rtu_relay_frames.txt`.

use std::time::Duration;

use drivers::barrier::waveshare_flash_pdu;

const FRAMES: &str = include_str!("data/barrier/waveshare_modbus_rtu_relay_frames.txt");
const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_MODBUS);

/// The hex bytes of the fixture line that contains `marker`.
fn frame(marker: &str) -> Vec<u8> {
    let line = FRAMES
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no fixture line with {marker:?}"));
    let hex = line.split(':').nth(1).unwrap_or(line);
    hex.split_whitespace()
        .map_while(|h| u8::from_str_radix(h, 16).ok())
        .collect()
}

/// A full RTU frame: slave address, PDU, CRC-16/Modbus low byte first.
fn rtu(slave: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = vec![slave];
    out.extend_from_slice(pdu);
    let crc = CRC.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn barrier_flash_on_pdu_matches_the_waveshare_frames() {
    let relay0 = frame("Relay 0 flash on");
    assert_eq!(relay0.len(), 8, "{relay0:02X?}");
    let pdu = waveshare_flash_pdu(0, Duration::from_millis(700)).expect("encodes");
    assert_eq!(&relay0[1..6], &pdu[..], "fixture minus address and CRC");
    assert_eq!(rtu(1, &pdu), relay0);

    let relay1 = frame("Relay 1 flash on");
    let pdu = waveshare_flash_pdu(1, Duration::from_millis(850)).expect("encodes");
    assert_eq!(rtu(1, &pdu), relay1, "850 ms rounds down to 8 × 100 ms");
}

#[test]
fn barrier_coil_frames_of_the_fixture_carry_valid_crcs() {
    for ch in 0..8 {
        for (state, value) in [("on", [0xFF, 0x00]), ("off", [0x00, 0x00])] {
            let expected = frame(&format!("{ch}_{state}:"));
            let pdu = [0x05, 0x00, ch, value[0], value[1]];
            assert_eq!(rtu(1, &pdu), expected, "relay {ch} {state}");
        }
    }
}
