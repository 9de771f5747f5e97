//! Server-side sessions in the `sessions` table.
//!
//! The cookie carries a random token; the table keeps only its SHA-256
//! digest, the user, a per-session CSRF token (synchronizer token), and the
//! creation and last-use times. A session ends after `idle` without use or
//! `absolute` after login, whichever comes first; an expired session is
//! deleted when it is looked up. `last_seen_ms` is written at most once per
//! [`TOUCH_EVERY`] so browsing does not write to the SD card on every click.
//!
//! A session whose row cannot be written (a full disk, a card the kernel
//! remounted read-only) is [`Held`] in memory instead: a guard can still
//! log in and run the gates by hand. It expires, ends at logout and with
//! its user's password like any other, and at a restart.

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::users::{self, User};
use super::{AuthError, Role, token};

/// How often a session's last use is written back, at most.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// When sessions expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Unused this long: expired.
    pub idle: Duration,
    /// This long after login: expired.
    pub absolute: Duration,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Whose it is.
    pub user: User,
    /// The synchronizer token state-changing requests must carry.
    pub csrf: String,
    /// Digest of the cookie token (the row's key).
    pub token_digest: String,
    /// Login time (Unix ms).
    pub created_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SessionPolicy {
    /// Whether a session created and last used at these times has expired.
    fn expired(&self, created_ms: i64, last_seen_ms: i64, now_ms: i64) -> bool {
        now_ms.saturating_sub(last_seen_ms) >= ms(self.idle)
            || now_ms.saturating_sub(created_ms) >= ms(self.absolute)
    }
}

/// Sessions whose rows could not be written, by token digest (kept in
/// memory only; see the module's text).
#[derive(Debug, Default)]
pub struct Held {
    rows: HashMap<String, HeldRow>,
}

#[derive(Debug)]
struct HeldRow {
    user_id: i64,
    csrf: String,
    created_ms: i64,
    last_seen_ms: i64,
}

impl Held {
    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Ends every held session of `user_id`; returns how many.
    pub fn end_user(&mut self, user_id: i64) -> usize {
        let before = self.rows.len();
        self.rows.retain(|_, row| row.user_id != user_id);
        before - self.rows.len()
    }
}

/// Whether a failed write means the database cannot take writes now (the
/// disk is full or read-only), rather than a fault in the query.
fn unwritable(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DiskFull | ErrorCode::ReadOnly | ErrorCode::SystemIoFailure)
    )
}

/// Starts a session for `user_id`; returns the cookie token (only the digest
/// is stored) and the session's CSRF token. When the row cannot be written
/// the session is held in memory (`held`).
pub fn create(
    conn: &Connection,
    held: &mut Held,
    user_id: i64,
    remote: Option<&str>,
    now_ms: i64,
) -> Result<(String, String), AuthError> {
    let cookie = token::random();
    let csrf = token::random();
    let digest = token::digest(&cookie);
    match conn.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf, created_ms, last_seen_ms, remote)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![digest, user_id, csrf, now_ms, remote],
    ) {
        Ok(_) => {}
        Err(error) if unwritable(&error) => {
            tracing::warn!(%error, "A panel session could not be stored; it is kept in memory until it ends or the gateway restarts.");
            held.rows.insert(
                digest,
                HeldRow {
                    user_id,
                    csrf: csrf.clone(),
                    created_ms: now_ms,
                    last_seen_ms: now_ms,
                },
            );
        }
        Err(error) => return Err(error.into()),
    }
    Ok((cookie, csrf))
}

/// The live session of a token digest held in memory, if any (an expired
/// one, or one whose user is gone, is dropped).
fn lookup_held(
    conn: &Connection,
    held: &mut Held,
    digest: String,
    policy: &SessionPolicy,
    now_ms: i64,
) -> Result<Option<Session>, AuthError> {
    let Some(row) = held.rows.get_mut(&digest) else {
        return Ok(None);
    };
    if policy.expired(row.created_ms, row.last_seen_ms, now_ms) {
        held.rows.remove(&digest);
        return Ok(None);
    }
    let Some(user) = users::by_id(conn, row.user_id)? else {
        held.rows.remove(&digest);
        return Ok(None);
    };
    row.last_seen_ms = now_ms;
    Ok(Some(Session {
        user,
        csrf: row.csrf.clone(),
        token_digest: digest,
        created_ms: row.created_ms,
    }))
}

/// The live session for a cookie token, if any; deletes it when expired and
/// records its use (at most once per [`TOUCH_EVERY`]) when `touch`.
pub fn lookup(
    conn: &Connection,
    held: &mut Held,
    cookie: &str,
    policy: &SessionPolicy,
    now_ms: i64,
    touch: bool,
) -> Result<Option<Session>, AuthError> {
    let digest = token::digest(cookie);
    let row = conn
        .query_row(
            "SELECT s.csrf, s.created_ms, s.last_seen_ms,
                    u.id, u.name, u.role, u.created_ms, u.password_changed_ms
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1",
            [&digest],
            |r| {
                let role: String = r.get(5)?;
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    User {
                        id: r.get(3)?,
                        name: r.get(4)?,
                        role: Role::parse(&role).unwrap_or(Role::Guard),
                        created_ms: r.get(6)?,
                        password_changed_ms: r.get(7)?,
                    },
                ))
            },
        )
        .optional()?;
    let Some((csrf, created_ms, last_seen_ms, user)) = row else {
        return lookup_held(conn, held, digest, policy, now_ms);
    };
    // The writes below are bookkeeping: a session is not refused because
    // the database could not take them (a full disk), and an expired one
    // left behind is ended again at its next use or purge.
    if policy.expired(created_ms, last_seen_ms, now_ms) {
        if let Err(error) = conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [&digest]) {
            tracing::debug!(%error, "An expired session was not deleted.");
        }
        return Ok(None);
    }
    if touch
        && now_ms.saturating_sub(last_seen_ms) >= ms(TOUCH_EVERY)
        && let Err(error) = conn.execute(
            "UPDATE sessions SET last_seen_ms = ?1 WHERE token_hash = ?2",
            params![now_ms, digest],
        )
    {
        tracing::debug!(%error, "A session's last use was not recorded.");
    }
    Ok(Some(Session {
        user,
        csrf,
        token_digest: digest,
        created_ms,
    }))
}

/// Ends the session with this cookie token.
pub fn delete(conn: &Connection, held: &mut Held, cookie: &str) -> Result<(), AuthError> {
    let digest = token::digest(cookie);
    if held.rows.remove(&digest).is_some() {
        return Ok(());
    }
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [digest])?;
    Ok(())
}

/// Deletes every expired session; returns how many.
pub fn purge_expired(
    conn: &Connection,
    held: &mut Held,
    policy: &SessionPolicy,
    now_ms: i64,
) -> Result<usize, AuthError> {
    let before = held.rows.len();
    held.rows
        .retain(|_, row| !policy.expired(row.created_ms, row.last_seen_ms, now_ms));
    let dropped = before - held.rows.len();
    let deleted = match conn.execute(
        "DELETE FROM sessions WHERE last_seen_ms <= ?1 OR created_ms <= ?2",
        params![
            now_ms.saturating_sub(ms(policy.idle)),
            now_ms.saturating_sub(ms(policy.absolute))
        ],
    ) {
        Ok(n) => n,
        // Expired rows left behind are refused at lookup all the same.
        Err(error) if unwritable(&error) => {
            tracing::debug!(%error, "Expired sessions were not deleted.");
            0
        }
        Err(error) => return Err(error.into()),
    };
    Ok(dropped + deleted)
}
