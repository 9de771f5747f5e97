//! `[[intercom]]`: the door stations (门口机) of video intercoms, each one
//! device (its id shares the namespace of `[[devices]]`) run by its own
//! supervised driver: `type = "hik-intercom"` (ISAPI over HTTP Digest),
//! `"dahua-vto"` (JSON-RPC on TCP 5000) or `"mqtt-intercom"` (a station or
//! bridge publishing JSON). Passwords come only from an environment
//! variable or a file, like every secret.

use std::collections::HashMap;
use std::time::Duration;

use drivers::intercom::dahua_driver::VtoConfig;
use drivers::intercom::hik_driver::HikConfig;
use drivers::intercom::mqtt::{Pointers, StationMap, Topics};
use drivers::intercom::mqtt_driver::MqttStationConfig;

use super::env::Env;
use super::reader::{Section, suggest};
use super::{BrokerConfig, DeviceConfig, DeviceKind};

/// The station families and their own keys (besides `id`, `name`, `type`,
/// `door`, `user`, `password`).
pub(crate) const STATION_TYPES: &[(&str, &[&str])] = &[
    (
        "hik-intercom",
        &["url", "stall_after", "call_poll", "timeout"],
    ),
    (
        "dahua-vto",
        &["address", "http_url", "reply_timeout", "keep_alive"],
    ),
    (
        "mqtt-intercom",
        &[
            "broker",
            "client_id",
            "topics",
            "pointers",
            "command_topic",
            "command_payload",
        ],
    ),
];

/// Whether a device `type` is a door station's.
pub fn is_station(kind: &str) -> bool {
    STATION_TYPES.iter().any(|(name, _)| *name == kind)
}

/// `mqtt-intercom` `command_payload` default.
const DEFAULT_COMMAND_PAYLOAD: &str = r#"{"cmd":"unlock","door":{door}}"#;

/// One configured door station: the driver's own configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Station {
    /// `type = "hik-intercom"`.
    Hik(Box<HikConfig>),
    /// `type = "dahua-vto"`.
    Dahua(Box<VtoConfig>),
    /// `type = "mqtt-intercom"`.
    Mqtt(Box<MqttStationConfig>),
}

impl Station {
    /// The `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Station::Hik(_) => "hik-intercom",
            Station::Dahua(_) => "dahua-vto",
            Station::Mqtt(_) => "mqtt-intercom",
        }
    }
}

/// Reads `[[intercom]]` into devices, after `[[devices]]`: an id already
/// written anywhere is a problem, and every id written is added to
/// `defined`.
pub(crate) fn read_stations(
    sections: Vec<Section<'_, '_>>,
    env: &dyn Env,
    broker: &BrokerConfig,
    devices: &mut Vec<DeviceConfig>,
    defined: &mut Vec<String>,
) {
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for mut s in sections {
        let id = s.require("id", Section::take_id);
        if let Some(id) = &id {
            if let Some(line) = first_line.get(id) {
                s.problem(
                    "id",
                    format!("duplicate station id {id:?} (first defined on line {line})"),
                );
            } else if defined.contains(id) {
                s.problem(
                    "id",
                    format!("id {id:?} is already a device in [[devices]]"),
                );
            } else {
                first_line.insert(id.clone(), s.line_of("id"));
                defined.push(id.clone());
            }
        }
        let name = s.take_nonempty_str("name");
        let type_name = s.require("type", Section::take_str);
        let known = STATION_TYPES.iter().map(|(n, _)| *n);
        let station_type = type_name.as_deref().and_then(|t| {
            let found = STATION_TYPES.iter().find(|(n, _)| *n == t);
            if found.is_none() {
                let hint = suggest(t, known.clone())
                    .map(|close| format!("did you mean {close:?}? "))
                    .unwrap_or_default();
                let list = known.clone().collect::<Vec<_>>().join(", ");
                s.problem(
                    "type",
                    format!("unknown station type {t:?}; {hint}known types: {list}"),
                );
            }
            found
        });
        let door = s
            .take_int("door", 1..=u64::from(u8::MAX))
            .and_then(|d| u8::try_from(d).ok())
            .unwrap_or(1);
        let station = station_type.map(|(t, _)| {
            read_station(
                &mut s,
                t,
                id.as_deref().unwrap_or_default(),
                env,
                broker,
                door,
            )
        });
        s.finish_with(|key| {
            let owner = STATION_TYPES.iter().find(|(_, keys)| keys.contains(&key));
            match (station_type, owner) {
                (Some((this, _)), Some((other, _))) => super::reader::Leftover::Message(format!(
                    "unknown key for type {this:?} (it is a key of type {other:?})"
                )),
                (None, Some(_)) => super::reader::Leftover::Ignore,
                (_, None) => super::reader::Leftover::Unknown,
            }
        });
        if let (Some(id), Some(Some(station))) = (id, station) {
            devices.push(DeviceConfig {
                name: name.unwrap_or_else(|| id.clone()),
                id,
                kind: DeviceKind::Intercom(station),
            });
        }
    }
}

/// A positive duration key with a default.
fn duration(s: &mut Section<'_, '_>, key: &str, default: Duration) -> Duration {
    let d = s.take_duration(key).unwrap_or(default);
    if d.is_zero() {
        s.problem(key, "must be greater than zero");
    }
    d
}

fn read_station(
    s: &mut Section<'_, '_>,
    type_name: &str,
    id: &str,
    env: &dyn Env,
    broker: &BrokerConfig,
    door: u8,
) -> Option<Station> {
    match type_name {
        "hik-intercom" => {
            let url = s.require("url", Section::take_nonempty_str);
            if let Some(url) = &url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                s.problem("url", "must start with http:// or https://");
            }
            let user = s.require("user", Section::take_nonempty_str);
            let password = s.require("password", |s, k| s.take_secret(k, env));
            let mut config = HikConfig::new(
                url.as_deref().unwrap_or_default().trim_end_matches('/'),
                user.as_deref().unwrap_or_default(),
                password.as_ref().map(|p| p.expose()).unwrap_or_default(),
            );
            config.door = door;
            config.stall_after = duration(s, "stall_after", config.stall_after);
            config.call_poll = duration(s, "call_poll", config.call_poll);
            config.timeout = duration(s, "timeout", config.timeout);
            Some(Station::Hik(Box::new(config))).filter(|_| url.is_some() && password.is_some())
        }
        "dahua-vto" => {
            let address = s.require("address", Section::take_nonempty_str);
            if let Some(address) = &address
                && address
                    .rsplit_once(':')
                    .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                s.problem(
                    "address",
                    "must be host:port (the station's JSON-RPC port, usually 5000)",
                );
            }
            let http_url = s.take_nonempty_str("http_url");
            if let Some(url) = &http_url
                && !url.starts_with("http://")
                && !url.starts_with("https://")
            {
                s.problem("http_url", "must start with http:// or https://");
            }
            let user = s.require("user", Section::take_nonempty_str);
            let password = s.require("password", |s, k| s.take_secret(k, env));
            let mut config = VtoConfig::new(
                address.as_deref().unwrap_or_default(),
                user.as_deref().unwrap_or_default(),
                password.as_ref().map(|p| p.expose()).unwrap_or_default(),
            );
            config.http_base = http_url.map(|u| u.trim_end_matches('/').to_owned());
            config.channel = u32::from(door) - 1;
            config.reply_timeout = duration(s, "reply_timeout", config.reply_timeout);
            config.keep_alive = duration(s, "keep_alive", config.keep_alive);
            Some(Station::Dahua(Box::new(config)))
                .filter(|_| address.is_some() && password.is_some())
        }
        _ => read_mqtt(s, id, env, broker, door).map(|c| Station::Mqtt(Box::new(c))),
    }
}

fn read_mqtt(
    s: &mut Section<'_, '_>,
    id: &str,
    env: &dyn Env,
    broker: &BrokerConfig,
    door: u8,
) -> Option<MqttStationConfig> {
    let where_ = s.require("broker", Section::take_nonempty_str);
    let (host, port) = match where_.as_deref() {
        Some("embedded") => {
            if !broker.embedded {
                s.problem("broker", "\"embedded\" needs [broker] embedded = true");
            }
            let listen = broker.listen;
            let host = if listen.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                listen.ip().to_string()
            };
            (host, listen.port())
        }
        Some(address) => match address
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        {
            Some((host, port)) if !host.is_empty() => (host.to_owned(), port),
            _ => {
                s.problem(
                    "broker",
                    "must be host:port of an MQTT broker, or \"embedded\"",
                );
                (String::new(), 0)
            }
        },
        None => (String::new(), 0),
    };
    let user = s.take_nonempty_str("user");
    let password = s.take_secret("password", env);
    let credentials = match (user, password) {
        (Some(user), Some(password)) => Some((user, password.expose().to_owned())),
        (Some(_), None) if !s.was_present("password") => {
            s.problem("user", "needs password as well");
            None
        }
        (None, Some(_)) => {
            s.problem("password", "needs user as well");
            None
        }
        _ => None,
    };
    let client_id = s
        .take_nonempty_str("client_id")
        .unwrap_or_else(|| format!("gatehouse-{id}"));
    let mut t = s.take_table("topics");
    let mut topic = |key: &str| {
        let topic = t.take_nonempty_str(key);
        if topic.as_deref().is_some_and(|t| t.contains(['+', '#'])) {
            t.problem(key, "must be a topic name, without wildcards");
        }
        topic
    };
    let topics = Topics {
        call: topic("call"),
        answered: topic("answered"),
        ended: topic("ended"),
        missed: topic("missed"),
        unlock: topic("unlock"),
        tamper: topic("tamper"),
        door: topic("door"),
        health: topic("health"),
    };
    if topics.all().is_empty() && !t.was_present("call") {
        t.problem(
            "",
            "name at least one topic (call, answered, ended, missed, unlock, tamper, door, health)",
        );
    }
    t.finish();
    let mut p = s.take_table("pointers");
    let defaults = Pointers::default();
    let mut pointer = |key: &str, default: String| {
        let pointer = p.take_str(key).unwrap_or(default);
        if !pointer.is_empty() && !pointer.starts_with('/') {
            p.problem(key, "must be a JSON pointer: empty, or starting with '/'");
        }
        pointer
    };
    let pointers = Pointers {
        call: pointer("call", defaults.call),
        unit: pointer("unit", defaults.unit),
        by: pointer("by", defaults.by),
        method: pointer("method", defaults.method),
        who: pointer("who", defaults.who),
        active: pointer("active", defaults.active),
        open: pointer("open", defaults.open),
        online: pointer("online", defaults.online),
    };
    p.finish();
    let command_topic = s.require("command_topic", Section::take_nonempty_str);
    if command_topic
        .as_deref()
        .is_some_and(|t| t.contains(['+', '#']))
    {
        s.problem("command_topic", "must be a topic name, without wildcards");
    }
    let command_payload = s
        .take_nonempty_str("command_payload")
        .unwrap_or_else(|| DEFAULT_COMMAND_PAYLOAD.to_owned());
    let command_topic = command_topic?;
    if host.is_empty() {
        return None;
    }
    Some(MqttStationConfig {
        host,
        port,
        client_id,
        credentials,
        map: StationMap { topics, pointers },
        command_topic,
        command_payload,
        door,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::super::{Config, ConfigErrors, DeviceKind, Problem, parse_with};
    use super::Station;

    const HEAD: &str = "[gateway]\nestate_id = \"e1\"\ngateway_id = \"g1\"\n";

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        let env: HashMap<String, String> = [("B3_PW", "station-s3cret")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        parse_with(&format!("{HEAD}{text}"), "test.toml", &env)
    }

    fn problems(text: &str) -> Vec<Problem> {
        match load(text) {
            Ok(config) => panic!("expected problems, got {config:?}"),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn the_three_station_types_become_devices_with_their_drivers_settings() {
        let config = load(
            r#"[broker]
embedded = true
listen = "127.0.0.1:18830"
[[intercom]]
id = "b3-door"
name = "3号楼门口机"
type = "hik-intercom"
url = "http://192.168.1.64/"
user = "admin"
password = { env = "B3_PW" }
door = 2
stall_after = "30s"
[[intercom]]
id = "b5-door"
type = "dahua-vto"
address = "192.168.1.108:5000"
http_url = "http://192.168.1.108"
user = "admin"
password = { env = "B5_PW" }
[[intercom]]
id = "b7-door"
type = "mqtt-intercom"
broker = "embedded"
topics = { call = "b7/call", unlock = "b7/unlock" }
pointers = { unit = "/room" }
command_topic = "b7/cmd"
"#
            .replace("B5_PW", "B3_PW")
            .as_str(),
        )
        .unwrap();
        let stations: Vec<(&str, &str, &Station)> = config
            .devices
            .iter()
            .filter_map(|d| match &d.kind {
                DeviceKind::Intercom(s) => Some((d.id.as_str(), d.name.as_str(), s)),
                _ => None,
            })
            .collect();
        assert_eq!(stations.len(), 3);
        let Station::Hik(hik) = stations[0].2 else {
            panic!("{stations:?}")
        };
        assert_eq!(stations[0].1, "3号楼门口机");
        assert_eq!(hik.base, "http://192.168.1.64");
        assert_eq!(hik.password, "station-s3cret");
        assert_eq!((hik.door, hik.stall_after.as_secs()), (2, 30));
        let Station::Dahua(vto) = stations[1].2 else {
            panic!("{stations:?}")
        };
        assert_eq!(vto.address, "192.168.1.108:5000");
        assert_eq!(vto.http_base.as_deref(), Some("http://192.168.1.108"));
        assert_eq!(vto.channel, 0);
        let Station::Mqtt(mqtt) = stations[2].2 else {
            panic!("{stations:?}")
        };
        assert_eq!((mqtt.host.as_str(), mqtt.port), ("127.0.0.1", 18830));
        assert_eq!(mqtt.client_id, "gatehouse-b7-door");
        assert_eq!(mqtt.map.topics.all(), vec!["b7/call", "b7/unlock"]);
        assert_eq!(mqtt.map.pointers.unit, "/room");
        assert_eq!(mqtt.map.pointers.call, "/call");
        assert!(mqtt.credentials.is_none());
        // The password never shows in the configuration's Debug output.
        assert!(!format!("{config:?}").contains("station-s3cret"));
    }

    #[test]
    fn every_station_problem_is_located() {
        let text = r#"[[devices]]
id = "b3-door"
type = "sim-tank"
[[intercom]]
id = "b3-door"
type = "hik-intercom"
url = "192.168.1.64"
user = "admin"
password = "admin12345"
[[intercom]]
id = "b5-door"
type = "dahua-vt0"
[[intercom]]
id = "b6-door"
type = "dahua-vto"
address = "192.168.1.108"
user = "admin"
password = { env = "NOT_SET" }
stall_after = "10s"
[[intercom]]
id = "b7-door"
type = "mqtt-intercom"
broker = "embedded"
topics = { call = "b7/#" }
door = 0
"#;
        let problems = problems(text);
        let located: Vec<(usize, &str)> =
            problems.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            located,
            vec![
                (8, "intercom[0].id"),
                (10, "intercom[0].url"),
                (12, "intercom[0].password"),
                (15, "intercom[1].type"),
                (19, "intercom[2].address"),
                (21, "intercom[2].password.env"),
                (22, "intercom[2].stall_after"),
                (23, "intercom[3].command_topic"),
                (26, "intercom[3].broker"),
                (27, "intercom[3].topics.call"),
                (28, "intercom[3].door"),
            ],
            "{problems:#?}"
        );
        let says = |key: &str, what: &str| {
            let p = problems.iter().find(|p| p.key == key).unwrap();
            assert!(p.message.contains(what), "{key}: {}", p.message);
        };
        says("intercom[0].id", "already a device");
        says("intercom[1].type", "did you mean \"dahua-vto\"");
        says("intercom[2].stall_after", "key of type \"hik-intercom\"");
        says("intercom[3].broker", "[broker] embedded = true");
        // The pasted password is not echoed.
        assert!(!problems.iter().any(|p| p.message.contains("admin12345")));
    }

    #[test]
    fn a_surveillance_camera_may_watch_a_door_station_but_not_an_unknown_one() {
        let station = r#"[[intercom]]
id = "b3-door"
type = "hik-intercom"
url = "http://192.168.1.64/"
user = "admin"
password = { env = "B3_PW" }
"#;
        let camera = |doors: &str| {
            format!(
                "{station}[[devices]]\nid = \"cctv-b3\"\ntype = \"onvif-camera\"\n\
                 address = \"192.168.1.65\"\ndoors = [{doors}]\n"
            )
        };
        let config = load(&camera("\"b3-door\"")).expect("a station is a place to watch");
        let watched = config.devices.iter().find_map(|d| match &d.kind {
            DeviceKind::OnvifCamera(c) => Some(c.doors.clone()),
            _ => None,
        });
        assert_eq!(watched, Some(vec!["b3-door".to_owned()]));
        let refused = problems(&camera("\"b9-door\""));
        assert!(
            refused
                .iter()
                .any(|p| p.key.ends_with("doors") && p.message.contains("[[intercom]]")),
            "{refused:?}"
        );
    }
}
