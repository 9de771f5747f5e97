//! `gatehouse doctor`: one readable report for an installer standing in
//! the guard room — is the configuration valid, can the service user reach
//! its GPIO chips and serial ports, is the clock synchronised, is there room
//! on the data disk, are the listeners' ports free, can the platform be
//! reached (DNS, TCP, TLS, authentication), when do certificates expire, do
//! the devices answer. Every check yields a [`Finding`]; the command exits
//! non-zero when any finding needs attention.
//!
//! The checks only look: nothing is written to a device, the database is
//! not opened, and lines already held by a running gateway count as fine.

use std::fmt;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::{Config, DeviceKind, Gpio, ModbusTransport, SinkConfig};
use crate::ops::lock::{DataDirLock, LockError};

/// How long one network probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Certificates expiring sooner than this are a warning.
const CERT_WARN: Duration = Duration::from_secs(30 * 24 * 3600);
/// Free space on the data disk below this share is a warning.
const DISK_WARN_SHARE: f64 = 0.10;

/// How a finding reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but should be looked at.
    Warn,
    /// Needs fixing before the gateway can do its work.
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked: `config`, `gpio`, `serial`, `clock`, `disk`,
    /// `listener`, `platform`, `certificate`, `device`.
    pub area: &'static str,
    /// Verdict.
    pub level: Level,
    /// What was found, for a person.
    pub detail: String,
}

impl Finding {
    fn new(area: &'static str, level: Level, detail: impl Into<String>) -> Finding {
        Finding {
            area,
            level,
            detail: detail.into(),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every finding, in check order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Findings that need attention (warnings and failures).
    pub fn attention(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.level != Level::Ok)
            .count()
    }

    /// The process exit code: 0 when nothing needs attention, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.attention() > 0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(
                f,
                "{:<5} {:<12} {}",
                finding.level.label(),
                finding.area,
                finding.detail
            )?;
        }
        match self.attention() {
            0 => writeln!(f, "Everything checked is fine."),
            n => writeln!(f, "{n} finding(s) need attention."),
        }
    }
}

/// Runs every check against a loaded configuration.
pub async fn examine(config: &Config) -> Report {
    let mut report = Report::default();
    let findings = &mut report.findings;
    findings.push(Finding::new(
        "config",
        Level::Ok,
        format!(
            "valid: {} device(s), {} lane(s), {} door(s)",
            config.devices.len(),
            config.lanes.len(),
            config.doors.len()
        ),
    ));
    let running = gateway_running(&config.gateway.data_dir, findings);
    findings.push(clock().await);
    findings.extend(disk(&config.gateway.data_dir));
    findings.extend(listeners(config, running));
    for device in &config.devices {
        findings.extend(device_findings(&device.id, &device.kind, running).await);
    }
    findings.extend(certificates(config, SystemTime::now()));
    findings.extend(platform(config).await);
    report
}

fn gateway_running(data_dir: &Path, findings: &mut Vec<Finding>) -> bool {
    if !data_dir.is_dir() {
        findings.push(Finding::new(
            "disk",
            Level::Fail,
            format!(
                "data directory {} does not exist (the package creates /var/lib/gatehouse)",
                data_dir.display()
            ),
        ));
        return false;
    }
    match DataDirLock::acquire(data_dir) {
        Ok(_lock) => {
            findings.push(Finding::new(
                "gateway",
                Level::Ok,
                "not running (ports and devices are checked as free)",
            ));
            false
        }
        Err(LockError::Held { .. }) => {
            findings.push(Finding::new(
                "gateway",
                Level::Ok,
                "running (its ports and devices count as in use by it)",
            ));
            true
        }
        Err(error) => {
            findings.push(Finding::new(
                "disk",
                Level::Fail,
                format!("data directory not writable by this user: {error}"),
            ));
            false
        }
    }
}

async fn clock() -> Finding {
    if crate::clock::ClockCheck::default().synchronised().await {
        Finding::new("clock", Level::Ok, "synchronised")
    } else {
        Finding::new(
            "clock",
            Level::Warn,
            "not synchronised: event times and visitor windows depend on it (enable systemd-timesyncd or chrony)",
        )
    }
}

// statvfs counts are 32-bit on armhf and 64-bit elsewhere: the casts are
// needed there.
#[allow(clippy::unnecessary_cast)]
fn disk(data_dir: &Path) -> Vec<Finding> {
    let Ok(stat) = nix::sys::statvfs::statvfs(data_dir) else {
        return Vec::new();
    };
    let share = |free: u64, total: u64| {
        if total == 0 {
            1.0
        } else {
            free as f64 / total as f64
        }
    };
    let block = stat.fragment_size() as u64;
    let free_bytes = stat.blocks_available() as u64 * block;
    let total_bytes = stat.blocks() as u64 * block;
    let bytes_share = share(free_bytes, total_bytes);
    let inode_share = share(stat.files_available() as u64, stat.files() as u64);
    let level = |s: f64| {
        if s < DISK_WARN_SHARE {
            Level::Warn
        } else {
            Level::Ok
        }
    };
    vec![
        Finding::new(
            "disk",
            level(bytes_share),
            format!(
                "{}: {} MiB free of {} MiB ({:.0} %)",
                data_dir.display(),
                free_bytes >> 20,
                total_bytes >> 20,
                bytes_share * 100.0
            ),
        ),
        Finding::new(
            "disk",
            level(inode_share),
            format!("{:.0} % of inodes free", inode_share * 100.0),
        ),
    ]
}

fn listeners(config: &Config, running: bool) -> Vec<Finding> {
    let mut wanted = vec![
        ("panel", config.panel.listen),
        ("ingress", config.ingress.listen),
    ];
    if config.broker.embedded {
        wanted.push(("broker", config.broker.listen));
    }
    wanted
        .into_iter()
        .map(|(what, addr)| {
            if running {
                return Finding::new(
                    "listener",
                    Level::Ok,
                    format!("{what} {addr}: served by the running gateway"),
                );
            }
            match TcpListener::bind(addr) {
                Ok(_) => Finding::new("listener", Level::Ok, format!("{what} {addr}: free")),
                Err(error) => Finding::new(
                    "listener",
                    Level::Fail,
                    format!("{what} {addr}: cannot listen ({error})"),
                ),
            }
        })
        .collect()
}

/// What a device needs from the box or the network.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Tcp(SocketAddr),
    Serial(PathBuf),
    GpioLine {
        chip: Option<String>,
        line: drivers::door::gpio::LineRef,
    },
}

fn endpoints(kind: &DeviceKind) -> Vec<Endpoint> {
    let gpio = |gpio: &Gpio, lines: &[&drivers::door::gpio::LineConfig]| -> Vec<Endpoint> {
        match gpio {
            Gpio::Sim => Vec::new(),
            Gpio::Chip(chip) => lines
                .iter()
                .map(|l| Endpoint::GpioLine {
                    chip: l.chip.clone().or_else(|| Some(chip.clone())),
                    line: l.line.clone(),
                })
                .collect(),
        }
    };
    match kind {
        DeviceKind::ModbusBarrier { transport, .. } => match transport {
            ModbusTransport::Tcp(addr) => vec![Endpoint::Tcp(*addr)],
            ModbusTransport::Rtu { path, .. } => vec![Endpoint::Serial(PathBuf::from(path))],
        },
        DeviceKind::SerialReader(reader) => vec![Endpoint::Serial(reader.path.clone())],
        DeviceKind::WiegandReader {
            gpio: g, d0, d1, ..
        } => gpio(g, &[d0, d1]),
        DeviceKind::Door {
            gpio: g,
            relay,
            contact,
            exit_button,
            ..
        } => {
            let mut lines = vec![relay, contact];
            lines.extend(exit_button.iter());
            gpio(g, &lines)
        }
        // UDP controllers, pushing cameras and simulators have nothing to
        // probe without speaking their protocol.
        _ => Vec::new(),
    }
}

async fn device_findings(id: &str, kind: &DeviceKind, running: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    for endpoint in endpoints(kind) {
        findings.push(match endpoint {
            Endpoint::Tcp(addr) => match tcp(addr).await {
                Ok(()) => Finding::new("device", Level::Ok, format!("{id}: {addr} answers")),
                Err(error) => Finding::new(
                    "device",
                    Level::Fail,
                    format!("{id}: {addr} does not answer ({error})"),
                ),
            },
            Endpoint::Serial(path) => serial(id, &path),
            Endpoint::GpioLine { chip, line } => gpio_line(id, chip.as_deref(), &line, running),
        });
    }
    findings
}

async fn tcp(addr: SocketAddr) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

fn serial(id: &str, path: &Path) -> Finding {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(_) => Finding::new(
            "serial",
            Level::Ok,
            format!("{id}: {} opens", path.display()),
        ),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => Finding::new(
            "serial",
            Level::Fail,
            format!(
                "{id}: {} permission denied: the gatehouse user needs the dialout group",
                path.display()
            ),
        ),
        Err(error) => Finding::new(
            "serial",
            Level::Fail,
            format!(
                "{id}: {} cannot be opened ({error}); is the adapter plugged in?",
                path.display()
            ),
        ),
    }
}

fn gpio_line(
    id: &str,
    chip: Option<&str>,
    line: &drivers::door::gpio::LineRef,
    running: bool,
) -> Finding {
    use drivers::door::gpio::LineRef;
    let info = match line {
        LineRef::Name(name) => gpiocdev::find_named_line(name)
            .map(|found| (found.chip.display().to_string(), found.info))
            .ok_or_else(|| format!("no GPIO line is named {name:?}")),
        LineRef::Offset(offset) => {
            let chip = chip.unwrap_or("gpiochip0");
            let path = if chip.starts_with('/') {
                chip.to_owned()
            } else {
                format!("/dev/{chip}")
            };
            gpiocdev::Chip::from_path(&path)
                .and_then(|c| c.line_info(*offset))
                .map(|info| (path.clone(), info))
                .map_err(|e| format!("{path} line {offset}: {e}"))
        }
    };
    match info {
        Err(error) => Finding::new("gpio", Level::Fail, format!("{id}: {error}")),
        Ok((chip, info)) if info.used && !(running && info.consumer.starts_with("gatehouse")) => {
            Finding::new(
                "gpio",
                Level::Fail,
                format!(
                    "{id}: {chip} line {} is claimed by {:?}",
                    info.offset, info.consumer
                ),
            )
        }
        Ok((chip, info)) => Finding::new(
            "gpio",
            Level::Ok,
            format!(
                "{id}: {chip} line {} {}",
                info.offset,
                if info.used {
                    "claimed by the gateway"
                } else {
                    "free"
                }
            ),
        ),
    }
}

/// Certificate files named by the configuration, with what they are for.
fn certificate_files(config: &Config) -> Vec<(&'static str, PathBuf)> {
    let mut files = Vec::new();
    if let Some(tls) = &config.panel.tls {
        files.push(("panel certificate", tls.cert.clone()));
    }
    match &config.uplink.sink {
        SinkConfig::Mqtt(mqtt) => {
            if let Some(tls) = &mqtt.tls {
                files.push(("platform CA", tls.ca_file.clone()));
                if let Some((cert, _)) = &tls.client_cert {
                    files.push(("gateway client certificate", cert.clone()));
                }
            }
        }
        SinkConfig::Https(https) => {
            if let Some(ca) = &https.ca_file {
                files.push(("platform CA", ca.clone()));
            }
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
    files
}

/// Expiry of every certificate the configuration names, against `now`.
pub fn certificates(config: &Config, now: SystemTime) -> Vec<Finding> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut findings = Vec::new();
    for (what, path) in certificate_files(config) {
        let certs = match CertificateDer::pem_file_iter(&path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        {
            Ok(certs) => certs,
            Err(error) => {
                findings.push(Finding::new(
                    "certificate",
                    Level::Fail,
                    format!("{what} {}: {error}", path.display()),
                ));
                continue;
            }
        };
        for der in certs {
            findings.push(expiry(what, &path, &der, now));
        }
    }
    findings
}

fn expiry(what: &str, path: &Path, der: &[u8], now: SystemTime) -> Finding {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Finding::new(
            "certificate",
            Level::Fail,
            format!("{what} {}: not an X.509 certificate", path.display()),
        );
    };
    let subject = cert.subject().to_string();
    let not_after = cert.validity().not_after.timestamp();
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let left = not_after - now_s;
    let until = jiff::Timestamp::from_second(not_after)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| not_after.to_string());
    let (level, state) = if left <= 0 {
        (Level::Fail, "expired on")
    } else if left < CERT_WARN.as_secs() as i64 {
        (Level::Warn, "expires soon, on")
    } else {
        (Level::Ok, "valid until")
    };
    Finding::new(
        "certificate",
        level,
        format!("{what} {} ({subject}) {state} {until}", path.display()),
    )
}

async fn platform(config: &Config) -> Vec<Finding> {
    match &config.uplink.sink {
        SinkConfig::Mqtt(mqtt) => match &mqtt.host {
            crate::config::MqttHost::Name(host) => {
                mqtt_platform(mqtt, host.clone(), mqtt.port).await
            }
            crate::config::MqttHost::Embedded => {
                let addr = config.broker.listen;
                mqtt_platform(mqtt, addr.ip().to_string(), addr.port()).await
            }
        },
        SinkConfig::Https(https) => https_platform(https).await,
        #[allow(unreachable_patterns)]
        _ => vec![Finding::new(
            "platform",
            Level::Ok,
            "no platform link configured",
        )],
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, Finding> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            Finding::new(
                "platform",
                Level::Fail,
                format!("DNS: {host} does not resolve"),
            )
        })
}

/// The platform's host resolves and accepts a TCP connection; each step is
/// a finding. Returns whether the next steps (TLS, authentication) can run.
async fn reach(host: &str, port: u16, findings: &mut Vec<Finding>) -> bool {
    let addr = match resolve(host, port) {
        Ok(addr) => addr,
        Err(finding) => {
            findings.push(finding);
            return false;
        }
    };
    findings.push(Finding::new(
        "platform",
        Level::Ok,
        format!("DNS: {host} → {}", addr.ip()),
    ));
    match tcp(addr).await {
        Ok(()) => {
            findings.push(Finding::new(
                "platform",
                Level::Ok,
                format!("TCP: {addr} reachable"),
            ));
            true
        }
        Err(error) => {
            findings.push(Finding::new(
                "platform",
                Level::Fail,
                format!("TCP: {addr} unreachable ({error})"),
            ));
            false
        }
    }
}

async fn mqtt_platform(mqtt: &crate::config::MqttConfig, host: String, port: u16) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !reach(&host, port, &mut findings).await {
        return findings;
    }
    let tls = match mqtt
        .tls
        .as_ref()
        .map(crate::uplink::mqtt::tls_config)
        .transpose()
    {
        Ok(tls) => tls,
        Err(error) => {
            findings.push(Finding::new(
                "platform",
                Level::Fail,
                format!("TLS: {error}"),
            ));
            return findings;
        }
    };
    let mut options = rumqttc::MqttOptions::new(format!("{}-doctor", mqtt.client_id), host, port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(true);
    if let (Some(user), Some(password)) = (&mqtt.username, &mqtt.password) {
        options.set_credentials(user.clone(), password.expose().to_owned());
    }
    if let Some(tls) = tls {
        options.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
            tls,
        )));
    }
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1);
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                    return if ack.code == rumqttc::ConnectReturnCode::Success {
                        Ok(())
                    } else {
                        Err(format!("the broker refused the gateway: {:?}", ack.code))
                    };
                }
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no CONNACK within {PROBE_TIMEOUT:?}")));
    let _ = client.try_disconnect();
    findings.push(match outcome {
        Ok(()) => Finding::new(
            "platform",
            Level::Ok,
            format!(
                "MQTT: connected{} and authenticated",
                if mqtt.tls.is_some() { " over TLS" } else { "" }
            ),
        ),
        Err(error) => Finding::new("platform", Level::Fail, format!("MQTT: {error}")),
    });
    findings
}

async fn https_platform(https: &crate::config::HttpsConfig) -> Vec<Finding> {
    let Ok(url) = reqwest::Url::parse(&https.base_url) else {
        return vec![Finding::new(
            "platform",
            Level::Fail,
            "base_url is not a URL",
        )];
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let mut findings = Vec::new();
    if !reach(&host, port, &mut findings).await {
        return findings;
    }
    let mut builder = reqwest::Client::builder().timeout(PROBE_TIMEOUT);
    if let Some(ca) = &https.ca_file {
        match std::fs::read(ca)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string()))
        {
            Ok(cert) => builder = builder.add_root_certificate(cert),
            Err(error) => {
                findings.push(Finding::new(
                    "platform",
                    Level::Fail,
                    format!("TLS: ca_file {}: {error}", ca.display()),
                ));
                return findings;
            }
        }
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(error) => {
            findings.push(Finding::new(
                "platform",
                Level::Fail,
                format!("TLS: {error}"),
            ));
            return findings;
        }
    };
    let mut request = client.get(url.clone());
    if let Some(token) = &https.token {
        request = request.bearer_auth(token.expose());
    }
    findings.push(match request.send().await {
        Err(error) => Finding::new("platform", Level::Fail, format!("HTTPS: {error}")),
        Ok(response) if matches!(response.status().as_u16(), 401 | 403) => Finding::new(
            "platform",
            Level::Fail,
            format!(
                "HTTPS: the platform refused the gateway's token ({})",
                response.status()
            ),
        ),
        Ok(response) => Finding::new(
            "platform",
            Level::Ok,
            format!("HTTPS: {host} answered {} over TLS", response.status()),
        ),
    });
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(days: i64) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["gateway.test".to_owned()]).expect("params");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(400);
        params.not_after = now + time::Duration::days(days);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn certificates_read_ok_soon_and_expired() {
        let path = Path::new("/etc/gatehouse/panel.crt");
        let now = SystemTime::now();
        assert_eq!(
            expiry("panel", path, &self_signed(365), now).level,
            Level::Ok
        );
        assert_eq!(
            expiry("panel", path, &self_signed(10), now).level,
            Level::Warn
        );
        let expired = expiry("panel", path, &self_signed(-1), now);
        assert_eq!(expired.level, Level::Fail);
        assert!(expired.detail.contains("expired on"), "{}", expired.detail);
        assert_eq!(expiry("panel", path, b"junk", now).level, Level::Fail);
    }

    #[test]
    fn a_missing_serial_port_and_a_busy_listener_need_attention() {
        let missing = serial("reader-1", Path::new("/dev/gatehouse-no-such-tty"));
        assert_eq!(missing.level, Level::Fail);
        assert!(missing.detail.contains("plugged in"), "{}", missing.detail);

        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let busy = taken.local_addr().expect("addr");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::config::parse(
            &format!(
                "[gateway]\nestate_id = \"e\"\ngateway_id = \"g\"\ndata_dir = \"{}\"\n[panel]\nlisten = \"{busy}\"\n[ingress]\nlisten = \"127.0.0.1:0\"\n",
                dir.path().display()
            ),
            "doctor.toml",
        )
        .expect("config");
        let found = listeners(&config, false);
        let panel = found
            .iter()
            .find(|f| f.detail.starts_with("panel"))
            .expect("panel");
        assert_eq!(panel.level, Level::Fail, "{}", panel.detail);
        let running = listeners(&config, true);
        assert!(running.iter().all(|f| f.level == Level::Ok));

        let report = Report {
            findings: vec![missing, Finding::new("clock", Level::Ok, "synchronised")],
        };
        assert_eq!(report.attention(), 1);
        assert_eq!(report.exit_code(), 1);
        assert!(report.to_string().contains("1 finding(s) need attention."));
    }

    #[tokio::test]
    async fn the_platform_is_reached_step_by_step() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = open.local_addr().expect("addr").port();
        let mut findings = Vec::new();
        assert!(reach("127.0.0.1", port, &mut findings).await);
        assert!(
            findings.iter().all(|f| f.level == Level::Ok),
            "{findings:?}"
        );
        drop(open);
        let mut findings = Vec::new();
        assert!(!reach("127.0.0.1", port, &mut findings).await);
        assert_eq!(
            findings.last().map(|f| f.level),
            Some(Level::Fail),
            "{findings:?}"
        );
    }
}
