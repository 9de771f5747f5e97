//! Tests of the auth service over a real database file: sessions expire,
//! password changes end sessions, lockout refuses before checking.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::store::{Store, StoreConfig};

const REMOTE: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

/// The service over `conn`: 10 minutes idle, an hour absolute, three
/// free failures per name.
fn service(conn: Connection) -> Auth {
    Auth::new(
        conn,
        SessionPolicy {
            idle: Duration::from_secs(600),
            absolute: Duration::from_secs(3600),
        },
        LockoutPolicy {
            user_failures: 3,
            address_failures: 100,
            duration: Duration::from_secs(900),
        },
    )
}

fn open(dir: &tempfile::TempDir) -> (Store, Auth) {
    let (store, _) = Store::open(StoreConfig::new(dir.path().join("g.db"))).expect("store");
    let auth = service(store.connect().expect("connect"));
    (store, auth)
}

async fn login(auth: &Auth, name: &str, password: &str) -> LoginOutcome {
    auth.login(name, password, REMOTE)
        .await
        .expect("login runs")
}

#[tokio::test]
async fn login_with_the_right_password_starts_a_session_and_rotates_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, auth) = open(&dir);
    auth.add_user("王保安", Role::Guard, "门岗值班密码一二三四")
        .await
        .expect("add");
    let LoginOutcome::Ok {
        cookie: first,
        user,
    } = login(&auth, "王保安", "门岗值班密码一二三四").await
    else {
        panic!("login failed");
    };
    assert_eq!(user.role, Role::Guard);
    let LoginOutcome::Ok { cookie: second, .. } =
        login(&auth, "王保安", "门岗值班密码一二三四").await
    else {
        panic!("login failed");
    };
    assert_ne!(first, second, "every login gets a fresh token");
    let session = auth.session(&second, true).await.expect("q").expect("live");
    assert_eq!(session.user.name, "王保安");
    assert_eq!(session.csrf.len(), 64);
    auth.logout(&second).await.expect("logout");
    assert!(auth.session(&second, true).await.expect("q").is_none());
    assert!(matches!(
        login(&auth, "王保安", "wrong password!").await,
        LoginOutcome::BadCredentials { .. }
    ));
    assert!(matches!(
        login(&auth, "nobody", "wrong password!").await,
        LoginOutcome::BadCredentials { .. }
    ));
}

#[tokio::test]
async fn session_expires_when_idle_and_absolutely() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, auth) = open(&dir);
    let user = auth
        .add_user("li", Role::Manager, "a long password")
        .await
        .expect("add");
    let conn = store.connect().expect("connect");
    let mut held = sessions::Held::default();
    let policy = auth.policy();
    let t0 = 1_000_000_000;
    let (cookie, _) = sessions::create(&conn, &mut held, user.id, None, t0).expect("create");
    let minute = 60_000;
    // Used every 9 minutes: alive past the 10-minute idle limit.
    for i in 1..=5 {
        assert!(
            sessions::lookup(
                &conn,
                &mut held,
                &cookie,
                &policy,
                t0 + i * 9 * minute,
                true
            )
            .expect("q")
            .is_some(),
            "use {i}"
        );
    }
    // Absolute: one hour after login, however busy.
    assert!(
        sessions::lookup(&conn, &mut held, &cookie, &policy, t0 + 60 * minute, true)
            .expect("q")
            .is_none()
    );
    let (idle, _) = sessions::create(&conn, &mut held, user.id, None, t0).expect("create");
    assert!(
        sessions::lookup(&conn, &mut held, &idle, &policy, t0 + 10 * minute, true)
            .expect("q")
            .is_none(),
        "idle for 10 minutes"
    );
    assert!(
        sessions::lookup(&conn, &mut held, &idle, &policy, t0, true)
            .expect("q")
            .is_none(),
        "an expired session is deleted"
    );
}

#[tokio::test]
async fn a_session_is_not_refused_when_its_use_cannot_be_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, auth) = open(&dir);
    let user = auth
        .add_user("wang", Role::Guard, "a long password")
        .await
        .expect("add");
    let conn = store.connect().expect("connect");
    let mut held = sessions::Held::default();
    let policy = auth.policy();
    let t0 = 1_000_000_000;
    let (cookie, _) = sessions::create(&conn, &mut held, user.id, None, t0).expect("create");
    // As on a full disk: the database reads but takes no writes.
    conn.pragma_update(None, "query_only", true)
        .expect("query_only");
    let later = t0 + 2 * 60_000;
    let session = sessions::lookup(&conn, &mut held, &cookie, &policy, later, true)
        .expect("a failed touch is not an error")
        .expect("still logged in");
    assert_eq!(session.user.name, "wang");
    let expired = t0 + 61 * 60_000;
    assert!(
        sessions::lookup(&conn, &mut held, &cookie, &policy, expired, true)
            .expect("a failed delete is not an error")
            .is_none(),
        "expired whether or not the row could be deleted"
    );
}

#[tokio::test]
async fn a_login_is_not_refused_when_its_session_cannot_be_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, auth) = open(&dir);
    auth.add_user("li", Role::Guard, "a long password")
        .await
        .expect("add");
    // As on a full disk or a card remounted read-only: the database reads
    // but takes no writes.
    let conn = store.connect().expect("connect");
    conn.pragma_update(None, "query_only", true)
        .expect("query_only");
    let readonly = service(conn);
    let cookie = match login(&readonly, "li", "a long password").await {
        LoginOutcome::Ok { cookie, user } => {
            assert_eq!(user.name, "li");
            cookie
        }
        other => panic!("a guard must be able to log in: {other:?}"),
    };
    assert_eq!(readonly.held_sessions().await.expect("held"), 1);
    let session = readonly
        .session(&cookie, true)
        .await
        .expect("lookup")
        .expect("logged in");
    assert_eq!(session.user.name, "li");
    assert!(!session.csrf.is_empty());
    assert!(
        auth.session(&cookie, false)
            .await
            .expect("lookup")
            .is_none(),
        "held in memory, not in the database"
    );
    readonly.logout(&cookie).await.expect("logout");
    assert!(
        readonly
            .session(&cookie, false)
            .await
            .expect("lookup")
            .is_none()
    );
    assert_eq!(readonly.held_sessions().await.expect("held"), 0);
}

#[test]
fn a_held_session_expires_and_ends_with_its_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, auth) = open(&dir);
    let conn = store.connect().expect("connect");
    conn.execute(
        "INSERT INTO users (name, role, password_hash, created_ms, password_changed_ms)
         VALUES ('chen', 'guard', 'x', 0, 0)",
        [],
    )
    .expect("user");
    let user_id = conn.last_insert_rowid();
    conn.pragma_update(None, "query_only", true)
        .expect("query_only");
    let policy = auth.policy();
    let mut held = sessions::Held::default();
    let t0 = 1_000_000_000;
    let minute = 60_000;
    let (first, _) = sessions::create(&conn, &mut held, user_id, None, t0).expect("held");
    let (second, _) = sessions::create(&conn, &mut held, user_id, None, t0).expect("held");
    assert_eq!(held.len(), 2);
    // Used every 9 minutes it stays; idle for 10 it ends.
    for i in 1..=3 {
        assert!(
            sessions::lookup(&conn, &mut held, &first, &policy, t0 + i * 9 * minute, true)
                .expect("lookup")
                .is_some()
        );
    }
    assert!(
        sessions::lookup(&conn, &mut held, &second, &policy, t0 + 10 * minute, true)
            .expect("lookup")
            .is_none(),
        "idle too long"
    );
    assert_eq!(held.len(), 1);
    assert_eq!(
        sessions::purge_expired(&conn, &mut held, &policy, t0 + 60 * minute).expect("purge"),
        1,
        "an expired held session is purged"
    );
    assert!(held.is_empty());
    sessions::create(&conn, &mut held, user_id, None, t0).expect("held");
    assert_eq!(held.end_user(user_id + 1), 0);
    assert_eq!(held.end_user(user_id), 1, "a password change ends it");
}

#[tokio::test]
async fn session_password_change_logs_out_everywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, auth) = open(&dir);
    auth.add_user("zhao", Role::Admin, "first password")
        .await
        .expect("add");
    let mut cookies = Vec::new();
    for _ in 0..2 {
        match login(&auth, "zhao", "first password").await {
            LoginOutcome::Ok { cookie, .. } => cookies.push(cookie),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        auth.set_password("zhao", "second password")
            .await
            .expect("set"),
        2
    );
    for cookie in &cookies {
        assert!(auth.session(cookie, false).await.expect("q").is_none());
    }
    assert!(matches!(
        login(&auth, "zhao", "first password").await,
        LoginOutcome::BadCredentials { .. }
    ));
    assert!(matches!(
        login(&auth, "zhao", "second password").await,
        LoginOutcome::Ok { .. }
    ));
    assert!(matches!(
        auth.set_password("zhao", "short").await,
        Err(AuthError::Password(PasswordProblem::TooShort))
    ));
}

#[tokio::test]
async fn a_login_delay_refuses_even_the_right_password_until_it_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, auth) = open(&dir);
    auth.add_user("sun", Role::Guard, "right password")
        .await
        .expect("add");
    let mut locked = Vec::new();
    for _ in 0..3 {
        if let LoginOutcome::BadCredentials { newly_locked } =
            login(&auth, "sun", "wrong password").await
        {
            locked.extend(newly_locked);
        }
    }
    assert!(locked.contains(&LockKey::User("sun".into())), "{locked:?}");
    assert!(matches!(
        login(&auth, "sun", "right password").await,
        LoginOutcome::Locked(_)
    ));
}

#[tokio::test]
async fn role_rules_and_user_management_invariants() {
    assert!(Role::Guard.allows(Permission::Actuate));
    assert!(!Role::Guard.allows(Permission::ViewAudit));
    assert!(!Role::Guard.allows(Permission::ManageUsers));
    assert!(Role::Manager.allows(Permission::ViewAudit));
    assert!(!Role::Manager.allows(Permission::RestartDrivers));
    assert!(!Role::Guard.allows(Permission::WritePoints));
    assert!(!Role::Manager.allows(Permission::WritePoints));
    assert!(Role::Admin.allows(Permission::WritePoints));
    assert!(Role::Admin.allows(Permission::ManageUsers));

    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, auth) = open(&dir);
    auth.add_user("admin", Role::Admin, "admin password")
        .await
        .expect("add");
    assert!(matches!(
        auth.add_user("admin", Role::Guard, "other password").await,
        Err(AuthError::UserExists)
    ));
    assert!(matches!(
        auth.add_user("bad name", Role::Guard, "other password")
            .await,
        Err(AuthError::Name(NameProblem::BadCharacter))
    ));
    assert!(matches!(
        auth.remove_user("admin").await,
        Err(AuthError::LastAdmin)
    ));
    auth.add_user("guard-1", Role::Guard, "guard password")
        .await
        .expect("add");
    assert_eq!(auth.user_count().await.expect("count"), 2);
    auth.remove_user("guard-1").await.expect("remove");
    let names: Vec<String> = auth
        .users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["admin"]);
}
