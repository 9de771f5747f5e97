//! The LPR codecs against payloads from real cameras and vendor documents
//! (`tests/data/lpr/`, provenance in its `SOURCES.md`), with exact expected
//! values, plus a property test that no input makes a parser panic.

use std::path::PathBuf;

use drivers::PlateColour;
use drivers::lpr::{
    self, CameraMessage, Direction, ImageKind, ParseError, PlateReadPayload, Trigger, Vendor,
    hikvision, huaxia, vzenith,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture(path: &str) -> Vec<u8> {
    let full: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/data/lpr", path]
        .iter()
        .collect();
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn fixture_text(path: &str) -> String {
    String::from_utf8(fixture(path)).expect("fixture is UTF-8")
}

/// JSON with comments (`.jsonc`, as the vendor document prints it) made
/// plain JSON: `//` comments outside strings and trailing commas removed.
fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                out.extend(chars.next());
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'/') {
            for skipped in chars.by_ref() {
                if skipped == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    // Trailing commas: a comma followed only by whitespace and `}` or `]`.
    let mut cleaned = String::with_capacity(out.len());
    let bytes: Vec<char> = out.chars().collect();
    for (i, &c) in bytes.iter().enumerate() {
        if c == ',' {
            let next = bytes[i + 1..].iter().find(|ch| !ch.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        cleaned.push(c);
    }
    cleaned
}

fn jsonc_fixture(path: &str) -> Vec<u8> {
    strip_jsonc(&fixture_text(path)).into_bytes()
}

fn plate(msg: Result<CameraMessage, ParseError>) -> PlateReadPayload {
    match msg {
        Ok(CameraMessage::Plate(p)) => *p,
        other => panic!("expected a plate read, got {other:?}"),
    }
}

const JSON: Option<&str> = Some("application/json");
const XML: Option<&str> = Some("application/xml");
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

// ---------------------------------------------------------------- Vzenith

#[test]
fn vzenith_plate_full_fixture() {
    let body = jsonc_fixture("vzenith/http_push_AlarmInfoPlate_full.jsonc");
    let p = plate(lpr::parse(Vendor::Vzenith, JSON, &body));
    assert_eq!(p.plate, "粤Z9065澳");
    assert_eq!(p.colour, PlateColour::Black);
    assert_eq!(p.confidence, Some(96));
    assert_eq!(p.trigger, Trigger::Software);
    assert_eq!(p.read_id.as_deref(), Some("21085"));
    assert!(!p.resend);
    assert_eq!(p.device_time_ms, Some(1_686_299_994_687));
    assert_eq!(p.serial.as_deref(), Some("fe71e106-57263272"));
    assert_eq!(p.plate_type.as_deref(), Some("14"));
    assert_eq!(p.direction, None);
    assert!(!p.fake_plate);
    assert!(!p.opened_by_camera);
    assert!(p.images.is_empty(), "imageFile is empty in the fixture");
}

#[test]
fn vzenith_plate_full_fixture_with_images_decodes_both() {
    let mut v: Value = serde_json::from_slice(&jsonc_fixture(
        "vzenith/http_push_AlarmInfoPlate_full.jsonc",
    ))
    .expect("fixture is JSON");
    let pr = &mut v["AlarmInfoPlate"]["result"]["PlateResult"];
    pr["imageFile"] = json!("/9j/4AAQ");
    pr["imageFragmentFile"] = json!("/9j/2w==");
    let p = plate(lpr::parse(
        Vendor::Vzenith,
        JSON,
        &serde_json::to_vec(&v).expect("serialises"),
    ));
    assert_eq!(p.images.len(), 2);
    assert_eq!(p.images[0].kind, ImageKind::Full);
    assert_eq!(p.images[0].bytes, [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]);
    assert_eq!(p.images[1].kind, ImageKind::Plate);
    assert_eq!(p.images[1].content_type, "image/jpeg");
}

#[test]
fn vzenith_offline_record_fixture_is_a_no_plate_read() {
    let body = jsonc_fixture("vzenith/http_push_AlarmInfoPlate_offline_record.jsonc");
    let p = plate(lpr::parse(Vendor::Vzenith, JSON, &body));
    assert_eq!(p.plate, "", "_无_ is a vehicle without a plate");
    assert_eq!(p.colour, PlateColour::Unknown);
    assert_eq!(p.confidence, Some(0));
    assert_eq!(p.trigger, Trigger::Software);
    assert_eq!(p.read_id.as_deref(), Some("123"));
    // The document's sample of an offline record carries `isoffline: 0`.
    assert!(!p.resend);
    assert_eq!(p.device_time_ms, Some(1_441_815_171_672));
    assert_eq!(p.serial.as_deref(), Some("eff50e18-e3d3862b"));
    assert!(p.images.is_empty());
}

#[test]
fn vzenith_isoffline_marks_a_resend() {
    let mut v: Value = serde_json::from_slice(&jsonc_fixture(
        "vzenith/http_push_AlarmInfoPlate_offline_record.jsonc",
    ))
    .expect("fixture is JSON");
    v["AlarmInfoPlate"]["result"]["PlateResult"]["isoffline"] = json!(1);
    let p = plate(lpr::parse(
        Vendor::Vzenith,
        JSON,
        &serde_json::to_vec(&v).expect("serialises"),
    ));
    assert!(p.resend);
    assert_eq!(p.read_id.as_deref(), Some("123"));
}

#[test]
fn vzenith_cross_border_plate_keeps_the_first() {
    let mut v: Value = serde_json::from_slice(&jsonc_fixture(
        "vzenith/http_push_AlarmInfoPlate_full.jsonc",
    ))
    .expect("fixture is JSON");
    v["AlarmInfoPlate"]["result"]["PlateResult"]["license"] = json!("粤ZJ068澳|MX7742|ZM127");
    let p = plate(lpr::parse(
        Vendor::Vzenith,
        JSON,
        &serde_json::to_vec(&v).expect("serialises"),
    ));
    assert_eq!(p.plate, "粤ZJ068澳");
}

#[test]
fn vzenith_gio_in_fixture() {
    let body = jsonc_fixture("vzenith/http_push_AlarmGioIn.jsonc");
    assert_eq!(
        lpr::parse(Vendor::Vzenith, JSON, &body),
        Ok(CameraMessage::GioIn {
            serial: Some("d85b1269-8f942256".into()),
            source: 3,
            value: 1,
        })
    );
}

#[test]
fn vzenith_serial_data_and_trigger_image_are_recognised_but_not_acted_on() {
    let body = jsonc_fixture("vzenith/http_push_SerialData.jsonc");
    assert_eq!(
        lpr::parse(Vendor::Vzenith, JSON, &body),
        Ok(CameraMessage::Other("serial_data"))
    );
    let body = jsonc_fixture("vzenith/http_push_TriggerImage.jsonc");
    assert_eq!(
        lpr::parse(Vendor::Vzenith, JSON, &body),
        Ok(CameraMessage::Other("trigger_image"))
    );
}

/// The document's flattened heartbeat rebuilt as the CRLF multipart body a
/// camera sends (curl-style boundary: the flattened text shows `--` + it).
fn vzenith_heartbeat_body() -> (String, Vec<u8>) {
    let flat =
        fixture_text("vzenith/http_heartbeat_multipart_as_documented.txt").replace('\n', " ");
    let delimiter = "--------------------------caa771fe4a61f3d9";
    let boundary = &delimiter[2..];
    let mut body = String::new();
    for chunk in flat.split(delimiter).skip(1) {
        let Some(rest) = chunk.split_once("name=\"").map(|(_, r)| r) else {
            continue; // the closing "--"
        };
        let (name, value) = rest.split_once('"').expect("name is quoted");
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{}\r\n",
            value.trim()
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[test]
fn vzenith_heartbeat_fixture_keeps_only_the_serial() {
    let (content_type, body) = vzenith_heartbeat_body();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("name=\"pass_wd\"\r\n\r\nadmin\r\n"), "{text}");
    assert!(text.contains("name=\"channel_num\"\r\n\r\n1\r\n"), "{text}");
    let msg = lpr::parse(Vendor::Vzenith, Some(&content_type), &body);
    assert_eq!(
        msg,
        Ok(CameraMessage::Heartbeat {
            serial: Some("d85b1269-8f942256".into())
        })
    );
    let shown = format!("{msg:?}");
    assert!(!shown.contains("admin"), "credentials leaked: {shown}");
    // Without a Content-Type the body is sniffed.
    assert_eq!(lpr::parse(Vendor::Vzenith, None, &body), msg);
}

#[test]
fn vzenith_oem_samples_parse_like_vzenith() {
    let body = fixture("other/qianyi_AlarmInfoPlate_page_sample.json");
    let p = plate(lpr::parse(Vendor::Vzenith, JSON, &body));
    assert_eq!(p.plate, "");
    assert_eq!(p.trigger, Trigger::Video);
    assert_eq!(p.read_id, None);
    assert_eq!(p.device_time_ms, Some(1_441_815_171_672));
    assert_eq!(
        p.serial.as_deref(),
        Some("e10b2d6c8c07b422361457935b518642")
    );

    let body = fixture("other/szymzh_AlarmInfoPlate_page_sample.json");
    let p = plate(lpr::parse(Vendor::Vzenith, JSON, &body));
    assert_eq!(p.plate, "鲁VF0050");
    assert_eq!(p.colour, PlateColour::Blue);
    assert_eq!(p.confidence, Some(94));
    assert_eq!(p.trigger, Trigger::VirtualLoop);
    assert_eq!(p.direction, Some(Direction::Down));
    assert_eq!(p.read_id.as_deref(), Some("90813"));
    assert_eq!(p.device_time_ms, Some(1_646_063_999_638));
    assert_eq!(p.serial.as_deref(), Some("0f823866-d2dc45ab"));
}

#[test]
fn vzenith_manual_trigger_ack_is_a_command_ack() {
    let text = fixture_text("other/szymzh_manualTrigger_request_and_ack.txt");
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("two JSON documents");
    assert_eq!(docs.len(), 2);
    let ack = serde_json::to_vec(&docs[1]).expect("serialises");
    assert_eq!(
        lpr::parse(Vendor::Vzenith, JSON, &ack),
        Ok(CameraMessage::Other("command_ack"))
    );
}

#[test]
fn vzenith_replies_match_the_documented_shapes() {
    let doc: Value = serde_json::from_slice(&jsonc_fixture(
        "vzenith/http_reply_ContinuePushOffline.jsonc",
    ))
    .expect("fixture is JSON");
    assert_eq!(vzenith::reply_continue_offline(Some("123")), doc);

    let doc: Value = serde_json::from_slice(&fixture("vzenith/http_reply_open_gate_faq.json"))
        .expect("fixture is JSON");
    let open = vzenith::reply_plate(Some("21085"), true);
    assert_eq!(
        open["Response_AlarmInfoPlate"]["info"],
        doc["Response_AlarmInfoPlate"]["info"]
    );
    assert_eq!(open["Response_AlarmInfoPlate"]["plateid"], json!(21085));
    assert_eq!(
        vzenith::reply_plate(None, false),
        json!({"Response_AlarmInfoPlate": {"info": "no"}})
    );

    let doc: Value = serde_json::from_slice(&jsonc_fixture("vzenith/http_reply_ivs_ioctrl.jsonc"))
        .expect("fixture is JSON");
    let pulse = vzenith::reply_plate_pulse(None, 0, 500);
    assert_eq!(
        pulse["Response_AlarmInfoPlate"]["ivs_ioctrl"],
        doc["Response_AlarmInfoPlate"]["ivs_ioctrl"]
    );
}

// -------------------------------------------------------------- Hikvision

#[test]
fn hikvision_plain_xml_strips_colour_prefix() {
    let body = fixture("hikvision/cn_anpr_blue_plate_with_colour_prefix_javastring.xml");
    let p = plate(lpr::parse(Vendor::Hikvision, XML, &body));
    assert_eq!(p.plate, "皖A7XG66");
    assert_eq!(p.colour, PlateColour::Blue);
    assert_eq!(p.confidence, Some(97));
    assert_eq!(
        p.read_id.as_deref(),
        Some("2023101018210222000oRLpp0ytu5g9UNTt1bKXHkZGgdLWXQcHpB8zLCACGwOO")
    );
    assert!(!p.resend);
    assert_eq!(p.device_time_ms, Some(1_696_933_261_000));
    assert_eq!(p.serial.as_deref(), Some("08:54:11:ed:6d:90"));
    assert_eq!(p.direction, Some(Direction::Reverse));
    assert_eq!(p.plate_type.as_deref(), Some("92TypeCivil"));
    assert!(p.images.is_empty());
}

/// The Go raw-string capture as the bytes a camera sends: the leading TAB
/// of each line (Go indentation) removed, CRLF line ends, and the closing
/// boundary that the excerpt lacks.
fn hikvision_multipart_body() -> (String, Vec<u8>) {
    let raw = fixture_text("hikvision/cn_anpr_multipart_capture_go_rawstring.txt");
    let mut lines: Vec<&str> = raw
        .split('\n')
        .map(|l| l.strip_prefix('\t').unwrap_or(l))
        .collect();
    while lines.last() == Some(&"") {
        lines.pop();
    }
    let boundary = lines[0]
        .strip_prefix("--")
        .expect("delimiter line")
        .to_owned();
    let mut body = lines.join("\r\n");
    body.push_str(&format!("\r\n--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[test]
fn hikvision_multipart_strips_colour_prefix() {
    let (content_type, body) = hikvision_multipart_body();
    let p = plate(lpr::parse(Vendor::Hikvision, Some(&content_type), &body));
    assert_eq!(p.plate, "苏A8HK52");
    assert_eq!(p.colour, PlateColour::Blue);
    assert_eq!(p.confidence, Some(78));
    assert_eq!(
        p.read_id.as_deref(),
        Some("46dd0716-1dd2-11b2-821f-8ba17e6f56b7")
    );
    assert!(!p.resend);
    assert_eq!(p.device_time_ms, Some(2_019_974_223_000));
    assert_eq!(p.serial.as_deref(), Some("44:a6:42:f7:3a:21"));
    assert_eq!(p.images.len(), 1);
    assert_eq!(p.images[0].kind, ImageKind::Plate);
    assert_eq!(p.images[0].bytes, b"efwefwefwef");
    assert_eq!(p.images[0].content_type, "image/jpeg");
    // Without a Content-Type the boundary is read from the body.
    assert_eq!(plate(lpr::parse(Vendor::Hikvision, None, &body)), p);
}

#[test]
fn hikvision_multipart_colour_comes_from_the_prefix_when_plate_color_is_unknown() {
    let (content_type, body) = hikvision_multipart_body();
    let text = String::from_utf8(body)
        .expect("UTF-8")
        .replace(
            "<plateColor>blue</plateColor>",
            "<plateColor>unknown</plateColor>",
        )
        .replace("蓝苏A8HK52", "黄苏A8HK52");
    let p = plate(lpr::parse(
        Vendor::Hikvision,
        Some(&content_type),
        text.as_bytes(),
    ));
    assert_eq!(p.plate, "苏A8HK52");
    assert_eq!(p.colour, PlateColour::Yellow);
}

#[test]
fn hikvision_multipart_without_closing_boundary_is_rejected() {
    let (content_type, body) = hikvision_multipart_body();
    let cut = &body[..body.len() - 60];
    assert!(matches!(
        lpr::parse(Vendor::Hikvision, Some(&content_type), cut),
        Err(ParseError::Multipart(_))
    ));
}

#[test]
fn hikvision_retransmission_is_a_resend() {
    let text = fixture_text("hikvision/cn_anpr_blue_plate_with_colour_prefix_javastring.xml")
        .replace(
            "<isDataRetransmission>false</isDataRetransmission>",
            "<isDataRetransmission>true</isDataRetransmission>",
        );
    assert!(plate(lpr::parse(Vendor::Hikvision, XML, text.as_bytes())).resend);
}

#[test]
fn hikvision_plate_detected_fixture() {
    let body = fixture("hikvision/hikvision_next_ipc1_anpr_plate_detected.xml");
    let p = plate(lpr::parse(Vendor::Hikvision, XML, &body));
    assert_eq!(p.plate, "KH35192");
    assert_eq!(p.colour, PlateColour::Unknown);
    assert_eq!(p.confidence, Some(100));
    assert_eq!(
        p.read_id.as_deref(),
        Some("20230811134901822007gWpiNIuI14ikdwfKR5eDCzuV45RubEmi88qaD5w0YTq")
    );
    assert_eq!(p.device_time_ms, Some(1_691_758_140_000));
    assert_eq!(p.direction, Some(Direction::Forward));
    assert_eq!(p.plate_type, None);
}

#[test]
fn hikvision_unknown_plate_is_a_no_plate_read() {
    let body = fixture("hikvision/hikvision_next_ipc1_anpr_plate_unknown.xml");
    let p = plate(lpr::parse(Vendor::Hikvision, XML, &body));
    assert_eq!(p.plate, "");
    assert_eq!(p.confidence, Some(0));
    assert_eq!(p.device_time_ms, Some(1_691_758_955_000));
    assert_eq!(p.serial.as_deref(), Some("bc:5e:33:62:2a:5c"));
}

#[test]
fn hikvision_io_alarm_is_an_input_change() {
    let body = fixture("hikvision/hikvision_next_io_alarm_notification.xml");
    assert_eq!(
        lpr::parse(Vendor::Hikvision, XML, &body),
        Ok(CameraMessage::GioIn {
            serial: Some("4f:e4:2f:81:cd:1b".into()),
            source: 1,
            value: 1,
        })
    );
    assert_eq!(hikvision::REPLY_STATUS, 200);
}

// ----------------------------------------------------------------- Huaxia

/// A mode-5 form built from the documented field names (the fixture is a
/// field list, not a capture), with this test's own values.
fn huaxia_form(kind: &str, overrides: &[(&str, &str)]) -> Vec<u8> {
    let spec = fixture_text("huaxia/mode5_form_fields_from_java_controller.txt");
    let names: Vec<&str> = spec
        .lines()
        .filter_map(|l| l.strip_prefix("@RequestParam(\""))
        .filter_map(|l| l.split_once('"').map(|(n, _)| n))
        .collect();
    assert_eq!(names.len(), 15, "documented fields: {names:?}");
    let picture = huaxia::encode_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFB, 0xFF]);
    let mut form = form_urlencoded::Serializer::new(String::new());
    for name in names {
        let value = overrides
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
            .unwrap_or_else(|| match name {
                "type" => kind.to_owned(),
                "mode" => "5".into(),
                "park_id" => "P001".into(),
                "plate_num" => "京A12345".into(),
                "plate_color" => "蓝色".into(),
                "plate_val" => "true".into(),
                "car_sublogo" => "".into(),
                "vehicle_type" => "小型车".into(),
                "start_time" => "1696933261".into(),
                "cam_id" => "00:11:22:33:44:55".into(),
                "vdc_type" => "in".into(),
                "is_whitelist" => "false".into(),
                "triger_type" => "hwtriger".into(),
                "picture" | "closeup_pic" => picture.clone(),
                other => panic!("unexpected documented field {other}"),
            });
        form.append_pair(name, &value);
    }
    form.finish().into_bytes()
}

#[test]
fn huaxia_online_record_from_documented_fields() {
    let body = huaxia_form("online", &[]);
    let p = plate(lpr::parse(Vendor::Huaxia, FORM, &body));
    assert_eq!(p.plate, "京A12345");
    assert_eq!(p.colour, PlateColour::Blue);
    assert_eq!(p.confidence, None);
    assert_eq!(p.trigger, Trigger::Loop);
    assert_eq!(p.read_id, None);
    assert!(!p.resend);
    assert_eq!(p.device_time_ms, Some(1_696_933_261_000));
    assert_eq!(p.serial.as_deref(), Some("00:11:22:33:44:55"));
    assert_eq!(p.direction, Some(Direction::In));
    assert_eq!(p.plate_type.as_deref(), Some("小型车"));
    assert_eq!(p.images.len(), 2);
    assert_eq!(p.images[0].kind, ImageKind::Full);
    assert_eq!(p.images[1].kind, ImageKind::Plate);
    assert_eq!(p.images[0].bytes, [0xFF, 0xD8, 0xFF, 0xE0, 0xFB, 0xFF]);
}

#[test]
fn huaxia_offline_record_is_a_resend() {
    let body = huaxia_form(
        "offline",
        &[
            ("triger_type", "video"),
            ("vdc_type", "out"),
            ("plate_val", "false"),
        ],
    );
    let p = plate(lpr::parse(Vendor::Huaxia, FORM, &body));
    assert!(p.resend);
    assert_eq!(p.trigger, Trigger::Video);
    assert_eq!(p.direction, Some(Direction::Out));
    assert!(p.fake_plate);
}

#[test]
fn huaxia_heartbeat_fixture_and_reply() {
    let spec = fixture_text("huaxia/mode5_heartbeat_test.txt");
    assert!(spec.contains(r#"data={"type": "heartbeat"}"#));
    assert_eq!(
        lpr::parse(Vendor::Huaxia, FORM, b"type=heartbeat"),
        Ok(CameraMessage::Heartbeat { serial: None })
    );
    let expected = spec
        .lines()
        .find_map(|l| l.trim().strip_prefix("assert response.json() == "))
        .expect("reply line");
    let expected: Value = serde_json::from_str(expected).expect("reply is JSON");
    assert_eq!(huaxia::reply(false), expected);
}

#[test]
fn huaxia_open_reply_matches_fixture() {
    let doc: Value = serde_json::from_slice(&fixture("huaxia/mode5_reply_open_gate.json"))
        .expect("fixture is JSON");
    assert_eq!(huaxia::reply(true), doc);
}

// ------------------------------------------------------- never a panic

fn content_types() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json")),
        Just(Some("application/xml")),
        Just(Some("application/x-www-form-urlencoded")),
        Just(Some("multipart/form-data; boundary=xyz")),
        Just(Some("multipart/form-data")),
        Just(Some("text/plain; charset=gb2312")),
    ]
}

fn all_fixture_bodies() -> Vec<(Vendor, Vec<u8>)> {
    vec![
        (
            Vendor::Vzenith,
            jsonc_fixture("vzenith/http_push_AlarmInfoPlate_full.jsonc"),
        ),
        (Vendor::Vzenith, vzenith_heartbeat_body().1),
        (Vendor::Hikvision, hikvision_multipart_body().1),
        (
            Vendor::Hikvision,
            fixture("hikvision/hikvision_next_ipc1_anpr_plate_detected.xml"),
        ),
        (Vendor::Huaxia, huaxia_form("online", &[])),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        ct in content_types(),
    ) {
        for vendor in Vendor::ALL {
            let _ = lpr::parse(vendor, ct, &body);
        }
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..5,
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let (vendor, mut body) = all_fixture_bodies().swap_remove(which);
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        body.truncate(cut.index(body.len() + 1));
        let _ = lpr::parse(vendor, None, &body);
        let _ = lpr::parse(vendor, Some("multipart/form-data; boundary=-------------------------7e13971310878"), &body);
    }
}
