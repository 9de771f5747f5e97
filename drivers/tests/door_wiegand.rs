//! Wiegand: the decoder against published vectors, parity and length
//! errors, the W34 card mapping, and the reader driver fed by the
//! simulator's timed edges.

use std::time::Duration;

use drivers::TestContext;
use drivers::command::{Command, CommandOutcome, CommandRequest};
use drivers::contract::{DriverContext, Inbound};
use drivers::door::wiegand::{
    CardMapping, WiegandConfig, WiegandDecoder, WiegandError, decode, encode_w26, encode_w34,
    parse_bits,
};
use drivers::door::wiegand_driver::WiegandReader;
use drivers::sim::door::WiegandSim;
use drivers::{DeviceEvent, Driver};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const VECTORS: &str = include_str!("data/access/wiegand/w26_test_vectors.txt");

/// `(bits, facility, card)` rows of the vector file that state FC and CN.
fn vectors() -> Vec<(Vec<bool>, u32, u64)> {
    VECTORS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let bits = parse_bits(words.next()?)?;
            let fc = words.next()?.strip_prefix("FC=")?.parse().ok()?;
            let cn = words.next()?.strip_prefix("CN=")?.parse().ok()?;
            Some((bits, fc, cn))
        })
        .collect()
}

#[test]
fn wiegand_w26_decodes_the_published_vectors() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 2, "vector file changed shape");
    for (bits, fc, cn) in vectors {
        let card = decode(&bits, &WiegandConfig::default()).expect("valid frame");
        assert_eq!(card.format, "w26");
        assert_eq!(card.facility, Some(fc));
        assert_eq!(card.card, cn);
    }
}

#[test]
fn wiegand_w26_uid_mapping_gives_the_24_bit_payload() {
    let config = WiegandConfig {
        w26: CardMapping::Uid,
        ..WiegandConfig::default()
    };
    for (text, payload) in [
        ("00100010010100010010011111", 4_497_999),
        ("00100010011110010110110101", 4_518_618),
    ] {
        let bits = parse_bits(text).expect("bits");
        let card = decode(&bits, &config).expect("valid");
        assert_eq!((card.card, card.facility), (payload, None));
    }
}

#[test]
fn parity_error_in_either_half_rejects_a_w26_frame() {
    let good = parse_bits("00101101000000001010001000").expect("bits");
    let config = WiegandConfig::default();
    let mut even = good.clone();
    even[3] = !even[3];
    assert_eq!(decode(&even, &config), Err(WiegandError::EvenParity("w26")));
    let mut odd = good.clone();
    odd[20] = !odd[20];
    assert_eq!(decode(&odd, &config), Err(WiegandError::OddParity("w26")));
    let mut trailing = good;
    trailing[25] = !trailing[25];
    assert_eq!(
        decode(&trailing, &config),
        Err(WiegandError::OddParity("w26"))
    );
}

#[test]
fn parity_error_rejects_a_w34_frame() {
    let mut bits = encode_w34(0xDEAD_BEEF);
    bits[0] = !bits[0];
    assert_eq!(
        decode(&bits, &WiegandConfig::default()),
        Err(WiegandError::EvenParity("w34"))
    );
}

#[test]
fn wiegand_w34_maps_to_a_uid_or_to_facility_and_card() {
    let bits = encode_w34(0x1234_5678);
    let uid = decode(&bits, &WiegandConfig::default()).expect("valid");
    assert_eq!(
        (uid.format, uid.card, uid.facility),
        ("w34", 0x1234_5678, None)
    );
    let config = WiegandConfig {
        w34: CardMapping::FacilityCard,
        ..WiegandConfig::default()
    };
    let fc = decode(&bits, &config).expect("valid");
    assert_eq!((fc.card, fc.facility), (0x5678, Some(0x1234)));
}

#[test]
fn wiegand_wrong_length_is_rejected() {
    let bits = encode_w26(1, 1);
    assert_eq!(
        decode(&bits[..25], &WiegandConfig::default()),
        Err(WiegandError::Length(25))
    );
}

#[test]
fn wiegand_decoder_splits_frames_by_edge_timestamps() {
    let mut decoder = WiegandDecoder::new(WiegandConfig::default());
    let mut t = Duration::from_secs(1);
    let mut frames = Vec::new();
    for bits in [encode_w26(90, 324), encode_w26(68, 41551)] {
        for bit in bits {
            frames.extend(decoder.bit(bit, t));
            t += Duration::from_millis(2);
        }
        t += Duration::from_millis(6); // just past the 5 ms gap
    }
    frames.extend(decoder.tick(t));
    let cards: Vec<_> = frames.into_iter().map(|f| f.expect("valid").card).collect();
    assert_eq!(cards, vec![324, 41551]);
}

fn context() -> (
    DriverContext,
    mpsc::Receiver<Inbound>,
    mpsc::Sender<CommandRequest>,
    CancellationToken,
) {
    let TestContext {
        ctx,
        events: rx,
        commands: cmd_tx,
        cancel,
        ..
    } = DriverContext::for_test("reader-1", 32);
    (ctx, rx, cmd_tx, cancel)
}

async fn next_event(rx: &mut mpsc::Receiver<Inbound>) -> DeviceEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within the deadline")
        .expect("driver alive")
        .event
}

#[tokio::test]
async fn wiegand_reader_turns_simulated_swipes_into_card_reads_and_rejections() {
    let (d0, d1, mut sim) = WiegandSim::new();
    let (mut ctx, mut rx, cmd_tx, cancel) = context();
    let mut reader = WiegandReader::new(d0, d1, WiegandConfig::default()).for_door(Some(1));
    let task = tokio::spawn(async move { reader.run(&mut ctx).await });

    sim.send_w26(90, 324);
    assert_eq!(
        next_event(&mut rx).await,
        DeviceEvent::CardRead {
            card: "324".into(),
            format: "w26".into(),
            facility: Some(90),
            door: Some(1),
            controller: None,
        }
    );

    // Two frames back to back: the edge timestamps separate them.
    sim.send_w34(0xCAFE_F00D);
    let mut bad = encode_w26(1, 2);
    bad[5] = !bad[5];
    sim.send_bits(&bad);
    assert_eq!(
        next_event(&mut rx).await,
        DeviceEvent::CardRead {
            card: 0xCAFE_F00Du32.to_string(),
            format: "w34".into(),
            facility: None,
            door: Some(1),
            controller: None,
        }
    );
    assert_eq!(
        next_event(&mut rx).await,
        DeviceEvent::ReadRejected {
            reason: "w26: even parity error".into(),
            count: 1,
        }
    );

    let (request, outcome) = CommandRequest::new(Command::PulseDoor {
        door: None,
        duration_ms: None,
    });
    cmd_tx.send(request).await.expect("inbox");
    assert_eq!(
        outcome.await.expect("answered"),
        CommandOutcome::Unsupported
    );

    cancel.cancel();
    assert_eq!(task.await.expect("joined"), Ok(()));
}
