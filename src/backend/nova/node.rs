//! One node's view of its Nova server: what Nova last said, what the BMC
//! has been asked to do, and the power state to report.
//!
//! Chassis commands are accepted here synchronously and queued, in order,
//! as intents for the node's worker: Ironic's reboot is "power off" then
//! "power on", and both must happen even if the second arrives before the
//! first is done. A command that repeats the last one queued is absorbed,
//! so a retransmitted or repeated command never becomes a second Nova call:
//! a power-on while one is queued, a cycle while a reboot is queued or in
//! flight, an NMI already pending. The reported power state is the state the
//! node is heading to: the target of the last accepted intent, else the
//! target of a task Nova has accepted (task_state), else Nova's power_state.

use std::collections::VecDeque;

use novabmc_proto::{BootOptions, ChassisControl, ChassisState};

use super::client::ServerInfo;
use crate::backend::BackendError;

/// Queued power operations per node; more are refused with "node busy"
/// (a console that keeps sending different operations faster than the
/// cloud can carry them out gets told so).
const MAX_QUEUED: usize = 8;

/// Whether the node's server has been found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Not yet (the cloud has not answered).
    Pending,
    /// Found.
    Found {
        /// Server UUID.
        id: String,
    },
    /// Missing, ambiguous or deleted; the message says which.
    Failed(String),
}

/// A power operation the worker is to carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// End up powered on.
    PowerOn,
    /// End up powered off (Nova has only a graceful stop).
    PowerOff,
    /// Reboot now (hard), from the device the boot flags select.
    Reboot,
    /// Deliver a diagnostic interrupt (NMI); needs the machine on.
    Nmi,
}

impl Intent {
    /// Power state once done.
    pub fn target_on(self) -> bool {
        !matches!(self, Intent::PowerOff)
    }

    /// Whether it changes the power state (an NMI does not).
    pub fn is_power(self) -> bool {
        !matches!(self, Intent::Nmi)
    }
}

/// Nova's view of the server, as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// API status.
    pub status: String,
    /// Task in progress.
    pub task_state: Option<String>,
    /// vm_state.
    pub vm_state: String,
    /// power_state.
    pub power_state: u8,
    /// Nova's `updated`.
    pub updated: Option<String>,
}

impl From<&ServerInfo> for Observed {
    fn from(s: &ServerInfo) -> Self {
        Observed {
            status: s.status.clone(),
            task_state: s.task_state.clone().filter(|t| !t.is_empty()),
            vm_state: s.vm_state.clone().unwrap_or_default(),
            power_state: s.power_state.unwrap_or(0),
            updated: s.updated.clone(),
        }
    }
}

impl Observed {
    /// Running now (ACTIVE, RESCUE and the like).
    pub fn running(&self) -> bool {
        self.power_state == 1
    }

    /// Whether a task is in progress.
    pub fn busy(&self) -> bool {
        self.task_state.is_some()
    }

    /// Rescued (booted from a rescue image).
    pub fn rescued(&self) -> bool {
        self.vm_state == "rescued"
    }

    /// The power state this server is heading to, counting the task Nova
    /// has accepted. A rebuild keeps the state it started in (Nova stops a
    /// stopped server again afterwards, passing through ACTIVE).
    pub fn heading_on(&self) -> bool {
        match self.task_state.as_deref() {
            Some("powering-on") => true,
            Some("powering-off") | Some("deleting") | Some("shelving") => false,
            Some(t) if t.starts_with("reboot") => true,
            Some(t) if t.starts_with("rebuild") => self.vm_state == "active",
            Some("rescuing") | Some("unrescuing") => true,
            Some("scheduling")
            | Some("spawning")
            | Some("networking")
            | Some("block_device_mapping") => true,
            _ => self.running(),
        }
    }
}

/// Everything the BMC knows about one node.
#[derive(Clone, Debug)]
pub struct NodeState {
    /// Node name, for logs.
    pub name: String,
    /// The configured server name or UUID.
    pub server_ref: String,
    /// Whether the server was found.
    pub resolution: Resolution,
    /// Nova's view, once read.
    pub observed: Option<Observed>,
    /// Boot options, once restored from the server's metadata.
    pub boot: Option<BootOptions>,
    /// The boot options changed and are not yet saved in Nova.
    pub boot_dirty: bool,
    /// The intent the worker is carrying out.
    pub running: Option<Intent>,
    /// Intents not yet started, oldest first.
    pub queue: VecDeque<Intent>,
    /// The server's UUID bytes, once found.
    pub uuid: Option<[u8; 16]>,
}

impl NodeState {
    /// A node whose server is not resolved yet.
    pub fn new(name: String, server_ref: String) -> Self {
        NodeState {
            name,
            server_ref,
            resolution: Resolution::Pending,
            observed: None,
            boot: None,
            boot_dirty: false,
            running: None,
            queue: VecDeque::new(),
            uuid: None,
        }
    }

    fn unavailable(&self) -> Option<BackendError> {
        match &self.resolution {
            Resolution::Failed(why) => Some(BackendError::Unavailable(why.clone())),
            _ => None,
        }
    }

    /// The power state to report.
    pub fn reported(&self) -> Result<ChassisState, BackendError> {
        if let Some(e) = self.unavailable() {
            return Err(e);
        }
        let fault = self.observed.as_ref().is_some_and(|o| o.status == "ERROR");
        if let Some(intent) = self.last_intent() {
            return Ok(ChassisState {
                power_on: intent.target_on(),
                power_fault: fault,
            });
        }
        match &self.observed {
            Some(o) => Ok(ChassisState {
                power_on: o.heading_on(),
                power_fault: fault,
            }),
            None => Err(BackendError::NotReady(format!(
                "server {} has not been read from the cloud yet",
                self.server_ref
            ))),
        }
    }

    /// The power intent that decides where the node is heading.
    pub fn last_intent(&self) -> Option<Intent> {
        self.queue
            .iter()
            .rev()
            .copied()
            .chain(self.running)
            .find(|i| i.is_power())
    }

    /// Whether the worker has nothing queued or running.
    pub fn idle(&self) -> bool {
        self.running.is_none() && self.queue.is_empty()
    }

    /// Accepts a chassis control; returns whether the worker has new work.
    pub fn accept(&mut self, control: ChassisControl) -> Result<bool, BackendError> {
        if let Some(e) = self.unavailable() {
            return Err(e);
        }
        // Where the node stands once everything already accepted is done.
        let heading_on = self.reported().map(|s| s.power_on).ok();
        let last = self.last_intent();
        let queued_reboot = last == Some(Intent::Reboot);
        let new = match control {
            ChassisControl::PowerUp => Intent::PowerOn,
            ChassisControl::PowerDown | ChassisControl::SoftShutdown => Intent::PowerOff,
            ChassisControl::PowerCycle | ChassisControl::HardReset => {
                if queued_reboot {
                    // A retransmitted or repeated cycle: the reboot already
                    // asked for covers it.
                    return Ok(false);
                }
                match heading_on {
                    // A cycle of a machine that is off powers it on (what
                    // MAAS expects); so does a reset, as Nova's hard reboot
                    // of a stopped server does.
                    Some(false) => Intent::PowerOn,
                    _ => Intent::Reboot,
                }
            }
            ChassisControl::DiagnosticInterrupt => {
                if heading_on == Some(false) {
                    return Err(BackendError::Unavailable(
                        "a diagnostic interrupt needs the machine powered on".into(),
                    ));
                }
                if self.queue.back() == Some(&Intent::Nmi)
                    || (self.queue.is_empty() && self.running == Some(Intent::Nmi))
                {
                    return Ok(false);
                }
                Intent::Nmi
            }
        };
        if new.is_power()
            && new != Intent::Reboot
            && last.map(Intent::target_on) == Some(new.target_on())
        {
            // Already heading there.
            return Ok(false);
        }
        if last.is_none()
            && new.is_power()
            && new != Intent::Reboot
            && self
                .observed
                .as_ref()
                .is_some_and(|o| !o.busy() && o.running() == new.target_on())
        {
            // Nova says it is already there: nothing to call.
            return Ok(false);
        }
        if self.queue.len() >= MAX_QUEUED {
            return Err(BackendError::NotReady(format!(
                "{} power operations are already queued for server {}",
                MAX_QUEUED, self.server_ref
            )));
        }
        self.queue.push_back(new);
        Ok(true)
    }

    /// Stores a new view from Nova.
    pub fn observe(&mut self, server: &ServerInfo) {
        if server.status == "DELETED" {
            self.resolution = Resolution::Failed(format!("server {} was deleted", server.id));
            self.queue.clear();
            self.running = None;
        }
        self.observed = Some(Observed::from(server));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: &str, task: Option<&str>, vm: &str, power: u8) -> ServerInfo {
        ServerInfo {
            id: "u".into(),
            name: "n".into(),
            status: status.into(),
            task_state: task.map(str::to_string),
            vm_state: Some(vm.into()),
            power_state: Some(power),
            metadata: Default::default(),
            image: serde_json::Value::Null,
            updated: None,
        }
    }

    fn node(status: &str, task: Option<&str>, vm: &str, power: u8) -> NodeState {
        let mut n = NodeState::new("n".into(), "s".into());
        n.resolution = Resolution::Found { id: "u".into() };
        n.observe(&server(status, task, vm, power));
        n
    }

    fn on(n: &NodeState) -> bool {
        n.reported().expect("reported").power_on
    }

    #[test]
    fn reports_the_state_nova_heads_to() {
        assert!(on(&node("SHUTOFF", Some("powering-on"), "stopped", 4)));
        assert!(!on(&node("ACTIVE", Some("powering-off"), "active", 1)));
        assert!(on(&node("SHUTOFF", Some("rebooting_hard"), "stopped", 4)));
        assert!(!on(&node("REBUILD", Some("rebuilding"), "stopped", 4)));
        assert!(
            !on(&node("ACTIVE", Some("powering-off"), "active", 1)),
            "tail of a stopped rebuild"
        );
        assert!(on(&node("RESCUE", None, "rescued", 1)));
        assert!(!on(&node("SHUTOFF", None, "stopped", 4)));
        let mut n = NodeState::new("n".into(), "s".into());
        assert!(matches!(n.reported(), Err(BackendError::NotReady(_))));
        n.resolution = Resolution::Failed("gone".into());
        assert!(matches!(n.reported(), Err(BackendError::Unavailable(_))));
    }

    #[test]
    fn accepted_intent_is_reported_at_once() {
        let mut n = node("SHUTOFF", None, "stopped", 4);
        assert_eq!(n.accept(ChassisControl::PowerUp), Ok(true));
        assert!(on(&n));
        assert_eq!(n.accept(ChassisControl::PowerUp), Ok(false), "absorbed");
        assert_eq!(n.accept(ChassisControl::PowerDown), Ok(true));
        assert!(!on(&n));
        // Both run, in order: Ironic's reboot is off then on.
        assert_eq!(n.queue, [Intent::PowerOn, Intent::PowerOff]);
    }

    #[test]
    fn repeated_cycles_make_one_reboot() {
        let mut n = node("ACTIVE", None, "active", 1);
        assert_eq!(n.accept(ChassisControl::PowerCycle), Ok(true));
        assert_eq!(n.accept(ChassisControl::PowerCycle), Ok(false));
        assert_eq!(n.accept(ChassisControl::HardReset), Ok(false));
        // The worker takes it; a retransmission while it runs is absorbed.
        n.running = n.queue.pop_front();
        assert_eq!(n.accept(ChassisControl::PowerCycle), Ok(false));
        assert_eq!(
            n.accept(ChassisControl::PowerUp),
            Ok(false),
            "already heading on"
        );
    }

    #[test]
    fn cycle_while_off_powers_on_and_nmi_needs_power() {
        let mut n = node("SHUTOFF", None, "stopped", 4);
        assert!(n.accept(ChassisControl::DiagnosticInterrupt).is_err());
        assert_eq!(n.accept(ChassisControl::PowerCycle), Ok(true));
        assert_eq!(n.queue, [Intent::PowerOn]);
        assert_eq!(n.accept(ChassisControl::DiagnosticInterrupt), Ok(true));
        assert_eq!(n.accept(ChassisControl::DiagnosticInterrupt), Ok(false));
        // Order is kept: the NMI comes after the power-on it followed, and
        // does not change where the node is heading.
        assert_eq!(n.queue, [Intent::PowerOn, Intent::Nmi]);
        assert!(on(&n));
        assert_eq!(n.accept(ChassisControl::PowerUp), Ok(false));
    }

    #[test]
    fn ironic_reboot_is_off_then_on() {
        let mut n = node("ACTIVE", None, "active", 1);
        assert_eq!(n.accept(ChassisControl::PowerDown), Ok(true));
        assert!(!on(&n));
        assert_eq!(n.accept(ChassisControl::PowerUp), Ok(true));
        assert!(on(&n));
        assert_eq!(n.queue, [Intent::PowerOff, Intent::PowerOn]);
    }

    #[test]
    fn queue_is_bounded() {
        let mut n = node("ACTIVE", None, "active", 1);
        for i in 0..MAX_QUEUED {
            let c = if i % 2 == 0 {
                ChassisControl::PowerDown
            } else {
                ChassisControl::PowerUp
            };
            assert_eq!(n.accept(c), Ok(true));
        }
        assert!(matches!(
            n.accept(ChassisControl::PowerCycle),
            Err(BackendError::NotReady(_))
        ));
    }

    #[test]
    fn no_call_when_nova_is_already_there() {
        let mut n = node("ACTIVE", None, "active", 1);
        assert_eq!(n.accept(ChassisControl::PowerUp), Ok(false));
        let mut n = node("SHUTOFF", None, "stopped", 4);
        assert_eq!(n.accept(ChassisControl::SoftShutdown), Ok(false));
        assert_eq!(n.accept(ChassisControl::PowerDown), Ok(false));
    }

    #[test]
    fn deletion_makes_the_node_unavailable() {
        let mut n = node("ACTIVE", None, "active", 1);
        n.observe(&server("DELETED", None, "deleted", 0));
        assert!(matches!(
            n.accept(ChassisControl::PowerUp),
            Err(BackendError::Unavailable(_))
        ));
    }
}
