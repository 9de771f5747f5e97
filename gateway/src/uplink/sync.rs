//! List sync: the protocol (pure) and the [`ListTarget`] trait the owners
//! of the lists (residents' vehicles, visitor passes, blacklist, cards, PIN
//! hashes, temporary codes) implement for their tables.
//!
//! The platform sends, on `…/sync/{list}`, signed messages of two types:
//!
//! - `snapshot`: `{ "list", "type": "snapshot", "version", "rows": [..] }`,
//!   the whole list at `version`;
//! - `delta`: `{ "list", "type": "delta", "from", "to", "upserts": [..],
//!   "deletes": ["key", ..] }`, the changes from version `from` to `to`.
//!
//! [`decide`] is the state machine, given the version held:
//!
//! | message | condition | decision |
//! | --- | --- | --- |
//! | snapshot | `version >= held` | apply |
//! | snapshot | `version < held` | ignore (stale) |
//! | delta | `to <= held` | ignore (already held) |
//! | delta | `from == held` | apply |
//! | delta | otherwise | version gap: request a full snapshot |
//!
//! A target applies each snapshot or delta in **one transaction**: a
//! malformed row or a failed write rolls everything back, so the previous
//! version stays in force (and decisions keep using it); the gateway then
//! asks for a full snapshot. After every message the gateway publishes the
//! versions it holds (retained, `…/sync-status`); requests go to
//! `…/sync-requests`.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::vocab::sync::{ListTarget, SyncError};

/// The lists the gateway syncs, by name. Cheap to clone.
#[derive(Clone, Default)]
pub struct ListRegistry {
    targets: Vec<Arc<dyn ListTarget>>,
}

impl std::fmt::Debug for ListRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.targets.iter().map(|t| t.name()))
            .finish()
    }
}

impl ListRegistry {
    /// Adds a list (a later one with the same name replaces it).
    pub fn with(mut self, target: Arc<dyn ListTarget>) -> Self {
        self.targets.retain(|t| t.name() != target.name());
        self.targets.push(target);
        self
    }

    /// The list called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn ListTarget>> {
        self.targets.iter().find(|t| t.name() == name).cloned()
    }

    /// Every list.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn ListTarget>> {
        self.targets.iter()
    }

    /// Whether no list is registered.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// A parsed sync message.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncMessage {
    /// The whole list.
    Snapshot {
        /// Its version.
        version: u64,
        /// Every row.
        rows: Vec<Value>,
    },
    /// Changes between two versions.
    Delta {
        /// The version the changes apply to.
        from: u64,
        /// The version after them.
        to: u64,
        /// Rows added or replaced.
        upserts: Vec<Value>,
        /// Keys removed.
        deletes: Vec<String>,
    },
}

fn field_u64(m: &Map<String, Value>, key: &str) -> Result<u64, String> {
    m.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("`{key}` must be a non-negative integer"))
}

fn field_array(m: &Map<String, Value>, key: &str) -> Result<Vec<Value>, String> {
    match m.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(format!("`{key}` must be an array")),
    }
}

/// Parses a (verified) sync message that arrived on `…/sync/{list}`.
pub fn parse(list: &str, m: &Map<String, Value>) -> Result<SyncMessage, String> {
    match m.get("list").and_then(Value::as_str) {
        Some(named) if named == list => {}
        Some(named) => {
            return Err(format!(
                "message for list {named:?} on the topic of {list:?}"
            ));
        }
        None => return Err("`list` is missing".into()),
    }
    match m.get("type").and_then(Value::as_str) {
        Some("snapshot") => {
            let rows = match m.get("rows") {
                Some(Value::Array(rows)) => rows.clone(),
                _ => return Err("`rows` must be an array".into()),
            };
            Ok(SyncMessage::Snapshot {
                version: field_u64(m, "version")?,
                rows,
            })
        }
        Some("delta") => {
            let from = field_u64(m, "from")?;
            let to = field_u64(m, "to")?;
            if to <= from {
                return Err(format!("`to` ({to}) must be greater than `from` ({from})"));
            }
            let deletes = field_array(m, "deletes")?
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err("`deletes` must hold strings".to_owned()),
                })
                .collect::<Result<_, _>>()?;
            Ok(SyncMessage::Delta {
                from,
                to,
                upserts: field_array(m, "upserts")?,
                deletes,
            })
        }
        Some(other) => Err(format!("unknown sync type {other:?}")),
        None => Err("`type` is missing".into()),
    }
}

/// What to do with a sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Apply the snapshot.
    ApplySnapshot,
    /// Apply the delta.
    ApplyDelta,
    /// Nothing to do (stale or already held); the reason says which.
    Ignore(String),
    /// A version gap: ask for a full snapshot.
    Resync(String),
}

/// The sync state machine (see the module docs).
pub fn decide(held: u64, message: &SyncMessage) -> Decision {
    match message {
        SyncMessage::Snapshot { version, .. } if *version >= held => Decision::ApplySnapshot,
        SyncMessage::Snapshot { version, .. } => Decision::Ignore(format!(
            "snapshot {version} is older than version {held} held"
        )),
        SyncMessage::Delta { to, .. } if *to <= held => {
            Decision::Ignore(format!("delta to {to} is already held (version {held})"))
        }
        SyncMessage::Delta { from, .. } if *from == held => Decision::ApplyDelta,
        SyncMessage::Delta { from, to, .. } => Decision::Resync(format!(
            "version gap: delta {from}->{to} but version {held} held"
        )),
    }
}

/// What handling one sync message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// `applied`, `ignored`, `gap` or `rejected`.
    pub status: &'static str,
    /// The version held afterwards.
    pub held: u64,
    /// Why, for anything but `applied`.
    pub detail: Option<String>,
    /// Whether to ask the platform for a full snapshot.
    pub resync: bool,
}

/// Decides and applies `message` to `target` (blocking: run it on the
/// blocking pool).
pub fn handle(target: &dyn ListTarget, message: SyncMessage) -> SyncOutcome {
    let held = match target.version() {
        Ok(v) => v,
        Err(error) => {
            return SyncOutcome {
                status: "rejected",
                held: 0,
                detail: Some(error.to_string()),
                resync: false,
            };
        }
    };
    let result = match (decide(held, &message), message) {
        (Decision::Ignore(why), _) => {
            return SyncOutcome {
                status: "ignored",
                held,
                detail: Some(why),
                resync: false,
            };
        }
        (Decision::Resync(why), _) => {
            return SyncOutcome {
                status: "gap",
                held,
                detail: Some(why),
                resync: true,
            };
        }
        (Decision::ApplySnapshot, SyncMessage::Snapshot { version, rows }) => {
            target.apply_snapshot(version, rows)
        }
        (
            Decision::ApplyDelta,
            SyncMessage::Delta {
                from,
                to,
                upserts,
                deletes,
            },
        ) => target.apply_delta(from, to, upserts, deletes),
        (decision, _) => Err(SyncError::Malformed(format!(
            "internal: decision {decision:?} does not fit the message"
        ))),
    };
    let now_held = target.version().unwrap_or(held);
    match result {
        Ok(()) => SyncOutcome {
            status: "applied",
            held: now_held,
            detail: None,
            resync: false,
        },
        Err(error) => SyncOutcome {
            status: "rejected",
            held: now_held,
            detail: Some(error.to_string()),
            resync: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test objects only"),
        }
    }

    #[test]
    fn snapshots_and_deltas_parse_and_bad_ones_are_refused() {
        let snap = parse(
            "plates",
            &msg(json!({"list": "plates", "type": "snapshot", "version": 3, "rows": [{"plate": "苏A1"}]})),
        )
        .expect("snapshot");
        assert_eq!(
            snap,
            SyncMessage::Snapshot {
                version: 3,
                rows: vec![json!({"plate": "苏A1"})]
            }
        );
        let delta = parse(
            "plates",
            &msg(
                json!({"list": "plates", "type": "delta", "from": 3, "to": 4, "deletes": ["苏A1"]}),
            ),
        )
        .expect("delta");
        assert_eq!(
            delta,
            SyncMessage::Delta {
                from: 3,
                to: 4,
                upserts: vec![],
                deletes: vec!["苏A1".into()]
            }
        );
        for bad in [
            json!({"list": "cards", "type": "snapshot", "version": 1, "rows": []}),
            json!({"list": "plates", "type": "snapshot", "version": -1, "rows": []}),
            json!({"list": "plates", "type": "snapshot", "version": 1}),
            json!({"list": "plates", "type": "delta", "from": 4, "to": 4}),
            json!({"list": "plates", "type": "delta", "from": 1, "to": 2, "deletes": [1]}),
            json!({"list": "plates", "type": "merge"}),
        ] {
            assert!(parse("plates", &msg(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_state_machine_applies_ignores_and_detects_gaps() {
        let snap = |version| SyncMessage::Snapshot {
            version,
            rows: vec![],
        };
        let delta = |from, to| SyncMessage::Delta {
            from,
            to,
            upserts: vec![],
            deletes: vec![],
        };
        assert_eq!(decide(0, &snap(1)), Decision::ApplySnapshot);
        assert_eq!(decide(5, &snap(5)), Decision::ApplySnapshot);
        assert!(matches!(decide(5, &snap(4)), Decision::Ignore(_)));
        assert_eq!(decide(5, &delta(5, 6)), Decision::ApplyDelta);
        assert!(matches!(decide(5, &delta(4, 5)), Decision::Ignore(_)));
        assert!(matches!(decide(5, &delta(6, 7)), Decision::Resync(_)));
        assert!(matches!(decide(5, &delta(3, 7)), Decision::Resync(_)));
    }
}
