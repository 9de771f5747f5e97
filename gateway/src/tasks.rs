//! Named background tasks, so that a shutdown that runs out of time can say
//! which ones were still running.

use std::time::Duration;

use tokio::task::JoinHandle;

/// A set of named tasks.
#[derive(Debug, Default)]
pub struct Tasks {
    tasks: Vec<(String, JoinHandle<()>)>,
}

impl Tasks {
    /// Spawns `future` as a task called `name`.
    pub fn spawn<F>(&mut self, name: impl Into<String>, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push((name.into(), tokio::spawn(future)));
    }

    /// Waits for every task, at most `timeout`. Returns the names of those
    /// still running then (they are aborted).
    pub async fn join_within(self, timeout: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut stragglers = Vec::new();
        for (name, mut handle) in self.tasks {
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
}
