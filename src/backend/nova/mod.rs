//! The Nova backend: every node is a Nova server; chassis commands become
//! Nova calls, power state comes from Nova, boot options live in the
//! server's metadata.
//!
//! Three kinds of task run in the background:
//! - the resolver connects to the cloud (retrying while Keystone or Nova is
//!   down), finds every node's server with one listing, resolves the iPXE
//!   images and restores the boot options saved in metadata;
//! - the poller keeps every node's view current with one
//!   `GET /servers/detail?changes-since=...` per refresh interval, however
//!   many nodes there are (and, every few minutes, one full listing, which
//!   catches what `changes-since` cannot show); it also finds servers that
//!   were deleted and re-created under the same name;
//! - one worker per node drives Nova towards what the node was asked
//!   ([`node`] for the semantics, [`plan`] for the calls, [`worker`] for
//!   the retries and time limits).
//!
//! The UDP side only ever touches each node's state under a short lock, so
//! replies never wait for the cloud. What has been acknowledged and not yet
//! carried out is written to the state directory ([`store`]) before the
//! reply leaves, and resumed at the next start.
//!
//! Each instance writes its name (host and state directory) once into the
//! metadata of the servers it serves, and warns when a listing shows
//! another instance's name there: two BMCs driving one server would undo
//! each other's work.

pub mod client;
pub mod cloud;
pub mod compute;
pub mod guid;
pub mod node;
pub mod plan;
pub mod serial_console;
pub mod states;
pub mod store;
pub mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Datelike;
use novabmc_proto::{BootOptions, BootParameterWrite, ChassisControl, ChassisState};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::telemetry::{CallRecorder, CloudHealth};
use super::{Backend, BackendError, NodeId, ServerInventory};
use client::{NovaClient, NovaError, ServerInfo};
use cloud::CloudSource;
use compute::Compute;
use node::{Desired, Nmi, NodeState, Power, Resolution};
use states::Status;
use store::{Entry, Store, StoreError};
use worker::{BOOT_KEY, NodeCell, OWNER_KEY, WorkerContext};

/// How a node boots from the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetworkBoot {
    /// Rebuild the server with the iPXE image (rewrites the root disk, as
    /// a PXE deploy does anyway): the default, as it needs nothing of the
    /// host cloud but an image.
    #[default]
    Rebuild,
    /// Rescue the server with the iPXE image; unrescue to boot the disk.
    Rescue,
    /// Set `libvirt:pxe-first` (needs OVB's Nova patch on the host cloud).
    Metadata,
}

impl NetworkBoot {
    /// Parses the configuration value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rebuild" => Some(Self::Rebuild),
            "rescue" => Some(Self::Rescue),
            "metadata" => Some(Self::Metadata),
            _ => None,
        }
    }

    /// Whether this mode needs an iPXE image.
    pub fn needs_image(self) -> bool {
        !matches!(self, Self::Metadata)
    }
}

/// Backend-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NovaSettings {
    /// Where the cloud configuration comes from.
    pub cloud: CloudSource,
    /// How often the poller lists changed servers.
    pub refresh: Duration,
    /// Longest time one cloud call may take, body included.
    pub request_timeout: Duration,
    /// How long a power operation may take before the worker gives up.
    pub give_up_after: Duration,
    /// Most Nova calls in flight at once, all nodes together.
    pub max_concurrent_calls: usize,
    /// How often a worker reads its server while Nova runs a task.
    pub task_poll: Duration,
    /// Where pending work is kept across restarts.
    pub state_dir: PathBuf,
}

impl NovaSettings {
    /// Defaults around a cloud source.
    pub fn new(cloud: CloudSource) -> Self {
        NovaSettings {
            cloud,
            refresh: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            give_up_after: Duration::from_secs(600),
            max_concurrent_calls: 16,
            task_poll: Duration::from_millis(500),
            state_dir: PathBuf::from(store::DEFAULT_STATE_DIR),
        }
    }
}

/// One node as the Nova backend needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NovaNode {
    /// Node name.
    pub name: String,
    /// Server name or UUID.
    pub server: String,
    /// Network boot mode.
    pub network_boot: NetworkBoot,
    /// iPXE image name or ID.
    pub ipxe_image: Option<String>,
    /// EFI firmware, when not read from the server's image.
    pub efi: Option<bool>,
}

/// The backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The cloud configuration is missing or wrong.
    #[error("{0}")]
    Cloud(String),
    /// The state directory cannot be used.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often resolving a long list of nodes says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How often the poller lists every server instead of the changed ones.
const FULL_LISTING_EVERY: Duration = Duration::from_secs(300);

/// The Nova backend.
#[derive(Debug)]
pub struct Nova<C = NovaClient> {
    cells: Vec<Arc<NodeCell>>,
    specs: Vec<NovaNode>,
    ctx: Arc<WorkerContext<C>>,
    settings: NovaSettings,
    /// Which node each server UUID belongs to, so applying a listing costs
    /// one lookup per server listed, not one pass over the nodes.
    by_server: Mutex<HashMap<String, NodeId>>,
    /// When a server listing last succeeded, for the health check.
    last_refresh: Mutex<Option<std::time::Instant>>,
    /// Per node, in node order: what stops its worker and what says it
    /// stopped, so a reload can stop some workers and keep the others.
    workers: Vec<TaskStop>,
    /// The same for the resolver and poller.
    control_stop: TaskStop,
}

/// Stops one task and tells when it has stopped.
#[derive(Debug)]
struct TaskStop {
    stop: CancellationToken,
    done: CancellationToken,
}

impl TaskStop {
    fn new(shutdown: &CancellationToken) -> Self {
        TaskStop {
            stop: shutdown.child_token(),
            done: CancellationToken::new(),
        }
    }

    /// Runs `task`, which watches the stop token itself (a worker lets a
    /// call in flight finish), then says it is done.
    fn wrap(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let done = self.done.clone();
        async move {
            task.await;
            done.cancel();
        }
    }

    /// Runs `task` until it ends or is stopped (dropped at its next await),
    /// then says it is done.
    fn wrap_cancelling(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let stop = self.stop.clone();
        self.wrap(async move {
            tokio::select! {
                () = task => {}
                () = stop.cancelled() => {}
            }
        })
    }

    /// Stops the task and waits for it, at most `grace`.
    async fn stop_and_wait(&self, grace: Duration) -> bool {
        self.stop.cancel();
        tokio::time::timeout(grace, self.done.cancelled())
            .await
            .is_ok()
    }
}

impl Nova<NovaClient> {
    /// Reads the cloud configuration and opens the state directory (an
    /// error in either stops the start), then starts the resolver, poller
    /// and workers on the current runtime.
    /// Each cloud call is reported to `recorder`.
    pub fn start(
        settings: NovaSettings,
        nodes: Vec<NovaNode>,
        recorder: Arc<dyn CallRecorder>,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Nova>, JoinSet<()>), StartError> {
        let cloud = cloud::load(&settings.cloud).map_err(StartError::Cloud)?;
        let client = NovaClient::new(cloud, settings.request_timeout).recording(recorder);
        Nova::start_with(client, settings, nodes, shutdown)
    }
}

/// A node's cell before anything is known of its server.
fn new_cell(n: &NovaNode) -> Arc<NodeCell> {
    Arc::new(NodeCell {
        state: Mutex::new(NodeState::new(n.name.clone(), n.server.clone())),
        wake: Notify::new(),
        mode: n.network_boot,
        ipxe_image: Mutex::new(None),
        inventory: tokio::sync::watch::Sender::new(None),
    })
}

/// This instance's name in the servers' metadata: the host and the state
/// directory, which together name one novabmc process (the directory is
/// locked).
fn instance_name(state_dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", state_dir.display())
}

impl<C: Compute> Nova<C> {
    /// Like [`Nova::start`], on any [`Compute`].
    pub fn start_with(
        client: C,
        settings: NovaSettings,
        nodes: Vec<NovaNode>,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Self>, JoinSet<()>), StartError> {
        let store = Store::open(&settings.state_dir)?;
        let ctx = Arc::new(WorkerContext {
            client,
            limit: Semaphore::new(settings.max_concurrent_calls.max(1)),
            give_up_after: settings.give_up_after,
            poll: settings.task_poll,
            owner: instance_name(&settings.state_dir),
            store,
        });
        let cells: Vec<Arc<NodeCell>> = nodes.iter().map(new_cell).collect();
        let fresh = vec![true; cells.len()];
        let nova = Arc::new(Nova {
            workers: cells.iter().map(|_| TaskStop::new(&shutdown)).collect(),
            control_stop: TaskStop::new(&shutdown),
            cells,
            specs: nodes,
            ctx,
            settings,
            by_server: Mutex::new(HashMap::new()),
            last_refresh: Mutex::new(None),
        });
        nova.resume(&fresh);
        let mut tasks = JoinSet::new();
        nova.spawn_tasks(&fresh, &mut tasks);
        Ok((nova, tasks))
    }

    /// Starts the workers of the `fresh` nodes, and the resolver and
    /// poller, into `tasks`.
    fn spawn_tasks(self: &Arc<Self>, fresh: &[bool], tasks: &mut JoinSet<()>) {
        for ((cell, stop), _) in self
            .cells
            .iter()
            .zip(&self.workers)
            .zip(fresh)
            .filter(|(_, f)| **f)
        {
            let run = worker::run(cell.clone(), self.ctx.clone(), stop.stop.clone());
            tasks.spawn(stop.wrap(run));
        }
        let n = self.clone();
        tasks.spawn(
            self.control_stop
                .wrap_cancelling(async move { n.control().await }),
        );
    }

    /// The backend for a new node list on the same cloud and settings (a
    /// reload), taking this one's place. Nodes whose settings did not
    /// change keep their state, their resolved server and their running
    /// worker, so they answer throughout; the workers of removed and
    /// changed nodes are stopped (a call in flight gets its grace) and what
    /// they had not carried out stays in the state directory, where a
    /// changed node picks it up and a removed node's is dropped with a
    /// warning, as at a restart. The state directory stays locked: it is
    /// the same one. One listing resolves the new and changed nodes.
    pub async fn reconfigure(
        self: &Arc<Self>,
        nodes: Vec<NovaNode>,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) -> Arc<Self> {
        let grace = worker::SHUTDOWN_GRACE + Duration::from_secs(2);
        if !self.control_stop.stop_and_wait(grace).await {
            warn!("the resolver did not stop within {grace:?} for the reload; going on");
        }
        let old: HashMap<&str, usize> = self
            .specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let kept: Vec<Option<usize>> = nodes
            .iter()
            .map(|n| {
                old.get(n.name.as_str())
                    .copied()
                    .filter(|&i| self.specs[i] == *n)
            })
            .collect();
        let mut stays = vec![false; self.specs.len()];
        for &i in kept.iter().flatten() {
            stays[i] = true;
        }
        for ((spec, stop), stays) in self.specs.iter().zip(&self.workers).zip(&stays) {
            if *stays {
                continue;
            }
            if !stop.stop_and_wait(grace).await {
                warn!(node = %spec.name, "the node's worker did not stop within {grace:?} for the reload");
            }
        }
        let mut cells = Vec::with_capacity(nodes.len());
        let mut workers = Vec::with_capacity(nodes.len());
        let mut by_server = HashMap::new();
        for (j, (n, k)) in nodes.iter().zip(&kept).enumerate() {
            match k {
                Some(i) => {
                    let cell = self.cells[*i].clone();
                    if let Resolution::Found { id } = &cell.lock().resolution {
                        by_server.insert(id.clone(), j);
                    }
                    cells.push(cell);
                    let w = &self.workers[*i];
                    workers.push(TaskStop {
                        stop: w.stop.clone(),
                        done: w.done.clone(),
                    });
                }
                None => {
                    cells.push(new_cell(n));
                    workers.push(TaskStop::new(shutdown));
                }
            }
        }
        let fresh: Vec<bool> = kept.iter().map(Option::is_none).collect();
        let last_refresh = *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner());
        let nova = Arc::new(Nova {
            cells,
            specs: nodes,
            ctx: self.ctx.clone(),
            settings: self.settings.clone(),
            by_server: Mutex::new(by_server),
            last_refresh: Mutex::new(last_refresh),
            workers,
            control_stop: TaskStop::new(shutdown),
        });
        nova.resume(&fresh);
        nova.spawn_tasks(&fresh, tasks);
        nova
    }

    /// The state directory in use.
    pub fn state_dir(&self) -> &std::path::Path {
        self.ctx.store.dir()
    }

    /// Picks up what the state directory holds from the previous run:
    /// records younger than the give-up time are resumed (the worker checks
    /// Nova before calling anything), older ones are logged and dropped;
    /// unsaved boot options are kept whatever their age, as they are
    /// settings, not operations. Only the `fresh` nodes are resumed (at a
    /// reload the others carry on from memory); an entry for a node no
    /// longer configured is dropped.
    fn resume(&self, fresh: &[bool]) {
        let (mut entries, problems) = self.ctx.store.load();
        for p in problems {
            warn!(dir = %self.state_dir().display(), "{p}");
        }
        let now_ms = worker::unix_ms();
        let give_up_ms = self.settings.give_up_after.as_millis() as u64;
        for (cell, fresh) in self.cells.iter().zip(fresh) {
            let mut s = cell.lock();
            let Some(e) = entries.remove(&s.name) else {
                continue;
            };
            if !fresh {
                continue;
            }
            s.server_id = e.server.clone();
            if let Some(p) = &e.power {
                let age_ms = now_ms.saturating_sub(p.changed_unix_ms);
                let what = if p.on { "power on" } else { "power off" };
                if age_ms > give_up_ms {
                    warn!(
                        node = %s.name,
                        age_secs = age_ms / 1000,
                        "dropping a {what} acknowledged before the restart: older than give_up_after_secs"
                    );
                } else {
                    let age = Duration::from_millis(age_ms);
                    let now = Instant::now();
                    s.desired = Some(Desired {
                        power: if p.on { Power::On } else { Power::Off },
                        reboot: p.reboot,
                        nmi: match p.nmi.as_deref() {
                            Some("now") => Some(Nmi::Now),
                            Some("after_boot") => Some(Nmi::AfterBoot),
                            _ => None,
                        },
                        changed: now.checked_sub(age).unwrap_or(now),
                        changed_unix_ms: p.changed_unix_ms,
                        generation: 1,
                    });
                    info!(
                        node = %s.name,
                        age_secs = age_ms / 1000,
                        reboot = p.reboot,
                        "resuming a {what} acknowledged before the restart"
                    );
                }
            }
            if let Some(text) = &e.boot {
                match worker::decode_boot(text) {
                    Some(b) => {
                        s.boot = Some(b);
                        s.boot_dirty = true;
                        info!(node = %s.name, "restored boot options not yet saved in Nova");
                    }
                    None => {
                        warn!(node = %s.name, "unreadable boot options in the state directory; ignored")
                    }
                }
            }
            self.ctx.persist(&s);
        }
        for (node, e) in entries {
            warn!(node = %node, "the state directory holds work for a node no longer configured; dropped");
            let _ = self.ctx.store.save(&Entry::new(&e.node, None));
        }
    }

    /// A copy of a node's state (for `check` and tests).
    pub fn node_state(&self, node: NodeId) -> Option<NodeState> {
        self.cells.get(node).map(|c| c.lock().clone())
    }

    /// Waits for the backend's tasks once `stop` is cancelled, giving the
    /// calls in flight their grace ([`worker::SHUTDOWN_GRACE`]); what is
    /// left stays in the state directory and is logged, one line per node.
    pub async fn stop(&self, stop: &CancellationToken, tasks: &mut JoinSet<()>) {
        stop.cancel();
        let grace = worker::SHUTDOWN_GRACE + Duration::from_secs(2);
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            warn!(
                "the backend did not stop within {:?}; stopping anyway",
                worker::SHUTDOWN_GRACE
            );
        }
        self.log_pending();
    }

    /// One line per node with work pending, for the shutdown log.
    pub fn log_pending(&self) {
        let mut n = 0;
        for cell in &self.cells {
            let s = cell.lock();
            if let Some(what) = s.pending() {
                n += 1;
                warn!(node = %s.name, pending = %what, dir = %self.state_dir().display(), "stopping with work pending; it resumes at the next start");
            }
        }
        if n == 0 {
            info!("no work pending");
        }
    }

    fn cell(&self, node: NodeId) -> Result<&NodeCell, BackendError> {
        self.cells
            .get(node)
            .map(Arc::as_ref)
            .ok_or_else(|| BackendError::Unavailable(format!("no node {node}")))
    }

    /// Connects, resolves, then polls for ever.
    async fn control(&self) {
        let mut attempt = 0;
        let listing = loop {
            match self.connect_and_list().await {
                Ok(l) => {
                    self.refreshed();
                    break l;
                }
                Err(e) => {
                    attempt += 1;
                    let delay = worker::backoff(attempt + 1);
                    warn!(error = %e, retry_in = ?delay, "cannot reach the cloud; nodes without pending work answer 'node busy' until it is back");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        self.resolve_all(&listing.servers).await;
        let mut since = next_since(listing.answered, &listing.servers);
        let full_every = (FULL_LISTING_EVERY.as_secs_f64() / self.settings.refresh.as_secs_f64())
            .ceil()
            .max(1.0) as u64;
        // A fixed rate: a slow listing does not stretch the interval.
        let mut tick = tokio::time::interval(self.settings.refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            let full = n.is_multiple_of(full_every);
            let listed = {
                let _permit = self.ctx.limit.acquire().await;
                let since = if full { None } else { since.as_deref() };
                self.ctx.client.list_servers(since, None).await
            };
            match listed {
                Ok(l) => {
                    self.refreshed();
                    self.apply(&l.servers, full).await;
                    if let Some(t) = next_since(l.answered, &l.servers) {
                        since = Some(t);
                    }
                }
                Err(e) => warn!(error = %e, "cannot list servers; keeping the last known states"),
            }
        }
    }

    fn refreshed(&self) {
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::Instant::now());
    }

    async fn connect_and_list(&self) -> Result<client::Listing, NovaError> {
        self.ctx.client.connect().await?;
        let _permit = self.ctx.limit.acquire().await;
        self.ctx.client.list_servers(None, None).await
    }

    /// Finds every node's server in one listing, with a progress line
    /// every [`PROGRESS_EVERY`] while that takes long (thousands of nodes,
    /// a slow Glance).
    async fn resolve_all(&self, servers: &[ServerInfo]) {
        let mut images: HashMap<String, Result<String, String>> = HashMap::new();
        let mut firmware: HashMap<String, Option<bool>> = HashMap::new();
        let mut flavors: HashMap<String, String> = HashMap::new();
        let index = ServerIndex::new(servers);
        let mut progress = Instant::now() + PROGRESS_EVERY;
        for (i, (cell, spec)) in self.cells.iter().zip(&self.specs).enumerate() {
            if Instant::now() >= progress {
                info!(done = i, nodes = self.cells.len(), "resolving servers");
                progress = Instant::now() + PROGRESS_EVERY;
            }
            if !matches!(cell.lock().resolution, Resolution::Pending) {
                continue;
            }
            self.resolve_one(i, cell, spec, &index, &mut images, &mut firmware)
                .await;
            self.publish_inventory(cell, &index, &mut flavors).await;
        }
        let found = self
            .cells
            .iter()
            .filter(|c| matches!(c.lock().resolution, Resolution::Found { .. }))
            .count();
        info!(nodes = self.cells.len(), found, "servers resolved");
    }

    async fn resolve_one(
        &self,
        node: NodeId,
        cell: &NodeCell,
        spec: &NovaNode,
        index: &ServerIndex<'_>,
        images: &mut HashMap<String, Result<String, String>>,
        firmware: &mut HashMap<String, Option<bool>>,
    ) {
        let server = match index.find(&spec.server) {
            Ok(s) => s,
            Err(why) => {
                error!(node = %spec.name, server = %spec.server, "{why}");
                cell.lock().resolution = Resolution::Missing(why);
                return;
            }
        };
        if spec.network_boot.needs_image() {
            let Some(image_ref) = &spec.ipxe_image else {
                let why = "no ipxe_image configured for network boot".to_string();
                error!(node = %spec.name, "{why}");
                cell.lock().resolution = Resolution::Failed(why);
                return;
            };
            if !images.contains_key(image_ref) {
                let found = {
                    let _permit = self.ctx.limit.acquire().await;
                    self.ctx.client.find_image(image_ref).await
                }
                .map(|i| i.id)
                .map_err(|e| format!("iPXE image {image_ref}: {e}"));
                images.insert(image_ref.clone(), found);
            }
            match images.get(image_ref) {
                Some(Ok(id)) => {
                    *cell.ipxe_image.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
                }
                Some(Err(why)) => {
                    error!(node = %spec.name, "{why}");
                    cell.lock().resolution = Resolution::Failed(why.clone());
                    return;
                }
                None => return,
            }
        }
        let efi = match spec.efi {
            Some(e) => e,
            None => match server.image_id() {
                Some(image) => {
                    if !firmware.contains_key(image) {
                        let fw = {
                            let _permit = self.ctx.limit.acquire().await;
                            self.ctx.client.image_firmware(image).await
                        }
                        .ok()
                        .map(|f| f.is_some_and(|f| f.eq_ignore_ascii_case("uefi")));
                        firmware.insert(image.to_string(), fw);
                    }
                    firmware.get(image).copied().flatten().unwrap_or(false)
                }
                None => false,
            },
        };
        let saved = server.metadata.get(BOOT_KEY);
        let from_metadata = match saved.map(|v| worker::decode_boot(v)) {
            Some(Some(b)) => b,
            Some(None) => {
                warn!(node = %spec.name, "unreadable {BOOT_KEY} metadata; starting from defaults");
                BootOptions::new(efi)
            }
            None => BootOptions::new(efi),
        };
        let uuid = guid::parse_uuid(&server.id);
        let now = Instant::now();
        {
            let mut s = cell.lock();
            if let Some(old) = s.server_id.clone()
                && old != server.id
            {
                if let Some(what) = s.pending() {
                    warn!(node = %spec.name, old = %old, new = %server.id, pending = %what,
                        "the node's server is not the one the pending work was for; dropped");
                }
                s.desired = None;
                s.boot = None;
                s.boot_dirty = false;
            }
            if s.boot.is_none() {
                s.boot = Some(from_metadata);
            }
            s.resolution = Resolution::Found {
                id: server.id.clone(),
            };
            s.server_id = Some(server.id.clone());
            self.by_server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(server.id.clone(), node);
            s.uuid = uuid;
            s.observe(server, OWNER_KEY, now);
            match server.metadata.get(OWNER_KEY) {
                Some(v) if *v == self.ctx.owner => {}
                Some(other) => {
                    warn!(node = %spec.name, server = %server.id, other = %other,
                        "the server's metadata names another novabmc instance serving it; two BMCs \
                         for one server undo each other's work. Serve each server from one instance \
                         (if that one no longer runs, ignore this: this instance now claims the server)");
                    s.owner_warned = Some(other.clone());
                    s.owner_dirty = true;
                }
                None => s.owner_dirty = true,
            }
            self.ctx.persist(&s);
        }
        debug!(node = %spec.name, server = %server.id, name = %server.name,
            status = %server.status, efi, restored = saved.is_some(), "serving server");
        cell.wake.notify_one();
    }

    /// Publishes the inventory of a node just resolved: the server's UUID,
    /// name and flavor name (embedded from microversion 2.47, else looked
    /// up once per flavor; a flavor that cannot be read shows as empty).
    async fn publish_inventory(
        &self,
        cell: &NodeCell,
        index: &ServerIndex<'_>,
        flavors: &mut HashMap<String, String>,
    ) {
        let id = match &cell.lock().resolution {
            Resolution::Found { id } => id.clone(),
            _ => return,
        };
        let Ok(server) = index.find(&id) else {
            return;
        };
        let flavor = match (server.flavor_name(), server.flavor_id()) {
            (Some(name), _) => name.to_string(),
            (None, Some(fid)) => match flavors.get(fid) {
                Some(name) => name.clone(),
                None => {
                    let found = {
                        let _permit = self.ctx.limit.acquire().await;
                        self.ctx.client.flavor_name(fid).await
                    };
                    let name = match found {
                        Ok(name) => name.unwrap_or_default(),
                        Err(e) => {
                            warn!(server = %server.id, flavor = %fid, error = %e, "cannot read the flavor; the FRU shows none");
                            String::new()
                        }
                    };
                    flavors.insert(fid.to_string(), name.clone());
                    name
                }
            },
            (None, None) => String::new(),
        };
        cell.inventory.send_replace(Some(ServerInventory {
            uuid: server.id.clone(),
            name: server.name.clone(),
            flavor,
        }));
    }

    /// Applies a listing (only changed servers, unless `full`).
    async fn apply(&self, listed: &[ServerInfo], full: bool) {
        let now = Instant::now();
        let mut unmatched = Vec::new();
        for server in listed {
            let node = self
                .by_server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&server.id)
                .copied();
            let matched = node.and_then(|i| self.cells.get(i)).is_some_and(|cell| {
                let mut s = cell.lock();
                if !matches!(&s.resolution, Resolution::Found { id } if id == &server.id) {
                    return false;
                }
                s.observe(server, OWNER_KEY, now);
                // A rename (or, at 2.47, a resize) shows in the FRU.
                cell.inventory.send_if_modified(|inv| match inv {
                    Some(inv) => {
                        let flavor = server.flavor_name().unwrap_or(&inv.flavor);
                        let changed = inv.name != server.name || inv.flavor != flavor;
                        if changed {
                            inv.flavor = flavor.to_string();
                            inv.name = server.name.clone();
                        }
                        changed
                    }
                    None => false,
                });
                if server.status == Status::Deleted {
                    warn!(node = %s.name, server = %server.id, "the node's server was deleted; looking for it again by name");
                }
                if let Some(other) = server.metadata.get(OWNER_KEY)
                    && *other != self.ctx.owner
                    && s.owner_warned.as_ref() != Some(other)
                {
                    warn!(node = %s.name, server = %server.id, other = %other,
                        "another novabmc instance now claims this server in its metadata; two BMCs \
                         for one server undo each other's work. Serve each server from one instance");
                    s.owner_warned = Some(other.clone());
                }
                true
            });
            if !matched && server.status != Status::Deleted {
                unmatched.push(server);
            }
        }
        if unmatched.is_empty() && !full {
            return;
        }
        // A server created after start (a redeploy deletes and re-creates
        // it, or the cloud was down) resolves the nodes still looking.
        for (i, (cell, spec)) in self.cells.iter().zip(&self.specs).enumerate() {
            if !matches!(cell.lock().resolution, Resolution::Missing(_)) {
                continue;
            }
            let candidate = unmatched
                .iter()
                .any(|s| s.id == spec.server || s.name == spec.server);
            if !candidate {
                continue;
            }
            // A listing of changes shows only the new server: ask for every
            // server of that name, so a duplicate is still noticed.
            let named = if full {
                Ok(listed.to_vec())
            } else {
                let _permit = self.ctx.limit.acquire().await;
                self.ctx
                    .client
                    .list_servers(None, Some(&spec.server))
                    .await
                    .map(|l| l.servers)
            };
            match named {
                Ok(servers) => {
                    let mut images = HashMap::new();
                    let mut fw = HashMap::new();
                    let index = ServerIndex::new(&servers);
                    self.resolve_one(i, cell, spec, &index, &mut images, &mut fw)
                        .await;
                    self.publish_inventory(cell, &index, &mut HashMap::new())
                        .await;
                    if matches!(cell.lock().resolution, Resolution::Found { .. }) {
                        info!(node = %spec.name, server = %spec.server, "server found again");
                    }
                }
                Err(e) => warn!(node = %spec.name, error = %e, "cannot look the server up"),
            }
        }
    }
}

/// A listing indexed by UUID and by name (live servers only), so that
/// resolving thousands of nodes costs one pass over the listing, not one
/// per node.
#[derive(Debug)]
pub struct ServerIndex<'a> {
    by_id: HashMap<&'a str, &'a ServerInfo>,
    by_name: HashMap<&'a str, Vec<&'a ServerInfo>>,
}

impl<'a> ServerIndex<'a> {
    /// Indexes `servers`, leaving out deleted ones.
    pub fn new(servers: &'a [ServerInfo]) -> Self {
        let mut by_id = HashMap::with_capacity(servers.len());
        let mut by_name: HashMap<&str, Vec<&ServerInfo>> = HashMap::with_capacity(servers.len());
        for s in servers.iter().filter(|s| s.status != Status::Deleted) {
            by_id.insert(s.id.as_str(), s);
            by_name.entry(s.name.as_str()).or_default().push(s);
        }
        ServerIndex { by_id, by_name }
    }

    /// The server a node names: by UUID, else by exact name; a name
    /// several live servers share is an error naming their UUIDs. `serve`,
    /// `check` and `export` all resolve nodes with this, so a node means
    /// the same server to each.
    pub fn find(&self, reference: &str) -> Result<&'a ServerInfo, String> {
        if let Some(s) = self.by_id.get(reference) {
            return Ok(s);
        }
        match self.by_name.get(reference).map(Vec::as_slice) {
            Some([one]) => Ok(one),
            None | Some([]) => Err(format!("server {reference} not found")),
            Some(many) => Err(format!(
                "server name {reference} is ambiguous: {} servers have it ({}); use the UUID",
                many.len(),
                many.iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// [`ServerIndex::find`] over a listing, for one lookup.
pub fn find_server<'a>(
    servers: &'a [ServerInfo],
    reference: &str,
) -> Result<&'a ServerInfo, String> {
    ServerIndex::new(servers).find(reference)
}

/// The `changes-since` of the next listing: when Nova answered this one
/// (its `Date` header), else the latest `updated` it showed, minus two
/// seconds because Nova's times have one-second resolution. Both come from
/// Nova's clock, so a skewed local clock loses nothing.
fn next_since(
    answered: Option<chrono::DateTime<chrono::Utc>>,
    servers: &[ServerInfo],
) -> Option<String> {
    let latest = || {
        servers
            .iter()
            .filter_map(|s| s.updated.as_deref())
            .filter_map(|u| chrono::DateTime::parse_from_rfc3339(u).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .max()
    };
    answered.or_else(latest).map(|t| {
        (t - chrono::Duration::seconds(2))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    })
}

impl<C: Compute> CloudHealth for Nova<C> {
    fn last_refresh(&self) -> Option<std::time::Instant> {
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh_interval(&self) -> Duration {
        self.settings.refresh
    }
}

impl<C: Compute> Backend for Nova<C> {
    fn power_pending(&self, node: NodeId) -> bool {
        self.cell(node).is_ok_and(|c| c.lock().pending().is_some())
    }

    /// The server's Nova serial console, once the server is resolved.
    fn console(
        &self,
        node: NodeId,
    ) -> Result<Arc<dyn crate::backend::serial_console::ConsoleSource>, BackendError> {
        let s = self.cell(node)?.lock();
        match (&s.resolution, &s.server_id) {
            (Resolution::Failed(why) | Resolution::Missing(why), _) => {
                Err(BackendError::Unavailable(why.clone()))
            }
            (_, Some(id)) => Ok(Arc::new(serial_console::NovaConsole {
                ctx: self.ctx.clone(),
                server: id.clone(),
            })),
            (_, None) => Err(BackendError::NotReady(format!(
                "server {} not resolved yet",
                s.server_ref
            ))),
        }
    }

    fn chassis_status(&self, node: NodeId) -> Result<ChassisState, BackendError> {
        self.cell(node)?.lock().reported()
    }

    fn chassis_control(&self, node: NodeId, control: ChassisControl) -> Result<(), BackendError> {
        let cell = self.cell(node)?;
        let changed = {
            let mut s = cell.lock();
            let changed = s.accept(control, Instant::now(), worker::unix_ms())?;
            if changed {
                // Written before the console gets its answer.
                self.ctx.persist(&s);
            }
            info!(node = %s.name, control = control.name(), changed, "chassis control");
            changed
        };
        if changed {
            cell.wake.notify_one();
        }
        Ok(())
    }

    fn boot_options(&self, node: NodeId) -> Result<BootOptions, BackendError> {
        let s = self.cell(node)?.lock();
        match (&s.resolution, &s.boot) {
            (Resolution::Failed(why) | Resolution::Missing(why), _) => {
                Err(BackendError::Unavailable(why.clone()))
            }
            (_, Some(b)) => Ok(*b),
            _ => Err(BackendError::NotReady(format!(
                "boot options of server {} not restored yet",
                s.server_ref
            ))),
        }
    }

    fn set_boot_parameter(
        &self,
        node: NodeId,
        write: BootParameterWrite,
        mark_invalid: bool,
    ) -> Result<(), BackendError> {
        let cell = self.cell(node)?;
        {
            let mut s = cell.lock();
            let s = &mut *s;
            match (&s.resolution, s.boot.as_mut()) {
                (Resolution::Failed(why) | Resolution::Missing(why), _) => {
                    return Err(BackendError::Unavailable(why.clone()));
                }
                (_, Some(b)) => {
                    let before = *b;
                    b.apply(write, mark_invalid);
                    if *b != before {
                        s.boot_dirty = true;
                        s.boot_generation += 1;
                        self.ctx.persist(s);
                    }
                }
                _ => {
                    return Err(BackendError::NotReady(format!(
                        "boot options of server {} not restored yet",
                        s.server_ref
                    )));
                }
            }
        }
        cell.wake.notify_one();
        Ok(())
    }

    fn inventory(
        &self,
        node: NodeId,
    ) -> Option<tokio::sync::watch::Receiver<Option<ServerInventory>>> {
        self.cells.get(node).map(|c| c.inventory.subscribe())
    }

    fn system_guid(&self, node: NodeId) -> Result<[u8; 16], BackendError> {
        let s = self.cell(node)?.lock();
        match (&s.resolution, s.uuid) {
            (Resolution::Found { .. }, Some(uuid)) => {
                Ok(guid::system_guid(uuid, chrono::Utc::now().year()))
            }
            (Resolution::Failed(why) | Resolution::Missing(why), _) => {
                Err(BackendError::Unavailable(why.clone()))
            }
            _ => Err(BackendError::NotReady(format!(
                "server {} not resolved yet",
                s.server_ref
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, name: &str, status: &str, updated: &str) -> ServerInfo {
        ServerInfo {
            id: id.into(),
            name: name.into(),
            status: Status::parse(status),
            task_state: None,
            vm_state: None,
            power_state: None,
            metadata: Default::default(),
            image: None,
            updated: Some(updated.into()),
            flavor: serde_json::Value::Null,
        }
    }

    #[test]
    fn finds_by_uuid_or_unique_name() {
        let list = [
            s("u1", "a", "ACTIVE", "2026-01-01T00:00:00Z"),
            s("u2", "b", "ACTIVE", "2026-01-01T00:00:00Z"),
            s("u3", "b", "SHUTOFF", "2026-01-01T00:00:00Z"),
            s("u4", "c", "DELETED", "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(find_server(&list, "u2").map(|s| s.id.as_str()), Ok("u2"));
        assert_eq!(find_server(&list, "a").map(|s| s.id.as_str()), Ok("u1"));
        assert!(
            find_server(&list, "b")
                .expect_err("ambiguous")
                .contains("ambiguous")
        );
        assert!(
            find_server(&list, "c")
                .expect_err("deleted")
                .contains("not found")
        );
    }

    #[test]
    fn changes_since_uses_novas_clock() {
        let list = [
            s("u1", "a", "ACTIVE", "2026-01-01T00:00:10Z"),
            s("u2", "b", "ACTIVE", "2026-01-01T00:01:00Z"),
        ];
        assert_eq!(
            next_since(None, &list).as_deref(),
            Some("2026-01-01T00:00:58Z")
        );
        assert_eq!(next_since(None, &[]), None);
        let date = chrono::DateTime::parse_from_rfc2822("Thu, 01 Jan 2026 00:05:00 GMT")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            next_since(Some(date), &list).as_deref(),
            Some("2026-01-01T00:04:58Z")
        );
    }
}
