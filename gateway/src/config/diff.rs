//! What changed between the running configuration and a new one, for a
//! reload (`systemctl reload gatehouse`, SIGHUP): pure, no IO.
//!
//! Devices, lanes and doors are compared one by one, by id: each is
//! *added*, *removed* or *changed* (any of its settings, secrets included,
//! differ; a door also changes when its door group's schedule does). The
//! gateway restarts exactly those and leaves the rest running: every kind
//! of device restarts alone, plate cameras (their entry in the device
//! listener's table swapped), point devices (their view in the facility
//! registry swapped) and Modbus devices on a line or TCP peer they share
//! with devices that stay (they leave and join the running bus) included.
//! The threshold `[[alarms]]` are compared as a whole and handed to their
//! coordinator.
//!
//! The sections the store, the listeners, the platform link and the
//! supervisor are built from (`[gateway]`, `[store]`, `[panel]`,
//! `[ingress]`, `[uplink]`, `[broker]`, `[api]`, `[supervisor]`,
//! `[backup]`, `[privacy]`) take effect only at the next start, and are reported as
//! needing a restart rather than silently ignored.
//!
//! [`applied`] is the configuration actually in force after a reload: the
//! new one, except for those sections, so a later reload compares against
//! what runs and keeps reporting what is still pending.
//!
//! Two settings are compared by their full `Debug` form with secrets
//! revealed ([`fingerprint`]; only in memory, never logged).

use std::cell::Cell;
use std::fmt::Debug;

use serde::Serialize;

use super::{Config, DoorEntry};

thread_local! {
    /// Set while [`fingerprint`] formats: `Secret`'s `Debug` shows its value.
    static REVEAL: Cell<bool> = const { Cell::new(false) };
}

/// Whether a [`super::Secret`] being formatted may show its value (only
/// inside [`fingerprint`], whose text is compared and dropped).
pub(super) fn revealing() -> bool {
    REVEAL.with(Cell::get)
}

/// `value`'s `Debug` text with secrets shown, to compare two settings.
fn fingerprint<T: Debug>(value: &T) -> String {
    REVEAL.with(|r| r.set(true));
    let text = format!("{value:?}");
    REVEAL.with(|r| r.set(false));
    text
}

/// What happened to one kind of item (devices, lanes or doors), by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// In the new configuration only: started.
    pub added: Vec<String>,
    /// In the old configuration only: stopped.
    pub removed: Vec<String>,
    /// In both, with different settings: restarted.
    pub changed: Vec<String>,
}

impl Changes {
    fn between<T>(
        old: &[T],
        new: &[T],
        id: impl Fn(&T) -> &str,
        print: impl Fn(&T) -> String,
    ) -> Self {
        let mut changes = Self::default();
        for item in new {
            match old.iter().find(|o| id(o) == id(item)) {
                None => changes.added.push(id(item).to_owned()),
                Some(before) if print(before) != print(item) => {
                    changes.changed.push(id(item).to_owned());
                }
                Some(_) => {}
            }
        }
        for item in old {
            if !new.iter().any(|n| id(n) == id(item)) {
                changes.removed.push(id(item).to_owned());
            }
        }
        changes
    }

    /// Whether nothing was added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Whether `id` was added, removed or changed.
    pub fn touches(&self, id: &str) -> bool {
        [&self.added, &self.removed, &self.changed]
            .iter()
            .any(|ids| ids.iter().any(|i| i == id))
    }

    /// `added a, b; removed c; changed d` (empty parts left out).
    fn describe(&self) -> String {
        [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ]
        .iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(what, ids)| format!("{what} {}", ids.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
    }
}

/// What a reload changes, and what it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    /// Devices to start, stop and restart.
    pub devices: Changes,
    /// Lanes to start, stop and restart.
    pub lanes: Changes,
    /// Doors to start, stop and restart.
    pub doors: Changes,
    /// Whether the threshold `[[alarms]]` changed (their coordinator takes
    /// the new ones).
    pub alarms: bool,
    /// What changed but takes effect only at the next start: a section
    /// (`[uplink]`).
    pub needs_restart: Vec<String>,
}

impl ConfigDiff {
    /// Whether the new configuration is the running one.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && self.lanes.is_empty()
            && self.doors.is_empty()
            && !self.alarms
            && self.needs_restart.is_empty()
    }

    /// One line for the log: what is restarted, and what needs a restart.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = [
            ("devices", &self.devices),
            ("lanes", &self.lanes),
            ("doors", &self.doors),
        ]
        .iter()
        .filter(|(_, changes)| !changes.is_empty())
        .map(|(what, changes)| format!("{what}: {}", changes.describe()))
        .collect();
        if self.alarms {
            parts.push("alarms: changed".to_owned());
        }
        if !self.needs_restart.is_empty() {
            parts.push(format!(
                "needs a restart: {}",
                self.needs_restart.join(", ")
            ));
        }
        if parts.is_empty() {
            "no change".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// What differs between `old` (running) and `new`.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let needs_restart: Vec<String> = [
        (
            "[gateway]",
            fingerprint(&old.gateway) != fingerprint(&new.gateway),
        ),
        (
            "[store]",
            fingerprint(&old.store) != fingerprint(&new.store),
        ),
        (
            "[panel]",
            fingerprint(&old.panel) != fingerprint(&new.panel),
        ),
        (
            "[ingress]",
            fingerprint(&old.ingress) != fingerprint(&new.ingress),
        ),
        (
            "[uplink]",
            fingerprint(&old.uplink) != fingerprint(&new.uplink),
        ),
        (
            "[broker]",
            fingerprint(&old.broker) != fingerprint(&new.broker),
        ),
        ("[api]", fingerprint(&old.api) != fingerprint(&new.api)),
        (
            "[supervisor]",
            fingerprint(&old.supervisor) != fingerprint(&new.supervisor),
        ),
        (
            "[backup]",
            fingerprint(&old.backup) != fingerprint(&new.backup),
        ),
        (
            "[privacy]",
            fingerprint(&old.privacy) != fingerprint(&new.privacy),
        ),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(section, _)| section.to_owned())
    .collect();

    let devices = Changes::between(&old.devices, &new.devices, |d| &d.id, fingerprint);
    let lanes = Changes::between(&old.lanes, &new.lanes, |l| &l.id, fingerprint);
    let doors = doors_between(old, new);
    ConfigDiff {
        devices,
        lanes,
        doors,
        alarms: fingerprint(&old.alarms) != fingerprint(&new.alarms),
        needs_restart,
    }
}

/// Doors compared with their group's settings from their own file.
fn doors_between(old: &Config, new: &Config) -> Changes {
    let mut changes = Changes::default();
    for door in &new.doors {
        match old.doors.iter().find(|o| o.id == door.id) {
            None => changes.added.push(door.id.clone()),
            Some(before) if door_print(before, old) != door_print(door, new) => {
                changes.changed.push(door.id.clone());
            }
            Some(_) => {}
        }
    }
    for door in &old.doors {
        if !new.doors.iter().any(|n| n.id == door.id) {
            changes.removed.push(door.id.clone());
        }
    }
    changes
}

/// A door's settings and its group's, as compared.
fn door_print(door: &DoorEntry, config: &Config) -> String {
    let group = door
        .group
        .as_ref()
        .and_then(|g| config.door_groups.iter().find(|c| &c.id == g));
    fingerprint(&(door, group))
}

/// The configuration in force after reloading `new` over `old`: `new`,
/// except that the sections that need a restart keep their old settings.
pub fn applied(old: &Config, new: &Config) -> Config {
    Config {
        gateway: old.gateway.clone(),
        store: old.store.clone(),
        panel: old.panel.clone(),
        supervisor: old.supervisor.clone(),
        devices: new.devices.clone(),
        alarms: new.alarms.clone(),
        ingress: old.ingress.clone(),
        lanes: new.lanes.clone(),
        door_groups: new.door_groups.clone(),
        doors: new.doors.clone(),
        uplink: old.uplink.clone(),
        broker: old.broker.clone(),
        api: old.api.clone(),
        backup: old.backup.clone(),
        privacy: old.privacy.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;

    const BASE: &str = r#"
[gateway]
estate_id = "e"
gateway_id = "g"

[[devices]]
id = "tank-1"
type = "sim-tank"
height_m = 4.0

[[devices]]
id = "r1"
type = "wiegand-reader"
gpio = "sim"
d0 = 17
d1 = 18

[[devices]]
id = "d1"
type = "door"
gpio = "sim"
relay = 22
contact = 23

[[devices]]
id = "cam-in"
type = "lpr-camera"
vendor = "vzenith"
lane = "in"

[[devices]]
id = "bar-a"
type = "modbus-barrier"
address = "127.0.0.1:5020"
slave = 1
preset = "waveshare-rtu-relay"

[[devices]]
id = "bar-b"
type = "modbus-barrier"
address = "127.0.0.1:5020"
slave = 2
preset = "waveshare-rtu-relay"

[[lanes]]
id = "in"
direction = "entry"
barrier = "bar-a"

[[door_groups]]
id = "g1"
schedule = ["mon-fri 06:00-23:00"]

[[doors]]
id = "a"
readers = ["r1"]
relay = "d1"
group = "g1"
"#;

    fn parse(text: &str, secret: &str) -> Config {
        let env: HashMap<String, String> = [("TOKEN".to_owned(), secret.to_owned())].into();
        super::super::parse_with(text, "test.toml", &env).unwrap()
    }

    fn base() -> Config {
        parse(BASE, "one")
    }

    #[test]
    fn the_same_file_is_no_change() {
        let d = diff(&base(), &base());
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.summary(), "no change");
    }

    #[test]
    fn an_added_device_and_door_are_started_and_nothing_else_is_touched() {
        let text = format!(
            "{BASE}{}",
            r#"
[[devices]]
id = "tank-2"
type = "sim-tank"
height_m = 3.0

[[devices]]
id = "r2"
type = "wiegand-reader"
gpio = "sim"
d0 = 5
d1 = 6

[[doors]]
id = "b"
readers = ["r2"]
relay = "d1"
"#
        );
        let d = diff(&base(), &parse(&text, "one"));
        assert_eq!(d.devices.added, ["tank-2", "r2"]);
        assert!(d.devices.changed.is_empty() && d.devices.removed.is_empty());
        assert_eq!(d.doors.added, ["b"]);
        assert!(d.lanes.is_empty());
        assert!(d.needs_restart.is_empty(), "{:?}", d.needs_restart);
        assert_eq!(d.summary(), "devices: added tank-2, r2; doors: added b");
    }

    #[test]
    fn changed_and_removed_items_are_found_by_id() {
        let text = BASE
            .replace("height_m = 4.0", "height_m = 5.0")
            .replace(
                "direction = \"entry\"",
                "direction = \"entry\"\nmin_confidence = 60",
            )
            .replace(
                "[[doors]]\nid = \"a\"\nreaders = [\"r1\"]\nrelay = \"d1\"\ngroup = \"g1\"\n",
                "",
            );
        let d = diff(&base(), &parse(&text, "one"));
        assert_eq!(d.devices.changed, ["tank-1"]);
        assert_eq!(d.lanes.changed, ["in"]);
        assert_eq!(d.doors.removed, ["a"]);
        assert!(d.devices.touches("tank-1") && !d.devices.touches("r1"));
    }

    #[test]
    fn a_door_changes_with_its_groups_schedule() {
        let text = BASE.replace("mon-fri 06:00-23:00", "mon-sun 06:00-23:00");
        let d = diff(&base(), &parse(&text, "one"));
        assert_eq!(d.doors.changed, ["a"]);
        assert!(d.devices.is_empty());
    }

    #[test]
    fn a_changed_secret_is_a_change_though_debug_hides_it() {
        let with_token = |secret| {
            parse(
                &format!("{BASE}\n[api]\ntoken = {{ env = \"TOKEN\" }}\n"),
                secret,
            )
        };
        let (old, new) = (with_token("one"), with_token("two"));
        assert_eq!(format!("{:?}", old.api), format!("{:?}", new.api));
        assert!(!format!("{:?}", new.api).contains("two"), "never shown");
        let d = diff(&old, &new);
        assert_eq!(d.needs_restart, ["[api]"]);
    }

    #[test]
    fn sections_need_a_restart_and_keep_their_old_settings() {
        let text = BASE.replace(
            "[gateway]\nestate_id = \"e\"",
            "[gateway]\nestate_id = \"e2\"",
        ) + "\n[panel]\nlisten = \"127.0.0.1:9999\"\n";
        let old = base();
        let new = parse(&text, "one");
        let d = diff(&old, &new);
        assert_eq!(d.needs_restart, ["[gateway]", "[panel]"]);
        assert!(d.devices.is_empty(), "{:?}", d.devices);

        // What is in force: the old sections, so the next reload of the
        // same file reports them again.
        let now = applied(&old, &new);
        assert_eq!(now.gateway.estate_id, "e");
        assert_eq!(now.panel.listen, old.panel.listen);
        assert_eq!(diff(&now, &new), d);
    }

    #[test]
    fn cameras_point_devices_and_devices_on_a_shared_line_restart_alone() {
        let text = BASE
            .replace("vendor = \"vzenith\"", "vendor = \"huaxia\"")
            .replace("slave = 2", "slave = 3")
            + r#"
[[devices]]
id = "pumps"
type = "modbus-points"
address = "127.0.0.1:5020"
slave = 9
preset = "vfd-water-supply"
"#;
        let (old, new) = (base(), parse(&text, "one"));
        let d = diff(&old, &new);
        assert_eq!(d.devices.changed, ["cam-in", "bar-b"]);
        assert_eq!(d.devices.added, ["pumps"], "it joins bar-a's line");
        assert!(d.needs_restart.is_empty(), "{:?}", d.needs_restart);
        let now = applied(&old, &new);
        assert_eq!(fingerprint(&now.devices), fingerprint(&new.devices));
        assert!(diff(&now, &new).is_empty());
    }

    #[test]
    fn changed_alarms_are_reloaded() {
        let alarm = |below: &str| {
            format!("{BASE}\n[[alarms]]\ndevice = \"tank-1\"\npoint = \"level\"\nbelow = {below}\n")
        };
        let (old, new) = (parse(&alarm("1.0"), "one"), parse(&alarm("2.5"), "one"));
        let d = diff(&old, &new);
        assert!(d.alarms);
        assert!(d.needs_restart.is_empty(), "{:?}", d.needs_restart);
        assert_eq!(d.summary(), "alarms: changed");
        let now = applied(&old, &new);
        assert_eq!(now.alarms[0].below, Some(2.5));
        assert!(diff(&now, &new).is_empty());
        assert!(!diff(&old, &old).alarms);
    }

    #[test]
    fn applied_takes_the_new_devices_lanes_and_doors() {
        let text = BASE.replace("height_m = 4.0", "height_m = 5.0");
        let (old, new) = (base(), parse(&text, "one"));
        let now = applied(&old, &new);
        assert_eq!(fingerprint(&now.devices), fingerprint(&new.devices));
        assert!(diff(&now, &new).is_empty());
    }
}
