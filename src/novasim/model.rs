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

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Nova's power_state values.
pub mod power {
    /// NOSTATE.
    pub const NOSTATE: u8 = 0;
    /// RUNNING.
    pub const RUNNING: u8 = 1;
    /// SHUTDOWN.
    pub const SHUTDOWN: u8 = 4;
}

/// One observable step of a server's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Phase {
    /// API status (ACTIVE, SHUTOFF, HARD_REBOOT, REBUILD, RESCUE, ...).
    pub status: &'static str,
    /// task_state, or none.
    pub task_state: Option<&'static str>,
    /// vm_state.
    pub vm_state: &'static str,
    /// power_state.
    pub power_state: u8,
}

const fn phase(
    status: &'static str,
    task_state: Option<&'static str>,
    vm_state: &'static str,
    power_state: u8,
) -> Phase {
    Phase {
        status,
        task_state,
        vm_state,
        power_state,
    }
}

const ACTIVE: Phase = phase("ACTIVE", None, "active", power::RUNNING);
const SHUTOFF: Phase = phase("SHUTOFF", None, "stopped", power::SHUTDOWN);
const RESCUED: Phase = phase("RESCUE", None, "rescued", power::RUNNING);

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
    /// MAC addresses, one per port.
    pub macs: Vec<String>,
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
}

/// Nova's 409 for an action refused in the current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict(pub String);

impl Server {
    /// A server in a settled state.
    pub fn new(id: String, name: String, flavor: String, image: String, on: bool) -> Self {
        let now = SystemTime::now();
        Server {
            id,
            name,
            flavor,
            image,
            volume_gb: None,
            volumes: Vec::new(),
            metadata: BTreeMap::new(),
            macs: Vec::new(),
            created: iso8601(now),
            updated: now,
            stable: if on { ACTIVE } else { SHUTOFF },
            pending: Vec::new(),
            deleted: false,
            boots: Vec::new(),
            nmis: 0,
            rescue_image: None,
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
        let why = match v.task_state {
            Some(t) => format!("task_state {t}"),
            None => format!("vm_state {}", v.vm_state),
        };
        Conflict(format!(
            "Cannot '{action}' instance {} while it is in {why}",
            self.id
        ))
    }

    /// Requires one of `vm_states` and no task (or one of `tasks`).
    fn check(&self, action: &str, vm_states: &[&str], tasks: &[&str]) -> Result<(), Conflict> {
        let v = self.visible();
        let task_ok = match v.task_state {
            None => true,
            Some(t) => tasks.contains(&t),
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
        self.check("start", &["stopped"], &[])?;
        let step = Duration::from_millis(t.start_ms);
        self.transition(
            now,
            &[phase(
                "SHUTOFF",
                Some("powering-on"),
                "stopped",
                power::SHUTDOWN,
            )],
            step,
            ACTIVE,
        );
        self.disk_boot(now);
        Ok(())
    }

    /// os-stop.
    pub fn stop(&mut self, now: SystemTime, t: &Timings) -> Result<(), Conflict> {
        self.check("stop", &["active", "error"], &[])?;
        let step = Duration::from_millis(t.stop_ms);
        self.transition(
            now,
            &[phase(
                "ACTIVE",
                Some("powering-off"),
                "active",
                power::RUNNING,
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
                &["active", "stopped", "error"],
                &[
                    "rebooting",
                    "reboot_pending",
                    "reboot_started",
                    "rebooting_hard",
                    "reboot_pending_hard",
                    "reboot_started_hard",
                ],
            )?;
            if self.visible().vm_state == "stopped" {
                self.transition(
                    now,
                    &[
                        phase(
                            "SHUTOFF",
                            Some("rebooting_hard"),
                            "stopped",
                            power::SHUTDOWN,
                        ),
                        phase(
                            "SHUTOFF",
                            Some("reboot_started_hard"),
                            "stopped",
                            power::SHUTDOWN,
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
                            "HARD_REBOOT",
                            Some("rebooting_hard"),
                            "active",
                            power::RUNNING,
                        ),
                        phase(
                            "HARD_REBOOT",
                            Some("reboot_pending_hard"),
                            "active",
                            power::RUNNING,
                        ),
                        phase(
                            "HARD_REBOOT",
                            Some("reboot_started_hard"),
                            "active",
                            power::RUNNING,
                        ),
                    ],
                    step,
                    ACTIVE,
                );
            }
        } else {
            self.check("reboot", &["active"], &[])?;
            self.transition(
                now,
                &[
                    phase("REBOOT", Some("rebooting"), "active", power::RUNNING),
                    phase("REBOOT", Some("reboot_started"), "active", power::RUNNING),
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
        self.check("rebuild", &["active", "stopped", "error"], &[])?;
        let step = Duration::from_millis(t.rebuild_ms);
        self.image = image.to_string();
        if self.visible().vm_state == "stopped" {
            self.pending.clear();
            self.pending.push((
                now + step,
                phase("REBUILD", Some("rebuilding"), "stopped", power::SHUTDOWN),
            ));
            self.pending.push((
                now + step + Duration::from_millis(100),
                phase("ACTIVE", Some("powering-off"), "active", power::RUNNING),
            ));
            self.stable = SHUTOFF;
            self.updated = now;
        } else {
            self.transition(
                now,
                &[phase(
                    "REBUILD",
                    Some("rebuilding"),
                    "active",
                    power::RUNNING,
                )],
                step,
                ACTIVE,
            );
            // Only a rebuild that ends running boots the guest.
            self.disk_boot(now);
        }
        Ok(())
    }

    /// rescue with an image; the guest then runs the rescue image.
    pub fn rescue(&mut self, now: SystemTime, t: &Timings, image: &str) -> Result<(), Conflict> {
        self.check("rescue", &["active", "stopped", "error"], &[])?;
        let step = Duration::from_millis(t.rescue_ms);
        let (status, vm, power) = if self.visible().vm_state == "stopped" {
            ("SHUTOFF", "stopped", power::SHUTDOWN)
        } else {
            ("ACTIVE", "active", power::RUNNING)
        };
        self.transition(
            now,
            &[phase(status, Some("rescuing"), vm, power)],
            step,
            RESCUED,
        );
        self.rescue_image = Some(image.to_string());
        self.boot(now, "rescue", image.to_string());
        Ok(())
    }

    /// unrescue: back to ACTIVE, booting the root disk.
    pub fn unrescue(&mut self, now: SystemTime, t: &Timings) -> Result<(), Conflict> {
        self.check("unrescue", &["rescued"], &[])?;
        let step = Duration::from_millis(t.rescue_ms);
        self.transition(
            now,
            &[phase(
                "RESCUE",
                Some("unrescuing"),
                "rescued",
                power::RUNNING,
            )],
            step,
            ACTIVE,
        );
        self.rescue_image = None;
        self.disk_boot(now);
        Ok(())
    }

    /// trigger_crash_dump: an NMI to a running guest.
    pub fn crash_dump(&mut self) -> Result<(), Conflict> {
        self.check("trigger_crash_dump", &["active", "rescued", "error"], &[])?;
        self.nmis += 1;
        Ok(())
    }

    /// Metadata writes: refused while rescued, allowed during tasks.
    pub fn check_metadata_write(&self) -> Result<(), Conflict> {
        if self.visible().vm_state == "rescued" {
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
        let mut s = Server::new(new_uuid(), "a".into(), "f".into(), "i".into(), false);
        s.start(now, &t()).expect("start");
        let v = s.settle(now);
        assert_eq!((v.status, v.task_state), ("SHUTOFF", Some("powering-on")));
        assert_eq!(
            s.start(now, &t()),
            Err(Conflict(format!(
                "Cannot 'start' instance {} while it is in task_state powering-on",
                s.id
            )))
        );
        let v = s.settle(now + Duration::from_millis(150));
        assert_eq!((v.status, v.power_state), ("ACTIVE", power::RUNNING));
        assert_eq!(
            s.start(now, &t()),
            Err(Conflict(format!(
                "Cannot 'start' instance {} while it is in vm_state active",
                s.id
            )))
        );
        s.stop(now, &t()).expect("stop");
        assert_eq!(s.visible().task_state, Some("powering-off"));
    }

    #[test]
    fn rebuild_of_stopped_server_ends_stopped() {
        let now = SystemTime::now();
        let mut s = Server::new(new_uuid(), "a".into(), "f".into(), "disk".into(), false);
        s.rebuild(now, &t(), "ipxe").expect("rebuild");
        assert_eq!(s.visible().status, "REBUILD");
        let v = s.settle(now + Duration::from_millis(150));
        assert_eq!((v.status, v.task_state), ("ACTIVE", Some("powering-off")));
        let v = s.settle(now + Duration::from_millis(250));
        assert_eq!(v.status, "SHUTOFF");
        assert_eq!(s.image, "ipxe");
    }

    #[test]
    fn hard_reboot_starts_a_stopped_server_and_soft_does_not() {
        let now = SystemTime::now();
        let mut s = Server::new(new_uuid(), "a".into(), "f".into(), "i".into(), false);
        assert!(s.reboot(now, &t(), false).is_err());
        s.reboot(now, &t(), true).expect("hard");
        assert_eq!(s.visible().status, "SHUTOFF");
        assert_eq!(s.visible().task_state, Some("rebooting_hard"));
        s.reboot(now, &t(), true)
            .expect("second hard reboot is accepted");
        assert_eq!(s.settle(now + Duration::from_secs(1)).status, "ACTIVE");
    }

    #[test]
    fn rescue_blocks_metadata_and_stop() {
        let now = SystemTime::now();
        let mut s = Server::new(new_uuid(), "a".into(), "f".into(), "disk".into(), true);
        s.rescue(now, &t(), "ipxe").expect("rescue");
        s.settle(now + Duration::from_secs(1));
        assert_eq!(s.visible().status, "RESCUE");
        assert!(s.check_metadata_write().is_err());
        assert!(s.stop(now, &t()).is_err());
        s.unrescue(now, &t()).expect("unrescue");
        assert_eq!(
            s.boots.iter().map(|b| b.from).collect::<Vec<_>>(),
            ["rescue", "disk"]
        );
    }
}
