//! Gatehouse, the estate edge gateway, as a library. The `gatehouse` binary
//! is a thin shell over it.
//!
//! Code map, by layer, lowest first (a module imports only from layers
//! below its own; ARCHITECTURE.md has the table, `tests/tidy.rs` enforces it):
//! - [`vocab`]: the shared vocabulary (time model, schedules, threshold
//!   alarms, lane direction, records errors and import reports, the sync
//!   target contract, backoff).
//! - [`wire`]: the versioned envelope (the platform contract).
//! - [`tasks`], [`clock`], [`logging`]: named tasks, the clock-sync check, log setup.
//! - [`memory`]: freed heap given back to the system after a list reload.
//! - [`broker`]: the embedded MQTT broker (rumqttd) for the demo and tests.
//! - [`rules`]: pure decision functions.
//! - [`store`]: the durable queue and database (SQLite).
//! - [`config`]: TOML → validated [`config::Config`], every problem located.
//! - [`auth`]: panel users, sessions, CSRF tokens, lockout, roles.
//! - [`supervisor`]: driver tasks, restarts with backoff, the [`supervisor::Drivers`] registry.
//! - [`events`]: every event kind with its class, the typed bodies of the
//!   gateway's own events, the coordinators' typed annotations.
//! - [`metrics`]: the Prometheus registry, live values read at scrape time.
//! - [`pipeline`]: the one loop that stamps, decides, actuates and records.
//! - [`lists`]: the vehicle lists (residents, visitors, blacklist, vehicles inside).
//! - [`doors`]: unit-door credentials, the doors coordinator, door hardware
//!   (real or simulated GPIO), `gatehouse cards`, the demo door.
//! - [`lanes`]: vehicle lanes: the lane coordinator, the guard's board, the
//!   plate-camera listener, snapshots, camera liveness.
//! - [`coordinators`]: other stateful rule drivers (threshold alarms).
//! - [`devices`]: config `type` → driver.
//! - [`facility`]: Modbus point devices as the panel, metrics and platform
//!   see them; 24-hour trend rings.
//! - [`surveillance`]: ONVIF cameras as the panel sees them; snapshots of
//!   access events at the lanes and doors they watch.
//! - [`intercom`]: door stations' calls ringing now (the panel's ringing
//!   banner).
//! - [`uplink`]: the platform link (MQTT/HTTPS sinks, live-first drain, signed downlink, list sync).
//! - [`web`]: the panel listener (`/healthz`, `/readyz`, `/metrics`,
//!   `/api/v1/telemetry`, `/api/v1/images/…`) and the guards' web panel ([`web::panel`]).
//! - [`ops`]: the data directory's lock, backup and restore, `gatehouse doctor`,
//!   systemd notification, the host's disk and clock gauges.
//! - [`privacy`]: the daily purge of personal information past its
//!   `[privacy]` retention, and erasure on request.
//! - [`app`]: start a whole gateway from a config; phased shutdown.
//! - [`demo`]: the simulated estate of `gatehouse demo`.
//! - [`cli`]: the command line.

pub mod app;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod coordinators;
pub mod demo;
pub mod devices;
pub mod doors;
pub mod events;
pub mod facility;
pub mod intercom;
pub mod lanes;
pub mod lists;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod privacy;
pub mod rules;
pub mod store;
pub mod supervisor;
pub mod surveillance;
pub mod tasks;
pub mod uplink;
pub mod vocab;
pub mod web;
pub mod wire;
