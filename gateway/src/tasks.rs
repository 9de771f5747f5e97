//! Owned background tasks: named, so that a shutdown that runs out of time
//! can say which ones were still running, and watched, so that a task that
//! ends while the gateway should be running is never a silent outage.
//!
//! [`CoreWatch`] is the watch. A *core* task (the pipeline, the listeners,
//! the uplink) must run as long as the gateway does: if it returns or
//! panics before [`CoreWatch::stopping`], a [`CoreFailure`] is reported and
//! the gateway stops (actuators to their safe state) and exits non-zero so
//! systemd starts it again. Any other owned task (a driver's supervisor, a
//! bus, a periodic job) may end on its own, but a panic in it is reported
//! the same way: it would otherwise leave a device or a job dead with
//! nothing said.
//!
//! [`Tasks`] owns a set of tasks; dropping it (a failed start that returns
//! early) aborts whatever is still running in it.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A task that ended while the gateway should have been running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreFailure {
    /// The task's name.
    pub task: String,
    /// How it ended (`stopped unexpectedly`, `panicked: …`, or what its
    /// owner reported).
    pub reason: String,
}

impl std::fmt::Display for CoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.task, self.reason)
    }
}

/// Reports tasks that end while they should be running. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CoreWatch {
    failed: mpsc::UnboundedSender<CoreFailure>,
    stopping: CancellationToken,
}

/// Which ends of a watched task are failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// Any end (core tasks).
    Any,
    /// Only a panic.
    Panic,
}

impl CoreWatch {
    /// A watch and the receiver of its failure reports.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<CoreFailure>) {
        let (failed, rx) = mpsc::unbounded_channel();
        let watch = Self {
            failed,
            stopping: CancellationToken::new(),
        };
        (watch, rx)
    }

    /// A watch whose reports nobody reads (tests and tools).
    pub fn detached() -> Self {
        Self::new().0
    }

    /// From now on tasks are expected to end: nothing more is reported.
    pub fn stopping(&self) {
        self.stopping.cancel();
    }

    /// Whether [`CoreWatch::stopping`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Reports a failure found by other means (e.g. a thread that ended).
    pub fn fail(&self, task: impl Into<String>, reason: impl Into<String>) {
        if !self.is_stopping() {
            let _ = self.failed.send(CoreFailure {
                task: task.into(),
                reason: reason.into(),
            });
        }
    }

    /// `future` as a core task: any end before [`CoreWatch::stopping`] is
    /// a failure.
    pub fn core<F>(&self, name: impl Into<String>, future: F) -> BoxFuture<'static, ()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.watched(name.into(), future, Ends::Any)
    }

    /// `future` as an owned task that may end on its own; a panic is a
    /// failure.
    pub fn owned<F>(&self, name: impl Into<String>, future: F) -> BoxFuture<'static, ()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.watched(name.into(), future, Ends::Panic)
    }

    fn watched<F>(&self, name: String, future: F, ends: Ends) -> BoxFuture<'static, ()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let watch = self.clone();
        async move {
            let reason = match AssertUnwindSafe(future).catch_unwind().await {
                Ok(()) if ends == Ends::Any => "stopped unexpectedly".to_owned(),
                Ok(()) => return,
                Err(panic) => {
                    let message = format!("panicked: {}", panic_message(panic.as_ref()));
                    if watch.is_stopping() {
                        tracing::error!(task = %name, reason = %message, "Task failed while stopping.");
                    }
                    message
                }
            };
            watch.fail(name, reason);
        }
        .boxed()
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// A set of named tasks; dropping it aborts those still running.
#[derive(Debug, Default)]
pub struct Tasks {
    tasks: Vec<(String, JoinHandle<()>)>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for (_, handle) in &self.tasks {
            handle.abort();
        }
    }
}

impl Tasks {
    /// Spawns `future` as a task called `name`.
    pub fn spawn<F>(&mut self, name: impl Into<String>, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push((name.into(), tokio::spawn(future)));
    }

    /// Spawns `future` as a core task called `name`, watched by `watch`
    /// ([`CoreWatch::core`]).
    pub fn spawn_core<F>(&mut self, watch: &CoreWatch, name: impl Into<String>, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        self.spawn(name.clone(), watch.core(name, future));
    }

    /// Spawns `future` as an owned task called `name`, watched by `watch`
    /// for panics ([`CoreWatch::owned`]).
    pub fn spawn_owned<F>(&mut self, watch: &CoreWatch, name: impl Into<String>, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        self.spawn(name.clone(), watch.owned(name, future));
    }

    /// Waits for every task, at most `timeout`. Returns the names of those
    /// still running then (they are aborted).
    pub async fn join_within(mut self, timeout: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut stragglers = Vec::new();
        for (name, mut handle) in std::mem::take(&mut self.tasks) {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) if error.is_panic() => {
                    tracing::error!(task = %name, "Task panicked.");
                }
                Ok(Err(_)) => {}
                Err(_) => {
                    handle.abort();
                    stragglers.push(name);
                }
            }
        }
        stragglers
    }

    /// How many tasks are in the set.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn join_within_names_the_tasks_that_outlive_the_budget() {
        let mut tasks = Tasks::default();
        tasks.spawn("quick", async {});
        tasks.spawn("stuck", std::future::pending());
        assert_eq!(tasks.len(), 2);
        let stragglers = tasks.join_within(Duration::from_secs(1)).await;
        assert_eq!(stragglers, vec!["stuck".to_owned()]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_core_task_that_ends_or_panics_is_reported_until_stopping() {
        let (watch, mut failures) = CoreWatch::new();
        let mut tasks = Tasks::default();
        tasks.spawn_core(&watch, "pipeline", async {});
        let failure = failures.recv().await.expect("reported");
        assert_eq!(failure.task, "pipeline");
        assert_eq!(failure.reason, "stopped unexpectedly");

        tasks.spawn_core(&watch, "uplink", async { panic!("forced failure") });
        let failure = failures.recv().await.expect("reported");
        assert_eq!(
            failure,
            CoreFailure {
                task: "uplink".into(),
                reason: "panicked: forced failure".into(),
            }
        );

        // An owned task may end; only its panic is a failure.
        tasks.spawn_owned(&watch, "bus", async {});
        tasks.spawn_owned(&watch, "job", async { panic!("job {}", 7) });
        let failure = failures.recv().await.expect("reported");
        assert_eq!(failure.task, "job");
        assert_eq!(failure.reason, "panicked: job 7");

        watch.stopping();
        tasks.spawn_core(&watch, "listener", async {});
        assert!(tasks.join_within(Duration::from_secs(1)).await.is_empty());
        assert!(
            failures.try_recv().is_err(),
            "nothing reported once stopping"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_set_aborts_its_tasks() {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let mut tasks = Tasks::default();
        tasks.spawn("holds a sender", async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(tasks);
        assert_eq!(rx.recv().await, None, "the task was aborted");
    }
}
