//! One Modbus bus (an RS-485 line or one Modbus/TCP peer) and its single
//! owner: the [`ModbusBus`] actor.
//!
//! A bus allows one request at a time, so one task owns the tokio-modbus
//! client context and every user holds a cloneable [`BusHandle`] that sends
//! `(request, oneshot reply)` to it; requests from several lanes on one bus
//! (different slave ids) are served strictly one after the other.
//!
//! tokio-modbus has no request timeout of its own: every call here runs
//! under its handle's timeout ([`BusHandle::with_timeout`], each device its
//! own) or else [`BusConfig::timeout`]. After a timeout or a transport error the
//! context is dropped and rebuilt for the next request, so a late reply to
//! an abandoned request can never be read as the answer to the next one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_modbus::client::{Client, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{Request, Response, Slave};
use tokio_serial::SerialPort;

/// How to reach the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Modbus/TCP to one peer (the slave id becomes the unit id).
    Tcp {
        /// The peer's address, e.g. `192.168.1.20:502`.
        addr: SocketAddr,
    },
    /// Modbus RTU on a serial port.
    Rtu {
        /// The serial device, e.g. `/dev/ttyUSB0`.
        path: PathBuf,
        /// Baud rate (8N1).
        baud: u32,
    },
}

/// A bus and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// Where the bus is.
    pub transport: Transport,
    /// Deadline for connecting and for each request.
    pub timeout: Duration,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// Could not open the port or connect.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No answer within the deadline (the connection is rebuilt).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke or the answer was garbled (it is rebuilt).
    #[error("transport: {0}")]
    Transport(String),
    /// The device answered with a Modbus exception.
    #[error("exception: {0}")]
    Exception(String),
    /// The answer did not fit the request.
    #[error("unexpected response: {0}")]
    Unexpected(String),
    /// The bus task is gone.
    #[error("bus closed")]
    Closed,
    /// The request's deadline passed while it waited for the bus; it was
    /// not sent.
    #[error("not sent: its deadline passed while the bus was busy")]
    Expired,
}

impl BusError {
    /// Whether the device itself answered (the link is up).
    pub fn device_answered(&self) -> bool {
        matches!(self, BusError::Exception(_) | BusError::Unexpected(_))
    }
}

struct Job {
    slave: u8,
    request: Request<'static>,
    /// This request's deadline for connecting and answering (its device's
    /// own; the bus's when `None`).
    timeout: Option<Duration>,
    /// Not sent after this (a job queued behind a hung request).
    deadline: Option<tokio::time::Instant>,
    reply: oneshot::Sender<Result<Response, BusError>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("slave", &self.slave)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// A cloneable handle to one bus. The bus task ends when every handle is
/// dropped.
///
/// Each device on a shared bus may hold a handle with its own request
/// timeout ([`Self::with_timeout`]), so the bus itself keeps no per-device
/// setting: a device can join or leave a running bus (a reload) without
/// the bus or its other devices being rebuilt.
#[derive(Debug, Clone)]
pub struct BusHandle {
    tx: mpsc::Sender<Job>,
    timeout: Option<Duration>,
}

impl BusHandle {
    /// A handle to the same bus whose requests use `timeout` (for
    /// connecting and for the answer) instead of the bus's.
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> BusHandle {
        BusHandle {
            tx: self.tx.clone(),
            timeout: Some(timeout),
        }
    }

    /// Sends `request` to `slave` and waits for the answer.
    pub async fn call(&self, slave: u8, request: Request<'static>) -> Result<Response, BusError> {
        self.call_by(slave, request, None).await
    }

    /// Like [`Self::call`], but the request is dropped (and
    /// [`BusError::Expired`] returned) if it has not been sent by `deadline`.
    pub async fn call_by(
        &self,
        slave: u8,
        request: Request<'static>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Response, BusError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                slave,
                request,
                timeout: self.timeout,
                deadline,
                reply,
            })
            .await
            .map_err(|_| BusError::Closed)?;
        rx.await.map_err(|_| BusError::Closed)?
    }

    /// Reads `count` discrete inputs (FC02) from `first`.
    pub async fn read_inputs(
        &self,
        slave: u8,
        first: u16,
        count: u16,
    ) -> Result<Vec<bool>, BusError> {
        match self
            .call(slave, Request::ReadDiscreteInputs(first, count))
            .await?
        {
            Response::ReadDiscreteInputs(mut bits) => {
                bits.truncate(usize::from(count));
                Ok(bits)
            }
            other => Err(BusError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Writes one coil (FC05).
    pub async fn write_coil(&self, slave: u8, coil: u16, on: bool) -> Result<(), BusError> {
        self.write_coil_by(slave, coil, on, None).await
    }

    /// Writes one coil (FC05) unless `deadline` passes first.
    pub async fn write_coil_by(
        &self,
        slave: u8,
        coil: u16,
        on: bool,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), BusError> {
        match self
            .call_by(slave, Request::WriteSingleCoil(coil, on), deadline)
            .await?
        {
            Response::WriteSingleCoil(..) => Ok(()),
            other => Err(BusError::Unexpected(format!("{other:?}"))),
        }
    }
}

/// The task that owns one bus.
pub struct ModbusBus {
    config: BusConfig,
    context: Option<Context>,
    rx: mpsc::Receiver<Job>,
}

impl std::fmt::Debug for ModbusBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModbusBus")
            .field("config", &self.config)
            .field("connected", &self.context.is_some())
            .finish_non_exhaustive()
    }
}

impl ModbusBus {
    /// Starts the bus task and returns its handle. Connecting is lazy: the
    /// first request opens the port or connection.
    pub fn spawn(config: BusConfig) -> BusHandle {
        let (bus, handle) = ModbusBus::new(config);
        tokio::spawn(bus.run());
        handle
    }

    /// The bus and its handle, for an owner that spawns [`ModbusBus::run`]
    /// as its own task.
    pub fn new(config: BusConfig) -> (ModbusBus, BusHandle) {
        let (tx, rx) = mpsc::channel(16);
        let bus = ModbusBus {
            config,
            context: None,
            rx,
        };
        (bus, BusHandle { tx, timeout: None })
    }

    /// Serves requests until every handle is dropped, then disconnects.
    pub async fn run(mut self) {
        while let Some(job) = self.rx.recv().await {
            let late = job
                .deadline
                .is_some_and(|d| tokio::time::Instant::now() >= d);
            let result = if late {
                Err(BusError::Expired)
            } else {
                let timeout = job.timeout.unwrap_or(self.config.timeout);
                self.serve(job.slave, job.request, timeout).await
            };
            let _ = job.reply.send(result);
        }
        if let Some(mut context) = self.context.take() {
            let _ = tokio::time::timeout(self.config.timeout, context.disconnect()).await;
        }
    }

    async fn serve(
        &mut self,
        slave: u8,
        request: Request<'static>,
        timeout: Duration,
    ) -> Result<Response, BusError> {
        let context = match self.context.as_mut() {
            Some(context) => context,
            None => self
                .context
                .insert(connect(&self.config.transport, timeout).await?),
        };
        context.set_slave(Slave(slave));
        let result = tokio::time::timeout(timeout, context.call(request)).await;
        match result {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(exception))) => Err(BusError::Exception(exception.to_string())),
            Ok(Err(error)) => {
                tracing::debug!(%error, "modbus transport error; rebuilding the context");
                self.context = None;
                Err(BusError::Transport(error.to_string()))
            }
            Err(_) => {
                tracing::debug!(?timeout, "modbus request timed out; rebuilding the context");
                self.context = None;
                Err(BusError::Timeout(timeout))
            }
        }
    }
}

/// Opens the port or connection of `transport` within `timeout`.
async fn connect(transport: &Transport, timeout: Duration) -> Result<Context, BusError> {
    match transport {
        Transport::Tcp { addr } => {
            match tokio::time::timeout(timeout, tokio_modbus::client::tcp::connect(*addr)).await {
                Ok(Ok(context)) => Ok(context),
                Ok(Err(e)) => Err(BusError::Connect(format!("{addr}: {e}"))),
                Err(_) => Err(BusError::Connect(format!(
                    "{addr}: no answer in {timeout:?}"
                ))),
            }
        }
        Transport::Rtu { path, baud } => {
            let name = path.to_string_lossy();
            let builder = tokio_serial::new(name.as_ref(), *baud);
            let port = tokio_serial::SerialStream::open(&builder)
                .map_err(|e| BusError::Connect(format!("{name}: {e}")))?;
            // Whatever a previous, abandoned request left in the buffer
            // is not an answer to the next one.
            port.clear(tokio_serial::ClearBuffer::All)
                .map_err(|e| BusError::Connect(format!("{name}: {e}")))?;
            Ok(tokio_modbus::client::rtu::attach(port))
        }
    }
}
