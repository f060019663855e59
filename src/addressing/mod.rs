//! Where a discovered node's BMC address comes from ([`crate::discovery`]):
//! `[discovery.address]` names a mode, and everything about modes is in
//! this module: the settings as written ([`RawAddress`], one variant per
//! `mode = "..."`), their validation ([`AddressMode::new`]) and the one
//! dispatch that gives servers their addresses ([`AddressMode::assign`]).
//! A new mode is a variant of both enums and an arm of each `match` here
//! (and a module of its own beside [`pool`]).
//!
//! It sits below the configuration, which holds a validated
//! [`AddressMode`], and depends on nothing but the backend's metadata
//! schema.
//!
//! The modes:
//! - `"pool"`: addresses from a CIDR range, recorded in each server's
//!   metadata ([`pool`]).

pub mod pool;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use pool::Pool;

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
    },
}

/// How discovered nodes get their BMC addresses, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressMode {
    /// From a pool, recorded in the servers' metadata.
    Pool(Pool),
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
}

impl AddressNote {
    /// The server it is about.
    pub fn server(&self) -> &str {
        match self {
            AddressNote::Reassigned { server, .. } | AddressNote::Exhausted { server, .. } => {
                server
            }
        }
    }

    /// Whether the server is left unserved.
    pub fn is_problem(&self) -> bool {
        matches!(self, AddressNote::Exhausted { .. })
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
        }
    }
}

impl AddressMode {
    /// Validates `[discovery.address]`.
    pub fn new(raw: RawAddress) -> Result<AddressMode, AddressError> {
        match raw {
            RawAddress::Pool { cidr, exclude } => Pool::new(&cidr, &exclude)
                .map(AddressMode::Pool)
                .map_err(|e| AddressError {
                    key: e.key(),
                    message: e.to_string(),
                }),
        }
    }

    /// An address of the kind the mode gives, to check settings shared by
    /// every discovered node (a route's gateway family) against.
    pub fn sample(&self) -> IpAddr {
        match self {
            AddressMode::Pool(p) => p.first(),
        }
    }

    /// Gives `servers` their addresses; `reserved` addresses (each with
    /// who holds it, for messages) are never given.
    pub async fn assign(
        &self,
        servers: &[Candidate<'_>],
        reserved: &BTreeMap<IpAddr, String>,
    ) -> Assignment {
        match self {
            AddressMode::Pool(p) => p.assign(servers, reserved),
        }
    }
}

impl fmt::Display for AddressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressMode::Pool(p) => write!(f, "pool {p}"),
        }
    }
}
