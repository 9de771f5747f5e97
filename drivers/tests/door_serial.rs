//! Serial card readers: the frame decoder on byte vectors (split reads,
//! noise, bad checksums, bad lines), and the driver over a pseudo-terminal,
//! including losing the adapter and finding it again behind a stable link.

use std::time::Duration;

use drivers::TestContext;
use drivers::command::{Command, CommandOutcome, CommandRequest};
use drivers::contract::{DriverContext, HealthState, Inbound};
use drivers::door::serial::{Checksum, Framing, SerialDecoder, SerialError, encode};
use drivers::door::serial_driver::{SerialReader, SerialReaderConfig};
use drivers::sim::door::SerialReaderSim;
use drivers::{DeviceEvent, Driver};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

fn binary(checksum: Checksum) -> Framing {
    Framing::Binary {
        stx: 0x02,
        etx: 0x03,
        data_len: 4,
        checksum,
    }
}

#[test]
fn serial_ascii_lines_decode_across_split_reads() {
    let mut d = SerialDecoder::new(Framing::AsciiHex).expect("framing");
    assert!(d.push(b"00AB").is_empty(), "no terminator yet");
    assert_eq!(
        d.push(b"12CD\r\n0000007B\n"),
        vec![Ok("11211469".to_string()), Ok("123".to_string())]
    );
    assert_eq!(
        d.push(b"12G4\r\n"),
        vec![Err(SerialError::NotHex("12G4".into()))]
    );
    let long = [b'A'; 40];
    assert_eq!(d.push(&long), vec![Err(SerialError::LineTooLong(32))]);
    assert_eq!(d.push(b"\r\nFF\r"), vec![Ok("255".to_string())]);
}

/// 33 bytes of line noise, then what looks like the tail of a card line.
fn noise_then_fragment() -> Vec<u8> {
    let mut bytes = vec![b'7'; 33];
    bytes.extend_from_slice(b"0002711\r\n");
    bytes
}

#[test]
fn serial_ascii_overlong_line_is_discarded_up_to_its_terminator_byte_by_byte() {
    let mut whole = SerialDecoder::new(Framing::AsciiHex).expect("framing");
    let mut bytewise = SerialDecoder::new(Framing::AsciiHex).expect("framing");
    let stream = noise_then_fragment();
    let at_once = whole.push(&stream);
    let one_by_one: Vec<_> = stream.iter().flat_map(|b| bytewise.push(&[*b])).collect();
    assert_eq!(at_once, vec![Err(SerialError::LineTooLong(32))]);
    assert_eq!(one_by_one, at_once, "a fragment was decoded as a card");
    // The next line is read normally.
    assert_eq!(bytewise.push(b"2711\r\n"), vec![Ok("10001".to_string())]);
}

fn frames_of(framing: &Framing, reads: &[&[u8]]) -> Vec<drivers::door::serial::SerialFrame> {
    let mut decoder = SerialDecoder::new(framing.clone()).expect("framing");
    reads.iter().flat_map(|read| decoder.push(read)).collect()
}

/// Splits `bytes` at the given cut points (taken modulo its length).
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| if bytes.is_empty() { 0 } else { c % bytes.len() })
        .collect();
    points.sort_unstable();
    let mut reads = Vec::new();
    let mut from = 0;
    for point in points {
        reads.push(&bytes[from..point]);
        from = point;
    }
    reads.push(&bytes[from..]);
    reads
}

/// Bytes a noisy line carries: hex digits, terminators, frame bytes and
/// anything else, so that lines of every length and frames of every shape
/// come up.
fn line_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let byte = prop_oneof![
        4 => prop::sample::select(b"0123456789ABCDEF".to_vec()),
        1 => prop::sample::select(vec![b'\r', b'\n', 0x02, 0x03, b' ', b'G']),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..300)
}

proptest::proptest! {
    #[test]
    fn serial_any_split_of_a_byte_stream_yields_the_same_frames(
        bytes in line_bytes(),
        cuts in proptest::collection::vec(proptest::prelude::any::<usize>(), 0..40),
        binary_framing in proptest::prelude::any::<bool>(),
    ) {
        let framing = if binary_framing { binary(Checksum::Xor) } else { Framing::AsciiHex };
        let whole = frames_of(&framing, &[&bytes]);
        proptest::prop_assert_eq!(&frames_of(&framing, &split(&bytes, &cuts)), &whole);
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        proptest::prop_assert_eq!(&frames_of(&framing, &one_by_one), &whole);
    }
}

#[test]
fn serial_binary_frames_skip_noise_and_reject_bad_checksums() {
    let framing = binary(Checksum::Xor);
    let frame = encode(&framing, 0x00BC_614E);
    assert_eq!(
        frame,
        vec![0x02, 0x00, 0xBC, 0x61, 0x4E, 0xBC ^ 0x61 ^ 0x4E, 0x03]
    );
    let mut d = SerialDecoder::new(framing).expect("framing");
    let mut bytes = vec![0xFF, 0x55];
    bytes.extend_from_slice(&frame[..3]);
    assert!(d.push(&bytes).is_empty(), "half a frame");
    assert_eq!(d.push(&frame[3..]), vec![Ok("12345678".to_string())]);

    let mut corrupt = frame.clone();
    corrupt[5] ^= 0x01;
    assert_eq!(
        d.push(&corrupt),
        vec![Err(SerialError::BadChecksum {
            got: frame[5] ^ 0x01,
            expected: frame[5]
        })]
    );
}

#[test]
fn serial_binary_sum_checksum_and_resync_after_a_false_start() {
    let framing = binary(Checksum::Sum);
    let frame = encode(&framing, 0xFFFF_FFFF);
    assert_eq!(frame[5], 0xFC, "0xFF * 4 mod 256");
    let mut d = SerialDecoder::new(framing).expect("framing");
    // A stray STX whose "frame" has no ETX, then a good frame.
    let mut bytes = vec![0x02, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60];
    bytes.extend_from_slice(&frame);
    let frames = d.push(&bytes);
    assert_eq!(frames.first(), Some(&Err(SerialError::Unterminated(0x60))));
    assert_eq!(frames.last(), Some(&Ok(u32::MAX.to_string())));
}

#[test]
fn serial_framing_with_impossible_length_is_refused() {
    let framing = Framing::Binary {
        stx: 2,
        etx: 3,
        data_len: 9,
        checksum: Checksum::Xor,
    };
    assert_eq!(
        SerialDecoder::new(framing).err(),
        Some(SerialError::BadDataLen(9))
    );
}

struct Harness {
    rx: mpsc::Receiver<Inbound>,
    commands: mpsc::Sender<CommandRequest>,
    health: watch::Receiver<drivers::contract::Health>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), drivers::DriverError>>,
}

fn start(config: SerialReaderConfig) -> Harness {
    let TestContext {
        mut ctx,
        events: rx,
        commands: cmd_tx,
        health: health_rx,
        cancel,
        ..
    } = DriverContext::for_test("reader-485", 32);
    let mut driver = SerialReader::new(config).expect("framing");
    let task = tokio::spawn(async move { driver.run(&mut ctx).await });
    Harness {
        rx,
        commands: cmd_tx,
        health: health_rx,
        cancel,
        task,
    }
}

impl Harness {
    async fn next(&mut self) -> DeviceEvent {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("an event within the deadline")
            .expect("driver alive")
            .event
    }

    async fn stop(self) {
        self.cancel.cancel();
        assert_eq!(self.task.await.expect("joined"), Ok(()));
    }
}

fn config(path: std::path::PathBuf, framing: Framing) -> SerialReaderConfig {
    SerialReaderConfig {
        path,
        baud: 9600,
        framing,
        door: Some(2),
        reconnect_min_ms: 20,
        reconnect_max_ms: 100,
        reject_interval_ms: 10_000,
    }
}

fn card(n: u64) -> DeviceEvent {
    DeviceEvent::CardRead {
        card: n.to_string(),
        format: "serial".into(),
        facility: None,
        door: Some(2),
        controller: None,
    }
}

#[tokio::test]
async fn serial_reader_reads_cards_and_rejects_bad_frames_over_a_pty() {
    let framing = binary(Checksum::Xor);
    let mut sim = SerialReaderSim::new(framing.clone()).expect("pty");
    let mut h = start(config(sim.path().to_path_buf(), framing.clone()));
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));

    sim.send_card(0x00BC_614E).expect("write");
    assert_eq!(h.next().await, card(12_345_678));

    let mut bad = encode(&framing, 42);
    bad[5] ^= 0xFF;
    sim.send_raw(&bad).expect("write");
    assert!(
        matches!(h.next().await, DeviceEvent::ReadRejected { reason, count: 1 } if reason.contains("checksum"))
    );
    assert_eq!(h.health.borrow().state, HealthState::Ok);

    let (request, outcome) = CommandRequest::new(Command::Poll);
    h.commands.send(request).await.expect("inbox");
    assert_eq!(outcome.await.expect("answered"), CommandOutcome::Done);
    h.stop().await;
}

#[tokio::test]
async fn serial_reader_never_opens_on_the_tail_of_a_noisy_line_written_byte_by_byte() {
    let mut sim = SerialReaderSim::new(Framing::AsciiHex).expect("pty");
    let mut h = start(config(sim.path().to_path_buf(), Framing::AsciiHex));
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));
    // As a 9600-baud UART delivers it: one byte at a time, about a
    // millisecond apart, so the reader sees many short reads.
    let stream = noise_then_fragment();
    let (noise, fragment) = stream.split_at(33);
    for byte in noise {
        sim.send_raw(&[*byte]).expect("write");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        matches!(h.next().await, DeviceEvent::ReadRejected { reason, .. } if reason.contains("longer than")),
        "the overlong line is rejected once"
    );
    for byte in fragment {
        sim.send_raw(&[*byte]).expect("write");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A real card after the noise: it must be the very next event, so
    // nothing was decoded from the fragment (which reads as card 10001).
    sim.send_card(0xABCD).expect("write");
    assert_eq!(h.next().await, card(0xABCD));
    h.stop().await;
}

// Multi-threaded: the simulator's writes block while the pty is full, until
// the driver (on another worker) reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_reader_aggregates_line_noise_into_one_event_per_interval_and_an_alarm() {
    let mut sim = SerialReaderSim::new(Framing::AsciiHex).expect("pty");
    let mut cfg = config(sim.path().to_path_buf(), Framing::AsciiHex);
    cfg.reject_interval_ms = 300;
    let mut h = start(cfg);
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));
    // 300 garbage lines, as a noisy RS-485 line delivers them, plus one
    // 100 KB line without a terminator.
    let mut noise = Vec::new();
    for i in 0..300 {
        noise.extend_from_slice(format!("Z{i}Q\r\n").as_bytes());
    }
    for chunk in noise.chunks(97) {
        sim.send_raw(chunk).expect("write");
    }
    sim.send_raw(&vec![b'7'; 100_000]).expect("write");
    sim.send_raw(b"\r\n").expect("write");

    let mut reported = 0;
    let mut events = 0;
    let mut alarm = false;
    while reported < 301 {
        match h.next().await {
            DeviceEvent::ReadRejected { count, .. } => {
                reported += count;
                events += 1;
            }
            DeviceEvent::DeviceAlarm {
                code, active: true, ..
            } if code == "noisy_line" => {
                alarm = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(reported, 301, "every rejected read is counted");
    assert!(events <= 4, "{events} events for one burst of noise");
    if !alarm {
        assert!(matches!(
            h.next().await,
            DeviceEvent::DeviceAlarm { code, active: true, .. } if code == "noisy_line"
        ));
    }
    // The noise stops: the alarm clears, and a card reads normally.
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceAlarm { active: false, .. }
    ));
    sim.send_card(0x2711).expect("write");
    assert_eq!(h.next().await, card(0x2711));
    h.stop().await;
}

#[tokio::test]
async fn serial_reader_goes_offline_when_the_adapter_vanishes_and_reconnects_via_its_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("ttyReader");
    let first = SerialReaderSim::new(Framing::AsciiHex).expect("pty");
    std::os::unix::fs::symlink(first.path(), &link).expect("symlink");

    let mut h = start(config(link.clone(), Framing::AsciiHex));
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));
    let mut first = first;
    first.send_card(7).expect("write");
    assert_eq!(h.next().await, card(7));

    // Unplug: the pty disappears, and its link dangles.
    drop(first);
    match h.next().await {
        DeviceEvent::DeviceLink {
            online: false,
            detail,
        } => assert!(!detail.is_empty()),
        other => panic!("expected offline, got {other:?}"),
    }
    assert_eq!(h.health.borrow().state, HealthState::Degraded);
    let (request, outcome) = CommandRequest::new(Command::Poll);
    h.commands.send(request).await.expect("inbox");
    assert!(matches!(
        outcome.await.expect("answered"),
        CommandOutcome::Failed(_)
    ));

    // Plug back in: a new pty behind the same stable path.
    let mut second = SerialReaderSim::new(Framing::AsciiHex).expect("pty");
    std::fs::remove_file(&link).expect("unlink");
    std::os::unix::fs::symlink(second.path(), &link).expect("symlink");
    assert!(matches!(
        h.next().await,
        DeviceEvent::DeviceLink { online: true, .. }
    ));
    second.send_card(0xABCD).expect("write");
    assert_eq!(h.next().await, card(0xABCD));
    assert_eq!(h.health.borrow().state, HealthState::Ok);
    h.stop().await;
}
