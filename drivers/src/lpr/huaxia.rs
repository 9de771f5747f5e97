//! 华夏智信 Huaxia "HTTP POST mode 5": `application/x-www-form-urlencoded`
//! pushes (`type` = `online` live read, `offline` stored read re-sent,
//! `heartbeat`) and the JSON reply whose `gpio_data` opens the barrier.
//!
//! Pure and sans-IO. Images are base64 with URL-safe substitutions
//! (`+`→`-`, `/`→`_`, `=`→`.`), reversed here before decoding.

use serde_json::{Value, json};

use super::{
    CameraMessage, Direction, Image, ImageKind, ParseError, PlateReadPayload, Trigger,
    colour_from_chinese, decode_base64, decode_text, encode_base64, hikvision, media_type,
    normalise_plate, truncate,
};
use crate::event::PlateColour;

/// The form fields this codec reads (first occurrence wins).
#[derive(Debug, Default)]
struct Fields {
    kind: Option<String>,
    plate_num: Option<String>,
    plate_color: Option<String>,
    plate_val: Option<String>,
    start_time: Option<String>,
    cam_id: Option<String>,
    vdc_type: Option<String>,
    triger_type: Option<String>,
    vehicle_type: Option<String>,
    picture: Option<String>,
    closeup_pic: Option<String>,
}

/// Decodes one Huaxia push.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<CameraMessage, ParseError> {
    if body.trim_ascii().is_empty() {
        return Err(ParseError::Empty);
    }
    match media_type(content_type).as_deref() {
        None | Some("application/x-www-form-urlencoded") | Some("text/plain") => {}
        Some(other) => return Err(ParseError::UnsupportedContentType(truncate(other))),
    }
    let text = decode_text(body);
    let mut f = Fields::default();
    for (name, value) in form_urlencoded::parse(text.trim().as_bytes()) {
        let slot = match name.as_ref() {
            "type" => &mut f.kind,
            "plate_num" => &mut f.plate_num,
            "plate_color" => &mut f.plate_color,
            "plate_val" => &mut f.plate_val,
            "start_time" => &mut f.start_time,
            "cam_id" => &mut f.cam_id,
            "vdc_type" => &mut f.vdc_type,
            "triger_type" => &mut f.triger_type,
            "vehicle_type" => &mut f.vehicle_type,
            "picture" => &mut f.picture,
            "closeup_pic" => &mut f.closeup_pic,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value.into_owned());
        }
    }
    let serial = f
        .cam_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(truncate);
    let kind = f.kind.as_deref().ok_or(ParseError::MissingField("type"))?;
    let resend = match kind.trim() {
        "heartbeat" => return Ok(CameraMessage::Heartbeat { serial }),
        "online" => false,
        "offline" => true,
        other => {
            return Err(ParseError::UnknownMessage(format!(
                "type={}",
                truncate(other)
            )));
        }
    };
    let plate_num = f
        .plate_num
        .as_deref()
        .ok_or(ParseError::MissingField("plate_num"))?;
    let plate = normalise_plate(plate_num);
    let colour = match f.plate_color.as_deref() {
        Some(c) => match colour_from_chinese(c) {
            PlateColour::Unknown => hikvision::colour_from_name(c),
            known => known,
        },
        None => PlateColour::Unknown,
    };
    let device_time_ms = match f.start_time.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .and_then(|sec| sec.checked_mul(1000))
                .ok_or_else(|| ParseError::invalid("start_time", "not a Unix time in seconds"))?,
        ),
    };
    let direction = match f.vdc_type.as_deref().map(str::trim) {
        Some("in") => Some(Direction::In),
        Some("out") => Some(Direction::Out),
        _ => None,
    };
    let trigger = match f.triger_type.as_deref().map(str::trim) {
        Some("video") => Trigger::Video,
        Some("hwtriger") => Trigger::Loop,
        Some("swtriger") => Trigger::Software,
        _ => Trigger::Other,
    };
    let fake_plate = f
        .plate_val
        .as_deref()
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    let mut images = Vec::new();
    for (value, field, kind) in [
        (&f.picture, "picture", ImageKind::Full),
        (&f.closeup_pic, "closeup_pic", ImageKind::Plate),
    ] {
        if let Some(b64) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            let bytes = decode_image(field, b64)?;
            if !bytes.is_empty() {
                images.push(Image::new(kind, bytes));
            }
        }
    }
    Ok(CameraMessage::Plate(Box::new(PlateReadPayload {
        plate,
        colour,
        confidence: None,
        trigger,
        read_id: None,
        resend,
        device_time_ms,
        serial,
        direction,
        plate_type: f.vehicle_type.filter(|t| !t.trim().is_empty()),
        fake_plate,
        opened_by_camera: false,
        images,
    })))
}

/// Huaxia's URL-safe base64 (`-` `_` `.` for `+` `/` `=`) decoded. A `+`
/// that the camera left unsubstituted arrives as a space after form decoding
/// and is restored.
pub fn decode_image(field: &'static str, text: &str) -> Result<Vec<u8>, ParseError> {
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' | ' ' => '+',
            '_' => '/',
            '.' => '=',
            other => other,
        })
        .collect();
    decode_base64(field, &standard)
}

/// Bytes in Huaxia's URL-safe base64.
pub fn encode_image(bytes: &[u8]) -> String {
    encode_base64(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            '=' => '.',
            other => other,
        })
        .collect()
}

/// The reply to any push: `open` adds `gpio_data` that switches output `io1`
/// on, which lifts the barrier.
pub fn reply(open: bool) -> Value {
    if open {
        json!({
            "error_num": 0,
            "error_str": "noerror",
            "gpio_data": [{ "ionum": "io1", "action": "on" }]
        })
    } else {
        json!({ "error_num": 0, "error_str": "noerror" })
    }
}

/// The Chinese colour word Huaxia sends for `colour` (`蓝色` …).
pub fn colour_word(colour: PlateColour) -> &'static str {
    match colour {
        PlateColour::Unknown => "其他",
        PlateColour::Blue => "蓝色",
        PlateColour::Yellow => "黄色",
        PlateColour::White => "白色",
        PlateColour::Black => "黑色",
        PlateColour::Green => "绿色",
        PlateColour::YellowGreen => "黄绿色",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    fn parse_plate(body: &str) -> Result<PlateReadPayload, ParseError> {
        match parse(FORM, body.as_bytes())? {
            CameraMessage::Plate(p) => Ok(*p),
            other => panic!("not a plate: {other:?}"),
        }
    }

    #[test]
    fn url_safe_images_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = encode_image(&bytes);
        assert!(!text.contains(['+', '/', '=']));
        assert_eq!(decode_image("picture", &text), Ok(bytes));
        assert_eq!(
            decode_image("picture", "a b."),
            decode_image("picture", "a-b.")
        );
    }

    #[test]
    fn bad_base64_names_the_field() {
        let err = parse_plate("type=online&plate_num=x&closeup_pic=%%%%").expect_err("bad");
        assert_eq!(err, ParseError::Base64("closeup_pic"));
    }

    #[test]
    fn required_fields_and_types() {
        assert_eq!(
            parse(FORM, b"plate_num=x"),
            Err(ParseError::MissingField("type"))
        );
        assert_eq!(
            parse(FORM, b"type=online"),
            Err(ParseError::MissingField("plate_num"))
        );
        assert!(matches!(
            parse(FORM, b"type=bogus"),
            Err(ParseError::UnknownMessage(_))
        ));
        assert!(matches!(
            parse(Some("application/json"), b"{}"),
            Err(ParseError::UnsupportedContentType(_))
        ));
        let err = parse_plate("type=online&plate_num=x&start_time=99999999999999999999")
            .expect_err("huge");
        assert!(err.to_string().contains("start_time"), "{err}");
        let err = parse_plate("type=online&plate_num=x&start_time=9223372036854775807")
            .expect_err("overflow");
        assert!(err.to_string().contains("start_time"), "{err}");
    }

    #[test]
    fn colour_words_and_english_names() {
        for c in [
            PlateColour::Blue,
            PlateColour::Yellow,
            PlateColour::White,
            PlateColour::Black,
            PlateColour::Green,
            PlateColour::YellowGreen,
        ] {
            let body = format!("type=online&plate_num=x&plate_color={}", colour_word(c));
            assert_eq!(parse_plate(&body).expect("parses").colour, c);
        }
        let p = parse_plate("type=online&plate_num=x&plate_color=blue").expect("parses");
        assert_eq!(p.colour, PlateColour::Blue);
    }

    #[test]
    fn replies_match_the_documented_shape() {
        assert_eq!(
            reply(true),
            json!({"error_num":0,"error_str":"noerror","gpio_data":[{"ionum":"io1","action":"on"}]})
        );
        assert_eq!(
            reply(false),
            json!({"error_num": 0, "error_str": "noerror"})
        );
    }
}
