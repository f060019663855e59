//! Serving a configuration until told to stop, as a library function: the
//! binary binds the sockets and wires signals to the shutdown future;
//! tests and the demo call it the same way (mini-redis's `server::run`).
//!
//! Start: the nodes' routes are installed, the backend started (for Nova:
//! the state directory locked and pending work resumed), one task per node
//! spawned. Stop, in an order that loses nothing: the UDP tasks first, so
//! nothing new is acknowledged; then the backend, whose calls already in
//! flight get [`SHUTDOWN_GRACE`] to finish while what is left stays in the
//! state directory (one line per node with work pending is logged); then
//! the routes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::Backend;
use crate::backend::nova::worker::SHUTDOWN_GRACE;
use crate::backend::nova::{Nova, StartError};
use crate::backend::simulated::Simulated;
use crate::config::{BackendConfig, Config};
use crate::routing::Installation;
use crate::server;

/// Serving could not start, or could not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The nodes' policy routes could not be installed.
    #[error("cannot install the nodes' routes: {0}")]
    RoutesInstall(String),
    /// The nodes' policy routes could not be removed at the end.
    #[error("cannot remove the nodes' routes: {0}")]
    RoutesRemove(String),
    /// The backend could not start.
    #[error("backend ({cloud}): {error}")]
    Backend {
        /// Which cloud.
        cloud: String,
        /// Why (in the message, not a separate cause).
        error: StartError,
    },
    /// The sockets do not match the nodes.
    #[error("{sockets} sockets for {nodes} nodes")]
    Sockets {
        /// Sockets given.
        sockets: usize,
        /// Nodes configured.
        nodes: usize,
    },
}

/// Serves `config` on `sockets` (one per node, in node order) until
/// `shutdown` completes, then stops as described in the module doc.
pub async fn serve(
    config: Config,
    sockets: Vec<UdpSocket>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if sockets.len() != config.nodes.len() {
        return Err(ServeError::Sockets {
            sockets: sockets.len(),
            nodes: config.nodes.len(),
        });
    }
    let specs = config.route_specs();
    let routes = if specs.is_empty() {
        None
    } else {
        Some(
            Installation::start(specs, config.routing.keep_routes)
                .await
                .map_err(|e| ServeError::RoutesInstall(format!("{e:#}")))?,
        )
    };
    let backend_stop = CancellationToken::new();
    let (backend, mut backend_tasks, nova): (Arc<dyn Backend>, _, _) = match &config.backend {
        BackendConfig::Simulated(s) => (
            Arc::new(Simulated::new(s.clone(), &config.simulated_nodes())),
            None,
            None,
        ),
        BackendConfig::Nova(n) => {
            let (nova, tasks) = Nova::start(
                n.settings.clone(),
                config.nova_nodes(n),
                backend_stop.clone(),
            )
            .map_err(|error| ServeError::Backend {
                cloud: n.settings.cloud.to_string(),
                error,
            })?;
            (nova.clone(), Some(tasks), Some(nova))
        }
    };
    for n in &config.nodes {
        debug!(node = %n.name, listen = %n.listen, server = %n.server, "serving");
    }
    info!(
        nodes = config.nodes.len(),
        addresses = %summary(&config),
        "serving"
    );
    let udp_stop = CancellationToken::new();
    let lan = crate::lan_config::discover(&config.nodes).await;
    let mut tasks = server::spawn_nodes(
        &config.nodes,
        sockets,
        Arc::new(config.engine_config()),
        backend,
        lan,
        udp_stop.clone(),
    );
    shutdown.await;
    info!("shutting down");
    udp_stop.cancel();
    while tasks.join_next().await.is_some() {}
    backend_stop.cancel();
    if let Some(backend_tasks) = backend_tasks.as_mut() {
        let drained = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(2), async {
            while backend_tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                "the backend did not stop within {:?}; stopping anyway",
                SHUTDOWN_GRACE
            );
        }
    }
    if let Some(nova) = nova {
        nova.log_pending();
    }
    if let Some(routes) = routes {
        routes
            .stop()
            .await
            .map_err(|e| ServeError::RoutesRemove(format!("{e:#}")))?;
    }
    info!("stopped");
    Ok(())
}

/// "127.0.0.1 ports 6230-6233", or a count of addresses.
fn summary(config: &Config) -> String {
    let mut ips: Vec<std::net::IpAddr> = config.nodes.iter().map(|n| n.listen.ip()).collect();
    ips.sort();
    ips.dedup();
    let ports = config.nodes.iter().map(|n| n.listen.port());
    let (lo, hi) = (
        ports.clone().min().unwrap_or_default(),
        ports.max().unwrap_or_default(),
    );
    let ports = if lo == hi {
        format!("port {lo}")
    } else {
        format!("ports {lo}-{hi}")
    };
    match ips.as_slice() {
        [one] => format!("{one} {ports}"),
        many => format!(
            "{} addresses ({} to {}), {ports}",
            many.len(),
            many.first().map(ToString::to_string).unwrap_or_default(),
            many.last().map(ToString::to_string).unwrap_or_default()
        ),
    }
}
