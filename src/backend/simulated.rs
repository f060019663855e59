//! An in-process simulated cloud: machines that take a realistic moment to
//! power on and off, with boot options and a one-time boot device that is
//! used up by the boot it applied to.
//!
//! It exists so that the engine and daemon can be exercised end to end
//! without any cloud, and so tests can look at what a machine did (how many
//! times it booted, and from which device). State changes are computed from
//! the clock when read, so the simulation needs no timers or tasks.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use novabmc_proto::{BootDevice, BootOptions, BootParameterWrite, ChassisControl, ChassisState};
use rand::RngExt;

use super::inventory::format_uuid;
use super::{Backend, BackendError, NodeId, ServerInventory, uuid_to_ipmi_guid};

/// The simulated cloud's settings (`[backend] type = "simulated"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedConfig {
    /// How long a machine takes to power on.
    pub power_on: Duration,
    /// How long a machine takes to power off.
    pub power_off: Duration,
    /// Whether machines have EFI firmware.
    pub efi: bool,
}

impl Default for SimulatedConfig {
    /// About as long as a small VM takes to start and stop.
    fn default() -> Self {
        SimulatedConfig {
            power_on: Duration::from_millis(1500),
            power_off: Duration::from_millis(800),
            efi: true,
        }
    }
}

/// One simulated machine: its node's name, its server's name, and its
/// firmware if the node sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedNode {
    /// The node's name.
    pub name: String,
    /// The server name the inventory shows.
    pub server: String,
    /// EFI firmware, overriding [`SimulatedConfig::efi`].
    pub efi: Option<bool>,
}

/// Where a simulated machine's power is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Power {
    Off,
    On,
    PoweringOn { until: Instant },
    PoweringOff { until: Instant },
    Rebooting { until: Instant },
}

impl Power {
    fn settle(self, now: Instant) -> Power {
        match self {
            Power::PoweringOn { until } | Power::Rebooting { until } if now >= until => Power::On,
            Power::PoweringOff { until } if now >= until => Power::Off,
            p => p,
        }
    }

    /// The state to report: where the machine is heading.
    fn reported_on(self) -> bool {
        matches!(
            self,
            Power::On | Power::PoweringOn { .. } | Power::Rebooting { .. }
        )
    }
}

/// A boot the simulation recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRecord {
    /// The device the boot used.
    pub device: BootDevice,
    /// Whether it was an EFI boot.
    pub efi: bool,
}

#[derive(Clone, Debug)]
struct Machine {
    name: String,
    uuid: [u8; 16],
    power: Power,
    boot: BootOptions,
    boots: Vec<BootRecord>,
    nmis: u32,
}

/// The flavor every simulated machine has.
pub const FLAVOR: &str = "simulated";

/// The simulated cloud.
#[derive(Debug)]
pub struct Simulated {
    config: SimulatedConfig,
    machines: Vec<Mutex<Machine>>,
    /// Each machine's inventory, known from the start: its UUID, the
    /// node's server name and [`FLAVOR`].
    inventories: Vec<tokio::sync::watch::Sender<Option<ServerInventory>>>,
}

impl Simulated {
    /// One powered-off machine per node.
    pub fn new(config: SimulatedConfig, nodes: &[SimulatedNode]) -> Self {
        let mut rng = rand::rng();
        let machines = nodes
            .iter()
            .map(|n| {
                let mut uuid: [u8; 16] = rng.random();
                // A random (version 4, RFC 4122 variant) UUID, as Nova makes.
                uuid[6] = (uuid[6] & 0x0f) | 0x40;
                uuid[8] = (uuid[8] & 0x3f) | 0x80;
                Mutex::new(Machine {
                    name: n.name.clone(),
                    uuid,
                    power: Power::Off,
                    boot: BootOptions::new(n.efi.unwrap_or(config.efi)),
                    boots: Vec::new(),
                    nmis: 0,
                })
            })
            .collect::<Vec<_>>();
        let inventories = nodes
            .iter()
            .zip(&machines)
            .map(|(n, m)| {
                let uuid = m.lock().unwrap_or_else(|e| e.into_inner()).uuid;
                tokio::sync::watch::Sender::new(Some(ServerInventory {
                    uuid: format_uuid(uuid),
                    name: n.server.clone(),
                    flavor: FLAVOR.to_string(),
                    macs: vec![simulated_mac(uuid)],
                    secure_boot: Some(false),
                }))
            })
            .collect();
        Simulated {
            config,
            machines,
            inventories,
        }
    }

    /// The same machines for a new list of nodes (a reload): a node of
    /// the same name keeps its machine (power, boot options, UUID), a new
    /// node gets a new one, powered off.
    pub fn reloaded(&self, config: SimulatedConfig, nodes: &[SimulatedNode]) -> Self {
        let mut fresh = Simulated::new(config, nodes);
        let old: std::collections::HashMap<String, Machine> = self
            .machines
            .iter()
            .map(|m| {
                let m = m.lock().unwrap_or_else(|e| e.into_inner()).clone();
                (m.name.clone(), m)
            })
            .collect();
        for (slot, inventory) in fresh.machines.iter_mut().zip(&fresh.inventories) {
            let m = slot.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some(kept) = old.get(&m.name) {
                *m = kept.clone();
                // The kept machine's UUID, in the inventory too.
                inventory.send_modify(|i| {
                    if let Some(i) = i {
                        i.uuid = format_uuid(m.uuid);
                    }
                });
            }
        }
        fresh
    }

    fn machine(&self, node: NodeId) -> Result<std::sync::MutexGuard<'_, Machine>, BackendError> {
        let m = self
            .machines
            .get(node)
            .ok_or_else(|| BackendError::Unavailable(format!("no node {node}")))?;
        // A poisoned lock means a panic elsewhere; the machine's state is
        // still plain data, so keep serving it.
        Ok(m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The boots a machine made so far.
    pub fn boots(&self, node: NodeId) -> Vec<BootRecord> {
        self.machine(node)
            .map(|m| m.boots.clone())
            .unwrap_or_default()
    }

    /// Diagnostic interrupts a machine received.
    pub fn nmis(&self, node: NodeId) -> u32 {
        self.machine(node).map(|m| m.nmis).unwrap_or_default()
    }

    /// The machine's UUID, as a cloud would show it.
    pub fn uuid(&self, node: NodeId) -> Option<[u8; 16]> {
        self.machine(node).ok().map(|m| m.uuid)
    }
}

impl Machine {
    fn boot(&mut self) {
        let (device, efi) = self.boot.take_boot_device();
        tracing::info!(node = %self.name, ?device, efi, "simulated machine boots");
        self.boots.push(BootRecord { device, efi });
    }
}

impl Backend for Simulated {
    /// A login prompt and a line-echo shell, so SOL can be tried.
    fn console(
        &self,
        node: NodeId,
    ) -> Result<std::sync::Arc<dyn super::serial_console::ConsoleSource>, BackendError> {
        let name = self.machine(node)?.name.clone();
        Ok(std::sync::Arc::new(super::serial_console::LocalShell {
            name,
        }))
    }

    fn chassis_status(&self, node: NodeId) -> Result<ChassisState, BackendError> {
        let mut m = self.machine(node)?;
        m.power = m.power.settle(Instant::now());
        Ok(ChassisState {
            power_on: m.power.reported_on(),
            power_fault: false,
        })
    }

    fn chassis_control(&self, node: NodeId, control: ChassisControl) -> Result<(), BackendError> {
        let now = Instant::now();
        let on = self.config.power_on;
        let off = self.config.power_off;
        let mut m = self.machine(node)?;
        m.power = m.power.settle(now);
        tracing::info!(node = %m.name, control = control.name(), "chassis control");
        let next = match (control, m.power) {
            (ChassisControl::PowerUp, Power::Off)
            | (ChassisControl::PowerCycle | ChassisControl::HardReset, Power::Off) => {
                m.boot();
                Power::PoweringOn { until: now + on }
            }
            (ChassisControl::PowerUp, Power::PoweringOff { until }) => {
                m.boot();
                Power::PoweringOn {
                    until: until.max(now) + on,
                }
            }
            (ChassisControl::PowerUp, p) => p,
            (ChassisControl::PowerDown | ChassisControl::SoftShutdown, Power::On)
            | (
                ChassisControl::PowerDown | ChassisControl::SoftShutdown,
                Power::PoweringOn { .. } | Power::Rebooting { .. },
            ) => Power::PoweringOff { until: now + off },
            (ChassisControl::PowerDown | ChassisControl::SoftShutdown, p) => p,
            // A reboot already under way absorbs a repeated cycle or reset,
            // so a retransmitted Chassis Control never reboots twice.
            (
                ChassisControl::PowerCycle | ChassisControl::HardReset,
                p @ Power::Rebooting { .. },
            ) => p,
            (ChassisControl::PowerCycle, _) => {
                m.boot();
                Power::Rebooting {
                    until: now + off + on,
                }
            }
            (ChassisControl::HardReset, _) => {
                m.boot();
                Power::Rebooting { until: now + on }
            }
            (
                ChassisControl::DiagnosticInterrupt,
                Power::On | Power::Rebooting { .. } | Power::PoweringOn { .. },
            ) => {
                m.nmis += 1;
                m.power
            }
            (ChassisControl::DiagnosticInterrupt, _) => {
                return Err(BackendError::Unavailable(
                    "a diagnostic interrupt needs the machine powered on".into(),
                ));
            }
        };
        m.power = next;
        Ok(())
    }

    fn boot_options(&self, node: NodeId) -> Result<BootOptions, BackendError> {
        Ok(self.machine(node)?.boot)
    }

    fn update_boot(
        &self,
        node: NodeId,
        change: &dyn Fn(&BootOptions) -> BootParameterWrite,
        mark_invalid: bool,
    ) -> Result<BootOptions, BackendError> {
        let mut m = self.machine(node)?;
        let write = change(&m.boot);
        m.boot.apply(write, mark_invalid);
        Ok(m.boot)
    }

    fn system_guid(&self, node: NodeId) -> Result<[u8; 16], BackendError> {
        Ok(uuid_to_ipmi_guid(self.machine(node)?.uuid))
    }

    fn inventory(
        &self,
        node: NodeId,
    ) -> Option<tokio::sync::watch::Receiver<Option<ServerInventory>>> {
        self.inventories.get(node).map(|s| s.subscribe())
    }
}

/// A simulated machine's one NIC: locally administered, from its UUID.
fn simulated_mac(uuid: [u8; 16]) -> String {
    format!(
        "fa:16:3e:{:02x}:{:02x}:{:02x}",
        uuid[13], uuid[14], uuid[15]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim() -> Simulated {
        let nodes = vec![SimulatedNode {
            name: "n0".into(),
            server: "n0".into(),
            efi: None,
        }];
        Simulated::new(
            SimulatedConfig {
                power_on: Duration::from_millis(20),
                power_off: Duration::from_millis(10),
                efi: true,
            },
            &nodes,
        )
    }

    #[test]
    fn reports_target_state_at_once_and_settles() {
        let s = sim();
        assert!(!s.chassis_status(0).expect("status").power_on);
        s.chassis_control(0, ChassisControl::PowerUp).expect("on");
        assert!(s.chassis_status(0).expect("status").power_on);
        std::thread::sleep(Duration::from_millis(30));
        s.chassis_control(0, ChassisControl::PowerDown)
            .expect("off");
        assert!(!s.chassis_status(0).expect("status").power_on);
        assert_eq!(s.boots(0).len(), 1);
    }

    #[test]
    fn repeated_cycle_boots_once_and_one_time_flag_is_used_up() {
        let s = sim();
        let (w, inv) = BootParameterWrite::parse(&[5, 0xa0, 0x04, 0, 0, 0]).expect("param");
        s.set_boot_parameter(0, w, inv).expect("set");
        s.chassis_control(0, ChassisControl::PowerCycle)
            .expect("cycle while off");
        std::thread::sleep(Duration::from_millis(30));
        s.chassis_control(0, ChassisControl::PowerCycle)
            .expect("cycle");
        s.chassis_control(0, ChassisControl::PowerCycle)
            .expect("repeat absorbed");
        let boots = s.boots(0);
        assert_eq!(boots.len(), 2);
        assert_eq!(boots[0].device, BootDevice::Pxe);
        assert_eq!(boots[1].device, BootDevice::NoOverride);
        assert!(!s.boot_options(0).expect("boot").flags.valid());
    }

    #[test]
    fn diag_needs_power() {
        let s = sim();
        assert!(
            s.chassis_control(0, ChassisControl::DiagnosticInterrupt)
                .is_err()
        );
        s.chassis_control(0, ChassisControl::PowerUp).expect("on");
        s.chassis_control(0, ChassisControl::DiagnosticInterrupt)
            .expect("nmi");
        assert_eq!(s.nmis(0), 1);
    }
}
