//! The per-node worker: carries queued intents out against Nova, one at a
//! time, in order.
//!
//! An intent becomes a short recipe of Nova calls chosen from the server's
//! state and the boot device (see [`recipe`]); the boot flags are consumed
//! when a recipe that boots is made, and saved back to the server's
//! metadata. Each call waits for Nova to finish the previous task, retries a
//! 409 for a busy server and transient failures with backoff, treats a 409
//! that says the server is already in the wanted state as done, and gives up
//! (logging the server and Nova's message) only after a long deadline. A 202
//! is not trusted: the worker reads the server again at once and waits until
//! its task is over before it considers the intent done, which is also when
//! the reported state falls back from the intent's target to Nova's view.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use novabmc_proto::{BootDevice, BootOptions};
use osauth::ApiVersion;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::NetworkBoot;
use super::client::{NovaClient, NovaError, NovaErrorKind};
use super::node::{Intent, NodeState, Observed, Resolution};

/// Metadata key holding a node's boot options.
pub const BOOT_KEY: &str = "novabmc_boot";
/// Metadata key OVB's Nova patch reads to boot from the network first.
pub const PXE_FIRST_KEY: &str = "libvirt:pxe-first";

/// One Nova call of a recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// os-start.
    Start,
    /// os-stop.
    Stop,
    /// Hard reboot.
    HardReboot,
    /// Rebuild with the iPXE image.
    Rebuild,
    /// Rescue with the iPXE image.
    Rescue,
    /// Unrescue.
    Unrescue,
    /// trigger_crash_dump (microversion 2.17).
    CrashDump,
    /// Set or clear `libvirt:pxe-first`.
    PxeFirst(bool),
}

impl Step {
    /// The task_states Nova shows once it has accepted this call: after a
    /// lost answer, finding one means the call went through and must not
    /// be sent again (a second hard reboot or rebuild would not be
    /// harmless).
    fn started_tasks(self) -> &'static [&'static str] {
        match self {
            Step::Start => &["powering-on"],
            Step::Stop => &["powering-off"],
            Step::HardReboot => &[
                "rebooting_hard",
                "reboot_pending_hard",
                "reboot_started_hard",
            ],
            Step::Rebuild => &[
                "rebuilding",
                "rebuild_block_device_mapping",
                "rebuild_spawning",
            ],
            Step::Rescue => &["rescuing"],
            Step::Unrescue => &["unrescuing"],
            Step::CrashDump | Step::PxeFirst(_) => &[],
        }
    }
}

/// The Nova calls that carry out `intent` from state `o`, booting from
/// `device` where the intent boots.
pub fn recipe(intent: Intent, o: &Observed, device: BootDevice, mode: NetworkBoot) -> Vec<Step> {
    let network = device.is_network();
    match intent {
        Intent::Nmi if o.running() => vec![Step::CrashDump],
        Intent::Nmi => vec![],
        Intent::PowerOff if !o.running() => vec![],
        Intent::PowerOff if o.rescued() => vec![Step::Unrescue, Step::Stop],
        Intent::PowerOff => vec![Step::Stop],
        Intent::PowerOn if o.running() => vec![],
        Intent::PowerOn | Intent::Reboot if !o.running() => match (network, mode) {
            // Nova rebuilds a stopped server and leaves it stopped.
            (true, NetworkBoot::Rebuild) => vec![Step::Rebuild, Step::Start],
            (true, NetworkBoot::Rescue) => vec![Step::Rescue],
            (true, NetworkBoot::Metadata) => vec![Step::PxeFirst(true), Step::Start],
            (false, NetworkBoot::Metadata) => vec![Step::PxeFirst(false), Step::Start],
            (false, _) => vec![Step::Start],
        },
        Intent::PowerOn | Intent::Reboot => match (network, mode) {
            (true, NetworkBoot::Rebuild) => vec![Step::Rebuild],
            (true, NetworkBoot::Rescue) if o.rescued() => vec![Step::Unrescue, Step::Rescue],
            (true, NetworkBoot::Rescue) => vec![Step::Rescue],
            (true, NetworkBoot::Metadata) => vec![Step::PxeFirst(true), Step::HardReboot],
            (false, NetworkBoot::Rescue) if o.rescued() => vec![Step::Unrescue],
            (false, NetworkBoot::Metadata) => vec![Step::PxeFirst(false), Step::HardReboot],
            (false, _) => vec![Step::HardReboot],
        },
    }
}

/// Whether carrying out `intent` from state `o` boots the machine (and so
/// uses up a one-time boot flag).
pub fn boots(intent: Intent, o: &Observed) -> bool {
    match intent {
        Intent::PowerOff | Intent::Nmi => false,
        Intent::PowerOn => !o.running(),
        Intent::Reboot => true,
    }
}

/// How a node's worker reaches Nova.
#[derive(Debug)]
pub struct NodeCell {
    /// The state shared with the UDP side.
    pub state: Mutex<NodeState>,
    /// Wakes the worker when there is new work.
    pub wake: Notify,
    /// How to boot from the network.
    pub mode: NetworkBoot,
    /// The iPXE image ID, resolved at start, for rebuild and rescue.
    pub ipxe_image: Mutex<Option<String>>,
}

impl NodeCell {
    /// The shared state (a poisoned lock still holds plain data).
    pub fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What all workers share.
#[derive(Debug)]
pub struct WorkerContext {
    /// The cloud.
    pub client: Arc<NovaClient>,
    /// Caps concurrent Nova calls across all nodes.
    pub limit: Semaphore,
    /// How long one intent may take before the worker gives up.
    pub give_up_after: Duration,
    /// How often to read the server while waiting for a task.
    pub poll: Duration,
}

/// Why an intent stopped early.
enum Abort {
    /// The server is gone.
    Gone(String),
    /// Retrying cannot help.
    Failed(NovaError),
    /// The deadline passed.
    GaveUp(String),
}

/// Encodes boot options for the server's metadata.
pub fn encode_boot(o: &BootOptions) -> String {
    format!("v1:{}", hex::encode(o.to_bytes()))
}

/// Decodes what [`encode_boot`] wrote.
pub fn decode_boot(s: &str) -> Option<BootOptions> {
    let bytes = hex::decode(s.strip_prefix("v1:")?).ok()?;
    BootOptions::from_bytes(&bytes)
}

/// The worker task of one node.
pub async fn run(cell: Arc<NodeCell>, ctx: Arc<WorkerContext>, shutdown: CancellationToken) {
    loop {
        let (has_work, dirty) = {
            let s = cell.lock();
            let resolved = matches!(s.resolution, Resolution::Found { .. });
            (resolved && !s.queue.is_empty(), resolved && s.boot_dirty)
        };
        if dirty {
            save_boot(&cell, &ctx).await;
        }
        if !has_work {
            // Unsaved boot options (Nova refuses metadata writes while a
            // server is rescued) are retried every half minute.
            let retry = if cell.lock().boot_dirty {
                Duration::from_secs(30)
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                () = cell.wake.notified() => continue,
                () = tokio::time::sleep(retry) => continue,
                () = shutdown.cancelled() => break,
            }
        }
        tokio::select! {
            () = work(&cell, &ctx) => {}
            () = shutdown.cancelled() => break,
        }
    }
    // Nothing lost: try once more to save changed boot options.
    if cell.lock().boot_dirty {
        let _ = tokio::time::timeout(Duration::from_secs(5), save_boot(&cell, &ctx)).await;
    }
}

fn server_id(cell: &NodeCell) -> Option<String> {
    match &cell.lock().resolution {
        Resolution::Found { id } => Some(id.clone()),
        _ => None,
    }
}

async fn work(cell: &Arc<NodeCell>, ctx: &WorkerContext) {
    let Some(id) = server_id(cell) else {
        return;
    };
    let name = cell.lock().name.clone();
    let intent = {
        let mut s = cell.lock();
        let i = s.queue.pop_front();
        s.running = i;
        i
    };
    if let Some(intent) = intent {
        let started = Instant::now();
        let result = carry_out(cell, ctx, &id, intent).await;
        match result {
            Ok(()) => info!(
                node = %name, server = %id, ?intent,
                seconds = format_args!("{:.1}", started.elapsed().as_secs_f64()),
                "power operation done"
            ),
            Err(Abort::Gone(why)) => {
                error!(node = %name, server = %id, ?intent, "{why}");
                cell.lock().resolution = Resolution::Failed(why);
            }
            Err(Abort::Failed(e)) => {
                error!(node = %name, server = %id, ?intent, nova = %e, "power operation failed")
            }
            Err(Abort::GaveUp(why)) => {
                error!(node = %name, server = %id, ?intent, "gave up: {why}")
            }
        }
        cell.lock().running = None;
    }
}

async fn carry_out(
    cell: &Arc<NodeCell>,
    ctx: &WorkerContext,
    id: &str,
    intent: Intent,
) -> Result<(), Abort> {
    let deadline = Instant::now() + ctx.give_up_after;
    // The shared refresh keeps the view at most one interval old; when it
    // shows no task, act on it at once rather than spend a round trip (a
    // stale view only costs a 409, which is handled like any other).
    let cached = cell.lock().observed.clone().filter(|o| !o.busy());
    let fresh = cached.is_some();
    let observed = match cached {
        Some(o) => o,
        None => settled(cell, ctx, id, deadline).await?,
    };
    let (steps, device) = {
        let mut s = cell.lock();
        let device = if boots(intent, &observed) {
            match s.boot.as_mut() {
                Some(b) => {
                    let before = *b;
                    let (device, _efi) = b.take_boot_device();
                    if *b != before {
                        s.boot_dirty = true;
                    }
                    device
                }
                None => BootDevice::NoOverride,
            }
        } else {
            BootDevice::NoOverride
        };
        (recipe(intent, &observed, device, cell.mode), device)
    };
    debug!(node = %cell.lock().name, ?intent, ?device, ?steps, "recipe");
    if cell.lock().boot_dirty {
        save_boot(cell, ctx).await;
    }
    let mut wait_first = !fresh;
    for s in steps {
        step(cell, ctx, id, s, deadline, wait_first).await?;
        wait_first = true;
    }
    settled(cell, ctx, id, deadline).await.map(|_| ())
}

/// Reads the server until no task is in progress.
async fn settled(
    cell: &NodeCell,
    ctx: &WorkerContext,
    id: &str,
    deadline: Instant,
) -> Result<Observed, Abort> {
    let mut backoff = Backoff::new();
    loop {
        match refresh(cell, ctx, id).await {
            Ok(o) if !o.busy() => return Ok(o),
            Ok(o) => {
                if Instant::now() > deadline {
                    return Err(Abort::GaveUp(format!(
                        "server still in task_state {} ({})",
                        o.task_state.unwrap_or_default(),
                        o.status
                    )));
                }
                tokio::time::sleep(ctx.poll).await;
            }
            Err(e) if e.kind == NovaErrorKind::NotFound => {
                return Err(Abort::Gone(format!("server {id} no longer exists")));
            }
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                warn!(node = %cell.lock().name, server = %id, error = %e, "cannot read server; retrying");
                backoff.wait().await;
            }
            Err(e) => return Err(Abort::Failed(e)),
        }
    }
}

/// Reads the server now and stores what Nova says.
async fn refresh(cell: &NodeCell, ctx: &WorkerContext, id: &str) -> Result<Observed, NovaError> {
    let server = {
        let _permit = ctx.limit.acquire().await;
        ctx.client.get_server(id).await?
    };
    let mut s = cell.lock();
    s.observe(&server);
    Ok(Observed::from(&server))
}

/// Makes one call, after Nova's current task is over (unless `wait_first`
/// is false: the caller has just seen the server idle).
async fn step(
    cell: &NodeCell,
    ctx: &WorkerContext,
    id: &str,
    step: Step,
    deadline: Instant,
    wait_first: bool,
) -> Result<(), Abort> {
    let image = cell
        .ipxe_image
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut backoff = Backoff::new();
    let mut wait = wait_first;
    loop {
        if wait && !matches!(step, Step::PxeFirst(_)) {
            settled(cell, ctx, id, deadline).await?;
        }
        wait = true;
        let result = {
            let _permit = ctx.limit.acquire().await;
            call(&ctx.client, id, step, image.as_deref()).await
        };
        match result {
            Ok(()) => {
                debug!(node = %cell.lock().name, server = %id, ?step, "accepted by nova");
                // A 202 means accepted, not done: read the server at once so
                // the task Nova started is seen.
                let _ = refresh(cell, ctx, id).await;
                return Ok(());
            }
            Err(e) if e.kind == NovaErrorKind::Conflict && e.message.contains("vm_state") => {
                // "Cannot 'start' instance X while it is in vm_state
                // active": already where this step leads.
                debug!(node = %cell.lock().name, server = %id, ?step, nova = %e, "nothing to do");
                return Ok(());
            }
            Err(e) if e.kind == NovaErrorKind::NotFound && step != Step::CrashDump => {
                return Err(Abort::Gone(format!("server {id} no longer exists ({e})")));
            }
            Err(e) if e.is_retryable() => {
                if Instant::now() > deadline {
                    return Err(Abort::GaveUp(format!("{step:?}: {e}")));
                }
                if e.kind == NovaErrorKind::Transient
                    && let Ok(o) = refresh(cell, ctx, id).await
                    && o.task_state
                        .as_deref()
                        .is_some_and(|t| step.started_tasks().contains(&t))
                {
                    // The answer was lost, not the call.
                    debug!(node = %cell.lock().name, server = %id, ?step, "accepted despite the error");
                    return Ok(());
                }
                if e.kind == NovaErrorKind::Conflict {
                    // The server was busy after all; its task is usually
                    // over within a second, and settled() waits for it.
                    debug!(node = %cell.lock().name, server = %id, ?step, nova = %e, "conflict; retrying");
                    backoff.wait_at_most(Duration::from_secs(1)).await;
                } else {
                    warn!(node = %cell.lock().name, server = %id, ?step, error = %e, "nova call failed; retrying");
                    backoff.wait().await;
                }
            }
            Err(e) => return Err(Abort::Failed(e)),
        }
    }
}

async fn call(
    client: &NovaClient,
    id: &str,
    step: Step,
    image: Option<&str>,
) -> Result<(), NovaError> {
    let need_image = || {
        image.ok_or_else(|| NovaError {
            kind: NovaErrorKind::Permanent,
            message: "no iPXE image configured for network boot".into(),
        })
    };
    match step {
        Step::Start => client.action(id, &json!({"os-start": null}), None).await,
        Step::Stop => client.action(id, &json!({"os-stop": null}), None).await,
        Step::HardReboot => {
            client
                .action(id, &json!({"reboot": {"type": "HARD"}}), None)
                .await
        }
        Step::Rebuild => {
            let image = need_image()?;
            client
                .action(id, &json!({"rebuild": {"imageRef": image}}), None)
                .await
        }
        Step::Rescue => {
            let image = need_image()?;
            client
                .action(id, &json!({"rescue": {"rescue_image_ref": image}}), None)
                .await
        }
        Step::Unrescue => client.action(id, &json!({"unrescue": null}), None).await,
        Step::CrashDump => {
            client
                .action(
                    id,
                    &json!({"trigger_crash_dump": null}),
                    Some(ApiVersion(2, 17)),
                )
                .await
        }
        Step::PxeFirst(on) => {
            client
                .set_metadata(id, PXE_FIRST_KEY, if on { "1" } else { "" })
                .await
        }
    }
}

/// Saves changed boot options in the server's metadata.
pub async fn save_boot(cell: &NodeCell, ctx: &WorkerContext) {
    let (id, value) = {
        let s = cell.lock();
        match (&s.resolution, &s.boot) {
            (Resolution::Found { id }, Some(b)) if s.boot_dirty => (id.clone(), encode_boot(b)),
            _ => return,
        }
    };
    let result = {
        let _permit = ctx.limit.acquire().await;
        ctx.client.set_metadata(&id, BOOT_KEY, &value).await
    };
    let mut s = cell.lock();
    match result {
        Ok(()) => {
            // Only clear the flag if nothing changed while we wrote.
            if s.boot.as_ref().map(encode_boot).as_deref() == Some(value.as_str()) {
                s.boot_dirty = false;
            }
        }
        Err(e) => debug!(node = %s.name, server = %id, error = %e, "boot options not saved yet"),
    }
}

/// Exponential backoff from half a second to ten.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(500))
    }

    async fn wait(&mut self) {
        self.wait_at_most(Duration::from_secs(10)).await;
    }

    async fn wait_at_most(&mut self, cap: Duration) {
        tokio::time::sleep(self.0.min(cap)).await;
        self.0 = (self.0 * 2).min(cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(status: &str, vm: &str, power: u8) -> Observed {
        Observed {
            status: status.into(),
            task_state: None,
            vm_state: vm.into(),
            power_state: power,
            updated: None,
        }
    }

    #[test]
    fn recipes() {
        let off = obs("SHUTOFF", "stopped", 4);
        let on = obs("ACTIVE", "active", 1);
        let rescued = obs("RESCUE", "rescued", 1);
        use BootDevice::{Disk, NoOverride, Pxe};
        use NetworkBoot::{Metadata, Rebuild, Rescue};
        use Step::*;
        assert_eq!(
            recipe(Intent::PowerOn, &off, Pxe, Rebuild),
            [Step::Rebuild, Start]
        );
        assert_eq!(recipe(Intent::PowerOn, &off, Pxe, Rescue), [Step::Rescue]);
        assert_eq!(
            recipe(Intent::PowerOn, &off, Pxe, Metadata),
            [PxeFirst(true), Start]
        );
        assert_eq!(
            recipe(Intent::PowerOn, &off, Disk, Metadata),
            [PxeFirst(false), Start]
        );
        assert_eq!(recipe(Intent::PowerOn, &off, NoOverride, Rebuild), [Start]);
        assert!(recipe(Intent::PowerOn, &on, Pxe, Rebuild).is_empty());
        assert_eq!(recipe(Intent::Reboot, &on, Pxe, Rebuild), [Step::Rebuild]);
        assert_eq!(
            recipe(Intent::Reboot, &rescued, Pxe, Rescue),
            [Unrescue, Step::Rescue]
        );
        assert_eq!(recipe(Intent::Reboot, &rescued, Disk, Rescue), [Unrescue]);
        assert_eq!(recipe(Intent::Reboot, &on, Disk, Rebuild), [HardReboot]);
        assert_eq!(
            recipe(Intent::Reboot, &on, Pxe, Metadata),
            [PxeFirst(true), HardReboot]
        );
        assert_eq!(
            recipe(Intent::PowerOff, &rescued, Disk, Rescue),
            [Unrescue, Stop]
        );
        assert!(recipe(Intent::PowerOff, &off, Disk, Rescue).is_empty());
        assert!(boots(Intent::Reboot, &on) && boots(Intent::PowerOn, &off));
        assert_eq!(recipe(Intent::Nmi, &on, Disk, Rebuild), [CrashDump]);
        assert!(recipe(Intent::Nmi, &off, Disk, Rebuild).is_empty());
        assert!(!boots(Intent::PowerOn, &on) && !boots(Intent::PowerOff, &on));
    }

    #[test]
    fn boot_options_round_trip_through_metadata() {
        let mut b = BootOptions::new(true);
        let (w, inv) =
            novabmc_proto::BootParameterWrite::parse(&[5, 0xa0, 0x04, 0, 0, 0]).expect("write");
        b.apply(w, inv);
        let text = encode_boot(&b);
        assert!(text.starts_with("v1:"));
        assert_eq!(decode_boot(&text), Some(b));
        assert_eq!(decode_boot("v2:00"), None);
        assert_eq!(decode_boot("v1:zz"), None);
    }
}
