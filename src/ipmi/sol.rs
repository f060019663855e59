//! Serial over LAN (IPMI 2.0 section 15) on a node: an active SOL payload
//! joined to the machine's serial console, both ways.
//!
//! The engine says when ([`novabmc_proto::ConsoleRequest`]): on `Open` a
//! bridge task starts ([`bridge`]) that opens the backend's console (for
//! Nova: a fresh serial console websocket), carries what is typed to it and
//! what it prints back, reconnects when it drops (keeping what is typed
//! meanwhile, up to [`bridge::MAX_PENDING`]) and, where the cloud has no
//! serial console, shows the console log instead, read-only. On `Close`
//! the task closes the console and ends.
//!
//! [`NodeSol`] is what a node's UDP task holds: it hands the engine's
//! requests to the task, and the task's output to the engine, keeping back
//! what the engine cannot take yet (the SOL console has not acknowledged
//! enough), so a slow console slows the websocket rather than losing
//! characters. The other way is bounded too: typed input goes to the
//! bridge on a channel of [`bridge::INPUT_CHUNKS`] chunks; when it is full
//! the rest is left in the engine, whose buffer is bounded and whose SOL
//! ACKs then accept only what fits (the SOL console sends the rest again).

use std::sync::Arc;

use novabmc_proto::{Bmc, ConsoleRequest, Entropy};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::backend::Binding;
use crate::backend::serial_console::bridge;

/// Chunks of machine output in flight from a bridge task to the node's
/// task: the websocket is read no faster than SOL delivers.
const OUTPUT_CHUNKS: usize = 16;

/// A running bridge task.
#[derive(Debug)]
struct Active {
    input: mpsc::Sender<Vec<u8>>,
    /// The SOL owner when the bridge opened: while it still owns SOL,
    /// input the bridge cannot take yet waits.
    owner: Option<u32>,
    output: mpsc::Receiver<Vec<u8>>,
    stop: CancellationToken,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One node's SOL console bridge.
pub struct NodeSol {
    name: String,
    /// The backend and the node's index in it, followed across reloads.
    binding: Arc<Binding>,
    active: Option<Active>,
    /// Machine output the engine could not take yet.
    held: Vec<u8>,
    /// One chunk of typed input the bridge could not take yet.
    typed: Option<Vec<u8>>,
}

impl std::fmt::Debug for NodeSol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSol")
            .field("node", &self.name)
            .field("active", &self.active.is_some())
            .finish_non_exhaustive()
    }
}

impl NodeSol {
    /// The bridge of the node `binding` names, idle until SOL is
    /// activated.
    pub fn new(name: String, binding: Arc<Binding>) -> Self {
        NodeSol {
            name,
            binding,
            active: None,
            held: Vec::new(),
            typed: None,
        }
    }

    /// Carries out the engine's console requests, and offers it again what
    /// it could not take before. Call after everything that may have
    /// changed the engine. (The engine's SOL timers run with its other
    /// timers, in [`Bmc::handle_timeout`].)
    pub fn drive(&mut self, engine: &mut Bmc, rng: &mut dyn Entropy) {
        loop {
            if let Some(bytes) = self.typed.take() {
                let Some(a) = &self.active else {
                    continue;
                };
                match a.input.try_send(bytes) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(bytes)) => {
                        // Still the same activation: wait, leaving the
                        // rest in the engine. Otherwise a Close is
                        // queued: drop it and go on to that.
                        if a.owner.is_some() && engine.sol_owner() == a.owner {
                            self.typed = Some(bytes);
                            break;
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            let Some(request) = engine.poll_console() else {
                break;
            };
            match request {
                ConsoleRequest::Open => self.open(engine.sol_owner()),
                ConsoleRequest::Input(bytes) => {
                    if self.active.is_some() {
                        self.typed = Some(bytes);
                    }
                }
                ConsoleRequest::Close => {
                    debug!(node = %self.name, "SOL deactivated; closing the console");
                    self.active = None;
                    self.held.clear();
                    self.typed = None;
                }
            }
        }
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.deliver(engine, held, rng);
        }
    }

    fn open(&mut self, owner: Option<u32>) {
        let (input, input_rx) = mpsc::channel(bridge::INPUT_CHUNKS);
        let (output_tx, output) = mpsc::channel(OUTPUT_CHUNKS);
        let stop = CancellationToken::new();
        let task = bridge::Bridge {
            name: self.name.clone(),
            binding: self.binding.clone(),
            input: input_rx,
            output: output_tx,
            stop: stop.clone(),
        };
        tokio::spawn(task.run());
        self.held.clear();
        self.typed = None;
        // Replacing a running bridge (a new activation right after a
        // deactivation) stops the old one.
        self.active = Some(Active {
            input,
            owner,
            output,
            stop,
        });
    }

    /// The next chunk the machine printed. Pending while no bridge runs
    /// or while the engine has not taken the previous chunk, so that a
    /// `select!` waits on it only when it can be delivered.
    pub async fn output(&mut self) -> Option<Vec<u8>> {
        match self.active.as_mut() {
            Some(a) if self.held.is_empty() => a.output.recv().await,
            _ => std::future::pending().await,
        }
    }

    /// Gives the engine what the machine printed, keeping what it could
    /// not take for the next [`NodeSol::drive`].
    pub fn deliver(&mut self, engine: &mut Bmc, bytes: Vec<u8>, rng: &mut dyn Entropy) {
        let n = engine.console_output(Instant::now().into_std(), &bytes, rng);
        if n < bytes.len() {
            self.held = bytes[n..].to_vec();
        }
    }
}
