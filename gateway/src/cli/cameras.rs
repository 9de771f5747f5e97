//! `gatehouse cameras discover|check`: surveillance cameras (监控) on the
//! estate LAN.
//!
//! - `discover` sends a WS-Discovery probe (multicast
//!   `239.255.255.250:3702`, or `--target ADDR`), waits `--wait`, and
//!   prints one ready-to-paste `[[devices]]` block per camera that answered
//!   (its first `XAddr` that is not link-local; cameras with only
//!   link-local addresses are listed as comments). Nothing is written.
//! - `check CONFIG` connects to each `onvif-camera` of the configuration
//!   and reports what works, step by step: clock (and drift), identity,
//!   capabilities, profiles, stream URI, snapshot URI and a snapshot.
//!   Exits 1 when a camera cannot be reached or refuses its credentials.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use drivers::camera::discovery::{self, ProbeMatch};
use drivers::camera::soap::{self, Request};
use drivers::camera::{CameraError, Credentials, OnvifClient};

use crate::config::{Config, DeviceKind, OnvifCameraConfig};

/// `gatehouse cameras` actions.
#[derive(Debug, Subcommand)]
pub enum CamerasCommand {
    /// Find ONVIF cameras on the LAN (WS-Discovery) and print a config block
    /// for each.
    Discover {
        /// Where to send the probe (default: the WS-Discovery multicast group).
        #[arg(long, default_value = discovery::MULTICAST)]
        target: SocketAddr,
        /// How long to wait for answers.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        wait: Duration,
    },
    /// Connect to each configured camera and report what works.
    Check {
        /// The configuration file (TOML).
        config: PathBuf,
    },
}

/// Why a `cameras` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CamerasError {
    /// The probe could not be sent or answers not received.
    #[error("discovery: {0}")]
    Discovery(#[from] std::io::Error),
    /// Some cameras did not answer or refused their credentials.
    #[error("{0} camera(s) could not be used")]
    Failed(usize),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// Runs `command` against `config` (for `check`; `discover` needs none).
pub(super) async fn run(
    command: CamerasCommand,
    config: Option<&Config>,
) -> Result<(), CamerasError> {
    match command {
        CamerasCommand::Discover { target, wait } => {
            let found = discovery::probe(target, wait).await?;
            print!("{}", discovered_block(&found));
            eprintln!("{} camera(s) answered.", found.len());
            Ok(())
        }
        CamerasCommand::Check { .. } => {
            let mut failed = 0;
            for device in config.map(|c| c.devices.as_slice()).unwrap_or_default() {
                if let DeviceKind::OnvifCamera(camera) = &device.kind {
                    println!("{} ({}): {}", device.id, device.name, camera.address);
                    let report = check(camera).await;
                    for line in &report.lines {
                        println!("  {line}");
                    }
                    if !report.usable {
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                Err(CamerasError::Failed(failed))
            } else {
                Ok(())
            }
        }
    }
}

/// A config id from a camera's name or serial: lowercase `a-z0-9-`.
fn id_from(text: &str) -> String {
    let id: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let id = id.trim_matches('-').to_owned();
    if id.is_empty() { "camera".into() } else { id }
}

/// The `[[devices]]` blocks for the cameras in `found`.
pub(super) fn discovered_block(found: &[ProbeMatch]) -> String {
    let mut out = String::new();
    for (i, m) in found.iter().enumerate() {
        let name = m
            .scope("name")
            .or_else(|| m.scope("hardware"))
            .unwrap_or_else(|| format!("camera {}", i + 1));
        let Some(url) = m.device_url() else {
            out.push_str(&format!(
                "# {name} ({}) answered with link-local addresses only: {}\n\n",
                m.endpoint,
                m.xaddrs.join(" ")
            ));
            continue;
        };
        let id = format!("cctv-{}", id_from(&name));
        out.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nname = \"{}\"\ntype = \"onvif-camera\"\naddress = \"{url}\"\n\
             # username = \"gatehouse\"\n# password = {{ env = \"GATEHOUSE_CCTV_PASSWORD\" }}\n\
             # lanes = []\n# doors = []\n\n",
            name.replace(['"', '\\'], "")
        ));
    }
    out
}

/// What `check` found out about one camera.
#[derive(Debug, Default)]
pub(super) struct Report {
    /// One line per step: `ok …` or `no …`.
    pub(super) lines: Vec<String>,
    /// Whether it answered with its credentials accepted.
    pub(super) usable: bool,
}

/// Connects to `camera` and tries each step; a step that fails is reported
/// and the rest still tried where they can be.
pub(super) async fn check(camera: &OnvifCameraConfig) -> Report {
    let creds = camera.username.as_ref().map(|username| Credentials {
        username: username.clone(),
        password: camera
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default(),
    });
    let client = OnvifClient::new(&camera.address, creds, Duration::from_secs(5));
    let mut report = Report::default();
    let mut note = |ok: bool, what: String| {
        report
            .lines
            .push(format!("{} {what}", if ok { "ok" } else { "no" }));
    };
    match client.sync_clock().await {
        Ok(offset) => {
            #[allow(clippy::cast_precision_loss)]
            let drift = offset as f64 / 1000.0;
            let limit = camera.drift_alarm.as_millis();
            let within = u128::from(offset.unsigned_abs()) <= limit;
            note(
                within,
                format!(
                    "clock: camera is {drift:+.1} s off the gateway (alarm above {:?})",
                    camera.drift_alarm
                ),
            );
        }
        Err(e) if e.is_offline() => {
            note(false, format!("reachable: {e}"));
            return report;
        }
        Err(e) => note(false, format!("GetSystemDateAndTime: {e}")),
    }
    let device = camera.address.clone();
    let mut refused = false;
    let mut answered = false;
    let mut step = |result: &Result<String, CameraError>, op: &str| match result {
        Ok(text) => {
            answered = true;
            format!("ok {op}: {text}")
        }
        Err(e) => {
            refused |= matches!(e, CameraError::Unauthorized);
            format!("no {op}: {e}")
        }
    };
    let info = client
        .call(&device, &Request::GetDeviceInformation)
        .await
        .and_then(|r| Ok(soap::device_info(&r)?))
        .map(|i| {
            format!(
                "{} {}, firmware {}, serial {}",
                i.manufacturer, i.model, i.firmware, i.serial
            )
        });
    let mut lines = vec![step(&info, "GetDeviceInformation")];
    let services = match client.call(&device, &Request::GetCapabilities).await {
        Ok(r) => soap::capabilities(&r).map_err(CameraError::from),
        Err(e) => Err(e),
    };
    let services = match services {
        Ok(s) => Ok(s),
        Err(_) => client
            .call(&device, &Request::GetServices)
            .await
            .and_then(|r| Ok(soap::services(&r)?)),
    };
    let described = services.as_ref().map(|s| {
        format!(
            "media {}, events {}",
            s.media.as_deref().unwrap_or("-"),
            s.events.as_deref().unwrap_or("-")
        )
    });
    let described = described.map_err(Clone::clone);
    lines.push(step(&described, "GetCapabilities/GetServices"));
    let media = services
        .ok()
        .and_then(|s| s.media)
        .unwrap_or_else(|| device.clone());
    let profiles = client
        .call(&media, &Request::GetProfiles)
        .await
        .and_then(|r| Ok(soap::profiles(&r)?));
    let listed = profiles.as_ref().map_err(Clone::clone).map(|p| {
        p.iter()
            .map(|p| p.token.clone())
            .collect::<Vec<_>>()
            .join(", ")
    });
    lines.push(step(&listed, "GetProfiles"));
    if let Some(first) = profiles.ok().and_then(|p| p.into_iter().next()) {
        let stream = client
            .call(
                &media,
                &Request::GetStreamUri {
                    profile: first.token.clone(),
                },
            )
            .await
            .and_then(|r| Ok(soap::media_uri(&r)?));
        lines.push(step(&stream, "GetStreamUri"));
        let snapshot_uri = client
            .call(
                &media,
                &Request::GetSnapshotUri {
                    profile: first.token,
                },
            )
            .await
            .and_then(|r| Ok(soap::media_uri(&r)?));
        lines.push(step(&snapshot_uri, "GetSnapshotUri"));
        if let Ok(uri) = snapshot_uri {
            let snapshot = client
                .snapshot(&uri, 4 * 1024 * 1024, Duration::from_secs(5))
                .await
                .map(|bytes| format!("{} bytes", bytes.len()));
            lines.push(step(&snapshot, "snapshot"));
        }
    }
    report.lines.extend(lines);
    report.usable = answered && !refused;
    if refused {
        report
            .lines
            .push("no credentials: the camera refused them".into());
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovered_camera_becomes_a_config_block_and_link_local_only_a_comment() {
        let found = vec![
            ProbeMatch {
                endpoint: "urn:uuid:1".into(),
                xaddrs: vec![
                    "http://169.254.1.2/onvif/device_service".into(),
                    "http://192.168.1.64/onvif/device_service".into(),
                ],
                scopes: vec!["onvif://www.onvif.org/name/South%20Gate".into()],
                from: None,
            },
            ProbeMatch {
                endpoint: "urn:uuid:2".into(),
                xaddrs: vec!["http://169.254.9.9/onvif/device_service".into()],
                scopes: vec![],
                from: None,
            },
        ];
        let text = discovered_block(&found);
        assert!(
            text.contains("address = \"http://192.168.1.64/onvif/device_service\""),
            "{text}"
        );
        assert!(!text.contains("address = \"http://169.254"), "{text}");
        assert!(text.contains("type = \"onvif-camera\""));
        assert!(text.contains("# camera 2 (urn:uuid:2) answered with link-local addresses only"));
        assert_eq!(id_from("South Gate 1"), "south-gate-1");
        assert_eq!(id_from("监控"), "camera");
    }
}
