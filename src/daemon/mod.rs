//! Serving a configuration until told to stop, as a library function: the
//! binary binds the sockets and wires signals to the shutdown future and
//! to reloads; tests and the demo call it the same way. This is where the
//! parts are composed: the front doors ([`crate::ipmi`]) over the backend
//! ([`crate::backend`]), the metrics recorder both report to, and the
//! routes.
//!
//! Start: the nodes' routes are installed, the metrics endpoint bound (if
//! configured), the backend started (for Nova: the state directory locked
//! and pending work resumed), one task per node spawned. Stop, in an order
//! that loses nothing: the UDP tasks first, so nothing new is
//! acknowledged; then the backend, whose calls already in flight get a
//! grace to finish ([`Nova::stop`]) while what is left stays in the state
//! directory (one line per node with work pending is logged); then the
//! routes.
//!
//! A reload (a new, already validated [`Config`]) changes what differs and
//! nothing else ([`reload`]): added nodes start, removed ones stop and
//! their routes are flushed, changed ones restart alone; new users and
//! BMC settings apply to new sessions. Nodes whose settings did not change
//! keep their sockets and sessions. When the node list or the backend
//! settings changed, the backend is restarted under the running nodes
//! (the simulated one keeps each machine's state; Nova's pending work
//! goes through the state directory, as across a restart), and the nodes
//! answer "node busy" for the moment it takes. Discovery's node sets
//! ([`discovery`]) arrive the same way.

pub mod discovery;
pub mod reload;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::nova::{Nova, StartError};
use crate::backend::simulated::Simulated;
use crate::backend::telemetry::{CallRecorder, CloudHealth};
use crate::backend::{Backend, BackendError, Binding, NodeId};
use crate::config::{BackendConfig, Config, NodeConfig};
use crate::ipmi::{self, SharedConfig};
use crate::metrics::{self, NodeSource, Sources};
use crate::redfish::{self, door::Door};
use crate::routing::{Installation, RoutingError};

/// Serving could not start, or could not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The nodes' policy routes could not be installed.
    #[error("cannot install the nodes' routes: {0}")]
    RoutesInstall(RoutingError),
    /// The nodes' policy routes could not be removed at the end.
    #[error("cannot remove the nodes' routes: {0}")]
    RoutesRemove(RoutingError),
    /// The backend could not start.
    #[error("backend ({cloud}): {error}")]
    Backend {
        /// Which cloud.
        cloud: String,
        /// Why (in the message, not a separate cause).
        error: StartError,
    },
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] metrics::http::ListenError),
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
    serve_reloading(
        config,
        sockets,
        shutdown,
        None,
        Arc::new(Sources::default()),
    )
    .await
}

/// Like [`serve`], applying each configuration `reloads` delivers (a
/// file loaded again, or discovery's node set), reporting to `sources`
/// (which whatever feeds `reloads`, discovery, may report its own cloud
/// calls to as well).
pub async fn serve_reloading(
    config: Config,
    sockets: Vec<UdpSocket>,
    shutdown: impl Future<Output = ()>,
    mut reloads: Option<mpsc::Receiver<reload::Update>>,
    sources: Arc<Sources>,
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
                .map_err(ServeError::RoutesInstall)?,
        )
    };
    let metrics_stop = CancellationToken::new();
    let metrics_task = match &config.metrics {
        Some(m) => {
            Some(metrics::http::start(m.listen, sources.clone(), metrics_stop.clone()).await?)
        }
        None => None,
    };
    let backend = Running::start(&config, sources.recorder())?;
    let mut state = State {
        shared: SharedConfig::new(config.engine_config()),
        nodes: BTreeMap::new(),
        backend,
        routes,
        sources,
        metrics_task,
        redfish: None,
        config,
    };
    // In node order; a node missing from it has unknown addressing.
    let mut lan = ipmi::lan_config::discover(&state.config.nodes)
        .await
        .into_iter();
    for (node, socket) in state.config.nodes.clone().into_iter().zip(sockets) {
        state.spawn(node, socket, lan.next().unwrap_or_default());
    }
    state.publish();
    state.sync_redfish().await;
    for n in &state.config.nodes {
        debug!(node = %n.name, listen = %n.listen, server = %n.server, "serving");
    }
    info!(
        nodes = state.config.nodes.len(),
        addresses = %summary(&state.config.nodes),
        "serving"
    );
    tokio::pin!(shutdown);
    loop {
        let next = async {
            match reloads.as_mut() {
                Some(r) => r.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            new = next => match new {
                Some(new) => reload::apply(&mut state, new).await,
                None => reloads = None,
            },
        }
    }
    info!("shutting down");
    state.stop(metrics_stop).await
}

/// One node being served.
struct Served {
    config: NodeConfig,
    stop: CancellationToken,
    task: JoinHandle<()>,
    binding: Arc<Binding>,
    /// A duplicate of the node's socket, for a reload that restarts the
    /// node on the same address: it takes the socket over rather than
    /// binding again (which could fail).
    spare: Option<socket2::Socket>,
}

/// Everything a running daemon holds, for reloads and the stop.
struct State {
    config: Config,
    shared: Arc<SharedConfig>,
    nodes: BTreeMap<String, Served>,
    backend: Running,
    routes: Option<Installation>,
    sources: Arc<Sources>,
    metrics_task: Option<JoinHandle<()>>,
    /// The Redfish door, when configured.
    redfish: Option<Door>,
}

impl State {
    /// Starts `node` on `socket` with its LAN addressing, bound to its
    /// place in the backend.
    fn spawn(&mut self, node: NodeConfig, socket: UdpSocket, lan: novabmc_proto::LanInfo) {
        let id = self.backend.index_of(&self.config, &node.name);
        let binding = Binding::new(self.backend.handle(), id);
        let stop = CancellationToken::new();
        let spare = socket2::SockRef::from(&socket).try_clone().ok();
        let (task, counters) = match ipmi::spawn_node(
            &node,
            socket,
            self.shared.clone(),
            binding.clone(),
            lan,
            self.sources.recorder(),
            stop.clone(),
        ) {
            Ok(spawned) => spawned,
            Err(e) => {
                warn!(node = %node.name, error = %e, "cannot register the node's socket; not serving it");
                return;
            }
        };
        self.sources.add_engine(counters);
        self.nodes.insert(
            node.name.clone(),
            Served {
                config: node,
                stop,
                task,
                binding,
                spare,
            },
        );
    }

    /// Stops one node's task and waits for it; its socket closes unless
    /// the returned duplicate is kept.
    async fn stop_node(&mut self, name: &str) -> Option<socket2::Socket> {
        let s = self.nodes.remove(name)?;
        s.stop.cancel();
        let _ = s.task.await;
        s.spare
    }

    /// Tells every node's open console to reopen through the backend now
    /// bound.
    fn move_consoles(&self) {
        for s in self.nodes.values() {
            s.binding.move_consoles();
        }
    }

    /// Points every node at the current backend, in the configuration's
    /// order, and tells the metrics.
    fn publish(&self) {
        let handle = self.backend.handle();
        let mut sources = Vec::with_capacity(self.nodes.len());
        for (id, n) in self.config.nodes.iter().enumerate() {
            if let Some(s) = self.nodes.get(&n.name) {
                s.binding.set(handle.clone(), id);
                sources.push(NodeSource {
                    name: n.name.clone(),
                    backend: handle.clone(),
                    id,
                });
            }
        }
        self.sources.set_nodes(sources);
        self.sources.set_cloud(self.backend.health());
    }

    /// Brings the Redfish door in line with the configuration and the
    /// nodes served: started, reconfigured, or stopped.
    async fn sync_redfish(&mut self) {
        let Some(config) = self.config.redfish.clone() else {
            if let Some(door) = self.redfish.take() {
                door.stop().await;
                info!("Redfish no longer served");
            }
            return;
        };
        let nodes: Vec<redfish::Node> = self
            .config
            .nodes
            .iter()
            .filter_map(|n| {
                self.nodes.get(&n.name).map(|s| redfish::Node {
                    name: n.name.clone(),
                    binding: s.binding.clone(),
                })
            })
            .collect();
        let served: Vec<NodeConfig> = self
            .config
            .nodes
            .iter()
            .filter(|n| self.nodes.contains_key(&n.name))
            .cloned()
            .collect();
        let door = self.redfish.get_or_insert_with(|| {
            Door::new(
                &config,
                &self.config.users,
                self.sources.recorder(),
                &instance_seed(&self.config),
            )
        });
        door.sync(&config, &self.config.users, &served, nodes).await;
    }

    async fn stop(mut self, metrics_stop: CancellationToken) -> Result<(), ServeError> {
        // Redfish first, with the UDP tasks: nothing new is acknowledged.
        if let Some(door) = self.redfish.take() {
            door.stop().await;
        }
        for s in self.nodes.values() {
            s.stop.cancel();
        }
        for (_, s) in std::mem::take(&mut self.nodes) {
            let _ = s.task.await;
        }
        self.backend.stop().await;
        metrics_stop.cancel();
        if let Some(t) = self.metrics_task.take() {
            let _ = t.await;
        }
        if let Some(routes) = self.routes.take() {
            routes.stop().await.map_err(ServeError::RoutesRemove)?;
        }
        info!("stopped");
        Ok(())
    }
}

/// The backend in use and what stopping it takes.
enum Running {
    Simulated(Arc<Simulated>),
    Nova {
        nova: Arc<Nova>,
        tasks: JoinSet<()>,
        stop: CancellationToken,
    },
    /// Between two backends during a reload: every node answers "node
    /// busy".
    Switching,
}

impl Running {
    /// Starts the configured backend; its cloud calls are reported to
    /// `recorder`.
    fn start(config: &Config, recorder: Arc<dyn CallRecorder>) -> Result<Running, ServeError> {
        Ok(match &config.backend {
            BackendConfig::Simulated(s) => Running::Simulated(Arc::new(Simulated::new(
                s.clone(),
                &config.simulated_nodes(),
            ))),
            BackendConfig::Nova(n) => {
                let stop = CancellationToken::new();
                let (nova, tasks) = Nova::start(
                    n.settings.clone(),
                    config.nova_nodes(n),
                    recorder,
                    stop.clone(),
                )
                .map_err(|error| ServeError::Backend {
                    cloud: n.settings.cloud.to_string(),
                    error,
                })?;
                Running::Nova { nova, tasks, stop }
            }
        })
    }

    /// The node's index: its place in the configuration's node list.
    fn index_of(&self, config: &Config, name: &str) -> NodeId {
        config
            .nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or(usize::MAX)
    }

    fn handle(&self) -> Arc<dyn Backend> {
        match self {
            Running::Simulated(s) => s.clone(),
            Running::Nova { nova, .. } => nova.clone(),
            Running::Switching => Arc::new(Switching),
        }
    }

    fn health(&self) -> Option<Arc<dyn CloudHealth>> {
        match self {
            Running::Nova { nova, .. } => Some(nova.clone()),
            // No node can serve: /healthz says so.
            Running::Switching => Some(Arc::new(Switching)),
            Running::Simulated(_) => None,
        }
    }

    /// Stops the backend's tasks, giving calls in flight their grace.
    async fn stop(&mut self) {
        if let Running::Nova { nova, tasks, stop } = self {
            nova.stop(stop, tasks).await;
        }
    }
}

/// The backend of nodes while a reload swaps backends.
struct Switching;

impl Backend for Switching {
    fn chassis_status(&self, _: NodeId) -> Result<novabmc_proto::ChassisState, BackendError> {
        Err(switching())
    }
    fn chassis_control(
        &self,
        _: NodeId,
        _: novabmc_proto::ChassisControl,
    ) -> Result<(), BackendError> {
        Err(switching())
    }
    fn boot_options(&self, _: NodeId) -> Result<novabmc_proto::BootOptions, BackendError> {
        Err(switching())
    }
    fn update_boot(
        &self,
        _: NodeId,
        _: &dyn Fn(&novabmc_proto::BootOptions) -> novabmc_proto::BootParameterWrite,
        _: bool,
    ) -> Result<novabmc_proto::BootOptions, BackendError> {
        Err(switching())
    }
    fn system_guid(&self, _: NodeId) -> Result<[u8; 16], BackendError> {
        Err(switching())
    }
    fn console(
        &self,
        _: NodeId,
    ) -> Result<Arc<dyn crate::backend::serial_console::ConsoleSource>, BackendError> {
        Err(switching())
    }
}

impl CloudHealth for Switching {
    fn last_refresh(&self) -> Option<std::time::Instant> {
        None
    }
    fn refresh_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
}

fn switching() -> BackendError {
    BackendError::NotReady("the backend is restarting for a reload".into())
}

/// What names this instance, for the Redfish service's UUID: the host
/// and, with Nova, the state directory (which one process locks).
fn instance_seed(config: &Config) -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    match &config.backend {
        BackendConfig::Nova(n) => format!("{}:{}", host.trim(), n.settings.state_dir.display()),
        BackendConfig::Simulated(_) => format!("{}:simulated", host.trim()),
    }
}

/// "127.0.0.1 ports 6230-6233", or a count of addresses.
fn summary(nodes: &[NodeConfig]) -> String {
    if nodes.is_empty() {
        return "none yet".into();
    }
    let mut ips: Vec<std::net::IpAddr> = nodes.iter().map(|n| n.listen.ip()).collect();
    ips.sort();
    ips.dedup();
    let ports = nodes.iter().map(|n| n.listen.port());
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
