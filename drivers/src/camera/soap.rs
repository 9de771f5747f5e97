//! ONVIF SOAP 1.2, pure: request envelopes (with the WS-UsernameToken
//! header), the replies Gatehouse reads, and SOAP faults.
//!
//! Builders return the whole envelope as a string; user-supplied values are
//! XML-escaped. Parsers take reply bytes, go through the hostile-input-safe
//! [`xml`](super::xml) reader and return plain structs. Nothing here does IO
//! or reads a clock: the caller passes the nonce and the (camera-corrected)
//! `Created` time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use quick_xml::escape::escape;
use sha1::{Digest, Sha1};

use super::xml::{self, Element, XmlError};

/// The SOAP 1.2 media type every request is sent with.
pub const CONTENT_TYPE: &str = "application/soap+xml; charset=utf-8";

const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
const NS_MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";
const NS_EVENTS: &str = "http://www.onvif.org/ver10/events/wsdl";
const NS_WSNT: &str = "http://docs.oasis-open.org/wsn/b-2";
const NS_SCHEMA: &str = "http://www.onvif.org/ver10/schema";

/// A camera account. The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password (a secret).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `PasswordDigest = Base64(SHA1(nonce ++ created ++ password))`, with the
/// raw (not base64) nonce bytes.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    B64.encode(sha.finalize())
}

/// The WS-Security header for one request. `created_unix_ms` is the
/// camera's clock (the gateway's clock plus the measured offset).
pub fn security_header(creds: &Credentials, nonce: &[u8], created_unix_ms: i64) -> String {
    let created = format_time(created_unix_ms);
    let digest = password_digest(nonce, &created, &creds.password);
    format!(
        concat!(
            r#"<wsse:Security s:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" "#,
            r#"xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">"#,
            "<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>",
            r#"<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{digest}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{nonce}</wsse:Nonce>"#,
            "<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        ),
        user = escape(creds.username.as_str()),
        digest = digest,
        nonce = B64.encode(nonce),
        created = created,
    )
}

/// A request Gatehouse sends to a camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Device: the camera's clock (sent without credentials first).
    GetSystemDateAndTime,
    /// Device: manufacturer, model, firmware, serial.
    GetDeviceInformation,
    /// Device: service addresses (ONVIF 1.x style).
    GetCapabilities,
    /// Device: service addresses (ONVIF 2.x style).
    GetServices,
    /// Media: the media profiles.
    GetProfiles,
    /// Media: the RTSP URI of a profile.
    GetStreamUri {
        /// Profile token.
        profile: String,
    },
    /// Media: the JPEG snapshot URI of a profile.
    GetSnapshotUri {
        /// Profile token.
        profile: String,
    },
    /// Events: a pull-point subscription lasting `seconds`.
    CreatePullPointSubscription {
        /// Initial termination time, relative.
        seconds: u32,
    },
    /// Subscription: wait up to `seconds` for at most `limit` messages.
    PullMessages {
        /// Long-poll timeout.
        seconds: u32,
        /// Message limit.
        limit: u32,
    },
    /// Subscription: extend by `seconds`.
    Renew {
        /// New termination time, relative.
        seconds: u32,
    },
    /// Subscription: end it (frees the camera's slot).
    Unsubscribe,
}

impl Request {
    /// The operation name (also the reply element without `Response`).
    pub fn name(&self) -> &'static str {
        match self {
            Request::GetSystemDateAndTime => "GetSystemDateAndTime",
            Request::GetDeviceInformation => "GetDeviceInformation",
            Request::GetCapabilities => "GetCapabilities",
            Request::GetServices => "GetServices",
            Request::GetProfiles => "GetProfiles",
            Request::GetStreamUri { .. } => "GetStreamUri",
            Request::GetSnapshotUri { .. } => "GetSnapshotUri",
            Request::CreatePullPointSubscription { .. } => "CreatePullPointSubscription",
            Request::PullMessages { .. } => "PullMessages",
            Request::Renew { .. } => "Renew",
            Request::Unsubscribe => "Unsubscribe",
        }
    }

    /// The SOAP action URI (sent in the `Content-Type` `action` parameter).
    pub fn action(&self) -> String {
        let ns = match self {
            Request::GetSystemDateAndTime
            | Request::GetDeviceInformation
            | Request::GetCapabilities
            | Request::GetServices => NS_DEVICE,
            Request::GetProfiles
            | Request::GetStreamUri { .. }
            | Request::GetSnapshotUri { .. } => NS_MEDIA,
            Request::CreatePullPointSubscription { .. } => {
                return format!("{NS_EVENTS}/EventPortType/CreatePullPointSubscriptionRequest");
            }
            Request::PullMessages { .. } => {
                return format!("{NS_EVENTS}/PullPointSubscription/PullMessagesRequest");
            }
            Request::Renew { .. } => {
                return format!("{NS_WSNT}/SubscriptionManager/RenewRequest");
            }
            Request::Unsubscribe => {
                return format!("{NS_WSNT}/SubscriptionManager/UnsubscribeRequest");
            }
        };
        format!("{ns}/{}", self.name())
    }

    /// Whether the request is addressed to a subscription (and carries
    /// WS-Addressing `To`/`Action` headers).
    pub fn is_subscription(&self) -> bool {
        matches!(
            self,
            Request::PullMessages { .. } | Request::Renew { .. } | Request::Unsubscribe
        )
    }

    fn body(&self) -> String {
        match self {
            Request::GetSystemDateAndTime
            | Request::GetDeviceInformation
            | Request::GetCapabilities => {
                let extra = if *self == Request::GetCapabilities {
                    "<tds:Category>All</tds:Category>"
                } else {
                    ""
                };
                format!(
                    r#"<tds:{n} xmlns:tds="{NS_DEVICE}">{extra}</tds:{n}>"#,
                    n = self.name()
                )
            }
            Request::GetServices => format!(
                r#"<tds:GetServices xmlns:tds="{NS_DEVICE}"><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>"#
            ),
            Request::GetProfiles => format!(r#"<trt:GetProfiles xmlns:trt="{NS_MEDIA}"/>"#),
            Request::GetStreamUri { profile } => format!(
                concat!(
                    r#"<trt:GetStreamUri xmlns:trt="{media}" xmlns:tt="{schema}"><trt:StreamSetup>"#,
                    "<tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport>",
                    "</trt:StreamSetup><trt:ProfileToken>{token}</trt:ProfileToken></trt:GetStreamUri>"
                ),
                media = NS_MEDIA,
                schema = NS_SCHEMA,
                token = escape(profile.as_str())
            ),
            Request::GetSnapshotUri { profile } => format!(
                r#"<trt:GetSnapshotUri xmlns:trt="{NS_MEDIA}"><trt:ProfileToken>{}</trt:ProfileToken></trt:GetSnapshotUri>"#,
                escape(profile.as_str())
            ),
            Request::CreatePullPointSubscription { seconds } => format!(
                r#"<tev:CreatePullPointSubscription xmlns:tev="{NS_EVENTS}"><tev:InitialTerminationTime>PT{seconds}S</tev:InitialTerminationTime></tev:CreatePullPointSubscription>"#
            ),
            Request::PullMessages { seconds, limit } => format!(
                r#"<tev:PullMessages xmlns:tev="{NS_EVENTS}"><tev:Timeout>PT{seconds}S</tev:Timeout><tev:MessageLimit>{limit}</tev:MessageLimit></tev:PullMessages>"#
            ),
            Request::Renew { seconds } => format!(
                r#"<wsnt:Renew xmlns:wsnt="{NS_WSNT}"><wsnt:TerminationTime>PT{seconds}S</wsnt:TerminationTime></wsnt:Renew>"#
            ),
            Request::Unsubscribe => format!(r#"<wsnt:Unsubscribe xmlns:wsnt="{NS_WSNT}"/>"#),
        }
    }

    /// The whole envelope. `security` is a [`security_header`] (or `None`
    /// for an unauthenticated request); `to` is the address the request is
    /// posted to (used as the WS-Addressing `To` of subscription requests).
    pub fn envelope(&self, security: Option<&str>, to: &str) -> String {
        let addressing = if self.is_subscription() {
            format!(
                r#"<wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">{}</wsa:Action><wsa:To xmlns:wsa="http://www.w3.org/2005/08/addressing">{}</wsa:To>"#,
                escape(self.action().as_str()),
                escape(to)
            )
        } else {
            String::new()
        };
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header>{}{}</s:Header><s:Body>{}</s:Body></s:Envelope>"#,
            security.unwrap_or(""),
            addressing,
            self.body()
        )
    }
}

/// Why a reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    /// The XML was refused.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The camera answered with a SOAP fault.
    #[error("SOAP fault {code}: {reason}")]
    Fault {
        /// The most specific fault code (subcode if any), without prefix.
        code: String,
        /// The fault's reason text.
        reason: String,
    },
    /// The reply lacks something Gatehouse needs.
    #[error("reply has no {0}")]
    Missing(&'static str),
}

impl SoapError {
    /// Whether the fault says the credentials were refused.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, SoapError::Fault { code, reason }
            if code.contains("NotAuthorized") || code.contains("FailedAuthentication")
                || reason.to_ascii_lowercase().contains("not authorized"))
    }
}

/// Parses a reply: the first element of the SOAP body (or the document root
/// when there is no envelope), or the fault it carries.
pub fn reply(body: &[u8]) -> Result<Element, SoapError> {
    let root = xml::parse(body)?;
    let payload = if root.name == "Envelope" {
        root.child("Body")
            .and_then(|b| b.children.first().cloned())
            .ok_or(SoapError::Missing("SOAP body"))?
    } else {
        root
    };
    if payload.name == "Fault" {
        let code = payload
            .child("Code")
            .map(|c| {
                let mut value = c.text_of("Value").unwrap_or_default();
                if let Some(sub) = c.find("Subcode") {
                    let mut subs = Vec::new();
                    sub.find_all("Value", &mut subs);
                    if let Some(last) = subs.last() {
                        value = last.text.trim().to_owned();
                    }
                }
                value
            })
            .or_else(|| payload.text_of("faultcode"))
            .unwrap_or_default();
        let reason = payload
            .find("Reason")
            .and_then(|r| r.text_of("Text"))
            .or_else(|| payload.text_of("faultstring"))
            .unwrap_or_default();
        let code = code.rsplit(':').next().unwrap_or_default().to_owned();
        return Err(SoapError::Fault {
            code: xml::short(&code),
            reason: xml::short(&reason),
        });
    }
    Ok(payload)
}

/// `GetSystemDateAndTime`: the camera's UTC clock in Unix milliseconds.
pub fn system_time(reply: &Element) -> Result<i64, SoapError> {
    let utc = reply
        .find("UTCDateTime")
        .ok_or(SoapError::Missing("UTCDateTime"))?;
    let num = |name: &'static str| -> Result<i64, SoapError> {
        utc.text_of(name)
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(SoapError::Missing(name))
    };
    let (y, mo, d) = (num("Year")?, num("Month")?, num("Day")?);
    let (h, mi, s) = (num("Hour")?, num("Minute")?, num("Second")?);
    let part = |v: i64, what: &'static str| i8::try_from(v).map_err(|_| SoapError::Missing(what));
    let date = Date::new(
        i16::try_from(y).map_err(|_| SoapError::Missing("a valid Year"))?,
        part(mo, "a valid Month")?,
        part(d, "a valid Day")?,
    )
    .map_err(|_| SoapError::Missing("a valid date"))?;
    let t = Time::new(
        part(h, "a valid Hour")?,
        part(mi, "a valid Minute")?,
        part(s, "a valid Second")?,
        0,
    )
    .map_err(|_| SoapError::Missing("a valid time"))?;
    let at = DateTime::from_parts(date, t)
        .to_zoned(TimeZone::UTC)
        .map_err(|_| SoapError::Missing("a valid date"))?;
    Ok(at.timestamp().as_millisecond())
}

/// `GetDeviceInformation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Firmware version.
    pub firmware: String,
    /// Serial number.
    pub serial: String,
    /// Hardware id.
    pub hardware_id: String,
}

/// Parses `GetDeviceInformationResponse`.
pub fn device_info(reply: &Element) -> Result<DeviceInfo, SoapError> {
    if reply.name != "GetDeviceInformationResponse" {
        return Err(SoapError::Missing("GetDeviceInformationResponse"));
    }
    let t = |n: &str| reply.text_of(n).unwrap_or_default();
    Ok(DeviceInfo {
        manufacturer: t("Manufacturer"),
        model: t("Model"),
        firmware: t("FirmwareVersion"),
        serial: t("SerialNumber"),
        hardware_id: t("HardwareId"),
    })
}

/// Where a camera's services are, from `GetCapabilities` or `GetServices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Services {
    /// Media service address.
    pub media: Option<String>,
    /// Event service address.
    pub events: Option<String>,
    /// Whether the camera says it supports pull points (`None`: not said).
    pub pull_point: Option<bool>,
    /// Digital inputs, when said.
    pub inputs: Option<u32>,
}

/// Parses `GetCapabilitiesResponse`.
pub fn capabilities(reply: &Element) -> Result<Services, SoapError> {
    let caps = reply
        .find("Capabilities")
        .ok_or(SoapError::Missing("Capabilities"))?;
    let xaddr = |section: &str| {
        caps.child(section)
            .and_then(|s| s.text_of("XAddr"))
            .filter(|a| !a.is_empty())
    };
    let events = caps.child("Events");
    Ok(Services {
        media: xaddr("Media"),
        events: xaddr("Events"),
        pull_point: events
            .and_then(|e| e.text_of("WSPullPointSupport"))
            .map(|v| parse_bool(&v).unwrap_or(false)),
        inputs: caps
            .child("Device")
            .and_then(|d| d.child("IO"))
            .and_then(|io| io.text_of("InputConnectors"))
            .and_then(|n| n.parse().ok()),
    })
}

/// Parses `GetServicesResponse`.
pub fn services(reply: &Element) -> Result<Services, SoapError> {
    let mut list = Vec::new();
    reply.find_all("Service", &mut list);
    if list.is_empty() {
        return Err(SoapError::Missing("Service"));
    }
    let mut out = Services::default();
    for s in list {
        let (Some(ns), Some(addr)) = (s.text_of("Namespace"), s.text_of("XAddr")) else {
            continue;
        };
        if ns == NS_MEDIA {
            out.media = Some(addr);
        } else if ns == NS_EVENTS {
            out.events = Some(addr);
        }
    }
    Ok(out)
}

/// A media profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Profile {
    /// The profile token.
    pub token: String,
    /// Its name.
    pub name: String,
}

/// Parses `GetProfilesResponse`.
pub fn profiles(reply: &Element) -> Result<Vec<Profile>, SoapError> {
    let mut list = Vec::new();
    reply.find_all("Profiles", &mut list);
    let out: Vec<Profile> = list
        .into_iter()
        .filter_map(|p| {
            Some(Profile {
                token: p.attr("token")?.to_owned(),
                name: p.text_of("Name").unwrap_or_default(),
            })
        })
        .collect();
    if out.is_empty() {
        return Err(SoapError::Missing("Profiles"));
    }
    Ok(out)
}

/// Parses `GetStreamUriResponse` / `GetSnapshotUriResponse`.
pub fn media_uri(reply: &Element) -> Result<String, SoapError> {
    reply
        .find("MediaUri")
        .and_then(|m| m.text_of("Uri"))
        .filter(|u| !u.is_empty())
        .ok_or(SoapError::Missing("MediaUri/Uri"))
}

/// A pull-point subscription (`CreatePullPointSubscriptionResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Where `PullMessages`, `Renew` and `Unsubscribe` go.
    pub address: String,
    /// The camera's clock when it answered (Unix ms), if given.
    pub current_ms: Option<i64>,
    /// When the camera ends it unless renewed (camera clock, Unix ms).
    pub termination_ms: Option<i64>,
}

impl Subscription {
    /// How long the subscription lasts from the camera's answer, if both
    /// times were given.
    pub fn lifetime_ms(&self) -> Option<i64> {
        Some(self.termination_ms? - self.current_ms?)
    }
}

/// Parses `CreatePullPointSubscriptionResponse`.
pub fn subscription(reply: &Element) -> Result<Subscription, SoapError> {
    let address = reply
        .find("SubscriptionReference")
        .and_then(|r| r.text_of("Address"))
        .filter(|a| !a.is_empty())
        .ok_or(SoapError::Missing("SubscriptionReference/Address"))?;
    Ok(Subscription {
        address,
        current_ms: reply.text_of("CurrentTime").and_then(|t| parse_time(&t)),
        termination_ms: reply
            .text_of("TerminationTime")
            .and_then(|t| parse_time(&t)),
    })
}

/// Parses `RenewResponse`: the new termination and current times.
pub fn renewed(reply: &Element) -> Result<(Option<i64>, Option<i64>), SoapError> {
    if reply.name != "RenewResponse" {
        return Err(SoapError::Missing("RenewResponse"));
    }
    Ok((
        reply.text_of("CurrentTime").and_then(|t| parse_time(&t)),
        reply
            .text_of("TerminationTime")
            .and_then(|t| parse_time(&t)),
    ))
}

/// How a property event relates to the state it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyOperation {
    /// The current state when the subscription starts (not an edge).
    Initialized,
    /// The state changed.
    Changed,
    /// The property went away.
    Deleted,
    /// Not a property event.
    None,
}

/// One `NotificationMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The topic, e.g. `tns1:RuleEngine/CellMotionDetector/Motion`.
    pub topic: String,
    /// The message's `UtcTime` (Unix ms), if readable.
    pub utc_ms: Option<i64>,
    /// `PropertyOperation`.
    pub operation: PropertyOperation,
    /// `Source` simple items.
    pub source: Vec<(String, String)>,
    /// `Data` simple items.
    pub data: Vec<(String, String)>,
}

/// A `PullMessagesResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The camera's clock (Unix ms), if given.
    pub current_ms: Option<i64>,
    /// The subscription's termination (camera clock), if given.
    pub termination_ms: Option<i64>,
    /// The messages, in order.
    pub messages: Vec<Notification>,
}

/// Parses `PullMessagesResponse`.
pub fn pulled(reply: &Element) -> Result<Pulled, SoapError> {
    if reply.name != "PullMessagesResponse" {
        return Err(SoapError::Missing("PullMessagesResponse"));
    }
    let mut list = Vec::new();
    reply.find_all("NotificationMessage", &mut list);
    let messages = list
        .into_iter()
        .filter_map(|n| {
            let topic = n.text_of("Topic")?;
            // `wsnt:Message` wraps `tt:Message`.
            let outer = n.child("Message")?;
            let msg = outer.child("Message").unwrap_or(outer);
            let items = |section: &str| {
                msg.child(section)
                    .map(|s| {
                        s.children
                            .iter()
                            .filter(|i| i.name == "SimpleItem")
                            .filter_map(|i| {
                                Some((i.attr("Name")?.to_owned(), i.attr("Value")?.to_owned()))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Some(Notification {
                topic,
                utc_ms: msg.attr("UtcTime").and_then(parse_time),
                operation: match msg.attr("PropertyOperation") {
                    Some("Initialized") => PropertyOperation::Initialized,
                    Some("Changed") => PropertyOperation::Changed,
                    Some("Deleted") => PropertyOperation::Deleted,
                    _ => PropertyOperation::None,
                },
                source: items("Source"),
                data: items("Data"),
            })
        })
        .collect();
    Ok(Pulled {
        current_ms: reply.text_of("CurrentTime").and_then(|t| parse_time(&t)),
        termination_ms: reply
            .text_of("TerminationTime")
            .and_then(|t| parse_time(&t)),
        messages,
    })
}

/// `true`/`false`/`1`/`0` (case-insensitive; `active`/`inactive` too).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "active" | "on" => Some(true),
        "false" | "0" | "inactive" | "off" => Some(false),
        _ => None,
    }
}

/// An `xs:dateTime` as Unix ms (`Z`, an offset, or no zone = UTC).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t.as_millisecond());
    }
    let local: DateTime = s.parse().ok()?;
    let at = local.to_zoned(TimeZone::UTC).ok()?;
    Some(at.timestamp().as_millisecond())
}

/// Unix ms as `xs:dateTime` in UTC, whole seconds (`2024-05-01T08:00:00Z`).
pub fn format_time(unix_ms: i64) -> String {
    let t = Timestamp::from_millisecond(unix_ms.div_euclid(1000) * 1000)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_digest_matches_the_onvif_guide_vector() {
        let nonce = B64.decode("LKqI6G/AikKCQrN0zqZFlg==").expect("base64");
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
    }

    #[test]
    fn envelopes_escape_values_and_address_subscriptions() {
        let creds = Credentials {
            username: "a<b".into(),
            password: "pw".into(),
        };
        let header = security_header(&creds, &[1; 16], 1_700_000_000_000);
        let env = Request::GetSnapshotUri {
            profile: "P&1".into(),
        }
        .envelope(Some(&header), "http://cam/onvif/media");
        let root = xml::parse(env.as_bytes()).expect("well-formed");
        assert_eq!(root.text_of("Username").as_deref(), Some("a<b"));
        assert_eq!(root.text_of("ProfileToken").as_deref(), Some("P&1"));
        assert_eq!(
            root.text_of("Created").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert!(root.find("To").is_none());
        let pull = Request::PullMessages {
            seconds: 10,
            limit: 32,
        }
        .envelope(None, "http://cam/sub?Idx=1&x=2");
        let root = xml::parse(pull.as_bytes()).expect("well-formed");
        assert_eq!(
            root.text_of("To").as_deref(),
            Some("http://cam/sub?Idx=1&x=2")
        );
        assert_eq!(root.text_of("Timeout").as_deref(), Some("PT10S"));
    }

    #[test]
    fn faults_carry_their_subcode_and_reason() {
        let fault = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">Sender not Authorized</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>"#;
        let err = reply(fault).expect_err("a fault");
        assert!(err.is_unauthorized(), "{err}");
        assert_eq!(
            err,
            SoapError::Fault {
                code: "NotAuthorized".into(),
                reason: "Sender not Authorized".into()
            }
        );
    }

    #[test]
    fn times_parse_with_and_without_zone() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_time("1970-01-01T08:00:01+08:00"), Some(1000));
        assert_eq!(parse_time("1970-01-01T00:00:01"), Some(1000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(format_time(1000), "1970-01-01T00:00:01Z");
    }
}
