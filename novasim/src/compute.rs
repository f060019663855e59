//! Nova's compute API as the simulator serves it: version documents,
//! servers (list with `changes-since`, `name`, `status`, the tag filters
//! of [`super::tags`] and pagination;
//! show; actions; metadata; interfaces) and flavors, with the server body's
//! fields changing with the microversion (embedded flavor from 2.47) as
//! Nova's do.
//!
//! The work of each call is a function returning Nova's body or its error
//! ([`ApiError`]), shared by the HTTP handlers and the in-process cloud
//! ([`super::local`]), so both answer exactly alike.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::{ApiError, MAX_MINOR, St, json_or, microversion, with_version};
use super::model::{Conflict, Rescue, Server, iso8601};
use super::states::{PowerState, Status, VmState};
use super::{Model, Sim};

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route("/compute", get(compute_versions))
        .route("/compute/", get(compute_versions))
        .route("/compute/v2.1", get(compute_version))
        .route("/compute/v2.1/", get(compute_version))
        .route("/compute/v2.1/servers", get(list_servers))
        .route("/compute/v2.1/servers/detail", get(list_servers_detail))
        .route("/compute/v2.1/servers/{id}", get(get_server))
        .route("/compute/v2.1/servers/{id}/action", post(server_action))
        .route(
            "/compute/v2.1/servers/{id}/metadata",
            get(get_metadata).post(merge_metadata).put(replace_metadata),
        )
        .route(
            "/compute/v2.1/servers/{id}/metadata/{key}",
            get(get_metadata_key)
                .put(put_metadata_key)
                .delete(delete_metadata_key),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-interface",
            get(os_interfaces).post(attach_interface),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-interface/{port}",
            get(show_interface).delete(detach_interface),
        )
        .route("/compute/v2.1/flavors", get(list_flavors))
        .route("/compute/v2.1/flavors/detail", get(list_flavors))
        .route("/compute/v2.1/flavors/{id}", get(get_flavor))
        .route(
            "/compute/v2.1/flavors/{id}/os-extra_specs",
            get(get_flavor_extra_specs),
        )
}

// ----- versions --------------------------------------------------------------

fn version_doc(sim: &Sim) -> Value {
    json!({"id": "v2.1", "status": "CURRENT", "version": format!("2.{MAX_MINOR}"),
        "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/compute/v2.1/", sim.base_url)}],
        "media-types": [{"base": "application/json",
            "type": "application/vnd.openstack.compute+json;version=2.1"}]})
}

async fn compute_versions(State(sim): State<St>) -> Response {
    Json(json!({"versions": [version_doc(&sim)]})).into_response()
}

async fn compute_version(State(sim): State<St>) -> Response {
    Json(json!({"version": version_doc(&sim)})).into_response()
}

// ----- server bodies ----------------------------------------------------------

fn server_links(sim: &Sim, id: &str) -> Value {
    json!([{"rel": "self", "href": format!("{}/compute/v2.1/servers/{id}", sim.base_url)},
           {"rel": "bookmark", "href": format!("{}/compute/servers/{id}", sim.base_url)}])
}

/// A server as Nova shows it at microversion `2.minor`.
pub(super) fn server_json(sim: &Sim, m: &Model, s: &Server, minor: u32) -> Value {
    let v = s.visible();
    let (status, task, vm, power) = if s.deleted {
        (Status::Deleted, None, VmState::Deleted, PowerState::NoState)
    } else {
        (v.status, v.task_state, v.vm_state, v.power_state)
    };
    let flavor = m.flavors.iter().find(|f| f.id == s.flavor);
    let flavor_json = if minor >= 47 {
        flavor.map_or(json!({}), |f| {
            json!({"vcpus": f.vcpus, "ram": f.ram, "disk": f.disk, "ephemeral": 0, "swap": 0,
                "original_name": f.name, "extra_specs": {}})
        })
    } else {
        json!({"id": s.flavor, "links": [{"rel": "bookmark",
            "href": format!("{}/compute/flavors/{}", sim.base_url, s.flavor)}]})
    };
    let image = if s.image.is_empty() {
        json!("")
    } else {
        json!({"id": s.image, "links": [{"rel": "bookmark",
            "href": format!("{}/compute/images/{}", sim.base_url, s.image)}]})
    };
    let addresses: Vec<Value> = s
        .macs
        .iter()
        .enumerate()
        .map(|(i, mac)| {
            json!({"addr": format!("10.0.{}.{}", i, 10 + (s.created.len() % 200)), "version": 4,
                "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac})
        })
        .collect();
    // The server's own NICs on "provisioning", then attached ports per
    // network.
    let mut all_addresses = super::neutron::addresses(m, &s.ports);
    if !addresses.is_empty() || s.ports.is_empty() {
        all_addresses.insert("provisioning".into(), json!(addresses));
    }
    let mut j = json!({
        "id": s.id,
        "name": s.name,
        "status": status,
        "tenant_id": sim.project_id,
        "user_id": sim.user_id,
        "metadata": s.metadata,
        "hostId": "3f3a6f1a0b0d4b55f3b7f0c6b1d8a3f2c0e9e8a7c6b5a4f3e2d1c0b9",
        "image": image,
        "flavor": flavor_json,
        "created": s.created,
        "updated": iso8601(s.updated),
        "addresses": all_addresses,
        "accessIPv4": "",
        "accessIPv6": "",
        "links": server_links(sim, &s.id),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": "nova",
        "config_drive": "",
        "key_name": null,
        "OS-SRV-USG:launched_at": s.created,
        "OS-SRV-USG:terminated_at": null,
        "OS-EXT-SRV-ATTR:host": "compute-0",
        "OS-EXT-SRV-ATTR:instance_name": format!("instance-{}", &s.id[..8.min(s.id.len())]),
        "OS-EXT-SRV-ATTR:hypervisor_hostname": "compute-0.example.org",
        "OS-EXT-STS:task_state": task,
        "OS-EXT-STS:vm_state": vm,
        "OS-EXT-STS:power_state": power,
        "os-extended-volumes:volumes_attached": volumes_attached(m, s, minor),
        "security_groups": [{"name": "default"}],
    });
    if minor >= 3 {
        j["OS-EXT-SRV-ATTR:root_device_name"] = json!("/dev/vda");
        j["OS-EXT-SRV-ATTR:hostname"] = json!(s.name);
    }
    if minor >= 9 {
        j["locked"] = json!(false);
    }
    if minor >= 19 {
        j["description"] = Value::Null;
    }
    if minor >= 26 {
        j["tags"] = json!(s.tags);
    }
    if minor >= 73 {
        j["locked_reason"] = Value::Null;
    }
    j
}

/// `os-extended-volumes:volumes_attached`: the IDs, and from 2.3 whether
/// each goes with the server.
fn volumes_attached(m: &Model, s: &Server, minor: u32) -> Value {
    s.volumes
        .iter()
        .map(|id| {
            if minor >= 3 {
                let delete = m
                    .volumes
                    .iter()
                    .find(|v| &v.id == id)
                    .is_none_or(|v| v.delete_on_termination);
                json!({"id": id, "delete_on_termination": delete})
            } else {
                json!({"id": id})
            }
        })
        .collect()
}

/// Nova's name filter is a regular expression; the simulator supports
/// substrings, `^`/`$` anchors and backslash escapes, which is what clients
/// send.
fn name_matches(filter: &str, name: &str) -> bool {
    let (start, f) = match filter.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, filter),
    };
    let (end, f) = match f.strip_suffix('$') {
        Some(rest) if !rest.ends_with('\\') => (true, rest),
        _ => (false, f),
    };
    let mut literal = String::with_capacity(f.len());
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => literal.extend(chars.next()),
            c => literal.push(c),
        }
    }
    let f = literal.as_str();
    match (start, end) {
        (true, true) => name == f,
        (true, false) => name.starts_with(f),
        (false, true) => name.ends_with(f),
        (false, false) => name.contains(f),
    }
}

fn parse_time(s: &str) -> Option<SystemTime> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc).into());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc().into())
}

// ----- servers: list and show ---------------------------------------------------

/// `GET /servers[/detail]` with Nova's query parameters.
pub(super) fn list(
    sim: &Sim,
    q: &HashMap<String, String>,
    minor: u32,
    detail: bool,
) -> Result<Value, ApiError> {
    let since = match q.get("changes-since").or_else(|| q.get("changes_since")) {
        Some(s) => match parse_time(s) {
            Some(t) => Some(t),
            None => {
                return Err(ApiError::bad_request(&format!(
                    "Invalid filter field: changes-since. '{s}' is not a valid timestamp"
                )));
            }
        },
        None => None,
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(1000)
        .min(1000);
    let now = sim.now();
    let mut m = sim.lock();
    m.servers.iter_mut().for_each(|s| {
        s.settle(now);
    });
    let mut selected: Vec<&Server> = m
        .servers
        .iter()
        .filter(|s| match since {
            // changes-since lists deleted servers too, by `updated`, with
            // one-second resolution like Nova's database column.
            Some(t) => {
                let secs = |x: SystemTime| {
                    x.duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                };
                secs(s.updated) >= secs(t)
            }
            None => !s.deleted,
        })
        .filter(|s| q.get("name").is_none_or(|n| name_matches(n, &s.name)))
        .filter(|s| super::tags::matches(q, s, minor))
        .filter(|s| {
            q.get("status")
                .is_none_or(|st| s.visible().status.as_str().eq_ignore_ascii_case(st))
        })
        .collect();
    if let Some(marker) = q.get("marker") {
        match selected.iter().position(|s| &s.id == marker) {
            Some(i) => selected.drain(..=i).for_each(drop),
            None => {
                return Err(ApiError::bad_request(&format!(
                    "marker [{marker}] not found"
                )));
            }
        }
    }
    let more = selected.len() > limit;
    selected.truncate(limit);
    let servers: Vec<Value> = selected
        .iter()
        .map(|s| {
            if detail {
                server_json(sim, &m, s, minor)
            } else {
                json!({"id": s.id, "name": s.name, "links": server_links(sim, &s.id)})
            }
        })
        .collect();
    let mut body = json!({ "servers": servers });
    if more && let Some(last) = selected.last() {
        let path = if detail { "servers/detail" } else { "servers" };
        body["servers_links"] = json!([{"rel": "next",
            "href": format!("{}/compute/v2.1/{path}?limit={limit}&marker={}", sim.base_url, last.id)}]);
    }
    Ok(body)
}

/// `GET /servers/{id}`.
pub(super) fn show(sim: &Sim, id: &str, minor: u32) -> Result<Value, ApiError> {
    let now = sim.now();
    let mut m = sim.lock();
    let Some(i) = m.servers.iter().position(|s| s.id == id && !s.deleted) else {
        return Err(ApiError::not_found(&format!(
            "Instance {id} could not be found."
        )));
    };
    m.servers[i].settle(now);
    Ok(json!({"server": server_json(sim, &m, &m.servers[i], minor)}))
}

async fn list_servers(
    State(sim): State<St>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_response(&sim, &q, &headers, false)
}

async fn list_servers_detail(
    State(sim): State<St>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_response(&sim, &q, &headers, true)
}

fn list_response(
    sim: &Sim,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    detail: bool,
) -> Response {
    let minor = match microversion(headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    with_version(minor, json_or(list(sim, q, minor, detail)))
}

async fn get_server(State(sim): State<St>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let minor = match microversion(&headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    with_version(minor, json_or(show(&sim, &id, minor)))
}

// ----- servers: actions -------------------------------------------------------

/// `POST /servers/{id}/action`: the status and body Nova answers with.
pub(super) fn act(
    sim: &Sim,
    id: &str,
    body: &Value,
    minor: u32,
) -> Result<(StatusCode, Option<Value>), ApiError> {
    let Value::Object(action) = body else {
        return Err(ApiError::bad_request("Malformed request body"));
    };
    let Some((name, args)) = action.iter().next() else {
        return Err(ApiError::bad_request("There is no such action: "));
    };
    if name == "os-getConsoleOutput" {
        // A read, not a state change: no conflict faults, answered 200.
        return super::console::console_output(sim, id, args).map(|b| (StatusCode::OK, Some(b)));
    }
    let now = sim.now();
    let mut m = sim.lock();
    let timings = m.timings;
    if m.faults.conflict_next > 0 {
        m.faults.conflict_next -= 1;
        return Err(ApiError::conflict(Conflict(format!(
            "Cannot '{}' instance {id} while it is in task_state powering-off",
            name.trim_start_matches("os-")
        ))));
    }
    let tasks_fail = m.faults.tasks_fail;
    let refuse_rescue = m.faults.refuse_rescue;
    let image_ref = |key: &str| args[key].as_str().map(str::to_string);
    let resolve_image = |m: &Model, r: &str| {
        m.images
            .iter()
            .find(|i| i.id == r || r.ends_with(&format!("/{}", i.id)))
            .map(|i| i.id.clone())
    };
    let image_arg = match name.as_str() {
        "rebuild" => match image_ref("imageRef") {
            Some(r) => match resolve_image(&m, &r) {
                Some(i) => Some(i),
                None => {
                    return Err(ApiError::bad_request(&format!(
                        "Invalid imageRef provided. Image {r} could not be found."
                    )));
                }
            },
            None => {
                return Err(ApiError::bad_request(
                    "Invalid input for field/attribute rebuild. Value: {}. 'imageRef' is a required property",
                ));
            }
        },
        "rescue" => match image_ref("rescue_image_ref") {
            Some(r) => match resolve_image(&m, &r) {
                Some(i) => Some(i),
                None => {
                    return Err(ApiError::bad_request(&format!(
                        "Image {r} could not be found."
                    )));
                }
            },
            None => None,
        },
        _ => None,
    };
    let Some(i) = m.servers.iter().position(|s| s.id == id && !s.deleted) else {
        return Err(ApiError::not_found(&format!(
            "Instance {id} could not be found."
        )));
    };
    let rescue_plan =
        (name == "rescue").then(|| rescue_plan(&m, &m.servers[i], image_arg.clone(), minor));
    let server = &mut m.servers[i];
    let power_before = server.settle(now).power_state;
    let result = match name.as_str() {
        "os-start" => server.start(now, &timings),
        "os-stop" => server.stop(now, &timings),
        "reboot" => match args["type"].as_str() {
            Some(t) if t.eq_ignore_ascii_case("HARD") => server.reboot(now, &timings, true),
            Some(t) if t.eq_ignore_ascii_case("SOFT") => server.reboot(now, &timings, false),
            _ => {
                return Err(ApiError::bad_request(
                    "Invalid input for field/attribute type.",
                ));
            }
        },
        "rebuild" => server.rebuild(now, &timings, &image_arg.clone().unwrap_or_default()),
        "rescue" => {
            // Nova checks the state (409) before the image and the
            // server's disks (400).
            server.check_rescue().map_err(ApiError::conflict)?;
            if refuse_rescue {
                return Err(ApiError::bad_request(&format!(
                    "Instance {} cannot be rescued: the driver does not support rescue with this image",
                    server.id
                )));
            }
            match rescue_plan {
                Some(Ok(how)) => server.rescue_as(now, &timings, how),
                Some(Err(e)) => return Err(e),
                None => server.rescue(now, &timings, &server.image.clone()),
            }
        }
        "unrescue" => server.unrescue(now, &timings),
        "trigger_crash_dump" if minor >= 17 => server.crash_dump(),
        "trigger_crash_dump" => {
            return Err(ApiError::not_found("The resource could not be found."));
        }
        other => {
            return Err(ApiError::bad_request(&format!(
                "There is no such action: {other}"
            )));
        }
    };
    result.map_err(ApiError::conflict)?;
    if tasks_fail && name != "trigger_crash_dump" {
        server.fail_task(power_before);
    }
    match name.as_str() {
        "rebuild" => {
            let mut s = server.clone();
            s.settle(now);
            let mut j = server_json(sim, &m, &s, minor);
            j["adminPass"] = json!("sim-admin-pass");
            Ok((StatusCode::ACCEPTED, Some(json!({"server": j}))))
        }
        "rescue" => Ok((StatusCode::OK, Some(json!({"adminPass": "sim-admin-pass"})))),
        _ => Ok((StatusCode::ACCEPTED, None)),
    }
}

/// How Nova would rescue `server` with `image` (the server's own image
/// when none is given), or why it refuses.
///
/// The rescue image's `hw_rescue_device` or `hw_rescue_bus` property asks
/// for a stable-device rescue, which the libvirt driver carries out at any
/// microversion for a server booted from an image. Microversion 2.87 only
/// adds the rescue of volume-backed servers, and only with an image that
/// has both properties; any other rescue of a volume-backed server is
/// Nova's 400.
fn rescue_plan(
    m: &Model,
    server: &Server,
    image: Option<String>,
    minor: u32,
) -> Result<Rescue, ApiError> {
    let image = image.unwrap_or_else(|| server.image.clone());
    let mut props: BTreeMap<String, String> = BTreeMap::new();
    if let Some(i) = m.images.iter().find(|i| i.id == image) {
        props.extend(i.properties.clone());
    } else if let Some(root) = server
        .volumes
        .first()
        .and_then(|v| m.volumes.iter().find(|x| &x.id == v))
    {
        // A volume-backed server's own image is its root volume's.
        props.extend(root.image_metadata.clone());
    }
    let device = props.get("hw_rescue_device");
    let bus = props.get("hw_rescue_bus");
    if server.volume_gb.is_some() && !(minor >= 87 && device.is_some() && bus.is_some()) {
        return Err(ApiError::bad_request(&format!(
            "Instance {} cannot be rescued: Cannot rescue a volume-backed instance",
            server.id
        )));
    }
    if device.is_none() && bus.is_none() {
        return Ok(Rescue::legacy(&image));
    }
    let device = device.cloned().unwrap_or_else(|| "disk".into());
    let bus = bus
        .cloned()
        .unwrap_or_else(|| default_bus(&device, &props).to_string());
    Ok(Rescue {
        image,
        mode: "stable",
        device: Some(device),
        bus: Some(bus),
    })
}

/// libvirt's bus for a device of `device` type on KVM, from the image's
/// properties (Nova's `get_disk_bus_for_device_type`).
fn default_bus<'a>(device: &str, props: &'a BTreeMap<String, String>) -> &'a str {
    if let Some(b) = props.get(&format!("hw_{device}_bus")) {
        return b;
    }
    let arch = props
        .get("hw_architecture")
        .or_else(|| props.get("architecture"))
        .map(String::as_str)
        .unwrap_or("x86_64");
    match device {
        "cdrom"
            if [
                "ppc", "ppc64", "ppcle", "ppc64le", "s390", "s390x", "aarch64",
            ]
            .contains(&arch) =>
        {
            "scsi"
        }
        "cdrom"
            if props
                .get("hw_machine_type")
                .is_some_and(|t| t.contains("q35")) =>
        {
            "sata"
        }
        "cdrom" => "ide",
        "floppy" => "fdc",
        "lun" => "scsi",
        _ => "virtio",
    }
}

async fn server_action(
    State(sim): State<St>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let minor = match microversion(&headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return with_version(
            minor,
            ApiError::bad_request("Malformed request body").into_response(),
        );
    };
    let r = match act(&sim, &id, &body, minor) {
        Ok((status, Some(b))) => (status, Json(b)).into_response(),
        Ok((status, None)) => status.into_response(),
        Err(e) => e.into_response(),
    };
    with_version(minor, r)
}

// ----- servers: metadata and interfaces -----------------------------------------

fn with_server<T>(
    sim: &Sim,
    id: &str,
    f: impl FnOnce(&mut Server, SystemTime) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let now = sim.now();
    let mut m = sim.lock();
    let Some(s) = m.servers.iter_mut().find(|s| s.id == id && !s.deleted) else {
        return Err(ApiError::not_found(&format!(
            "Instance {id} could not be found."
        )));
    };
    s.settle(now);
    f(s, now)
}

fn metadata_body(body: &Bytes, key: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => match o.remove(key) {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(ApiError::bad_request(&format!(
                "Malformed request body: '{key}' is a required property"
            ))),
        },
        _ => Err(ApiError::bad_request("Malformed request body")),
    }
}

fn write_metadata(
    s: &mut Server,
    now: SystemTime,
    map: serde_json::Map<String, Value>,
    replace: bool,
) -> Result<Value, ApiError> {
    s.check_metadata_write().map_err(ApiError::conflict)?;
    if replace {
        s.metadata.clear();
    }
    for (k, v) in map {
        let Some(v) = v.as_str() else {
            return Err(ApiError::bad_request(&format!(
                "Invalid input for field/attribute metadata. Value: {v}"
            )));
        };
        if k.len() > 255 || v.len() > 255 {
            return Err(ApiError::bad_request(
                "Invalid input for field/attribute metadata: longer than 255",
            ));
        }
        s.metadata.insert(k, v.to_string());
    }
    s.updated = now;
    Ok(json!({"metadata": s.metadata}))
}

/// `PUT /servers/{id}/metadata/{key}`.
pub(super) fn put_metadata_item(
    sim: &Sim,
    id: &str,
    key: &str,
    value: &str,
) -> Result<Value, ApiError> {
    with_server(sim, id, |s, now| {
        let mut map = serde_json::Map::new();
        map.insert(key.to_string(), json!(value));
        write_metadata(s, now, map, false)?;
        Ok(json!({"meta": {key: s.metadata.get(key)}}))
    })
}

async fn get_metadata(State(sim): State<St>, Path(id): Path<String>) -> Response {
    json_or(with_server(&sim, &id, |s, _| {
        Ok(json!({"metadata": s.metadata}))
    }))
}

async fn merge_metadata(State(sim): State<St>, Path(id): Path<String>, body: Bytes) -> Response {
    json_or(
        metadata_body(&body, "metadata")
            .and_then(|map| with_server(&sim, &id, |s, now| write_metadata(s, now, map, false))),
    )
}

async fn replace_metadata(State(sim): State<St>, Path(id): Path<String>, body: Bytes) -> Response {
    json_or(
        metadata_body(&body, "metadata")
            .and_then(|map| with_server(&sim, &id, |s, now| write_metadata(s, now, map, true))),
    )
}

async fn get_metadata_key(
    State(sim): State<St>,
    Path((id, key)): Path<(String, String)>,
) -> Response {
    json_or(with_server(&sim, &id, |s, _| match s.metadata.get(&key) {
        Some(v) => Ok(json!({"meta": {key.clone(): v}})),
        None => Err(ApiError::not_found("Metadata item was not found")),
    }))
}

async fn put_metadata_key(
    State(sim): State<St>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let map = match metadata_body(&body, "meta") {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let value = match map.get(&key).and_then(Value::as_str) {
        Some(v) if map.len() == 1 => v.to_string(),
        _ => return ApiError::bad_request("Request body and URI mismatch").into_response(),
    };
    json_or(put_metadata_item(&sim, &id, &key, &value))
}

async fn delete_metadata_key(
    State(sim): State<St>,
    Path((id, key)): Path<(String, String)>,
) -> Response {
    match with_server(&sim, &id, |s, now| {
        s.check_metadata_write().map_err(ApiError::conflict)?;
        match s.metadata.remove(&key) {
            Some(_) => {
                s.updated = now;
                Ok(())
            }
            None => Err(ApiError::not_found("Metadata item was not found")),
        }
    }) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn os_interfaces(State(sim): State<St>, Path(id): Path<String>) -> Response {
    if sim.lock().faults.forbid_os_interface {
        return ApiError::forbidden(
            "Policy doesn't allow os_compute_api:os-attach-interfaces:list to be performed.",
        )
        .into_response();
    }
    let now = sim.now();
    let mut m = sim.lock();
    let Some(s) = m.servers.iter_mut().find(|s| s.id == id && !s.deleted) else {
        return ApiError::not_found(&format!("Instance {id} could not be found.")).into_response();
    };
    s.settle(now);
    let s = s.clone();
    // The server's own NICs (made with it, on no simulated network), then
    // the Neutron ports attached since.
    let mut list: Vec<Value> = s
        .macs
        .iter()
        .enumerate()
        .map(|(i, mac)| {
            json!({"port_state": "ACTIVE", "mac_addr": mac, "port_id": format!("{}-port{i}", &s.id[..8.min(s.id.len())]),
                "net_id": format!("net-{i}"),
                "fixed_ips": [{"ip_address": format!("10.0.{i}.10"), "subnet_id": format!("subnet-{i}")}]})
        })
        .collect();
    list.extend(
        s.ports
            .iter()
            .filter_map(|p| super::neutron::interface_json(&m, p)),
    );
    Json(json!({"interfaceAttachments": list})).into_response()
}

/// `POST /servers/{id}/os-interface`: binds an existing port
/// (`port_id`) or a new one on a network (`net_id`) to the server, as the
/// hypervisor hot-plugs its NIC.
async fn attach_interface(State(sim): State<St>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return ApiError::bad_request("Malformed request body").into_response();
    };
    let a = &body["interfaceAttachment"];
    let mut m = sim.lock();
    if m.faults.forbid_interface_attach {
        return ApiError::forbidden(
            "Policy doesn't allow os_compute_api:os-attach-interfaces:create to be performed.",
        )
        .into_response();
    }
    if !m.servers.iter().any(|s| s.id == id && !s.deleted) {
        return ApiError::not_found(&format!("Instance {id} could not be found.")).into_response();
    }
    match super::neutron::attach(
        &sim,
        &mut m,
        &id,
        a["port_id"].as_str(),
        a["net_id"].as_str(),
    ) {
        Ok(port) => {
            let port_id = port["id"].as_str().unwrap_or_default();
            match super::neutron::interface_json(&m, port_id) {
                Some(v) => Json(json!({"interfaceAttachment": v})).into_response(),
                None => ApiError::not_found("Port could not be found.").into_response(),
            }
        }
        Err((status, message)) => {
            let kind = match status {
                404 => "itemNotFound",
                409 => "conflictingRequest",
                403 => "forbidden",
                _ => "badRequest",
            };
            super::http::nova_error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                kind,
                &message,
            )
        }
    }
}

/// `GET /servers/{id}/os-interface/{port_id}`.
async fn show_interface(
    State(sim): State<St>,
    Path((id, port)): Path<(String, String)>,
) -> Response {
    let m = sim.lock();
    let attached = m
        .servers
        .iter()
        .any(|s| s.id == id && !s.deleted && s.ports.contains(&port));
    match attached
        .then(|| super::neutron::interface_json(&m, &port))
        .flatten()
    {
        Some(v) => Json(json!({"interfaceAttachment": v})).into_response(),
        None => ApiError::not_found(&format!(
            "Instance {id} has no interface attachment with port {port}."
        ))
        .into_response(),
    }
}

/// `DELETE /servers/{id}/os-interface/{port_id}`: 202, the NIC
/// unplugged and the port unbound.
async fn detach_interface(
    State(sim): State<St>,
    Path((id, port)): Path<(String, String)>,
) -> Response {
    let mut m = sim.lock();
    if !m.servers.iter().any(|s| s.id == id && !s.deleted) {
        return ApiError::not_found(&format!("Instance {id} could not be found.")).into_response();
    }
    if super::neutron::detach(&mut m, &id, &port) {
        StatusCode::ACCEPTED.into_response()
    } else {
        ApiError::not_found(&format!("Port {port} is not attached")).into_response()
    }
}

// ----- flavors ----------------------------------------------------------------

fn flavor_json(f: &super::Flavor) -> Value {
    json!({"id": f.id, "name": f.name, "vcpus": f.vcpus, "ram": f.ram, "disk": f.disk,
        "OS-FLV-EXT-DATA:ephemeral": 0, "swap": "", "rxtx_factor": 1.0,
        "os-flavor-access:is_public": true, "OS-FLV-DISABLED:disabled": false, "links": []})
}

async fn list_flavors(State(sim): State<St>) -> Response {
    let m = sim.lock();
    let list: Vec<Value> = m.flavors.iter().map(flavor_json).collect();
    Json(json!({"flavors": list})).into_response()
}

async fn get_flavor(State(sim): State<St>, Path(id): Path<String>) -> Response {
    let m = sim.lock();
    match m.flavors.iter().find(|f| f.id == id) {
        Some(f) => Json(json!({"flavor": flavor_json(f)})).into_response(),
        None => ApiError::not_found(&format!("Flavor {id} could not be found.")).into_response(),
    }
}

/// A flavor's extra specs (none here, as the servers' embedded flavors
/// show), which openstacksdk's `find_flavor` reads after finding a flavor.
async fn get_flavor_extra_specs(State(sim): State<St>, Path(id): Path<String>) -> Response {
    let m = sim.lock();
    if m.flavors.iter().any(|f| f.id == id) {
        Json(json!({"extra_specs": {}})).into_response()
    } else {
        ApiError::not_found(&format!("Flavor {id} could not be found.")).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn name_filters() {
        assert!(name_matches("^a\\.b$", "a.b"));
        assert!(!name_matches("^a\\.b$", "a.bc"));
        assert!(name_matches("vm", "my-vm-1"));
        assert!(name_matches("^my", "my-vm-1"));
    }
}
