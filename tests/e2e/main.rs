//! End-to-end tests of the gateway, compiled into one test binary. Each
//! module names its subject.

mod check_config;
mod demo;
mod in_process;
mod lifecycle;

use std::path::Path;
use std::time::Duration;

use gateway::store::{Store, StoreConfig};
use gateway::wire::Envelope;

/// The gateway binary (`gateway::cli::main`, as `gatehouse`).
pub const GATEHOUSE: &str = env!("CARGO_BIN_EXE_gatehouse-e2e");

/// Opens the store of a stopped gateway and reads every queued event.
pub fn read_all(data_dir: &Path) -> Vec<Envelope> {
    let (store, _report) = Store::open(StoreConfig {
        path: gatehouse_tests::database(data_dir),
        max_bytes: 1 << 30,
        critical_reserve_bytes: 1 << 20,
        group_commit_window: Duration::from_millis(1),
    })
    .expect("store opens");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let events = store.read_after(0, 1_000_000).await.expect("read");
        store.close().await.expect("close");
        events
    })
}
