//! Vehicle access decisions at a lane: allow, deny, or ask the guard, with
//! the reason, from a read, the lane's policy and a snapshot of the lists.
//! Also the de-duplication of repeated reads.
//!
//! Pure: no IO, no clock (the time is an argument). The pipeline holds the
//! list snapshot in memory, so a decision never waits on the disk or the
//! network.
//!
//! **Rule:** a read that matches a listed plate only through one
//! OCR-confusable character or the province character never opens the
//! barrier by itself: the guard decides, and the candidate is named.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::plate::{PlateText, fuzzy_variants};
use super::roster::{Record, Roster, RosterBuilder, RosterFull};
use crate::vocab::lane::{Direction, ExitPolicy};

/// A resident's registered vehicle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resident {
    /// Canonical plate.
    pub plate: String,
    /// House / unit, e.g. `3-2-1201`.
    pub house: String,
    /// Owner's name.
    pub owner: String,
    /// Valid from (Unix ms), if limited.
    pub valid_from: Option<i64>,
    /// Valid until (Unix ms), if limited.
    pub valid_to: Option<i64>,
    /// Lanes the vehicle may use; empty = all lanes.
    pub lanes: Vec<String>,
}

/// A visitor pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisitorPass {
    /// Pass id.
    pub id: i64,
    /// Canonical plate.
    pub plate: String,
    /// The host's house / unit.
    pub host_unit: String,
    /// Valid from (Unix ms).
    pub valid_from: i64,
    /// Valid until (Unix ms).
    pub valid_to: i64,
    /// Whether the pass is good for one entry only.
    pub single_use: bool,
    /// Whether a single-use pass was used.
    pub used: bool,
}

/// A blacklisted plate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blacklisted {
    /// Canonical plate.
    pub plate: String,
    /// Why.
    pub reason: String,
}

/// A resident's vehicle as the snapshot holds it, borrowed from the
/// [`ResidentIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResidentRef<'a> {
    /// Canonical plate.
    pub plate: &'a str,
    /// House / unit.
    pub house: &'a str,
    /// Owner's name.
    pub owner: &'a str,
    /// Valid from (Unix ms), if limited.
    pub valid_from: Option<i64>,
    /// Valid until (Unix ms), if limited.
    pub valid_to: Option<i64>,
    /// Lanes the vehicle may use; empty = all lanes. Vehicles with the
    /// same lanes share this slice.
    pub lanes: &'a [Box<str>],
}

impl ResidentRef<'_> {
    /// The vehicle as an owned record (for forms, lists and files).
    pub fn to_resident(&self) -> Resident {
        Resident {
            plate: self.plate.to_owned(),
            house: self.house.to_owned(),
            owner: self.owner.to_owned(),
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            lanes: self.lanes.iter().map(|l| String::from(&**l)).collect(),
        }
    }
}

impl<'a> From<Record<'a>> for ResidentRef<'a> {
    fn from(r: Record<'a>) -> Self {
        Self {
            plate: r.key,
            house: r.first,
            owner: r.second,
            valid_from: r.valid_from,
            valid_to: r.valid_to,
            lanes: r.set,
        }
    }
}

/// Residents' vehicles by canonical plate, packed (a [`Roster`]: four
/// allocations whatever the number of vehicles, each set of lanes kept
/// once). Iterated in plate order. Two indexes are equal when they hold
/// the same vehicles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResidentIndex(Roster);

impl ResidentIndex {
    /// How many vehicles.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No vehicles at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The vehicle with this canonical plate.
    pub fn get(&self, plate: &str) -> Option<ResidentRef<'_>> {
        self.0.get(plate).map(ResidentRef::from)
    }

    /// Whether a vehicle with this canonical plate is listed.
    pub fn contains(&self, plate: &str) -> bool {
        self.0.contains(plate)
    }

    /// Every vehicle, in plate order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = ResidentRef<'_>> + ExactSizeIterator {
        self.0.iter().map(ResidentRef::from)
    }

    /// How many distinct sets of lanes the vehicles name (the empty set
    /// included).
    pub fn lane_sets(&self) -> usize {
        self.0.sets()
    }
}

impl FromIterator<Resident> for ResidentIndex {
    /// Vehicles by plate; of two with the same plate the later one counts.
    fn from_iter<I: IntoIterator<Item = Resident>>(residents: I) -> Self {
        let mut builder = ResidentIndexBuilder::default();
        for r in residents {
            // A form's or a test's few vehicles never fill 4 GiB of text.
            let _ = builder.push(
                &r.plate,
                &r.house,
                &r.owner,
                r.valid_from,
                r.valid_to,
                r.lanes.as_slice(),
            );
        }
        builder.build()
    }
}

/// Builds a [`ResidentIndex`] one vehicle at a time (as rows come from the
/// database); the sets of lanes are interned as they come.
#[derive(Debug, Default)]
pub struct ResidentIndexBuilder(RosterBuilder);

impl ResidentIndexBuilder {
    /// A builder expecting about `vehicles` vehicles of `text` bytes in all
    /// (plates, houses and owners), so nothing is reallocated on the way.
    pub fn with_capacity(vehicles: usize, text: usize) -> Self {
        Self(RosterBuilder::with_capacity(vehicles, text))
    }

    /// Adds a vehicle; a later one with the same plate replaces it.
    pub fn push(
        &mut self,
        plate: &str,
        house: &str,
        owner: &str,
        valid_from: Option<i64>,
        valid_to: Option<i64>,
        lanes: &[impl AsRef<str>],
    ) -> Result<(), RosterFull> {
        let record = Record {
            key: plate,
            first: house,
            second: owner,
            valid_from,
            valid_to,
            set: &[],
        };
        self.0.push(record, lanes)
    }

    /// The index.
    pub fn build(self) -> ResidentIndex {
        ResidentIndex(self.0.build())
    }
}

/// The lists a decision consults, indexed by canonical plate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlateLists {
    /// Residents' vehicles.
    pub residents: ResidentIndex,
    /// Visitor passes (a plate may have several).
    pub visitors: HashMap<String, Vec<VisitorPass>>,
    /// Blacklist.
    pub blacklist: HashMap<String, Blacklisted>,
}

impl PlateLists {
    /// Builds the index from rows.
    pub fn new(
        residents: ResidentIndex,
        visitors: impl IntoIterator<Item = VisitorPass>,
        blacklist: impl IntoIterator<Item = Blacklisted>,
    ) -> Self {
        let mut lists = PlateLists {
            residents,
            blacklist: blacklist
                .into_iter()
                .map(|b| (b.plate.clone(), b))
                .collect(),
            visitors: HashMap::new(),
        };
        for pass in visitors {
            lists
                .visitors
                .entry(pass.plate.clone())
                .or_default()
                .push(pass);
        }
        lists
    }

    /// Whether the plate is on any list.
    pub fn is_listed(&self, plate: &str) -> bool {
        self.residents.contains(plate)
            || self.visitors.contains_key(plate)
            || self.blacklist.contains_key(plate)
    }
}

/// A lane's decision policy.
#[derive(Debug, Clone, PartialEq)]
pub struct LanePolicy {
    /// Lane id.
    pub lane: String,
    /// Entry or exit.
    pub direction: Direction,
    /// Reads below this confidence go to the guard.
    pub min_confidence: u8,
    /// Exit behaviour.
    pub exit_policy: ExitPolicy,
}

/// Allow, deny, or ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Raise the barrier.
    Allow,
    /// Keep it down.
    Deny,
    /// A guard decides (the car waits).
    AskGuard,
}

/// Why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// A resident's vehicle.
    Resident {
        /// Their house.
        house: String,
    },
    /// A visitor with a valid pass.
    Visitor {
        /// The pass.
        pass_id: i64,
        /// The host's unit.
        host_unit: String,
    },
    /// On the blacklist.
    Blacklisted {
        /// The listed reason.
        reason: String,
    },
    /// The registration or pass has expired.
    Expired,
    /// The registration or pass is not valid yet.
    NotYetValid,
    /// A single-use pass was already used.
    PassUsed,
    /// The vehicle may not use this lane.
    LaneNotAllowed,
    /// Not on any list.
    UnknownPlate,
    /// The camera was not sure enough.
    LowConfidence {
        /// The read's confidence.
        confidence: u8,
    },
    /// Close to a listed plate but not equal.
    FuzzyMatch {
        /// The listed plate it resembles.
        candidate: String,
    },
    /// No readable plate.
    NoPlate,
    /// Exit lane open for all.
    ExitOpen,
    /// Leaving after a recorded entry, or listed.
    ExitKnown,
    /// Leaving without a recorded entry and not listed.
    ExitUnknown,
    /// Decided allow, but the barrier did not open (its module failed):
    /// the guard decides, and nothing was consumed or recorded as passed.
    BarrierFailed {
        /// The module's answer.
        detail: String,
    },
}

/// A decision with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// A single-use visitor pass this entry consumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumes_pass: Option<i64>,
}

impl Decision {
    fn new(verdict: Verdict, reason: Reason) -> Self {
        Self {
            verdict,
            reason,
            consumes_pass: None,
        }
    }
}

/// What a decision needs to know about one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFacts<'a> {
    /// The normalised plate.
    pub plate: &'a PlateText,
    /// Camera confidence, if given.
    pub confidence: Option<u8>,
    /// Time of the read (Unix ms).
    pub now_ms: i64,
    /// Whether the vehicle is recorded as inside the estate.
    pub inside: bool,
}

/// Decides one read at one lane.
pub fn decide(lists: &PlateLists, lane: &LanePolicy, read: &ReadFacts<'_>) -> Decision {
    let PlateText::Plate { text, .. } = read.plate else {
        return match (lane.direction, lane.exit_policy) {
            (Direction::Exit, ExitPolicy::OpenAll) => {
                Decision::new(Verdict::Allow, Reason::ExitOpen)
            }
            _ => Decision::new(Verdict::AskGuard, Reason::NoPlate),
        };
    };
    if let Some(entry) = lists.blacklist.get(text) {
        let reason = Reason::Blacklisted {
            reason: entry.reason.clone(),
        };
        // Entry: kept out. Exit: the exit policy decides (an open-for-all
        // exit lets it go; otherwise the guard does). The alarm is raised
        // either way by the lane coordinator.
        let verdict = match (lane.direction, lane.exit_policy) {
            (Direction::Entry, _) => Verdict::Deny,
            (Direction::Exit, ExitPolicy::OpenAll) => Verdict::Allow,
            (Direction::Exit, ExitPolicy::RecordedOrListed) => Verdict::AskGuard,
        };
        return Decision::new(verdict, reason);
    }
    if lane.direction == Direction::Exit {
        return match lane.exit_policy {
            ExitPolicy::OpenAll => Decision::new(Verdict::Allow, Reason::ExitOpen),
            ExitPolicy::RecordedOrListed if read.inside || lists.is_listed(text) => {
                Decision::new(Verdict::Allow, Reason::ExitKnown)
            }
            ExitPolicy::RecordedOrListed => Decision::new(Verdict::AskGuard, Reason::ExitUnknown),
        };
    }
    if let Some(confidence) = read.confidence.filter(|c| *c < lane.min_confidence) {
        return Decision::new(Verdict::AskGuard, Reason::LowConfidence { confidence });
    }
    if let Some(resident) = lists.residents.get(text) {
        return resident_decision(resident, lane, read.now_ms);
    }
    if let Some(passes) = lists.visitors.get(text) {
        return visitor_decision(passes, read.now_ms);
    }
    if let Some(candidate) = fuzzy_variants(text)
        .into_iter()
        .find(|v| lists.is_listed(v))
    {
        return Decision::new(Verdict::AskGuard, Reason::FuzzyMatch { candidate });
    }
    Decision::new(Verdict::AskGuard, Reason::UnknownPlate)
}

fn window(now: i64, from: Option<i64>, to: Option<i64>) -> Option<Reason> {
    if from.is_some_and(|f| now < f) {
        Some(Reason::NotYetValid)
    } else if to.is_some_and(|t| now > t) {
        Some(Reason::Expired)
    } else {
        None
    }
}

fn resident_decision(resident: ResidentRef<'_>, lane: &LanePolicy, now: i64) -> Decision {
    if let Some(reason) = window(now, resident.valid_from, resident.valid_to) {
        return Decision::new(Verdict::Deny, reason);
    }
    if !resident.lanes.is_empty() && !resident.lanes.iter().any(|l| **l == *lane.lane) {
        return Decision::new(Verdict::Deny, Reason::LaneNotAllowed);
    }
    Decision::new(
        Verdict::Allow,
        Reason::Resident {
            house: resident.house.to_owned(),
        },
    )
}

fn visitor_decision(passes: &[VisitorPass], now: i64) -> Decision {
    let usable = passes.iter().find(|p| {
        window(now, Some(p.valid_from), Some(p.valid_to)).is_none() && !(p.single_use && p.used)
    });
    if let Some(pass) = usable {
        return Decision {
            verdict: Verdict::Allow,
            reason: Reason::Visitor {
                pass_id: pass.id,
                host_unit: pass.host_unit.clone(),
            },
            consumes_pass: pass.single_use.then_some(pass.id),
        };
    }
    // Say why the best candidate failed: used, expired, or not yet valid.
    let reason = passes
        .iter()
        .map(|p| {
            if p.single_use && p.used && window(now, Some(p.valid_from), Some(p.valid_to)).is_none()
            {
                Reason::PassUsed
            } else {
                window(now, Some(p.valid_from), Some(p.valid_to)).unwrap_or(Reason::PassUsed)
            }
        })
        .next()
        .unwrap_or(Reason::UnknownPlate);
    Decision::new(Verdict::Deny, reason)
}

/// Recognises repeated reads: the same plate at the same lane within a
/// window of its first read, and resends of a camera's read id.
///
/// - The window starts at the read that was decided and does not slide
///   with the repeats: reads at 0, 6 and 12 s in a 10 s window are
///   allow, repeat, allow.
/// - A read id is remembered for the window only, with its plate: cameras
///   restart their counters, so an old id with another plate is a new read.
/// - A read left undecided (sent to the guard for its low confidence) does
///   not hide a better read of the same plate: see [`Deduper::settle`].
#[derive(Debug)]
pub struct Deduper {
    window_ms: i64,
    /// (lane, plate) → the read that opened the window.
    last_seen: HashMap<(String, String), Seen>,
    /// (camera, read id) → (plate, time), oldest first.
    read_ids: VecDeque<((String, String), (String, i64))>,
    id_capacity: usize,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    time_ms: i64,
    confidence: Option<u8>,
    /// Decided for good (not waiting for the guard over its confidence).
    settled: bool,
}

impl Deduper {
    /// A de-duplicator with a repeat window and room for `id_capacity`
    /// remembered read ids.
    pub fn new(window_ms: i64, id_capacity: usize) -> Self {
        Self {
            window_ms,
            last_seen: HashMap::new(),
            read_ids: VecDeque::new(),
            id_capacity,
        }
    }

    /// Whether this read is new (`true`) or a repeat (`false`). A no-plate
    /// read (empty `plate`) is only de-duplicated by its read id.
    pub fn admit(
        &mut self,
        camera: &str,
        lane: &str,
        plate: &str,
        read_id: Option<&str>,
        confidence: Option<u8>,
        now_ms: i64,
    ) -> bool {
        let horizon = now_ms - self.window_ms;
        while self
            .read_ids
            .front()
            .is_some_and(|(_, (_, t))| *t <= horizon)
        {
            self.read_ids.pop_front();
        }
        if let Some(id) = read_id {
            let key = (camera.to_owned(), id.to_owned());
            let resent = self
                .read_ids
                .iter()
                .any(|(k, (p, _))| *k == key && p == plate);
            if resent {
                return false;
            }
            if self.read_ids.len() >= self.id_capacity {
                self.read_ids.pop_front();
            }
            self.read_ids.push_back((key, (plate.to_owned(), now_ms)));
        }
        if plate.is_empty() {
            return true;
        }
        let key = (lane.to_owned(), plate.to_owned());
        let repeat = self.last_seen.get(&key).is_some_and(|seen| {
            let within = now_ms - seen.time_ms < self.window_ms;
            let better =
                !seen.settled && confidence.unwrap_or(100) > seen.confidence.unwrap_or(100);
            within && !better
        });
        if repeat {
            return false;
        }
        self.last_seen.insert(
            key,
            Seen {
                time_ms: now_ms,
                confidence,
                settled: true,
            },
        );
        if self.last_seen.len() > 4 * self.id_capacity.max(64) {
            self.last_seen.retain(|_, seen| seen.time_ms > horizon);
        }
        true
    }

    /// Forgets the read of `plate` at `lane`, so that the next read of it is
    /// decided afresh (its OPEN failed: the car is still waiting).
    pub fn forget(&mut self, lane: &str, plate: &str) {
        self.last_seen.remove(&(lane.to_owned(), plate.to_owned()));
    }

    /// After the decision of an admitted read: `settled = false` when it
    /// went to the guard only because the camera was unsure, so that a
    /// more confident read of the same plate within the window is decided
    /// rather than dropped as a repeat.
    pub fn settle(&mut self, lane: &str, plate: &str, settled: bool) {
        if let Some(seen) = self.last_seen.get_mut(&(lane.to_owned(), plate.to_owned())) {
            seen.settled = settled;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::plate::normalise;

    const NOW: i64 = 1_764_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn lists() -> PlateLists {
        PlateLists::new(
            ResidentIndex::from_iter([
                Resident {
                    plate: "苏A8HK52".into(),
                    house: "3-2-1201".into(),
                    owner: "王芳".into(),
                    valid_from: None,
                    valid_to: None,
                    lanes: vec![],
                },
                Resident {
                    plate: "苏E12345".into(),
                    house: "1-1-101".into(),
                    owner: "李雷".into(),
                    valid_from: None,
                    valid_to: Some(NOW - HOUR),
                    lanes: vec![],
                },
                Resident {
                    plate: "苏E77777".into(),
                    house: "5-1-502".into(),
                    owner: "韩梅梅".into(),
                    valid_from: None,
                    valid_to: None,
                    lanes: vec!["north-in".into()],
                },
            ]),
            [VisitorPass {
                id: 7,
                plate: "浙B66666".into(),
                host_unit: "3-2-1201".into(),
                valid_from: NOW - HOUR,
                valid_to: NOW + HOUR,
                single_use: true,
                used: false,
            }],
            [Blacklisted {
                plate: "苏A00000".into(),
                reason: "欠费".into(),
            }],
        )
    }

    fn entry() -> LanePolicy {
        LanePolicy {
            lane: "south-in".into(),
            direction: Direction::Entry,
            min_confidence: 80,
            exit_policy: ExitPolicy::OpenAll,
        }
    }

    fn decide_plate(lane: &LanePolicy, raw: &str, confidence: u8) -> Decision {
        let plate = normalise(raw).expect("plate");
        decide(
            &lists(),
            lane,
            &ReadFacts {
                plate: &plate,
                confidence: Some(confidence),
                now_ms: NOW,
                inside: false,
            },
        )
    }

    #[test]
    fn vehicle_resident_is_allowed_with_the_house() {
        let d = decide_plate(&entry(), "苏A8HK52", 95);
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(
            d.reason,
            Reason::Resident {
                house: "3-2-1201".into()
            }
        );
    }

    #[test]
    fn vehicle_blacklisted_expired_and_wrong_lane_are_denied() {
        let d = decide_plate(&entry(), "苏A00000", 95);
        assert_eq!(
            d.reason,
            Reason::Blacklisted {
                reason: "欠费".into()
            }
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(
            decide_plate(&entry(), "苏E12345", 95).reason,
            Reason::Expired
        );
        assert_eq!(
            decide_plate(&entry(), "苏E77777", 95).reason,
            Reason::LaneNotAllowed
        );
    }

    #[test]
    fn vehicle_visitor_single_use_pass_is_consumed_then_refused() {
        let d = decide_plate(&entry(), "浙B66666", 95);
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.consumes_pass, Some(7));
        let mut used = lists();
        if let Some(passes) = used.visitors.get_mut("浙B66666") {
            passes[0].used = true;
        }
        let plate = normalise("浙B66666").expect("plate");
        let again = decide(
            &used,
            &entry(),
            &ReadFacts {
                plate: &plate,
                confidence: Some(95),
                now_ms: NOW,
                inside: false,
            },
        );
        assert_eq!(again.verdict, Verdict::Deny);
        assert_eq!(again.reason, Reason::PassUsed);
        let late = decide(
            &lists(),
            &entry(),
            &ReadFacts {
                plate: &plate,
                confidence: Some(95),
                now_ms: NOW + 2 * HOUR,
                inside: false,
            },
        );
        assert_eq!(late.reason, Reason::Expired);
    }

    #[test]
    fn vehicle_fuzzy_match_never_opens_and_names_the_candidate() {
        // 8 read as B.
        let d = decide_plate(&entry(), "苏ABHK52", 95);
        assert_eq!(d.verdict, Verdict::AskGuard);
        assert_eq!(
            d.reason,
            Reason::FuzzyMatch {
                candidate: "苏A8HK52".into()
            }
        );
        // Wrong province.
        let d = decide_plate(&entry(), "浙A8HK52", 95);
        assert_eq!(
            d.reason,
            Reason::FuzzyMatch {
                candidate: "苏A8HK52".into()
            }
        );
        // Close to a blacklisted plate: still the guard, never auto-deny or open.
        let d = decide_plate(&entry(), "苏AD0000", 95);
        assert_eq!(d.verdict, Verdict::AskGuard);
    }

    #[test]
    fn vehicle_unknown_low_confidence_and_no_plate_ask_the_guard() {
        assert_eq!(
            decide_plate(&entry(), "京C99999", 95).reason,
            Reason::UnknownPlate
        );
        assert_eq!(
            decide_plate(&entry(), "苏A8HK52", 60).reason,
            Reason::LowConfidence { confidence: 60 }
        );
        let d = decide_plate(&entry(), "_无_", 95);
        assert_eq!((d.verdict, d.reason), (Verdict::AskGuard, Reason::NoPlate));
    }

    #[test]
    fn vehicle_exit_policies() {
        let mut exit = LanePolicy {
            lane: "south-out".into(),
            direction: Direction::Exit,
            min_confidence: 80,
            exit_policy: ExitPolicy::OpenAll,
        };
        assert_eq!(decide_plate(&exit, "京C99999", 40).verdict, Verdict::Allow);
        exit.exit_policy = ExitPolicy::RecordedOrListed;
        assert_eq!(
            decide_plate(&exit, "京C99999", 95).reason,
            Reason::ExitUnknown
        );
        assert_eq!(
            decide_plate(&exit, "苏A8HK52", 95).reason,
            Reason::ExitKnown
        );
        let plate = normalise("京C99999").expect("plate");
        let inside = decide(
            &lists(),
            &exit,
            &ReadFacts {
                plate: &plate,
                confidence: Some(95),
                now_ms: NOW,
                inside: true,
            },
        );
        assert_eq!(inside.verdict, Verdict::Allow);
    }

    #[test]
    fn vehicle_blacklisted_at_an_exit_is_never_a_known_exit() {
        let blacklisted = Reason::Blacklisted {
            reason: "欠费".into(),
        };
        let mut exit = LanePolicy {
            lane: "south-out".into(),
            direction: Direction::Exit,
            min_confidence: 80,
            exit_policy: ExitPolicy::RecordedOrListed,
        };
        let d = decide_plate(&exit, "苏A00000", 95);
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::AskGuard, blacklisted.clone()),
            "listed, but the guard decides"
        );
        exit.exit_policy = ExitPolicy::OpenAll;
        let d = decide_plate(&exit, "苏A00000", 95);
        assert_eq!((d.verdict, d.reason), (Verdict::Allow, blacklisted));
    }

    #[test]
    fn dedup_counts_repeats_within_the_window_and_resends_once() {
        let mut d = Deduper::new(10_000, 16);
        assert!(d.admit("cam1", "in", "苏A8HK52", Some("101"), None, NOW));
        assert!(
            !d.admit("cam1", "in", "苏A8HK52", Some("102"), None, NOW + 3_000),
            "same car 3 s later"
        );
        assert!(
            d.admit("cam1", "in", "苏A8HK52", Some("103"), None, NOW + 20_000),
            "after the window"
        );
        assert!(
            !d.admit("cam1", "in", "苏A8HK52", Some("103"), None, NOW + 20_100),
            "the same read resent"
        );
        assert!(
            d.admit("cam1", "out", "苏A8HK52", None, None, NOW + 20_500),
            "another lane"
        );
        assert!(
            d.admit("cam1", "in", "", None, None, NOW),
            "no-plate reads are not merged"
        );
        assert!(d.admit("cam1", "in", "", None, None, NOW));
    }

    #[test]
    fn dedup_read_ids_expire_with_the_window_and_need_the_same_plate() {
        let mut d = Deduper::new(10_000, 16);
        assert!(d.admit("cam1", "in", "苏A8HK52", Some("7"), None, NOW));
        assert!(
            d.admit("cam1", "in", "浙B12345", Some("7"), None, NOW + 2_000),
            "the camera restarted its counter: another plate is another read"
        );
        assert!(
            d.admit("cam1", "in", "皖C55555", Some("8"), None, NOW + 3_000),
            "a new id"
        );
        assert!(
            d.admit("cam1", "in", "皖C55555", Some("8"), None, NOW + 16_000),
            "an id seen 13 s earlier has expired with the 10 s window"
        );
    }

    #[test]
    fn dedup_window_does_not_slide_with_repeats() {
        let mut d = Deduper::new(10_000, 16);
        let read = |d: &mut Deduper, at| d.admit("cam1", "in", "苏A8HK52", None, None, NOW + at);
        assert!(read(&mut d, 0), "0 s: decided");
        assert!(!read(&mut d, 6_000), "6 s: repeat");
        assert!(
            read(&mut d, 12_000),
            "12 s: the window of the 0 s read is over"
        );
    }

    #[test]
    fn dedup_a_confident_read_after_an_unsure_one_is_decided() {
        let mut d = Deduper::new(10_000, 16);
        assert!(d.admit("cam1", "in", "苏A8HK52", None, Some(60), NOW));
        d.settle("in", "苏A8HK52", false);
        assert!(
            !d.admit("cam1", "in", "苏A8HK52", None, Some(55), NOW + 1_000),
            "no better: still a repeat"
        );
        assert!(
            d.admit("cam1", "in", "苏A8HK52", None, Some(95), NOW + 2_000),
            "the better read is decided"
        );
        assert!(
            !d.admit("cam1", "in", "苏A8HK52", None, Some(99), NOW + 3_000),
            "once settled, repeats are repeats"
        );
    }
}
