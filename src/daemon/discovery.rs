//! Discovery while serving ([`crate::discovery`] looks, this runs it):
//! the task between the configuration file and the daemon. It looks at the cloud every `refresh` seconds and whenever
//! the file is loaded again (SIGHUP), and hands the daemon the file's
//! configuration with the discovered nodes whenever that differs from
//! what it handed last ([`crate::daemon::reload::Update`]); the daemon
//! applies it as any reload, so sockets, Redfish listeners, consoles,
//! routes and the state directory behave as for an edited file.
//!
//! What it logs, once each: a server served (its node and address), a
//! server gone (its node stops), every [`Note`] while it holds (a server
//! a configured node serves, a renaming, an address reassigned, a pool
//! exhausted, a record that failed), and the cloud becoming unreachable
//! and answering again. While the cloud cannot be listed nothing
//! changes: the discovered nodes keep serving, and a file loaded then is
//! applied with the servers last seen.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::reload::{Cause, Update};
use crate::addressing::Cloud;
use crate::backend::nova::client::{ListedServer, NovaClient};
use crate::backend::nova::cloud::{self, CloudSource};
use crate::backend::telemetry::CallRecorder;
use crate::config::{BackendConfig, Config, NodeConfig, Origin};
use crate::discovery::{Note, look, plan, record};

/// A discovered node being served, as the log names it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Served {
    server: String,
    node: String,
    listen: SocketAddr,
}

/// What the task keeps between looks.
#[derive(Default)]
struct Watch {
    /// The client, and the cloud and timeout it was made for.
    client: Option<(CloudSource, Duration, NovaClient)>,
    /// The address each server was given last.
    previous: HashMap<String, IpAddr>,
    /// The servers of the last listing that worked.
    last_servers: Option<Vec<ListedServer>>,
    /// Notes logged, so each is logged once while it holds.
    told: HashSet<String>,
    /// Whether the last look failed (logged once).
    unreachable: bool,
    /// Discovered nodes handed to the daemon, by server UUID.
    served: BTreeMap<String, Served>,
    /// The node set handed to the daemon last.
    sent: Vec<NodeConfig>,
    /// Where the client's calls are counted (the daemon's metrics).
    recorder: Option<Arc<dyn CallRecorder>>,
}

/// Runs until the daemon stops taking updates: `base` is the
/// configuration the daemon started with (its nodes served already),
/// `files` the configurations SIGHUP loads, `to` the daemon's reloads.
pub async fn run(
    mut base: Config,
    mut files: Option<mpsc::Receiver<Config>>,
    to: mpsc::Sender<Update>,
    recorder: Arc<dyn CallRecorder>,
) {
    let mut w = Watch {
        sent: base.nodes.clone(),
        recorder: Some(recorder),
        ..Watch::default()
    };
    let mut cause = Cause::Discovery;
    loop {
        if let Some(config) = w.look(&base, cause == Cause::File).await
            && to.send(Update { config, cause }).await.is_err()
        {
            return;
        }
        let wait = base.discovery.as_ref().map(|d| d.refresh);
        let next_file = async {
            match files.as_mut() {
                Some(f) => f.recv().await,
                None => std::future::pending().await,
            }
        };
        let tick = async {
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            file = next_file => match file {
                Some(c) => {
                    base = c;
                    cause = Cause::File;
                }
                None => {
                    files = None;
                    cause = Cause::Discovery;
                }
            },
            () = tick => cause = Cause::Discovery,
            () = to.closed() => return,
        }
    }
}

impl Watch {
    /// One look: the configuration to hand the daemon, if there is one
    /// (always after a file load, else when the node set changed).
    async fn look(&mut self, base: &Config, from_file: bool) -> Option<Config> {
        let (Some(d), BackendConfig::Nova(nova)) = (&base.discovery, &base.backend) else {
            for (id, s) in std::mem::take(&mut self.served) {
                info!(server = %s.server, id = %id, node = %s.node,
                    "discovery is off: the discovered node stops");
            }
            return self.hand(base.clone(), from_file);
        };
        let client = self.client(&nova.settings.cloud, nova.settings.request_timeout);
        let listed = match client {
            Ok(c) => look(c, d).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("cloud configuration: {e}")),
        };
        let servers = match listed {
            Ok(s) => {
                if std::mem::take(&mut self.unreachable) {
                    info!("discovery: the cloud answers again");
                }
                self.last_servers = Some(s.clone());
                s
            }
            Err(e) => {
                if !std::mem::replace(&mut self.unreachable, true) {
                    warn!(error = %e, selector = %d.selector.describe(),
                        "discovery: cannot list the servers; the discovered nodes keep serving as they are until the cloud answers");
                }
                if !from_file {
                    return None;
                }
                self.last_servers.clone().unwrap_or_default()
            }
        };
        let cloud = Cloud {
            client: self
                .client
                .as_ref()
                .map(|(_, _, c)| c)
                .filter(|_| !self.unreachable),
            write: true,
        };
        let mut plan = plan(base, d, &servers, &self.previous, cloud).await;
        let names: HashMap<&str, &str> = servers
            .iter()
            .map(|s| (s.id.as_str(), s.name.as_str()))
            .collect();
        // Written while the cloud answers; a record that fails is tried
        // again at the next look, the address held meanwhile (`previous`).
        if !self.unreachable
            && let Some((_, _, client)) = &self.client
        {
            plan.notes
                .extend(record(client, &plan.records, &names).await);
        }
        self.tell(&plan.notes);
        self.previous = plan.addresses.into_iter().collect();
        self.log_changes(&plan.nodes, &names);
        self.hand(base.with_discovered(plan.nodes), from_file)
    }

    /// The client for `source`, made again when the file names another
    /// cloud or timeout.
    fn client(&mut self, source: &CloudSource, timeout: Duration) -> Result<&NovaClient, String> {
        let current = matches!(&self.client, Some((s, t, _)) if s == source && *t == timeout);
        if !current {
            let config = cloud::load(source)?;
            let mut client = NovaClient::new(config, timeout);
            if let Some(r) = &self.recorder {
                client = client.recording(r.clone());
            }
            self.client = Some((source.clone(), timeout, client));
        }
        match &self.client {
            Some((_, _, c)) => Ok(c),
            None => Err("no cloud client".into()),
        }
    }

    /// `config` if the daemon should have it.
    fn hand(&mut self, config: Config, from_file: bool) -> Option<Config> {
        if !from_file && config.nodes == self.sent {
            return None;
        }
        self.sent = config.nodes.clone();
        Some(config)
    }

    /// Logs each note not logged yet; a note that no longer holds is
    /// forgotten, so it is logged again should it come back.
    fn tell(&mut self, notes: &[Note]) {
        let now: HashSet<String> = notes.iter().map(ToString::to_string).collect();
        for n in notes {
            let text = n.to_string();
            if self.told.contains(&text) {
                continue;
            }
            match n {
                Note::Configured { .. } => info!("discovery: {text}"),
                _ if n.is_problem() => error!("discovery: {text}"),
                _ => warn!("discovery: {text}"),
            }
        }
        self.told = now;
    }

    /// One line per server that starts or stops being served, or moves.
    fn log_changes(&mut self, nodes: &[NodeConfig], names: &HashMap<&str, &str>) {
        let mut now: BTreeMap<String, Served> = BTreeMap::new();
        for n in nodes.iter().filter(|n| n.origin == Origin::Discovered) {
            let server = names.get(n.server.as_str()).copied().unwrap_or_default();
            let s = Served {
                server: server.to_string(),
                node: n.name.clone(),
                listen: n.listen,
            };
            match self.served.get(&n.server) {
                None => info!(server = %s.server, id = %n.server, node = %s.node,
                    address = %s.listen, "discovered server served"),
                Some(old) if *old != s => info!(server = %s.server, id = %n.server,
                    node = %s.node, address = %s.listen, was_node = %old.node,
                    was_address = %old.listen, "discovered server served anew"),
                Some(_) => {}
            }
            now.insert(n.server.clone(), s);
        }
        for (id, old) in &self.served {
            if !now.contains_key(id) {
                info!(server = %old.server, id = %id, node = %old.node, address = %old.listen,
                    "discovered server no longer served (deleted, or no longer selected)");
            }
        }
        self.served = now;
    }
}
