//! End-to-end tests of the gateway, compiled into one test binary. Each
//! module names its subject.

mod browser;
mod cameras;
mod check_config;
mod demo;
mod disk;
mod doors;
mod doors_cli;
mod in_process;
mod intercom;
mod lanes;
mod lifecycle;
mod ops;
mod panel;
mod plates_cli;
mod privacy;
mod reload;
mod reload_devices;
mod uplink;
mod uplink_downlink;
mod uplink_https;
mod uplink_peers;

use std::path::Path;

use gateway::store::{Store, StoreConfig};
use gateway::wire::Envelope;

/// The gateway binary (`gateway::cli::main`, as `gatehouse`).
pub const GATEHOUSE: &str = env!("CARGO_BIN_EXE_gatehouse-e2e");

/// Opens the store of a stopped gateway and reads every queued event.
pub async fn read_all(data_dir: &Path) -> Vec<Envelope> {
    let (store, _report) =
        Store::open(StoreConfig::new(gatehouse_tests::database(data_dir))).expect("store opens");
    let events = store.read_after(0, 1_000_000).await.expect("read");
    store.close().await.expect("close");
    events
}

/// The value of the hidden form field `name` in a panel page ("" if none).
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).map_or(0, |i| i + marker.len());
    html[start..].split('"').next().unwrap_or("").to_owned()
}

/// A card read with `card` as its number (the marker the test follows).
pub fn card_read(card: &str, format: &str) -> drivers::DeviceEvent {
    drivers::DeviceEvent::CardRead {
        card: card.to_owned(),
        format: format.to_owned(),
        facility: None,
        door: None,
        controller: None,
    }
}

/// The number a [`card_read`] carried.
pub fn card_number(event: &Envelope) -> Option<u64> {
    event.body["card"].as_str()?.parse().ok()
}
