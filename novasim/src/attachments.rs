//! Nova's volume attachments (`/servers/{id}/os-volume_attachments`):
//! list, attach (200 with the attachment and its device, `/dev/vdb` and
//! on; the volume `attaching`, then `in-use`) and detach (202; the volume
//! `detaching`, then `available`), with Nova's answers: 409 for a server
//! in a state that forbids it (rescued, or in a task), 400 for a volume
//! that is not `available` or for detaching the root volume, 404 for an
//! unknown volume or one not attached to the server. The attachment's
//! fields follow the microversion (`tag` from 2.70,
//! `delete_on_termination` from 2.79, `attachment_id` and `bdm_uuid`
//! instead of `id` from 2.89).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::{ApiError, St, microversion, with_version};
use super::{Model, Volume};

/// How long a volume shows `attaching` or `detaching`.
const SETTLING: Duration = Duration::from_millis(200);

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route(
            "/compute/v2.1/servers/{id}/os-volume_attachments",
            get(list).post(attach),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-volume_attachments/{volume}",
            delete(detach).get(show),
        )
}

/// An attachment as Nova shows it at 2.`minor`.
fn attachment_json(v: &Volume, server: &str, minor: u32) -> Value {
    let mut j = json!({"volumeId": v.id, "serverId": server, "device": v.device});
    if minor >= 89 {
        j["attachment_id"] = json!(format!("{}-att", &v.id[..8.min(v.id.len())]));
        j["bdm_uuid"] = json!(format!("{}-bdm", &v.id[..8.min(v.id.len())]));
    } else {
        j["id"] = json!(v.id);
    }
    if minor >= 70 {
        j["tag"] = Value::Null;
    }
    if minor >= 79 {
        j["delete_on_termination"] = json!(v.delete_on_termination);
    }
    j
}

fn no_server(id: &str) -> ApiError {
    ApiError::not_found(&format!("Instance {id} could not be found."))
}

fn live_server(m: &Model, id: &str) -> Result<usize, ApiError> {
    m.servers
        .iter()
        .position(|s| s.id == id && !s.deleted)
        .ok_or_else(|| no_server(id))
}

async fn list(State(sim): State<St>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let minor = match microversion(&headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let m = sim.lock();
    let r = live_server(&m, &id).map(|_| {
        let list: Vec<Value> = m
            .volumes
            .iter()
            .filter(|v| v.server.as_deref() == Some(id.as_str()))
            .map(|v| attachment_json(v, &id, minor))
            .collect();
        Json(json!({"volumeAttachments": list})).into_response()
    });
    with_version(minor, r.unwrap_or_else(IntoResponse::into_response))
}

async fn show(
    State(sim): State<St>,
    Path((id, volume)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let minor = match microversion(&headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let m = sim.lock();
    let r = live_server(&m, &id).and_then(|_| {
        m.volumes
            .iter()
            .find(|v| v.id == volume && v.server.as_deref() == Some(id.as_str()))
            .map(|v| {
                Json(json!({"volumeAttachment": attachment_json(v, &id, minor)})).into_response()
            })
            .ok_or_else(|| {
                ApiError::not_found(&format!("Instance {id} is not attached to volume {volume}"))
            })
    });
    with_version(minor, r.unwrap_or_else(IntoResponse::into_response))
}

/// The first `/dev/vdX` after `vda` that none of the server's volumes uses.
fn next_device(m: &Model, server: &str) -> String {
    let used: Vec<&str> = m
        .volumes
        .iter()
        .filter(|v| v.server.as_deref() == Some(server))
        .filter_map(|v| v.device.as_deref())
        .collect();
    (b'b'..=b'z')
        .map(|c| format!("/dev/vd{}", c as char))
        .find(|d| !used.contains(&d.as_str()))
        .unwrap_or_else(|| "/dev/vdzz".into())
}

/// `POST /servers/{id}/os-volume_attachments` `{"volumeAttachment":
/// {"volumeId": ID}}`.
async fn attach(
    State(sim): State<St>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let minor = match microversion(&headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let r = attach_volume(&sim, &id, &body, minor);
    with_version(minor, r.unwrap_or_else(IntoResponse::into_response))
}

fn attach_volume(sim: &St, id: &str, body: &Bytes, minor: u32) -> Result<Response, ApiError> {
    let spec = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut b| b.get_mut("volumeAttachment").map(Value::take))
        .ok_or_else(|| {
            ApiError::bad_request(
                "Invalid input for field/attribute volumeAttachment. Value: None. 'volumeAttachment' is a required property",
            )
        })?;
    let Some(volume) = spec["volumeId"].as_str() else {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute volumeAttachment. 'volumeId' is a required property",
        ));
    };
    let delete_on_termination =
        minor >= 79 && spec["delete_on_termination"].as_bool() == Some(true);
    let now = sim.now();
    let mut m = sim.lock();
    let i = live_server(&m, id)?;
    m.servers[i].settle(now);
    m.servers[i]
        .check_volume_change("attach_volume")
        .map_err(ApiError::conflict)?;
    let Some(v) = m.volumes.iter().position(|v| v.id == volume) else {
        return Err(ApiError::not_found(&format!(
            "Volume {volume} could not be found."
        )));
    };
    let status = m.volumes[v].status(now).to_string();
    if status != "available" || m.volumes[v].server.is_some() {
        return Err(ApiError::bad_request(&format!(
            "Invalid input received: Invalid volume: Volume {volume} status must be available or downloading to reserve, but the current status is {status}. (HTTP 400)"
        )));
    }
    let device = next_device(&m, id);
    let vol = &mut m.volumes[v];
    vol.server = Some(id.to_string());
    vol.device = Some(device);
    vol.delete_on_termination = delete_on_termination;
    vol.pending = vec![(now + SETTLING, "attaching".into())];
    let j = attachment_json(vol, id, minor);
    m.servers[i].volumes.push(volume.to_string());
    m.servers[i].updated = now;
    Ok(Json(json!({"volumeAttachment": j})).into_response())
}

/// `DELETE /servers/{id}/os-volume_attachments/{volume}`: 202.
async fn detach(
    State(sim): State<St>,
    Path((id, volume)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let minor = match microversion(&headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let r = detach_volume(&sim, &id, &volume);
    with_version(minor, r.unwrap_or_else(IntoResponse::into_response))
}

fn detach_volume(sim: &St, id: &str, volume: &str) -> Result<Response, ApiError> {
    let now = sim.now();
    let mut m = sim.lock();
    let i = live_server(&m, id)?;
    let Some(v) = m.volumes.iter().position(|v| v.id == volume) else {
        return Err(ApiError::not_found(&format!(
            "Volume {volume} could not be found."
        )));
    };
    if m.volumes[v].server.as_deref() != Some(id) {
        return Err(ApiError::not_found(&format!(
            "Instance {id} is not attached to volume {volume}"
        )));
    }
    let server = &mut m.servers[i];
    if server.volume_gb.is_some() && server.volumes.first().map(String::as_str) == Some(volume) {
        return Err(ApiError::bad_request("Cannot detach a root device volume"));
    }
    server.settle(now);
    server
        .check_volume_change("detach_volume")
        .map_err(ApiError::conflict)?;
    server.volumes.retain(|x| x != volume);
    server.updated = now;
    let vol = &mut m.volumes[v];
    vol.server = None;
    vol.device = None;
    vol.pending = vec![(now + SETTLING, "detaching".into())];
    Ok(StatusCode::ACCEPTED.into_response())
}
