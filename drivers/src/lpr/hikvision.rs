//! Hikvision ISAPI `EventNotificationAlert` pushes: ANPR plate reads (plain
//! XML or `multipart/form-data` with an `anpr.xml` part and JPEG parts), IO
//! input alarms and the `videoloss`/`inactive` heartbeat.
//!
//! Pure and sans-IO. XML is read with `quick-xml` as a stream of events:
//! elements are matched on their local names (the namespace differs between
//! firmwares), a `<!DOCTYPE>` is refused, and only the five predefined
//! entities and character references are resolved — nothing is ever
//! expanded from a DTD. Hikvision pushes are fire-and-forget: the camera does
//! not resend on an error reply, so the listener should answer
//! [`REPLY_STATUS`] and queue internally.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{
    CameraMessage, Direction, Image, ImageKind, ParseError, PlateReadPayload, Trigger, decode_text,
    media_type, multipart, normalise_plate, strip_colour_prefix, truncate,
};
use crate::event::PlateColour;

/// The HTTP status to answer every push with.
pub const REPLY_STATUS: u16 = 200;

/// The reply body (empty: the camera does not read it).
pub const REPLY_BODY: &str = "";

/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 32;

/// Decodes one Hikvision push.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<CameraMessage, ParseError> {
    if body.trim_ascii().is_empty() {
        return Err(ParseError::Empty);
    }
    let media = media_type(content_type);
    let is_multipart = match media.as_deref() {
        Some(m) if m.starts_with("multipart/") => true,
        Some(m) if m.contains("xml") => false,
        _ => multipart::looks_like_multipart(body),
    };
    if is_multipart {
        parse_multipart(content_type, body)
    } else {
        let text = decode_text(body);
        let alert = read_alert(&text)?;
        alert.into_message(Vec::new())
    }
}

fn parse_multipart(content_type: Option<&str>, body: &[u8]) -> Result<CameraMessage, ParseError> {
    let parts = multipart::parts(content_type, body)?;
    let is_xml = |p: &multipart::Part| {
        p.media_type.as_deref().is_some_and(|m| m.contains("xml"))
            || p.name.as_deref().is_some_and(|n| n.ends_with(".xml"))
            || p.file_name.as_deref().is_some_and(|n| n.ends_with(".xml"))
            || p.data.trim_ascii_start().starts_with(b"<")
    };
    let Some(xml_index) = parts.iter().position(is_xml) else {
        return Err(ParseError::Multipart("no XML part".into()));
    };
    let alert = read_alert(&decode_text(&parts[xml_index].data))?;
    let mut images = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i == xml_index || part.data.is_empty() {
            continue;
        }
        let name = part
            .file_name
            .as_deref()
            .or(part.name.as_deref())
            .unwrap_or_default();
        let kind = alert.picture_kind(name);
        let mut image = Image::new(kind, part.data);
        // A declared image type wins over sniffing the bytes.
        match part.media_type.as_deref() {
            Some("image/jpeg") => image.content_type = "image/jpeg",
            Some("image/png") => image.content_type = "image/png",
            _ => {}
        }
        images.push(image);
    }
    alert.into_message(images)
}

/// The fields of an `EventNotificationAlert` this codec uses.
#[derive(Debug, Default)]
struct Alert {
    event_type: Option<String>,
    event_state: Option<String>,
    date_time: Option<String>,
    uuid: Option<String>,
    retransmission: Option<String>,
    mac: Option<String>,
    input_port: Option<String>,
    anpr: bool,
    license: Option<String>,
    confidence: Option<String>,
    plate_color: Option<String>,
    plate_type: Option<String>,
    direction: Option<String>,
    /// `pictureInfoList`: (fileName, type).
    pictures: Vec<(String, String)>,
    picture: (Option<String>, Option<String>),
}

fn read_alert(xml: &str) -> Result<Alert, ParseError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut alert = Alert::default();
    let mut seen_root = false;
    let xml_err = |e: quick_xml::Error| ParseError::Xml(truncate(&e.to_string()));
    loop {
        let event = reader.read_event().map_err(xml_err)?;
        match event {
            Event::DocType(_) => return Err(ParseError::Doctype),
            Event::Start(start) => {
                let name = start.local_name().as_ref().to_owned();
                if stack.is_empty() {
                    if seen_root {
                        return Err(ParseError::Xml("more than one root element".into()));
                    }
                    if name != "EventNotificationAlert" {
                        return Err(ParseError::UnknownMessage(truncate(&format!(
                            "root element {name}, expected EventNotificationAlert"
                        ))));
                    }
                    seen_root = true;
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::Xml("elements nested too deeply".into()));
                }
                if name == "ANPR" {
                    alert.anpr = true;
                }
                stack.push(name);
                text.clear();
            }
            Event::Empty(start) => {
                if stack.is_empty() {
                    return Err(ParseError::UnknownMessage(
                        "empty root element, expected EventNotificationAlert".into(),
                    ));
                }
                stack.push(start.local_name().as_ref().to_owned());
                alert.element_end(&stack, "");
                stack.pop();
                text.clear();
            }
            Event::End(_) => {
                alert.element_end(&stack, &text);
                stack.pop();
                text.clear();
            }
            Event::Text(t) => {
                if stack.is_empty() {
                    if !t.trim_ascii().is_empty() {
                        return Err(ParseError::Xml("text outside the root element".into()));
                    }
                } else {
                    text.push_str(&t.xml10_content());
                }
            }
            Event::CData(c) => text.push_str(&c),
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    match r.resolve_char_ref().map_err(xml_err)? {
                        Some(ch) => text.push(ch),
                        None => return Err(ParseError::Entity(truncate(&r))),
                    }
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    text.push_str(s);
                } else {
                    return Err(ParseError::Entity(truncate(&r)));
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(ParseError::Xml("document ends inside an element".into()));
    }
    if !seen_root {
        return Err(ParseError::Xml("no root element".into()));
    }
    Ok(alert)
}

impl Alert {
    /// Records the text of the element on top of `stack` as it closes.
    fn element_end(&mut self, stack: &[String], text: &str) {
        let Some((name, parents)) = stack.split_last() else {
            return;
        };
        let parent = parents.last().map(String::as_str);
        let value = || Some(text.trim().to_owned());
        match (parent, name.as_str()) {
            (Some("EventNotificationAlert"), field) if parents.len() == 1 => match field {
                "eventType" => self.event_type = value(),
                "eventState" => self.event_state = value(),
                "dateTime" => self.date_time = value(),
                "UUID" => self.uuid = value(),
                "isDataRetransmission" => self.retransmission = value(),
                "macAddress" => self.mac = value(),
                "inputIOPortID" => self.input_port = value(),
                _ => {}
            },
            (Some("ANPR"), field) => match field {
                "licensePlate" => self.license = value(),
                "confidenceLevel" => self.confidence = value(),
                "plateColor" => self.plate_color = value(),
                "plateType" => self.plate_type = value(),
                "direction" => self.direction = value(),
                _ => {}
            },
            (Some("pictureInfo"), "fileName") => self.picture.0 = value(),
            (Some("pictureInfo"), "type") => self.picture.1 = value(),
            (Some("pictureInfoList"), "pictureInfo") => {
                if let (Some(file), Some(kind)) = std::mem::take(&mut self.picture) {
                    self.pictures.push((file, kind));
                }
            }
            _ => {}
        }
    }

    /// What the picture part named `name` shows, by the `pictureInfoList`
    /// entry of that file name, or else by the name itself.
    fn picture_kind(&self, name: &str) -> ImageKind {
        let kind = self
            .pictures
            .iter()
            .find(|(file, _)| file == name)
            .map(|(_, kind)| kind.as_str())
            .unwrap_or(name);
        if kind.starts_with("licensePlate") || kind.starts_with("plate") {
            ImageKind::Plate
        } else {
            ImageKind::Full
        }
    }

    fn into_message(self, images: Vec<Image>) -> Result<CameraMessage, ParseError> {
        let serial = self.mac.clone().filter(|m| !m.is_empty());
        let event_type = self.event_type.as_deref().unwrap_or_default();
        if self.anpr || event_type.eq_ignore_ascii_case("ANPR") {
            return self
                .plate(images)
                .map(|p| CameraMessage::Plate(Box::new(p)));
        }
        let active = self
            .event_state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("active"));
        match event_type.to_ascii_lowercase().as_str() {
            "" => Err(ParseError::MissingField("eventType")),
            "io" => {
                let port = self
                    .input_port
                    .as_deref()
                    .ok_or(ParseError::MissingField("inputIOPortID"))?;
                let source = port
                    .parse::<u8>()
                    .map_err(|_| ParseError::invalid("inputIOPortID", "not within 0..=255"))?;
                Ok(CameraMessage::GioIn {
                    serial,
                    source,
                    value: u8::from(active),
                })
            }
            "videoloss" if !active => Ok(CameraMessage::Heartbeat { serial }),
            "heartbeat" => Ok(CameraMessage::Heartbeat { serial }),
            _ => Ok(CameraMessage::Other("hikvision_event")),
        }
    }

    fn plate(self, images: Vec<Image>) -> Result<PlateReadPayload, ParseError> {
        let license = self
            .license
            .ok_or(ParseError::MissingField("ANPR.licensePlate"))?;
        let (stripped, prefix_colour) = strip_colour_prefix(&license);
        let plate = normalise_plate(stripped);
        let mut colour = self
            .plate_color
            .as_deref()
            .map(colour_from_name)
            .unwrap_or_default();
        if colour == PlateColour::Unknown {
            colour = prefix_colour.unwrap_or_default();
        }
        let confidence = match self.confidence.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => Some(
                c.parse::<u8>()
                    .ok()
                    .filter(|c| *c <= 100)
                    .ok_or_else(|| ParseError::invalid("confidenceLevel", "not within 0..=100"))?,
            ),
            None if plate.is_empty() => Some(0),
            None => None,
        };
        let resend = match self.retransmission.as_deref() {
            None | Some("") => false,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(_) => {
                return Err(ParseError::invalid(
                    "isDataRetransmission",
                    "not true or false",
                ));
            }
        };
        let device_time_ms = match self.date_time.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => parse_date_time(d)?,
            None => None,
        };
        let direction = match self.direction.as_deref() {
            Some("forward") => Some(Direction::Forward),
            Some("reverse") => Some(Direction::Reverse),
            _ => None,
        };
        let plate_type = self
            .plate_type
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("unknown"));
        Ok(PlateReadPayload {
            plate,
            colour,
            confidence,
            trigger: Trigger::Other,
            read_id: self.uuid.filter(|u| !u.is_empty()),
            resend,
            device_time_ms,
            serial: self.mac.filter(|m| !m.is_empty()),
            direction,
            plate_type,
            fake_plate: false,
            opened_by_camera: false,
            images,
        })
    }
}

/// ISAPI `plateColor` → colour.
pub fn colour_from_name(name: &str) -> PlateColour {
    match name.trim().to_ascii_lowercase().as_str() {
        "blue" => PlateColour::Blue,
        "yellow" => PlateColour::Yellow,
        "white" => PlateColour::White,
        "black" | "civilaviationblack" => PlateColour::Black,
        "green" | "newenergygreen" | "civilaviationgreen" => PlateColour::Green,
        "yellowgreen" | "newenergyyellowgreen" => PlateColour::YellowGreen,
        _ => PlateColour::Unknown,
    }
}

/// Colour → ISAPI `plateColor`.
pub fn colour_name(colour: PlateColour) -> &'static str {
    match colour {
        PlateColour::Unknown => "unknown",
        PlateColour::Blue => "blue",
        PlateColour::Yellow => "yellow",
        PlateColour::White => "white",
        PlateColour::Black => "black",
        PlateColour::Green => "green",
        PlateColour::YellowGreen => "yellowGreen",
    }
}

/// `dateTime` (ISO 8601 / RFC 3339 with offset) → Unix milliseconds. A time
/// without an offset is the camera's local time in an unknown zone: `None`.
fn parse_date_time(s: &str) -> Result<Option<i64>, ParseError> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(Some(t.as_millisecond()));
    }
    if s.parse::<jiff::civil::DateTime>().is_ok() {
        return Ok(None);
    }
    Err(ParseError::invalid(
        "dateTime",
        format!("not an ISO 8601 date-time: {}", truncate(s)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(inner: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?><EventNotificationAlert version=\"2.0\" xmlns=\"urn:x\">{inner}</EventNotificationAlert>"
        )
    }

    fn parse_plate(xml: &str) -> Result<PlateReadPayload, ParseError> {
        match parse(Some("application/xml"), xml.as_bytes())? {
            CameraMessage::Plate(p) => Ok(*p),
            other => panic!("not a plate: {other:?}"),
        }
    }

    #[test]
    fn doctype_is_refused() {
        let xml = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><EventNotificationAlert><eventType>ANPR</eventType><ANPR><licensePlate>&xxe;</licensePlate></ANPR></EventNotificationAlert>"#;
        assert_eq!(parse(None, xml.as_bytes()), Err(ParseError::Doctype));
    }

    #[test]
    fn undeclared_entities_are_refused_and_predefined_ones_resolved() {
        let xml =
            alert("<eventType>ANPR</eventType><ANPR><licensePlate>&lol;</licensePlate></ANPR>");
        assert_eq!(
            parse(None, xml.as_bytes()),
            Err(ParseError::Entity("lol".into()))
        );
        let xml = alert(
            "<eventType>ANPR</eventType><ANPR><licensePlate>&#x4EAC;A&amp;1</licensePlate></ANPR>",
        );
        assert_eq!(parse_plate(&xml).expect("parses").plate, "京A&1");
    }

    #[test]
    fn namespace_prefixes_are_ignored() {
        let xml = r#"<h:EventNotificationAlert xmlns:h="http://www.isapi.org/ver20/XMLSchema"><h:eventType>ANPR</h:eventType><h:ANPR><h:licensePlate>黄绿粤B12345</h:licensePlate><h:plateColor>unknown</h:plateColor></h:ANPR></h:EventNotificationAlert>"#;
        let p = parse_plate(xml).expect("parses");
        assert_eq!(p.plate, "粤B12345");
        assert_eq!(p.colour, PlateColour::YellowGreen);
    }

    #[test]
    fn malformed_xml_is_rejected() {
        for bad in [
            "<EventNotificationAlert><eventType>ANPR</eventType>",
            "<EventNotificationAlert><a></b></EventNotificationAlert>",
            "not xml at all",
            "<Other/>",
            "<EventNotificationAlert/>",
            "<?xml version=\"1.0\"?>",
            "<EventNotificationAlert></EventNotificationAlert><EventNotificationAlert>",
        ] {
            assert!(
                parse(Some("application/xml"), bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(parse(None, b" \r\n"), Err(ParseError::Empty));
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let xml = alert(&"<a>".repeat(100));
        assert!(matches!(
            parse(None, xml.as_bytes()),
            Err(ParseError::Xml(_))
        ));
    }

    #[test]
    fn missing_or_bad_fields_are_named() {
        let xml = alert("<eventType>ANPR</eventType>");
        assert_eq!(
            parse(None, xml.as_bytes()),
            Err(ParseError::MissingField("ANPR.licensePlate"))
        );
        let xml = alert(
            "<ANPR><licensePlate>x</licensePlate><confidenceLevel>300</confidenceLevel></ANPR>",
        );
        assert!(
            parse_plate(&xml)
                .expect_err("range")
                .to_string()
                .contains("confidenceLevel")
        );
        let xml =
            alert("<dateTime>yesterday</dateTime><ANPR><licensePlate>x</licensePlate></ANPR>");
        assert!(
            parse_plate(&xml)
                .expect_err("date")
                .to_string()
                .contains("dateTime")
        );
        let xml = alert("<eventType>IO</eventType><inputIOPortID>999</inputIOPortID>");
        assert!(parse(None, xml.as_bytes()).is_err());
        assert_eq!(
            parse(None, alert("").as_bytes()),
            Err(ParseError::MissingField("eventType"))
        );
    }

    #[test]
    fn date_time_forms() {
        assert_eq!(
            parse_date_time("2023-10-10T18:21:01+08:00"),
            Ok(Some(1_696_933_261_000))
        );
        assert_eq!(
            parse_date_time("2023-10-10T10:21:01.250Z"),
            Ok(Some(1_696_933_261_250))
        );
        assert_eq!(parse_date_time("2023-10-10T18:21:01"), Ok(None));
        assert!(parse_date_time("99999-10-10T18:21:01+08:00").is_err());
    }

    #[test]
    fn heartbeat_and_other_events() {
        let xml = alert(
            "<macAddress>aa</macAddress><eventType>videoloss</eventType><eventState>inactive</eventState>",
        );
        assert_eq!(
            parse(None, xml.as_bytes()),
            Ok(CameraMessage::Heartbeat {
                serial: Some("aa".into())
            })
        );
        let xml = alert("<eventType>VMD</eventType>");
        assert_eq!(
            parse(None, xml.as_bytes()),
            Ok(CameraMessage::Other("hikvision_event"))
        );
    }

    #[test]
    fn colour_names_round_trip() {
        for c in [
            PlateColour::Unknown,
            PlateColour::Blue,
            PlateColour::Yellow,
            PlateColour::White,
            PlateColour::Black,
            PlateColour::Green,
            PlateColour::YellowGreen,
        ] {
            assert_eq!(colour_from_name(colour_name(c)), c);
        }
    }
}
