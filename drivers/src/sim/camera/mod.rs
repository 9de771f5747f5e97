//! A simulated licence-plate camera: it POSTs the payloads a real Vzenith,
//! Hikvision or Huaxia camera sends to the gateway's device listener at
//! `{base_url}/lpr/{camera_id}` and reads back the reply (for Vzenith and
//! Huaxia the reply body is what lifts the barrier).
//!
//! The payload builders ([`build_plate`], [`build_heartbeat`]) and the reply
//! reader ([`SimReply::from_response`]) are pure; only [`CameraSim`] does IO.
//! The shapes follow the captured and documented payloads the codecs in
//! [`crate::lpr`] are tested against, so the demo and the end-to-end tests
//! drive the listener with what a guard room's cameras really send. Each
//! vendor's payloads are built in a file of its own, as in `lpr/`:
//! `vzenith.rs`, `hikvision.rs`, `huaxia.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::Value;

use crate::event::PlateColour;
use crate::lpr::{Trigger, Vendor};

mod hikvision;
mod huaxia;
mod vzenith;

/// An 8×8 grey baseline JPEG (166 bytes) used as the simulated picture.
pub const TINY_JPEG: &[u8] = &[
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x10, 0x0b, 0x0c, 0x0e, 0x0c, 0x0a, 0x10,
    0x0e, 0x0d, 0x0e, 0x12, 0x11, 0x10, 0x13, 0x18, 0x28, 0x1a, 0x18, 0x16, 0x16, 0x18, 0x31, 0x23,
    0x25, 0x1d, 0x28, 0x3a, 0x33, 0x3d, 0x3c, 0x39, 0x33, 0x38, 0x37, 0x40, 0x48, 0x5c, 0x4e, 0x40,
    0x44, 0x57, 0x45, 0x37, 0x38, 0x50, 0x6d, 0x51, 0x57, 0x5f, 0x62, 0x67, 0x68, 0x67, 0x3e, 0x4d,
    0x71, 0x79, 0x70, 0x64, 0x78, 0x5c, 0x65, 0x67, 0x63, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x08,
    0x00, 0x08, 0x01, 0x01, 0x11, 0x00, 0xff, 0xc4, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0xc4, 0x00, 0x18,
    0x10, 0x00, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x03, 0x06, 0x63, 0xa1, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00,
    0x11, 0x0e, 0xaf, 0x0f, 0xff, 0xd9,
];

/// How long the simulator waits for the gateway's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Boundary of the multipart bodies the simulator sends.
const BOUNDARY: &str = "------------------------gatehousesim7e1397";

/// One simulated plate read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPlate {
    /// The plate without colour prefix, or `""` for a vehicle without one.
    pub plate: String,
    /// Plate colour.
    pub colour: PlateColour,
    /// Confidence 0–100 (Huaxia sends none).
    pub confidence: u8,
    /// What triggered the read.
    pub trigger: Trigger,
    /// Send it as a stored read re-sent after being offline.
    pub resend: bool,
    /// Attach a picture as the full picture and the plate crop.
    pub with_image: bool,
    /// The picture attached ([`TINY_JPEG`] when `None`).
    pub picture: Option<Vec<u8>>,
    /// When the camera saw the vehicle, Unix milliseconds.
    pub time_ms: i64,
}

impl SimPlate {
    /// A live loop-triggered read seen now, without pictures.
    pub fn new(plate: impl Into<String>, colour: PlateColour, confidence: u8) -> Self {
        Self {
            plate: plate.into(),
            colour,
            confidence: confidence.min(100),
            trigger: Trigger::Loop,
            resend: false,
            with_image: false,
            picture: None,
            time_ms: now_ms(),
        }
    }

    /// The same read with a real-looking snapshot of its plate
    /// ([`super::snapshot::plate_snapshot`]).
    pub fn with_snapshot(mut self) -> Self {
        self.picture = Some(super::snapshot::plate_snapshot(&self.plate, self.colour));
        self.with_image = true;
        self
    }

    /// The picture this read carries.
    fn picture(&self) -> &[u8] {
        self.picture.as_deref().unwrap_or(TINY_JPEG)
    }

    /// The same read, marked as an offline resend (or not).
    pub fn resend(mut self, resend: bool) -> Self {
        self.resend = resend;
        self
    }

    /// The same read, with or without pictures.
    pub fn with_image(mut self, with_image: bool) -> Self {
        self.with_image = with_image;
        self
    }

    /// The same read, with another trigger.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// The same read, seen at `time_ms`.
    pub fn at(mut self, time_ms: i64) -> Self {
        self.time_ms = time_ms;
        self
    }
}

/// A request body ready to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRequest {
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Builds the push a `vendor` camera with serial `serial` sends for `read`,
/// with `read_id` as the camera's id of the read (Vzenith `plateid`,
/// Hikvision `UUID` suffix; Huaxia has none).
pub fn build_plate(vendor: Vendor, serial: &str, read: &SimPlate, read_id: u64) -> SimRequest {
    match vendor {
        Vendor::Vzenith => SimRequest {
            content_type: "application/json".into(),
            body: vzenith::vzenith_plate(serial, read, read_id)
                .to_string()
                .into_bytes(),
        },
        Vendor::Hikvision => hikvision::hikvision_plate(serial, read, read_id),
        Vendor::Huaxia => SimRequest {
            content_type: "application/x-www-form-urlencoded".into(),
            body: huaxia::huaxia_plate(serial, read).into_bytes(),
        },
    }
}

/// Builds the heartbeat a `vendor` camera sends.
pub fn build_heartbeat(vendor: Vendor, serial: &str) -> SimRequest {
    match vendor {
        Vendor::Vzenith => {
            // The real heartbeat carries the camera's web login in clear
            // text; the simulator sends placeholders in its place.
            let fields = [
                ("device_name", "IVS"),
                ("ipaddr", "127.0.0.1"),
                ("port", "80"),
                ("user_name", "sim"),
                ("pass_wd", "sim"),
                ("serialno", serial),
                ("channel_num", "1"),
            ];
            multipart_request(
                fields
                    .iter()
                    .map(|(name, value)| Part::field(name, value.as_bytes())),
            )
        }
        Vendor::Hikvision => SimRequest {
            content_type: "application/xml; charset=\"UTF-8\"".into(),
            body: hikvision::hikvision_alert(
                serial,
                now_ms(),
                "<eventType>videoloss</eventType>\n<eventState>inactive</eventState>\n<eventDescription>videoloss alarm</eventDescription>\n",
            )
            .into_bytes(),
        },
        Vendor::Huaxia => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("type", "heartbeat")
                .append_pair("mode", "5")
                .append_pair("cam_id", serial);
            SimRequest {
                content_type: "application/x-www-form-urlencoded".into(),
                body: form.finish().into_bytes(),
            }
        }
    }
}

/// The cameras' local time: China, UTC+8 (cameras know no zone names).
fn china() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::fixed(jiff::tz::offset(8))
}

/// One part of a multipart body the simulator sends.
struct Part<'a> {
    name: &'a str,
    file: Option<&'a str>,
    data: &'a [u8],
}

impl<'a> Part<'a> {
    fn field(name: &'a str, data: &'a [u8]) -> Self {
        Self {
            name,
            file: None,
            data,
        }
    }

    fn file(name: &'a str, content_type: &'a str, data: &'a [u8]) -> Self {
        Self {
            name,
            file: Some(content_type),
            data,
        }
    }
}

fn multipart_request<'a>(parts: impl Iterator<Item = Part<'a>>) -> SimRequest {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part.file {
            Some(content_type) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{0}\"; filename=\"{0}\"\r\n\
                     Content-Type: {content_type}\r\nContent-Length: {1}\r\n\r\n",
                    part.name,
                    part.data.len()
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            ),
        }
        body.extend_from_slice(part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    SimRequest {
        content_type: format!("multipart/form-data; boundary={BOUNDARY}"),
        body,
    }
}

/// What the gateway answered.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReply {
    /// HTTP status.
    pub status: u16,
    /// Whether the reply opens the barrier: Vzenith `info` `ok` (or an
    /// `ivs_ioctrl` pulse), Huaxia `gpio_data` with `action` `on`. Always
    /// `false` for Hikvision, whose reply carries no command.
    pub opened: bool,
    /// The read id echoed back (Vzenith `plateid`).
    pub plate_id: Option<String>,
    /// Vzenith: the reply asks for the next stored offline record.
    pub continue_offline: bool,
    /// The reply body as JSON, when it is JSON.
    pub json: Option<Value>,
}

impl SimReply {
    /// Reads a `vendor` reply with `status` and `body`.
    pub fn from_response(vendor: Vendor, status: u16, body: &[u8]) -> Result<Self, SimError> {
        if !(200..300).contains(&status) {
            return Err(SimError::Status {
                status,
                body: String::from_utf8_lossy(body).chars().take(200).collect(),
            });
        }
        let json: Option<Value> = if body.trim_ascii().is_empty() {
            None
        } else {
            serde_json::from_slice(body).ok()
        };
        let mut reply = SimReply {
            status,
            opened: false,
            plate_id: None,
            continue_offline: false,
            json: json.clone(),
        };
        match vendor {
            Vendor::Hikvision => {}
            Vendor::Vzenith => {
                let inner = json
                    .as_ref()
                    .and_then(|j| j.get("Response_AlarmInfoPlate"))
                    .ok_or_else(|| SimError::Reply("no Response_AlarmInfoPlate".into()))?;
                let pulse = inner
                    .get("ivs_ioctrl")
                    .and_then(|c| c.get("value"))
                    .and_then(Value::as_u64)
                    .is_some_and(|v| v == 1 || v == 2);
                reply.opened = inner.get("info").and_then(Value::as_str) == Some("ok") || pulse;
                let id_of = |v: &Value| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                reply.plate_id = inner.get("plateid").and_then(id_of);
                if let Some(cont) = inner.get("ContinuePushOffline") {
                    reply.continue_offline =
                        cont.get("continue").and_then(Value::as_u64) == Some(1);
                    reply.plate_id = reply
                        .plate_id
                        .or_else(|| cont.get("plateid").and_then(id_of));
                }
            }
            Vendor::Huaxia => {
                let json = json
                    .as_ref()
                    .ok_or_else(|| SimError::Reply("reply is not JSON".into()))?;
                reply.opened =
                    json.get("gpio_data")
                        .and_then(Value::as_array)
                        .is_some_and(|outs| {
                            outs.iter()
                                .any(|o| o.get("action").and_then(Value::as_str) == Some("on"))
                        });
            }
        }
        Ok(reply)
    }
}

/// Why a simulated push failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The request could not be sent or the reply not read.
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The gateway answered with an error status.
    #[error("gateway answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Start of the reply body.
        body: String,
    },
    /// The reply is not what a camera of this vendor expects.
    #[error("unexpected reply: {0}")]
    Reply(String),
}

/// A simulated plate camera posting to the gateway's device listener.
#[derive(Debug)]
pub struct CameraSim {
    client: reqwest::Client,
    url: String,
    vendor: Vendor,
    serial: String,
    next_id: AtomicU64,
}

impl CameraSim {
    /// A camera of `vendor` that posts to `{base_url}/lpr/{camera_id}`
    /// (`base_url` like `http://127.0.0.1:8080`; `camera_id` is used as a
    /// path segment as given).
    pub fn new(base_url: &str, camera_id: &str, vendor: Vendor) -> Result<Self, SimError> {
        let client = reqwest::Client::builder().timeout(REPLY_TIMEOUT).build()?;
        let mut rng = rand::rng();
        let serial = match vendor {
            Vendor::Vzenith => format!("{:08x}-{:08x}", rng.random::<u32>(), rng.random::<u32>()),
            Vendor::Hikvision | Vendor::Huaxia => {
                let b: [u8; 5] = rng.random();
                format!(
                    "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    b[0], b[1], b[2], b[3], b[4]
                )
            }
        };
        Ok(Self {
            client,
            url: format!("{}/lpr/{camera_id}", base_url.trim_end_matches('/')),
            vendor,
            serial,
            next_id: AtomicU64::new(rng.random_range(1..1_000_000)),
        })
    }

    /// The same camera with a fixed serial (Vzenith `serialno`, Hikvision
    /// MAC address, Huaxia `cam_id`).
    pub fn with_serial(mut self, serial: impl Into<String>) -> Self {
        self.serial = serial.into();
        self
    }

    /// The URL the camera posts to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The camera's vendor.
    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// The camera's serial.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Pushes a live, loop-triggered read of `plate` seen now.
    pub async fn push_plate(
        &self,
        plate: &str,
        colour: PlateColour,
        confidence: u8,
    ) -> Result<SimReply, SimError> {
        self.push(&SimPlate::new(plate, colour, confidence)).await
    }

    /// Pushes `read` with a fresh read id.
    pub async fn push(&self, read: &SimPlate) -> Result<SimReply, SimError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(build_plate(self.vendor, &self.serial, read, id))
            .await
    }

    /// Pushes `read` again with the read id of an earlier push, as a camera
    /// does when it retries or re-sends a stored record.
    pub async fn push_again(&self, read: &SimPlate, read_id: u64) -> Result<SimReply, SimError> {
        self.send(build_plate(self.vendor, &self.serial, read, read_id))
            .await
    }

    /// The read id the next [`CameraSim::push`] will carry.
    pub fn next_read_id(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// Sends a heartbeat.
    pub async fn heartbeat(&self) -> Result<SimReply, SimError> {
        self.send(build_heartbeat(self.vendor, &self.serial)).await
    }

    async fn send(&self, request: SimRequest) -> Result<SimReply, SimError> {
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, request.content_type)
            .body(request.body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        SimReply::from_response(self.vendor, status, &body)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lpr::{self, CameraMessage, ImageKind, PlateReadPayload};

    const T: i64 = 1_696_933_261_250;

    fn round_trip(vendor: Vendor, read: &SimPlate) -> PlateReadPayload {
        let req = build_plate(vendor, "sim-serial", read, 4242);
        match lpr::parse(vendor, Some(&req.content_type), &req.body) {
            Ok(CameraMessage::Plate(p)) => *p,
            other => panic!("{vendor}: {other:?}"),
        }
    }

    #[test]
    fn plates_round_trip_through_every_codec() {
        for vendor in Vendor::ALL {
            for colour in [
                PlateColour::Blue,
                PlateColour::Black,
                PlateColour::YellowGreen,
            ] {
                for plate in ["京A12345", "黑A12345", "粤Z9065澳"] {
                    let read = SimPlate::new(plate, colour, 93).at(T);
                    let p = round_trip(vendor, &read);
                    assert_eq!(p.plate, plate, "{vendor}");
                    assert_eq!(p.colour, colour, "{vendor}");
                    if vendor != Vendor::Hikvision {
                        assert_eq!(p.trigger, Trigger::Loop, "{vendor}");
                    }
                    assert!(!p.resend);
                    assert!(p.images.is_empty());
                    let expected_confidence = (vendor != Vendor::Huaxia).then_some(93);
                    assert_eq!(p.confidence, expected_confidence, "{vendor}");
                    let expected_time = match vendor {
                        Vendor::Vzenith => T,
                        _ => T / 1000 * 1000,
                    };
                    assert_eq!(p.device_time_ms, Some(expected_time), "{vendor}");
                    assert_eq!(p.serial.as_deref(), Some("sim-serial"), "{vendor}");
                }
            }
        }
    }

    #[test]
    fn read_ids_resends_and_images_round_trip() {
        for vendor in Vendor::ALL {
            let read = SimPlate::new("苏A8HK52", PlateColour::Green, 80)
                .resend(true)
                .with_image(true)
                .trigger(Trigger::Video)
                .at(T);
            let p = round_trip(vendor, &read);
            assert!(p.resend, "{vendor}");
            assert_eq!(p.trigger == Trigger::Video, vendor != Vendor::Hikvision);
            assert_eq!(p.images.len(), 2, "{vendor}");
            let kinds: Vec<ImageKind> = p.images.iter().map(|i| i.kind).collect();
            assert!(kinds.contains(&ImageKind::Full) && kinds.contains(&ImageKind::Plate));
            for image in &p.images {
                assert_eq!(image.bytes, TINY_JPEG, "{vendor}");
                assert_eq!(image.content_type, "image/jpeg");
            }
            let expected_id = match vendor {
                Vendor::Vzenith => Some("4242".to_owned()),
                Vendor::Hikvision => Some(format!("sim-{:016x}", 4242)),
                Vendor::Huaxia => None,
            };
            assert_eq!(p.read_id, expected_id, "{vendor}");
        }
    }

    #[test]
    fn vehicle_without_plate_round_trips_as_empty() {
        for vendor in Vendor::ALL {
            let p = round_trip(vendor, &SimPlate::new("", PlateColour::Unknown, 0).at(T));
            assert_eq!(p.plate, "", "{vendor}");
        }
    }

    #[test]
    fn heartbeats_round_trip() {
        for vendor in Vendor::ALL {
            let req = build_heartbeat(vendor, "hb-1");
            assert_eq!(
                lpr::parse(vendor, Some(&req.content_type), &req.body),
                Ok(CameraMessage::Heartbeat {
                    serial: Some("hb-1".into())
                }),
                "{vendor}"
            );
        }
    }

    #[test]
    fn replies_are_read() {
        let body = lpr::vzenith::reply_plate(Some("7"), true).to_string();
        let r = SimReply::from_response(Vendor::Vzenith, 200, body.as_bytes()).expect("reads");
        assert!(r.opened);
        assert_eq!(r.plate_id.as_deref(), Some("7"));
        let body = lpr::vzenith::reply_plate(Some("7"), false).to_string();
        let r = SimReply::from_response(Vendor::Vzenith, 200, body.as_bytes()).expect("reads");
        assert!(!r.opened);
        let body = lpr::vzenith::reply_continue_offline(Some("9")).to_string();
        let r = SimReply::from_response(Vendor::Vzenith, 200, body.as_bytes()).expect("reads");
        assert!(r.continue_offline && !r.opened);
        assert_eq!(r.plate_id.as_deref(), Some("9"));
        let body = lpr::vzenith::reply_plate_pulse(None, 0, 500).to_string();
        assert!(
            SimReply::from_response(Vendor::Vzenith, 200, body.as_bytes())
                .expect("reads")
                .opened
        );
        let body = lpr::huaxia::reply(true).to_string();
        assert!(
            SimReply::from_response(Vendor::Huaxia, 200, body.as_bytes())
                .expect("reads")
                .opened
        );
        let body = lpr::huaxia::reply(false).to_string();
        assert!(
            !SimReply::from_response(Vendor::Huaxia, 200, body.as_bytes())
                .expect("reads")
                .opened
        );
        let r = SimReply::from_response(Vendor::Hikvision, 200, b"").expect("reads");
        assert!(!r.opened && r.json.is_none());
        assert!(matches!(
            SimReply::from_response(Vendor::Vzenith, 400, b"invalid JSON"),
            Err(SimError::Status { status: 400, .. })
        ));
        assert!(matches!(
            SimReply::from_response(Vendor::Vzenith, 200, b"ok"),
            Err(SimError::Reply(_))
        ));
    }

    #[test]
    fn camera_url_and_serials() {
        let sim =
            CameraSim::new("http://127.0.0.1:8080/", "gate-in", Vendor::Vzenith).expect("client");
        assert_eq!(sim.url(), "http://127.0.0.1:8080/lpr/gate-in");
        assert_eq!(sim.serial().len(), 17);
        let sim = sim.with_serial("fixed");
        assert_eq!(sim.serial(), "fixed");
    }

    /// A one-connection HTTP/1.1 peer on loopback that decodes the push with
    /// the real codec and answers like the gateway would.
    async fn serve_once(listener: tokio::net::TcpListener, vendor: Vendor) -> CameraMessage {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.expect("accepts");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_end, length) = loop {
            let n = stream.read(&mut chunk).await.expect("reads");
            assert!(n > 0, "connection closed early");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..pos]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("content-length");
                break (pos + 4, length);
            }
        };
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.expect("reads");
            assert!(n > 0, "connection closed early");
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        assert!(head.starts_with("POST /lpr/cam-1 HTTP/1.1"), "{head}");
        let content_type = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            })
            .map(|(_, v)| v.trim().to_owned());
        let msg = lpr::parse(
            vendor,
            content_type.as_deref(),
            &buf[head_end..head_end + length],
        )
        .expect("the gateway codec accepts the simulator's push");
        let reply = match (&msg, vendor) {
            (CameraMessage::Plate(p), Vendor::Vzenith) => {
                lpr::vzenith::reply_plate(p.read_id.as_deref(), p.plate == "京A12345").to_string()
            }
            (CameraMessage::Plate(p), Vendor::Huaxia) => {
                lpr::huaxia::reply(p.plate == "京A12345").to_string()
            }
            _ => String::new(),
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        );
        stream.write_all(response.as_bytes()).await.expect("writes");
        msg
    }

    #[tokio::test]
    async fn push_plate_posts_to_the_listener_and_reads_the_reply() {
        for vendor in Vendor::ALL {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binds");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let server = tokio::spawn(serve_once(listener, vendor));
            let sim = CameraSim::new(&base, "cam-1", vendor).expect("client");
            let first_id = sim.next_read_id();
            let reply = sim
                .push_plate("京A12345", PlateColour::Blue, 97)
                .await
                .expect("pushes");
            let msg = server.await.expect("server task");
            let CameraMessage::Plate(p) = msg else {
                panic!("{vendor}: not a plate: {msg:?}");
            };
            assert_eq!(p.plate, "京A12345");
            assert_eq!(reply.status, 200);
            assert_eq!(reply.opened, vendor != Vendor::Hikvision, "{vendor}");
            if vendor == Vendor::Vzenith {
                assert_eq!(reply.plate_id, Some(first_id.to_string()));
                assert_eq!(sim.next_read_id(), first_id + 1);
            }
        }
    }
}
