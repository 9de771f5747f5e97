//! The panel for guards and property managers: server-rendered pages
//! (askama templates in `gateway/templates/`, compiled and checked at build
//! time, so a missing field or string is a build error and nothing is parsed
//! at run time), embedded assets, zh-CN first with English switchable
//! ([`i18n`]).
//!
//! Layout: [`guard`] resolves the session and language of every request and
//! refuses state-changing requests without the right CSRF token (one place,
//! so no handler can forget it); [`headers`] adds the security headers;
//! [`kit`] is the page kit every page is built from; `pages/` holds one
//! module per page; [`view`] turns events into rows.
//!
//! **Adding a page** (监控, 对讲, 设施, …) is: a route in [`router`], a handler
//! module in `pages/`, a template, and its strings in both `i18n` files.
//! Build it from the page kit — [`kit`] on the Rust side (the frame
//! `Chrome`, `done` for post/redirect/get with a flash, one-time keys for
//! actuations, `CommandForm` + `outcome_flash`, audit helpers, CSV import
//! with preview and the formula-safe CSV download) and `templates/kit.html`
//! on the template side (fields with their messages, row actions with
//! confirmation, search, import preview and form). A list page is then a
//! row type, a form type and a few handlers (see `pages/cards.rs`). Every
//! handler takes a [`guard::Viewer`] (which requires a live session) and
//! checks its [`Permission`](crate::auth::Permission) first. A new device
//! `type` or event kind needs its label in both languages (a test checks).
//! Lay a page out for a 390 px phone first: `table.list` rows become cards
//! there (give each cell a `data-label`).
//!
//! The router exists from the first moment (the listener answers `/healthz`
//! while the store opens); the pieces the pages need ([`PanelCore`]) are set
//! once the gateway has started, and pages answer 503 until then.

pub mod assets;
mod error;
mod guard;
mod headers;
pub mod i18n;
mod kit;
mod pages;
mod view;

pub(crate) use pages::images::is_safe_name;

pub use view::local_time;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::doors::credentials::CredentialStore;
use crate::facility::Facility;
use crate::intercom::Intercom;
use crate::lanes::LaneBoard;
use crate::lists::plates::PlateRegistry;
use crate::metrics::Metrics;
use crate::pipeline::{EventFeed, PipelineHandle};
use crate::privacy::Eraser;
use crate::store::Journal;
use crate::supervisor::Drivers;
use crate::surveillance::Surveillance;
use crate::uplink::status::UplinkStatus;

pub(crate) use error::PanelError;

/// What the pages work with, available once the gateway has started.
#[derive(Debug)]
pub struct PanelCore {
    /// Users, sessions, lockout, setup.
    pub auth: Auth,
    /// History and audit reads.
    pub journal: Journal,
    /// Commands and audit records.
    pub pipeline: PipelineHandle,
    /// Devices.
    pub drivers: Drivers,
    /// Recorded events, live.
    pub feed: EventFeed,
    /// Where plate images are stored (`<data_dir>/images`).
    pub images_dir: PathBuf,
    /// The lanes board and the reads waiting for a guard.
    pub board: LaneBoard,
    /// Residents, visitors, blacklist, vehicles inside.
    pub plates: Arc<PlateRegistry>,
    /// Unit-door cards, PINs, temporary codes, blocked cards.
    pub credentials: Arc<CredentialStore>,
    /// The platform link's state.
    pub uplink_status: Arc<UplinkStatus>,
    /// Facility points (设施): live values, alarms, trends.
    pub facility: Facility,
    /// Surveillance cameras (监控): status, snapshots.
    pub cctv: Surveillance,
    /// Door stations' calls ringing now (the banner on every page).
    pub intercom: Intercom,
    /// Erasure on request (个人信息删除).
    pub eraser: Eraser,
}

/// The panel's handle (cheap to clone): the core once set, the metrics for
/// refusals, and the listener's cancellation (which ends live streams, so a
/// graceful shutdown is not held up by open pages).
#[derive(Debug, Clone)]
pub struct Panel {
    core: Arc<OnceLock<Arc<PanelCore>>>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    secure_cookies: bool,
    memo: kit::FlashBox,
    /// Host names answered besides IP addresses and `localhost`.
    hosts: Arc<Vec<String>>,
}

impl Panel {
    /// A panel without its core yet. `secure_cookies` when served over TLS.
    pub fn new(metrics: Arc<Metrics>, cancel: CancellationToken, secure_cookies: bool) -> Panel {
        Panel {
            core: Arc::new(OnceLock::new()),
            metrics,
            cancel,
            secure_cookies,
            memo: kit::FlashBox::default(),
            hosts: Arc::new(Vec::new()),
        }
    }

    /// Also answers to these host names (`[panel] hosts`).
    pub fn with_hosts(mut self, hosts: Vec<String>) -> Panel {
        self.hosts = Arc::new(hosts);
        self
    }

    /// Sets the core (once; later calls are ignored).
    pub fn set_core(&self, core: PanelCore) {
        let _ = self.core.set(Arc::new(core));
    }

    pub(crate) fn core(&self) -> Result<Arc<PanelCore>, PanelError> {
        self.core.get().cloned().ok_or(PanelError::Starting)
    }
}

/// The panel's routes, with the session/CSRF guard and security headers.
pub fn router(panel: Panel) -> Router {
    Router::new()
        .route("/", get(pages::root))
        .route("/login", get(pages::login::page).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route(
            "/setup",
            get(pages::login::setup_page).post(pages::login::setup_submit),
        )
        .route("/lang/{code}", get(pages::login::switch_language))
        .route("/live", get(pages::live::page))
        .route("/live/stream", get(pages::live::stream))
        .route("/live/ack/{seq}", post(pages::live::acknowledge))
        .route("/devices", get(pages::devices::list))
        .route("/devices/{id}", get(pages::devices::detail))
        .route("/devices/{id}/command", post(pages::devices::command))
        .route("/devices/{id}/restart", post(pages::devices::restart))
        .route("/facility", get(pages::facility::page))
        .route("/facility/{device}/{point}", get(pages::facility::point))
        .route(
            "/facility/{device}/{point}/ack",
            post(pages::facility::acknowledge),
        )
        .route(
            "/facility/{device}/{point}/write",
            post(pages::facility::write),
        )
        .route("/intercom", get(pages::intercom::page))
        .route("/intercom/ringing", get(pages::intercom::ringing))
        .route("/intercom/{id}/unlock", post(pages::intercom::unlock))
        .route("/cctv", get(pages::cctv::page))
        .route("/cctv/{id}/snapshot", post(pages::cctv::snapshot))
        .route("/audit", get(pages::audit::page))
        .route("/audit.csv", get(pages::audit::csv))
        .route("/users", get(pages::users::page).post(pages::users::add))
        .route("/users/{name}/password", post(pages::users::reset_password))
        .route("/users/{name}/remove", post(pages::users::remove))
        .route("/users/{name}/unlock", post(pages::users::unlock))
        .route("/privacy", get(pages::privacy::page))
        .route("/privacy/erase", post(pages::privacy::erase))
        .route("/lanes", get(pages::lanes::page))
        .route("/lanes/live", get(pages::lanes::live))
        .route("/lanes/{id}/command", post(pages::lanes::command))
        .route("/lanes/pending/{id}", post(pages::lanes::decide))
        .route(
            "/visitors",
            get(pages::visitors::page).post(pages::visitors::register),
        )
        .route("/visitors/{id}/revoke", post(pages::visitors::revoke))
        .route(
            "/vehicles",
            get(pages::vehicles::page).post(pages::vehicles::save),
        )
        .route("/vehicles.csv", get(pages::vehicles::export))
        .route("/vehicles/import", post(pages::vehicles::import))
        .route("/vehicles/blacklist", post(pages::vehicles::blacklist_add))
        .route(
            "/vehicles/blacklist/{plate}/remove",
            post(pages::vehicles::blacklist_remove),
        )
        .route("/vehicles/{plate}/remove", post(pages::vehicles::remove))
        .route("/cards", get(pages::cards::page).post(pages::cards::save))
        .route("/cards.csv", get(pages::cards::export))
        .route("/cards/import", post(pages::cards::import))
        .route("/cards/block", post(pages::cards::block))
        .route("/cards/{number}/unblock", post(pages::cards::unblock))
        .route("/cards/{number}/remove", post(pages::cards::remove))
        .route("/platform", get(pages::platform::page))
        .route("/traffic", get(pages::traffic::page))
        .route("/images/{*name}", get(pages::images::serve))
        .route("/assets/{name}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            panel.clone(),
            guard::middleware,
        ))
        .layer(axum::middleware::map_response(headers::security_headers))
        .with_state(panel)
}

#[cfg(test)]
mod tests;
