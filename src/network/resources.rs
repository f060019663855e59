//! Neutron's networks, subnets, ports and routers as novabmc reads them
//! (only the fields it decides on), how novabmc marks what it made, and
//! the reads and changes on them.
//!
//! Everything novabmc creates is named `novabmc-NAME-NODE` (`NAME` the
//! `[network]` name, by default the BMC server's), described
//! `novabmc:NAME` in the create call itself, and then tagged `novabmc`
//! and `novabmc:NAME`. The tags are what `destroy` and the next `apply`
//! look for; the description finds a resource whose tags were not added
//! yet (a run stopped between the two calls), which is then tagged: so
//! nothing is made twice, and nothing of anyone else's is ever taken.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Value, json};

use super::cloud::{Call, Cloud, NetError, stand_in};
use crate::backend::nova::client::Api;

/// The tag every novabmc resource carries.
pub const TAG: &str = "novabmc";

/// How novabmc marks what it made for one `[network]` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marks {
    /// `novabmc:NAME`: the instance tag and the description.
    pub instance: String,
    /// `novabmc-NAME`: the prefix of names.
    pub prefix: String,
}

impl Marks {
    /// The marks of `[network] name`.
    pub fn new(name: &str) -> Marks {
        Marks {
            instance: format!("{TAG}:{name}"),
            prefix: format!("{TAG}-{name}"),
        }
    }

    /// The name of a node's resource.
    pub fn node(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// Both tags.
    pub fn tags(&self) -> [&str; 2] {
        [TAG, &self.instance]
    }

    /// Whether a resource carries both tags.
    pub fn tagged(&self, tags: &[String]) -> bool {
        self.tags().iter().all(|t| tags.iter().any(|x| x == t))
    }
}

/// The kinds of Neutron resource novabmc makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A network.
    Network,
    /// A subnet.
    Subnet,
    /// A port.
    Port,
    /// A router.
    Router,
}

impl Kind {
    /// The URL collection.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Network => "networks",
            Kind::Subnet => "subnets",
            Kind::Port => "ports",
            Kind::Router => "routers",
        }
    }

    /// The singular, as bodies and messages name it.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Subnet => "subnet",
            Kind::Port => "port",
            Kind::Router => "router",
        }
    }
}

/// The standard attributes novabmc looks at.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Common {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A network.
#[derive(Debug, Clone, Deserialize)]
pub struct Network {
    /// Standard attributes.
    #[serde(flatten)]
    pub common: Common,
}

/// A subnet.
#[derive(Debug, Clone, Deserialize)]
pub struct Subnet {
    /// Standard attributes.
    #[serde(flatten)]
    pub common: Common,
    /// Its network.
    pub network_id: String,
    /// Its range.
    pub cidr: String,
    /// Its router address.
    #[serde(default)]
    pub gateway_ip: Option<IpAddr>,
}

/// A fixed IP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FixedIp {
    /// Its subnet.
    pub subnet_id: String,
    /// The address.
    pub ip_address: IpAddr,
}

/// An allowed address pair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AddressPair {
    /// Address or range.
    pub ip_address: String,
    /// MAC, if not the port's.
    #[serde(default)]
    pub mac_address: Option<String>,
}

/// A port.
#[derive(Debug, Clone, Deserialize)]
pub struct Port {
    /// Standard attributes.
    #[serde(flatten)]
    pub common: Common,
    /// Its network.
    pub network_id: String,
    /// Its MAC.
    #[serde(default)]
    pub mac_address: String,
    /// Its addresses.
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// The extra sources it may send from (absent without the
    /// extension).
    #[serde(default)]
    pub allowed_address_pairs: Option<Vec<AddressPair>>,
    /// Whether anti-spoofing applies (absent without the extension,
    /// which means it always does).
    #[serde(default)]
    pub port_security_enabled: Option<bool>,
    /// The server or router it is bound to.
    #[serde(default)]
    pub device_id: String,
    /// Who binds it.
    #[serde(default)]
    pub device_owner: String,
    /// Its security groups' IDs.
    #[serde(default)]
    pub security_groups: Vec<String>,
}

/// A router.
#[derive(Debug, Clone, Deserialize)]
pub struct Router {
    /// Standard attributes.
    #[serde(flatten)]
    pub common: Common,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, v: &Value) -> Result<T, NetError> {
    serde_json::from_value(v.clone())
        .map_err(|e| NetError::Mismatch(format!("unreadable {what} from the cloud: {e}")))
}

/// Lists a kind with Neutron filters.
pub async fn list<T: serde::de::DeserializeOwned>(
    cloud: &Cloud,
    kind: Kind,
    filters: &[(&str, &str)],
) -> Result<Vec<T>, NetError> {
    let v = cloud
        .read(
            &format!("list {}", kind.collection()),
            Call::get(Api::Network, &[kind.collection()]).query(filters),
        )
        .await?;
    let items = v[kind.collection()].as_array().cloned().unwrap_or_default();
    items.iter().map(|i| parse(kind.singular(), i)).collect()
}

/// What novabmc made under `marks`, of one kind: tagged, or (left by a
/// run stopped before tagging) described with the instance mark.
pub async fn ours<T: serde::de::DeserializeOwned + HasCommon>(
    cloud: &Cloud,
    kind: Kind,
    marks: &Marks,
) -> Result<Vec<T>, NetError> {
    let tags = marks.tags().join(",");
    let mut found: Vec<T> = list(cloud, kind, &[("tags", &tags)]).await?;
    let described: Vec<T> = list(cloud, kind, &[("description", &marks.instance)]).await?;
    for d in described {
        if !found.iter().any(|f| f.common().id == d.common().id) {
            found.push(d);
        }
    }
    Ok(found)
}

/// Access to the standard attributes.
pub trait HasCommon {
    /// The standard attributes.
    fn common(&self) -> &Common;
}

impl HasCommon for Network {
    fn common(&self) -> &Common {
        &self.common
    }
}
impl HasCommon for Subnet {
    fn common(&self) -> &Common {
        &self.common
    }
}
impl HasCommon for Port {
    fn common(&self) -> &Common {
        &self.common
    }
}
impl HasCommon for Router {
    fn common(&self) -> &Common {
        &self.common
    }
}

/// Creates a resource named `name` with `attributes`, described with the
/// instance mark, then tags it; returns it as Neutron shows it (a
/// stand-in in a dry run).
pub async fn create<T: serde::de::DeserializeOwned>(
    cloud: &mut Cloud,
    kind: Kind,
    marks: &Marks,
    name: &str,
    mut attributes: Value,
) -> Result<T, NetError> {
    attributes["name"] = json!(name);
    attributes["description"] = json!(marks.instance);
    let body = json!({ kind.singular(): attributes.clone() });
    let mut shown = stand_in(kind.singular(), name);
    if let (Some(s), Some(a)) = (shown.as_object_mut(), attributes.as_object()) {
        for (k, v) in a {
            s.entry(k.clone()).or_insert(v.clone());
        }
    }
    let v = cloud
        .change(
            &format!("create {} {name}", kind.singular()),
            Call::post(Api::Network, &[kind.collection()], body),
            json!({ kind.singular(): shown }),
        )
        .await?;
    let item = &v[kind.singular()];
    let common: Common = parse(kind.singular(), item)?;
    tag(cloud, kind, marks, &common).await?;
    parse(kind.singular(), item)
}

/// Adds whichever of novabmc's tags a resource lacks, one call per tag.
pub async fn tag(cloud: &mut Cloud, kind: Kind, marks: &Marks, r: &Common) -> Result<(), NetError> {
    for t in marks.tags() {
        if r.tags.iter().any(|x| x == t) {
            continue;
        }
        cloud
            .change(
                &format!("tag {} {} {t}", kind.singular(), r.name),
                Call::put(Api::Network, &[kind.collection(), &r.id, "tags", t], None),
                Value::Null,
            )
            .await?;
    }
    Ok(())
}

/// Deletes a resource; one already gone is not an error.
pub async fn delete(cloud: &mut Cloud, kind: Kind, r: &Common) -> Result<(), NetError> {
    match cloud
        .change(
            &format!("delete {} {} ({})", kind.singular(), r.name, r.id),
            Call::delete(Api::Network, &[kind.collection(), &r.id]),
            Value::Null,
        )
        .await
    {
        Err(e) if e.status() == Some(404) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// Finds a network, subnet or router the operator names (by ID or exact
/// name); none or several is a mismatch naming what `key` says.
pub async fn named<T: serde::de::DeserializeOwned + HasCommon>(
    cloud: &Cloud,
    kind: Kind,
    id_or_name: &str,
    key: &str,
) -> Result<Option<T>, NetError> {
    let mut by_id: Vec<T> = list(cloud, kind, &[("id", id_or_name)]).await?;
    if let Some(found) = by_id.pop() {
        return Ok(Some(found));
    }
    let mut by_name: Vec<T> = list(cloud, kind, &[("name", id_or_name)]).await?;
    match by_name.len() {
        0 => Ok(None),
        1 => Ok(by_name.pop()),
        n => Err(NetError::Mismatch(format!(
            "{key}: {n} {}s are named {id_or_name:?}; give its ID",
            kind.singular()
        ))),
    }
}
