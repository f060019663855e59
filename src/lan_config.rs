//! The LAN addressing each node reports in Get LAN Configuration
//! Parameters: its address, the prefix length of that address on the
//! interface holding it, its gateway and a MAC address.
//!
//! Read once at start from the kernel through rtnetlink:
//! - the prefix from the address dump (0, shown as netmask 0.0.0.0, while
//!   the address is not configured yet, as with `freebind`);
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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use novabmc_proto::LanInfo;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use tracing::debug;

use crate::config::NodeConfig;

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
        prefix_len: kernel.prefixes.get(&address).copied().unwrap_or(0),
        gateway,
        mac: mac_for(&node.name),
        port: node.listen.port(),
    }
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

async fn read_kernel() -> Result<Kernel, String> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| e.to_string())?;
    let conn = tokio::spawn(connection);
    let result = async {
        let mut k = Kernel::default();
        let mut addresses = handle.address().get().execute();
        while let Some(m) = addresses.try_next().await.map_err(|e| e.to_string())? {
            for a in &m.attributes {
                if let AddressAttribute::Local(ip) | AddressAttribute::Address(ip) = a {
                    k.prefixes.entry(*ip).or_insert(m.header.prefix_len);
                }
            }
        }
        let requests = [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ];
        for request in requests {
            let mut routes = handle.route().get(request).execute();
            while let Some(m) = routes.try_next().await.map_err(|e| e.to_string())? {
                if m.header.destination_prefix_length != 0 {
                    continue;
                }
                let mut table = u32::from(m.header.table);
                let mut gateway = None;
                for a in &m.attributes {
                    match a {
                        RouteAttribute::Table(t) => table = *t,
                        RouteAttribute::Gateway(RouteAddress::Inet(g)) => {
                            gateway = Some(IpAddr::V4(*g));
                        }
                        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => {
                            gateway = Some(IpAddr::V6(*g));
                        }
                        _ => {}
                    }
                }
                match gateway {
                    Some(g @ IpAddr::V4(_)) if table == MAIN_TABLE => {
                        k.gateway_v4.get_or_insert(g);
                    }
                    Some(g @ IpAddr::V6(_)) if table == MAIN_TABLE => {
                        k.gateway_v6.get_or_insert(g);
                    }
                    _ => {}
                }
            }
        }
        Ok(k)
    }
    .await;
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_locally_administered_and_stable() {
        let a = mac_for("node-0");
        assert_eq!(a[0], 0x02);
        assert_eq!(a, mac_for("node-0"));
        assert_ne!(a, mac_for("node-1"));
    }
}
