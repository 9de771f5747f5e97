//! Unit doors (单元门禁), the gateway side: the credentials the doors open
//! for and the coordinator that decides at each presentation.
//!
//! - [`credentials`]: cards, PINs, temporary codes and blocked cards in the
//!   database, the in-memory snapshot decisions read, card CSV import and
//!   export, and the platform sync hooks.
//! - [`sync`]: the door cards as a platform sync target.
//! - [`coordinator`]: the pipeline coordinator deciding at each presentation
//!   and opening the door on a grant.
//! - [`cli`]: `gatehouse cards …`.
//! - [`demo`]: the demo's residents' cards and scripted door.
//! - [`codes`]: keypad code rules and their argon2id hash.
//! - [`hardware`]: door drivers from configuration, on real or simulated
//!   GPIO lines ([`hardware::SimHardware`]).
//! - [`resume`]: where each WG controller's log was left (from the journal),
//!   so what it logged while the gateway was down is fetched as history.
//!
//! The decisions themselves are pure: [`crate::rules::door`].

pub mod cli;
pub mod codes;
pub mod coordinator;
pub mod credentials;
pub mod demo;
pub mod hardware;
pub mod resume;
pub mod sync;

use std::sync::Arc;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::Store;
use crate::vocab::records::ListError;
use coordinator::DoorCoordinator;
use credentials::CredentialStore;
use hardware::SimHardware;

/// How often a running gateway looks for credential changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(3);

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

    /// Reloads the credentials every few seconds when `gatehouse cards`
    /// (or anything else) changed them, until `cancel`.
    pub async fn watch(self, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let credentials = self.credentials.clone();
            match tokio::task::spawn_blocking(move || credentials.reload_if_changed()).await {
                Ok(Ok(true)) => tracing::info!("Door credentials changed; reloaded."),
                Ok(Ok(false)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "Door credentials could not be checked."),
                Err(error) => tracing::warn!(%error, "Door credentials check failed."),
            }
        }
    }

    /// The coordinator for the configured doors.
    pub fn coordinator(&self, config: &Config) -> DoorCoordinator {
        DoorCoordinator::for_config(self.credentials.clone(), config)
    }
}
