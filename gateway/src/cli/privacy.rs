//! `gatehouse privacy report`: the processing record a property company
//! keeps under the Personal Information Protection Law — what personal
//! information this gateway holds, how much, since when, how long it is
//! kept and where it is sent ([`crate::privacy::report`]). It only reads;
//! the gateway may be running.
//!
//! `gatehouse privacy erase --plate P | --card C | --house H --reason R`:
//! erasure on request ([`crate::privacy::erase`]) — the person's list
//! entries, their personal fields in the recorded events, their snapshot
//! images — recorded as a `privacy_erasure` audit event (counts, the
//! reason, the masked identifier; never the person) that the platform
//! receives like any other. The gateway may be running: the writes go
//! through this command's store writer under SQLite's locking, and the
//! running gateway reloads its lists when it sees their change counters move.

use std::io::Write as _;
use std::sync::Arc;

use clap::Subcommand;

use crate::config::{Config, SinkConfig};
use crate::events::{GatewayEvent, Kind};
use crate::lanes::images::ImageStore;
use crate::metrics::Metrics;
use crate::pipeline::{GATEWAY_DEVICE, Stamper};
use crate::privacy::{ErasedBy, Eraser, ErasureError, Holding, Subject};
use crate::store::{Store, StoreConfig, StoreError};
use crate::vocab::time::format_ms;

/// `gatehouse privacy` actions.
#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Print what personal information the gateway holds, per kind of
    /// record: how many, the oldest, how long it is kept, where it is sent.
    Report {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Erase one person on request: their list entries (residents' and
    /// visitors' vehicles, blacklist, cards; a house's PINs and codes too),
    /// their personal fields in the recorded events (plates and card numbers
    /// masked, names and house numbers removed) and their snapshots.
    #[command(group(
        clap::ArgGroup::new("subject")
            .required(true)
            .args(["plate", "card", "house"])
    ))]
    Erase {
        /// A vehicle's plate.
        #[arg(long)]
        plate: Option<String>,
        /// A door card's number.
        #[arg(long)]
        card: Option<String>,
        /// A house (every vehicle, card, code and visitor pass of it).
        #[arg(long)]
        house: Option<String>,
        /// Why (recorded with the erasure; do not name the person).
        #[arg(long)]
        reason: String,
    },
}

/// Why a `privacy` command failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The database could not be read.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The erasure was refused or failed.
    #[error("erase: {0}")]
    Erase(#[from] ErasureError),
    /// The image folder could not be opened.
    #[error("images: {0}")]
    Images(std::io::Error),
}

/// Where events go beyond the box, in words.
fn platform(config: &Config) -> String {
    match &config.uplink.sink {
        SinkConfig::Off => "nowhere: no uplink is configured".into(),
        SinkConfig::Mqtt(mqtt) => {
            let host = match &mqtt.host {
                crate::config::MqttHost::Embedded => "the embedded broker".to_owned(),
                crate::config::MqttHost::Name(host) => format!("{host}:{}", mqtt.port),
            };
            format!("the platform over MQTT ({host})")
        }
        SinkConfig::Https(https) => format!("the platform over HTTPS ({})", https.base_url),
    }
}

/// Runs a `privacy` command.
pub(super) async fn run(config: &Config, command: PrivacyCommand) -> Result<(), PrivacyError> {
    let json = match command {
        PrivacyCommand::Report { json } => json,
        PrivacyCommand::Erase {
            plate,
            card,
            house,
            reason,
        } => {
            let subject = match (plate, card, house) {
                (Some(plate), _, _) => Subject::parse("plate", &plate),
                (_, Some(card), _) => Subject::parse("card", &card),
                (_, _, Some(house)) => Subject::parse("house", &house),
                _ => Err(ErasureError::Invalid(
                    "--plate, --card or --house is required".into(),
                )),
            }?;
            return erase_command(config, &subject, reason.trim()).await;
        }
    };
    let data_dir = &config.gateway.data_dir;
    let (store, _) = Store::open(StoreConfig::new(data_dir.join("gatehouse.db")))?;
    let conn = store.connect()?;
    let holdings = tokio::task::block_in_place(|| {
        crate::privacy::report(
            &conn,
            &data_dir.join("images"),
            &config.privacy,
            &platform(config),
        )
    });
    drop(conn);
    store.close().await?;
    let holdings = holdings?;
    let mut out = std::io::stdout().lock();
    if json {
        let record = serde_json::json!({
            "estate_id": config.gateway.estate_id,
            "gateway_id": config.gateway.gateway_id,
            "time_ms": drivers::contract::now_ms(),
            "holdings": holdings,
        });
        let _ = writeln!(out, "{record:#}");
    } else {
        let _ = write!(out, "{}", table(config, &holdings));
    }
    Ok(())
}

/// `privacy erase`: erases, records the erasure, prints the counts.
async fn erase_command(
    config: &Config,
    subject: &Subject,
    reason: &str,
) -> Result<(), PrivacyError> {
    if reason.is_empty() {
        return Err(ErasureError::Invalid("a --reason is required".into()).into());
    }
    let data_dir = &config.gateway.data_dir;
    let images = ImageStore::open(data_dir.join("images"), u64::MAX, Arc::new(Metrics::new()))
        .map_err(PrivacyError::Images)?;
    let (store, _) = Store::open(StoreConfig::new(data_dir.join("gatehouse.db")))?;
    let eraser = Eraser {
        store: store.clone(),
        images,
        key: config.uplink.command_key.clone(),
    };
    let by = ErasedBy {
        actor: "cli".into(),
        via: "cli",
        remote: None,
        reason: reason.to_owned(),
    };
    let erased = tokio::task::block_in_place(|| eraser.erase(subject, by));
    let result = match erased {
        Ok(record) => {
            let envelope = Stamper::new(&config.gateway.estate_id, &config.gateway.gateway_id)
                .stamp(
                    GATEWAY_DEVICE,
                    Kind::PrivacyErasure,
                    GatewayEvent::PrivacyErasure(record.clone()).body(),
                    None,
                );
            match store.append(envelope).await {
                Ok(seq) => {
                    print_erasure(&record, seq);
                    Ok(())
                }
                Err(error) => Err(error.into()),
            }
        }
        Err(error) => Err(error.into()),
    };
    store.close().await?;
    result
}

fn print_erasure(record: &crate::events::PrivacyErasure, seq: u64) {
    let mut out = std::io::stdout().lock();
    let counts = |map: &std::collections::BTreeMap<&'static str, u64>| {
        map.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "Erased {} {}.", record.by, record.masked);
    let _ = writeln!(out, "  list entries removed: {}", counts(&record.removed));
    let _ = writeln!(out, "  records stripped: {}", counts(&record.stripped));
    if !record.scrubbed {
        let _ = writeln!(
            out,
            "  the database's free pages are rewritten at its next checkpoint (a reader held this one back)"
        );
    }
    let _ = writeln!(out, "Recorded as privacy_erasure event {seq}.");
}

/// The record as a text table, one kind of record per block.
fn table(config: &Config, holdings: &[Holding]) -> String {
    let mut text = format!(
        "Personal information held by gateway {} of estate {}, {}\n",
        config.gateway.gateway_id,
        config.gateway.estate_id,
        format_ms(drivers::contract::now_ms())
    );
    for h in holdings {
        let oldest = h.oldest_ms.map_or_else(|| "-".to_owned(), format_ms);
        text.push_str(&format!(
            "\n{}: {} held, oldest {oldest}\n  fields: {}\n  kept: {}\n  sent to: {}\n",
            h.record, h.count, h.fields, h.kept, h.sent_to
        ));
    }
    text
}
