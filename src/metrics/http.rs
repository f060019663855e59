//! The `[metrics]` HTTP server: `GET /metrics` (Prometheus text format)
//! and `GET /healthz` (200 while the cloud was reached within three
//! refresh intervals, 503 otherwise, the reason in the body). Anything
//! else is 404. It runs on axum, which the Nova simulator already uses.

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
}

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
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(endpoint);
    tracing::info!(%address, "metrics and health check served");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(%address, error = %e, "metrics server stopped");
        }
    }))
}

async fn metrics(State(e): State<Arc<Endpoint>>) -> Response {
    // Reading every node's state is quick but not instant with thousands
    // of nodes; keep it off the runtime's I/O threads.
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
