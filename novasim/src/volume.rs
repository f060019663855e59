//! The little of Cinder v3 the simulator serves: the version document,
//! volume create (empty or from a Glance image: 202, `creating`, then
//! `downloading` for an image, then `available`), list, show and delete
//! (202; refused with Cinder's 400 while attached or busy), under the
//! project-scoped URL most catalogs register and the project-less one
//! Cinder 3.67 added. Root volumes of servers booted from a volume exist
//! from the start; Nova attaches the others (`super::attachments`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::{St, nova_error};
use super::model::new_uuid;
use super::{Sim, Volume};

/// How long a volume shows `creating`, and then `downloading` when made
/// from an image.
const CREATING: Duration = Duration::from_millis(200);
const DOWNLOADING: Duration = Duration::from_millis(300);

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route("/volume", get(volume_versions))
        .route("/volume/", get(volume_versions))
        .route("/volume/v3", get(volume_versions))
        .route("/volume/v3/", get(volume_versions))
        .route(
            "/volume/v3/{project}/volumes",
            get(list_volumes).post(create_volume),
        )
        .route(
            "/volume/v3/{project}/volumes/detail",
            get(list_volumes_detail),
        )
        .route(
            "/volume/v3/{project}/volumes/{id}",
            get(get_volume).delete(delete_volume),
        )
        // Cinder 3.67 and later also accept URLs without the project.
        .route(
            "/volume/v3/volumes",
            get(list_project_volumes).post(create_project_volume),
        )
        .route(
            "/volume/v3/volumes/{id}",
            get(get_project_volume).delete(delete_project_volume),
        )
}

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

fn volume_json(sim: &Sim, v: &Volume) -> Value {
    volume_json_at(sim, v, sim.now())
}

fn volume_json_at(sim: &Sim, v: &Volume, now: SystemTime) -> Value {
    let attachments: Vec<Value> = match (&v.server, &v.device) {
        (Some(server), Some(device)) => {
            vec![json!({"server_id": server, "attachment_id": new_uuid(),
            "attached_at": "2026-01-01T00:00:00.000000", "host_name": "compute-0", "volume_id": v.id,
            "device": device, "id": v.id})]
        }
        _ => Vec::new(),
    };
    let mut j = json!({"id": v.id, "name": v.name, "status": v.status(now),
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

fn bad_request(message: &str) -> Response {
    nova_error(StatusCode::BAD_REQUEST, "badRequest", message)
}

fn wrong_project(sim: &Sim, project: &str) -> bool {
    project != sim.project_id
}

async fn list_volumes(State(sim): State<St>, Path(project): Path<String>) -> Response {
    if wrong_project(&sim, &project) {
        return Json(json!({"volumes": []})).into_response();
    }
    list_project_volumes(State(sim)).await
}

async fn list_volumes_detail(State(sim): State<St>, Path(project): Path<String>) -> Response {
    if wrong_project(&sim, &project) {
        return Json(json!({"volumes": []})).into_response();
    }
    let m = sim.lock();
    let list: Vec<Value> = m.volumes.iter().map(|v| volume_json(&sim, v)).collect();
    Json(json!({"volumes": list})).into_response()
}

async fn list_project_volumes(State(sim): State<St>) -> Response {
    let m = sim.lock();
    let list: Vec<Value> = m
        .volumes
        .iter()
        .map(|v| {
            json!({"id": v.id, "name": v.name, "links": [{"rel": "self",
                "href": format!("{}/volume/v3/{}/volumes/{}", sim.base_url, sim.project_id, v.id)}]})
        })
        .collect();
    Json(json!({"volumes": list})).into_response()
}

async fn create_volume(
    State(sim): State<St>,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    if wrong_project(&sim, &project) {
        return nova_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Policy doesn't allow volume:create to be performed.",
        );
    }
    create_project_volume(State(sim), body).await
}

/// `POST /volumes` `{"volume": {"size": GiB, "imageRef": ID, "name": ...}}`:
/// 202 with the volume `creating`.
async fn create_project_volume(State(sim): State<St>, body: Bytes) -> Response {
    let spec = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut o)) => match o.remove("volume") {
            Some(Value::Object(v)) => v,
            _ => return bad_request("Missing required element 'volume' in request body."),
        },
        _ => return bad_request("Malformed request body"),
    };
    let Some(size) = spec
        .get("size")
        .and_then(|s| {
            s.as_u64()
                .or_else(|| s.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|s| *s >= 1 && *s <= u64::from(u32::MAX))
    else {
        return bad_request(&format!(
            "Invalid input for field/attribute size. Value: {}. None is not of type 'integer', 'string'",
            spec.get("size").unwrap_or(&Value::Null)
        ));
    };
    let size = size as u32;
    let name = spec.get("name").and_then(Value::as_str).unwrap_or_default();
    let image_ref = spec
        .get("imageRef")
        .or_else(|| spec.get("image_id"))
        .and_then(Value::as_str);
    let now = sim.now();
    let mut m = sim.lock();
    let mut image_metadata = BTreeMap::new();
    let mut pending = vec![(now + CREATING, "creating".to_string())];
    if let Some(r) = image_ref {
        let Some(i) = m.images.iter().find(|i| i.id == r || i.name == r) else {
            return bad_request("Invalid image identifier or unable to access requested image.");
        };
        if i.status != "active" {
            return bad_request(&format!(
                "Invalid input received: Image {} is not active.",
                i.id
            ));
        }
        let image_gb = i.size.unwrap_or(0).div_ceil(1 << 30);
        if image_gb > u64::from(size) {
            return bad_request(&format!(
                "Invalid input received: Size of specified image {image_gb}GB is larger than volume size {size}GB."
            ));
        }
        if i.min_disk > u64::from(size) {
            return bad_request(&format!(
                "Invalid input received: Volume size {size}GB cannot be smaller than the image minDisk size {}GB.",
                i.min_disk
            ));
        }
        image_metadata.extend(i.properties.clone());
        image_metadata.retain(|k, _| !k.starts_with("os_glance"));
        if let Some(fw) = &i.hw_firmware_type {
            image_metadata.insert("hw_firmware_type".into(), fw.clone());
        }
        for (k, v) in [
            ("image_id", Some(i.id.clone())),
            ("image_name", Some(i.name.clone())),
            ("checksum", i.checksum.clone()),
            ("container_format", i.container_format.clone()),
            ("disk_format", i.disk_format.clone()),
            ("min_disk", Some(i.min_disk.to_string())),
            ("min_ram", Some(i.min_ram.to_string())),
            ("size", i.size.map(|s| s.to_string())),
        ] {
            if let Some(v) = v {
                image_metadata.insert(k.into(), v);
            }
        }
        pending.push((now + CREATING + DOWNLOADING, "downloading".to_string()));
    }
    let volume = Volume {
        id: new_uuid(),
        name: name.to_string(),
        size,
        bootable: image_ref.is_some(),
        image_metadata,
        server: None,
        device: None,
        delete_on_termination: false,
        pending,
    };
    let body = json!({"volume": volume_json_at(&sim, &volume, now)});
    m.volumes.push(volume);
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn delete_volume(
    State(sim): State<St>,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    if wrong_project(&sim, &project) {
        return volume_not_found(&id);
    }
    delete_project_volume(State(sim), Path(id)).await
}

/// `DELETE /volumes/{id}`: 202, or Cinder's 400 unless the volume is
/// `available` (or `error`) and attached nowhere.
async fn delete_project_volume(State(sim): State<St>, Path(id): Path<String>) -> Response {
    let now = sim.now();
    let mut m = sim.lock();
    let Some(i) = m.volumes.iter().position(|v| v.id == id) else {
        return volume_not_found(&id);
    };
    let v = &m.volumes[i];
    if v.server.is_some() || !matches!(v.status(now), "available" | "error") {
        return bad_request(
            "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.",
        );
    }
    m.volumes.remove(i);
    StatusCode::ACCEPTED.into_response()
}
