//! The SessionService (DSP0266 section 13.2.4; DSP0268 Session): login by
//! POST to the Sessions collection (also at `.../Sessions/Members`),
//! answered with the token in `X-Auth-Token` and the session's URI in
//! `Location`; logout by DELETE of the session. Any account may list the
//! sessions; only an administrator or the session's own account may end
//! one.

use std::net::IpAddr;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::json_object;
use crate::redfish::accounts::Role;
use crate::redfish::auth::{Caller, Ctx, Peer, check_password};
use crate::redfish::error::Error;
use crate::redfish::odata;
use crate::redfish::sessions::Session;

const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// The SessionService.
pub async fn service(State(ctx): State<Ctx>) -> Response {
    let timeout = ctx
        .service
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .timeout_secs();
    let v = json!({
        "@odata.id": "/redfish/v1/SessionService",
        "@odata.type": "#SessionService.v1_2_0.SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": true,
        "SessionTimeout": timeout,
        "Status": { "State": "Enabled", "Health": "OK" },
        "Sessions": { "@odata.id": SESSIONS },
    });
    odata::resource(v, false, "GET, HEAD")
}

fn session_json(s: &Session) -> Value {
    json!({
        "@odata.id": format!("{SESSIONS}/{}", s.id),
        "@odata.type": "#Session.v1_8_0.Session",
        "Id": s.id,
        "Name": "User Session",
        "UserName": s.user,
    })
}

/// POST: log in.
pub async fn login(State(ctx): State<Ctx>, headers: HeaderMap, req: Request) -> Response {
    let source = req
        .extensions()
        .get::<Peer>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.ip());
    match open(&ctx, source, &headers, req.into_body()).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn open(
    ctx: &Ctx,
    source: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let body = json_object(headers, body).await?;
    let user = match body.get("UserName") {
        None => return Err(Error::property_missing("UserName")),
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(Error::value_type("#/UserName", "UserName", v)),
    };
    let password = match body.get("Password") {
        None => return Err(Error::property_missing("Password")),
        Some(Value::String(s)) => s.clone(),
        // The value is not echoed: it may be a password.
        Some(_) => {
            return Err(Error::value_type(
                "#/Password",
                "Password",
                &json!("<hidden>"),
            ));
        }
    };
    for k in body.keys() {
        if !matches!(k.as_str(), "UserName" | "Password") && !k.starts_with('@') {
            return Err(Error::property_unknown(&format!("#/{k}"), k));
        }
    }
    let now = Instant::now();
    let role = check_password(&ctx.service, source, &user, password.as_bytes(), now)?;
    let digest = ctx
        .service
        .accounts()
        .get(&user)
        .map(|a| a.password_digest())
        .unwrap_or_default();
    let (session, token) = ctx
        .service
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .open(&user, role, digest, now)
        .map_err(|_| Error::session_limit())?;
    tracing::debug!(user, session = %session.id, "Redfish session opened");
    let location = format!("{SESSIONS}/{}", session.id);
    let mut r = (
        StatusCode::CREATED,
        odata::json_body(&session_json(&session)),
    )
        .into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&token) {
        h.insert("x-auth-token", v);
    }
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    Ok(r)
}

/// GET: the open sessions (any authenticated account).
pub async fn list(State(ctx): State<Ctx>, req: Request) -> Response {
    // This route is reachable without a login (for POST), so GET checks
    // for itself.
    if !authenticated(&ctx, &req) {
        return Error::unauthorized().into_response();
    }
    let members = ctx
        .service
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .list(Instant::now())
        .iter()
        .map(|s| format!("{SESSIONS}/{}", s.id))
        .collect();
    odata::resource(
        odata::collection(
            SESSIONS,
            "#SessionCollection.SessionCollection",
            "Session Collection",
            members,
        ),
        false,
        "GET, HEAD, POST",
    )
}

fn authenticated(ctx: &Ctx, req: &Request) -> bool {
    let h = req.headers();
    if let Some(t) = h.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return ctx
            .service
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .authenticate(t, Instant::now())
            .is_some();
    }
    let source = req
        .extensions()
        .get::<Peer>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.ip());
    crate::redfish::auth::basic_credentials(h.get(header::AUTHORIZATION)).is_some_and(|(u, p)| {
        check_password(&ctx.service, source, &u, p.as_bytes(), Instant::now()).is_ok()
    })
}

/// GET one session.
pub async fn get_session(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let s = ctx
        .service
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id, Instant::now());
    match s {
        Some(s) => odata::resource(session_json(&s), false, "GET, HEAD, DELETE"),
        None => Error::not_found(&format!("{SESSIONS}/{id}")).into_response(),
    }
}

/// DELETE: log out (one's own session, or any as an administrator).
pub async fn logout(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let mut sessions = ctx
        .service
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let Some(s) = sessions.get(&id, Instant::now()) else {
        return Error::not_found(&format!("{SESSIONS}/{id}")).into_response();
    };
    if s.user != caller.user && caller.role != Role::Administrator {
        return Error::insufficient_privilege().into_response();
    }
    sessions.close(&id);
    tracing::debug!(user = %caller.user, session = %id, "Redfish session closed");
    StatusCode::NO_CONTENT.into_response()
}
