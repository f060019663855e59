//! System boot options (IPMI v2.0 sections 28.12 and 28.13, table 28-14):
//! the parameters a BMC keeps for the BIOS, and what a boot does to them.
//!
//! We keep parameters 0 (set in progress), 3 (valid-bit clearing), 4 (boot
//! info acknowledge) and 5 (boot flags). Parameter 5 is stored as all five
//! bytes, exactly as written: MAAS reads it, changes one field and writes it
//! back, and Ironic and pyghmi parse it, so every bit must survive. A
//! one-time boot flag is consumed by the boot it applied to
//! ([`BootOptions::take_boot_device`]); persistent flags stay.
//!
//! The 60-second automatic clearing of the valid bit (parameter 3 bit 3) is
//! not applied: a virtual BMC has no BIOS hand-off to time out, and both
//! Ironic and MAAS disable it anyway.

/// Parameter numbers (table 28-14).
pub mod param {
    /// Set In Progress.
    pub const SET_IN_PROGRESS: u8 = 0;
    /// BMC boot flag valid bit clearing.
    pub const VALID_BIT_CLEARING: u8 = 3;
    /// Boot info acknowledge.
    pub const BOOT_INFO_ACK: u8 = 4;
    /// Boot flags.
    pub const BOOT_FLAGS: u8 = 5;
}

/// Parameter revision reported by Get System Boot Options; pyghmi asserts
/// it is 1.
pub const PARAMETER_VERSION: u8 = 0x01;

/// The boot device selector, bits 5..2 of boot flags data 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootDevice {
    /// No override: boot as the firmware is configured.
    NoOverride,
    /// Force PXE.
    Pxe,
    /// Force boot from the default hard disk.
    Disk,
    /// Force boot from the default hard disk, safe mode.
    DiskSafe,
    /// Force boot from the default diagnostic partition.
    Diagnostic,
    /// Force boot from the default CD/DVD.
    Cdrom,
    /// Force boot into BIOS setup.
    BiosSetup,
    /// Force boot from remotely connected floppy or primary removable media.
    RemoteFloppy,
    /// Force boot from remotely connected CD/DVD.
    RemoteCdrom,
    /// Force boot from primary remote media.
    RemoteMedia,
    /// Force boot from a remotely connected hard disk.
    RemoteDisk,
    /// Force boot from floppy or primary removable media.
    Floppy,
}

impl BootDevice {
    /// Decodes the four selector bits; reserved values give `None`.
    pub fn from_selector(bits: u8) -> Option<Self> {
        Some(match bits & 0x0f {
            0x0 => Self::NoOverride,
            0x1 => Self::Pxe,
            0x2 => Self::Disk,
            0x3 => Self::DiskSafe,
            0x4 => Self::Diagnostic,
            0x5 => Self::Cdrom,
            0x6 => Self::BiosSetup,
            0x7 => Self::RemoteFloppy,
            0x8 => Self::RemoteCdrom,
            0x9 => Self::RemoteMedia,
            0xb => Self::RemoteDisk,
            0xf => Self::Floppy,
            _ => return None,
        })
    }

    /// Whether booting this device means booting from the network.
    pub fn is_network(self) -> bool {
        self == Self::Pxe
    }
}

/// Boot flags, parameter 5: five bytes kept verbatim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BootFlags(pub [u8; 5]);

impl BootFlags {
    /// Data 1 bit 7: the flags are valid.
    pub const VALID: u8 = 0x80;
    /// Data 1 bit 6: apply to all future boots.
    pub const PERSISTENT: u8 = 0x40;
    /// Data 1 bit 5: EFI boot (else PC compatible).
    pub const EFI: u8 = 0x20;

    /// The default flags for a machine: no override, with the EFI bit set
    /// from the firmware the machine really has (MAAS keeps whatever EFI bit
    /// we report when its boot type is "auto").
    pub fn default_for(efi: bool) -> Self {
        BootFlags([if efi { Self::EFI } else { 0 }, 0, 0, 0, 0])
    }

    /// Whether the valid bit is set.
    pub fn valid(&self) -> bool {
        self.0[0] & Self::VALID != 0
    }

    /// Whether the flags persist across boots.
    pub fn persistent(&self) -> bool {
        self.0[0] & Self::PERSISTENT != 0
    }

    /// Whether EFI boot is requested.
    pub fn efi(&self) -> bool {
        self.0[0] & Self::EFI != 0
    }

    /// The selected device, if the selector holds a defined value.
    pub fn device(&self) -> Option<BootDevice> {
        BootDevice::from_selector(self.0[1] >> 2)
    }

    /// The device a boot now would use: the selector when the flags are
    /// valid, else no override.
    pub fn effective_device(&self) -> BootDevice {
        if self.valid() {
            self.device().unwrap_or(BootDevice::NoOverride)
        } else {
            BootDevice::NoOverride
        }
    }
}

/// A parameter write that Set System Boot Options accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootParameterWrite {
    /// Parameter 0: bits 1..0 of the one data byte.
    SetInProgress(u8),
    /// Parameter 3: the whole byte.
    ValidBitClearing(u8),
    /// Parameter 4: bits to write and their values.
    BootInfoAck {
        /// Write mask: only these bits change.
        mask: u8,
        /// New values of the masked bits.
        data: u8,
    },
    /// Parameter 5: all five bytes.
    BootFlags(BootFlags),
}

/// Why a Set or Get System Boot Options request was refused; each maps to
/// the completion code clients expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootOptionError {
    /// The parameter is not one we keep (completion code 80h).
    ParameterNotSupported,
    /// The data length does not fit the parameter (C7h).
    LengthInvalid,
    /// A field holds a reserved value (CCh).
    InvalidField,
}

impl BootParameterWrite {
    /// Parses the data of Set System Boot Options: parameter selector
    /// (bit 7 = mark invalid/locked) then the parameter's data.
    pub fn parse(data: &[u8]) -> Result<(Self, bool), BootOptionError> {
        let Some((&selector, rest)) = data.split_first() else {
            return Err(BootOptionError::LengthInvalid);
        };
        let invalid = selector & 0x80 != 0;
        let write = match selector & 0x7f {
            param::SET_IN_PROGRESS => match rest {
                [v] if v & 0x03 == 0x03 => return Err(BootOptionError::InvalidField),
                [v] => Self::SetInProgress(v & 0x03),
                _ => return Err(BootOptionError::LengthInvalid),
            },
            param::VALID_BIT_CLEARING => match rest {
                [v] => Self::ValidBitClearing(*v),
                _ => return Err(BootOptionError::LengthInvalid),
            },
            param::BOOT_INFO_ACK => match rest {
                [mask, data] => Self::BootInfoAck {
                    mask: *mask,
                    data: *data,
                },
                _ => return Err(BootOptionError::LengthInvalid),
            },
            param::BOOT_FLAGS => match rest {
                [a, b, c, d, e] => {
                    let flags = BootFlags([*a, *b, *c, *d, *e]);
                    if flags.device().is_none() {
                        return Err(BootOptionError::InvalidField);
                    }
                    Self::BootFlags(flags)
                }
                _ => return Err(BootOptionError::LengthInvalid),
            },
            _ => return Err(BootOptionError::ParameterNotSupported),
        };
        Ok((write, invalid))
    }

    /// The request data [`Self::parse`] reads, written into `out`: the
    /// parameter selector (bit 7 set if `mark_invalid`), then its data.
    pub fn encode(&self, mark_invalid: bool, out: &mut Vec<u8>) {
        out.push(self.parameter() | if mark_invalid { 0x80 } else { 0 });
        match self {
            Self::SetInProgress(v) | Self::ValidBitClearing(v) => out.push(*v),
            Self::BootInfoAck { mask, data } => out.extend_from_slice(&[*mask, *data]),
            Self::BootFlags(f) => out.extend_from_slice(&f.0),
        }
    }

    /// The parameter number this write targets.
    pub fn parameter(&self) -> u8 {
        match self {
            Self::SetInProgress(_) => param::SET_IN_PROGRESS,
            Self::ValidBitClearing(_) => param::VALID_BIT_CLEARING,
            Self::BootInfoAck { .. } => param::BOOT_INFO_ACK,
            Self::BootFlags(_) => param::BOOT_FLAGS,
        }
    }
}

/// The boot options of one machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootOptions {
    /// Parameter 0, bits 1..0.
    pub set_in_progress: u8,
    /// Parameter 3.
    pub valid_bit_clearing: u8,
    /// Parameter 4 data byte.
    pub boot_info_ack: u8,
    /// Parameter 5.
    pub flags: BootFlags,
    /// Bit n set: parameter n was marked invalid/locked by its last write.
    pub invalid: u8,
}

impl BootOptions {
    /// Length of [`Self::to_bytes`].
    pub const ENCODED_LEN: usize = 9;

    /// Fresh options for a machine with the given firmware.
    pub fn new(efi: bool) -> Self {
        BootOptions {
            set_in_progress: 0,
            valid_bit_clearing: 0,
            boot_info_ack: 0,
            flags: BootFlags::default_for(efi),
            invalid: 0,
        }
    }

    /// Applies an accepted write.
    pub fn apply(&mut self, write: BootParameterWrite, mark_invalid: bool) {
        match write {
            BootParameterWrite::SetInProgress(v) => self.set_in_progress = v,
            BootParameterWrite::ValidBitClearing(v) => self.valid_bit_clearing = v,
            BootParameterWrite::BootInfoAck { mask, data } => {
                self.boot_info_ack = (self.boot_info_ack & !mask) | (data & mask);
            }
            BootParameterWrite::BootFlags(f) => self.flags = f,
        }
        let bit = 1u8 << write.parameter();
        if mark_invalid {
            self.invalid |= bit;
        } else {
            self.invalid &= !bit;
        }
    }

    /// Writes the Get System Boot Options response data for `parameter`
    /// into `out` and returns its length: version, selector (bit 7 =
    /// invalid/locked), then the parameter's data.
    pub fn get(&self, parameter: u8, out: &mut [u8; 8]) -> Result<usize, BootOptionError> {
        let parameter = parameter & 0x7f;
        let data: &[u8] = match parameter {
            param::SET_IN_PROGRESS => &[self.set_in_progress],
            param::VALID_BIT_CLEARING => &[self.valid_bit_clearing],
            param::BOOT_INFO_ACK => &[0x00, self.boot_info_ack],
            param::BOOT_FLAGS => &self.flags.0,
            _ => return Err(BootOptionError::ParameterNotSupported),
        };
        out[0] = PARAMETER_VERSION;
        out[1] = parameter
            | if self.invalid & (1 << parameter) != 0 {
                0x80
            } else {
                0
            };
        out[2..2 + data.len()].copy_from_slice(data);
        Ok(2 + data.len())
    }

    /// Called when the machine boots: returns the device and firmware mode
    /// the boot uses, and consumes one-time flags (clears the valid bit and
    /// the selector, keeps the EFI bit).
    pub fn take_boot_device(&mut self) -> (BootDevice, bool) {
        let device = self.flags.effective_device();
        let efi = self.flags.efi();
        if self.flags.valid() && !self.flags.persistent() {
            self.flags = BootFlags([self.flags.0[0] & BootFlags::EFI, 0, 0, 0, 0]);
        }
        (device, efi)
    }

    /// A compact encoding for persistence.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let f = self.flags.0;
        [
            self.set_in_progress,
            self.valid_bit_clearing,
            self.boot_info_ack,
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            self.invalid,
        ]
    }

    /// Reads [`Self::to_bytes`] back.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; Self::ENCODED_LEN] = b.try_into().ok()?;
        Some(BootOptions {
            set_in_progress: b[0] & 0x03,
            valid_bit_clearing: b[1],
            boot_info_ack: b[2],
            flags: BootFlags([b[3], b[4], b[5], b[6], b[7]]),
            invalid: b[8],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_round_trip() {
        for data in [
            &[0x00, 0x01][..],
            &[0x83, 0x1f],
            &[0x04, 0x01, 0x01],
            &[0x05, 0xa0, 0x04, 0x00, 0x00, 0x00],
        ] {
            let (write, invalid) = BootParameterWrite::parse(data).expect("parse");
            let mut out = Vec::new();
            write.encode(invalid, &mut out);
            assert_eq!(out, data);
        }
    }

    #[test]
    fn ironic_uefi_one_time_pxe() {
        let mut o = BootOptions::new(true);
        let (w, inv) = BootParameterWrite::parse(&[0x03, 0x08]).expect("param 3");
        o.apply(w, inv);
        let (w, inv) = BootParameterWrite::parse(&[0x05, 0xa0, 0x04, 0, 0, 0]).expect("param 5");
        o.apply(w, inv);
        let mut out = [0u8; 8];
        let n = o.get(5, &mut out).expect("get");
        assert_eq!(&out[..n], &[0x01, 0x05, 0xa0, 0x04, 0, 0, 0]);
        assert_eq!(o.take_boot_device(), (BootDevice::Pxe, true));
        // Consumed: the next boot is a normal one, EFI kept.
        assert_eq!(o.take_boot_device(), (BootDevice::NoOverride, true));
        let n = o.get(5, &mut out).expect("get");
        assert_eq!(&out[..n], &[0x01, 0x05, 0x20, 0, 0, 0, 0]);
        let n = o.get(3, &mut out).expect("get");
        assert_eq!(&out[..n], &[0x01, 0x03, 0x08]);
    }

    #[test]
    fn persistent_flags_stay() {
        let mut o = BootOptions::new(false);
        let (w, inv) = BootParameterWrite::parse(&[0x05, 0xc0, 0x08, 0, 0, 0]).expect("param 5");
        o.apply(w, inv);
        for _ in 0..3 {
            assert_eq!(o.take_boot_device(), (BootDevice::Disk, false));
        }
    }

    #[test]
    fn boot_info_ack_honours_mask() {
        let mut o = BootOptions::new(false);
        let (w, inv) = BootParameterWrite::parse(&[0x04, 0x1f, 0x1f]).expect("param 4");
        o.apply(w, inv);
        let (w, inv) = BootParameterWrite::parse(&[0x04, 0x01, 0x00]).expect("param 4");
        o.apply(w, inv);
        let mut out = [0u8; 8];
        let n = o.get(4, &mut out).expect("get");
        assert_eq!(&out[..n], &[0x01, 0x04, 0x00, 0x1e]);
    }

    #[test]
    fn errors_map_to_the_right_codes() {
        assert_eq!(
            BootParameterWrite::parse(&[0x07, 0, 0]),
            Err(BootOptionError::ParameterNotSupported)
        );
        assert_eq!(
            BootParameterWrite::parse(&[0x05, 0x80, 0x04]),
            Err(BootOptionError::LengthInvalid)
        );
        assert_eq!(
            BootParameterWrite::parse(&[0x05, 0x80, 0x28, 0, 0, 0]),
            Err(BootOptionError::InvalidField),
            "selector 1010b is reserved"
        );
        assert_eq!(
            BootParameterWrite::parse(&[]),
            Err(BootOptionError::LengthInvalid)
        );
        let mut out = [0u8; 8];
        assert_eq!(
            BootOptions::new(false).get(1, &mut out),
            Err(BootOptionError::ParameterNotSupported)
        );
    }

    #[test]
    fn invalid_bit_is_reported() {
        let mut o = BootOptions::new(false);
        let (w, inv) = BootParameterWrite::parse(&[0x85, 0x80, 0x04, 0, 0, 0]).expect("param 5");
        assert!(inv);
        o.apply(w, inv);
        let mut out = [0u8; 8];
        o.get(5, &mut out).expect("get");
        assert_eq!(out[1], 0x85);
    }

    proptest! {
        #[test]
        fn persistence_round_trips(b in proptest::array::uniform9(any::<u8>())) {
            let mut b = b;
            b[0] &= 0x03;
            let o = BootOptions::from_bytes(&b).expect("nine bytes");
            prop_assert_eq!(o.to_bytes(), b);
        }
    }
}
