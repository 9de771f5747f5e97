//! Unit doors (单元门禁), the gateway side: the credentials the doors open
//! for and the coordinator that decides at each presentation.
//!
//! - [`credentials`]: cards, PINs, temporary codes and blocked cards in the
//!   database, the in-memory snapshot decisions read, card CSV import and
//!   export, and the platform sync hooks.
//! - [`coordinator`]: the pipeline coordinator deciding at each presentation
//!   and opening the door on a grant.
//! - [`codes`]: keypad code rules and their argon2id hash.
//! - [`hardware`]: door drivers from configuration, on real or simulated
//!   GPIO lines ([`hardware::SimHardware`]).
//!
//! The decisions themselves are pure: [`crate::rules::door`].

pub mod codes;
pub mod coordinator;
pub mod credentials;
pub mod hardware;

use std::sync::Arc;

use crate::config::{Config, DeviceKind};
use crate::lists::ListError;
use crate::store::Store;
use coordinator::DoorCoordinator;
use credentials::CredentialStore;
use hardware::SimHardware;

/// The running gateway's door side: the credentials (shared with the CLI
/// and the platform sync) and the simulated hardware, if any.
#[derive(Debug, Clone)]
pub struct Doors {
    /// Cards, codes and blocked cards, with their snapshot.
    pub credentials: Arc<CredentialStore>,
    /// The simulator ends of devices on `gpio = "sim"` lines.
    pub sim: SimHardware,
}

impl Doors {
    /// Opens the credentials (checked against the configured door groups).
    pub fn open(store: &Store, config: &Config, sim: SimHardware) -> Result<Self, ListError> {
        let groups = config.door_groups.iter().map(|g| g.id.clone());
        let credentials = CredentialStore::open(store)?.with_known_groups(groups);
        Ok(Self {
            credentials: Arc::new(credentials),
            sim,
        })
    }

    /// The coordinator for the configured doors.
    pub fn coordinator(&self, config: &Config) -> DoorCoordinator {
        let controllers: Vec<String> = config
            .devices
            .iter()
            .filter(|d| matches!(d.kind, DeviceKind::WgController(_)))
            .map(|d| d.id.clone())
            .collect();
        DoorCoordinator::new(
            self.credentials.clone(),
            &config.doors,
            &config.door_groups,
            &controllers,
        )
    }
}
