//! The HTTPS sink: `POST {base_url}/v1/estates/{estate_id}/gateways/{gateway_id}/events`
//! with a JSON batch `{"events": [envelope, …]}` and a bearer token.
//!
//! | answer | outcome |
//! | --- | --- |
//! | 2xx | every event delivered |
//! | 429, 5xx, timeout, connection error | retry (after `Retry-After` when given, else backoff) |
//! | 400, 413, 422 (the per-event rejections in `docs/uplink.md`) | rejected; a batch of several is split and each event sent alone, so only the events the platform refuses are rejected |
//! | any other 4xx (401, 403, 404, …) | refused: the platform refuses the gateway itself (token, URL); retried with backoff, and an alarm says so |
//!
//! Rejected events go to the dead-letter table with the status and the
//! start of the answer as the reason; a refusal never deletes anything. TLS
//! is rustls (ring) with the system's roots plus an optional CA file.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::status::UplinkStatus;
use super::{Outcome, Sink};
use crate::config::{HttpsConfig, Secret};
use crate::wire::Envelope;

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// How much of an error answer is kept as the reason.
const REASON_CHARS: usize = 200;

/// The HTTPS sink.
#[derive(Debug)]
pub struct HttpsSink {
    client: reqwest::Client,
    url: String,
    token: Option<Secret>,
    status: Arc<UplinkStatus>,
}

impl HttpsSink {
    /// A sink for this estate and gateway.
    pub fn new(
        config: &HttpsConfig,
        estate_id: &str,
        gateway_id: &str,
        status: Arc<UplinkStatus>,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout);
        if let Some(ca) = &config.ca_file {
            let pem =
                std::fs::read(ca).map_err(|e| format!("https ca_file {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("https ca_file {}: {e}", ca.display()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| format!("https client: {e}"))?;
        Ok(Self {
            client,
            url: format!(
                "{}/v1/estates/{estate_id}/gateways/{gateway_id}/events",
                config.base_url
            ),
            token: config.token.clone(),
            status,
        })
    }

    /// Posts one batch; one outcome for the whole batch.
    async fn post(&self, batch: &[Envelope]) -> Outcome {
        let mut request = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({ "events": batch }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                self.status.set_connected(false);
                tracing::debug!(error = %error.without_url(), "Uplink HTTPS request failed.");
                return Outcome::Retry(None);
            }
        };
        let status = response.status();
        let hint = retry_after(response.headers());
        if status.is_success() {
            self.status.set_connected(true);
            return Outcome::Delivered;
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.status.set_connected(true);
            return Outcome::Retry(hint);
        }
        if status.is_server_error() {
            self.status.set_connected(false);
            return Outcome::Retry(hint);
        }
        self.status.set_connected(true);
        let body = response.text().await.unwrap_or_default();
        let excerpt: String = body.chars().take(REASON_CHARS).collect();
        let reason = format!("HTTP {}: {excerpt}", status.as_u16());
        if rejects_the_events(status) {
            Outcome::Rejected(reason)
        } else {
            Outcome::Refused(reason)
        }
    }
}

/// Whether an answer rejects the events themselves (dead-letter them)
/// rather than the gateway (retry): only the documented per-event answers
/// do; a wrong token or URL never deletes an event.
pub fn rejects_the_events(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY
    )
}

/// `Retry-After` in seconds (HTTP dates are not honoured: backoff applies).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

impl Sink for HttpsSink {
    async fn send(&mut self, batch: &[Envelope]) -> Vec<Outcome> {
        match self.post(batch).await {
            Outcome::Rejected(reason) if batch.len() > 1 => {
                tracing::warn!(
                    reason,
                    events = batch.len(),
                    "Uplink batch rejected; sending its events one by one."
                );
                let mut outcomes = Vec::with_capacity(batch.len());
                for (i, event) in batch.iter().enumerate() {
                    match self.post(std::slice::from_ref(event)).await {
                        outcome @ (Outcome::Delivered | Outcome::Rejected(_)) => {
                            outcomes.push(outcome);
                        }
                        outcome @ (Outcome::Retry(_) | Outcome::Refused(_)) => {
                            // Stop here: the rest is retried later, in order.
                            outcomes.extend(std::iter::repeat_n(outcome, batch.len() - i));
                            break;
                        }
                    }
                }
                outcomes
            }
            outcome => vec![outcome; batch.len()],
        }
    }

    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn only_the_documented_answers_reject_events() {
        for code in [400, 413, 422] {
            let status = StatusCode::from_u16(code).expect("status");
            assert!(rejects_the_events(status), "{code}");
        }
        for code in [401, 403, 404, 405, 407, 410, 451] {
            let status = StatusCode::from_u16(code).expect("status");
            assert!(!rejects_the_events(status), "{code} must not dead-letter");
        }
    }

    #[test]
    fn retry_after_seconds_are_honoured_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("99999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }
}
