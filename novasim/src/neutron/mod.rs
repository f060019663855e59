//! Neutron's networking API v2.0 as the simulator serves it, under the
//! catalog's `network` endpoint (`/network`): the version document,
//! `GET /v2.0/extensions`, networks, subnets, ports, routers and security
//! groups (without rules: nothing is filtered here) (list
//! with Neutron's filters, create, show, update, delete), tags
//! (`PUT /v2.0/{resource}/{id}/tags/{tag}`, the whole set, `tags=`
//! filters), a router's `add_router_interface` and
//! `remove_router_interface`, and the project's quotas and their usage
//! (`/v2.0/quotas/{project}/details`).
//!
//! Errors are Neutron's body, `{"NeutronError": {"type", "message",
//! "detail"}}`, with its statuses: 400 bad input, 403 a policy refusal
//! (set through `/_sim/neutron`), 404 not found, 409 `OverQuota`, address
//! conflicts and resources still in use. The resources and their rules
//! are in [`model`]; Nova's interface attach (in [`super::compute`]) binds
//! ports to servers through [`attach`] and [`detach`].

pub mod model;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ipnet::IpNet;
use serde_json::{Map, Value, json};

use super::http::St;
use super::model::{iso8601, new_uuid};
use super::{Model, Sim};
use model::{Common, EXTENSIONS, Kind, Network, Port, Refusal, Router as NRouter, Subnet};
pub use model::{Neutron, NeutronSettings, Quotas};

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route("/network", get(versions))
        .route("/network/", get(versions))
        .route("/network/v2.0", get(version))
        .route("/network/v2.0/", get(version))
        .route("/network/v2.0/{collection}", get(list).post(create))
        .route(
            "/network/v2.0/{collection}/{id}",
            get(show).put(update).delete(remove),
        )
        .route(
            "/network/v2.0/{collection}/{id}/{action}",
            get(get_sub).put(put_sub).delete(delete_sub),
        )
        .route(
            "/network/v2.0/{collection}/{id}/tags/{tag}",
            get(has_tag).put(add_tag).delete(delete_tag),
        )
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            Json(
                json!({"NeutronError": {"type": self.kind, "message": self.message, "detail": ""}}),
            ),
        )
            .into_response()
    }
}

fn answer(r: Result<(StatusCode, Value), Refusal>) -> Response {
    match r {
        Ok((StatusCode::NO_CONTENT, _)) => StatusCode::NO_CONTENT.into_response(),
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `networks.json` is how older clients spell `networks`.
fn strip_json(s: &str) -> &str {
    s.strip_suffix(".json").unwrap_or(s)
}

fn kind_of(collection: &str) -> Result<Kind, Refusal> {
    Kind::parse(strip_json(collection))
        .ok_or_else(|| Refusal::not_found("HTTPNotFound", "The resource could not be found."))
}

async fn versions(State(sim): State<St>) -> Response {
    Json(json!({"versions": [{"id": "v2.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{}/network/v2.0/", sim.base_url)}]}]}))
    .into_response()
}

async fn version(State(sim): State<St>) -> Response {
    Json(json!({"resources": [
        {"name": "network", "collection": "networks",
         "links": [{"rel": "self", "href": format!("{}/network/v2.0/networks", sim.base_url)}]},
        {"name": "subnet", "collection": "subnets",
         "links": [{"rel": "self", "href": format!("{}/network/v2.0/subnets", sim.base_url)}]},
        {"name": "port", "collection": "ports",
         "links": [{"rel": "self", "href": format!("{}/network/v2.0/ports", sim.base_url)}]}]}))
    .into_response()
}

fn extensions(n: &Neutron) -> Value {
    let list: Vec<Value> = EXTENSIONS
        .iter()
        .filter(|(alias, _)| n.has_extension(alias))
        .map(|(alias, name)| {
            json!({"alias": alias, "name": name, "description": name,
                "updated": "2013-01-01T10:00:00-00:00", "links": []})
        })
        .collect();
    json!({ "extensions": list })
}

// ----- list, show --------------------------------------------------------------

async fn list(
    State(sim): State<St>,
    Path(collection): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let m = sim.lock();
    if strip_json(&collection) == "extensions" {
        return Json(extensions(&m.neutron)).into_response();
    }
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let items: Vec<Value> = m
        .neutron
        .all(kind, &sim.project_id)
        .into_iter()
        .filter(|r| model::matches(r, &q))
        .collect();
    let key = format!("{}s", kind.singular());
    Json(json!({ key: items })).into_response()
}

async fn show(State(sim): State<St>, Path((collection, id)): Path<(String, String)>) -> Response {
    let m = sim.lock();
    let id = strip_json(&id);
    match strip_json(&collection) {
        "extensions" => {
            return match EXTENSIONS
                .iter()
                .find(|(a, _)| *a == id && m.neutron.has_extension(a))
            {
                Some((alias, name)) => Json(json!({"extension": {"alias": alias, "name": name,
                    "description": name, "updated": "2013-01-01T10:00:00-00:00", "links": []}}))
                .into_response(),
                None => Refusal::not_found("HTTPNotFound", format!("Extension {id} not found."))
                    .into_response(),
            };
        }
        "quotas" => return Json(json!({"quota": quotas(&m.neutron)})).into_response(),
        _ => {}
    }
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    match m.neutron.show(kind, id, &sim.project_id) {
        Some(v) => Json(json!({ kind.singular(): v })).into_response(),
        None => kind.not_found(id).into_response(),
    }
}

fn quotas(n: &Neutron) -> Value {
    let q = &n.settings.quotas;
    json!({"network": q.network, "subnet": q.subnet, "port": q.port, "router": q.router,
        "floatingip": 50, "security_group": 10, "security_group_rule": 100})
}

fn quota_details(n: &Neutron) -> Value {
    let mut out = Map::new();
    for kind in [Kind::Network, Kind::Subnet, Kind::Port, Kind::Router] {
        let (limit, used) = n.usage(kind);
        out.insert(
            kind.singular().into(),
            json!({"limit": limit, "used": used, "reserved": 0}),
        );
    }
    json!({ "quota": out })
}

// ----- create --------------------------------------------------------------------

fn body_of(body: &Bytes, key: &str) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => match o.remove(key) {
            Some(Value::Object(m)) => Ok(m),
            _ => Err(Refusal::bad_request(format!(
                "Resource body required: '{key}' is missing"
            ))),
        },
        _ => Err(Refusal::bad_request(
            "Body contains invalid data: malformed JSON",
        )),
    }
}

fn text(b: &Map<String, Value>, key: &str) -> String {
    b.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn new_common(sim: &Sim, b: &Map<String, Value>) -> Result<Common, Refusal> {
    let now = iso8601(sim.now());
    let mut tags = std::collections::BTreeSet::new();
    if let Some(list) = b.get("tags").and_then(Value::as_array) {
        for t in list {
            tags.insert(check_tag(t.as_str().unwrap_or_default())?);
        }
    }
    Ok(Common {
        id: new_uuid(),
        name: text(b, "name"),
        description: text(b, "description"),
        tags,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    })
}

fn check_tag(tag: &str) -> Result<String, Refusal> {
    if tag.is_empty() || tag.len() > 255 || tag.contains(',') {
        return Err(Refusal::bad_request(format!(
            "Invalid input for operation: '{tag}' is not a valid tag: 1 to 255 characters, \
             no comma."
        )));
    }
    Ok(tag.to_string())
}

fn flag(b: &Map<String, Value>, key: &str) -> Result<Option<bool>, Refusal> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(v)) => Ok(Some(*v)),
        Some(other) => Err(Refusal::bad_request(format!(
            "Invalid input for {key}. Reason: '{other}' is not a valid boolean value."
        ))),
    }
}

async fn create(State(sim): State<St>, Path(collection): Path<String>, body: Bytes) -> Response {
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let mut guard = sim.lock();
    let m = &mut *guard;
    let r = body_of(&body, kind.singular()).and_then(|b| {
        m.neutron
            .check_policy(&format!("create_{}", kind.singular()))?;
        match kind {
            Kind::Network => create_network(&sim, m, &b),
            Kind::Subnet => create_subnet(&sim, m, &b),
            Kind::Port => create_port(&sim, m, &b),
            Kind::Router => create_router(&sim, m, &b),
            Kind::SecurityGroup => create_security_group(&sim, m, &b),
        }
    });
    answer(r.map(|v| (StatusCode::CREATED, json!({ kind.singular(): v }))))
}

fn create_network(sim: &Sim, m: &mut Model, b: &Map<String, Value>) -> Result<Value, Refusal> {
    let n = &mut m.neutron;
    let security = flag(b, "port_security_enabled")?;
    if security.is_some() && !n.has_extension("port-security") {
        return Err(model::unrecognized("port_security_enabled"));
    }
    n.check_quota(Kind::Network)?;
    let net = Network {
        common: new_common(sim, b)?,
        port_security_enabled: security.unwrap_or(true),
    };
    let v = net.json(n, &sim.project_id);
    n.networks.push(net);
    Ok(v)
}

fn create_subnet(sim: &Sim, m: &mut Model, b: &Map<String, Value>) -> Result<Value, Refusal> {
    let n = &mut m.neutron;
    let network_id = text(b, "network_id");
    if !n.networks.iter().any(|x| x.common.id == network_id) {
        return Err(Kind::Network.not_found(&network_id));
    }
    let cidr_text = text(b, "cidr");
    let cidr: IpNet = cidr_text.parse().map_err(|_| {
        Refusal::bad_request(format!(
            "Invalid input for cidr. Reason: '{cidr_text}' is not a valid IP subnet."
        ))
    })?;
    let version = b.get("ip_version").and_then(Value::as_u64);
    let v4 = cidr.addr().is_ipv4();
    match version {
        Some(4) if v4 => {}
        Some(6) if !v4 => {}
        Some(_) => {
            return Err(Refusal::bad_request(
                "Invalid input for operation: Cidr and IP version are not compatible.",
            ));
        }
        None => {
            return Err(Refusal::bad_request(
                "Invalid input for operation: ip_version is required.",
            ));
        }
    }
    let cidr = cidr.trunc();
    if let Some(other) = n
        .subnets
        .iter()
        .find(|s| s.network_id == network_id && (s.cidr.contains(&cidr) || cidr.contains(&s.cidr)))
    {
        return Err(Refusal::bad_request(format!(
            "Invalid input for operation: Requested subnet with cidr: {cidr} for network: \
             {network_id} overlaps with another subnet ({}).",
            other.common.id
        )));
    }
    let gateway_ip = match b.get("gateway_ip") {
        None => Some(model::first_host(&cidr)),
        Some(Value::Null) => None,
        Some(Value::String(g)) => {
            let g: std::net::IpAddr = g.parse().map_err(|_| {
                Refusal::bad_request(format!(
                    "Invalid input for gateway_ip. Reason: '{g}' is not a valid IP address."
                ))
            })?;
            if !cidr.contains(&g) {
                return Err(Refusal::bad_request(format!(
                    "Invalid input for operation: Gateway IP {g} is not in subnet {cidr}."
                )));
            }
            Some(g)
        }
        Some(other) => {
            return Err(Refusal::bad_request(format!(
                "Invalid input for gateway_ip: {other}"
            )));
        }
    };
    let allocation_pools = match b.get("allocation_pools").and_then(Value::as_array) {
        Some(list) => {
            let mut pools = Vec::new();
            for p in list {
                let parse = |k: &str| {
                    p[k].as_str()
                        .and_then(|s| s.parse::<std::net::IpAddr>().ok())
                        .filter(|ip| cidr.contains(ip))
                };
                match (parse("start"), parse("end")) {
                    (Some(a), Some(e)) if model::to_u128(a) <= model::to_u128(e) => {
                        pools.push((a, e))
                    }
                    _ => {
                        return Err(Refusal::bad_request(format!(
                            "The allocation pool {p} spans beyond the subnet cidr {cidr}."
                        )));
                    }
                }
            }
            pools
        }
        None => model::default_pools(&cidr, gateway_ip),
    };
    n.check_quota(Kind::Subnet)?;
    let subnet = Subnet {
        common: new_common(sim, b)?,
        network_id,
        cidr,
        gateway_ip,
        allocation_pools,
        enable_dhcp: flag(b, "enable_dhcp")?.unwrap_or(true),
    };
    let v = subnet.json(&sim.project_id);
    n.subnets.push(subnet);
    Ok(v)
}

/// A MAC in OpenStack's `fa:16:3e` prefix, unique among the simulator's
/// servers and ports.
pub(super) fn next_mac(m: &mut Model) -> String {
    m.mac_counter += 1;
    let n = m.mac_counter;
    format!(
        "fa:16:3e:{:02x}:{:02x}:{:02x}",
        n >> 16 & 0xff,
        n >> 8 & 0xff,
        n & 0xff
    )
}

fn create_port(sim: &Sim, m: &mut Model, b: &Map<String, Value>) -> Result<Value, Refusal> {
    let network_id = text(b, "network_id");
    let Some(net) = m
        .neutron
        .networks
        .iter()
        .find(|x| x.common.id == network_id)
    else {
        return Err(Kind::Network.not_found(&network_id));
    };
    let security = flag(b, "port_security_enabled")?;
    if security.is_some() && !m.neutron.has_extension("port-security") {
        return Err(model::unrecognized("port_security_enabled"));
    }
    let security = security.unwrap_or(net.port_security_enabled);
    let security_groups = m
        .neutron
        .security_groups_of(b.get("security_groups"), security)?;
    m.neutron.check_quota(Kind::Port)?;
    let requested: Vec<Value> = b
        .get("fixed_ips")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let fixed_ips = m.neutron.allocate(&network_id, &requested)?;
    let mac = next_mac(m);
    let pairs = match b.get("allowed_address_pairs") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => m.neutron.address_pairs(v, &mac)?,
    };
    if !pairs.is_empty() && !security {
        return Err(pairs_need_security());
    }
    let port = Port {
        common: new_common(sim, b)?,
        network_id,
        mac_address: mac,
        fixed_ips,
        allowed_address_pairs: pairs,
        port_security_enabled: security,
        device_id: text(b, "device_id"),
        device_owner: text(b, "device_owner"),
        created_by_nova: false,
        security_groups,
    };
    let v = port.json(&m.neutron, &sim.project_id);
    m.neutron.ports.push(port);
    Ok(v)
}

fn pairs_need_security() -> Refusal {
    Refusal::in_use(
        "AddressPairAndPortSecurityRequired",
        "Port Security must be enabled in order to have allowed address pairs on a port.",
    )
}

fn create_security_group(
    sim: &Sim,
    m: &mut Model,
    b: &Map<String, Value>,
) -> Result<Value, Refusal> {
    m.neutron.check_quota(Kind::SecurityGroup)?;
    let g = model::SecurityGroup {
        common: new_common(sim, b)?,
    };
    let v = g.json(&sim.project_id);
    m.neutron.security_groups.push(g);
    Ok(v)
}

fn create_router(sim: &Sim, m: &mut Model, b: &Map<String, Value>) -> Result<Value, Refusal> {
    m.neutron.check_quota(Kind::Router)?;
    let router = NRouter {
        common: new_common(sim, b)?,
    };
    let v = router.json(&sim.project_id);
    m.neutron.routers.push(router);
    Ok(v)
}

// ----- update --------------------------------------------------------------------

async fn update(
    State(sim): State<St>,
    Path((collection, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let id = strip_json(&id).to_string();
    let now = iso8601(sim.now());
    let mut guard = sim.lock();
    let m = &mut *guard;
    let r = body_of(&body, kind.singular()).and_then(|b| {
        m.neutron
            .check_policy(&format!("update_{}", kind.singular()))?;
        if m.neutron.show(kind, &id, &sim.project_id).is_none() {
            return Err(kind.not_found(&id));
        }
        if kind == Kind::Port {
            update_port(m, &id, &b)?;
        }
        if kind == Kind::Network
            && let Some(v) = flag(&b, "port_security_enabled")?
        {
            if !m.neutron.has_extension("port-security") {
                return Err(model::unrecognized("port_security_enabled"));
            }
            if let Some(net) = m.neutron.networks.iter_mut().find(|x| x.common.id == id) {
                net.port_security_enabled = v;
            }
        }
        if kind == Kind::Subnet
            && let Some(v) = flag(&b, "enable_dhcp")?
            && let Some(s) = m.neutron.subnets.iter_mut().find(|x| x.common.id == id)
        {
            s.enable_dhcp = v;
        }
        if let Some(c) = m.neutron.common_mut(kind, &id) {
            if b.contains_key("name") {
                c.name = text(&b, "name");
            }
            if b.contains_key("description") {
                c.description = text(&b, "description");
            }
            c.updated_at = now.clone();
            c.revision_number += 1;
        }
        Ok(m.neutron
            .show(kind, &id, &sim.project_id)
            .unwrap_or(Value::Null))
    });
    answer(r.map(|v| (StatusCode::OK, json!({ kind.singular(): v }))))
}

fn update_port(m: &mut Model, id: &str, b: &Map<String, Value>) -> Result<(), Refusal> {
    let n = &mut m.neutron;
    let Some(i) = n.ports.iter().position(|p| p.common.id == id) else {
        return Err(Kind::Port.not_found(id));
    };
    let security = flag(b, "port_security_enabled")?;
    if security.is_some() && !n.has_extension("port-security") {
        return Err(model::unrecognized("port_security_enabled"));
    }
    let pairs = match b.get("allowed_address_pairs") {
        None => None,
        Some(Value::Null) => Some(Vec::new()),
        Some(v) => Some(n.address_pairs(v, &n.ports[i].mac_address)?),
    };
    let port = &n.ports[i];
    let final_security = security.unwrap_or(port.port_security_enabled);
    let final_pairs = pairs.as_ref().unwrap_or(&port.allowed_address_pairs);
    if !final_security && !final_pairs.is_empty() {
        return Err(pairs_need_security());
    }
    let groups = match b.get("security_groups") {
        Some(v) => Some(n.security_groups_of(Some(v), final_security)?),
        None => None,
    };
    if !final_security
        && !groups
            .as_ref()
            .unwrap_or(&n.ports[i].security_groups)
            .is_empty()
    {
        return Err(Refusal::in_use(
            "PortSecurityPortHasSecurityGroup",
            "Port has security group associated. Cannot disable port security or ip address \
             until security group is removed",
        ));
    }
    let port = &mut n.ports[i];
    port.port_security_enabled = final_security;
    if let Some(g) = groups {
        port.security_groups = g;
    }
    if let Some(p) = pairs {
        port.allowed_address_pairs = p;
    }
    if b.contains_key("device_id") {
        port.device_id = text(b, "device_id");
    }
    if b.contains_key("device_owner") {
        port.device_owner = text(b, "device_owner");
    }
    Ok(())
}

// ----- delete --------------------------------------------------------------------

async fn remove(State(sim): State<St>, Path((collection, id)): Path<(String, String)>) -> Response {
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let id = strip_json(&id).to_string();
    let mut guard = sim.lock();
    let m = &mut *guard;
    let r = m
        .neutron
        .check_policy(&format!("delete_{}", kind.singular()))
        .and_then(|()| delete_resource(m, kind, &id));
    answer(r.map(|()| (StatusCode::NO_CONTENT, Value::Null)))
}

fn delete_resource(m: &mut Model, kind: Kind, id: &str) -> Result<(), Refusal> {
    let n = &mut m.neutron;
    match kind {
        Kind::Network => {
            if !n.networks.iter().any(|x| x.common.id == id) {
                return Err(kind.not_found(id));
            }
            if n.ports.iter().any(|p| p.network_id == id) {
                return Err(Refusal::in_use(
                    "NetworkInUse",
                    format!(
                        "Unable to complete operation on network {id}. There are one or more \
                         ports still in use on the network."
                    ),
                ));
            }
            n.subnets.retain(|s| s.network_id != id);
            n.networks.retain(|x| x.common.id != id);
        }
        Kind::Subnet => {
            if !n.subnets.iter().any(|x| x.common.id == id) {
                return Err(kind.not_found(id));
            }
            if n.ports
                .iter()
                .any(|p| p.fixed_ips.iter().any(|f| f.subnet_id == id))
            {
                return Err(Refusal::in_use(
                    "SubnetInUse",
                    format!(
                        "Unable to complete operation on subnet {id}: One or more ports have \
                         an IP allocation from this subnet."
                    ),
                ));
            }
            n.subnets.retain(|x| x.common.id != id);
        }
        Kind::Port => {
            let Some(port) = n.ports.iter().find(|x| x.common.id == id) else {
                return Err(kind.not_found(id));
            };
            if port.device_owner == "network:router_interface" {
                return Err(Refusal::in_use(
                    "ServicePortInUse",
                    format!(
                        "Port {id} cannot be deleted directly via the port API: has device \
                         owner network:router_interface."
                    ),
                ));
            }
            let server = port.device_id.clone();
            n.ports.retain(|x| x.common.id != id);
            // Nova hears of it (network-vif-deleted) and drops the NIC.
            if let Some(s) = m.servers.iter_mut().find(|s| s.id == server) {
                s.ports.retain(|p| p != id);
            }
        }
        Kind::SecurityGroup => {
            if !n.security_groups.iter().any(|x| x.common.id == id) {
                return Err(kind.not_found(id));
            }
            if n.ports
                .iter()
                .any(|p| p.security_groups.iter().any(|g| g == id))
            {
                return Err(Refusal::in_use(
                    "SecurityGroupInUse",
                    format!("Security Group {id} in use."),
                ));
            }
            n.security_groups.retain(|x| x.common.id != id);
        }
        Kind::Router => {
            if !n.routers.iter().any(|x| x.common.id == id) {
                return Err(kind.not_found(id));
            }
            if n.ports.iter().any(|p| p.device_id == id) {
                return Err(Refusal::in_use(
                    "RouterInUse",
                    format!("Router {id} still has ports"),
                ));
            }
            n.routers.retain(|x| x.common.id != id);
        }
    }
    Ok(())
}

// ----- tags, router interfaces, quota details -----------------------------------

async fn get_sub(
    State(sim): State<St>,
    Path((collection, id, action)): Path<(String, String, String)>,
) -> Response {
    let m = sim.lock();
    if strip_json(&collection) == "quotas" {
        return match strip_json(&action) {
            "details" => Json(quota_details(&m.neutron)).into_response(),
            "default" => Json(json!({"quota": quotas(&m.neutron)})).into_response(),
            _ => Refusal::not_found("HTTPNotFound", "The resource could not be found.")
                .into_response(),
        };
    }
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    if action != "tags" {
        return Refusal::not_found("HTTPNotFound", "The resource could not be found.")
            .into_response();
    }
    match m.neutron.show(kind, &id, &sim.project_id) {
        Some(v) => Json(json!({"tags": v["tags"]})).into_response(),
        None => kind.not_found(&id).into_response(),
    }
}

async fn put_sub(
    State(sim): State<St>,
    Path((collection, id, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let now = iso8601(sim.now());
    let mut guard = sim.lock();
    let m = &mut *guard;
    match (kind, strip_json(&action)) {
        (_, "tags") => {
            let r = (|| {
                let tags: Vec<String> = match serde_json::from_slice::<Value>(&body) {
                    Ok(v) => v["tags"]
                        .as_array()
                        .ok_or_else(|| Refusal::bad_request("Invalid input: 'tags' is required"))?
                        .iter()
                        .map(|t| check_tag(t.as_str().unwrap_or_default()))
                        .collect::<Result<_, _>>()?,
                    Err(_) => return Err(Refusal::bad_request("Invalid input: malformed JSON")),
                };
                let c = m
                    .neutron
                    .common_mut(kind, &id)
                    .ok_or_else(|| kind.not_found(&id))?;
                c.tags = tags.into_iter().collect();
                c.updated_at = now;
                c.revision_number += 1;
                Ok((StatusCode::OK, json!({"tags": c.tags})))
            })();
            answer(r)
        }
        (Kind::Router, "add_router_interface") => answer(
            serde_json::from_slice::<Value>(&body)
                .map_err(|_| Refusal::bad_request("Invalid input: malformed JSON"))
                .and_then(|b| add_router_interface(&sim, m, &id, &b))
                .map(|v| (StatusCode::OK, v)),
        ),
        (Kind::Router, "remove_router_interface") => answer(
            serde_json::from_slice::<Value>(&body)
                .map_err(|_| Refusal::bad_request("Invalid input: malformed JSON"))
                .and_then(|b| remove_router_interface(&sim, m, &id, &b))
                .map(|v| (StatusCode::OK, v)),
        ),
        _ => Refusal::not_found("HTTPNotFound", "The resource could not be found.").into_response(),
    }
}

async fn delete_sub(
    State(sim): State<St>,
    Path((collection, id, action)): Path<(String, String, String)>,
) -> Response {
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    if action != "tags" {
        return Refusal::not_found("HTTPNotFound", "The resource could not be found.")
            .into_response();
    }
    let mut m = sim.lock();
    match m.neutron.common_mut(kind, &id) {
        Some(c) => {
            c.tags.clear();
            c.revision_number += 1;
            StatusCode::NO_CONTENT.into_response()
        }
        None => kind.not_found(&id).into_response(),
    }
}

async fn has_tag(
    State(sim): State<St>,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Response {
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let mut m = sim.lock();
    match m.neutron.common_mut(kind, &id) {
        Some(c) if c.tags.contains(&tag) => StatusCode::NO_CONTENT.into_response(),
        Some(_) => tag_not_found(&tag, &id),
        None => kind.not_found(&id).into_response(),
    }
}

fn tag_not_found(tag: &str, id: &str) -> Response {
    Refusal::not_found(
        "TagNotFound",
        format!("Tag {tag} could not be found for resource {id}."),
    )
    .into_response()
}

async fn add_tag(
    State(sim): State<St>,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Response {
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let tag = match check_tag(&tag) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let now = iso8601(sim.now());
    let mut m = sim.lock();
    match m.neutron.common_mut(kind, &id) {
        Some(c) => {
            if c.tags.insert(tag) {
                c.updated_at = now;
                c.revision_number += 1;
            }
            StatusCode::CREATED.into_response()
        }
        None => kind.not_found(&id).into_response(),
    }
}

async fn delete_tag(
    State(sim): State<St>,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Response {
    let kind = match kind_of(&collection) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let mut m = sim.lock();
    match m.neutron.common_mut(kind, &id) {
        Some(c) => {
            if c.tags.remove(&tag) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                tag_not_found(&tag, &id)
            }
        }
        None => kind.not_found(&id).into_response(),
    }
}

/// The body both interface calls answer with.
fn interface_info(sim: &Sim, router: &str, port: &Port) -> Value {
    let subnets: Vec<&str> = port
        .fixed_ips
        .iter()
        .map(|f| f.subnet_id.as_str())
        .collect();
    json!({"id": router, "tenant_id": sim.project_id, "project_id": sim.project_id,
        "port_id": port.common.id, "network_id": port.network_id,
        "subnet_id": subnets.first(), "subnet_ids": subnets})
}

fn add_router_interface(
    sim: &Sim,
    m: &mut Model,
    router: &str,
    b: &Value,
) -> Result<Value, Refusal> {
    m.neutron.check_policy("add_router_interface")?;
    if !m.neutron.routers.iter().any(|r| r.common.id == router) {
        return Err(Kind::Router.not_found(router));
    }
    let attached: Vec<IpNet> = m
        .neutron
        .ports
        .iter()
        .filter(|p| p.device_id == router)
        .flat_map(|p| p.fixed_ips.iter())
        .filter_map(|f| {
            m.neutron
                .subnets
                .iter()
                .find(|s| s.common.id == f.subnet_id)
                .map(|s| s.cidr)
        })
        .collect();
    let overlap = |cidr: &IpNet, id: &str| -> Result<(), Refusal> {
        match attached
            .iter()
            .find(|a| a.contains(cidr) || cidr.contains(*a))
        {
            Some(a) => Err(Refusal::bad_request(format!(
                "Bad router request: Cidr {cidr} of subnet {id} overlaps with cidr {a} of \
                 another subnet of router {router}."
            ))),
            None => Ok(()),
        }
    };
    if let Some(subnet_id) = b["subnet_id"].as_str() {
        let Some(subnet) = m
            .neutron
            .subnets
            .iter()
            .find(|s| s.common.id == subnet_id)
            .cloned()
        else {
            return Err(Kind::Subnet.not_found(subnet_id));
        };
        if m.neutron
            .ports
            .iter()
            .any(|p| p.device_id == router && p.fixed_ips.iter().any(|f| f.subnet_id == subnet_id))
        {
            return Err(Refusal::bad_request(format!(
                "Bad router request: Router already has a port on subnet {subnet_id}."
            )));
        }
        let Some(gateway) = subnet.gateway_ip else {
            return Err(Refusal::bad_request(format!(
                "Bad router request: Subnet {subnet_id} does not have a gateway IP."
            )));
        };
        overlap(&subnet.cidr, subnet_id)?;
        m.neutron.check_quota(Kind::Port)?;
        let fixed_ips = m.neutron.allocate(
            &subnet.network_id,
            &[json!({"subnet_id": subnet_id, "ip_address": gateway.to_string()})],
        )?;
        let mac = next_mac(m);
        let now = iso8601(sim.now());
        let port = Port {
            common: Common {
                id: new_uuid(),
                name: String::new(),
                description: String::new(),
                tags: Default::default(),
                created_at: now.clone(),
                updated_at: now,
                revision_number: 1,
            },
            network_id: subnet.network_id.clone(),
            mac_address: mac,
            fixed_ips,
            allowed_address_pairs: Vec::new(),
            port_security_enabled: false,
            device_id: router.to_string(),
            device_owner: "network:router_interface".into(),
            created_by_nova: false,
            security_groups: Vec::new(),
        };
        let v = interface_info(sim, router, &port);
        m.neutron.ports.push(port);
        return Ok(v);
    }
    if let Some(port_id) = b["port_id"].as_str() {
        let Some(i) = m.neutron.ports.iter().position(|p| p.common.id == port_id) else {
            return Err(Kind::Port.not_found(port_id));
        };
        if !m.neutron.ports[i].device_id.is_empty() {
            return Err(Refusal::in_use(
                "PortInUse",
                format!(
                    "Unable to complete operation on port {port_id} for network {}. Port \
                     already has an attached device {}.",
                    m.neutron.ports[i].network_id, m.neutron.ports[i].device_id
                ),
            ));
        }
        for f in m.neutron.ports[i].fixed_ips.clone() {
            if let Some(s) = m
                .neutron
                .subnets
                .iter()
                .find(|s| s.common.id == f.subnet_id)
            {
                overlap(&s.cidr, &f.subnet_id)?;
            }
        }
        let port = &mut m.neutron.ports[i];
        port.device_id = router.to_string();
        port.device_owner = "network:router_interface".into();
        let port = port.clone();
        return Ok(interface_info(sim, router, &port));
    }
    Err(Refusal::bad_request(
        "Bad router request: Either subnet_id or port_id must be specified.",
    ))
}

fn remove_router_interface(
    sim: &Sim,
    m: &mut Model,
    router: &str,
    b: &Value,
) -> Result<Value, Refusal> {
    m.neutron.check_policy("remove_router_interface")?;
    if !m.neutron.routers.iter().any(|r| r.common.id == router) {
        return Err(Kind::Router.not_found(router));
    }
    let found = if let Some(subnet_id) = b["subnet_id"].as_str() {
        m.neutron
            .ports
            .iter()
            .position(|p| {
                p.device_id == router && p.fixed_ips.iter().any(|f| f.subnet_id == subnet_id)
            })
            .ok_or_else(|| {
                Refusal::not_found(
                    "RouterInterfaceNotFoundForSubnet",
                    format!("Router {router} has no interface on subnet {subnet_id}"),
                )
            })?
    } else if let Some(port_id) = b["port_id"].as_str() {
        m.neutron
            .ports
            .iter()
            .position(|p| p.device_id == router && p.common.id == port_id)
            .ok_or_else(|| {
                Refusal::not_found(
                    "RouterInterfaceNotFound",
                    format!("Router {router} does not have an interface with id {port_id}"),
                )
            })?
    } else {
        return Err(Refusal::bad_request(
            "Bad router request: Either subnet_id or port_id must be specified.",
        ));
    };
    let port = m.neutron.ports.remove(found);
    Ok(interface_info(sim, router, &port))
}

// ----- Nova's side -------------------------------------------------------------------

/// Binds a port to a server, as Nova's interface attach does; the port as
/// Neutron shows it then. `Err` carries Nova's status and message.
pub(super) fn attach(
    sim: &Sim,
    m: &mut Model,
    server: &str,
    port_id: Option<&str>,
    net_id: Option<&str>,
) -> Result<Value, (u16, String)> {
    let (port_id, by_nova) = match (port_id, net_id) {
        (Some(p), _) => (p.to_string(), false),
        (None, Some(net)) => {
            let mut b = Map::new();
            b.insert("network_id".into(), json!(net));
            let v = create_port(sim, m, &b).map_err(|e| match e.status {
                404 => (404, format!("Network {net} could not be found.")),
                _ => (e.status, e.message),
            })?;
            (v["id"].as_str().unwrap_or_default().to_string(), true)
        }
        (None, None) => {
            return Err((
                400,
                "Invalid input for field/attribute interfaceAttachment: port_id or net_id is \
                 required"
                    .into(),
            ));
        }
    };
    let Some(port) = m.neutron.ports.iter_mut().find(|p| p.common.id == port_id) else {
        return Err((404, format!("Port id {port_id} could not be found.")));
    };
    if !port.device_id.is_empty() {
        return Err((409, format!("Port {port_id} is still in use.")));
    }
    port.device_id = server.to_string();
    port.device_owner = "compute:nova".into();
    port.created_by_nova = by_nova;
    let port = port.clone();
    let v = port.json(&m.neutron, &sim.project_id);
    if let Some(s) = m.servers.iter_mut().find(|s| s.id == server) {
        s.ports.push(port_id);
    }
    Ok(v)
}

/// Unbinds a port from a server (deleting it when Nova made it).
pub(super) fn detach(m: &mut Model, server: &str, port_id: &str) -> bool {
    let Some(s) = m.servers.iter_mut().find(|s| s.id == server) else {
        return false;
    };
    if !s.ports.iter().any(|p| p == port_id) {
        return false;
    }
    s.ports.retain(|p| p != port_id);
    release(m, port_id);
    true
}

/// A port no longer bound to a server: free again, or gone when Nova
/// made it.
pub(super) fn release(m: &mut Model, port_id: &str) {
    let n = &mut m.neutron;
    if let Some(i) = n.ports.iter().position(|p| p.common.id == port_id) {
        if n.ports[i].created_by_nova {
            n.ports.remove(i);
        } else {
            n.ports[i].device_id.clear();
            n.ports[i].device_owner.clear();
        }
    }
}

/// A bound port as Nova lists it (`interfaceAttachment`).
pub(super) fn interface_json(m: &Model, port_id: &str) -> Option<Value> {
    let p = m.neutron.ports.iter().find(|p| p.common.id == port_id)?;
    Some(
        json!({"port_state": "ACTIVE", "mac_addr": p.mac_address, "port_id": p.common.id,
        "net_id": p.network_id, "fixed_ips": p.fixed_ips, "tag": null}),
    )
}

/// A server's attached ports as its `addresses` show them: per network
/// name, each address with its port's MAC.
pub(super) fn addresses(m: &Model, ports: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for id in ports {
        let Some(p) = m.neutron.ports.iter().find(|p| &p.common.id == id) else {
            continue;
        };
        let net = m
            .neutron
            .networks
            .iter()
            .find(|n| n.common.id == p.network_id)
            .map_or_else(|| p.network_id.clone(), |n| n.common.name.clone());
        let entry = out.entry(net).or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            for f in &p.fixed_ips {
                list.push(json!({"addr": f.ip_address,
                    "version": if f.ip_address.is_ipv4() { 4 } else { 6 },
                    "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": p.mac_address}));
            }
        }
    }
    out
}

/// Every resource as Neutron shows it, for `GET /_sim/neutron/resources`.
pub(super) fn dump(sim: &Sim) -> Value {
    let m = sim.lock();
    let n = &m.neutron;
    let p = &sim.project_id;
    json!({"networks": n.all(Kind::Network, p), "subnets": n.all(Kind::Subnet, p),
        "ports": n.all(Kind::Port, p), "routers": n.all(Kind::Router, p),
        "security_groups": n.all(Kind::SecurityGroup, p)})
}
