//! The engine's actions carried out against the backend: what a chassis,
//! boot-option or GUID command (IPMI 2.0 sections 28.2-28.13, 22.14) asks
//! of the node, and the completion code a refusal becomes.
//!
//! The backend speaks of nodes, not of IPMI: this is where its answers
//! and its errors take IPMI's shape.

use novabmc_proto::{Action, CompletionCode, Outcome};

use crate::backend::{Backend, BackendError, NodeId};
use crate::metrics::Recorder;

/// Carries out one engine action; an accepted chassis control is counted
/// in `recorder`.
pub fn run(backend: &dyn Backend, node: NodeId, action: Action, recorder: &Recorder) -> Outcome {
    let result = match action {
        Action::GetChassisStatus => backend.chassis_status(node).map(Outcome::Chassis),
        Action::ChassisControl(c) => backend.chassis_control(node, c).map(|()| {
            recorder.control(c.name());
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
        Outcome::Failed(completion_code(&e))
    })
}

/// The completion code a console gets for a backend's refusal.
pub fn completion_code(e: &BackendError) -> CompletionCode {
    match e {
        // Not ready yet: the console should retry.
        BackendError::NotReady(_) => CompletionCode::NODE_BUSY,
        // The node cannot serve this at all (its server does not exist).
        BackendError::Unavailable(_) => CompletionCode::NOT_SUPPORTED_IN_PRESENT_STATE,
        // It could not be recorded, so it was not accepted.
        BackendError::NotRecorded(_) => CompletionCode::UNSPECIFIED,
    }
}
