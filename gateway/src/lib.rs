//! Gatehouse, the estate edge gateway: configuration, supervisor, pipeline,
//! rules, store and web listeners. The `gatehouse` binary is a thin shell
//! over this library.

pub mod config;
pub mod store;
pub mod wire;
