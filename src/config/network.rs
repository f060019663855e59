//! `[network]`: what `novabmc network apply` provisions in Neutron for
//! the nodes (see [`crate::network`]): the layout, the BMC instance, the
//! network or router the node addresses live on, the iPXE images to
//! upload; and the routes file `apply` writes and `serve` reads back, so
//! each node of layout (b) gets its `[nodes.NAME.route]` without one
//! written by hand.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use ipnet::IpNet;
use serde::Deserialize;

use super::backend::BackendConfig;
use super::error::{Checker, ConfigError, LoadError, format_figment_error};
use super::nodes::NodeConfig;
use super::routing::{RawRoute, RouteConfig, check_route};

/// The routes file's name in the state directory when `routes_file` is
/// not given.
pub const ROUTES_FILE: &str = "network-routes.toml";

/// First routing table given to a node of layout (b) by default.
pub const DEFAULT_TABLE_BASE: u32 = 1000;

/// `[network]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    layout: String,
    bmc_server: String,
    name: Option<String>,
    network: Option<String>,
    router: Option<String>,
    prefix_len: Option<u8>,
    prefix_len_v6: Option<u8>,
    shared_network: Option<bool>,
    table_base: Option<u32>,
    security_groups: Option<Vec<String>>,
    routes_file: Option<PathBuf>,
    #[serde(default)]
    images: BTreeMap<String, RawImage>,
}

/// `[network.images.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    file: PathBuf,
    firmware: Option<String>,
    disk_format: Option<String>,
}

/// How the node addresses reach the BMC instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// (a) One NIC carries every node address: a port per address on the
    /// BMC network reserves it, and the BMC instance's port on that
    /// network allows it (allowed address pairs), unless its port
    /// security is off.
    OneNic {
        /// The network (name or ID) of the BMC instance's port.
        network: String,
    },
    /// (b) A port, NIC and subnet per node, each subnet attached to a
    /// router, each port attached to the BMC instance, and a policy route
    /// per node.
    NicPerNode {
        /// The router (name or ID); created when there is none.
        router: String,
        /// Length of each node's IPv4 subnet (its address/this).
        prefix_v4: u8,
        /// Length of each node's IPv6 subnet.
        prefix_v6: u8,
        /// One network with a subnet per node instead of a network per
        /// node (on clouds that let an instance have several ports on one
        /// network).
        shared_network: bool,
        /// The first routing table given to a node.
        table_base: u32,
        /// Security groups (names or IDs) of the node ports; `None`
        /// leaves Neutron's default (the project's `default` group).
        security_groups: Option<Vec<String>>,
    },
}

/// An iPXE image to upload to Glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The image's name in Glance (what `ipxe_image` names).
    pub name: String,
    /// The file to upload.
    pub file: PathBuf,
    /// Sets `hw_firmware_type=uefi`.
    pub uefi: bool,
    /// Glance's `disk_format` (`iso`, `raw`, `qcow2`).
    pub disk_format: String,
}

/// `[network]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The layout and its settings.
    pub layout: Layout,
    /// The BMC instance (Nova server name or ID).
    pub bmc_server: String,
    /// What names and tags novabmc's resources: `novabmc-NAME-NODE`,
    /// tags `novabmc` and `novabmc:NAME` (default: the BMC server).
    pub name: String,
    /// Where `apply` writes the nodes' routes and `serve` reads them.
    pub routes_file: PathBuf,
    /// iPXE images to upload, in name order.
    pub images: Vec<ImageSpec>,
    /// The routes file's entries as the last load read them, by node
    /// name, for nodes discovery adds after the load
    /// ([`super::Config::with_discovered`]).
    pub routes: BTreeMap<String, RouteConfig>,
}

/// Validates `[network]` against the backend (which must be Nova) and
/// the nodes.
pub(super) fn check(
    raw: RawNetwork,
    backend: &BackendConfig,
    nodes: &[NodeConfig],
    c: &Checker<'_>,
) -> Result<NetworkConfig, ConfigError> {
    let BackendConfig::Nova(nova) = backend else {
        return Err(c.error(
            "network",
            "provisions Neutron resources, so it needs backend.type = \"nova\"",
        ));
    };
    if raw.bmc_server.trim().is_empty() {
        return Err(c.error("network.bmc_server", "must not be empty"));
    }
    let name = raw.name.unwrap_or_else(|| raw.bmc_server.clone());
    if name.is_empty()
        || name.len() > 64
        || name.contains([',', '/'])
        || name.contains(char::is_whitespace)
    {
        return Err(c.error(
            "network.name",
            format!(
                "{name:?} cannot name novabmc's resources and tags: 1 to 64 characters, \
                 no comma, slash or space (set network.name)"
            ),
        ));
    }
    let per_node_only = |key: &str, set: bool| -> Result<(), ConfigError> {
        if set {
            return Err(c.error(
                &format!("network.{key}"),
                "only applies to layout \"nic-per-node\"",
            ));
        }
        Ok(())
    };
    let layout = match raw.layout.as_str() {
        "one-nic" => {
            per_node_only("router", raw.router.is_some())?;
            per_node_only("prefix_len", raw.prefix_len.is_some())?;
            per_node_only("prefix_len_v6", raw.prefix_len_v6.is_some())?;
            per_node_only("shared_network", raw.shared_network.is_some())?;
            per_node_only("table_base", raw.table_base.is_some())?;
            per_node_only("security_groups", raw.security_groups.is_some())?;
            let Some(network) = raw.network.filter(|n| !n.trim().is_empty()) else {
                return Err(c.error(
                    "network.network",
                    "layout \"one-nic\" needs the network of the BMC instance's port that \
                     carries the node addresses",
                ));
            };
            Layout::OneNic { network }
        }
        "nic-per-node" => {
            if raw.network.is_some() {
                return Err(c.error(
                    "network.network",
                    "only applies to layout \"one-nic\" (nic-per-node makes a network per node)",
                ));
            }
            let Some(router) = raw.router.filter(|r| !r.trim().is_empty()) else {
                return Err(c.error(
                    "network.router",
                    "layout \"nic-per-node\" needs the router the node subnets are attached to",
                ));
            };
            let prefix_v4 = raw.prefix_len.unwrap_or(24);
            if !(8..=29).contains(&prefix_v4) {
                return Err(c.error(
                    "network.prefix_len",
                    "must be between 8 and 29 (a subnet holds the router and the node)",
                ));
            }
            let prefix_v6 = raw.prefix_len_v6.unwrap_or(64);
            if !(48..=124).contains(&prefix_v6) {
                return Err(c.error("network.prefix_len_v6", "must be between 48 and 124"));
            }
            let table_base = raw.table_base.unwrap_or(DEFAULT_TABLE_BASE);
            if !(1..=0x7fff_0000).contains(&table_base) || (253..=255).contains(&table_base) {
                return Err(c.error(
                    "network.table_base",
                    "must be a table number of its own (1 to 2147418112, not 253 to 255)",
                ));
            }
            if let Some(groups) = &raw.security_groups
                && groups.iter().any(|g| g.trim().is_empty())
            {
                return Err(c.error("network.security_groups", "a name must not be empty"));
            }
            let layout = Layout::NicPerNode {
                router,
                prefix_v4,
                prefix_v6,
                shared_network: raw.shared_network.unwrap_or(false),
                table_base,
                security_groups: raw.security_groups,
            };
            check_node_subnets(&layout, nodes, c)?;
            layout
        }
        other => {
            return Err(c.error(
                "network.layout",
                format!(
                    "unknown layout {other:?}: \"one-nic\" (every address on one NIC) or \
                     \"nic-per-node\" (a port, NIC and subnet per node)"
                ),
            ));
        }
    };
    let mut images = Vec::new();
    for (image, i) in raw.images {
        let key = format!("network.images.{image}");
        let uefi = match i.firmware.as_deref() {
            None | Some("bios") => false,
            Some("uefi") => true,
            Some(other) => {
                return Err(c.error(
                    &format!("{key}.firmware"),
                    format!("unknown firmware {other:?} (uefi or bios)"),
                ));
            }
        };
        if std::fs::metadata(&i.file).is_err() {
            return Err(c.error(
                &format!("{key}.file"),
                format!(
                    "{} cannot be read (Debian's ipxe package installs /usr/lib/ipxe/ipxe.iso)",
                    i.file.display()
                ),
            ));
        }
        let disk_format = match i.disk_format {
            Some(f) => f,
            None => match i.file.extension().and_then(|e| e.to_str()) {
                Some("iso") => "iso".into(),
                Some("qcow2") => "qcow2".into(),
                _ => "raw".into(),
            },
        };
        if !["iso", "raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx"].contains(&disk_format.as_str()) {
            return Err(c.error(
                &format!("{key}.disk_format"),
                format!("{disk_format:?} is not a Glance disk format"),
            ));
        }
        images.push(ImageSpec {
            name: image,
            file: i.file,
            uefi,
            disk_format,
        });
    }
    let routes_file = raw
        .routes_file
        .unwrap_or_else(|| nova.settings.state_dir.join(ROUTES_FILE));
    Ok(NetworkConfig {
        layout,
        bmc_server: raw.bmc_server,
        name,
        routes_file,
        images,
        routes: BTreeMap::new(),
    })
}

/// The subnet of a node's address in layout (b).
pub fn node_subnet(layout: &Layout, address: IpAddr) -> Option<IpNet> {
    let Layout::NicPerNode {
        prefix_v4,
        prefix_v6,
        ..
    } = layout
    else {
        return None;
    };
    let len = if address.is_ipv4() {
        *prefix_v4
    } else {
        *prefix_v6
    };
    IpNet::new(address, len).ok().map(|n| n.trunc())
}

/// The router's address on a node's subnet: its first host, Neutron's
/// default gateway.
pub fn node_gateway(subnet: &IpNet) -> IpAddr {
    match subnet {
        IpNet::V4(n) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(n.network()) + 1)),
        IpNet::V6(n) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(n.network()) + 1)),
    }
}

/// In layout (b) each node needs a subnet of its own that holds its
/// address as a host (not the network, broadcast or gateway address).
fn check_node_subnets(
    layout: &Layout,
    nodes: &[NodeConfig],
    c: &Checker<'_>,
) -> Result<(), ConfigError> {
    let mut seen: Vec<(IpNet, &str)> = Vec::new();
    for n in nodes {
        let ip = n.listen.ip();
        let Some(subnet) = node_subnet(layout, ip) else {
            continue;
        };
        let key = format!("nodes.{}.address", n.name);
        if ip == subnet.network() || (ip.is_ipv4() && ip == subnet.broadcast()) {
            return Err(c.error(
                &key,
                format!("{ip} is not a host address of its subnet {subnet}"),
            ));
        }
        if ip == node_gateway(&subnet) {
            return Err(c.error(
                &key,
                format!("{ip} is the router's address on the node's subnet {subnet}"),
            ));
        }
        if let Some((_, other)) = seen.iter().find(|(s, _)| *s == subnet) {
            return Err(c.error(
                &key,
                format!(
                    "{ip} is in subnet {subnet} like node {other}'s address: layout \
                     \"nic-per-node\" gives each node a subnet of its own (change the address \
                     or network.prefix_len)"
                ),
            ));
        }
        seen.push((subnet, &n.name));
    }
    Ok(())
}

/// The routes file as written by `novabmc network apply`: the same
/// `[nodes.NAME.route]` keys as the configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutesFile {
    #[serde(default)]
    nodes: BTreeMap<String, RawRoutesNode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutesNode {
    route: RawRoute,
}

/// Reads the routes file (none yet is no routes) and gives each node
/// without a `[nodes.NAME.route]` of its own the route the file holds for
/// it; an explicit route wins. Returns every route the file holds: those
/// of nodes not configured (discovered ones, or gone) checked against
/// their gateway's family alone.
pub(super) fn apply_routes_file(
    path: &Path,
    nodes: &mut [NodeConfig],
) -> Result<BTreeMap<String, RouteConfig>, LoadError> {
    let mut routes = BTreeMap::new();
    if std::fs::metadata(path).is_err() {
        return Ok(routes);
    }
    let figment = Figment::from(Toml::file_exact(path));
    let raw: RawRoutesFile = figment
        .extract()
        .map_err(|e| LoadError::Parse(format_figment_error(e)))?;
    let c = Checker { figment: &figment };
    for (name, n) in raw.nodes {
        let key = format!("nodes.{name}");
        let Some(node) = nodes.iter_mut().find(|x| x.name == name) else {
            let family: IpAddr = if n.route.gateway().is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            };
            routes.insert(name, check_route(&key, family, n.route, &c)?);
            continue;
        };
        let route = check_route(&key, node.listen.ip(), n.route, &c)?;
        if node.route.is_none() {
            node.route = Some(route.clone());
        }
        routes.insert(name, route);
    }
    Ok(routes)
}
