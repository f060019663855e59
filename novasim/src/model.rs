//! The simulated cloud's state: servers with Nova's status, task_state,
//! vm_state and power_state, the transitions Nova walks them through, and
//! the 409 rules Nova applies.
//!
//! The sequences and timings follow what a real Nova 34 answers (status /
//! task_state / vm_state / power_state per phase, 202 before the first
//! phase is visible, 409 bodies with Nova's wording). A transition is a list
//! of timed phases computed from the wall clock when read, so the model
//! needs no timer task and `updated` moves exactly when a phase changes, as
//! `changes-since` expects.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::states::{PowerState, Status, TaskState, VmState};

/// One observable step of a server's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// API status (ACTIVE, SHUTOFF, HARD_REBOOT, REBUILD, RESCUE, ...).
    pub status: Status,
    /// task_state, or none.
    pub task_state: Option<TaskState>,
    /// vm_state.
    pub vm_state: VmState,
    /// power_state.
    pub power_state: PowerState,
}

const fn phase(
    status: Status,
    task_state: Option<TaskState>,
    vm_state: VmState,
    power_state: PowerState,
) -> Phase {
    Phase {
        status,
        task_state,
        vm_state,
        power_state,
    }
}

const ACTIVE: Phase = phase(Status::Active, None, VmState::Active, PowerState::Running);
const SHUTOFF: Phase = phase(
    Status::Shutoff,
    None,
    VmState::Stopped,
    PowerState::Shutdown,
);
const RESCUED: Phase = phase(Status::Rescue, None, VmState::Rescued, PowerState::Running);

/// How long each kind of transition takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// os-start.
    pub start_ms: u64,
    /// os-stop.
    pub stop_ms: u64,
    /// Hard reboot.
    pub reboot_ms: u64,
    /// Rebuild.
    pub rebuild_ms: u64,
    /// Rescue and unrescue.
    pub rescue_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            start_ms: 1500,
            stop_ms: 800,
            reboot_ms: 1200,
            rebuild_ms: 2500,
            rescue_ms: 1500,
        }
    }
}

/// A boot the simulated guest made, for tests to inspect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Boot {
    /// What it booted: `disk`, `network` (libvirt:pxe-first set) or
    /// `rescue` (the rescue image).
    pub from: &'static str,
    /// The image ID the boot used (the root disk's, or the rescue image's).
    pub image: String,
    /// When.
    pub at: String,
}

/// How a server is rescued, for tests to inspect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rescue {
    /// The rescue image's ID.
    pub image: String,
    /// `stable` (the image has `hw_rescue_device` or `hw_rescue_bus`: the
    /// rescue image is added as that device and every original disk and
    /// volume stays attached where it was) or `legacy` (the rescue image
    /// becomes the first disk, the original root disk the second, and
    /// volumes are not attached).
    pub mode: &'static str,
    /// The device the rescue image is attached as: `cdrom`, `disk`,
    /// `floppy` or `lun` (stable rescue; Nova's default is `disk`).
    pub device: Option<String>,
    /// Its bus (stable rescue): `hw_rescue_bus`, else libvirt's default
    /// for the device (`virtio` disk, `ide` CD-ROM on x86 `pc`, `sata` on
    /// `q35`, `scsi` on ARM, POWER and s390, `fdc` floppy).
    pub bus: Option<String>,
}

impl Rescue {
    /// Legacy rescue with `image`.
    pub fn legacy(image: &str) -> Self {
        Rescue {
            image: image.to_string(),
            mode: "legacy",
            device: None,
            bus: None,
        }
    }
}

/// A simulated server.
#[derive(Clone, Debug, Serialize)]
pub struct Server {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Flavor ID.
    pub flavor: String,
    /// Image ID of the root disk (empty when booted from volume).
    pub image: String,
    /// Root volume size in GiB when booted from volume.
    pub volume_gb: Option<u32>,
    /// IDs of the attached volumes (the root volume first).
    pub volumes: Vec<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Tags (microversion 2.26 on), in order.
    pub tags: BTreeSet<String>,
    /// MAC addresses, one per port.
    pub macs: Vec<String>,
    /// Neutron ports attached through `os-interface`, in attach order.
    pub ports: Vec<String>,
    /// Creation time.
    pub created: String,
    /// When the visible state last changed.
    #[serde(skip)]
    pub updated: SystemTime,
    /// The settled state.
    pub stable: Phase,
    /// Phases still to come, each with the time it ends.
    #[serde(skip)]
    pub pending: Vec<(SystemTime, Phase)>,
    /// Deleted (still listed by changes-since).
    pub deleted: bool,
    /// Boots so far.
    pub boots: Vec<Boot>,
    /// Diagnostic interrupts (crash dumps) received.
    pub nmis: u32,
    /// Rescue image while rescued.
    pub rescue_image: Option<String>,
    /// How it is rescued, while rescued.
    pub rescue: Option<Rescue>,
}

/// Nova's 409 for an action refused in the current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict(pub String);

impl Server {
    /// A server in a settled state.
    pub fn new(
        now: SystemTime,
        id: String,
        name: String,
        flavor: String,
        image: String,
        on: bool,
    ) -> Self {
        Server {
            id,
            name,
            flavor,
            image,
            volume_gb: None,
            volumes: Vec::new(),
            metadata: BTreeMap::new(),
            tags: BTreeSet::new(),
            macs: Vec::new(),
            ports: Vec::new(),
            created: iso8601(now),
            updated: now,
            stable: if on { ACTIVE } else { SHUTOFF },
            pending: Vec::new(),
            deleted: false,
            boots: Vec::new(),
            nmis: 0,
            rescue_image: None,
            rescue: None,
        }
    }

    /// Moves finished phases into the past; returns the visible phase.
    pub fn settle(&mut self, now: SystemTime) -> Phase {
        while let Some((end, _)) = self.pending.first() {
            if *end > now {
                break;
            }
            let (end, _) = self.pending.remove(0);
            self.updated = end;
        }
        self.visible()
    }

    /// The visible phase without advancing time.
    pub fn visible(&self) -> Phase {
        self.pending
            .first()
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| self.stable.clone())
    }

    fn conflict(&self, action: &str) -> Conflict {
        let v = self.visible();
        let why = match &v.task_state {
            Some(t) => format!("task_state {t}"),
            None => format!("vm_state {}", v.vm_state),
        };
        Conflict(format!(
            "Cannot '{action}' instance {} while it is in {why}",
            self.id
        ))
    }

    /// Requires one of `vm_states` and no task (or one of `tasks`).
    fn check(
        &self,
        action: &str,
        vm_states: &[VmState],
        tasks: &[TaskState],
    ) -> Result<(), Conflict> {
        let v = self.visible();
        let task_ok = match &v.task_state {
            None => true,
            Some(t) => tasks.contains(t),
        };
        if vm_states.contains(&v.vm_state) && task_ok {
            Ok(())
        } else {
            Err(self.conflict(action))
        }
    }

    /// Starts a transition: phases each `step` long, then `end`.
    fn transition(&mut self, now: SystemTime, phases: &[Phase], step: Duration, end: Phase) {
        self.pending.clear();
        let mut t = now;
        for p in phases {
            t += step;
            self.pending.push((t, p.clone()));
        }
        self.stable = end;
        self.updated = now;
    }

    fn boot(&mut self, now: SystemTime, from: &'static str, image: String) {
        self.boots.push(Boot {
            from,
            image,
            at: iso8601(now),
        });
    }

    fn disk_boot(&mut self, now: SystemTime) {
        let network = self
            .metadata
            .get("libvirt:pxe-first")
            .is_some_and(|v| !v.is_empty() && v != "0");
        let image = self.image.clone();
        self.boot(now, if network { "network" } else { "disk" }, image);
    }

    /// os-start.
    pub fn start(&mut self, now: SystemTime, t: &Timings) -> Result<(), Conflict> {
        self.check("start", &[VmState::Stopped], &[])?;
        let step = Duration::from_millis(t.start_ms);
        self.transition(
            now,
            &[phase(
                Status::Shutoff,
                Some(TaskState::PoweringOn),
                VmState::Stopped,
                PowerState::Shutdown,
            )],
            step,
            ACTIVE,
        );
        self.disk_boot(now);
        Ok(())
    }

    /// os-stop.
    pub fn stop(&mut self, now: SystemTime, t: &Timings) -> Result<(), Conflict> {
        self.check("stop", &[VmState::Active, VmState::Error], &[])?;
        let step = Duration::from_millis(t.stop_ms);
        self.transition(
            now,
            &[phase(
                Status::Active,
                Some(TaskState::PoweringOff),
                VmState::Active,
                PowerState::Running,
            )],
            step,
            SHUTOFF,
        );
        Ok(())
    }

    /// reboot, HARD or SOFT.
    pub fn reboot(&mut self, now: SystemTime, t: &Timings, hard: bool) -> Result<(), Conflict> {
        let step = Duration::from_millis(t.reboot_ms / 3);
        if hard {
            self.check(
                "reboot",
                &[VmState::Active, VmState::Stopped, VmState::Error],
                &[
                    TaskState::Rebooting,
                    TaskState::RebootPending,
                    TaskState::RebootStarted,
                    TaskState::RebootingHard,
                    TaskState::RebootPendingHard,
                    TaskState::RebootStartedHard,
                ],
            )?;
            if self.visible().vm_state == VmState::Stopped {
                self.transition(
                    now,
                    &[
                        phase(
                            Status::Shutoff,
                            Some(TaskState::RebootingHard),
                            VmState::Stopped,
                            PowerState::Shutdown,
                        ),
                        phase(
                            Status::Shutoff,
                            Some(TaskState::RebootStartedHard),
                            VmState::Stopped,
                            PowerState::Shutdown,
                        ),
                    ],
                    step,
                    ACTIVE,
                );
            } else {
                self.transition(
                    now,
                    &[
                        phase(
                            Status::HardReboot,
                            Some(TaskState::RebootingHard),
                            VmState::Active,
                            PowerState::Running,
                        ),
                        phase(
                            Status::HardReboot,
                            Some(TaskState::RebootPendingHard),
                            VmState::Active,
                            PowerState::Running,
                        ),
                        phase(
                            Status::HardReboot,
                            Some(TaskState::RebootStartedHard),
                            VmState::Active,
                            PowerState::Running,
                        ),
                    ],
                    step,
                    ACTIVE,
                );
            }
        } else {
            self.check("reboot", &[VmState::Active], &[])?;
            self.transition(
                now,
                &[
                    phase(
                        Status::Reboot,
                        Some(TaskState::Rebooting),
                        VmState::Active,
                        PowerState::Running,
                    ),
                    phase(
                        Status::Reboot,
                        Some(TaskState::RebootStarted),
                        VmState::Active,
                        PowerState::Running,
                    ),
                ],
                step,
                ACTIVE,
            );
        }
        self.disk_boot(now);
        Ok(())
    }

    /// rebuild with a new image. A stopped server is rebuilt and stopped
    /// again, passing through ACTIVE/powering-off as Nova does.
    pub fn rebuild(&mut self, now: SystemTime, t: &Timings, image: &str) -> Result<(), Conflict> {
        self.check(
            "rebuild",
            &[VmState::Active, VmState::Stopped, VmState::Error],
            &[],
        )?;
        let step = Duration::from_millis(t.rebuild_ms);
        self.image = image.to_string();
        if self.visible().vm_state == VmState::Stopped {
            self.pending.clear();
            self.pending.push((
                now + step,
                phase(
                    Status::Rebuild,
                    Some(TaskState::Rebuilding),
                    VmState::Stopped,
                    PowerState::Shutdown,
                ),
            ));
            self.pending.push((
                now + step + Duration::from_millis(100),
                phase(
                    Status::Active,
                    Some(TaskState::PoweringOff),
                    VmState::Active,
                    PowerState::Running,
                ),
            ));
            self.stable = SHUTOFF;
            self.updated = now;
        } else {
            self.transition(
                now,
                &[phase(
                    Status::Rebuild,
                    Some(TaskState::Rebuilding),
                    VmState::Active,
                    PowerState::Running,
                )],
                step,
                ACTIVE,
            );
            // Only a rebuild that ends running boots the guest.
            self.disk_boot(now);
        }
        Ok(())
    }

    /// rescue with an image (legacy rescue); the guest then runs the
    /// rescue image.
    pub fn rescue(&mut self, now: SystemTime, t: &Timings, image: &str) -> Result<(), Conflict> {
        self.rescue_as(now, t, Rescue::legacy(image))
    }

    /// Nova's state check for rescue (vm_state active, stopped or error,
    /// no task).
    pub fn check_rescue(&self) -> Result<(), Conflict> {
        self.check(
            "rescue",
            &[VmState::Active, VmState::Stopped, VmState::Error],
            &[],
        )
    }

    /// Nova's state check for attaching or detaching a volume (`action`
    /// is `attach_volume` or `detach_volume`): vm_state active or stopped
    /// (of those the simulator has), no task.
    pub fn check_volume_change(&self, action: &str) -> Result<(), Conflict> {
        self.check(action, &[VmState::Active, VmState::Stopped], &[])
    }

    /// rescue as `how` says; the guest then runs the rescue image.
    pub fn rescue_as(&mut self, now: SystemTime, t: &Timings, how: Rescue) -> Result<(), Conflict> {
        self.check_rescue()?;
        let step = Duration::from_millis(t.rescue_ms);
        let (status, vm, power) = if self.visible().vm_state == VmState::Stopped {
            (Status::Shutoff, VmState::Stopped, PowerState::Shutdown)
        } else {
            (Status::Active, VmState::Active, PowerState::Running)
        };
        self.transition(
            now,
            &[phase(status, Some(TaskState::Rescuing), vm, power)],
            step,
            RESCUED,
        );
        self.rescue_image = Some(how.image.clone());
        self.boot(now, "rescue", how.image.clone());
        self.rescue = Some(how);
        Ok(())
    }

    /// unrescue: back to ACTIVE, booting the root disk.
    pub fn unrescue(&mut self, now: SystemTime, t: &Timings) -> Result<(), Conflict> {
        self.check("unrescue", &[VmState::Rescued], &[])?;
        let step = Duration::from_millis(t.rescue_ms);
        self.transition(
            now,
            &[phase(
                Status::Rescue,
                Some(TaskState::Unrescuing),
                VmState::Rescued,
                PowerState::Running,
            )],
            step,
            ACTIVE,
        );
        self.rescue_image = None;
        self.rescue = None;
        self.disk_boot(now);
        Ok(())
    }

    /// trigger_crash_dump: an NMI to a running guest.
    pub fn crash_dump(&mut self) -> Result<(), Conflict> {
        self.check(
            "trigger_crash_dump",
            &[VmState::Active, VmState::Rescued, VmState::Error],
            &[],
        )?;
        self.nmis += 1;
        Ok(())
    }

    /// The guest halts by itself (a `poweroff` inside it). Nova's power
    /// sync then shows an active server SHUTOFF/stopped, and a rescued one
    /// still RESCUE/rescued but with power_state SHUTDOWN (which os-start
    /// refuses for vm_state rescued).
    pub fn halt(&mut self, now: SystemTime) {
        let v = self.visible();
        self.pending.clear();
        self.stable = if v.vm_state == VmState::Rescued {
            phase(Status::Rescue, None, VmState::Rescued, PowerState::Shutdown)
        } else {
            SHUTOFF
        };
        self.updated = now;
    }

    /// Puts the server in a settled state of the caller's choosing (an
    /// ERROR server, say).
    pub fn set_state(&mut self, now: SystemTime, mut p: Phase) {
        p.task_state = None;
        self.pending.clear();
        self.stable = p;
        self.updated = now;
    }

    /// Makes the transition under way end in ERROR instead of its normal
    /// end, the power state staying `power` (a compute host that fails
    /// every task).
    pub fn fail_task(&mut self, power: PowerState) {
        self.stable = phase(Status::Error, None, VmState::Error, power);
    }

    /// Metadata writes: refused while rescued, allowed during tasks.
    pub fn check_metadata_write(&self) -> Result<(), Conflict> {
        if self.visible().vm_state == VmState::Rescued {
            return Err(self.conflict("update_instance_metadata"));
        }
        Ok(())
    }
}

/// ISO 8601 in Nova's format, one-second resolution.
pub fn iso8601(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random UUID (version 4), as Nova and Glance make them.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Timings {
        Timings {
            start_ms: 100,
            stop_ms: 100,
            reboot_ms: 300,
            rebuild_ms: 100,
            rescue_ms: 100,
        }
    }

    #[test]
    fn start_and_stop_sequences() {
        let now = SystemTime::now();
        let mut s = Server::new(now, new_uuid(), "a".into(), "f".into(), "i".into(), false);
        s.start(now, &t()).expect("start");
        let v = s.settle(now);
        assert_eq!(
            (v.status, v.task_state),
            (Status::Shutoff, Some(TaskState::PoweringOn))
        );
        assert_eq!(
            s.start(now, &t()),
            Err(Conflict(format!(
                "Cannot 'start' instance {} while it is in task_state powering-on",
                s.id
            )))
        );
        let v = s.settle(now + Duration::from_millis(150));
        assert_eq!(
            (v.status, v.power_state),
            (Status::Active, PowerState::Running)
        );
        assert_eq!(
            s.start(now, &t()),
            Err(Conflict(format!(
                "Cannot 'start' instance {} while it is in vm_state active",
                s.id
            )))
        );
        s.stop(now, &t()).expect("stop");
        assert_eq!(s.visible().task_state, Some(TaskState::PoweringOff));
    }

    #[test]
    fn rebuild_of_stopped_server_ends_stopped() {
        let now = SystemTime::now();
        let mut s = Server::new(
            now,
            new_uuid(),
            "a".into(),
            "f".into(),
            "disk".into(),
            false,
        );
        s.rebuild(now, &t(), "ipxe").expect("rebuild");
        assert_eq!(s.visible().status, Status::Rebuild);
        let v = s.settle(now + Duration::from_millis(150));
        assert_eq!(
            (v.status, v.task_state),
            (Status::Active, Some(TaskState::PoweringOff))
        );
        let v = s.settle(now + Duration::from_millis(250));
        assert_eq!(v.status, Status::Shutoff);
        assert_eq!(s.image, "ipxe");
    }

    #[test]
    fn hard_reboot_starts_a_stopped_server_and_soft_does_not() {
        let now = SystemTime::now();
        let mut s = Server::new(now, new_uuid(), "a".into(), "f".into(), "i".into(), false);
        assert!(s.reboot(now, &t(), false).is_err());
        s.reboot(now, &t(), true).expect("hard");
        assert_eq!(s.visible().status, Status::Shutoff);
        assert_eq!(s.visible().task_state, Some(TaskState::RebootingHard));
        s.reboot(now, &t(), true)
            .expect("second hard reboot is accepted");
        assert_eq!(
            s.settle(now + Duration::from_secs(1)).status,
            Status::Active
        );
    }

    #[test]
    fn rescue_blocks_metadata_and_stop() {
        let now = SystemTime::now();
        let mut s = Server::new(now, new_uuid(), "a".into(), "f".into(), "disk".into(), true);
        s.rescue(now, &t(), "ipxe").expect("rescue");
        s.settle(now + Duration::from_secs(1));
        assert_eq!(s.visible().status, Status::Rescue);
        assert!(s.check_metadata_write().is_err());
        assert!(s.stop(now, &t()).is_err());
        s.unrescue(now, &t()).expect("unrescue");
        assert_eq!(
            s.boots.iter().map(|b| b.from).collect::<Vec<_>>(),
            ["rescue", "disk"]
        );
    }
}
