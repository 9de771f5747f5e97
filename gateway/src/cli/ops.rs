//! `gatehouse backup`, `restore` and `doctor`: the installer's and the
//! property company's operations commands (see [`crate::ops`]).

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::config;
use crate::ops::backup::{self, BackupError, DB_FILE};
use crate::ops::doctor;

/// The default configuration file of an installed gateway.
pub(super) const DEFAULT_CONFIG: &str = "/etc/gatehouse/gateway.toml";

/// Operations commands.
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Take a consistent backup of the database while the gateway runs.
    Backup {
        /// The configuration file (its data directory).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Where to write the backup.
        file: PathBuf,
    },
    /// Restore a backup (refused while the gateway runs; the replaced
    /// database is kept beside it).
    Restore {
        /// The configuration file (its data directory).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The backup to restore.
        file: PathBuf,
    },
    /// Check the box, the devices and the platform link; exit 1 when
    /// something needs attention.
    Doctor {
        /// The configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

/// Why an operations command failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The configuration has problems (already printed).
    #[error("the configuration has {0} problem(s)")]
    Config(usize),
    /// A backup or restore failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The doctor found something that needs attention (already printed).
    #[error("{0} finding(s) need attention")]
    Attention(usize),
}

impl OpsError {
    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            OpsError::Config(_) => super::EXIT_CONFIG,
            OpsError::Backup(error) => error.exit_code(),
            OpsError::Attention(_) => 1,
        }
    }
}

fn data_dir(config: &Path) -> Result<PathBuf, OpsError> {
    config::load(config)
        .map(|c| c.gateway.data_dir)
        .map_err(|errors| {
            super::print_problems(&errors);
            OpsError::Config(errors.problems.len())
        })
}

/// Runs one operations command, printing its report on stdout.
pub(super) async fn run(command: OpsCommand) -> Result<(), OpsError> {
    match command {
        OpsCommand::Backup { config, file } => {
            let db = data_dir(&config)?.join(DB_FILE);
            let contents =
                tokio::task::spawn_blocking(move || backup::backup(&db, &file).map(|c| (c, file)))
                    .await
                    .expect("backup task")?;
            println!("Backup written to {}: {}", contents.1.display(), contents.0);
            Ok(())
        }
        OpsCommand::Restore { config, file } => {
            let dir = data_dir(&config)?;
            let (contents, kept) =
                tokio::task::spawn_blocking(move || backup::restore(&file, &dir))
                    .await
                    .expect("restore task")?;
            println!("Restored: {contents}");
            if let Some(kept) = kept {
                println!("The replaced database was kept as {}.", kept.display());
            }
            Ok(())
        }
        OpsCommand::Doctor { config } => {
            let loaded = config::load(&config).map_err(|errors| {
                println!(
                    "FAIL  config       {}: {} problem(s):",
                    config.display(),
                    errors.problems.len()
                );
                super::print_problems(&errors);
                OpsError::Config(errors.problems.len())
            })?;
            println!("gatehouse doctor — {}", config.display());
            let report = doctor::examine(&loaded).await;
            print!("{report}");
            match report.attention() {
                0 => Ok(()),
                n => Err(OpsError::Attention(n)),
            }
        }
    }
}
