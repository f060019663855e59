//! `[routing]` and each node's `[nodes.NAME.route]`: the policy rule and
//! default route that make a node's replies leave through its own NIC
//! (see [`crate::routing`]), checked against what the kernel accepts
//! (reserved tables, rule priorities, interface names) and against the
//! other nodes (a table has one default route, an address one rule).

use std::net::IpAddr;

use serde::Deserialize;

use super::error::{Checker, ConfigError};
use super::nodes::NodeConfig;

/// The priority of a node's `from ADDRESS lookup TABLE` rule when
/// `nodes.NAME.route.priority` is not given: well before the main table's
/// rule (32766), so the node's table wins, and far enough from 0 that an
/// operator can still put rules of their own in front.
pub const DEFAULT_RULE_PRIORITY: u32 = 1000;

/// Routing tables the kernel gives a meaning (unspec, default, main,
/// local); a node's table must be none of them.
pub const RESERVED_TABLES: [u32; 4] = [0, 253, 254, 255];

/// The main table's rule priority: a node's rule must come before it.
const MAIN_RULE_PRIORITY: u32 = 32766;

/// Longest interface name the kernel accepts (IFNAMSIZ less the NUL).
const MAX_INTERFACE_NAME: usize = 15;

/// `[routing]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouting {
    keep_routes: Option<bool>,
}

/// `[nodes.NAME.route]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    table: u32,
    gateway: IpAddr,
    interface: Option<String>,
    priority: Option<u32>,
}

impl RawRoute {
    /// The gateway as written, whose family a route checked before its
    /// node's address is known is held to.
    pub(super) fn gateway(&self) -> IpAddr {
        self.gateway
    }
}

/// `[nodes.NAME.route]`: replies from the node's address leave through its
/// own NIC (`from ADDRESS lookup TABLE` and `default via GATEWAY dev
/// INTERFACE table TABLE`), because a cloud drops packets whose source
/// address does not belong to the port they leave by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// The node's routing table (never 0, 253, 254 or 255).
    pub table: u32,
    /// The next hop on the node's subnet, of the address's family.
    pub gateway: IpAddr,
    /// The NIC; `None` means the one holding the node's address.
    pub interface: Option<String>,
    /// The rule's priority.
    pub priority: u32,
}

/// `[routing]`: settings for every node's routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Leave the rules and routes in place when `serve` stops, so replies
    /// keep their path across a restart; by default they are removed.
    pub keep_routes: bool,
}

/// Validates `[routing]`.
pub(super) fn check(raw: RawRouting) -> RoutingConfig {
    RoutingConfig {
        keep_routes: raw.keep_routes.unwrap_or(false),
    }
}

/// Validates one node's `[nodes.NAME.route]`; `key` is `nodes.NAME`.
pub(super) fn check_route(
    key: &str,
    address: IpAddr,
    r: RawRoute,
    c: &Checker<'_>,
) -> Result<RouteConfig, ConfigError> {
    if RESERVED_TABLES.contains(&r.table) {
        return Err(c.error(
            &format!("{key}.route.table"),
            format!(
                "table {} is reserved (0 unspec, 253 default, 254 main, 255 local); \
                 give the node a table of its own",
                r.table
            ),
        ));
    }
    if r.gateway.is_ipv4() != address.is_ipv4() {
        return Err(c.error(
            &format!("{key}.route.gateway"),
            format!(
                "{} is not of the same family as the address {address}",
                r.gateway
            ),
        ));
    }
    if r.gateway.is_unspecified() || r.gateway.is_multicast() || r.gateway == address {
        return Err(c.error(
            &format!("{key}.route.gateway"),
            "must be the unicast address of the router on the node's subnet",
        ));
    }
    if let Some(name) = &r.interface
        && (name.is_empty()
            || name.len() > MAX_INTERFACE_NAME
            || name.contains(['/', ':'])
            || name.contains(char::is_whitespace))
    {
        return Err(c.error(
            &format!("{key}.route.interface"),
            format!(
                "{name:?} is not an interface name (1 to {MAX_INTERFACE_NAME} bytes, \
                 no '/', ':' or spaces)"
            ),
        ));
    }
    let priority = r.priority.unwrap_or(DEFAULT_RULE_PRIORITY);
    if !(1..MAIN_RULE_PRIORITY).contains(&priority) {
        return Err(c.error(
            &format!("{key}.route.priority"),
            format!(
                "must be between 1 and {}: the rule must come after the local table's \
                 (0) and before the main table's ({MAIN_RULE_PRIORITY})",
                MAIN_RULE_PRIORITY - 1
            ),
        ));
    }
    Ok(RouteConfig {
        table: r.table,
        gateway: r.gateway,
        interface: r.interface,
        priority,
    })
}

/// Nodes may share a table (and so its one default route) only if they
/// agree on that route, and nodes sharing an address need one rule for it,
/// so their routes must match.
pub(super) fn check_shared_routes(
    nodes: &[NodeConfig],
    c: &Checker<'_>,
) -> Result<(), ConfigError> {
    for (i, n) in nodes.iter().enumerate() {
        let Some(r) = &n.route else { continue };
        for o in &nodes[..i] {
            let Some(or) = &o.route else { continue };
            if or.table == r.table && (or.gateway != r.gateway || or.interface != r.interface) {
                return Err(c.error(
                    &format!("nodes.{}.route.table", n.name),
                    format!(
                        "table {} is also node {}'s, with {}; nodes sharing a table \
                         must share its gateway and interface",
                        r.table,
                        o.name,
                        describe_next_hop(or)
                    ),
                ));
            }
            if o.listen.ip() == n.listen.ip() && or != r {
                return Err(c.error(
                    &format!("nodes.{}.route", n.name),
                    format!(
                        "node {} has the same address {} with a different route; \
                         one address has one rule, so their routes must be the same",
                        o.name,
                        n.listen.ip()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn describe_next_hop(r: &RouteConfig) -> String {
    match &r.interface {
        Some(i) => format!("gateway {} on {i}", r.gateway),
        None => format!("gateway {} on the address's interface", r.gateway),
    }
}
