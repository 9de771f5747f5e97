//! 臻识 Vzenith HTTP push (also OEM cameras such as 千熠): the
//! `AlarmInfoPlate` plate result, `AlarmInfoPlate` offline resends, the
//! `AlarmGioIn` input change, the heartbeat (multipart form) and the
//! `Response_AlarmInfoPlate` reply bodies that open the barrier.
//!
//! Pure and sans-IO. The heartbeat carries the camera's web login in clear
//! text (`user_name`, `pass_wd`); this codec reads only `serialno` from it and
//! never keeps or logs the other fields.

use serde_json::{Map, Value, json};

use super::{
    CameraMessage, Direction, Image, ImageKind, ParseError, PlateReadPayload, Trigger,
    decode_base64, decode_text, media_type, multipart, normalise_plate, truncate,
};
use crate::event::PlateColour;

/// Longest relay pulse the camera accepts, in milliseconds.
pub const MAX_PULSE_MS: u32 = 600_000;

/// Decodes one Vzenith push.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<CameraMessage, ParseError> {
    if body.trim_ascii().is_empty() {
        return Err(ParseError::Empty);
    }
    // Some firmware labels its JSON with a form content type: a body that
    // starts like a JSON object is read as one whatever the header says.
    let text = decode_text(body);
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return parse_json(trimmed);
    }
    match media_type(content_type).as_deref() {
        Some("multipart/form-data") => heartbeat_multipart(content_type, body),
        Some("application/x-www-form-urlencoded") => heartbeat_form(body),
        Some(m) if m.contains("json") => parse_json(trimmed),
        _ if multipart::looks_like_multipart(body) => heartbeat_multipart(content_type, body),
        None if trimmed.contains('=') => heartbeat_form(body),
        _ => Err(ParseError::UnsupportedContentType(truncate(
            content_type.unwrap_or("none"),
        ))),
    }
}

fn parse_json(text: &str) -> Result<CameraMessage, ParseError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError::Json(truncate(&e.to_string())))?;
    let Value::Object(root) = value else {
        return Err(ParseError::Json("top level is not an object".into()));
    };
    if let Some(alarm) = root.get("AlarmInfoPlate") {
        return plate(object(alarm, "AlarmInfoPlate")?).map(|p| CameraMessage::Plate(Box::new(p)));
    }
    if let Some(gio) = root.get("AlarmGioIn") {
        return gio_in(object(gio, "AlarmGioIn")?);
    }
    if root.contains_key("SerialData") {
        return Ok(CameraMessage::Other("serial_data"));
    }
    if root.contains_key("TriggerImage") {
        return Ok(CameraMessage::Other("trigger_image"));
    }
    if root.contains_key("cmd") {
        return Ok(CameraMessage::Other("command_ack"));
    }
    let keys: Vec<&str> = root.keys().take(4).map(String::as_str).collect();
    Err(ParseError::UnknownMessage(truncate(&format!(
        "no AlarmInfoPlate or AlarmGioIn (keys: {})",
        keys.join(", ")
    ))))
}

fn plate(alarm: &Map<String, Value>) -> Result<PlateReadPayload, ParseError> {
    let serial = opt_str(alarm, "serialno", "AlarmInfoPlate.serialno")?;
    let result = object(
        alarm
            .get("result")
            .ok_or(ParseError::MissingField("AlarmInfoPlate.result"))?,
        "AlarmInfoPlate.result",
    )?;
    let pr = object(
        result.get("PlateResult").ok_or(ParseError::MissingField(
            "AlarmInfoPlate.result.PlateResult",
        ))?,
        "PlateResult",
    )?;

    let license = opt_str(pr, "license", "PlateResult.license")?
        .ok_or(ParseError::MissingField("PlateResult.license"))?;
    let plate = normalise_plate(&license);

    let mut colour = match opt_int(pr, "colorType", "PlateResult.colorType")? {
        Some(code) => colour_from_code(code),
        None => PlateColour::Unknown,
    };
    if colour == PlateColour::Unknown
        && let Some(Value::Array(plates)) = pr.get("plates")
        && let Some(Value::Object(first)) = plates.first()
        && let Some(code) = opt_int(first, "color", "PlateResult.plates.color")?
    {
        colour = colour_from_code(code);
    }

    let confidence =
        match opt_int(pr, "confidence", "PlateResult.confidence")? {
            Some(c) => Some(u8::try_from(c).ok().filter(|c| *c <= 100).ok_or_else(|| {
                ParseError::invalid("PlateResult.confidence", "not within 0..=100")
            })?),
            None => None,
        };

    let trigger = opt_int(pr, "triggerType", "PlateResult.triggerType")?
        .map(trigger_from_code)
        .unwrap_or(Trigger::Other);
    let read_id = opt_id(pr, "plateid", "PlateResult.plateid")?;
    let resend = opt_flag(pr, "isoffline", "PlateResult.isoffline")?;
    let fake_plate = opt_flag(pr, "is_fake_plate", "PlateResult.is_fake_plate")?;
    let direction = match opt_int(pr, "direction", "PlateResult.direction")? {
        Some(1) => Some(Direction::Left),
        Some(2) => Some(Direction::Right),
        Some(3) => Some(Direction::Up),
        Some(4) => Some(Direction::Down),
        _ => None,
    };
    let plate_type = opt_int(pr, "type", "PlateResult.type")?.map(|t| t.to_string());
    let device_time_ms = device_time(pr)?;

    let mut opened_by_camera = false;
    if let Some(outs) = pr.get("gioouts").filter(|v| !v.is_null()) {
        let Value::Array(outs) = outs else {
            return Err(ParseError::invalid("PlateResult.gioouts", "not an array"));
        };
        for out in outs {
            let out = object(out, "PlateResult.gioouts[]")?;
            opt_int(out, "ionum", "PlateResult.gioouts.ionum")?;
            if opt_int(out, "ctrltype", "PlateResult.gioouts.ctrltype")? == Some(2) {
                opened_by_camera = true;
            }
        }
    }

    let mut images = Vec::new();
    for (key, field, kind) in [
        ("imageFile", "PlateResult.imageFile", ImageKind::Full),
        (
            "imageFragmentFile",
            "PlateResult.imageFragmentFile",
            ImageKind::Plate,
        ),
    ] {
        if let Some(b64) = opt_str(pr, key, field)?
            && !b64.is_empty()
        {
            let bytes = decode_base64(field, &b64)?;
            if !bytes.is_empty() {
                images.push(Image::new(kind, bytes));
            }
        }
    }

    Ok(PlateReadPayload {
        plate,
        colour,
        confidence,
        trigger,
        read_id,
        resend,
        device_time_ms,
        serial,
        direction,
        plate_type,
        fake_plate,
        opened_by_camera,
        images,
    })
}

/// `timeStamp.Timeval.sec` (UTC) plus `usec`, in Unix milliseconds.
fn device_time(pr: &Map<String, Value>) -> Result<Option<i64>, ParseError> {
    let Some(ts) = pr.get("timeStamp").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(tv) = object(ts, "PlateResult.timeStamp")?
        .get("Timeval")
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    let tv = object(tv, "PlateResult.timeStamp.Timeval")?;
    let Some(sec) = opt_int(tv, "sec", "Timeval.sec")? else {
        return Ok(None);
    };
    let usec = opt_int(tv, "usec", "Timeval.usec")?.unwrap_or(0);
    if !(0..1_000_000).contains(&usec) {
        return Err(ParseError::invalid("Timeval.usec", "not within 0..1000000"));
    }
    sec.checked_mul(1000)
        .and_then(|ms| ms.checked_add(usec / 1000))
        .map(Some)
        .ok_or_else(|| ParseError::invalid("Timeval.sec", "out of range"))
}

fn gio_in(alarm: &Map<String, Value>) -> Result<CameraMessage, ParseError> {
    let serial = opt_str(alarm, "serialno", "AlarmGioIn.serialno")?;
    let result = object(
        alarm
            .get("result")
            .ok_or(ParseError::MissingField("AlarmGioIn.result"))?,
        "AlarmGioIn.result",
    )?;
    let tr = object(
        result
            .get("TriggerResult")
            .ok_or(ParseError::MissingField("AlarmGioIn.result.TriggerResult"))?,
        "TriggerResult",
    )?;
    let small = |key: &'static str, field: &'static str| -> Result<u8, ParseError> {
        let v = opt_int(tr, key, field)?.ok_or(ParseError::MissingField(field))?;
        u8::try_from(v).map_err(|_| ParseError::invalid(field, "not within 0..=255"))
    };
    Ok(CameraMessage::GioIn {
        serial,
        source: small("source", "TriggerResult.source")?,
        value: small("value", "TriggerResult.value")?,
    })
}

/// Heartbeat fields that show a form is a Vzenith heartbeat.
const HEARTBEAT_FIELDS: [&str; 4] = ["serialno", "device_name", "ipaddr", "channel_num"];

fn heartbeat_multipart(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CameraMessage, ParseError> {
    let parts = multipart::parts(content_type, body)?;
    let mut known = false;
    let mut serial = None;
    for part in parts {
        let Some(name) = part.name.as_deref() else {
            continue;
        };
        if HEARTBEAT_FIELDS.contains(&name) {
            known = true;
        }
        if name == "serialno" {
            serial = non_empty(decode_text(&part.data).trim());
        }
        // Every other field (user_name, pass_wd …) is dropped here unread.
    }
    if known {
        Ok(CameraMessage::Heartbeat { serial })
    } else {
        Err(ParseError::UnknownMessage(
            "multipart form without heartbeat fields".into(),
        ))
    }
}

fn heartbeat_form(body: &[u8]) -> Result<CameraMessage, ParseError> {
    let text = decode_text(body);
    let mut known = false;
    let mut serial = None;
    for (name, value) in form_urlencoded::parse(text.as_bytes()) {
        if HEARTBEAT_FIELDS.contains(&name.as_ref()) {
            known = true;
        }
        if name == "serialno" {
            serial = non_empty(value.trim());
        }
    }
    if known {
        Ok(CameraMessage::Heartbeat { serial })
    } else {
        Err(ParseError::UnknownMessage(
            "form without heartbeat fields".into(),
        ))
    }
}

/// `colorType` code → colour (doc §3; 6 yellow-green is in the doc only).
pub fn colour_from_code(code: i64) -> PlateColour {
    match code {
        1 => PlateColour::Blue,
        2 => PlateColour::Yellow,
        3 => PlateColour::White,
        4 => PlateColour::Black,
        5 => PlateColour::Green,
        6 => PlateColour::YellowGreen,
        _ => PlateColour::Unknown,
    }
}

/// Colour → `colorType` code.
pub fn colour_code(colour: PlateColour) -> u8 {
    match colour {
        PlateColour::Unknown => 0,
        PlateColour::Blue => 1,
        PlateColour::Yellow => 2,
        PlateColour::White => 3,
        PlateColour::Black => 4,
        PlateColour::Green => 5,
        PlateColour::YellowGreen => 6,
    }
}

/// `triggerType` bits → trigger. 1 video, 2 external IO (loop), 4 software,
/// 8 virtual loop; codes from 64 up (lingering, reversing) are `Other`.
/// When several of the low bits are set the most specific one wins
/// (loop, virtual loop, software, video).
pub fn trigger_from_code(code: i64) -> Trigger {
    if !(0..64).contains(&code) {
        Trigger::Other
    } else if code & 2 != 0 {
        Trigger::Loop
    } else if code & 8 != 0 {
        Trigger::VirtualLoop
    } else if code & 4 != 0 {
        Trigger::Software
    } else if code & 1 != 0 {
        Trigger::Video
    } else {
        Trigger::Other
    }
}

/// Trigger → `triggerType` code.
pub fn trigger_code(trigger: Trigger) -> u8 {
    match trigger {
        Trigger::Video => 1,
        Trigger::Loop => 2,
        Trigger::Software => 4,
        Trigger::VirtualLoop => 8,
        Trigger::Other => 0,
    }
}

/// The reply to a live plate push: `info` `ok` opens the barrier, `no` keeps
/// it shut; `plateid` echoes the read's id when it has one.
pub fn reply_plate(plate_id: Option<&str>, open: bool) -> Value {
    let mut inner = Map::new();
    inner.insert("info".into(), Value::from(if open { "ok" } else { "no" }));
    if let Some(id) = plate_id {
        inner.insert("plateid".into(), id_value(id));
    }
    json!({ "Response_AlarmInfoPlate": inner })
}

/// The reply that opens the barrier with an explicit self-timed relay pulse
/// on output `io` (`ivs_ioctrl` value 2 = on, then off after `delay_ms`,
/// capped at [`MAX_PULSE_MS`]).
pub fn reply_plate_pulse(plate_id: Option<&str>, io: u8, delay_ms: u32) -> Value {
    let mut reply = reply_plate(plate_id, true);
    if let Some(inner) = reply
        .get_mut("Response_AlarmInfoPlate")
        .and_then(Value::as_object_mut)
    {
        inner.insert(
            "ivs_ioctrl".into(),
            json!({ "delay": delay_ms.min(MAX_PULSE_MS), "io": io, "value": 2 }),
        );
    }
    reply
}

/// The reply to an offline resend: acknowledges record `plate_id` and asks
/// the camera to push the next stored one (it waits for this otherwise).
pub fn reply_continue_offline(plate_id: Option<&str>) -> Value {
    let mut cont = Map::new();
    if let Some(id) = plate_id {
        cont.insert("plateid".into(), id_value(id));
    }
    cont.insert("continue".into(), Value::from(1));
    json!({ "Response_AlarmInfoPlate": { "ContinuePushOffline": cont } })
}

/// A numeric id as a JSON number (as the camera sent it), anything else as a
/// string.
fn id_value(id: &str) -> Value {
    id.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(id))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| truncate(s))
}

fn object<'a>(v: &'a Value, field: &'static str) -> Result<&'a Map<String, Value>, ParseError> {
    v.as_object()
        .ok_or_else(|| ParseError::invalid(field, "not an object"))
}

fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn opt_str(
    obj: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<String>, ParseError> {
    match present(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ParseError::invalid(field, "not a string")),
    }
}

/// An integer given as a JSON number or a decimal string.
fn opt_int(
    obj: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<i64>, ParseError> {
    match present(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ParseError::invalid(field, "not an integer within range")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ParseError::invalid(field, "not an integer")),
        Some(_) => Err(ParseError::invalid(field, "not an integer")),
    }
}

/// A 0/1 flag given as a number, a numeric string or a boolean.
fn opt_flag(obj: &Map<String, Value>, key: &str, field: &'static str) -> Result<bool, ParseError> {
    match present(obj, key) {
        Some(Value::Bool(b)) => Ok(*b),
        _ => Ok(opt_int(obj, key, field)?.is_some_and(|v| v != 0)),
    }
}

/// An id given as a number or a string.
fn opt_id(
    obj: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<String>, ParseError> {
    match present(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(Value::String(s)) => Ok(non_empty(s.trim())),
        Some(_) => Err(ParseError::invalid(field, "not an integer or string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plate_json(pr: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "AlarmInfoPlate": { "serialno": "s-1", "result": { "PlateResult": pr } }
        }))
        .expect("serialises")
    }

    fn parse_plate(pr: Value) -> Result<PlateReadPayload, ParseError> {
        match parse(Some("application/json"), &plate_json(pr))? {
            CameraMessage::Plate(p) => Ok(*p),
            other => panic!("not a plate: {other:?}"),
        }
    }

    #[test]
    fn minimal_plate_parses() {
        let p = parse_plate(json!({"license": "京A12345"})).expect("parses");
        assert_eq!(p.plate, "京A12345");
        assert_eq!(p.colour, PlateColour::Unknown);
        assert_eq!(p.serial.as_deref(), Some("s-1"));
        assert_eq!(p.trigger, Trigger::Other);
        assert_eq!(p.device_time_ms, None);
    }

    #[test]
    fn ids_and_flags_accept_strings_and_numbers() {
        let p = parse_plate(json!({
            "license": "京A12345", "plateid": "77", "isoffline": true,
            "gioouts": [{"ionum": 1, "ctrltype": 2}, {"ionum": "2", "ctrltype": "0"}]
        }))
        .expect("parses");
        assert_eq!(p.read_id.as_deref(), Some("77"));
        assert!(p.resend);
        assert!(p.opened_by_camera);
    }

    #[test]
    fn truncated_json_is_rejected() {
        let body = plate_json(json!({"license": "京A12345"}));
        let err = parse(None, &body[..body.len() - 3]).expect_err("truncated");
        assert!(matches!(err, ParseError::Json(_)), "{err}");
    }

    #[test]
    fn wrong_types_are_rejected_with_the_field_name() {
        let err = parse_plate(json!({"license": 5})).expect_err("license not a string");
        assert_eq!(
            err,
            ParseError::invalid("PlateResult.license", "not a string")
        );
        let err = parse_plate(json!({"license": "x", "confidence": 101})).expect_err("range");
        assert!(err.to_string().contains("confidence"), "{err}");
        let err = parse_plate(json!({"license": "x", "gioouts": {}})).expect_err("not array");
        assert!(err.to_string().contains("gioouts"), "{err}");
        let err = parse_plate(json!({"license": "x", "gioouts": [{"ionum": [1]}]}))
            .expect_err("ionum wrong type");
        assert!(err.to_string().contains("ionum"), "{err}");
        let err = parse(None, br#"{"AlarmInfoPlate": []}"#).expect_err("not an object");
        assert!(err.to_string().contains("AlarmInfoPlate"), "{err}");
        let err = parse(None, br#"{"AlarmInfoPlate": {"result": {}}}"#).expect_err("missing");
        assert_eq!(
            err,
            ParseError::MissingField("AlarmInfoPlate.result.PlateResult")
        );
    }

    #[test]
    fn huge_numbers_are_rejected_not_wrapped() {
        let err = parse_plate(json!({"license": "x", "timeStamp": {"Timeval": {"sec": i64::MAX}}}))
            .expect_err("overflow");
        assert!(err.to_string().contains("Timeval.sec"), "{err}");
        let body =
            br#"{"AlarmInfoPlate":{"result":{"PlateResult":{"license":"x","plateid":1e400}}}}"#;
        assert!(parse(None, body).is_err());
        let body = br#"{"AlarmInfoPlate":{"result":{"PlateResult":{"license":"x","confidence":18446744073709551616}}}}"#;
        assert!(parse(None, body).is_err());
    }

    #[test]
    fn bad_base64_is_rejected() {
        let err = parse_plate(json!({"license": "x", "imageFile": "not base64!"}))
            .expect_err("bad image");
        assert_eq!(err, ParseError::Base64("PlateResult.imageFile"));
    }

    #[test]
    fn images_are_decoded() {
        let p = parse_plate(json!({
            "license": "x", "imageFile": "/9j/4A==", "imageFragmentFile": "aGk="
        }))
        .expect("parses");
        assert_eq!(p.images.len(), 2);
        assert_eq!(p.images[0].kind, ImageKind::Full);
        assert_eq!(p.images[0].content_type, "image/jpeg");
        assert_eq!(p.images[1].bytes, b"hi");
    }

    #[test]
    fn empty_and_odd_bodies_are_errors() {
        assert_eq!(parse(None, b""), Err(ParseError::Empty));
        assert_eq!(
            parse(Some("application/json"), b"  \n"),
            Err(ParseError::Empty)
        );
        assert!(matches!(
            parse(None, b"[1,2]"),
            Err(ParseError::UnsupportedContentType(_))
        ));
        assert!(matches!(
            parse(Some("application/json"), b"[1,2]"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse(None, b"{}"),
            Err(ParseError::UnknownMessage(_))
        ));
        assert!(matches!(
            parse(Some("image/jpeg"), b"\xFF\xD8\xFF"),
            Err(ParseError::UnsupportedContentType(_))
        ));
    }

    #[test]
    fn json_under_a_form_content_type_is_still_json() {
        let body = plate_json(json!({"license": "京A12345"}));
        for ct in [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "text/plain",
        ] {
            assert!(
                matches!(parse(Some(ct), &body), Ok(CameraMessage::Plate(_))),
                "{ct}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let body = "[".repeat(100_000);
        assert!(matches!(
            parse(Some("application/json"), body.as_bytes()),
            Err(ParseError::Json(_))
        ));
    }

    #[test]
    fn gb18030_body_is_decoded() {
        let text =
            r#"{"AlarmInfoPlate":{"result":{"PlateResult":{"license":"黑A12345","colorType":1}}}}"#;
        let (gbk, _, _) = encoding_rs::GB18030.encode(text);
        let CameraMessage::Plate(p) = parse(None, &gbk).expect("parses") else {
            panic!("not a plate");
        };
        assert_eq!(p.plate, "黑A12345");
    }

    #[test]
    fn trigger_codes() {
        assert_eq!(trigger_from_code(1), Trigger::Video);
        assert_eq!(trigger_from_code(2), Trigger::Loop);
        assert_eq!(trigger_from_code(3), Trigger::Loop);
        assert_eq!(trigger_from_code(4), Trigger::Software);
        assert_eq!(trigger_from_code(8), Trigger::VirtualLoop);
        assert_eq!(trigger_from_code(64), Trigger::Other);
        assert_eq!(trigger_from_code(-1), Trigger::Other);
        for t in [
            Trigger::Video,
            Trigger::Loop,
            Trigger::Software,
            Trigger::VirtualLoop,
        ] {
            assert_eq!(trigger_from_code(trigger_code(t).into()), t);
        }
    }

    #[test]
    fn colour_codes_round_trip() {
        for c in [
            PlateColour::Unknown,
            PlateColour::Blue,
            PlateColour::Yellow,
            PlateColour::White,
            PlateColour::Black,
            PlateColour::Green,
            PlateColour::YellowGreen,
        ] {
            assert_eq!(colour_from_code(colour_code(c).into()), c);
        }
        assert_eq!(colour_from_code(99), PlateColour::Unknown);
    }

    #[test]
    fn replies() {
        assert_eq!(
            reply_plate(Some("21085"), true),
            json!({"Response_AlarmInfoPlate": {"info": "ok", "plateid": 21085}})
        );
        assert_eq!(
            reply_plate(None, false),
            json!({"Response_AlarmInfoPlate": {"info": "no"}})
        );
        assert_eq!(
            reply_plate(Some("abc"), false),
            json!({"Response_AlarmInfoPlate": {"info": "no", "plateid": "abc"}})
        );
        assert_eq!(
            reply_plate_pulse(Some("1"), 0, 1_000_000),
            json!({"Response_AlarmInfoPlate": {
                "info": "ok", "plateid": 1,
                "ivs_ioctrl": {"delay": 600000, "io": 0, "value": 2}
            }})
        );
    }

    #[test]
    fn gio_in_values_out_of_range_are_rejected() {
        let body = br#"{"AlarmGioIn":{"result":{"TriggerResult":{"source":300,"value":1}}}}"#;
        assert!(parse(None, body).is_err());
        let body = br#"{"AlarmGioIn":{"result":{"TriggerResult":{"source":1}}}}"#;
        assert_eq!(
            parse(None, body),
            Err(ParseError::MissingField("TriggerResult.value"))
        );
    }

    #[test]
    fn urlencoded_heartbeat_keeps_only_the_serial() {
        let body = b"device_name=IVS&user_name=admin&pass_wd=secret&serialno=d85b1269-8f942256";
        let msg = parse(Some("application/x-www-form-urlencoded"), body).expect("parses");
        assert_eq!(
            msg,
            CameraMessage::Heartbeat {
                serial: Some("d85b1269-8f942256".into())
            }
        );
        assert!(!format!("{msg:?}").contains("secret"));
        assert!(matches!(
            parse(Some("application/x-www-form-urlencoded"), b"a=b"),
            Err(ParseError::UnknownMessage(_))
        ));
    }
}
