//! Unit-door access decisions: grant or deny a presented card or code at a
//! door, with the reason, from a snapshot of the credentials, the door's
//! group and schedule, and the anti-passback state. Also the wrong-code
//! limiter for keypads.
//!
//! Pure: no IO, no clock (the time is an argument), no hashing (codes arrive
//! already hashed). The doors coordinator holds the snapshot in memory, so a
//! decision never waits on the disk or the network.
//!
//! Order of checks: blocked, known, validity window, door group (wrong
//! door), the group's schedule, remaining uses (temporary codes), then
//! anti-passback. The first that fails is the reason.
//!
//! The cards of a snapshot are packed ([`CardIndex`], a
//! [`super::roster::Roster`]): an estate holds 100,000 of them and reloads
//! them whole after every change.

use std::collections::HashMap;

use serde::Serialize;

use super::roster::{Record, Roster, RosterBuilder, RosterFull};
use crate::vocab::schedule::Schedule;
use crate::vocab::time::EstateZone;

/// A resident's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    /// Canonical card number (decimal, no leading zeros).
    pub number: String,
    /// Holder's name.
    pub holder: String,
    /// House / unit, e.g. `3-1-1201`.
    pub house: String,
    /// Valid from (Unix ms), if limited.
    pub valid_from: Option<i64>,
    /// Valid until (Unix ms), if limited.
    pub valid_to: Option<i64>,
    /// Door groups the card opens; empty = every door.
    pub groups: Vec<String>,
}

/// A resident's keypad PIN (only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    /// Row id.
    pub id: i64,
    /// Holder's name.
    pub holder: String,
    /// House / unit.
    pub house: String,
    /// Valid from (Unix ms), if limited.
    pub valid_from: Option<i64>,
    /// Valid until (Unix ms), if limited.
    pub valid_to: Option<i64>,
    /// Door groups; empty = every door.
    pub groups: Vec<String>,
}

/// A temporary code for a visitor or a courier: valid for a window and a
/// number of uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TempCode {
    /// Row id.
    pub id: i64,
    /// Who it is for (`快递`, a visitor's name).
    pub label: String,
    /// The host's house / unit.
    pub house: String,
    /// Valid from (Unix ms).
    pub valid_from: i64,
    /// Valid until (Unix ms).
    pub valid_to: i64,
    /// How many times it opens a door.
    pub max_uses: u32,
    /// How many times it has.
    pub used: u32,
    /// Door groups; empty = every door.
    pub groups: Vec<String>,
}

/// What a keypad code hash resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeEntry {
    /// A resident's PIN.
    Pin(Pin),
    /// A temporary code.
    Temp(TempCode),
}

/// A blocked card (lost, stolen, moved out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// Canonical card number.
    pub number: String,
    /// Why.
    pub reason: String,
}

/// The hash of a keypad code (argon2id output).
pub type CodeHash = [u8; 32];

/// Everything a decision consults, indexed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Cards by canonical number.
    pub cards: CardIndex,
    /// PINs and temporary codes by hash.
    pub codes: HashMap<CodeHash, CodeEntry>,
    /// Blocked cards by canonical number.
    pub blocked: HashMap<String, Blocked>,
}

/// A card as the snapshot holds it, borrowed from the [`CardIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardRef<'a> {
    /// Canonical card number.
    pub number: &'a str,
    /// Holder's name.
    pub holder: &'a str,
    /// House / unit.
    pub house: &'a str,
    /// Valid from (Unix ms), if limited.
    pub valid_from: Option<i64>,
    /// Valid until (Unix ms), if limited.
    pub valid_to: Option<i64>,
    /// Door groups the card opens; empty = every door. Cards with the same
    /// groups share this slice.
    pub groups: &'a [Box<str>],
}

impl CardRef<'_> {
    /// The card as an owned record (for forms, lists and files).
    pub fn to_card(&self) -> Card {
        Card {
            number: self.number.to_owned(),
            holder: self.holder.to_owned(),
            house: self.house.to_owned(),
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            groups: self.groups.iter().map(|g| String::from(&**g)).collect(),
        }
    }
}

impl<'a> From<Record<'a>> for CardRef<'a> {
    fn from(r: Record<'a>) -> Self {
        Self {
            number: r.key,
            holder: r.first,
            house: r.second,
            valid_from: r.valid_from,
            valid_to: r.valid_to,
            groups: r.set,
        }
    }
}

/// The cards of a snapshot by canonical number, packed (a [`Roster`]:
/// four allocations whatever the number of cards, each door-group set
/// kept once). Iterated in the order of the numbers as text. Two indexes
/// are equal when they hold the same cards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardIndex(Roster);

impl CardIndex {
    /// How many cards.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No cards at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The card with this canonical number.
    pub fn get(&self, number: &str) -> Option<CardRef<'_>> {
        self.0.get(number).map(CardRef::from)
    }

    /// Whether a card with this canonical number is listed.
    pub fn contains(&self, number: &str) -> bool {
        self.0.contains(number)
    }

    /// Every card, in the order of their numbers as text.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = CardRef<'_>> + ExactSizeIterator {
        self.0.iter().map(CardRef::from)
    }

    /// How many distinct door-group sets the cards name (the empty set
    /// included).
    pub fn group_sets(&self) -> usize {
        self.0.sets()
    }
}

impl FromIterator<Card> for CardIndex {
    /// Cards by number; of two with the same number the later one counts.
    fn from_iter<I: IntoIterator<Item = Card>>(cards: I) -> Self {
        let mut builder = CardIndexBuilder::default();
        for c in cards {
            // A form's or a test's few cards never fill 4 GiB of text.
            let _ = builder.push(
                &c.number,
                &c.holder,
                &c.house,
                c.valid_from,
                c.valid_to,
                c.groups.as_slice(),
            );
        }
        builder.build()
    }
}

/// Builds a [`CardIndex`] one card at a time (as rows come from the
/// database); the door-group sets are interned as they come.
#[derive(Debug, Default)]
pub struct CardIndexBuilder(RosterBuilder);

impl CardIndexBuilder {
    /// A builder expecting about `cards` cards of `text` bytes in all
    /// (numbers, holders and houses), so nothing is reallocated on the way.
    pub fn with_capacity(cards: usize, text: usize) -> Self {
        Self(RosterBuilder::with_capacity(cards, text))
    }

    /// Adds a card; a later card with the same number replaces it.
    pub fn push(
        &mut self,
        number: &str,
        holder: &str,
        house: &str,
        valid_from: Option<i64>,
        valid_to: Option<i64>,
        groups: &[impl AsRef<str>],
    ) -> Result<(), RosterFull> {
        let record = Record {
            key: number,
            first: holder,
            second: house,
            valid_from,
            valid_to,
            set: &[],
        };
        self.0.push(record, groups)
    }

    /// The index.
    pub fn build(self) -> CardIndex {
        CardIndex(self.0.build())
    }
}

/// The door a credential was presented at, as the decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct DoorPolicy<'a> {
    /// The door's id.
    pub door: &'a str,
    /// Its group and the group's schedule; `None`: any valid credential,
    /// at any time.
    pub group: Option<(&'a str, &'a Schedule)>,
    /// The estate's zone, which schedules are read in.
    pub zone: &'a EstateZone,
}

/// What was presented.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// A card number (canonical).
    Card(&'a str),
    /// A keypad code, hashed.
    Code(&'a CodeHash),
}

/// Grant or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Open the door.
    Grant,
    /// Keep it locked.
    Deny,
}

/// Why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// A resident's card.
    Card {
        /// The holder's house.
        house: String,
    },
    /// A resident's PIN.
    Pin {
        /// The holder's house.
        house: String,
    },
    /// A temporary code with uses left.
    TempCode {
        /// The code's id.
        code_id: i64,
        /// The host's house.
        house: String,
        /// Uses left after this one.
        uses_left: u32,
    },
    /// Not a known card.
    UnknownCard,
    /// Not a known code.
    UnknownCode,
    /// Validity ended.
    Expired,
    /// Validity has not started.
    NotYetValid,
    /// Valid, but not for this door's group.
    WrongDoor,
    /// Outside the door group's schedule.
    OutsideSchedule,
    /// On the blocked list.
    Blocked {
        /// The listed reason.
        reason: String,
    },
    /// A temporary code with no uses left.
    CodeUsedUp,
    /// Used at the same door of an anti-passback pair twice in a row.
    AntiPassback,
    /// Too many wrong codes at this reader recently.
    TooManyAttempts {
        /// When the reader accepts codes again (Unix ms).
        until_ms: i64,
    },
}

/// A decision with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Grant or deny.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// Who, when known (holder or label); never the code itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The key anti-passback and use counting track: `card:N`, `pin:ID`,
    /// `code:ID`; `None` for an unknown credential.
    #[serde(skip)]
    pub subject: Option<String>,
}

impl Decision {
    fn deny(reason: Reason, holder: Option<String>, subject: Option<String>) -> Self {
        Self {
            verdict: Verdict::Deny,
            reason,
            holder,
            subject,
        }
    }
}

/// The state a decision reads besides the snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub struct History<'a> {
    /// For a door in an anti-passback pair: the door of the pair this
    /// credential last passed, if known.
    pub last_in_pair: Option<&'a str>,
    /// Uses of the code recorded since the snapshot was taken, when higher
    /// than the snapshot's count.
    pub used: Option<u32>,
}

/// The key anti-passback and use counting track for what was presented:
/// `card:N`, `pin:ID` or `code:ID`; `None` for an unknown code.
pub fn subject(credentials: &Credentials, presented: Presented<'_>) -> Option<String> {
    match presented {
        Presented::Card(number) => Some(format!("card:{number}")),
        Presented::Code(hash) => match credentials.codes.get(hash)? {
            CodeEntry::Pin(pin) => Some(format!("pin:{}", pin.id)),
            CodeEntry::Temp(code) => Some(format!("code:{}", code.id)),
        },
    }
}

/// The common checks of a credential's window and groups.
fn check_window_and_door(
    valid_from: Option<i64>,
    valid_to: Option<i64>,
    groups: &[impl AsRef<str>],
    door: &DoorPolicy<'_>,
    now_ms: i64,
) -> Option<Reason> {
    if valid_from.is_some_and(|f| now_ms < f) {
        return Some(Reason::NotYetValid);
    }
    if valid_to.is_some_and(|t| now_ms > t) {
        return Some(Reason::Expired);
    }
    if let Some((group, schedule)) = door.group {
        if !groups.is_empty() && !groups.iter().any(|g| g.as_ref() == group) {
            return Some(Reason::WrongDoor);
        }
        if !schedule.allows(door.zone, now_ms) {
            return Some(Reason::OutsideSchedule);
        }
    }
    None
}

/// Decides one presentation.
pub fn decide(
    credentials: &Credentials,
    door: &DoorPolicy<'_>,
    presented: Presented<'_>,
    history: History<'_>,
    now_ms: i64,
) -> Decision {
    let (holder, subject, granted, window) = match presented {
        Presented::Card(number) => {
            if let Some(blocked) = credentials.blocked.get(number) {
                let holder = credentials.cards.get(number).map(|c| c.holder.to_owned());
                return Decision::deny(
                    Reason::Blocked {
                        reason: blocked.reason.clone(),
                    },
                    holder,
                    Some(format!("card:{number}")),
                );
            }
            let Some(card) = credentials.cards.get(number) else {
                return Decision::deny(Reason::UnknownCard, None, None);
            };
            (
                card.holder.to_owned(),
                format!("card:{number}"),
                Reason::Card {
                    house: card.house.to_owned(),
                },
                check_window_and_door(card.valid_from, card.valid_to, card.groups, door, now_ms),
            )
        }
        Presented::Code(hash) => match credentials.codes.get(hash) {
            None => return Decision::deny(Reason::UnknownCode, None, None),
            Some(CodeEntry::Pin(pin)) => (
                pin.holder.clone(),
                format!("pin:{}", pin.id),
                Reason::Pin {
                    house: pin.house.clone(),
                },
                check_window_and_door(pin.valid_from, pin.valid_to, &pin.groups, door, now_ms),
            ),
            Some(CodeEntry::Temp(code)) => {
                let used = history.used.unwrap_or(0).max(code.used);
                let problem = check_window_and_door(
                    Some(code.valid_from),
                    Some(code.valid_to),
                    &code.groups,
                    door,
                    now_ms,
                )
                .or((used >= code.max_uses).then_some(Reason::CodeUsedUp));
                (
                    code.label.clone(),
                    format!("code:{}", code.id),
                    Reason::TempCode {
                        code_id: code.id,
                        house: code.house.clone(),
                        uses_left: code.max_uses.saturating_sub(used + 1),
                    },
                    problem,
                )
            }
        },
    };
    if let Some(reason) = window {
        return Decision::deny(reason, Some(holder), Some(subject));
    }
    if history.last_in_pair == Some(door.door) {
        return Decision::deny(Reason::AntiPassback, Some(holder), Some(subject));
    }
    Decision {
        verdict: Verdict::Grant,
        reason: granted,
        holder: Some(holder),
        subject: Some(subject),
    }
}

/// Canonical card number: decimal digits without leading zeros (`"0"` for
/// zero). `None` when it is not a decimal number of at most 20 digits.
pub fn canonical_card(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = raw.trim_start_matches('0');
    Some(if trimmed.is_empty() { "0" } else { trimmed }.to_owned())
}

/// Limits wrong codes per reader: after `max_failures` wrong codes within
/// `window_ms`, the reader refuses codes for `lockout_ms` without looking
/// at them (a PIN is short; this is what makes guessing slow).
#[derive(Debug, Clone)]
pub struct AttemptLimiter {
    max_failures: usize,
    window_ms: i64,
    lockout_ms: i64,
    readers: HashMap<String, ReaderAttempts>,
}

#[derive(Debug, Clone, Default)]
struct ReaderAttempts {
    failures: Vec<i64>,
    locked_until: Option<i64>,
}

impl AttemptLimiter {
    /// A limiter with these bounds.
    pub fn new(max_failures: usize, window_ms: i64, lockout_ms: i64) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window_ms,
            lockout_ms,
            readers: HashMap::new(),
        }
    }

    /// `Some(until)` while `reader` is locked out at `now_ms`.
    pub fn locked(&self, reader: &str, now_ms: i64) -> Option<i64> {
        self.readers
            .get(reader)
            .and_then(|r| r.locked_until)
            .filter(|&until| now_ms < until)
    }

    /// Records a wrong code; returns the lockout end if this one locks the reader.
    pub fn failed(&mut self, reader: &str, now_ms: i64) -> Option<i64> {
        let entry = self.readers.entry(reader.to_owned()).or_default();
        entry.failures.retain(|&t| now_ms - t < self.window_ms);
        entry.failures.push(now_ms);
        if entry.failures.len() >= self.max_failures {
            entry.failures.clear();
            let until = now_ms + self.lockout_ms;
            entry.locked_until = Some(until);
            return Some(until);
        }
        None
    }

    /// Records a good code: the reader's failures are forgotten.
    pub fn succeeded(&mut self, reader: &str) {
        self.readers.remove(reader);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::schedule::Window;

    static SHANGHAI: std::sync::LazyLock<EstateZone> =
        std::sync::LazyLock::new(EstateZone::default);

    fn ms(text: &str) -> i64 {
        SHANGHAI.parse_ms(text, false).expect("date")
    }

    const WEEKDAYS: [bool; 7] = [true, true, true, true, true, false, false];

    fn card(number: &str, groups: &[&str]) -> Card {
        Card {
            number: number.into(),
            holder: "王芳".into(),
            house: "3-1-1201".into(),
            valid_from: None,
            valid_to: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn creds(cards: Vec<Card>) -> Credentials {
        Credentials {
            cards: cards.into_iter().collect(),
            ..Credentials::default()
        }
    }

    static ALWAYS: Schedule = Schedule {
        windows: Vec::new(),
    };

    fn door<'a>(group: Option<(&'a str, &'a Schedule)>) -> DoorPolicy<'a> {
        DoorPolicy {
            door: "b3-u1",
            group,
            zone: &SHANGHAI,
        }
    }

    // 2026-03-02 is a Monday.
    const MONDAY_NOON: &str = "2026-03-02 12:00";

    #[test]
    fn schedule_weekday_window_allows_inside_and_denies_outside_and_at_weekends() {
        let basement = Schedule {
            windows: vec![Window {
                days: WEEKDAYS,
                start_min: 6 * 60,
                end_min: 23 * 60,
            }],
        };
        assert!(basement.allows(&SHANGHAI, ms("2026-03-02 06:00")));
        assert!(basement.allows(&SHANGHAI, ms("2026-03-06 22:59")), "Friday");
        assert!(!basement.allows(&SHANGHAI, ms("2026-03-02 05:59")));
        assert!(
            !basement.allows(&SHANGHAI, ms("2026-03-02 23:00")),
            "end is exclusive"
        );
        assert!(
            !basement.allows(&SHANGHAI, ms("2026-03-07 12:00")),
            "Saturday"
        );
        let c = creds(vec![card("100", &["basement"])]);
        let d = door(Some(("basement", &basement)));
        let late = decide(
            &c,
            &d,
            Presented::Card("100"),
            History::default(),
            ms("2026-03-02 23:30"),
        );
        assert_eq!(late.reason, Reason::OutsideSchedule);
        assert_eq!(late.verdict, Verdict::Deny);
    }

    #[test]
    fn schedule_across_midnight_belongs_to_the_day_it_starts() {
        // Night shift: Friday 22:00 to Saturday 06:00 only.
        let mut days = [false; 7];
        days[4] = true;
        let night = Schedule {
            windows: vec![Window {
                days,
                start_min: 22 * 60,
                end_min: 6 * 60,
            }],
        };
        assert!(
            night.allows(&SHANGHAI, ms("2026-03-06 22:00")),
            "Friday night"
        );
        assert!(
            night.allows(&SHANGHAI, ms("2026-03-07 05:59")),
            "Saturday early"
        );
        assert!(!night.allows(&SHANGHAI, ms("2026-03-07 06:00")));
        assert!(
            !night.allows(&SHANGHAI, ms("2026-03-06 05:00")),
            "Friday early is Thursday's night"
        );
        assert!(
            !night.allows(&SHANGHAI, ms("2026-03-07 23:00")),
            "Saturday night"
        );
        // Sunday 23:00 → Monday 01:00 wraps the week.
        let mut sunday = [false; 7];
        sunday[6] = true;
        let wrap = Schedule {
            windows: vec![Window {
                days: sunday,
                start_min: 23 * 60,
                end_min: 60,
            }],
        };
        assert!(
            wrap.allows(&SHANGHAI, ms("2026-03-02 00:30")),
            "Monday 00:30"
        );
        assert!(
            !wrap.allows(&SHANGHAI, ms("2026-03-03 00:30")),
            "Tuesday 00:30"
        );
    }

    #[test]
    fn schedule_is_read_in_the_estate_zone_not_utc() {
        // 23:30Z Sunday is 07:30 Monday in Shanghai.
        let mornings = Schedule {
            windows: vec![Window {
                days: WEEKDAYS,
                start_min: 7 * 60,
                end_min: 8 * 60,
            }],
        };
        let t = ms("2026-03-01T23:30:00Z");
        assert!(mornings.allows(&SHANGHAI, t));
        let utc = EstateZone::named("UTC").expect("utc");
        assert!(!mornings.allows(&utc, t), "Sunday night in UTC");
    }

    #[test]
    fn card_decisions_cover_unknown_expiry_wrong_door_and_blocked() {
        let now = ms(MONDAY_NOON);
        let mut expired = card("200", &[]);
        expired.valid_to = Some(now - 1);
        let mut future = card("300", &[]);
        future.valid_from = Some(now + 1);
        let mut c = creds(vec![
            card("100", &["b3"]),
            expired,
            future,
            card("400", &["b5"]),
            card("500", &[]),
        ]);
        c.blocked.insert(
            "500".into(),
            Blocked {
                number: "500".into(),
                reason: "lost".into(),
            },
        );
        let d = door(Some(("b3", &ALWAYS)));
        let reason = |n: &str| decide(&c, &d, Presented::Card(n), History::default(), now).reason;
        let granted = decide(&c, &d, Presented::Card("100"), History::default(), now);
        assert_eq!(granted.verdict, Verdict::Grant);
        assert_eq!(granted.holder.as_deref(), Some("王芳"));
        assert_eq!(granted.subject.as_deref(), Some("card:100"));
        assert_eq!(reason("999"), Reason::UnknownCard);
        assert_eq!(reason("200"), Reason::Expired);
        assert_eq!(reason("300"), Reason::NotYetValid);
        assert_eq!(reason("400"), Reason::WrongDoor);
        assert_eq!(
            reason("500"),
            Reason::Blocked {
                reason: "lost".into()
            }
        );
        // A card with no groups opens a door with no group as well.
        let open = door(None);
        assert_eq!(
            decide(&c, &open, Presented::Card("400"), History::default(), now).verdict,
            Verdict::Grant
        );
    }

    fn temp(max_uses: u32, used: u32, from: i64, to: i64) -> Credentials {
        let mut c = Credentials::default();
        c.codes.insert(
            [7; 32],
            CodeEntry::Temp(TempCode {
                id: 9,
                label: "快递".into(),
                house: "3-1-1201".into(),
                valid_from: from,
                valid_to: to,
                max_uses,
                used,
                groups: vec![],
            }),
        );
        c
    }

    #[test]
    fn temp_code_counts_uses_and_expires_after_its_hours() {
        let now = ms(MONDAY_NOON);
        let two_hours = 2 * 3_600_000;
        let c = temp(2, 0, now, now + two_hours);
        let d = door(None);
        let first = decide(&c, &d, Presented::Code(&[7; 32]), History::default(), now);
        assert_eq!(
            first.reason,
            Reason::TempCode {
                code_id: 9,
                house: "3-1-1201".into(),
                uses_left: 1
            }
        );
        let history = History {
            used: Some(1),
            ..History::default()
        };
        assert_eq!(
            decide(&c, &d, Presented::Code(&[7; 32]), history, now).verdict,
            Verdict::Grant
        );
        let spent = History {
            used: Some(2),
            ..History::default()
        };
        assert_eq!(
            decide(&c, &d, Presented::Code(&[7; 32]), spent, now).reason,
            Reason::CodeUsedUp
        );
        // The snapshot's count counts even when the history knows less.
        let c_used = temp(2, 2, now, now + two_hours);
        assert_eq!(
            decide(
                &c_used,
                &d,
                Presented::Code(&[7; 32]),
                History::default(),
                now
            )
            .reason,
            Reason::CodeUsedUp
        );
        assert_eq!(
            decide(
                &c,
                &d,
                Presented::Code(&[7; 32]),
                History::default(),
                now + two_hours + 1
            )
            .reason,
            Reason::Expired
        );
        assert_eq!(
            decide(&c, &d, Presented::Code(&[8; 32]), History::default(), now).reason,
            Reason::UnknownCode
        );
    }

    #[test]
    fn anti_passback_denies_the_same_door_twice_in_a_row() {
        let now = ms(MONDAY_NOON);
        let c = creds(vec![card("100", &[])]);
        let d = door(None);
        let again = History {
            last_in_pair: Some("b3-u1"),
            ..History::default()
        };
        assert_eq!(
            decide(&c, &d, Presented::Card("100"), again, now).reason,
            Reason::AntiPassback
        );
        let other = History {
            last_in_pair: Some("b3-u1-out"),
            ..History::default()
        };
        assert_eq!(
            decide(&c, &d, Presented::Card("100"), other, now).verdict,
            Verdict::Grant
        );
    }

    #[test]
    fn card_index_finds_every_card_and_keeps_the_last_of_a_number() {
        let mut windowed = card("7", &["b3", "basement"]);
        windowed.valid_from = Some(0);
        windowed.valid_to = Some(-5);
        let mut replaced = card("100", &[]);
        replaced.holder = "李雷".into();
        let index: CardIndex = vec![
            card("100", &["b3"]),
            card("99", &["b3"]),
            windowed.clone(),
            card("12345678901234567890", &[]),
            replaced.clone(),
        ]
        .into_iter()
        .collect();
        assert_eq!(index.len(), 4);
        assert_eq!(index.get("100").map(|c| c.to_card()), Some(replaced));
        assert_eq!(index.get("7").map(|c| c.to_card()), Some(windowed));
        assert!(index.contains("12345678901234567890"));
        assert!(!index.contains("0100"), "numbers are canonical");
        assert!(!index.contains("8"));
        assert!(CardIndex::default().get("1").is_none());
        let numbers: Vec<&str> = index.iter().map(|c| c.number).collect();
        assert_eq!(numbers, ["100", "12345678901234567890", "7", "99"]);
        // The same cards in another order are the same index.
        let again: CardIndex = index.iter().rev().map(|c| c.to_card()).collect();
        assert_eq!(again, index);
        let fewer: CardIndex = index.iter().skip(1).map(|c| c.to_card()).collect();
        assert_ne!(fewer, index);
    }

    #[test]
    fn card_index_keeps_each_group_set_once() {
        let index: CardIndex = (0..1_000)
            .map(|i| {
                let groups: &[&str] = match i % 3 {
                    0 => &["b3"],
                    1 => &["b3", "basement"],
                    _ => &[],
                };
                card(&i.to_string(), groups)
            })
            .collect();
        assert_eq!(index.group_sets(), 3, "the empty set and two others");
        let (a, b) = (index.get("3").expect("3"), index.get("6").expect("6"));
        assert_eq!(a.groups, [Box::from("b3")]);
        assert!(std::ptr::eq(a.groups, b.groups), "one copy of a group set");
        assert_eq!(index.get("4").expect("4").groups.len(), 2);
    }

    #[test]
    fn card_numbers_are_canonical_decimal() {
        assert_eq!(canonical_card(" 0012345 ").as_deref(), Some("12345"));
        assert_eq!(canonical_card("000").as_deref(), Some("0"));
        assert_eq!(canonical_card("12a"), None);
        assert_eq!(canonical_card(""), None);
        assert_eq!(canonical_card(&"9".repeat(21)), None);
    }

    #[test]
    fn temp_code_limiter_locks_a_reader_after_repeated_wrong_codes() {
        let mut limiter = AttemptLimiter::new(3, 60_000, 300_000);
        assert_eq!(limiter.failed("kp", 0), None);
        assert_eq!(limiter.failed("kp", 1_000), None);
        assert_eq!(limiter.locked("kp", 1_500), None);
        assert_eq!(limiter.failed("kp", 2_000), Some(302_000));
        assert_eq!(limiter.locked("kp", 2_001), Some(302_000));
        assert_eq!(limiter.locked("other", 2_001), None, "per reader");
        assert_eq!(limiter.locked("kp", 302_000), None, "lockout ends");
        // Failures spread wider than the window do not add up.
        let mut slow = AttemptLimiter::new(3, 60_000, 300_000);
        for t in [0, 61_000, 122_000] {
            assert_eq!(slow.failed("kp", t), None);
        }
        slow.succeeded("kp");
        assert_eq!(slow.failed("kp", 123_000), None);
    }
}
