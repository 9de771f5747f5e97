//! [`WiegandReader`]: a Wiegand card reader on two GPIO input lines. Edges
//! go through the pure [`WiegandDecoder`]; complete frames become
//! `CardRead` events, bad frames `ReadRejected` (aggregated by a
//! [`RejectGate`]: noise on the lines never floods the journal).
//!
//! A frame ends when the next edge's timestamp is past the gap, or when a
//! timer one gap after the last edge fires (the tick): the driver never
//! sleeps waiting for bits. D0 and D1 are separate queues, so after each
//! edge the driver takes whatever both lines have already delivered and
//! feeds it to the decoder in timestamp order.

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::gpio::{Edge, GpioError, InputLine};
use super::reject::RejectGate;
use super::wiegand::{DataLine, WiegandConfig, WiegandDecoder, WiegandFrame};
use crate::command::{Command, CommandOutcome};
use crate::contract::{Driver, DriverContext, DriverError};
use crate::event::DeviceEvent;

/// A Wiegand reader driver over lines `D0` and `D1`.
#[derive(Debug)]
pub struct WiegandReader<L: InputLine> {
    d0: L,
    d1: L,
    decoder: WiegandDecoder,
    config: WiegandConfig,
    bits_on_rising: bool,
    door: Option<u8>,
    rejects: RejectGate,
}

impl<L: InputLine> WiegandReader<L> {
    /// A reader on `d0` and `d1`, whose lines idle high and pulse low (bits
    /// on falling edges).
    pub fn new(d0: L, d1: L, config: WiegandConfig) -> Self {
        Self {
            d0,
            d1,
            decoder: WiegandDecoder::new(config),
            config,
            bits_on_rising: false,
            door: None,
            rejects: RejectGate::default(),
        }
    }

    /// Aggregates rejected reads with `gate` instead of the default one.
    pub fn with_reject_gate(mut self, gate: RejectGate) -> Self {
        self.rejects = gate;
        self
    }

    /// Takes bits on rising edges instead (lines configured `active_low`).
    pub fn bits_on_rising(mut self, yes: bool) -> Self {
        self.bits_on_rising = yes;
        self
    }

    /// Reports reads for door `door`.
    pub fn for_door(mut self, door: Option<u8>) -> Self {
        self.door = door;
        self
    }
}

async fn report(
    ctx: &DriverContext,
    door: Option<u8>,
    rejects: &mut RejectGate,
    frame: WiegandFrame,
) -> Result<(), DriverError> {
    let event = match frame {
        Ok(card) => Some(DeviceEvent::CardRead {
            card: card.card.to_string(),
            format: card.format.into(),
            facility: card.facility,
            door,
            controller: None,
        }),
        Err(error) => rejects.rejected(error.to_string(), Instant::now()),
    };
    ctx.health.ok();
    match event {
        Some(event) => ctx.events.emit(event).await,
        None => Ok(()),
    }
}

/// Most edges taken from one line per drain (a frame is at most 64).
const MAX_DRAIN: usize = 256;

/// Appends the edges `line` has already delivered, without waiting.
fn drain<L: InputLine>(
    line: &mut L,
    which: DataLine,
    batch: &mut Vec<(DataLine, Edge)>,
) -> Result<(), DriverError> {
    for _ in 0..MAX_DRAIN {
        match line.next_edge().now_or_never() {
            Some(edge) => batch.push((which, edge.map_err(line_error)?)),
            None => break,
        }
    }
    Ok(())
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn line_error(error: GpioError) -> DriverError {
    DriverError::Transient(format!("wiegand line: {error}"))
}

impl<L: InputLine + 'static> Driver for WiegandReader<L> {
    fn kind(&self) -> &'static str {
        "wiegand-reader"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            // A restart starts a fresh frame: half a frame is noise.
            self.decoder = WiegandDecoder::new(self.config);
            let mut frame_end: Option<Instant> = None;
            ctx.health.ok();
            loop {
                let gap_timer = async {
                    match frame_end {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let (line, edge) = tokio::select! {
                    () = ctx.cancel.cancelled() => return Ok(()),
                    () = gap_timer => {
                        frame_end = None;
                        if let Some(frame) = self.decoder.flush() {
                            report(ctx, self.door, &mut self.rejects, frame).await?;
                        }
                        continue;
                    }
                    () = sleep_until_some(self.rejects.deadline()) => {
                        for event in self.rejects.tick(Instant::now()) {
                            ctx.events.emit(event).await?;
                        }
                        continue;
                    }
                    edge = self.d0.next_edge() => (DataLine::D0, edge.map_err(line_error)?),
                    edge = self.d1.next_edge() => (DataLine::D1, edge.map_err(line_error)?),
                    request = ctx.commands.recv() => {
                        let Some(request) = request else { return Ok(()) };
                        let outcome = match request.command {
                            // A reader has no actuator and nothing to poll.
                            Command::SafeState | Command::Poll => CommandOutcome::Done,
                            _ => CommandOutcome::Unsupported,
                        };
                        request.answer(outcome);
                        continue;
                    }
                };
                // D0 and D1 are separate queues: take everything already
                // delivered on both and replay it in timestamp order.
                let mut batch = vec![(line, edge)];
                drain(&mut self.d0, DataLine::D0, &mut batch)?;
                drain(&mut self.d1, DataLine::D1, &mut batch)?;
                batch.sort_by_key(|(_, edge)| edge.timestamp);
                for (line, edge) in batch {
                    let bit_edge = edge.rising == self.bits_on_rising;
                    if let Some(frame) = self.decoder.edge(line, bit_edge, edge.timestamp) {
                        report(ctx, self.door, &mut self.rejects, frame).await?;
                    }
                    if bit_edge {
                        frame_end = Some(Instant::now() + self.config.frame_gap());
                    }
                }
            }
        }
        .boxed()
    }
}
