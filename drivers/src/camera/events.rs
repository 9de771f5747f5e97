//! ONVIF event topics → camera signals, and the state that turns them into
//! edges. Pure: no IO, no clock (times are passed in).
//!
//! Topics Gatehouse understands (prefixes ignored):
//! - motion: `RuleEngine/CellMotionDetector/Motion` (`IsMotion`) and
//!   `VideoSource/MotionAlarm` (`State`);
//! - tamper: `RuleEngine/TamperDetector/Tamper` (`IsTamper`) and
//!   `VideoSource/GlobalSceneChange/…` (`State`);
//! - video loss: `VideoSource/SignalLoss` or `…/VideoLoss` (`State`);
//! - digital inputs: `Device/Trigger/DigitalInput` (`LogicalState`, source
//!   `InputToken`).
//!
//! A property message with `PropertyOperation="Initialized"` is the state at
//! subscription time, not an edge: [`SignalState`] records it and reports a
//! change only when it differs from what the gateway already knew.

use std::collections::HashMap;

use serde::Serialize;

use super::soap::{Notification, PropertyOperation, parse_bool};

/// What a signal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Motion in the picture.
    Motion,
    /// The camera was covered, moved or blinded.
    Tamper,
    /// The video source lost its signal.
    VideoLoss,
    /// A digital input of the camera changed.
    DigitalInput,
}

impl SignalKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Motion => "motion",
            SignalKind::Tamper => "tamper",
            SignalKind::VideoLoss => "video_loss",
            SignalKind::DigitalInput => "digital_input",
        }
    }
}

/// One understood notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// What it is about.
    pub kind: SignalKind,
    /// The source (video source token, input token), if given.
    pub source: String,
    /// Whether the condition is present.
    pub active: bool,
    /// Whether this is the subscription's initial state.
    pub initial: bool,
    /// The camera's time of the message (Unix ms), if given.
    pub utc_ms: Option<i64>,
}

/// Classifies a notification; `None` for topics Gatehouse does not use.
pub fn classify(n: &Notification) -> Option<Signal> {
    let path: Vec<&str> = n
        .topic
        .trim()
        .split('/')
        .map(|seg| seg.rsplit(':').next().unwrap_or(seg))
        .collect();
    let has = |seg: &str| path.contains(&seg);
    let (kind, data_names): (SignalKind, &[&str]) =
        if has("CellMotionDetector") || has("MotionAlarm") || has("MotionDetector") {
            (SignalKind::Motion, &["IsMotion", "State"])
        } else if has("TamperDetector") || has("GlobalSceneChange") {
            (SignalKind::Tamper, &["IsTamper", "State"])
        } else if has("SignalLoss") || has("VideoLoss") {
            (SignalKind::VideoLoss, &["State", "IsVideoLoss"])
        } else if has("DigitalInput") {
            (SignalKind::DigitalInput, &["LogicalState", "State"])
        } else {
            return None;
        };
    let active = n
        .data
        .iter()
        .find(|(k, _)| data_names.contains(&k.as_str()))
        .and_then(|(_, v)| parse_bool(v))?;
    let source = n
        .source
        .iter()
        .find(|(k, _)| {
            matches!(
                k.as_str(),
                "InputToken" | "VideoSourceToken" | "Source" | "VideoSourceConfigurationToken"
            )
        })
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Some(Signal {
        kind,
        source,
        active,
        initial: n.operation == PropertyOperation::Initialized,
        utc_ms: n.utc_ms,
    })
}

/// The last known state of every (kind, source); survives re-subscriptions.
#[derive(Debug, Default, Clone)]
pub struct SignalState {
    known: HashMap<(SignalKind, String), bool>,
}

impl SignalState {
    /// Records a signal; returns it when it changes what was known.
    ///
    /// An initial (`Initialized`) inactive state for something never seen
    /// is not reported: nothing happened. An initial active state is
    /// reported once (a camera tampered with while the gateway was away).
    pub fn update(&mut self, signal: Signal) -> Option<Signal> {
        let key = (signal.kind, signal.source.clone());
        let before = self.known.insert(key, signal.active);
        match before {
            Some(prev) if prev == signal.active => None,
            None if !signal.active => None,
            _ => Some(signal),
        }
    }

    /// Whether any source of `kind` is active.
    pub fn any_active(&self, kind: SignalKind) -> bool {
        self.known.iter().any(|((k, _), v)| *k == kind && *v)
    }
}

/// Motion debouncing: a start is reported at once; an end only after motion
/// stayed off for `hold_ms`; a start within `hold_ms` of the last end is
/// folded into the running episode. Times are monotonic milliseconds.
#[derive(Debug, Clone)]
pub struct MotionDebounce {
    hold_ms: u64,
    reported_active: bool,
    off_since: Option<u64>,
}

impl MotionDebounce {
    /// A debouncer holding motion for `hold_ms` after it stops.
    pub fn new(hold_ms: u64) -> Self {
        Self {
            hold_ms,
            reported_active: false,
            off_since: None,
        }
    }

    /// Feeds the camera's motion state; returns `Some(active)` to report.
    pub fn input(&mut self, active: bool, now_ms: u64) -> Option<bool> {
        if active {
            self.off_since = None;
            if !self.reported_active {
                self.reported_active = true;
                return Some(true);
            }
            None
        } else {
            if self.reported_active && self.off_since.is_none() {
                self.off_since = Some(now_ms);
            }
            self.tick(now_ms)
        }
    }

    /// Reports the end of an episode once the hold has passed.
    pub fn tick(&mut self, now_ms: u64) -> Option<bool> {
        match self.off_since {
            Some(since) if self.reported_active && now_ms.saturating_sub(since) >= self.hold_ms => {
                self.reported_active = false;
                self.off_since = None;
                Some(false)
            }
            _ => None,
        }
    }

    /// When [`tick`](Self::tick) should next be called, if an end is pending.
    pub fn deadline(&self) -> Option<u64> {
        self.off_since.map(|s| s + self.hold_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(topic: &str, op: PropertyOperation, data: (&str, &str)) -> Notification {
        Notification {
            topic: topic.into(),
            utc_ms: Some(1),
            operation: op,
            source: vec![("Source".into(), "vs0".into())],
            data: vec![(data.0.into(), data.1.into())],
        }
    }

    #[test]
    fn topics_map_to_signals() {
        let cases = [
            (
                "tns1:RuleEngine/CellMotionDetector/Motion",
                "IsMotion",
                SignalKind::Motion,
            ),
            ("tns1:VideoSource/MotionAlarm", "State", SignalKind::Motion),
            (
                "tns1:RuleEngine/TamperDetector/Tamper",
                "IsTamper",
                SignalKind::Tamper,
            ),
            (
                "tns1:VideoSource/GlobalSceneChange/ImagingService",
                "State",
                SignalKind::Tamper,
            ),
            (
                "tns1:VideoSource/SignalLoss",
                "State",
                SignalKind::VideoLoss,
            ),
            (
                "tns1:Device/Trigger/DigitalInput",
                "LogicalState",
                SignalKind::DigitalInput,
            ),
        ];
        for (topic, item, kind) in cases {
            let s = classify(&note(topic, PropertyOperation::Changed, (item, "true")))
                .unwrap_or_else(|| panic!("{topic}"));
            assert_eq!(
                (s.kind, s.active, s.initial),
                (kind, true, false),
                "{topic}"
            );
            assert_eq!(s.source, "vs0");
        }
        assert!(
            classify(&note(
                "tns1:Monitoring/ProcessorUsage",
                PropertyOperation::Changed,
                ("Value", "3")
            ))
            .is_none()
        );
        assert!(
            classify(&note(
                "tns1:VideoSource/MotionAlarm",
                PropertyOperation::Changed,
                ("State", "maybe")
            ))
            .is_none()
        );
    }

    #[test]
    fn initialized_is_state_not_an_edge() {
        let mut state = SignalState::default();
        let init_off = classify(&note(
            "tns1:VideoSource/MotionAlarm",
            PropertyOperation::Initialized,
            ("State", "false"),
        ))
        .expect("signal");
        assert!(init_off.initial);
        assert_eq!(state.update(init_off.clone()), None);
        let on = classify(&note(
            "tns1:VideoSource/MotionAlarm",
            PropertyOperation::Changed,
            ("State", "true"),
        ))
        .expect("signal");
        assert!(state.update(on.clone()).is_some());
        // A re-subscription re-announces the same state: not an edge.
        let init_on = Signal {
            initial: true,
            ..on.clone()
        };
        assert_eq!(state.update(init_on), None);
        assert_eq!(state.update(on), None);
        assert!(state.any_active(SignalKind::Motion));
        // Tampered while the gateway was away: reported once.
        let tamper = classify(&note(
            "tns1:RuleEngine/TamperDetector/Tamper",
            PropertyOperation::Initialized,
            ("IsTamper", "true"),
        ))
        .expect("signal");
        assert!(state.update(tamper.clone()).is_some());
        assert_eq!(state.update(tamper), None);
    }

    #[test]
    fn motion_is_debounced() {
        let mut d = MotionDebounce::new(10_000);
        assert_eq!(d.input(true, 0), Some(true));
        assert_eq!(d.input(true, 100), None);
        assert_eq!(d.input(false, 1_000), None);
        assert_eq!(d.deadline(), Some(11_000));
        assert_eq!(d.tick(5_000), None);
        // Motion again within the hold: the same episode.
        assert_eq!(d.input(true, 6_000), None);
        assert_eq!(d.input(false, 7_000), None);
        assert_eq!(d.tick(16_999), None);
        assert_eq!(d.tick(17_000), Some(false));
        assert_eq!(d.tick(30_000), None);
        assert_eq!(d.input(false, 30_000), None);
        assert_eq!(d.input(true, 31_000), Some(true));
    }
}
