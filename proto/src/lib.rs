//! Sans-IO IPMI 2.0 / RMCP+ BMC engine.
//!
//! This crate is everything novabmc knows about the wire, and nothing about
//! sockets, clocks, threads or clouds: no tokio, no HTTP, no system time.
//! The daemon drives one [`Bmc`] per node:
//!
//! - in: [`Bmc::handle_datagram`] with the time, the sender and the bytes;
//!   [`Bmc::handle_timeout`] when [`Bmc::poll_timeout`] is reached (session
//!   expiry and SOL retransmissions alike);
//!   [`Bmc::complete_action`] with the result of an action;
//!   [`Bmc::console_output`] with what the machine's serial console printed;
//! - out: [`Bmc::poll_transmit`] for datagrams to send back,
//!   [`Bmc::poll_action`] for work on the machine (power, boot options),
//!   [`Bmc::poll_console`] for the machine's serial console (SOL),
//!   [`Bmc::poll_event`] for what an operator may want logged;
//! - [`Bmc::counters`]: every session event, refusal, drop and request,
//!   counted, for a metrics endpoint.
//!
//! Randomness comes through the [`Entropy`] trait so tests can fix it.
//!
//! # Layout
//!
//! - [`wire`]: one module per framing layer, each with decode and encode;
//! - [`crypto`]: RAKP codes, key schedule, integrity and AES-CBC-128;
//! - [`session`]: handshake states, the established session, the table,
//!   the process-wide session budget and the per-source budget of replies
//!   outside a session;
//! - `commands`: the command table (privilege, dispatch) and the App,
//!   Chassis, user, LAN configuration, FRU, SDR and SEL commands;
//! - [`platform`]: what the daemon tells an engine about its node (LAN
//!   addressing) and [`fru_area`], the node's FRU inventory image;
//! - [`counters`]: what an engine has done, with stable metric names;
//! - [`boot_options`]: the System Boot Options a machine keeps;
//! - [`sol`]: Serial over LAN: its packets, configuration and stream;
//! - [`bmc`]: the engine tying them together.
//!
//! Every failure to decode names the field that was wrong, no input can make
//! the engine panic, and every request a console could act on gets an
//! answer: a completion code or an RMCP+ status.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod action;
pub mod bmc;
pub mod boot_options;
pub mod cipher_suite;
pub mod codec;
mod commands;
pub mod config;
pub mod counters;
pub mod crypto;
pub mod error;
pub mod fru_area;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod platform;
pub mod session;
pub mod sol;
pub mod user;
pub mod wire;

pub use action::{Action, ActionId, ChassisControl, ChassisState, Outcome};
pub use bmc::{Bmc, CloseReason, Entropy, Event};
pub use boot_options::{BootDevice, BootFlags, BootOptions, BootParameterWrite};
pub use cipher_suite::{CipherSuite, CipherSuites};
pub use config::{BmcConfig, DeviceId};
pub use counters::{Counters, Sample, SessionEvent, SetupMessage};
pub use error::{DropKind, DropReason};
pub use fru_area::Inventory;
pub use platform::LanInfo;
pub use session::budget::SessionBudget;
pub use sol::ConsoleRequest;
pub use user::{User, UserName, Users};
pub use wire::ids::{CompletionCode, Privilege, RakpStatus};
