//! What a list snapshot holds on the heap, counted by allocator calls (not
//! RSS, which depends on the allocator's mood): a reload of the same
//! 10,000 cards or residents' vehicles gives an equal snapshot, the old one
//! is freed at the swap, and what it freed is a handful of blocks of under
//! 96 bytes a record — not a `String` per field and a `HashMap` slot per
//! record (then about 360 bytes and 6 blocks a record).
//!
//! The count is per thread: only what this test's thread frees while it
//! drops the old snapshot is counted, so tests and the store's writer
//! thread running alongside do not disturb it.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use gateway::doors::credentials::CredentialStore;
use gateway::lists::plates::{ListKind, PlateRegistry};
use gateway::store::{Store, StoreConfig};
use gateway::vocab::import::ImportMode;

/// The system allocator, counting what each thread frees.
struct Counting;

thread_local! {
    /// Blocks and bytes this thread freed.
    static FREED: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counter is a const-initialised thread-local `Cell` (no allocation, no
// destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = FREED.try_with(|f| {
            let (blocks, bytes) = f.get();
            f.set((blocks + 1, bytes + layout.size()));
        });
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Blocks and bytes this thread frees while it drops `value`.
fn freed_by_drop<T>(value: T) -> (usize, usize) {
    let before = FREED.with(Cell::get);
    drop(value);
    let after = FREED.with(Cell::get);
    (after.0 - before.0, after.1 - before.1)
}

const RECORDS: usize = 10_000;
/// A record's entry (40 bytes) and its text, with room to spare.
const BYTES_PER_RECORD: usize = 96;
/// The text, the entries, the sets and the snapshot's own box: not one per record.
const MAX_BLOCKS: usize = 32;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(StoreConfig::new(dir.path().join("g.db"))).expect("store");
    (dir, store)
}

fn cards_csv() -> String {
    let mut csv = String::from("number,holder,house,valid_from,valid_to,groups\n");
    let groups = ["b3", "b3;basement", "", "basement"];
    for i in 0..RECORDS {
        let window = if i % 5 == 0 {
            "2026-01-01,2030-12-31"
        } else {
            ","
        };
        csv += &format!(
            "{},住户{i},{}-{}-{:04},{window},{}\n",
            1_000_000_000u64 + i as u64 * 7,
            i % 20 + 1,
            i % 4 + 1,
            i % 3000,
            groups[i % groups.len()],
        );
    }
    csv
}

fn residents_csv() -> String {
    let mut csv = String::from("plate,house,owner,valid_from,valid_to,lanes\n");
    for i in 0..RECORDS {
        let lanes = ["", "south-in", "south-in;north-in"][i % 3];
        csv += &format!(
            "京A{i:05},{}-{}-{:04},车主{i},,,{lanes}\n",
            i % 20 + 1,
            i % 4 + 1,
            i % 3000,
        );
    }
    csv
}

#[test]
fn a_card_reload_frees_the_old_snapshot_and_it_held_a_few_blocks() {
    let (_dir, store) = store();
    let credentials = CredentialStore::open(&store)
        .expect("credentials")
        .with_known_groups(["b3".to_owned(), "basement".to_owned()]);
    let report = credentials
        .import_cards_csv(cards_csv().as_bytes(), ImportMode::AllOrNothing, |_| {})
        .expect("import");
    assert_eq!(report.written, RECORDS, "{:?}", report.rejected.first());
    let old = credentials.snapshot();
    let weak = Arc::downgrade(&old);
    credentials.reload().expect("reload");
    let new = credentials.snapshot();
    assert!(*new == *old, "the same list reloads to an equal snapshot");
    assert_eq!(new.cards.len(), RECORDS);
    assert_eq!(new.cards.group_sets(), 4, "each group set kept once");
    drop(new);
    let (blocks, bytes) = freed_by_drop(old);
    assert!(
        weak.upgrade().is_none(),
        "the swap let go of the old snapshot"
    );
    assert!(
        blocks <= MAX_BLOCKS,
        "{RECORDS} cards were held in {blocks} heap blocks"
    );
    assert!(
        bytes <= RECORDS * BYTES_PER_RECORD,
        "{RECORDS} cards held {bytes} bytes ({} a card)",
        bytes / RECORDS
    );
}

#[test]
fn a_vehicle_list_reload_frees_the_old_snapshot_and_it_held_a_few_blocks() {
    let (_dir, store) = store();
    let plates = PlateRegistry::open(&store).expect("plates");
    let report = plates
        .import_csv(
            ListKind::Residents,
            residents_csv().as_bytes(),
            ImportMode::AllOrNothing,
            |_| {},
        )
        .expect("import");
    assert_eq!(report.written, RECORDS, "{:?}", report.rejected.first());
    let old = plates.snapshot();
    let weak = Arc::downgrade(&old);
    plates.reload().expect("reload");
    let new = plates.snapshot();
    assert!(*new == *old, "the same lists reload to an equal snapshot");
    assert_eq!(new.residents.len(), RECORDS);
    drop(new);
    let (blocks, bytes) = freed_by_drop(old);
    assert!(
        weak.upgrade().is_none(),
        "the swap let go of the old snapshot"
    );
    assert!(
        blocks <= MAX_BLOCKS,
        "{RECORDS} vehicles were held in {blocks} heap blocks"
    );
    assert!(
        bytes <= RECORDS * BYTES_PER_RECORD,
        "{RECORDS} vehicles held {bytes} bytes ({} a vehicle)",
        bytes / RECORDS
    );
}
