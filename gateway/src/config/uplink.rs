//! The platform-link sections: `[uplink]` (with `[uplink.mqtt]` or
//! `[uplink.https]`), `[broker]` (the embedded MQTT broker) and `[api]` (the
//! platform's pull API). Types and readers live together here so the link's
//! configuration is one file; `schema::build` calls [`read_broker`],
//! [`read_uplink`] and [`read_api`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use super::Secret;
use super::env::Env;
use super::reader::{Pem, Section};

/// `[uplink] topic_prefix` default.
pub const DEFAULT_TOPIC_PREFIX: &str = "gatehouse/v1";
/// `[uplink] batch_size` default.
pub(crate) const DEFAULT_BATCH_SIZE: u64 = 500;
/// `[uplink] heartbeat_interval` default.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);
/// `[uplink] reconnect_max` default: low, so the first event after the
/// platform returns goes out within a few seconds.
pub(crate) const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(2);
/// `[uplink] command_max_lifetime` default.
pub(crate) const DEFAULT_COMMAND_LIFETIME: Duration = Duration::from_secs(600);
/// `[uplink] refusal_interval` default.
pub(crate) const DEFAULT_REFUSAL_INTERVAL: Duration = Duration::from_secs(60);
/// `[uplink] door_pulse_max` default.
pub(crate) const DEFAULT_DOOR_PULSE_MAX: Duration = Duration::from_secs(60);
/// `[uplink.mqtt] keep_alive` default.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// `[uplink.mqtt] inflight` default (unacknowledged QoS 1 publishes).
pub(crate) const DEFAULT_INFLIGHT: u64 = 1000;
/// `[uplink.https] timeout` default.
pub(crate) const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// `[broker] listen` default.
pub(crate) const DEFAULT_BROKER_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1883));

/// `[uplink]`: where events go and how the platform talks back.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// The sink (`sink = "mqtt" | "https" | "off"`).
    pub sink: SinkConfig,
    /// Topic prefix (`gatehouse/v1`).
    pub topic_prefix: String,
    /// Events per batch read from the store and sent.
    pub batch_size: usize,
    /// Period of the presence heartbeat.
    pub heartbeat_interval: Duration,
    /// Longest wait between reconnection or retry attempts (jittered).
    pub reconnect_max: Duration,
    /// HMAC-SHA256 key of downlink commands and list syncs; without it every
    /// downlink message is refused.
    pub command_key: Option<Secret>,
    /// Longest accepted `expires_ms - issued_ms` of a command.
    pub command_max_lifetime: Duration,
    /// Refused downlink messages are recorded as one event per interval
    /// (with a count) after the first.
    pub refusal_interval: Duration,
    /// Longest door pulse (`duration_ms`) a platform command may ask for;
    /// longer ones are refused.
    pub door_pulse_max: Duration,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        Self {
            sink: SinkConfig::Off,
            topic_prefix: DEFAULT_TOPIC_PREFIX.to_owned(),
            batch_size: DEFAULT_BATCH_SIZE as usize,
            heartbeat_interval: DEFAULT_HEARTBEAT,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            command_key: None,
            command_max_lifetime: DEFAULT_COMMAND_LIFETIME,
            refusal_interval: DEFAULT_REFUSAL_INTERVAL,
            door_pulse_max: DEFAULT_DOOR_PULSE_MAX,
        }
    }
}

/// Which sink the uplink uses.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// No uplink: events stay in the store.
    Off,
    /// MQTT (3.1.1, QoS 1).
    Mqtt(MqttConfig),
    /// HTTPS batches.
    Https(HttpsConfig),
}

/// Where the MQTT broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttHost {
    /// The embedded broker of `[broker]` (its bound address).
    Embedded,
    /// A host name or address.
    Name(String),
}

/// `[uplink.mqtt]`.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Broker host (`"embedded"` for the in-process broker).
    pub host: MqttHost,
    /// Broker port (1883, or 8883 with TLS).
    pub port: u16,
    /// MQTT client id (the persistent session's name).
    pub client_id: String,
    /// TLS settings; `None` is plain TCP.
    pub tls: Option<ClientTls>,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password or token.
    pub password: Option<Secret>,
    /// More brokers (a cluster's other nodes, `host:port`), tried in turn
    /// after `host` when a connection is lost or refused.
    pub failover: Vec<(String, u16)>,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Unacknowledged QoS 1 publishes allowed at once.
    pub inflight: u16,
}

/// TLS trust and identity files.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// PEM file of the CA(s) to trust.
    pub ca_file: PathBuf,
    /// PEM client certificate chain and key, for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// `[uplink.https]`.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    /// Base URL, e.g. `https://platform.example/api`.
    pub base_url: String,
    /// Bearer token.
    pub token: Option<Secret>,
    /// PEM file of extra CA(s) to trust.
    pub ca_file: Option<PathBuf>,
    /// Request timeout.
    pub timeout: Duration,
}

/// `[broker]`: the embedded MQTT broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Whether to run it.
    pub embedded: bool,
    /// Where it listens (port 0: a free port).
    pub listen: SocketAddr,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            embedded: false,
            listen: DEFAULT_BROKER_LISTEN,
        }
    }
}

/// `[api]`: the platform's pull API (`/api/v1/…`).
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// Bearer token of the platform; without it the API answers 401.
    pub token: Option<Secret>,
}

/// Reads `[broker]`.
pub(crate) fn read_broker(mut s: Section<'_, '_>) -> BrokerConfig {
    let embedded = s.take_bool("embedded").unwrap_or(false);
    let listen = s.take_addr("listen").unwrap_or(DEFAULT_BROKER_LISTEN);
    s.finish();
    BrokerConfig { embedded, listen }
}

/// Reads `[api]`.
pub(crate) fn read_api(mut s: Section<'_, '_>, env: &dyn Env) -> ApiConfig {
    let token = s.take_secret("token", env);
    s.finish();
    ApiConfig { token }
}

/// Reads `[uplink]`; `gateway_id` names the default client id and
/// `broker_embedded` says whether `host = "embedded"` can work.
pub(crate) fn read_uplink(
    mut s: Section<'_, '_>,
    env: &dyn Env,
    gateway_id: &str,
    broker_embedded: bool,
) -> UplinkConfig {
    let defaults = UplinkConfig::default();
    let sink_name = s.take_str("sink").unwrap_or_else(|| "off".to_owned());
    let topic_prefix = s
        .take_nonempty_str("topic_prefix")
        .unwrap_or(defaults.topic_prefix);
    if topic_prefix.contains(['+', '#']) || topic_prefix.ends_with('/') {
        s.problem(
            "topic_prefix",
            "must not contain MQTT wildcards (+, #) nor end with '/'",
        );
    }
    let batch_size = s
        .take_int("batch_size", 1..=10_000)
        .unwrap_or(DEFAULT_BATCH_SIZE) as usize;
    let heartbeat_interval = s
        .take_duration("heartbeat_interval")
        .unwrap_or(DEFAULT_HEARTBEAT);
    if heartbeat_interval < Duration::from_secs(1) {
        s.problem("heartbeat_interval", "must be at least 1s");
    }
    let reconnect_max = s
        .take_duration("reconnect_max")
        .unwrap_or(DEFAULT_RECONNECT_MAX);
    if reconnect_max < Duration::from_millis(100) {
        s.problem("reconnect_max", "must be at least 100ms");
    }
    let command_key = s.take_secret("command_key", env);
    let command_max_lifetime = s
        .take_duration("command_max_lifetime")
        .unwrap_or(DEFAULT_COMMAND_LIFETIME);
    let refusal_interval = s
        .take_duration("refusal_interval")
        .unwrap_or(DEFAULT_REFUSAL_INTERVAL);
    if refusal_interval < Duration::from_secs(1) {
        s.problem("refusal_interval", "must be at least 1s");
    }
    let door_pulse_max = s
        .take_duration("door_pulse_max")
        .unwrap_or(DEFAULT_DOOR_PULSE_MAX);
    if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&door_pulse_max) {
        s.problem("door_pulse_max", "must be from 100ms to 1h");
    }
    // Both tables are read (and checked) when present; `sink` picks one.
    let mqtt = s.take_table("mqtt");
    let mqtt = s
        .was_present("mqtt")
        .then(|| read_mqtt(mqtt, env, gateway_id, broker_embedded));
    let https = s.take_table("https");
    let https = s.was_present("https").then(|| read_https(https, env));
    let sink = match (sink_name.as_str(), mqtt, https) {
        ("off", _, _) => SinkConfig::Off,
        ("mqtt", Some(mqtt), _) => SinkConfig::Mqtt(mqtt),
        ("https", _, Some(https)) => SinkConfig::Https(https),
        ("mqtt" | "https", _, _) => {
            s.problem(
                "sink",
                format!("sink = \"{sink_name}\" needs an [uplink.{sink_name}] table"),
            );
            SinkConfig::Off
        }
        (other, _, _) => {
            s.problem(
                "sink",
                format!("unknown sink {other:?}; expected \"mqtt\", \"https\" or \"off\""),
            );
            SinkConfig::Off
        }
    };
    s.finish();
    UplinkConfig {
        sink,
        topic_prefix,
        batch_size,
        heartbeat_interval,
        reconnect_max,
        command_key,
        command_max_lifetime,
        refusal_interval,
        door_pulse_max,
    }
}

fn read_mqtt(
    mut s: Section<'_, '_>,
    env: &dyn Env,
    gateway_id: &str,
    broker_embedded: bool,
) -> MqttConfig {
    let host = match s.require("host", Section::take_nonempty_str) {
        Some(h) if h == "embedded" => {
            if !broker_embedded {
                s.problem("host", "host = \"embedded\" needs [broker] embedded = true");
            }
            MqttHost::Embedded
        }
        Some(h) => MqttHost::Name(h),
        None => MqttHost::Name(String::new()),
    };
    let ca_file = s.take_pem("ca_file", Pem::Certificates);
    let client_cert = s.take_pem("client_cert", Pem::Certificates);
    let client_key = s.take_pem("client_key", Pem::PrivateKey);
    let default_port = if ca_file.is_some() { 8883 } else { 1883 };
    let port = s
        .take_int("port", 1..=65_535)
        .map_or(default_port, |p| p as u16);
    let client_id = s
        .take_nonempty_str("client_id")
        .unwrap_or_else(|| format!("gatehouse-{gateway_id}"));
    let client_pair = match (client_cert, client_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            s.problem("client_cert", "needs client_key as well");
            None
        }
        (None, Some(_)) => {
            s.problem("client_key", "needs client_cert as well");
            None
        }
    };
    let tls = match ca_file {
        Some(ca_file) => Some(ClientTls {
            ca_file,
            client_cert: client_pair,
        }),
        None => {
            if client_pair.is_some() {
                s.problem("client_cert", "a client certificate needs ca_file (TLS)");
            }
            None
        }
    };
    let failover = s
        .take_str_list("failover")
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| match broker_address(entry, default_port) {
            Ok(address) => Some(address),
            Err(why) => {
                s.problem("failover", format!("{entry:?}: {why}"));
                None
            }
        })
        .collect::<Vec<_>>();
    if !failover.is_empty() && host == MqttHost::Embedded {
        s.problem(
            "failover",
            "the embedded broker has no other nodes; name the cluster's brokers in host and failover",
        );
    }
    let username = s.take_nonempty_str("username");
    let password = s.take_secret("password", env);
    let keep_alive = s.take_duration("keep_alive").unwrap_or(DEFAULT_KEEP_ALIVE);
    if keep_alive < Duration::from_secs(5) {
        s.problem("keep_alive", "must be at least 5s");
    }
    let inflight = s
        .take_int("inflight", 1..=10_000)
        .unwrap_or(DEFAULT_INFLIGHT) as u16;
    s.finish();
    MqttConfig {
        host,
        port,
        client_id,
        tls,
        username,
        password,
        failover,
        keep_alive,
        inflight,
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (the port defaults to
/// `default_port`).
fn broker_address(entry: &str, default_port: u16) -> Result<(String, u16), String> {
    let entry = entry.trim();
    let port_of = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port (1 to 65535)"))
    };
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ]")?;
        match after.strip_prefix(':') {
            Some(port) => (host, port_of(port)?),
            None if after.is_empty() => (host, default_port),
            None => return Err("expected host:port".into()),
        }
    } else {
        match entry.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, port_of(port)?),
            Some(_) => return Err("an IPv6 address goes in brackets: \"[::1]:1883\"".into()),
            None => (entry, default_port),
        }
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err("expected a host name or address, e.g. \"10.0.0.12:1883\"".into());
    }
    Ok((host.to_owned(), port))
}

fn read_https(mut s: Section<'_, '_>, env: &dyn Env) -> HttpsConfig {
    let base_url = s
        .require("base_url", Section::take_nonempty_str)
        .unwrap_or_default();
    if s.was_present("base_url")
        && !(base_url.starts_with("https://") || base_url.starts_with("http://"))
    {
        s.problem(
            "base_url",
            "must start with https:// (or http:// for tests)",
        );
    }
    let token = s.take_secret("token", env);
    let ca_file = s.take_pem("ca_file", Pem::Certificates);
    let timeout = s.take_duration("timeout").unwrap_or(DEFAULT_HTTP_TIMEOUT);
    if timeout.is_zero() {
        s.problem("timeout", "must be greater than zero");
    }
    s.finish();
    HttpsConfig {
        base_url: base_url.trim_end_matches('/').to_owned(),
        token,
        ca_file,
        timeout,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::super::{ConfigErrors, parse_with};
    use super::*;

    const GATEWAY: &str = "[gateway]\nestate_id = \"e1\"\ngateway_id = \"g1\"\n";

    fn parse(extra: &str, vars: &[(&str, &str)]) -> Result<super::super::Config, ConfigErrors> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_with(&format!("{GATEWAY}{extra}"), "t.toml", &env)
    }

    #[test]
    fn absent_sections_mean_no_uplink_no_broker_and_a_closed_api() {
        let c = parse("", &[]).unwrap();
        assert!(matches!(c.uplink.sink, SinkConfig::Off));
        assert_eq!(c.uplink.topic_prefix, "gatehouse/v1");
        assert!(!c.broker.embedded);
        assert!(c.api.token.is_none());
    }

    #[test]
    fn an_mqtt_uplink_reads_with_defaults_and_secrets() {
        let c = parse(
            "[uplink]\nsink = \"mqtt\"\ncommand_key = { env = \"KEY\" }\n\
             [uplink.mqtt]\nhost = \"mqtt.example\"\nusername = \"gw\"\npassword = { env = \"PW\" }\n\
             [api]\ntoken = { env = \"API\" }\n",
            &[("KEY", "k"), ("PW", "p"), ("API", "a")],
        )
        .unwrap();
        let SinkConfig::Mqtt(m) = &c.uplink.sink else {
            panic!("mqtt expected")
        };
        assert_eq!(m.host, MqttHost::Name("mqtt.example".into()));
        assert_eq!(m.port, 1883);
        assert_eq!(m.client_id, "gatehouse-g1");
        assert_eq!(m.password.as_ref().unwrap().expose(), "p");
        assert!(
            !format!("{c:?}").contains("\"p\""),
            "secrets never in Debug"
        );
        assert_eq!(c.uplink.command_key.as_ref().unwrap().expose(), "k");
        assert_eq!(c.api.token.as_ref().unwrap().expose(), "a");
        assert_eq!(c.uplink.reconnect_max, DEFAULT_RECONNECT_MAX);
    }

    #[test]
    fn link_problems_are_located() {
        let errors = parse(
            "[uplink]\nsink = \"mqtt\"\nbatch_size = 0\n\
             [uplink.mqtt]\nhost = \"embedded\"\nclient_cert = \"/c.pem\"\n\
             [broker]\nembedded = \"yes\"\n",
            &[],
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "uplink.batch_size",
                "uplink.mqtt.host",
                "uplink.mqtt.client_cert", // cannot be read
                "uplink.mqtt.client_cert", // needs ca_file
                "broker.embedded"
            ],
            "{errors:#?}"
        );
        let errors = parse("[uplink]\nsink = \"kafka\"\n", &[]).unwrap_err();
        assert_eq!(errors.problems[0].key, "uplink.sink");
        let errors = parse(
            "[uplink]\nsink = \"https\"\n[uplink.https]\nbase_url = \"ftp://x\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(errors.problems[0].key, "uplink.https.base_url");
    }

    #[test]
    fn the_embedded_broker_can_be_the_uplink_target() {
        let c = parse(
            "[broker]\nembedded = true\nlisten = \"127.0.0.1:0\"\n\
             [uplink]\nsink = \"mqtt\"\n[uplink.mqtt]\nhost = \"embedded\"\n",
            &[],
        )
        .unwrap();
        assert!(c.broker.embedded);
        assert_eq!(c.broker.listen.port(), 0);
        let SinkConfig::Mqtt(m) = &c.uplink.sink else {
            panic!("mqtt expected")
        };
        assert_eq!(m.host, MqttHost::Embedded);
    }
}
