//! In-memory GPIO lines: the test double and the demo's simulated hardware.
//!
//! [`fake_input`] returns a line for the driver and a handle that injects
//! timestamped edges; [`fake_output`] returns a line and a handle that
//! reads (and awaits) its level and records every change.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Edge, GpioError, InputLine, OutputLine};

/// A fake input line (give it to a driver).
#[derive(Debug)]
pub struct FakeInput {
    edges: mpsc::UnboundedReceiver<Edge>,
    level: watch::Receiver<bool>,
}

/// Drives a [`FakeInput`]. Dropping every handle closes the line.
#[derive(Debug, Clone)]
pub struct FakeInputHandle {
    edges: mpsc::UnboundedSender<Edge>,
    level: Arc<watch::Sender<bool>>,
}

/// A fake input line at `level` and its handle.
pub fn fake_input(level: bool) -> (FakeInput, FakeInputHandle) {
    let (edge_tx, edge_rx) = mpsc::unbounded_channel();
    let (level_tx, level_rx) = watch::channel(level);
    (
        FakeInput {
            edges: edge_rx,
            level: level_rx,
        },
        FakeInputHandle {
            edges: edge_tx,
            level: Arc::new(level_tx),
        },
    )
}

impl FakeInputHandle {
    /// Drives the line to `level` at `timestamp`; an edge is queued only if
    /// the level changes. Returns whether it changed.
    pub fn set(&self, level: bool, timestamp: Duration) -> bool {
        let changed = self.level.send_if_modified(|current| {
            let changed = *current != level;
            *current = level;
            changed
        });
        if changed {
            // A closed receiver means the driver is gone; nothing to tell.
            let _ = self.edges.send(Edge {
                rising: level,
                timestamp,
            });
        }
        changed
    }

    /// Drives the line to `level`, stamped with [`monotonic_now`].
    pub fn set_now(&self, level: bool) -> bool {
        self.set(level, monotonic_now())
    }

    /// The line's current level.
    pub fn level(&self) -> bool {
        *self.level.borrow()
    }
}

/// Real monotonic time since the first call in this process (like the
/// kernel's edge timestamps, it does not follow paused tokio time).
pub fn monotonic_now() -> Duration {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(std::time::Instant::now).elapsed()
}

impl InputLine for FakeInput {
    async fn next_edge(&mut self) -> Result<Edge, GpioError> {
        self.edges.recv().await.ok_or(GpioError::Closed)
    }

    fn level(&self) -> Result<bool, GpioError> {
        Ok(*self.level.borrow())
    }
}

/// A fake output line (give it to a driver).
#[derive(Debug)]
pub struct FakeOutput {
    state: Arc<OutputState>,
}

/// Observes a [`FakeOutput`].
#[derive(Debug, Clone)]
pub struct FakeOutputHandle {
    state: Arc<OutputState>,
}

#[derive(Debug)]
struct OutputState {
    level: watch::Sender<bool>,
    history: Mutex<Vec<(Instant, bool)>>,
    fail: Mutex<bool>,
}

/// A fake output line, initially inactive, and its handle.
pub fn fake_output() -> (FakeOutput, FakeOutputHandle) {
    let state = Arc::new(OutputState {
        level: watch::channel(false).0,
        history: Mutex::new(Vec::new()),
        fail: Mutex::new(false),
    });
    (
        FakeOutput {
            state: state.clone(),
        },
        FakeOutputHandle { state },
    )
}

impl FakeOutputHandle {
    /// The line's current level.
    pub fn level(&self) -> bool {
        *self.state.level.borrow()
    }

    /// Every change so far, with the tokio time it happened.
    pub fn history(&self) -> Vec<(Instant, bool)> {
        self.state
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until the line is at `level`.
    pub async fn wait_for(&self, level: bool) {
        let mut rx = self.state.level.subscribe();
        // The sender lives in `self.state`, so this cannot fail.
        let _ = rx.wait_for(|l| *l == level).await;
    }

    /// Makes every following attempt to energise the line fail (a broken
    /// driver transistor); de-energising still works.
    pub fn fail_energise(&self, fail: bool) {
        *self
            .state
            .fail
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fail;
    }
}

impl OutputLine for FakeOutput {
    fn set(&mut self, active: bool) -> Result<(), GpioError> {
        if active
            && *self
                .state
                .fail
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(GpioError::Io("simulated output fault".into()));
        }
        let changed = self.state.level.send_if_modified(|l| {
            let changed = *l != active;
            *l = active;
            changed
        });
        if changed {
            self.state
                .history
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((Instant::now(), active));
        }
        Ok(())
    }
}
