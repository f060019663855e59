//! What every run starts from: the BMC instance (its Nova server and its
//! Neutron ports), the cloud's extensions, what novabmc already made
//! (found by tag), and whether this process runs on the BMC instance (a
//! local NIC has the MAC of one of its ports), in which case the node
//! addresses are configured here.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::cloud::{Call, Cloud, NetError};
use super::host::Host;
use super::report::Report;
use super::resources::{self, Kind, Marks, Network, Port, Router, Subnet};
use crate::backend::nova::client::Api;
use crate::config::NetworkConfig;

/// The BMC instance's server.
#[derive(Debug, Clone)]
pub struct Server {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
}

/// A node as the run provisions it.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's name.
    pub name: String,
    /// Its BMC address.
    pub address: IpAddr,
}

/// What novabmc made before, found by its marks.
#[derive(Debug, Default)]
pub struct Ours {
    /// Networks.
    pub networks: Vec<Network>,
    /// Subnets.
    pub subnets: Vec<Subnet>,
    /// Ports.
    pub ports: Vec<Port>,
    /// Routers.
    pub routers: Vec<Router>,
}

impl Ours {
    /// Reads them all.
    pub async fn read(cloud: &Cloud, marks: &Marks) -> Result<Ours, NetError> {
        Ok(Ours {
            networks: resources::ours(cloud, Kind::Network, marks).await?,
            subnets: resources::ours(cloud, Kind::Subnet, marks).await?,
            ports: resources::ours(cloud, Kind::Port, marks).await?,
            routers: resources::ours(cloud, Kind::Router, marks).await?,
        })
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
            && self.subnets.is_empty()
            && self.ports.is_empty()
            && self.routers.is_empty()
    }
}

/// One run's state.
#[derive(Debug)]
pub struct Run<'a> {
    /// The cloud.
    pub cloud: Cloud,
    /// `[network]`.
    pub config: &'a NetworkConfig,
    /// How novabmc's resources are named and tagged.
    pub marks: Marks,
    /// The BMC instance, if it exists.
    pub bmc: Option<Server>,
    /// Its ports.
    pub bmc_ports: Vec<Port>,
    /// The cloud's extension aliases.
    pub extensions: BTreeSet<String>,
    /// What novabmc made before.
    pub ours: Ours,
    /// The local side, when this runs on the BMC instance.
    pub host: Option<Host>,
    /// How long `apply` waits for hot-plugged NICs.
    pub wait: Duration,
    /// What was found and done.
    pub report: Report,
    /// Said after the report.
    pub notes: Vec<String>,
}

impl<'a> Run<'a> {
    /// Reads the starting point.
    pub async fn start(
        mut cloud: Cloud,
        config: &'a NetworkConfig,
        wait: Duration,
    ) -> Result<Run<'a>, NetError> {
        let marks = Marks::new(&config.name);
        let bmc = find_server(&cloud, &config.bmc_server).await?;
        let mut bmc_ports: Vec<Port> = Vec::new();
        if let Some(s) = &bmc {
            bmc_ports = resources::list(&cloud, Kind::Port, &[("device_id", &s.id)]).await?;
        }
        if let Some(p) = bmc_ports.first()
            && let Some(project) = project_of(&cloud, &p.common.id).await
        {
            cloud.project = Some(project);
        }
        let ext = cloud
            .read(
                "list the network extensions",
                Call::get(Api::Network, &["extensions"]),
            )
            .await?;
        let extensions = ext["extensions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["alias"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let ours = Ours::read(&cloud, &marks).await?;
        let host = local_host(&bmc_ports).await;
        let report = Report::new(cloud.mode());
        Ok(Run {
            cloud,
            config,
            marks,
            bmc,
            bmc_ports,
            extensions,
            ours,
            host,
            wait,
            report,
            notes: Vec::new(),
        })
    }

    /// The BMC server, which every change to it needs.
    pub fn bmc(&self) -> Result<&Server, NetError> {
        self.bmc.as_ref().ok_or_else(|| {
            NetError::Mismatch(format!(
                "network.bmc_server: the cloud has no server {:?}",
                self.config.bmc_server
            ))
        })
    }
}

/// The project of a port (for quota look-ups).
async fn project_of(cloud: &Cloud, port: &str) -> Option<String> {
    let v = cloud
        .read("show a port", Call::get(Api::Network, &["ports", port]))
        .await
        .ok()?;
    v["port"]["project_id"]
        .as_str()
        .or_else(|| v["port"]["tenant_id"].as_str())
        .map(str::to_string)
}

/// The server by ID, else by exact name; several of that name is an
/// error.
pub async fn find_server(cloud: &Cloud, id_or_name: &str) -> Result<Option<Server>, NetError> {
    let of = |v: &Value| Server {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        name: v["name"].as_str().unwrap_or_default().to_string(),
    };
    match cloud
        .read(
            "find the BMC server",
            Call::get(Api::Compute, &["servers", id_or_name]),
        )
        .await
    {
        Ok(v) => return Ok(Some(of(&v["server"]))),
        Err(e) if e.status() == Some(404) => {}
        Err(e) => return Err(e),
    }
    let escaped: String = id_or_name
        .chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect();
    let filter = format!("^{escaped}$");
    let v = cloud
        .read(
            "find the BMC server",
            Call::get(Api::Compute, &["servers"]).query(&[("name", &filter)]),
        )
        .await?;
    let found: Vec<Server> = v["servers"]
        .as_array()
        .map(|a| a.iter().map(of).filter(|s| s.name == id_or_name).collect())
        .unwrap_or_default();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.into_iter().next()),
        n => Err(NetError::Mismatch(format!(
            "network.bmc_server: {n} servers are named {id_or_name:?}; give its ID"
        ))),
    }
}

/// The host side, when a local NIC has the MAC of one of the BMC
/// instance's ports (this process runs there).
async fn local_host(bmc_ports: &[Port]) -> Option<Host> {
    let host = Host::connect().ok()?;
    let nics = host.nics().await.ok()?;
    let local = bmc_ports.iter().any(|p| {
        nics.iter()
            .any(|n| n.mac.eq_ignore_ascii_case(&p.mac_address))
    });
    local.then_some(host)
}
