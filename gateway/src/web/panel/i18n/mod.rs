//! Every word the panel shows, one file per language ([`zh_cn`], [`en`]),
//! as one [`Strings`] value each: a string missing in a language is a
//! compile error. zh-CN is the default; the `lang` cookie (set by
//! `/lang/{code}`) or a `?lang=` query switches.
//!
//! Adding a page: add its fields to [`Strings`] and fill them in both files.
//! The tables (event kinds, commands, device types, door reasons) are
//! checked by tests: every kind in `docs/schema/events.json` and every
//! configurable device type has a label in both languages.

mod en;
mod zh_cn;

/// A panel language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// 简体中文 (default).
    #[default]
    ZhCn,
    /// English.
    En,
}

impl Lang {
    /// The code used in the cookie, the query and `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    /// Parses a code (`zh-CN`, `zh`, `en`), case-insensitively.
    pub fn parse(code: &str) -> Option<Lang> {
        match code.to_ascii_lowercase().as_str() {
            "zh-cn" | "zh" | "zh_cn" => Some(Lang::ZhCn),
            "en" | "en-us" | "en-gb" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (the switch link).
    pub fn other(self) -> Lang {
        match self {
            Lang::ZhCn => Lang::En,
            Lang::En => Lang::ZhCn,
        }
    }

    /// This language's strings.
    pub fn strings(self) -> &'static Strings {
        match self {
            Lang::ZhCn => &zh_cn::STRINGS,
            Lang::En => &en::STRINGS,
        }
    }
}

/// Every text of the panel in one language.
#[derive(Debug)]
pub struct Strings {
    /// This language's own name (shown on the switch link of the other).
    pub language_name: &'static str,
    pub app_name: &'static str,
    pub nav_live: &'static str,
    pub nav_devices: &'static str,
    pub nav_audit: &'static str,
    pub nav_users: &'static str,
    pub nav_platform: &'static str,
    pub logout: &'static str,
    pub signed_in_as: &'static str,

    pub login_title: &'static str,
    pub login_name: &'static str,
    pub login_password: &'static str,
    pub login_submit: &'static str,
    pub login_failed: &'static str,
    /// `{n}`: seconds to wait.
    pub login_locked: &'static str,
    pub login_no_users: &'static str,
    pub setup_title: &'static str,
    pub setup_intro: &'static str,
    pub setup_invalid: &'static str,
    pub setup_submit: &'static str,
    pub password_confirm: &'static str,

    pub err_required: &'static str,
    pub err_name_bad: &'static str,
    pub err_name_long: &'static str,
    pub err_password_short: &'static str,
    pub err_password_long: &'static str,
    pub err_password_mismatch: &'static str,
    pub err_user_exists: &'static str,
    pub err_no_such_user: &'static str,
    pub err_last_admin: &'static str,
    pub err_reason_required: &'static str,
    pub err_reason_long: &'static str,
    pub err_command_unknown: &'static str,
    pub err_role: &'static str,
    pub err_date: &'static str,
    pub err_date_order: &'static str,

    pub live_title: &'static str,
    pub live_connected: &'static str,
    pub live_disconnected: &'static str,
    pub live_history_note: &'static str,
    pub live_empty: &'static str,
    pub live_lagged: &'static str,
    pub filter_device: &'static str,
    pub filter_kind: &'static str,
    pub filter_class: &'static str,
    pub filter_actor: &'static str,
    pub filter_from: &'static str,
    pub filter_to: &'static str,
    pub filter_all: &'static str,
    pub filter_apply: &'static str,
    pub col_time: &'static str,
    pub col_device: &'static str,
    pub col_kind: &'static str,
    pub col_class: &'static str,
    pub col_detail: &'static str,
    pub col_image: &'static str,
    pub badge_alarm: &'static str,
    pub badge_cleared: &'static str,
    pub class_access: &'static str,
    pub class_alarm: &'static str,
    pub class_audit: &'static str,
    pub class_telemetry: &'static str,

    pub devices_title: &'static str,
    pub devices_empty: &'static str,
    pub nav_intercom: &'static str,
    pub intercom_title: &'static str,
    pub intercom_empty: &'static str,
    pub intercom_no_calls: &'static str,
    pub intercom_unlock: &'static str,
    pub intercom_unlock_now: &'static str,
    pub intercom_stations: &'static str,
    pub intercom_online: &'static str,
    pub intercom_offline: &'static str,
    pub intercom_log: &'static str,
    pub intercom_unit: &'static str,
    pub intercom_missed_only: &'static str,
    pub intercom_no_match: &'static str,
    pub intercom_unlock_reason: &'static str,
    pub ring_title: &'static str,
    pub ring_calls: &'static str,
    pub ring_snapshot: &'static str,
    pub nav_cctv: &'static str,
    pub cctv_title: &'static str,
    pub cctv_empty: &'static str,
    pub cctv_online: &'static str,
    pub cctv_offline: &'static str,
    pub cctv_model: &'static str,
    pub cctv_firmware: &'static str,
    pub cctv_serial: &'static str,
    pub cctv_drift: &'static str,
    pub cctv_last_error: &'static str,
    pub cctv_events: &'static str,
    pub cctv_events_subscribed: &'static str,
    pub cctv_events_unsupported: &'static str,
    pub cctv_events_failing: &'static str,
    pub cctv_watches: &'static str,
    pub cctv_streams: &'static str,
    pub cctv_streams_note: &'static str,
    pub cctv_latest: &'static str,
    pub cctv_no_snapshot: &'static str,
    pub cctv_take_snapshot: &'static str,
    pub cctv_snapshot_taken: &'static str,
    pub cctv_snapshot_failed: &'static str,
    pub cctv_recent: &'static str,
    pub cctv_no_events: &'static str,
    pub col_name: &'static str,
    pub col_type: &'static str,
    pub col_health: &'static str,
    pub col_last_seen: &'static str,
    pub col_last_error: &'static str,
    pub col_restarts: &'static str,
    pub health_ok: &'static str,
    pub health_starting: &'static str,
    pub health_degraded: &'static str,
    pub health_stopped: &'static str,
    pub never: &'static str,
    pub details: &'static str,
    pub device_commands: &'static str,
    pub command_label: &'static str,
    pub reason: &'static str,
    pub reason_hint: &'static str,
    pub send_command: &'static str,
    pub outcome_done: &'static str,
    pub outcome_refused: &'static str,
    pub outcome_failed: &'static str,
    pub outcome_unsupported: &'static str,
    pub audit_seq: &'static str,
    pub restart_title: &'static str,
    pub restart_hint: &'static str,
    pub restart_submit: &'static str,
    pub restart_done: &'static str,
    pub restart_failed: &'static str,
    pub device_recent: &'static str,

    pub audit_title: &'static str,
    pub audit_empty: &'static str,
    pub export_csv: &'static str,
    pub col_actor: &'static str,
    pub col_action: &'static str,
    pub col_target: &'static str,
    pub col_reason: &'static str,
    pub col_remote: &'static str,
    pub older: &'static str,

    pub users_title: &'static str,
    pub col_role: &'static str,
    pub col_created: &'static str,
    pub col_password_changed: &'static str,
    pub col_actions: &'static str,
    pub add_user: &'static str,
    pub role_guard: &'static str,
    pub role_manager: &'static str,
    pub role_admin: &'static str,
    pub new_password: &'static str,
    pub reset_password: &'static str,
    pub remove_user: &'static str,
    pub user_added: &'static str,
    pub user_removed: &'static str,
    pub password_reset_done: &'static str,
    pub privacy_title: &'static str,
    pub privacy_intro: &'static str,
    pub privacy_by: &'static str,
    pub privacy_value: &'static str,
    pub privacy_reason: &'static str,
    pub privacy_confirm: &'static str,
    pub privacy_erase: &'static str,
    pub privacy_erased: &'static str,
    pub privacy_removed: &'static str,
    pub privacy_stripped: &'static str,
    pub privacy_snapshots: &'static str,
    pub privacy_link: &'static str,
    pub err_privacy_subject: &'static str,
    pub err_privacy_confirm: &'static str,

    pub platform_title: &'static str,
    pub platform_not_configured: &'static str,

    pub nav_lanes: &'static str,
    pub nav_visitors: &'static str,
    pub nav_traffic: &'static str,
    pub lanes_title: &'static str,
    pub lanes_pending: &'static str,
    pub lanes_pending_empty: &'static str,
    pub lane_control: &'static str,
    pub col_lane: &'static str,
    pub col_arm: &'static str,
    pub col_loop: &'static str,
    pub col_last_vehicle: &'static str,
    pub col_fault: &'static str,
    pub col_plate: &'static str,
    pub col_candidate: &'static str,
    pub dir_entry: &'static str,
    pub dir_exit: &'static str,
    pub arm_closed: &'static str,
    pub arm_opening: &'static str,
    pub arm_open: &'static str,
    pub arm_closing: &'static str,
    pub arm_held_open: &'static str,
    pub unknown: &'static str,
    pub loop_occupied: &'static str,
    pub loop_free: &'static str,
    pub verdict_allow: &'static str,
    pub verdict_deny: &'static str,
    pub verdict_ask: &'static str,
    pub btn_open: &'static str,
    pub btn_close: &'static str,
    pub btn_hold: &'static str,
    pub btn_release: &'static str,
    pub btn_allow: &'static str,
    pub btn_deny: &'static str,
    pub reason_optional: &'static str,
    pub decide_default_allow: &'static str,
    pub decide_default_deny: &'static str,
    pub decided_allow: &'static str,
    pub decided_deny: &'static str,
    pub err_not_pending: &'static str,
    /// A guard decided a read that waited past its limit: nothing opened.
    pub err_pending_expired: &'static str,
    pub reason_resident: &'static str,
    pub reason_visitor: &'static str,
    pub reason_blacklisted: &'static str,
    pub reason_expired: &'static str,
    pub reason_not_yet_valid: &'static str,
    pub reason_pass_used: &'static str,
    pub reason_lane_not_allowed: &'static str,
    pub reason_unknown_plate: &'static str,
    pub reason_low_confidence: &'static str,
    pub reason_fuzzy: &'static str,
    pub reason_no_plate: &'static str,
    pub reason_exit_open: &'static str,
    pub reason_exit_known: &'static str,
    pub reason_exit_unknown: &'static str,
    /// Allowed, but the barrier did not open.
    pub reason_barrier_failed: &'static str,
    pub visitors_title: &'static str,
    pub visitor_register: &'static str,
    pub col_host_unit: &'static str,
    pub valid_from: &'static str,
    pub valid_to: &'static str,
    pub col_use: &'static str,
    pub use_single: &'static str,
    pub use_multiple: &'static str,
    pub pass_used: &'static str,
    pub register_submit: &'static str,
    pub revoke: &'static str,
    pub visitor_registered_msg: &'static str,
    pub visitor_revoked_msg: &'static str,
    pub visitors_empty: &'static str,
    pub err_plate: &'static str,
    pub err_datetime: &'static str,
    pub err_window_order: &'static str,
    pub err_text_long: &'static str,
    pub platform_state: &'static str,
    pub platform_disabled: &'static str,
    pub platform_offline: &'static str,
    pub platform_online: &'static str,
    pub platform_backlogged: &'static str,
    pub platform_sink: &'static str,
    pub platform_depth: &'static str,
    pub platform_oldest: &'static str,
    pub platform_rate: &'static str,
    pub platform_sent: &'static str,
    pub platform_rejected: &'static str,
    pub platform_retries: &'static str,
    pub platform_recent_rejects: &'static str,
    pub platform_no_rejects: &'static str,
    pub traffic_title: &'static str,
    pub traffic_chart: &'static str,
    pub traffic_in: &'static str,
    pub traffic_out: &'static str,
    pub traffic_inside: &'static str,
    pub traffic_inside_empty: &'static str,
    pub col_entered: &'static str,

    pub nav_vehicles: &'static str,
    pub vehicles_title: &'static str,
    pub vehicles_search: &'static str,
    pub col_house: &'static str,
    pub col_owner: &'static str,
    pub col_lanes: &'static str,
    pub all_lanes: &'static str,
    pub lanes_hint: &'static str,
    pub optional_date: &'static str,
    pub resident_form: &'static str,
    pub resident_save: &'static str,
    pub resident_edit: &'static str,
    pub resident_remove: &'static str,
    pub resident_saved_msg: &'static str,
    pub resident_removed_msg: &'static str,
    pub vehicles_empty: &'static str,
    pub err_lane_unknown: &'static str,
    pub import_title: &'static str,
    pub import_hint: &'static str,
    pub import_file: &'static str,
    pub import_text: &'static str,
    pub import_check: &'static str,
    pub import_confirm: &'static str,
    pub import_preview: &'static str,
    pub import_rows_ok: &'static str,
    pub import_rows_rejected: &'static str,
    pub col_line: &'static str,
    pub import_done: &'static str,
    pub import_nothing: &'static str,
    /// Rows were rejected: an import writes all rows or none.
    pub import_rejected_rows: &'static str,
    pub err_csv: &'static str,
    pub export_residents: &'static str,
    pub blacklist_title: &'static str,
    pub blacklist_add: &'static str,
    pub blacklist_added_msg: &'static str,
    pub blacklist_removed_msg: &'static str,
    pub blacklist_empty: &'static str,

    pub nav_cards: &'static str,
    pub cards_title: &'static str,
    pub cards_search: &'static str,
    pub col_card: &'static str,
    pub col_holder: &'static str,
    pub col_groups: &'static str,
    pub all_groups: &'static str,
    pub groups_hint: &'static str,
    pub card_form: &'static str,
    pub card_saved_msg: &'static str,
    pub card_removed_msg: &'static str,
    pub cards_empty: &'static str,
    pub card_blocked_mark: &'static str,
    pub card_block: &'static str,
    pub card_unblock: &'static str,
    pub card_blocked_msg: &'static str,
    pub card_unblocked_msg: &'static str,
    pub cards_import_hint: &'static str,
    pub export_cards: &'static str,
    pub blocked_title: &'static str,
    pub blocked_empty: &'static str,
    pub err_card_number: &'static str,

    pub forbidden_title: &'static str,
    pub forbidden_text: &'static str,
    pub not_found_title: &'static str,
    pub not_found_text: &'static str,
    pub csrf_title: &'static str,
    pub csrf_text: &'static str,
    pub back: &'static str,

    pub confirm_remove: &'static str,
    pub confirm_revoke: &'static str,
    pub col_usage: &'static str,
    pub export_blacklist: &'static str,
    pub blacklist_import_title: &'static str,
    pub blacklist_import_hint: &'static str,
    pub export_visitors: &'static str,
    pub visitors_import_title: &'static str,
    pub visitors_import_hint: &'static str,
    pub visitor_blacklisted: &'static str,
    pub visitor_register_anyway: &'static str,
    pub already_done: &'static str,
    pub waiting_badge: &'static str,
    pub arm_by_camera: &'static str,
    pub unit_s: &'static str,
    pub unit_min: &'static str,
    pub ago: &'static str,
    pub left: &'static str,

    pub gateway_name: &'static str,
    pub col_door: &'static str,
    pub door_open: &'static str,
    pub door_closed: &'static str,
    pub door_held_open: &'static str,
    pub door_forced_open: &'static str,
    pub link_online: &'static str,
    pub link_offline: &'static str,
    pub limit_below: &'static str,
    pub limit_above: &'static str,
    pub read_rejected_text: &'static str,
    /// `{n}`: samples in a point report.
    pub count_points: &'static str,
    /// `{n}`: problems found in a rejected configuration.
    pub count_problems: &'static str,
    pub signal_started: &'static str,
    pub signal_ended: &'static str,
    /// `{d}`: how long a camera sent nothing (a link detail).
    pub link_silent: &'static str,
    /// `{n}`: status polls a controller left unanswered (a link detail).
    pub link_unanswered: &'static str,

    pub alarm_strip_title: &'static str,
    pub ack_button: &'static str,
    pub alarm_acked: &'static str,
    pub filter_title: &'static str,
    pub filter_telemetry: &'static str,
    pub sound_on: &'static str,
    pub sound_off: &'static str,

    pub unlock_user: &'static str,
    pub user_unlocked_msg: &'static str,

    // Facility (设施).
    pub nav_facility: &'static str,
    pub facility_title: &'static str,
    pub facility_none: &'static str,
    pub col_point: &'static str,
    pub col_value: &'static str,
    pub col_quality: &'static str,
    pub col_alarm: &'static str,
    pub col_read_at: &'static str,
    pub quality_good: &'static str,
    pub quality_stale: &'static str,
    pub quality_comm_failed: &'static str,
    pub alarm_high: &'static str,
    pub alarm_low: &'static str,
    pub alarm_state: &'static str,
    pub alarm_acked_by: &'static str,
    pub ack_not_active: &'static str,
    pub point_trend: &'static str,
    pub write_title: &'static str,
    pub write_hint: &'static str,
    pub write_value: &'static str,
    pub write_range: &'static str,
    pub write_submit: &'static str,
    pub write_confirm: &'static str,
    pub err_write_value: &'static str,
    pub err_not_writable: &'static str,

    /// Event kind → label.
    pub kinds: &'static [(&'static str, &'static str)],
    /// Command name → label.
    pub commands: &'static [(&'static str, &'static str)],
    /// Device `type` (as configured) → label.
    pub device_types: &'static [(&'static str, &'static str)],
    /// Door decision reason code → label.
    pub door_reasons: &'static [(&'static str, &'static str)],
    /// The fixed words of event bodies (camera alarms and signals, who
    /// answered a call, how a door station was opened, the store's
    /// states) and the drivers' fixed link details → label.
    pub words: &'static [(&'static str, &'static str)],
}

impl Strings {
    /// The label of an event kind (the kind itself when unknown).
    pub fn kind<'a>(&'static self, kind: &'a str) -> &'a str {
        lookup(self.kinds, kind)
    }

    /// The label of a command (the name itself when unknown).
    pub fn command<'a>(&'static self, name: &'a str) -> &'a str {
        lookup(self.commands, name)
    }

    /// The label of a device type (the type itself when unknown).
    pub fn device_type<'a>(&'static self, kind: &'a str) -> &'a str {
        lookup(self.device_types, kind)
    }

    /// The label of a door decision's reason code.
    pub fn door_reason<'a>(&'static self, code: &'a str) -> &'a str {
        lookup(self.door_reasons, code)
    }

    /// The label of an event body's word or a driver's link detail (the
    /// text itself when unknown: a device's own error message).
    pub fn word<'a>(&'static self, word: &'a str) -> &'a str {
        lookup(self.words, word)
    }

    /// The label of a class.
    pub fn class(&self, class: drivers::Class) -> &'static str {
        match class {
            drivers::Class::Access => self.class_access,
            drivers::Class::Alarm => self.class_alarm,
            drivers::Class::Audit => self.class_audit,
            drivers::Class::Telemetry => self.class_telemetry,
        }
    }

    /// The label of a role.
    pub fn role(&self, role: crate::auth::Role) -> &'static str {
        match role {
            crate::auth::Role::Guard => self.role_guard,
            crate::auth::Role::Manager => self.role_manager,
            crate::auth::Role::Admin => self.role_admin,
        }
    }
}

fn lookup<'a>(table: &'static [(&'static str, &'static str)], key: &'a str) -> &'a str {
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, label)| label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_label_the_same_kinds_and_commands() {
        let zh = Lang::ZhCn.strings();
        let en = Lang::En.strings();
        let keys = |t: &'static [(&'static str, &'static str)]| {
            t.iter().map(|(k, _)| *k).collect::<Vec<_>>()
        };
        assert_eq!(keys(zh.kinds), keys(en.kinds));
        assert_eq!(keys(zh.commands), keys(en.commands));
        assert_eq!(zh.kind("threshold_alarm"), "阈值告警");
        assert_eq!(en.kind("threshold_alarm"), "Threshold alarm");
        assert_eq!(zh.kind("something_new"), "something_new");
        assert_eq!(Lang::parse("EN"), Some(Lang::En));
        assert_eq!(Lang::parse("zh"), Some(Lang::ZhCn));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::default(), Lang::ZhCn);
    }

    /// Every key of a table, in both languages, with a label that is not
    /// the key itself.
    fn labelled(what: &str, keys: &[&str], lookup: impl Fn(&'static Strings, &str) -> String) {
        for lang in [Lang::ZhCn, Lang::En] {
            let missing: Vec<&&str> = keys
                .iter()
                .filter(|k| lookup(lang.strings(), k) == **k)
                .collect();
            assert!(
                missing.is_empty(),
                "{what} without a {} label: {missing:?}",
                lang.code()
            );
        }
    }

    /// The fixed words of event bodies the panel shows (`enum`s in
    /// `docs/schema/events.json`) are in both languages' word tables.
    #[test]
    fn every_fixed_word_of_a_shown_body_field_has_a_label_in_both_languages() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../../../docs/schema/events.json"))
                .expect("events.json");
        let shown = [
            ("camera_alarm", "alarm"),
            ("camera_signal", "signal"),
            ("call_answered", "by"),
            ("station_unlock", "method"),
            ("store_pressure", "state"),
            ("store_unavailable", "reason"),
        ];
        let mut found = 0;
        let mut missing = Vec::new();
        for rule in schema["allOf"].as_array().expect("allOf") {
            let kind = rule["if"]["properties"]["kind"]["const"]
                .as_str()
                .unwrap_or("");
            for (k, field) in shown.iter().filter(|(k, _)| *k == kind) {
                let words = rule["then"]["properties"]["body"]["properties"][field]["enum"]
                    .as_array()
                    .expect("an enum");
                found += 1;
                for word in words.iter().filter_map(|w| w.as_str()) {
                    for lang in [Lang::ZhCn, Lang::En] {
                        if !lang.strings().words.iter().any(|(w, _)| *w == word) {
                            missing.push(format!("{k}.{field} {word:?} ({})", lang.code()));
                        }
                    }
                }
            }
        }
        assert_eq!(found, shown.len(), "a shown field left the schema");
        assert!(missing.is_empty(), "{missing:#?}");
        let keys = |t: &'static Strings| t.words.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(keys(Lang::ZhCn.strings()), keys(Lang::En.strings()));
    }

    #[test]
    fn every_published_event_kind_and_device_type_has_a_label_in_both_languages() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../../../docs/schema/events.json"))
                .expect("events.json");
        let kinds: Vec<&str> = schema["allOf"]
            .as_array()
            .expect("allOf")
            .iter()
            .filter_map(|rule| rule["if"]["properties"]["kind"]["const"].as_str())
            .collect();
        assert!(kinds.len() > 10, "{kinds:?}");
        labelled("event kinds", &kinds, |t, k| t.kind(k).to_owned());
        // The panel's own records and the lanes' events.
        let panel_kinds = [
            "alarm_acknowledged",
            "user_unlocked",
            "blacklist_imported",
            "visitors_imported",
            "exit_without_entry",
            "guard_decision",
            "keypad_locked",
        ];
        labelled("panel kinds", &panel_kinds, |t, k| t.kind(k).to_owned());
        let types: Vec<&str> = crate::config::device_type_names().collect();
        labelled("device types", &types, |t, k| t.device_type(k).to_owned());
        let en = Lang::En.strings();
        let zh = Lang::ZhCn.strings();
        let keys = |t: &'static [(&'static str, &'static str)]| {
            t.iter().map(|(k, _)| *k).collect::<Vec<_>>()
        };
        assert_eq!(keys(zh.device_types), keys(en.device_types));
        assert_eq!(keys(zh.door_reasons), keys(en.door_reasons));
    }
}
