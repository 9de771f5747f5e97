//! [`SerialReader`]: a card reader on a serial port (RS-485 adapter, UART).
//! Opens the port with tokio-serial, decodes with the pure
//! [`SerialDecoder`], and survives the adapter disappearing: it reports
//! `DeviceLink { online: false }`, retries with capped exponential backoff,
//! and reports `DeviceLink { online: true }` when the port opens again.
//! Rejected frames are aggregated by a [`RejectGate`] (one event per
//! interval with a count; a `noisy_line` alarm), so line noise never floods
//! the journal.

use std::path::PathBuf;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::AsyncReadExt;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use super::reject::{DEFAULT_NOISY_AFTER, RejectGate};
use super::serial::{Framing, SerialDecoder, SerialError};
use crate::command::{Command, CommandOutcome, CommandRequest};
use crate::contract::{Driver, DriverContext, DriverError, Link};
use crate::event::DeviceEvent;

/// Configuration of a serial card reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialReaderConfig {
    /// Port path (`/dev/ttyUSB0`, or a stable `/dev/serial/by-id/…` link).
    pub path: PathBuf,
    /// Baud rate (8N1).
    pub baud: u32,
    /// Frame format.
    pub framing: Framing,
    /// Door the reader serves, if any.
    pub door: Option<u8>,
    /// First reconnect delay, in milliseconds.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, in milliseconds.
    pub reconnect_max_ms: u64,
    /// Rejected frames are reported once per this many milliseconds, with
    /// a count.
    pub reject_interval_ms: u64,
}

/// The serial card-reader driver.
#[derive(Debug)]
pub struct SerialReader {
    config: SerialReaderConfig,
    decoder: SerialDecoder,
    link: Link,
    rejects: RejectGate,
}

impl SerialReader {
    /// A reader for `config`; fails if the framing cannot work.
    pub fn new(config: SerialReaderConfig) -> Result<Self, SerialError> {
        let decoder = SerialDecoder::new(config.framing.clone())?;
        let rejects = RejectGate::new(
            Duration::from_millis(config.reject_interval_ms.max(1)),
            DEFAULT_NOISY_AFTER,
        );
        Ok(Self {
            config,
            decoder,
            link: Link::default(),
            rejects,
        })
    }

    fn open(&self) -> Result<SerialStream, String> {
        tokio_serial::new(self.config.path.to_string_lossy(), self.config.baud)
            .open_native_async()
            .map_err(|e| format!("{}: {e}", self.config.path.display()))
    }

    async fn link(
        &mut self,
        ctx: &DriverContext,
        online: bool,
        detail: String,
    ) -> Result<(), DriverError> {
        if online {
            ctx.health.ok();
        } else {
            ctx.health.degraded(&detail);
        }
        self.link.report(&ctx.events, online, || detail).await?;
        Ok(())
    }

    fn answer(&self, request: CommandRequest) {
        let outcome = match request.command {
            Command::SafeState => CommandOutcome::Done,
            Command::Poll if self.link.is_up() => CommandOutcome::Done,
            Command::Poll => CommandOutcome::Failed("reader port is not open".into()),
            _ => CommandOutcome::Unsupported,
        };
        request.answer(outcome);
    }

    /// Reads until the port fails (`Ok(Some(reason))`) or cancel (`Ok(None)`).
    async fn read_port(
        &mut self,
        ctx: &mut DriverContext,
        mut port: SerialStream,
    ) -> Result<Option<String>, DriverError> {
        let mut buf = [0u8; 256];
        loop {
            tokio::select! {
                () = ctx.cancel.cancelled() => return Ok(None),
                request = ctx.commands.recv() => match request {
                    Some(request) => self.answer(request),
                    None => return Ok(None),
                },
                () = sleep_until_some(self.rejects.deadline()) => {
                    for event in self.rejects.tick(tokio::time::Instant::now()) {
                        ctx.events.emit(event).await?;
                    }
                }
                read = port.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => return Ok(Some("port closed".into())),
                        Ok(n) => n,
                        Err(e) => return Ok(Some(format!("read failed: {e}"))),
                    };
                    for frame in self.decoder.push(&buf[..n]) {
                        let event = match frame {
                            Ok(card) => Some(DeviceEvent::CardRead {
                                card,
                                format: "serial".into(),
                                facility: None,
                                door: self.config.door,
                                controller: None,
                            }),
                            Err(e) => self.rejects.rejected(e.to_string(), tokio::time::Instant::now()),
                        };
                        if let Some(event) = event {
                            ctx.events.emit(event).await?;
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver for SerialReader {
    fn kind(&self) -> &'static str {
        "serial-reader"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            let min = Duration::from_millis(self.config.reconnect_min_ms.max(1));
            let max = Duration::from_millis(self.config.reconnect_max_ms).max(min);
            let mut backoff = min;
            loop {
                match self.open() {
                    Ok(port) => {
                        self.decoder.reset();
                        let detail = self.config.path.display().to_string();
                        self.link(ctx, true, detail).await?;
                        backoff = min;
                        match self.read_port(ctx, port).await? {
                            None => return Ok(()),
                            Some(reason) => self.link(ctx, false, reason).await?,
                        }
                    }
                    Err(reason) => self.link(ctx, false, reason).await?,
                }
                let retry = tokio::time::sleep(backoff);
                tokio::pin!(retry);
                loop {
                    tokio::select! {
                        () = ctx.cancel.cancelled() => return Ok(()),
                        () = &mut retry => break,
                        request = ctx.commands.recv() => match request {
                            Some(request) => self.answer(request),
                            None => return Ok(()),
                        },
                    }
                }
                backoff = (backoff * 2).min(max);
            }
        }
        .boxed()
    }
}
