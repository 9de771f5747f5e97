//! The systemd notification protocol (`Type=notify`): `READY=1` once the
//! gateway is ready, `STATUS=` lines an operator sees in `systemctl status`
//! (queue depth, devices up, platform link), `STOPPING=1` on shutdown, and
//! the watchdog.
//!
//! The watchdog proves more than a live process: [`watchdog`] sends
//! `WATCHDOG=1` only after a probe answered, and the gateway's probe is a
//! round trip through the pipeline's loop, so a wedged pipeline (a gate that
//! would no longer open) stops the pings and systemd restarts the service
//! (`WatchdogSec=` in the unit). Everything here is a no-op outside systemd
//! (no `NOTIFY_SOCKET`).

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Tells systemd the gateway is ready, with a first status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Replaces the status line.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Tells systemd the gateway is stopping (so a slow drain is not mistaken
/// for a hang).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

fn send(state: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(state) {
        tracing::warn!(%error, "Could not notify systemd.");
    }
}

/// Pings the watchdog every `interval / 2` for as long as `probe` answers
/// `true` within that time; a probe that fails or hangs skips the ping (and
/// logs once per failure streak), so systemd restarts a wedged gateway.
/// `ping` sends the notification (injectable for tests). Returns when
/// `stop` is cancelled.
pub async fn watchdog<P, F>(
    interval: Duration,
    mut probe: P,
    ping: impl Fn(),
    stop: CancellationToken,
) where
    P: FnMut() -> F,
    F: Future<Output = bool>,
{
    let period = interval / 2;
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let answered = tokio::time::timeout(period, probe()).await.unwrap_or(false);
        if answered {
            ping();
            failing = false;
        } else if !failing {
            failing = true;
            tracing::error!(
                "The pipeline did not answer the watchdog probe; systemd will restart the gateway if it stays wedged."
            );
        }
    }
}

/// How often the status line is refreshed.
pub const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Keeps systemd informed until `stop`: the status line every
/// [`STATUS_EVERY`], and, when the unit has `WatchdogSec=`, the
/// [`watchdog`] fed by `probe`.
pub async fn keep_informed<S, P, F>(status_line: S, probe: P, stop: CancellationToken)
where
    S: Fn() -> String,
    P: FnMut() -> F,
    F: Future<Output = bool>,
{
    let statuses = async {
        let mut ticker = tokio::time::interval(STATUS_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => status(&status_line()),
            }
        }
    };
    let pings = async {
        match watchdog_interval() {
            Some(interval) => watchdog(interval, probe, ping, stop.clone()).await,
            None => stop.cancelled().await,
        }
    };
    tokio::join!(statuses, pings);
}

/// Pings systemd's watchdog (`WATCHDOG=1`).
pub fn ping() {
    send(&[NotifyState::Watchdog]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn pings_only_while_the_probe_answers() {
        let pings = Arc::new(AtomicU32::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (pings, healthy, stop) = (pings.clone(), healthy.clone(), stop.clone());
            async move {
                watchdog(
                    Duration::from_secs(10),
                    move || {
                        let healthy = healthy.clone();
                        async move {
                            if healthy.load(Ordering::SeqCst) {
                                true
                            } else {
                                // A wedged pipeline never answers.
                                std::future::pending::<bool>().await
                            }
                        }
                    },
                    move || {
                        pings.fetch_add(1, Ordering::SeqCst);
                    },
                    stop,
                )
                .await;
            }
        });
        tokio::time::sleep(Duration::from_secs(21)).await;
        let while_healthy = pings.load(Ordering::SeqCst);
        assert_eq!(while_healthy, 4, "a ping every 5 s");
        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(
            pings.load(Ordering::SeqCst) <= while_healthy + 1,
            "no pings while the probe hangs"
        );
        healthy.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(
            pings.load(Ordering::SeqCst) > while_healthy + 1,
            "pings resume"
        );
        stop.cancel();
        task.await.expect("watchdog task");
    }
}
