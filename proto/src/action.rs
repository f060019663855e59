//! What the engine asks of the machine behind it, and what it gets back.
//!
//! The engine never touches the machine. A command that needs the machine's
//! state or changes it becomes an [`Action`]; the daemon carries it out
//! against its backend and hands the [`Outcome`] back with
//! [`Bmc::complete_action`](crate::Bmc::complete_action), and only then is
//! the reply sent. A backend that answers from memory completes actions in
//! the same turn, so this costs nothing; one that must wait keeps the
//! console's retransmissions from running the action twice, because a
//! request whose action is in flight is not dispatched again.

use crate::boot_options::{BootOptions, BootParameterWrite};
use crate::wire::ids::CompletionCode;

/// Identifies an action until it is completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId(pub u64);

/// Chassis Control operations (IPMI v2.0 section 28.3, table 28-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChassisControl {
    /// 0: power down (hard).
    PowerDown,
    /// 1: power up.
    PowerUp,
    /// 2: power cycle.
    PowerCycle,
    /// 3: hard reset.
    HardReset,
    /// 4: pulse a diagnostic interrupt (NMI).
    DiagnosticInterrupt,
    /// 5: soft shutdown via ACPI.
    SoftShutdown,
}

impl ChassisControl {
    /// Decodes the request byte (bits 3..0).
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b & 0x0f {
            0 => Self::PowerDown,
            1 => Self::PowerUp,
            2 => Self::PowerCycle,
            3 => Self::HardReset,
            4 => Self::DiagnosticInterrupt,
            5 => Self::SoftShutdown,
            _ => return None,
        })
    }

    /// The request byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::PowerDown => 0,
            Self::PowerUp => 1,
            Self::PowerCycle => 2,
            Self::HardReset => 3,
            Self::DiagnosticInterrupt => 4,
            Self::SoftShutdown => 5,
        }
    }

    /// The word ipmitool prints for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::PowerDown => "off",
            Self::PowerUp => "on",
            Self::PowerCycle => "cycle",
            Self::HardReset => "reset",
            Self::DiagnosticInterrupt => "diag",
            Self::SoftShutdown => "soft",
        }
    }
}

/// Something the engine needs done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Report the power state: answer with [`Outcome::Chassis`].
    GetChassisStatus,
    /// Start a power operation; answer [`Outcome::Done`] once it has been
    /// accepted (not finished).
    ChassisControl(ChassisControl),
    /// Report the boot options: answer with [`Outcome::BootOptions`].
    GetBootOptions,
    /// Store a boot parameter; answer [`Outcome::Done`].
    SetBootParameter {
        /// The accepted write.
        write: BootParameterWrite,
        /// Whether the parameter is to be marked invalid/locked.
        mark_invalid: bool,
    },
    /// Report the system GUID: answer with [`Outcome::Guid`].
    GetSystemGuid,
    /// Read the host's wall clock (the SEL time): answer with
    /// [`Outcome::Clock`].
    ReadClock,
}

/// The power state the engine reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChassisState {
    /// Power is on, or a transition to on has been accepted.
    pub power_on: bool,
    /// The machine is in a fault state (for a cloud server: ERROR).
    pub power_fault: bool,
}

/// The result of an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// For [`Action::GetChassisStatus`].
    Chassis(ChassisState),
    /// For [`Action::GetBootOptions`].
    BootOptions(BootOptions),
    /// For [`Action::GetSystemGuid`]: the 16 bytes as sent on the wire.
    Guid([u8; 16]),
    /// For [`Action::ReadClock`]: seconds since 1970-01-01 UTC.
    Clock(u64),
    /// For actions that only need an acknowledgement.
    Done,
    /// The action failed; the console gets this completion code.
    Failed(CompletionCode),
}
