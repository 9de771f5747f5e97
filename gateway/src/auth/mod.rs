//! Who may use the panel and what they may do: users with argon2id
//! password hashes ([`users`], [`password`]), server-side sessions with
//! idle and absolute expiry and a per-session CSRF token ([`sessions`]),
//! login lockout per user and per address ([`lockout`]), the one-time setup
//! link ([`setup`]), random tokens ([`token`]), and roles ([`Role`],
//! [`Permission`]).
//!
//! [`Auth`] is the async face the panel uses: it owns one database
//! connection (from `Store::connect`) and runs every query and every hash on
//! the blocking pool. Auditing is the caller's job: this module decides,
//! the panel records (never a password).
//!
//! **Invariants:** no default password exists anywhere; the database keeps
//! only argon2id hashes and token digests; a password change ends every
//! session of that user; a locked name or address is refused before its
//! password is checked.

pub mod lockout;
pub mod password;
pub mod sessions;
pub mod setup;
pub mod token;
pub mod users;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use drivers::contract::now_ms;
use rusqlite::Connection;

pub use lockout::{LockKey, Locked, Lockout, LockoutPolicy};
pub use password::PasswordProblem;
pub use sessions::{Session, SessionPolicy};
pub use setup::SetupToken;
pub use users::{NameProblem, User};

/// A user's role. Each role includes everything the one before may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// 保安: watches, opens and closes lanes and doors with a reason,
    /// decides pending reads, registers visitors.
    Guard,
    /// 物业经理: plus residents' vehicles, cards, lists and reports.
    Manager,
    /// 管理员: plus users and devices.
    Admin,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 3] = [Role::Guard, Role::Manager, Role::Admin];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guard => "guard",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may do `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        self >= permission.least_role()
    }
}

/// Something a panel request does; each is checked server-side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See live events and devices.
    View,
    /// Open/close/hold lanes, pulse doors, poll devices (with a reason).
    Actuate,
    /// Allow or deny a pending plate read (phase 2).
    DecidePending,
    /// Register and revoke visitors (phase 2).
    RegisterVisitors,
    /// Read the audit log and export it.
    ViewAudit,
    /// Residents' vehicles, cards and lists (phase 2).
    ManageResidents,
    /// Add, remove users and reset their passwords.
    ManageUsers,
    /// Restart drivers.
    RestartDrivers,
    /// Write facility set-points and coils (with a reason, range-checked).
    WritePoints,
}

impl Permission {
    /// The least privileged role that has it.
    pub fn least_role(self) -> Role {
        match self {
            Permission::View
            | Permission::Actuate
            | Permission::DecidePending
            | Permission::RegisterVisitors => Role::Guard,
            Permission::ViewAudit | Permission::ManageResidents => Role::Manager,
            Permission::ManageUsers | Permission::RestartDrivers | Permission::WritePoints => {
                Role::Admin
            }
        }
    }
}

/// Errors of the user and session store.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A user with this name exists.
    #[error("a user with this name exists")]
    UserExists,
    /// No user with this name.
    #[error("no such user")]
    NoSuchUser,
    /// Removing the last admin would lock everyone out of user management.
    #[error("the last admin cannot be removed")]
    LastAdmin,
    /// The name is not acceptable.
    #[error("{0}")]
    Name(#[from] NameProblem),
    /// The password is not acceptable.
    #[error("{0}")]
    Password(#[from] PasswordProblem),
    /// Hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
    /// The blocking task did not finish (shutting down).
    #[error("auth task failed")]
    Task,
}

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Logged in: a fresh session.
    Ok {
        /// Who.
        user: User,
        /// The cookie token (only its digest is stored).
        cookie: String,
    },
    /// Wrong name or password; the keys this failure locked, if any.
    BadCredentials {
        /// Newly locked keys (audit them once).
        newly_locked: Vec<LockKey>,
    },
    /// Refused without checking the password: locked.
    Locked(Locked),
}

/// The connection and the sessions held beside it (one lock for both).
struct Db {
    conn: Connection,
    held: sessions::Held,
}

struct Inner {
    db: Mutex<Db>,
    policy: SessionPolicy,
    lockout: Lockout,
    setup: SetupToken,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Users, sessions, lockout and setup for the panel (cheap to clone).
#[derive(Debug, Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl Auth {
    /// The service over `conn` (a connection to the gateway's database).
    pub fn new(conn: Connection, policy: SessionPolicy, lockout: LockoutPolicy) -> Auth {
        Auth {
            inner: Arc::new(Inner {
                db: Mutex::new(Db {
                    conn,
                    held: sessions::Held::default(),
                }),
                policy,
                lockout: Lockout::new(lockout),
                setup: SetupToken::default(),
            }),
        }
    }

    /// The session expiry policy.
    pub fn policy(&self) -> SessionPolicy {
        self.inner.policy
    }

    /// The one-time setup token.
    pub fn setup(&self) -> &SetupToken {
        &self.inner.setup
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn db<T, F>(&self, f: F) -> Result<T, AuthError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, AuthError> + Send + 'static,
    {
        self.with_db(move |db| f(&mut db.conn)).await
    }

    /// Runs `f` with the connection and the held sessions on the blocking
    /// pool.
    async fn with_db<T, F>(&self, f: F) -> Result<T, AuthError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, AuthError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = inner.db.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut db)
        })
        .await
        .map_err(|_| AuthError::Task)?
    }

    /// How many sessions are held in memory because their rows could not
    /// be written ([`sessions::Held`]).
    pub async fn held_sessions(&self) -> Result<usize, AuthError> {
        self.with_db(|db| Ok(db.held.len())).await
    }

    /// How many users exist.
    pub async fn user_count(&self) -> Result<u64, AuthError> {
        self.db(|c| users::count(c)).await
    }

    /// Every user.
    pub async fn users(&self) -> Result<Vec<User>, AuthError> {
        self.db(|c| users::list(c)).await
    }

    /// Checks a login; on success starts a new session (the caller drops
    /// any session the browser had: rotation).
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        remote: Option<IpAddr>,
    ) -> Result<LoginOutcome, AuthError> {
        if let Err(locked) = self.inner.lockout.check(name, remote, Instant::now()) {
            return Ok(LoginOutcome::Locked(locked));
        }
        let owned = name.to_owned();
        let found = self.db(move |c| users::find(c, &owned)).await?;
        let pw = password.to_owned();
        // The hash is checked outside the connection's lock.
        let user = tokio::task::spawn_blocking(move || match found {
            Some((user, hash)) => password::verify(&pw, &hash).then_some(user),
            None => {
                password::verify_dummy(&pw);
                None
            }
        })
        .await
        .map_err(|_| AuthError::Task)?;
        let Some(user) = user else {
            let newly_locked = self.inner.lockout.failure(name, remote, Instant::now());
            return Ok(LoginOutcome::BadCredentials { newly_locked });
        };
        self.inner.lockout.success(name, remote);
        let id = user.id;
        let remote = remote.map(|a| a.to_string());
        let (cookie, _csrf) = self
            .with_db(move |db| {
                sessions::create(&db.conn, &mut db.held, id, remote.as_deref(), now_ms())
            })
            .await?;
        Ok(LoginOutcome::Ok { user, cookie })
    }

    /// The live session of a cookie token; `touch` records the use.
    pub async fn session(&self, cookie: &str, touch: bool) -> Result<Option<Session>, AuthError> {
        let cookie = cookie.to_owned();
        let policy = self.inner.policy;
        self.with_db(move |db| {
            sessions::lookup(&db.conn, &mut db.held, &cookie, &policy, now_ms(), touch)
        })
        .await
    }

    /// Starts a session for `user` without a password (right after setup).
    pub async fn start_session(
        &self,
        user: &User,
        remote: Option<IpAddr>,
    ) -> Result<String, AuthError> {
        let id = user.id;
        let remote = remote.map(|a| a.to_string());
        let (cookie, _csrf) = self
            .with_db(move |db| {
                sessions::create(&db.conn, &mut db.held, id, remote.as_deref(), now_ms())
            })
            .await?;
        Ok(cookie)
    }

    /// Clears the login delays on `name` in this process (the panel); for
    /// another process (the CLI) see [`Auth::request_unlock`]. `true` when
    /// there was one.
    pub fn unlock(&self, name: &str) -> bool {
        self.inner.lockout.clear(name)
    }

    /// Applies a pending unlock request for `name` (from
    /// [`Auth::request_unlock`]): `true` when there was one (the caller
    /// audits it).
    pub async fn apply_unlock_request(&self, name: &str) -> Result<bool, AuthError> {
        let owned = name.to_owned();
        let requested = self.db(move |c| users::take_unlock(c, &owned)).await?;
        if requested {
            self.inner.lockout.clear(name);
        }
        Ok(requested)
    }

    /// Asks the running gateway to clear the login delays on `name` at its
    /// next login attempt (`gatehouse user unlock`): the request is kept in
    /// the database the gateway shares. `Err(NoSuchUser)` for an unknown name.
    pub async fn request_unlock(&self, name: &str) -> Result<(), AuthError> {
        let name = name.to_owned();
        self.db(move |c| users::request_unlock(c, &name, now_ms()))
            .await
    }

    /// Ends the session of a cookie token.
    pub async fn logout(&self, cookie: &str) -> Result<(), AuthError> {
        let cookie = cookie.to_owned();
        self.with_db(move |db| sessions::delete(&db.conn, &mut db.held, &cookie))
            .await
    }

    /// Deletes expired sessions.
    pub async fn purge_expired(&self) -> Result<usize, AuthError> {
        let policy = self.inner.policy;
        self.with_db(move |db| sessions::purge_expired(&db.conn, &mut db.held, &policy, now_ms()))
            .await
    }

    /// Adds a user after checking the name and the password policy.
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<User, AuthError> {
        users::check_name(name)?;
        password::check(password, None)?;
        let hash = hash_blocking(password).await?;
        let name = name.to_owned();
        self.db(move |c| users::add(c, &name, role, &hash, now_ms()))
            .await
    }

    /// Sets a user's password and ends all their sessions; returns how many.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<usize, AuthError> {
        password::check(password, None)?;
        let hash = hash_blocking(password).await?;
        let name = name.to_owned();
        self.with_db(move |db| {
            let ended = users::set_password(&mut db.conn, &name, &hash, now_ms())?;
            let held = match users::find(&db.conn, &name)? {
                Some((user, _)) => db.held.end_user(user.id),
                None => 0,
            };
            Ok(ended + held)
        })
        .await
    }

    /// Removes a user (not the last admin) and their sessions.
    pub async fn remove_user(&self, name: &str) -> Result<User, AuthError> {
        let name = name.to_owned();
        self.with_db(move |db| {
            let user = users::remove(&mut db.conn, &name)?;
            db.held.end_user(user.id);
            Ok(user)
        })
        .await
    }
}

/// Hashes on the blocking pool.
async fn hash_blocking(password: &str) -> Result<String, AuthError> {
    let pw = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|_| AuthError::Task)?
        .map_err(|e| AuthError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests;
