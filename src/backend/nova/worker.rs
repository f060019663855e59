//! The per-node worker: drives Nova towards the node's [`Desired`] record,
//! one call at a time.
//!
//! Each round waits until Nova has no task for the server, takes the record
//! as it is then (so commands that arrived meanwhile count), and asks
//! [`plan::next`] for the next move. A boot takes the boot device when it
//! starts (using up a one-time flag, which is then saved to the metadata).
//! Nova's answers are acted on by kind ([`NovaErrorKind`]): a busy server
//! is waited out and the plan made again; a call that does not fit the
//! server's state makes the worker read the server and plan again from
//! what it really is; timeouts, 5xx and dropped connections are retried
//! with backoff, after checking that the call did not go through with its
//! answer lost; a server that no longer exists is looked for again by the
//! poller. A 202 is not trusted: the server is read again at once.
//!
//! Every wait is bounded by the record's give-up time
//! (`give_up_after_secs`, counted from the last command), and a call that
//! is still outstanding then is abandoned; the record is dropped and the
//! failure logged at error with Nova's own message, so the reported state
//! falls back to what Nova says. At shutdown an outstanding call gets a
//! grace period to finish; nothing new is started, and the record stays in
//! the state directory for the next start.
//!
//! Time comes from tokio, so tests run all of this on paused time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use novabmc_proto::BootDevice;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::NetworkBoot;
use super::client::{NovaError, NovaErrorKind, ServerAction, ServerInfo};
use super::compute::Compute;
use super::media::MediaBoot;
use super::media::record::Phase;
use super::metadata::{BOOT_KEY, OWNER_KEY, PXE_FIRST_KEY, encode_boot};
use super::node::{Desired, FRESH, Nmi, NodeState, Observed, Resolution};
use super::plan::{self, Call, Plan};
use super::store::{Entry, Store, StoredPower};
use crate::backend::serial_console::websocket::WebSocketPolicy;
use crate::backend::virtual_media::MediaDevice;

/// How long an outstanding call may finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How often unsaved metadata (Nova refuses writes while a server is
/// rescued) is tried again.
const METADATA_RETRY: Duration = Duration::from_secs(30);

/// How a node's worker reaches Nova and what it shares with the UDP side.
#[derive(Debug)]
pub struct NodeCell {
    /// The state shared with the UDP side.
    pub state: Mutex<NodeState>,
    /// Wakes the worker when there is new work.
    pub wake: Notify,
    /// Wakes the node's media task when there is media to load or remove.
    pub media_wake: Notify,
    /// How to boot from the network.
    pub mode: NetworkBoot,
    /// The iPXE image ID, resolved at start, for rebuild and rescue.
    pub ipxe_image: Mutex<Option<String>>,
    /// Whether the server's image asks for secure boot, once read.
    pub secure_boot: Mutex<Option<bool>>,
    /// The server's inventory for the node's FRU, once resolved.
    pub inventory: tokio::sync::watch::Sender<Option<super::super::ServerInventory>>,
}

impl NodeCell {
    /// The shared state (a poisoned lock still holds plain data).
    pub fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What every worker shares.
#[derive(Debug)]
pub struct WorkerContext<C> {
    /// The cloud.
    pub client: C,
    /// Nova calls in flight, all nodes together. A permit is held only for
    /// the duration of one call, so a timed-out call frees it.
    pub limit: Semaphore,
    /// How long a power operation may take, retries included.
    pub give_up_after: Duration,
    /// How often a server is read while Nova runs a task.
    pub poll: Duration,
    /// The state directory.
    pub store: Store,
    /// This instance's value of [`OWNER_KEY`].
    pub owner: String,
    /// What virtual media shares.
    pub media: super::media::MediaContext,
    /// How the nodes' serial console websockets may be opened.
    pub console: Arc<WebSocketPolicy>,
}

impl<C> WorkerContext<C> {
    /// Writes a node's entry in the state directory; failures are logged,
    /// never fatal (the command is still carried out in memory).
    pub fn persist(&self, s: &NodeState) {
        if let Err(e) = self.store.save(&entry_of(s)) {
            error!(node = %s.name, error = %e, "cannot record pending work; it would not survive a restart");
        }
    }

    /// Writes a node's entry for a command about to be acknowledged: a
    /// failure is the command's refusal.
    pub fn record(&self, s: &NodeState) -> Result<(), crate::backend::BackendError> {
        self.store.save(&entry_of(s)).map_err(|e| {
            error!(node = %s.name, error = %e, "cannot record a command; refusing it");
            crate::backend::BackendError::NotRecorded(e.to_string())
        })
    }
}

/// The state-directory entry of a node.
pub fn entry_of(s: &NodeState) -> Entry {
    let mut e = Entry::new(&s.name, s.server_id.clone());
    e.power = s.desired.as_ref().map(|d| StoredPower {
        on: d.power == super::node::Power::On,
        reboot: d.reboot,
        nmi: d.nmi.map(|n| match n {
            Nmi::Now => "now".to_string(),
            Nmi::AfterBoot => "after_boot".to_string(),
        }),
        changed_unix_ms: d.changed_unix_ms,
    });
    if s.boot_dirty {
        e.boot = s.boot.as_ref().map(encode_boot);
    }
    e.early_boot = s.boot_early.as_ref().map(super::node::EarlyBoot::encode);
    e.media = s.media.clone();
    e.media_cleanup = s.media_cleanup.clone();
    e
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Why a round ended early.
#[derive(Debug)]
enum Stop {
    /// Shutdown began.
    Shutdown,
    /// The server is gone; the poller looks for it again.
    Missing,
    /// The record was given up (already logged and dropped).
    GaveUp,
    /// Plan again from a fresh read (after a conflict with Nova's state).
    Replan,
    /// A boot waits for virtual media being loaded.
    MediaWait,
}

/// The worker task of one node.
pub async fn run<C: Compute>(
    cell: Arc<NodeCell>,
    ctx: Arc<WorkerContext<C>>,
    shutdown: CancellationToken,
) {
    Worker {
        cell,
        ctx,
        shutdown,
        recipe: Vec::new(),
        last_error: None,
        replans: 0,
        repeated: None,
        failed_boots: 0,
        media_refused: false,
    }
    .run()
    .await
}

struct Worker<C> {
    cell: Arc<NodeCell>,
    ctx: Arc<WorkerContext<C>>,
    shutdown: CancellationToken,
    /// What remains of the boot under way.
    recipe: Vec<Call>,
    /// Nova's last complaint, for the give-up message.
    last_error: Option<String>,
    /// Rounds in a row that ended in a re-plan without progress.
    replans: u32,
    /// The last accepted step and how many times in a row it was accepted
    /// without the plan moving on (a server in ERROR accepts and fails).
    repeated: Option<(Call, u32)>,
    /// Boots in a row that ended in ERROR.
    failed_boots: u32,
    /// Nova refused to boot the inserted media for the operation under
    /// way: it boots from the disk instead.
    media_refused: bool,
}

impl<C: Compute> Worker<C> {
    fn name(&self) -> String {
        self.cell.lock().name.clone()
    }

    async fn run(mut self) {
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            let (id, has_record, boot_dirty, owner_dirty) = {
                let s = self.cell.lock();
                let id = match &s.resolution {
                    Resolution::Found { id } => Some(id.clone()),
                    _ => None,
                };
                (id, s.desired.is_some(), s.boot_dirty, s.owner_dirty)
            };
            let Some(id) = id else {
                if !self.idle(None).await {
                    break;
                }
                continue;
            };
            // The calls' futures are boxed, allocated only while they run:
            // inline, they would make every idle worker as large as the
            // HTTP client's deepest future (24 KiB), 240 MiB for 10,000
            // nodes.
            if boot_dirty {
                Box::pin(self.save_boot(&id)).await;
            }
            if owner_dirty {
                Box::pin(self.save_owner(&id)).await;
            }
            if has_record {
                match Box::pin(self.round(&id)).await {
                    Ok(()) => {}
                    Err(Stop::Shutdown) => break,
                    Err(Stop::Missing | Stop::GaveUp) => {}
                    Err(Stop::MediaWait) => {
                        if !self.idle(None).await {
                            break;
                        }
                    }
                    Err(Stop::Replan) => {
                        self.replans += 1;
                        if self.replans > 1 && !self.pause(backoff(self.replans - 1)).await {
                            break;
                        }
                    }
                }
                continue;
            }
            let retry = {
                let s = self.cell.lock();
                (s.boot_dirty || s.owner_dirty).then_some(METADATA_RETRY)
            };
            if !self.idle(retry).await {
                break;
            }
        }
        debug!(node = %self.name(), "worker stopped");
    }

    /// Waits for new work (or `retry`); false at shutdown.
    async fn idle(&self, retry: Option<Duration>) -> bool {
        let retry = retry.unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            () = self.cell.wake.notified() => true,
            () = tokio::time::sleep(retry) => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Sleeps unless shutdown begins; false if it did.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// The record's give-up time.
    fn deadline(&self) -> Option<Instant> {
        self.cell
            .lock()
            .desired
            .as_ref()
            .map(|d| d.changed + self.ctx.give_up_after)
    }

    /// One planning round: settle, plan, make at most one call.
    async fn round(&mut self, id: &str) -> Result<(), Stop> {
        let Some(deadline) = self.deadline() else {
            return Ok(());
        };
        let observed = self.settled(id, deadline).await?;
        let mut failed_boot = false;
        let (d, device, generation) = {
            let mut s = self.cell.lock();
            if self.recipe.is_empty() && s.boot_in_flight.take().is_some() && observed.failed() {
                // The boot the worker started is over, and Nova put the
                // server in ERROR: it did not happen. Boot again, after a
                // pause that grows each time.
                if let Some(r) = s.desired.as_mut()
                    && r.power == super::node::Power::On
                {
                    r.reboot = true;
                    failed_boot = true;
                }
            }
            let Some(d) = s.desired.clone() else {
                return Ok(());
            };
            if d.power == super::node::Power::On
                && s.media.iter().any(|m| m.phase == Phase::Loading)
            {
                // A boot sees the media inserted before it: wait for the
                // load (bounded by its own timeout; the give-up time counts
                // from its end).
                debug!(node = %s.name, "power on waits for virtual media being loaded");
                return Err(Stop::MediaWait);
            }
            let device = s
                .boot
                .map(|mut b| b.take_boot_device().0)
                .unwrap_or(BootDevice::NoOverride);
            (d, device, s.boot_generation)
        };
        let (plan_device, media) = self.media_boot(device);
        if Instant::now() >= d.changed + self.ctx.give_up_after {
            return Err(self.give_up("the give-up time passed"));
        }
        if failed_boot {
            self.failed_boots += 1;
            self.last_error = Some(format!(
                "the server went to {} during the boot",
                observed.status
            ));
            warn!(node = %self.name(), server = %id, status = %observed.status, "the boot failed; trying again");
            if !self.pause(backoff(self.failed_boots)).await {
                return Err(Stop::Shutdown);
            }
        }
        match plan::next(
            &d,
            &observed,
            plan_device,
            self.cell.mode,
            &self.recipe,
            media,
        ) {
            Plan::Wait => Ok(()),
            Plan::Done { dropped_nmi } => {
                self.finish(&d, dropped_nmi, &observed);
                Ok(())
            }
            Plan::Nmi => {
                self.call(id, Call::CrashDump, &d).await?;
                let mut s = self.cell.lock();
                if let Some(r) = s.desired.as_mut() {
                    r.nmi = None;
                }
                self.ctx.persist(&s);
                info!(node = %s.name, server = %id, "diagnostic interrupt delivered");
                Ok(())
            }
            Plan::PowerOff(step) => {
                self.recipe.clear();
                self.call(id, step, &d).await
            }
            Plan::Boot(steps) => {
                let starting = self.recipe.is_empty();
                if starting {
                    self.recipe = steps;
                }
                let Some(&step) = self.recipe.first() else {
                    return Ok(());
                };
                let result = self.call(id, step, &d).await;
                if starting && result.is_ok() {
                    // The boot has begun: it uses the boot device up now,
                    // not when it was planned (a call that never went
                    // through must leave a one-time flag in place).
                    self.begin_boot(device, generation);
                }
                result?;
                if !self.recipe.is_empty() {
                    self.recipe.remove(0);
                }
                Ok(())
            }
        }
    }

    /// The device a boot from `device` really uses, and how a boot from
    /// the CD is made: with media ready in the CD, the configured way;
    /// with the tray empty (or the media refused by Nova for this
    /// operation), the disk, as a machine with an empty tray boots the next
    /// device; logged once per empty tray.
    fn media_boot(&self, device: BootDevice) -> (BootDevice, Option<MediaBoot>) {
        if !matches!(device, BootDevice::Cdrom | BootDevice::RemoteCdrom) {
            return (device, None);
        }
        let mut s = self.cell.lock();
        let ready = s.media.iter().any(|m| {
            m.device == MediaDevice::Cd.id() && m.phase == Phase::Ready && m.image.is_some()
        });
        if ready && !self.media_refused {
            return (device, Some(self.ctx.media.settings.boot));
        }
        if !ready && !s.empty_tray_logged {
            s.empty_tray_logged = true;
            warn!(node = %s.name, "boot from CD with no media ready in it: booting from the disk, as a machine with an empty tray does");
        }
        (BootDevice::NoOverride, None)
    }

    /// The image in the CD, if media is ready in it.
    fn cd_image(&self) -> Option<String> {
        self.cell
            .lock()
            .media
            .iter()
            .find(|m| m.device == MediaDevice::Cd.id() && m.phase == Phase::Ready)
            .and_then(|m| m.image.clone())
    }

    /// Whether the compute API offers microversion 2.87 (stable-device
    /// rescue of volume-backed servers); read once.
    async fn stable_rescue(&self) -> bool {
        let Some(client) = self.ctx.client.media_client() else {
            return false;
        };
        let minor = self
            .ctx
            .media
            .max_minor
            .get_or_try_init(|| client.compute_max_minor())
            .await;
        matches!(minor, Ok(m) if *m >= 87)
    }

    /// A boot Nova has accepted the first call of: takes the boot device
    /// it was planned for (using up a one-time flag), clears the reboot
    /// request it answers, and marks it under way.
    fn begin_boot(&self, planned: BootDevice, planned_generation: u64) {
        let mut s = self.cell.lock();
        let s = &mut *s;
        // Boot options set while the first call was out: this boot does
        // not answer a reboot asked with them.
        let unchanged = s.boot_generation == planned_generation;
        if let Some(b) = s.boot.as_mut() {
            let before = *b;
            let taken = b.take_boot_device().0;
            if taken != planned {
                debug!(node = %s.name, ?planned, ?taken, "boot options changed while the boot was planned");
            }
            if *b != before {
                s.boot_dirty = true;
                s.boot_generation += 1;
            }
        }
        if unchanged {
            if let Some(r) = s.desired.as_mut() {
                r.reboot = false;
            }
            s.boot_in_flight = Some(s.boot_generation);
        }
        self.ctx.persist(s);
        info!(node = %s.name, device = ?planned, steps = ?self.recipe, "boot under way");
    }

    /// Everything acknowledged is carried out: the record goes, unless a
    /// command changed it meanwhile.
    fn finish(&mut self, d: &Desired, dropped_nmi: bool, o: &Observed) {
        let mut s = self.cell.lock();
        if s.desired.as_ref().map(|x| x.generation) != Some(d.generation) {
            return;
        }
        if dropped_nmi {
            warn!(node = %s.name, status = %o.status, "diagnostic interrupt not delivered: the machine is off");
        }
        let seconds = d.changed.elapsed().as_secs_f64();
        s.desired = None;
        s.boot_in_flight = None;
        self.ctx.persist(&s);
        self.recipe.clear();
        self.last_error = None;
        self.replans = 0;
        self.repeated = None;
        self.failed_boots = 0;
        self.media_refused = false;
        info!(node = %s.name, power = ?d.power, seconds = format_args!("{seconds:.1}"), status = %o.status, "power state reached");
    }

    /// Drops the record and logs why, with Nova's last word.
    fn give_up(&mut self, why: &str) -> Stop {
        let mut s = self.cell.lock();
        if let Some(d) = s.desired.take() {
            let nova = self
                .last_error
                .take()
                .unwrap_or_else(|| "no error from Nova".into());
            error!(
                node = %s.name,
                power = ?d.power,
                reboot = d.reboot,
                after = ?self.ctx.give_up_after,
                nova = %nova,
                "gave up a power operation ({why}); reporting what Nova says"
            );
        }
        s.boot_in_flight = None;
        self.ctx.persist(&s);
        self.recipe.clear();
        self.replans = 0;
        self.repeated = None;
        self.failed_boots = 0;
        self.media_refused = false;
        Stop::GaveUp
    }

    fn missing(&mut self, id: &str, e: &NovaError) -> Stop {
        let mut s = self.cell.lock();
        error!(node = %s.name, server = %id, nova = %e, "the server no longer exists; looking for it again");
        s.resolution = Resolution::Missing(format!("server {id} no longer exists"));
        s.boot_in_flight = None;
        self.recipe.clear();
        Stop::Missing
    }

    /// Runs a cloud call with a permit, bounded by `deadline`; once
    /// shutdown begins it gets [`SHUTDOWN_GRACE`] to finish.
    async fn bounded<T>(
        &self,
        deadline: Instant,
        what: &str,
        call: impl std::future::Future<Output = Result<T, NovaError>>,
    ) -> Result<Result<T, NovaError>, Stop> {
        if self.shutdown.is_cancelled() {
            // Nothing new once shutdown has begun.
            return Err(Stop::Shutdown);
        }
        let limit = deadline.saturating_duration_since(Instant::now());
        let bounded = async {
            let _permit = self.ctx.limit.acquire().await;
            call.await
        };
        let grace = async {
            self.shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            r = tokio::time::timeout(limit, bounded) => Ok(match r {
                Ok(r) => r,
                Err(_) => Err(NovaError::timeout(what, limit)),
            }),
            () = grace => Err(Stop::Shutdown),
        }
    }

    /// Reads the server now and stores what Nova says.
    async fn read(&self, id: &str, deadline: Instant) -> Result<Result<Observed, NovaError>, Stop> {
        let r = self
            .bounded(
                deadline,
                &format!("GET servers/{id}"),
                self.ctx.client.get_server(id),
            )
            .await?;
        Ok(r.map(|server| self.observe(&server)))
    }

    fn observe(&self, server: &ServerInfo) -> Observed {
        let mut s = self.cell.lock();
        s.observe(server, OWNER_KEY, Instant::now());
        Observed::of(server, OWNER_KEY)
    }

    /// The server once Nova has no task for it: the cached view if it is
    /// fresh and idle, else read until it is.
    async fn settled(&mut self, id: &str, deadline: Instant) -> Result<Observed, Stop> {
        {
            let s = self.cell.lock();
            if let (Some(o), Some(at)) = (&s.observed, s.observed_at)
                && !o.busy()
                && at.elapsed() < FRESH
            {
                return Ok(o.clone());
            }
        }
        let mut failures = 0;
        loop {
            if self.shutdown.is_cancelled() {
                return Err(Stop::Shutdown);
            }
            match self.read(id, deadline).await? {
                Ok(o) if !o.busy() => return Ok(o),
                Ok(o) => {
                    if Instant::now() >= deadline {
                        let task = o.task_state.as_ref().map(ToString::to_string);
                        self.last_error = Some(format!(
                            "server still in task_state {} ({})",
                            task.unwrap_or_default(),
                            o.status
                        ));
                        return Err(self.give_up("Nova's task did not end"));
                    }
                    if !self.pause(self.ctx.poll).await {
                        return Err(Stop::Shutdown);
                    }
                }
                Err(e) if e.kind == NovaErrorKind::NotFound => return Err(self.missing(id, &e)),
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    warn!(node = %self.name(), server = %id, error = %e, "cannot read the server; retrying");
                    self.last_error = Some(e.message.clone());
                    failures += 1;
                    if !self.pause(backoff(failures)).await {
                        return Err(Stop::Shutdown);
                    }
                }
                Err(e) => {
                    self.last_error = Some(e.message.clone());
                    return Err(self.give_up("the server cannot be read"));
                }
            }
        }
    }

    /// Makes one call of the plan, retrying what can be retried.
    async fn call(&mut self, id: &str, step: Call, d: &Desired) -> Result<(), Stop> {
        let deadline = d.changed + self.ctx.give_up_after;
        if let Some((last, n)) = self.repeated
            && last == step
            && n > 0
        {
            // Nova accepted this very call before and the server did not
            // move on (a server in ERROR does that): back off.
            debug!(node = %self.name(), ?step, times = n, "repeating a call that did not take");
            if !self.pause(backoff(n)).await {
                return Err(Stop::Shutdown);
            }
        }
        let image = self
            .cell
            .ipxe_image
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let action = match step {
            Call::Start => Some(ServerAction::Start),
            Call::Stop => Some(ServerAction::Stop),
            Call::HardReboot => Some(ServerAction::HardReboot),
            Call::Unrescue => Some(ServerAction::Unrescue),
            Call::CrashDump => Some(ServerAction::CrashDump),
            Call::Rebuild | Call::Rescue => {
                let Some(image) = image else {
                    self.last_error = Some("no iPXE image resolved for network boot".into());
                    return Err(self.give_up("network boot needs an iPXE image"));
                };
                Some(if step == Call::Rebuild {
                    ServerAction::Rebuild { image }
                } else {
                    ServerAction::Rescue { image }
                })
            }
            Call::RescueMedia | Call::RebuildMedia => {
                let Some(image) = self.cd_image() else {
                    // Ejected since the boot was planned: plan it again.
                    self.recipe.clear();
                    return Err(Stop::Replan);
                };
                Some(if step == Call::RescueMedia {
                    ServerAction::RescueMedia {
                        image,
                        stable: self.stable_rescue().await,
                    }
                } else {
                    ServerAction::Rebuild { image }
                })
            }
            Call::PxeFirst(_) => None,
        };
        let what = match &action {
            Some(a) => format!("POST servers/{id}/action ({})", a.name()),
            None => format!("PUT servers/{id}/metadata/{PXE_FIRST_KEY}"),
        };
        let mut failures = 0;
        loop {
            if self.shutdown.is_cancelled() {
                return Err(Stop::Shutdown);
            }
            if Instant::now() >= deadline {
                return Err(self.give_up("Nova did not carry the call out in time"));
            }
            let result = match (&action, step) {
                (Some(a), _) => {
                    self.bounded(deadline, &what, self.ctx.client.act(id, a))
                        .await?
                }
                (None, Call::PxeFirst(on)) => {
                    let value = if on { "1" } else { "" };
                    self.bounded(
                        deadline,
                        &what,
                        self.ctx.client.set_metadata(id, PXE_FIRST_KEY, value),
                    )
                    .await?
                }
                (None, _) => Ok(()),
            };
            let e = match result {
                Ok(()) => {
                    debug!(node = %self.name(), server = %id, ?step, "accepted by nova");
                    self.accepted(step);
                    // A 202 means accepted, not done: read the server at once
                    // so the task Nova started is seen.
                    if !self.shutdown.is_cancelled()
                        && let Err(e) = self.read(id, deadline).await?
                    {
                        warn!(node = %self.name(), server = %id, error = %e, "cannot read the server after its call; reading it again");
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            self.last_error = Some(e.message.clone());
            match &e.kind {
                NovaErrorKind::Busy(task) => {
                    // Planned on a view Nova has left: wait its task out and
                    // plan again from where it ends.
                    debug!(node = %self.name(), server = %id, ?step, %task, "server busy; planning again after its task");
                    self.force_read();
                    return Err(Stop::Replan);
                }
                NovaErrorKind::WrongState(vm) => {
                    debug!(node = %self.name(), server = %id, ?step, %vm, "call does not fit the server's state; planning again");
                    self.recipe.clear();
                    self.force_read();
                    return Err(Stop::Replan);
                }
                NovaErrorKind::NotFound if step == Call::CrashDump => {
                    // Below microversion 2.17 Nova answers 404 for the
                    // action: the cloud cannot deliver NMIs.
                    error!(node = %self.name(), server = %id, nova = %e, "this cloud cannot deliver a diagnostic interrupt");
                    let mut s = self.cell.lock();
                    if let Some(r) = s.desired.as_mut() {
                        r.nmi = None;
                    }
                    self.ctx.persist(&s);
                    return Err(Stop::Replan);
                }
                NovaErrorKind::Permanent | NovaErrorKind::NotImplemented
                    if matches!(step, Call::RescueMedia | Call::RebuildMedia) =>
                {
                    error!(node = %self.name(), server = %id, nova = %e, "Nova refused to boot the inserted media; booting from the disk instead, as a machine whose CD cannot be read does");
                    self.media_refused = true;
                    self.recipe.clear();
                    return Err(Stop::Replan);
                }
                NovaErrorKind::NotFound => return Err(self.missing(id, &e)),
                NovaErrorKind::Timeout | NovaErrorKind::Transient => {
                    if let Some(a) = &action
                        && let Ok(Ok(o)) = self.read(id, deadline).await
                        && o.task_state
                            .as_ref()
                            .is_some_and(|t| a.started_tasks().contains(t))
                    {
                        // The answer was lost, not the call.
                        debug!(node = %self.name(), server = %id, ?step, "accepted despite the error");
                        self.accepted(step);
                        return Ok(());
                    }
                    warn!(node = %self.name(), server = %id, ?step, error = %e, "nova call failed; retrying");
                }
                NovaErrorKind::Conflict | NovaErrorKind::Auth => {
                    warn!(node = %self.name(), server = %id, ?step, error = %e, "nova refused the call; retrying");
                }
                NovaErrorKind::Permanent
                | NovaErrorKind::NotImplemented
                | NovaErrorKind::Config => {
                    return Err(self.give_up("Nova refused the call"));
                }
            }
            failures += 1;
            if !self.pause(backoff(failures)).await {
                return Err(Stop::Shutdown);
            }
        }
    }

    /// Notes a call Nova accepted.
    fn accepted(&mut self, step: Call) {
        self.replans = 0;
        self.repeated = match self.repeated {
            Some((last, n)) if last == step => Some((step, n + 1)),
            _ => Some((step, 0)),
        };
    }

    /// Makes the next round read the server instead of using the cache.
    fn force_read(&self) {
        self.cell.lock().observed_at = None;
    }

    /// Saves changed boot options in the server's metadata.
    async fn save_boot(&mut self, id: &str) {
        let value = {
            let s = self.cell.lock();
            match &s.boot {
                Some(b) if s.boot_dirty => encode_boot(b),
                _ => return,
            }
        };
        let deadline = Instant::now() + self.ctx.client.timeout();
        let Ok(result) = self
            .bounded(
                deadline,
                "boot options",
                self.ctx.client.set_metadata(id, BOOT_KEY, &value),
            )
            .await
        else {
            return;
        };
        let mut s = self.cell.lock();
        match result {
            Ok(()) => {
                // Only clear the flag if nothing changed while we wrote.
                if s.boot.as_ref().map(encode_boot).as_deref() == Some(value.as_str()) {
                    s.boot_dirty = false;
                    self.ctx.persist(&s);
                }
            }
            Err(e) => {
                debug!(node = %s.name, server = %id, error = %e, "boot options not saved yet")
            }
        }
    }

    /// Writes this instance's name into the server's metadata.
    async fn save_owner(&mut self, id: &str) {
        let deadline = Instant::now() + self.ctx.client.timeout();
        let Ok(result) = self
            .bounded(
                deadline,
                "owner",
                self.ctx.client.set_metadata(id, OWNER_KEY, &self.ctx.owner),
            )
            .await
        else {
            return;
        };
        let mut s = self.cell.lock();
        match result {
            Ok(()) => s.owner_dirty = false,
            Err(e) => debug!(node = %s.name, server = %id, error = %e, "owner key not written yet"),
        }
    }
}

/// Exponential backoff from half a second to thirty seconds.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(6));
    Duration::from_millis(ms.min(30_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(100), Duration::from_secs(30));
    }
}

#[cfg(test)]
mod size {
    use super::*;

    /// Thousands of workers sit idle at once: their futures must stay
    /// small whatever the depth of the HTTP client's.
    #[test]
    fn an_idle_worker_is_small() {
        let dir = tempfile::tempdir().expect("dir");
        let cloud = super::super::cloud::load(&super::super::cloud::CloudSource::Inline {
            name: "x".into(),
            yaml: "clouds:\n  x:\n    auth:\n      auth_url: http://127.0.0.1:1/v3\n      \
                   username: u\n      password: p\n      project_name: p\n"
                .into(),
        })
        .expect("cloud");
        let ctx = Arc::new(WorkerContext {
            client: super::super::client::NovaClient::new(cloud, Duration::from_secs(1)),
            limit: Semaphore::new(1),
            give_up_after: Duration::from_secs(1),
            poll: Duration::from_secs(1),
            media: super::super::media::MediaContext::new(
                Default::default(),
                super::super::media::cache::Cache::load(
                    &Store::open(dir.path().join("m").as_path()).expect("store"),
                    1,
                ),
            ),
            store: Store::open(dir.path()).expect("store"),
            owner: String::new(),
            console: Arc::new(WebSocketPolicy {
                tls: Err("none".into()),
                allow_plain: false,
            }),
        });
        let cell = Arc::new(NodeCell {
            state: Mutex::new(NodeState::new("n".into(), "s".into())),
            wake: Notify::new(),
            media_wake: Notify::new(),
            mode: NetworkBoot::Rebuild,
            ipxe_image: Mutex::new(None),
            secure_boot: Mutex::new(None),
            inventory: tokio::sync::watch::Sender::new(None),
        });
        let f = run(cell, ctx, CancellationToken::new());
        let size = std::mem::size_of_val(&f);
        assert!(size < 2048, "an idle worker holds {size} bytes");
    }
}
