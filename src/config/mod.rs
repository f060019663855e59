//! The configuration file: one TOML file, with `NOVABMC_` environment
//! variables overriding any key (`NOVABMC_BMC__MAX_SESSIONS=16`,
//! `NOVABMC_NODES__RACK1__PORT=6240`; a double underscore separates
//! levels, and only the sections below are read from the environment).
//!
//! Loading has two steps. figment reads and merges the sources into the raw
//! structures of each section (unknown keys are errors, so a typo never
//! passes silently); then [`Config::load`] has each section check its own
//! values and composes the validated [`Config`]. Every error names the key
//! and where it came from: `users.admin.password: longer than 20 bytes (in
//! novabmc.toml)`.
//!
//! - [`bmc`]: the engine settings all nodes share;
//! - [`users`]: who may log in, and with which privilege;
//! - [`backend`]: the cloud (simulated or Nova);
//! - [`nodes`]: each node's address, port and server;
//! - [`discovery`]: the servers served without a `[nodes.NAME]` each;
//! - [`routing`]: policy routes, per node and for all of them;
//! - [`network`]: what `novabmc network` provisions in Neutron, and the
//!   routes file it writes for `serve`;
//! - [`metrics`]: the Prometheus endpoint;
//! - [`redfish`]: the Redfish service beside IPMI;
//! - [`secret`]: passwords and keys inline, in files or in variables;
//! - [`error`]: the errors, and how they name keys and sources.
//!
//! Secrets (passwords, the BMC key) are never logged.

pub mod backend;
pub mod bmc;
pub mod discovery;
pub mod error;
pub mod metrics;
pub mod network;
pub mod nodes;
pub mod redfish;
pub mod routing;
pub mod secret;
pub mod users;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use novabmc_proto::SessionBudget;
use novabmc_proto::session::budget::DEFAULT_RESERVE;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::backend::nova::NovaNode;
use crate::backend::simulated::SimulatedNode;
use crate::routing::RouteSpec;
use error::Checker;

pub use backend::{BackendConfig, NovaConfig, SimulatedConfig};
pub use bmc::{BmcSettings, DEFAULT_MAX_SESSIONS_TOTAL};
pub use discovery::{DiscoveryConfig, NamePattern, NodeDefaults, Selector};
pub use error::{ConfigError, LoadError};
pub use metrics::MetricsConfig;
pub use network::{ImageSpec, Layout, NetworkConfig};
pub use nodes::{DEFAULT_PORT, NodeConfig, Origin};
pub use redfish::RedfishConfig;
pub use routing::{DEFAULT_RULE_PRIORITY, RESERVED_TABLES, RouteConfig, RoutingConfig};
pub use secret::{Secret, SecretBytes, SecretString};
pub use users::{UserConfig, parse_privilege};

/// Environment variables override keys only under these sections, so other
/// `NOVABMC_` variables (`NOVABMC_LOG`, secrets named in the file) are not
/// mistaken for configuration.
const SECTIONS: [&str; 9] = [
    "bmc__",
    "users__",
    "backend__",
    "nodes__",
    "discovery__",
    "routing__",
    "metrics__",
    "redfish__",
    "network__",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    bmc: bmc::RawBmc,
    #[serde(default)]
    users: BTreeMap<String, users::RawUser>,
    #[serde(default)]
    backend: backend::RawBackend,
    #[serde(default)]
    nodes: BTreeMap<String, nodes::RawNode>,
    #[serde(default)]
    discovery: Option<discovery::RawDiscovery>,
    #[serde(default)]
    routing: routing::RawRouting,
    #[serde(default)]
    metrics: Option<metrics::RawMetrics>,
    #[serde(default)]
    redfish: Option<redfish::RawRedfish>,
    #[serde(default)]
    network: Option<network::RawNetwork>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Engine settings.
    pub bmc: BmcSettings,
    /// Users, in name order.
    pub users: Vec<UserConfig>,
    /// The cloud.
    pub backend: BackendConfig,
    /// Nodes, in name order: the `[nodes.NAME]` entries as loaded; once
    /// discovery has looked ([`Config::with_discovered`]), the
    /// discovered ones too.
    pub nodes: Vec<NodeConfig>,
    /// Discovery, if configured.
    pub discovery: Option<DiscoveryConfig>,
    /// Routing settings.
    pub routing: RoutingConfig,
    /// The metrics endpoint, if configured.
    pub metrics: Option<MetricsConfig>,
    /// The Redfish service, if configured.
    pub redfish: Option<RedfishConfig>,
    /// What `novabmc network` provisions, if configured.
    pub network: Option<NetworkConfig>,
}

impl Config {
    /// Loads `path`, applies `NOVABMC_` overrides, and validates.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        // figment silently ignores a missing file; a BMC without its
        // configuration must not start, so check first.
        std::fs::metadata(path).map_err(|error| LoadError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let figment = Figment::new().merge(Toml::file_exact(path)).merge(
            Env::prefixed("NOVABMC_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    SECTIONS.iter().any(|s| key.starts_with(s))
                })
                .split("__")
                .lowercase(true),
        );
        Self::from_figment(&figment)
    }

    /// Validates whatever `figment` holds.
    pub fn from_figment(figment: &Figment) -> Result<Config, LoadError> {
        let raw: RawConfig = figment
            .extract()
            .map_err(|e| LoadError::Parse(error::format_figment_error(e)))?;
        let c = Checker { figment };
        let mut config = Self::validate(raw, &c)?;
        // The routes `novabmc network apply` wrote, read at every load so
        // that a reload picks up a new apply.
        if let Some(n) = &mut config.network {
            n.routes = network::apply_routes_file(&n.routes_file, &mut config.nodes)?;
            routing::check_shared_routes(&config.nodes, &c)?;
        }
        Ok(config)
    }

    /// Each section checks its own values; the nodes are checked against
    /// the backend they use, and the session cap against the node count.
    fn validate(raw: RawConfig, c: &Checker<'_>) -> Result<Config, ConfigError> {
        let bmc = bmc::check(raw.bmc, raw.nodes.len(), c)?;
        let users = users::check(raw.users, c)?;
        let backend = backend::check(raw.backend, c)?;
        let nodes = nodes::check(raw.nodes, &backend, raw.discovery.is_some(), c)?;
        let discovery = raw
            .discovery
            .map(|d| discovery::check(d, &backend, &nodes, c))
            .transpose()?;
        let routing = routing::check(raw.routing);
        let metrics = raw.metrics.map(|m| metrics::check(m, c)).transpose()?;
        let state_dir = match &backend {
            BackendConfig::Nova(n) => Some(n.settings.state_dir.as_path()),
            BackendConfig::Simulated(_) => None,
        };
        let redfish = raw
            .redfish
            .map(|r| redfish::check(r, state_dir, c))
            .transpose()?;
        if let Some(r) = &redfish {
            redfish::check_addresses(r, &nodes, c)?;
        }
        let network = raw
            .network
            .map(|n| network::check(n, &backend, &nodes, c))
            .transpose()?;
        Ok(Config {
            bmc,
            users,
            backend,
            nodes,
            discovery,
            routing,
            metrics,
            redfish,
            network,
        })
    }

    /// This configuration with `discovered` nodes beside the configured
    /// ones (any discovered before are replaced), all in name order.
    /// Discovery gives them names and addresses no configured node has
    /// ([`crate::discovery`]), so nothing is validated again.
    pub fn with_discovered(&self, mut discovered: Vec<NodeConfig>) -> Config {
        let mut c = self.clone();
        c.nodes.retain(|n| n.origin == Origin::Configured);
        // A discovered node's own route in the routes file `novabmc
        // network apply` wrote wins over the one all discovered nodes share.
        if let Some(routes) = self.network.as_ref().map(|n| &n.routes) {
            for n in &mut discovered {
                if let Some(r) = routes.get(&n.name)
                    && r.gateway.is_ipv4() == n.listen.ip().is_ipv4()
                    && r.gateway != n.listen.ip()
                {
                    n.route = Some(r.clone());
                }
            }
        }
        c.nodes.extend(discovered);
        c.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        c
    }

    /// The configured nodes alone.
    pub fn configured_nodes(&self) -> impl Iterator<Item = &NodeConfig> {
        self.nodes.iter().filter(|n| n.origin == Origin::Configured)
    }

    /// The nodes as the Nova backend needs them (defaults applied).
    pub fn nova_nodes(&self, nova: &NovaConfig) -> Vec<NovaNode> {
        self.nodes
            .iter()
            .map(|n| NovaNode {
                name: n.name.clone(),
                server: n.server.clone(),
                network_boot: n.network_boot.unwrap_or(nova.network_boot),
                ipxe_image: n.ipxe_image.clone().or_else(|| nova.ipxe_image.clone()),
                efi: n.efi,
            })
            .collect()
    }

    /// The nodes as the simulated backend needs them.
    pub fn simulated_nodes(&self) -> Vec<SimulatedNode> {
        self.nodes
            .iter()
            .map(|n| SimulatedNode {
                name: n.name.clone(),
                server: n.server.clone(),
                efi: n.efi,
            })
            .collect()
    }

    /// What every node with a `[nodes.NAME.route]` wants installed, in
    /// node order.
    pub fn route_specs(&self) -> Vec<RouteSpec> {
        self.nodes
            .iter()
            .filter_map(|n| {
                let r = n.route.as_ref()?;
                Some(RouteSpec {
                    node: n.name.clone(),
                    address: n.listen.ip(),
                    table: r.table,
                    gateway: r.gateway,
                    interface: r.interface.clone(),
                    priority: r.priority,
                })
            })
            .collect()
    }

    /// The engine configuration all nodes share.
    pub fn engine_config(&self) -> novabmc_proto::BmcConfig {
        let mut users = novabmc_proto::Users::new();
        for u in &self.users {
            // Validated above; a failure here would be a bug, reported by
            // leaving the user out rather than by a panic.
            if let Err(e) = users.add(&u.name, &u.password, u.privilege) {
                tracing::error!(user = %u.name, error = %e, "user rejected");
            }
        }
        let mut c = novabmc_proto::BmcConfig::new(users);
        c.kg = self.bmc.kg.as_ref().map(|k| Zeroizing::new(k.to_vec()));
        c.cipher_suites = self.bmc.cipher_suites;
        c.max_sessions = self.bmc.max_sessions;
        // The file's value is validated to hold every configured node's
        // reserve; discovered nodes can outgrow it, and then the cap grows
        // to hold theirs too (said once), never disappears.
        let reserved = self.nodes.len().saturating_mul(DEFAULT_RESERVE);
        let total = self.bmc.max_sessions_total.max(reserved).max(1);
        if total > self.bmc.max_sessions_total {
            tracing::warn!(
                configured = self.bmc.max_sessions_total,
                nodes = self.nodes.len(),
                cap = total,
                "bmc.max_sessions_total cannot hold every node's reserved sessions; raised"
            );
        }
        c.budget = Arc::new(
            SessionBudget::new(total, self.nodes.len(), DEFAULT_RESERVE)
                .unwrap_or_else(|_| SessionBudget::unlimited()),
        );
        c.timeouts.setup = self.bmc.setup_timeout;
        c.timeouts.idle = self.bmc.idle_timeout;
        c.device = self.bmc.device;
        c.sol_privilege = self.bmc.sol_privilege;
        c
    }
}

#[cfg(test)]
// figment's Jail closures return its own large error type.
#[allow(clippy::result_large_err)]
mod tests;
