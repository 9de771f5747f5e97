//! `/intercom` (对讲): the door stations of the estate's video intercoms —
//! each station's health (online or offline, last seen, last error) as its
//! driver last saw it, a form per station that opens its door (a reason
//! required), and the call log from the journal (calls, answers, ends,
//! missed calls and unlocks), filtered by unit or room and to missed calls.
//!
//! The ringing banner every page shows while a call waits is fed from here
//! too: [`RingView`] is what the page frame renders and what
//! `GET /intercom/ringing` (server-sent events, `event: ring` with the
//! whole set as JSON on every change, the first at once) sends to open
//! pages. Its unlock button and the page's forms post to
//! `POST /intercom/{id}/unlock`: the guard's permission, the CSRF token
//! (the guard), a one-time key (a double tap opens once), a mandatory
//! reason, then `pulse_door` through the pipeline like every manual
//! command (audited with who, why and from where), and back to the page
//! the guard was on (post/redirect/get) with the outcome.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use drivers::Command;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Chrome;
use super::devices::DeviceRow;
use crate::auth::{Auth, Permission};
use crate::config::is_station;
use crate::intercom::Ringing;
use crate::pipeline::Origin;
use crate::store::JournalQuery;
use crate::supervisor::Drivers;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::kit::{Flash, check_reason, done, first_use, outcome_flash};
use crate::web::panel::view::{EventView, device_name, local_time};
use crate::web::panel::{Panel, PanelError};
use crate::wire::Envelope;

/// The kinds of the call log.
const CALL_KINDS: [&str; 5] = [
    "call_started",
    "call_answered",
    "call_ended",
    "call_missed",
    "station_unlock",
];

/// Rows of each kind read from the journal for the call log.
const PER_KIND: usize = 200;

/// Rows the call log shows.
const LOG_ROWS: usize = 100;

/// The longest unit filter taken.
const MAX_UNIT_CHARS: usize = 32;

/// How often an open banner stream re-checks its session.
const RECHECK: Duration = Duration::from_secs(3);

/// A ringing call as the banner shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RingView {
    /// Stable within the set: station and call.
    pub(crate) key: String,
    /// The station's device id.
    pub(crate) station: String,
    /// The station's name.
    pub(crate) name: String,
    /// The unit or room called (empty when the station did not say).
    pub(crate) unit: String,
    /// When it started, local time.
    pub(crate) since: String,
    /// The caller's snapshot (a panel URL), once there is one.
    pub(crate) snapshot: Option<String>,
    /// Where its unlock posts.
    pub(crate) unlock: String,
}

impl RingView {
    /// The banner's views of `calls`.
    pub(crate) fn all(calls: &[Ringing], drivers: &Drivers, t: &'static Strings) -> Vec<RingView> {
        calls
            .iter()
            .map(|r| RingView {
                key: format!("{}/{}", r.station, r.call),
                station: r.station.clone(),
                name: device_name(t, drivers, &r.station),
                unit: r.unit.clone().unwrap_or_default(),
                since: local_time(r.started_ms),
                snapshot: r
                    .snapshot
                    .as_deref()
                    .filter(|name| super::images::is_safe_name(name))
                    .map(|name| format!("/images/{name}")),
                unlock: unlock_path(&r.station),
            })
            .collect()
    }
}

fn unlock_path(station: &str) -> String {
    format!(
        "/intercom/{}/unlock",
        form_urlencoded::byte_serialize(station.as_bytes()).collect::<String>()
    )
}

/// One station with its health and the way to its door.
struct StationView {
    device: DeviceRow,
    online: bool,
    unlock: String,
}

/// The call log's filter.
#[derive(Debug, Clone, Default, Deserialize)]
pub(in crate::web::panel) struct Filter {
    /// Unit or room (a part of it).
    #[serde(default)]
    unit: String,
    /// `1`: missed calls only.
    #[serde(default)]
    missed: String,
}

#[derive(Template)]
#[template(path = "intercom.html")]
struct IntercomPage {
    c: Chrome,
    stations: Vec<StationView>,
    unit: String,
    missed: bool,
    rows: Vec<EventView>,
}

/// The unit an event names, if any.
fn unit_of(env: &Envelope) -> Option<&str> {
    env.body.get("unit").and_then(|u| u.as_str())
}

/// The call an event belongs to, if any.
fn call_of(env: &Envelope) -> Option<(&str, &str)> {
    let call = env.body.get("call").and_then(|c| c.as_str())?;
    Some((env.device_id.as_str(), call))
}

/// The call log: events of [`CALL_KINDS`] at `stations`, newest first,
/// filtered. A unit filter keeps the calls to units containing it (and
/// their answers, ends and missed calls, which need not name the unit
/// again); `missed` then keeps the missed calls only.
fn call_log(
    mut events: Vec<Envelope>,
    stations: &[String],
    unit: &str,
    missed: bool,
) -> Vec<Envelope> {
    events.retain(|e| stations.contains(&e.device_id));
    if !unit.is_empty() {
        let calls: Vec<(String, String)> = events
            .iter()
            .filter(|e| unit_of(e).is_some_and(|u| u.contains(unit)))
            .filter_map(|e| call_of(e).map(|(s, c)| (s.to_owned(), c.to_owned())))
            .collect();
        events.retain(|e| {
            unit_of(e).is_some_and(|u| u.contains(unit))
                || call_of(e).is_some_and(|(s, c)| calls.iter().any(|(s2, c2)| s == s2 && c == c2))
        });
    }
    if missed {
        events.retain(|e| e.kind == "call_missed");
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.seq));
    events.truncate(LOG_ROWS);
    events
}

/// `GET /intercom`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let stations: Vec<StationView> = core
        .drivers
        .iter()
        .filter(|d| is_station(d.kind))
        .map(|handle| {
            let device = DeviceRow::new(&handle, t);
            StationView {
                online: device.state == "ok",
                unlock: unlock_path(&device.id),
                device,
            }
        })
        .collect();
    let ids: Vec<String> = stations.iter().map(|s| s.device.id.clone()).collect();
    let unit: String = filter.unit.trim().chars().take(MAX_UNIT_CHARS).collect();
    let missed = filter.missed == "1";
    let mut events = Vec::new();
    for kind in CALL_KINDS {
        events.extend(
            core.journal
                .query(JournalQuery {
                    kind: Some(kind.to_owned()),
                    limit: PER_KIND,
                    ..JournalQuery::default()
                })
                .await?,
        );
    }
    let rows = call_log(events, &ids, &unit, missed)
        .iter()
        .map(|e| EventView::new(e, t, &core.drivers))
        .collect();
    let page = IntercomPage {
        c: Chrome::new(&viewer, "intercom"),
        stations,
        unit,
        missed,
        rows,
    };
    Ok(render(StatusCode::OK, &page))
}

/// An unlock from the banner or the page.
#[derive(Debug, Deserialize)]
pub(in crate::web::panel) struct UnlockForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    key: String,
    /// The page to go back to (a local path).
    #[serde(default)]
    next: String,
}

/// `next` when it is a path of this panel, else `/intercom`.
fn back_to(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if local { next } else { "/intercom" }
}

/// `POST /intercom/{id}/unlock`: opens a door station's door, with a
/// reason, through the pipeline (audited); back to the page it came from.
pub(in crate::web::panel) async fn unlock(
    State(panel): State<Panel>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<UnlockForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Actuate)?;
    let core = panel.core()?;
    let t = viewer.t();
    core.drivers
        .get(&id)
        .filter(|d| is_station(d.kind))
        .ok_or(PanelError::NotFound(viewer.ctx.lang))?;
    let back = back_to(&form.next);
    if !first_use(&viewer, &form.key) {
        return Ok(done(&viewer, back, Flash::warn(t.already_done)));
    }
    let reason = form.reason.trim().to_owned();
    if let Some(error) = check_reason(t, &reason) {
        return Ok(done(
            &viewer,
            back,
            Flash::bad(format!("{}: {error}", t.intercom_unlock_now)),
        ));
    }
    let origin = Origin {
        actor: viewer.user.name.clone(),
        via: "panel".into(),
        reason: Some(reason),
        remote: viewer.remote(),
    };
    let command = Command::PulseDoor {
        door: None,
        duration_ms: None,
    };
    let report = core.pipeline.command(&id, command, origin).await;
    let what = format!(
        "{} · {}",
        t.intercom_unlock_now,
        device_name(t, &core.drivers, &id)
    );
    let flash = outcome_flash(t, &what, &report.outcome, report.audit_seq);
    Ok(done(&viewer, back, flash))
}

struct StreamState {
    rx: watch::Receiver<std::sync::Arc<Vec<Ringing>>>,
    t: &'static Strings,
    drivers: Drivers,
    auth: Auth,
    cookie: String,
    cancel: tokio_util::sync::CancellationToken,
    recheck: tokio::time::Interval,
}

/// `GET /intercom/ringing`: the ringing banner's stream — `event: ring`
/// with the calls ringing now ([`RingView`]s as JSON), at once and on
/// every change. Ends within [`RECHECK`] of the session's end, or when
/// the listener shuts down; it does not keep the session alive.
pub(in crate::web::panel) async fn ringing(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let mut rx = core.intercom.subscribe();
    rx.mark_changed();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.reset();
    let state = StreamState {
        rx,
        t: viewer.t(),
        drivers: core.drivers.clone(),
        auth: core.auth.clone(),
        cookie: viewer.ctx.cookie.clone().unwrap_or_default(),
        cancel: panel.cancel.clone(),
        recheck,
    };
    Ok(Sse::new(calls(state))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn calls(state: StreamState) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(state, |mut st| async move {
        loop {
            tokio::select! {
                () = st.cancel.cancelled() => return None,
                _ = st.recheck.tick() => {
                    if !matches!(st.auth.session(&st.cookie, false).await, Ok(Some(_))) {
                        return None;
                    }
                }
                changed = st.rx.changed() => {
                    changed.ok()?;
                    let now = st.rx.borrow_and_update().clone();
                    let views = RingView::all(&now, &st.drivers, st.t);
                    match Event::default().event("ring").json_data(&views) {
                        Ok(event) => return Some((Ok(event), st)),
                        Err(error) => tracing::warn!(%error, "The ringing calls could not be encoded for the panel."),
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_call_log_filters_by_unit_with_the_calls_answers_and_to_missed_calls() {
        let events = vec![
            Envelope::for_test(
                1,
                "call_started",
                "b3",
                json!({"call": "1", "unit": "3-1-502"}),
            ),
            Envelope::for_test(2, "call_answered", "b3", json!({"call": "1", "by": "app"})),
            Envelope::for_test(
                3,
                "call_started",
                "b3",
                json!({"call": "2", "unit": "3-2-101"}),
            ),
            Envelope::for_test(
                4,
                "call_missed",
                "b3",
                json!({"call": "2", "unit": "3-2-101"}),
            ),
            Envelope::for_test(
                5,
                "call_started",
                "other",
                json!({"call": "1", "unit": "3-1-502"}),
            ),
            Envelope::for_test(6, "station_unlock", "b3", json!({"method": "card"})),
        ];
        let stations = ["b3".to_owned()];
        let seqs = |v: Vec<Envelope>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(call_log(events.clone(), &stations, "", false)),
            [6, 4, 3, 2, 1]
        );
        assert_eq!(
            seqs(call_log(events.clone(), &stations, "1-502", false)),
            [2, 1]
        );
        assert_eq!(seqs(call_log(events.clone(), &stations, "", true)), [4]);
        assert_eq!(
            seqs(call_log(events.clone(), &stations, "502", true)),
            Vec::<u64>::new()
        );
        assert_eq!(seqs(call_log(events, &stations, "3-2", true)), [4]);
    }

    #[test]
    fn an_unlock_goes_back_only_to_a_page_of_the_panel() {
        assert_eq!(back_to("/devices?x=1"), "/devices?x=1");
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil",
            "/a\r\nb",
        ] {
            assert_eq!(back_to(bad), "/intercom", "{bad:?}");
        }
    }
}
