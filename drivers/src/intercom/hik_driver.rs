//! The Hikvision door-station driver: one task per station holds the
//! `alertStream` open, reads it through the bounded [`Splitter`], follows
//! a call (started by the stream's doorbell event) with `callStatus` until
//! the station is idle again, and unlocks with
//! `PUT /ISAPI/AccessControl/RemoteControl/door/{n}`.
//!
//! A stream that brings no byte for `stall_after` is declared stalled: the
//! station is reported offline and the driver returns a transient error, so
//! the supervisor reconnects with its jittered backoff. Wrong credentials
//! stop the driver (misconfigured) instead of retrying: door stations lock
//! an account after a few failures.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::Method;

use super::calls::CallTracker;
use super::digest::{DigestClient, HttpError};
use super::hikvision::{self, ALERT_STREAM, CALL_STATUS, REMOTE_OPEN_BODY};
use super::stream::{Piece, Splitter, boundary};
use super::{Signal, clip};
use crate::command::{Command, CommandOutcome, CommandRequest};
use crate::contract::{Driver, DriverContext, DriverError, Link, now_ms};

/// How to reach one Hikvision door station.
#[derive(Clone, PartialEq)]
pub struct HikConfig {
    /// `http://host:port`.
    pub base: String,
    /// ISAPI user.
    pub user: String,
    /// ISAPI password (never logged).
    pub password: String,
    /// The door a remote unlock opens when the command does not say.
    pub door: u8,
    /// No byte on the alert stream for this long: stalled.
    pub stall_after: Duration,
    /// `callStatus` poll period while a call is in progress.
    pub call_poll: Duration,
    /// Timeout of each request (connect, unlock, call status).
    pub timeout: Duration,
    /// Largest alert-stream part kept.
    pub max_part: usize,
}

impl HikConfig {
    /// Defaults for a station at `base`.
    pub fn new(base: &str, user: &str, password: &str) -> Self {
        Self {
            base: base.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            door: 1,
            stall_after: Duration::from_secs(60),
            call_poll: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            max_part: 64 * 1024,
        }
    }
}

impl std::fmt::Debug for HikConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HikConfig")
            .field("base", &self.base)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("door", &self.door)
            .field("stall_after", &self.stall_after)
            .field("call_poll", &self.call_poll)
            .field("timeout", &self.timeout)
            .field("max_part", &self.max_part)
            .finish()
    }
}

/// Counters of what the station sent that was not understood.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Parts over the size limit.
    pub oversized: u64,
    /// Parts with broken headers or bodies.
    pub malformed: u64,
}

/// The driver.
#[derive(Debug)]
pub struct HikStation {
    config: HikConfig,
    client: DigestClient,
    calls: CallTracker,
    link: Link,
    rejected: Rejected,
}

impl HikStation {
    /// A driver for one station.
    pub fn new(config: HikConfig) -> Self {
        let client =
            DigestClient::new(&config.base, &config.user, &config.password, config.timeout);
        Self {
            config,
            client,
            calls: CallTracker::new(),
            link: Link::default(),
            rejected: Rejected::default(),
        }
    }

    async fn link(
        &mut self,
        ctx: &DriverContext,
        online: bool,
        detail: &str,
    ) -> Result<(), DriverError> {
        self.link
            .report(&ctx.events, online, || detail.to_owned())
            .await?;
        Ok(())
    }

    async fn apply(&mut self, ctx: &DriverContext, signal: Signal) -> Result<(), DriverError> {
        for event in self.calls.apply(signal, now_ms()) {
            ctx.events.emit(event).await?;
        }
        Ok(())
    }

    async fn poll_call(&mut self, ctx: &DriverContext) -> Result<(), DriverError> {
        let response = self
            .client
            .send(Method::GET, CALL_STATUS, None, Some(self.config.timeout))
            .await
            .map_err(|e| fail(&e))?;
        let body = response
            .bytes()
            .await
            .map_err(|e| DriverError::Transient(clip(&e.to_string(), 120)))?;
        match hikvision::parse_call_status(&body) {
            // Calls start from the stream's doorbell event (it names the
            // unit); `callStatus` only follows a call already known.
            Ok(state) if self.calls.active().is_some() => self.apply(ctx, state.signal()).await,
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "Unreadable callStatus.");
                Ok(())
            }
        }
    }

    async fn unlock(&self, door: Option<u8>) -> CommandOutcome {
        let door = door.unwrap_or(self.config.door);
        let path = hikvision::remote_control_path(door);
        match self
            .client
            .send(
                Method::PUT,
                &path,
                Some(REMOTE_OPEN_BODY),
                Some(self.config.timeout),
            )
            .await
        {
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await.unwrap_or_default();
                if status.is_success() && (body.is_empty() || hikvision::response_ok(&body)) {
                    CommandOutcome::Done
                } else {
                    CommandOutcome::Failed(format!(
                        "station refused the unlock (HTTP {})",
                        status.as_u16()
                    ))
                }
            }
            Err(e) => CommandOutcome::Failed(e.to_string()),
        }
    }

    async fn command(&mut self, request: CommandRequest) {
        let outcome = match &request.command {
            Command::PulseDoor { door, .. } => self.unlock(*door).await,
            Command::SafeState | Command::Poll => CommandOutcome::Done,
            _ => CommandOutcome::Unsupported,
        };
        request.answer(outcome);
    }

    async fn session(&mut self, ctx: &mut DriverContext) -> Result<(), DriverError> {
        let response = self
            .client
            .send(Method::GET, ALERT_STREAM, None, Some(self.config.timeout))
            .await;
        let response = match response {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let error = DriverError::Device(format!(
                    "alert stream refused (HTTP {})",
                    r.status().as_u16()
                ));
                return Err(error);
            }
            Err(e) => return Err(fail(&e)),
        };
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let boundary = boundary(&content_type).unwrap_or_else(|| "boundary".to_owned());
        let mut splitter = Splitter::new(&boundary, self.config.max_part);
        let mut body = response;
        ctx.health.ok();
        self.link(ctx, true, "alert stream open").await?;
        // A station that came back may have finished a call while away.
        self.poll_call(ctx).await?;
        let mut heard = tokio::time::Instant::now();
        let mut poll = tokio::time::interval(self.config.call_poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = ctx.cancel.cancelled() => return Ok(()),
                request = ctx.commands.recv() => match request {
                    Some(request) => self.command(request).await,
                    None => return Ok(()),
                },
                _ = poll.tick(), if self.calls.active().is_some() => self.poll_call(ctx).await?,
                chunk = tokio::time::timeout_at(heard + self.config.stall_after, body.chunk()) => match chunk {
                    Err(_) => return Err(DriverError::Transient("alert stream stalled".into())),
                    Ok(Ok(None)) => return Err(DriverError::Transient("alert stream closed".into())),
                    Ok(Err(e)) => return Err(DriverError::Transient(clip(&e.to_string(), 120))),
                    Ok(Ok(Some(bytes))) => {
                        heard = tokio::time::Instant::now();
                        ctx.health.ok();
                        for piece in splitter.push(&bytes) {
                            match piece {
                                Piece::Part(part) => match hikvision::parse_alert(&part.body) {
                                    Ok(signals) => {
                                        for signal in signals {
                                            self.apply(ctx, signal).await?;
                                        }
                                    }
                                    Err(_) => self.rejected.malformed += 1,
                                },
                                Piece::Oversized => self.rejected.oversized += 1,
                                Piece::Malformed(_) => self.rejected.malformed += 1,
                            }
                        }
                    }
                },
            }
        }
    }
}

fn fail(e: &HttpError) -> DriverError {
    match e {
        HttpError::Unauthorized => {
            DriverError::Misconfigured("the station refused the user name or password".into())
        }
        other => DriverError::Transient(other.to_string()),
    }
}

impl Driver for HikStation {
    fn kind(&self) -> &'static str {
        "hik-intercom"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            let result = self.session(ctx).await;
            if let Err(error) = &result {
                if self.rejected != Rejected::default() {
                    tracing::debug!(?self.rejected, "Alert-stream parts rejected so far.");
                }
                self.link(ctx, false, &error.to_string()).await.ok();
            }
            result
        }
        .boxed()
    }
}
