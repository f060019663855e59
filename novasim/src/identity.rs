//! Keystone v3 as the simulator serves it: the version documents and
//! password authentication (`POST /identity/v3/auth/tokens`) returning a
//! token with the catalog of the simulated services. One user and one
//! project are accepted; tokens expire after the configured lifetime, and
//! Keystone can be made to refuse (503) or to hang.

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::St;
use super::model::new_uuid;

pub(super) fn routes() -> Router<St> {
    Router::new()
        .route("/identity", get(identity_versions))
        .route("/identity/", get(identity_versions))
        .route("/identity/v3", get(identity_version))
        .route("/identity/v3/", get(identity_version))
        .route("/identity/v3/auth/tokens", post(issue_token))
}

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
    let (token, expires) = sim.issue_token(Duration::from_secs(lifetime));
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
        "issued_at": iso8601_micro(sim.now()),
        "user": {"id": sim.user_id, "name": id.user, "domain": {"id": "default", "name": "Default"}},
        "project": {"id": sim.project_id, "name": id.project, "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": new_uuid(), "name": "member"}],
        // Cinder under both of its catalog names, with the project in the
        // URL as most deployments still register it.
        "catalog": [
            endpoint("compute", "/compute/v2.1"),
            endpoint("image", "/image"),
            endpoint("network", "/network"),
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
