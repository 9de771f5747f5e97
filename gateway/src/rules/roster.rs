//! A packed table of list records keyed by a canonical string — the shape
//! shared by door cards (number, holder, house, window, door groups) and
//! residents' vehicles (plate, house, owner, window, lanes).
//!
//! An estate holds 100,000 of either and reloads the list whole after every
//! change, so the table lives in four allocations whatever the number of
//! records: one text buffer with every key and both text fields back to
//! back, one table of 40-byte entries sorted by key, a hash index of 4-byte
//! positions into it (a `hashbrown::HashTable`, so a lookup costs one hash
//! and a probe or two, as in a `HashMap`), and the few distinct sets (door
//! groups, lanes), each kept once: about 76 bytes a record. A record in a
//! `HashMap<String, _>` with its own `String`s and `Vec` cost about five
//! times as much, in six allocations each, which the allocator then had to
//! take back after every reload.

use std::collections::HashMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;

/// One record, borrowed from its [`Roster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The key (a canonical card number or plate).
    pub key: &'a str,
    /// The first text field.
    pub first: &'a str,
    /// The second text field.
    pub second: &'a str,
    /// Valid from (Unix ms), if limited.
    pub valid_from: Option<i64>,
    /// Valid until (Unix ms), if limited.
    pub valid_to: Option<i64>,
    /// The record's set (door groups, lanes); records with the same set
    /// share this slice.
    pub set: &'a [Box<str>],
}

/// Where a record's strings are in the text buffer, its window and its
/// set. 40 bytes, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    valid_from: i64,
    valid_to: i64,
    /// Offset of the key in the text; the two fields follow it.
    start: u32,
    key_len: u32,
    first_len: u32,
    second_len: u32,
    /// Index into the sets.
    set: u32,
    /// `HAS_FROM`, `HAS_TO`.
    flags: u8,
}

const HAS_FROM: u8 = 1;
const HAS_TO: u8 = 2;

/// Records by key, packed (see the module documentation). Built with
/// [`RosterBuilder`]; iterated in key order. Two rosters are equal when
/// they hold the same records.
#[derive(Clone)]
pub struct Roster {
    text: String,
    entries: Vec<Entry>,
    /// Positions in `entries`, by the hash of their key.
    index: HashTable<u32>,
    hasher: std::hash::RandomState,
    /// The distinct sets; the first is the empty set.
    sets: Vec<Box<[Box<str>]>>,
}

impl Default for Roster {
    fn default() -> Self {
        Self {
            text: String::new(),
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: std::hash::RandomState::new(),
            sets: vec![Box::default()],
        }
    }
}

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Roster {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Roster {}

fn key_of<'t>(text: &'t str, entry: &Entry) -> &'t str {
    let start = entry.start as usize;
    &text[start..start + entry.key_len as usize]
}

impl Roster {
    /// How many records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No records at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn view(&self, entry: &Entry) -> Record<'_> {
        let start = entry.start as usize;
        let first = start + entry.key_len as usize;
        let second = first + entry.first_len as usize;
        let end = second + entry.second_len as usize;
        Record {
            key: &self.text[start..first],
            first: &self.text[first..second],
            second: &self.text[second..end],
            valid_from: (entry.flags & HAS_FROM != 0).then_some(entry.valid_from),
            valid_to: (entry.flags & HAS_TO != 0).then_some(entry.valid_to),
            set: &self.sets[entry.set as usize],
        }
    }

    /// The record with this key.
    pub fn get(&self, key: &str) -> Option<Record<'_>> {
        let hash = self.hasher.hash_one(key);
        let &i = self.index.find(hash, |&i| {
            key_of(&self.text, &self.entries[i as usize]) == key
        })?;
        Some(self.view(&self.entries[i as usize]))
    }

    /// Whether a record has this key.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Every record, in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Record<'_>> + ExactSizeIterator {
        self.entries.iter().map(|e| self.view(e))
    }

    /// How many distinct sets the records name (the empty set included).
    pub fn sets(&self) -> usize {
        self.sets.len()
    }
}

/// The roster would pass 4 GiB of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the list is too large: its text passes 4 GiB")]
pub struct RosterFull;

/// Builds a [`Roster`] one record at a time (as rows come from the
/// database); sets are interned as they come.
#[derive(Debug, Default)]
pub struct RosterBuilder {
    roster: Roster,
    sets: HashMap<String, u32>,
}

impl RosterBuilder {
    /// A builder expecting about `records` records of `text` bytes in all
    /// (keys and both fields), so nothing is reallocated on the way.
    pub fn with_capacity(records: usize, text: usize) -> Self {
        let mut builder = Self::default();
        builder.roster.entries.reserve_exact(records);
        builder.roster.text.reserve_exact(text);
        builder
    }

    /// Adds a record; a later record with the same key replaces it.
    pub fn push(&mut self, record: Record<'_>, set: &[impl AsRef<str>]) -> Result<(), RosterFull> {
        let len = |s: &str| u32::try_from(s.len()).map_err(|_| RosterFull);
        let start = len(&self.roster.text)?;
        let (key_len, first_len, second_len) =
            (len(record.key)?, len(record.first)?, len(record.second)?);
        let end =
            u64::from(start) + u64::from(key_len) + u64::from(first_len) + u64::from(second_len);
        if end > u64::from(u32::MAX) {
            return Err(RosterFull);
        }
        let set = self.intern(set)?;
        let text = &mut self.roster.text;
        text.push_str(record.key);
        text.push_str(record.first);
        text.push_str(record.second);
        let flags = if record.valid_from.is_some() {
            HAS_FROM
        } else {
            0
        } | if record.valid_to.is_some() { HAS_TO } else { 0 };
        self.roster.entries.push(Entry {
            valid_from: record.valid_from.unwrap_or(0),
            valid_to: record.valid_to.unwrap_or(0),
            start,
            key_len,
            first_len,
            second_len,
            set,
            flags,
        });
        Ok(())
    }

    fn intern(&mut self, set: &[impl AsRef<str>]) -> Result<u32, RosterFull> {
        if set.is_empty() {
            return Ok(0);
        }
        let mut key = String::new();
        for item in set {
            key.push_str(item.as_ref());
            key.push('\n');
        }
        if let Some(&i) = self.sets.get(&key) {
            return Ok(i);
        }
        let i = u32::try_from(self.roster.sets.len()).map_err(|_| RosterFull)?;
        self.roster
            .sets
            .push(set.iter().map(|s| Box::from(s.as_ref())).collect());
        self.sets.insert(key, i);
        Ok(i)
    }

    /// The roster, sorted by key.
    pub fn build(self) -> Roster {
        let mut roster = self.roster;
        let text = &roster.text;
        // Stable, so that of equal keys the later one is kept below.
        roster
            .entries
            .sort_by(|a, b| key_of(text, a).cmp(key_of(text, b)));
        roster.entries.dedup_by(|later, earlier| {
            let same = key_of(text, later) == key_of(text, earlier);
            if same {
                *earlier = *later;
            }
            same
        });
        roster.entries.shrink_to_fit();
        roster.text.shrink_to_fit();
        roster.sets.shrink_to_fit();
        let (text, entries, hasher) = (&roster.text, &roster.entries, &roster.hasher);
        let hash = |i: &u32| hasher.hash_one(key_of(text, &entries[*i as usize]));
        let mut index = HashTable::with_capacity(entries.len());
        // `push` kept the text under 4 GiB, so there are fewer entries.
        for i in 0..u32::try_from(entries.len()).unwrap_or(u32::MAX) {
            index.insert_unique(hash(&i), i, hash);
        }
        roster.index = index;
        roster
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(key: &'a str, first: &'a str) -> Record<'a> {
        Record {
            key,
            first,
            second: "3-1-1201",
            valid_from: None,
            valid_to: None,
            set: &[],
        }
    }

    #[test]
    fn roster_finds_every_record_in_key_order_and_keeps_the_last_of_a_key() {
        let mut builder = RosterBuilder::default();
        let none: &[&str] = &[];
        let windowed = Record {
            valid_from: Some(0),
            valid_to: Some(-5),
            ..record("7", "窗口")
        };
        builder.push(record("100", "王芳"), &["b3"]).expect("push");
        builder.push(record("99", "韩梅梅"), none).expect("push");
        builder.push(windowed, &["b3", "basement"]).expect("push");
        builder.push(record("100", "李雷"), none).expect("push");
        builder
            .push(record("", ""), none)
            .expect("an empty key is a key");
        let roster = builder.build();
        assert_eq!(roster.len(), 4);
        assert_eq!(roster.get("100").map(|r| r.first), Some("李雷"));
        let got = roster.get("7").expect("7");
        assert_eq!((got.valid_from, got.valid_to), (Some(0), Some(-5)));
        assert_eq!(got.set, [Box::from("b3"), Box::from("basement")]);
        assert!(roster.get("99").expect("99").set.is_empty());
        assert!(roster.contains(""));
        assert!(!roster.contains("8"));
        assert!(Roster::default().get("1").is_none());
        let keys: Vec<&str> = roster.iter().map(|r| r.key).collect();
        assert_eq!(keys, ["", "100", "7", "99"]);
    }

    #[test]
    fn roster_keeps_each_set_once_and_compares_by_content() {
        let numbers: Vec<String> = (0..1_000).map(|i| i.to_string()).collect();
        let build = |order: &mut dyn Iterator<Item = &String>| {
            let mut builder = RosterBuilder::with_capacity(1_000, 1_000 * 16);
            for n in order {
                let i: usize = n.parse().expect("number");
                let sets: [&[&str]; 3] = [&["b3"], &["b3", "basement"], &[]];
                let set = sets[i % 3];
                builder.push(record(n, "住户"), set).expect("push");
            }
            builder.build()
        };
        let roster = build(&mut numbers.iter());
        assert_eq!(roster.sets(), 3, "the empty set and two others");
        let (a, b) = (roster.get("3").expect("3"), roster.get("6").expect("6"));
        assert_eq!(a.set, [Box::from("b3")]);
        assert!(std::ptr::eq(a.set, b.set), "one copy of a set");
        let reversed = build(&mut numbers.iter().rev());
        assert_eq!(reversed, roster, "the same records in another order");
        let fewer = build(&mut numbers.iter().skip(1));
        assert_ne!(fewer, roster);
    }
}
