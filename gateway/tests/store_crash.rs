//! Crash test: a child process appends concurrently (group commits) and
//! prints `ACK <seq> <id>` after each append returns; the parent SIGKILLs it
//! at a random moment, again and again over the same data directory, and
//! after each kill checks that every acknowledged event is stored exactly
//! once and that sequence numbers never went back.

mod store_common;

use std::collections::HashMap;

use rand::Rng;
use store_common::{read_all, run_child_and_kill, verify};

const CHILD_TEST: &str = "child_writer";
const ROUNDS: usize = 25;

/// The child's entry point: a no-op unless `GATEHOUSE_STORE_CHILD` is set.
#[test]
fn child_writer() {
    store_common::child_main_if_requested();
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked = HashMap::new();
    let mut high = 0;
    for round in 0..ROUNDS {
        let want = rand::rng().random_range(1..=400);
        let new = run_child_and_kill(CHILD_TEST, dir.path(), want);
        assert!(new.len() >= want, "round {round}: {} ACKs", new.len());
        for store_common::Ack { seq, id, .. } in new {
            assert!(
                seq > high,
                "round {round}: seq {seq} not above {high} from earlier runs"
            );
            assert!(
                acked.insert(id, seq).is_none(),
                "id {id} acknowledged twice"
            );
        }
        high = verify(&read_all(dir.path()), &acked);
    }
    assert!(acked.len() >= ROUNDS);
}
