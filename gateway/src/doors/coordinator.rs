//! The doors coordinator: on every card or code presented at a door's
//! reader, decides grant or deny with [`crate::rules::door::decide`] over
//! the in-memory credential snapshot, annotates the `card_read` event with
//! the decision, the reason and the door, and on a grant sends
//! `PulseDoor` to the door's relay (a `door` device, or the WG controller
//! with the door's number). Door events of the relay devices (contact,
//! alarms, pulses, exit button) are annotated with the door's id (`door`;
//! a controller's door number moves to `door_number`).
//!
//! Its own state is in memory: anti-passback (the last door of a pair each
//! credential passed; forgotten on restart), temporary-code uses (also
//! written to the database off the pipeline), and the wrong-code limiter.
//!
//! **Codes never reach the store:** a keypad entry's `card` field is
//! replaced by a mask in the recorded event.

use std::collections::HashMap;
use std::sync::Arc;

use drivers::{Command, DeviceEvent};

use super::credentials::CredentialStore;
use crate::config::diff::ConfigDiff;
use crate::config::{Config, DeviceKind, DoorEntry, DoorGroupConfig};
use crate::events::{Annotation, DoorDecision, DoorNote, GatewayEvent, KeypadLocked};
use crate::pipeline::{Coordinator, Decided, Record};
use crate::rules::door::{
    AttemptLimiter, CodeEntry, DoorPolicy, History, Presented, Reason, Verdict, canonical_card,
    decide, subject,
};
use crate::vocab::schedule::Schedule;
use crate::vocab::time::{EstateZone, estate_zone};

/// Wrong codes per reader before a lockout.
pub const MAX_WRONG_CODES: usize = 5;
/// The window those wrong codes are counted in.
pub const WRONG_CODE_WINDOW_MS: i64 = 60_000;
/// How long a reader refuses codes after too many wrong ones.
pub const LOCKOUT_MS: i64 = 300_000;

/// What a keypad entry is recorded as.
const CODE_MASK: &str = "******";

#[derive(Debug)]
struct Door {
    id: String,
    relay: String,
    controller_door: Option<u8>,
    group: Option<(String, Schedule)>,
    /// Index of its anti-passback pair, if any.
    pair: Option<usize>,
}

/// The unit doors' local rules. See the module docs.
#[derive(Debug)]
pub struct DoorCoordinator {
    credentials: Arc<CredentialStore>,
    doors: Vec<Door>,
    /// (reader device, door number on a controller) → door index.
    by_reader: HashMap<(String, Option<u8>), usize>,
    /// (relay device, door number on a controller) → door index.
    by_relay: HashMap<(String, Option<u8>), usize>,
    /// (pair, credential) → door index of its last passage.
    passback: HashMap<(usize, String), usize>,
    /// Temporary-code uses counted here (code id → uses).
    uses: HashMap<i64, u32>,
    limiter: AttemptLimiter,
    /// The zone schedules are read in (the estate's, when built).
    zone: EstateZone,
}

impl DoorCoordinator {
    /// A coordinator for the configured doors and groups.
    pub fn new(
        credentials: Arc<CredentialStore>,
        doors: &[DoorEntry],
        groups: &[DoorGroupConfig],
        controllers: &[String],
    ) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut built = Vec::new();
        let mut by_reader = HashMap::new();
        let mut by_relay = HashMap::new();
        for (i, entry) in doors.iter().enumerate() {
            let pair = entry.anti_passback_pair.as_ref().map(|other| {
                let key = if entry.id < *other {
                    (entry.id.clone(), other.clone())
                } else {
                    (other.clone(), entry.id.clone())
                };
                pairs.iter().position(|p| *p == key).unwrap_or_else(|| {
                    pairs.push(key);
                    pairs.len() - 1
                })
            });
            let number_on = |device: &String| {
                controllers
                    .contains(device)
                    .then_some(entry.controller_door)
                    .flatten()
            };
            for reader in &entry.readers {
                by_reader.insert((reader.clone(), number_on(reader)), i);
            }
            by_relay.insert((entry.relay.clone(), number_on(&entry.relay)), i);
            let group = entry.group.as_ref().and_then(|g| {
                groups
                    .iter()
                    .find(|c| &c.id == g)
                    .map(|c| (c.id.clone(), c.schedule.clone()))
            });
            built.push(Door {
                id: entry.id.clone(),
                relay: entry.relay.clone(),
                controller_door: number_on(&entry.relay),
                group,
                pair,
            });
        }
        // A door named only by its partner is in the pair too.
        for (p, (a, b)) in pairs.iter().enumerate() {
            for door in &mut built {
                if (&door.id == a || &door.id == b) && door.pair.is_none() {
                    door.pair = Some(p);
                }
            }
        }
        Self {
            credentials,
            doors: built,
            by_reader,
            by_relay,
            passback: HashMap::new(),
            uses: HashMap::new(),
            limiter: AttemptLimiter::new(MAX_WRONG_CODES, WRONG_CODE_WINDOW_MS, LOCKOUT_MS),
            zone: estate_zone(),
        }
    }

    /// A coordinator for the doors and groups of `config` (its WG
    /// controllers' readers and relays addressed by door number).
    pub fn for_config(credentials: Arc<CredentialStore>, config: &Config) -> Self {
        let controllers: Vec<String> = config
            .devices
            .iter()
            .filter(|d| matches!(d.kind, DeviceKind::WgController(_)))
            .map(|d| d.id.clone())
            .collect();
        Self::new(
            credentials,
            &config.doors,
            &config.door_groups,
            &controllers,
        )
    }

    fn find(
        map: &HashMap<(String, Option<u8>), usize>,
        device: &str,
        number: Option<u8>,
    ) -> Option<usize> {
        map.get(&(device.to_owned(), number))
            .or_else(|| map.get(&(device.to_owned(), None)))
            .copied()
    }

    fn presented(
        &mut self,
        reader: &str,
        index: usize,
        card: &str,
        keypad: bool,
        now_ms: i64,
    ) -> (Decided, DoorNote) {
        let mut decided = Decided::default();
        let door = &self.doors[index];
        let mut note = DoorNote {
            door: door.id.clone(),
            door_number: None,
            card: keypad.then_some(CODE_MASK),
            decided: None,
        };
        if keypad && let Some(until_ms) = self.limiter.locked(reader, now_ms) {
            note.decided = Some(DoorDecision {
                decision: Verdict::Deny,
                reason: Reason::TooManyAttempts { until_ms },
                holder: None,
            });
            return (decided, note);
        }
        let snapshot = self.credentials.snapshot();
        let hash;
        let number;
        let presented = if keypad {
            hash = self.credentials.hash(card.trim());
            Presented::Code(&hash)
        } else {
            // A number that is not decimal matches no card.
            number = canonical_card(card).unwrap_or_default();
            Presented::Card(&number)
        };
        let policy = DoorPolicy {
            door: &door.id,
            group: door.group.as_ref().map(|(g, s)| (g.as_str(), s)),
            zone: &self.zone,
        };
        let temp_code = match presented {
            Presented::Code(h) => match snapshot.codes.get(h) {
                Some(CodeEntry::Temp(t)) => Some((t.id, t.used)),
                _ => None,
            },
            Presented::Card(_) => None,
        };
        let last_in_pair = door
            .pair
            .zip(subject(&snapshot, presented))
            .and_then(|key| self.passback.get(&key))
            .map(|&i| self.doors[i].id.as_str());
        let history = History {
            last_in_pair,
            used: temp_code.and_then(|(id, _)| self.uses.get(&id).copied()),
        };
        let decision = decide(&snapshot, &policy, presented, history, now_ms);
        note.decided = Some(DoorDecision {
            decision: decision.verdict,
            reason: decision.reason.clone(),
            holder: decision.holder.clone(),
        });
        if keypad {
            match decision.reason {
                Reason::UnknownCode => {
                    if let Some(until_ms) = self.limiter.failed(reader, now_ms) {
                        tracing::warn!(reader, "Too many wrong codes; the keypad is locked.");
                        decided.records.push(Record {
                            device_id: reader.to_owned(),
                            event: GatewayEvent::KeypadLocked(KeypadLocked {
                                door: door.id.clone(),
                                until_ms,
                                failures: MAX_WRONG_CODES,
                            }),
                        });
                    }
                }
                _ => self.limiter.succeeded(reader),
            }
        }
        if decision.verdict == Verdict::Grant {
            decided.commands.push((
                door.relay.clone(),
                Command::PulseDoor {
                    door: door.controller_door,
                    duration_ms: None,
                },
            ));
            if let (Some(pair), Some(subject)) = (door.pair, decision.subject.clone()) {
                self.passback.insert((pair, subject), index);
            }
            if let Some((id, stored)) = temp_code {
                let used = self.uses.get(&id).copied().unwrap_or(0).max(stored) + 1;
                self.uses.insert(id, used);
                decided.effects.push(self.credentials.code_use(id, used));
            }
        }
        (decided, note)
    }

    /// The annotation naming door `index` on an event that gave the
    /// controller's door `number`: the door's id replaces the event's own
    /// `door`, the number is kept as `door_number`.
    fn door_note(&self, index: usize, number: Option<u8>) -> DoorNote {
        DoorNote {
            door: self.doors[index].id.clone(),
            door_number: number,
            card: None,
            decided: None,
        }
    }
}

/// What a door coordinator says about an event.
fn noted(mut decided: Decided, note: DoorNote) -> Option<Decided> {
    decided.annotate = Some(Annotation::Door(note));
    Some(decided)
}

impl Coordinator for DoorCoordinator {
    fn name(&self) -> &'static str {
        "doors"
    }

    /// Rebuilds the doors from the reloaded configuration; what it knows
    /// carries over: anti-passback for the doors that did not change,
    /// temporary-code uses and the wrong-code limiter.
    fn reconfigure(&mut self, config: &Config, diff: &ConfigDiff) {
        let mut next = Self::for_config(self.credentials.clone(), config);
        for ((_, subject), last) in std::mem::take(&mut self.passback) {
            let Some(door) = self.doors.get(last) else {
                continue;
            };
            if diff.doors.touches(&door.id) {
                continue;
            }
            if let Some(index) = next.doors.iter().position(|d| d.id == door.id)
                && let Some(pair) = next.doors[index].pair
            {
                next.passback.insert((pair, subject), index);
            }
        }
        next.uses = std::mem::take(&mut self.uses);
        std::mem::swap(&mut next.limiter, &mut self.limiter);
        *self = next;
    }

    fn on_event(&mut self, device_id: &str, event: &DeviceEvent, now_ms: i64) -> Option<Decided> {
        match event {
            DeviceEvent::CardRead {
                card, format, door, ..
            } => {
                let index = Self::find(&self.by_reader, device_id, *door)?;
                let (decided, mut note) =
                    self.presented(device_id, index, card, format == "keypad", now_ms);
                note.door_number = *door;
                noted(decided, note)
            }
            // A controller's record from while the gateway was away: the
            // door is named, nothing is decided or driven.
            DeviceEvent::AccessHistory { door, .. } => {
                let index = Self::find(&self.by_reader, device_id, *door)?;
                noted(Decided::default(), self.door_note(index, *door))
            }
            DeviceEvent::DoorState { door, .. }
            | DeviceEvent::DoorAlarm { door, .. }
            | DeviceEvent::ExitButton { door }
            | DeviceEvent::RelayPulse { door, .. } => {
                let index = Self::find(&self.by_relay, device_id, *door)?;
                noted(Decided::default(), self.door_note(index, *door))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doors::credentials::NewTempCode;
    use crate::rules::door::Card;
    use crate::store::{Store, StoreConfig};

    fn setup() -> (
        tempfile::TempDir,
        Store,
        Arc<CredentialStore>,
        DoorCoordinator,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(StoreConfig::new(dir.path().join("g.db"))).expect("store");
        let creds = Arc::new(CredentialStore::open(&store).expect("credentials"));
        creds
            .upsert_card(&Card {
                number: "100".into(),
                holder: "王芳".into(),
                house: "3-1-1201".into(),
                valid_from: None,
                valid_to: None,
                groups: vec![],
            })
            .expect("card");
        let door = |id: &str, reader: &str, relay: &str, pair: &str| DoorEntry {
            id: id.into(),
            name: id.into(),
            readers: vec![reader.into()],
            relay: relay.into(),
            controller_door: None,
            group: None,
            anti_passback_pair: Some(pair.into()),
        };
        let coordinator = DoorCoordinator::new(
            creds.clone(),
            &[
                door("in", "r-in", "relay-in", "out"),
                door("out", "r-out", "relay-out", "in"),
            ],
            &[],
            &[],
        );
        (dir, store, creds, coordinator)
    }

    fn read(card: &str, format: &str) -> DeviceEvent {
        DeviceEvent::CardRead {
            card: card.into(),
            format: format.into(),
            facility: None,
            door: None,
            controller: None,
        }
    }

    #[tokio::test]
    async fn anti_passback_grant_pulses_the_relay_and_blocks_a_second_entry() {
        let (_dir, _store, _creds, mut c) = setup();
        let first = c
            .on_event("r-in", &read("00100", "w34"), 0)
            .expect("decided");
        assert_eq!(first.members()["decision"], "grant");
        assert_eq!(first.members()["door"], "in");
        assert_eq!(
            first.commands,
            vec![(
                "relay-in".to_owned(),
                Command::PulseDoor {
                    door: None,
                    duration_ms: None
                }
            )]
        );
        let again = c.on_event("r-in", &read("100", "w34"), 1).expect("decided");
        assert_eq!(again.members()["decision"], "deny");
        assert_eq!(again.members()["reason"]["code"], "anti_passback");
        assert!(again.commands.is_empty());
        let out = c
            .on_event("r-out", &read("100", "w34"), 2)
            .expect("decided");
        assert_eq!(out.members()["decision"], "grant");
        let unknown = c.on_event("r-in", &read("999", "w34"), 3).expect("decided");
        assert_eq!(unknown.members()["reason"]["code"], "unknown_card");
        assert!(c.on_event("elsewhere", &read("100", "w34"), 4).is_none());
        let contact = DeviceEvent::DoorState {
            open: true,
            door: None,
        };
        let annotated = c.on_event("relay-out", &contact, 5).expect("a door event");
        assert_eq!(annotated.members()["door"], "out");
    }

    #[tokio::test]
    async fn temp_code_keypad_entries_are_masked_counted_and_rate_limited() {
        let (_dir, _store, creds, mut c) = setup();
        let now = drivers::contract::now_ms();
        creds
            .add_temp_code(
                "4321987",
                &NewTempCode {
                    label: "快递".into(),
                    house: "3-1-1201".into(),
                    valid_from: now - 1,
                    hours: 1,
                    max_uses: 1,
                    groups: vec![],
                    created_by: "test".into(),
                },
            )
            .expect("code");
        let ok = c
            .on_event("r-in", &read("4321987", "keypad"), now)
            .expect("decided");
        assert_eq!(ok.members()["decision"], "grant");
        assert_eq!(ok.members()["card"], CODE_MASK, "the code is not recorded");
        assert!(
            !serde_json::to_string(&ok.members())
                .expect("json")
                .contains("4321987")
        );
        let spent = c
            .on_event("r-out", &read("4321987", "keypad"), now + 1)
            .expect("decided");
        assert_eq!(spent.members()["reason"]["code"], "code_used_up");
        let mut locked = None;
        for i in 0..MAX_WRONG_CODES {
            let wrong = c
                .on_event("r-in", &read(&format!("11110{i}"), "keypad"), now + 10)
                .expect("decided");
            assert_eq!(wrong.members()["reason"]["code"], "unknown_code");
            locked = wrong.records.into_iter().next();
        }
        assert_eq!(
            locked.map(|r| r.event.kind()),
            Some(crate::events::Kind::KeypadLocked)
        );
        let refused = c
            .on_event("r-in", &read("4321987", "keypad"), now + 20)
            .expect("decided");
        assert_eq!(refused.members()["reason"]["code"], "too_many_attempts");
    }

    /// Doors `in` and `out` (an anti-passback pair) and, with `lobby`, a
    /// third door; door `in` opens with `in_relay`.
    fn reloaded(lobby: bool, in_relay: &str) -> (Config, ConfigDiff) {
        let devices = ["r-in", "r-out", "r-lobby"]
            .iter()
            .map(|r| format!("[[devices]]\nid = \"{r}\"\ntype = \"wiegand-reader\"\ngpio = \"sim\"\nd0 = 1\nd1 = 2\n"))
            .chain(["relay-in", "relay-in-2", "relay-out", "relay-lobby"].iter().map(|d| {
                format!("[[devices]]\nid = \"{d}\"\ntype = \"door\"\ngpio = \"sim\"\nrelay = 3\ncontact = 4\n")
            }))
            .collect::<String>();
        let door = |id: &str, relay: &str, pair: Option<&str>| {
            let pair = pair.map_or(String::new(), |p| format!("anti_passback_pair = \"{p}\"\n"));
            format!("[[doors]]\nid = \"{id}\"\nreaders = [\"r-{id}\"]\nrelay = \"{relay}\"\n{pair}")
        };
        let text = |in_relay: &str, lobby: bool| {
            format!(
                "[gateway]\nestate_id = \"e\"\ngateway_id = \"g\"\n{devices}{}{}{}",
                door("in", in_relay, Some("out")),
                door("out", "relay-out", Some("in")),
                if lobby {
                    door("lobby", "relay-lobby", None)
                } else {
                    String::new()
                },
            )
        };
        let parse = |t: String| crate::config::parse(&t, "t.toml").expect("valid");
        let old = parse(text("relay-in", false));
        let new = parse(text(in_relay, lobby));
        let diff = crate::config::diff::diff(&old, &new);
        (new, diff)
    }

    #[tokio::test]
    async fn a_reload_keeps_anti_passback_of_unchanged_doors_and_adds_new_ones() {
        let (_dir, _store, _creds, mut c) = setup();
        let first = c.on_event("r-in", &read("100", "w34"), 0).expect("decided");
        assert_eq!(first.members()["decision"], "grant");

        let (config, diff) = reloaded(true, "relay-in");
        assert_eq!(diff.doors.added, ["lobby"]);
        c.reconfigure(&config, &diff);
        let again = c.on_event("r-in", &read("100", "w34"), 1).expect("decided");
        assert_eq!(again.members()["reason"]["code"], "anti_passback", "kept");
        let lobby = c
            .on_event("r-lobby", &read("100", "w34"), 2)
            .expect("decided");
        assert_eq!(lobby.members()["decision"], "grant");
        assert_eq!(lobby.commands[0].0, "relay-lobby");

        // Door `in` changed (another relay): restarted, its memory gone.
        let (config, diff) = reloaded(true, "relay-in-2");
        assert_eq!(diff.doors.changed, ["in"]);
        c.reconfigure(&config, &diff);
        let fresh = c.on_event("r-in", &read("100", "w34"), 3).expect("decided");
        assert_eq!(fresh.members()["decision"], "grant");
        assert_eq!(fresh.commands[0].0, "relay-in-2");
    }
}
