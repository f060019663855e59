//! The machines behind the BMCs: what a backend must offer, and how the
//! engine's actions are carried out against it.
//!
//! Every method is synchronous and returns at once: power state is read from
//! memory the backend keeps current, and power operations are accepted and
//! queued for the backend's own workers. A UDP task therefore never waits on
//! a cloud, and a reply leaves within microseconds however slow the cloud is.
//! Boot options live in the backend too, because it is the backend that
//! knows when a machine boots (and so when a one-time flag is used up), and
//! where they are persisted.

pub mod console;
pub mod inventory;
pub mod nova;
pub mod simulated;

use std::sync::Arc;

use novabmc_proto::{
    Action, BootOptions, BootParameterWrite, ChassisControl, ChassisState, CompletionCode, Outcome,
};
use tokio::sync::watch;

pub use inventory::ServerInventory;

/// Index of a node in the configuration's node list.
pub type NodeId = usize;

/// Why a backend could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Not ready yet (server not resolved, cloud not reachable): the
    /// console should retry. Completion code C0, "node busy".
    #[error("not ready: {0}")]
    NotReady(String),
    /// The node cannot serve this at all (its server does not exist).
    /// Completion code D5, "not supported in present state".
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl BackendError {
    /// The completion code the console gets.
    pub fn completion_code(&self) -> CompletionCode {
        match self {
            BackendError::NotReady(_) => CompletionCode::NODE_BUSY,
            BackendError::Unavailable(_) => CompletionCode::NOT_SUPPORTED_IN_PRESENT_STATE,
        }
    }
}

/// The machines behind the BMCs.
pub trait Backend: Send + Sync + 'static {
    /// The power state to report: the state the machine is in, or the one
    /// it is heading to once a transition has been accepted.
    fn chassis_status(&self, node: NodeId) -> Result<ChassisState, BackendError>;

    /// Accepts a power operation; the backend carries it out in the
    /// background. Repeats of an operation already under way are absorbed.
    fn chassis_control(&self, node: NodeId, control: ChassisControl) -> Result<(), BackendError>;

    /// The node's boot options.
    fn boot_options(&self, node: NodeId) -> Result<BootOptions, BackendError>;

    /// Stores one boot parameter.
    fn set_boot_parameter(
        &self,
        node: NodeId,
        write: BootParameterWrite,
        mark_invalid: bool,
    ) -> Result<(), BackendError>;

    /// The GUID Get System GUID reports, as the 16 wire bytes.
    fn system_guid(&self, node: NodeId) -> Result<[u8; 16], BackendError>;

    /// The node's inventory for its FRU, on a channel the backend updates
    /// as it learns (`None` in it: not known yet). A backend without one
    /// returns `None`, and the node's FRU answers "node busy".
    fn inventory(&self, _node: NodeId) -> Option<watch::Receiver<Option<ServerInventory>>> {
        None
    }

    /// Whether a power operation was acknowledged and not yet carried out
    /// (for the metrics); a backend that acts at once has none.
    fn power_pending(&self, _node: NodeId) -> bool {
        false
    }

    /// The node's serial console, for Serial over LAN. A backend without
    /// consoles keeps this default; SOL then shows a notice and nothing
    /// else.
    fn console(&self, node: NodeId) -> Result<Arc<dyn console::ConsoleSource>, BackendError> {
        let _ = node;
        Err(BackendError::Unavailable(
            "this backend has no serial consoles".into(),
        ))
    }
}

/// Carries out one engine action.
pub fn run_action(backend: &dyn Backend, node: NodeId, action: Action) -> Outcome {
    let result = match action {
        Action::GetChassisStatus => backend.chassis_status(node).map(Outcome::Chassis),
        Action::ChassisControl(c) => backend.chassis_control(node, c).map(|()| {
            crate::metrics::record_control(c.name());
            Outcome::Done
        }),
        Action::GetBootOptions => backend.boot_options(node).map(Outcome::BootOptions),
        Action::SetBootParameter {
            write,
            mark_invalid,
        } => backend
            .set_boot_parameter(node, write, mark_invalid)
            .map(|()| Outcome::Done),
        Action::GetSystemGuid => backend.system_guid(node).map(Outcome::Guid),
        // The host's clock, not the backend's: the BMC's clock is the
        // machine it runs on.
        Action::ReadClock => Ok(Outcome::Clock(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )),
    };
    result.unwrap_or_else(|e| {
        tracing::debug!(node, error = %e, ?action, "action refused");
        Outcome::Failed(e.completion_code())
    })
}

/// The 16 bytes Get System GUID sends for a UUID, in the byte order IPMI
/// specifies (section 20.8: every field least significant byte first, which
/// for a UUID is its 16 bytes reversed).
pub fn uuid_to_ipmi_guid(uuid: [u8; 16]) -> [u8; 16] {
    let mut g = uuid;
    g.reverse();
    g
}
