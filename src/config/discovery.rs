//! `[discovery]`: serving the cloud's servers that a selector picks, each
//! as a node named after its server, without a `[nodes.NAME]` for each
//! ([`crate::discovery`] does the looking). Selectors (at least one; a
//! server must pass all of them): `tag` (a Nova server tag, microversion
//! 2.26), `metadata` (keys and the values they must have), `name` (a
//! pattern with `*` and `?`). `refresh` is how often the cloud is looked
//! at again, in seconds. `[discovery.address]` says where the nodes' BMC
//! addresses come from ([`crate::addressing`]), and
//! `[discovery.defaults]` holds the settings every discovered node takes,
//! with the keys and meanings of a `[nodes.NAME]` entry (`port`,
//! `network_boot`, `ipxe_image`, `efi`, `redfish_port`, `route`).
//!
//! Discovery lists Nova's servers, so it needs `[backend] type = "nova"`.
//! The tag is also handed to Nova as a listing filter, so a large project
//! is not listed whole; [`Selector::matches`] checks it again, so a cloud
//! that ignored the filter never gets every server served.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::Deserialize;

use super::backend::BackendConfig;
use super::error::{Checker, ConfigError};
use super::nodes::{DEFAULT_PORT, NodeConfig, boot_settings};
use super::routing::{RawRoute, RouteConfig, check_route};
use crate::addressing::{AddressMode, RawAddress};
use crate::backend::nova::NetworkBoot;
use crate::backend::nova::client::ListedServer;

/// How often the cloud is looked at when `refresh` is not given.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// Nova's longest tag.
const MAX_TAG_LEN: usize = 60;

/// `[discovery]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscovery {
    tag: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    name: Option<String>,
    refresh: Option<f64>,
    address: Option<RawAddress>,
    #[serde(default)]
    defaults: RawDefaults,
}

/// `[discovery.defaults]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    port: Option<u16>,
    route: Option<RawRoute>,
    network_boot: Option<String>,
    ipxe_image: Option<String>,
    efi: Option<bool>,
    redfish_port: Option<u16>,
}

/// What every discovered node takes, as a `[nodes.NAME]` would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDefaults {
    /// The IPMI port on the node's address.
    pub port: u16,
    /// A route every discovered node shares (one NIC for all of them).
    pub route: Option<RouteConfig>,
    /// Network boot mode, overriding the backend's.
    pub network_boot: Option<NetworkBoot>,
    /// iPXE image, overriding the backend's.
    pub ipxe_image: Option<String>,
    /// EFI firmware, instead of reading the server's image.
    pub efi: Option<bool>,
    /// The Redfish port, instead of `redfish.port`.
    pub redfish_port: Option<u16>,
}

/// `[discovery]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Which servers to serve.
    pub selector: Selector,
    /// How often to look again.
    pub refresh: Duration,
    /// Where the nodes' addresses come from.
    pub address: AddressMode,
    /// The nodes' settings.
    pub defaults: NodeDefaults,
}

/// Validates `[discovery]` against the backend and the configured nodes.
pub(super) fn check(
    raw: RawDiscovery,
    backend: &BackendConfig,
    nodes: &[NodeConfig],
    c: &Checker<'_>,
) -> Result<DiscoveryConfig, ConfigError> {
    if !matches!(backend, BackendConfig::Nova(_)) {
        return Err(c.error(
            "discovery",
            "discovery lists the servers of a Nova cloud: set [backend] type = \"nova\"",
        ));
    }
    let selector = selector(raw.tag, raw.metadata, raw.name, c)?;
    let refresh = match raw.refresh {
        None => DEFAULT_REFRESH,
        Some(r) if (0.5..=3600.0).contains(&r) => Duration::from_secs_f64(r),
        Some(_) => {
            return Err(c.error("discovery.refresh", "must be between 0.5 and 3600 seconds"));
        }
    };
    let Some(raw_address) = raw.address else {
        return Err(c.error(
            "discovery.address",
            "is needed, to say where discovered nodes get their BMC addresses: \
             mode = \"pool\" with cidr = \"192.0.2.0/24\"",
        ));
    };
    let address = AddressMode::new(raw_address)
        .map_err(|e| c.error(&format!("discovery.address.{}", e.key), e.message))?;
    let defaults = defaults(raw.defaults, &address, backend, nodes, c)?;
    Ok(DiscoveryConfig {
        selector,
        refresh,
        address,
        defaults,
    })
}

fn selector(
    tag: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    name: Option<String>,
    c: &Checker<'_>,
) -> Result<Selector, ConfigError> {
    if tag.is_none() && metadata.as_ref().is_none_or(BTreeMap::is_empty) && name.is_none() {
        return Err(c.error(
            "discovery",
            "needs a selector: tag, metadata or name (a server must pass every one given)",
        ));
    }
    if let Some(t) = &tag
        && (t.is_empty() || t.chars().count() > MAX_TAG_LEN || t.contains(['/', ',']))
    {
        return Err(c.error(
            "discovery.tag",
            format!("{t:?} is not a Nova tag (1 to {MAX_TAG_LEN} characters, no '/' or ',')"),
        ));
    }
    let metadata = metadata.unwrap_or_default();
    if metadata.keys().any(String::is_empty) {
        return Err(c.error("discovery.metadata", "keys must not be empty"));
    }
    if let Some(n) = &name
        && n.is_empty()
    {
        return Err(c.error("discovery.name", "must not be empty (\"*\" is every name)"));
    }
    Ok(Selector {
        tag,
        metadata,
        name: name.map(NamePattern),
    })
}

fn defaults(
    raw: RawDefaults,
    address: &AddressMode,
    backend: &BackendConfig,
    nodes: &[NodeConfig],
    c: &Checker<'_>,
) -> Result<NodeDefaults, ConfigError> {
    const KEY: &str = "discovery.defaults";
    let port = raw.port.unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(c.error(&format!("{KEY}.port"), "must not be 0"));
    }
    if raw.redfish_port == Some(0) {
        return Err(c.error(&format!("{KEY}.redfish_port"), "must not be 0"));
    }
    let network_boot = boot_settings(
        KEY,
        raw.network_boot.as_deref(),
        raw.ipxe_image.as_deref(),
        backend,
        c,
    )?;
    // The nodes' addresses are not known yet: the route is checked against
    // their family (the gateway is kept out of the addresses given).
    // A mode whose addresses only the cloud knows holds the route to its
    // gateway's family.
    let v4 = match (address.sample(), &raw.route) {
        (Some(ip), _) => ip.is_ipv4(),
        (None, Some(r)) => r.gateway().is_ipv4(),
        (None, None) => true,
    };
    let family: IpAddr = if v4 {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let route = match raw.route {
        None => None,
        Some(r) => Some(check_route(KEY, family, r, c)?),
    };
    // The discovered nodes share this route's table with any configured
    // node that names it, and a table has one default route.
    if let Some(r) = &route
        && let Some(other) = nodes.iter().find(|n| {
            n.route.as_ref().is_some_and(|o| {
                o.table == r.table && (o.gateway, &o.interface) != (r.gateway, &r.interface)
            })
        })
    {
        return Err(c.error(
            &format!("{KEY}.route.table"),
            format!(
                "table {} is also node {}'s, with another gateway or interface; nodes sharing \
                 a table must share its gateway and interface",
                r.table, other.name
            ),
        ));
    }
    Ok(NodeDefaults {
        port,
        route,
        network_boot,
        ipxe_image: raw.ipxe_image,
        efi: raw.efi,
        redfish_port: raw.redfish_port,
    })
}

// ----- selectors ---------------------------------------------------------------

/// The selectors of `[discovery]` (`tag`, `metadata`, `name`); at least
/// one is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// A Nova server tag the server must carry.
    pub tag: Option<String>,
    /// Metadata keys the server must have, each with this value.
    pub metadata: BTreeMap<String, String>,
    /// A pattern the server's name must match.
    pub name: Option<NamePattern>,
}

impl Selector {
    /// Whether `server` is one to serve.
    pub fn matches(&self, server: &ListedServer) -> bool {
        self.tag
            .as_ref()
            .is_none_or(|t| server.tags.iter().any(|x| x == t))
            && self
                .metadata
                .iter()
                .all(|(k, v)| server.metadata.get(k) == Some(v))
            && self.name.as_ref().is_none_or(|p| p.matches(&server.name))
    }

    /// `tag baremetal, metadata role=bm, name bm-*`, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.tag {
            parts.push(format!("tag {t}"));
        }
        for (k, v) in &self.metadata {
            parts.push(format!("metadata {k}={v}"));
        }
        if let Some(p) = &self.name {
            parts.push(format!("name {}", p.0));
        }
        parts.join(", ")
    }
}

/// A shell-style name pattern: `*` is any run of characters, `?` any one
/// character, everything else itself (case matters, as in Nova).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern(pub String);

impl NamePattern {
    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let p: Vec<char> = self.0.chars().collect();
        let n: Vec<char> = name.chars().collect();
        // Iterative wildcard matching: on a mismatch, the last `*` takes
        // one more character; linear in practice, never exponential.
        let (mut i, mut j) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while j < n.len() {
            match p.get(i) {
                Some('*') => {
                    star = Some((i, j));
                    i += 1;
                }
                Some(c) if *c == '?' || *c == n[j] => {
                    i += 1;
                    j += 1;
                }
                _ => match star {
                    Some((si, sj)) => {
                        i = si + 1;
                        j = sj + 1;
                        star = Some((si, sj + 1));
                    }
                    None => return false,
                },
            }
        }
        p[i.min(p.len())..].iter().all(|c| *c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nova::states::Status;

    fn server(name: &str, tags: &[&str], metadata: &[(&str, &str)]) -> ListedServer {
        ListedServer {
            id: "u".into(),
            name: name.into(),
            status: Status::Active,
            created: String::new(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn patterns_match_whole_names() {
        let p = |s: &str| NamePattern(s.into());
        assert!(p("bm-*").matches("bm-0"));
        assert!(p("bm-*").matches("bm-"));
        assert!(!p("bm-*").matches("xbm-0"));
        assert!(p("*-node-?").matches("rack1-node-7"));
        assert!(!p("*-node-?").matches("rack1-node-17"));
        assert!(p("a*b*c").matches("aXXbYYbc"));
        assert!(!p("a*b*c").matches("aXXbYYbd"));
        assert!(p("exact").matches("exact"));
        assert!(!p("exact").matches("Exact"));
        assert!(p("*").matches(""));
    }

    #[test]
    fn every_selector_set_must_pass() {
        let s = Selector {
            tag: Some("baremetal".into()),
            metadata: BTreeMap::from([("role".to_string(), "bm".to_string())]),
            name: Some(NamePattern("bm-*".into())),
        };
        assert!(s.matches(&server("bm-1", &["baremetal"], &[("role", "bm")])));
        assert!(!s.matches(&server("bm-1", &[], &[("role", "bm")])));
        assert!(!s.matches(&server("bm-1", &["baremetal"], &[("role", "x")])));
        assert!(!s.matches(&server("vm-1", &["baremetal"], &[("role", "bm")])));
        assert_eq!(s.describe(), "tag baremetal, metadata role=bm, name bm-*");
        let by_tag = Selector {
            tag: Some("baremetal".into()),
            metadata: BTreeMap::new(),
            name: None,
        };
        assert!(by_tag.matches(&server("anything", &["x", "baremetal"], &[])));
    }
}
