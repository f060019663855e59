//! Serial consoles and console logs of the simulated servers: Nova's
//! `POST /servers/{id}/remote-consoles` (microversion 2.6 and later, serial
//! protocol only) answering a `ws://` URL with a one-time token (a
//! `wss://` one where the proxy serves TLS, see [`super::console_tls`]),
//! the websocket behind it, and the `os-getConsoleOutput` action.
//!
//! Each websocket shows a login prompt (`\r\n<name> login: `), echoes what
//! is typed as a terminal would, and answers each line after the first with
//! `echo: <line>` and a shell prompt, so a test can type and read back.
//! Every byte typed is also recorded per server, across connections, so a
//! test can check that nothing typed was lost over a reconnect.
//!
//! Faults, through the control API: every websocket of a server closed at
//! once, and `remote-consoles` refused with a chosen status (400 or 501,
//! as on clouds without serial consoles).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::Sim;
use super::http::{ApiError, St, microversion, with_version};
use super::model::new_uuid;
use super::shell::LineShell;

/// The lines every server's log starts with.
fn boot_log(name: &str) -> Vec<String> {
    vec![
        "[    0.000000] Linux version 6.1.0-novasim (simulated console)".into(),
        format!("[    1.204512] systemd[1]: Hostname set to <{name}>."),
        format!("{name} login: "),
    ]
}

#[derive(Debug, Default)]
struct Server {
    log: Option<Vec<String>>,
    live: Vec<CancellationToken>,
    typed: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    servers: HashMap<String, Server>,
    /// Unused console tokens and the server each opens.
    tokens: HashMap<String, String>,
}

/// The consoles of every server.
#[derive(Debug, Default)]
pub(crate) struct Consoles {
    inner: Mutex<Inner>,
    /// Cancelled when the simulator stops, closing every websocket.
    pub(crate) stop: CancellationToken,
}

impl Consoles {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sim {
    fn server_name(&self, id: &str) -> Option<String> {
        self.lock()
            .servers
            .iter()
            .find(|s| s.id == id && !s.deleted)
            .map(|s| s.name.clone())
    }

    /// Appends lines to a server's console log; false for an unknown
    /// server.
    pub fn append_console_log(&self, id: &str, lines: &[String]) -> bool {
        let Some(name) = self.server_name(id) else {
            return false;
        };
        let mut c = self.consoles.lock();
        let s = c.servers.entry(id.to_string()).or_default();
        s.log
            .get_or_insert_with(|| boot_log(&name))
            .extend(lines.iter().cloned());
        true
    }

    /// The last `length` lines of a server's console log (all of it with
    /// `None`), joined as Nova joins them.
    fn console_log(&self, id: &str, name: &str, length: Option<usize>) -> String {
        let mut c = self.consoles.lock();
        let s = c.servers.entry(id.to_string()).or_default();
        let log = s.log.get_or_insert_with(|| boot_log(name));
        let from = length.map_or(0, |n| log.len().saturating_sub(n));
        log[from..].join("\n")
    }

    /// Closes every console websocket of a server now; returns how many.
    pub fn drop_consoles(&self, id: &str) -> usize {
        let mut c = self.consoles.lock();
        let Some(s) = c.servers.get_mut(id) else {
            return 0;
        };
        let n = s.live.len();
        for t in s.live.drain(..) {
            t.cancel();
        }
        n
    }

    /// Open console websockets of a server, and every byte typed on them.
    pub fn console_state(&self, id: &str) -> (usize, Vec<u8>) {
        let c = self.consoles.lock();
        c.servers
            .get(id)
            .map(|s| {
                let live = s.live.iter().filter(|t| !t.is_cancelled()).count();
                (live, s.typed.clone())
            })
            .unwrap_or_default()
    }
}

/// Nova's API: the remote console call.
pub(super) fn api_routes() -> Router<St> {
    Router::new().route(
        "/compute/v2.1/servers/{id}/remote-consoles",
        post(remote_consoles),
    )
}

/// The websocket endpoint (the serial console proxy).
pub(super) fn serial_routes() -> Router<St> {
    Router::new().route("/serial", get(serial_socket))
}

/// The console control API; not behind the observer.
pub(super) fn control_routes() -> Router<St> {
    Router::new()
        .route(
            "/_sim/servers/{id}/console",
            get(sim_console).post(sim_append_log),
        )
        .route("/_sim/servers/{id}/console/drop", post(sim_drop))
}

async fn remote_consoles(
    State(sim): State<St>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let minor = match microversion(&headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let r = remote_console(&sim, &id, minor, &body);
    with_version(
        minor,
        match r {
            Ok(v) => Json(v).into_response(),
            Err(e) => e.into_response(),
        },
    )
}

fn remote_console(sim: &Sim, id: &str, minor: u32, body: &[u8]) -> Result<Value, ApiError> {
    if minor < 6 {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let body: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("Malformed request body"))?;
    let rc = &body["remote_console"];
    if rc["protocol"] != "serial" || rc["type"] != "serial" {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute remote_console: only serial consoles are simulated",
        ));
    }
    let refuse = sim.lock().faults.console_refuse_status;
    match refuse {
        0 => {}
        501 => {
            return Err(ApiError {
                status: StatusCode::NOT_IMPLEMENTED,
                kind: "notImplemented",
                message: "Unable to get serial console, functionality not implemented".into(),
            });
        }
        other => {
            return Err(ApiError {
                status: StatusCode::from_u16(other).unwrap_or(StatusCode::BAD_REQUEST),
                kind: "badRequest",
                message: "Unavailable console type serial.".into(),
            });
        }
    }
    if sim.server_name(id).is_none() {
        return Err(ApiError::not_found(&format!(
            "Instance {id} could not be found."
        )));
    }
    let token = new_uuid();
    sim.consoles
        .lock()
        .tokens
        .insert(token.clone(), id.to_string());
    let ws = sim.console_url();
    Ok(
        json!({"remote_console": {"protocol": "serial", "type": "serial",
        "url": format!("{ws}/serial?token={token}")}}),
    )
}

/// `os-getConsoleOutput`: `{"length": N}` (a number, a numeric string, or
/// null for everything), answered `{"output": ...}`.
pub(super) fn console_output(sim: &Sim, id: &str, args: &Value) -> Result<Value, ApiError> {
    let Some(name) = sim.server_name(id) else {
        return Err(ApiError::not_found(&format!(
            "Instance {id} could not be found."
        )));
    };
    let length = match &args["length"] {
        Value::Null => None,
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.parse::<usize>().ok(),
        _ => None,
    };
    if !args["length"].is_null() && length.is_none() {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute length.",
        ));
    }
    Ok(json!({"output": sim.console_log(id, &name, length)}))
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: String,
}

async fn serial_socket(
    State(sim): State<St>,
    Query(q): Query<TokenQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let id = sim.consoles.lock().tokens.remove(&q.token);
    let Some((id, name)) = id.and_then(|id| sim.server_name(&id).map(|n| (id, n))) else {
        return (StatusCode::UNAUTHORIZED, "invalid console token").into_response();
    };
    let cancel = sim.consoles.stop.child_token();
    sim.consoles
        .lock()
        .servers
        .entry(id.clone())
        .or_default()
        .live
        .push(cancel.clone());
    ws.protocols(["binary"])
        .on_upgrade(move |socket| shell(sim, id, name, socket, cancel))
}

/// A line-echo shell behind a login prompt.
async fn shell(
    sim: St,
    id: String,
    name: String,
    mut socket: WebSocket,
    cancel: CancellationToken,
) {
    let (mut shell, mut out) = LineShell::new(&name);
    loop {
        if !out.is_empty() {
            let bytes = Bytes::from(std::mem::take(&mut out));
            if socket.send(Message::Binary(bytes)).await.is_err() {
                break;
            }
        }
        let msg = tokio::select! {
            () = cancel.cancelled() => break,
            m = socket.recv() => m,
        };
        let data: Vec<u8> = match msg {
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        sim.consoles
            .lock()
            .servers
            .entry(id.clone())
            .or_default()
            .typed
            .extend_from_slice(&data);
        shell.feed(&data, &mut out);
    }
    let _ = socket.send(Message::Close(None)).await;
    let mut c = sim.consoles.lock();
    if let Some(s) = c.servers.get_mut(&id) {
        s.live.retain(|t| *t != cancel && !t.is_cancelled());
    }
}

async fn sim_console(State(sim): State<St>, Path(id): Path<String>) -> Response {
    let (live, typed) = sim.console_state(&id);
    Json(json!({"connections": live, "typed": String::from_utf8_lossy(&typed)})).into_response()
}

/// `{"lines": [...]}`: appended to the console log.
#[derive(serde::Deserialize)]
struct Lines {
    lines: Vec<String>,
}

async fn sim_append_log(
    State(sim): State<St>,
    Path(id): Path<String>,
    Json(l): Json<Lines>,
) -> Response {
    if sim.append_console_log(&id, &l.lines) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn sim_drop(State(sim): State<St>, Path(id): Path<String>) -> Response {
    let n = sim.drop_consoles(&id);
    Json(json!({"dropped": n})).into_response()
}
