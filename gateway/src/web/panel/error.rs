//! How a panel request fails: each case becomes a response a guard can
//! read (in their language), and internal errors become a generic 500 with
//! the cause only in the log, never on the page.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::i18n::{Lang, Strings};

/// A failed panel request.
#[derive(Debug)]
pub(crate) enum PanelError {
    /// No live session: pages redirect to the login, other requests get 401.
    LoginRequired {
        /// Where to return after logging in (a local path).
        next: String,
        /// Whether this was a page load (redirect) or not (401).
        page: bool,
    },
    /// The role may not do this.
    Forbidden(Lang),
    /// No such page or device.
    NotFound(Lang),
    /// A state-changing request without the right CSRF token.
    Csrf(Lang),
    /// The gateway is still starting.
    Starting,
    /// Something broke; the cause is logged, not shown.
    Internal(String),
}

impl<E: std::error::Error> From<E> for PanelError {
    fn from(error: E) -> Self {
        PanelError::Internal(error.to_string())
    }
}

/// A bare message page (errors).
#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub(crate) t: &'static Strings,
    pub(crate) lang: &'static str,
    pub(crate) title: &'static str,
    pub(crate) text: &'static str,
}

impl MessagePage {
    pub(crate) fn new(lang: Lang, title: &'static str, text: &'static str) -> Self {
        Self {
            t: lang.strings(),
            lang: lang.code(),
            title,
            text,
        }
    }
}

/// Renders a template, or a 500 when rendering fails.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => PanelError::Internal(error.to_string()).into_response(),
    }
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        match self {
            PanelError::LoginRequired { next, page: true } => {
                let next = form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            PanelError::LoginRequired { page: false, .. } => {
                (StatusCode::UNAUTHORIZED, "login required\n").into_response()
            }
            PanelError::Forbidden(lang) => {
                let t = lang.strings();
                render(
                    StatusCode::FORBIDDEN,
                    &MessagePage::new(lang, t.forbidden_title, t.forbidden_text),
                )
            }
            PanelError::NotFound(lang) => {
                let t = lang.strings();
                render(
                    StatusCode::NOT_FOUND,
                    &MessagePage::new(lang, t.not_found_title, t.not_found_text),
                )
            }
            PanelError::Csrf(lang) => {
                let t = lang.strings();
                render(
                    StatusCode::FORBIDDEN,
                    &MessagePage::new(lang, t.csrf_title, t.csrf_text),
                )
            }
            PanelError::Starting => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "2")],
                "starting\n",
            )
                .into_response(),
            PanelError::Internal(cause) => {
                tracing::error!(error = %cause, "Panel request failed.");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
            }
        }
    }
}
