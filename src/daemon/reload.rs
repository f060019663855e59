//! Applying a new configuration to a running daemon (SIGHUP): what
//! changed is worked out node by node, everything that can fail is tried
//! before anything running is touched (binding the new sockets, reading
//! the new cloud configuration), and a refused reload leaves the running
//! configuration as it was, with the reason logged at error level.
//!
//! A change of `[backend]` replaces the backend before anything else
//! changes: the old one stops (its state directory closed, whatever still
//! holds it, an open SOL console included), the pending work moves to the
//! new `state_dir` if that changed, and the new one starts. If any of that
//! fails the reload is refused: the pending work goes back, the running
//! configuration's backend starts again and the file is not taken as
//! current, so the next reload of it tries again. Open consoles then move
//! to whichever backend serves ([`crate::backend::Binding::move_consoles`]).
//! A changed node on the same address keeps its socket (a duplicate of
//! it is held for this), so it never fails to listen again.
//!
//! Discovery ([`super::discovery`]) hands its node sets to the same
//! function ([`Cause::Discovery`]): a server that appears is an added
//! node, one that goes a removed node. The watcher logs a line per
//! server, so the summary of such a reload is a debug line; and a
//! discovered node whose address cannot be bound is left out (logged)
//! rather than refusing the whole change, so one address in use elsewhere
//! never holds back every other server's; it is tried again with the next
//! change discovery hands over.

use std::collections::{BTreeSet, HashMap};

use tokio::net::UdpSocket;
use tracing::{debug, error, info, warn};

use super::{Running, State};
use crate::backend::nova::{cloud, store};
use crate::config::{BackendConfig, Config, NodeConfig, Origin};
use crate::ipmi;
use crate::routing::Installation;

/// Why a reload comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The configuration file was loaded again (SIGHUP).
    File,
    /// Discovery found other servers to serve.
    Discovery,
}

/// A configuration to apply, and why.
#[derive(Debug)]
pub struct Update {
    /// The whole configuration, discovered nodes included.
    pub config: Config,
    /// Why.
    pub cause: Cause,
}

/// What a reload changes, by node name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Nodes that start.
    pub added: BTreeSet<String>,
    /// Nodes that stop.
    pub removed: BTreeSet<String>,
    /// Nodes that restart with new settings.
    pub changed: BTreeSet<String>,
    /// Nodes that keep running as they are.
    pub unchanged: usize,
}

impl Changes {
    /// Compares two node lists.
    pub fn between(old: &[NodeConfig], new: &[NodeConfig]) -> Changes {
        let before: HashMap<&str, &NodeConfig> = old.iter().map(|n| (n.name.as_str(), n)).collect();
        let after: HashMap<&str, &NodeConfig> = new.iter().map(|n| (n.name.as_str(), n)).collect();
        let mut c = Changes::default();
        for n in new {
            match before.get(n.name.as_str()) {
                None => {
                    c.added.insert(n.name.clone());
                }
                Some(o) if *o != n => {
                    c.changed.insert(n.name.clone());
                }
                Some(_) => c.unchanged += 1,
            }
        }
        for o in old {
            if !after.contains_key(o.name.as_str()) {
                c.removed.insert(o.name.clone());
            }
        }
        c
    }

    fn nodes_differ(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty())
    }
}

/// Applies `update` to `state`, or logs why not and keeps what runs.
pub(super) async fn apply(state: &mut State, update: Update) {
    let Update {
        config: mut new,
        cause,
    } = update;
    // Sockets first: a discovered node that cannot listen is left out.
    let mut sockets: HashMap<String, UdpSocket> = HashMap::new();
    let mut left_out: BTreeSet<String> = BTreeSet::new();
    for n in &new.nodes {
        let moved = match state.nodes.get(&n.name) {
            None => true,
            Some(s) => s.config.listen != n.listen,
        };
        if !moved {
            continue;
        }
        match ipmi::bind_udp(n.listen, true) {
            Ok(s) => {
                sockets.insert(n.name.clone(), s);
            }
            Err(e) if n.origin == Origin::Discovered => {
                error!(node = %n.name, listen = %n.listen, error = %e,
                    "cannot listen on the discovered node's address; it is not served");
                left_out.insert(n.name.clone());
            }
            Err(e) => {
                error!(node = %n.name, listen = %n.listen, error = %e,
                    "reload refused: cannot listen on the node's address; keeping the running configuration");
                return;
            }
        }
    }
    new.nodes.retain(|n| !left_out.contains(&n.name));
    let changes = Changes::between(&state.config.nodes, &new.nodes);
    let backend_changed = state.config.backend != new.backend;
    // What can fail, first.
    if let BackendConfig::Nova(n) = &new.backend
        && (backend_changed || changes.nodes_differ())
        && let Err(e) = cloud::load(&n.settings.cloud)
    {
        error!(error = %e, "reload refused: the new cloud configuration cannot be read; keeping the running configuration");
        return;
    }
    if let (BackendConfig::Nova(old), BackendConfig::Nova(n)) =
        (&state.config.backend, &new.backend)
        && old.settings.state_dir != n.settings.state_dir
        && let Err(e) = store::Store::open(&n.settings.state_dir)
    {
        error!(error = %e, "reload refused: the new state directory cannot be used; keeping the running configuration");
        return;
    }
    if state.config.metrics != new.metrics {
        warn!("metrics settings change at the next restart; the endpoint keeps its address");
    }
    if state.config.bmc.max_sessions_total != new.bmc.max_sessions_total {
        warn!("bmc.max_sessions_total changes at the next restart");
    }

    if backend_changed && !switch_backend(state, &new).await {
        return;
    }

    // Stop what goes away or restarts.
    for name in &changes.removed {
        state.stop_node(name).await;
    }
    // Changed nodes on the same address take over their old socket.
    for name in &changes.changed {
        let spare = state.stop_node(name).await;
        if sockets.contains_key(name) {
            continue;
        }
        let Some(n) = new.nodes.iter().find(|n| &n.name == name) else {
            continue;
        };
        let socket = match spare {
            Some(s) => tokio::net::UdpSocket::from_std(s.into()),
            None => ipmi::bind_udp(n.listen, true),
        };
        match socket {
            Ok(s) => {
                sockets.insert(name.clone(), s);
            }
            Err(e) => {
                error!(node = %name, listen = %n.listen, error = %e, "cannot listen again; the node stays down");
            }
        }
    }

    state.shared.replace(new.engine_config());
    if !backend_changed && changes.nodes_differ() {
        restart_backend(state, &new).await;
    }
    let old_specs = state.config.route_specs();
    state.config = new;
    let starting: Vec<NodeConfig> = state
        .config
        .nodes
        .iter()
        .filter(|n| sockets.contains_key(&n.name))
        .cloned()
        .collect();
    let mut lan = ipmi::lan_config::discover(&starting).await.into_iter();
    for n in starting {
        let lan = lan.next().unwrap_or_default();
        if let Some(socket) = sockets.remove(&n.name) {
            state.spawn(n, socket, lan);
        }
    }
    state.publish();
    if backend_changed {
        state.move_consoles();
    }
    state.sync_redfish().await;
    update_routes(state, old_specs).await;
    match cause {
        Cause::File => info!(
            added = changes.added.len(),
            removed = changes.removed.len(),
            changed = changes.changed.len(),
            unchanged = changes.unchanged,
            nodes = state.config.nodes.len(),
            backend_restarted = backend_changed,
            "configuration reloaded{}",
            describe(&changes)
        ),
        Cause::Discovery => debug!(
            added = changes.added.len(),
            removed = changes.removed.len(),
            changed = changes.changed.len(),
            unchanged = changes.unchanged,
            nodes = state.config.nodes.len(),
            "discovery applied{}",
            describe(&changes)
        ),
    }
}

/// ": added b; removed c; changed d", or nothing.
fn describe(c: &Changes) -> String {
    let mut parts = Vec::new();
    for (what, names) in [
        ("added", &c.added),
        ("removed", &c.removed),
        ("changed", &c.changed),
    ] {
        if names.is_empty() {
            continue;
        }
        let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
        let more = names.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        parts.push(format!("{what} {}{tail}", shown.join(", ")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

/// Puts a backend for `new`'s node list under the running nodes, with the
/// same backend settings: the simulated one keeps each machine's state,
/// and the Nova backend is reconfigured in place, so the nodes that did
/// not change keep answering from what it knows.
async fn restart_backend(state: &mut State, new: &Config) {
    match (&mut state.backend, &new.backend) {
        (Running::Simulated(old), BackendConfig::Simulated(s)) => {
            let sim = old.reloaded(s.clone(), &new.simulated_nodes());
            state.backend = Running::Simulated(std::sync::Arc::new(sim));
        }
        (Running::Nova { nova, tasks, stop }, BackendConfig::Nova(n)) => {
            *nova = nova.reconfigure(new.nova_nodes(n), tasks, stop).await;
        }
        // Only reached with the backend section unchanged, so the kinds
        // match; should they not, a full switch is the safe answer.
        _ => {
            if switch_backend(state, new).await {
                state.move_consoles();
            }
        }
    }
}

/// Replaces the backend with one for `new.backend`: the nodes answer
/// "node busy" (and `/healthz` 503) while the old one drains, its pending
/// work moves to the new state directory if that changed, and the new one
/// opens it. False, with the running configuration's backend started
/// again and its work where it was, if the new one cannot start.
async fn switch_backend(state: &mut State, new: &Config) -> bool {
    let mut old = std::mem::replace(&mut state.backend, Running::Switching);
    state.publish();
    old.stop().await;
    drop(old);
    let dirs = match (&state.config.backend, &new.backend) {
        (BackendConfig::Nova(o), BackendConfig::Nova(n))
            if o.settings.state_dir != n.settings.state_dir =>
        {
            Some((o.settings.state_dir.clone(), n.settings.state_dir.clone()))
        }
        _ => None,
    };
    let mut carried = false;
    if let Some((from, to)) = &dirs {
        match store::carry_over(from, to) {
            Ok(n) => {
                carried = true;
                if n > 0 {
                    info!(records = n, from = %from.display(), to = %to.display(), "pending work moved to the new state directory");
                }
            }
            Err(e) => {
                error!(error = %e, "reload refused");
                restore_backend(state).await;
                return false;
            }
        }
    }
    match Running::start(new, state.sources.recorder()) {
        Ok(b) => {
            state.backend = b;
            true
        }
        Err(e) => {
            error!(error = %e, "reload refused: the new backend cannot start; keeping the running configuration");
            if let (true, Some((from, to))) = (carried, &dirs)
                && let Err(e) = store::carry_over(to, from)
            {
                error!(error = %e, "the pending work stays in the new state directory");
            }
            restore_backend(state).await;
            false
        }
    }
}

/// Starts the running configuration's backend again after a refused
/// switch, and points the nodes and their consoles at it.
async fn restore_backend(state: &mut State) {
    match Running::start(&state.config, state.sources.recorder()) {
        Ok(b) => state.backend = b,
        Err(e) => error!(error = %e,
            "the running configuration's backend cannot start again; the nodes answer 'node busy' and /healthz 503"),
    }
    state.publish();
    state.move_consoles();
}

/// Flushes the routes of nodes gone or changed, installs the new ones.
async fn update_routes(state: &mut State, old: Vec<crate::routing::RouteSpec>) {
    let specs = state.config.route_specs();
    if specs == old {
        return;
    }
    let result = match state.routes.as_mut() {
        Some(r) => r.update(specs).await,
        None => match Installation::start(specs, state.config.routing.keep_routes).await {
            Ok(r) => {
                state.routes = Some(r);
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        error!(error = %e, "reload: routes not all in place");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, port: u16) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            server: name.into(),
            route: None,
            network_boot: None,
            ipxe_image: None,
            efi: None,
            redfish_port: None,
            origin: crate::config::Origin::Configured,
        }
    }

    #[test]
    fn changes_are_found_by_name() {
        let old = [node("a", 1), node("c", 3), node("d", 4)];
        let new = [node("a", 1), node("b", 2), node("d", 5)];
        let c = Changes::between(&old, &new);
        assert_eq!(c.added, BTreeSet::from(["b".to_string()]));
        assert_eq!(c.removed, BTreeSet::from(["c".to_string()]));
        assert_eq!(c.changed, BTreeSet::from(["d".to_string()]));
        assert_eq!(c.unchanged, 1);
        assert_eq!(describe(&c), ": added b; removed c; changed d");
        assert_eq!(describe(&Changes::between(&old, &old)), "");
    }
}
