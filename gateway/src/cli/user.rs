//! `gatehouse user add|passwd|remove|list`: the panel's users from the
//! command line, on the gateway's database (found through `--config FILE`,
//! as `run` reads it, or `--data-dir DIR`). The gateway may be running:
//! SQLite's locking and the busy timeout let both work on the file.
//!
//! A password is prompted twice without echo on a terminal, or read as one
//! line from standard input otherwise (for scripts). It is never printed.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::auth::{Auth, AuthError, LockoutPolicy, Role, SessionPolicy};
use crate::config::{self, ConfigErrors};
use crate::store::{Store, StoreConfig, StoreError};

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The gateway's configuration file (its `[gateway] data_dir` is used).
    #[arg(
        long,
        short,
        required_unless_present = "data_dir",
        conflicts_with = "data_dir"
    )]
    pub config: Option<PathBuf>,
    /// The gateway's data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// User subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is prompted (or read from stdin).
    Add {
        /// Where the database is.
        #[command(flatten)]
        db: DbArgs,
        /// guard, manager or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The login name.
        name: String,
    },
    /// Set a user's password; ends all their sessions.
    Passwd {
        /// Where the database is.
        #[command(flatten)]
        db: DbArgs,
        /// The login name.
        name: String,
    },
    /// Remove a user (not the last admin); ends all their sessions.
    Remove {
        /// Where the database is.
        #[command(flatten)]
        db: DbArgs,
        /// The login name.
        name: String,
    },
    /// Clear the login delays on a user (after repeated wrong passwords);
    /// the running gateway applies it at the user's next login and audits it.
    Unlock {
        /// Where the database is.
        #[command(flatten)]
        db: DbArgs,
        /// The login name.
        name: String,
    },
    /// List the users.
    List {
        /// Where the database is.
        #[command(flatten)]
        db: DbArgs,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role {s:?}; use guard, manager or admin"))
}

/// Why a user command failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The configuration file has problems (printed by the caller).
    #[error("{0}")]
    Config(ConfigErrors),
    /// The database could not be opened.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The change was refused or failed.
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// The password could not be read.
    #[error("reading the password: {0}")]
    Io(#[from] std::io::Error),
    /// Neither `--config` nor `--data-dir`.
    #[error("give --config FILE or --data-dir DIR")]
    NoDatabase,
}

impl UserError {
    /// The process exit status (64 for a bad configuration).
    pub fn exit_code(&self) -> u8 {
        match self {
            UserError::Config(_) => super::EXIT_CONFIG,
            _ => 1,
        }
    }
}

fn data_dir(db: &DbArgs) -> Result<PathBuf, UserError> {
    match (&db.data_dir, &db.config) {
        (Some(dir), _) => Ok(dir.clone()),
        (None, Some(file)) => Ok(config::load(file)
            .map_err(UserError::Config)?
            .gateway
            .data_dir),
        (None, None) => Err(UserError::NoDatabase),
    }
}

/// Opens the store (migrating it, as the gateway would) and the user service.
fn open(db: &DbArgs) -> Result<(Store, Auth), UserError> {
    let dir = data_dir(db)?;
    std::fs::create_dir_all(&dir)?;
    let (store, _) = Store::open(StoreConfig::new(dir.join("gatehouse.db")))?;
    // Sessions and lockout are not used here; the values do not matter.
    let auth = Auth::new(
        store.connect()?,
        SessionPolicy {
            idle: Duration::from_secs(1),
            absolute: Duration::from_secs(1),
        },
        LockoutPolicy {
            user_failures: 1,
            address_failures: 1,
            duration: Duration::from_secs(1),
        },
    );
    Ok((store, auth))
}

/// Prompts twice without echo on a terminal; reads one line otherwise.
fn read_password() -> Result<String, UserError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Password again: ")?;
        if first != second {
            return Err(AuthError::Password(crate::auth::PasswordProblem::Mismatch).into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    }
}

/// Runs a user command.
pub(super) async fn execute(command: UserCommand) -> Result<(), UserError> {
    let db = match &command {
        UserCommand::Add { db, .. }
        | UserCommand::Passwd { db, .. }
        | UserCommand::Remove { db, .. }
        | UserCommand::Unlock { db, .. }
        | UserCommand::List { db } => db.clone(),
    };
    let (store, auth) = open(&db)?;
    let result = run(command, &auth).await;
    drop(auth);
    if let Err(error) = store.close().await {
        tracing::warn!(%error, "The database did not close cleanly.");
    }
    result
}

async fn run(command: UserCommand, auth: &Auth) -> Result<(), UserError> {
    match command {
        UserCommand::Add { role, name, .. } => {
            let password = read_password()?;
            let user = auth.add_user(&name, role, &password).await?;
            println!("Added {} {:?}.", user.role.as_str(), user.name);
        }
        UserCommand::Passwd { name, .. } => {
            let password = read_password()?;
            let ended = auth.set_password(&name, &password).await?;
            println!("Password of {name:?} changed; {ended} session(s) ended.");
        }
        UserCommand::Remove { name, .. } => {
            let user = auth.remove_user(&name).await?;
            println!("Removed {} {:?}.", user.role.as_str(), user.name);
        }
        UserCommand::Unlock { name, .. } => {
            auth.request_unlock(&name).await?;
            println!("Login delays on {name:?} cleared at the next login.");
        }
        UserCommand::List { .. } => {
            for user in auth.users().await? {
                println!(
                    "{}\t{}\tcreated {}",
                    user.name,
                    user.role.as_str(),
                    crate::web::panel::local_time(user.created_ms)
                );
            }
        }
    }
    Ok(())
}
