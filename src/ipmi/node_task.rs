//! One task per node, driving that node's [`Bmc`] engine on the node's
//! socket ([`super::socket`]).
//!
//! A task waits on three things: a
//! datagram, the next deadline (the engine's, or the end of a summary
//! window), and shutdown. After each it carries out the engine's actions
//! against the backend (which answers from memory at once) and sends what
//! the engine queued. An idle node costs a parked task, a socket and an
//! engine with an empty session table.
//!
//! A socket is registered for reading only and read in batches
//! ([`super::datagrams`]): a batch shorter than asked proves the socket
//! empty, so no read is issued just to hear `EAGAIN`, and replies are sent
//! with plain non-blocking `sendto`.
//!
//! Deadlines are honoured however busy the socket is: the timer is polled
//! before the socket, and the engine's deadline is checked again after
//! every batch of datagrams, so a constant stream of packets cannot keep
//! expired sessions alive. Refusals and drops are logged one by one at
//! debug level and summarised at most once a minute at info level
//! ([`super::summary`]).
//!
//! Time is tokio's ([`tokio::time::Instant`]), as everywhere in the
//! daemon, so tests can pause it; the engine takes `std` instants, and the
//! conversion happens only where the task calls it.
//!
//! A reload reaches a running task two ways, neither touching its socket
//! or sessions: a new engine configuration ([`SharedConfig`]), taken
//! before the next datagram, and a new backend ([`Binding`]), used from
//! the next action on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use novabmc_proto::{Bmc, BmcConfig, Counters, Entropy, Event, LanInfo, SessionEvent};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::actions;
use super::datagrams::{self, Batch, NodeSocket};
use super::sol::NodeSol;
use super::summary::Summary;
use crate::backend::{Binding, ServerInventory};
use crate::config::NodeConfig;
use crate::metrics::Recorder;

/// `recvmmsg` calls per wake-up before the task yields, so that one busy
/// node cannot starve the others' tasks (32 datagrams at most).
const READS_PER_WAKE: usize = 4;

/// Random bytes for the engine from the thread-local generator.
struct ThreadEntropy(rand::rngs::ThreadRng);

impl Entropy for ThreadEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        rand::Rng::fill_bytes(&mut self.0, buf);
    }
}

fn entropy() -> ThreadEntropy {
    ThreadEntropy(rand::rng())
}

/// The engine configuration every node shares, replaced by a reload: each
/// task takes the new one before its next datagram, so new sessions see
/// the new users and settings while established ones run on.
#[derive(Debug)]
pub struct SharedConfig {
    current: RwLock<Arc<BmcConfig>>,
    generation: AtomicU64,
}

impl SharedConfig {
    /// Starts with `config`.
    pub fn new(config: BmcConfig) -> Arc<SharedConfig> {
        Arc::new(SharedConfig {
            current: RwLock::new(Arc::new(config)),
            generation: AtomicU64::new(0),
        })
    }

    /// Replaces the configuration. The global session budget stays the
    /// one every running engine shares, so the cap keeps counting every
    /// session.
    /// Users keep their IDs ([`novabmc_proto::Users::keeping_ids`]), so
    /// that each engine can end exactly the sessions of users removed or
    /// changed.
    pub fn replace(&self, mut config: BmcConfig) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        config.budget = current.budget.clone();
        config.users = std::mem::take(&mut config.users).keeping_ids(&current.users);
        *current = Arc::new(config);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn current(&self) -> Arc<BmcConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Starts `node`'s task on `socket`, with its LAN addressing, serving
/// `binding`, until `shutdown` is cancelled; returns the task and the
/// engine's counters, or why the socket cannot be registered.
pub fn spawn_node(
    node: &NodeConfig,
    socket: UdpSocket,
    config: Arc<SharedConfig>,
    binding: Arc<Binding>,
    lan: LanInfo,
    recorder: Arc<Recorder>,
    shutdown: CancellationToken,
) -> std::io::Result<(JoinHandle<()>, Arc<Counters>)> {
    let socket = NodeSocket::new(socket)?;
    let bound = binding.generation();
    let (backend, id) = binding.get();
    let guid = backend
        .system_guid(id)
        .unwrap_or_else(|_| rand::random::<[u8; 16]>());
    let generation = config.generation();
    let mut engine = Bmc::new(config.current(), guid);
    engine.set_lan(lan);
    engine.set_sol_port(node.listen.port());
    if let Some(saved) = backend.sol_settings(id)
        && !engine.restore_sol_settings(&saved)
    {
        warn!(node = %node.name, "the saved SOL settings are not valid; using the defaults");
    }
    let counters = engine.counters().clone();
    let task = NodeTask {
        name: node.name.clone(),
        socket,
        engine,
        inventory: backend.inventory(id),
        sol: NodeSol::new(node.name.clone(), binding.clone()),
        recorder,
        binding,
        bound,
        config,
        generation,
        summary: Summary::default(),
        evicted: 0,
    };
    Ok((tokio::spawn(task.run(shutdown)), counters))
}

struct NodeTask {
    name: String,
    socket: NodeSocket,
    engine: Bmc,
    /// The backend and the node's index in it.
    binding: Arc<Binding>,
    /// The binding's generation the inventory channel is from.
    bound: u64,
    /// The shared engine configuration, and the generation in use.
    config: Arc<SharedConfig>,
    generation: u64,
    /// The node's inventory as the backend publishes it (dropped once the
    /// backend drops its side).
    inventory: Option<watch::Receiver<Option<ServerInventory>>>,
    /// Refusals, drops and evictions since the last summary line.
    summary: Summary,
    /// The engine's eviction count when last looked at.
    evicted: u64,
    /// The SOL bridge to the machine's serial console.
    sol: NodeSol,
    /// Where accepted chassis controls are counted.
    recorder: Arc<Recorder>,
}

impl NodeTask {
    /// Saves the SOL settings through the backend when the datagrams just
    /// handled changed them (a `sol set`), so that a restart keeps them.
    fn keep_sol_settings(&self, before: [u8; 8]) {
        let now = self.engine.sol_settings();
        if now == before {
            return;
        }
        let (backend, id) = self.binding.get();
        if let Err(e) = backend.save_sol_settings(id, &now) {
            warn!(node = %self.name, error = %e, "cannot keep the SOL settings; a restart resets them");
        }
    }

    async fn run(mut self, shutdown: CancellationToken) {
        // Grows to the size of a reply on first use; an idle node holds no
        // buffer at all (datagrams are read into a stack buffer).
        let mut send = Vec::new();
        // One timer and one shutdown future for the task's life: the timer
        // is reset only when the deadline changes, not rebuilt per datagram.
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let timer = tokio::time::sleep(std::time::Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        // The inventory the backend already has is taken on the first turn.
        if let Some(rx) = self.inventory.as_mut() {
            rx.mark_changed();
        }
        loop {
            // A reload put the node on another backend: follow its
            // inventory from now on.
            let bound = self.binding.generation();
            if bound != self.bound {
                self.bound = bound;
                let (backend, id) = self.binding.get();
                self.inventory = backend.inventory(id);
                if let Some(rx) = self.inventory.as_mut() {
                    rx.mark_changed();
                }
            }
            // The engine's deadline covers its sessions and SOL alike.
            let engine_due = self.engine.poll_timeout().map(Instant::from_std);
            let deadline = earliest(engine_due, self.summary.due());
            if deadline != armed {
                if let Some(d) = deadline {
                    timer.as_mut().reset(d);
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                () = &mut cancelled => break,
                // Before the socket: with `biased`, a socket that is always
                // readable would otherwise starve the timer.
                () = &mut timer, if armed.is_some() => {}
                changed = inventory_changed(&mut self.inventory) => self.take_inventory(changed),
                r = self.socket.readable() => match r {
                    Ok(mut ready) => {
                        reconfigure(&self.config, &mut self.generation, &mut self.engine);
                        let sol_before = self.engine.sol_settings();
                        let drained = receive(
                            self.socket.get_ref(),
                            &mut self.engine,
                            &mut self.summary,
                            &self.name,
                        );
                        self.keep_sol_settings(sol_before);
                        if drained {
                            ready.clear_ready();
                        } else {
                            ready.retain_ready();
                        }
                    }
                    Err(e) => debug!(node = %self.name, error = %e, "socket error"),
                },
                Some(bytes) = self.sol.output() => {
                    self.sol.deliver(&mut self.engine, bytes, &mut entropy());
                }
            }
            let now = Instant::now();
            if self
                .engine
                .poll_timeout()
                .is_some_and(|d| d <= now.into_std())
            {
                self.engine.handle_timeout(now.into_std(), &mut entropy());
            }
            self.drive();
            if let Some(line) = self.summary.take_due(now) {
                info!(node = %self.name, "{line}");
            }
            while let Some(to) = self.engine.poll_transmit(&mut send) {
                if let Err(e) = self.socket.send_to(&send, to).await {
                    debug!(node = %self.name, %to, error = %e, "send failed");
                }
            }
        }
        if let Some(line) = self.summary.take() {
            info!(node = %self.name, "{line}");
        }
        debug!(node = %self.name, "stopped");
    }

    /// Hands a new inventory to the engine; stops listening once the
    /// backend has dropped its side.
    fn take_inventory(&mut self, changed: bool) {
        if !changed {
            self.inventory = None;
            return;
        }
        let Some(rx) = self.inventory.as_mut() else {
            return;
        };
        let fru = rx.borrow_and_update().as_ref().map(ServerInventory::fru);
        if let Some(fru) = fru {
            debug!(node = %self.name, serial = %fru.serial_number, product = %fru.product_name, "inventory");
            self.engine.set_inventory(&fru);
        }
    }

    /// Carries out queued actions, logs queued events and counts what the
    /// summary reports.
    fn drive(&mut self) {
        while let Some((id, action)) = self.engine.poll_action() {
            let (backend, node) = self.binding.get();
            let outcome = actions::run(backend.as_ref(), node, action, &self.recorder);
            self.engine
                .complete_action(id, outcome, Instant::now().into_std(), &mut entropy());
        }
        self.sol.drive(&mut self.engine, &mut entropy());
        let now = Instant::now();
        while let Some(event) = self.engine.poll_event() {
            if let Event::Refused {
                peer,
                message,
                status,
                ..
            } = event
            {
                self.summary.refused(now, peer.ip(), message, status);
            }
            log_event(&self.name, event);
        }
        let evicted = self.engine.counters().sessions(SessionEvent::Evicted);
        self.summary
            .evicted(now, evicted.saturating_sub(self.evicted));
        self.evicted = evicted;
    }
}

/// Takes the shared configuration if a reload replaced it since
/// `generation`.
fn reconfigure(config: &SharedConfig, generation: &mut u64, engine: &mut Bmc) {
    let now = config.generation();
    if now != *generation {
        engine.set_config(config.current());
        *generation = now;
    }
}

/// Reads the datagrams waiting on the socket, a bounded number of
/// batches, into buffers on the stack. Returns whether the socket was
/// found empty, so that its readiness may be cleared.
fn receive(
    socket: &std::net::UdpSocket,
    engine: &mut Bmc,
    summary: &mut Summary,
    name: &str,
) -> bool {
    let mut batch = Batch::new();
    let mut entropy = entropy();
    for _ in 0..READS_PER_WAKE {
        match batch.receive(socket) {
            Ok(n) => {
                let now = Instant::now();
                for (from, data) in batch.iter() {
                    let result = engine.handle_datagram(now.into_std(), from, data, &mut entropy);
                    if let Err(reason) = result {
                        debug!(node = %name, %from, %reason, "datagram dropped");
                        summary.dropped(now, from.ip(), reason.kind());
                    }
                }
                if n < datagrams::BATCH {
                    return true;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            // ICMP errors from earlier sends surface here on Linux;
            // they concern one console, not this socket, and more
            // datagrams may be queued behind them.
            Err(e) => {
                debug!(node = %name, error = %e, "receive error");
                return false;
            }
        }
    }
    false
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Resolves when the inventory changes (`true`) or its sender is gone
/// (`false`); never without a channel.
async fn inventory_changed(rx: &mut Option<watch::Receiver<Option<ServerInventory>>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

fn log_event(node: &str, event: Event) {
    match event {
        Event::SessionEstablished {
            id,
            peer,
            user,
            suite,
            max_privilege,
        } => debug!(
            node,
            session = format_args!("{id:#010x}"),
            %peer,
            %user,
            suite,
            privilege = max_privilege.name(),
            "session opened"
        ),
        Event::SessionClosed { id, reason } => debug!(
            node,
            session = format_args!("{id:#010x}"),
            ?reason,
            "session closed"
        ),
        Event::Refused {
            peer,
            message,
            status,
            user,
        } => match user {
            // At debug level only: anyone can send a name, and a line per
            // refusal would let a flood fill the disk.
            Some(user) => {
                debug!(node, %peer, %user, ?status, message = message.name(), "login refused")
            }
            None => debug!(node, %peer, ?status, message = message.name(), "session refused"),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use novabmc_proto::boot_options::BootParameterWrite;
    use novabmc_proto::{BootOptions, ChassisControl, ChassisState, Privilege, Users};

    use std::net::SocketAddr;

    use super::*;
    use crate::backend::{Backend, BackendError, NodeId};
    use crate::ipmi::socket::bind_udp;

    /// A machine that is always off and accepts everything.
    struct Off;

    impl Backend for Off {
        fn chassis_status(&self, _: NodeId) -> Result<ChassisState, BackendError> {
            Ok(ChassisState::default())
        }
        fn chassis_control(&self, _: NodeId, _: ChassisControl) -> Result<(), BackendError> {
            Ok(())
        }
        fn boot_options(&self, _: NodeId) -> Result<BootOptions, BackendError> {
            Ok(BootOptions::new(true))
        }
        fn update_boot(
            &self,
            _: NodeId,
            _: &dyn Fn(&BootOptions) -> BootParameterWrite,
            _: bool,
        ) -> Result<BootOptions, BackendError> {
            Ok(BootOptions::new(true))
        }
        fn system_guid(&self, _: NodeId) -> Result<[u8; 16], BackendError> {
            Ok([0; 16])
        }
    }

    /// An Open Session Request for suite 3.
    const OPEN_SESSION: [u8; 48] = [
        0x06, 0x00, 0xff, 0x07, 0x06, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0x00, 0x00, 0, 0, 0xa4,
        0xa3, 0xa2, 0xa0, 0x00, 0, 0, 0x08, 0x01, 0, 0, 0, 0x01, 0, 0, 0x08, 0x01, 0, 0, 0, 0x02,
        0, 0, 0x08, 0x01, 0, 0, 0,
    ];

    /// A socket that is never idle must not keep the engine's deadlines
    /// from passing: a half-open session expires while datagrams (that do
    /// not themselves touch the session table) arrive without pause. On
    /// paused time: the setup timeout passes when the test says, not after
    /// a real wait; the real clock only bounds the test.
    #[tokio::test(start_paused = true)]
    async fn a_constant_stream_of_datagrams_does_not_starve_the_timer() {
        let socket = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), false).expect("bind");
        let node = socket.local_addr().expect("addr");
        let mut users = Users::new();
        users
            .add("admin", b"password", Privilege::Administrator)
            .expect("user");
        let mut config = BmcConfig::new(users);
        config.timeouts.setup = Duration::from_millis(300);
        let engine = Bmc::new(Arc::new(config), [0; 16]);
        let counters = engine.counters().clone();
        let task = NodeTask {
            name: "node".into(),
            socket: NodeSocket::new(socket).expect("register"),
            engine,
            binding: Binding::new(Arc::new(Off), 0),
            bound: 0,
            config: SharedConfig::new(BmcConfig::new(Users::new())),
            generation: 0,
            inventory: None,
            summary: Summary::default(),
            evicted: 0,
            sol: NodeSol::new("node".into(), Binding::new(Arc::new(Off), 0)),
            recorder: Arc::default(),
        };
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(task.run(shutdown.clone()));

        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("client");
        client.send_to(&OPEN_SESSION, node).expect("send");
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        while counters.sessions(SessionEvent::Opened) == 0 {
            assert!(
                std::time::Instant::now() < give_up,
                "the session never opened"
            );
            tokio::task::yield_now().await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flood = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let garbage = std::net::UdpSocket::bind("127.0.0.1:0").expect("flood");
                while !stop.load(Ordering::Relaxed) {
                    let _ = garbage.send_to(&[0x06, 0x00, 0xff, 0x07, 0x00], node);
                }
            })
        };
        while counters.drops_total() == 0 {
            assert!(
                std::time::Instant::now() < give_up,
                "the stream never arrived"
            );
            tokio::task::yield_now().await;
        }
        // Past the setup timeout, with the stream still going.
        tokio::time::advance(Duration::from_millis(400)).await;
        while counters.sessions(SessionEvent::Expired) == 0 {
            assert!(
                std::time::Instant::now() < give_up,
                "the half-open session never expired under a constant stream"
            );
            tokio::task::yield_now().await;
        }
        assert!(counters.sessions(SessionEvent::Opened) == 1);
        assert!(counters.drops_total() > 0, "the stream reached the engine");
        stop.store(true, Ordering::Relaxed);
        flood.join().expect("flood thread");
        shutdown.cancel();
        running.await.expect("node task");
    }
}
