//! One node's install and removal (shared by `serve` and the `routes`
//! command), and the operator's `routes show`, `apply` and `flush`.

use std::fmt;

use super::RouteSpec;
use super::RoutingError;
use super::model::{
    Change, Conflict, Family, Found, Interfaces, Resolved, Snapshot, resolve, wanted_rule,
};
use super::netlink::{self, ENOENT, ESRCH, Netlink};

/// Installs a node's rule and route, updating `snap` as each step
/// succeeds; returns the steps taken (none when all was in place).
pub async fn install(
    nl: &Netlink,
    snap: &mut Snapshot,
    spec: &RouteSpec,
    resolved: &Resolved,
) -> Result<Vec<Change>, RoutingError> {
    let steps = snap
        .plan(&resolved.rule, &resolved.route)
        .map_err(|conflict| RoutingError::Conflict {
            node: spec.node.clone(),
            conflict: Box::new(conflict),
        })?;
    for step in &steps {
        nl.execute(step).await.map_err(|e| RoutingError::Change {
            node: spec.node.clone(),
            change: step.to_string(),
            reason: netlink::describe(&e),
        })?;
        snap.record(step);
    }
    Ok(steps)
}

/// Removes what novabmc installs for a node (its own stamped entries,
/// nobody else's); returns the steps taken. Entries already gone are
/// not an error.
pub async fn remove(
    nl: &Netlink,
    snap: &mut Snapshot,
    spec: &RouteSpec,
    ifs: &Interfaces,
) -> Result<Vec<Change>, RoutingError> {
    let oif = match &spec.interface {
        Some(name) => ifs.index_of(name),
        None => ifs.holders.get(&spec.address).copied(),
    };
    let steps = snap.removal(&wanted_rule(spec), spec.table, spec.gateway, oif);
    for step in &steps {
        match nl.execute(step).await {
            Ok(()) => {}
            Err(e) if matches!(netlink::errno(&e), Some(ESRCH | ENOENT)) => {}
            Err(e) => {
                return Err(RoutingError::Change {
                    node: spec.node.clone(),
                    change: step.to_string(),
                    reason: netlink::describe(&e),
                });
            }
        }
        snap.record(step);
    }
    Ok(steps)
}

/// Where one of a node's entries stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// In place; `ours` says whether novabmc made it.
    Installed {
        /// Whether it carries novabmc's stamp.
        ours: bool,
    },
    /// Not there; `apply` would add it, replacing these stale entries of
    /// novabmc's.
    Missing {
        /// Entries `apply` would remove first.
        replacing: Vec<String>,
    },
    /// Someone else's entry is in the way.
    Conflict(Conflict),
    /// Cannot tell: the interface is not known.
    Unknown(String),
}

impl Status {
    fn from_plan(plan: Result<Vec<Change>, Conflict>) -> Status {
        match plan {
            Err(c) => Status::Conflict(c),
            Ok(steps) if steps.is_empty() => Status::Installed { ours: false },
            Ok(steps) => Status::Missing {
                replacing: steps
                    .iter()
                    .filter_map(|s| match s {
                        Change::DelRoute(r) => Some(r.to_string()),
                        Change::DelRule(r) => Some(r.to_string()),
                        _ => None,
                    })
                    .collect(),
            },
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Installed { ours: true } => f.write_str("installed (by novabmc)"),
            Status::Installed { ours: false } => {
                f.write_str("installed (by someone else; novabmc leaves it in place)")
            }
            Status::Missing { replacing } if replacing.is_empty() => f.write_str("missing"),
            Status::Missing { replacing } => {
                write!(f, "missing (would replace {})", replacing.join(", "))
            }
            Status::Conflict(c) => write!(f, "CONFLICT: {c}"),
            Status::Unknown(why) => write!(f, "unknown: {why}"),
        }
    }
}

/// What `routes show` says about one node.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// What the configuration wants.
    pub spec: RouteSpec,
    /// The interface and how it was found, or why it was not.
    pub interface: Result<(String, Found), String>,
    /// The rule, in `ip` syntax, and where it stands.
    pub rule: (String, Status),
    /// The route, in `ip` syntax, and where it stands.
    pub route: (String, Status),
    /// Default routes in the node's table, when the route's status is
    /// unknown: what is there instead.
    pub table_holds: Vec<String>,
}

impl NodeReport {
    /// Whether everything the node wants is in place.
    pub fn complete(&self) -> bool {
        matches!(self.rule.1, Status::Installed { .. })
            && matches!(self.route.1, Status::Installed { .. })
    }
}

impl fmt::Display for NodeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        write!(f, "{}: address {}, table {}, ", s.node, s.address, s.table)?;
        match &self.interface {
            Ok((name, Found::FromAddress)) => writeln!(f, "interface {name} (holds the address)")?,
            Ok((name, Found::Configured)) => writeln!(f, "interface {name} (configured)")?,
            Ok((name, Found::ConfiguredButAddressOn(other))) => writeln!(
                f,
                "interface {name} (configured, though the address is on {other})"
            )?,
            Err(why) => writeln!(f, "interface unknown: {why}")?,
        }
        writeln!(f, "  rule   {}: {}", self.rule.0, self.rule.1)?;
        writeln!(f, "  route  {}: {}", self.route.0, self.route.1)?;
        for r in &self.table_holds {
            writeln!(f, "         table {} holds {r}", s.table)?;
        }
        Ok(())
    }
}

/// Compares each node's wanted rule and route with the kernel's.
pub async fn show(specs: &[RouteSpec]) -> Result<Vec<NodeReport>, RoutingError> {
    let nl = Netlink::connect()?;
    let ifs = nl.interfaces().await?;
    let snap = nl.snapshot(&ifs).await?;
    Ok(specs.iter().map(|spec| report(spec, &ifs, &snap)).collect())
}

fn report(spec: &RouteSpec, ifs: &Interfaces, snap: &Snapshot) -> NodeReport {
    let rule = wanted_rule(spec);
    let mut rule_status = Status::from_plan(snap.plan_rule(&rule));
    if rule_status == (Status::Installed { ours: false }) && snap.rules.contains(&rule.installed())
    {
        rule_status = Status::Installed { ours: true };
    }
    let resolved = resolve(spec, ifs);
    let (route_text, route_status, table_holds) = match &resolved {
        Ok(r) => {
            let mut status = Status::from_plan(snap.plan_route(&r.route));
            if status == (Status::Installed { ours: false })
                && snap.routes.contains(&r.route.installed())
            {
                status = Status::Installed { ours: true };
            }
            (r.route.to_string(), status, Vec::new())
        }
        Err(_) => (
            format!("default via {} table {}", spec.gateway, spec.table),
            Status::Unknown("the interface is not known".into()),
            snap.routes_in(spec.table, Family::of(spec.gateway))
                .map(ToString::to_string)
                .collect(),
        ),
    };
    NodeReport {
        spec: spec.clone(),
        interface: resolved.map(|r| (r.route.interface, r.found)),
        rule: (rule.to_string(), rule_status),
        route: (route_text, route_status),
        table_holds,
    }
}

/// The result of `apply` or `flush` for one node: the steps taken.
pub type NodeResult = (String, Result<Vec<Change>, RoutingError>);

/// Installs every node's rule and route, going on past failures so each
/// node's outcome is reported.
pub async fn apply(specs: &[RouteSpec]) -> Result<Vec<NodeResult>, RoutingError> {
    let nl = Netlink::connect()?;
    let ifs = nl.interfaces().await?;
    let mut snap = nl.snapshot(&ifs).await?;
    let mut results = Vec::new();
    for spec in specs {
        let result = match resolve(spec, &ifs) {
            Ok(r) => install(&nl, &mut snap, spec, &r).await,
            Err(reason) => Err(RoutingError::NotReady {
                node: spec.node.clone(),
                reason,
            }),
        };
        results.push((spec.node.clone(), result));
    }
    Ok(results)
}

/// Removes every node's entries that novabmc made.
pub async fn flush(specs: &[RouteSpec]) -> Result<Vec<NodeResult>, RoutingError> {
    let nl = Netlink::connect()?;
    let ifs = nl.interfaces().await?;
    let mut snap = nl.snapshot(&ifs).await?;
    let mut results = Vec::new();
    for spec in specs {
        let result = remove(&nl, &mut snap, spec, &ifs).await;
        results.push((spec.node.clone(), result));
    }
    Ok(results)
}
