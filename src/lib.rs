//! novabmc: an IPMI-over-LAN (IPMI 2.0 / RMCP+) virtual BMC for cloud
//! servers.
//!
//! Each configured node gets its own address and UDP socket; chassis power
//! and boot-device commands become operations on the node's cloud server,
//! so Ironic and MAAS can manage cloud VMs as they manage physical machines.
//!
//! # Layout
//!
//! Two front doors over one backend, composed by the daemon:
//!
//! - [`ipmi`]: the IPMI front door: one UDP socket and task per node
//!   driving the sans-IO engine, Serial over LAN, LAN configuration, the
//!   refusal summaries;
//! - [`redfish`]: the Redfish front door: HTTPS listeners per node and
//!   aggregate, sessions and roles, the DSP0268 resources;
//! - [`backend`]: the machines behind the BMCs, which both front doors
//!   drive: Nova servers ([`backend::nova`]) or in-process simulated
//!   machines, each node reached through a [`backend::Binding`], and the
//!   machines' serial consoles ([`backend::serial_console`]);
//! - [`daemon`]: serving a configuration until shutdown (start, reload,
//!   stop), as a library function: where the parts are composed;
//! - [`metrics`]: the Prometheus endpoint, the health check, and the
//!   recorder the other parts report to;
//! - [`routing`]: per-node policy rules and routes through netlink;
//! - [`network`]: `novabmc network`, the BMC network provisioned through
//!   Neutron, Nova and Glance (ports, subnets, router interfaces, the
//!   addresses on the BMC instance, the routes file, iPXE images);
//! - [`config`]: the TOML configuration and its validation;
//! - [`discovery`]: the cloud's servers served as nodes without a
//!   `[nodes.NAME]` each (the daemon's periodic look is
//!   [`daemon::discovery`]);
//! - [`addressing`]: where discovered nodes' BMC addresses come from (the
//!   address modes, below the configuration);
//! - [`cli`]: the command line (`serve`, `demo`, `check`, `routes`,
//!   `network`, `export`, `nova-simulator`) and process lifecycle;
//! - [`check`]: `novabmc check`, the configuration tried against the
//!   cloud before serving;
//! - [`export`]: enrollment files for Ironic, TripleO and MAAS;
//! - [`demo`]: the self-contained demonstration setup.
//!
//! Dependencies point one way: front doors depend on the backend, never
//! on each other, and the backend depends on neither.
//!
//! The IPMI protocol itself is the sans-IO crate `novabmc-proto`; the
//! Keystone/Nova/Glance/Cinder simulator that `demo`, `nova-simulator` and
//! the tests run is the crate `novabmc-novasim`, which never depends on
//! this one.

pub mod addressing;
pub mod backend;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod discovery;
pub mod export;
pub mod ipmi;
pub mod metrics;
pub mod network;
pub mod redfish;
pub mod routing;
