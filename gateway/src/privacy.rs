//! Personal information on the box (个人信息保护法): the daily purge of
//! what is past its `[privacy]` retention.
//!
//! Gatehouse keeps residents' and visitors' plates, names, house numbers,
//! card numbers, snapshots of faces and cars, and call logs. Once a day
//! ([`PURGE_EVERY`], the first a few minutes after start) [`purge`] deletes,
//! each by its own retention ([`PrivacyConfig`]): snapshot images; access
//! records in the journal (plate reads, door presentations, passages);
//! visitor passes that ended; intercom call logs; audit records. Rows go a
//! few hundred per transaction of the store's writer, so gates and doors
//! never wait behind a purge. Each purge is recorded as one
//! `privacy_purge` audit event with counts per kind of record (never whose
//! records). Alarms are kept by `[store] journal_days` (the writer's own
//! pruning) and the queue is never touched: what the platform has not
//! confirmed is never deleted here.
//!
//! An erasure on request ([`erase`]: `gatehouse privacy erase`, or an
//! administrator at the panel) removes one person — a plate, a card, or a
//! whole house — from the lists (residents' vehicles, visitor passes,
//! blacklist, vehicles inside, cards, blocked cards; for a house its PINs
//! and temporary codes too) and strips them from every recorded event that
//! names them (journal, queue, dead letters: identifiers masked
//! `苏A8***2`, names and house numbers removed,
//! [`crate::rules::erasure`]), deletes those events' snapshot images, then
//! has the writer free the freed pages and truncate the WAL
//! ([`Store::scrub`]); its writes run with `secure_delete` on
//! ([`Store::write_erasing`]), so the files keep no byte of the person. It
//! is recorded as one `privacy_erasure` audit event ([`erasure_record`])
//! with counts, the reason, who, the masked identifier and a keyed
//! one-way reference the platform can match — never the person.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rusqlite::OptionalExtension;
use serde_json::Value;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::config::{PlateDisclosure, PrivacyConfig, UplinkDisclosure};
use crate::events::{GatewayEvent, PrivacyErasure, PrivacyPurge};
use crate::lanes::images::ImageStore;
use crate::lists::plates::{PlateRegistry, bump_revision, canonical_plate};
use crate::pipeline::{GATEWAY_DEVICE, PipelineHandle};
use crate::rules::erasure::{Person, mask_card, mask_house, mask_plate, names, scrub};
use crate::store::{CHUNK_ROWS, Personal, Store, StoreError, purge_personal};

/// How often the purge runs.
pub const PURGE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The first purge after a start (the start itself is busy enough).
pub const FIRST_PURGE_AFTER: Duration = Duration::from_secs(300);

/// What the purge works on.
#[derive(Debug, Clone)]
pub struct Holdings {
    /// The database (journal).
    pub store: Store,
    /// The snapshot images.
    pub images: ImageStore,
    /// The vehicle lists (visitor passes).
    pub plates: Arc<PlateRegistry>,
}

/// Whole days of a retention.
fn days(retention: Duration) -> u64 {
    retention.as_secs() / 86_400
}

/// Unix ms of `now - retention`.
fn cutoff_ms(now: SystemTime, retention: Duration) -> i64 {
    let cutoff = now.checked_sub(retention).unwrap_or(UNIX_EPOCH);
    cutoff
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Deletes what is past its retention at `now`; returns the record of it.
/// A kind of record that fails is reported in `failed` and the others are
/// still purged. Blocks: run it on the blocking pool.
pub fn purge(holdings: &Holdings, privacy: &PrivacyConfig, now: SystemTime) -> PrivacyPurge {
    let mut deleted = BTreeMap::new();
    let mut failed = BTreeMap::new();
    let mut note = |name: &'static str, result: Result<u64, String>| match result {
        Ok(n) => {
            deleted.insert(name, n);
        }
        Err(why) => {
            deleted.insert(name, 0);
            failed.insert(name, why);
        }
    };
    note(
        "snapshots",
        holdings
            .images
            .purge_before(now.checked_sub(privacy.snapshots).unwrap_or(UNIX_EPOCH))
            .map_err(|e| e.to_string()),
    );
    for (name, what, retention) in [
        (
            "access_records",
            Personal::AccessRecords,
            privacy.access_records,
        ),
        ("call_logs", Personal::CallLogs, privacy.call_logs),
        ("audit", Personal::Audit, privacy.audit),
    ] {
        note(
            name,
            purge_personal(&holdings.store, what, cutoff_ms(now, retention))
                .map_err(|e| e.to_string()),
        );
    }
    note(
        "visitors",
        holdings
            .plates
            .purge_visitors_ended_before(cutoff_ms(now, privacy.visitors))
            .map_err(|e| e.to_string()),
    );
    let retention_days = BTreeMap::from([
        ("snapshots", days(privacy.snapshots)),
        ("access_records", days(privacy.access_records)),
        ("visitors", days(privacy.visitors)),
        ("call_logs", days(privacy.call_logs)),
        ("audit", days(privacy.audit)),
    ]);
    PrivacyPurge {
        deleted,
        retention_days,
        failed,
    }
}

/// Purges [`FIRST_PURGE_AFTER`] after start and every [`PURGE_EVERY`]
/// after that, recording each purge, until cancelled.
pub async fn run(
    holdings: Holdings,
    privacy: PrivacyConfig,
    pipeline: PipelineHandle,
    cancel: CancellationToken,
) {
    let mut wait = FIRST_PURGE_AFTER;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = PURGE_EVERY;
        let (h, p) = (holdings.clone(), privacy.clone());
        let Ok(record) =
            tokio::task::spawn_blocking(move || purge(&h, &p, SystemTime::now())).await
        else {
            continue;
        };
        let total: u64 = record.deleted.values().sum();
        if record.failed.is_empty() {
            tracing::info!(
                deleted = total,
                "Personal information past its retention was deleted."
            );
        } else {
            tracing::warn!(deleted = total, failed = ?record.failed, "The purge of personal information did not finish; the rest is tried again tomorrow.");
        }
        if let Err(error) = pipeline
            .record(GATEWAY_DEVICE, GatewayEvent::PrivacyPurge(record))
            .await
        {
            tracing::error!(%error, "The record of the personal-information purge was not stored.");
        }
    }
}

/// Who an erasure is about: one identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A vehicle: its list entries and every record of the plate.
    Plate(String),
    /// A door card: the card, its block, and every record of it.
    Card(String),
    /// A household: its residents' vehicles, cards, PINs, temporary codes
    /// and visitor passes, and every record of them or of the house.
    House(String),
}

impl Subject {
    /// A subject from a kind (`plate`, `card`, `house`) and what was typed;
    /// a plate is normalised (`苏a 8hk52` → `苏A8HK52`).
    pub fn parse(by: &str, value: &str) -> Result<Subject, ErasureError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(ErasureError::Invalid(format!("the {by} is empty")));
        }
        match by {
            "plate" => canonical_plate(value)
                .map(Subject::Plate)
                .map_err(|e| ErasureError::Invalid(e.to_string())),
            "card" => crate::rules::door::canonical_card(value)
                .map(Subject::Card)
                .ok_or_else(|| ErasureError::Invalid(format!("invalid card number {value:?}"))),
            "house" => Ok(Subject::House(value.to_owned())),
            other => Err(ErasureError::Invalid(format!(
                "unknown kind {other:?} (plate, card or house)"
            ))),
        }
    }

    /// `plate`, `card` or `house`.
    pub fn by(&self) -> &'static str {
        match self {
            Subject::Plate(_) => "plate",
            Subject::Card(_) => "card",
            Subject::House(_) => "house",
        }
    }

    fn value(&self) -> &str {
        match self {
            Subject::Plate(v) | Subject::Card(v) | Subject::House(v) => v,
        }
    }

    /// The identifier masked.
    pub fn masked(&self) -> String {
        match self {
            Subject::Plate(v) => mask_plate(v),
            Subject::Card(v) => mask_card(v),
            Subject::House(v) => mask_house(v),
        }
    }

    /// HMAC-SHA256 (hex) of `by:identifier` under `key`: a reference the
    /// platform, which holds the key, can compute for its own records, and
    /// nobody else can reverse by trying plates. `None` without a key.
    pub fn reference(&self, key: Option<&[u8]>) -> Option<String> {
        let key = key.filter(|k| !k.is_empty())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
        mac.update(format!("{}:{}", self.by(), self.value()).as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }
}

/// Why an erasure failed.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// What identifies the person is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The store refused.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
}

/// What an erasure did: counts only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// List entries deleted, by list.
    pub removed: BTreeMap<&'static str, u64>,
    /// Records stripped, by where, and snapshot images deleted.
    pub stripped: BTreeMap<&'static str, u64>,
    /// Whether the file and WAL were scrubbed at once.
    pub scrubbed: bool,
}

/// The tables of recorded events, each with its name in the record.
const RECORDED: [(&str, &str); 3] = [
    ("journal", "journal"),
    ("events", "queue"),
    ("uplink_dead_letters", "dead_letters"),
];

/// The lists' rows of the person deleted, in one writer transaction
/// (`secure_delete` on); returns who they were and what went.
fn remove_from_lists(
    tx: &rusqlite::Transaction<'_>,
    subject: &Subject,
) -> Result<(Person, BTreeMap<&'static str, u64>), ErasureError> {
    let mut person = Person::new();
    let (mut plates, mut cards) = (Vec::new(), Vec::new());
    let column = |sql: &str, value: &str| -> rusqlite::Result<Vec<String>> {
        let mut stmt = tx.prepare(sql)?;
        let rows = stmt.query_map([value], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    match subject {
        Subject::Plate(plate) => plates.push(plate.clone()),
        Subject::Card(card) => cards.push(card.clone()),
        Subject::House(house) => {
            person.identify(house, mask_house(house));
            plates = column(
                "SELECT plate FROM resident_vehicles WHERE house = ?1",
                house,
            )?;
            cards = column("SELECT number FROM door_cards WHERE house = ?1", house)?;
            for name in column("SELECT holder FROM door_pins WHERE house = ?1", house)?
                .into_iter()
                .chain(column(
                    "SELECT label FROM door_temp_codes WHERE house = ?1",
                    house,
                )?)
            {
                person.strip(&name);
            }
        }
    }
    for plate in &plates {
        person.identify(plate, mask_plate(plate));
        if let Some((owner, house)) = tx
            .query_row(
                "SELECT owner, house FROM resident_vehicles WHERE plate = ?1",
                [plate],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?
        {
            person.strip(&owner);
            person.strip(&house);
        }
    }
    for card in &cards {
        person.identify(card, mask_card(card));
        if let Some((holder, house)) = tx
            .query_row(
                "SELECT holder, house FROM door_cards WHERE number = ?1",
                [card],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?
        {
            person.strip(&holder);
            person.strip(&house);
        }
    }
    let mut removed = BTreeMap::new();
    let mut delete = |name: &'static str, sql: &str, values: &[String]| {
        let mut n = 0u64;
        for value in values {
            n += tx.execute(sql, [value])? as u64;
        }
        *removed.entry(name).or_insert(0) += n;
        Ok::<_, rusqlite::Error>(n)
    };
    let mut lists = 0;
    lists += delete(
        "residents",
        "DELETE FROM resident_vehicles WHERE plate = ?1",
        &plates,
    )?;
    lists += delete(
        "visitors",
        "DELETE FROM visitor_passes WHERE plate = ?1",
        &plates,
    )?;
    lists += delete(
        "blacklist",
        "DELETE FROM blacklist WHERE plate = ?1",
        &plates,
    )?;
    lists += delete(
        "inside",
        "DELETE FROM vehicles_inside WHERE plate = ?1",
        &plates,
    )?;
    let mut credentials = 0;
    credentials += delete("cards", "DELETE FROM door_cards WHERE number = ?1", &cards)?;
    credentials += delete(
        "blocked_cards",
        "DELETE FROM door_blocked WHERE number = ?1",
        &cards,
    )?;
    let house: Vec<String> = match subject {
        Subject::House(house) => vec![house.clone()],
        _ => Vec::new(),
    };
    lists += delete(
        "visitors",
        "DELETE FROM visitor_passes WHERE host_unit = ?1",
        &house,
    )?;
    credentials += delete("pins", "DELETE FROM door_pins WHERE house = ?1", &house)?;
    credentials += delete(
        "temp_codes",
        "DELETE FROM door_temp_codes WHERE house = ?1",
        &house,
    )?;
    if lists > 0 {
        bump_revision(tx)?;
    }
    if credentials > 0 {
        crate::doors::credentials::bump_changes(tx)?;
    }
    Ok((person, removed))
}

/// The rows of `table` that name the person: found by the identifiers'
/// text, kept when their body names the person as a whole
/// ([`crate::rules::erasure::names`]; card `42` is not in `1042`).
fn rows_naming(
    conn: &rusqlite::Connection,
    table: &str,
    person: &Person,
) -> rusqlite::Result<BTreeSet<i64>> {
    let mut rows = BTreeSet::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT rowid, payload FROM {table} WHERE instr(payload, ?1) > 0"
    ))?;
    for identifier in person.identifiers() {
        let found = stmt.query_map([identifier], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in found {
            let (rowid, payload) = row?;
            let named = match serde_json::from_str::<Value>(&payload) {
                Ok(event) => event.get("body").is_some_and(|b| names(b, person)),
                Err(_) => person.found_in(&payload),
            };
            if named {
                rows.insert(rowid);
            }
        }
    }
    Ok(rows)
}

/// The `camera_snapshot` rows of `table` taken of the events `seqs`.
fn snapshots_of(
    conn: &rusqlite::Connection,
    table: &str,
    seqs: &BTreeSet<i64>,
) -> rusqlite::Result<Vec<i64>> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT rowid, payload FROM {table} WHERE kind = 'camera_snapshot'"
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (rowid, payload) = row?;
        let of = serde_json::from_str::<Value>(&payload)
            .ok()
            .and_then(|v| v.pointer("/body/of_seq").and_then(Value::as_i64));
        if of.is_some_and(|of| seqs.contains(&of)) {
            out.push(rowid);
        }
    }
    Ok(out)
}

/// The snapshot images a recorded event names.
fn images_named(event: &Value, names: &mut Vec<String>) {
    let Some(body) = event.get("body") else {
        return;
    };
    for key in ["image", "snapshot"] {
        if let Some(name) = body.get(key).and_then(Value::as_str) {
            names.push(name.to_owned());
        }
    }
    if let Some(images) = body.get("images").and_then(Value::as_array) {
        names.extend(images.iter().filter_map(Value::as_str).map(str::to_owned));
    }
}

/// Strips the person from these rows of `table` (one writer transaction,
/// `secure_delete` on); returns how many changed and the images they name.
fn strip_rows(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    rows: &[i64],
    person: &Person,
) -> rusqlite::Result<(u64, Vec<String>)> {
    let mut changed = 0;
    let mut images = Vec::new();
    for rowid in rows {
        let Some(payload) = tx
            .query_row(
                &format!("SELECT payload FROM {table} WHERE rowid = ?1"),
                [rowid],
                |r| r.get::<_, String>(0),
            )
            .optional()?
        else {
            continue;
        };
        // Only the body: the envelope's own fields (id, device, kind) are
        // nobody's.
        let clean = match serde_json::from_str::<Value>(&payload) {
            Ok(mut event) => {
                images_named(&event, &mut images);
                let changed = event
                    .get_mut("body")
                    .is_some_and(|body| scrub(body, person));
                changed.then(|| event.to_string())
            }
            Err(_) if person.found_in(&payload) => person.scrub_text(&payload),
            Err(_) => None,
        };
        if let Some(clean) = clean {
            // `size` stays as it was: the writer's byte accounting of the
            // queue subtracts it when the event is acknowledged.
            tx.execute(
                &format!("UPDATE {table} SET payload = ?1 WHERE rowid = ?2"),
                rusqlite::params![clean, rowid],
            )?;
            changed += 1;
        }
    }
    Ok((changed, images))
}

/// Erases one person (see the module docs): the lists' entries, the
/// recorded events' personal fields, their snapshot images; then scrubs
/// the files. Every write goes through the store's writer, a few hundred
/// rows a transaction. Blocks: run it on the blocking pool.
pub fn erase(
    store: &Store,
    images: &ImageStore,
    subject: &Subject,
) -> Result<Erased, ErasureError> {
    let owned = subject.clone();
    let (person, removed) = store.write_erasing(move |tx| remove_from_lists(tx, &owned))?;
    let person = Arc::new(person);
    let mut stripped = BTreeMap::new();
    let mut names = Vec::new();
    let conn = store.connect()?;
    // The events naming the person, by seq (the journal and the queue
    // share the numbering): their snapshots go too.
    let mut seqs = BTreeSet::new();
    let mut found = Vec::new();
    for (table, name) in RECORDED {
        let rows = rows_naming(&conn, table, &person)?;
        seqs.extend(rows.iter().copied());
        found.push((table, name, rows));
    }
    for (table, name, rows) in found {
        let snapshots = snapshots_of(&conn, table, &seqs)?;
        let rows: Vec<i64> = rows
            .into_iter()
            .chain(snapshots)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut changed = 0;
        for chunk in rows.chunks(CHUNK_ROWS) {
            let (chunk, person) = (chunk.to_vec(), person.clone());
            let (n, named) = store.write_erasing(move |tx| {
                strip_rows(tx, table, &chunk, &person).map_err(ErasureError::from)
            })?;
            changed += n;
            names.extend(named);
        }
        stripped.insert(name, changed);
    }
    drop(conn);
    names.sort();
    names.dedup();
    stripped.insert("snapshots", images.remove(&names));
    let scrubbed = store.scrub()?;
    Ok(Erased {
        removed,
        stripped,
        scrubbed,
    })
}

/// What an erasure needs, kept together for the panel: the store, the
/// snapshot images and the key references are made with. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Eraser {
    /// The database.
    pub store: Store,
    /// The snapshot images.
    pub images: ImageStore,
    /// `[uplink] command_key`, for the reference the platform matches.
    pub key: Option<crate::config::Secret>,
}

impl Eraser {
    /// Erases `subject` ([`erase`]) and returns its record. Blocks: run it
    /// on the blocking pool.
    pub fn erase(&self, subject: &Subject, by: ErasedBy) -> Result<PrivacyErasure, ErasureError> {
        let erased = erase(&self.store, &self.images, subject)?;
        let key = self.key.as_ref().map(|k| k.expose().as_bytes());
        Ok(erasure_record(subject, erased, by, key))
    }
}

/// Who erased, through what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedBy {
    /// The panel user, or `cli`.
    pub actor: String,
    /// `panel` or `cli`.
    pub via: &'static str,
    /// The panel user's address.
    pub remote: Option<String>,
    /// Why.
    pub reason: String,
}

/// The `privacy_erasure` audit record of an erasure: no personal
/// information, only the masked identifier, a reference keyed by
/// `[uplink] command_key` (`key`), counts, the reason and who.
pub fn erasure_record(
    subject: &Subject,
    erased: Erased,
    by: ErasedBy,
    key: Option<&[u8]>,
) -> PrivacyErasure {
    PrivacyErasure {
        by: subject.by(),
        masked: subject.masked(),
        reference: subject.reference(key),
        reason: by.reason,
        actor: by.actor,
        via: by.via,
        remote: by.remote,
        removed: erased.removed,
        stripped: erased.stripped,
        scrubbed: erased.scrubbed,
    }
}

/// One line of the processing record: a kind of personal information the
/// gateway holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holding {
    /// What it is (stable name).
    pub record: &'static str,
    /// Its personal fields.
    pub fields: &'static str,
    /// How many are held.
    pub count: u64,
    /// When the oldest was recorded (Unix ms), where that is known.
    pub oldest_ms: Option<i64>,
    /// How long it is kept.
    pub kept: String,
    /// Where it goes beyond the box.
    pub sent_to: String,
}

/// The processing record (`gatehouse privacy report`): what personal
/// information the gateway holds, how much, since when, for how long, and
/// where it is sent. Reads only. Blocks: run it on the blocking pool.
pub fn report(
    conn: &rusqlite::Connection,
    images_dir: &std::path::Path,
    privacy: &PrivacyConfig,
    platform: &str,
) -> rusqlite::Result<Vec<Holding>> {
    let count_oldest = |sql: &str| -> rusqlite::Result<(u64, Option<i64>)> {
        conn.query_row(sql, [], |r| {
            Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?))
        })
    };
    let kept = |d: Duration| format!("{} days", days(d));
    let as_events = format!(
        "each event, when it happens ({}): {platform}",
        withheld(privacy.uplink)
    );
    let (residents, _) = count_oldest("SELECT count(*), NULL FROM resident_vehicles")?;
    let (visitors, visitors_oldest) =
        count_oldest("SELECT count(*), min(valid_to) FROM visitor_passes")?;
    let (blacklist, _) = count_oldest("SELECT count(*), NULL FROM blacklist")?;
    let (cards, _) = count_oldest("SELECT count(*), NULL FROM door_cards")?;
    let (access, access_oldest) = count_oldest(
        "SELECT count(*), min(time_ms) FROM journal WHERE class = 0 AND kind NOT IN
             ('call_started', 'call_answered', 'call_ended', 'call_missed', 'station_unlock')",
    )?;
    let (calls, calls_oldest) = count_oldest(
        "SELECT count(*), min(time_ms) FROM journal WHERE kind IN
             ('call_started', 'call_answered', 'call_ended', 'call_missed', 'station_unlock')",
    )?;
    let (audit, audit_oldest) =
        count_oldest("SELECT count(*), min(time_ms) FROM journal WHERE class = 2")?;
    let (queued, queued_oldest) =
        count_oldest("SELECT count(*), min(time_ms) FROM events WHERE class <> 3")?;
    let (images, images_oldest) = snapshot_files(images_dir);
    let from_platform = "no: the platform sends this list (or a manager keeps it here)";
    Ok(vec![
        Holding {
            record: "residents_vehicles",
            fields: "plate, house, owner's name, validity, lanes",
            count: residents,
            oldest_ms: None,
            kept: "until removed".into(),
            sent_to: from_platform.into(),
        },
        Holding {
            record: "visitor_passes",
            fields: "plate, host's house, validity",
            count: visitors,
            oldest_ms: visitors_oldest,
            kept: format!("{} after the pass ends", kept(privacy.visitors)),
            sent_to: from_platform.into(),
        },
        Holding {
            record: "blacklist",
            fields: "plate, reason",
            count: blacklist,
            oldest_ms: None,
            kept: "until removed".into(),
            sent_to: from_platform.into(),
        },
        Holding {
            record: "door_cards",
            fields: "card number, holder's name, house, validity",
            count: cards,
            oldest_ms: None,
            kept: "until removed".into(),
            sent_to: from_platform.into(),
        },
        Holding {
            record: "access_records",
            fields: "plate or card number, holder, place, time, decision",
            count: access,
            oldest_ms: access_oldest,
            kept: kept(privacy.access_records),
            sent_to: as_events.clone(),
        },
        Holding {
            record: "call_logs",
            fields: "called flat, time, who answered, unlocks",
            count: calls,
            oldest_ms: calls_oldest,
            kept: kept(privacy.call_logs),
            sent_to: as_events.clone(),
        },
        Holding {
            record: "audit",
            fields: "user names, addresses, what they did",
            count: audit,
            oldest_ms: audit_oldest,
            kept: kept(privacy.audit),
            sent_to: as_events,
        },
        Holding {
            record: "snapshots",
            fields: "images of vehicles and faces",
            count: images,
            oldest_ms: images_oldest,
            kept: kept(privacy.snapshots),
            sent_to: format!(
                "the image's name in its event; the image itself only when the platform asks for it (GET /api/v1/images/{{name}}): {platform}"
            ),
        },
        Holding {
            record: "queue",
            fields: "events above, not yet confirmed by the platform",
            count: queued,
            oldest_ms: queued_oldest,
            kept: "until the platform confirms them".into(),
            sent_to: platform.into(),
        },
    ])
}

/// What the uplink holds back of each event, in words.
fn withheld(uplink: UplinkDisclosure) -> String {
    let held: Vec<&str> = [
        (!uplink.names).then_some("names"),
        (!uplink.houses).then_some("house numbers"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut words = if held.is_empty() {
        "names and house numbers included".to_owned()
    } else {
        format!("without {}", held.join(" or "))
    };
    if uplink.plates == PlateDisclosure::Masked {
        words.push_str(", plates masked");
    }
    words
}

/// How many snapshot images there are, and the oldest one's time.
fn snapshot_files(dir: &std::path::Path) -> (u64, Option<i64>) {
    let mut count = 0;
    let mut oldest: Option<SystemTime> = None;
    let days = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for day in days.filter(|d| d.file_type().is_ok_and(|t| t.is_dir())) {
        for file in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(meta) = file.metadata() else { continue };
            if meta.is_file() {
                count += 1;
                if let Ok(modified) = meta.modified() {
                    oldest = Some(oldest.map_or(modified, |o| o.min(modified)));
                }
            }
        }
    }
    let oldest_ms = oldest.map(|t| cutoff_ms(t, Duration::ZERO));
    (count, oldest_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Kind;
    use crate::lists::plates::NewVisitorPass;
    use crate::metrics::Metrics;
    use crate::pipeline::Stamper;
    use crate::store::{CALL_LOG_KINDS, Journal, JournalQuery, StoreConfig};
    use drivers::Class;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn call_log_kinds_are_the_intercoms_access_kinds() {
        let calls = [
            Kind::CallStarted,
            Kind::CallAnswered,
            Kind::CallEnded,
            Kind::CallMissed,
            Kind::StationUnlock,
        ];
        assert_eq!(calls.map(Kind::as_str), CALL_LOG_KINDS);
        assert!(calls.iter().all(|k| k.class() == Class::Access));
        assert_eq!((Class::Access.index(), Class::Audit.index()), (0, 2));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn each_kind_of_record_goes_by_its_own_retention_and_the_purge_is_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) =
            Store::open(StoreConfig::new(dir.path().join("gatehouse.db"))).expect("store");
        let images = ImageStore::open(dir.path().join("images"), 1 << 20, Arc::new(Metrics::new()))
            .expect("images");
        let plates = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || PlateRegistry::open(&store))
                .await
                .expect("join")
                .expect("plates")
        };
        let plates = Arc::new(plates);
        let now = SystemTime::now();
        let now_ms = cutoff_ms(now, Duration::ZERO);
        let ago = |days: i64| now_ms - days * DAY_MS;

        // Journal: records at ages around each retention (defaults: access
        // 90 d, calls 30 d, audit 365 d; alarms are not this purge's).
        let stamper = Stamper::new("e", "g");
        let mut events = Vec::new();
        for (kind, age) in [
            (Kind::PlateRead, 91),
            (Kind::PlateRead, 89),
            (Kind::CardRead, 120),
            (Kind::CallStarted, 31),
            (Kind::CallMissed, 29),
            (Kind::UserLogin, 366),
            (Kind::UserLogin, 364),
            (Kind::DoorAlarm, 50),
        ] {
            let mut e = stamper.stamp("dev-1", kind, serde_json::json!({}), None);
            e.time_ms = ago(age);
            events.push(e);
        }
        for result in store.submit(events).wait().await {
            result.expect("append");
        }
        // Snapshots: one 31 days old, one new.
        let (names, saving) = images.save_later(vec![
            drivers::lpr::Image {
                kind: drivers::lpr::ImageKind::Full,
                bytes: vec![1; 10],
                content_type: "image/jpeg",
            },
            drivers::lpr::Image {
                kind: drivers::lpr::ImageKind::Full,
                bytes: vec![2; 10],
                content_type: "image/jpeg",
            },
        ]);
        assert_eq!(saving.await.expect("saved"), names);
        let old_image = images.resolve(&names[0]).expect("path");
        std::fs::File::options()
            .write(true)
            .open(&old_image)
            .and_then(|f| f.set_modified(now - Duration::from_secs(31 * 86_400)))
            .expect("age the image");
        // Visitors: a pass that ended 31 days ago, one that ended 29.
        for (plate, ended) in [("苏A11111", 31), ("苏A22222", 29)] {
            let plates = plates.clone();
            let pass = NewVisitorPass {
                plate: plate.into(),
                host_unit: "3-1201".into(),
                valid_from: ago(ended + 1),
                valid_to: ago(ended),
                single_use: false,
                created_by: "test".into(),
            };
            tokio::task::spawn_blocking(move || plates.add_visitor(&pass))
                .await
                .expect("join")
                .expect("visitor");
        }

        let holdings = Holdings {
            store: store.clone(),
            images: images.clone(),
            plates: plates.clone(),
        };
        let record = {
            let holdings = holdings.clone();
            tokio::task::spawn_blocking(move || purge(&holdings, &PrivacyConfig::default(), now))
                .await
                .expect("join")
        };
        assert!(record.failed.is_empty(), "{:?}", record.failed);
        assert_eq!(
            record.deleted,
            BTreeMap::from([
                ("snapshots", 1),
                ("access_records", 2),
                ("visitors", 1),
                ("call_logs", 1),
                ("audit", 1),
            ])
        );
        assert_eq!(record.retention_days["audit"], 365);
        assert!(!old_image.exists());
        assert!(images.resolve(&names[1]).expect("path").exists());
        let journal = Journal::new(&store).expect("journal");
        let mut left: Vec<(String, i64)> = journal
            .query(JournalQuery {
                limit: 100,
                ..JournalQuery::default()
            })
            .await
            .expect("query")
            .iter()
            .map(|e| (e.kind.clone(), (now_ms - e.time_ms) / DAY_MS))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ("call_missed".to_owned(), 29),
                ("door_alarm".to_owned(), 50),
                ("plate_read".to_owned(), 89),
                ("user_login".to_owned(), 364),
            ]
        );
        let visitors: Vec<String> = {
            let plates = plates.clone();
            tokio::task::spawn_blocking(move || plates.visitor_passes())
                .await
                .expect("join")
                .expect("passes")
                .into_iter()
                .map(|p| p.plate)
                .collect()
        };
        assert_eq!(visitors, ["苏A22222"]);
        // Nothing more to purge: a second run deletes nothing.
        let again =
            tokio::task::spawn_blocking(move || purge(&holdings, &PrivacyConfig::default(), now))
                .await
                .expect("join");
        assert!(
            again.deleted.values().all(|n| *n == 0),
            "{:?}",
            again.deleted
        );

        // The processing record counts what is left; the queue (nothing was
        // confirmed: no platform) still holds every event.
        let conn = store.connect().expect("connect");
        let record = report(
            &conn,
            images.dir(),
            &PrivacyConfig::default(),
            "the platform over MQTT (mqtt.example:8883)",
        )
        .expect("report");
        let held = |name: &str| {
            let h = record.iter().find(|h| h.record == name).expect("a record");
            (h.count, h.kept.clone())
        };
        assert_eq!(held("access_records"), (1, "90 days".to_owned()));
        assert_eq!(held("call_logs"), (1, "30 days".to_owned()));
        assert_eq!(held("audit"), (1, "365 days".to_owned()));
        assert_eq!(held("snapshots").0, 1);
        assert_eq!(held("visitor_passes").0, 1);
        assert_eq!(held("queue").0, 8, "the purge never touches the queue");
        let snapshots = record
            .iter()
            .find(|h| h.record == "snapshots")
            .expect("snapshots");
        assert!(snapshots.sent_to.contains("mqtt.example"), "{snapshots:?}");
        let access = record
            .iter()
            .find(|h| h.record == "access_records")
            .expect("access records");
        assert!(
            access.sent_to.contains("without names or house numbers"),
            "{access:?}"
        );
        drop(conn);
        store.close().await.expect("close");
    }

    /// Whether `needle` is anywhere in the database's files (WAL included).
    fn on_disk(db: &std::path::Path, needle: &str) -> bool {
        let mut files = vec![db.to_path_buf()];
        files.push(db.with_extension("db-wal"));
        files.iter().any(|p| {
            std::fs::read(p)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
    }

    fn image(byte: u8) -> drivers::lpr::Image {
        drivers::lpr::Image {
            kind: drivers::lpr::ImageKind::Full,
            bytes: vec![byte; 64],
            content_type: "image/jpeg",
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_erased_person_leaves_no_byte_in_the_database_files_and_no_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("gatehouse.db");
        // The integrity check (a reader) does not run in the middle of it.
        let config = StoreConfig {
            check_after: Duration::from_secs(3600),
            ..StoreConfig::new(&db)
        };
        let (store, _) = Store::open(config).expect("store");
        let images = ImageStore::open(dir.path().join("images"), 1 << 20, Arc::new(Metrics::new()))
            .expect("images");
        let plates = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || PlateRegistry::open(&store))
                .await
                .expect("join")
                .expect("plates")
        };
        let plates = Arc::new(plates);
        let (plate, owner, house) = ("苏A8HK52", "张小明", "7-2-1701");
        let (other_plate, other_owner) = ("苏B99999", "李四");
        {
            let plates = plates.clone();
            tokio::task::spawn_blocking(move || {
                for (plate, owner, house) in
                    [(plate, owner, house), (other_plate, other_owner, "8-1-101")]
                {
                    plates.upsert_resident(&crate::rules::vehicle::Resident {
                        plate: plate.into(),
                        house: house.into(),
                        owner: owner.into(),
                        valid_from: None,
                        valid_to: None,
                        lanes: Vec::new(),
                    })?;
                }
                plates.add_visitor(&NewVisitorPass {
                    plate: plate.into(),
                    host_unit: "9-9-909".into(),
                    valid_from: 0,
                    valid_to: i64::MAX / 2,
                    single_use: false,
                    created_by: "test".into(),
                })?;
                plates.upsert_blacklist(&crate::rules::vehicle::Blacklisted {
                    plate: plate.into(),
                    reason: "fee dispute".into(),
                })
            })
            .await
            .expect("join")
            .expect("lists");
        }
        // Events: reads with snapshots, a snapshot of a read, audit records
        // naming the owner, and a long one (overflow pages).
        let (read_images, saving) = images.save_later(vec![image(1), image(2)]);
        assert_eq!(saving.await.expect("saved"), read_images);
        let (other_images, saving) = images.save_later(vec![image(3)]);
        assert_eq!(saving.await.expect("saved"), other_images);
        let stamper = Stamper::new("e", "g");
        let read = stamper.stamp(
            "cam-1",
            Kind::PlateRead,
            serde_json::json!({"plate": plate, "images": [read_images[0]], "owner": owner, "house": house}),
            None,
        );
        let long = stamper.stamp(
            "gateway",
            Kind::ResidentSaved,
            serde_json::json!({"actor": "admin", "target": plate,
                "detail": format!("{owner} {house} {}", "x".repeat(20_000))}),
            None,
        );
        let other = stamper.stamp(
            "cam-1",
            Kind::PlateRead,
            serde_json::json!({"plate": other_plate, "images": [other_images[0]], "owner": other_owner}),
            None,
        );
        let seqs: Vec<u64> = store
            .submit(vec![read, long, other])
            .wait()
            .await
            .into_iter()
            .map(|r| r.expect("append"))
            .collect();
        let snapshot = stamper.stamp(
            "dome-1",
            Kind::CameraSnapshot,
            serde_json::json!({"image": read_images[1], "of_seq": seqs[0], "of_id": "x", "place": "south"}),
            None,
        );
        store.append(snapshot).await.expect("append");
        // The platform confirmed the long one: deleted from the queue
        // before the erasure (its pages freed), kept in the journal.
        assert_eq!(store.ack_seqs(&[seqs[1]]).await.expect("ack"), 1);
        store.commit_acks().await.expect("commit");
        let checkpointed = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.scrub())
                .await
                .expect("join")
        };
        checkpointed.expect("scrub");
        for held in [plate, owner, house] {
            assert!(on_disk(&db, held), "{held} is on disk before the erasure");
        }

        let erased = {
            let (store, images) = (store.clone(), images.clone());
            tokio::task::spawn_blocking(move || {
                erase(
                    &store,
                    &images,
                    &Subject::parse("plate", " 苏a8hk52 ").expect("subject"),
                )
            })
            .await
            .expect("join")
            .expect("erase")
        };
        assert!(erased.scrubbed, "nothing held the checkpoint back");
        assert_eq!(erased.removed["residents"], 1);
        assert_eq!(erased.removed["visitors"], 1);
        assert_eq!(erased.removed["blacklist"], 1);
        assert_eq!(erased.stripped["journal"], 2, "{:?}", erased.stripped);
        assert_eq!(erased.stripped["queue"], 1, "{:?}", erased.stripped);
        assert_eq!(erased.stripped["snapshots"], 2);
        for gone in [plate, owner, house] {
            assert!(!on_disk(&db, gone), "{gone} is still in the database files");
        }
        assert!(
            on_disk(&db, other_plate) && on_disk(&db, other_owner),
            "nobody else is erased"
        );
        for name in &read_images {
            assert!(!images.resolve(name).expect("path").exists(), "{name}");
        }
        let kept = images.resolve(&other_images[0]).expect("path");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&kept).expect("kept").permissions(),
        );
        assert_eq!(
            mode & 0o777,
            0o600,
            "snapshots are the service user's alone"
        );
        // The history keeps the events, masked.
        let journal = Journal::new(&store).expect("journal");
        let kept = journal
            .query(JournalQuery {
                limit: 10,
                kind: Some("plate_read".into()),
                ..JournalQuery::default()
            })
            .await
            .expect("query");
        let masked: Vec<&str> = kept
            .iter()
            .filter_map(|e| e.body["plate"].as_str())
            .collect();
        assert_eq!(masked, [other_plate, "苏A8***2"]);
        // The lists in memory follow (the revision was bumped).
        let refreshed = {
            let plates = plates.clone();
            tokio::task::spawn_blocking(move || plates.refresh_if_changed())
                .await
                .expect("join")
        };
        assert!(refreshed.expect("refresh"));
        // The record holds none of it.
        let record = erasure_record(
            &Subject::Plate(plate.into()),
            erased,
            ErasedBy {
                actor: "admin".into(),
                via: "cli",
                remote: None,
                reason: "resident asked".into(),
            },
            Some(b"key"),
        );
        let text =
            serde_json::to_string(&GatewayEvent::PrivacyErasure(record.clone())).expect("json");
        for gone in [plate, owner, house] {
            assert!(!text.contains(gone), "{text}");
        }
        assert_eq!(record.masked, "苏A8***2");
        assert_eq!(record.reference.as_ref().map(String::len), Some(64));
        assert_ne!(
            record.reference,
            Subject::Plate(plate.into()).reference(Some(b"other"))
        );
        drop(journal);
        drop(plates);
        store.close().await.expect("close");
    }

    #[test]
    fn an_unusable_identifier_is_refused_with_why() {
        for (by, value) in [
            ("plate", ""),
            ("plate", "not a plate"),
            ("card", "12 34"),
            ("name", "x"),
        ] {
            let err = Subject::parse(by, value).expect_err(value);
            assert!(matches!(err, ErasureError::Invalid(_)), "{err}");
        }
        assert_eq!(
            Subject::parse("house", " 3-1-1201 ").expect("house"),
            Subject::House("3-1-1201".into())
        );
    }
}
