//! `/users` (用户管理, admin only): list, add, reset a password (which logs
//! that user out everywhere), remove (never the last admin). Every change
//! is audited (`user_added`, `password_changed`, `user_removed`,
//! `user_unlocked`) with the acting admin and the remote address. Clearing
//! a user's login delays (after repeated wrong passwords) is here too.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::login::{name_message, password_message};
use super::{Chrome, Opt, PanelAction, audit_by, options, record_audit};
use crate::auth::{AuthError, Permission, Role, password, users};
use crate::events::PanelAudit;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::kit::{Flash, done};
use crate::web::panel::view::local_time;
use crate::web::panel::{Panel, PanelCore, PanelError};

/// A user as a row.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub(crate) name: String,
    pub(crate) role: &'static str,
    pub(crate) created: String,
    pub(crate) password_changed: String,
}

/// What the add form holds, and its problems per field.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddEntered {
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) name_error: Option<&'static str>,
    pub(crate) role_error: Option<&'static str>,
    pub(crate) password_error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    c: Chrome,
    users: Vec<UserRow>,
    roles: Vec<Opt>,
    add: AddEntered,
    flash: Option<(&'static str, String)>,
}

async fn users_page(
    core: &PanelCore,
    viewer: &Viewer,
    status: StatusCode,
    add: AddEntered,
    flash: Option<(&'static str, String)>,
) -> Result<Response, PanelError> {
    let t = viewer.t();
    let users = core
        .auth
        .users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            role: t.role(u.role),
            created: local_time(u.created_ms),
            password_changed: local_time(u.password_changed_ms),
            name: u.name,
        })
        .collect();
    let page = UsersPage {
        c: Chrome::new(viewer, "users"),
        users,
        roles: options(
            Role::ALL.iter().map(|r| (r.as_str(), t.role(*r))),
            &add.role,
        ),
        add,
        flash,
    };
    Ok(render(status, &page))
}

/// `GET /users`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageUsers)?;
    let core = panel.core()?;
    users_page(&core, &viewer, StatusCode::OK, AddEntered::default(), None).await
}

/// `POST /users/{name}/unlock`: clears the login delays on a user.
pub(in crate::web::panel) async fn unlock(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageUsers)?;
    let core = panel.core()?;
    let t = viewer.t();
    let cleared = core.auth.unlock(&name);
    record_audit(
        &core,
        None,
        audit_by(&viewer, PanelAction::UserUnlocked)
            .on(name.as_str())
            .detail(if cleared {
                "cleared"
            } else {
                "nothing to clear"
            }),
    )
    .await;
    Ok(done(
        &viewer,
        "/users",
        Flash::ok(format!("{}: {name}", t.user_unlocked_msg)),
    ))
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /users`: adds a user.
pub(in crate::web::panel) async fn add(
    State(panel): State<Panel>,
    viewer: Viewer,
    Form(form): Form<AddForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageUsers)?;
    let core = panel.core()?;
    let t = viewer.t();
    let name = form.name.trim().to_owned();
    let role = Role::parse(&form.role);
    let mut entered = AddEntered {
        name_error: users::check_name(&name).err().map(|p| name_message(t, p)),
        role_error: role.is_none().then_some(t.err_role),
        password_error: password::check(&form.password, Some(&form.confirm))
            .err()
            .map(|p| password_message(t, p)),
        name,
        role: form.role.clone(),
    };
    let invalid = entered.name_error.is_some()
        || entered.role_error.is_some()
        || entered.password_error.is_some();
    let Some(role) = role.filter(|_| !invalid) else {
        return users_page(
            &core,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            entered,
            None,
        )
        .await;
    };
    match core
        .auth
        .add_user(&entered.name, role, &form.password)
        .await
    {
        Ok(user) => {
            record_audit(
                &core,
                None,
                PanelAudit {
                    role: Some(role.as_str()),
                    ..audit_by(&viewer, PanelAction::UserAdded).on(user.name.as_str())
                },
            )
            .await;
            Ok(done(&viewer, "/users", Flash::ok(t.user_added)))
        }
        Err(AuthError::UserExists) => {
            entered.name_error = Some(t.err_user_exists);
            users_page(
                &core,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                entered,
                None,
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
pub(in crate::web::panel) struct PasswordForm {
    #[serde(default)]
    password: String,
}

/// `POST /users/{name}/password`: sets a new password; that user's
/// sessions all end.
pub(in crate::web::panel) async fn reset_password(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageUsers)?;
    let core = panel.core()?;
    let t = viewer.t();
    if let Err(problem) = password::check(&form.password, None) {
        let flash = Some(("bad", format!("{name}: {}", password_message(t, problem))));
        return users_page(
            &core,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            AddEntered::default(),
            flash,
        )
        .await;
    }
    match core.auth.set_password(&name, &form.password).await {
        Ok(ended) => {
            record_audit(
                &core,
                None,
                PanelAudit {
                    sessions_ended: Some(ended),
                    ..audit_by(&viewer, PanelAction::PasswordChanged).on(name.as_str())
                },
            )
            .await;
            if name == viewer.user.name {
                return Ok(Redirect::to("/login").into_response());
            }
            Ok(done(&viewer, "/users", Flash::ok(t.password_reset_done)))
        }
        Err(AuthError::NoSuchUser) => Err(PanelError::NotFound(viewer.ctx.lang)),
        Err(error) => Err(error.into()),
    }
}

/// `POST /users/{name}/remove`: removes a user (not the last admin).
pub(in crate::web::panel) async fn remove(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::ManageUsers)?;
    let core = panel.core()?;
    let t = viewer.t();
    match core.auth.remove_user(&name).await {
        Ok(user) => {
            record_audit(
                &core,
                None,
                PanelAudit {
                    role: Some(user.role.as_str()),
                    ..audit_by(&viewer, PanelAction::UserRemoved).on(user.name.as_str())
                },
            )
            .await;
            Ok(done(&viewer, "/users", Flash::ok(t.user_removed)))
        }
        Err(AuthError::LastAdmin) => {
            let flash = Some(("bad", t.err_last_admin.to_owned()));
            users_page(
                &core,
                &viewer,
                StatusCode::CONFLICT,
                AddEntered::default(),
                flash,
            )
            .await
        }
        Err(AuthError::NoSuchUser) => Err(PanelError::NotFound(viewer.ctx.lang)),
        Err(error) => Err(error.into()),
    }
}
