//! One node's view of its Nova server: what Nova last said, what the BMC
//! has been asked to reach, and the power state to report.
//!
//! # Convergent commands
//!
//! A physical BMC does not queue power commands: each one changes what the
//! machine is doing, and the machine ends where the last one sent it. So
//! does this one. A node keeps one [`Desired`] record — the power state to
//! reach, whether the machine must (re)boot before it counts as "on", and
//! whether an NMI is pending — and every chassis control updates it and is
//! answered at once; none is ever refused for being busy. The node's worker
//! drives Nova towards the record, planning each call from the state Nova
//! has reached (after its current task), never from the state when the
//! command arrived.
//!
//! | Command | Machine heading on (running, or being started) | Machine heading off |
//! |---|---|---|
//! | on (1) | nothing, unless an off was acknowledged and not yet carried out: then one reboot (a start if the stop has completed) | power on: a start, or the network boot's steps |
//! | off (0), soft (5) | power off (`os-stop`; Nova has no hard off) | nothing |
//! | cycle (2), reset (3) | one reboot: a hard reboot, or the network boot's steps | power on (what MAAS expects) |
//! | diag (4) | one NMI (`trigger_crash_dump`), after the pending boot if there is one | refused, D5 |
//!
//! - A repeated command is absorbed: the record already says it.
//! - A reboot asked for while Nova carries out a boot of this machine is
//!   covered by that boot, unless the boot options changed since the boot
//!   began; then one more boot follows, from the new device.
//! - So Ironic's reboot (off, then on while the machine runs) is exactly one
//!   reboot, from the boot device selected when it happens; and any storm
//!   of on/off/cycle/reset/soft that arrives while a Nova task runs ends in
//!   the state of the last command, with at most one stop and one boot after
//!   that task, whatever the storm's length.
//!
//! The reported power state is the state the node is heading to: the
//! record's, else the target of a task Nova has accepted (task_state), else
//! Nova's power_state. When the worker gives an operation up, the record
//! goes and the report falls back to what Nova says.

use novabmc_proto::{BootOptions, BootParameterWrite, ChassisControl, ChassisState};
use tokio::time::Instant;

use super::client::ServerInfo;
use super::metadata::PXE_FIRST_KEY;
use super::states::{PowerState, Status, TaskState, VmState};
use crate::backend::BackendError;

/// How long an observation is trusted to decide that a command needs no
/// call at all; older ones are read again first.
pub const FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the node's server has been found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Not yet (the cloud has not answered).
    Pending,
    /// Found.
    Found {
        /// Server UUID.
        id: String,
    },
    /// No live server matches the reference, several do, or the server was
    /// deleted: looked for again whenever a listing shows a new server of
    /// that name (a redeploy deletes and re-creates it).
    Missing(String),
    /// A configuration problem (the iPXE image does not exist): not retried.
    Failed(String),
}

/// Nova's view of the server, as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// API status.
    pub status: Status,
    /// Task in progress.
    pub task_state: Option<TaskState>,
    /// vm_state.
    pub vm_state: Option<VmState>,
    /// power_state.
    pub power_state: PowerState,
    /// `libvirt:pxe-first` as set in the metadata.
    pub pxe_first: Option<String>,
    /// The novabmc instance the metadata names as serving the server.
    pub owner: Option<String>,
    /// Nova's `updated`.
    pub updated: Option<String>,
}

impl Observed {
    /// From a server body; `owner_key` is the metadata key naming the
    /// serving instance.
    pub fn of(s: &ServerInfo, owner_key: &str) -> Self {
        Observed {
            status: s.status.clone(),
            task_state: s.task_state.clone(),
            vm_state: s.vm_state.clone(),
            power_state: s.power_state.unwrap_or(PowerState::NoState),
            pxe_first: s.metadata.get(PXE_FIRST_KEY).cloned(),
            owner: s.metadata.get(owner_key).cloned(),
            updated: s.updated.clone(),
        }
    }

    /// Running now (ACTIVE, RESCUE with a running guest, and the like).
    pub fn running(&self) -> bool {
        self.power_state == PowerState::Running
    }

    /// Whether a task is in progress.
    pub fn busy(&self) -> bool {
        self.task_state.is_some()
    }

    /// Rescued (booted from a rescue image; the guest may have halted).
    pub fn rescued(&self) -> bool {
        self.vm_state == Some(VmState::Rescued)
    }

    /// In ERROR: reported as a power fault.
    pub fn fault(&self) -> bool {
        self.status == Status::Error
    }

    /// A task ended in failure: vm_state error.
    pub fn failed(&self) -> bool {
        self.vm_state == Some(VmState::Error) || self.fault()
    }

    /// The power state this server is heading to, counting the task Nova
    /// has accepted. A rebuild keeps the state it started in (Nova stops a
    /// stopped server again afterwards, passing through ACTIVE).
    pub fn heading_on(&self) -> bool {
        match &self.task_state {
            Some(t) => match t.heads_on() {
                Some(on) => on,
                None if matches!(
                    t,
                    TaskState::Rebuilding
                        | TaskState::RebuildBlockDeviceMapping
                        | TaskState::RebuildSpawning
                ) =>
                {
                    self.vm_state == Some(VmState::Active)
                }
                None => self.running(),
            },
            None => self.running(),
        }
    }
}

/// The power state a node is to reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// Running.
    On,
    /// Stopped.
    Off,
}

/// When a pending NMI is to be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nmi {
    /// To the machine as it runs now, before anything still to do.
    Now,
    /// After the boot still to be done (it was asked for after that boot).
    AfterBoot,
}

/// What has been acknowledged and not yet carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// The power state to reach.
    pub power: Power,
    /// The machine must boot (again) before `On` counts as reached.
    pub reboot: bool,
    /// A pending NMI.
    pub nmi: Option<Nmi>,
    /// When a command last changed the record; the give-up time counts
    /// from here.
    pub changed: Instant,
    /// The same moment on the wall clock, for the state directory.
    pub changed_unix_ms: u64,
    /// Bumped by every change, so the worker can tell that a command
    /// arrived while it was calling Nova.
    pub generation: u64,
}

/// Everything the BMC knows about one node.
#[derive(Clone, Debug)]
pub struct NodeState {
    /// Node name, for logs.
    pub name: String,
    /// The configured server name or UUID.
    pub server_ref: String,
    /// Whether the server was found.
    pub resolution: Resolution,
    /// Nova's view, once read.
    pub observed: Option<Observed>,
    /// When `observed` was read.
    pub observed_at: Option<Instant>,
    /// What is to be reached, while anything is.
    pub desired: Option<Desired>,
    /// Boot options, once restored (from the state directory or the
    /// server's metadata).
    pub boot: Option<BootOptions>,
    /// The boot options changed and are not yet saved in Nova.
    pub boot_dirty: bool,
    /// Boot-parameter writes accepted before the boot options were
    /// restored (the server not resolved yet): laid over them once they
    /// are.
    pub boot_early: Option<EarlyBoot>,
    /// Bumped whenever the boot options change (set by a console, or a
    /// one-time flag used up).
    pub boot_generation: u64,
    /// While Nova carries out a boot the worker started: the boot options'
    /// generation when that boot took its device.
    pub boot_in_flight: Option<u64>,
    /// The server's UUID bytes, once found.
    pub uuid: Option<[u8; 16]>,
    /// The last server ID this node was found at (kept while missing, for
    /// the state directory).
    pub server_id: Option<String>,
    /// This instance's name is to be written into the server's metadata.
    pub owner_dirty: bool,
    /// The other instance last warned about, so a warning is not repeated
    /// on every listing.
    pub owner_warned: Option<String>,
    /// Virtual media: one slot per device with media in it.
    pub media: Vec<super::media::record::Slot>,
    /// Virtual media left to remove from the cloud.
    pub media_cleanup: Vec<super::media::record::Cleanup>,
    /// Bumped by each insert.
    pub media_generation: u64,
    /// A CD boot with an empty tray was logged (once per empty tray).
    pub empty_tray_logged: bool,
}

/// Boot-parameter writes accepted before the node's boot options are
/// known: the parameters written, with their values, to be laid over the
/// options restored from the server's metadata (what was written wins, as
/// if it had come after).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyBoot {
    /// The written values (the rest is defaults and unused).
    pub options: BootOptions,
    /// Bit n set: parameter n was written.
    pub params: u8,
    /// Parameter 4's bits written.
    pub ack_mask: u8,
}

impl Default for EarlyBoot {
    fn default() -> Self {
        EarlyBoot {
            options: BootOptions::new(false),
            params: 0,
            ack_mask: 0,
        }
    }
}

impl EarlyBoot {
    /// Records one write.
    pub fn apply(&mut self, write: BootParameterWrite, mark_invalid: bool) {
        if let BootParameterWrite::BootInfoAck { mask, .. } = write {
            self.ack_mask |= mask;
        }
        self.params |= 1 << write.parameter();
        self.options.apply(write, mark_invalid);
    }

    /// `restored` with the recorded writes laid over it.
    pub fn over(&self, restored: BootOptions) -> BootOptions {
        let mut b = restored;
        let (o, written) = (&self.options, |p: u8| self.params & (1 << p) != 0);
        if written(0) {
            b.set_in_progress = o.set_in_progress;
        }
        if written(3) {
            b.valid_bit_clearing = o.valid_bit_clearing;
        }
        if written(4) {
            b.boot_info_ack =
                (b.boot_info_ack & !self.ack_mask) | (o.boot_info_ack & self.ack_mask);
        }
        if written(5) {
            b.flags = o.flags;
        }
        b.invalid = (b.invalid & !self.params) | (o.invalid & self.params);
        b
    }

    /// The state directory's text: `v1:<options>:<params>:<ack mask>`.
    pub fn encode(&self) -> String {
        format!(
            "{}:{:02x}:{:02x}",
            super::metadata::encode_boot(&self.options),
            self.params,
            self.ack_mask
        )
    }

    /// Reads what [`EarlyBoot::encode`] wrote.
    pub fn decode(text: &str) -> Option<EarlyBoot> {
        let mut parts = text.rsplitn(3, ':');
        let ack_mask = u8::from_str_radix(parts.next()?, 16).ok()?;
        let params = u8::from_str_radix(parts.next()?, 16).ok()?;
        let options = super::metadata::decode_boot(parts.next()?)?;
        Some(EarlyBoot {
            options,
            params,
            ack_mask,
        })
    }
}

impl NodeState {
    /// Lays the writes accepted before the boot options were known over
    /// them, once they are; true if there were any (the options are then
    /// to be saved in Nova, and the record rewritten).
    pub fn lay_early_boot(&mut self) -> bool {
        let Some(b) = self.boot else {
            return false;
        };
        let Some(early) = self.boot_early.take() else {
            return false;
        };
        let after = early.over(b);
        if after != b {
            self.boot = Some(after);
            self.boot_generation += 1;
        }
        self.boot_dirty = true;
        true
    }

    /// A node whose server is not resolved yet.
    pub fn new(name: String, server_ref: String) -> Self {
        NodeState {
            name,
            server_ref,
            resolution: Resolution::Pending,
            observed: None,
            observed_at: None,
            desired: None,
            boot: None,
            boot_dirty: false,
            boot_early: None,
            boot_generation: 0,
            boot_in_flight: None,
            uuid: None,
            server_id: None,
            owner_dirty: false,
            owner_warned: None,
            media: Vec::new(),
            media_cleanup: Vec::new(),
            media_generation: 0,
            empty_tray_logged: false,
        }
    }

    fn unavailable(&self) -> Option<BackendError> {
        match &self.resolution {
            Resolution::Failed(why) | Resolution::Missing(why) => {
                Some(BackendError::Unavailable(why.clone()))
            }
            _ => None,
        }
    }

    /// Where the node is heading: the record's power state, else Nova's;
    /// `None` while neither is known.
    pub fn heading_on(&self) -> Option<bool> {
        match &self.desired {
            Some(d) => Some(d.power == Power::On),
            None => self.observed.as_ref().map(Observed::heading_on),
        }
    }

    /// The power state to report.
    pub fn reported(&self) -> Result<ChassisState, BackendError> {
        if let Some(e) = self.unavailable() {
            return Err(e);
        }
        let power_fault = self.observed.as_ref().is_some_and(Observed::fault);
        match self.heading_on() {
            Some(power_on) => Ok(ChassisState {
                power_on,
                power_fault,
            }),
            None => Err(BackendError::NotReady(format!(
                "server {} has not been read from the cloud yet",
                self.server_ref
            ))),
        }
    }

    /// Whether a boot the worker started is under way and was made with
    /// the boot options as they are now (so it covers a new reboot request).
    fn boot_covers_reboot(&self) -> bool {
        self.boot_in_flight == Some(self.boot_generation)
    }

    /// Whether a recent observation shows the machine settled in `on`.
    fn freshly_settled(&self, on: bool, now: Instant) -> bool {
        let fresh = self
            .observed_at
            .is_some_and(|t| now.saturating_duration_since(t) < FRESH);
        fresh
            && self.boot_in_flight.is_none()
            && self
                .observed
                .as_ref()
                .is_some_and(|o| !o.busy() && !o.rescued() && o.running() == on)
    }

    /// Accepts a chassis control; returns whether the record changed (and
    /// so the worker has work). Never refuses a known server for being
    /// busy; an NMI to a machine heading off is refused (D5).
    pub fn accept(
        &mut self,
        control: ChassisControl,
        now: Instant,
        now_unix_ms: u64,
    ) -> Result<bool, BackendError> {
        if let Some(e) = self.unavailable() {
            return Err(e);
        }
        let covered = self.boot_covers_reboot();
        let heading_on = self.heading_on();
        let before = self.desired.clone();
        let pending_off = matches!(&before, Some(d) if d.power == Power::Off);
        let mut d = before.clone().unwrap_or(Desired {
            power: if heading_on == Some(false) {
                Power::Off
            } else {
                Power::On
            },
            reboot: false,
            nmi: None,
            changed: now,
            changed_unix_ms: now_unix_ms,
            generation: 0,
        });
        match control {
            ChassisControl::PowerUp => {
                if before.is_none() && self.freshly_settled(true, now) {
                    return Ok(false);
                }
                d.power = Power::On;
                if pending_off && !covered {
                    // The off was acknowledged: the machine goes through a
                    // boot before it counts as on again.
                    d.reboot = true;
                }
            }
            ChassisControl::PowerDown | ChassisControl::SoftShutdown => {
                if before.is_none() && self.freshly_settled(false, now) {
                    return Ok(false);
                }
                d.power = Power::Off;
                d.reboot = false;
                if d.nmi == Some(Nmi::AfterBoot) {
                    d.nmi = None;
                }
            }
            ChassisControl::PowerCycle | ChassisControl::HardReset => {
                if heading_on == Some(false) {
                    // A cycle or reset of a machine that is off powers it
                    // on, as MAAS expects and as Nova's hard reboot of a
                    // stopped server does.
                    d.power = Power::On;
                    if pending_off && !covered {
                        d.reboot = true;
                    }
                } else {
                    d.power = Power::On;
                    if !covered {
                        d.reboot = true;
                    }
                }
            }
            ChassisControl::DiagnosticInterrupt => {
                if heading_on == Some(false) {
                    return Err(BackendError::Unavailable(
                        "a diagnostic interrupt needs the machine powered on".into(),
                    ));
                }
                if d.nmi.is_none() {
                    let boot_to_come = d.reboot
                        || self
                            .observed
                            .as_ref()
                            .is_some_and(|o| !o.running() && !o.heading_on());
                    d.nmi = Some(if boot_to_come {
                        Nmi::AfterBoot
                    } else {
                        Nmi::Now
                    });
                }
            }
        }
        let same = match &before {
            Some(b) => b.power == d.power && b.reboot == d.reboot && b.nmi == d.nmi,
            None => false,
        };
        if same {
            return Ok(false);
        }
        d.generation = before.as_ref().map_or(1, |b| b.generation + 1);
        d.changed = now;
        d.changed_unix_ms = now_unix_ms;
        self.desired = Some(d);
        Ok(true)
    }

    /// Stores a new view from Nova, read at `now`.
    pub fn observe(&mut self, server: &ServerInfo, owner_key: &str, now: Instant) {
        if server.status == Status::Deleted {
            self.resolution = Resolution::Missing(format!(
                "server {} ({}) was deleted",
                server.id, self.server_ref
            ));
            self.boot_in_flight = None;
        }
        self.observed = Some(Observed::of(server, owner_key));
        self.observed_at = Some(now);
    }

    /// What is pending, for the shutdown summary; `None` when nothing is.
    pub fn pending(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(d) = &self.desired {
            parts.push(match (d.power, d.reboot) {
                (Power::On, true) => "reboot".to_string(),
                (Power::On, false) => "power on".to_string(),
                (Power::Off, _) => "power off".to_string(),
            });
            if d.nmi.is_some() {
                parts.push("diagnostic interrupt".into());
            }
        }
        if self.boot_dirty {
            parts.push("boot options not yet saved in Nova".into());
        }
        if self
            .media
            .iter()
            .any(|m| m.phase == super::media::record::Phase::Loading)
        {
            parts.push("virtual media being loaded".into());
        }
        if !self.media_cleanup.is_empty() {
            parts.push("virtual media to remove from the cloud".into());
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const OWNER: &str = "novabmc_owner";

    #[test]
    fn early_boot_writes_lay_over_the_restored_options_and_round_trip() {
        let mut early = EarlyBoot::default();
        let mut pxe = BootOptions::new(false).flags;
        pxe.0[0] = 0x80;
        pxe.0[1] = 0x04;
        early.apply(BootParameterWrite::BootFlags(pxe), false);
        early.apply(
            BootParameterWrite::BootInfoAck {
                mask: 0x01,
                data: 0x01,
            },
            false,
        );
        let text = early.encode();
        assert_eq!(EarlyBoot::decode(&text), Some(early), "{text}");
        let mut restored = BootOptions::new(true);
        restored.valid_bit_clearing = 0x1f;
        restored.boot_info_ack = 0x02;
        let after = early.over(restored);
        assert_eq!(after.flags, pxe);
        assert_eq!(after.valid_bit_clearing, 0x1f, "not written: kept");
        assert_eq!(after.boot_info_ack, 0x03, "only the written bit changes");
    }

    fn server(
        status: Status,
        task: Option<TaskState>,
        vm: VmState,
        power: PowerState,
    ) -> ServerInfo {
        ServerInfo {
            id: "u".into(),
            name: "n".into(),
            status,
            task_state: task,
            vm_state: Some(vm),
            power_state: Some(power),
            metadata: Default::default(),
            image: None,
            updated: None,
            flavor: serde_json::Value::Null,
            addresses: Default::default(),
        }
    }

    /// A node observed `age` ago.
    fn node_aged(s: ServerInfo, age: Duration) -> (NodeState, Instant) {
        let t0 = Instant::now();
        let mut n = NodeState::new("n".into(), "s".into());
        n.resolution = Resolution::Found { id: "u".into() };
        n.observe(&s, OWNER, t0);
        (n, t0 + age)
    }

    fn active() -> ServerInfo {
        server(Status::Active, None, VmState::Active, PowerState::Running)
    }

    fn shutoff() -> ServerInfo {
        server(
            Status::Shutoff,
            None,
            VmState::Stopped,
            PowerState::Shutdown,
        )
    }

    fn on(n: &NodeState) -> bool {
        n.reported().expect("reported").power_on
    }

    fn send(n: &mut NodeState, now: Instant, c: ChassisControl) -> bool {
        n.accept(c, now, 0).expect("accepted")
    }

    #[test]
    fn reports_the_state_nova_heads_to() {
        let cases = [
            (
                server(
                    Status::Shutoff,
                    Some(TaskState::PoweringOn),
                    VmState::Stopped,
                    PowerState::Shutdown,
                ),
                true,
            ),
            (
                server(
                    Status::Active,
                    Some(TaskState::PoweringOff),
                    VmState::Active,
                    PowerState::Running,
                ),
                false,
            ),
            (
                server(
                    Status::Shutoff,
                    Some(TaskState::RebootingHard),
                    VmState::Stopped,
                    PowerState::Shutdown,
                ),
                true,
            ),
            (
                server(
                    Status::Rebuild,
                    Some(TaskState::Rebuilding),
                    VmState::Stopped,
                    PowerState::Shutdown,
                ),
                false,
            ),
            (
                server(Status::Rescue, None, VmState::Rescued, PowerState::Running),
                true,
            ),
            (
                server(Status::Rescue, None, VmState::Rescued, PowerState::Shutdown),
                false,
            ),
            (shutoff(), false),
        ];
        for (s, want) in cases {
            let (n, _) = node_aged(s.clone(), Duration::ZERO);
            assert_eq!(on(&n), want, "{s:?}");
        }
        let mut n = NodeState::new("n".into(), "s".into());
        assert!(matches!(n.reported(), Err(BackendError::NotReady(_))));
        n.resolution = Resolution::Missing("gone".into());
        assert!(matches!(n.reported(), Err(BackendError::Unavailable(_))));
    }

    #[test]
    fn every_command_is_accepted_and_reported_at_once() {
        let (mut n, now) = node_aged(shutoff(), Duration::from_secs(5));
        for i in 0..1000 {
            let c = [
                ChassisControl::PowerUp,
                ChassisControl::PowerDown,
                ChassisControl::PowerCycle,
                ChassisControl::SoftShutdown,
                ChassisControl::HardReset,
            ][i % 5];
            n.accept(c, now, 0).expect("never busy");
            let want = !matches!(c, ChassisControl::PowerDown | ChassisControl::SoftShutdown);
            assert_eq!(on(&n), want, "after {c:?}");
        }
    }

    #[test]
    fn ironic_reboot_is_one_reboot() {
        let (mut n, now) = node_aged(active(), Duration::from_secs(5));
        assert!(send(&mut n, now, ChassisControl::PowerDown));
        assert!(!on(&n));
        assert!(send(&mut n, now, ChassisControl::PowerUp));
        assert!(on(&n));
        let d = n.desired.clone().expect("record");
        assert_eq!((d.power, d.reboot), (Power::On, true));
        // Repeats change nothing.
        assert!(!send(&mut n, now, ChassisControl::PowerUp));
        assert!(!send(&mut n, now, ChassisControl::PowerCycle));
    }

    #[test]
    fn a_boot_under_way_covers_later_reboot_requests() {
        let (mut n, now) = node_aged(active(), Duration::from_secs(5));
        assert!(send(&mut n, now, ChassisControl::HardReset));
        // The worker starts the reboot: it clears the flag and marks the
        // boot in flight with the boot options' generation.
        n.desired.as_mut().expect("record").reboot = false;
        n.boot_in_flight = Some(n.boot_generation);
        assert!(!send(&mut n, now, ChassisControl::PowerCycle), "covered");
        send(&mut n, now, ChassisControl::PowerDown);
        send(&mut n, now, ChassisControl::PowerUp);
        assert_eq!(n.desired.as_ref().map(|d| d.reboot), Some(false));
        // New boot options since the boot began: one more boot.
        n.boot_generation += 1;
        assert!(send(&mut n, now, ChassisControl::HardReset));
        assert_eq!(n.desired.as_ref().map(|d| d.reboot), Some(true));
    }

    #[test]
    fn cycle_while_off_powers_on_and_nmi_needs_power() {
        let (mut n, now) = node_aged(shutoff(), Duration::from_secs(5));
        assert!(matches!(
            n.accept(ChassisControl::DiagnosticInterrupt, now, 0),
            Err(BackendError::Unavailable(_))
        ));
        assert!(send(&mut n, now, ChassisControl::PowerCycle));
        let d = n.desired.clone().expect("record");
        assert_eq!(
            (d.power, d.reboot),
            (Power::On, false),
            "a start, no reboot"
        );
        assert!(send(&mut n, now, ChassisControl::DiagnosticInterrupt));
        assert_eq!(
            n.desired.as_ref().and_then(|d| d.nmi),
            Some(Nmi::AfterBoot),
            "after the start it followed"
        );
        assert!(!send(&mut n, now, ChassisControl::DiagnosticInterrupt));
        assert!(send(&mut n, now, ChassisControl::PowerDown));
        assert_eq!(n.desired.as_ref().and_then(|d| d.nmi), None);
    }

    #[test]
    fn nmi_to_a_running_machine_comes_first() {
        let (mut n, now) = node_aged(active(), Duration::from_secs(5));
        assert!(send(&mut n, now, ChassisControl::DiagnosticInterrupt));
        assert!(send(&mut n, now, ChassisControl::PowerDown));
        assert_eq!(n.desired.as_ref().and_then(|d| d.nmi), Some(Nmi::Now));
    }

    #[test]
    fn only_a_fresh_observation_makes_a_command_a_no_op() {
        let (mut n, now) = node_aged(active(), Duration::from_millis(100));
        assert!(!send(&mut n, now, ChassisControl::PowerUp), "just read: on");
        let later = now + Duration::from_secs(10);
        assert!(
            send(&mut n, later, ChassisControl::PowerUp),
            "old view: the worker checks"
        );
        let (mut n, now) = node_aged(shutoff(), Duration::from_millis(100));
        assert!(!send(&mut n, now, ChassisControl::SoftShutdown));
        assert!(!send(&mut n, now, ChassisControl::PowerDown));
    }

    #[test]
    fn generation_counts_changes_only() {
        let (mut n, now) = node_aged(active(), Duration::from_secs(5));
        send(&mut n, now, ChassisControl::PowerDown);
        let g1 = n.desired.as_ref().map(|d| d.generation);
        send(&mut n, now, ChassisControl::PowerDown);
        assert_eq!(n.desired.as_ref().map(|d| d.generation), g1);
        send(&mut n, now, ChassisControl::PowerUp);
        assert_eq!(n.desired.as_ref().map(|d| d.generation), g1.map(|g| g + 1));
    }

    #[test]
    fn deletion_makes_the_node_unavailable() {
        let (mut n, now) = node_aged(active(), Duration::ZERO);
        n.observe(
            &server(Status::Deleted, None, VmState::Deleted, PowerState::NoState),
            OWNER,
            now,
        );
        assert!(matches!(
            n.accept(ChassisControl::PowerUp, now, 0),
            Err(BackendError::Unavailable(_))
        ));
    }
}
