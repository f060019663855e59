//! The IPMI front door: IPMI 2.0 over LAN (RMCP+) on one UDP socket per
//! node, each driven by the sans-IO engine of `novabmc-proto`.
//!
//! - [`socket`]: binding a node's address (IP_FREEBIND, no shared ports);
//! - [`datagrams`]: batched receive (`recvmmsg`) and plain sends;
//! - [`node_task`]: one task per node driving its engine, and the engine
//!   configuration a reload swaps under it;
//! - [`actions`]: the engine's actions carried out against the backend;
//! - [`sol`]: Serial over LAN joined to the machine's serial console
//!   ([`crate::backend::serial_console`]);
//! - [`lan_config`]: each node's address, prefix, gateway and MAC for Get
//!   LAN Configuration Parameters;
//! - [`summary`]: at most one line a minute per node for what it refused
//!   and dropped.
//!
//! It depends on the backend and the metrics recorder, never the other way
//! round.

pub mod actions;
pub mod datagrams;
pub mod lan_config;
pub mod node_task;
pub mod socket;
pub mod sol;
pub mod summary;

pub use node_task::{SharedConfig, spawn_node};
pub use socket::{BindError, bind_all, bind_udp, report_bind_errors};
