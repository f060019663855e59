//! The `/_sim/` control API that tests and the demo use: create and delete
//! servers, images and flavors, make a guest halt or a server take a
//! state, write a deployed image to a server's disk, inject faults, change
//! transition timings, revoke tokens, configure Glance's image import
//! (`/_sim/glance/import`: methods, URL filter, size and time bounds),
//! set Neutron's quotas, missing extensions and policy refusals
//! (`/_sim/neutron`) and read every Neutron resource
//! (`/_sim/neutron/resources`), and
//! read the request log, every server's record (boots, NMIs, metadata, how
//! it is rescued), every image (status, properties, last import) and
//! every volume (status, attachment).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::St;
use super::model::Phase;
use super::neutron::NeutronSettings;
use super::{Faults, Flavor, ImportSettings, NewImage, NewServer, Timings};

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route("/_sim/servers", get(sim_servers).post(sim_add_server))
        .route("/_sim/servers/{id}", delete(sim_delete_server))
        .route("/_sim/servers/{id}/halt", post(sim_halt))
        .route("/_sim/servers/{id}/state", put(sim_set_state))
        .route("/_sim/servers/{id}/deploy", post(sim_deploy))
        .route("/_sim/images", get(sim_images).post(sim_add_image))
        .route("/_sim/volumes", get(sim_volumes))
        .route(
            "/_sim/glance/import",
            get(sim_get_import).put(sim_put_import),
        )
        .route("/_sim/flavors", post(sim_add_flavor))
        .route("/_sim/neutron", get(sim_get_neutron).put(sim_put_neutron))
        .route("/_sim/neutron/resources", get(sim_neutron_resources))
        .route("/_sim/faults", get(sim_get_faults).put(sim_put_faults))
        .route("/_sim/timings", put(sim_put_timings))
        .route("/_sim/expire-tokens", post(sim_expire_tokens))
        .route(
            "/_sim/requests",
            get(sim_requests).delete(sim_clear_requests),
        )
}

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
    Json(json!({"servers": servers, "now": sim.now_iso()})).into_response()
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

async fn sim_halt(State(sim): State<St>, Path(id): Path<String>) -> Response {
    if sim.halt(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// `{"image": NAME_OR_ID}`: the image a deployment wrote to the disk.
#[derive(serde::Deserialize)]
struct Deploy {
    image: String,
}

async fn sim_deploy(
    State(sim): State<St>,
    Path(id): Path<String>,
    Json(d): Json<Deploy>,
) -> Response {
    if sim.deploy(&id, &d.image) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn sim_set_state(
    State(sim): State<St>,
    Path(id): Path<String>,
    Json(p): Json<Phase>,
) -> Response {
    if sim.set_state(&id, p) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn sim_images(State(sim): State<St>) -> Response {
    Json(json!({"images": sim.images()})).into_response()
}

/// Every volume, with the status Cinder shows now.
async fn sim_volumes(State(sim): State<St>) -> Response {
    let now = sim.now();
    let volumes: Vec<Value> = sim
        .volumes()
        .iter()
        .map(|v| {
            let mut j = serde_json::to_value(v).unwrap_or(Value::Null);
            j["status"] = json!(v.status(now));
            j
        })
        .collect();
    Json(json!({"volumes": volumes})).into_response()
}

async fn sim_get_import(State(sim): State<St>) -> Response {
    Json(sim.import_settings()).into_response()
}

async fn sim_put_import(State(sim): State<St>, Json(s): Json<ImportSettings>) -> Response {
    sim.set_import_settings(s);
    StatusCode::NO_CONTENT.into_response()
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

async fn sim_get_neutron(State(sim): State<St>) -> Response {
    Json(sim.lock().neutron.settings.clone()).into_response()
}

async fn sim_put_neutron(State(sim): State<St>, Json(s): Json<NeutronSettings>) -> Response {
    sim.lock().neutron.settings = s;
    StatusCode::NO_CONTENT.into_response()
}

/// Every network, subnet, port and router, as Neutron shows them.
async fn sim_neutron_resources(State(sim): State<St>) -> Response {
    Json(super::neutron::dump(&sim)).into_response()
}
