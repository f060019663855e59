//! Layout (b), a port, NIC and subnet per node: for each node a network
//! (or one shared network), a subnet holding the node's address with DHCP
//! off, that subnet attached to the router, a port with the node's
//! address attached to the BMC instance (Nova's interface attach, which
//! hot-plugs a NIC); then, on the BMC instance, the node's address on
//! that NIC (found by the port's MAC) and the node's route for the routes
//! file: its table, the subnet's gateway, the NIC.
//!
//! Each step looks first and makes only what is missing, so a run stopped
//! halfway (a quota, a refusal, a NIC that never came) is finished by the
//! next one; the nodes done before a failure keep their routes.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde_json::{Value, json};

use super::cloud::{Call, Mode, NetError};
use super::context::{Node, Run};
use super::resources::{self, HasCommon, Kind, Network, Port, Router, Subnet};
use super::routes_file::{self, Entry};
use crate::backend::nova::client::Api;
use crate::config::Layout;
use crate::config::network::{node_gateway, node_subnet};

/// A node whose cloud side is done, waiting for its NIC.
#[derive(Debug)]
struct Plugged {
    node: Node,
    subnet: IpNet,
    gateway: std::net::IpAddr,
    port: Port,
}

/// Provisions `nodes`; the routes of those it finished (with `previous`
/// entries' tables kept), and the error that stopped it, if any.
pub async fn apply(
    run: &mut Run<'_>,
    nodes: &[Node],
    previous: &BTreeMap<String, Entry>,
    reserved_tables: &BTreeSet<u32>,
) -> (BTreeMap<String, Entry>, Option<NetError>) {
    let mut plugged = Vec::new();
    let error = cloud_side(run, nodes, &mut plugged).await.err();
    let (routes, host_error) = host_side(run, plugged, previous, reserved_tables).await;
    (routes, error.or(host_error))
}

async fn cloud_side(
    run: &mut Run<'_>,
    nodes: &[Node],
    plugged: &mut Vec<Plugged>,
) -> Result<(), NetError> {
    let Layout::NicPerNode {
        router: router_name,
        shared_network,
        security_groups,
        ..
    } = &run.config.layout
    else {
        return Ok(());
    };
    let (router_name, shared_network) = (router_name.clone(), *shared_network);
    // The configuration checks its own nodes; discovered ones are checked
    // here.
    let mut seen: BTreeMap<IpNet, &str> = BTreeMap::new();
    for n in nodes {
        if let Some(cidr) = node_subnet(&run.config.layout, n.address)
            && let Some(other) = seen.insert(cidr, &n.name)
        {
            return Err(NetError::Mismatch(format!(
                "nodes {other} and {} are both in subnet {cidr}: layout \"nic-per-node\" gives \
                 each node a subnet of its own (give them addresses further apart: a discovery \
                 pool does that with block = {}; or a longer network.prefix_len)",
                n.name,
                cidr.prefix_len()
            )));
        }
    }
    let groups = match security_groups {
        Some(names) => Some(group_ids(run, &names.clone()).await?),
        None => None,
    };
    let bmc = run.bmc()?.clone();
    let router = router(run, &router_name).await?;
    let attached: Vec<Port> = if router.common.id.starts_with('<') {
        Vec::new()
    } else {
        resources::list(&run.cloud, Kind::Port, &[("device_id", &router.common.id)]).await?
    };
    let attached: BTreeSet<String> = attached
        .iter()
        .flat_map(|p| p.fixed_ips.iter().map(|f| f.subnet_id.clone()))
        .collect();
    let shared = if shared_network {
        let name = run.marks.prefix.clone();
        Some(network(run, "bmc", &name).await?)
    } else {
        None
    };
    for node in nodes {
        let Some(cidr) = node_subnet(&run.config.layout, node.address) else {
            continue;
        };
        let subject = node.name.as_str();
        let name = run.marks.node(&node.name);
        let net = match &shared {
            Some(n) => n.clone(),
            None => network(run, subject, &name).await?,
        };
        let subnet = subnet(run, subject, &name, &net, cidr).await?;
        let gateway = subnet.gateway_ip.unwrap_or_else(|| node_gateway(&cidr));
        let what = format!("interface of router {router_name} on subnet {name}");
        if attached.contains(&subnet.common.id) {
            run.report.present(subject, what, gateway.to_string());
        } else {
            run.cloud
                .change(
                    &format!("add subnet {name} to router {router_name}"),
                    Call::put(
                        Api::Network,
                        &["routers", &router.common.id, "add_router_interface"],
                        Some(json!({"subnet_id": subnet.common.id})),
                    ),
                    Value::Null,
                )
                .await?;
            run.report.made(subject, what, gateway.to_string());
        }
        let port = port(run, subject, &name, &net, &subnet, node, groups.as_deref()).await?;
        let what = format!("port {name} attached to server {}", bmc.name);
        if port.device_id == bmc.id {
            run.report.present(subject, what, port.mac_address.clone());
        } else if port.device_id.is_empty() {
            let v = run
                .cloud
                .change(
                    &format!("attach port {name} to server {}", bmc.name),
                    Call::post(
                        Api::Compute,
                        &["servers", &bmc.id, "os-interface"],
                        json!({"interfaceAttachment": {"port_id": port.common.id}}),
                    ),
                    Value::Null,
                )
                .await?;
            let mac = v["interfaceAttachment"]["mac_addr"]
                .as_str()
                .unwrap_or(&port.mac_address)
                .to_string();
            run.report.made(subject, what, mac);
        } else {
            return Err(NetError::Mismatch(format!(
                "node {}: port {name} is bound to another device ({} {}); detach it or run \
                 `novabmc network destroy`",
                node.name, port.device_owner, port.device_id
            )));
        }
        plugged.push(Plugged {
            node: node.clone(),
            subnet: cidr,
            gateway,
            port,
        });
    }
    Ok(())
}

/// The router: the operator's (used, never changed), or novabmc's own,
/// made when there is none of that name.
async fn router(run: &mut Run<'_>, name: &str) -> Result<Router, NetError> {
    if let Some(r) = run
        .ours
        .routers
        .iter()
        .find(|r| r.common.name == name || r.common.id == name)
        .cloned()
    {
        resources::tag(&mut run.cloud, Kind::Router, &run.marks, &r.common).await?;
        run.report.present(
            "router",
            format!("router {name}"),
            format!("novabmc's, {}", r.common.id),
        );
        return Ok(r);
    }
    if let Some(r) =
        resources::named::<Router>(&run.cloud, Kind::Router, name, "network.router").await?
    {
        run.report
            .present("router", format!("router {name}"), r.common.id.clone());
        return Ok(r);
    }
    let r: Router =
        resources::create(&mut run.cloud, Kind::Router, &run.marks, name, json!({})).await?;
    run.report.made(
        "router",
        format!("router {name}"),
        "no external gateway: give it one, or attach the conductors' subnet",
    );
    Ok(r)
}

/// One of novabmc's resources by name, tagged if a stopped run left it
/// untagged.
async fn found<T: HasCommon + Clone>(
    run: &mut Run<'_>,
    kind: Kind,
    list: &[T],
    name: &str,
) -> Result<Option<T>, NetError> {
    let Some(item) = list.iter().find(|x| x.common().name == name).cloned() else {
        return Ok(None);
    };
    resources::tag(&mut run.cloud, kind, &run.marks, item.common()).await?;
    Ok(Some(item))
}

async fn network(run: &mut Run<'_>, subject: &str, name: &str) -> Result<Network, NetError> {
    let what = format!("network {name}");
    if let Some(n) = found(run, Kind::Network, &run.ours.networks.clone(), name).await? {
        run.report.present(subject, what, n.common.id.clone());
        return Ok(n);
    }
    let n: Network =
        resources::create(&mut run.cloud, Kind::Network, &run.marks, name, json!({})).await?;
    run.report.made(subject, what, n.common.id.clone());
    run.ours.networks.push(n.clone());
    Ok(n)
}

async fn subnet(
    run: &mut Run<'_>,
    subject: &str,
    name: &str,
    net: &Network,
    cidr: IpNet,
) -> Result<Subnet, NetError> {
    let what = format!("subnet {name} {cidr}");
    let existing = run
        .ours
        .subnets
        .iter()
        .find(|s| s.common.name == name && s.network_id == net.common.id)
        .cloned();
    if let Some(s) = existing {
        if s.cidr.parse::<IpNet>().ok().map(|c| c.trunc()) != Some(cidr) {
            return Err(NetError::Mismatch(format!(
                "node {subject}: subnet {name} is {} but the node's address wants {cidr}; \
                 run `novabmc network destroy` and apply again",
                s.cidr
            )));
        }
        resources::tag(&mut run.cloud, Kind::Subnet, &run.marks, &s.common).await?;
        run.report.present(subject, what, s.common.id.clone());
        return Ok(s);
    }
    let gateway = node_gateway(&cidr);
    let s: Subnet = resources::create(
        &mut run.cloud,
        Kind::Subnet,
        &run.marks,
        name,
        json!({"network_id": net.common.id, "cidr": cidr.to_string(),
            "ip_version": if cidr.addr().is_ipv4() { 4 } else { 6 },
            "gateway_ip": gateway.to_string(), "enable_dhcp": false}),
    )
    .await?;
    run.report.made(subject, what, s.common.id.clone());
    run.ours.subnets.push(s.clone());
    Ok(s)
}

/// The IDs of the security groups `[network] security_groups` names.
async fn group_ids(run: &Run<'_>, names: &[String]) -> Result<Vec<String>, NetError> {
    let mut ids = Vec::new();
    for name in names {
        let v = run
            .cloud
            .read(
                &format!("find security group {name}"),
                Call::get(Api::Network, &["security-groups"]),
            )
            .await?;
        let found: Vec<&str> = v["security_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["id"] == name.as_str() || g["name"] == name.as_str())
            .filter_map(|g| g["id"].as_str())
            .collect();
        match found.as_slice() {
            [id] => ids.push(id.to_string()),
            [] => {
                return Err(NetError::Mismatch(format!(
                    "network.security_groups: the cloud has no security group {name:?}"
                )));
            }
            _ => {
                return Err(NetError::Mismatch(format!(
                    "network.security_groups: {} security groups are named {name:?}; give \
                     its ID",
                    found.len()
                )));
            }
        }
    }
    Ok(ids)
}

async fn port(
    run: &mut Run<'_>,
    subject: &str,
    name: &str,
    net: &Network,
    subnet: &Subnet,
    node: &Node,
    groups: Option<&[String]>,
) -> Result<Port, NetError> {
    let what = format!("port {name} {}", node.address);
    if let Some(p) = found(run, Kind::Port, &run.ours.ports.clone(), name).await? {
        if !p.fixed_ips.iter().any(|f| f.ip_address == node.address) {
            return Err(NetError::Mismatch(format!(
                "node {subject}: port {name} holds {:?}, not the node's address {}; run \
                 `novabmc network destroy` and apply again",
                p.fixed_ips
                    .iter()
                    .map(|f| f.ip_address.to_string())
                    .collect::<Vec<_>>(),
                node.address
            )));
        }
        run.report.present(subject, what, p.common.id.clone());
        if let Some(wanted) = groups {
            let mut have = p.security_groups.clone();
            let mut want = wanted.to_vec();
            have.sort();
            want.sort();
            if have != want {
                run.cloud
                    .change(
                        &format!("set the security groups of port {name}"),
                        Call::put(
                            Api::Network,
                            &["ports", &p.common.id],
                            Some(json!({"port": {"security_groups": want}})),
                        ),
                        Value::Null,
                    )
                    .await?;
                run.report.changed(
                    subject,
                    format!("security groups of port {name}"),
                    want.join(", "),
                );
            }
        }
        return Ok(p);
    }
    let mut attributes = json!({"network_id": net.common.id,
        "fixed_ips": [{"subnet_id": subnet.common.id, "ip_address": node.address.to_string()}]});
    if let Some(g) = groups {
        attributes["security_groups"] = json!(g);
    }
    let p: Port =
        resources::create(&mut run.cloud, Kind::Port, &run.marks, name, attributes).await?;
    run.report.made(subject, what, p.common.id.clone());
    run.ours.ports.push(p.clone());
    Ok(p)
}

/// On the BMC instance: waits for the NICs, configures each node's
/// address and makes its route. Elsewhere: the routes without interface
/// (the NIC holding the address is used), nothing configured.
async fn host_side(
    run: &mut Run<'_>,
    plugged: Vec<Plugged>,
    previous: &BTreeMap<String, Entry>,
    reserved_tables: &BTreeSet<u32>,
) -> (BTreeMap<String, Entry>, Option<NetError>) {
    let Layout::NicPerNode { table_base, .. } = run.config.layout else {
        return (BTreeMap::new(), None);
    };
    let mut used: BTreeSet<u32> = reserved_tables.clone();
    used.extend(
        previous
            .iter()
            .filter(|(n, _)| plugged.iter().any(|p| &p.node.name == *n))
            .map(|(_, e)| e.table),
    );
    let mut routes = BTreeMap::new();
    let table_of = |node: &str, used: &mut BTreeSet<u32>| -> u32 {
        if let Some(e) = previous.get(node) {
            return e.table;
        }
        let t = routes_file::free_table(table_base, used);
        used.insert(t);
        t
    };
    let Some(host) = run.host.clone() else {
        for p in &plugged {
            run.report.skipped(
                &p.node.name,
                format!("address {} on its NIC", p.node.address),
                "not running on the BMC instance (no local NIC has the MAC of its ports)",
            );
            let table = table_of(&p.node.name, &mut used);
            routes.insert(
                p.node.name.clone(),
                Entry {
                    table,
                    gateway: p.gateway,
                    interface: None,
                },
            );
        }
        return (routes, None);
    };
    let macs: Vec<String> = plugged
        .iter()
        .map(|p| p.port.mac_address.clone())
        .filter(|m| !m.is_empty())
        .collect();
    let wait = if run.cloud.mode() == Mode::Apply {
        run.wait
    } else {
        std::time::Duration::ZERO
    };
    let nics = match host.wait_for(&macs, wait).await {
        Ok(n) => n,
        Err(e) => return (routes, Some(e)),
    };
    let have = match host.addresses().await {
        Ok(a) => a,
        Err(e) => return (routes, Some(e)),
    };
    let mut missing = Vec::new();
    for p in &plugged {
        let subject = p.node.name.as_str();
        let what = format!("address {}/{}", p.node.address, p.subnet.prefix_len());
        let Some(nic) = nics
            .iter()
            .find(|n| n.mac.eq_ignore_ascii_case(&p.port.mac_address))
        else {
            if run.cloud.mode() == Mode::Apply {
                missing.push(format!("{subject} (port MAC {})", p.port.mac_address));
            } else {
                run.report
                    .made(subject, what, "on the NIC the attach hot-plugs");
            }
            continue;
        };
        let present = have.iter().any(|a| {
            a.index == nic.index && a.ip == p.node.address && a.prefix == p.subnet.prefix_len()
        }) && nic.up;
        if present {
            run.report.present(subject, what, nic.name.clone());
        } else if run.cloud.mode() == Mode::Apply {
            match host
                .ensure(nic, p.node.address, p.subnet.prefix_len(), &have)
                .await
            {
                Ok(done) => run.report.made(subject, what, done.join(", ")),
                Err(e) => return (routes, Some(e)),
            }
        } else {
            run.report.made(subject, what, nic.name.clone());
        }
        let table = table_of(subject, &mut used);
        routes.insert(
            p.node.name.clone(),
            Entry {
                table,
                gateway: p.gateway,
                interface: Some(nic.name.clone()),
            },
        );
    }
    let error = (!missing.is_empty()).then(|| {
        NetError::Host(format!(
            "no NIC appeared within {:?} for {}: the cloud attached the ports, but the \
             instance has not shown the NICs; run `novabmc network apply` again once it has",
            run.wait,
            missing.join(", ")
        ))
    });
    (routes, error)
}
