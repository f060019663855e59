//! Get and Set LAN Configuration Parameters (IPMI v2.0 sections 23.1 and
//! 23.2, parameters in table 23-4): what `ipmitool lan print` and
//! FreeIPMI's `bmc-config` Lan_Conf sections show.
//!
//! The answers describe the node as it is: its address, the prefix and
//! gateway of the interface holding it (the daemon finds them), a MAC the
//! daemon derives from the node's name, a static address source, no IPMI
//! 1.5 authentication types, the enabled cipher suites at Administrator,
//! VLAN off. Every parameter ipmitool's `lan print` reads is answered:
//! ipmitool 1.8.19 treats "parameter not supported" on most of them as a
//! fatal error and prints nothing more. Nothing can be written: the node's
//! network is the host's, not the BMC's to change.

use super::{Ctx, Handled, ReplyData, is_our_channel};
use crate::wire::ids::{CompletionCode, Privilege};

/// Parameter revision: 1.1, "parameters in this specification" (23.2).
const REVISION: u8 = 0x11;
/// "Attempt to write read-only parameter" (table 23-3).
const READ_ONLY: CompletionCode = CompletionCode(0x82);
/// "Set in progress" already held by someone (table 23-3).
const SET_IN_PROGRESS: CompletionCode = CompletionCode(0x81);

/// Parameter selectors (table 23-4).
mod param {
    pub const SET_IN_PROGRESS: u8 = 0;
    pub const AUTH_TYPE_SUPPORT: u8 = 1;
    pub const AUTH_TYPE_ENABLES: u8 = 2;
    pub const IP_ADDRESS: u8 = 3;
    pub const IP_ADDRESS_SOURCE: u8 = 4;
    pub const MAC_ADDRESS: u8 = 5;
    pub const SUBNET_MASK: u8 = 6;
    pub const IPV4_HEADER: u8 = 7;
    pub const PRIMARY_RMCP_PORT: u8 = 8;
    pub const ARP_CONTROL: u8 = 10;
    pub const GRATUITOUS_ARP_INTERVAL: u8 = 11;
    pub const DEFAULT_GATEWAY: u8 = 12;
    pub const DEFAULT_GATEWAY_MAC: u8 = 13;
    pub const BACKUP_GATEWAY: u8 = 14;
    pub const BACKUP_GATEWAY_MAC: u8 = 15;
    pub const COMMUNITY_STRING: u8 = 16;
    pub const DESTINATIONS: u8 = 17;
    pub const VLAN_ID: u8 = 20;
    pub const VLAN_PRIORITY: u8 = 21;
    pub const CIPHER_SUITE_SUPPORT: u8 = 22;
    pub const CIPHER_SUITE_ENTRIES: u8 = 23;
    pub const CIPHER_SUITE_PRIVILEGES: u8 = 24;
    pub const BAD_PASSWORD_THRESHOLD: u8 = 26;
    pub const IPV6_IPV4_SUPPORT: u8 = 50;
    pub const IPV6_IPV4_ENABLES: u8 = 51;
    pub const IPV6_STATUS: u8 = 55;
    pub const IPV6_STATIC_ADDRESSES: u8 = 56;
    pub const IPV6_ROUTER_CONTROL: u8 = 64;
    pub const IPV6_ROUTER_1_ADDRESS: u8 = 65;
    pub const IPV6_ROUTER_1_MAC: u8 = 66;
    pub const IPV6_ROUTER_1_PREFIX_LENGTH: u8 = 67;
    pub const IPV6_ROUTER_1_PREFIX: u8 = 68;
    pub const IPV6_ROUTER_2_ADDRESS: u8 = 69;
    pub const IPV6_ROUTER_2_MAC: u8 = 70;
    pub const IPV6_ROUTER_2_PREFIX_LENGTH: u8 = 71;
    pub const IPV6_ROUTER_2_PREFIX: u8 = 72;
}

/// Longest parameter data (the IPv6 static address: 20 bytes).
const MAX_DATA: usize = 20;

/// Get LAN Configuration Parameters (section 23.2): channel (bit 7: the
/// revision only), parameter, set selector, block selector.
pub(super) fn get(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [channel, parameter, set, _block] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    if !is_our_channel(*channel) || channel & 0x70 != 0 {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    let mut data = [0u8; MAX_DATA];
    let n = match parameter_data(ctx, *parameter, *set, &mut data) {
        Ok(n) => n,
        Err(cc) => return Handled::code(cc),
    };
    let mut out = [0u8; 1 + MAX_DATA];
    out[0] = REVISION;
    out[1..].copy_from_slice(&data);
    let revision_only = channel & 0x80 != 0;
    let len = if revision_only { 1 } else { 1 + n };
    Handled::Reply(CompletionCode::OK, ReplyData::from_slice(&out[..len]))
}

/// Writes one parameter's data into `out`; returns its length.
fn parameter_data(
    ctx: &Ctx<'_>,
    parameter: u8,
    set: u8,
    out: &mut [u8; MAX_DATA],
) -> Result<usize, CompletionCode> {
    let lan = &ctx.platform.lan;
    let mut put = |data: &[u8]| {
        out[..data.len()].copy_from_slice(data);
        Ok(data.len())
    };
    let v6 = match lan.address {
        std::net::IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => Some(a),
        _ => None,
    };
    match parameter {
        param::SET_IN_PROGRESS => put(&[ctx.platform.lan_set_in_progress]),
        // RMCP+ only: no IPMI 1.5 authentication type is supported or
        // enabled, as Get Channel Authentication Capabilities says.
        param::AUTH_TYPE_SUPPORT => put(&[0x00]),
        param::AUTH_TYPE_ENABLES => put(&[0; 5]),
        param::IP_ADDRESS => put(&lan.ipv4()),
        // 1: static address (configured, not from DHCP or the BIOS).
        param::IP_ADDRESS_SOURCE => put(&[0x01]),
        param::MAC_ADDRESS => put(&lan.mac),
        param::SUBNET_MASK => put(&lan.ipv4_netmask()),
        // The spec's defaults: TTL 64, don't fragment, precedence 0 with
        // TOS "minimize delay".
        param::IPV4_HEADER => put(&[0x40, 0x40, 0x10]),
        param::PRIMARY_RMCP_PORT => put(&lan.port.to_le_bytes()),
        // The host's kernel answers ARP for the address (bit 1); nothing
        // sends gratuitous ARPs (bit 0).
        param::ARP_CONTROL => put(&[0x02]),
        param::GRATUITOUS_ARP_INTERVAL => put(&[0x00]),
        param::DEFAULT_GATEWAY => put(&lan.ipv4_gateway()),
        // The gateway's MAC is the kernel's neighbour table's business.
        param::DEFAULT_GATEWAY_MAC | param::BACKUP_GATEWAY_MAC => put(&[0; 6]),
        param::BACKUP_GATEWAY => put(&[0; 4]),
        // No alerts are sent; the spec's default string.
        param::COMMUNITY_STRING => {
            let mut s = [0u8; 18];
            s[..6].copy_from_slice(b"public");
            put(&s)
        }
        param::DESTINATIONS => put(&[0x00]),
        param::VLAN_ID => put(&[0x00, 0x00]),
        param::VLAN_PRIORITY => put(&[0x00]),
        param::CIPHER_SUITE_SUPPORT => put(&[ctx.config.cipher_suites.iter().count() as u8]),
        param::CIPHER_SUITE_ENTRIES => {
            // A reserved byte, then up to 16 suite IDs.
            let mut e = [0u8; 17];
            for (slot, suite) in e[1..].iter_mut().zip(ctx.config.cipher_suites.iter()) {
                *slot = suite.id;
            }
            put(&e)
        }
        param::CIPHER_SUITE_PRIVILEGES => {
            // A reserved byte, then sixteen nibbles, low nibble first. The
            // spec ties them to entries of parameter 23, but ipmitool
            // (`cipher_privs`) and FreeIPMI (`Rmcpplus_Conf_Privilege`)
            // both read nibble N as cipher suite ID N, so that is how they
            // are filled: every enabled suite reaches Administrator (a
            // user's own limit still applies), others are 0, unused.
            // Suites above 15 (17) have no nibble in either reading.
            let mut p = [0u8; 9];
            let admin = Privilege::Administrator.level();
            for suite in ctx.config.cipher_suites.iter() {
                let id = usize::from(suite.id);
                if id < 16 {
                    p[1 + id / 2] |= if id % 2 == 0 { admin } else { admin << 4 };
                }
            }
            put(&p)
        }
        // Threshold 0: no lockout after bad passwords.
        param::BAD_PASSWORD_THRESHOLD => put(&[0; 6]),
        // Each node has one address, so one family: IPv6-only operation is
        // supported (bit 0), dual stack is not.
        param::IPV6_IPV4_SUPPORT => put(&[0x01]),
        param::IPV6_IPV4_ENABLES => put(&[u8::from(v6.is_some())]),
        // One static address, no dynamic ones, neither DHCPv6 nor SLAAC.
        param::IPV6_STATUS => put(&[1, 0, 0]),
        param::IPV6_STATIC_ADDRESSES => {
            if set != 0 {
                return Err(CompletionCode::PARAMETER_OUT_OF_RANGE);
            }
            let mut a = [0u8; 20];
            a[0] = set;
            if let Some(ip) = v6 {
                // Enabled (bit 7), source static (0); status 0, active.
                a[1] = 0x80;
                a[2..18].copy_from_slice(&ip.octets());
                a[18] = lan.prefix_len.min(128);
                a[19] = 0x00;
            } else {
                // Status 1: disabled.
                a[19] = 0x01;
            }
            put(&a)
        }
        // The IPv6 gateway is static router 1 (bit 0: static router
        // addresses enabled); no dynamic routers, no router 2. Its MAC is
        // the neighbour table's business; its prefix is the node's.
        param::IPV6_ROUTER_CONTROL => put(&[u8::from(v6_gateway(lan).is_some())]),
        param::IPV6_ROUTER_1_ADDRESS => put(&v6_gateway(lan).map_or([0; 16], |g| g.octets())),
        param::IPV6_ROUTER_1_PREFIX_LENGTH => put(&[v6.map_or(0, |_| lan.prefix_len.min(128))]),
        param::IPV6_ROUTER_1_PREFIX => put(&v6.map_or([0; 16], |a| {
            let bits = u32::from(lan.prefix_len.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            (u128::from(a) & mask).to_be_bytes()
        })),
        param::IPV6_ROUTER_1_MAC | param::IPV6_ROUTER_2_MAC => put(&[0; 6]),
        param::IPV6_ROUTER_2_ADDRESS | param::IPV6_ROUTER_2_PREFIX => put(&[0; 16]),
        param::IPV6_ROUTER_2_PREFIX_LENGTH => put(&[0]),
        _ => Err(CompletionCode::PARAMETER_NOT_SUPPORTED),
    }
}

/// The node's IPv6 gateway, if it has one.
fn v6_gateway(lan: &crate::platform::LanInfo) -> Option<std::net::Ipv6Addr> {
    match lan.gateway {
        Some(std::net::IpAddr::V6(g)) => Some(g),
        _ => None,
    }
}

/// Set LAN Configuration Parameters (section 23.1). Only "set in progress"
/// is writable, as the spec allows for a BMC with nothing to commit: 1
/// takes it (81 if taken), 0 releases it, 2 ("commit write") has nothing
/// to commit. Every other known parameter is read-only (82); unknown ones
/// are not supported (80).
pub(super) fn set(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [channel, parameter, data @ ..] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    if !is_our_channel(*channel) || channel & 0xf0 != 0 {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    if *parameter != param::SET_IN_PROGRESS {
        let mut probe = [0u8; MAX_DATA];
        return match parameter_data(ctx, *parameter, 0, &mut probe) {
            Err(CompletionCode::PARAMETER_NOT_SUPPORTED) => {
                Handled::code(CompletionCode::PARAMETER_NOT_SUPPORTED)
            }
            _ => Handled::code(READ_ONLY),
        };
    }
    let [value] = data else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    let state = &mut ctx.platform.lan_set_in_progress;
    match value & 0x03 {
        0 => *state = 0,
        1 if *state == 1 => return Handled::code(SET_IN_PROGRESS),
        1 => *state = 1,
        2 => {}
        _ => return Handled::code(CompletionCode::INVALID_DATA_FIELD),
    }
    Handled::ok(&[])
}
