//! The URI space (DSP0266 section 6) and what every request passes
//! through: the protocol rules (OData-Version, unsupported `$` queries,
//! the headers every response carries, the request metrics), then, for
//! everything but the service root, `$metadata`, `/odata` and the login,
//! authentication by session token or HTTP Basic.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::time::Instant;

use super::auth::{Ctx, authenticate};
use super::error::Error;
use super::resources::{accounts, managers, root, sessions, systems, virtual_media};

/// The router of one listener.
pub fn router(ctx: Ctx) -> Router {
    let open = Router::new()
        .route("/redfish", get(root::versions))
        .route("/redfish/", get(root::versions))
        .route("/redfish/v1", get(root::service_root))
        .route("/redfish/v1/", get(root::service_root))
        .route("/redfish/v1/odata", get(root::odata))
        .route("/redfish/v1/$metadata", get(root::metadata))
        .route(
            "/redfish/v1/SessionService/Sessions",
            post(sessions::login).get(sessions::list),
        )
        .route(
            "/redfish/v1/SessionService/Sessions/Members",
            post(sessions::login).get(sessions::list),
        );
    let guarded = Router::new()
        .route("/redfish/v1/Systems", get(systems::collection))
        .route(
            "/redfish/v1/Systems/{id}",
            get(systems::get_system).patch(systems::patch_system),
        )
        .route(
            "/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset",
            post(systems::reset),
        )
        .route(
            "/redfish/v1/Systems/{id}/ResetActionInfo",
            get(systems::reset_action_info),
        )
        .route(
            "/redfish/v1/Systems/{id}/EthernetInterfaces",
            get(systems::interfaces),
        )
        .route(
            "/redfish/v1/Systems/{id}/EthernetInterfaces/{nic}",
            get(systems::interface),
        )
        .route(
            "/redfish/v1/Systems/{id}/SecureBoot",
            get(systems::secure_boot),
        )
        .route("/redfish/v1/Managers", get(managers::managers))
        .route(
            "/redfish/v1/Managers/{id}/VirtualMedia",
            get(virtual_media::collection),
        )
        .route(
            "/redfish/v1/Managers/{id}/VirtualMedia/{dev}",
            get(virtual_media::device).patch(virtual_media::patch),
        )
        .route(
            "/redfish/v1/Managers/{id}/VirtualMedia/{dev}/Actions/VirtualMedia.InsertMedia",
            post(virtual_media::insert_action),
        )
        .route(
            "/redfish/v1/Managers/{id}/VirtualMedia/{dev}/Actions/VirtualMedia.EjectMedia",
            post(virtual_media::eject_action),
        )
        .route(
            "/redfish/v1/Systems/{id}/VirtualMedia",
            get(virtual_media::collection),
        )
        .route(
            "/redfish/v1/Systems/{id}/VirtualMedia/{dev}",
            get(virtual_media::device).patch(virtual_media::patch),
        )
        .route(
            "/redfish/v1/Systems/{id}/VirtualMedia/{dev}/Actions/VirtualMedia.InsertMedia",
            post(virtual_media::insert_action),
        )
        .route(
            "/redfish/v1/Systems/{id}/VirtualMedia/{dev}/Actions/VirtualMedia.EjectMedia",
            post(virtual_media::eject_action),
        )
        .route("/redfish/v1/Managers/{id}", get(managers::manager))
        .route("/redfish/v1/Chassis", get(managers::chassis_collection))
        .route("/redfish/v1/Chassis/{id}", get(managers::chassis))
        .route("/redfish/v1/AccountService", get(accounts::service))
        .route(
            "/redfish/v1/AccountService/Accounts",
            get(accounts::accounts),
        )
        .route(
            "/redfish/v1/AccountService/Accounts/{id}",
            get(accounts::account),
        )
        .route("/redfish/v1/AccountService/Roles", get(accounts::roles))
        .route("/redfish/v1/AccountService/Roles/{id}", get(accounts::role))
        .route("/redfish/v1/SessionService", get(sessions::service))
        .route(
            "/redfish/v1/SessionService/Sessions/{id}",
            get(sessions::get_session).delete(sessions::logout),
        )
        .route_layer(middleware::from_fn_with_state(ctx.clone(), authenticate));
    open.merge(guarded)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(ctx.clone(), protocol))
        .with_state(ctx)
}

async fn not_found(req: Request) -> Response {
    Error::not_found(req.uri().path()).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    Error::method_not_allowed(req.method().as_str(), req.uri().path()).into_response()
}

/// The rules of every request and response.
async fn protocol(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let resource = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| resource_label(p.as_str()));
    // The whole body is read first, within the size and time bounds, so a
    // refusal never leaves unread bytes on a kept-alive connection (the
    // client's next request would be read from the middle of a body).
    let req = match buffer_body(req, ctx.read_timeout).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = e.into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    let mut response = if let Some(v) = req.headers().get("odata-version")
        && v.as_bytes() != b"4.0"
    {
        Error::precondition_failed().into_response()
    } else if req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with('$')))
    {
        Error::query_not_supported().into_response()
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert("odata-version", HeaderValue::from_static("4.0"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    let open = ctx
        .service
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    ctx.service.recorder.redfish_sessions(open);
    ctx.service.recorder.redfish_request(
        resource,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn buffer_body(req: Request, within: std::time::Duration) -> Result<Request, Error> {
    let (parts, body) = req.into_parts();
    let bytes =
        match tokio::time::timeout(within, axum::body::to_bytes(body, super::MAX_BODY)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return Err(Error::too_large(super::MAX_BODY)),
            Err(_) => return Err(Error::body_timeout()),
        };
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// The fixed label of a route, for the metrics (never an Id).
fn resource_label(path: &str) -> &'static str {
    const KNOWN: [&str; 33] = [
        "/redfish",
        "/redfish/",
        "/redfish/v1",
        "/redfish/v1/",
        "/redfish/v1/odata",
        "/redfish/v1/$metadata",
        "/redfish/v1/SessionService/Sessions",
        "/redfish/v1/SessionService/Sessions/Members",
        "/redfish/v1/Systems",
        "/redfish/v1/Systems/{id}",
        "/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset",
        "/redfish/v1/Systems/{id}/ResetActionInfo",
        "/redfish/v1/Systems/{id}/EthernetInterfaces",
        "/redfish/v1/Systems/{id}/EthernetInterfaces/{nic}",
        "/redfish/v1/Systems/{id}/SecureBoot",
        "/redfish/v1/Managers",
        "/redfish/v1/Managers/{id}",
        "/redfish/v1/Chassis",
        "/redfish/v1/Chassis/{id}",
        "/redfish/v1/AccountService",
        "/redfish/v1/AccountService/Accounts",
        "/redfish/v1/AccountService/Accounts/{id}",
        "/redfish/v1/AccountService/Roles",
        "/redfish/v1/AccountService/Roles/{id}",
        "/redfish/v1/SessionService/Sessions/{id}",
        "/redfish/v1/Managers/{id}/VirtualMedia",
        "/redfish/v1/Managers/{id}/VirtualMedia/{dev}",
        "/redfish/v1/Managers/{id}/VirtualMedia/{dev}/Actions/VirtualMedia.InsertMedia",
        "/redfish/v1/Managers/{id}/VirtualMedia/{dev}/Actions/VirtualMedia.EjectMedia",
        "/redfish/v1/Systems/{id}/VirtualMedia",
        "/redfish/v1/Systems/{id}/VirtualMedia/{dev}",
        "/redfish/v1/Systems/{id}/VirtualMedia/{dev}/Actions/VirtualMedia.InsertMedia",
        "/redfish/v1/Systems/{id}/VirtualMedia/{dev}/Actions/VirtualMedia.EjectMedia",
    ];
    if path == "/redfish/v1/SessionService" {
        return "/redfish/v1/SessionService";
    }
    KNOWN
        .iter()
        .find(|k| **k == path)
        .copied()
        .unwrap_or("other")
}
