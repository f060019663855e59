//! `novabmc network apply | show | destroy`: the BMC network provisioned
//! through the OpenStack API from the `[network]` section, in one of the
//! two layouts of the README's "Addresses and routing":
//!
//! - (a) `one-nic` ([`one_nic`]): every node address on the BMC
//!   instance's one NIC, each reserved by a port, allowed as an address
//!   pair of the instance's port;
//! - (b) `nic-per-node` ([`nic_per_node`]): a network, subnet, router
//!   interface and port per node, the port attached to the BMC instance,
//!   and the node's policy route written to the routes file
//!   ([`routes_file`]) that `serve` reads with its configuration.
//!
//! On the BMC instance itself the node addresses are configured on its
//! NICs too ([`host`]), and in both layouts the iPXE images the network
//! boot modes need are uploaded to Glance ([`images`]).
//!
//! Everything made is named, described and tagged as novabmc's
//! ([`resources`]), so every step finds before it creates: `apply` run
//! twice makes no change the second time, a run stopped by a quota or a
//! refusal ([`cloud::NetError`], naming the resource and the limit) is
//! finished by the next, and `destroy` ([`destroy`]) removes exactly what
//! novabmc made. `apply --dry-run` prints the calls it would make and
//! makes none; `show` prints what exists against what the configuration
//! wants ([`report`]). The starting point of every run (the BMC instance,
//! novabmc's resources, whether this is the BMC instance) is
//! [`context`].

pub mod cloud;
pub mod context;
pub mod destroy;
pub mod host;
pub mod images;
pub mod nic_per_node;
pub mod one_nic;
pub mod report;
pub mod resources;
pub mod routes_file;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::backend::nova::client::NovaClient;
use crate::backend::nova::cloud as clouds;
use crate::config::{BackendConfig, Config, Layout};
use cloud::{Cloud, Mode, NetError};
use context::{Node, Run};
use routes_file::Entry;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Make what is missing (or, dry, print the calls).
    Apply {
        /// Print the calls, make none.
        dry_run: bool,
        /// How long to wait for hot-plugged NICs.
        wait: Duration,
    },
    /// Print what exists against what is wanted.
    Show,
    /// Remove what novabmc made (or, dry, print the calls).
    Destroy {
        /// Print the calls, make none.
        dry_run: bool,
    },
}

/// Runs `action` for `config`; the report goes to standard output, and a
/// failure is the error (after the report of what was done before it).
pub async fn run(config: &Config, path: &std::path::Path, action: Action) -> Result<()> {
    let Some(net) = &config.network else {
        bail!(
            "{} has no [network] section: nothing to provision",
            path.display()
        );
    };
    let BackendConfig::Nova(nova) = &config.backend else {
        bail!("[network] needs backend.type = \"nova\"");
    };
    let cloud_config = clouds::load(&nova.settings.cloud)
        .map_err(|e| anyhow::anyhow!("cloud configuration: {e}"))?;
    let client = NovaClient::new(cloud_config, nova.settings.request_timeout);
    let (mode, wait) = match action {
        Action::Apply { dry_run, wait } => (if dry_run { Mode::DryRun } else { Mode::Apply }, wait),
        Action::Show => (Mode::Show, Duration::ZERO),
        Action::Destroy { dry_run } => (
            if dry_run { Mode::DryRun } else { Mode::Apply },
            Duration::ZERO,
        ),
    };
    // Discovered nodes are provisioned like configured ones; a dry run or
    // show records no address (as `check` does not).
    let resolved;
    let config = match (&config.discovery, action) {
        (Some(_), Action::Apply { .. } | Action::Show) => {
            resolved = crate::discovery::resolve(config, mode == Mode::Apply).await;
            if let Some(e) = &resolved.error {
                bail!("discovery: {e}");
            }
            for n in &resolved.notes {
                println!("discovery: {n}");
            }
            &resolved.config
        }
        _ => config,
    };
    let mut run = Run::start(Cloud::new(client, mode), net, wait)
        .await
        .context("cannot read the starting point")?;
    let outcome = match action {
        Action::Destroy { .. } => destroy::destroy(&mut run).await,
        Action::Apply { .. } | Action::Show => provision(&mut run, config).await,
    };
    print!("{}", run.report);
    for n in &run.notes {
        println!("{n}");
    }
    // Every change goes through the cloud's log (tags added to what a
    // stopped run left untagged included); the report counts the rest.
    let changes = run.report.changes().max(run.cloud.changes.len());
    match (action, changes) {
        (Action::Show, 0) => println!("everything is in place"),
        (Action::Show, n) => println!("{n} to make or change: run `novabmc network apply`"),
        (_, 0) if outcome.is_ok() => println!("nothing to do"),
        _ => {}
    }
    outcome.map_err(anyhow::Error::from)
}

/// `apply` and `show`: the layout's resources, the routes file, the
/// images.
async fn provision(run: &mut Run<'_>, config: &Config) -> Result<(), NetError> {
    let nodes: Vec<Node> = config
        .nodes
        .iter()
        .map(|n| Node {
            name: n.name.clone(),
            address: n.listen.ip(),
        })
        .collect();
    let path = run.config.routes_file.clone();
    let previous = routes_file::read(&path)?;
    let (routes, error) = match &run.config.layout {
        Layout::OneNic { .. } => (BTreeMap::new(), one_nic::apply(run, &nodes).await),
        Layout::NicPerNode { .. } => {
            let reserved: BTreeSet<u32> = config
                .nodes
                .iter()
                .filter_map(|n| n.route.as_ref().map(|r| r.table))
                .collect();
            nic_per_node::apply(run, &nodes, &previous, &reserved).await
        }
    };
    // Nodes that did not get as far keep what the file said; nodes no
    // longer configured leave it.
    let mut entries: BTreeMap<String, Entry> = previous
        .iter()
        .filter(|(n, _)| nodes.iter().any(|x| &x.name == *n))
        .filter(|_| matches!(run.config.layout, Layout::NicPerNode { .. }))
        .map(|(n, e)| (n.clone(), e.clone()))
        .collect();
    for (node, e) in &routes {
        let what = format!(
            "route table {} via {}{}",
            e.table,
            e.gateway,
            e.interface
                .as_ref()
                .map(|i| format!(" dev {i}"))
                .unwrap_or_default()
        );
        if previous.get(node) == Some(e) {
            run.report.present(node, what, "in the routes file");
        } else {
            run.report.made(node, what, "in the routes file");
        }
        entries.insert(node.clone(), e.clone());
    }
    if entries != previous {
        let text = routes_file::render(&run.config.name, &entries);
        match run.cloud.mode() {
            Mode::Apply => {
                routes_file::write(&path, &text)?;
                run.notes.push(format!(
                    "routes written to {}: reload serve (systemctl reload novabmc, or SIGHUP) \
                     to install them",
                    path.display()
                ));
            }
            Mode::DryRun => run.notes.push(format!(
                "would write the routes file {}:\n{text}",
                path.display()
            )),
            Mode::Show => {}
        }
    }
    unwanted(run, &nodes);
    if let Some(e) = error {
        return Err(e);
    }
    images::apply(run).await
}

/// Reports what novabmc made for nodes the configuration no longer has.
fn unwanted(run: &mut Run<'_>, nodes: &[Node]) {
    let wanted: BTreeSet<String> = nodes.iter().map(|n| run.marks.node(&n.name)).collect();
    let shared = run.marks.prefix.clone();
    let mut lines = Vec::new();
    let mut note = |kind: &str, name: &str| {
        if !wanted.contains(name) && name != shared {
            lines.push(format!("{kind} {name}"));
        }
    };
    for n in &run.ours.networks {
        note("network", &n.common.name);
    }
    for s in &run.ours.subnets {
        note("subnet", &s.common.name);
    }
    for p in &run.ours.ports {
        note("port", &p.common.name);
    }
    let router = match &run.config.layout {
        Layout::NicPerNode { router, .. } => Some(router.clone()),
        Layout::OneNic { .. } => None,
    };
    for r in &run.ours.routers {
        if Some(&r.common.name) != router.as_ref() {
            lines.push(format!("router {}", r.common.name));
        }
    }
    for l in lines {
        run.report.unwanted("unwanted", l);
    }
}
