//! The frame every page shares: navigation, who is signed in, the language
//! switch, the CSRF token for forms, the flash left by the last action
//! (post/redirect/get), one-time keys for actuating forms, and the calls
//! ringing at the door stations (the ringing banner).

use crate::auth::{Permission, token};
use crate::web::panel::guard::Viewer;
use crate::web::panel::i18n::Strings;
use crate::web::panel::pages::intercom::RingView;

use super::Flash;

/// What every page's frame shows.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) t: &'static Strings,
    pub(crate) lang: &'static str,
    pub(crate) other_lang: &'static str,
    pub(crate) other_lang_name: &'static str,
    pub(crate) user: String,
    pub(crate) role: &'static str,
    pub(crate) csrf: String,
    pub(crate) nav: &'static str,
    pub(crate) can_audit: bool,
    pub(crate) can_users: bool,
    pub(crate) can_residents: bool,
    /// This page, for the language switch to come back to.
    pub(crate) here: String,
    /// The outcome of the last action, shown once at the top of the page.
    pub(crate) flash: Option<Flash>,
    /// Reads waiting for a guard (the badge on every page).
    pub(crate) waiting: usize,
    /// Door-station calls ringing now (the banner on every page).
    pub(crate) calls: Vec<RingView>,
    /// Whether the viewer may open doors (the banner's unlock).
    pub(crate) can_actuate: bool,
    /// No message (for `kit::field` on a field that has none).
    pub(crate) no_error: Option<&'static str>,
}

impl Chrome {
    /// The frame of a full page: takes the flash the last action left for
    /// this session.
    pub(crate) fn new(viewer: &Viewer, nav: &'static str) -> Chrome {
        let mut chrome = Chrome::fragment(viewer, nav);
        chrome.flash = viewer.ctx.memo.take_flash(&viewer.csrf);
        chrome.waiting = viewer.ctx.waiting;
        chrome.calls = viewer.ctx.ringing.clone();
        chrome
    }

    /// The frame of a part of a page fetched by its script (leaves the
    /// flash where it is).
    pub(crate) fn fragment(viewer: &Viewer, nav: &'static str) -> Chrome {
        let lang = viewer.ctx.lang;
        Chrome {
            t: lang.strings(),
            lang: lang.code(),
            other_lang: lang.other().code(),
            other_lang_name: lang.other().strings().language_name,
            user: viewer.user.name.clone(),
            role: lang.strings().role(viewer.user.role),
            csrf: viewer.csrf.clone(),
            nav,
            can_audit: viewer.may(Permission::ViewAudit),
            can_users: viewer.may(Permission::ManageUsers),
            can_residents: viewer.may(Permission::ManageResidents),
            here: viewer.ctx.path.clone(),
            flash: None,
            waiting: 0,
            calls: Vec::new(),
            can_actuate: viewer.may(Permission::Actuate),
            no_error: None,
        }
    }

    /// `active` for the current navigation entry.
    pub(crate) fn active(&self, nav: &str) -> &'static str {
        if self.nav == nav { "active" } else { "" }
    }

    /// A fresh one-time key for an actuating form (see
    /// [`first_use`](super::first_use)).
    pub(crate) fn once_key(&self) -> String {
        token::random()
    }
}

/// One `<option>` of a select.
#[derive(Debug, Clone)]
pub(crate) struct Opt {
    pub(crate) value: String,
    pub(crate) label: String,
    pub(crate) selected: bool,
}

/// Options from `(value, label)` pairs, `current` selected.
pub(crate) fn options<V: AsRef<str>, L: AsRef<str>>(
    pairs: impl IntoIterator<Item = (V, L)>,
    current: &str,
) -> Vec<Opt> {
    pairs
        .into_iter()
        .map(|(v, l)| Opt {
            selected: v.as_ref() == current,
            value: v.as_ref().to_owned(),
            label: l.as_ref().to_owned(),
        })
        .collect()
}
