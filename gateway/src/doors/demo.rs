//! The demo's unit door: seeds a few residents' cards (when there are no
//! cards yet) and runs a script on the simulated hardware of the door
//! `DEMO_DOOR`: a resident's card (grant, the door opens and closes), an
//! unknown card (deny), the door propped open (held-open alarm), the door
//! forced (forced-open alarm), over and over.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Doors;
use super::credentials::CredentialStore;
use super::hardware::{SimDoor, SimHardware};
use crate::rules::door::Card;

/// The demo's reader and door device ids (`config/demo.toml`).
pub const DEMO_READER: &str = "b3-u1-reader";
/// The demo door's hardware device id.
pub const DEMO_DOOR: &str = "b3-u1-door";

/// Residents' cards seeded into an empty demo database: (UID, holder, house).
pub const DEMO_CARDS: [(u32, &str, &str); 3] = [
    (3_054_391_123, "王芳", "3-1-1201"),
    (2_871_005_410, "李雷", "3-1-1202"),
    (1_190_347_702, "韩梅梅", "3-1-0801"),
];

/// A card nobody enrolled.
const UNKNOWN_UID: u32 = 4_000_123_456;

/// The running script; stops when dropped.
#[derive(Debug)]
pub struct DemoScript(JoinHandle<()>);

impl Drop for DemoScript {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Seeds the demo cards if needed and starts the script; `None` when the
/// configuration has no simulated demo door.
pub fn start(doors: &Doors) -> Option<DemoScript> {
    let door = doors.sim.door(DEMO_DOOR)?;
    doors.sim.wiegand(DEMO_READER)?;
    let credentials = doors.credentials.clone();
    let sim = doors.sim.clone();
    Some(DemoScript(tokio::spawn(async move {
        let seeded = tokio::task::spawn_blocking(move || seed(&credentials)).await;
        if !matches!(seeded, Ok(Ok(()))) {
            tracing::warn!("The demo cards could not be seeded.");
        }
        run(sim, door).await;
    })))
}

fn seed(credentials: &Arc<CredentialStore>) -> Result<(), crate::vocab::records::ListError> {
    if !credentials.snapshot().cards.is_empty() {
        return Ok(());
    }
    for (uid, holder, house) in DEMO_CARDS {
        credentials.upsert_card(&Card {
            number: uid.to_string(),
            holder: holder.into(),
            house: house.into(),
            valid_from: None,
            valid_to: None,
            groups: vec![],
        })?;
    }
    Ok(())
}

async fn pause(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

async fn run(sim: SimHardware, door: SimDoor) {
    let mut resident = DEMO_CARDS.iter().cycle();
    loop {
        // A resident comes home: card, door opens, closes behind them.
        if let Some((uid, _, _)) = resident.next() {
            sim.present_w34(DEMO_READER, *uid);
        }
        pause(1).await;
        door.contact.set_now(true);
        pause(3).await;
        door.contact.set_now(false);
        pause(4).await;
        // Somebody tries a card that is not enrolled.
        sim.present_w34(DEMO_READER, UNKNOWN_UID);
        pause(6).await;
        // A resident props the door open (held-open alarm after 15 s).
        if let Some((uid, _, _)) = resident.next() {
            sim.present_w34(DEMO_READER, *uid);
        }
        pause(1).await;
        door.contact.set_now(true);
        pause(20).await;
        door.contact.set_now(false);
        pause(8).await;
        // The door is forced: opened with no grant.
        door.contact.set_now(true);
        pause(4).await;
        door.contact.set_now(false);
        pause(10).await;
    }
}
