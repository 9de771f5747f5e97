//! GPIO lines over the kernel GPIO character device (`/dev/gpiochipN`) via
//! gpiocdev: inputs with kernel edge detection and monotonic timestamps,
//! outputs for relays. Thin on purpose: it cannot be exercised without a
//! GPIO chip, so everything else is tested over [`super::fake`].

use std::path::PathBuf;
use std::time::Duration;

use gpiocdev::line::{Bias, EdgeDetection, EdgeKind, EventClock, Offset, Value};
use gpiocdev::request::Request;
use gpiocdev::tokio::AsyncRequest;

use super::{Edge, GpioError, InputLine, OutputLine};

/// Which line: by name (searched on every chip, or on `chip` if given) or
/// by offset on `chip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineRef {
    /// A line name from the device tree (`gpio-line-names`).
    Name(String),
    /// An offset on the configured chip.
    Offset(u32),
}

/// Configuration of one GPIO line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineConfig {
    /// Chip path or name (`/dev/gpiochip0`, `gpiochip0`); required with an offset.
    pub chip: Option<String>,
    /// The line.
    pub line: LineRef,
    /// The line is active when electrically low (Wiegand data lines, most
    /// opto-isolated inputs).
    pub active_low: bool,
    /// Enable the internal pull-up (inputs only).
    pub pull_up: bool,
    /// Kernel debounce period in microseconds (inputs only; 0 = none).
    /// Leave 0 on Wiegand lines: pulses are 50 µs.
    pub debounce_us: u64,
}

impl LineConfig {
    fn locate(&self) -> Result<(PathBuf, Offset), GpioError> {
        let chip = self.chip.as_deref().map(chip_path);
        match (&self.line, chip) {
            (LineRef::Offset(offset), Some(chip)) => Ok((chip, *offset)),
            (LineRef::Offset(offset), None) => Err(GpioError::NotFound(format!(
                "line offset {offset} needs a chip"
            ))),
            (LineRef::Name(name), chip) => {
                let found = gpiocdev::find_named_line(name)
                    .filter(|f| chip.as_ref().is_none_or(|c| *c == f.chip))
                    .ok_or_else(|| GpioError::NotFound(format!("line named {name:?}")))?;
                Ok((found.chip, found.info.offset))
            }
        }
    }

    fn builder(&self, consumer: &str) -> Result<(gpiocdev::request::Builder, Offset), GpioError> {
        let (chip, offset) = self.locate()?;
        let mut builder = Request::builder();
        builder
            .on_chip(chip)
            .with_consumer(consumer)
            .with_line(offset);
        if self.active_low {
            builder.as_active_low();
        }
        Ok((builder, offset))
    }
}

fn chip_path(chip: &str) -> PathBuf {
    if chip.starts_with('/') {
        PathBuf::from(chip)
    } else {
        PathBuf::from("/dev").join(chip)
    }
}

fn io(error: gpiocdev::Error) -> GpioError {
    GpioError::Io(error.to_string())
}

/// An input line with edge detection on both edges, kernel-timestamped.
#[derive(Debug)]
pub struct CdevInput {
    request: AsyncRequest,
    offset: Offset,
}

impl CdevInput {
    /// Requests the line as an input with both-edge detection.
    pub fn open(config: &LineConfig, consumer: &str) -> Result<Self, GpioError> {
        let (mut builder, offset) = config.builder(consumer)?;
        builder
            .as_input()
            .with_edge_detection(EdgeDetection::BothEdges)
            .with_event_clock(EventClock::Monotonic);
        if config.pull_up {
            builder.with_bias(Bias::PullUp);
        }
        if config.debounce_us > 0 {
            builder.with_debounce_period(Duration::from_micros(config.debounce_us));
        }
        let request = builder.request().map_err(io)?;
        Ok(Self {
            request: AsyncRequest::new(request),
            offset,
        })
    }
}

impl InputLine for CdevInput {
    async fn next_edge(&mut self) -> Result<Edge, GpioError> {
        let event = self.request.read_edge_event().await.map_err(io)?;
        Ok(Edge {
            rising: event.kind == EdgeKind::Rising,
            timestamp: Duration::from_nanos(event.timestamp_ns),
        })
    }

    fn level(&self) -> Result<bool, GpioError> {
        let value = self.request.as_ref().value(self.offset).map_err(io)?;
        Ok(value == Value::Active)
    }
}

/// An output line, requested inactive.
#[derive(Debug)]
pub struct CdevOutput {
    request: Request,
    offset: Offset,
}

impl CdevOutput {
    /// Requests the line as an output, initially inactive.
    pub fn open(config: &LineConfig, consumer: &str) -> Result<Self, GpioError> {
        let (mut builder, offset) = config.builder(consumer)?;
        builder.as_output(Value::Inactive);
        let request = builder.request().map_err(io)?;
        Ok(Self { request, offset })
    }
}

impl OutputLine for CdevOutput {
    fn set(&mut self, active: bool) -> Result<(), GpioError> {
        let value = if active {
            Value::Active
        } else {
            Value::Inactive
        };
        self.request.set_value(self.offset, value).map_err(io)
    }
}
