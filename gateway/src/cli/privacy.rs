//! `gatehouse privacy report`: the processing record a property company
//! keeps under the Personal Information Protection Law — what personal
//! information this gateway holds, how much, since when, how long it is
//! kept and where it is sent ([`crate::privacy::report`]). It only reads;
//! the gateway may be running.

use std::io::Write as _;

use clap::Subcommand;

use crate::config::{Config, SinkConfig};
use crate::privacy::Holding;
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
    let PrivacyCommand::Report { json } = command;
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
