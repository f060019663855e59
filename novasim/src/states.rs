//! The server states the simulator shows, as Nova spells them: the API
//! `status`, and the extended attributes `OS-EXT-STS:task_state`,
//! `OS-EXT-STS:vm_state` and `OS-EXT-STS:power_state` (Nova's
//! `nova/compute/{vm_states,task_states,power_state}.py`, as the compute
//! API shows them).
//!
//! Only the values the simulator's transitions walk through are named; a
//! state set through the control API (`PUT /_sim/servers/{id}/state`) may
//! be any other value Nova has, kept as it was given (`Other`). These are
//! the cloud's own facts: the daemon reads the same values with its own
//! types, and nothing here is shared with it.

use std::fmt;

/// Declares a string-valued Nova enum with an `Other` case that keeps
/// other values, plus `as_str`, `parse`, `Display` and serde impls.
macro_rules! nova_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// Any other value Nova has.
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

            /// Parses Nova's spelling; other values are kept.
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
        /// Deleted (only `changes-since` listings show these).
        Deleted = "DELETED",
        /// Failed; the server may still run.
        Error = "ERROR",
        /// A hard reboot of a running server is under way.
        HardReboot = "HARD_REBOOT",
        /// A soft reboot is under way.
        Reboot = "REBOOT",
        /// A rebuild is under way.
        Rebuild = "REBUILD",
        /// Booted from a rescue image.
        Rescue = "RESCUE",
        /// Stopped.
        Shutoff = "SHUTOFF",
    }
}

nova_enum! {
    /// `OS-EXT-STS:vm_state`: where the server is in its life, which is
    /// what Nova's 409 "while it is in vm_state X" refers to.
    VmState {
        /// Running.
        Active = "active",
        /// Stopped.
        Stopped = "stopped",
        /// Booted from a rescue image (its guest may have halted).
        Rescued = "rescued",
        /// Deleted.
        Deleted = "deleted",
        /// Failed.
        Error = "error",
    }
}

nova_enum! {
    /// `OS-EXT-STS:task_state`: the task Nova is carrying out; none when
    /// the server is settled.
    TaskState {
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
    }
}

/// `OS-EXT-STS:power_state`: what the hypervisor last reported, Nova's
/// integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerState {
    /// 0: no state (building, deleted).
    NoState,
    /// 1: running.
    Running,
    /// 4: shut down.
    Shutdown,
    /// Any other value Nova has (3 paused, 6 crashed, 7 suspended).
    Other(u8),
}

impl PowerState {
    /// Nova's integer.
    pub fn code(self) -> u8 {
        match self {
            PowerState::NoState => 0,
            PowerState::Running => 1,
            PowerState::Shutdown => 4,
            PowerState::Other(n) => n,
        }
    }

    /// From Nova's integer.
    pub fn from_code(n: u8) -> Self {
        match n {
            0 => PowerState::NoState,
            1 => PowerState::Running,
            4 => PowerState::Shutdown,
            other => PowerState::Other(other),
        }
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
    fn values_are_spelled_as_nova_does_and_others_are_kept() {
        assert_eq!(Status::parse("SHUTOFF"), Status::Shutoff);
        assert_eq!(Status::HardReboot.as_str(), "HARD_REBOOT");
        assert_eq!(Status::parse("PAUSED"), Status::Other("PAUSED".into()));
        assert_eq!(TaskState::parse("powering-off"), TaskState::PoweringOff);
        assert_eq!(VmState::parse("rescued"), VmState::Rescued);
        let v: TaskState = serde_json::from_str("\"reboot_started_hard\"").expect("parse");
        assert_eq!(v, TaskState::RebootStartedHard);
        assert_eq!(
            serde_json::to_string(&VmState::Other("shelved".into())).expect("json"),
            "\"shelved\""
        );
        let p: PowerState = serde_json::from_str("7").expect("parse");
        assert_eq!(p, PowerState::Other(7));
        assert_eq!(
            serde_json::to_string(&PowerState::Shutdown).expect("json"),
            "4"
        );
    }
}
