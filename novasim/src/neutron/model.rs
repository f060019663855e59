//! Neutron's resources as the simulator keeps them: networks, subnets
//! (with their allocation pools), ports (fixed IPs allocated from the
//! pools, generated MACs, allowed address pairs, port security, the device
//! they are bound to) and routers, with the rules Neutron applies when they
//! change: IP allocation and its conflicts, overlapping subnets, resources
//! still in use, quotas, and attributes of extensions the cloud lacks.
//!
//! Every refusal is a [`Refusal`] carrying Neutron's error type and
//! wording (`OverQuota`, `IpAddressAlreadyAllocated`, `NetworkInUse`...),
//! which [`super`] turns into Neutron's `{"NeutronError": ...}` body.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Extensions a fresh simulator lists (`GET /v2.0/extensions`).
pub const EXTENSIONS: [(&str, &str); 12] = [
    ("allowed-address-pairs", "Allowed Address Pairs"),
    ("port-security", "Port Security"),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute",
    ),
    ("standard-attr-description", "standard-attr-description"),
    ("router", "Neutron L3 Router"),
    ("extraroute", "Neutron Extra Route"),
    ("external-net", "Neutron external network"),
    ("quotas", "Quota management support"),
    ("quota_details", "Quota details management support"),
    ("binding", "Port Binding"),
    ("security-group", "security-group"),
    ("subnet_allocation", "Subnet Allocation"),
];

/// Neutron's quotas for the one project, `-1` for no limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    /// Networks.
    pub network: i64,
    /// Subnets.
    pub subnet: i64,
    /// Ports (router interfaces included, as Neutron counts them).
    pub port: i64,
    /// Routers.
    pub router: i64,
}

impl Default for Quotas {
    /// Neutron's defaults.
    fn default() -> Self {
        Quotas {
            network: 100,
            subnet: 100,
            port: 500,
            router: 10,
        }
    }
}

/// What tests set through `PUT /_sim/neutron`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NeutronSettings {
    /// The project's quotas.
    pub quotas: Quotas,
    /// Extension aliases the cloud lacks (`allowed-address-pairs`,
    /// `port-security`): they are not listed, and their attributes are
    /// refused as unrecognized.
    pub extensions_off: Vec<String>,
    /// Operations refused by policy (403 `PolicyNotAuthorized`):
    /// `create_port`, `update_port`, `delete_network`,
    /// `add_router_interface`...
    pub forbid: Vec<String>,
}

/// Neutron's refusal: status, error type and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Neutron's exception name (`OverQuota`, `NetworkNotFound`...).
    pub kind: &'static str,
    /// Its message.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Refusal::new(400, "HTTPBadRequest", message)
    }

    pub(crate) fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        Refusal::new(404, kind, message)
    }

    pub(crate) fn in_use(kind: &'static str, message: impl Into<String>) -> Self {
        Refusal::new(409, kind, message)
    }
}

/// The attributes every Neutron resource has (Neutron's "standard
/// attributes").
#[derive(Clone, Debug)]
pub struct Common {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Bumped at every change.
    pub revision_number: u64,
}

impl Common {
    fn json(&self, project: &str) -> Value {
        json!({"id": self.id, "name": self.name, "description": self.description,
            "tags": self.tags, "created_at": self.created_at, "updated_at": self.updated_at,
            "revision_number": self.revision_number, "project_id": project, "tenant_id": project})
    }
}

/// A network.
#[derive(Clone, Debug)]
pub struct Network {
    /// Standard attributes.
    pub common: Common,
    /// New ports' port security, unless they say otherwise.
    pub port_security_enabled: bool,
}

/// A subnet.
#[derive(Clone, Debug)]
pub struct Subnet {
    /// Standard attributes.
    pub common: Common,
    /// Its network.
    pub network_id: String,
    /// Its range.
    pub cidr: IpNet,
    /// The router's address on it, if it has one.
    pub gateway_ip: Option<IpAddr>,
    /// Where addresses are allocated from: first and last of each pool.
    pub allocation_pools: Vec<(IpAddr, IpAddr)>,
    /// Whether Neutron's DHCP serves it.
    pub enable_dhcp: bool,
}

/// One fixed IP of a port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FixedIp {
    /// Its subnet.
    pub subnet_id: String,
    /// The address.
    pub ip_address: IpAddr,
}

/// One allowed address pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressPair {
    /// An address or a range (`10.0.0.5`, `10.0.0.0/24`).
    pub ip_address: String,
    /// The MAC (the port's own unless given).
    pub mac_address: String,
}

/// A port.
#[derive(Clone, Debug)]
pub struct Port {
    /// Standard attributes.
    pub common: Common,
    /// Its network.
    pub network_id: String,
    /// Its MAC, generated.
    pub mac_address: String,
    /// Its addresses.
    pub fixed_ips: Vec<FixedIp>,
    /// Other sources it may send from.
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Whether Neutron filters its traffic (anti-spoofing).
    pub port_security_enabled: bool,
    /// What it is bound to: a server's ID, a router's ID, or nothing.
    pub device_id: String,
    /// `compute:nova`, `network:router_interface`, or nothing.
    pub device_owner: String,
    /// Created by Nova for an interface attach by network (so deleted
    /// when detached), as Nova does.
    pub created_by_nova: bool,
    /// Its security groups' IDs.
    pub security_groups: Vec<String>,
}

/// A router.
#[derive(Clone, Debug)]
pub struct Router {
    /// Standard attributes.
    pub common: Common,
}

/// A security group (its rules are not simulated: they filter nothing
/// here).
#[derive(Clone, Debug)]
pub struct SecurityGroup {
    /// Standard attributes.
    pub common: Common,
}

/// Neutron's state.
#[derive(Clone, Debug, Default)]
pub struct Neutron {
    /// Networks.
    pub networks: Vec<Network>,
    /// Subnets.
    pub subnets: Vec<Subnet>,
    /// Ports.
    pub ports: Vec<Port>,
    /// Routers.
    pub routers: Vec<Router>,
    /// Security groups (the project's `default` first).
    pub security_groups: Vec<SecurityGroup>,
    /// Quotas, missing extensions, policy refusals.
    pub settings: NeutronSettings,
}

/// The kinds of resource that carry tags, by their URL collection name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `networks`.
    Network,
    /// `subnets`.
    Subnet,
    /// `ports`.
    Port,
    /// `routers`.
    Router,
    /// `security-groups`.
    SecurityGroup,
}

impl Kind {
    /// From the URL's collection name.
    pub fn parse(collection: &str) -> Option<Kind> {
        Some(match collection {
            "networks" => Kind::Network,
            "subnets" => Kind::Subnet,
            "ports" => Kind::Port,
            "routers" => Kind::Router,
            "security-groups" => Kind::SecurityGroup,
            _ => return None,
        })
    }

    /// The singular, as Neutron's bodies and quotas name it.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Subnet => "subnet",
            Kind::Port => "port",
            Kind::Router => "router",
            Kind::SecurityGroup => "security_group",
        }
    }

    /// Neutron's not-found exception for the kind.
    pub fn not_found(self, id: &str) -> Refusal {
        let (kind, what) = match self {
            Kind::Network => ("NetworkNotFound", "Network"),
            Kind::Subnet => ("SubnetNotFound", "Subnet"),
            Kind::Port => ("PortNotFound", "Port"),
            Kind::Router => ("RouterNotFound", "Router"),
            Kind::SecurityGroup => ("SecurityGroupNotFound", "Security group"),
        };
        Refusal::not_found(kind, format!("{what} {id} could not be found."))
    }
}

impl Network {
    /// As Neutron shows it.
    pub fn json(&self, n: &Neutron, project: &str) -> Value {
        let mut j = self.common.json(project);
        let subnets: Vec<&str> = n
            .subnets
            .iter()
            .filter(|s| s.network_id == self.common.id)
            .map(|s| s.common.id.as_str())
            .collect();
        j["subnets"] = json!(subnets);
        j["status"] = json!("ACTIVE");
        j["admin_state_up"] = json!(true);
        j["shared"] = json!(false);
        j["mtu"] = json!(1442);
        j["router:external"] = json!(false);
        j["availability_zones"] = json!(["nova"]);
        if n.has_extension("port-security") {
            j["port_security_enabled"] = json!(self.port_security_enabled);
        }
        j
    }
}

impl Subnet {
    /// As Neutron shows it.
    pub fn json(&self, project: &str) -> Value {
        let mut j = self.common.json(project);
        j["network_id"] = json!(self.network_id);
        j["cidr"] = json!(self.cidr.trunc().to_string());
        j["ip_version"] = json!(if self.cidr.addr().is_ipv4() { 4 } else { 6 });
        j["gateway_ip"] = json!(self.gateway_ip);
        j["allocation_pools"] = self
            .allocation_pools
            .iter()
            .map(|(a, b)| json!({"start": a, "end": b}))
            .collect();
        j["enable_dhcp"] = json!(self.enable_dhcp);
        j["dns_nameservers"] = json!([]);
        j["host_routes"] = json!([]);
        j["ipv6_address_mode"] = Value::Null;
        j["ipv6_ra_mode"] = Value::Null;
        j["subnetpool_id"] = Value::Null;
        j
    }
}

impl Port {
    /// As Neutron shows it.
    pub fn json(&self, n: &Neutron, project: &str) -> Value {
        let mut j = self.common.json(project);
        j["network_id"] = json!(self.network_id);
        j["mac_address"] = json!(self.mac_address);
        j["fixed_ips"] = json!(self.fixed_ips);
        j["device_id"] = json!(self.device_id);
        j["device_owner"] = json!(self.device_owner);
        j["status"] = json!(if self.device_id.is_empty() {
            "DOWN"
        } else {
            "ACTIVE"
        });
        j["admin_state_up"] = json!(true);
        j["security_groups"] = json!(self.security_groups);
        j["binding:vnic_type"] = json!("normal");
        j["binding:host_id"] = json!(if self.device_owner.starts_with("compute:") {
            "compute-0"
        } else {
            ""
        });
        if n.has_extension("allowed-address-pairs") {
            j["allowed_address_pairs"] = json!(self.allowed_address_pairs);
        }
        if n.has_extension("port-security") {
            j["port_security_enabled"] = json!(self.port_security_enabled);
        }
        j
    }
}

impl SecurityGroup {
    /// As Neutron shows it.
    pub fn json(&self, project: &str) -> Value {
        let mut j = self.common.json(project);
        j["security_group_rules"] = json!([]);
        j["stateful"] = json!(true);
        j
    }
}

impl Router {
    /// As Neutron shows it.
    pub fn json(&self, project: &str) -> Value {
        let mut j = self.common.json(project);
        j["status"] = json!("ACTIVE");
        j["admin_state_up"] = json!(true);
        j["external_gateway_info"] = Value::Null;
        j["routes"] = json!([]);
        j["availability_zones"] = json!(["nova"]);
        j
    }
}

/// The hosts of `cidr` less its gateway: Neutron's default allocation pool
/// (for IPv4 without the network and broadcast addresses).
pub fn default_pools(cidr: &IpNet, gateway: Option<IpAddr>) -> Vec<(IpAddr, IpAddr)> {
    let (first, last) = host_range(cidr);
    if first > last {
        return Vec::new();
    }
    let v4 = cidr.addr().is_ipv4();
    let gw = gateway.map(to_u128);
    let mut pools = Vec::new();
    match gw {
        Some(g) if g >= first && g <= last => {
            if g > first {
                pools.push((first, g - 1));
            }
            if g < last {
                pools.push((g + 1, last));
            }
        }
        _ => pools.push((first, last)),
    }
    pools
        .into_iter()
        .map(|(a, b)| (from_u128(a, v4), from_u128(b, v4)))
        .collect()
}

/// First and last usable host of `cidr`, as numbers.
fn host_range(cidr: &IpNet) -> (u128, u128) {
    let net = to_u128(cidr.network());
    let last = to_u128(cidr.broadcast());
    match cidr {
        IpNet::V4(_) if cidr.prefix_len() < 31 => (net + 1, last.saturating_sub(1)),
        IpNet::V4(_) => (net, last),
        // Neutron leaves the subnet-router anycast address (the first).
        IpNet::V6(_) => (net + 1, last),
    }
}

/// The first host of `cidr`: Neutron's default gateway.
pub fn first_host(cidr: &IpNet) -> IpAddr {
    from_u128(host_range(cidr).0, cidr.addr().is_ipv4())
}

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

pub(crate) fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from(std::net::Ipv4Addr::from(n as u32))
    } else {
        IpAddr::from(std::net::Ipv6Addr::from(n))
    }
}

impl Neutron {
    /// A project's Neutron: no resources but its `default` security
    /// group, made at `now`.
    pub fn seeded(now: &str, id: String) -> Neutron {
        Neutron {
            security_groups: vec![SecurityGroup {
                common: Common {
                    id,
                    name: "default".into(),
                    description: "Default security group".into(),
                    tags: BTreeSet::new(),
                    created_at: now.to_string(),
                    updated_at: now.to_string(),
                    revision_number: 1,
                },
            }],
            ..Neutron::default()
        }
    }

    /// Reads a port's `security_groups` (IDs that must exist); none
    /// given is the project's `default` when port security is on.
    pub fn security_groups_of(
        &self,
        value: Option<&Value>,
        port_security: bool,
    ) -> Result<Vec<String>, Refusal> {
        let ids: Vec<String> = match value {
            None | Some(Value::Null) => {
                return Ok(if port_security {
                    self.security_groups
                        .iter()
                        .find(|g| g.common.name == "default")
                        .map(|g| vec![g.common.id.clone()])
                        .unwrap_or_default()
                } else {
                    Vec::new()
                });
            }
            Some(v) => v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        };
        for id in &ids {
            if !self.security_groups.iter().any(|g| &g.common.id == id) {
                return Err(Refusal::not_found(
                    "SecurityGroupNotFound",
                    format!("Security group {id} does not exist"),
                ));
            }
        }
        if !ids.is_empty() && !port_security {
            return Err(Refusal::in_use(
                "PortSecurityAndIPRequiredForSecurityGroups",
                "Port security must be enabled and port must have an IP address in order to \
                 use security groups.",
            ));
        }
        Ok(ids)
    }

    /// Whether the cloud has extension `alias`.
    pub fn has_extension(&self, alias: &str) -> bool {
        !self.settings.extensions_off.iter().any(|e| e == alias)
    }

    /// 403 if the policy forbids `operation`.
    pub fn check_policy(&self, operation: &str) -> Result<(), Refusal> {
        if self.settings.forbid.iter().any(|f| f == operation) {
            return Err(Refusal::new(
                403,
                "PolicyNotAuthorized",
                format!("({operation}) is disallowed by policy"),
            ));
        }
        Ok(())
    }

    /// 409 `OverQuota` unless one more `kind` fits the project's quota.
    pub fn check_quota(&self, kind: Kind) -> Result<(), Refusal> {
        let (limit, used) = self.usage(kind);
        if limit >= 0 && used as i64 >= limit {
            return Err(Refusal::new(
                409,
                "OverQuota",
                format!("Quota exceeded for resources: ['{}'].", kind.singular()),
            ));
        }
        Ok(())
    }

    /// A kind's limit and how many exist.
    pub fn usage(&self, kind: Kind) -> (i64, usize) {
        let q = &self.settings.quotas;
        match kind {
            Kind::Network => (q.network, self.networks.len()),
            Kind::Subnet => (q.subnet, self.subnets.len()),
            Kind::Port => (q.port, self.ports.len()),
            Kind::Router => (q.router, self.routers.len()),
            Kind::SecurityGroup => (10, self.security_groups.len()),
        }
    }

    /// The standard attributes of one resource.
    pub fn common_mut(&mut self, kind: Kind, id: &str) -> Option<&mut Common> {
        match kind {
            Kind::Network => self
                .networks
                .iter_mut()
                .map(|x| &mut x.common)
                .find(|c| c.id == id),
            Kind::Subnet => self
                .subnets
                .iter_mut()
                .map(|x| &mut x.common)
                .find(|c| c.id == id),
            Kind::Port => self
                .ports
                .iter_mut()
                .map(|x| &mut x.common)
                .find(|c| c.id == id),
            Kind::Router => self
                .routers
                .iter_mut()
                .map(|x| &mut x.common)
                .find(|c| c.id == id),
            Kind::SecurityGroup => self
                .security_groups
                .iter_mut()
                .map(|x| &mut x.common)
                .find(|c| c.id == id),
        }
    }

    /// One resource as Neutron shows it.
    pub fn show(&self, kind: Kind, id: &str, project: &str) -> Option<Value> {
        match kind {
            Kind::Network => self
                .networks
                .iter()
                .find(|x| x.common.id == id)
                .map(|x| x.json(self, project)),
            Kind::Subnet => self
                .subnets
                .iter()
                .find(|x| x.common.id == id)
                .map(|x| x.json(project)),
            Kind::Port => self
                .ports
                .iter()
                .find(|x| x.common.id == id)
                .map(|x| x.json(self, project)),
            Kind::Router => self
                .routers
                .iter()
                .find(|x| x.common.id == id)
                .map(|x| x.json(project)),
            Kind::SecurityGroup => self
                .security_groups
                .iter()
                .find(|x| x.common.id == id)
                .map(|x| x.json(project)),
        }
    }

    /// Every resource of a kind as Neutron shows them.
    pub fn all(&self, kind: Kind, project: &str) -> Vec<Value> {
        match kind {
            Kind::Network => self
                .networks
                .iter()
                .map(|x| x.json(self, project))
                .collect(),
            Kind::Subnet => self.subnets.iter().map(|x| x.json(project)).collect(),
            Kind::Port => self.ports.iter().map(|x| x.json(self, project)).collect(),
            Kind::Router => self.routers.iter().map(|x| x.json(project)).collect(),
            Kind::SecurityGroup => self
                .security_groups
                .iter()
                .map(|x| x.json(project))
                .collect(),
        }
    }

    /// Whether `ip` is some port's fixed IP on `subnet`.
    fn allocated(&self, subnet: &str, ip: IpAddr) -> Option<&Port> {
        self.ports.iter().find(|p| {
            p.fixed_ips
                .iter()
                .any(|f| f.subnet_id == subnet && f.ip_address == ip)
        })
    }

    /// The first free address of a subnet's pools.
    fn next_free(&self, subnet: &Subnet) -> Option<IpAddr> {
        let v4 = subnet.cidr.addr().is_ipv4();
        for (a, b) in &subnet.allocation_pools {
            let (a, b) = (to_u128(*a), to_u128(*b));
            // Bounded: a simulated project never holds more ports.
            for n in a..=b.min(a.saturating_add(65_536)) {
                let ip = from_u128(n, v4);
                if self.allocated(&subnet.common.id, ip).is_none() {
                    return Some(ip);
                }
            }
        }
        None
    }

    /// Resolves the `fixed_ips` of a new port on `network` (Neutron's
    /// IPAM): a requested address must be in one of the network's subnets
    /// and free; a subnet alone gets its next free address; none at all
    /// gets one from the first subnet with room, IPv4 first.
    pub fn allocate(&self, network: &str, requested: &[Value]) -> Result<Vec<FixedIp>, Refusal> {
        let subnets: Vec<&Subnet> = self
            .subnets
            .iter()
            .filter(|s| s.network_id == network)
            .collect();
        let mut out: Vec<FixedIp> = Vec::new();
        if requested.is_empty() {
            let mut ordered = subnets.clone();
            ordered.sort_by_key(|s| !s.cidr.addr().is_ipv4());
            if ordered.is_empty() {
                return Ok(out);
            }
            for s in ordered {
                if let Some(ip) = self.next_free(s) {
                    out.push(FixedIp {
                        subnet_id: s.common.id.clone(),
                        ip_address: ip,
                    });
                    return Ok(out);
                }
            }
            return Err(Refusal::in_use(
                "IpAddressGenerationFailure",
                format!("No more IP addresses available on network {network}."),
            ));
        }
        for r in requested {
            let ip = match r.get("ip_address").and_then(Value::as_str) {
                Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
                    Refusal::bad_request(format!(
                        "Invalid input for fixed_ips. Reason: '{text}' is not a valid IP address."
                    ))
                })?),
                None => None,
            };
            let subnet = match (r.get("subnet_id").and_then(Value::as_str), ip) {
                (Some(id), _) => match subnets.iter().find(|s| s.common.id == id) {
                    Some(s) => *s,
                    None => {
                        return Err(Refusal::bad_request(format!(
                            "Invalid input for operation: Failed to create port on network \
                             {network}, because fixed_ips included invalid subnet {id}."
                        )));
                    }
                },
                (None, Some(ip)) => match subnets.iter().find(|s| s.cidr.contains(&ip)) {
                    Some(s) => *s,
                    None => {
                        return Err(Refusal::bad_request(format!(
                            "Invalid input for operation: IP address {ip} is not a valid IP \
                             for any of the subnets on the specified network."
                        )));
                    }
                },
                (None, None) => {
                    return Err(Refusal::bad_request(
                        "Invalid input for fixed_ips: each entry needs subnet_id or ip_address.",
                    ));
                }
            };
            let ip = match ip {
                Some(ip) => {
                    if !subnet.cidr.contains(&ip) {
                        return Err(Refusal::bad_request(format!(
                            "Invalid input for operation: IP address {ip} is not a valid IP \
                             for the specified subnet."
                        )));
                    }
                    if self.allocated(&subnet.common.id, ip).is_some()
                        || out.iter().any(|f| f.ip_address == ip)
                    {
                        return Err(Refusal::in_use(
                            "IpAddressAlreadyAllocated",
                            format!(
                                "IP address {ip} already allocated in subnet {}",
                                subnet.common.id
                            ),
                        ));
                    }
                    ip
                }
                None => self.next_free(subnet).ok_or_else(|| {
                    Refusal::in_use(
                        "IpAddressGenerationFailure",
                        format!("No more IP addresses available on network {network}."),
                    )
                })?,
            };
            out.push(FixedIp {
                subnet_id: subnet.common.id.clone(),
                ip_address: ip,
            });
        }
        Ok(out)
    }

    /// Reads `allowed_address_pairs` for a port with MAC `mac`; refused
    /// when the extension is off.
    pub fn address_pairs(&self, value: &Value, mac: &str) -> Result<Vec<AddressPair>, Refusal> {
        if !self.has_extension("allowed-address-pairs") {
            return Err(unrecognized("allowed_address_pairs"));
        }
        let Some(list) = value.as_array() else {
            return Err(Refusal::bad_request(
                "Invalid input for allowed_address_pairs. Reason: Allowed address pairs \
                 must be a list.",
            ));
        };
        let mut pairs = Vec::new();
        for p in list {
            let Some(ip) = p.get("ip_address").and_then(Value::as_str) else {
                return Err(Refusal::new(
                    400,
                    "AllowedAddressPairsMissingIP",
                    "AllowedAddressPair must contain ip_address",
                ));
            };
            if ip.parse::<IpAddr>().is_err() && ip.parse::<IpNet>().is_err() {
                return Err(Refusal::bad_request(format!(
                    "Invalid input for allowed_address_pairs. Reason: '{ip}' is not a valid IP \
                     address."
                )));
            }
            let pair = AddressPair {
                ip_address: ip.to_string(),
                mac_address: p
                    .get("mac_address")
                    .and_then(Value::as_str)
                    .unwrap_or(mac)
                    .to_string(),
            };
            if pairs.contains(&pair) {
                return Err(Refusal::bad_request(
                    "Request contains duplicate address pair",
                ));
            }
            pairs.push(pair);
        }
        Ok(pairs)
    }
}

/// Neutron's answer to an attribute of an extension the cloud lacks.
pub fn unrecognized(attribute: &str) -> Refusal {
    Refusal::bad_request(format!("Unrecognized attribute(s) '{attribute}'"))
}

/// Whether a resource (as Neutron shows it) passes a list request's
/// filters: every plain key must match one of its values (`?id=a&id=b`),
/// `tags` needs all the tags, `tags-any` one of them, `not-tags` not all,
/// `not-tags-any` none; `fixed_ips=ip_address=X` and
/// `fixed_ips=subnet_id=Y` look into a port's addresses.
pub fn matches(resource: &Value, filters: &[(String, String)]) -> bool {
    let tags: BTreeSet<&str> = resource["tags"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let split = |v: &str| -> Vec<String> { v.split(',').map(str::to_string).collect() };
    let mut plain: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (k, v) in filters {
        match k.as_str() {
            "tags" => {
                if !split(v).iter().all(|t| tags.contains(t.as_str())) {
                    return false;
                }
            }
            "tags-any" => {
                if !split(v).iter().any(|t| tags.contains(t.as_str())) {
                    return false;
                }
            }
            "not-tags" => {
                if split(v).iter().all(|t| tags.contains(t.as_str())) {
                    return false;
                }
            }
            "not-tags-any" => {
                if split(v).iter().any(|t| tags.contains(t.as_str())) {
                    return false;
                }
            }
            "fixed_ips" => {
                let Some((field, want)) = v.split_once('=') else {
                    return false;
                };
                let hit = resource["fixed_ips"].as_array().is_some_and(|ips| {
                    ips.iter().any(|ip| {
                        ip[field]
                            .as_str()
                            .is_some_and(|have| have == want.trim_matches('\''))
                    })
                });
                if !hit {
                    return false;
                }
            }
            "fields" | "limit" | "marker" | "sort_key" | "sort_dir" | "page_reverse" => {}
            key => plain.entry(key).or_default().push(v.as_str()),
        }
    }
    plain.iter().all(|(key, wanted)| {
        let have = match &resource[*key] {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => "None".to_string(),
            other => other.to_string(),
        };
        wanted
            .iter()
            .any(|w| w.eq_ignore_ascii_case(&have) || *w == have)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_leave_out_the_gateway_and_the_edges() {
        let cidr: IpNet = "10.0.0.0/29".parse().expect("cidr");
        let gw = first_host(&cidr);
        assert_eq!(gw.to_string(), "10.0.0.1");
        let pools = default_pools(&cidr, Some(gw));
        assert_eq!(
            pools,
            vec![(
                "10.0.0.2".parse().expect("ip"),
                "10.0.0.6".parse().expect("ip")
            )]
        );
        let v6: IpNet = "fd00::/64".parse().expect("cidr");
        assert_eq!(first_host(&v6).to_string(), "fd00::1");
    }

    #[test]
    fn filters_match_tags_and_fields() {
        let port = json!({"name": "a", "tags": ["x", "y"], "port_security_enabled": true,
            "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.5"}]});
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(matches(&port, &f(&[("tags", "x,y"), ("name", "a")])));
        assert!(!matches(&port, &f(&[("tags", "x,z")])));
        assert!(matches(&port, &f(&[("tags-any", "z,y")])));
        assert!(!matches(&port, &f(&[("not-tags-any", "y")])));
        assert!(matches(&port, &f(&[("port_security_enabled", "True")])));
        assert!(matches(&port, &f(&[("fixed_ips", "ip_address=10.0.0.5")])));
        assert!(matches(&port, &f(&[("name", "b"), ("name", "a")])));
    }
}
