//! `[nodes.NAME]`: one virtual BMC each, on its own address and UDP port
//! (IPMI 2.0 section 13.1: RMCP on port 623 by default), in front of one
//! cloud server, with its network boot settings and optional route.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::backend::{BackendConfig, network_boot};
use super::error::{Checker, ConfigError};
use super::routing::{RawRoute, RouteConfig, check_route, check_shared_routes};
use crate::backend::nova::NetworkBoot;

/// The IPMI port.
pub const DEFAULT_PORT: u16 = 623;

/// `[nodes.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    address: IpAddr,
    port: Option<u16>,
    server: Option<String>,
    route: Option<RawRoute>,
    network_boot: Option<String>,
    ipxe_image: Option<String>,
    efi: Option<bool>,
    redfish_port: Option<u16>,
}

/// One virtual bare-metal node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node's name (its key under `[nodes]`).
    pub name: String,
    /// Where its BMC listens.
    pub listen: SocketAddr,
    /// The cloud server behind it (name or UUID); defaults to the node name.
    pub server: String,
    /// Policy routing for a node whose address has a NIC of its own.
    pub route: Option<RouteConfig>,
    /// Network boot mode, overriding the backend's (Nova only).
    pub network_boot: Option<NetworkBoot>,
    /// iPXE image, overriding the backend's (Nova only).
    pub ipxe_image: Option<String>,
    /// EFI firmware, instead of reading the server's image.
    pub efi: Option<bool>,
    /// The Redfish port on the node's address, instead of `redfish.port`
    /// (for nodes sharing one address, as in the demo).
    pub redfish_port: Option<u16>,
    /// A `[nodes.NAME]` entry, or a discovered server.
    pub origin: Origin,
}

/// Where a node comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A `[nodes.NAME]` entry (or a node the program made, as the demo's).
    Configured,
    /// A server `[discovery]` found.
    Discovered,
}

impl Origin {
    /// `configured` or `discovered`, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Configured => "configured",
            Origin::Discovered => "discovered",
        }
    }
}

/// The network boot mode `network_boot` names (under `key`), checked
/// against the backend: only Nova has one, and rebuild or rescue needs an
/// iPXE image, `ipxe_image` or the backend's.
pub(super) fn boot_settings(
    key: &str,
    network_boot_mode: Option<&str>,
    ipxe_image: Option<&str>,
    backend: &BackendConfig,
    c: &Checker<'_>,
) -> Result<Option<NetworkBoot>, ConfigError> {
    let mode = match network_boot_mode {
        None => None,
        Some(m) => Some(network_boot(&format!("{key}.network_boot"), m, c)?),
    };
    if let BackendConfig::Nova(nova) = backend {
        let mode = mode.unwrap_or(nova.network_boot);
        if mode.needs_image() && ipxe_image.is_none() && nova.ipxe_image.is_none() {
            return Err(c.error(
                &format!("{key}.ipxe_image"),
                "network boot by rebuild or rescue needs an iPXE image \
                 (here or as backend.ipxe_image)",
            ));
        }
    } else if network_boot_mode.is_some() || ipxe_image.is_some() {
        let field = if network_boot_mode.is_some() {
            "network_boot"
        } else {
            "ipxe_image"
        };
        return Err(c.error(
            &format!("{key}.{field}"),
            "only applies to the nova backend",
        ));
    }
    Ok(mode)
}

/// Validates the nodes, in name order, against the backend they use;
/// with `[discovery]` there may be none.
pub(super) fn check(
    raw: BTreeMap<String, RawNode>,
    backend: &BackendConfig,
    discovery: bool,
    c: &Checker<'_>,
) -> Result<Vec<NodeConfig>, ConfigError> {
    if raw.is_empty() && !discovery {
        return Err(c.error(
            "nodes",
            "at least one node is needed (or a [discovery] section to find them)",
        ));
    }
    let mut nodes: Vec<NodeConfig> = Vec::with_capacity(raw.len());
    // Node by listening address, so a duplicate is found in one look-up
    // however many nodes there are.
    let mut by_listen: std::collections::HashMap<SocketAddr, usize> =
        std::collections::HashMap::with_capacity(raw.len());
    for (name, n) in raw {
        let key = format!("nodes.{name}");
        let port = n.port.unwrap_or(DEFAULT_PORT);
        if port == 0 {
            return Err(c.error(&format!("{key}.port"), "must not be 0"));
        }
        let listen = SocketAddr::new(n.address, port);
        if n.address.is_unspecified() || n.address.is_multicast() {
            return Err(c.error(
                &format!("{key}.address"),
                "must be one unicast address: replies must leave from the address the request hit",
            ));
        }
        if let Some(&other) = by_listen.get(&listen) {
            return Err(c.error(
                &format!("{key}.address"),
                format!("{listen} is already used by node {}", nodes[other].name),
            ));
        }
        let server = n.server.unwrap_or_else(|| name.clone());
        if server.trim().is_empty() {
            return Err(c.error(&format!("{key}.server"), "must not be empty"));
        }
        let route = match n.route {
            None => None,
            Some(r) => Some(check_route(&key, n.address, r, c)?),
        };
        let mode = boot_settings(
            &key,
            n.network_boot.as_deref(),
            n.ipxe_image.as_deref(),
            backend,
            c,
        )?;
        if n.redfish_port == Some(0) {
            return Err(c.error(&format!("{key}.redfish_port"), "must not be 0"));
        }
        by_listen.insert(listen, nodes.len());
        nodes.push(NodeConfig {
            name,
            listen,
            server,
            route,
            network_boot: mode,
            ipxe_image: n.ipxe_image,
            efi: n.efi,
            redfish_port: n.redfish_port,
            origin: Origin::Configured,
        });
    }
    check_shared_routes(&nodes, c)?;
    Ok(nodes)
}
