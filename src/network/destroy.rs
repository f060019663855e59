//! `novabmc network destroy`: takes away exactly what novabmc made under
//! its `[network]` name, whatever the configuration says now (nodes
//! removed since included), in the order the cloud accepts: the node
//! ports detached from the BMC instance, the node addresses taken off its
//! NICs and out of its port's allowed address pairs, the subnets taken
//! off the router, then ports, subnets, networks, novabmc's router, its
//! images, and the routes file; and the ports discovery's `new-port` mode
//! made for servers. Anyone else's resources, the operator's
//! router included, are left alone; a run stopped halfway is finished by
//! the next.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::cloud::{Call, NetError};
use super::context::Run;
use super::images;
use super::one_nic::our_pairs;
use super::resources::{self, Kind, Port};
use super::routes_file;
use crate::addressing::ports::DISCOVERY_TAG;
use crate::backend::nova::client::Api;

/// Removes everything of novabmc's; stops at the first refusal.
pub async fn destroy(run: &mut Run<'_>) -> Result<(), NetError> {
    let mut ours = std::mem::take(&mut run.ours);
    // The ports discovery's `new-port` mode made are novabmc's too: they
    // go with the rest (a running daemon's discovery makes them again).
    let discovery_tags = format!("{},{}", resources::TAG, DISCOVERY_TAG);
    let made: Vec<Port> =
        resources::list(&run.cloud, Kind::Port, &[("tags", &discovery_tags)]).await?;
    for p in made {
        if !ours.ports.iter().any(|o| o.common.id == p.common.id) {
            ours.ports.push(p);
        }
    }
    let our_addresses: Vec<IpAddr> = ours
        .ports
        .iter()
        .flat_map(|p| p.fixed_ips.iter().map(|f| f.ip_address))
        .collect();
    // The node ports the BMC instance (or any server) holds.
    for p in ours
        .ports
        .iter()
        .filter(|p| p.device_owner.starts_with("compute:") && !p.device_id.is_empty())
    {
        let r = run
            .cloud
            .change(
                &format!("detach port {} from server {}", p.common.name, p.device_id),
                Call::delete(
                    Api::Compute,
                    &["servers", &p.device_id, "os-interface", &p.common.id],
                ),
                Value::Null,
            )
            .await;
        match r {
            Err(e) if e.status() == Some(404) => {}
            r => {
                r?;
            }
        }
        run.report.removed(
            &node_of(run, p),
            format!("port {} on server {}", p.common.name, p.device_id),
            "detached",
        );
    }
    // The node addresses in the BMC port's allowed address pairs.
    for bmc_port in run.bmc_ports.clone() {
        let pairs = our_pairs(&bmc_port, &ours.ports);
        if pairs.is_empty() {
            continue;
        }
        let keep: Vec<Value> = bmc_port
            .allowed_address_pairs
            .iter()
            .flatten()
            .filter(|p| !pairs.contains(&p.ip_address))
            .map(|p| match &p.mac_address {
                Some(m) => json!({"ip_address": p.ip_address, "mac_address": m}),
                None => json!({"ip_address": p.ip_address}),
            })
            .collect();
        run.cloud
            .change(
                &format!(
                    "remove {} from the allowed address pairs of port {}",
                    pairs.join(", "),
                    bmc_port.common.id
                ),
                Call::put(
                    Api::Network,
                    &["ports", &bmc_port.common.id],
                    Some(json!({"port": {"allowed_address_pairs": keep}})),
                ),
                Value::Null,
            )
            .await?;
        run.report.removed(
            "bmc",
            format!("allowed address pairs of port {}", bmc_port.common.id),
            pairs.join(", "),
        );
    }
    // The node addresses on this instance's NICs.
    if let Some(host) = run.host.clone() {
        let have = host.addresses().await?;
        for ip in &our_addresses {
            if !have.iter().any(|a| a.ip == *ip) {
                continue;
            }
            if run.cloud.mode() == super::cloud::Mode::Apply {
                host.remove(*ip, &have).await?;
            }
            run.report.removed("bmc", format!("address {ip}"), "");
        }
    }
    // The subnets off whichever router holds them.
    for s in &ours.subnets {
        let interfaces: Vec<Port> = resources::list(
            &run.cloud,
            Kind::Port,
            &[
                ("device_owner", "network:router_interface"),
                ("network_id", &s.network_id),
            ],
        )
        .await?;
        for i in interfaces
            .iter()
            .filter(|i| i.fixed_ips.iter().any(|f| f.subnet_id == s.common.id))
        {
            let r = run
                .cloud
                .change(
                    &format!(
                        "remove subnet {} from router {}",
                        s.common.name, i.device_id
                    ),
                    Call::put(
                        Api::Network,
                        &["routers", &i.device_id, "remove_router_interface"],
                        Some(json!({"subnet_id": s.common.id})),
                    ),
                    Value::Null,
                )
                .await;
            match r {
                Err(e) if e.status() == Some(404) => {}
                r => {
                    r?;
                }
            }
            run.report.removed(
                "router",
                format!("interface on subnet {}", s.common.name),
                i.device_id.clone(),
            );
        }
    }
    for p in &ours.ports {
        resources::delete(&mut run.cloud, Kind::Port, &p.common).await?;
        run.report.removed(
            &node_of(run, p),
            format!("port {}", p.common.name),
            p.common.id.clone(),
        );
    }
    for s in &ours.subnets {
        resources::delete(&mut run.cloud, Kind::Subnet, &s.common).await?;
        run.report.removed(
            "network",
            format!("subnet {}", s.common.name),
            s.common.id.clone(),
        );
    }
    for n in &ours.networks {
        resources::delete(&mut run.cloud, Kind::Network, &n.common).await?;
        run.report.removed(
            "network",
            format!("network {}", n.common.name),
            n.common.id.clone(),
        );
    }
    for r in &ours.routers {
        resources::delete(&mut run.cloud, Kind::Router, &r.common).await?;
        run.report.removed(
            "router",
            format!("router {}", r.common.name),
            r.common.id.clone(),
        );
    }
    let marks = run.marks.clone();
    for i in images::ours(run, &marks).await? {
        let name = i.name.clone().unwrap_or_default();
        let r = run
            .cloud
            .change(
                &format!("delete image {name} ({})", i.id),
                Call::delete(Api::Image, &["images", &i.id]),
                Value::Null,
            )
            .await;
        match r {
            Err(e) if e.status() == Some(404) => {}
            r => {
                r?;
            }
        }
        run.report
            .removed("images", format!("image {name}"), i.id.clone());
    }
    let path = run.config.routes_file.clone();
    let exists = std::fs::metadata(&path).is_ok();
    if exists {
        if run.cloud.mode() == super::cloud::Mode::Apply {
            routes_file::remove(&path)?;
        }
        run.report
            .removed("routes", format!("routes file {}", path.display()), "");
    }
    Ok(())
}

/// The node a port was made for, from its name.
fn node_of(run: &Run<'_>, p: &Port) -> String {
    p.common
        .name
        .strip_prefix(&format!("{}-", run.marks.prefix))
        .unwrap_or("network")
        .to_string()
}
