//! `/live` (实时事件): the latest events from the journal on load, then new
//! ones pushed by server-sent events (`/live/stream`) as they are recorded
//! (after they are on disk), filtered by device, kind and class. Alarms
//! stand out; plate reads show their thumbnail.
//!
//! A stream ends when the listener shuts down or its session is gone (it
//! is re-checked every [`RECHECK`]); the browser's `EventSource` reconnects
//! by itself and lands on the login page if the session expired.

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

use super::{Chrome, Opt, options};
use crate::auth::{Auth, Permission};
use crate::store::JournalQuery;
use crate::supervisor::Drivers;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::view::EventView;
use crate::web::panel::{Panel, PanelError};
use crate::wire::Envelope;

/// Rows loaded from history.
const HISTORY_ROWS: usize = 100;
/// How often an open stream re-checks its session.
const RECHECK: Duration = Duration::from_secs(30);

/// The live page's filter (empty: everything).
#[derive(Debug, Clone, Default, Deserialize)]
pub(in crate::web::panel) struct Filter {
    #[serde(default)]
    device: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    class: String,
}

impl Filter {
    fn class(&self) -> Option<Class> {
        Class::parse(&self.class)
    }

    fn matches(&self, env: &Envelope) -> bool {
        (self.device.is_empty() || env.device_id == self.device)
            && (self.kind.is_empty() || env.kind == self.kind)
            && self.class().is_none_or(|c| env.class == c)
    }

    fn query_string(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("device", &self.device)
            .append_pair("kind", &self.kind)
            .append_pair("class", &self.class)
            .finish()
    }
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage {
    c: Chrome,
    devices: Vec<Opt>,
    kinds: Vec<Opt>,
    classes: Vec<Opt>,
    rows: Vec<EventView>,
    stream: String,
}

/// `(id, name)` of every device.
pub(crate) fn device_options(drivers: &Drivers) -> Vec<(String, String)> {
    drivers
        .iter()
        .map(|d| (d.id.to_string(), d.name.clone()))
        .collect()
}

/// `(class, label)` of every class.
pub(crate) fn class_options(t: &'static Strings) -> Vec<(&'static str, &'static str)> {
    Class::ALL
        .iter()
        .map(|c| (c.as_str(), t.class(*c)))
        .collect()
}

/// `GET /live`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let t = viewer.t();
    let rows = if filter.class() == Some(Class::Telemetry) {
        Vec::new() // telemetry is not journalled: live only
    } else {
        let query = JournalQuery {
            device: Some(filter.device.clone()).filter(|s| !s.is_empty()),
            kind: Some(filter.kind.clone()).filter(|s| !s.is_empty()),
            classes: filter.class().into_iter().collect(),
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
    let page = LivePage {
        c: Chrome::new(&viewer, "live"),
        stream: format!("/live/stream?{}", filter.query_string()),
        devices: options(device_options(&core.drivers), &filter.device),
        kinds: options(t.kinds.iter().copied(), &filter.kind),
        classes: options(class_options(t), &filter.class),
        rows,
    };
    Ok(render(StatusCode::OK, &page))
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
}

/// `GET /live/stream`: `event: ev` with an [`EventView`] as JSON per event;
/// `event: lagged` with a count when this page fell behind.
pub(in crate::web::panel) async fn stream(
    State(panel): State<Panel>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
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
                    if !matches!(st.auth.session(&st.cookie, false).await, Ok(Some(_))) {
                        return None;
                    }
                }
                received = st.rx.recv() => match received {
                    Ok(env) => {
                        if !st.filter.matches(&env) {
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
