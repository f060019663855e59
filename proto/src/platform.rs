//! What the daemon tells an engine about the node it serves, and what the
//! engine keeps about the node's repositories: the LAN addressing that Get
//! LAN Configuration Parameters reports ([`LanInfo`]), the FRU inventory
//! image ([`crate::fru_area::Inventory`]) and the SDR and SEL
//! reservations.
//!
//! The engine never looks at interfaces, routes or clouds itself: the
//! daemon hands it this data with [`Bmc::set_lan`](crate::Bmc::set_lan) and
//! [`Bmc::set_inventory`](crate::Bmc::set_inventory) at start and whenever
//! it learns something new.

use std::net::{IpAddr, Ipv4Addr};

use crate::fru_area::Inventory;

/// A node's LAN channel as the network sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LanInfo {
    /// The address the node answers on.
    pub address: IpAddr,
    /// The prefix length of that address on its interface (0: unknown).
    pub prefix_len: u8,
    /// The next hop replies take, if there is one.
    pub gateway: Option<IpAddr>,
    /// The channel's MAC address.
    pub mac: [u8; 6],
    /// The UDP port the node answers on.
    pub port: u16,
}

impl Default for LanInfo {
    /// Nothing known yet: 0.0.0.0 on the standard port.
    fn default() -> Self {
        LanInfo {
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            prefix_len: 0,
            gateway: None,
            mac: [0; 6],
            port: 623,
        }
    }
}

impl LanInfo {
    /// The node's IPv4 address, or 0.0.0.0 for a node on IPv6.
    pub(crate) fn ipv4(&self) -> [u8; 4] {
        match self.address {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or([0; 4], |a| a.octets()),
        }
    }

    /// The IPv4 netmask of the prefix, or 0.0.0.0 for a node on IPv6.
    pub(crate) fn ipv4_netmask(&self) -> [u8; 4] {
        if !matches!(self.address, IpAddr::V4(_)) {
            return [0; 4];
        }
        let bits = u32::from(self.prefix_len.min(32));
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        mask.to_be_bytes()
    }

    /// The IPv4 gateway, or 0.0.0.0.
    pub(crate) fn ipv4_gateway(&self) -> [u8; 4] {
        match self.gateway {
            Some(IpAddr::V4(g)) => g.octets(),
            _ => [0; 4],
        }
    }
}

/// The per-node state the inventory commands read and change.
#[derive(Debug, Default)]
pub(crate) struct Platform {
    /// LAN addressing.
    pub lan: LanInfo,
    /// The FRU image, once the daemon knows the machine.
    pub fru: Option<Box<[u8]>>,
    /// LAN parameter 0, "set in progress" (0 complete, 1 in progress).
    pub lan_set_in_progress: u8,
    /// The last SDR repository reservation given out (0: none yet).
    pub sdr_reservation: u16,
    /// The last SEL reservation given out (0: none yet).
    pub sel_reservation: u16,
}

impl Platform {
    /// Replaces the FRU image with `inventory`'s.
    pub(crate) fn set_inventory(&mut self, inventory: &Inventory) {
        self.fru = Some(inventory.encode().into_boxed_slice());
    }
}

/// The next reservation ID after `last`: never 0, which the spec keeps for
/// "no reservation".
pub(crate) fn next_reservation(last: u16) -> u16 {
    match last.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmask_from_prefix() {
        let mut lan = LanInfo {
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            prefix_len: 24,
            ..LanInfo::default()
        };
        assert_eq!(lan.ipv4_netmask(), [255, 255, 255, 0]);
        lan.prefix_len = 0;
        assert_eq!(lan.ipv4_netmask(), [0, 0, 0, 0]);
        lan.prefix_len = 32;
        assert_eq!(lan.ipv4_netmask(), [255; 4]);
        lan.prefix_len = 200;
        assert_eq!(lan.ipv4_netmask(), [255; 4]);
        lan.address = "2001:db8::1".parse().expect("v6");
        assert_eq!(lan.ipv4_netmask(), [0; 4]);
        assert_eq!(lan.ipv4(), [0; 4]);
    }

    #[test]
    fn reservations_skip_zero() {
        assert_eq!(next_reservation(0), 1);
        assert_eq!(next_reservation(u16::MAX), 1);
        assert_eq!(next_reservation(7), 8);
    }
}
