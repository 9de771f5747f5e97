//! Property test: random appends (one at a time and in concurrent
//! submissions), reads, acks and reopens against an in-memory model of the
//! queue, with a small byte bound so the shedding policy is exercised. After
//! every step the store must agree with the model: contents, sequence
//! numbers, byte accounting and drop counters.

mod store_common;

use std::collections::BTreeMap;
use std::time::Duration;

use drivers::Class;
use gateway::store::{Seq, Store, StoreConfig, StoreError, TELEMETRY_HOLD_MAX};
use gateway::wire::Envelope;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use uuid::Uuid;

const MAX_BYTES: u64 = 2_000;
const RESERVE: u64 = 800;

#[derive(Debug, Clone)]
enum Op {
    /// One `append`.
    Append(Class, usize),
    /// Several `submit`s issued before any is awaited.
    Submit(Vec<Vec<(Class, usize)>>),
    /// `read_after(<a queued seq, or 0>, limit)`.
    Read(Option<Index>, usize),
    /// `ack(<a queued seq, or the last seq ever assigned>)`.
    Ack(Option<Index>),
    /// `ack_seqs` of some queued seqs and one that does not exist.
    AckSeqs(Vec<Index>),
    /// `close` and `open` again.
    Reopen,
}

fn class() -> impl Strategy<Value = Class> {
    prop::sample::select(Class::ALL.to_vec())
}

fn event() -> impl Strategy<Value = (Class, usize)> {
    (class(), 0usize..400)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => event().prop_map(|(c, n)| Op::Append(c, n)),
        3 => prop::collection::vec(prop::collection::vec(event(), 1..4), 1..5).prop_map(Op::Submit),
        2 => (prop::option::of(any::<Index>()), 1usize..6).prop_map(|(i, n)| Op::Read(i, n)),
        2 => prop::option::of(any::<Index>()).prop_map(Op::Ack),
        1 => prop::collection::vec(any::<Index>(), 0..4).prop_map(Op::AckSeqs),
        1 => Just(Op::Reopen),
    ]
}

/// What the queue should hold.
#[derive(Debug, Default)]
struct Model {
    events: BTreeMap<Seq, (Uuid, Class, u64)>,
    last_seq: Seq,
    dropped: [u64; 4],
}

impl Model {
    fn bytes(&self) -> u64 {
        self.events.values().map(|e| e.2).sum()
    }

    /// The documented policy, written out independently of the store's code.
    fn append(&mut self, id: Uuid, class: Class, size: u64) -> Result<Seq, Class> {
        let total = self.bytes();
        let ceiling = if class == Class::Telemetry {
            MAX_BYTES
        } else {
            MAX_BYTES + RESERVE
        };
        // Oldest telemetry goes first, until the newcomer fits under max_bytes.
        let mut freed = 0;
        let mut victims = Vec::new();
        for (seq, (_, c, s)) in &self.events {
            if total + size - freed <= MAX_BYTES {
                break;
            }
            if *c == Class::Telemetry {
                victims.push(*seq);
                freed += s;
            }
        }
        if total + size - freed > ceiling {
            self.dropped[class.index()] += 1;
            return Err(class);
        }
        for seq in &victims {
            self.events.remove(seq);
        }
        self.dropped[Class::Telemetry.index()] += victims.len() as u64;
        self.last_seq += 1;
        self.events.insert(self.last_seq, (id, class, size));
        Ok(self.last_seq)
    }

    /// A start skips [`TELEMETRY_HOLD_MAX`] numbers (those a crash could
    /// have lost with held telemetry are never given again).
    fn opened(&mut self) {
        self.last_seq += TELEMETRY_HOLD_MAX as Seq;
    }

    fn pick(&self, index: &Index) -> Option<Seq> {
        if self.events.is_empty() {
            return None;
        }
        self.events
            .keys()
            .nth(index.index(self.events.len()))
            .copied()
    }
}

fn config(dir: &tempfile::TempDir) -> StoreConfig {
    StoreConfig {
        max_bytes: MAX_BYTES,
        critical_reserve_bytes: RESERVE,
        group_commit_window: Duration::from_millis(1),
        ..StoreConfig::new(store_common::db_path(dir.path()))
    }
}

fn check_result(
    got: &Result<Seq, StoreError>,
    want: Result<Seq, Class>,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(g), Ok(w)) => prop_assert_eq!(*g, w),
        (Err(StoreError::Full { class }), Err(w)) => prop_assert_eq!(*class, w),
        (g, w) => prop_assert!(false, "store said {:?}, model {:?}", g, w),
    }
    Ok(())
}

async fn agree(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let stored = store.read_after(0, 1_000).await.expect("read all");
    let got: Vec<(Seq, Uuid, Class, u64)> = stored
        .iter()
        // Sizes are accounted with `seq = 0`, as the envelope was submitted.
        .map(|e| {
            (
                e.seq,
                e.id,
                e.class,
                Envelope {
                    seq: 0,
                    ..e.clone()
                }
                .encoded_len() as u64,
            )
        })
        .collect();
    let want: Vec<(Seq, Uuid, Class, u64)> = model
        .events
        .iter()
        .map(|(s, (id, c, size))| (*s, *id, *c, *size))
        .collect();
    prop_assert_eq!(got, want);
    let stats = store.stats();
    prop_assert_eq!(stats.depth, model.events.len() as u64);
    prop_assert_eq!(stats.bytes, model.bytes());
    prop_assert_eq!(stats.dropped, model.dropped);
    prop_assert!(stats.bytes <= MAX_BYTES + RESERVE);
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open(config(&dir)).expect("open");
    let mut model = Model::default();
    model.opened();
    for op in ops {
        match op {
            Op::Append(class, len) => {
                let e = store_common::envelope(class, len);
                let want = model.append(e.id, class, e.encoded_len() as u64);
                check_result(&store.append(e).await, want)?;
            }
            Op::Submit(groups) => {
                let mut tickets = Vec::new();
                for group in groups {
                    let events: Vec<_> = group
                        .iter()
                        .map(|(c, n)| store_common::envelope(*c, *n))
                        .collect();
                    let wants: Vec<_> = events
                        .iter()
                        .map(|e| model.append(e.id, e.class, e.encoded_len() as u64))
                        .collect();
                    tickets.push((store.submit(events), wants));
                }
                for (ticket, wants) in tickets {
                    let got = ticket.wait().await;
                    prop_assert_eq!(got.len(), wants.len());
                    for (g, w) in got.iter().zip(wants) {
                        check_result(g, w)?;
                    }
                }
            }
            Op::Read(index, limit) => {
                let after = index.and_then(|i| model.pick(&i)).unwrap_or(0);
                let got: Vec<Seq> = store
                    .read_after(after, limit)
                    .await
                    .expect("read")
                    .iter()
                    .map(|e| e.seq)
                    .collect();
                let want: Vec<Seq> = model
                    .events
                    .range(after + 1..)
                    .take(limit)
                    .map(|(s, _)| *s)
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::Ack(index) => {
                let upto = index.and_then(|i| model.pick(&i)).unwrap_or(model.last_seq);
                let want = model.events.range(..=upto).count() as u64;
                model.events.retain(|s, _| *s > upto);
                prop_assert_eq!(store.ack(upto).await.expect("ack"), want);
            }
            Op::AckSeqs(indexes) => {
                let mut seqs: Vec<Seq> = indexes.iter().filter_map(|i| model.pick(i)).collect();
                seqs.sort_unstable();
                seqs.dedup();
                let want = seqs.len() as u64;
                for s in &seqs {
                    model.events.remove(s);
                }
                seqs.push(model.last_seq + 1_000);
                prop_assert_eq!(store.ack_seqs(&seqs).await.expect("ack_seqs"), want);
            }
            Op::Reopen => {
                store.close().await.expect("close");
                drop(store);
                let (reopened, report) = Store::open(config(&dir)).expect("reopen");
                prop_assert_eq!(report.depth, model.events.len() as u64);
                prop_assert!(report.quarantined.is_none());
                store = reopened;
                model.opened();
                // Drop counters are per process run.
                model.dropped = [0; 4];
            }
        }
        agree(&store, &model).await?;
    }
    store.close().await.expect("close");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/store_model.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_agrees_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(run(ops))?;
    }
}
