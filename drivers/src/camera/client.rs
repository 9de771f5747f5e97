//! The ONVIF client: SOAP over HTTP to one camera.
//!
//! Authentication follows what the camera asks for: every request carries a
//! WS-UsernameToken whose `Created` is the gateway's clock corrected by the
//! offset measured with `GetSystemDateAndTime` (asked without credentials
//! first); when the camera answers `401` with a `Digest` challenge, the
//! request is repeated with HTTP Digest (the `digest_auth` crate) and the
//! challenge is kept for the next requests. Every request has a deadline and
//! every body is read up to a byte cap, so a camera that hangs or floods
//! costs a bounded time and memory.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};

use super::soap::{self, Credentials, Request, SoapError};
use super::xml::{Element, MAX_BODY};
use crate::contract::now_ms;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CameraError {
    /// Connection refused/reset, DNS, TLS.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the deadline.
    #[error("timed out")]
    Timeout,
    /// The camera refused the credentials.
    #[error("credentials refused")]
    Unauthorized,
    /// An HTTP status other than success (without a SOAP fault).
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body was larger than allowed.
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
    /// A SOAP fault or an unusable reply.
    #[error(transparent)]
    Soap(#[from] SoapError),
}

impl CameraError {
    /// Whether the camera could not be reached at all (offline).
    pub fn is_offline(&self) -> bool {
        matches!(self, CameraError::Unreachable(_) | CameraError::Timeout)
    }
}

/// A client for one camera. Cheap to clone (shares the connection pool,
/// the clock offset and the digest challenge).
#[derive(Debug, Clone)]
pub struct OnvifClient {
    http: reqwest::Client,
    device_url: String,
    creds: Option<Credentials>,
    timeout: Duration,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Camera clock minus gateway clock, ms.
    offset_ms: i64,
    /// The last Digest challenge, reused for the next requests.
    digest: Option<digest_auth::WwwAuthenticateHeader>,
}

/// How long a connection to a camera may take to open (every request is
/// bounded as a whole by the camera's own timeout as well).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The one HTTP client every camera's requests go through: its TLS roots
/// and connection pools (per camera address) are built once. A client of
/// its own per camera cost about 200 KB each (`cargo bench -p gateway
/// --bench cameras`).
fn shared_http() -> reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(2)
            .build()
            .unwrap_or_default()
    })
    .clone()
}

impl OnvifClient {
    /// A client for the device service at `device_url`.
    pub fn new(device_url: &str, creds: Option<Credentials>, timeout: Duration) -> Self {
        Self {
            http: shared_http(),
            device_url: device_url.to_owned(),
            creds,
            timeout,
            shared: Arc::default(),
        }
    }

    /// The device service address.
    pub fn device_url(&self) -> &str {
        &self.device_url
    }

    /// Camera clock minus gateway clock, as last measured (ms).
    pub fn offset_ms(&self) -> i64 {
        self.lock().offset_ms
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Measures the camera's clock (unauthenticated first, then with
    /// credentials for cameras that insist) and keeps the offset for
    /// WS-UsernameToken. Returns the offset in ms.
    pub async fn sync_clock(&self) -> Result<i64, CameraError> {
        let sent = now_ms();
        let reply = match self
            .call_with(&self.device_url, &Request::GetSystemDateAndTime, false)
            .await
        {
            Err(CameraError::Unauthorized | CameraError::Status(_)) if self.creds.is_some() => {
                self.call(&self.device_url, &Request::GetSystemDateAndTime)
                    .await?
            }
            other => other?,
        };
        let received = now_ms();
        let camera = soap::system_time(&reply)?;
        // The camera read its clock somewhere between send and receive.
        let offset = camera - (sent + received) / 2;
        self.lock().offset_ms = offset;
        Ok(offset)
    }

    /// Sends `request` to `url` with credentials and parses the reply.
    pub async fn call(&self, url: &str, request: &Request) -> Result<Element, CameraError> {
        self.call_with(url, request, true).await
    }

    /// Like [`call`](Self::call) with a longer deadline (long polls).
    pub async fn call_long(
        &self,
        url: &str,
        request: &Request,
        extra: Duration,
    ) -> Result<Element, CameraError> {
        tokio::time::timeout(self.timeout + extra, self.exchange(url, request, true))
            .await
            .map_err(|_| CameraError::Timeout)?
    }

    async fn call_with(
        &self,
        url: &str,
        request: &Request,
        authenticate: bool,
    ) -> Result<Element, CameraError> {
        tokio::time::timeout(self.timeout, self.exchange(url, request, authenticate))
            .await
            .map_err(|_| CameraError::Timeout)?
    }

    async fn exchange(
        &self,
        url: &str,
        request: &Request,
        authenticate: bool,
    ) -> Result<Element, CameraError> {
        let creds = self.creds.as_ref().filter(|_| authenticate);
        let mut retried = false;
        loop {
            let security = creds.map(|c| {
                let nonce: [u8; 16] = rand::random();
                soap::security_header(c, &nonce, now_ms() + self.offset_ms())
            });
            let body = request.envelope(security.as_deref(), url);
            let mut builder = self
                .http
                .post(url)
                .header(
                    CONTENT_TYPE,
                    format!("{}; action=\"{}\"", soap::CONTENT_TYPE, request.action()),
                )
                .body(body.clone());
            if let Some(c) = creds
                && let Some(header) = self.digest_header(c, url, "POST")
            {
                builder = builder.header(AUTHORIZATION, header);
            }
            let response = builder.send().await.map_err(transport)?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && creds.is_some() && !retried {
                let challenge = response
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find(|v| v.trim_start().to_ascii_lowercase().starts_with("digest"))
                    .and_then(|v| digest_auth::parse(v).ok());
                if let Some(challenge) = challenge {
                    self.lock().digest = Some(challenge);
                    retried = true;
                    continue;
                }
            }
            let bytes = read_capped(response, MAX_BODY).await?;
            return match soap::reply(&bytes) {
                Ok(element) if status.is_success() => Ok(element),
                Ok(_) if status == StatusCode::UNAUTHORIZED => Err(CameraError::Unauthorized),
                Ok(_) => Err(CameraError::Status(status.as_u16())),
                Err(e) if e.is_unauthorized() => Err(CameraError::Unauthorized),
                Err(e @ SoapError::Fault { .. }) => Err(e.into()),
                Err(_) if status == StatusCode::UNAUTHORIZED => Err(CameraError::Unauthorized),
                Err(_) if !status.is_success() => Err(CameraError::Status(status.as_u16())),
                Err(e) => Err(e.into()),
            };
        }
    }

    fn digest_header(&self, creds: &Credentials, url: &str, method: &str) -> Option<String> {
        let mut shared = self.lock();
        let challenge = shared.digest.as_mut()?;
        let uri = reqwest::Url::parse(url).ok().map(|u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        })?;
        let context = digest_auth::AuthContext::new_with_method(
            creds.username.as_str(),
            creds.password.as_str(),
            uri,
            Option::<&[u8]>::None,
            digest_auth::HttpMethod::from(method.to_owned()),
        );
        challenge
            .respond(&context)
            .ok()
            .map(|h| h.to_header_string())
    }

    /// Fetches a JPEG snapshot: `GET uri` with the camera's HTTP auth,
    /// at most `max_bytes`, within `deadline`.
    pub async fn snapshot(
        &self,
        uri: &str,
        max_bytes: usize,
        deadline: Duration,
    ) -> Result<Vec<u8>, CameraError> {
        tokio::time::timeout(deadline, async {
            let mut retried = false;
            loop {
                let mut builder = self.http.get(uri);
                if let Some(c) = &self.creds
                    && let Some(header) = self.digest_header(c, uri, "GET")
                {
                    builder = builder.header(AUTHORIZATION, header);
                }
                let response = builder.send().await.map_err(transport)?;
                let status = response.status();
                if status == StatusCode::UNAUTHORIZED
                    && !retried
                    && let Some(c) = &self.creds
                {
                    let headers: Vec<String> = response
                        .headers()
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok().map(str::to_owned))
                        .collect();
                    retried = true;
                    if let Some(d) = headers
                        .iter()
                        .find(|v| v.trim_start().to_ascii_lowercase().starts_with("digest"))
                        .and_then(|v| digest_auth::parse(v).ok())
                    {
                        self.lock().digest = Some(d);
                        continue;
                    }
                    if headers
                        .iter()
                        .any(|v| v.trim_start().to_ascii_lowercase().starts_with("basic"))
                    {
                        let response = self
                            .http
                            .get(uri)
                            .basic_auth(&c.username, Some(&c.password))
                            .send()
                            .await
                            .map_err(transport)?;
                        return finish_snapshot(response, max_bytes).await;
                    }
                }
                return finish_snapshot(response, max_bytes).await;
            }
        })
        .await
        .map_err(|_| CameraError::Timeout)?
    }
}

async fn finish_snapshot(
    response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, CameraError> {
    match response.status() {
        StatusCode::UNAUTHORIZED => Err(CameraError::Unauthorized),
        s if !s.is_success() => Err(CameraError::Status(s.as_u16())),
        _ => read_capped(response, max_bytes).await,
    }
}

/// Reads a body up to `cap` bytes; larger (declared or actual) is an error.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, CameraError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(CameraError::TooLarge(cap));
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if out.len() + chunk.len() > cap {
            return Err(CameraError::TooLarge(cap));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn transport(e: reqwest::Error) -> CameraError {
    if e.is_timeout() {
        CameraError::Timeout
    } else {
        // Without the URL: it may carry credentials in odd configurations.
        CameraError::Unreachable(super::xml::short(&e.without_url().to_string()))
    }
}
