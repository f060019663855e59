//! A front door's hold on one node: the backend that serves it and the
//! node's index there. Both front doors (IPMI's node tasks, and the SOL
//! bridge they start) read the node through it; a reload that restarts the
//! backend points every binding at the new one, and each reader takes it
//! from its next use on, keeping its sockets and sessions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::{Backend, NodeId};

/// What a node's task serves: a backend and the node's index in it. The
/// daemon swaps it when a reload restarts the backend, and the task picks
/// the new one for its next action, keeping its socket and sessions.
pub struct Binding {
    slot: RwLock<(Arc<dyn Backend>, NodeId)>,
    /// Bumped by every [`Binding::set`], so the task knows to subscribe to
    /// the new backend's inventory.
    generation: AtomicU64,
    /// Bumped by [`Binding::move_consoles`]: a console open on the node
    /// reconnects through the backend now bound.
    console_moves: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("node", &self.get().1)
            .finish_non_exhaustive()
    }
}

impl Binding {
    /// Node `id` of `backend`.
    pub fn new(backend: Arc<dyn Backend>, id: NodeId) -> Arc<Binding> {
        Arc::new(Binding {
            slot: RwLock::new((backend, id)),
            generation: AtomicU64::new(0),
            console_moves: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The backend and the node's index in it.
    pub fn get(&self) -> (Arc<dyn Backend>, NodeId) {
        self.slot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Points the node at another backend.
    pub fn set(&self, backend: Arc<dyn Backend>, id: NodeId) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = (backend, id);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Tells a console open on the node to let go of the backend it was
    /// opened through and open again through the one bound now (a reload
    /// replaced the backend).
    pub fn move_consoles(&self) {
        self.console_moves.send_modify(|n| *n += 1);
    }

    /// What a console bridge watches for [`Binding::move_consoles`].
    pub fn console_moves(&self) -> tokio::sync::watch::Receiver<u64> {
        self.console_moves.subscribe()
    }

    /// How many times the binding was pointed elsewhere; a reader that
    /// holds something from the backend (an inventory channel) takes it
    /// again when this changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
