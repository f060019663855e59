//! novabmc: an IPMI-over-LAN (IPMI 2.0 / RMCP+) virtual BMC for cloud
//! servers.
//!
//! Each configured node gets its own address and UDP socket; chassis power
//! and boot-device commands become operations on the node's cloud server,
//! so Ironic and MAAS can manage cloud VMs as they manage physical machines.
//!
//! # Layout
//!
//! - [`cli`]: the command line (`serve`, `demo`, `routes`, `export`,
//!   `nova-simulator`) and process lifecycle;
//! - [`config`]: the TOML configuration and its validation;
//! - [`check`]: `novabmc check`, the configuration tried against the
//!   cloud before serving;
//! - [`export`]: enrollment files for Ironic, TripleO and MAAS, from the
//!   configuration and the cloud;
//! - [`metrics`]: the Prometheus endpoint and the health check;
//! - [`daemon`]: serving a configuration until shutdown, as a library
//!   function;
//! - [`server`]: sockets and one task per node driving the engine;
//! - [`summary`]: at most one line a minute per node for what it refused
//!   and dropped;
//! - [`backend`]: the machines behind the BMCs: Nova servers
//!   ([`backend::nova`]) or in-process simulated machines;
//! - [`routing`]: per-node policy rules and routes through netlink;
//! - [`lan_config`]: each node's address, prefix, gateway and MAC, for Get
//!   LAN Configuration Parameters;
//! - [`demo`]: the self-contained demonstration setup.
//!
//! The IPMI protocol itself is the sans-IO crate `novabmc-proto`; the
//! Keystone/Nova/Glance/Cinder simulator that `demo`, `nova-simulator` and
//! the tests run is the crate `novabmc-novasim`, which never depends on
//! this one.

pub mod backend;
pub mod check;
pub mod cli;
pub mod config;
pub mod console;
pub mod daemon;
pub mod datagrams;
pub mod demo;
pub mod export;
pub mod lan_config;
pub mod metrics;
pub mod routing;
pub mod server;
pub mod summary;
