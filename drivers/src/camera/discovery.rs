//! WS-Discovery for ONVIF cameras: the `Probe` message, `ProbeMatches`
//! parsing (pure), and [`probe`], which sends one probe over UDP and
//! collects the answers for a while.
//!
//! On the estate LAN the probe goes to the multicast group
//! [`MULTICAST`]; tests send it unicast to a simulator on loopback.
//! Cameras often list a link-local (`169.254.x.x`, `fe80::`) address first in
//! `XAddrs`; [`ProbeMatch::device_url`] skips those.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::xml::{self, XmlError};

/// The WS-Discovery multicast group and port.
pub const MULTICAST: &str = "239.255.255.250:3702";

/// Largest datagram read.
const MAX_DATAGRAM: usize = 16 * 1024;

/// Builds a `Probe` for ONVIF video transmitters with `message_id`
/// (`uuid:…`).
pub fn probe_message(message_id: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" "#,
            r#"xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" "#,
            r#"xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" "#,
            r#"xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header>"#,
            "<a:MessageID>{}</a:MessageID>",
            "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>",
            "<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>",
            "</s:Header><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body></s:Envelope>"
        ),
        quick_xml::escape::escape(message_id)
    )
}

/// One camera that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeMatch {
    /// The endpoint reference (`urn:uuid:…`).
    pub endpoint: String,
    /// Every advertised service address.
    pub xaddrs: Vec<String>,
    /// Scopes (`onvif://www.onvif.org/name/…` …).
    pub scopes: Vec<String>,
    /// Who sent the answer.
    pub from: Option<SocketAddr>,
}

impl ProbeMatch {
    /// The first `XAddr` that is not link-local.
    pub fn device_url(&self) -> Option<&str> {
        self.xaddrs
            .iter()
            .map(String::as_str)
            .find(|a| !is_link_local(a))
    }

    /// A scope's value (`name`, `hardware`, `location`), percent-decoded.
    pub fn scope(&self, key: &str) -> Option<String> {
        let prefix = format!("onvif://www.onvif.org/{key}/");
        self.scopes.iter().find_map(|s| {
            s.strip_prefix(&prefix).map(|v| {
                form_urlencoded::parse(format!("v={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
        })
    }
}

/// Parses a `ProbeMatches`; answers to another probe (`RelatesTo` not
/// `message_id`) give an empty list.
pub fn parse_matches(body: &[u8], message_id: &str) -> Result<Vec<ProbeMatch>, XmlError> {
    let root = xml::parse(body)?;
    if let Some(relates) = root.text_of("RelatesTo")
        && !relates.eq_ignore_ascii_case(message_id)
    {
        return Ok(Vec::new());
    }
    let mut list = Vec::new();
    root.find_all("ProbeMatch", &mut list);
    Ok(list
        .into_iter()
        .filter_map(|m| {
            let words = |name: &str| -> Vec<String> {
                m.text_of(name)
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            };
            Some(ProbeMatch {
                endpoint: m
                    .find("EndpointReference")?
                    .text_of("Address")
                    .unwrap_or_default(),
                xaddrs: words("XAddrs"),
                scopes: words("Scopes"),
                from: None,
            })
        })
        .collect())
}

/// Whether a URL's host is link-local (IPv4 169.254/16 or IPv6 fe80::/10).
pub fn is_link_local(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = parsed.host_str().unwrap_or_default();
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) => ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => ip.is_unicast_link_local(),
        Err(_) => false,
    }
}

/// Sends one probe to `target` (the multicast group or one address) and
/// collects matches until `wait` has passed. Duplicate endpoints are merged.
pub async fn probe(target: SocketAddr, wait: Duration) -> std::io::Result<Vec<ProbeMatch>> {
    let bind: SocketAddr = match target.ip() {
        IpAddr::V4(_) => "0.0.0.0:0",
        IpAddr::V6(_) => "[::]:0",
    }
    .parse()
    .map_err(std::io::Error::other)?;
    let socket = UdpSocket::bind(bind).await?;
    if target.ip().is_multicast()
        && let IpAddr::V4(_) = target.ip()
    {
        socket.set_multicast_ttl_v4(1)?;
    }
    let message_id = format!("uuid:{}", uuid::Uuid::now_v7());
    socket
        .send_to(probe_message(&message_id).as_bytes(), target)
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut found: Vec<ProbeMatch> = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
        let Ok(received) = received else { break };
        let (n, from) = received?;
        let Ok(matches) = parse_matches(&buf[..n], &message_id) else {
            continue;
        };
        for mut m in matches {
            m.from = Some(from);
            if !found.iter().any(|f| f.endpoint == m.endpoint) {
                found.push(m);
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_addresses_are_recognised() {
        assert!(is_link_local("http://169.254.76.145/onvif/services"));
        assert!(is_link_local("http://[fe80::1]/onvif"));
        assert!(!is_link_local("http://192.168.1.24/onvif/services"));
        assert!(!is_link_local("not a url"));
    }

    #[test]
    fn probe_is_well_formed_and_carries_its_id() {
        let root = xml::parse(probe_message("uuid:1").as_bytes()).expect("parses");
        assert_eq!(root.text_of("MessageID").as_deref(), Some("uuid:1"));
        assert!(root.find("Probe").is_some());
    }
}
