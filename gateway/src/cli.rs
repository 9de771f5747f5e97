//! The `gatehouse` command line: `run`, `check-config`, `demo`, the vehicle
//! lists (`plates …`, in [`crate::lists::cli`]), the unit-door cards
//! (`cards …`, in [`crate::doors::cli`]), the panel's users
//! (`user add|passwd|remove|list`, in [`user`]) and personal information
//! (`privacy report`, the processing record; `privacy erase`, erasure on
//! request; in [`privacy`]). Each command returns a
//! [`CliError`] whose [`CliError::exit_code`] `main` exits with: 64 for a
//! bad configuration, 65 for a database written by a newer Gatehouse (both
//! listed in the unit's `RestartPreventExitStatus=`: restarting cannot help),
//! 70 when a core task failed while running (systemd restarts it), 1 for
//! anything else.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{self, StartError};
use crate::store::StoreError;

mod cameras;
mod deadletters;
mod ops;
mod privacy;
mod user;
use crate::config::{self, Config, ConfigErrors};
use crate::doors::cli::{CardsCommand, CardsError};
pub use deadletters::{DeadLettersCommand, DeadLettersError};
pub use ops::{OpsCommand, OpsError};
pub use privacy::{PrivacyCommand, PrivacyError};
pub use user::{UserCommand, UserError};

/// Exit status for a configuration the gateway cannot use (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit status for a database written by a newer Gatehouse (EX_DATAERR):
/// the file is left untouched and restarting cannot help.
pub const EXIT_DATABASE_TOO_NEW: u8 = 65;

/// Gatehouse: the estate edge gateway for guard rooms.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway with a configuration file.
    Run {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file, list every problem, exit 64 if there are any.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// Manage the vehicle lists: residents' vehicles, visitor passes, blacklist.
    Plates {
        /// Where the database is.
        #[command(flatten)]
        db: crate::lists::cli::DbArgs,
        /// What to do.
        #[command(subcommand)]
        action: crate::lists::cli::PlatesCommand,
    },
    /// Run a simulated estate with the compiled-in demo configuration.
    Demo {
        /// Where the demo keeps its database (default: a folder in the temp dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Panel, API and /metrics address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Manage the panel's users (the database is found through --config or
    /// --data-dir, as `run` would).
    User {
        /// What to do.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The events the platform rejected for good: list, export, requeue.
    Deadletters {
        /// Where the database is.
        #[command(flatten)]
        db: crate::lists::cli::DbArgs,
        /// What to do.
        #[command(subcommand)]
        action: DeadLettersCommand,
    },
    /// Manage unit-door cards (import, export, add, remove, block, list).
    Cards {
        /// The configuration file (its data directory and door groups).
        #[arg(
            long,
            short,
            global = true,
            default_value = "/etc/gatehouse/gateway.toml"
        )]
        config: PathBuf,
        /// What to do.
        #[command(subcommand)]
        action: CardsCommand,
    },
    /// Personal information: the processing record (`report`), erasure on
    /// request (`erase`).
    Privacy {
        /// The configuration file (its data directory and `[privacy]`).
        #[arg(
            long,
            short,
            global = true,
            default_value = "/etc/gatehouse/gateway.toml"
        )]
        config: PathBuf,
        /// What to do.
        #[command(subcommand)]
        action: PrivacyCommand,
    },
    /// Surveillance cameras (ONVIF): find them on the LAN, check the
    /// configured ones.
    Cameras {
        /// What to do.
        #[command(subcommand)]
        action: cameras::CamerasCommand,
    },
    /// Backups, restores and the installer's health check.
    #[command(flatten)]
    Ops(OpsCommand),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration has problems (already printed).
    #[error("{0}")]
    Config(ConfigErrors),
    /// The gateway could not start.
    #[error("could not start: {0}")]
    Start(#[from] StartError),
    /// A list command failed.
    #[error("plates: {0}")]
    Plates(#[from] crate::lists::cli::PlatesCliError),
    /// A user command failed.
    #[error("{0}")]
    User(#[from] UserError),
    /// A `cards` command failed.
    #[error("cards: {0}")]
    Cards(#[from] CardsError),
    /// A `backup`, `restore` or `doctor` command failed.
    #[error("{0}")]
    Ops(#[from] OpsError),
    /// A `deadletters` command failed.
    #[error("deadletters: {0}")]
    DeadLetters(#[from] DeadLettersError),
    /// A `privacy` command failed.
    #[error("privacy: {0}")]
    Privacy(#[from] PrivacyError),
    /// A `cameras` command failed.
    #[error("cameras: {0}")]
    Cameras(#[from] cameras::CamerasError),
    /// Shutdown ran out of time.
    #[error("shutdown budget exhausted; still running: {}", .0.join(", "))]
    Unclean(Vec<String>),
    /// A core task failed while running; the gateway stopped so that it is
    /// started again.
    #[error("stopped because a core task failed: {0}")]
    Failed(crate::tasks::CoreFailure),
}

/// Exit status after a core task failed while running (EX_SOFTWARE); the
/// unit restarts on it.
pub const EXIT_FAILED: u8 = 70;

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        if self
            .store_error()
            .is_some_and(|e| matches!(e, StoreError::SchemaTooNew { .. }))
        {
            return EXIT_DATABASE_TOO_NEW;
        }
        match self {
            CliError::Config(_) => EXIT_CONFIG,
            CliError::Failed(_) => EXIT_FAILED,
            CliError::Plates(crate::lists::cli::PlatesCliError::Config(_)) => EXIT_CONFIG,
            CliError::DeadLetters(DeadLettersError::Database(
                crate::lists::cli::PlatesCliError::Config(_),
            )) => EXIT_CONFIG,
            CliError::User(error) => error.exit_code(),
            CliError::Ops(error) => error.exit_code(),
            CliError::Start(_)
            | CliError::Unclean(_)
            | CliError::Plates(_)
            | CliError::DeadLetters(_)
            | CliError::Privacy(_)
            | CliError::Cameras(_)
            | CliError::Cards(_) => 1,
        }
    }
}

impl CliError {
    /// The store error behind this one, when a command failed opening the
    /// database.
    fn store_error(&self) -> Option<&StoreError> {
        use crate::lists::cli::PlatesCliError;
        match self {
            CliError::Start(StartError::Store(error)) => Some(error),
            CliError::Plates(PlatesCliError::Store(error)) => Some(error),
            CliError::DeadLetters(error) => error.store_error(),
            CliError::Privacy(PrivacyError::Store(error)) => Some(error),
            _ => None,
        }
    }
}

/// The whole program: parse the command line, set up logging, run, and map
/// the outcome to an exit status (0, 1, or 64 for a bad configuration).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gatehouse: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Configuration problems were already listed one per line.
            if !matches!(error, CliError::Config(_)) {
                eprintln!("gatehouse: {error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs a parsed command line until it finishes (for `run` and `demo`: until
/// SIGTERM or SIGINT).
pub async fn execute(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Ops(command) => Ok(ops::run(command).await?),
        Command::Plates { db, action } => Ok(crate::lists::cli::run(&db, action).await?),
        Command::Deadletters { db, action } => Ok(deadletters::run(&db, action).await?),
        Command::Cameras { action } => {
            let config = match &action {
                cameras::CamerasCommand::Check { config } => Some(load_reporting(config)?),
                cameras::CamerasCommand::Discover { .. } => None,
            };
            Ok(cameras::run(action, config.as_ref()).await?)
        }
        Command::Run { config: file } => {
            let config = load_reporting(&file)?;
            serve(config, file).await
        }
        Command::Cards { config, action } => {
            let config = load_reporting(&config)?;
            Ok(crate::doors::cli::run(&config, action).await?)
        }
        Command::Privacy { config, action } => {
            let config = load_reporting(&config)?;
            Ok(privacy::run(&config, action).await?)
        }
        Command::Demo { data_dir, listen } => {
            let mut config = config::parse(config::DEMO_TOML, "demo.toml").map_err(|errors| {
                print_problems(&errors);
                CliError::Config(errors)
            })?;
            config.gateway.data_dir =
                data_dir.unwrap_or_else(|| std::env::temp_dir().join("gatehouse-demo"));
            config.panel.listen = listen;
            // Nobody signs commands for the simulated estate: a fresh key at
            // every start keeps its downlink closed (and needs no warning).
            if config.uplink.command_key.is_none() {
                let key: [u8; 32] = rand::random();
                config.uplink.command_key = Some(config::Secret::new(hex::encode(key)));
            }
            serve_demo(config).await
        }
        Command::User { command } => user::execute(command).await.map_err(|error| match error {
            UserError::Config(errors) => {
                print_problems(&errors);
                CliError::Config(errors)
            }
            other => CliError::User(other),
        }),
    }
}

fn check_config(file: &Path) -> Result<(), CliError> {
    let config = load_reporting(file)?;
    println!(
        "{}: ok ({} device(s), {} alarm rule(s))",
        file.display(),
        config.devices.len(),
        config.alarms.len()
    );
    Ok(())
}

fn load_reporting(file: &Path) -> Result<Config, CliError> {
    let config = config::load(file).map_err(|errors| {
        print_problems(&errors);
        CliError::Config(errors)
    })?;
    crate::vocab::time::set_estate_zone(config.gateway.time_zone.clone());
    Ok(config)
}

pub(crate) fn print_problems(errors: &ConfigErrors) {
    let mut err = std::io::stderr().lock();
    for p in &errors.problems {
        let _ = writeln!(err, "{}:{}: {}: {}", p.file, p.line, p.key, p.message);
    }
    let _ = writeln!(err, "{} problem(s) found.", errors.problems.len());
}

async fn serve(config: Config, file: PathBuf) -> Result<(), CliError> {
    let data_dir = config.gateway.data_dir.clone();
    // Install the handlers before anything starts, so a SIGTERM that arrives
    // during start-up drains instead of killing the process, and a SIGHUP
    // (`systemctl reload`) is never the default action (exit).
    let signal = shutdown_signal();
    let reloads = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangup) => Some((hangup, file)),
        Err(error) => {
            tracing::warn!(%error, "No SIGHUP handler: the configuration cannot be reloaded.");
            None
        }
    };
    let running = app::start(config).await?;
    // Tests and the demo's user read this line for the actual address.
    println!(
        "Gatehouse panel: {}://{}/",
        running.panel_scheme, running.panel_addr
    );
    if let Some(addr) = running.ingress_addr {
        println!("Device listener: http://{addr}/lpr/{{camera_id}}");
    }
    println!("Data directory: {}", data_dir.display());
    if let Some(url) = &running.setup_url {
        println!(
            "Gatehouse setup: {url} (one-time link to create the first admin; valid {} minutes)",
            crate::auth::setup::SETUP_TTL.as_secs() / 60
        );
    }
    let _ = std::io::stdout().flush();
    let report = running.run_reloading(signal, reloads).await;
    outcome(report)
}

/// How a run ended, as the command's result.
fn outcome(report: app::ShutdownReport) -> Result<(), CliError> {
    match report.failure {
        Some(failure) => Err(CliError::Failed(failure)),
        None if report.stragglers.is_empty() => Ok(()),
        None => Err(CliError::Unclean(report.stragglers)),
    }
}

/// Runs the demo estate: simulators first, then the gateway, then traffic.
async fn serve_demo(mut config: Config) -> Result<(), CliError> {
    let data_dir = config.gateway.data_dir.clone();
    let signal = shutdown_signal();
    let estate = crate::demo::prepare(&mut config)
        .await
        .map_err(|e| CliError::Start(StartError::Internal(format!("demo simulators: {e}"))))?;
    let running = app::start(config.clone()).await?;
    let plates = running.plates.clone();
    match tokio::task::spawn_blocking(move || crate::demo::seed_lists(&plates)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "Demo lists were not seeded."),
        Err(error) => tracing::warn!(%error, "Demo lists were not seeded."),
    }
    let traffic = tokio_util::sync::CancellationToken::new();
    crate::demo::spawn_traffic(&running, &config, estate, traffic.clone());
    let _door_script = crate::doors::demo::start(&running.doors);
    println!(
        "Gatehouse panel: {}://{}/",
        running.panel_scheme, running.panel_addr
    );
    if let Some(url) = &running.setup_url {
        println!(
            "Gatehouse setup: {url} (one-time link to create the first admin; valid {} minutes)",
            crate::auth::setup::SETUP_TTL.as_secs() / 60
        );
    }
    if let Some(addr) = running.ingress_addr {
        println!("Device listener: http://{addr}/lpr/{{camera_id}}");
    }
    println!("Data directory: {}", data_dir.display());
    let _ = std::io::stdout().flush();
    let report = running.run_until(signal).await;
    traffic.cancel();
    outcome(report)
}

/// Installs SIGTERM and SIGINT handlers now; the future resolves when
/// either signal arrives.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (term, int) => {
                let error = term.err().or(int.err()).map(|e| e.to_string());
                tracing::warn!(
                    ?error,
                    "Signal handlers unavailable; stopping on Ctrl-C only."
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_parses_each_subcommand() {
        let cli =
            Cli::try_parse_from(["gatehouse", "demo", "--listen", "127.0.0.1:0"]).expect("demo");
        assert!(
            matches!(cli.command, Command::Demo { data_dir: None, listen } if listen.port() == 0)
        );
        let cli = Cli::try_parse_from(["gatehouse", "check-config", "a.toml"]).expect("check");
        assert!(
            matches!(cli.command, Command::CheckConfig { ref file } if file == Path::new("a.toml"))
        );
        let cli = Cli::try_parse_from(["gatehouse", "run", "--config", "g.toml"]).expect("run");
        assert!(matches!(cli.command, Command::Run { .. }));
        assert!(Cli::try_parse_from(["gatehouse", "run"]).is_err());
        let cli = Cli::try_parse_from(["gatehouse", "cards", "import", "c.csv", "-c", "g.toml"])
            .expect("cards import");
        assert!(matches!(
            cli.command,
            Command::Cards { ref config, action: CardsCommand::Import { ref file, keep_good: false } }
                if config == Path::new("g.toml") && file == Path::new("c.csv")
        ));
    }

    #[test]
    fn a_bad_configuration_exits_64() {
        let error = CliError::Config(ConfigErrors { problems: vec![] });
        assert_eq!(error.exit_code(), 64);
        assert_eq!(CliError::Unclean(vec!["pipeline".into()]).exit_code(), 1);
        let failed = CliError::Failed(crate::tasks::CoreFailure {
            task: "pipeline".into(),
            reason: "panicked: forced".into(),
        });
        assert_eq!(failed.exit_code(), 70, "systemd restarts it");
        let too_new = CliError::Start(StartError::Store(StoreError::SchemaTooNew {
            found: 9,
            supported: 8,
            written_by: Some("2.0.0".into()),
        }));
        assert_eq!(too_new.exit_code(), 65, "systemd does not restart it");
    }
}
