//! Log setup: `tracing` to standard error, filtered by `GATEHOUSE_LOG`
//! (default `info`), formatted by `GATEHOUSE_LOG_FORMAT` (`plain`, the
//! default, or `json` for journald/log shippers).
//!
//! Levels mean: ERROR — data may be lost or a person must act; WARN — a
//! failure the gateway recovered from; INFO — lifecycle; DEBUG — details,
//! never one line per routine event at INFO or above.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing_subscriber::EnvFilter;

/// How often a line that a peer can repeat at will is logged.
pub const PEER_LOG_EVERY: Duration = Duration::from_secs(60);

/// Rate limit for a log line a peer can cause at will (a refused request,
/// a dropped message): one line per interval, carrying the count of the
/// occurrences it stands for. Usable as a `static`.
#[derive(Debug)]
pub struct Every {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Every {
    /// One line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// One line per [`PEER_LOG_EVERY`].
    pub const fn minute() -> Self {
        Self::new(PEER_LOG_EVERY)
    }

    /// Counts one occurrence; `Some(count)` when a line may be logged now,
    /// `count` being the occurrences since the last line (this one included).
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, count) = &mut *state;
        *count += 1;
        match last {
            Some(at) if now.duration_since(*at) < self.interval => None,
            _ => {
                *last = Some(now);
                Some(std::mem::take(count))
            }
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// Parses `GATEHOUSE_LOG_FORMAT`; anything but `json` is plain.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Plain,
        }
    }
}

/// What is logged when `GATEHOUSE_LOG` is not set: INFO, but the embedded
/// broker (demo) only from WARN (it logs every connection and subscription).
pub const DEFAULT_FILTER: &str = "info,rumqttd=warn";

/// Installs the global subscriber from the process environment. Safe to
/// call once; a second call is ignored.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let format = Format::parse(std::env::var("GATEHOUSE_LOG_FORMAT").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Json => builder.json().try_init(),
        Format::Plain => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_line_is_logged_once_per_interval_with_its_count() {
        let every = Every::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(every.allow_at(t0), Some(1));
        for n in 1..1000 {
            assert_eq!(every.allow_at(t0 + Duration::from_millis(n)), None);
        }
        assert_eq!(every.allow_at(t0 + Duration::from_secs(60)), Some(1000));
        assert_eq!(every.allow_at(t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn only_json_selects_json() {
        assert_eq!(Format::parse(Some("json")), Format::Json);
        assert_eq!(Format::parse(Some("JSON")), Format::Json);
        assert_eq!(Format::parse(Some("plain")), Format::Plain);
        assert_eq!(Format::parse(None), Format::Plain);
    }
}
