//! Discovery (`[discovery]`): every server of the cloud that the selector
//! picks is served as a node named after it, with the settings of
//! `[discovery.defaults]` and a BMC address from `[discovery.address]`,
//! without a `[nodes.NAME]` entry for each.
//!
//! One look lists the servers ([`look`]: one listing, filtered by tag in
//! Nova when a tag selects) and works out the nodes ([`plan`]): servers a
//! `[nodes.NAME]` entry names (by UUID or name) are that entry's, which
//! wins; the others are named ([`naming`]) and given addresses
//! ([`crate::addressing`]), which are recorded in their metadata. The result is the
//! configuration with the discovered nodes beside the configured ones
//! ([`crate::config::Config::with_discovered`]).
//!
//! `serve` looks every `refresh` seconds ([`crate::daemon::discovery`])
//! and hands each new node set to the daemon as a reload, so a
//! server that appears or goes is started or stopped exactly as a node
//! added to or removed from the file would be. `check` and `export` look
//! once ([`resolve`]); `check` writes nothing, `export` records the
//! addresses it hands out, so `serve` gives the same ones.
//!
//! - [`naming`]: the discovered nodes' names.
//!
//! Which servers are picked is the configuration's
//! ([`crate::config::discovery::Selector`]); where their addresses come
//! from, [`crate::addressing`]'s.

pub mod naming;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::addressing::{AddressNote, Candidate, Cloud, Record};
use crate::backend::nova::client::{ListedServer, NovaClient, NovaError};
use crate::backend::nova::cloud;
use crate::config::{BackendConfig, Config, DiscoveryConfig, NodeConfig, Origin};

/// What one look found worth telling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A configured node serves the server; discovery leaves it alone.
    Configured {
        /// The server's name.
        name: String,
        /// Its UUID.
        server: String,
        /// The configured node.
        node: String,
    },
    /// The server's node name is not its sanitised name.
    Renamed {
        /// The server's name.
        name: String,
        /// Its UUID.
        server: String,
        /// The node name it got.
        node: String,
        /// Why.
        because: String,
    },
    /// About its address.
    Address(AddressNote),
    /// Its address could not be recorded in its metadata.
    NotRecorded {
        /// The server's name.
        name: String,
        /// Its UUID.
        server: String,
        /// The metadata key.
        key: &'static str,
        /// Why.
        error: String,
    },
}

impl Note {
    /// Whether the server is left unserved.
    pub fn is_problem(&self) -> bool {
        matches!(self, Note::Address(a) if a.is_problem())
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Configured { name, server, node } => write!(
                f,
                "server {name} ({server}) is node {node} of the configuration file, \
                 which wins over discovery"
            ),
            Note::Renamed {
                name,
                server,
                node,
                because,
            } => write!(
                f,
                "server {name} ({server}) is served as node {node}: {because}"
            ),
            Note::Address(a) => a.fmt(f),
            Note::NotRecorded {
                name,
                server,
                key,
                error,
            } => write!(
                f,
                "server {name} ({server}): cannot record its BMC address in its metadata \
                 ({key}): {error}"
            ),
        }
    }
}

/// What one look makes of the servers found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The discovered nodes, in name order.
    pub nodes: Vec<NodeConfig>,
    /// The addresses given, by server UUID.
    pub addresses: BTreeMap<String, IpAddr>,
    /// Metadata to write.
    pub records: Vec<Record>,
    /// What to tell.
    pub notes: Vec<Note>,
}

/// The servers `discovery` picks: one listing (by tag in Nova when a tag
/// selects), then every selector checked here.
pub async fn look(
    client: &NovaClient,
    discovery: &DiscoveryConfig,
) -> Result<Vec<ListedServer>, NovaError> {
    let mut servers = client
        .list_for_discovery(discovery.selector.tag.as_deref())
        .await?;
    servers.retain(|s| discovery.selector.matches(s));
    Ok(servers)
}

/// The nodes `servers` make under `config` (its configured nodes win);
/// `previous` is what this process gave each server last time; `cloud`
/// is where the port modes read (and make) Neutron ports.
pub async fn plan(
    config: &Config,
    discovery: &DiscoveryConfig,
    servers: &[ListedServer],
    previous: &HashMap<String, IpAddr>,
    cloud: Cloud<'_>,
) -> Plan {
    let mut out = Plan::default();
    let configured: Vec<&NodeConfig> = config.configured_nodes().collect();
    let mut picked: Vec<&ListedServer> = Vec::with_capacity(servers.len());
    for s in servers {
        match configured
            .iter()
            .find(|n| n.server == s.id || n.server == s.name)
        {
            Some(n) => out.notes.push(Note::Configured {
                name: s.name.clone(),
                server: s.id.clone(),
                node: n.name.clone(),
            }),
            None => picked.push(s),
        }
    }
    let taken: BTreeSet<String> = configured.iter().map(|n| n.name.clone()).collect();
    let (names, renamed) = naming::assign(
        picked.iter().map(|s| (s.id.as_str(), s.name.as_str())),
        &taken,
    );
    let by_id: HashMap<&str, &ListedServer> = picked.iter().map(|s| (s.id.as_str(), *s)).collect();
    for r in renamed {
        out.notes.push(Note::Renamed {
            name: by_id
                .get(r.server.as_str())
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            server: r.server,
            node: r.node,
            because: r.because,
        });
    }
    let candidates: Vec<Candidate<'_>> = picked
        .iter()
        .map(|s| Candidate {
            id: &s.id,
            name: &s.name,
            created: &s.created,
            metadata: &s.metadata,
            previous: previous.get(&s.id).copied(),
        })
        .collect();
    let assignment = discovery
        .address
        .assign(&candidates, &reserved(config, discovery), cloud)
        .await;
    let d = &discovery.defaults;
    for s in &picked {
        let (Some(ip), Some(name)) = (assignment.addresses.get(&s.id), names.get(&s.id)) else {
            continue;
        };
        out.nodes.push(NodeConfig {
            name: name.clone(),
            listen: SocketAddr::new(*ip, d.port),
            server: s.id.clone(),
            route: d.route.clone(),
            network_boot: d.network_boot,
            ipxe_image: d.ipxe_image.clone(),
            efi: d.efi,
            redfish_port: d.redfish_port,
            origin: Origin::Discovered,
        });
    }
    out.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    out.addresses = assignment.addresses;
    out.records = assignment.records;
    out.notes
        .extend(assignment.notes.into_iter().map(Note::Address));
    out
}

/// Addresses no discovered node may have, and whose they are: the
/// configured nodes', the Redfish aggregate listener's, the shared
/// route's gateway.
fn reserved(config: &Config, discovery: &DiscoveryConfig) -> BTreeMap<IpAddr, String> {
    let mut r = BTreeMap::new();
    for n in config.configured_nodes() {
        r.insert(n.listen.ip(), format!("the address of node {}", n.name));
    }
    if let Some(a) = config.redfish.as_ref().and_then(|r| r.aggregate) {
        r.insert(a.ip(), "the address of redfish.aggregate".to_string());
    }
    if let Some(route) = &discovery.defaults.route {
        r.insert(
            route.gateway,
            "the gateway of discovery.defaults.route".to_string(),
        );
    }
    r
}

/// Writes `records`; the ones that failed, as notes.
pub async fn record(
    client: &NovaClient,
    records: &[Record],
    names: &HashMap<&str, &str>,
) -> Vec<Note> {
    let mut failed = Vec::new();
    for r in records {
        if let Err(e) = client.set_metadata(&r.server, r.key, &r.value).await {
            failed.push(Note::NotRecorded {
                name: names
                    .get(r.server.as_str())
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                server: r.server.clone(),
                key: r.key,
                error: e.to_string(),
            });
        }
    }
    failed
}

/// One look, for `check` and `export`.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The configuration with the discovered nodes.
    pub config: Config,
    /// Servers the selector picked.
    pub matched: usize,
    /// What the look found worth telling.
    pub notes: Vec<Note>,
    /// Why the cloud could not be looked at, if it could not.
    pub error: Option<String>,
}

/// Looks once: `config` with its discovered nodes (or as it is, without
/// `[discovery]`); with `write`, the addresses given are recorded.
pub async fn resolve(config: &Config, write: bool) -> Resolved {
    let mut out = Resolved {
        config: config.clone(),
        matched: 0,
        notes: Vec::new(),
        error: None,
    };
    let (Some(d), BackendConfig::Nova(nova)) = (&config.discovery, &config.backend) else {
        return out;
    };
    let client = match cloud::load(&nova.settings.cloud) {
        Ok(c) => NovaClient::new(c, nova.settings.request_timeout),
        Err(e) => {
            out.error = Some(format!("cloud configuration: {e}"));
            return out;
        }
    };
    let servers = match look(&client, d).await {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(format!(
                "cannot list the servers to discover ({}): {e}",
                d.selector.describe()
            ));
            return out;
        }
    };
    let cloud = Cloud {
        client: Some(&client),
        write,
    };
    let plan = plan(config, d, &servers, &HashMap::new(), cloud).await;
    out.matched = servers.len();
    out.notes = plan.notes;
    if write {
        let names: HashMap<&str, &str> = servers
            .iter()
            .map(|s| (s.id.as_str(), s.name.as_str()))
            .collect();
        out.notes
            .extend(record(&client, &plan.records, &names).await);
    }
    out.config = config.with_discovered(plan.nodes);
    out
}

#[cfg(test)]
mod tests;
