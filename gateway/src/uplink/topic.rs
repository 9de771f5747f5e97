//! The MQTT topic layout (pure): `{prefix}/{estate_id}/{gateway_id}/…`.
//!
//! | topic | direction | retained | payload |
//! | --- | --- | --- | --- |
//! | `…/events/{kind}` | up | no | the event [`Envelope`](crate::wire::Envelope) |
//! | `…/status` | up | yes | presence: `online` with version and uptime; last will `offline` |
//! | `…/heartbeat` | up | no | periodic device-health summary |
//! | `…/command-results` | up | no | outcome of each downlink command |
//! | `…/telemetry` | up | no | the telemetry snapshot, on request |
//! | `…/sync-status` | up | yes | the version of each list the gateway holds |
//! | `…/sync-requests` | up | no | a full snapshot asked for (version gap, failed sync) |
//! | `…/commands/#` | down | no | signed commands |
//! | `…/sync/{list}` | down | no | signed list snapshots and deltas |

/// Builds and parses this gateway's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
}

/// What a downlink topic addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downlink<'a> {
    /// `…/commands/…` (the rest of the topic is informational).
    Command,
    /// `…/sync/{list}`.
    Sync(&'a str),
    /// Anything else under this gateway.
    Unknown(&'a str),
}

impl Topics {
    /// Topics under `{prefix}/{estate_id}/{gateway_id}`.
    pub fn new(prefix: &str, estate_id: &str, gateway_id: &str) -> Self {
        Self {
            base: format!("{prefix}/{estate_id}/{gateway_id}"),
        }
    }

    /// `{prefix}/{estate_id}/{gateway_id}`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `…/events/{kind}`.
    pub fn event(&self, kind: &str) -> String {
        format!("{}/events/{kind}", self.base)
    }

    /// `…/{leaf}` for the fixed upward topics (`status`, `heartbeat`, …).
    pub fn leaf(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.base)
    }

    /// The subscriptions of the downlink: `…/commands/#` and `…/sync/#`.
    pub fn downlink_filters(&self) -> [String; 2] {
        [
            format!("{}/commands/#", self.base),
            format!("{}/sync/#", self.base),
        ]
    }

    /// Classifies a downlink topic; `None` when it is not under this gateway.
    pub fn parse_downlink<'a>(&self, topic: &'a str) -> Option<Downlink<'a>> {
        let rest = topic.strip_prefix(self.base.as_str())?.strip_prefix('/')?;
        Some(if rest == "commands" || rest.starts_with("commands/") {
            Downlink::Command
        } else if let Some(list) = rest.strip_prefix("sync/").filter(|l| !l.is_empty()) {
            Downlink::Sync(list)
        } else {
            Downlink::Unknown(rest)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_documented_layout() {
        let t = Topics::new("gatehouse/v1", "estate-7", "gw-1");
        assert_eq!(
            t.event("plate_read"),
            "gatehouse/v1/estate-7/gw-1/events/plate_read"
        );
        assert_eq!(t.leaf("status"), "gatehouse/v1/estate-7/gw-1/status");
        assert_eq!(
            t.downlink_filters(),
            [
                "gatehouse/v1/estate-7/gw-1/commands/#".to_owned(),
                "gatehouse/v1/estate-7/gw-1/sync/#".to_owned()
            ]
        );
    }

    #[test]
    fn downlink_topics_are_classified() {
        let t = Topics::new("p", "e", "g");
        assert_eq!(t.parse_downlink("p/e/g/commands"), Some(Downlink::Command));
        assert_eq!(
            t.parse_downlink("p/e/g/commands/lane-1/open"),
            Some(Downlink::Command)
        );
        assert_eq!(
            t.parse_downlink("p/e/g/sync/plates"),
            Some(Downlink::Sync("plates"))
        );
        assert_eq!(
            t.parse_downlink("p/e/g/sync/"),
            Some(Downlink::Unknown("sync/"))
        );
        assert_eq!(t.parse_downlink("p/e/other/commands"), None);
        assert_eq!(t.parse_downlink("p/e/gx/commands"), None);
    }
}
