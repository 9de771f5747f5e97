//! ONVIF surveillance cameras (监控): inventory, health, events and
//! snapshots.
//!
//! - [`xml`]: the hostile-input-safe reader every reply goes through (no
//!   DTD, no entities, bounded size and depth);
//! - [`soap`]: pure request builders (WS-UsernameToken `PasswordDigest`) and
//!   reply parsers;
//! - [`events`]: topics → motion, tamper, video loss, digital inputs; the
//!   state that turns `Initialized`/`Changed` messages into edges; motion
//!   debouncing;
//! - [`client`]: SOAP over HTTP with the clock offset, HTTP Digest when the
//!   camera asks, deadlines and byte caps;
//! - [`driver`]: [`CameraDriver`], one task per camera (connection, health,
//!   PullPoint subscription), and the [`CameraHandle`] the gateway keeps;
//! - [`discovery`]: WS-Discovery probe and `ProbeMatches`.

pub mod client;
pub mod discovery;
pub mod driver;
pub mod events;
pub mod soap;
pub mod xml;

pub use client::{CameraError, OnvifClient};
pub use driver::{CameraConfig, CameraDriver, CameraHandle, CameraStatus, CameraView, EventsState};
pub use soap::Credentials;
