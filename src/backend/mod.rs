//! The machines behind the BMCs: what a backend must offer to the front
//! doors (IPMI's node tasks today, Redfish's handlers next), which reach a
//! node only through this trait and a [`Binding`].
//!
//! Every method is synchronous and returns at once: power state is read from
//! memory the backend keeps current, and power operations are accepted and
//! queued for the backend's own workers. A UDP task therefore never waits on
//! a cloud, and a reply leaves within microseconds however slow the cloud is.
//! Boot options live in the backend too, because it is the backend that
//! knows when a machine boots (and so when a one-time flag is used up), and
//! where they are persisted.

pub mod binding;
pub mod boot;
pub mod inventory;
pub mod nova;
pub mod power;
pub mod serial_console;
pub mod simulated;
pub mod telemetry;
pub mod virtual_media;

use std::sync::Arc;

use novabmc_proto::{BootOptions, BootParameterWrite, ChassisControl, ChassisState};
use tokio::sync::watch;

pub use binding::Binding;
pub use inventory::ServerInventory;

/// Index of a node in the configuration's node list.
pub type NodeId = usize;

/// Why a backend could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Not ready yet (server not resolved, cloud not reachable): the
    /// client should retry (IPMI: completion code C0, "node busy").
    #[error("not ready: {0}")]
    NotReady(String),
    /// The node cannot serve this at all (its server does not exist)
    /// (IPMI: D5, "not supported in present state").
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The command was not accepted because it could not be recorded
    /// where a restart would find it (the state directory cannot be
    /// written): refused rather than acknowledged and lost (IPMI: FF,
    /// "unspecified error").
    #[error("not recorded: {0}")]
    NotRecorded(String),
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

    /// Changes the node's boot options in one step under its lock:
    /// `change` sees the options as they are and returns the parameter
    /// write to apply. Returns the options after the change. Every front
    /// door changes boot options through this, so two protocols writing
    /// at once never undo half of each other.
    fn update_boot(
        &self,
        node: NodeId,
        change: &dyn Fn(&BootOptions) -> BootParameterWrite,
        mark_invalid: bool,
    ) -> Result<BootOptions, BackendError>;

    /// Stores one boot parameter.
    fn set_boot_parameter(
        &self,
        node: NodeId,
        write: BootParameterWrite,
        mark_invalid: bool,
    ) -> Result<(), BackendError> {
        self.update_boot(node, &|_| write, mark_invalid).map(|_| ())
    }

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
    fn console(
        &self,
        node: NodeId,
    ) -> Result<Arc<dyn serial_console::ConsoleSource>, BackendError> {
        let _ = node;
        Err(BackendError::Unavailable(
            "this backend has no serial consoles".into(),
        ))
    }

    /// The node's SOL settings as a front door last saved them
    /// ([`Backend::save_sol_settings`]); `None` when none were (a backend
    /// without a state directory keeps none).
    fn sol_settings(&self, node: NodeId) -> Option<Vec<u8>> {
        let _ = node;
        None
    }

    /// The node's virtual media devices and what is in them. A backend
    /// without virtual media keeps this default, and the front doors show
    /// no devices.
    fn virtual_media(&self, node: NodeId) -> Result<Vec<virtual_media::MediaView>, BackendError> {
        let _ = node;
        Err(BackendError::Unavailable(
            "this backend has no virtual media".into(),
        ))
    }

    /// Inserts media: checks the URL (within a bounded time), records the
    /// request where a restart finds it, and starts the fetch in the
    /// background. Returns once the medium is inserted (not yet loaded).
    fn insert_media(
        &self,
        node: NodeId,
        device: virtual_media::MediaDevice,
        request: virtual_media::MediaInsert,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), virtual_media::MediaError>> + Send + '_>,
    > {
        let _ = (node, device, request);
        Box::pin(async {
            Err(virtual_media::MediaError::Backend(
                BackendError::Unavailable("this backend has no virtual media".into()),
            ))
        })
    }

    /// Ejects media (ejecting an empty device is not an error). What the
    /// medium left in the cloud is removed in the background; the eject
    /// itself is recorded before this returns.
    fn eject_media(
        &self,
        node: NodeId,
        device: virtual_media::MediaDevice,
    ) -> Result<(), virtual_media::MediaError> {
        let _ = (node, device);
        Err(virtual_media::MediaError::Backend(
            BackendError::Unavailable("this backend has no virtual media".into()),
        ))
    }

    /// Keeps the node's SOL settings (what `sol set` changed) where a
    /// restart finds them.
    fn save_sol_settings(&self, node: NodeId, settings: &[u8]) -> Result<(), BackendError> {
        let _ = (node, settings);
        Ok(())
    }
}

/// The 16 bytes Get System GUID sends for a UUID, in the byte order IPMI
/// specifies (section 20.8: every field least significant byte first, which
/// for a UUID is its 16 bytes reversed).
pub fn uuid_to_ipmi_guid(uuid: [u8; 16]) -> [u8; 16] {
    let mut g = uuid;
    g.reverse();
    g
}
