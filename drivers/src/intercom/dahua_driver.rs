//! The Dahua VTO driver: one task per station holds the TCP 5000
//! connection — login with the realm/random challenge, `eventManager.attach`,
//! keep-alive — turns the event stream into intercom events, and opens the
//! door over the same connection, falling back to the HTTP CGI
//! `accessControl.cgi?action=openDoor` when the firmware refuses.
//!
//! Every wait is bounded: a login reply that never comes, a connection that
//! goes silent past two keep-alive periods, a reply to `openDoor` that does
//! not come: each ends the session with a transient error and the
//! supervisor reconnects with backoff. A refused password stops the driver.

use std::collections::VecDeque;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::calls::CallTracker;
use super::dahua::{self, FrameDecoder};
use super::digest::DigestClient;
use super::{Signal, clip};
use crate::command::{Command, CommandOutcome, CommandRequest};
use crate::contract::{Driver, DriverContext, DriverError, Link, now_ms};

/// How to reach one VTO.
#[derive(Clone, PartialEq)]
pub struct VtoConfig {
    /// `host:port` of the JSON-RPC service (port 5000).
    pub address: String,
    /// User.
    pub user: String,
    /// Password (never logged).
    pub password: String,
    /// `http://host:port` for the CGI fallback, if the station has one.
    pub http_base: Option<String>,
    /// Access-control channel of the door (0-based).
    pub channel: u32,
    /// How long to wait for any reply (login included).
    pub reply_timeout: Duration,
    /// Keep-alive period when the station does not say.
    pub keep_alive: Duration,
}

impl VtoConfig {
    /// Defaults for a station at `address`.
    pub fn new(address: &str, user: &str, password: &str) -> Self {
        Self {
            address: address.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            http_base: None,
            channel: 0,
            reply_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for VtoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VtoConfig")
            .field("address", &self.address)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("http_base", &self.http_base)
            .field("channel", &self.channel)
            .field("reply_timeout", &self.reply_timeout)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// One logged-in connection.
struct Conn {
    stream: TcpStream,
    decoder: FrameDecoder,
    session: u32,
    next_id: u32,
    /// Frames read while waiting for a reply, handled afterwards.
    backlog: VecDeque<Value>,
}

impl Conn {
    async fn send(&mut self, mut message: Value) -> Result<u32, DriverError> {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        if let Some(m) = message.as_object_mut() {
            m.insert("id".into(), id.into());
            m.insert("session".into(), self.session.into());
        }
        let frame = dahua::encode(self.session, id, &message);
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| DriverError::Transient(format!("write: {e}")))?;
        Ok(id)
    }

    /// The next frame, waiting until `deadline`.
    async fn read(&mut self, deadline: Instant) -> Result<Value, DriverError> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(frame) = self.decoder.next_frame() {
                return frame.map_err(|e| DriverError::Device(e.to_string()));
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| DriverError::Transient("the station went silent".into()))?
                .map_err(|e| DriverError::Transient(format!("read: {e}")))?;
            if n == 0 {
                return Err(DriverError::Transient(
                    "the station closed the connection".into(),
                ));
            }
            self.decoder.push(&buf[..n]);
        }
    }

    /// Sends `message` and waits for the reply with its id; other frames
    /// are kept for later.
    async fn call(&mut self, message: Value, wait: Duration) -> Result<Value, DriverError> {
        let id = self.send(message).await?;
        let deadline = Instant::now() + wait;
        loop {
            let frame = self.read(deadline).await.map_err(|e| match e {
                DriverError::Transient(m) if m.contains("silent") => {
                    DriverError::Transient("no reply in time".into())
                }
                other => other,
            })?;
            if frame.get("id").and_then(Value::as_u64) == Some(u64::from(id))
                && frame.get("method").is_none()
            {
                return Ok(frame);
            }
            if self.backlog.len() < 64 {
                self.backlog.push_back(frame);
            }
        }
    }
}

/// The driver.
#[derive(Debug)]
pub struct DahuaVto {
    config: VtoConfig,
    calls: CallTracker,
    link: Link,
    cgi: Option<DigestClient>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl DahuaVto {
    /// A driver for one VTO.
    pub fn new(config: VtoConfig) -> Self {
        let cgi = config
            .http_base
            .as_deref()
            .map(|b| DigestClient::new(b, &config.user, &config.password, config.reply_timeout));
        Self {
            config,
            calls: CallTracker::new(),
            link: Link::default(),
            cgi,
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

    async fn login(&self) -> Result<(Conn, Duration), DriverError> {
        let wait = self.config.reply_timeout;
        let stream = tokio::time::timeout(wait, TcpStream::connect(&self.config.address))
            .await
            .map_err(|_| DriverError::Transient("connect timed out".into()))?
            .map_err(|e| DriverError::Transient(format!("connect: {e}")))?;
        let mut conn = Conn {
            stream,
            decoder: FrameDecoder::new(),
            session: 0,
            next_id: 0,
            backlog: VecDeque::new(),
        };
        let first = conn
            .call(dahua::login_request(&self.config.user), wait)
            .await
            .map_err(|e| DriverError::Transient(format!("login: {e}")))?;
        let challenge = dahua::challenge(&first).ok_or_else(|| {
            DriverError::Device("login: no challenge in the station's answer".into())
        })?;
        conn.session = challenge.session;
        let hash = dahua::login_hash(
            &self.config.user,
            &self.config.password,
            &challenge.realm,
            &challenge.random,
        );
        let second = conn
            .call(dahua::login_answer(&self.config.user, &hash), wait)
            .await
            .map_err(|e| DriverError::Transient(format!("login: {e}")))?;
        if !dahua::succeeded(&second) {
            return Err(DriverError::Misconfigured(
                "the station refused the user name or password".into(),
            ));
        }
        if let Some(session) = dahua::session_of(&second) {
            conn.session = session;
        }
        let keep_alive = second
            .pointer("/params/keepAliveInterval")
            .and_then(Value::as_u64)
            .map_or(self.config.keep_alive, |s| {
                Duration::from_secs(s.clamp(5, 300)) / 2
            })
            .min(self.config.keep_alive);
        let attached = conn.call(dahua::attach(), wait).await?;
        if !dahua::succeeded(&attached) {
            return Err(DriverError::Device(
                "the station refused eventManager.attach".into(),
            ));
        }
        Ok((conn, keep_alive))
    }

    async fn handle(&mut self, ctx: &DriverContext, frame: &Value) -> Result<(), DriverError> {
        for signal in dahua::events(frame) {
            if signal == Signal::Heartbeat {
                continue;
            }
            for event in self.calls.apply(signal, now_ms()) {
                ctx.events.emit(event).await?;
            }
        }
        Ok(())
    }

    async fn open_rpc(&self, conn: &mut Conn) -> Result<(), String> {
        let wait = self.config.reply_timeout;
        let instance = conn
            .call(dahua::door_instance(self.config.channel), wait)
            .await
            .map_err(|e| e.to_string())?;
        if !dahua::succeeded(&instance) {
            return Err("the station has no access-control instance".into());
        }
        let object = instance.get("result").cloned().unwrap_or(Value::Null);
        let opened = conn.call(dahua::open_door(&object, 0), wait).await;
        // Some firmwares take long to answer `destroy`: send it, do not wait.
        let _ = conn.send(dahua::destroy(&object)).await;
        match opened {
            Ok(reply) if dahua::succeeded(&reply) => Ok(()),
            Ok(reply) => Err(clip(
                reply
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("openDoor refused"),
                120,
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn open_cgi(&self) -> Result<(), String> {
        let Some(cgi) = &self.cgi else {
            return Err("no HTTP fallback configured".into());
        };
        let path = format!(
            "/cgi-bin/accessControl.cgi?action=openDoor&channel={}&UserID=101&Type=Remote",
            self.config.channel + 1
        );
        match cgi
            .send(Method::GET, &path, None, Some(self.config.reply_timeout))
            .await
        {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("CGI answered HTTP {}", r.status().as_u16())),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn command(&self, conn: &mut Conn, request: CommandRequest) {
        let outcome = match &request.command {
            Command::PulseDoor { .. } => match self.open_rpc(conn).await {
                Ok(()) => CommandOutcome::Done,
                Err(rpc) => match self.open_cgi().await {
                    Ok(()) => CommandOutcome::Done,
                    Err(cgi) => CommandOutcome::Failed(format!("{rpc}; {cgi}")),
                },
            },
            Command::SafeState | Command::Poll => CommandOutcome::Done,
            _ => CommandOutcome::Unsupported,
        };
        request.answer(outcome);
    }

    async fn session(&mut self, ctx: &mut DriverContext) -> Result<(), DriverError> {
        let (mut conn, keep_alive) = tokio::select! {
            () = ctx.cancel.cancelled() => return Ok(()),
            r = self.login() => r?,
        };
        ctx.health.ok();
        self.link(ctx, true, "logged in").await?;
        // A call does not survive the station's absence: close it.
        for event in self.calls.apply(Signal::Idle, now_ms()) {
            ctx.events.emit(event).await?;
        }
        let silent_after = keep_alive * 2 + self.config.reply_timeout;
        let mut heard = Instant::now();
        let mut tick = tokio::time::interval_at(Instant::now() + keep_alive, keep_alive);
        loop {
            while let Some(frame) = conn.backlog.pop_front() {
                self.handle(ctx, &frame).await?;
            }
            tokio::select! {
                () = ctx.cancel.cancelled() => return Ok(()),
                request = ctx.commands.recv() => match request {
                    Some(request) => self.command(&mut conn, request).await,
                    None => return Ok(()),
                },
                _ = tick.tick() => {
                    conn.send(dahua::keep_alive(keep_alive.as_secs().max(1) * 2)).await?;
                }
                frame = conn.read(heard + silent_after) => {
                    let frame = frame?;
                    heard = Instant::now();
                    ctx.health.ok();
                    self.handle(ctx, &frame).await?;
                }
            }
        }
    }
}

impl Driver for DahuaVto {
    fn kind(&self) -> &'static str {
        "dahua-vto"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            let result = self.session(ctx).await;
            if let Err(error) = &result {
                self.link(ctx, false, &error.to_string()).await.ok();
            }
            result
        }
        .boxed()
    }
}
