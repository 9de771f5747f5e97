//! An HTTP client that signs with HTTP Digest (RFC 7616/2617), as door
//! stations demand: the first request goes out unsigned, a `401` with a
//! `WWW-Authenticate: Digest` challenge is answered once, and the challenge
//! is reused (with a growing nonce count) until the station asks again.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use digest_auth::{AuthContext, HttpMethod, WwwAuthenticateHeader};
use reqwest::{Method, StatusCode};

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The station refused the credentials.
    #[error("wrong user name or password")]
    Unauthorized,
    /// Connection, timeout or protocol failure.
    #[error("{0}")]
    Transport(String),
    /// The station answered with an unexpected status.
    #[error("HTTP status {0}")]
    Status(u16),
}

/// A digest-signing client for one station (its `Debug` hides the password).
pub struct DigestClient {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
    challenge: Mutex<Option<WwwAuthenticateHeader>>,
    /// Bounds a stream's request up to its response headers.
    connect_timeout: Duration,
}

/// The one HTTP client every station's requests go through: its TLS roots
/// and connection pools (per station address) are built once; a client of
/// its own per station cost about 200 KB each.
fn shared_http() -> reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default()
    })
    .clone()
}

impl std::fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestClient")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl DigestClient {
    /// A client for `base` (`http://host:port`) with a per-request timeout
    /// for connecting (the body of a stream is read without one).
    pub fn new(base: &str, user: &str, password: &str, connect_timeout: Duration) -> Self {
        Self {
            http: shared_http(),
            connect_timeout,
            base: base.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            challenge: Mutex::new(None),
        }
    }

    /// Sends a request, answering one digest challenge. `timeout` bounds the
    /// time to the response headers (`None` for a stream).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, HttpError> {
        let mut fresh = false;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            // A request is bounded as a whole; a stream up to its headers.
            let bound = timeout.unwrap_or(self.connect_timeout);
            if let Some(t) = timeout {
                request = request.timeout(t);
            }
            if let Some(body) = body {
                request = request.body(body.to_owned());
            }
            if let Some(auth) = self.authorization(&method, path, body) {
                request = request.header(reqwest::header::AUTHORIZATION, auth);
            }
            let response = tokio::time::timeout(bound, request.send())
                .await
                .map_err(|_| HttpError::Transport("timed out".into()))?
                .map_err(|e| HttpError::Transport(without_url(&e)))?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if fresh {
                return Err(HttpError::Unauthorized);
            }
            let prompt = response
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| digest_auth::parse(v).ok())
                .ok_or(HttpError::Unauthorized)?;
            *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(prompt);
            fresh = true;
        }
    }

    fn authorization(&self, method: &Method, path: &str, body: Option<&str>) -> Option<String> {
        let mut guard = self.challenge.lock().unwrap_or_else(|p| p.into_inner());
        let prompt = guard.as_mut()?;
        let mut context = AuthContext::new_with_method(
            self.user.as_str(),
            self.password.as_str(),
            path,
            body.map(str::as_bytes),
            HttpMethod::from(method.as_str().to_owned()),
        );
        context.body = body.map(|b| std::borrow::Cow::Borrowed(b.as_bytes()));
        prompt.respond(&context).ok().map(|h| h.to_header_string())
    }
}

/// A reqwest error's text without the URL (which may carry a query).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}
