//! The `[metrics]` HTTP server: `GET /metrics` (Prometheus text format)
//! and `GET /healthz` (200 while the cloud was reached within three
//! refresh intervals, 503 otherwise, the reason in the body). Anything
//! else is 404. It runs on axum's router over hyper's HTTP/1 server.
//!
//! A slow or hostile client cannot exhaust the process: at most
//! [`MAX_CONNECTIONS`] connections are served at once (more are closed as
//! soon as accepted), a request's headers must arrive within
//! [`HEADER_READ_TIMEOUT`], a connection lives at most
//! [`CONNECTION_LIFETIME`], and at most [`MAX_ENCODES`] scrapes encode the
//! metrics at once on the blocking pool (the others wait their turn).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::{Health, Sources};

/// The metrics server could not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics.listen: cannot listen on {address}: {error}")]
pub struct ListenError {
    /// The address.
    pub address: SocketAddr,
    /// Why (in the message, not a separate cause).
    pub error: std::io::Error,
}

struct Endpoint {
    registry: Registry,
    sources: Arc<Sources>,
    /// Held by a scrape while it encodes on the blocking pool.
    encodes: tokio::sync::Semaphore,
}

/// Connections served at once; more are closed as soon as accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long one connection is kept, keep-alive included.
pub const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);
/// Scrapes encoding the metrics at once.
pub const MAX_ENCODES: usize = 2;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `address` and serves until `shutdown`; binding happens before this
/// returns, so a busy address stops the start.
pub async fn start(
    address: SocketAddr,
    sources: Arc<Sources>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ListenError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| ListenError { address, error })?;
    let endpoint = Arc::new(Endpoint {
        registry: super::registry(sources.clone()),
        sources,
        encodes: tokio::sync::Semaphore::new(MAX_ENCODES),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(endpoint);
    tracing::info!(%address, "metrics and health check served");
    Ok(tokio::spawn(serve(listener, app, shutdown)))
}

/// Accepts connections until `shutdown`, within the bounds in the module
/// doc; connections still open then are dropped.
async fn serve(listener: tokio::net::TcpListener, app: Router, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, most likely: let some close.
                tracing::warn!(error = %e, "metrics endpoint: cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, "metrics endpoint: {MAX_CONNECTIONS} connections open; closing new ones");
            }
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
    connections.shutdown().await;
}

async fn metrics(State(e): State<Arc<Endpoint>>) -> Response {
    // Reading every node's state is quick but not instant with thousands
    // of nodes; keep it off the runtime's I/O threads.
    let Ok(_turn) = e.encodes.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let e2 = e.clone();
    match tokio::task::spawn_blocking(move || super::encode(&e2.registry)).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response(),
        Ok(Err(_)) | Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        )
            .into_response(),
    }
}

async fn healthz(State(e): State<Arc<Endpoint>>) -> Response {
    match e.sources.health() {
        Health::Ok(text) => (StatusCode::OK, text).into_response(),
        Health::Unhealthy(text) => (StatusCode::SERVICE_UNAVAILABLE, text).into_response(),
    }
}
