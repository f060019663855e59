//! Layout (a), one NIC for every node address: a port per node on the
//! BMC network holding the node's address, so Neutron hands it to nobody
//! else; the addresses as allowed address pairs of the BMC instance's
//! port on that network, so its anti-spoofing lets the replies out (not
//! needed when the port's security is off; impossible, and said so, on a
//! cloud without the allowed-address-pairs extension); and on the BMC
//! instance, the addresses on the NIC of that port. No routes: every
//! reply leaves by the one NIC.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::json;

use super::cloud::{Call, Mode, NetError};
use super::context::{Node, Run};
use super::resources::{self, Kind, Network, Port, Subnet};
use crate::backend::nova::client::Api;
use crate::config::Layout;

/// Provisions `nodes`; the error that stopped it, if any.
pub async fn apply(run: &mut Run<'_>, nodes: &[Node]) -> Option<NetError> {
    cloud_and_host(run, nodes).await.err()
}

async fn cloud_and_host(run: &mut Run<'_>, nodes: &[Node]) -> Result<(), NetError> {
    let Layout::OneNic { network: net_name } = &run.config.layout else {
        return Ok(());
    };
    let net_name = net_name.clone();
    let bmc = run.bmc()?.clone();
    let Some(net) =
        resources::named::<Network>(&run.cloud, Kind::Network, &net_name, "network.network")
            .await?
    else {
        return Err(NetError::Mismatch(format!(
            "network.network: the cloud has no network {net_name:?} (layout \"one-nic\" uses \
             the network of the BMC instance's port)"
        )));
    };
    let subnets: Vec<Subnet> =
        resources::list(&run.cloud, Kind::Subnet, &[("network_id", &net.common.id)]).await?;
    let Some(bmc_port) = run
        .bmc_ports
        .iter()
        .find(|p| p.network_id == net.common.id)
        .cloned()
    else {
        return Err(NetError::Mismatch(format!(
            "server {} has no port on network {net_name}: attach one (openstack server add \
             network {} {net_name}), or choose the network it has",
            bmc.name, bmc.name
        )));
    };
    run.report.present(
        "bmc",
        format!("port of server {} on network {net_name}", bmc.name),
        format!("{} {}", bmc_port.common.id, bmc_port.mac_address),
    );
    let mut addresses: Vec<(IpAddr, u8)> = Vec::new();
    for node in nodes {
        let Some(subnet) = subnets.iter().find(|s| {
            s.cidr
                .parse::<IpNet>()
                .is_ok_and(|c| c.contains(&node.address))
        }) else {
            return Err(NetError::Mismatch(format!(
                "node {}: no subnet of network {net_name} holds its address {}",
                node.name, node.address
            )));
        };
        let prefix = subnet
            .cidr
            .parse::<IpNet>()
            .map(|c| c.prefix_len())
            .unwrap_or(if node.address.is_ipv4() { 32 } else { 128 });
        reserve(run, node, &net, subnet).await?;
        addresses.push((node.address, prefix));
    }
    allow(run, &bmc_port, &addresses).await?;
    configure(run, &bmc_port, &addresses).await
}

/// The node's reservation port.
async fn reserve(
    run: &mut Run<'_>,
    node: &Node,
    net: &Network,
    subnet: &Subnet,
) -> Result<(), NetError> {
    let name = run.marks.node(&node.name);
    let what = format!("port {name} {} (reserves the address)", node.address);
    if let Some(p) = run
        .ours
        .ports
        .iter()
        .find(|p| p.common.name == name)
        .cloned()
    {
        if !p.fixed_ips.iter().any(|f| f.ip_address == node.address) {
            return Err(NetError::Mismatch(format!(
                "node {}: port {name} holds another address than {}; run `novabmc network \
                 destroy` and apply again",
                node.name, node.address
            )));
        }
        resources::tag(&mut run.cloud, Kind::Port, &run.marks, &p.common).await?;
        run.report.present(&node.name, what, p.common.id.clone());
        return Ok(());
    }
    // A port that already holds the address (the one discovery's port
    // modes take it from, or the operator's) reserves it already.
    let ip = node.address.to_string();
    let filter = format!("ip_address={ip}");
    let holders: Vec<Port> = resources::list(
        &run.cloud,
        Kind::Port,
        &[("network_id", &net.common.id), ("fixed_ips", &filter)],
    )
    .await?;
    if let Some(h) = holders.first() {
        if !h.device_id.is_empty() {
            return Err(NetError::Mismatch(format!(
                "node {}: address {ip} is port {}'s, bound to {} {}; give the node a free \
                 address",
                node.name, h.common.id, h.device_owner, h.device_id
            )));
        }
        run.report.present(
            &node.name,
            format!("port {} {ip} (reserves the address)", h.common.name),
            h.common.id.clone(),
        );
        return Ok(());
    }
    let p: Port = resources::create(
        &mut run.cloud,
        Kind::Port,
        &run.marks,
        &name,
        json!({"network_id": net.common.id,
            "fixed_ips": [{"subnet_id": subnet.common.id, "ip_address": node.address.to_string()}]}),
    )
    .await
    .map_err(|e| match e.neutron_kind() {
        Some("IpAddressAlreadyAllocated") => NetError::Mismatch(format!(
            "node {}: address {} is already another port's on network {}; give the node a \
             free address",
            node.name, node.address, net.common.name
        )),
        _ => e,
    })?;
    run.report.made(&node.name, what, p.common.id.clone());
    run.ours.ports.push(p);
    Ok(())
}

/// The host address of an allowed address pair (`10.0.0.5` or
/// `10.0.0.5/32`).
fn pair_host(pair: &str) -> Option<IpAddr> {
    match pair.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => pair
            .parse::<IpNet>()
            .ok()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(|n| n.addr()),
    }
}

/// Whether an allowed pair already covers `ip`.
fn covered(pairs: &[resources::AddressPair], ip: IpAddr) -> bool {
    pairs.iter().any(|p| match p.ip_address.parse::<IpNet>() {
        Ok(n) => n.contains(&ip),
        Err(_) => pair_host(&p.ip_address) == Some(ip),
    })
}

/// The BMC port's allowed address pairs: every node address.
async fn allow(
    run: &mut Run<'_>,
    bmc_port: &Port,
    addresses: &[(IpAddr, u8)],
) -> Result<(), NetError> {
    let what = format!("allowed address pairs of port {}", bmc_port.common.id);
    if bmc_port.port_security_enabled == Some(false) {
        run.report
            .present("bmc", what, "port security is off: every address may leave");
        return Ok(());
    }
    if !run.extensions.contains("allowed-address-pairs") {
        return Err(NetError::Mismatch(format!(
            "the cloud has no allowed-address-pairs extension, so port {} of the BMC \
             instance can only send the node addresses with port security off (openstack port \
             set --no-security-group --disable-port-security {}); or use layout \
             \"nic-per-node\"",
            bmc_port.common.id, bmc_port.common.id
        )));
    }
    let existing = bmc_port.allowed_address_pairs.clone().unwrap_or_default();
    let missing: Vec<IpAddr> = addresses
        .iter()
        .map(|(ip, _)| *ip)
        .filter(|ip| !covered(&existing, *ip))
        .collect();
    if missing.is_empty() {
        run.report
            .present("bmc", what, format!("{} node addresses", addresses.len()));
        return Ok(());
    }
    let mut pairs: Vec<serde_json::Value> = existing
        .iter()
        .map(|p| match &p.mac_address {
            Some(m) => json!({"ip_address": p.ip_address, "mac_address": m}),
            None => json!({"ip_address": p.ip_address}),
        })
        .collect();
    pairs.extend(
        missing
            .iter()
            .map(|ip| json!({"ip_address": ip.to_string()})),
    );
    run.cloud
        .change(
            &format!(
                "allow {} on port {}",
                missing
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                bmc_port.common.id
            ),
            Call::put(
                Api::Network,
                &["ports", &bmc_port.common.id],
                Some(json!({"port": {"allowed_address_pairs": pairs}})),
            ),
            serde_json::Value::Null,
        )
        .await?;
    run.report.changed(
        "bmc",
        what,
        format!(
            "added {}",
            missing
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok(())
}

/// The node addresses on the BMC port's NIC, on the BMC instance.
async fn configure(
    run: &mut Run<'_>,
    bmc_port: &Port,
    addresses: &[(IpAddr, u8)],
) -> Result<(), NetError> {
    let Some(host) = run.host.clone() else {
        run.report.skipped(
            "bmc",
            "node addresses on the NIC",
            "not running on the BMC instance (no local NIC has the MAC of its ports)",
        );
        return Ok(());
    };
    let nics = host.nics().await?;
    let Some(nic) = nics
        .iter()
        .find(|n| n.mac.eq_ignore_ascii_case(&bmc_port.mac_address))
    else {
        return Err(NetError::Host(format!(
            "no NIC has the MAC {} of the BMC port",
            bmc_port.mac_address
        )));
    };
    let have = host.addresses().await?;
    for (ip, prefix) in addresses {
        let what = format!("address {ip}/{prefix}");
        let present = have
            .iter()
            .any(|a| a.index == nic.index && a.ip == *ip && a.prefix == *prefix);
        if present {
            run.report.present("bmc", what, nic.name.clone());
        } else if run.cloud.mode() == Mode::Apply {
            let done = host.ensure(nic, *ip, *prefix, &have).await?;
            run.report.made("bmc", what, done.join(", "));
        } else {
            run.report.made("bmc", what, nic.name.clone());
        }
    }
    Ok(())
}

/// The pairs of `port` that are addresses of novabmc's ports: what
/// `destroy` takes away again.
pub fn our_pairs(port: &Port, ours: &[Port]) -> Vec<String> {
    let addresses: Vec<IpAddr> = ours
        .iter()
        .flat_map(|p| p.fixed_ips.iter().map(|f| f.ip_address))
        .collect();
    port.allowed_address_pairs
        .iter()
        .flatten()
        .filter(|p| pair_host(&p.ip_address).is_some_and(|ip| addresses.contains(&ip)))
        .map(|p| p.ip_address.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_cover_hosts_and_ranges() {
        let pairs = vec![
            resources::AddressPair {
                ip_address: "10.0.0.5".into(),
                mac_address: None,
            },
            resources::AddressPair {
                ip_address: "10.0.1.0/24".into(),
                mac_address: None,
            },
        ];
        assert!(covered(&pairs, "10.0.0.5".parse().expect("ip")));
        assert!(covered(&pairs, "10.0.1.9".parse().expect("ip")));
        assert!(!covered(&pairs, "10.0.0.6".parse().expect("ip")));
        assert_eq!(pair_host("10.0.0.5/32"), "10.0.0.5".parse().ok());
        assert_eq!(pair_host("10.0.0.0/24"), None);
    }
}
