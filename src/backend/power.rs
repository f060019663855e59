//! Power as any front door asks for it: the reset types Redfish names
//! (DSP0268 `ResetType`) mapped onto the node's convergent power
//! machinery, the same one IPMI's chassis controls drive. A request is
//! accepted at once and carried out by the backend; it is never refused
//! because the cloud is busy.

use novabmc_proto::ChassisControl;

use super::{Backend, BackendError, NodeId};

/// A power request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerRequest {
    /// Turn on.
    On,
    /// Turn on (the same as `On` for a machine with no standby state).
    ForceOn,
    /// Turn off at once.
    ForceOff,
    /// Shut down through the operating system, then off.
    GracefulShutdown,
    /// Restart at once.
    ForceRestart,
    /// Restart; a Nova server is restarted with a hard reboot, as
    /// `ForceRestart` (Nova's soft reboot falls back to hard anyway, and
    /// one path keeps the machinery's guarantees).
    GracefulRestart,
    /// Off then on; a machine that is off is turned on.
    PowerCycle,
    /// A non-maskable interrupt (Nova's crash dump).
    Nmi,
}

impl PowerRequest {
    /// Every request, in the order a client is shown them.
    pub const ALL: [PowerRequest; 8] = [
        PowerRequest::On,
        PowerRequest::ForceOff,
        PowerRequest::GracefulShutdown,
        PowerRequest::GracefulRestart,
        PowerRequest::ForceRestart,
        PowerRequest::Nmi,
        PowerRequest::ForceOn,
        PowerRequest::PowerCycle,
    ];

    /// The chassis control that drives the machinery the same way.
    pub fn control(self) -> ChassisControl {
        match self {
            PowerRequest::On | PowerRequest::ForceOn => ChassisControl::PowerUp,
            PowerRequest::ForceOff => ChassisControl::PowerDown,
            PowerRequest::GracefulShutdown => ChassisControl::SoftShutdown,
            PowerRequest::ForceRestart | PowerRequest::GracefulRestart => ChassisControl::HardReset,
            PowerRequest::PowerCycle => ChassisControl::PowerCycle,
            PowerRequest::Nmi => ChassisControl::DiagnosticInterrupt,
        }
    }
}

/// Whether the machine is on, counting a transition already accepted.
pub fn is_on(backend: &dyn Backend, node: NodeId) -> Result<bool, BackendError> {
    backend.chassis_status(node).map(|s| s.power_on)
}

/// Hands `request` to the node's machinery; returns the chassis control it
/// became, for the metrics.
pub fn request(
    backend: &dyn Backend,
    node: NodeId,
    request: PowerRequest,
) -> Result<ChassisControl, BackendError> {
    let control = request.control();
    backend.chassis_control(node, control).map(|()| control)
}
