//! Glance v2 as the simulator serves it: the version document, image
//! listing (by name or ID) and image show, with extra properties as
//! top-level keys as Glance shows them.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Image;
use super::http::St;

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route("/image", get(image_versions))
        .route("/image/", get(image_versions))
        .route("/image/v2/images", get(list_images))
        .route("/image/v2/images/{id}", get(get_image))
}

async fn image_versions(State(sim): State<St>) -> Response {
    Json(json!({"versions": [{"id": "v2.9", "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{}/image/v2/", sim.base_url)}]}]}))
    .into_response()
}

/// An image as Glance v2 shows it.
pub(super) fn image_json(i: &Image) -> Value {
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
