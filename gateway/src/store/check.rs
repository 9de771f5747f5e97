//! The store's integrity check, run after start instead of before it.
//!
//! `PRAGMA quick_check` reads every page: with a million events queued that
//! is seconds on an SD card, too long to hold the gates' start. So the store
//! opens without it and a thread of its own ([`Checker`]) runs it on a
//! read connection beside the writer (WAL lets both run), once the start is
//! over (`check_after`, 10 s by default). Damage it finds,
//! or that the writer meets (`SQLITE_CORRUPT`), is published as
//! [`Integrity::Damaged`] and leaves a marker file beside the database
//! (`gatehouse.db.check`); the gateway treats it as a core failure and exits
//! so systemd restarts it, and the next open sees the marker, runs the check
//! before anything else and quarantines and salvages the file
//! ([`super::quarantine`], [`super::salvage`]). A file too damaged to open
//! is quarantined at open as before.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::InterruptHandle;
use tokio::sync::watch;

use super::schema;

/// What the background check has found so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// Still reading (or not started).
    Checking,
    /// Every page read back consistent.
    Ok,
    /// Damage: the database needs a restart to be salvaged.
    Damaged(String),
    /// The check could not run to the end (the store closed, or an error
    /// that is not damage); nothing is known.
    Unknown(String),
}

/// The marker that makes the next open check the file first.
pub(crate) fn marker(db: &Path) -> PathBuf {
    super::quarantine::with_suffix(db, ".check")
}

/// Publishes damage and leaves the marker for the next open.
#[derive(Debug)]
pub(crate) struct DamageReport {
    marker: PathBuf,
    state: watch::Sender<Integrity>,
}

impl DamageReport {
    pub(crate) fn new(db: &Path) -> Self {
        Self {
            marker: marker(db),
            state: watch::channel(Integrity::Checking).0,
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Integrity> {
        self.state.subscribe()
    }

    /// Records damage: the marker first (it must survive the restart),
    /// then the state. The first report wins.
    pub(crate) fn damaged(&self, reason: &str) {
        if matches!(*self.state.borrow(), Integrity::Damaged(_)) {
            return;
        }
        if let Err(error) = write_marker(&self.marker, reason) {
            tracing::error!(%error, marker = %self.marker.display(), "The damage marker could not be written.");
        }
        tracing::error!(
            reason,
            "The database is damaged; the gateway restarts to salvage it."
        );
        self.state
            .send_replace(Integrity::Damaged(reason.to_owned()));
    }

    /// The file was checked (or made fresh) at open.
    pub(crate) fn checked_at_open(&self) {
        self.finished(Integrity::Ok);
    }

    fn finished(&self, result: Integrity) {
        self.state.send_if_modified(|state| {
            if matches!(state, Integrity::Damaged(_)) {
                return false;
            }
            *state = result;
            true
        });
    }
}

fn write_marker(path: &Path, reason: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(reason.as_bytes())?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The running check: a thread with its own connection.
#[derive(Default)]
pub(crate) struct Checker {
    running: Mutex<Option<Running>>,
}

/// The check's thread and what stops it: the end of its wait, or an
/// interrupt of its query.
struct Running {
    wake: mpsc::Sender<()>,
    interrupt: InterruptHandle,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").finish_non_exhaustive()
    }
}

impl Checker {
    /// Starts `quick_check` of the database at `db` on a thread, `after`
    /// this long.
    pub(crate) fn start(
        db: &Path,
        after: Duration,
        report: std::sync::Arc<DamageReport>,
    ) -> std::io::Result<Self> {
        let conn = match schema::connect(db) {
            Ok(conn) => conn,
            Err(error) => {
                report.finished(Integrity::Unknown(error.to_string()));
                return Ok(Self::default());
            }
        };
        let interrupt = conn.get_interrupt_handle();
        let (wake, woken) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-check".into())
            .spawn(move || {
                if woken.recv_timeout(after) != Err(RecvTimeoutError::Timeout) {
                    report.finished(Integrity::Unknown("the store closed first".into()));
                    return;
                }
                let result = conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0));
                match result {
                    Ok(check) if check == "ok" => report.finished(Integrity::Ok),
                    Ok(check) => report.damaged(&format!("quick_check: {check}")),
                    Err(error) if schema::is_corruption(&error) => {
                        report.damaged(&format!("quick_check: {error}"));
                    }
                    Err(error) => report.finished(Integrity::Unknown(error.to_string())),
                }
            })?;
        Ok(Self {
            running: Mutex::new(Some(Running {
                wake,
                interrupt,
                thread,
            })),
        })
    }

    /// Interrupts a check still running and waits for its thread.
    pub(crate) fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            let _ = running.wake.send(());
            running.interrupt.interrupt();
            let _ = running.thread.join();
        }
    }
}
