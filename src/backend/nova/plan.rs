//! What the worker does next, decided from the record and Nova's settled
//! state alone: a pure function, so every case is a table row in the tests.
//!
//! A boot is a short recipe of calls chosen from the server's state, the
//! boot device and the node's network boot mode ([`boot_recipe`]): a start
//! or hard reboot from disk; for a network boot a rebuild or rescue with
//! the iPXE image, or OVB's `libvirt:pxe-first` metadata then a start or
//! reboot. The worker carries a recipe out one call at a time and plans
//! again after each, from the state Nova reaches; a recipe is dropped when
//! the record stops asking for "on".
//!
//! Nova cannot stop a rescued server, nor start one whose rescued guest has
//! halted (409 for vm_state rescued): both unrescue first, which boots the
//! root disk.

use novabmc_proto::BootDevice;

use super::NetworkBoot;
use super::media::MediaBoot;
use super::node::{Desired, Nmi, Observed, Power};

/// One call the worker makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
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
    /// Rescue with the inserted CD's image.
    RescueMedia,
    /// Rebuild with the inserted CD's image.
    RebuildMedia,
    /// Unrescue.
    Unrescue,
    /// trigger_crash_dump (microversion 2.17).
    CrashDump,
    /// Set (`true`) or clear `libvirt:pxe-first`.
    PxeFirst(bool),
}

/// The worker's next move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nova runs a task: wait for it to end, then plan again.
    Wait,
    /// Everything acknowledged has been carried out. `dropped_nmi` says an
    /// NMI could not be delivered because the machine is off.
    Done {
        /// An NMI was pending but the machine is not running.
        dropped_nmi: bool,
    },
    /// Deliver the pending NMI.
    Nmi,
    /// Stop the machine (or unrescue it first).
    PowerOff(Call),
    /// Boot the machine: these calls, in order, using up the boot device
    /// they were chosen for.
    Boot(Vec<Call>),
}

/// The next move for record `d` with Nova in state `o`, `device` being the
/// device a boot would use now. `recipe` is what remains of a boot already
/// begun (it is continued while the record still asks for "on"). `media`
/// says how a boot from the CD is made, when the device is the CD and
/// media is ready in it (with the tray empty the worker passes the disk).
pub fn next(
    d: &Desired,
    o: &Observed,
    device: BootDevice,
    mode: NetworkBoot,
    recipe: &[Call],
    media: Option<MediaBoot>,
) -> Plan {
    if o.busy() {
        return Plan::Wait;
    }
    let running = o.running();
    if d.power == Power::On && !recipe.is_empty() {
        return Plan::Boot(recipe.to_vec());
    }
    if d.nmi == Some(Nmi::Now) && running {
        return Plan::Nmi;
    }
    match d.power {
        Power::Off if o.rescued() => Plan::PowerOff(Call::Unrescue),
        Power::Off if running => Plan::PowerOff(Call::Stop),
        Power::Off => Plan::Done {
            dropped_nmi: d.nmi.is_some(),
        },
        Power::On if running && !d.reboot => match d.nmi {
            Some(_) => Plan::Nmi,
            None => Plan::Done { dropped_nmi: false },
        },
        Power::On => Plan::Boot(match media {
            Some(how) => media_recipe(o, how),
            None => boot_recipe(o, device, mode),
        }),
    }
}

/// The calls that boot the machine from the inserted CD, from state `o`.
/// Nova rescues an active or stopped server (and boots it), not a rescued
/// one: that is unrescued first.
pub fn media_recipe(o: &Observed, how: MediaBoot) -> Vec<Call> {
    match (how, o.rescued(), o.running()) {
        (MediaBoot::Rescue, true, _) => vec![Call::Unrescue, Call::RescueMedia],
        (MediaBoot::Rescue, false, _) => vec![Call::RescueMedia],
        (MediaBoot::Rebuild, true, _) => vec![Call::Unrescue, Call::RebuildMedia],
        (MediaBoot::Rebuild, false, true) => vec![Call::RebuildMedia],
        // Nova rebuilds a stopped server and leaves it stopped.
        (MediaBoot::Rebuild, false, false) => vec![Call::RebuildMedia, Call::Start],
    }
}

/// The calls that boot the machine from `device`, from state `o`.
pub fn boot_recipe(o: &Observed, device: BootDevice, mode: NetworkBoot) -> Vec<Call> {
    let network = device.is_network();
    if o.rescued() {
        // Unrescue boots the root disk; a network boot follows it.
        return match (network, mode) {
            (false, _) => vec![Call::Unrescue],
            (true, NetworkBoot::Rescue) => vec![Call::Unrescue, Call::Rescue],
            (true, NetworkBoot::Rebuild) => vec![Call::Unrescue, Call::Rebuild],
            (true, NetworkBoot::Metadata) => {
                vec![Call::Unrescue, Call::PxeFirst(true), Call::HardReboot]
            }
        };
    }
    let running = o.running();
    if !running && o.failed() && !network {
        // Nova starts only stopped servers; a hard reboot also starts one
        // in ERROR.
        return vec![Call::HardReboot];
    }
    match (network, mode, running) {
        (true, NetworkBoot::Rebuild, true) => vec![Call::Rebuild],
        // Nova rebuilds a stopped server and leaves it stopped.
        (true, NetworkBoot::Rebuild, false) => vec![Call::Rebuild, Call::Start],
        (true, NetworkBoot::Rescue, _) => vec![Call::Rescue],
        (true, NetworkBoot::Metadata, true) => vec![Call::PxeFirst(true), Call::HardReboot],
        (true, NetworkBoot::Metadata, false) => vec![Call::PxeFirst(true), Call::Start],
        (false, NetworkBoot::Metadata, true) => vec![Call::PxeFirst(false), Call::HardReboot],
        (false, NetworkBoot::Metadata, false) => vec![Call::PxeFirst(false), Call::Start],
        (false, _, true) => vec![Call::HardReboot],
        (false, _, false) => vec![Call::Start],
    }
}

impl Observed {
    /// A rescued server whose guest has halted: Nova shows it RESCUE with
    /// power_state SHUTDOWN, and refuses os-start for vm_state rescued.
    pub fn rescued_and_halted(&self) -> bool {
        self.rescued() && !self.running()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nova::states::{PowerState, Status, TaskState, VmState};
    use tokio::time::Instant;

    fn obs(status: Status, vm: VmState, power: PowerState) -> Observed {
        Observed {
            status,
            task_state: None,
            vm_state: Some(vm),
            power_state: power,
            pxe_first: None,
            owner: None,
            updated: None,
        }
    }

    fn active() -> Observed {
        obs(Status::Active, VmState::Active, PowerState::Running)
    }
    fn shutoff() -> Observed {
        obs(Status::Shutoff, VmState::Stopped, PowerState::Shutdown)
    }
    fn rescued() -> Observed {
        obs(Status::Rescue, VmState::Rescued, PowerState::Running)
    }
    fn rescued_halted() -> Observed {
        obs(Status::Rescue, VmState::Rescued, PowerState::Shutdown)
    }

    fn want(power: Power, reboot: bool, nmi: Option<Nmi>) -> Desired {
        Desired {
            power,
            reboot,
            nmi,
            changed: Instant::now(),
            changed_unix_ms: 0,
            generation: 1,
        }
    }

    use BootDevice::{Disk, NoOverride, Pxe};
    use NetworkBoot::{Metadata, Rebuild, Rescue};

    #[test]
    fn power_table() {
        let on = want(Power::On, false, None);
        let reboot = want(Power::On, true, None);
        let off = want(Power::Off, false, None);
        let done = Plan::Done { dropped_nmi: false };
        let rows: &[(&Desired, Observed, BootDevice, NetworkBoot, Plan)] = &[
            (&on, active(), Pxe, Rebuild, done.clone()),
            (
                &on,
                shutoff(),
                NoOverride,
                Rebuild,
                Plan::Boot(vec![Call::Start]),
            ),
            (
                &on,
                shutoff(),
                Pxe,
                Rebuild,
                Plan::Boot(vec![Call::Rebuild, Call::Start]),
            ),
            (&on, shutoff(), Pxe, Rescue, Plan::Boot(vec![Call::Rescue])),
            (
                &on,
                shutoff(),
                Pxe,
                Metadata,
                Plan::Boot(vec![Call::PxeFirst(true), Call::Start]),
            ),
            (
                &on,
                shutoff(),
                Disk,
                Metadata,
                Plan::Boot(vec![Call::PxeFirst(false), Call::Start]),
            ),
            (
                &reboot,
                active(),
                Disk,
                Rebuild,
                Plan::Boot(vec![Call::HardReboot]),
            ),
            (
                &reboot,
                active(),
                Pxe,
                Rebuild,
                Plan::Boot(vec![Call::Rebuild]),
            ),
            (
                &reboot,
                active(),
                Pxe,
                Metadata,
                Plan::Boot(vec![Call::PxeFirst(true), Call::HardReboot]),
            ),
            (&on, rescued(), Pxe, Rescue, done.clone()),
            (
                &reboot,
                rescued(),
                Pxe,
                Rescue,
                Plan::Boot(vec![Call::Unrescue, Call::Rescue]),
            ),
            (
                &reboot,
                rescued(),
                Disk,
                Rescue,
                Plan::Boot(vec![Call::Unrescue]),
            ),
            // A rescued server whose guest halted: Nova refuses os-start,
            // so a disk boot unrescues it.
            (
                &on,
                rescued_halted(),
                NoOverride,
                Rescue,
                Plan::Boot(vec![Call::Unrescue]),
            ),
            (
                &off,
                rescued(),
                Disk,
                Rescue,
                Plan::PowerOff(Call::Unrescue),
            ),
            (
                &off,
                rescued_halted(),
                Disk,
                Rescue,
                Plan::PowerOff(Call::Unrescue),
            ),
            (&off, active(), Disk, Rebuild, Plan::PowerOff(Call::Stop)),
            (&off, shutoff(), Pxe, Rebuild, done.clone()),
        ];
        for (d, o, device, mode, plan) in rows {
            assert_eq!(
                &next(d, o, *device, *mode, &[], None),
                plan,
                "{d:?} {o:?} {device:?} {mode:?}"
            );
        }
    }

    #[test]
    fn a_cd_boot_rescues_once_and_a_disk_boot_unrescues() {
        let on = want(Power::On, false, None);
        let reboot = want(Power::On, true, None);
        let media = Some(MediaBoot::Rescue);
        let cd = BootDevice::Cdrom;
        assert_eq!(
            next(&on, &shutoff(), cd, Rebuild, &[], media),
            Plan::Boot(vec![Call::RescueMedia])
        );
        assert_eq!(
            next(&reboot, &active(), cd, Rebuild, &[], media),
            Plan::Boot(vec![Call::RescueMedia])
        );
        // Booted from the CD: "on" again is nothing, a reboot rescues again.
        assert_eq!(
            next(&on, &rescued(), cd, Rebuild, &[], media),
            Plan::Done { dropped_nmi: false }
        );
        assert_eq!(
            next(&reboot, &rescued(), cd, Rebuild, &[], media),
            Plan::Boot(vec![Call::Unrescue, Call::RescueMedia])
        );
        // The one-time override used up: the next boot is the disk's.
        assert_eq!(
            next(&reboot, &rescued(), NoOverride, Rebuild, &[], None),
            Plan::Boot(vec![Call::Unrescue])
        );
        assert_eq!(
            next(&on, &shutoff(), cd, Rebuild, &[], Some(MediaBoot::Rebuild)),
            Plan::Boot(vec![Call::RebuildMedia, Call::Start])
        );
    }

    #[test]
    fn nmi_order_and_drop() {
        let o = active();
        let nmi_then_off = want(Power::Off, false, Some(Nmi::Now));
        assert_eq!(next(&nmi_then_off, &o, Disk, Rebuild, &[], None), Plan::Nmi);
        let after_boot = want(Power::On, true, Some(Nmi::AfterBoot));
        assert_eq!(
            next(&after_boot, &o, Disk, Rebuild, &[], None),
            Plan::Boot(vec![Call::HardReboot])
        );
        let booted = want(Power::On, false, Some(Nmi::AfterBoot));
        assert_eq!(next(&booted, &o, Disk, Rebuild, &[], None), Plan::Nmi);
        let off = want(Power::Off, false, Some(Nmi::Now));
        assert_eq!(
            next(&off, &shutoff(), Disk, Rebuild, &[], None),
            Plan::Done { dropped_nmi: true }
        );
    }

    #[test]
    fn a_recipe_continues_while_on_is_wanted_and_waits_for_tasks() {
        let on = want(Power::On, false, None);
        let off = want(Power::Off, false, None);
        let rest = [Call::Start];
        assert_eq!(
            next(&on, &shutoff(), NoOverride, Rebuild, &rest, None),
            Plan::Boot(vec![Call::Start])
        );
        assert_eq!(
            next(&off, &shutoff(), NoOverride, Rebuild, &rest, None),
            Plan::Done { dropped_nmi: false },
            "an off in the middle drops the rest of the boot"
        );
        let mut busy = active();
        busy.task_state = Some(TaskState::RebootingHard);
        assert_eq!(next(&off, &busy, Disk, Rebuild, &[], None), Plan::Wait);
    }
}
