//! Nova's server states as types: the API `status`, and the extended
//! attributes `OS-EXT-STS:task_state`, `OS-EXT-STS:vm_state` and
//! `OS-EXT-STS:power_state` (Nova's `nova/compute/{vm_states,task_states,
//! power_state}.py`, as the compute API shows them).
//!
//! Each value is written once, here, so the backend never compares string
//! or integer literals (the simulator spells the values it produces with
//! its own types: it never imports the daemon). Every enum keeps the values
//! it does not know (`Other`), because Nova adds states over time and a BMC
//! must not stop parsing servers when it does: an unknown task still counts
//! as a task in progress, an unknown status as "not a fault".

use std::fmt;

/// Declares a string-valued Nova enum with an `Other` case that keeps
/// unknown values, plus `as_str`, `parse`, `Display` and serde impls.
macro_rules! nova_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version of novabmc does not know.
            Other(String),
        }

        impl $name {
            /// The value as Nova spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(s) => s,
                }
            }

            /// Parses Nova's spelling; unknown values are kept.
            pub fn parse(s: &str) -> Self {
                match s {
                    $( $text => $name::$variant, )+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

nova_enum! {
    /// The API `status` of a server.
    Status {
        /// Running (or stopped in place of a task that ended).
        Active = "ACTIVE",
        /// Being created.
        Build = "BUILD",
        /// Deleted (only `changes-since` listings show these).
        Deleted = "DELETED",
        /// Failed; the server may still run.
        Error = "ERROR",
        /// A hard reboot of a running server is under way.
        HardReboot = "HARD_REBOOT",
        /// Live migration.
        Migrating = "MIGRATING",
        /// Password change.
        Password = "PASSWORD",
        /// Paused.
        Paused = "PAUSED",
        /// A soft reboot is under way.
        Reboot = "REBOOT",
        /// A rebuild is under way.
        Rebuild = "REBUILD",
        /// Booted from a rescue image.
        Rescue = "RESCUE",
        /// Resize.
        Resize = "RESIZE",
        /// Resize being reverted.
        RevertResize = "REVERT_RESIZE",
        /// Shelved.
        Shelved = "SHELVED",
        /// Shelved and offloaded from its host.
        ShelvedOffloaded = "SHELVED_OFFLOADED",
        /// Stopped.
        Shutoff = "SHUTOFF",
        /// Soft-deleted.
        SoftDeleted = "SOFT_DELETED",
        /// Suspended.
        Suspended = "SUSPENDED",
        /// Nova does not know.
        Unknown = "UNKNOWN",
        /// Resized, waiting for confirmation.
        VerifyResize = "VERIFY_RESIZE",
    }
}

nova_enum! {
    /// `OS-EXT-STS:vm_state`: where the server is in its life, which is
    /// what Nova's 409 "while it is in vm_state X" refers to.
    VmState {
        /// Running.
        Active = "active",
        /// Being created.
        Building = "building",
        /// Paused.
        Paused = "paused",
        /// Suspended.
        Suspended = "suspended",
        /// Stopped.
        Stopped = "stopped",
        /// Booted from a rescue image (its guest may have halted).
        Rescued = "rescued",
        /// Resized.
        Resized = "resized",
        /// Soft-deleted.
        SoftDeleted = "soft-delete",
        /// Deleted.
        Deleted = "deleted",
        /// Failed.
        Error = "error",
        /// Shelved.
        Shelved = "shelved",
        /// Shelved and offloaded.
        ShelvedOffloaded = "shelved_offloaded",
    }
}

nova_enum! {
    /// `OS-EXT-STS:task_state`: the task Nova is carrying out; none when
    /// the server is settled.
    TaskState {
        /// Scheduling (create).
        Scheduling = "scheduling",
        /// Block devices (create).
        BlockDeviceMapping = "block_device_mapping",
        /// Networking (create).
        Networking = "networking",
        /// Spawning (create).
        Spawning = "spawning",
        /// Soft reboot requested.
        Rebooting = "rebooting",
        /// Soft reboot pending on the compute host.
        RebootPending = "reboot_pending",
        /// Soft reboot started.
        RebootStarted = "reboot_started",
        /// Hard reboot requested.
        RebootingHard = "rebooting_hard",
        /// Hard reboot pending on the compute host.
        RebootPendingHard = "reboot_pending_hard",
        /// Hard reboot started.
        RebootStartedHard = "reboot_started_hard",
        /// os-stop under way.
        PoweringOff = "powering-off",
        /// os-start under way.
        PoweringOn = "powering-on",
        /// Rescue under way.
        Rescuing = "rescuing",
        /// Unrescue under way.
        Unrescuing = "unrescuing",
        /// Rebuild under way.
        Rebuilding = "rebuilding",
        /// Rebuild: block devices.
        RebuildBlockDeviceMapping = "rebuild_block_device_mapping",
        /// Rebuild: spawning.
        RebuildSpawning = "rebuild_spawning",
        /// Pausing.
        Pausing = "pausing",
        /// Unpausing.
        Unpausing = "unpausing",
        /// Suspending.
        Suspending = "suspending",
        /// Resuming.
        Resuming = "resuming",
        /// Migrating.
        Migrating = "migrating",
        /// Deleting.
        Deleting = "deleting",
        /// Soft-deleting.
        SoftDeleting = "soft-deleting",
        /// Restoring.
        Restoring = "restoring",
        /// Shelving.
        Shelving = "shelving",
        /// Shelving: offloading.
        ShelvingOffloading = "shelving_offloading",
        /// Unshelving.
        Unshelving = "unshelving",
    }
}

impl TaskState {
    /// Whether this task ends with the server running, when it is a power
    /// task; `None` for tasks that do not decide the power state (a rebuild
    /// ends in the state it started in).
    pub fn heads_on(&self) -> Option<bool> {
        use TaskState::*;
        match self {
            PoweringOn | Rebooting | RebootPending | RebootStarted | RebootingHard
            | RebootPendingHard | RebootStartedHard | Rescuing | Unrescuing | Scheduling
            | BlockDeviceMapping | Networking | Spawning | Unshelving | Resuming | Unpausing => {
                Some(true)
            }
            PoweringOff | Deleting | SoftDeleting | Shelving | ShelvingOffloading | Suspending
            | Pausing => Some(false),
            _ => None,
        }
    }
}

/// `OS-EXT-STS:power_state`: what the hypervisor last reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerState {
    /// 0: no state (building, deleted).
    NoState,
    /// 1: running.
    Running,
    /// 3: paused.
    Paused,
    /// 4: shut down.
    Shutdown,
    /// 6: crashed.
    Crashed,
    /// 7: suspended.
    Suspended,
    /// A value this version of novabmc does not know.
    Other(u8),
}

impl PowerState {
    /// Nova's integer.
    pub fn code(self) -> u8 {
        match self {
            PowerState::NoState => 0,
            PowerState::Running => 1,
            PowerState::Paused => 3,
            PowerState::Shutdown => 4,
            PowerState::Crashed => 6,
            PowerState::Suspended => 7,
            PowerState::Other(n) => n,
        }
    }

    /// From Nova's integer.
    pub fn from_code(n: u8) -> Self {
        match n {
            0 => PowerState::NoState,
            1 => PowerState::Running,
            3 => PowerState::Paused,
            4 => PowerState::Shutdown,
            6 => PowerState::Crashed,
            7 => PowerState::Suspended,
            other => PowerState::Other(other),
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            PowerState::NoState => "NOSTATE",
            PowerState::Running => "Running",
            PowerState::Paused => "Paused",
            PowerState::Shutdown => "Shutdown",
            PowerState::Crashed => "Crashed",
            PowerState::Suspended => "Suspended",
            PowerState::Other(n) => return write!(f, "power_state {n}"),
        };
        f.write_str(name)
    }
}

impl serde::Serialize for PowerState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for PowerState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PowerState::from_code(
            <u8 as serde::Deserialize>::deserialize(d)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip_and_unknown_ones_are_kept() {
        assert_eq!(Status::parse("SHUTOFF"), Status::Shutoff);
        assert_eq!(Status::Shutoff.as_str(), "SHUTOFF");
        assert_eq!(
            Status::parse("HIBERNATED"),
            Status::Other("HIBERNATED".into())
        );
        assert_eq!(TaskState::parse("powering-off"), TaskState::PoweringOff);
        assert_eq!(VmState::parse("rescued"), VmState::Rescued);
        let v: TaskState = serde_json::from_str("\"reboot_started_hard\"").expect("parse");
        assert_eq!(v, TaskState::RebootStartedHard);
        assert_eq!(
            serde_json::to_string(&TaskState::Other("x".into())).expect("json"),
            "\"x\""
        );
        let p: PowerState = serde_json::from_str("9").expect("parse");
        assert_eq!(p, PowerState::Other(9));
        assert_eq!(PowerState::from_code(4), PowerState::Shutdown);
        assert_eq!(
            serde_json::to_string(&PowerState::Running).expect("json"),
            "1"
        );
    }

    #[test]
    fn power_tasks_say_where_they_lead() {
        assert_eq!(TaskState::PoweringOn.heads_on(), Some(true));
        assert_eq!(TaskState::RebootStartedHard.heads_on(), Some(true));
        assert_eq!(TaskState::PoweringOff.heads_on(), Some(false));
        assert_eq!(TaskState::Rebuilding.heads_on(), None);
        assert_eq!(TaskState::Other("new".into()).heads_on(), None);
    }
}
