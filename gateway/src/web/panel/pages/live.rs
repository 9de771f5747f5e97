//! `/live` (实时事件): the latest events from the journal on load, then new
//! ones pushed by server-sent events (`/live/stream`) as they are recorded
//! (after they are on disk), filtered by device, kind and class. Telemetry
//! is left out unless asked for (it would bury everything else); audit
//! records only for the roles that may read the audit log. Plate reads show
//! their verdict, reason and snapshot; blacklisted and denied reads stand
//! out. Active alarms stay in the alarm strip at the top until a guard
//! acknowledges them (`POST /live/ack/{seq}`, audited as
//! `alarm_acknowledged` with who and when).
//!
//! An open stream counts as activity (it renews its session every
//! [`TOUCH_EVERY`] re-checks), so a guard-room screen stays signed in up to
//! the session's absolute limit; it ends within [`RECHECK`] of a logout or
//! the user's removal, or when the listener shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use drivers::Class;
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Chrome, Opt, PanelAction, audit_by, options, record_audit};
use crate::auth::{Auth, Permission};
use crate::events::{Kind, PanelAudit};
use crate::store::JournalQuery;
use crate::supervisor::Drivers;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::{Flash, done};
use crate::web::panel::view::EventView;
use crate::web::panel::{Panel, PanelError};
use crate::wire::Envelope;

/// Rows loaded from history.
const HISTORY_ROWS: usize = 100;
/// How often an open stream re-checks its session.
const RECHECK: Duration = Duration::from_secs(3);
/// Every this many re-checks, the stream renews its session (a minute).
const TOUCH_EVERY: u32 = 20;
/// Alarms looked at for the strip (the newest).
const STRIP_ALARMS: usize = 50;
/// Acknowledgements looked at for the strip.
const STRIP_ACKS: usize = 500;

/// The live page's filter (empty: everything).
#[derive(Debug, Clone, Default, Deserialize)]
pub(in crate::web::panel) struct Filter {
    #[serde(default)]
    device: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    class: String,
    /// `1`: telemetry too.
    #[serde(default)]
    telemetry: String,
}

impl Filter {
    fn class(&self) -> Option<Class> {
        Class::parse(&self.class)
    }

    /// The classes shown: the one asked for, or every class but telemetry
    /// (unless asked for) and audit (unless the viewer may read it).
    fn classes(&self, may_audit: bool) -> Vec<Class> {
        match self.class() {
            Some(class) => vec![class],
            None => Class::ALL
                .iter()
                .copied()
                .filter(|c| *c != Class::Telemetry || self.telemetry == "1")
                .filter(|c| *c != Class::Audit || may_audit)
                .collect(),
        }
    }

    fn matches(&self, env: &Envelope, classes: &[Class]) -> bool {
        (self.device.is_empty() || env.device_id == self.device)
            && (self.kind.is_empty() || env.kind == self.kind)
            && classes.contains(&env.class)
    }

    fn query_string(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("device", &self.device)
            .append_pair("kind", &self.kind)
            .append_pair("class", &self.class)
            .append_pair("telemetry", &self.telemetry)
            .finish()
    }

    /// The classes for `viewer`; audit is refused to those who may not read
    /// the audit log, here as on `/audit`.
    fn allowed(&self, viewer: &Viewer) -> Result<Vec<Class>, PanelError> {
        let may_audit = viewer.may(Permission::ViewAudit);
        if self.class() == Some(Class::Audit) && !may_audit {
            return Err(PanelError::Forbidden(viewer.ctx.lang));
        }
        Ok(self.classes(may_audit))
    }
}

/// An active alarm nobody has acknowledged yet.
#[derive(Debug, Clone)]
pub(crate) struct StripAlarm {
    pub(crate) seq: u64,
    pub(crate) view: EventView,
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage {
    c: Chrome,
    devices: Vec<Opt>,
    kinds: Vec<Opt>,
    classes: Vec<Opt>,
    telemetry: bool,
    /// Some filter is set (the filter sheet opens).
    filtered: bool,
    rows: Vec<EventView>,
    strip: Vec<StripAlarm>,
    stream: String,
}

/// `(id, name)` of every device.
pub(crate) fn device_options(drivers: &Drivers) -> Vec<(String, String)> {
    drivers
        .iter()
        .map(|d| (d.id.to_string(), d.name.clone()))
        .collect()
}

/// `(class, label)` of every class (audit only for those who may read it).
pub(crate) fn class_options(
    t: &'static Strings,
    may_audit: bool,
) -> Vec<(&'static str, &'static str)> {
    Class::ALL
        .iter()
        .filter(|c| **c != Class::Audit || may_audit)
        .map(|c| (c.as_str(), t.class(*c)))
        .collect()
}

/// Active alarms without an `alarm_acknowledged` record, newest first.
async fn unacknowledged(
    core: &crate::web::panel::PanelCore,
    t: &'static Strings,
) -> Result<Vec<StripAlarm>, PanelError> {
    let alarms = core
        .journal
        .query(JournalQuery {
            classes: vec![Class::Alarm],
            limit: STRIP_ALARMS,
            ..JournalQuery::default()
        })
        .await?;
    let acks = core
        .journal
        .query(JournalQuery {
            kind: Some(Kind::AlarmAcknowledged.as_str().to_owned()),
            limit: STRIP_ACKS,
            ..JournalQuery::default()
        })
        .await?;
    let acked: std::collections::HashSet<u64> = acks
        .iter()
        .filter_map(|a| a.body.get("seq").and_then(|s| s.as_u64()))
        .collect();
    Ok(alarms
        .iter()
        .filter(|a| !acked.contains(&a.seq))
        .map(|a| StripAlarm {
            seq: a.seq,
            view: EventView::new(a, t, &core.drivers),
        })
        .filter(|a| a.view.alarm)
        .collect())
}

/// `GET /live`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let classes = filter.allowed(&viewer)?;
    let core = panel.core()?;
    let t = viewer.t();
    // Telemetry is not journalled: live only.
    let journalled: Vec<Class> = classes
        .iter()
        .copied()
        .filter(|c| *c != Class::Telemetry)
        .collect();
    let rows = if journalled.is_empty() {
        Vec::new()
    } else {
        let query = JournalQuery {
            device: Some(filter.device.clone()).filter(|s| !s.is_empty()),
            kind: Some(filter.kind.clone()).filter(|s| !s.is_empty()),
            classes: journalled,
            limit: HISTORY_ROWS,
            ..JournalQuery::default()
        };
        core.journal
            .query(query)
            .await?
            .iter()
            .map(|e| EventView::new(e, t, &core.drivers))
            .collect()
    };
    let may_audit = viewer.may(Permission::ViewAudit);
    let page = LivePage {
        c: Chrome::new(&viewer, "live"),
        stream: format!("/live/stream?{}", filter.query_string()),
        devices: options(device_options(&core.drivers), &filter.device),
        kinds: options(t.kinds.iter().copied(), &filter.kind),
        classes: options(class_options(t, may_audit), &filter.class),
        telemetry: filter.telemetry == "1",
        filtered: !(filter.device.is_empty()
            && filter.kind.is_empty()
            && filter.class.is_empty()
            && filter.telemetry.is_empty()),
        strip: unacknowledged(&core, t).await?,
        rows,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /live/ack/{seq}`: a guard acknowledges an alarm (audited with who
/// and when); it leaves the strip on every screen's next load.
pub(in crate::web::panel) async fn acknowledge(
    State(panel): State<Panel>,
    viewer: Viewer,
    axum::extract::Path(seq): axum::extract::Path<u64>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let alarm = core
        .journal
        .query(JournalQuery {
            classes: vec![Class::Alarm],
            before_seq: Some(seq + 1),
            limit: 1,
            ..JournalQuery::default()
        })
        .await?
        .into_iter()
        .find(|e| e.seq == seq)
        .ok_or(PanelError::NotFound(viewer.ctx.lang))?;
    let view = EventView::new(&alarm, t, &core.drivers);
    record_audit(
        &core,
        None,
        PanelAudit {
            seq: Some(seq),
            device: Some(alarm.device_id.clone()),
            ..audit_by(&viewer, PanelAction::AlarmAcknowledged)
                .on(format!("#{seq} {}", view.kind_label))
                .detail(view.summary.clone())
        },
    )
    .await;
    let flash = Flash::ok(format!("{}: #{seq} {}", t.alarm_acked, view.kind_label));
    Ok(done(&viewer, "/live", flash))
}

struct StreamState {
    rx: broadcast::Receiver<Arc<Envelope>>,
    filter: Filter,
    t: &'static Strings,
    drivers: Drivers,
    auth: Auth,
    cookie: String,
    cancel: CancellationToken,
    recheck: tokio::time::Interval,
    rechecks: u32,
    classes: Vec<Class>,
}

/// `GET /live/stream`: `event: ev` with an [`EventView`] as JSON per event;
/// `event: lagged` with a count when this page fell behind.
pub(in crate::web::panel) async fn stream(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let classes = filter.allowed(&viewer)?;
    let core = panel.core()?;
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.reset();
    let state = StreamState {
        rx: core.feed.subscribe(),
        filter,
        t: viewer.t(),
        drivers: core.drivers.clone(),
        auth: core.auth.clone(),
        cookie: viewer.ctx.cookie.clone().unwrap_or_default(),
        cancel: panel.cancel.clone(),
        recheck,
        rechecks: 0,
        classes,
    };
    Ok(Sse::new(events(state))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn events(state: StreamState) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(state, |mut st| async move {
        loop {
            tokio::select! {
                () = st.cancel.cancelled() => return None,
                _ = st.recheck.tick() => {
                    st.rechecks = st.rechecks.wrapping_add(1);
                    let touch = st.rechecks % TOUCH_EVERY == 0;
                    if !matches!(st.auth.session(&st.cookie, touch).await, Ok(Some(_))) {
                        return None;
                    }
                }
                received = st.rx.recv() => match received {
                    Ok(env) => {
                        if !st.filter.matches(&env, &st.classes) {
                            continue;
                        }
                        let view = EventView::new(&env, st.t, &st.drivers);
                        match Event::default().event("ev").json_data(&view) {
                            Ok(event) => return Some((Ok(event), st)),
                            Err(error) => tracing::warn!(%error, "An event could not be encoded for the live page."),
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let event = Event::default().event("lagged").data(missed.to_string());
                        return Some((Ok(event), st));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live page leaves telemetry out unless asked for, and audit
    /// records out for those who may not read the audit log, whatever
    /// else is asked.
    #[test]
    fn telemetry_only_when_asked_and_audit_only_for_its_readers() {
        let default = Filter::default();
        assert_eq!(default.classes(false), vec![Class::Access, Class::Alarm]);
        assert_eq!(
            default.classes(true),
            vec![Class::Access, Class::Alarm, Class::Audit]
        );
        let telemetry = Filter {
            telemetry: "1".into(),
            ..Filter::default()
        };
        assert!(telemetry.classes(false).contains(&Class::Telemetry));
        assert!(!telemetry.classes(false).contains(&Class::Audit));
    }
}
