//! Where a discovered node's BMC address comes from ([`crate::discovery`]):
//! `[discovery.address]` names a mode, and everything about modes is in
//! this module: the settings as written ([`RawAddress`], one variant per
//! `mode = "..."`), their validation ([`AddressMode::new`]) and the one
//! dispatch that gives servers their addresses ([`AddressMode::assign`]).
//! A new mode is a variant of both enums and an arm of each `match` here
//! (and a module of its own beside [`pool`]).
//!
//! It sits below the configuration, which holds a validated
//! [`AddressMode`], and depends on nothing but the backend (its metadata
//! schema, and its client for the modes that read Neutron).
//!
//! The modes:
//! - `"pool"`: addresses from a CIDR range, recorded in each server's
//!   metadata ([`pool`]);
//! - `"port"`: the address of a Neutron port made for the server, found
//!   by name or tag ([`ports::ExistingPort`]);
//! - `"new-port"`: the address of a Neutron port novabmc makes for the
//!   server ([`ports::MadePort`]).

pub mod pool;
pub mod ports;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use crate::backend::nova::client::NovaClient;
use pool::Pool;
use ports::{ExistingPort, MadePort};

/// `[discovery.address]` as written: `mode` picks the variant.
#[derive(Debug, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawAddress {
    /// `mode = "pool"`: `cidr`, and `exclude` (addresses, CIDR ranges or
    /// `FIRST-LAST` ranges never given).
    Pool {
        /// The range, like `192.0.2.0/24`.
        cidr: String,
        /// Addresses never given (the BMC instance's own, a router's...).
        #[serde(default)]
        exclude: Vec<String>,
        /// Give one address per block of this prefix length (the block's
        /// third address; its second is left for the gateway), so each
        /// node has a subnet of its own (layout "nic-per-node").
        #[serde(default)]
        block: Option<u8>,
    },
    /// `mode = "port"`: `name` or `tag` (with `{server}` or `{id}`),
    /// and optionally `network`.
    Port {
        /// The port's name.
        name: Option<String>,
        /// A tag of the port.
        tag: Option<String>,
        /// The network it is on.
        network: Option<String>,
    },
    /// `mode = "new-port"`: `network`, and optionally `subnet`.
    NewPort {
        /// Where the ports are made.
        network: String,
        /// The subnet their addresses come from.
        subnet: Option<String>,
    },
}

/// How discovered nodes get their BMC addresses, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressMode {
    /// From a pool, recorded in the servers' metadata.
    Pool(Pool),
    /// From the Neutron port made for each server.
    Port(ExistingPort),
    /// From a Neutron port novabmc makes for each server.
    NewPort(MadePort),
}

/// The cloud the modes that read or make Neutron ports use.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cloud<'a> {
    /// The backend's client; without one those modes give nothing.
    pub client: Option<&'a NovaClient>,
    /// Whether ports may be made (not for `check`, which writes nothing).
    pub write: bool,
}

/// A bad `[discovery.address]` setting: the key under it, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressError {
    /// The key under `discovery.address` (`cidr`, `exclude`...).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A server to give an address, as discovery sees it.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    /// UUID.
    pub id: &'a str,
    /// Name, for messages.
    pub name: &'a str,
    /// Creation time (ISO 8601), which orders servers.
    pub created: &'a str,
    /// Its metadata, where modes record what they gave.
    pub metadata: &'a HashMap<String, String>,
    /// What this process gave it last time, should the record be missing
    /// (a metadata write that failed).
    pub previous: Option<IpAddr>,
}

/// A metadata key to write on a server, so the next look gives the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The server's UUID.
    pub server: String,
    /// The key.
    pub key: &'static str,
    /// The value.
    pub value: String,
}

/// What a mode gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Server UUID to BMC address.
    pub addresses: BTreeMap<String, IpAddr>,
    /// What to record.
    pub records: Vec<Record>,
    /// What to tell the operator.
    pub notes: Vec<AddressNote>,
}

/// What the operator is told about an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressNote {
    /// What the server had recorded did not hold; it got another.
    Reassigned {
        /// UUID.
        server: String,
        /// Name.
        name: String,
        /// What was recorded.
        recorded: String,
        /// Why it did not hold.
        why: String,
        /// What it got.
        now: IpAddr,
    },
    /// No address was left for the server; it is not served.
    Exhausted {
        /// UUID.
        server: String,
        /// Name.
        name: String,
        /// The pool.
        pool: String,
        /// How many addresses the pool has.
        size: u128,
    },
    /// No Neutron port was found for the server; it is not served.
    NoPort {
        /// UUID.
        server: String,
        /// Name.
        name: String,
        /// The port looked for (`named bmc-web-1`).
        wanted: String,
    },
    /// The server's port could not be found, made or used; it is not
    /// served.
    PortFailed {
        /// UUID.
        server: String,
        /// Name.
        name: String,
        /// Why.
        why: String,
    },
    /// A look that makes nothing (`check`) found no port made for the
    /// server yet: `serve` or `export` makes it.
    PortToMake {
        /// UUID.
        server: String,
        /// Name.
        name: String,
        /// The network it will be on.
        network: String,
    },
}

impl AddressNote {
    /// The server it is about.
    pub fn server(&self) -> &str {
        match self {
            AddressNote::Reassigned { server, .. }
            | AddressNote::Exhausted { server, .. }
            | AddressNote::NoPort { server, .. }
            | AddressNote::PortFailed { server, .. }
            | AddressNote::PortToMake { server, .. } => server,
        }
    }

    /// Whether the server is left unserved.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            AddressNote::Exhausted { .. }
                | AddressNote::NoPort { .. }
                | AddressNote::PortFailed { .. }
        )
    }
}

impl fmt::Display for AddressNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressNote::Reassigned {
                server,
                name,
                recorded,
                why,
                now,
            } => write!(
                f,
                "server {name} ({server}): its recorded BMC address {recorded} {why}; \
                 it gets {now} instead"
            ),
            AddressNote::Exhausted {
                server,
                name,
                pool,
                size,
            } => write!(
                f,
                "server {name} ({server}) is not served: the BMC address pool {pool} is \
                 exhausted (all its {size} addresses are in use); widen discovery.address.cidr \
                 or narrow the selection"
            ),
            AddressNote::NoPort {
                server,
                name,
                wanted,
            } => write!(
                f,
                "server {name} ({server}) is not served: no Neutron port is {wanted}"
            ),
            AddressNote::PortFailed { server, name, why } => {
                write!(f, "server {name} ({server}) is not served: {why}")
            }
            AddressNote::PortToMake {
                server,
                name,
                network,
            } => write!(
                f,
                "server {name} ({server}) has no BMC port yet: serve (or export) makes one on \
                 network {network}"
            ),
        }
    }
}

impl AddressMode {
    /// Validates `[discovery.address]`.
    pub fn new(raw: RawAddress) -> Result<AddressMode, AddressError> {
        match raw {
            RawAddress::Pool {
                cidr,
                exclude,
                block,
            } => Pool::new(&cidr, &exclude, block)
                .map(AddressMode::Pool)
                .map_err(|e| AddressError {
                    key: e.key(),
                    message: e.to_string(),
                }),
            RawAddress::Port { name, tag, network } => {
                ExistingPort::new(name, tag, network).map(AddressMode::Port)
            }
            RawAddress::NewPort { network, subnet } => {
                MadePort::new(network, subnet).map(AddressMode::NewPort)
            }
        }
    }

    /// An address of the kind the mode gives, to check settings shared by
    /// every discovered node (a route's gateway family) against; `None`
    /// when only the cloud knows (Neutron's ports).
    pub fn sample(&self) -> Option<IpAddr> {
        match self {
            AddressMode::Pool(p) => Some(p.first()),
            AddressMode::Port(_) | AddressMode::NewPort(_) => None,
        }
    }

    /// Gives `servers` their addresses; `reserved` addresses (each with
    /// who holds it, for messages) are never given. The port modes read
    /// (and make) Neutron ports through `cloud`.
    pub async fn assign(
        &self,
        servers: &[Candidate<'_>],
        reserved: &BTreeMap<IpAddr, String>,
        cloud: Cloud<'_>,
    ) -> Assignment {
        match self {
            AddressMode::Pool(p) => p.assign(servers, reserved),
            AddressMode::Port(p) => p.assign(servers, reserved, cloud).await,
            AddressMode::NewPort(p) => p.assign(servers, reserved, cloud).await,
        }
    }
}

impl fmt::Display for AddressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressMode::Pool(p) => write!(f, "pool {p}"),
            AddressMode::Port(p) => write!(f, "{p}"),
            AddressMode::NewPort(p) => write!(f, "{p}"),
        }
    }
}
