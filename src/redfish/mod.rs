//! The Redfish front door (DMTF DSP0266 over the DSP0268 schemas): every
//! node's BMC answers Redfish beside IPMI, on the node's own address, and
//! optionally one aggregate listener serves every node's system, as
//! sushy-tools' users and Metal3 configure it.
//!
//! Both doors drive the same backend: a `Reset` is a request to the node's
//! convergent power machinery ([`crate::backend::power`]), never refused
//! because the cloud is busy; the `Boot` override is the very record IPMI's
//! boot options read ([`crate::backend::boot`]); `PowerState` is what
//! IPMI's power status says.
//!
//! - [`door`]: the service and its listeners, kept in line with the
//!   configuration across reloads;
//! - [`listener`]: TCP listeners, TLS, HTTP/1.1 with bounded headers,
//!   bodies and time, and a cap on connections;
//! - [`tls`]: the configured certificate, or a self-signed one kept in the
//!   state directory;
//! - [`routes`]: the URI space and the protocol rules every request and
//!   response follows;
//! - [`auth`]: the request context, the caller, and authentication;
//! - [`accounts`], [`sessions`], [`login_limit`]: who may do what, Redfish
//!   sessions, and the per-source budget of failed logins;
//! - [`resources`]: the resources themselves;
//! - [`odata`], [`error`]: the shapes of answers and of errors.

pub mod accounts;
pub mod auth;
pub mod door;
pub mod error;
pub mod listener;
pub mod login_limit;
pub mod odata;
pub mod resources;
pub mod routes;
pub mod sessions;
pub mod tls;

use std::sync::{Arc, Mutex, RwLock};

use sha2::{Digest, Sha256};

use crate::backend::{Backend, Binding, NodeId, ServerInventory};
use crate::config::{RedfishConfig, UserConfig};
use crate::metrics::Recorder;
use accounts::Accounts;
use login_limit::LoginLimit;
use sessions::Sessions;

/// Largest request body taken (a PATCH of Boot is a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// One node as the service reaches it.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's name (also accepted as its system's Id).
    pub name: String,
    /// Its place in the backend, followed across reloads.
    pub binding: Arc<Binding>,
}

/// Which systems a listener shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One node's, on the node's own address.
    Node(String),
    /// Every node's.
    All,
}

/// One system a request is about.
#[derive(Clone)]
pub struct System {
    /// The node's name.
    pub name: String,
    /// The system's Id: the server's UUID once known, else the node's
    /// name.
    pub id: String,
    /// The server, once the backend knows it.
    pub inventory: Option<ServerInventory>,
    /// The backend serving it now.
    pub backend: Arc<dyn Backend>,
    /// Its index there.
    pub node: NodeId,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    fn system(&self) -> System {
        let (backend, node) = self.binding.get();
        let inventory = backend.inventory(node).and_then(|rx| rx.borrow().clone());
        let id = inventory
            .as_ref()
            .map(|i| i.uuid.clone())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| self.name.clone());
        System {
            name: self.name.clone(),
            id,
            inventory,
            backend,
            node,
        }
    }
}

/// The service's state, shared by every listener and kept across reloads.
#[derive(Debug)]
pub struct Service {
    nodes: RwLock<Arc<Vec<Node>>>,
    /// Where each system Id was last found in `nodes`, so a GET costs one
    /// look-up however many nodes there are; checked at each use and built
    /// again when an Id moved (a server re-created, a reload).
    ids: Mutex<std::collections::HashMap<String, usize>>,
    accounts: RwLock<Arc<Accounts>>,
    /// Open sessions.
    pub sessions: Mutex<Sessions>,
    /// Failed logins per source.
    pub logins: Mutex<LoginLimit>,
    /// Where requests are counted.
    pub recorder: Arc<Recorder>,
    /// The service's UUID (stable for a host and state directory).
    pub uuid: String,
}

impl Service {
    /// A service for `nodes` and `users`, counting into `recorder`; `seed`
    /// names this instance (its UUID is derived from it).
    pub fn new(
        config: &RedfishConfig,
        nodes: Vec<Node>,
        users: &[UserConfig],
        recorder: Arc<Recorder>,
        seed: &str,
    ) -> Arc<Service> {
        Arc::new(Service {
            nodes: RwLock::new(Arc::new(nodes)),
            ids: Mutex::new(std::collections::HashMap::new()),
            accounts: RwLock::new(Arc::new(Accounts::from_users(users))),
            sessions: Mutex::new(Sessions::new(config.session_timeout, config.max_sessions)),
            logins: Mutex::new(LoginLimit::default()),
            recorder,
            uuid: uuid_from(seed),
        })
    }

    /// Replaces the nodes (a reload).
    pub fn set_nodes(&self, nodes: Vec<Node>) {
        *self.nodes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(nodes);
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Replaces the accounts and limits (a reload): sessions of removed
    /// accounts, and of accounts whose password or role changed, end.
    pub fn set_accounts(&self, config: &RedfishConfig, users: &[UserConfig]) {
        let accounts = Accounts::from_users(users);
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.set_limits(config.session_timeout, config.max_sessions);
        let ended = sessions.keep_valid(&accounts);
        if ended > 0 {
            tracing::info!(
                ended,
                "Redfish sessions of changed or removed accounts ended"
            );
        }
        *self.accounts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(accounts);
    }

    /// The accounts now.
    pub fn accounts(&self) -> Arc<Accounts> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn nodes(&self) -> Arc<Vec<Node>> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The systems `scope` shows, in node order.
    pub fn systems(&self, scope: &Scope) -> Vec<System> {
        let nodes = self.nodes();
        match scope {
            Scope::All => nodes.iter().map(Node::system).collect(),
            Scope::Node(name) => nodes
                .iter()
                .filter(|n| &n.name == name)
                .map(Node::system)
                .collect(),
        }
    }

    /// The system `id` names (its Id, or its node's name) within `scope`.
    pub fn system(&self, scope: &Scope, id: &str) -> Option<System> {
        let nodes = self.nodes();
        let in_scope = |n: &Node| match scope {
            Scope::All => true,
            Scope::Node(name) => &n.name == name,
        };
        let known = self
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied();
        if let Some(n) = known.and_then(|i| nodes.get(i)) {
            let s = n.system();
            if (s.id == id || n.name == id) && in_scope(n) {
                return Some(s);
            }
        }
        // Not known, or moved: index every node once and look again.
        let mut ids = std::collections::HashMap::with_capacity(nodes.len() * 2);
        let mut found = None;
        for (i, n) in nodes.iter().enumerate() {
            let s = n.system();
            ids.insert(n.name.clone(), i);
            ids.insert(s.id.clone(), i);
            if found.is_none() && (s.id == id || n.name == id) && in_scope(n) {
                found = Some(s);
            }
        }
        *self.ids.lock().unwrap_or_else(|e| e.into_inner()) = ids;
        found
    }
}

/// A name-based UUID (the form of RFC 9562 version 8) from `seed`.
fn uuid_from(seed: &str) -> String {
    let mut b: [u8; 16] = Sha256::digest(seed.as_bytes())[..16]
        .try_into()
        .unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    crate::backend::inventory::format_uuid(b)
}
