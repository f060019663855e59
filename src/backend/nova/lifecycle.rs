//! Starting, reconfiguring and stopping the Nova backend's tasks: the
//! resolver and poller ([`super::resolver`], [`super::poller`]) and one
//! worker per node, each stoppable on its own so a reload keeps the
//! workers of unchanged nodes; the state directory's pending work resumed
//! at start and logged at stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use tokio::time::Instant;

use super::Nova;
use super::client::NovaClient;
use super::cloud;
use super::compute::Compute;
use super::metadata::decode_boot;
use super::node::{Desired, Nmi, NodeState, Power, Resolution};
use super::settings::{NovaNode, NovaSettings, StartError};
use super::store::{Entry, Store};
use super::worker::{self, NodeCell, WorkerContext};
use crate::backend::serial_console::websocket::WebSocketPolicy;
use crate::backend::telemetry::CallRecorder;

/// Stops one task and tells when it has stopped.
#[derive(Debug)]
pub(super) struct TaskStop {
    stop: CancellationToken,
    done: CancellationToken,
}

impl TaskStop {
    pub(super) fn new(shutdown: &CancellationToken) -> Self {
        TaskStop {
            stop: shutdown.child_token(),
            done: CancellationToken::new(),
        }
    }

    /// Runs `task`, which watches the stop token itself (a worker lets a
    /// call in flight finish), then says it is done.
    pub(super) fn wrap(
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
    pub(super) fn wrap_cancelling(
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
    pub(super) async fn stop_and_wait(&self, grace: Duration) -> bool {
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
pub(super) fn new_cell(n: &NovaNode) -> Arc<NodeCell> {
    Arc::new(NodeCell {
        state: Mutex::new(NodeState::new(n.name.clone(), n.server.clone())),
        wake: Notify::new(),
        media_wake: Notify::new(),
        mode: n.network_boot,
        ipxe_image: Mutex::new(None),
        secure_boot: Mutex::new(None),
        inventory: tokio::sync::watch::Sender::new(None),
    })
}

/// This instance's name in the servers' metadata: the host and the state
/// directory, which together name one novabmc process (the directory is
/// locked).
pub fn instance_name(state_dir: &std::path::Path) -> String {
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
            limit: Semaphore::new(settings.max_concurrent_calls.max(1)),
            give_up_after: settings.give_up_after,
            poll: settings.task_poll,
            owner: instance_name(&settings.state_dir),
            media: super::media::MediaContext::new(
                settings.media.clone(),
                super::media::cache::Cache::load(&store, settings.media.keep_unused),
            ),
            store,
            console: Arc::new(WebSocketPolicy {
                tls: client.console_tls().map_err(|e| e.to_string()),
                allow_plain: settings.allow_plain_console,
            }),
            client,
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
    pub(super) fn spawn_tasks(self: &Arc<Self>, fresh: &[bool], tasks: &mut JoinSet<()>) {
        for ((cell, stop), _) in self
            .cells
            .iter()
            .zip(&self.workers)
            .zip(fresh)
            .filter(|(_, f)| **f)
        {
            let run = worker::run(cell.clone(), self.ctx.clone(), stop.stop.clone());
            let media = super::media::run(cell.clone(), self.ctx.clone(), stop.stop.clone());
            tasks.spawn(stop.wrap(async move {
                tokio::join!(run, media);
            }));
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

    /// Picks up what the state directory holds from the previous run:
    /// records younger than the give-up time are resumed (the worker checks
    /// Nova before calling anything), older ones are logged and dropped;
    /// unsaved boot options are kept whatever their age, as they are
    /// settings, not operations. Only the `fresh` nodes are resumed (at a
    /// reload the others carry on from memory); an entry for a node no
    /// longer configured is dropped.
    pub(super) fn resume(&self, fresh: &[bool]) {
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
                match decode_boot(text) {
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
            if let Some(text) = &e.early_boot {
                match super::node::EarlyBoot::decode(text) {
                    Some(early) => {
                        info!(node = %s.name, "restored boot-parameter writes made before the server was known");
                        s.boot_early = Some(early);
                        s.lay_early_boot();
                    }
                    None => {
                        warn!(node = %s.name, "unreadable early boot-parameter writes in the state directory; ignored")
                    }
                }
            }
            if !e.media.is_empty() || !e.media_cleanup.is_empty() {
                s.media_generation = e.media.iter().map(|m| m.generation).max().unwrap_or(0);
                for m in &e.media {
                    if m.phase == super::media::record::Phase::Loading {
                        info!(node = %s.name, device = %m.device, url = %m.url, "resuming a virtual media load interrupted by the restart");
                    }
                }
                s.media = e.media.clone();
                s.media_cleanup = e.media_cleanup.clone();
                cell.media_wake.notify_one();
            }
            self.ctx.persist(&s);
        }
        for (node, e) in entries {
            warn!(node = %node, "the state directory holds work for a node no longer configured; dropped");
            let _ = self.ctx.store.save(&Entry::new(&e.node, None));
        }
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
        // Whatever still holds this backend (an open SOL console, a call
        // in flight) no longer holds the state directory: the next backend
        // of a reload opens it.
        self.ctx.store.close();
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
}
