//! The simulator's HTTP surface, put together: each service's routes
//! (Keystone in [`super::identity`], Nova in [`super::compute`] and
//! [`super::attachments`], Glance in [`super::image`], Cinder in
//! [`super::volume`], Neutron in [`super::neutron`], the `/_sim/` control API in [`super::control`]), and
//! what cuts across them: the request log, injected faults, token checks,
//! Nova's error envelopes and microversion negotiation. Request bodies are
//! read whole for the log (POST, PUT and PATCH, up to 1 MiB), except image
//! data (`PUT /image/v2/images/{id}/file`), which streams through unread.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::model::Conflict;
use super::{Injected, LoggedRequest, Service, Sim};

/// The simulator, as handlers see it.
pub(super) type St = Arc<Sim>;

/// Highest compute microversion served.
pub(super) const MAX_MINOR: u32 = 96;

/// Every route, with the observer in front of the services (not of the
/// control API, which tests use to look at what happened); the serial
/// console websockets too, unless the proxy serves them over TLS on a
/// listener of its own (`plain_consoles` false).
pub(super) fn router(sim: St, plain_consoles: bool) -> Router {
    let consoles = if plain_consoles {
        super::console::serial_routes()
    } else {
        Router::new()
    };
    super::compute::routes()
        .merge(super::tags::routes())
        .merge(super::attachments::routes())
        .merge(super::image::routes())
        .merge(super::volume::routes())
        .merge(super::neutron::routes())
        .merge(super::identity::routes())
        .merge(super::console::api_routes())
        .layer(axum::middleware::from_fn_with_state(sim.clone(), observe))
        .merge(super::control::routes())
        .merge(super::console::control_routes())
        .merge(consoles)
        .with_state(sim)
}

/// Records every request, injects faults and checks tokens for the Nova,
/// Glance and Cinder paths.
async fn observe(State(sim): State<St>, req: Request, next: Next) -> Response {
    let (at_ms, at_unix_ms) = sim.stamp();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let microversion = requested_microversion(req.headers());
    let service = if path.starts_with("/identity") {
        Service::Identity
    } else if path.starts_with("/compute")
        || path.starts_with("/image")
        || path.starts_with("/volume")
        || path.starts_with("/network")
    {
        Service::Cloud
    } else {
        Service::None
    };
    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = req.into_parts();
    // Image data goes through as a stream, never held nor logged.
    let streamed = method == Method::PUT && path.starts_with("/image/") && path.ends_with("/file");
    let (body, logged_body) = if streamed {
        (body, None)
    } else {
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let logged = logged_body(&method, &bytes);
        (Body::from(bytes), logged)
    };
    // Version documents are public, as in the real services.
    let public = [
        "/compute",
        "/compute/",
        "/volume",
        "/volume/",
        "/network",
        "/network/",
    ]
    .iter()
    .any(|p| path == *p);
    let is_token = path.ends_with("/auth/tokens");
    let (latency, injected) = sim.take_fault(
        service,
        path.ends_with("/action"),
        is_token,
        (!public).then_some(token.as_deref()),
    );
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut status_override = None;
    let response = match injected {
        Injected::Hang => {
            // Accepts the request and never answers.
            sim.log(LoggedRequest {
                at_ms,
                at_unix_ms,
                method: method.to_string(),
                path,
                query,
                microversion,
                body: logged_body,
                status: 0,
            });
            return std::future::pending().await;
        }
        Injected::Drop => {
            status_override = Some(0);
            dropped_connection()
        }
        Injected::LoseAnswer => {
            let _ = next.run(Request::from_parts(parts, body)).await;
            status_override = Some(0);
            dropped_connection()
        }
        Injected::StallBody => {
            let r = next.run(Request::from_parts(parts, body)).await;
            status_override = Some(r.status().as_u16());
            stalled_body(r)
        }
        Injected::Fail(status) => fault_response(status),
        Injected::Unauthorized => unauthorized(),
        Injected::None => next.run(Request::from_parts(parts, body)).await,
    };
    sim.log(LoggedRequest {
        at_ms,
        at_unix_ms,
        method: method.to_string(),
        path,
        query,
        microversion,
        body: logged_body,
        // A dropped connection answered nothing: status 0.
        status: status_override.unwrap_or_else(|| response.status().as_u16()),
    });
    response
}

/// The body of a POST, PUT or PATCH for the log, with passwords left out.
fn logged_body(method: &Method, bytes: &Bytes) -> Option<Value> {
    let mut body = (method == Method::POST || method == Method::PUT || method == Method::PATCH)
        .then(|| serde_json::from_slice::<Value>(bytes).ok())
        .flatten();
    if let Some(pw) = body
        .as_mut()
        .and_then(|b| b.pointer_mut("/auth/identity/password/user/password"))
    {
        *pw = json!("<redacted>");
    }
    body
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

/// Sends the status and headers of `r`, then a body that never ends (a
/// Nova hanging mid-response).
fn stalled_body(r: Response) -> Response {
    let (mut parts, _) = r.into_parts();
    parts.headers.remove("content-length");
    let stream = futures::stream::once(async { Ok::<Bytes, std::io::Error>(Bytes::from("{")) })
        .chain(futures::stream::pending());
    Response::from_parts(parts, Body::from_stream(stream))
}

use futures::StreamExt as _;

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

/// An error in Nova's envelope (`{"itemNotFound": {"code": 404, "message":
/// ...}}`), as the compute API and the in-process cloud both report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The envelope's key.
    pub kind: &'static str,
    /// Nova's message.
    pub message: String,
}

impl ApiError {
    pub(super) fn not_found(what: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "itemNotFound",
            message: what.to_string(),
        }
    }

    pub(super) fn conflict(c: Conflict) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            kind: "conflictingRequest",
            message: c.0,
        }
    }

    pub(super) fn bad_request(message: &str) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "badRequest",
            message: message.to_string(),
        }
    }

    pub(super) fn forbidden(message: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "forbidden",
            message: message.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        nova_error(self.status, self.kind, &self.message)
    }
}

pub(super) fn nova_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ kind: {"code": status.as_u16(), "message": message} })),
    )
        .into_response()
}

/// A JSON body, or the error.
pub(super) fn json_or(r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
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

/// The negotiated minor version of 2.x, or Nova's 406 (a response, so
/// handlers return it as it is).
#[allow(clippy::result_large_err)]
pub(super) fn microversion(headers: &HeaderMap) -> Result<u32, Response> {
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

pub(super) fn with_version(minor: u32, mut r: Response) -> Response {
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
