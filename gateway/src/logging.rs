//! Log setup: `tracing` to standard error, filtered by `GATEHOUSE_LOG`
//! (default `info`), formatted by `GATEHOUSE_LOG_FORMAT` (`plain`, the
//! default, or `json` for journald/log shippers).
//!
//! Levels mean: ERROR — data may be lost or a person must act; WARN — a
//! failure the gateway recovered from; INFO — lifecycle; DEBUG — details,
//! never one line per routine event at INFO or above.

use tracing_subscriber::EnvFilter;

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

/// Installs the global subscriber from the process environment. Safe to
/// call once; a second call is ignored.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
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
    fn only_json_selects_json() {
        assert_eq!(Format::parse(Some("json")), Format::Json);
        assert_eq!(Format::parse(Some("JSON")), Format::Json);
        assert_eq!(Format::parse(Some("plain")), Format::Plain);
        assert_eq!(Format::parse(None), Format::Plain);
    }
}
