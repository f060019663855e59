//! The simulator's HTTP surface: Keystone v3 tokens, Nova's compute API,
//! Glance's image API, Cinder's volume show, and the `/_sim/` control API.
//!
//! Bodies follow the real services: Nova's error envelopes
//! (`itemNotFound`, `conflictingRequest`, `computeFault`), keystonemiddleware's
//! 401, microversion negotiation with both the legacy and the new header,
//! and server bodies whose fields change with the microversion (embedded
//! flavor from 2.47).

// Handlers return `Result<_, Response>` so an error response can be built
// where the problem is found; the size of `Response` does not matter here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::model::{Conflict, Server, iso8601, new_uuid};
use super::{Faults, Flavor, LoggedRequest, NewImage, NewServer, Sim, Timings, now_iso};

type St = Arc<Sim>;

/// Highest compute microversion served.
const MAX_MINOR: u32 = 96;

pub(super) fn router(sim: St) -> Router {
    let compute = Router::new()
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
            get(os_interfaces),
        )
        .route("/compute/v2.1/flavors", get(list_flavors))
        .route("/compute/v2.1/flavors/detail", get(list_flavors))
        .route("/compute/v2.1/flavors/{id}", get(get_flavor))
        .route("/image", get(image_versions))
        .route("/image/", get(image_versions))
        .route("/image/v2/images", get(list_images))
        .route("/image/v2/images/{id}", get(get_image))
        .route("/volume", get(volume_versions))
        .route("/volume/", get(volume_versions))
        .route("/volume/v3", get(volume_versions))
        .route("/volume/v3/", get(volume_versions))
        .route("/volume/v3/{project}/volumes/{id}", get(get_volume))
        // Cinder 3.67 and later also accept URLs without the project.
        .route("/volume/v3/volumes/{id}", get(get_project_volume));
    let identity = Router::new()
        .route("/identity", get(identity_versions))
        .route("/identity/", get(identity_versions))
        .route("/identity/v3", get(identity_version))
        .route("/identity/v3/", get(identity_version))
        .route("/identity/v3/auth/tokens", post(issue_token));
    let control = Router::new()
        .route("/_sim/servers", get(sim_servers).post(sim_add_server))
        .route("/_sim/servers/{id}", delete(sim_delete_server))
        .route("/_sim/images", post(sim_add_image))
        .route("/_sim/flavors", post(sim_add_flavor))
        .route("/_sim/faults", get(sim_get_faults).put(sim_put_faults))
        .route("/_sim/timings", put(sim_put_timings))
        .route("/_sim/expire-tokens", post(sim_expire_tokens))
        .route(
            "/_sim/requests",
            get(sim_requests).delete(sim_clear_requests),
        );
    compute
        .merge(identity)
        .layer(axum::middleware::from_fn_with_state(sim.clone(), observe))
        .merge(control)
        .with_state(sim)
}

// ----- cross-cutting: logging, faults, authentication ----------------------

/// Records every request, injects faults and checks tokens for the Nova
/// and Glance paths.
async fn observe(State(sim): State<St>, req: Request, next: Next) -> Response {
    // When the request arrived, for latency measurements.
    let at_ms = sim.started.elapsed().as_secs_f64() * 1000.0;
    let at_unix_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let microversion = requested_microversion(req.headers());
    let service =
        path.starts_with("/compute") || path.starts_with("/image") || path.starts_with("/volume");
    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut logged_body = (method == Method::POST || method == Method::PUT)
        .then(|| serde_json::from_slice::<Value>(&bytes).ok())
        .flatten();
    // Keep passwords out of the request log.
    if let Some(pw) = logged_body
        .as_mut()
        .and_then(|b| b.pointer_mut("/auth/identity/password/user/password"))
    {
        *pw = json!("<redacted>");
    }

    enum Injected {
        Fail(u16),
        Drop,
        LoseAnswer,
        Unauthorized,
        None,
    }
    let (latency, injected) = {
        let mut m = sim.lock();
        let latency = if service {
            Duration::from_millis(m.faults.latency_ms)
        } else {
            Duration::ZERO
        };
        let injected = if !service {
            Injected::None
        } else if m.faults.drop_next > 0 {
            m.faults.drop_next -= 1;
            Injected::Drop
        } else if m.faults.fail_next > 0 {
            m.faults.fail_next -= 1;
            Injected::Fail(m.faults.fail_status)
        } else if m.faults.lose_answer_next > 0 && path.ends_with("/action") {
            m.faults.lose_answer_next -= 1;
            Injected::LoseAnswer
        } else {
            let now = SystemTime::now();
            let valid = token
                .as_ref()
                .and_then(|t| m.tokens.get(t))
                .is_some_and(|exp| *exp > now);
            // Version documents are public, as in the real services.
            let public = ["/compute", "/compute/", "/volume", "/volume/"]
                .iter()
                .any(|p| path == *p);
            if !valid && !public {
                Injected::Unauthorized
            } else {
                Injected::None
            }
        };
        (latency, injected)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let dropped = matches!(injected, Injected::Drop | Injected::LoseAnswer);
    let response = match injected {
        Injected::Drop => dropped_connection(),
        Injected::LoseAnswer => {
            let _ = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            dropped_connection()
        }
        Injected::Fail(status) => fault_response(status),
        Injected::Unauthorized => unauthorized(),
        Injected::None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    let entry = LoggedRequest {
        at_ms,
        at_unix_ms,
        method: method.to_string(),
        path,
        query,
        microversion,
        body: logged_body,
        // A dropped connection answered nothing: status 0.
        status: if dropped {
            0
        } else {
            response.status().as_u16()
        },
    };
    sim.lock().log.push(entry);
    response
}

/// Sends headers then breaks the body, so the client sees its connection
/// fail mid-response.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by simulator"))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn fault_response(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return (
            status,
            [("content-type", "text/html")],
            "<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>",
        )
            .into_response();
    }
    nova_error(
        status,
        "computeFault",
        "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.\n<class 'oslo_db.exception.DBConnectionError'>",
    )
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", "Keystone uri=\"/identity\"")],
        Json(json!({"error": {"code": 401, "title": "Unauthorized",
            "message": "The request you have made requires authentication."}})),
    )
        .into_response()
}

fn nova_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ kind: {"code": status.as_u16(), "message": message} })),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    nova_error(StatusCode::NOT_FOUND, "itemNotFound", what)
}

fn conflict(c: Conflict) -> Response {
    nova_error(StatusCode::CONFLICT, "conflictingRequest", &c.0)
}

fn bad_request(message: &str) -> Response {
    nova_error(StatusCode::BAD_REQUEST, "badRequest", message)
}

// ----- microversions --------------------------------------------------------

fn requested_microversion(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get("openstack-api-version")
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("compute ").map(|s| s.trim().to_string());
    }
    headers
        .get("x-openstack-nova-api-version")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// The negotiated minor version of 2.x, or Nova's 406.
fn microversion(headers: &HeaderMap) -> Result<u32, Response> {
    let Some(v) = requested_microversion(headers) else {
        return Ok(1);
    };
    if v == "latest" {
        return Ok(MAX_MINOR);
    }
    let minor = v
        .strip_prefix("2.")
        .and_then(|m| m.parse::<u32>().ok())
        .filter(|m| (1..=MAX_MINOR).contains(m));
    minor.ok_or_else(|| {
        nova_error(
            StatusCode::NOT_ACCEPTABLE,
            "computeFault",
            &format!("Version {v} is not supported by the API. Minimum is 2.1 and maximum is 2.{MAX_MINOR}."),
        )
    })
}

fn with_version(minor: u32, mut r: Response) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("compute 2.{minor}")) {
        h.insert("openstack-api-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("2.{minor}")) {
        h.insert("x-openstack-nova-api-version", v);
    }
    h.insert(
        "vary",
        HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
    );
    r
}

// ----- Keystone -------------------------------------------------------------

async fn identity_versions(State(sim): State<St>) -> Response {
    Json(
        json!({"versions": {"values": [{"id": "v3.14", "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/identity/v3/", sim.base_url)}]}]}}),
    )
    .into_response()
}

async fn identity_version(State(sim): State<St>) -> Response {
    Json(
        json!({"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/identity/v3/", sim.base_url)}]}}),
    )
    .into_response()
}

async fn issue_token(State(sim): State<St>, body: Bytes) -> Response {
    let lifetime = {
        let m = sim.lock();
        if m.faults.keystone_down {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "text/html")],
                "<html><body><h1>503 Service Unavailable</h1></body></html>",
            )
                .into_response();
        }
        m.faults.token_lifetime_secs
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 400, "title": "Bad Request", "message": "Malformed JSON"}})),
        )
            .into_response();
    };
    let auth = &req["auth"];
    let user = &auth["identity"]["password"]["user"];
    let id = &sim.identity;
    let user_ok = user["name"].as_str() == Some(id.user.as_str())
        || user["id"].as_str() == Some(sim.user_id.as_str());
    let password_ok = user["password"].as_str() == Some(id.password.as_str());
    let project = &auth["scope"]["project"];
    let project_ok = project["name"].as_str() == Some(id.project.as_str())
        || project["id"].as_str() == Some(sim.project_id.as_str());
    if !(user_ok && password_ok && project_ok) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401, "title": "Unauthorized",
                "message": "The request you have made requires authentication."}})),
        )
            .into_response();
    }
    let token = new_uuid().replace('-', "");
    let expires = SystemTime::now() + Duration::from_secs(lifetime);
    sim.lock().tokens.insert(token.clone(), expires);
    let endpoint = |t: &str, path: &str| {
        json!({"type": t, "id": new_uuid(), "name": t, "endpoints": [
            {"interface": "public", "region": id.region, "region_id": id.region, "id": new_uuid(),
             "url": format!("{}{}", sim.base_url, path)},
            {"interface": "internal", "region": id.region, "region_id": id.region, "id": new_uuid(),
             "url": format!("{}{}", sim.base_url, path)}]})
    };
    let body = json!({"token": {
        "methods": ["password"],
        "expires_at": iso8601_micro(expires),
        "issued_at": iso8601_micro(SystemTime::now()),
        "user": {"id": sim.user_id, "name": id.user, "domain": {"id": "default", "name": "Default"}},
        "project": {"id": sim.project_id, "name": id.project, "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": new_uuid(), "name": "member"}],
        // Cinder under both of its catalog names, with the project in the
        // URL as most deployments still register it.
        "catalog": [
            endpoint("compute", "/compute/v2.1"),
            endpoint("image", "/image"),
            endpoint("identity", "/identity"),
            endpoint("volumev3", &format!("/volume/v3/{}", sim.project_id)),
            endpoint("block-storage", &format!("/volume/v3/{}", sim.project_id)),
        ],
    }});
    let mut r = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&token) {
        r.headers_mut().insert("x-subject-token", v);
    }
    r
}

fn iso8601_micro(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

// ----- Nova: versions and servers --------------------------------------------

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

fn server_links(sim: &Sim, id: &str) -> Value {
    json!([{"rel": "self", "href": format!("{}/compute/v2.1/servers/{id}", sim.base_url)},
           {"rel": "bookmark", "href": format!("{}/compute/servers/{id}", sim.base_url)}])
}

fn server_json(sim: &Sim, m: &super::Model, s: &Server, minor: u32) -> Value {
    let v = s.visible();
    let (status, task, vm, power) = if s.deleted {
        ("DELETED", None, "deleted", 0)
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
        "addresses": {"provisioning": addresses},
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
        "OS-EXT-SRV-ATTR:instance_name": format!("instance-{}", &s.id[..8]),
        "OS-EXT-SRV-ATTR:hypervisor_hostname": "compute-0.example.org",
        "OS-EXT-STS:task_state": task,
        "OS-EXT-STS:vm_state": vm,
        "OS-EXT-STS:power_state": power,
        "os-extended-volumes:volumes_attached": volumes_attached(s, minor),
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
        j["tags"] = json!([]);
    }
    if minor >= 73 {
        j["locked_reason"] = Value::Null;
    }
    j
}

/// `os-extended-volumes:volumes_attached`: the IDs, and from 2.3 whether
/// each goes with the server.
fn volumes_attached(s: &Server, minor: u32) -> Value {
    s.volumes
        .iter()
        .map(|id| {
            if minor >= 3 {
                json!({"id": id, "delete_on_termination": true})
            } else {
                json!({"id": id})
            }
        })
        .collect()
}

/// Nova's name filter is a regular expression; the simulator supports
/// substrings and `^`/`$` anchors, which is what clients send.
fn name_matches(filter: &str, name: &str) -> bool {
    let (start, f) = match filter.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, filter),
    };
    let (end, f) = match f.strip_suffix('$') {
        Some(rest) => (true, rest),
        None => (false, f),
    };
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

async fn list_servers(
    State(sim): State<St>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list(sim, q, headers, false)
}

async fn list_servers_detail(
    State(sim): State<St>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list(sim, q, headers, true)
}

fn list(sim: St, q: HashMap<String, String>, headers: HeaderMap, detail: bool) -> Response {
    let minor = match microversion(&headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let since = match q.get("changes-since").or_else(|| q.get("changes_since")) {
        Some(s) => match parse_time(s) {
            Some(t) => Some(t),
            None => {
                return with_version(
                    minor,
                    bad_request(&format!(
                        "Invalid filter field: changes-since. '{s}' is not a valid timestamp"
                    )),
                );
            }
        },
        None => None,
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(1000)
        .min(1000);
    let now = SystemTime::now();
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
        .filter(|s| {
            q.get("status")
                .is_none_or(|st| s.visible().status.eq_ignore_ascii_case(st))
        })
        .collect();
    if let Some(marker) = q.get("marker") {
        match selected.iter().position(|s| &s.id == marker) {
            Some(i) => selected.drain(..=i).for_each(drop),
            None => {
                return with_version(minor, bad_request(&format!("marker [{marker}] not found")));
            }
        }
    }
    let more = selected.len() > limit;
    selected.truncate(limit);
    let servers: Vec<Value> = selected
        .iter()
        .map(|s| {
            if detail {
                server_json(&sim, &m, s, minor)
            } else {
                json!({"id": s.id, "name": s.name, "links": server_links(&sim, &s.id)})
            }
        })
        .collect();
    let mut body = json!({ "servers": servers });
    if more && let Some(last) = selected.last() {
        let path = if detail { "servers/detail" } else { "servers" };
        body["servers_links"] = json!([{"rel": "next",
            "href": format!("{}/compute/v2.1/{path}?limit={limit}&marker={}", sim.base_url, last.id)}]);
    }
    with_version(minor, Json(body).into_response())
}

async fn get_server(State(sim): State<St>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let minor = match microversion(&headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let now = SystemTime::now();
    let mut m = sim.lock();
    let Some(i) = m.servers.iter().position(|s| s.id == id && !s.deleted) else {
        return with_version(
            minor,
            not_found(&format!("Instance {id} could not be found.")),
        );
    };
    m.servers[i].settle(now);
    let body = json!({"server": server_json(&sim, &m, &m.servers[i], minor)});
    with_version(minor, Json(body).into_response())
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
    let Ok(Value::Object(action)) = serde_json::from_slice::<Value>(&body) else {
        return with_version(minor, bad_request("Malformed request body"));
    };
    let Some((name, args)) = action.iter().next() else {
        return with_version(minor, bad_request("There is no such action: "));
    };
    let now = SystemTime::now();
    let mut m = sim.lock();
    let timings: Timings = m.timings;
    if m.faults.conflict_next > 0 {
        m.faults.conflict_next -= 1;
        return with_version(
            minor,
            conflict(Conflict(format!(
                "Cannot '{}' instance {id} while it is in task_state powering-off",
                name.trim_start_matches("os-")
            ))),
        );
    }
    let image_ref = |key: &str| args[key].as_str().map(str::to_string);
    let resolve_image = |m: &super::Model, r: &str| {
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
                    return with_version(
                        minor,
                        bad_request(&format!(
                            "Invalid imageRef provided. Image {r} could not be found."
                        )),
                    );
                }
            },
            None => {
                return with_version(
                    minor,
                    bad_request(
                        "Invalid input for field/attribute rebuild. Value: {}. 'imageRef' is a required property",
                    ),
                );
            }
        },
        "rescue" => match image_ref("rescue_image_ref") {
            Some(r) => match resolve_image(&m, &r) {
                Some(i) => Some(i),
                None => {
                    return with_version(
                        minor,
                        bad_request(&format!("Image {r} could not be found.")),
                    );
                }
            },
            None => None,
        },
        _ => None,
    };
    let Some(i) = m.servers.iter().position(|s| s.id == id && !s.deleted) else {
        return with_version(
            minor,
            not_found(&format!("Instance {id} could not be found.")),
        );
    };
    let server = &mut m.servers[i];
    server.settle(now);
    let result = match name.as_str() {
        "os-start" => server.start(now, &timings),
        "os-stop" => server.stop(now, &timings),
        "reboot" => match args["type"].as_str() {
            Some(t) if t.eq_ignore_ascii_case("HARD") => server.reboot(now, &timings, true),
            Some(t) if t.eq_ignore_ascii_case("SOFT") => server.reboot(now, &timings, false),
            _ => {
                return with_version(
                    minor,
                    bad_request("Invalid input for field/attribute type."),
                );
            }
        },
        "rebuild" => {
            let image = image_arg.unwrap_or_default();
            match server.rebuild(now, &timings, &image) {
                Ok(()) => {
                    let mut s = server.clone();
                    s.settle(now);
                    let mut j = server_json(&sim, &m, &s, minor);
                    j["adminPass"] = json!("sim-admin-pass");
                    return with_version(
                        minor,
                        (StatusCode::ACCEPTED, Json(json!({"server": j}))).into_response(),
                    );
                }
                Err(c) => Err(c),
            }
        }
        "rescue" => {
            let image = image_arg.unwrap_or_else(|| server.image.clone());
            match server.rescue(now, &timings, &image) {
                Ok(()) => {
                    return with_version(
                        minor,
                        (StatusCode::OK, Json(json!({"adminPass": "sim-admin-pass"})))
                            .into_response(),
                    );
                }
                Err(c) => Err(c),
            }
        }
        "unrescue" => server.unrescue(now, &timings),
        "trigger_crash_dump" if minor >= 17 => server.crash_dump(),
        "trigger_crash_dump" => {
            return with_version(minor, not_found("The resource could not be found."));
        }
        other => {
            return with_version(
                minor,
                bad_request(&format!("There is no such action: {other}")),
            );
        }
    };
    match result {
        Ok(()) => with_version(minor, StatusCode::ACCEPTED.into_response()),
        Err(c) => with_version(minor, conflict(c)),
    }
}

// ----- Nova: metadata -------------------------------------------------------

fn with_server<T>(
    sim: &Sim,
    id: &str,
    f: impl FnOnce(&mut Server) -> Result<T, Response>,
) -> Result<T, Response> {
    let now = SystemTime::now();
    let mut m = sim.lock();
    let Some(s) = m.servers.iter_mut().find(|s| s.id == id && !s.deleted) else {
        return Err(not_found(&format!("Instance {id} could not be found.")));
    };
    s.settle(now);
    f(s)
}

fn json_or(r: Result<Value, Response>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e,
    }
}

async fn get_metadata(State(sim): State<St>, Path(id): Path<String>) -> Response {
    json_or(with_server(&sim, &id, |s| {
        Ok(json!({"metadata": s.metadata}))
    }))
}

fn metadata_body(body: &Bytes, key: &str) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => match o.remove(key) {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(bad_request(&format!(
                "Malformed request body: '{key}' is a required property"
            ))),
        },
        _ => Err(bad_request("Malformed request body")),
    }
}

fn write_metadata(
    s: &mut Server,
    map: serde_json::Map<String, Value>,
    replace: bool,
) -> Result<Value, Response> {
    s.check_metadata_write().map_err(conflict)?;
    if replace {
        s.metadata.clear();
    }
    for (k, v) in map {
        let Some(v) = v.as_str() else {
            return Err(bad_request(&format!(
                "Invalid input for field/attribute metadata. Value: {v}"
            )));
        };
        if k.len() > 255 || v.len() > 255 {
            return Err(bad_request(
                "Invalid input for field/attribute metadata: longer than 255",
            ));
        }
        s.metadata.insert(k, v.to_string());
    }
    s.updated = SystemTime::now();
    Ok(json!({"metadata": s.metadata}))
}

async fn merge_metadata(State(sim): State<St>, Path(id): Path<String>, body: Bytes) -> Response {
    json_or(
        metadata_body(&body, "metadata")
            .and_then(|map| with_server(&sim, &id, |s| write_metadata(s, map, false))),
    )
}

async fn replace_metadata(State(sim): State<St>, Path(id): Path<String>, body: Bytes) -> Response {
    json_or(
        metadata_body(&body, "metadata")
            .and_then(|map| with_server(&sim, &id, |s| write_metadata(s, map, true))),
    )
}

async fn get_metadata_key(
    State(sim): State<St>,
    Path((id, key)): Path<(String, String)>,
) -> Response {
    json_or(with_server(&sim, &id, |s| match s.metadata.get(&key) {
        Some(v) => Ok(json!({"meta": {key.clone(): v}})),
        None => Err(not_found("Metadata item was not found")),
    }))
}

async fn put_metadata_key(
    State(sim): State<St>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let map = match metadata_body(&body, "meta") {
        Ok(m) => m,
        Err(e) => return e,
    };
    if map.len() != 1 || !map.contains_key(&key) {
        return bad_request("Request body and URI mismatch");
    }
    json_or(with_server(&sim, &id, |s| {
        write_metadata(s, map, false)?;
        Ok(json!({"meta": {key.clone(): s.metadata.get(&key)}}))
    }))
}

async fn delete_metadata_key(
    State(sim): State<St>,
    Path((id, key)): Path<(String, String)>,
) -> Response {
    match with_server(&sim, &id, |s| {
        s.check_metadata_write().map_err(conflict)?;
        match s.metadata.remove(&key) {
            Some(_) => {
                s.updated = SystemTime::now();
                Ok(())
            }
            None => Err(not_found("Metadata item was not found")),
        }
    }) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e,
    }
}

async fn os_interfaces(State(sim): State<St>, Path(id): Path<String>) -> Response {
    if sim.lock().faults.forbid_os_interface {
        return nova_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Policy doesn't allow os_compute_api:os-attach-interfaces:list to be performed.",
        );
    }
    json_or(with_server(&sim, &id, |s| {
        let list: Vec<Value> = s
            .macs
            .iter()
            .enumerate()
            .map(|(i, mac)| {
                json!({"port_state": "ACTIVE", "mac_addr": mac, "port_id": format!("{}-port{i}", &s.id[..8]),
                    "net_id": format!("net-{i}"),
                    "fixed_ips": [{"ip_address": format!("10.0.{i}.10"), "subnet_id": format!("subnet-{i}")}]})
            })
            .collect();
        Ok(json!({"interfaceAttachments": list}))
    }))
}

// ----- Nova: flavors; Glance: images ----------------------------------------

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
        None => not_found(&format!("Flavor {id} could not be found.")),
    }
}

async fn image_versions(State(sim): State<St>) -> Response {
    Json(json!({"versions": [{"id": "v2.9", "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{}/image/v2/", sim.base_url)}]}]}))
    .into_response()
}

fn image_json(i: &super::Image) -> Value {
    let mut j = json!({"id": i.id, "name": i.name, "status": "active", "visibility": "public",
        "container_format": "bare", "disk_format": "raw", "size": 1_048_576, "virtual_size": 1_048_576,
        "min_disk": 0, "min_ram": 0, "protected": false, "tags": [],
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "self": format!("/v2/images/{}", i.id), "file": format!("/v2/images/{}/file", i.id),
        "schema": "/v2/schemas/image"});
    // Glance v2 shows extra properties as top-level keys; they never
    // replace the core ones.
    for (k, v) in &i.properties {
        if j.get(k).is_none() {
            j[k] = json!(v);
        }
    }
    if let Some(fw) = &i.hw_firmware_type {
        j["hw_firmware_type"] = json!(fw);
    }
    j
}

async fn list_images(State(sim): State<St>, Query(q): Query<HashMap<String, String>>) -> Response {
    let m = sim.lock();
    let list: Vec<Value> = m
        .images
        .iter()
        .filter(|i| q.get("name").is_none_or(|n| n == &i.name))
        .filter(|i| q.get("id").is_none_or(|n| n == &i.id))
        .map(image_json)
        .collect();
    Json(json!({"images": list, "schema": "/v2/schemas/images", "first": "/v2/images"}))
        .into_response()
}

async fn get_image(State(sim): State<St>, Path(id): Path<String>) -> Response {
    let m = sim.lock();
    match m.images.iter().find(|i| i.id == id) {
        Some(i) => Json(image_json(i)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [("content-type", "text/plain")],
            format!("404 Not Found\n\nNo image found with ID {id}\n\n"),
        )
            .into_response(),
    }
}

// ----- Cinder: versions and volumes -------------------------------------------

async fn volume_versions(State(sim): State<St>) -> Response {
    Json(
        json!({"versions": [{"id": "v3.0", "status": "CURRENT", "version": "3.70",
        "min_version": "3.0", "updated": "2023-08-31T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/volume/v3/", sim.base_url)}],
        "media-types": [{"base": "application/json",
            "type": "application/vnd.openstack.volume+json;version=3"}]}]}),
    )
    .into_response()
}

fn volume_not_found(id: &str) -> Response {
    nova_error(
        StatusCode::NOT_FOUND,
        "itemNotFound",
        &format!("Volume {id} could not be found."),
    )
}

fn volume_json(sim: &Sim, v: &super::Volume) -> Value {
    let attachments: Vec<Value> = match (&v.server, &v.device) {
        (Some(server), Some(device)) => {
            vec![json!({"server_id": server, "attachment_id": new_uuid(),
            "attached_at": "2026-01-01T00:00:00.000000", "host_name": "compute-0", "volume_id": v.id,
            "device": device, "id": v.id})]
        }
        _ => Vec::new(),
    };
    let mut j = json!({"id": v.id, "name": "", "status": if attachments.is_empty() { "available" } else { "in-use" },
        "size": v.size, "bootable": if v.bootable { "true" } else { "false" },
        "availability_zone": "nova", "created_at": "2026-01-01T00:00:00.000000",
        "updated_at": "2026-01-01T00:00:00.000000", "description": null, "volume_type": "lvmdriver-1",
        "snapshot_id": null, "source_volid": null, "metadata": {}, "multiattach": false,
        "encrypted": false, "replication_status": null, "consistencygroup_id": null,
        "user_id": sim.user_id, "attachments": attachments,
        "links": [{"rel": "self", "href": format!("{}/volume/v3/{}/volumes/{}", sim.base_url, sim.project_id, v.id)}]});
    if !v.image_metadata.is_empty() {
        j["volume_image_metadata"] = json!(v.image_metadata);
    }
    j
}

async fn get_volume(
    State(sim): State<St>,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    if project != sim.project_id {
        return volume_not_found(&id);
    }
    get_project_volume(State(sim), Path(id)).await
}

async fn get_project_volume(State(sim): State<St>, Path(id): Path<String>) -> Response {
    let m = sim.lock();
    match m.volumes.iter().find(|v| v.id == id) {
        Some(v) => Json(json!({"volume": volume_json(&sim, v)})).into_response(),
        None => volume_not_found(&id),
    }
}

// ----- control API -----------------------------------------------------------

async fn sim_servers(State(sim): State<St>) -> Response {
    let servers: Vec<Value> = sim
        .servers()
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
            // What the API shows now, and whether a transition is under way.
            v["visible"] = serde_json::to_value(s.visible()).unwrap_or(Value::Null);
            v["busy"] = json!(!s.pending.is_empty());
            v
        })
        .collect();
    Json(json!({"servers": servers, "now": now_iso()})).into_response()
}

async fn sim_add_server(State(sim): State<St>, Json(spec): Json<NewServer>) -> Response {
    match sim.add_server(spec) {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

async fn sim_delete_server(State(sim): State<St>, Path(id): Path<String>) -> Response {
    if sim.delete_server(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn sim_add_image(State(sim): State<St>, Json(i): Json<NewImage>) -> Response {
    if i.name.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "name is required"})),
        )
            .into_response();
    }
    let id = sim.add_image_with(i);
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn sim_add_flavor(State(sim): State<St>, Json(f): Json<Flavor>) -> Response {
    let id = f.id.clone();
    match sim.add_flavor(f) {
        Ok(()) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

async fn sim_get_faults(State(sim): State<St>) -> Response {
    Json(sim.lock().faults.clone()).into_response()
}

async fn sim_put_faults(State(sim): State<St>, Json(f): Json<Faults>) -> Response {
    let mut f = f;
    if f.token_lifetime_secs == 0 {
        f.token_lifetime_secs = 3600;
    }
    if f.fail_status == 0 {
        f.fail_status = 500;
    }
    sim.set_faults(f);
    StatusCode::NO_CONTENT.into_response()
}

async fn sim_put_timings(State(sim): State<St>, Json(t): Json<Timings>) -> Response {
    sim.set_timings(t);
    StatusCode::NO_CONTENT.into_response()
}

async fn sim_expire_tokens(State(sim): State<St>) -> Response {
    sim.expire_tokens();
    StatusCode::NO_CONTENT.into_response()
}

async fn sim_requests(State(sim): State<St>) -> Response {
    Json(json!({"requests": sim.requests()})).into_response()
}

async fn sim_clear_requests(State(sim): State<St>) -> Response {
    sim.lock().log.clear();
    StatusCode::NO_CONTENT.into_response()
}
