//! The daemon's integration tests, in one binary: the real `novabmc`
//! binary on real sockets, driven by the real clients (ipmitool,
//! FreeIPMI, Ironic's and MAAS's command lines), against the simulated
//! backend or the Nova simulator over HTTP.
//!
//! One binary with a module per concern, so the crate and the shared
//! helpers are compiled and linked once (as rustls does); the helpers are
//! `common` (daemons, clients, addresses), `cloud` (the Nova simulator
//! process, or a real cloud), `netns` (network namespaces) and
//! `local_cloud` (the simulator in process, for paused time).
//! `cargo test --test integration MODULE::` runs one concern.

mod cloud;
mod common;
mod local_cloud;
mod netns;

mod check;
mod convergence;
mod daemon;
mod deb;
mod discovery;
mod export;
mod freeipmi;
mod hostile;
mod inventory_commands;
mod ipmitool;
mod ironic_maas;
mod man_completions;
mod metrics;
mod network;
mod nova_backend;
mod nova_e2e;
mod nova_restarts;
mod nova_storms;
mod redfish;
mod reload;
mod routing;
mod sessions;
mod sol;
mod sol_trust;
mod structure;
mod virtual_media;
mod wire;
