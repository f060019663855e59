//! Who is asking (DSP0266 section 13.2): the request context every
//! handler gets, the caller an authenticated request carries, and the
//! check itself: a session token (`X-Auth-Token`) or HTTP Basic, under the
//! source's budget of failed logins, and the role a change needs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::time::Instant;

use super::accounts::Role;
use super::error::Error;
use super::{Scope, Service};

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The service.
    pub service: Arc<Service>,
    /// The systems this listener shows.
    pub scope: Scope,
    /// How long a client may take to send a request's body.
    pub read_timeout: std::time::Duration,
}

/// The address a request came from (set by the listener per connection).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Who is asking, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account.
    pub user: String,
    /// Its role.
    pub role: Role,
    /// The session it came with, if it came with one.
    pub session: Option<String>,
}

/// Authenticates by `X-Auth-Token`, else HTTP Basic. A source that failed
/// too often is answered 429 without its credentials being tried.
pub async fn authenticate(State(ctx): State<Ctx>, mut req: Request, next: Next) -> Response {
    let source = req
        .extensions()
        .get::<Peer>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.ip());
    let now = Instant::now();
    if let Some(token) = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
    {
        let session = ctx
            .service
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .authenticate(token, now);
        return match session {
            Some(s) => {
                req.extensions_mut().insert(Caller {
                    user: s.user,
                    role: s.role,
                    session: Some(s.id),
                });
                next.run(req).await
            }
            None => Error::unauthorized().into_response(),
        };
    }
    let Some((user, password)) = basic_credentials(req.headers().get(header::AUTHORIZATION)) else {
        return Error::unauthorized().into_response();
    };
    match check_password(&ctx.service, source, &user, password.as_bytes(), now) {
        Ok(role) => {
            req.extensions_mut().insert(Caller {
                user,
                role,
                session: None,
            });
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Checks a name and password against the accounts under the source's
/// budget of failures.
pub fn check_password(
    service: &Service,
    source: IpAddr,
    user: &str,
    password: &[u8],
    now: Instant,
) -> Result<Role, Error> {
    let mut limit = service.logins.lock().unwrap_or_else(|e| e.into_inner());
    if !limit.allows(source, now) {
        return Err(Error::too_many_failures());
    }
    match service.accounts().verify(user, password) {
        Some(a) => Ok(a.role),
        None => {
            limit.failed(source, now);
            tracing::debug!(%source, user, "Redfish login refused");
            Err(Error::unauthorized())
        }
    }
}

/// The name and password of an HTTP Basic `Authorization` header.
pub fn basic_credentials(h: Option<&HeaderValue>) -> Option<(String, String)> {
    let v = h?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Refuses a caller whose role may not change components.
pub fn require_configure(caller: &Caller) -> Result<(), Error> {
    if caller.role.configures_components() {
        Ok(())
    } else {
        Err(Error::insufficient_privilege())
    }
}

/// Whether the request is a read.
pub fn is_read(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}
