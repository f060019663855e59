//! A node's boot override as any front door speaks of it: which device the
//! next boot (or every boot) uses, and in which firmware mode.
//!
//! There is one record per node, the boot options IPMI defines (IPMI 2.0
//! section 28.13, parameter 5 kept as all five bytes, as MAAS and Ironic
//! need them back verbatim), persisted by the backend. This module reads
//! and changes that record in the terms Redfish's `Boot` object uses
//! (DSP0268 ComputerSystem: `BootSourceOverrideTarget`, `…Enabled`,
//! `…Mode`), so an override set over one protocol is what the other
//! reads, and a one-time override is used up by the boot it applies to
//! whichever protocol set it.

use novabmc_proto::boot_options::{BootDevice, BootFlags, BootOptions, BootParameterWrite};

use super::{Backend, BackendError, NodeId};

/// The device a boot override names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootTarget {
    /// No override: boot as the firmware is configured.
    None,
    /// The network.
    Pxe,
    /// The local disk.
    Hdd,
    /// A CD or DVD.
    Cd,
    /// The firmware's setup.
    BiosSetup,
    /// A floppy or removable medium.
    Floppy,
    /// The diagnostic partition.
    Diags,
    /// A remotely attached medium (IPMI's remote selectors).
    RemoteDrive,
}

impl BootTarget {
    /// Every target, in the order a client is shown them.
    pub const ALL: [BootTarget; 8] = [
        BootTarget::None,
        BootTarget::Pxe,
        BootTarget::Hdd,
        BootTarget::Cd,
        BootTarget::BiosSetup,
        BootTarget::Floppy,
        BootTarget::Diags,
        BootTarget::RemoteDrive,
    ];

    /// The target an IPMI device selector names.
    pub fn of_device(d: BootDevice) -> BootTarget {
        match d {
            BootDevice::NoOverride => BootTarget::None,
            BootDevice::Pxe => BootTarget::Pxe,
            BootDevice::Disk | BootDevice::DiskSafe => BootTarget::Hdd,
            BootDevice::Cdrom => BootTarget::Cd,
            BootDevice::BiosSetup => BootTarget::BiosSetup,
            BootDevice::Floppy => BootTarget::Floppy,
            BootDevice::Diagnostic => BootTarget::Diags,
            BootDevice::RemoteFloppy
            | BootDevice::RemoteCdrom
            | BootDevice::RemoteMedia
            | BootDevice::RemoteDisk => BootTarget::RemoteDrive,
        }
    }

    /// The IPMI selector bits (data 2 bits 5..2) for this target.
    fn selector(self) -> u8 {
        match self {
            BootTarget::None => 0x0,
            BootTarget::Pxe => 0x1,
            BootTarget::Hdd => 0x2,
            BootTarget::Diags => 0x4,
            BootTarget::Cd => 0x5,
            BootTarget::BiosSetup => 0x6,
            BootTarget::RemoteDrive => 0x9,
            BootTarget::Floppy => 0xf,
        }
    }
}

/// Whether an override applies to the next boot, every boot, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideEnabled {
    /// No override.
    Disabled,
    /// The next boot only; the boot uses it up.
    Once,
    /// Every boot until changed.
    Continuous,
}

/// The firmware mode a boot uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootMode {
    /// UEFI.
    Uefi,
    /// PC compatible (BIOS).
    Legacy,
}

/// A node's boot override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootOverride {
    /// The device.
    pub target: BootTarget,
    /// For how many boots.
    pub enabled: OverrideEnabled,
    /// The firmware mode.
    pub mode: BootMode,
}

impl BootOverride {
    /// The override the boot options hold. Flags whose valid bit is clear
    /// hold none, whatever their selector says (that is what a boot uses).
    pub fn of(options: &BootOptions) -> BootOverride {
        let f = options.flags;
        let mode = if f.efi() {
            BootMode::Uefi
        } else {
            BootMode::Legacy
        };
        let target = BootTarget::of_device(f.effective_device());
        let enabled = match (f.valid(), f.persistent()) {
            (false, _) => OverrideEnabled::Disabled,
            _ if target == BootTarget::None => OverrideEnabled::Disabled,
            (true, false) => OverrideEnabled::Once,
            (true, true) => OverrideEnabled::Continuous,
        };
        let target = if enabled == OverrideEnabled::Disabled {
            BootTarget::None
        } else {
            target
        };
        BootOverride {
            target,
            enabled,
            mode,
        }
    }
}

/// A change of some of an override's parts; the others keep their value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootChange {
    /// A new device.
    pub target: Option<BootTarget>,
    /// A new span.
    pub enabled: Option<OverrideEnabled>,
    /// A new firmware mode.
    pub mode: Option<BootMode>,
}

impl BootChange {
    /// The boot flags after this change, from `flags`. Bytes 3 to 5 and
    /// the other bits of data 2 are kept, so whatever an IPMI client set
    /// there survives a Redfish change. A target given without a span
    /// keeps the current span, and one given on a disabled override makes
    /// it a one-time override (Ironic omits the span when it already
    /// matches, and a target alone on a physical BMC means "next boot");
    /// a target of None, or a span of Disabled, clears the override.
    pub fn apply_to(&self, flags: BootFlags) -> BootFlags {
        let current = BootOverride::of(&BootOptions {
            flags,
            ..BootOptions::new(flags.efi())
        });
        let mut target = self.target.unwrap_or(current.target);
        let mut enabled = match (self.enabled, self.target) {
            (Some(e), _) => e,
            (None, Some(_)) if current.enabled == OverrideEnabled::Disabled => {
                OverrideEnabled::Once
            }
            (None, _) => current.enabled,
        };
        if target == BootTarget::None || enabled == OverrideEnabled::Disabled {
            target = BootTarget::None;
            enabled = OverrideEnabled::Disabled;
        }
        let mode = self.mode.unwrap_or(current.mode);
        let mut b = flags.0;
        b[0] &= !(BootFlags::VALID | BootFlags::PERSISTENT | BootFlags::EFI);
        if mode == BootMode::Uefi {
            b[0] |= BootFlags::EFI;
        }
        match enabled {
            OverrideEnabled::Disabled => {}
            OverrideEnabled::Once => b[0] |= BootFlags::VALID,
            OverrideEnabled::Continuous => b[0] |= BootFlags::VALID | BootFlags::PERSISTENT,
        }
        b[1] = (b[1] & !0x3c) | (target.selector() << 2);
        BootFlags(b)
    }
}

/// The node's boot override.
pub fn read(backend: &dyn Backend, node: NodeId) -> Result<BootOverride, BackendError> {
    backend.boot_options(node).map(|o| BootOverride::of(&o))
}

/// Changes the node's boot override in one step under the backend's lock
/// (so a concurrent IPMI write is never half undone), and returns the
/// override after the change.
pub fn change(
    backend: &dyn Backend,
    node: NodeId,
    change: BootChange,
) -> Result<BootOverride, BackendError> {
    backend
        .update_boot(
            node,
            &|o: &BootOptions| BootParameterWrite::BootFlags(change.apply_to(o.flags)),
            false,
        )
        .map(|o| BootOverride::of(&o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(b: [u8; 5]) -> BootOverride {
        BootOverride::of(&BootOptions {
            flags: BootFlags(b),
            ..BootOptions::new(false)
        })
    }

    #[test]
    fn ipmi_flags_read_as_an_override() {
        // ipmitool chassis bootdev pxe options=efiboot: valid, once, EFI.
        let o = flags([0xa0, 0x04, 0, 0, 0]);
        assert_eq!(o.target, BootTarget::Pxe);
        assert_eq!(o.enabled, OverrideEnabled::Once);
        assert_eq!(o.mode, BootMode::Uefi);
        // persistent disk, legacy
        let o = flags([0xc0, 0x08, 0, 0, 0]);
        assert_eq!(
            (o.target, o.enabled, o.mode),
            (
                BootTarget::Hdd,
                OverrideEnabled::Continuous,
                BootMode::Legacy
            )
        );
        // valid bit clear: no override, whatever the selector holds
        let o = flags([0x20, 0x04, 0, 0, 0]);
        assert_eq!(
            (o.target, o.enabled),
            (BootTarget::None, OverrideEnabled::Disabled)
        );
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let before = BootFlags([0xe0, 0x04 | 0x01, 0x12, 0x34, 0x56]);
        let after = BootChange {
            target: Some(BootTarget::Hdd),
            ..BootChange::default()
        }
        .apply_to(before);
        // persistent and EFI kept, selector changed, other bits and bytes kept
        assert_eq!(after.0, [0xe0, 0x08 | 0x01, 0x12, 0x34, 0x56]);
        let off = BootChange {
            enabled: Some(OverrideEnabled::Disabled),
            ..BootChange::default()
        }
        .apply_to(after);
        assert!(!off.valid());
        assert!(off.efi(), "the mode survives clearing the override");
        let legacy = BootChange {
            mode: Some(BootMode::Legacy),
            ..BootChange::default()
        }
        .apply_to(after);
        assert!(!legacy.efi() && legacy.persistent() && legacy.valid());
    }

    #[test]
    fn a_target_on_a_disabled_override_is_for_the_next_boot() {
        let after = BootChange {
            target: Some(BootTarget::Pxe),
            ..BootChange::default()
        }
        .apply_to(BootFlags::default_for(true));
        let o = BootOverride::of(&BootOptions {
            flags: after,
            ..BootOptions::new(true)
        });
        assert_eq!(
            (o.target, o.enabled, o.mode),
            (BootTarget::Pxe, OverrideEnabled::Once, BootMode::Uefi)
        );
        // What IPMI's Get System Boot Options then reports.
        assert_eq!(after.0, [0xa0, 0x04, 0, 0, 0]);
    }
}
