//! `gatehouse plates …`: the vehicle lists from the command line (import
//! and export CSV with a progress bar and a report of rejected rows, add,
//! remove, list). Works beside a running gateway: the gateway notices the
//! change (the lists' revision) within seconds.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::plates::{ListKind, NewVisitorPass, PlateRegistry};
use crate::rules::vehicle::{Blacklisted, Resident};
use crate::store::{Store, StoreConfig};
use crate::vocab::import::{ImportMode, watermark};
use crate::vocab::records::ListError;
use crate::vocab::time::{format_ms, parse_ms, parse_optional_ms};

/// Which list, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListArg {
    /// Residents' vehicles.
    Residents,
    /// Visitor passes.
    Visitors,
    /// Blacklist.
    Blacklist,
}

impl From<ListArg> for ListKind {
    fn from(arg: ListArg) -> Self {
        match arg {
            ListArg::Residents => ListKind::Residents,
            ListArg::Visitors => ListKind::Visitors,
            ListArg::Blacklist => ListKind::Blacklist,
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The gateway's configuration file (its `data_dir` is used).
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// The data directory (default: /var/lib/gatehouse).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

/// `gatehouse plates` actions.
#[derive(Debug, Subcommand)]
pub enum PlatesCommand {
    /// Import a CSV file (with a header; UTF-8 or GBK) into a list, in
    /// short chunks that never hold up a running gateway: nothing is written
    /// when any row is rejected.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Which list the file holds.
        #[arg(long, value_enum, default_value = "residents")]
        list: ListArg,
        /// Only check the file; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the good rows even when some are rejected.
        #[arg(long)]
        keep_good: bool,
    },
    /// Export a list as CSV.
    Export {
        /// The CSV file to write (`-` for standard output).
        file: PathBuf,
        /// Which list.
        #[arg(long, value_enum, default_value = "residents")]
        list: ListArg,
    },
    /// Add or replace one entry.
    Add {
        /// The plate, e.g. 苏A8HK52.
        plate: String,
        /// Which list.
        #[arg(long, value_enum, default_value = "residents")]
        list: ListArg,
        /// Resident: house / unit, e.g. 3-2-1201.
        #[arg(long)]
        house: Option<String>,
        /// Resident: owner's name.
        #[arg(long, default_value = "")]
        owner: String,
        /// Visitor: the host's house / unit.
        #[arg(long)]
        host: Option<String>,
        /// Valid from (2026-12-01 or 2026-12-01 08:00); visitors default to now.
        #[arg(long)]
        from: Option<String>,
        /// Valid until (2026-12-31 or 2026-12-31 18:00); visitors default to 24 h.
        #[arg(long)]
        to: Option<String>,
        /// Resident: lanes allowed, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        lanes: Vec<String>,
        /// Visitor: good for one entry only.
        #[arg(long)]
        single_use: bool,
        /// Blacklist: the reason.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove an entry (a plate; for visitors the pass id).
    Remove {
        /// Plate, or visitor pass id.
        key: String,
        /// Which list.
        #[arg(long, value_enum, default_value = "residents")]
        list: ListArg,
    },
    /// Print a list as CSV.
    List {
        /// Which list.
        #[arg(long, value_enum, default_value = "residents")]
        list: ListArg,
    },
}

/// Why a list command failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatesCliError {
    /// The lists refused or failed.
    #[error("{0}")]
    List(#[from] ListError),
    /// The database could not be opened.
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The configuration could not be read.
    #[error("{0}")]
    Config(crate::config::ConfigErrors),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Some rows were rejected (the good ones were written, unless a dry run).
    #[error("{0} row(s) rejected")]
    Rejected(usize),
}

/// The data directory the command works on.
pub fn data_dir(db: &DbArgs) -> Result<PathBuf, PlatesCliError> {
    if let Some(dir) = &db.data_dir {
        return Ok(dir.clone());
    }
    if let Some(file) = &db.config {
        let config = crate::config::load(file).map_err(PlatesCliError::Config)?;
        crate::vocab::time::set_estate_zone(config.gateway.time_zone);
        return Ok(config.gateway.data_dir);
    }
    Ok(PathBuf::from(crate::config::DEFAULT_DATA_DIR))
}

/// Runs a `plates` command.
pub async fn run(db: &DbArgs, command: PlatesCommand) -> Result<(), PlatesCliError> {
    let dir = data_dir(db)?;
    let (store, _) = Store::open(StoreConfig::new(dir.join("gatehouse.db")))?;
    let registry = PlateRegistry::open(&store)?;
    let result = tokio::task::block_in_place(|| execute(&registry, command));
    store.close().await?;
    result
}

/// Who runs the command line, for an export's watermark.
pub(crate) fn cli_user() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user} (command line)")
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> PlatesCliError + '_ {
    move |source| PlatesCliError::File {
        path: path.display().to_string(),
        source,
    }
}

fn execute(registry: &PlateRegistry, command: PlatesCommand) -> Result<(), PlatesCliError> {
    match command {
        PlatesCommand::Import {
            file,
            list,
            dry_run,
            keep_good,
        } => {
            let mode = if keep_good {
                ImportMode::KeepGood
            } else {
                ImportMode::AllOrNothing
            };
            let text = std::fs::read(&file).map_err(file_error(&file))?;
            let rows = text
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                .saturating_sub(1) as u64;
            let report = if dry_run {
                registry.check_csv(list.into(), text.as_slice(), mode)?
            } else {
                let bar = ProgressBar::new(rows);
                if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows") {
                    bar.set_style(style);
                }
                let report = registry.import_csv(list.into(), text.as_slice(), mode, |n| {
                    bar.set_position(n);
                })?;
                bar.finish_and_clear();
                report
            };
            let verb = if dry_run {
                "would be written"
            } else {
                "written"
            };
            println!(
                "{} ({}): {} row(s) {verb}, {} rejected",
                file.display(),
                report.encoding.label(),
                report.written,
                report.rejected.len()
            );
            if report.written == 0 && report.valid > 0 {
                eprintln!(
                    "{}: nothing written because rows were rejected; fix them, or use --keep-good to write the {} good row(s)",
                    file.display(),
                    report.valid
                );
            }
            for rejected in &report.rejected {
                eprintln!("{}:{}: {}", file.display(), rejected.line, rejected.reason);
            }
            if report.rejected.is_empty() {
                Ok(())
            } else {
                Err(PlatesCliError::Rejected(report.rejected.len()))
            }
        }
        PlatesCommand::Export { file, list } => {
            let mut csv = Vec::new();
            let n = registry.export_csv(list.into(), &mut csv)?;
            csv.extend_from_slice(watermark(&cli_user(), drivers::contract::now_ms()).as_bytes());
            if file.as_os_str() == "-" {
                std::io::stdout()
                    .lock()
                    .write_all(&csv)
                    .map_err(file_error(&file))?;
                eprintln!("{n} row(s) exported");
            } else {
                std::fs::write(&file, &csv).map_err(file_error(&file))?;
                println!("{}: {n} row(s) exported", file.display());
            }
            Ok(())
        }
        PlatesCommand::List { list } => {
            registry.export_csv(list.into(), std::io::stdout().lock())?;
            Ok(())
        }
        PlatesCommand::Remove { key, list } => {
            let removed = match list {
                ListArg::Residents => registry.remove_resident(&key)?,
                ListArg::Blacklist => registry.remove_blacklist(&key)?,
                ListArg::Visitors => {
                    let id = key.parse().map_err(|_| {
                        ListError::Invalid(format!("{key:?} is not a visitor pass id"))
                    })?;
                    registry.revoke_visitor(id)?
                }
            };
            if removed {
                println!("removed {key}");
                Ok(())
            } else {
                Err(ListError::Invalid(format!("{key} is not on the list")).into())
            }
        }
        PlatesCommand::Add {
            plate,
            list,
            house,
            owner,
            host,
            from,
            to,
            lanes,
            single_use,
            reason,
        } => {
            let invalid = |m: String| PlatesCliError::List(ListError::Invalid(m));
            match list {
                ListArg::Residents => {
                    let house = house
                        .ok_or_else(|| invalid("--house is required for a resident".into()))?;
                    registry.upsert_resident(&Resident {
                        plate: plate.clone(),
                        house,
                        owner,
                        valid_from: parse_optional_ms(from.as_deref().unwrap_or(""), false)
                            .map_err(invalid)?,
                        valid_to: parse_optional_ms(to.as_deref().unwrap_or(""), true)
                            .map_err(invalid)?,
                        lanes,
                    })?;
                    println!("resident vehicle {plate} saved");
                }
                ListArg::Visitors => {
                    let host =
                        host.ok_or_else(|| invalid("--host is required for a visitor".into()))?;
                    let now = drivers::contract::now_ms();
                    let valid_from = match from {
                        Some(f) => parse_ms(&f, false).map_err(invalid)?,
                        None => now,
                    };
                    let valid_to = match to {
                        Some(t) => parse_ms(&t, true).map_err(invalid)?,
                        None => valid_from + 86_400_000,
                    };
                    let id = registry.add_visitor(&NewVisitorPass {
                        plate: plate.clone(),
                        host_unit: host,
                        valid_from,
                        valid_to,
                        single_use,
                        created_by: "cli".into(),
                    })?;
                    println!(
                        "visitor pass {id} for {plate}: {} – {}",
                        format_ms(valid_from),
                        format_ms(valid_to)
                    );
                }
                ListArg::Blacklist => {
                    registry.upsert_blacklist(&Blacklisted {
                        plate: plate.clone(),
                        reason,
                    })?;
                    println!("{plate} blacklisted");
                }
            }
            let _ = std::io::stdout().flush();
            Ok(())
        }
    }
}
