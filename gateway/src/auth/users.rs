//! Panel users in the `users` table: add, list, find, change password,
//! remove; unlock requests (in `meta`) for the running gateway. Blocking functions over a connection; [`super::Auth`] runs them
//! on the blocking pool and the CLI calls them directly.
//!
//! **Invariants:** a password change and a removal delete the user's
//! sessions in the same transaction (logout everywhere); the last admin
//! cannot be removed.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{AuthError, Role};

/// Longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// A panel user (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Login name (letters, digits, `.`, `_`, `-`; Chinese names are fine).
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// When the user was added (Unix ms).
    pub created_ms: i64,
    /// When the password was last set (Unix ms).
    pub password_changed_ms: i64,
}

/// What is wrong with a proposed user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    /// Empty.
    #[error("the name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("the name may have at most {MAX_NAME_CHARS} characters")]
    TooLong,
    /// Contains something other than letters, digits, `.`, `_`, `-`.
    #[error("use only letters, digits, '.', '_' and '-'")]
    BadCharacter,
}

/// Checks a user name.
pub fn check_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameProblem::TooLong);
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(NameProblem::BadCharacter);
    }
    Ok(())
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(2)?;
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        // The table's CHECK allows only known roles; an unknown one is the
        // least privileged.
        role: Role::parse(&role).unwrap_or(Role::Guard),
        created_ms: row.get(3)?,
        password_changed_ms: row.get(4)?,
    })
}

const COLUMNS: &str = "id, name, role, created_ms, password_changed_ms";

/// How many users there are.
pub fn count(conn: &Connection) -> Result<u64, AuthError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Every user, by name.
pub fn list(conn: &Connection) -> Result<Vec<User>, AuthError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY name"))?;
    let users = stmt
        .query_map([], user_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(users)
}

/// The user called `name` and their password hash.
pub fn find(conn: &Connection, name: &str) -> Result<Option<(User, String)>, AuthError> {
    let found = conn
        .query_row(
            &format!("SELECT {COLUMNS}, password_hash FROM users WHERE name = ?1"),
            [name],
            |row| Ok((user_from_row(row)?, row.get::<_, String>(5)?)),
        )
        .optional()?;
    Ok(found)
}

/// The user with this id, if any.
pub fn by_id(conn: &Connection, id: i64) -> Result<Option<User>, AuthError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
            [id],
            user_from_row,
        )
        .optional()?)
}

/// The `meta` key of a pending unlock request for `name`.
fn unlock_key(name: &str) -> String {
    format!("login_unlock:{name}")
}

/// Records a request to clear the login delays on `name` (from the CLI,
/// for the running gateway to pick up). An unknown name is refused.
pub fn request_unlock(conn: &Connection, name: &str, now_ms: i64) -> Result<(), AuthError> {
    if find(conn, name)?.is_none() {
        return Err(AuthError::NoSuchUser);
    }
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![unlock_key(name), now_ms.to_string()],
    )?;
    Ok(())
}

/// Takes a pending unlock request for `name`: `true` when there was one
/// (it is gone afterwards).
pub fn take_unlock(conn: &Connection, name: &str) -> Result<bool, AuthError> {
    Ok(conn.execute("DELETE FROM meta WHERE key = ?1", [unlock_key(name)])? > 0)
}

/// Adds a user with an already computed password hash.
pub fn add(
    conn: &Connection,
    name: &str,
    role: Role,
    password_hash: &str,
    now_ms: i64,
) -> Result<User, AuthError> {
    check_name(name)?;
    let inserted = conn.execute(
        "INSERT INTO users (name, role, password_hash, created_ms, password_changed_ms)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![name, role.as_str(), password_hash, now_ms],
    );
    match inserted {
        Ok(_) => Ok(User {
            id: conn.last_insert_rowid(),
            name: name.to_owned(),
            role,
            created_ms: now_ms,
            password_changed_ms: now_ms,
        }),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Err(AuthError::UserExists)
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets a new password hash and deletes every session of the user (one
/// transaction); returns how many sessions were ended.
pub fn set_password(
    conn: &mut Connection,
    name: &str,
    password_hash: &str,
    now_ms: i64,
) -> Result<usize, AuthError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let id: i64 = tx
        .query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
        .optional()?
        .ok_or(AuthError::NoSuchUser)?;
    tx.execute(
        "UPDATE users SET password_hash = ?1, password_changed_ms = ?2 WHERE id = ?3",
        params![password_hash, now_ms, id],
    )?;
    let ended = tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
    tx.commit()?;
    Ok(ended)
}

/// Removes a user and their sessions; refuses to remove the last admin.
pub fn remove(conn: &mut Connection, name: &str) -> Result<User, AuthError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let user = tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE name = ?1"),
            [name],
            user_from_row,
        )
        .optional()?
        .ok_or(AuthError::NoSuchUser)?;
    if user.role == Role::Admin {
        let admins: i64 =
            tx.query_row("SELECT count(*) FROM users WHERE role = 'admin'", [], |r| {
                r.get(0)
            })?;
        if admins <= 1 {
            return Err(AuthError::LastAdmin);
        }
    }
    tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
    tx.execute("DELETE FROM users WHERE id = ?1", [user.id])?;
    tx.commit()?;
    Ok(user)
}
