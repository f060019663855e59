//! Per-node policy routing, for a BMC instance whose node addresses each
//! have a NIC (a cloud port) of their own.
//!
//! A cloud drops packets whose source address does not belong to the port
//! they leave by. With one NIC per node, a reply from a node's address must
//! therefore leave through that node's NIC, whatever the main table's
//! default route says. For each node with a `[nodes.NAME.route]`, novabmc
//! installs through netlink
//!
//! ```text
//! ip rule add from ADDRESS lookup TABLE pref PRIORITY
//! ip route add default via GATEWAY dev INTERFACE table TABLE
//! ```
//!
//! stamped with protocol [`PROTOCOL`] so its own entries are told apart
//! from anyone else's. Installing is idempotent (an identical entry is
//! accepted as it is, whoever made it); an entry of someone else's in the
//! way is a [`Conflict`] that names it; an entry of novabmc's that the
//! configuration no longer wants is replaced.
//!
//! - [`model`]: the kernel's entries as compared here, and the pure
//!   decisions (what to add, keep, replace or refuse);
//! - [`netlink`]: reading and changing the kernel's tables (rtnetlink);
//! - [`ops`]: the operator's `routes show|apply|flush`;
//! - [`daemon`]: `serve`'s installation, the background wait for addresses
//!   that DHCP has not configured yet, and removal at shutdown.

pub mod daemon;
pub mod model;
pub mod netlink;
pub mod ops;

use std::net::IpAddr;

pub use daemon::Installation;
pub use model::{Conflict, PROTOCOL};

/// What one node wants installed, from its `[nodes.NAME.route]`
/// (`Config::route_specs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The node's name, for messages.
    pub node: String,
    /// The node's address: the rule's source.
    pub address: IpAddr,
    /// The node's table.
    pub table: u32,
    /// The default route's next hop.
    pub gateway: IpAddr,
    /// The NIC, or `None` for the one holding `address`.
    pub interface: Option<String>,
    /// The rule's priority.
    pub priority: u32,
}

/// Why routes could not be read, installed or removed; each names the node
/// and the entry at fault where there is one.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// No netlink socket (no route to the kernel at all).
    #[error("cannot open a netlink socket: {0}")]
    Connect(String),
    /// A dump of the kernel's tables failed.
    #[error("cannot read the kernel's {what}: {reason}")]
    Read {
        /// Rules, routes, links or addresses.
        what: &'static str,
        /// The kernel's answer.
        reason: String,
    },
    /// Someone else's rule or route is where the node's must go.
    #[error("node {node}: {conflict}")]
    Conflict {
        /// The node.
        node: String,
        /// What exists and what was wanted (boxed: it is large, and
        /// rare).
        conflict: Box<Conflict>,
    },
    /// The kernel refused a change.
    #[error("node {node}: cannot {change}: {reason}")]
    Change {
        /// The node.
        node: String,
        /// The change, in `ip` syntax (`add rule from ... lookup ...`).
        change: String,
        /// The kernel's answer.
        reason: String,
    },
    /// The node's interface cannot be found yet.
    #[error("node {node}: {reason}")]
    NotReady {
        /// The node.
        node: String,
        /// What is missing.
        reason: String,
    },
}
