//! `gatehouse deadletters list|export|requeue`: the events the platform
//! rejected for good (or the uplink could not decode), kept in the
//! dead-letter table instead of being deleted.
//!
//! - `list` prints one line per dead letter: seq, when, kind, device, reason.
//! - `export FILE` writes them as JSON Lines (`-`: standard output), each
//!   with its stored envelope (or the raw row of an unreadable one).
//! - `requeue (--all | SEQ…)` appends each one's envelope to the queue again
//!   (a new `seq`, the same envelope `id`, so the platform de-duplicates)
//!   and then forgets the dead letter; one whose payload is not an envelope
//!   stays where it is and is reported. Run it after fixing what made the
//!   platform reject them.
//!
//! The gateway may be running: SQLite's locking lets both use the file, and
//! the running uplink finds requeued events on its next read.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Subcommand;

use crate::lists::cli::{DbArgs, PlatesCliError, data_dir};
use crate::store::{Store, StoreConfig, StoreError};
use crate::uplink::db::{DeadLetter, UplinkDb};
use crate::vocab::time::format_ms;
use crate::wire::Envelope;

/// `gatehouse deadletters` actions.
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List the dead letters, oldest first.
    List,
    /// Write the dead letters as JSON Lines to FILE (`-`: standard output).
    Export {
        /// Where to write.
        file: PathBuf,
    },
    /// Queue dead letters for the platform again.
    Requeue {
        /// Every dead letter.
        #[arg(long, conflicts_with = "seqs")]
        all: bool,
        /// The dead letters' seqs (as `list` shows them).
        #[arg(required_unless_present = "all")]
        seqs: Vec<u64>,
    },
}

/// Why a `deadletters` command failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLettersError {
    /// The database could not be found or opened.
    #[error("{0}")]
    Database(#[from] PlatesCliError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The dead-letter table could not be read or written.
    #[error("dead letters: {0}")]
    Table(#[from] rusqlite::Error),
    /// The export file could not be written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Some dead letters were not requeued (already said which).
    #[error("{0} dead letter(s) not requeued")]
    NotRequeued(usize),
}

impl DeadLettersError {
    /// The store error behind this one, if any.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            DeadLettersError::Store(error)
            | DeadLettersError::Database(PlatesCliError::Store(error)) => Some(error),
            _ => None,
        }
    }
}

/// Runs a `deadletters` command.
pub(super) async fn run(db: &DbArgs, command: DeadLettersCommand) -> Result<(), DeadLettersError> {
    let dir = data_dir(db)?;
    let (store, _) = Store::open(StoreConfig::new(dir.join("gatehouse.db")))?;
    let result = execute(&store, command).await;
    store.close().await?;
    result
}

async fn execute(store: &Store, command: DeadLettersCommand) -> Result<(), DeadLettersError> {
    let table = UplinkDb::open(store)?;
    let letters = tokio::task::block_in_place(|| table.dead_letters())?;
    match command {
        DeadLettersCommand::List => {
            let mut out = std::io::stdout().lock();
            for letter in &letters {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    letter.seq,
                    format_ms(letter.rejected_ms),
                    letter.kind,
                    letter.device_id,
                    letter.reason
                );
            }
            let _ = writeln!(out, "{} dead letter(s).", letters.len());
            Ok(())
        }
        DeadLettersCommand::Export { file } => export(&letters, &file),
        DeadLettersCommand::Requeue { all, seqs } => {
            let chosen: Vec<&DeadLetter> = letters
                .iter()
                .filter(|l| all || seqs.contains(&l.seq))
                .collect();
            let mut failed = 0;
            for seq in seqs
                .iter()
                .filter(|s| !letters.iter().any(|l| l.seq == **s))
            {
                eprintln!("{seq}: no such dead letter");
                failed += 1;
            }
            let mut requeued = 0;
            for letter in chosen {
                let Ok(envelope) = serde_json::from_str::<Envelope>(&letter.payload) else {
                    eprintln!(
                        "{}: its stored payload is not an event; left in the dead letters",
                        letter.seq
                    );
                    failed += 1;
                    continue;
                };
                // Queued first, forgotten second: a crash in between leaves a
                // duplicate the platform drops by id, never a lost event.
                let queued = store.append(envelope).await?;
                tokio::task::block_in_place(|| table.forget(letter.seq))?;
                println!("{} requeued as {queued}", letter.seq);
                requeued += 1;
            }
            println!("{requeued} dead letter(s) requeued.");
            if failed == 0 {
                Ok(())
            } else {
                Err(DeadLettersError::NotRequeued(failed))
            }
        }
    }
}

fn export(letters: &[DeadLetter], file: &std::path::Path) -> Result<(), DeadLettersError> {
    let file_error = |source| DeadLettersError::File {
        path: file.display().to_string(),
        source,
    };
    let mut out: Box<dyn std::io::Write> = if file.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(file).map_err(file_error)?,
        ))
    };
    for letter in letters {
        // The envelope as JSON when it is one, else the raw text.
        let payload = serde_json::from_str::<serde_json::Value>(&letter.payload)
            .unwrap_or_else(|_| serde_json::Value::String(letter.payload.clone()));
        let line = serde_json::json!({
            "seq": letter.seq,
            "id": letter.id,
            "kind": letter.kind,
            "device_id": letter.device_id,
            "rejected_ms": letter.rejected_ms,
            "reason": letter.reason,
            "event": payload,
        });
        writeln!(out, "{line}").map_err(file_error)?;
    }
    out.flush().map_err(file_error)?;
    if file.as_os_str() != "-" {
        eprintln!(
            "{} dead letter(s) written to {}.",
            letters.len(),
            file.display()
        );
    }
    Ok(())
}
