//! The Redfish door as the daemon runs it: the service and its listeners,
//! kept in line with the configuration. A listener is per node (scope: that
//! node's system, on its own address) or aggregate (every system). A reload
//! starts the listeners that are new, stops those that are gone and keeps
//! the others with their connections; the service's sessions survive it,
//! except those of accounts removed or changed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::auth::Ctx;
use super::listener::{self, Limits};
use super::routes;
use super::{Node, Scope, Service, tls};
use crate::config::{NodeConfig, RedfishConfig, UserConfig};
use crate::metrics::Recorder;

/// One listener running.
#[derive(Debug)]
struct Listening {
    scope: Scope,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The service and its listeners.
#[derive(Debug)]
pub struct Door {
    service: Arc<Service>,
    config: RedfishConfig,
    listeners: HashMap<SocketAddr, Listening>,
}

/// Where each listener should be, and what it shows.
pub fn wanted(config: &RedfishConfig, nodes: &[NodeConfig]) -> Vec<(SocketAddr, Scope)> {
    let mut v = Vec::new();
    if config.per_node {
        for n in nodes {
            let port = n.redfish_port.unwrap_or(config.port);
            v.push((
                SocketAddr::new(n.listen.ip(), port),
                Scope::Node(n.name.clone()),
            ));
        }
    }
    if let Some(a) = config.aggregate {
        v.push((a, Scope::All));
    }
    v
}

impl Door {
    /// A door with no listener yet.
    pub fn new(
        config: &RedfishConfig,
        users: &[UserConfig],
        recorder: Arc<Recorder>,
        seed: &str,
    ) -> Door {
        Door {
            service: Service::new(config, Vec::new(), users, recorder, seed),
            config: config.clone(),
            listeners: HashMap::new(),
        }
    }

    /// The service.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// Brings the door in line with `config`, `users` and the nodes served
    /// (`nodes`, each with its binding). Listeners that cannot start are
    /// logged and left out; the others serve.
    pub async fn sync(
        &mut self,
        config: &RedfishConfig,
        users: &[UserConfig],
        node_configs: &[NodeConfig],
        nodes: Vec<Node>,
    ) {
        self.service.set_nodes(nodes);
        self.service.set_accounts(config, users);
        if *config != self.config {
            // TLS or limits changed: every listener starts again.
            for (_, l) in self.listeners.drain() {
                l.stop.cancel();
                let _ = l.task.await;
            }
            self.config = config.clone();
        }
        let wanted = wanted(config, node_configs);
        let keep: HashMap<SocketAddr, &Scope> = wanted.iter().map(|(a, s)| (*a, s)).collect();
        let gone: Vec<SocketAddr> = self
            .listeners
            .iter()
            .filter(|(a, l)| keep.get(a) != Some(&&l.scope))
            .map(|(a, _)| *a)
            .collect();
        for a in gone {
            if let Some(l) = self.listeners.remove(&a) {
                l.stop.cancel();
                let _ = l.task.await;
            }
        }
        let mut started = 0;
        for (address, scope) in wanted {
            if self.listeners.contains_key(&address) {
                continue;
            }
            match self.start(address, scope.clone()) {
                Ok(l) => {
                    self.listeners.insert(address, l);
                    started += 1;
                }
                Err(e) => error!(%address, error = %e, "Redfish listener not started"),
            }
        }
        if started > 0 {
            info!(
                listeners = self.listeners.len(),
                started,
                tls = !matches!(config.tls, crate::config::redfish::Tls::Off),
                "Redfish served"
            );
        }
    }

    fn start(&self, address: SocketAddr, scope: Scope) -> Result<Listening, String> {
        let identity =
            tls::identity(&self.config.tls, listen_ip(address)).map_err(|e| e.to_string())?;
        let tcp = listener::bind(address).map_err(|e| e.to_string())?;
        let stop = CancellationToken::new();
        let router = routes::router(Ctx {
            service: self.service.clone(),
            scope: scope.clone(),
            read_timeout: self.config.read_timeout,
        });
        let task = listener::spawn(
            tcp,
            router,
            identity.map(|i| i.config),
            Limits {
                max_connections: self.config.max_connections,
                read_timeout: self.config.read_timeout,
            },
            stop.clone(),
        );
        Ok(Listening { scope, stop, task })
    }

    /// Stops every listener (connections finish their request).
    pub async fn stop(mut self) {
        for (_, l) in self.listeners.drain() {
            l.stop.cancel();
            let _ = l.task.await;
        }
    }
}

/// The address a certificate names for a listener: its own, or loopback
/// for a wildcard one.
fn listen_ip(a: SocketAddr) -> IpAddr {
    if a.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        a.ip()
    }
}
