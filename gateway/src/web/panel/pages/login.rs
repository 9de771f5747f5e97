//! Logging in and out, the one-time setup of the first admin, and the
//! language switch. Every login attempt is audited (`user_login`,
//! `user_login_failed`, `user_locked`, `user_logout`, `user_added`), with
//! the remote address and never the password.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;
use std::time::Instant;

use super::{PanelAction, audit_by, record_audit};
use crate::auth::{
    AuthError, LockKey, LoginOutcome, PasswordProblem, Role, password, token, users,
};
use crate::events::PanelAudit;
use crate::web::panel::error::{MessagePage, render};
use crate::web::panel::guard::{Ctx, LANG_COOKIE, PRE_COOKIE, SESSION_COOKIE, Viewer};
use crate::web::panel::i18n::{Lang, Strings};
use crate::web::panel::{Panel, PanelError};

/// Longest name taken from the login form (twice the longest user name).
const MAX_TYPED_NAME: usize = 2 * users::MAX_NAME_CHARS;

/// `next` when it is a path on this site, else `/live` (no open redirects).
pub(crate) fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_owned()
        }
        _ => "/live".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: &'static Strings,
    lang: &'static str,
    other_lang: &'static str,
    other_lang_name: &'static str,
    csrf: String,
    next: String,
    name: String,
    error: Option<String>,
    no_users: bool,
}

#[derive(Debug, Deserialize)]
pub(in crate::web::panel) struct NextQuery {
    next: Option<String>,
}

/// Renders the login form with a fresh double-submit token.
fn login_form(
    ctx: &Ctx,
    jar: CookieJar,
    status: StatusCode,
    next: String,
    name: String,
    error: Option<String>,
    no_users: bool,
) -> Response {
    let pre = token::random();
    let page = LoginPage {
        t: ctx.t(),
        lang: ctx.lang.code(),
        other_lang: ctx.lang.other().code(),
        other_lang_name: ctx.lang.other().strings().language_name,
        csrf: pre.clone(),
        next,
        name,
        error,
        no_users,
    };
    (jar.add(ctx.cookie(PRE_COOKIE, pre)), render(status, &page)).into_response()
}

/// `GET /login`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    ctx: Ctx,
    jar: CookieJar,
    Query(query): Query<NextQuery>,
) -> Result<Response, PanelError> {
    let next = local_next(query.next.as_deref());
    if ctx.session.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let no_users = panel.core()?.auth.user_count().await? == 0;
    Ok(login_form(
        &ctx,
        jar,
        StatusCode::OK,
        next,
        String::new(),
        None,
        no_users,
    ))
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /login`.
pub(in crate::web::panel) async fn submit(
    State(panel): State<Panel>,
    ctx: Ctx,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, PanelError> {
    let core = panel.core()?;
    let next = local_next(form.next.as_deref());
    // A name longer than any user's is cut before it is counted or
    // audited (a 50,000-character name must not widen the audit log).
    let name: String = form.name.trim().chars().take(MAX_TYPED_NAME).collect();
    let remote = ctx.remote.map(|a| a.to_string());
    let t = ctx.t();
    if core.auth.apply_unlock_request(&name).await? {
        record_audit(
            &core,
            None,
            PanelAudit {
                remote: None,
                via: Some("cli"),
                ..PanelAudit::new(PanelAction::UserUnlocked, "gatehouse user unlock", None)
                    .on(name.as_str())
            },
        )
        .await;
    }
    let outcome = core.auth.login(&name, &form.password, ctx.remote).await?;
    match outcome {
        LoginOutcome::Ok { user, cookie } => {
            // Rotation: the browser's old session, if any, ends here.
            if let Some(old) = &ctx.cookie {
                core.auth.logout(old).await?;
            }
            record_audit(
                &core,
                None,
                PanelAudit {
                    role: Some(user.role.as_str()),
                    ..PanelAudit::new(PanelAction::UserLogin, &user.name, remote.clone())
                },
            )
            .await;
            let jar = jar
                .remove(Cookie::build(PRE_COOKIE).path("/"))
                .add(ctx.cookie(SESSION_COOKIE, cookie));
            Ok((jar, Redirect::to(&next)).into_response())
        }
        LoginOutcome::BadCredentials { newly_locked } => {
            record_audit(
                &core,
                None,
                PanelAudit::new(PanelAction::UserLoginFailed, &name, remote.clone()),
            )
            .await;
            if !newly_locked.is_empty() {
                let keys: Vec<String> = newly_locked
                    .into_iter()
                    .map(|key| match key {
                        LockKey::User(user) => user,
                        LockKey::Address(addr) => addr.to_string(),
                        LockKey::Pair(user, addr) => format!("{user}@{addr}"),
                    })
                    .collect();
                record_audit(
                    &core,
                    None,
                    PanelAudit::new(PanelAction::UserLocked, &name, remote.clone())
                        .on(name.as_str())
                        .detail(keys.join(", ")),
                )
                .await;
            }
            Ok(login_form(
                &ctx,
                jar,
                StatusCode::UNAUTHORIZED,
                next,
                name,
                Some(t.login_failed.to_owned()),
                false,
            ))
        }
        LoginOutcome::Locked(locked) => {
            let seconds = locked.remaining.as_secs_f64().ceil().max(1.0);
            let message = t.login_locked.replace("{n}", &seconds.to_string());
            Ok(login_form(
                &ctx,
                jar,
                StatusCode::TOO_MANY_REQUESTS,
                next,
                name,
                Some(message),
                false,
            ))
        }
    }
}

/// `POST /logout`.
pub(in crate::web::panel) async fn logout(
    State(panel): State<Panel>,
    viewer: Viewer,
    jar: CookieJar,
) -> Result<Response, PanelError> {
    let core = panel.core()?;
    if let Some(cookie) = &viewer.ctx.cookie {
        core.auth.logout(cookie).await?;
    }
    record_audit(&core, None, audit_by(&viewer, PanelAction::UserLogout)).await;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/login")).into_response())
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    t: &'static Strings,
    lang: &'static str,
    csrf: String,
    token: String,
    name: String,
    name_error: Option<&'static str>,
    password_error: Option<&'static str>,
}

#[derive(Debug, Deserialize)]
pub(in crate::web::panel) struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn setup_invalid(lang: Lang) -> Response {
    let t = lang.strings();
    render(
        StatusCode::NOT_FOUND,
        &MessagePage::new(lang, t.setup_title, t.setup_invalid),
    )
}

fn setup_form(ctx: &Ctx, jar: CookieJar, status: StatusCode, page: SetupPage) -> Response {
    (
        jar.add(ctx.cookie(PRE_COOKIE, page.csrf.clone())),
        render(status, &page),
    )
        .into_response()
}

/// `GET /setup?token=…`: the first admin's form, while the link is valid
/// and no user exists.
pub(in crate::web::panel) async fn setup_page(
    State(panel): State<Panel>,
    ctx: Ctx,
    jar: CookieJar,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PanelError> {
    let core = panel.core()?;
    if core.auth.user_count().await? > 0
        || !core.auth.setup().is_valid(&query.token, Instant::now())
    {
        return Ok(setup_invalid(ctx.lang));
    }
    let page = SetupPage {
        t: ctx.t(),
        lang: ctx.lang.code(),
        csrf: token::random(),
        token: query.token,
        name: String::new(),
        name_error: None,
        password_error: None,
    };
    Ok(setup_form(&ctx, jar, StatusCode::OK, page))
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// The message for a name problem.
pub(crate) fn name_message(t: &'static Strings, problem: users::NameProblem) -> &'static str {
    match problem {
        users::NameProblem::Empty => t.err_required,
        users::NameProblem::TooLong => t.err_name_long,
        users::NameProblem::BadCharacter => t.err_name_bad,
    }
}

/// The message for a password problem.
pub(crate) fn password_message(t: &'static Strings, problem: PasswordProblem) -> &'static str {
    match problem {
        PasswordProblem::TooShort => t.err_password_short,
        PasswordProblem::TooLong => t.err_password_long,
        PasswordProblem::Mismatch => t.err_password_mismatch,
    }
}

/// `POST /setup`: creates the first admin, uses the link up, logs in.
pub(in crate::web::panel) async fn setup_submit(
    State(panel): State<Panel>,
    ctx: Ctx,
    jar: CookieJar,
    Form(form): Form<SetupForm>,
) -> Result<Response, PanelError> {
    let core = panel.core()?;
    let now = Instant::now();
    if core.auth.user_count().await? > 0 || !core.auth.setup().is_valid(&form.token, now) {
        return Ok(setup_invalid(ctx.lang));
    }
    let t = ctx.t();
    let name = form.name.trim().to_owned();
    let name_error = users::check_name(&name).err().map(|p| name_message(t, p));
    let password_error = password::check(&form.password, Some(&form.confirm))
        .err()
        .map(|p| password_message(t, p));
    if name_error.is_some() || password_error.is_some() {
        let page = SetupPage {
            t,
            lang: ctx.lang.code(),
            csrf: token::random(),
            token: form.token,
            name,
            name_error,
            password_error,
        };
        return Ok(setup_form(
            &ctx,
            jar,
            StatusCode::UNPROCESSABLE_ENTITY,
            page,
        ));
    }
    if !core.auth.setup().consume(&form.token, now) {
        return Ok(setup_invalid(ctx.lang));
    }
    let user = match core.auth.add_user(&name, Role::Admin, &form.password).await {
        Ok(user) => user,
        Err(AuthError::UserExists) => return Ok(setup_invalid(ctx.lang)),
        Err(error) => return Err(error.into()),
    };
    tracing::info!(user = %user.name, "First admin created with the setup link.");
    record_audit(
        &core,
        None,
        PanelAudit {
            role: Some("admin"),
            via: Some("setup_link"),
            ..PanelAudit::new(
                PanelAction::UserAdded,
                "setup",
                ctx.remote.map(|a| a.to_string()),
            )
            .on(user.name.as_str())
        },
    )
    .await;
    let cookie = core.auth.start_session(&user, ctx.remote).await?;
    let jar = jar
        .remove(Cookie::build(PRE_COOKIE).path("/"))
        .add(ctx.cookie(SESSION_COOKIE, cookie));
    Ok((jar, Redirect::to("/live")).into_response())
}

/// `GET /lang/{code}?next=…`: remembers the language in a cookie.
pub(in crate::web::panel) async fn switch_language(
    ctx: Ctx,
    jar: CookieJar,
    Path(code): Path<String>,
    Query(query): Query<NextQuery>,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or_default();
    let mut cookie = ctx.cookie(LANG_COOKIE, lang.code().to_owned());
    cookie.set_max_age(cookie::time::Duration::days(365));
    (
        jar.add(cookie),
        Redirect::to(&local_next(query.next.as_deref())),
    )
        .into_response()
}
