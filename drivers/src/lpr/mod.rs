//! Licence-plate camera payload codecs: what the cameras in a guard room POST
//! to the gateway, decoded into one vendor-neutral [`CameraMessage`], and the
//! reply bodies that tell a camera whether to lift its barrier.
//!
//! The codecs are pure and sans-IO: they take the request's `Content-Type`
//! and body bytes and return a value or a [`ParseError`] that says what was
//! wrong (suitable as a 4xx reason). They never panic on any input and never
//! allocate much beyond the size of the input.
//!
//! - [`vzenith`]: 臻识 (and OEM, e.g. 千熠) `AlarmInfoPlate` JSON, `AlarmGioIn`,
//!   the multipart heartbeat, and the `Response_AlarmInfoPlate` replies.
//! - [`hikvision`]: ISAPI `EventNotificationAlert` (ANPR, IO, heartbeat), plain
//!   XML or `multipart/form-data` with picture parts.
//! - [`huaxia`]: 华夏智信 "HTTP POST mode 5" urlencoded forms and the reply.
//! - [`parse`]: the dispatcher the device listener calls with a [`Vendor`].
//!
//! Charset: bodies are UTF-8; a body that is not valid UTF-8 is decoded as
//! GB18030 (a superset of GBK/GB2312, which older firmware uses).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::event::{DeviceEvent, PlateColour};

pub mod hikvision;
pub mod huaxia;
mod multipart;
pub mod vzenith;

/// Longest field value echoed back in an error message, in characters.
const MAX_ECHO: usize = 64;

/// A camera vendor whose push protocol the gateway understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// 臻识 Vzenith (and OEM cameras using its `AlarmInfoPlate` JSON).
    Vzenith,
    /// Hikvision ISAPI `EventNotificationAlert`.
    Hikvision,
    /// 华夏智信 Huaxia, HTTP POST mode 5.
    Huaxia,
}

impl Vendor {
    /// Every supported vendor.
    pub const ALL: [Vendor; 3] = [Vendor::Vzenith, Vendor::Hikvision, Vendor::Huaxia];

    /// The configuration name (`vzenith`, `hikvision`, `huaxia`).
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Vzenith => "vzenith",
            Vendor::Hikvision => "hikvision",
            Vendor::Huaxia => "huaxia",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vendor name that is not one of [`Vendor::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown camera vendor {0:?} (expected vzenith, hikvision or huaxia)")]
pub struct UnknownVendor(pub String);

impl FromStr for Vendor {
    type Err = UnknownVendor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Vendor::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownVendor(truncate(s)))
    }
}

/// What made the camera read a plate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Trigger {
    /// The camera's video detection (视频触发).
    Video,
    /// A hardware input, usually the loop detector (地感/IO 触发).
    Loop,
    /// Software or SDK trigger (manual snapshot, 软触发).
    Software,
    /// A virtual loop drawn in the camera's image (虚拟线圈).
    VirtualLoop,
    /// Anything else (lingering vehicle, reversing, unknown codes).
    #[default]
    Other,
}

impl Trigger {
    /// The name used in [`DeviceEvent::PlateRead`]'s `trigger`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Video => "video",
            Trigger::Loop => "loop",
            Trigger::Software => "software",
            Trigger::VirtualLoop => "virtual_loop",
            Trigger::Other => "other",
        }
    }
}

/// Which way the vehicle moved or which lane the camera watches, as the
/// vendor reports it (the vendors do not agree on one notion).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Vzenith: moving left in the image.
    Left,
    /// Vzenith: moving right in the image.
    Right,
    /// Vzenith: moving up in the image (away from the camera).
    Up,
    /// Vzenith: moving down in the image (towards the camera).
    Down,
    /// Hikvision: `forward`.
    Forward,
    /// Hikvision: `reverse`.
    Reverse,
    /// Huaxia: the camera is configured as an entry camera (`vdc_type=in`).
    In,
    /// Huaxia: the camera is configured as an exit camera (`vdc_type=out`).
    Out,
}

/// What an image shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// The whole scene (全景图 / detection or vehicle picture).
    Full,
    /// The plate crop (车牌小图 / close-up).
    Plate,
}

/// An image that came with a plate read.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    /// What the image shows.
    pub kind: ImageKind,
    /// The decoded image file.
    pub bytes: Vec<u8>,
    /// Its media type (`image/jpeg`, `image/png`, or
    /// `application/octet-stream` when neither).
    pub content_type: &'static str,
}

impl Image {
    /// An image whose media type is sniffed from its first bytes.
    pub fn new(kind: ImageKind, bytes: Vec<u8>) -> Self {
        let content_type = sniff_image_type(&bytes);
        Self {
            kind,
            bytes,
            content_type,
        }
    }

    /// The usual file extension for the image's media type.
    pub fn extension(&self) -> &'static str {
        match self.content_type {
            "image/jpeg" => "jpg",
            "image/png" => "png",
            _ => "bin",
        }
    }
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("kind", &self.kind)
            .field("len", &self.bytes.len())
            .field("content_type", &self.content_type)
            .finish()
    }
}

fn sniff_image_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else {
        "application/octet-stream"
    }
}

/// One plate read, vendor-neutral.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PlateReadPayload {
    /// The plate, colour prefix removed (`苏A8HK52`); `""` for a vehicle
    /// without a readable plate (无牌车: Vzenith `_无_`, Hikvision `unknown`).
    /// Of a `|`-joined cross-border plate set, only the first.
    pub plate: String,
    /// Plate colour.
    pub colour: PlateColour,
    /// Recognition confidence 0–100, when the camera gives one.
    pub confidence: Option<u8>,
    /// What triggered the read.
    pub trigger: Trigger,
    /// The camera's own id of the read (Vzenith `plateid`, Hikvision `UUID`).
    pub read_id: Option<String>,
    /// A stored read re-sent after the camera was offline (Vzenith
    /// `isoffline`, Hikvision `isDataRetransmission`, Huaxia `type=offline`).
    pub resend: bool,
    /// When the camera saw the vehicle, Unix milliseconds (UTC).
    pub device_time_ms: Option<i64>,
    /// The camera's serial or id (Vzenith `serialno`, Hikvision MAC address,
    /// Huaxia `cam_id`).
    pub serial: Option<String>,
    /// Direction, as the vendor reports it.
    pub direction: Option<Direction>,
    /// The vendor's plate type (Vzenith numeric code, Hikvision `plateType`).
    pub plate_type: Option<String>,
    /// The camera flagged the plate as fake (Vzenith `is_fake_plate`,
    /// Huaxia `plate_val=false`).
    pub fake_plate: bool,
    /// The camera opened its barrier by itself (Vzenith `gioouts` with
    /// `ctrltype` 2: offline whitelist).
    pub opened_by_camera: bool,
    /// Images carried in the push.
    pub images: Vec<Image>,
}

impl PlateReadPayload {
    /// The [`DeviceEvent::PlateRead`] for this read, with `images` the names
    /// the images were saved under.
    pub fn to_event(&self, images: Vec<String>) -> DeviceEvent {
        DeviceEvent::PlateRead {
            plate: self.plate.clone(),
            colour: self.colour,
            confidence: self.confidence,
            trigger: self.trigger.as_str().to_owned(),
            read_id: self.read_id.clone(),
            resend: self.resend,
            images,
        }
    }
}

/// A decoded camera push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraMessage {
    /// A plate read.
    Plate(Box<PlateReadPayload>),
    /// The camera is alive.
    Heartbeat {
        /// The camera's serial or id, when the heartbeat carries one.
        serial: Option<String>,
    },
    /// A camera input (IO) changed (Vzenith `AlarmGioIn`, Hikvision `IO`).
    GioIn {
        /// The camera's serial or id, when known.
        serial: Option<String>,
        /// Input number.
        source: u8,
        /// Input state after the change (1 active, 0 inactive).
        value: u8,
    },
    /// A well-formed push the gateway does not act on; the name says which
    /// (`serial_data`, `trigger_image`, `command_ack`, `hikvision_event` …).
    Other(&'static str),
}

/// Why a camera push could not be decoded. The message is meant for a 4xx
/// reply and a log line; it never contains credentials or image data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body was empty.
    #[error("empty body")]
    Empty,
    /// The content type is not one this vendor sends.
    #[error("unsupported content type {0:?}")]
    UnsupportedContentType(String),
    /// The body is not well-formed JSON, or a field has the wrong JSON type.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The body is not well-formed XML.
    #[error("invalid XML: {0}")]
    Xml(String),
    /// The XML carries a document type declaration (refused: no DTDs, no
    /// entity definitions).
    #[error("XML with a <!DOCTYPE> declaration is not accepted")]
    Doctype,
    /// The XML refers to an entity other than the five predefined ones.
    #[error("XML entity reference &{0}; is not allowed")]
    Entity(String),
    /// The multipart body could not be split into parts.
    #[error("invalid multipart body: {0}")]
    Multipart(String),
    /// The urlencoded form could not be decoded.
    #[error("invalid form: {0}")]
    Form(String),
    /// A required field is missing.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field is present but its value is not acceptable.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An image field is not valid base64.
    #[error("field {0} is not valid base64")]
    Base64(&'static str),
    /// The body is well-formed but is no message this vendor sends.
    #[error("unrecognised message: {0}")]
    UnknownMessage(String),
}

impl ParseError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ParseError::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// Decodes one camera push from `vendor`.
///
/// `content_type` is the request's `Content-Type` header, if any; when it is
/// missing the body is sniffed.
pub fn parse(
    vendor: Vendor,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CameraMessage, ParseError> {
    match vendor {
        Vendor::Vzenith => vzenith::parse(content_type, body),
        Vendor::Hikvision => hikvision::parse(content_type, body),
        Vendor::Huaxia => huaxia::parse(content_type, body),
    }
}

/// The body as text: UTF-8 (byte-order mark removed) or, when it is not
/// valid UTF-8, GB18030.
pub fn decode_text(body: &[u8]) -> Cow<'_, str> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match std::str::from_utf8(body) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => encoding_rs::GB18030.decode_without_bom_handling(body).0,
    }
}

/// The media type of a `Content-Type` header, lower-cased, without
/// parameters (`multipart/form-data; boundary=x` → `multipart/form-data`).
pub(crate) fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty())
}

/// At most [`MAX_ECHO`] characters of `s`, for error messages.
pub(crate) fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Removes a colour prefix (`蓝`, `黄`, `绿`, `白`, `黑`, `黄绿`, …) that
/// some cameras put before the plate, returning the colour it names.
///
/// `黑` is also the abbreviation of Heilongjiang (`黑A12345`), so it is only
/// taken as a colour when a province character (not ASCII) follows.
pub fn strip_colour_prefix(plate: &str) -> (&str, Option<PlateColour>) {
    const PREFIXES: [(&str, PlateColour); 6] = [
        ("黄绿", PlateColour::YellowGreen),
        ("蓝", PlateColour::Blue),
        ("黄", PlateColour::Yellow),
        ("绿", PlateColour::Green),
        ("白", PlateColour::White),
        ("黑", PlateColour::Black),
    ];
    for (prefix, colour) in PREFIXES {
        if let Some(rest) = plate.strip_prefix(prefix) {
            let Some(next) = rest.chars().next() else {
                return (plate, None);
            };
            if colour == PlateColour::Black && next.is_ascii() {
                return (plate, None);
            }
            return (rest, Some(colour));
        }
    }
    (plate, None)
}

/// Plate colour from a Chinese colour word (`蓝`, `蓝色`, `黄绿色` …).
pub(crate) fn colour_from_chinese(text: &str) -> PlateColour {
    let t = text.trim();
    let t = t.strip_suffix('色').unwrap_or(t);
    let t = t.strip_suffix('牌').unwrap_or(t);
    match t {
        "蓝" => PlateColour::Blue,
        "黄" => PlateColour::Yellow,
        "白" => PlateColour::White,
        "黑" => PlateColour::Black,
        "绿" | "渐变绿" => PlateColour::Green,
        "黄绿" => PlateColour::YellowGreen,
        _ => PlateColour::Unknown,
    }
}

/// The plate text normalised: trimmed, no-plate markers mapped to `""`, and
/// of a `|`-joined cross-border set only the first plate kept.
pub(crate) fn normalise_plate(raw: &str) -> String {
    let first = raw.split('|').next().unwrap_or_default().trim();
    match first {
        "_无_" | "无" | "无牌" | "无牌车" | "unknown" | "UNKNOWN" | "Unknown" | "none" => {
            String::new()
        }
        other => other.to_owned(),
    }
}

/// Decodes standard base64 leniently: ASCII whitespace is skipped and
/// padding is optional. The output is never longer than the input.
pub(crate) fn decode_base64(field: &'static str, text: &str) -> Result<Vec<u8>, ParseError> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Cow<'_, str> = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(text.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(text)
    };
    ENGINE
        .decode(compact.as_bytes())
        .map_err(|_| ParseError::Base64(field))
}

/// Standard base64 with padding, for building payloads.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_names_round_trip() {
        for v in Vendor::ALL {
            assert_eq!(v.as_str().parse::<Vendor>(), Ok(v));
        }
        assert_eq!("Hikvision".parse::<Vendor>(), Ok(Vendor::Hikvision));
        let err = "dahua".parse::<Vendor>().expect_err("not supported");
        assert!(err.to_string().contains("dahua"));
    }

    #[test]
    fn colour_prefix_is_stripped_but_heilongjiang_is_kept() {
        assert_eq!(
            strip_colour_prefix("蓝苏A8HK52"),
            ("苏A8HK52", Some(PlateColour::Blue))
        );
        assert_eq!(
            strip_colour_prefix("黄绿粤B12345"),
            ("粤B12345", Some(PlateColour::YellowGreen))
        );
        assert_eq!(
            strip_colour_prefix("黑京A12345"),
            ("京A12345", Some(PlateColour::Black))
        );
        assert_eq!(strip_colour_prefix("黑A12345"), ("黑A12345", None));
        assert_eq!(strip_colour_prefix("蓝"), ("蓝", None));
        assert_eq!(strip_colour_prefix("KH35192"), ("KH35192", None));
        assert_eq!(strip_colour_prefix(""), ("", None));
    }

    #[test]
    fn plates_are_normalised() {
        assert_eq!(normalise_plate("_无_"), "");
        assert_eq!(normalise_plate("unknown"), "");
        assert_eq!(normalise_plate(" 粤ZJ068澳|MX7742|ZM127 "), "粤ZJ068澳");
        assert_eq!(normalise_plate("|x"), "");
        assert_eq!(normalise_plate("京A12345"), "京A12345");
    }

    #[test]
    fn chinese_colour_words() {
        assert_eq!(colour_from_chinese("蓝色"), PlateColour::Blue);
        assert_eq!(colour_from_chinese("黄绿色"), PlateColour::YellowGreen);
        assert_eq!(colour_from_chinese("绿"), PlateColour::Green);
        assert_eq!(colour_from_chinese("其他"), PlateColour::Unknown);
    }

    #[test]
    fn text_falls_back_to_gb18030() {
        let (gbk, _, _) = encoding_rs::GB18030.encode("京A12345");
        assert!(std::str::from_utf8(&gbk).is_err());
        assert_eq!(decode_text(&gbk), "京A12345");
        assert_eq!(decode_text("\u{feff}ok".as_bytes()), "ok");
    }

    #[test]
    fn base64_is_lenient_about_whitespace_and_padding() {
        assert_eq!(decode_base64("f", "aGk=").ok(), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("f", "aG\r\nk").ok(), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("f", "a*"), Err(ParseError::Base64("f")));
    }

    #[test]
    fn images_are_sniffed() {
        assert_eq!(
            Image::new(ImageKind::Full, vec![0xFF, 0xD8, 0xFF, 0xE0]).content_type,
            "image/jpeg"
        );
        assert_eq!(Image::new(ImageKind::Plate, vec![1]).extension(), "bin");
    }

    #[test]
    fn truncation_is_char_safe() {
        let long = "京".repeat(100);
        let t = truncate(&long);
        assert_eq!(t.chars().count(), MAX_ECHO + 1);
    }

    #[test]
    fn payload_becomes_a_plate_read_event() {
        let p = PlateReadPayload {
            plate: "苏A8HK52".into(),
            colour: PlateColour::Blue,
            confidence: Some(78),
            trigger: Trigger::Loop,
            read_id: Some("1".into()),
            ..Default::default()
        };
        let DeviceEvent::PlateRead { trigger, plate, .. } = p.to_event(vec!["a.jpg".into()]) else {
            panic!("not a plate read");
        };
        assert_eq!(trigger, "loop");
        assert_eq!(plate, "苏A8HK52");
    }
}
