//! The LAN addressing each node reports in Get LAN Configuration
//! Parameters: its address, the prefix length of that address on the
//! interface holding it, its gateway and a MAC address.
//!
//! Read once at start from the kernel, with the routing module's netlink
//! dumps ([`crate::routing::netlink`]):
//! - the prefix from the address dump: the node's own address's, else
//!   that of the narrowest configured subnet holding it (a node on
//!   127.0.0.5 is on lo's 127.0.0.1/8; one bound with `freebind` before
//!   DHCP ran is on no subnet yet: prefix 0, netmask 0.0.0.0);
//! - the gateway from the node's `[nodes.NAME.route]` if it has one (its
//!   replies leave that way), else the main table's default route of the
//!   address's family, else none (0.0.0.0);
//! - the MAC, which a UDP socket does not have, derived from the node's
//!   name: `02` (locally administered, unicast) and five bytes of its
//!   FNV-1a hash, so a node keeps its MAC across restarts and hosts.
//!
//! Without netlink (no permission, no socket) the nodes still serve, with
//! what the configuration alone says.

use std::collections::HashMap;
use std::net::IpAddr;

use novabmc_proto::LanInfo;
use tracing::debug;

use crate::config::NodeConfig;
use crate::routing::RoutingError;
use crate::routing::netlink::Netlink;

/// The kernel's main routing table.
const MAIN_TABLE: u32 = 254;

/// What the kernel says about addresses and default routes.
#[derive(Debug, Default)]
struct Kernel {
    /// Prefix length of each configured address.
    prefixes: HashMap<IpAddr, u8>,
    /// The main table's IPv4 and IPv6 default gateways.
    gateway_v4: Option<IpAddr>,
    gateway_v6: Option<IpAddr>,
}

/// Every node's LAN addressing, in node order.
pub async fn discover(nodes: &[NodeConfig]) -> Vec<LanInfo> {
    let kernel = match read_kernel().await {
        Ok(k) => k,
        Err(e) => {
            debug!(error = %e, "cannot read addresses and routes; LAN parameters show the configuration only");
            Kernel::default()
        }
    };
    nodes.iter().map(|n| lan_info(n, &kernel)).collect()
}

fn lan_info(node: &NodeConfig, kernel: &Kernel) -> LanInfo {
    let address = node.listen.ip();
    let gateway = match &node.route {
        Some(r) => Some(r.gateway),
        None if address.is_ipv4() => kernel.gateway_v4,
        None => kernel.gateway_v6,
    };
    LanInfo {
        address,
        prefix_len: kernel.prefix_of(address),
        gateway,
        mac: mac_for(&node.name),
        port: node.listen.port(),
    }
}

impl Kernel {
    /// The prefix length of `address` itself, else of the narrowest
    /// configured subnet that holds it, else 0.
    fn prefix_of(&self, address: IpAddr) -> u8 {
        if let Some(p) = self.prefixes.get(&address) {
            return *p;
        }
        self.prefixes
            .iter()
            .filter(|(ip, len)| contains(**ip, **len, address))
            .map(|(_, len)| *len)
            .max()
            .unwrap_or(0)
    }
}

/// Whether `ip/len` holds `address`.
fn contains(ip: IpAddr, len: u8, address: IpAddr) -> bool {
    let (a, b, bits) = match (ip, address) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (
            u128::from(u32::from(a)) << 96,
            u128::from(u32::from(b)) << 96,
            32,
        ),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let len = u32::from(len);
    if len == 0 || len > bits {
        return false;
    }
    let mask = u128::MAX << (128 - len);
    a & mask == b & mask
}

/// `02:` and five bytes of the FNV-1a 64 hash of `name` (FNV rather than
/// std's hasher, whose output may change between Rust releases).
pub fn mac_for(name: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x02, b[0], b[1], b[2], b[3], b[4]]
}

/// Reads the addresses and default routes through the routing module's
/// netlink dumps.
async fn read_kernel() -> Result<Kernel, RoutingError> {
    let nl = Netlink::connect()?;
    let ifs = nl.interfaces().await?;
    let snapshot = nl.snapshot(&ifs).await?;
    let mut k = Kernel {
        prefixes: ifs.prefixes,
        ..Kernel::default()
    };
    for route in snapshot.routes.iter().filter(|r| r.table == MAIN_TABLE) {
        match route.gateway {
            Some(g @ IpAddr::V4(_)) => {
                k.gateway_v4.get_or_insert(g);
            }
            Some(g @ IpAddr::V6(_)) => {
                k.gateway_v6.get_or_insert(g);
            }
            None => {}
        }
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, listen: &str, route_gateway: Option<&str>) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            listen: listen.parse().expect("listen"),
            server: name.into(),
            route: route_gateway.map(|g| crate::config::RouteConfig {
                table: 100,
                gateway: g.parse().expect("gateway"),
                interface: None,
                priority: 1000,
            }),
            network_boot: None,
            ipxe_image: None,
            efi: None,
            redfish_port: None,
            origin: crate::config::Origin::Configured,
        }
    }

    fn kernel() -> Kernel {
        let mut k = Kernel::default();
        for (ip, len) in [
            ("127.0.0.1", 8),
            ("192.0.2.2", 24),
            ("198.51.100.7", 28),
            ("fd00::2", 64),
        ] {
            k.prefixes.insert(ip.parse().expect("ip"), len);
        }
        k.gateway_v4 = Some("192.0.2.1".parse().expect("gw"));
        k.gateway_v6 = Some("fd00::1".parse().expect("gw6"));
        k
    }

    #[test]
    fn prefix_of_the_address_or_its_subnet() {
        let k = kernel();
        assert_eq!(
            lan_info(&node("a", "192.0.2.2:623", None), &k).prefix_len,
            24
        );
        assert_eq!(
            lan_info(&node("a", "127.3.4.5:623", None), &k).prefix_len,
            8
        );
        assert_eq!(
            lan_info(&node("a", "198.51.100.9:623", None), &k).prefix_len,
            28
        );
        assert_eq!(
            lan_info(&node("a", "203.0.113.1:623", None), &k).prefix_len,
            0
        );
        assert_eq!(
            lan_info(&node("a", "[fd00::9]:623", None), &k).prefix_len,
            64
        );
    }

    #[test]
    fn gateway_of_the_route_else_the_main_table() {
        let k = kernel();
        let own = lan_info(&node("a", "198.51.100.9:6230", Some("198.51.100.1")), &k);
        assert_eq!(own.gateway, Some("198.51.100.1".parse().expect("gw")));
        assert_eq!(own.port, 6230);
        let main = lan_info(&node("a", "192.0.2.9:623", None), &k);
        assert_eq!(main.gateway, k.gateway_v4);
        let v6 = lan_info(&node("a", "[fd00::9]:623", None), &k);
        assert_eq!(v6.gateway, k.gateway_v6);
        let none = lan_info(&node("a", "192.0.2.9:623", None), &Kernel::default());
        assert_eq!((none.gateway, none.prefix_len), (None, 0));
    }

    #[test]
    fn mac_is_locally_administered_and_stable() {
        let a = mac_for("node-0");
        assert_eq!(a[0], 0x02);
        assert_eq!(a, mac_for("node-0"));
        assert_ne!(a, mac_for("node-1"));
    }
}
