//! The little of Cinder v3 the simulator serves: the version document and
//! volume show, under the project-scoped URL most catalogs register and
//! the project-less one Cinder 3.67 added. Only root volumes of servers
//! booted from a volume exist.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::{St, nova_error};
use super::model::new_uuid;
use super::{Sim, Volume};

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route("/volume", get(volume_versions))
        .route("/volume/", get(volume_versions))
        .route("/volume/v3", get(volume_versions))
        .route("/volume/v3/", get(volume_versions))
        .route("/volume/v3/{project}/volumes/{id}", get(get_volume))
        // Cinder 3.67 and later also accept URLs without the project.
        .route("/volume/v3/volumes/{id}", get(get_project_volume))
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
