//! Liveness of push-only devices (plate cameras): they never answer a poll,
//! so a camera is online while its pushes and heartbeats keep coming and
//! offline after a configured silence.
//!
//! [`CameraLink`] is the camera's driver under the supervisor (so it shows in
//! device health, `/metrics` and the panel like any other device); the
//! ingress listener holds the matching [`Seen`] handle and taps it on every
//! request from that camera.

use std::time::Duration;

use drivers::{Command, CommandOutcome, DeviceEvent, Driver, DriverContext, DriverError};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

/// The ingress side: tells the camera's link that it was heard from.
#[derive(Debug, Clone)]
pub struct Seen(mpsc::Sender<()>);

impl Seen {
    /// Records a sign of life (never blocks; a burst counts once).
    pub fn tap(&self) {
        let _ = self.0.try_send(());
    }
}

/// The driver side of a camera's liveness.
#[derive(Debug)]
pub struct CameraLink {
    offline_after: Duration,
    seen: mpsc::Receiver<()>,
    online: Option<bool>,
}

impl CameraLink {
    /// A link that calls the camera offline after `offline_after` of silence.
    pub fn new(offline_after: Duration) -> (Self, Seen) {
        let (tx, rx) = mpsc::channel(1);
        let link = Self {
            offline_after,
            seen: rx,
            online: None,
        };
        (link, Seen(tx))
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
}

impl Driver for CameraLink {
    fn kind(&self) -> &'static str {
        "lpr-camera"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            loop {
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Ok(()),
                    seen = self.seen.recv() => {
                        if seen.is_none() {
                            return Ok(());
                        }
                        self.set_online(ctx, true).await?;
                    }
                    () = tokio::time::sleep(self.offline_after) => {
                        self.set_online(ctx, false).await?;
                    }
                    request = ctx.commands.recv() => {
                        let Some(request) = request else { return Ok(()) };
                        let outcome = match request.command {
                            // A camera has no actuator of its own here.
                            Command::SafeState => CommandOutcome::Done,
                            _ => CommandOutcome::Unsupported,
                        };
                        request.answer(outcome);
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
        let (mut link, seen) = CameraLink::new(Duration::from_secs(90));
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
}
