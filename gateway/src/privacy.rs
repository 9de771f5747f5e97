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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::config::{PlateDisclosure, PrivacyConfig, UplinkDisclosure};
use crate::events::{GatewayEvent, PrivacyPurge};
use crate::lanes::images::ImageStore;
use crate::lists::plates::PlateRegistry;
use crate::pipeline::{GATEWAY_DEVICE, PipelineHandle};
use crate::store::{Personal, Store, purge_personal};

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
}
