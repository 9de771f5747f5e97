//! `gatehouse cards …`: the property manager's card list on the command
//! line — import and export CSV (with a progress bar and the rejected rows
//! by line), add, remove, block, unblock and list cards. Changes go to the
//! database in `[gateway] data_dir`; a running gateway picks them up within
//! a few seconds (it watches the credentials' change counter).

use std::path::PathBuf;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::credentials::CredentialStore;
use crate::config::Config;
use crate::rules::door::Card;
use crate::store::{Store, StoreConfig};
use crate::vocab::import::{ImportMode, watermark};
use crate::vocab::records::ListError;
use crate::vocab::time::{format_bound, parse_optional_ms};

/// `gatehouse cards` subcommands.
#[derive(Debug, Subcommand)]
pub enum CardsCommand {
    /// Import cards from a CSV file (header: number,holder,house,valid_from,valid_to,groups;
    /// UTF-8 or GBK), in one transaction: nothing is written when any row is rejected.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Write the good rows even when some are rejected.
        #[arg(long)]
        keep_good: bool,
    },
    /// Export every card to a CSV file.
    Export {
        /// The CSV file to write.
        file: PathBuf,
    },
    /// Add or replace a card.
    Add {
        /// Card number (decimal, as the reader reports it).
        number: String,
        /// Holder's name.
        #[arg(long)]
        holder: String,
        /// House / unit, e.g. 3-1-1201.
        #[arg(long)]
        house: String,
        /// Valid from (2026-01-01 or 2026-01-01 08:00), default: now.
        #[arg(long, default_value = "")]
        from: String,
        /// Valid until (a bare date means the end of that day), default: no end.
        #[arg(long, default_value = "")]
        to: String,
        /// Door groups, comma-separated; empty: every door.
        #[arg(long, default_value = "")]
        groups: String,
    },
    /// Remove a card.
    Remove {
        /// Card number.
        number: String,
    },
    /// Block a card (lost, stolen, moved out).
    Block {
        /// Card number.
        number: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Unblock a card.
    Unblock {
        /// Card number.
        number: String,
    },
    /// List every card.
    List,
}

/// Why a cards command failed.
#[derive(Debug, thiserror::Error)]
pub enum CardsError {
    /// The database or a value.
    #[error("{0}")]
    List(#[from] ListError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The command did not do what was asked (nothing to remove …).
    #[error("{0}")]
    NotDone(String),
}

fn file_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CardsError + '_ {
    move |source| CardsError::File {
        path: path.display().to_string(),
        source,
    }
}

/// Runs one `cards` command against the configuration's database.
pub async fn run(config: &Config, command: CardsCommand) -> Result<(), CardsError> {
    let path = config.gateway.data_dir.join("gatehouse.db");
    std::fs::create_dir_all(&config.gateway.data_dir)
        .map_err(file_error(&config.gateway.data_dir))?;
    let (store, _) = Store::open(StoreConfig::new(path)).map_err(ListError::from)?;
    let groups = config.door_groups.iter().map(|g| g.id.clone());
    let result = match CredentialStore::open(&store) {
        Ok(credentials) => execute(&credentials.with_known_groups(groups), command),
        Err(error) => Err(error.into()),
    };
    if let Err(error) = store.close().await {
        tracing::warn!(%error, "The store did not close cleanly.");
    }
    result
}

fn execute(credentials: &CredentialStore, command: CardsCommand) -> Result<(), CardsError> {
    match command {
        CardsCommand::Import { file, keep_good } => {
            let bytes = std::fs::read(&file).map_err(file_error(&file))?;
            let mode = if keep_good {
                ImportMode::KeepGood
            } else {
                ImportMode::AllOrNothing
            };
            let rows = bytes
                .split(|b| *b == b'\n')
                .skip(1)
                .filter(|l| !l.trim_ascii().is_empty())
                .count();
            let bar = ProgressBar::new(rows as u64);
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} cards") {
                bar.set_style(style);
            }
            let report = credentials.import_cards_csv(&bytes, mode, |n| bar.set_position(n))?;
            bar.finish_and_clear();
            println!(
                "{} ({}): {} card(s) written, {} row(s) rejected",
                file.display(),
                report.encoding.label(),
                report.written,
                report.rejected.len()
            );
            if report.written == 0 && report.valid > 0 {
                println!(
                    "  nothing written because rows were rejected; fix them, or use --keep-good to write the {} good row(s)",
                    report.valid
                );
            }
            for rejected in &report.rejected {
                println!("  line {}: {}", rejected.line, rejected.reason);
            }
            Ok(())
        }
        CardsCommand::Export { file } => {
            let mut csv = Vec::new();
            let n = credentials.export_cards_csv(&mut csv)?;
            csv.extend_from_slice(
                watermark(&crate::lists::cli::cli_user(), drivers::contract::now_ms()).as_bytes(),
            );
            std::fs::write(&file, &csv).map_err(file_error(&file))?;
            println!("{}: {n} card(s) exported", file.display());
            Ok(())
        }
        CardsCommand::Add {
            number,
            holder,
            house,
            from,
            to,
            groups,
        } => {
            let card = Card {
                number,
                holder,
                house,
                valid_from: parse_optional_ms(&from, false).map_err(ListError::Invalid)?,
                valid_to: parse_optional_ms(&to, true).map_err(ListError::Invalid)?,
                groups: groups
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            credentials.upsert_card(&card)?;
            println!("card {} saved", card.number.trim());
            Ok(())
        }
        CardsCommand::Remove { number } => match credentials.remove_card(&number)? {
            true => {
                println!("card {number} removed");
                Ok(())
            }
            false => Err(CardsError::NotDone(format!("no card {number}"))),
        },
        CardsCommand::Block { number, reason } => {
            credentials.block(&number, &reason)?;
            println!("card {number} blocked");
            Ok(())
        }
        CardsCommand::Unblock { number } => match credentials.unblock(&number)? {
            true => {
                println!("card {number} unblocked");
                Ok(())
            }
            false => Err(CardsError::NotDone(format!(
                "card {number} was not blocked"
            ))),
        },
        CardsCommand::List => {
            let snapshot = credentials.snapshot();
            let bound = |t: Option<i64>, end| t.map(|t| format_bound(t, end)).unwrap_or_default();
            for card in credentials.cards() {
                let blocked = snapshot
                    .blocked
                    .get(&card.number)
                    .map(|b| format!("  BLOCKED ({})", b.reason))
                    .unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}..{}\t{}{blocked}",
                    card.number,
                    card.holder,
                    card.house,
                    bound(card.valid_from, false),
                    bound(card.valid_to, true),
                    card.groups.join(","),
                );
            }
            Ok(())
        }
    }
}
