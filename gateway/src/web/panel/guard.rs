//! The one gate every panel request passes ([`middleware`]): it finds the
//! language, the remote address and the session (from the `gh_session`
//! cookie), and refuses every state-changing request (any method but GET
//! and HEAD) that does not carry the right CSRF token, with 403 and a count
//! in `gatehouse_http_rejected_total{route="panel",reason="csrf"}`.
//!
//! - With a session: the synchronizer token of the session, in the form
//!   field `csrf` or the `X-CSRF-Token` header (for `fetch`).
//! - Without one (`/login`, `/setup`): a double-submit token, the form field
//!   `csrf` equal to the `gh_pre` cookie that the form's page set.
//!
//! Before that, a request whose `Host` is neither an IP address,
//! `localhost`, nor one of `[panel] hosts` is refused (421, counted as
//! `reason="host"`): a page loaded through a rebound DNS name cannot talk
//! to the panel. Under TLS every answer carries Strict-Transport-Security.
//!
//! Handlers then take a [`Viewer`] (a live session is required) or a [`Ctx`].

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use super::i18n::{Lang, Strings};
use super::kit::FlashBox;
use super::pages::intercom::RingView;
use super::{Panel, PanelError};
use crate::auth::{Permission, Session, User, token};

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "gh_session";
/// The double-submit cookie of the login and setup forms.
pub(crate) const PRE_COOKIE: &str = "gh_pre";
/// The language cookie.
pub(crate) const LANG_COOKIE: &str = "gh_lang";
/// The header `fetch` requests carry the CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// Largest form body the guard reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What the guard found out about a request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The page language.
    pub(crate) lang: Lang,
    /// The peer's address.
    pub(crate) remote: Option<IpAddr>,
    /// The live session, if any.
    pub(crate) session: Option<Session>,
    /// The session cookie's token, if any (to end it at logout).
    pub(crate) cookie: Option<String>,
    /// The request's path and query (for "return here after login").
    pub(crate) path: String,
    /// Whether cookies get `Secure`.
    pub(crate) secure: bool,
    /// Flashes between an action and the next page, used one-time keys.
    pub(crate) memo: FlashBox,
    /// Reads waiting for a guard's decision (the badge on every page).
    pub(crate) waiting: usize,
    /// Door-station calls ringing now (the banner on every page).
    pub(crate) ringing: Vec<RingView>,
}

impl Ctx {
    /// The strings of the request's language.
    pub(crate) fn t(&self) -> &'static Strings {
        self.lang.strings()
    }

    /// A cookie with the panel's attributes: HttpOnly, SameSite=Strict,
    /// Path=/, Secure over TLS.
    pub(crate) fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/")
            .secure(self.secure)
            .build()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .ok_or_else(|| PanelError::Internal("panel guard not installed".into()))
    }
}

/// A request with a live session.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// Who.
    pub(crate) user: User,
    /// Their session's CSRF token (for the forms on the page).
    pub(crate) csrf: String,
    /// Everything else the guard found.
    pub(crate) ctx: Ctx,
}

impl Viewer {
    /// `Forbidden` unless the role may do `permission`.
    pub(crate) fn require(&self, permission: Permission) -> Result<(), PanelError> {
        if self.user.role.allows(permission) {
            Ok(())
        } else {
            Err(PanelError::Forbidden(self.ctx.lang))
        }
    }

    /// Whether the role may do `permission`.
    pub(crate) fn may(&self, permission: Permission) -> bool {
        self.user.role.allows(permission)
    }

    /// The strings of the request's language.
    pub(crate) fn t(&self) -> &'static Strings {
        self.ctx.t()
    }

    /// The remote address as text, for audit records.
    pub(crate) fn remote(&self) -> Option<String> {
        self.ctx.remote.map(|a| a.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = Ctx::from_request_parts(parts, state).await?;
        match ctx.session.clone() {
            Some(session) => Ok(Viewer {
                user: session.user,
                csrf: session.csrf,
                ctx,
            }),
            None => Err(PanelError::LoginRequired {
                next: ctx.path.clone(),
                page: parts.method == Method::GET,
            }),
        }
    }
}

fn language(request: &Request, jar: &CookieJar) -> Lang {
    let from_query = request.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(&v))
    });
    from_query
        .or_else(|| jar.get(LANG_COOKIE).and_then(|c| Lang::parse(c.value())))
        .unwrap_or_default()
}

/// Whether `host` (a `Host` header, maybe with a port) names this panel:
/// an IP address, `localhost`, or one of `names`.
pub(crate) fn host_allowed(host: &str, names: &[String]) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split(']')
            .next()
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok() || name == "localhost" || names.contains(&name)
}

/// Strict-Transport-Security under TLS: a year, this host only.
const HSTS: &str = "max-age=31536000";

/// Resolves the request's [`Ctx`] and enforces CSRF on state changes.
pub(super) async fn middleware(
    State(panel): State<Panel>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    if let Some(host) = host
        && !host_allowed(&host, &panel.hosts)
    {
        panel.metrics.rejected("panel", "host");
        return (
            axum::http::StatusCode::MISDIRECTED_REQUEST,
            "this host name is not configured for the panel ([panel] hosts)\n",
        )
            .into_response();
    }
    let mut response = guarded(panel.clone(), request, next).await;
    if panel.secure_cookies {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static(HSTS),
        );
    }
    response
}

async fn guarded(panel: Panel, request: Request, next: Next) -> Response {
    let jar = CookieJar::from_headers(request.headers());
    let lang = language(&request, &jar);
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| {
            // Router tests stand in a peer address this way.
            request
                .extensions()
                .get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>()
                .map(|mock| mock.0.ip())
        });
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let cookie = jar
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty());
    let mut session = None;
    let mut waiting = 0;
    let mut ringing = Vec::new();
    if let (Some(cookie), Ok(core)) = (&cookie, panel.core()) {
        waiting = core.board.pending().len();
        ringing = RingView::all(&core.intercom.ringing(), &core.drivers, lang.strings());
        // The live streams re-check their session without counting as use
        // (the ringing banner's is open on every page).
        let touch = !matches!(request.uri().path(), "/live/stream" | "/intercom/ringing");
        match core.auth.session(cookie, touch).await {
            Ok(found) => session = found,
            Err(error) => return PanelError::from(error).into_response(),
        }
    }
    let ctx = Ctx {
        lang,
        remote,
        session,
        cookie,
        path,
        secure: panel.secure_cookies,
        memo: panel.memo.clone(),
        waiting,
        ringing,
    };

    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    let request = if safe {
        request
    } else {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return (axum::http::StatusCode::PAYLOAD_TOO_LARGE, "too large\n").into_response();
        };
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let form_token = is_form
            .then(|| {
                form_urlencoded::parse(&bytes)
                    .find(|(k, _)| k == "csrf")
                    .map(|(_, v)| v.into_owned())
            })
            .flatten();
        let header_token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let presented = form_token.or(header_token).unwrap_or_default();
        let pre_session = matches!(parts.uri.path(), "/login" | "/setup");
        let expected = if pre_session {
            jar.get(PRE_COOKIE).map(|c| c.value().to_owned())
        } else {
            ctx.session.as_ref().map(|s| s.csrf.clone())
        };
        let valid = expected
            .filter(|e| !e.is_empty() && !presented.is_empty())
            .is_some_and(|e| token::same(&e, &presented));
        if !valid {
            panel.metrics.rejected("panel", "csrf");
            tracing::warn!(path = %parts.uri.path(), remote = ?remote, "State-changing request without a valid CSRF token refused.");
            return PanelError::Csrf(lang).into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    };
    let mut request = request;
    request.extensions_mut().insert(ctx);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn only_addresses_localhost_and_configured_names_are_this_panel() {
        let names = vec!["gate.estate.example".to_owned()];
        for ok in [
            "192.168.1.10",
            "192.168.1.10:8080",
            "[fe80::1]:8080",
            "[::1]",
            "localhost:8080",
            "LOCALHOST",
            "gate.estate.example",
            "Gate.Estate.Example.:443",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for refused in [
            "attacker.example",
            "attacker.example:8080",
            "[nonsense]",
            "gate.estate.example.evil",
        ] {
            assert!(!host_allowed(refused, &names), "{refused}");
        }
    }
}
