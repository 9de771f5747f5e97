//! Gatehouse, the estate edge gateway, as a library. The `gatehouse` binary
//! is a thin shell over it.
//!
//! Code map:
//! - [`config`]: TOML → validated [`config::Config`], every problem located.
//! - [`app`]: start a whole gateway from a config; phased shutdown.
//! - [`supervisor`]: driver tasks, restarts with backoff, the [`supervisor::Drivers`] registry.
//! - [`devices`]: config `type` → driver.
//! - [`pipeline`]: the one loop that stamps, decides, actuates and records.
//! - [`rules`]: pure decision functions.
//! - [`doors`]: unit-door credentials, the doors coordinator, door hardware
//!   (real or simulated GPIO), `gatehouse cards`, the demo door.
//! - [`facility`]: Modbus point devices as the panel, metrics and platform
//!   see them; 24-hour trend rings.
//! - [`store`]: the durable queue and database (SQLite).
//! - [`wire`]: the versioned envelope (the platform contract).
//! - [`web`]: the panel listener (`/healthz`, `/readyz`, `/metrics`) and the
//!   guards' web panel ([`web::panel`]).
//! - [`auth`]: panel users, sessions, CSRF tokens, lockout, roles.
//! - [`uplink`]: the platform link (MQTT/HTTPS sinks, live-first drain, signed downlink, list sync).
//! - [`broker`]: the embedded MQTT broker (rumqttd) for the demo and tests.
//! - [`web`]: the panel listener (`/healthz`, `/readyz`, `/metrics`, `/api/v1/telemetry`).
//! - [`ops`]: the data directory's lock, backup and restore, `gatehouse doctor`, systemd notification.
//! - [`metrics`], [`logging`], [`clock`], [`tasks`]: cross-cutting pieces.
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
pub mod facility;
pub mod lanes;
pub mod lists;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod rules;
pub mod store;
pub mod supervisor;
pub mod tasks;
pub mod uplink;
pub mod web;
pub mod wire;
