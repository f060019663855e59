//! BMC addresses from Neutron ports, the two modes beside the pool:
//!
//! - `"port"` ([`ExistingPort`]): a port the operator made for each
//!   server, found by its name or a tag (`bmc-{server}`, where `{server}`
//!   is the server's name and `{id}` its UUID), optionally on one
//!   network; the port's fixed IP is the node's address. Nothing is
//!   recorded: the port is the record.
//! - `"new-port"` ([`MadePort`]): a port novabmc makes for each server on
//!   a network (and subnet) it is told, Neutron allocating the address;
//!   named `novabmc-SERVER`, described and tagged as novabmc's, tagged
//!   with the server's UUID so the next look finds it again. `check` (which
//!   writes nothing) makes none and says the server gets one later. The
//!   ports outlive their servers: novabmc never deletes them.
//!
//! Both read Neutron through the backend's client, once per look.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AddressError, AddressNote, Assignment, Candidate, Cloud};
use crate::backend::nova::client::{Api, NovaClient, RawBody, RawRequest};

/// The tag of every port novabmc makes for a discovered server.
pub const DISCOVERY_TAG: &str = "novabmc:discovery";

/// The prefix of the tag naming the server a made port is for.
pub const SERVER_TAG: &str = "novabmc-server:";

/// `mode = "port"`: the operator's port for each server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingPort {
    /// The port's name, `{server}` and `{id}` replaced.
    pub name: Option<String>,
    /// A tag the port carries, `{server}` and `{id}` replaced.
    pub tag: Option<String>,
    /// Only ports on this network (name or ID).
    pub network: Option<String>,
}

/// `mode = "new-port"`: a port novabmc makes for each server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadePort {
    /// The network (name or ID).
    pub network: String,
    /// The subnet the address comes from (name or ID); Neutron's choice
    /// when none.
    pub subnet: Option<String>,
}

fn pattern(key: &'static str, p: &str) -> Result<(), AddressError> {
    if !p.contains("{server}") && !p.contains("{id}") {
        return Err(AddressError {
            key,
            message: format!(
                "{p:?} would name one port for every server: put {{server}} (the server's \
                 name) or {{id}} (its UUID) in it"
            ),
        });
    }
    Ok(())
}

/// A pattern for one server.
fn fill(p: &str, s: &Candidate<'_>) -> String {
    p.replace("{server}", s.name).replace("{id}", s.id)
}

impl ExistingPort {
    /// Validates the settings.
    pub fn new(
        name: Option<String>,
        tag: Option<String>,
        network: Option<String>,
    ) -> Result<ExistingPort, AddressError> {
        match (&name, &tag) {
            (None, None) => {
                return Err(AddressError {
                    key: "name",
                    message: "mode \"port\" finds each server's port by name or tag: give \
                              name = \"bmc-{server}\" or tag = \"...\""
                        .into(),
                });
            }
            (Some(_), Some(_)) => {
                return Err(AddressError {
                    key: "tag",
                    message: "give name or tag, not both".into(),
                });
            }
            (Some(n), None) => pattern("name", n)?,
            (None, Some(t)) => pattern("tag", t)?,
        }
        Ok(ExistingPort { name, tag, network })
    }

    /// Gives each server its port's address.
    pub async fn assign(
        &self,
        servers: &[Candidate<'_>],
        reserved: &BTreeMap<IpAddr, String>,
        cloud: Cloud<'_>,
    ) -> Assignment {
        let mut out = Assignment::default();
        let ports = match self.ports(cloud).await {
            Ok(p) => p,
            Err(e) => {
                fail_all(&mut out, servers, &e);
                return out;
            }
        };
        for s in servers {
            let (wanted, found): (String, Vec<&Port>) = match (&self.name, &self.tag) {
                (Some(n), _) => {
                    let w = fill(n, s);
                    let f = ports.iter().filter(|p| p.name == w).collect();
                    (format!("named {w}"), f)
                }
                (None, Some(t)) => {
                    let w = fill(t, s);
                    let f = ports.iter().filter(|p| p.tags.contains(&w)).collect();
                    (format!("tagged {w}"), f)
                }
                (None, None) => continue,
            };
            match found.as_slice() {
                [] => out.notes.push(AddressNote::NoPort {
                    server: s.id.to_string(),
                    name: s.name.to_string(),
                    wanted,
                }),
                [p] => give(&mut out, s, p, reserved),
                many => out.notes.push(AddressNote::PortFailed {
                    server: s.id.to_string(),
                    name: s.name.to_string(),
                    why: format!(
                        "{} ports are {wanted} ({}); which one is meant is unclear",
                        many.len(),
                        many.iter()
                            .map(|p| p.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            }
        }
        out
    }

    async fn ports(&self, cloud: Cloud<'_>) -> Result<Vec<Port>, String> {
        let client = cloud
            .client
            .ok_or("no cloud client to read the ports with")?;
        let mut query = Vec::new();
        if let Some(n) = &self.network {
            query.push(("network_id".to_string(), network_id(client, n).await?));
        }
        list_ports(client, query).await
    }
}

impl MadePort {
    /// Validates the settings.
    pub fn new(network: String, subnet: Option<String>) -> Result<MadePort, AddressError> {
        if network.trim().is_empty() {
            return Err(AddressError {
                key: "network",
                message: "mode \"new-port\" needs the network to make the ports on".into(),
            });
        }
        Ok(MadePort { network, subnet })
    }

    /// Gives each server the address of the port made for it, making the
    /// missing ports when `cloud.write`.
    pub async fn assign(
        &self,
        servers: &[Candidate<'_>],
        reserved: &BTreeMap<IpAddr, String>,
        cloud: Cloud<'_>,
    ) -> Assignment {
        let mut out = Assignment::default();
        let Some(client) = cloud.client else {
            fail_all(&mut out, servers, "no cloud client to read the ports with");
            return out;
        };
        let (network, subnet) = match self.place(client).await {
            Ok(p) => p,
            Err(e) => {
                fail_all(&mut out, servers, &e);
                return out;
            }
        };
        let query = vec![
            ("tags".to_string(), format!("novabmc,{DISCOVERY_TAG}")),
            ("network_id".to_string(), network.clone()),
        ];
        let ours = match list_ports(client, query).await {
            Ok(p) => p,
            Err(e) => {
                fail_all(&mut out, servers, &e);
                return out;
            }
        };
        for s in servers {
            let tag = format!("{SERVER_TAG}{}", s.id);
            if let Some(p) = ours.iter().find(|p| p.tags.contains(&tag)) {
                give(&mut out, s, p, reserved);
                continue;
            }
            if !cloud.write {
                out.notes.push(AddressNote::PortToMake {
                    server: s.id.to_string(),
                    name: s.name.to_string(),
                    network: self.network.clone(),
                });
                continue;
            }
            match make_port(client, s, &network, subnet.as_deref(), &tag).await {
                Ok(p) => give(&mut out, s, &p, reserved),
                Err(why) => out.notes.push(AddressNote::PortFailed {
                    server: s.id.to_string(),
                    name: s.name.to_string(),
                    why,
                }),
            }
        }
        out
    }

    /// The network's and subnet's IDs.
    async fn place(&self, client: &NovaClient) -> Result<(String, Option<String>), String> {
        let network = network_id(client, &self.network).await?;
        let subnet = match &self.subnet {
            None => None,
            Some(s) => {
                let list = get(
                    client,
                    "subnets",
                    vec![("network_id".to_string(), network.clone())],
                )
                .await?;
                let found: Vec<&str> = list
                    .iter()
                    .filter(|x| x["id"] == s.as_str() || x["name"] == s.as_str())
                    .filter_map(|x| x["id"].as_str())
                    .collect();
                match found.as_slice() {
                    [id] => Some(id.to_string()),
                    [] => {
                        return Err(format!(
                            "network {} has no subnet {s:?} (discovery.address.subnet)",
                            self.network
                        ));
                    }
                    _ => return Err(format!("several subnets are named {s:?}; give its ID")),
                }
            }
        };
        Ok((network, subnet))
    }
}

impl fmt::Display for ExistingPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, &self.tag) {
            (Some(n), _) => write!(f, "port named {n}")?,
            (None, Some(t)) => write!(f, "port tagged {t}")?,
            (None, None) => f.write_str("port")?,
        }
        if let Some(n) = &self.network {
            write!(f, " on network {n}")?;
        }
        Ok(())
    }
}

impl fmt::Display for MadePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a port made on network {}", self.network)?;
        if let Some(s) = &self.subnet {
            write!(f, ", subnet {s}")?;
        }
        Ok(())
    }
}

/// A port as these modes read it.
#[derive(Clone, Debug, Deserialize)]
struct Port {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    fixed_ips: Vec<FixedIp>,
}

#[derive(Clone, Debug, Deserialize)]
struct FixedIp {
    ip_address: IpAddr,
}

/// Gives server `s` the first address of port `p`, unless that address
/// is someone else's.
fn give(out: &mut Assignment, s: &Candidate<'_>, p: &Port, reserved: &BTreeMap<IpAddr, String>) {
    let Some(ip) = p.fixed_ips.first().map(|f| f.ip_address) else {
        out.notes.push(AddressNote::PortFailed {
            server: s.id.to_string(),
            name: s.name.to_string(),
            why: format!("its port {} has no fixed IP", p.id),
        });
        return;
    };
    if let Some(holder) = reserved.get(&ip) {
        out.notes.push(AddressNote::PortFailed {
            server: s.id.to_string(),
            name: s.name.to_string(),
            why: format!("its port {} holds {ip}, which is {holder}", p.id),
        });
        return;
    }
    out.addresses.insert(s.id.to_string(), ip);
}

/// Neutron cannot be read: a server keeps what this process gave it
/// before (a cloud briefly away stops no node), the others are not
/// served.
fn fail_all(out: &mut Assignment, servers: &[Candidate<'_>], why: &str) {
    for s in servers {
        match s.previous {
            Some(ip) => {
                out.addresses.insert(s.id.to_string(), ip);
            }
            None => out.notes.push(AddressNote::PortFailed {
                server: s.id.to_string(),
                name: s.name.to_string(),
                why: why.to_string(),
            }),
        }
    }
}

/// One Neutron call; the body, or Neutron's refusal in words.
async fn call(
    client: &NovaClient,
    method: Method,
    path: Vec<String>,
    query: Vec<(String, String)>,
    body: RawBody,
) -> Result<Value, String> {
    let text = format!("{method} network /{}", path.join("/"));
    let r = RawRequest {
        api: Api::Network,
        method,
        path,
        query,
        body,
    };
    let a = client
        .raw("discovery_port", &text, &r)
        .await
        .map_err(|e| e.to_string())?;
    if a.ok() {
        return Ok(a.json());
    }
    let v = a.json();
    let e = &v["NeutronError"];
    Err(format!(
        "{text}: Neutron answered {} {}: {}",
        a.status,
        e["type"].as_str().unwrap_or_default(),
        e["message"].as_str().unwrap_or_default()
    ))
}

async fn get(
    client: &NovaClient,
    collection: &str,
    query: Vec<(String, String)>,
) -> Result<Vec<Value>, String> {
    let v = call(
        client,
        Method::GET,
        vec![collection.to_string()],
        query,
        RawBody::Empty,
    )
    .await?;
    let key = collection.replace('-', "_");
    Ok(v[key.as_str()].as_array().cloned().unwrap_or_default())
}

async fn list_ports(
    client: &NovaClient,
    query: Vec<(String, String)>,
) -> Result<Vec<Port>, String> {
    get(client, "ports", query)
        .await?
        .into_iter()
        .map(|p| serde_json::from_value(p).map_err(|e| format!("unreadable port: {e}")))
        .collect()
}

/// A network's ID from its name or ID.
async fn network_id(client: &NovaClient, network: &str) -> Result<String, String> {
    for key in ["id", "name"] {
        let list = get(
            client,
            "networks",
            vec![(key.to_string(), network.to_string())],
        )
        .await?;
        match list.as_slice() {
            [] => continue,
            [n] => return Ok(n["id"].as_str().unwrap_or_default().to_string()),
            _ => {
                return Err(format!(
                    "several networks are named {network:?}; give its ID"
                ));
            }
        }
    }
    Err(format!("the cloud has no network {network:?}"))
}

/// Makes server `s`'s port and tags it.
async fn make_port(
    client: &NovaClient,
    s: &Candidate<'_>,
    network: &str,
    subnet: Option<&str>,
    server_tag: &str,
) -> Result<Port, String> {
    let mut attributes = json!({"network_id": network, "name": format!("novabmc-{}", s.name),
        "description": DISCOVERY_TAG});
    if let Some(sub) = subnet {
        attributes["fixed_ips"] = json!([{"subnet_id": sub}]);
    }
    let v = call(
        client,
        Method::POST,
        vec!["ports".into()],
        Vec::new(),
        RawBody::Json(json!({ "port": attributes })),
    )
    .await?;
    let port: Port =
        serde_json::from_value(v["port"].clone()).map_err(|e| format!("unreadable port: {e}"))?;
    for tag in ["novabmc", DISCOVERY_TAG, server_tag] {
        call(
            client,
            Method::PUT,
            vec!["ports".into(), port.id.clone(), "tags".into(), tag.into()],
            Vec::new(),
            RawBody::Empty,
        )
        .await?;
    }
    tracing::info!(server = %s.name, port = %port.id, "made a BMC port for a discovered server");
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_must_tell_servers_apart() {
        assert!(ExistingPort::new(Some("bmc".into()), None, None).is_err());
        assert!(ExistingPort::new(None, None, None).is_err());
        assert!(ExistingPort::new(Some("a-{server}".into()), Some("t".into()), None).is_err());
        let p =
            ExistingPort::new(None, Some("bmc:{id}".into()), Some("net".into())).expect("valid");
        assert_eq!(p.to_string(), "port tagged bmc:{id} on network net");
        let metadata = std::collections::HashMap::new();
        let c = Candidate {
            id: "u-1",
            name: "bm-0",
            created: "",
            metadata: &metadata,
            previous: None,
        };
        assert_eq!(fill("bmc-{server}/{id}", &c), "bmc-bm-0/u-1");
        assert!(MadePort::new(" ".into(), None).is_err());
    }
}
