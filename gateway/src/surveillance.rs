//! Surveillance cameras (监控), gateway side: the registry of `onvif-camera`
//! devices as the panel sees them, and snapshots of access events.
//!
//! When a plate read, a door decision (a `card_read` with its decision), a
//! raised door alarm or a door station's call is recorded at a lane or door
//! a camera watches (its `lanes`/`doors`, or a station's own id), the
//! camera's snapshot is fetched and saved in the plate images' folder
//! ([`ImageStore`], the same byte budget), and a `camera_snapshot` event
//! names the image and the event (`of_seq`, `of_id`, `place`).
//!
//! Nothing here is on a barrier's or a door's path: [`Surveillance::follow`]
//! reads the pipeline's [`EventFeed`], which publishes events after they
//! are on disk (so after the OPEN or the relay pulse), and every snapshot
//! runs on a task of its own, bounded in time ([`Limits::deadline`]) and in
//! bytes ([`Limits::max_bytes`]), at most [`Limits::in_flight`] at once
//! (more are skipped, counted as `busy`). A snapshot that hangs, fails or
//! is too large is counted (`gatehouse_camera_snapshots_total{outcome}`)
//! and logged at most once a minute with the count since the last line.
//!
//! The cameras' motion, tamper and video-loss events seen on the feed are
//! kept in memory ([`Surveillance::recent`], [`RECENT`] per camera) for the
//! panel: motion is telemetry, which the journal does not keep.
//!
//! A reload swaps the cameras it restarted ([`Surveillance::replace`]);
//! every clone (the snapshot task, the panel) sees the new list at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use drivers::DeviceEvent;
use drivers::camera::CameraError;
use drivers::lpr::{Image, ImageKind};
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use crate::devices::CctvDevice;
use crate::lanes::images::ImageStore;
use crate::logging::Every;
use crate::metrics::Metrics;
use crate::pipeline::{EventFeed, PipelineHandle};
use crate::wire::Envelope;

/// How many recent signals and alarms are kept per camera.
pub const RECENT: usize = 10;

/// How snapshots are bounded across cameras (each camera's own deadline
/// and byte limit are its `snapshot_timeout` and `snapshot_max_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// At most this many snapshots are fetched at once.
    pub in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { in_flight: 8 }
    }
}

/// A camera's latest saved snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// The image's name in the image folder.
    pub image: String,
    /// When it was saved (Unix ms).
    pub time_ms: i64,
}

/// Why a snapshot was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No camera with that id.
    #[error("no surveillance camera {0:?}")]
    Unknown(String),
    /// The camera did not deliver it.
    #[error("camera: {0}")]
    Camera(#[from] CameraError),
    /// It did not come within the deadline.
    #[error("no snapshot within {0:?}")]
    Timeout(Duration),
    /// It is not a JPEG or PNG image.
    #[error("not an image")]
    NotImage,
    /// It could not be written to the image folder.
    #[error("not saved in the image folder")]
    Unsaved,
    /// Too many snapshots are being fetched already.
    #[error("too many snapshots at once")]
    Busy,
}

impl SnapshotError {
    /// The `outcome` label it is counted under.
    pub fn outcome(&self) -> &'static str {
        match self {
            SnapshotError::Camera(CameraError::Timeout) | SnapshotError::Timeout(_) => "timeout",
            SnapshotError::Camera(CameraError::TooLarge(_)) => "too_large",
            SnapshotError::Unsaved => "unsaved",
            SnapshotError::Busy => "busy",
            SnapshotError::Unknown(_) | SnapshotError::Camera(_) | SnapshotError::NotImage => {
                "failed"
            }
        }
    }
}

/// The access event a snapshot is taken for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// Its `seq`.
    pub of_seq: u64,
    /// Its envelope id.
    pub of_id: String,
    /// The lane, door or door station where it happened.
    pub place: String,
}

/// The access event `envelope` asks for snapshots, and where: a plate
/// read at a lane (not a stored read the camera re-sends), a card or code
/// decided at a door, a door alarm raised, a call at a door station.
pub fn trigger(envelope: &Envelope) -> Option<Trigger> {
    let body = &envelope.body;
    let text = |key: &str| body.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let place = match envelope.kind.as_str() {
        "plate_read" if body.get("resend") != Some(&serde_json::Value::Bool(true)) => text("lane"),
        "card_read" if body.get("decision").is_some() => text("door"),
        "door_alarm" if body.get("active") == Some(&serde_json::Value::Bool(true)) => text("door"),
        "call_started" => text("door").or_else(|| Some(envelope.device_id.clone())),
        _ => None,
    }?;
    (!place.is_empty()).then(|| Trigger {
        of_seq: envelope.seq,
        of_id: envelope.id.to_string(),
        place,
    })
}

/// The surveillance cameras of this gateway. Cheap to clone; every clone
/// sees a reload's [`Surveillance::replace`].
#[derive(Debug, Clone)]
pub struct Surveillance {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    devices: RwLock<Arc<Vec<CctvDevice>>>,
    latest: Mutex<HashMap<String, Latest>>,
    recent: Mutex<HashMap<String, VecDeque<Arc<Envelope>>>>,
    in_flight: Arc<Semaphore>,
    images: ImageStore,
    metrics: Arc<Metrics>,
    failures: Every,
    missed: Every,
}

impl Surveillance {
    /// The registry of `devices` (from [`crate::devices::build`]); their
    /// snapshots go to `images`.
    pub fn new(
        devices: Vec<CctvDevice>,
        images: ImageStore,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                devices: RwLock::new(Arc::new(devices)),
                latest: Mutex::default(),
                recent: Mutex::default(),
                in_flight: Arc::new(Semaphore::new(limits.in_flight.max(1))),
                images,
                metrics,
                failures: Every::minute(),
                missed: Every::minute(),
            }),
        }
    }

    /// Takes a reload's cameras: those named in `restarted` (removed or
    /// changed) leave, `started` (added or changed, rebuilt) join, in the
    /// order of `order` (the configuration's device ids).
    pub fn replace(&self, restarted: &[String], started: Vec<CctvDevice>, order: &[String]) {
        let mut current = self
            .inner
            .devices
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut devices: Vec<CctvDevice> = current
            .iter()
            .filter(|d| !restarted.contains(&d.id))
            .cloned()
            .chain(started)
            .collect();
        devices.sort_by_key(|d| order.iter().position(|id| *id == d.id));
        *current = Arc::new(devices);
    }

    /// The cameras as they are now, in configuration order.
    pub fn devices(&self) -> Arc<Vec<CctvDevice>> {
        self.inner
            .devices
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One camera by id.
    pub fn device(&self, id: &str) -> Option<CctvDevice> {
        self.devices().iter().find(|d| d.id == id).cloned()
    }

    /// The latest snapshot saved of camera `id` since the gateway started.
    pub fn latest(&self, id: &str) -> Option<Latest> {
        self.inner
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Camera `id`'s recent signals and alarms (motion, tamper, video
    /// loss) since the gateway started, newest first.
    pub fn recent(&self, id: &str) -> Vec<Arc<Envelope>> {
        self.inner
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .map(|ring| ring.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    fn remember(&self, envelope: &Arc<Envelope>) {
        if !matches!(envelope.kind.as_str(), "camera_signal" | "camera_alarm")
            || self.device(&envelope.device_id).is_none()
        {
            return;
        }
        let mut recent = self
            .inner
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ring = recent.entry(envelope.device_id.clone()).or_default();
        if ring.len() == RECENT {
            ring.pop_front();
        }
        ring.push_back(envelope.clone());
    }

    /// Fetches camera `id`'s snapshot now and saves it (bounded like every
    /// snapshot); counted by outcome.
    pub async fn snapshot_now(&self, id: &str) -> Result<Latest, SnapshotError> {
        let device = self
            .device(id)
            .ok_or_else(|| SnapshotError::Unknown(id.to_owned()))?;
        let permit = self
            .inner
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| SnapshotError::Busy);
        let result = match permit {
            Ok(_permit) => self.fetch_and_save(&device).await,
            Err(error) => Err(error),
        };
        self.count(&device.id, &result);
        result
    }

    async fn fetch_and_save(&self, device: &CctvDevice) -> Result<Latest, SnapshotError> {
        let deadline = device.snapshot_deadline;
        // The handle bounds the request by the deadline; this bounds
        // everything else too (a URI lookup, a slow body).
        let bytes = tokio::time::timeout(
            deadline,
            device.handle.snapshot(device.snapshot_max_bytes, deadline),
        )
        .await
        .map_err(|_| SnapshotError::Timeout(deadline))??;
        let image = Image::new(ImageKind::Full, bytes);
        if image.content_type == "application/octet-stream" {
            return Err(SnapshotError::NotImage);
        }
        let name = self
            .inner
            .images
            .save(&[image])
            .await
            .into_iter()
            .next()
            .ok_or(SnapshotError::Unsaved)?;
        let latest = Latest {
            image: name,
            time_ms: drivers::contract::now_ms(),
        };
        self.inner
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(device.id.clone(), latest.clone());
        Ok(latest)
    }

    fn count(&self, camera: &str, result: &Result<Latest, SnapshotError>) {
        match result {
            Ok(_) => self.inner.metrics.camera_snapshot("stored"),
            Err(error) => {
                self.inner.metrics.camera_snapshot(error.outcome());
                if let Some(count) = self.inner.failures.allow() {
                    tracing::warn!(
                        camera,
                        %error,
                        failures = count,
                        "Camera snapshots failed (this one, and the count since the last line)."
                    );
                }
            }
        }
    }

    /// Takes the snapshots of the access events recorded on `feed` (each on
    /// a task of its own) and records a `camera_snapshot` for each saved
    /// one through `pipeline`, until `cancel`; snapshots still running
    /// then are dropped.
    pub async fn follow(
        self,
        feed: EventFeed,
        pipeline: PipelineHandle,
        cancel: CancellationToken,
    ) {
        let mut events = feed.subscribe();
        let mut running = JoinSet::new();
        loop {
            let envelope = tokio::select! {
                () = cancel.cancelled() => break,
                Some(_) = running.join_next(), if !running.is_empty() => continue,
                received = events.recv() => match received {
                    Ok(envelope) => envelope,
                    Err(RecvError::Lagged(missed)) => {
                        self.inner.metrics.camera_snapshot("missed");
                        if self.inner.missed.allow().is_some() {
                            tracing::warn!(missed, "Camera snapshots fell behind the events; some were not taken.");
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                },
            };
            self.remember(&envelope);
            let Some(trigger) = trigger(&envelope) else {
                continue;
            };
            for device in self.devices().iter() {
                if !device.places.contains(&trigger.place) {
                    continue;
                }
                let Ok(permit) = self.inner.in_flight.clone().try_acquire_owned() else {
                    self.count(&device.id, &Err(SnapshotError::Busy));
                    continue;
                };
                let this = self.clone();
                let device = device.clone();
                let trigger = trigger.clone();
                let pipeline = pipeline.clone();
                running.spawn(async move {
                    let result = this.fetch_and_save(&device).await;
                    drop(permit);
                    this.count(&device.id, &result);
                    if let Ok(latest) = result {
                        let event = DeviceEvent::CameraSnapshot {
                            image: latest.image,
                            of_seq: trigger.of_seq,
                            of_id: trigger.of_id,
                            place: trigger.place,
                        };
                        if let Err(error) = pipeline.record(&device.id, event).await {
                            tracing::warn!(camera = %device.id, %error, "A camera snapshot's event was not stored.");
                        }
                    }
                });
            }
        }
        running.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_events_at_a_place_ask_for_snapshots_and_others_do_not() {
        let place = |kind: &str, device: &str, body: serde_json::Value| {
            trigger(&Envelope::for_test(7, kind, device, body)).map(|t| t.place)
        };
        let read = serde_json::json!({"plate": "苏A8HK52", "lane": "south-in", "resend": false});
        assert_eq!(
            place("plate_read", "cam", read).as_deref(),
            Some("south-in")
        );
        let resend = serde_json::json!({"plate": "苏A8HK52", "lane": "south-in", "resend": true});
        assert_eq!(
            place("plate_read", "cam", resend),
            None,
            "a re-sent read is old"
        );
        let card = serde_json::json!({"card": "1", "door": "b3-u1", "decision": "grant"});
        assert_eq!(place("card_read", "r", card).as_deref(), Some("b3-u1"));
        let undecided = serde_json::json!({"card": "1", "door": 1});
        assert_eq!(place("card_read", "r", undecided), None);
        let raised = serde_json::json!({"alarm": "forced_open", "active": true, "door": "b3-u1"});
        assert_eq!(place("door_alarm", "d", raised).as_deref(), Some("b3-u1"));
        let cleared = serde_json::json!({"alarm": "forced_open", "active": false, "door": "b3-u1"});
        assert_eq!(place("door_alarm", "d", cleared), None);
        let call = serde_json::json!({"call": "1"});
        assert_eq!(
            place("call_started", "b3-door", call).as_deref(),
            Some("b3-door")
        );
        let motion = serde_json::json!({"signal": "motion", "active": true});
        assert_eq!(place("camera_signal", "cctv", motion), None);

        let envelope = Envelope::for_test(7, "plate_read", "cam", serde_json::json!({"lane": "x"}));
        let t = trigger(&envelope).expect("a trigger");
        assert_eq!((t.of_seq, t.of_id), (7, envelope.id.to_string()));
    }

    #[test]
    fn failures_are_counted_by_what_went_wrong() {
        assert_eq!(
            SnapshotError::Camera(CameraError::Timeout).outcome(),
            "timeout"
        );
        assert_eq!(
            SnapshotError::Timeout(Duration::from_secs(1)).outcome(),
            "timeout"
        );
        assert_eq!(
            SnapshotError::Camera(CameraError::TooLarge(1)).outcome(),
            "too_large"
        );
        assert_eq!(
            SnapshotError::Camera(CameraError::Status(500)).outcome(),
            "failed"
        );
        assert_eq!(SnapshotError::Busy.outcome(), "busy");
    }
}
