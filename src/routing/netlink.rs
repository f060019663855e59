//! The kernel side of routing, through rtnetlink: dumps of rules, default
//! routes, links and addresses turned into [`model`](super::model) types,
//! and [`Change`]s carried out.
//!
//! Three traps of rtnetlink 0.24 shape this code: a rule's action defaults
//! to "unspec" (every lookup hitting it fails), so it is always set to
//! `lookup`; `NLM_F_REPLACE` is ignored for rules, so idempotence comes
//! from comparing dumps, never from replace; and a route dump returns every
//! table whatever table the request names, and tables above 255 live only
//! in an attribute, so tables are read from the attribute first and
//! filtered here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder, RuleAddRequest};

use super::RoutingError;
use super::model::{
    Change, Family, Interfaces, PROTOCOL, Route, Rule, Snapshot, WantedRoute, WantedRule,
};

/// The table number the header carries when the real one is above 255 and
/// lives in the attribute (RT_TABLE_COMPAT).
const TABLE_COMPAT: u8 = 252;

/// A netlink route socket, served by a task on the current tokio runtime
/// (which ends when the last clone is dropped).
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the socket; must be called inside a tokio runtime.
    pub fn connect() -> Result<Netlink, RoutingError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| RoutingError::Connect(e.to_string()))?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// Every link's name and every configured address's link.
    pub async fn interfaces(&self) -> Result<Interfaces, RoutingError> {
        let mut ifs = Interfaces::default();
        let mut links = self.handle.link().get().execute();
        while let Some(m) = links.try_next().await.map_err(read("links"))? {
            if let Some(name) = m.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            }) {
                ifs.names.insert(m.header.index, name);
            }
        }
        let mut addresses = self.handle.address().get().execute();
        while let Some(m) = addresses.try_next().await.map_err(read("addresses"))? {
            for a in &m.attributes {
                if let AddressAttribute::Local(ip) | AddressAttribute::Address(ip) = a {
                    ifs.holders.entry(*ip).or_insert(m.header.index);
                    ifs.prefixes.entry(*ip).or_insert(m.header.prefix_len);
                }
            }
        }
        Ok(ifs)
    }

    /// Every rule and every default route, both families.
    pub async fn snapshot(&self, ifs: &Interfaces) -> Result<Snapshot, RoutingError> {
        let mut snap = Snapshot::default();
        for version in [IpVersion::V4, IpVersion::V6] {
            let mut rules = self.handle.rule().get(version).execute();
            while let Some(m) = rules.try_next().await.map_err(read("rules"))? {
                if let Some(r) = rule_from(&m) {
                    snap.rules.push(r);
                }
            }
        }
        let requests = [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ];
        for request in requests {
            let mut routes = self.handle.route().get(request).execute();
            while let Some(m) = routes.try_next().await.map_err(read("routes"))? {
                if let Some(r) = route_from(&m, ifs) {
                    snap.routes.push(r);
                }
            }
        }
        Ok(snap)
    }

    /// Carries out one step; the error is the kernel's answer.
    pub async fn execute(&self, step: &Change) -> Result<(), rtnetlink::Error> {
        match step {
            Change::AddRoute(w) => self.handle.route().add(route_message(w)).execute().await,
            Change::DelRoute(r) => {
                self.handle
                    .route()
                    .del(delete_route_message(r))
                    .execute()
                    .await
            }
            Change::AddRule(w) => self.add_rule(w).await,
            Change::DelRule(r) => self.handle.rule().del(rule_message(r)).execute().await,
        }
    }

    async fn add_rule(&self, w: &WantedRule) -> Result<(), rtnetlink::Error> {
        let add = self.handle.rule().add();
        match w.source {
            IpAddr::V4(a) => {
                finish_rule(add.v4().source_prefix(a, 32), w)
                    .execute()
                    .await
            }
            IpAddr::V6(a) => {
                finish_rule(add.v6().source_prefix(a, 128), w)
                    .execute()
                    .await
            }
        }
    }
}

/// Table, priority, the `lookup` action (without it the rule says "none"
/// and every lookup hitting it fails with EINVAL) and novabmc's stamp.
fn finish_rule<T>(r: RuleAddRequest<T>, w: &WantedRule) -> RuleAddRequest<T> {
    let mut r = r
        .table_id(w.table)
        .priority(w.priority)
        .action(RuleAction::ToTable);
    stamp_rule(r.message_mut());
    r
}

fn stamp_rule(m: &mut RuleMessage) {
    m.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Other(PROTOCOL)));
}

/// Maps a dump failure to [`RoutingError::Read`].
fn read(what: &'static str) -> impl Fn(rtnetlink::Error) -> RoutingError {
    move |e| RoutingError::Read {
        what,
        reason: describe(&e),
    }
}

/// The kernel's answer in words, with the usual cause of EPERM.
pub fn describe(e: &rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(m) if m.raw_code() == -EPERM => {
            format!(
                "{} (changing routes needs root or CAP_NET_ADMIN)",
                m.to_io()
            )
        }
        rtnetlink::Error::NetlinkError(m) => m.to_io().to_string(),
        other => other.to_string(),
    }
}

/// The errno of a refused change, if the kernel sent one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

/// The errnos this module looks at, spelled out so no libc crate is
/// needed for three constants.
pub const EPERM: i32 = 1;
/// No such rule or route.
pub const ESRCH: i32 = 3;
/// No such file or directory: some kernels' answer to deleting a missing
/// rule.
pub const ENOENT: i32 = 2;

fn family_of(f: AddressFamily) -> Option<Family> {
    match f {
        AddressFamily::Inet => Some(Family::V4),
        AddressFamily::Inet6 => Some(Family::V6),
        _ => None,
    }
}

fn rule_from(m: &RuleMessage) -> Option<Rule> {
    let family = family_of(m.header.family)?;
    let mut rule = Rule {
        family,
        source: None,
        source_len: m.header.src_len,
        table: u32::from(m.header.table),
        priority: 0,
        lookup: m.header.action == RuleAction::ToTable,
        other_selectors: m.header.dst_len != 0 || m.header.tos != 0,
        protocol: 0,
    };
    for a in &m.attributes {
        match a {
            RuleAttribute::Source(ip) => rule.source = Some(*ip),
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Priority(p) => rule.priority = *p,
            RuleAttribute::Protocol(p) => rule.protocol = u8::from(*p),
            // Attributes that only qualify the ones above or the action.
            RuleAttribute::FwMask(_)
            | RuleAttribute::Goto(_)
            | RuleAttribute::SuppressIfGroup(_)
            | RuleAttribute::SuppressPrefixLen(_) => {}
            RuleAttribute::FwMark(mark) if *mark == 0 => {}
            // The kernel reports l3mdev only when set.
            RuleAttribute::L3MDev(false) => {}
            _ => rule.other_selectors = true,
        }
    }
    Some(rule)
}

fn route_from(m: &RouteMessage, ifs: &Interfaces) -> Option<Route> {
    let family = family_of(m.header.address_family)?;
    if m.header.destination_prefix_length != 0 || m.header.source_prefix_length != 0 {
        return None;
    }
    let mut route = Route {
        family,
        table: u32::from(m.header.table),
        gateway: None,
        oif: None,
        interface: None,
        multipath: false,
        unicast: m.header.kind == RouteType::Unicast,
        protocol: u8::from(m.header.protocol),
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => route.table = *t,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => route.gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => route.gateway = Some(IpAddr::V6(*g)),
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            RouteAttribute::MultiPath(_) => route.multipath = true,
            // A destination attribute with a zero prefix is still default.
            _ => {}
        }
    }
    route.interface = route.oif.and_then(|i| ifs.names.get(&i).cloned());
    Some(route)
}

/// `default via GATEWAY dev INTERFACE table TABLE proto novabmc`.
fn route_message(w: &WantedRoute) -> RouteMessage {
    let mut m = match w.gateway {
        IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(g)
            .output_interface(w.oif)
            .table_id(w.table)
            .protocol(RouteProtocol::Other(PROTOCOL))
            .build(),
        IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(g)
            .output_interface(w.oif)
            .table_id(w.table)
            .protocol(RouteProtocol::Other(PROTOCOL))
            .build(),
    };
    set_route_table(&mut m, w.table);
    m
}

/// Deletes exactly `r`: the kernel matches the protocol too, so a route
/// of someone else's with the same next hop is never taken.
fn delete_route_message(r: &Route) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = match r.family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    };
    m.header.protocol = RouteProtocol::from(r.protocol);
    m.header.kind = if r.unicast {
        RouteType::Unicast
    } else {
        RouteType::Unspec
    };
    m.header.scope = RouteScope::Universe;
    if let Some(g) = r.gateway {
        m.attributes.push(RouteAttribute::Gateway(g.into()));
    }
    if let Some(i) = r.oif {
        m.attributes.push(RouteAttribute::Oif(i));
    }
    set_route_table(&mut m, r.table);
    m
}

/// Puts the table in the header when it fits and always in the attribute,
/// which the kernel prefers.
fn set_route_table(m: &mut RouteMessage, table: u32) {
    m.header.table = u8::try_from(table).unwrap_or(TABLE_COMPAT);
    m.attributes
        .retain(|a| !matches!(a, RouteAttribute::Table(_)));
    m.attributes.push(RouteAttribute::Table(table));
}

/// A rule message matching `r` for deletion: source, table, priority,
/// action and protocol, so only that rule goes.
fn rule_message(r: &Rule) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = match r.family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    };
    m.header.src_len = r.source_len;
    m.header.table = u8::try_from(r.table).unwrap_or(TABLE_COMPAT);
    m.header.action = if r.lookup {
        RuleAction::ToTable
    } else {
        RuleAction::Unspec
    };
    if let Some(s) = r.source {
        m.attributes.push(RuleAttribute::Source(s));
    }
    m.attributes.push(RuleAttribute::Table(r.table));
    m.attributes.push(RuleAttribute::Priority(r.priority));
    m.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::from(r.protocol)));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumped_rules_read_tables_above_255_from_the_attribute() {
        let mut m = RuleMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.src_len = 32;
        m.header.table = TABLE_COMPAT;
        m.header.action = RuleAction::ToTable;
        m.attributes = vec![
            RuleAttribute::Source("10.0.2.10".parse().expect("ip")),
            RuleAttribute::Table(1002),
            RuleAttribute::Priority(1000),
            RuleAttribute::Protocol(RouteProtocol::Other(PROTOCOL)),
        ];
        let r = rule_from(&m).expect("inet");
        let want = WantedRule {
            source: "10.0.2.10".parse().expect("ip"),
            table: 1002,
            priority: 1000,
        };
        assert_eq!(r, want.installed());
        m.attributes.push(RuleAttribute::Iifname("eth0".into()));
        assert!(rule_from(&m).expect("inet").other_selectors);
    }

    #[test]
    fn only_default_routes_are_kept_with_their_table() {
        let w = WantedRoute {
            table: 1002,
            gateway: "10.0.2.1".parse().expect("ip"),
            oif: 3,
            interface: "eth1".into(),
        };
        let mut ifs = Interfaces::default();
        ifs.names.insert(3, "eth1".into());
        let m = route_message(&w);
        assert_eq!(m.header.table, TABLE_COMPAT);
        assert_eq!(route_from(&m, &ifs), Some(w.installed()));
        let mut narrower = m.clone();
        narrower.header.destination_prefix_length = 24;
        assert_eq!(route_from(&narrower, &ifs), None);
        let small = route_message(&WantedRoute { table: 100, ..w });
        assert_eq!(small.header.table, 100);
    }
}
