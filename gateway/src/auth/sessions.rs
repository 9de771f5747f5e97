//! Server-side sessions in the `sessions` table.
//!
//! The cookie carries a random token; the table keeps only its SHA-256
//! digest, the user, a per-session CSRF token (synchronizer token), and the
//! creation and last-use times. A session ends after `idle` without use or
//! `absolute` after login, whichever comes first; an expired session is
//! deleted when it is looked up. `last_seen_ms` is written at most once per
//! [`TOUCH_EVERY`] so browsing does not write to the SD card on every click.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::users::User;
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

/// Starts a session for `user_id`; returns the cookie token (only the digest
/// is stored) and the session's CSRF token.
pub fn create(
    conn: &Connection,
    user_id: i64,
    remote: Option<&str>,
    now_ms: i64,
) -> Result<(String, String), AuthError> {
    let cookie = token::random();
    let csrf = token::random();
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf, created_ms, last_seen_ms, remote)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![token::digest(&cookie), user_id, csrf, now_ms, remote],
    )?;
    Ok((cookie, csrf))
}

/// The live session for a cookie token, if any; deletes it when expired and
/// records its use (at most once per [`TOUCH_EVERY`]) when `touch`.
pub fn lookup(
    conn: &Connection,
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
        return Ok(None);
    };
    let idle_over = now_ms.saturating_sub(last_seen_ms) >= ms(policy.idle);
    let absolute_over = now_ms.saturating_sub(created_ms) >= ms(policy.absolute);
    // The writes below are bookkeeping: a session is not refused because
    // the database could not take them (a full disk), and an expired one
    // left behind is ended again at its next use or purge.
    if idle_over || absolute_over {
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
pub fn delete(conn: &Connection, cookie: &str) -> Result<(), AuthError> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        [token::digest(cookie)],
    )?;
    Ok(())
}

/// Deletes every expired session; returns how many.
pub fn purge_expired(
    conn: &Connection,
    policy: &SessionPolicy,
    now_ms: i64,
) -> Result<usize, AuthError> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE last_seen_ms <= ?1 OR created_ms <= ?2",
        params![
            now_ms.saturating_sub(ms(policy.idle)),
            now_ms.saturating_sub(ms(policy.absolute))
        ],
    )?)
}
