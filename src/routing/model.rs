//! The kernel's rules, default routes and interfaces reduced to what
//! novabmc compares, what a node wants, and the pure decisions between
//! them: add, keep, replace a stale entry of novabmc's, or refuse because
//! someone else's entry is in the way. Nothing here talks to the kernel, so
//! every decision is unit-tested.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use super::RouteSpec;

/// The protocol number novabmc stamps on its rules and routes (`proto 78`
/// in `ip rule` and `ip route`). It is how novabmc knows which entries are
/// its own: only those are replaced when the configuration changes and
/// removed at shutdown; anybody else's are left alone. 78 is unassigned in
/// iproute2's `rt_protos`.
pub const PROTOCOL: u8 = 78;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// The prefix length of one host: a rule for one address uses it.
    pub fn host_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// A policy rule as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its family.
    pub family: Family,
    /// `from ADDRESS`, if it has one.
    pub source: Option<IpAddr>,
    /// The source's prefix length.
    pub source_len: u8,
    /// The table it looks up (or names, for other actions).
    pub table: u32,
    /// Its priority.
    pub priority: u32,
    /// Whether its action is `lookup TABLE` (rather than goto, blackhole,
    /// unreachable, prohibit, nop).
    pub lookup: bool,
    /// Whether it also selects on something else (destination, input or
    /// output interface, fwmark, TOS, ports, uid...), so it is not the
    /// plain `from ADDRESS lookup TABLE` novabmc installs.
    pub other_selectors: bool,
    /// Who made it.
    pub protocol: u8,
}

impl Rule {
    /// Whether novabmc made it.
    pub fn ours(&self) -> bool {
        self.protocol == PROTOCOL
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Some(s) if self.source_len == self.family.host_len() => write!(f, "from {s}")?,
            Some(s) => write!(f, "from {s}/{}", self.source_len)?,
            None => f.write_str("from all")?,
        }
        if self.lookup {
            write!(f, " lookup {}", self.table)?;
        } else {
            f.write_str(" with an action other than lookup")?;
        }
        write!(f, " pref {}", self.priority)?;
        if self.other_selectors {
            f.write_str(" and further selectors")?;
        }
        write!(f, " (proto {})", protocol_name(self.protocol))
    }
}

/// A default route as the kernel reports it (routes to anything narrower
/// than `default` are none of novabmc's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its family.
    pub family: Family,
    /// Its table.
    pub table: u32,
    /// `via GATEWAY`, if any.
    pub gateway: Option<IpAddr>,
    /// `dev` by index, if any.
    pub oif: Option<u32>,
    /// `dev` by name, for messages, if the link is known.
    pub interface: Option<String>,
    /// Whether it has several next hops.
    pub multipath: bool,
    /// Whether it forwards (rather than blackhole, unreachable...).
    pub unicast: bool,
    /// Who made it.
    pub protocol: u8,
}

impl Route {
    /// Whether novabmc made it.
    pub fn ours(&self) -> bool {
        self.protocol == PROTOCOL
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.unicast {
            f.write_str("non-unicast ")?;
        }
        f.write_str("default")?;
        if self.multipath {
            f.write_str(" with several next hops")?;
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        match (&self.interface, self.oif) {
            (Some(name), _) => write!(f, " dev {name}")?,
            (None, Some(index)) => write!(f, " dev #{index}")?,
            (None, None) => {}
        }
        write!(
            f,
            " table {} (proto {})",
            self.table,
            protocol_name(self.protocol)
        )
    }
}

/// Names the protocols `ip` names, so messages read like its output.
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        0 => "unspec".into(),
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        16 => "dhcp".into(),
        PROTOCOL => "novabmc".into(),
        n => n.to_string(),
    }
}

/// The rule a node wants: `from ADDRESS lookup TABLE pref PRIORITY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedRule {
    /// The node's address.
    pub source: IpAddr,
    /// The node's table.
    pub table: u32,
    /// The rule's priority.
    pub priority: u32,
}

impl WantedRule {
    fn family(&self) -> Family {
        Family::of(self.source)
    }

    fn same_source(&self, r: &Rule) -> bool {
        r.family == self.family()
            && r.source == Some(self.source)
            && r.source_len == self.family().host_len()
    }

    fn is(&self, r: &Rule) -> bool {
        self.same_source(r)
            && r.table == self.table
            && r.priority == self.priority
            && r.lookup
            && !r.other_selectors
    }

    /// The rule as novabmc installs it.
    pub fn installed(&self) -> Rule {
        Rule {
            family: self.family(),
            source: Some(self.source),
            source_len: self.family().host_len(),
            table: self.table,
            priority: self.priority,
            lookup: true,
            other_selectors: false,
            protocol: PROTOCOL,
        }
    }
}

impl fmt::Display for WantedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "from {} lookup {} pref {}",
            self.source, self.table, self.priority
        )
    }
}

/// The route a node wants: `default via GATEWAY dev INTERFACE table TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedRoute {
    /// The node's table.
    pub table: u32,
    /// The next hop.
    pub gateway: IpAddr,
    /// The NIC's index.
    pub oif: u32,
    /// The NIC's name.
    pub interface: String,
}

impl WantedRoute {
    fn family(&self) -> Family {
        Family::of(self.gateway)
    }

    fn in_table(&self, r: &Route) -> bool {
        r.family == self.family() && r.table == self.table
    }

    fn is(&self, r: &Route) -> bool {
        self.in_table(r)
            && r.gateway == Some(self.gateway)
            && r.oif == Some(self.oif)
            && r.unicast
            && !r.multipath
    }

    /// The route as novabmc installs it.
    pub fn installed(&self) -> Route {
        Route {
            family: self.family(),
            table: self.table,
            gateway: Some(self.gateway),
            oif: Some(self.oif),
            interface: Some(self.interface.clone()),
            multipath: false,
            unicast: true,
            protocol: PROTOCOL,
        }
    }
}

impl fmt::Display for WantedRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "default via {} dev {} table {}",
            self.gateway, self.interface, self.table
        )
    }
}

/// Someone else's entry where a node's must go: what exists and what was
/// wanted, in `ip` syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// A rule for the node's address that is not the one wanted.
    #[error(
        "rule \"{existing}\" is already installed for its address, not by novabmc; \
         wanted \"{wanted}\" (remove that rule or change the node's route)"
    )]
    Rule {
        /// The rule found.
        existing: Rule,
        /// The rule wanted.
        wanted: WantedRule,
    },
    /// A default route in the node's table that is not the one wanted.
    #[error(
        "table {} already has \"{existing}\", not installed by novabmc; wanted \
         \"{wanted}\" (remove that route or give the node another table)",
        wanted.table
    )]
    Route {
        /// The route found.
        existing: Route,
        /// The route wanted.
        wanted: WantedRoute,
    },
}

/// One change to the kernel's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Remove a stale route of novabmc's.
    DelRoute(Route),
    /// Install the node's route.
    AddRoute(WantedRoute),
    /// Remove a stale rule of novabmc's.
    DelRule(Rule),
    /// Install the node's rule.
    AddRule(WantedRule),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::DelRoute(r) => write!(f, "delete route {r}"),
            Change::AddRoute(r) => write!(f, "add route {r}"),
            Change::DelRule(r) => write!(f, "delete rule {r}"),
            Change::AddRule(r) => write!(f, "add rule {r}"),
        }
    }
}

/// The kernel's rules and default routes at one moment, kept up to date
/// with the steps carried out since, so nodes sharing a table or an
/// address see each other's entries without another dump.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every rule, both families.
    pub rules: Vec<Rule>,
    /// Every default route, every table, both families.
    pub routes: Vec<Route>,
}

impl Snapshot {
    /// The steps installing `rule`, or the conflict in the way. An
    /// identical rule is kept whoever made it; other rules of novabmc's
    /// for the address are removed.
    pub fn plan_rule(&self, rule: &WantedRule) -> Result<Vec<Change>, Conflict> {
        let mut steps = Vec::new();
        let mut present = false;
        for r in self.rules.iter().filter(|r| rule.same_source(r)) {
            if rule.is(r) {
                present = true;
            } else if r.ours() {
                steps.push(Change::DelRule(r.clone()));
            } else {
                return Err(Conflict::Rule {
                    existing: r.clone(),
                    wanted: rule.clone(),
                });
            }
        }
        if !present {
            steps.push(Change::AddRule(rule.clone()));
        }
        Ok(steps)
    }

    /// The steps installing `route`, or the conflict in the way. An
    /// identical route is kept whoever made it; other default routes of
    /// novabmc's in the table are removed.
    pub fn plan_route(&self, route: &WantedRoute) -> Result<Vec<Change>, Conflict> {
        let mut steps = Vec::new();
        let mut present = false;
        for r in self.routes.iter().filter(|r| route.in_table(r)) {
            if route.is(r) {
                present = true;
            } else if r.ours() {
                steps.push(Change::DelRoute(r.clone()));
            } else {
                return Err(Conflict::Route {
                    existing: r.clone(),
                    wanted: route.clone(),
                });
            }
        }
        if !present {
            steps.push(Change::AddRoute(route.clone()));
        }
        Ok(steps)
    }

    /// Both plans, route first: a rule pointing at an empty table is
    /// harmless (the lookup falls through to the main table) but the route
    /// should be there when the rule starts to steer replies.
    pub fn plan(&self, rule: &WantedRule, route: &WantedRoute) -> Result<Vec<Change>, Conflict> {
        let mut steps = self.plan_route(route)?;
        steps.extend(self.plan_rule(rule)?);
        Ok(steps)
    }

    /// The steps removing what novabmc installs for a node: its rule and
    /// route, if present and stamped as novabmc's. `oif` is `None` when
    /// the node's interface cannot be found any more; then the route is
    /// recognised by table and gateway alone.
    pub fn removal(
        &self,
        rule: &WantedRule,
        table: u32,
        gateway: IpAddr,
        oif: Option<u32>,
    ) -> Vec<Change> {
        let routes = self.routes.iter().filter(|r| {
            r.ours()
                && r.family == Family::of(gateway)
                && r.table == table
                && r.gateway == Some(gateway)
                && oif.is_none_or(|o| r.oif == Some(o))
                && !r.multipath
        });
        let rules = self.rules.iter().filter(|r| r.ours() && rule.is(r));
        routes
            .cloned()
            .map(Change::DelRoute)
            .chain(rules.cloned().map(Change::DelRule))
            .collect()
    }

    /// Records a step carried out.
    pub fn record(&mut self, step: &Change) {
        match step {
            Change::DelRoute(r) => remove_first(&mut self.routes, r),
            Change::AddRoute(w) => self.routes.push(w.installed()),
            Change::DelRule(r) => remove_first(&mut self.rules, r),
            Change::AddRule(w) => self.rules.push(w.installed()),
        }
    }

    /// The default routes in `table` of `family`, for reports.
    pub fn routes_in(&self, table: u32, family: Family) -> impl Iterator<Item = &Route> {
        self.routes
            .iter()
            .filter(move |r| r.table == table && r.family == family)
    }
}

fn remove_first<T: PartialEq>(items: &mut Vec<T>, item: &T) {
    if let Some(i) = items.iter().position(|x| x == item) {
        items.remove(i);
    }
}

/// The host's links and which link holds each address.
#[derive(Debug, Clone, Default)]
pub struct Interfaces {
    /// Link names by index.
    pub names: BTreeMap<u32, String>,
    /// The link holding each configured address.
    pub holders: HashMap<IpAddr, u32>,
    /// The prefix length of each configured address (for the LAN
    /// parameters IPMI reports).
    pub prefixes: HashMap<IpAddr, u8>,
}

impl Interfaces {
    /// The index of the link called `name`.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .find_map(|(i, n)| (n == name).then_some(*i))
    }
}

/// How a node's interface was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// From `nodes.NAME.route.interface`.
    Configured,
    /// From the link holding the node's address.
    FromAddress,
    /// From the configuration, though the address is on another link
    /// (named here); the configuration wins.
    ConfiguredButAddressOn(String),
}

/// A node's wanted rule and route once its interface is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The rule.
    pub rule: WantedRule,
    /// The route.
    pub route: WantedRoute,
    /// How the interface was found.
    pub found: Found,
}

/// The rule a spec wants, which needs no interface.
pub fn wanted_rule(spec: &RouteSpec) -> WantedRule {
    WantedRule {
        source: spec.address,
        table: spec.table,
        priority: spec.priority,
    }
}

/// Finds a node's interface, or says what is missing. The node's address
/// must be configured before anything is installed: until then (DHCP has
/// not run yet) the gateway is usually unreachable and there is nothing to
/// reply from.
pub fn resolve(spec: &RouteSpec, ifs: &Interfaces) -> Result<Resolved, String> {
    let holder = ifs.holders.get(&spec.address).copied();
    let (oif, found) = match (&spec.interface, holder) {
        (Some(name), _) => {
            let Some(oif) = ifs.index_of(name) else {
                return Err(format!("interface {name} does not exist (yet)"));
            };
            let found = match holder {
                None => {
                    return Err(format!(
                        "address {} is not configured on {name} (or any interface) yet",
                        spec.address
                    ));
                }
                Some(h) if h == oif => Found::Configured,
                Some(h) => Found::ConfiguredButAddressOn(
                    ifs.names
                        .get(&h)
                        .cloned()
                        .unwrap_or_else(|| format!("#{h}")),
                ),
            };
            (oif, found)
        }
        (None, Some(h)) => (h, Found::FromAddress),
        (None, None) => {
            return Err(format!(
                "address {} is not configured on any interface yet, so its interface \
                 cannot be found (or set nodes.{}.route.interface)",
                spec.address, spec.node
            ));
        }
    };
    let interface = ifs
        .names
        .get(&oif)
        .cloned()
        .unwrap_or_else(|| format!("#{oif}"));
    Ok(Resolved {
        rule: wanted_rule(spec),
        route: WantedRoute {
            table: spec.table,
            gateway: spec.gateway,
            oif,
            interface,
        },
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn spec(address: &str, table: u32, gateway: &str, interface: Option<&str>) -> RouteSpec {
        RouteSpec {
            node: "n".into(),
            address: ip(address),
            table,
            gateway: ip(gateway),
            interface: interface.map(str::to_string),
            priority: 1000,
        }
    }

    fn interfaces() -> Interfaces {
        let mut ifs = Interfaces::default();
        ifs.names.insert(2, "eth0".into());
        ifs.names.insert(3, "eth1".into());
        ifs.holders.insert(ip("10.0.1.10"), 2);
        ifs.holders.insert(ip("10.0.2.10"), 3);
        ifs.holders.insert(ip("fd00:2::10"), 3);
        ifs
    }

    fn wanted(address: &str, table: u32, gateway: &str, oif: u32) -> (WantedRule, WantedRoute) {
        let r = resolve(&spec(address, table, gateway, None), &{
            let mut ifs = interfaces();
            ifs.holders.insert(ip(address), oif);
            ifs
        })
        .expect("resolves");
        (r.rule, r.route)
    }

    fn foreign_rule(source: &str, table: u32, priority: u32) -> Rule {
        Rule {
            protocol: 4,
            ..WantedRule {
                source: ip(source),
                table,
                priority,
            }
            .installed()
        }
    }

    #[test]
    fn interface_comes_from_the_address_or_the_configuration() {
        let ifs = interfaces();
        let r = resolve(&spec("10.0.2.10", 7, "10.0.2.1", None), &ifs).expect("found");
        assert_eq!((r.route.oif, r.route.interface.as_str()), (3, "eth1"));
        assert_eq!(r.found, Found::FromAddress);
        let r = resolve(&spec("10.0.2.10", 7, "10.0.2.1", Some("eth0")), &ifs).expect("found");
        assert_eq!(r.route.oif, 2);
        assert_eq!(r.found, Found::ConfiguredButAddressOn("eth1".into()));
        let r = resolve(&spec("fd00:2::10", 7, "fe80::1", Some("eth1")), &ifs).expect("found");
        assert_eq!(r.found, Found::Configured);
        assert_eq!(r.route.to_string(), "default via fe80::1 dev eth1 table 7");
    }

    #[test]
    fn missing_address_or_link_is_not_ready() {
        let ifs = interfaces();
        let e = resolve(&spec("10.0.9.10", 7, "10.0.9.1", None), &ifs).expect_err("absent");
        assert!(e.contains("10.0.9.10 is not configured"), "{e}");
        assert!(e.contains("nodes.n.route.interface"), "{e}");
        let e =
            resolve(&spec("10.0.2.10", 7, "10.0.2.1", Some("eth9")), &ifs).expect_err("no link");
        assert!(e.contains("eth9 does not exist"), "{e}");
        let e =
            resolve(&spec("10.0.9.10", 7, "10.0.9.1", Some("eth1")), &ifs).expect_err("no address");
        assert!(e.contains("not configured on eth1"), "{e}");
    }

    #[test]
    fn empty_tables_get_route_then_rule() {
        let (rule, route) = wanted("10.0.2.10", 1002, "10.0.2.1", 3);
        let steps = Snapshot::default()
            .plan(&rule, &route)
            .expect("no conflict");
        assert_eq!(
            steps,
            vec![
                Change::AddRoute(route.clone()),
                Change::AddRule(rule.clone())
            ]
        );
        assert_eq!(
            steps[1].to_string(),
            "add rule from 10.0.2.10 lookup 1002 pref 1000"
        );
    }

    #[test]
    fn applying_twice_adds_nothing() {
        let (rule, route) = wanted("10.0.2.10", 1002, "10.0.2.1", 3);
        let mut snap = Snapshot::default();
        for step in snap.plan(&rule, &route).expect("plan") {
            snap.record(&step);
        }
        assert_eq!(snap.plan(&rule, &route).expect("plan"), vec![]);
        assert_eq!((snap.rules.len(), snap.routes.len()), (1, 1));
    }

    #[test]
    fn identical_foreign_entries_are_accepted_and_never_removed() {
        let (rule, route) = wanted("10.0.2.10", 1002, "10.0.2.1", 3);
        let snap = Snapshot {
            rules: vec![foreign_rule("10.0.2.10", 1002, 1000)],
            routes: vec![Route {
                protocol: 4,
                ..route.installed()
            }],
        };
        assert_eq!(snap.plan(&rule, &route).expect("plan"), vec![]);
        assert_eq!(snap.removal(&rule, 1002, route.gateway, Some(3)), vec![]);
    }

    #[test]
    fn foreign_rule_for_the_address_is_a_conflict_naming_both() {
        let (rule, route) = wanted("10.0.2.10", 1002, "10.0.2.1", 3);
        for existing in [
            foreign_rule("10.0.2.10", 999, 1000),
            foreign_rule("10.0.2.10", 1002, 50),
            Rule {
                other_selectors: true,
                ..foreign_rule("10.0.2.10", 1002, 1000)
            },
        ] {
            let snap = Snapshot {
                rules: vec![existing.clone()],
                routes: vec![],
            };
            let e = snap.plan(&rule, &route).expect_err("conflict");
            assert_eq!(
                e,
                Conflict::Rule {
                    existing,
                    wanted: rule.clone()
                }
            );
            let text = e.to_string();
            assert!(
                text.contains("from 10.0.2.10 lookup 1002 pref 1000"),
                "{text}"
            );
            assert!(text.contains("proto static"), "{text}");
        }
        // Rules for other sources, wider prefixes and the other family are
        // not in the way.
        let snap = Snapshot {
            rules: vec![
                foreign_rule("10.0.2.11", 999, 1000),
                Rule {
                    source_len: 24,
                    ..foreign_rule("10.0.2.10", 999, 1000)
                },
            ],
            routes: vec![],
        };
        assert!(snap.plan(&rule, &route).is_ok());
    }

    #[test]
    fn foreign_default_route_in_the_table_is_a_conflict() {
        let (rule, route) = wanted("10.0.2.10", 1002, "10.0.2.1", 3);
        let other = Route {
            gateway: Some(ip("10.0.1.1")),
            oif: Some(2),
            interface: Some("eth0".into()),
            protocol: 4,
            ..route.installed()
        };
        let snap = Snapshot {
            rules: vec![],
            routes: vec![other.clone()],
        };
        let e = snap.plan(&rule, &route).expect_err("conflict");
        let text = e.to_string();
        assert!(
            text.contains(
                "table 1002 already has \"default via 10.0.1.1 dev eth0 table 1002 (proto static)\""
            ),
            "{text}"
        );
        assert!(
            text.contains("wanted \"default via 10.0.2.1 dev eth1 table 1002\""),
            "{text}"
        );
        // Same gateway through another NIC is just as wrong.
        let snap = Snapshot {
            rules: vec![],
            routes: vec![Route {
                oif: Some(2),
                protocol: 4,
                ..route.installed()
            }],
        };
        assert!(matches!(
            snap.plan(&rule, &route),
            Err(Conflict::Route { .. })
        ));
        // A default route of the other family, or in another table, is not.
        let snap = Snapshot {
            rules: vec![],
            routes: vec![
                Route {
                    table: 1003,
                    ..other.clone()
                },
                Route {
                    family: Family::V6,
                    gateway: Some(ip("fe80::1")),
                    ..other
                },
            ],
        };
        assert_eq!(snap.plan(&rule, &route).expect("plan").len(), 2);
    }

    #[test]
    fn stale_entries_of_ours_are_replaced() {
        let (rule, route) = wanted("10.0.2.10", 1002, "10.0.2.1", 3);
        let old_rule = WantedRule {
            table: 1009,
            ..rule.clone()
        }
        .installed();
        let old_route = Route {
            gateway: Some(ip("10.0.2.254")),
            ..route.installed()
        };
        let snap = Snapshot {
            rules: vec![old_rule.clone()],
            routes: vec![old_route.clone()],
        };
        assert_eq!(
            snap.plan(&rule, &route).expect("plan"),
            vec![
                Change::DelRoute(old_route),
                Change::AddRoute(route.clone()),
                Change::DelRule(old_rule),
                Change::AddRule(rule.clone()),
            ]
        );
    }

    #[test]
    fn nodes_sharing_a_table_share_its_route() {
        let (rule_a, route) = wanted("10.0.2.10", 1002, "10.0.2.1", 3);
        let (rule_b, route_b) = wanted("10.0.2.11", 1002, "10.0.2.1", 3);
        assert_eq!(route, route_b);
        let mut snap = Snapshot::default();
        for step in snap.plan(&rule_a, &route).expect("a") {
            snap.record(&step);
        }
        assert_eq!(
            snap.plan(&rule_b, &route).expect("b"),
            vec![Change::AddRule(rule_b.clone())]
        );
        for step in snap.plan(&rule_b, &route).expect("b") {
            snap.record(&step);
        }
        // Removal takes the shared route once.
        let first = snap.removal(&rule_a, 1002, route.gateway, Some(3));
        assert_eq!(first.len(), 2);
        for step in &first {
            snap.record(step);
        }
        assert_eq!(
            snap.removal(&rule_b, 1002, route.gateway, Some(3)),
            vec![Change::DelRule(rule_b.installed())]
        );
    }

    #[test]
    fn removal_takes_only_our_identical_entries() {
        let (rule, route) = wanted("fd00:2::10", 1003, "fe80::1", 3);
        let ours_rule = rule.installed();
        let ours_route = route.installed();
        let snap = Snapshot {
            rules: vec![
                ours_rule.clone(),
                foreign_rule("fd00:2::10", 1003, 1000),
                WantedRule {
                    priority: 7,
                    ..rule.clone()
                }
                .installed(),
            ],
            routes: vec![
                ours_route.clone(),
                Route {
                    table: 1004,
                    ..ours_route.clone()
                },
            ],
        };
        let steps = snap.removal(&rule, 1003, route.gateway, Some(3));
        assert_eq!(
            steps,
            vec![
                Change::DelRoute(ours_route.clone()),
                Change::DelRule(ours_rule.clone())
            ]
        );
        // Without the interface, table and gateway identify the route.
        assert_eq!(snap.removal(&rule, 1003, route.gateway, None), steps);
        assert_eq!(
            snap.removal(&rule, 1003, route.gateway, Some(9)),
            vec![Change::DelRule(ours_rule)]
        );
    }

    #[test]
    fn entries_read_like_ip_output() {
        let r = Rule {
            source: None,
            lookup: false,
            other_selectors: true,
            ..foreign_rule("10.0.0.1", 5, 10)
        };
        assert_eq!(
            r.to_string(),
            "from all with an action other than lookup pref 10 and further selectors (proto static)"
        );
        let route = Route {
            family: Family::V4,
            table: 300,
            gateway: None,
            oif: Some(4),
            interface: None,
            multipath: false,
            unicast: false,
            protocol: PROTOCOL,
        };
        assert_eq!(
            route.to_string(),
            "non-unicast default dev #4 table 300 (proto novabmc)"
        );
    }
}
