//! Liveness of push-only devices (plate cameras), and the remote open of a
//! lane whose barrier is the camera's own relay.
//!
//! A camera never answers a poll, so it is online while its pushes and
//! heartbeats keep coming and offline after a configured silence. Nor can
//! the gateway call it: the only way to a camera's relay is the reply to its
//! next request. So an `OpenBarrier` for the camera (a guard's or the
//! platform's "open this lane") waits in [`Seen`] until the camera next
//! pushes or beats, and that reply carries the open; it is answered `Done`
//! once the reply is built, or `Failed` when the camera did not call in
//! before the command's deadline. Cameras whose reply cannot open
//! (Hikvision) answer `Unsupported`, as do close, hold and release: a
//! camera's relay only pulses open.
//!
//! [`CameraLink`] is the camera's driver under the supervisor (so it shows in
//! device health, `/metrics` and the panel like any other device); the
//! ingress listener holds the matching [`Seen`] handle, taps it on every
//! request from that camera and takes a waiting open for its reply.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use drivers::{Command, CommandOutcome, DeviceEvent, Driver, DriverContext, DriverError};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Opens waiting for the camera's next request, with their deadlines.
type Waiting = Arc<Mutex<Vec<(oneshot::Sender<CommandOutcome>, Option<Instant>)>>>;

/// The ingress side: tells the camera's link that it was heard from, and
/// hands over an open waiting for the camera's reply.
#[derive(Debug, Clone)]
pub struct Seen {
    tap: mpsc::Sender<()>,
    opens: Waiting,
}

impl Seen {
    /// Records a sign of life (never blocks; a burst counts once).
    pub fn tap(&self) {
        let _ = self.tap.try_send(());
    }

    /// The opens waiting for this camera's reply, taken (`None`: none is
    /// waiting). The reply that carries the open answers them with
    /// [`Opening::sent`].
    pub fn take_open(&self) -> Option<Opening> {
        let now = Instant::now();
        let mut waiting = self.opens.lock().unwrap_or_else(PoisonError::into_inner);
        let current: Vec<_> = waiting
            .drain(..)
            .filter(|(reply, deadline)| !reply.is_closed() && deadline.is_none_or(|d| d > now))
            .map(|(reply, _)| reply)
            .collect();
        (!current.is_empty()).then_some(Opening(current))
    }
}

/// Opens taken for one reply.
#[derive(Debug)]
pub struct Opening(Vec<oneshot::Sender<CommandOutcome>>);

impl Opening {
    /// The reply that opens was built: the commands are done.
    pub fn sent(self) {
        for reply in self.0 {
            let _ = reply.send(CommandOutcome::Done);
        }
    }
}

/// The driver side of a camera's liveness and remote open.
#[derive(Debug)]
pub struct CameraLink {
    offline_after: Duration,
    seen: mpsc::Receiver<()>,
    online: Option<bool>,
    /// Whether the camera's reply can open its relay (its vendor).
    opens_by_reply: bool,
    opens: Waiting,
}

impl CameraLink {
    /// A link that calls the camera offline after `offline_after` of
    /// silence; `opens_by_reply` when the camera's vendor opens its relay
    /// on a reply (see [`crate::config::CameraVendor::replies_open`]).
    pub fn new(offline_after: Duration, opens_by_reply: bool) -> (Self, Seen) {
        let (tx, rx) = mpsc::channel(1);
        let opens = Waiting::default();
        let link = Self {
            offline_after,
            seen: rx,
            online: None,
            opens_by_reply,
            opens: opens.clone(),
        };
        (link, Seen { tap: tx, opens })
    }

    async fn set_online(&mut self, ctx: &DriverContext, online: bool) -> Result<(), DriverError> {
        if self.online == Some(online) {
            return Ok(());
        }
        // The first verdict after start is only reported when it is "offline".
        let report = self.online.is_some() || !online;
        self.online = Some(online);
        if online {
            ctx.health.ok();
        } else {
            ctx.health.degraded("no push or heartbeat from the camera");
        }
        if report {
            let detail = if online {
                "camera heard from again".to_owned()
            } else {
                format!(
                    "no push or heartbeat for {}",
                    humantime::format_duration(self.offline_after)
                )
            };
            ctx.events
                .emit(DeviceEvent::DeviceLink { online, detail })
                .await?;
        }
        Ok(())
    }

    fn waiting(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<(oneshot::Sender<CommandOutcome>, Option<Instant>)>> {
        self.opens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The earliest deadline of an open still waiting.
    fn next_deadline(&self) -> Option<Instant> {
        self.waiting().iter().filter_map(|(_, d)| *d).min()
    }

    /// Answers the opens whose deadline passed without the camera calling in.
    fn expire(&self) {
        let now = Instant::now();
        let mut waiting = self.waiting();
        let (late, kept): (Vec<_>, Vec<_>) = waiting
            .drain(..)
            .partition(|(_, deadline)| deadline.is_some_and(|d| d <= now));
        *waiting = kept;
        for (reply, _) in late {
            let _ = reply.send(CommandOutcome::Failed(
                "the camera did not call in (push or heartbeat) in time; its relay opens only with the reply to one".into(),
            ));
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Driver for CameraLink {
    fn kind(&self) -> &'static str {
        "lpr-camera"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            let mut heard = Instant::now();
            loop {
                let deadline = self.next_deadline();
                // Silence is timed from the last sign of life (not from the
                // last command), until the camera is called offline.
                let silent = (self.online != Some(false)).then(|| heard + self.offline_after);
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Ok(()),
                    seen = self.seen.recv() => {
                        if seen.is_none() {
                            return Ok(());
                        }
                        heard = Instant::now();
                        self.set_online(ctx, true).await?;
                    }
                    () = sleep_until(silent) => {
                        self.set_online(ctx, false).await?;
                    }
                    () = sleep_until(deadline) => self.expire(),
                    request = ctx.commands.recv() => {
                        let Some(request) = request else { return Ok(()) };
                        match request.command {
                            // A camera keeps no actuator energised.
                            Command::SafeState => request.answer(CommandOutcome::Done),
                            Command::OpenBarrier if self.opens_by_reply => {
                                let deadline = request.deadline;
                                self.waiting().push((request.reply, deadline));
                            }
                            _ => request.answer(CommandOutcome::Unsupported),
                        }
                    }
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::TestContext;

    #[tokio::test(start_paused = true)]
    async fn camera_link_goes_offline_after_silence_and_back_online_when_heard() {
        let TestContext {
            mut ctx,
            events: mut rx,
            commands: _commands,
            health: health_rx,
            cancel,
        } = DriverContext::for_test("cam-1", 8);
        let (mut link, seen) = CameraLink::new(Duration::from_secs(90), true);
        let task = tokio::spawn(async move { link.run(&mut ctx).await });

        seen.tap();
        let offline = rx.recv().await.expect("offline after 90 s");
        assert!(matches!(
            offline.event,
            DeviceEvent::DeviceLink { online: false, .. }
        ));
        assert_eq!(
            health_rx.borrow().state,
            drivers::contract::HealthState::Degraded
        );
        seen.tap();
        let online = rx.recv().await.expect("online again");
        assert!(matches!(
            online.event,
            DeviceEvent::DeviceLink { online: true, .. }
        ));
        cancel.cancel();
        assert_eq!(task.await.expect("joined"), Ok(()));
    }

    /// Sends `command` with a deadline `after` from now; its outcome.
    async fn send(
        commands: &mpsc::Sender<drivers::CommandRequest>,
        command: Command,
        after: Duration,
    ) -> oneshot::Receiver<CommandOutcome> {
        let (mut request, rx) = drivers::CommandRequest::new(command);
        request.deadline = Some(Instant::now() + after);
        commands.send(request).await.expect("link takes commands");
        rx
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_waits_for_the_cameras_next_reply_and_fails_when_it_does_not_call_in() {
        let TestContext {
            mut ctx,
            events: _events,
            commands,
            health: _health,
            cancel,
        } = DriverContext::for_test("cam-1", 8);
        let (mut link, seen) = CameraLink::new(Duration::from_secs(90), true);
        let task = tokio::spawn(async move { link.run(&mut ctx).await });

        assert!(seen.take_open().is_none(), "nothing waits");
        let mut first = send(&commands, Command::OpenBarrier, Duration::from_secs(10)).await;
        let mut second = send(&commands, Command::OpenBarrier, Duration::from_secs(10)).await;
        // The link has them once it answered something sent after them.
        let close = send(&commands, Command::CloseBarrier, Duration::from_secs(10)).await;
        assert_eq!(
            close.await,
            Ok(CommandOutcome::Unsupported),
            "a relay only opens"
        );
        assert!(first.try_recv().is_err(), "waiting for the camera");
        // The camera calls in: one reply carries both opens.
        let opening = seen.take_open().expect("opens wait");
        assert!(seen.take_open().is_none(), "taken once");
        opening.sent();
        assert_eq!(first.await, Ok(CommandOutcome::Done));
        assert_eq!(second.try_recv(), Ok(CommandOutcome::Done));

        // No call before the deadline: failed, and the next reply opens nothing.
        let late = send(&commands, Command::OpenBarrier, Duration::from_secs(10)).await;
        match late.await {
            Ok(CommandOutcome::Failed(why)) => assert!(why.contains("did not call in"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(seen.take_open().is_none());
        cancel.cancel();
        assert_eq!(task.await.expect("joined"), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_camera_whose_reply_cannot_open_refuses_the_open() {
        let TestContext {
            mut ctx,
            events: _events,
            commands,
            health: _health,
            cancel,
        } = DriverContext::for_test("cam-hik", 8);
        let (mut link, seen) = CameraLink::new(Duration::from_secs(90), false);
        let task = tokio::spawn(async move { link.run(&mut ctx).await });
        let open = send(&commands, Command::OpenBarrier, Duration::from_secs(10)).await;
        assert_eq!(open.await, Ok(CommandOutcome::Unsupported));
        assert!(seen.take_open().is_none());
        cancel.cancel();
        assert_eq!(task.await.expect("joined"), Ok(()));
    }
}
