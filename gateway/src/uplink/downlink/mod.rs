//! The downlink: signed commands and list syncs from the platform.
//!
//! [`Checker`] (in `check.rs`, with [`Refusal`] and [`RefusalWindow`]) is
//! pure: it parses a command, verifies its signature
//! ([`super::sign`]), and checks its issue time, expiry and lifetime against
//! a clock reading it is given. [`Downlink`] does the IO: the replay check
//! against the seen-ids table, the command through
//! [`PipelineHandle::command`] (decided, actuated and audited exactly like a
//! panel command; the lane's safety rules apply), the record of every
//! refusal (an `audit` event `command_refused`), the result on
//! `…/command-results`, and list syncs through the [`ListRegistry`]
//! (bounded in time like commands, their ids remembered in the same table:
//! a stale sync is refused and a fresh snapshot asked for, a reused id is
//! refused).
//!
//! A command id is remembered *before* the command runs, so a command is
//! carried out at most once even across a crash.
//!
//! Anyone who can publish to the command topic can send refused messages,
//! so refusals are aggregated ([`RefusalWindow`]): the first after a quiet
//! interval is logged, recorded and answered at once; the rest of the
//! interval are counted, and one `command_refused` event with the count
//! (per reason, with sample ids) is recorded when the interval ends. At
//! most two events, two log lines and one answer per interval, whatever
//! the flood.

use std::sync::{Arc, Mutex, PoisonError};

use drivers::CommandOutcome;
use drivers::contract::now_ms;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Outbound;
use super::db::UplinkDb;
use super::status::UplinkStatus;
use super::sync::{self, ListRegistry};
use super::telemetry::TelemetrySource;
use super::topic::{Downlink as Route, Topics};
use crate::events::{CommandAudit, CommandRefused, Commanded, GatewayEvent, ListSync};
use crate::pipeline::{GATEWAY_DEVICE, Origin, PipelineHandle};

mod check;

pub use check::{
    Action, Admission, Checker, PlatformCommand, Refusal, RefusalWindow, VerifiedSync, message_id,
};

/// Handles downlink messages (the IO side).
#[derive(Debug, Clone)]
pub struct Downlink {
    /// Verification.
    pub checker: Checker,
    /// Seen ids.
    pub db: UplinkDb,
    /// Where commands and records go.
    pub pipeline: PipelineHandle,
    /// The synced lists.
    pub lists: ListRegistry,
    /// Counters.
    pub status: Arc<UplinkStatus>,
    /// For `request_telemetry`.
    pub telemetry: TelemetrySource,
    /// Topic names.
    pub topics: Topics,
    /// Where replies go (QoS 1, not stored).
    pub out: mpsc::Sender<Outbound>,
    /// Refusals of the current interval.
    pub refusals: Arc<Mutex<RefusalWindow>>,
}

impl Downlink {
    fn publish(&self, leaf: &str, body: &Value, retain: bool) {
        let message = Outbound {
            topic: self.topics.leaf(leaf),
            payload: body.to_string().into_bytes(),
            retain,
        };
        if self.out.try_send(message).is_err() {
            tracing::warn!(
                topic = leaf,
                "A downlink reply was dropped: the link's queue is full."
            );
        }
    }

    /// Handles one message that arrived on `topic`.
    pub async fn on_message(&self, topic: &str, payload: &[u8]) {
        match self.topics.parse_downlink(topic) {
            Some(Route::Command) => self.on_command(payload).await,
            Some(Route::Sync(list)) => {
                self.on_sync(list, payload).await;
                // A list sync parsed, checked and freed its rows (100,000
                // of them in a nightly snapshot): give that heap back.
                let _ = tokio::task::spawn_blocking(crate::memory::release_free_heap).await;
            }
            Some(Route::Unknown(rest)) => {
                tracing::warn!(
                    topic = rest,
                    "Downlink message on an unknown topic ignored."
                );
            }
            None => tracing::debug!(topic, "Message outside this gateway's topics ignored."),
        }
    }

    /// Records the summary of a finished refusal interval, if one is due.
    pub async fn flush_refusals(&self) {
        let due = self
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .due(Instant::now());
        if let Some(summary) = due {
            let event = GatewayEvent::CommandRefused(summary);
            let body = event.body();
            tracing::warn!(count = %body["count"], reasons = %body["reasons"], "More platform messages were refused.");
            if let Err(error) = self.pipeline.record(GATEWAY_DEVICE, event).await {
                tracing::error!(%error, "The refusals of platform messages were not recorded.");
            }
        }
    }

    /// Counts a refusal; whether it is handled on its own.
    async fn admit(&self, refusal: &Refusal, id: Option<&str>) -> Admission {
        self.flush_refusals().await;
        self.refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(Instant::now(), now_ms(), refusal.code(), id)
    }

    async fn refuse(&self, id: Option<String>, action: Option<String>, refusal: Refusal) {
        self.status.command(false);
        if self.admit(&refusal, id.as_deref()).await == Admission::Counted {
            return;
        }
        tracing::warn!(id = id.as_deref().unwrap_or("-"), reason = %refusal, "Platform command refused.");
        let refused = GatewayEvent::CommandRefused(CommandRefused::One {
            id: id.clone(),
            action: action.clone(),
            reason: refusal.code().to_owned(),
            detail: refusal.to_string(),
            via: "platform",
        });
        let audit_seq = match self.pipeline.record(GATEWAY_DEVICE, refused).await {
            Ok(receipt) => Some(receipt.seq),
            Err(error) => {
                static NOT_STORED: crate::logging::Every = crate::logging::Every::minute();
                if let Some(count) = NOT_STORED.allow() {
                    tracing::error!(%error, count, "Refusals of platform commands were not recorded (one line a minute, with the count).");
                }
                None
            }
        };
        let result = json!({
            "id": id,
            "status": "invalid",
            "reason": refusal.code(),
            "detail": refusal.to_string(),
            "audit_seq": audit_seq,
            "time_ms": now_ms(),
        });
        self.publish("command-results", &result, false);
    }

    async fn on_command(&self, payload: &[u8]) {
        let now = now_ms();
        let command = match self.checker.command(payload, now) {
            Ok(command) => command,
            Err((id, refusal)) => {
                let action = serde_json::from_slice::<Value>(payload)
                    .ok()
                    .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned));
                return self.refuse(id, action, refusal).await;
            }
        };
        let db = self.db.clone();
        let (id, expires) = (command.id.clone(), command.expires_ms);
        let fresh = tokio::task::spawn_blocking(move || db.remember_id(&id, expires, now)).await;
        match fresh {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                return self
                    .refuse(
                        Some(command.id),
                        Some(command.action_name),
                        Refusal::Replayed,
                    )
                    .await;
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "The command id could not be remembered; the command is refused.");
                return self
                    .refuse(
                        Some(command.id),
                        Some(command.action_name),
                        Refusal::Malformed("gateway could not record the id".into()),
                    )
                    .await;
            }
            Err(_) => return,
        }
        self.status.command(true);
        let origin = Origin {
            actor: command.issuer.clone().unwrap_or_else(|| "platform".into()),
            via: "platform".into(),
            reason: Some(
                command
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("platform command {}", command.id)),
            ),
            remote: None,
        };
        let (outcome, audit_seq) = match &command.action {
            Action::Device {
                device_id,
                command: device_command,
            } => {
                let report = self
                    .pipeline
                    .command(device_id, device_command.clone(), origin)
                    .await;
                (report.outcome, report.audit_seq)
            }
            Action::ResyncLists(list) => {
                self.request_resync(list.as_deref(), &format!("command {}", command.id))
                    .await;
                self.audit_gateway_command(&command, origin).await
            }
            Action::RequestTelemetry => {
                let snapshot = self.telemetry.snapshot().await;
                self.publish("telemetry", &snapshot, false);
                self.audit_gateway_command(&command, origin).await
            }
        };
        let (status, detail) = match &outcome {
            CommandOutcome::Done => ("done", None),
            CommandOutcome::Refused(why) => ("refused", Some(why.clone())),
            CommandOutcome::Failed(why) => ("failed", Some(why.clone())),
            CommandOutcome::Unsupported => ("unsupported", None),
        };
        tracing::info!(id = %command.id, action = %command.action_name, status, "Platform command handled.");
        let result = json!({
            "id": command.id,
            "action": command.action_name,
            "status": status,
            "detail": detail,
            "audit_seq": audit_seq,
            "time_ms": now_ms(),
        });
        self.publish("command-results", &result, false);
    }

    /// Audits a command the gateway carries out itself (no device).
    async fn audit_gateway_command(
        &self,
        command: &PlatformCommand,
        origin: Origin,
    ) -> (CommandOutcome, Option<u64>) {
        let audit = GatewayEvent::Command(CommandAudit {
            command: Commanded::Gateway {
                command: command.action_name.clone(),
                id: command.id.clone(),
            },
            outcome: CommandOutcome::Done,
            origin,
        });
        match self.pipeline.record(GATEWAY_DEVICE, audit).await {
            Ok(receipt) => (CommandOutcome::Done, Some(receipt.seq)),
            Err(error) => (CommandOutcome::Failed(error.to_string()), None),
        }
    }

    /// Publishes a full-snapshot request for `list` (or every list).
    pub async fn request_resync(&self, list: Option<&str>, reason: &str) {
        let versions = self.versions().await;
        for (name, held) in versions {
            if list.is_some_and(|l| l != name) {
                continue;
            }
            let request =
                json!({"list": name, "held_version": held, "reason": reason, "time_ms": now_ms()});
            self.publish("sync-requests", &request, false);
        }
    }

    /// The version of each list.
    pub async fn versions(&self) -> Vec<(String, Option<u64>)> {
        let lists = self.lists.clone();
        tokio::task::spawn_blocking(move || {
            lists
                .iter()
                .map(|t| (t.name().to_owned(), t.version().ok()))
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Publishes the versions held (retained `…/sync-status`).
    pub async fn publish_sync_status(&self) {
        if self.lists.is_empty() {
            return;
        }
        let lists: Map<String, Value> = self
            .versions()
            .await
            .into_iter()
            .map(|(name, v)| (name, v.map_or(Value::Null, Value::from)))
            .collect();
        self.publish(
            "sync-status",
            &json!({"lists": lists, "time_ms": now_ms()}),
            true,
        );
    }

    async fn on_sync(&self, list: &str, payload: &[u8]) {
        let now = now_ms();
        let sync = match self.checker.sync(payload, now) {
            Ok(sync) => sync,
            Err((id, refusal)) => {
                // A sync that waited too long is stale, not hostile: the
                // platform is asked for a fresh snapshot of that list.
                let stale = refusal == Refusal::Expired && self.lists.get(list).is_some();
                self.refuse_sync(list, id, &refusal).await;
                if stale {
                    self.request_resync(Some(list), "sync message expired")
                        .await;
                }
                return;
            }
        };
        let db = self.db.clone();
        let seen = format!("sync/{}", sync.id);
        let until = sync.remember_until;
        let fresh = tokio::task::spawn_blocking(move || db.remember_id(&seen, until, now)).await;
        match fresh {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                return self
                    .refuse_sync(list, Some(sync.id), &Refusal::Replayed)
                    .await;
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "The sync id could not be remembered; the sync is refused.");
                let refusal = Refusal::Malformed("gateway could not record the id".into());
                return self.refuse_sync(list, Some(sync.id), &refusal).await;
            }
            Err(_) => return,
        }
        let (message, id) = (sync.message, Some(sync.id));
        let Some(target) = self.lists.get(list) else {
            self.record_sync(
                list,
                id,
                "rejected",
                None,
                Some(format!("unknown list {list:?}")),
            )
            .await;
            return;
        };
        let parsed = match sync::parse(list, &message) {
            Ok(parsed) => parsed,
            Err(why) => {
                let held = target.version().ok();
                self.record_sync(list, id, "rejected", held, Some(why.clone()))
                    .await;
                self.request_resync(Some(list), &format!("malformed sync message: {why}"))
                    .await;
                return;
            }
        };
        let outcome =
            tokio::task::spawn_blocking(move || sync::handle(target.as_ref(), parsed)).await;
        let Ok(outcome) = outcome else { return };
        self.record_sync(
            list,
            id,
            outcome.status,
            Some(outcome.held),
            outcome.detail.clone(),
        )
        .await;
        if outcome.resync {
            let why = outcome.detail.unwrap_or_else(|| outcome.status.to_owned());
            self.request_resync(Some(list), &why).await;
        }
        self.publish_sync_status().await;
    }

    /// Counts a refused sync and records it (aggregated like commands).
    async fn refuse_sync(&self, list: &str, id: Option<String>, refusal: &Refusal) {
        if self.admit(refusal, id.as_deref()).await == Admission::Single {
            self.record_sync(list, id, "refused", None, Some(refusal.to_string()))
                .await;
        }
    }

    async fn record_sync(
        &self,
        list: &str,
        id: Option<String>,
        status: &str,
        held: Option<u64>,
        detail: Option<String>,
    ) {
        if status == "applied" || status == "ignored" {
            tracing::info!(list, status, held, "List sync message handled.");
        } else {
            tracing::warn!(
                list,
                status,
                held,
                detail = detail.as_deref().unwrap_or(""),
                "List sync message not applied; the previous version stays in force."
            );
        }
        let sync = GatewayEvent::ListSync(ListSync {
            list: list.to_owned(),
            id,
            status: status.to_owned(),
            held_version: held,
            detail,
        });
        if let Err(error) = self.pipeline.record(GATEWAY_DEVICE, sync).await {
            static NOT_STORED: crate::logging::Every = crate::logging::Every::minute();
            if let Some(count) = NOT_STORED.allow() {
                tracing::error!(%error, count, "List sync records were not stored (one line a minute, with the count).");
            }
        }
    }
}
