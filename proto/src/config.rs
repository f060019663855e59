//! The settings an engine runs with: users, BMC key, cipher suites, session
//! limits and the identity Get Device ID reports. One [`BmcConfig`] is
//! shared (behind an `Arc`) by every node of a process, so a node costs a
//! pointer, not a copy, and so every node draws on the same
//! [`SessionBudget`].

use crate::wire::ids::Privilege;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::cipher_suite::CipherSuites;
use crate::session::budget::SessionBudget;
use crate::session::table::{MAX_ESTABLISHED, Timeouts};
use crate::user::Users;

/// The identity reported by Get Device ID (IPMI v2.0 section 20.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceId {
    /// Device ID.
    pub device_id: u8,
    /// Device revision (low nibble).
    pub device_revision: u8,
    /// Major firmware revision (7 bits).
    pub firmware_major: u8,
    /// Minor firmware revision, BCD.
    pub firmware_minor: u8,
    /// IANA enterprise number of the manufacturer (20 bits). Never
    /// Supermicro's 10876: Ironic changes its UEFI boot codes for it.
    pub manufacturer_id: u32,
    /// Product ID.
    pub product_id: u16,
    /// Auxiliary firmware revision.
    pub aux_firmware: [u8; 4],
}

impl Default for DeviceId {
    /// Manufacturer 0, which ipmitool prints as "Unknown".
    fn default() -> Self {
        DeviceId {
            device_id: 0x20,
            device_revision: 0x01,
            firmware_major: 0,
            firmware_minor: 0x01,
            manufacturer_id: 0,
            product_id: 0,
            aux_firmware: [0; 4],
        }
    }
}

impl DeviceId {
    /// The fifteen response data bytes. IPMI version 2.0; additional
    /// device support: chassis device, FRU inventory device, SEL device and
    /// SDR repository device (ipmitool's `fru print` reads FRU 0 only when
    /// the FRU bit is set). No "provides device SDRs" bit: sensor tools
    /// read the SDR repository.
    pub fn to_bytes(&self) -> [u8; 15] {
        let m = self.manufacturer_id.to_le_bytes();
        let p = self.product_id.to_le_bytes();
        let a = self.aux_firmware;
        [
            self.device_id,
            self.device_revision & 0x0f,
            self.firmware_major & 0x7f,
            self.firmware_minor,
            0x02,
            0x8e,
            m[0],
            m[1],
            m[2] & 0x0f,
            p[0],
            p[1],
            a[0],
            a[1],
            a[2],
            a[3],
        ]
    }
}

/// Everything an engine needs besides its own state.
#[derive(Debug)]
pub struct BmcConfig {
    /// Who may log in.
    pub users: Users,
    /// The BMC key Kg; without one the SIK is keyed with the password.
    pub kg: Option<Zeroizing<Vec<u8>>>,
    /// Suites accepted and advertised.
    pub cipher_suites: CipherSuites,
    /// Most established sessions one BMC holds at once (1..=255; values
    /// outside are clamped). Half-open sessions are bounded separately
    /// ([`crate::session::table::MAX_HALF_OPEN`]).
    pub max_sessions: usize,
    /// The cap on sessions shared by every engine given this configuration.
    pub budget: Arc<SessionBudget>,
    /// Half-open and idle timeouts.
    pub timeouts: Timeouts,
    /// Get Device ID's answer.
    pub device: DeviceId,
    /// The lowest privilege that may activate SOL, until a Set SOL
    /// Configuration Parameters (or saved settings) says otherwise.
    pub sol_privilege: Privilege,
}

impl BmcConfig {
    /// Defaults around a user table: suites 3 and 17, 255 sessions, no
    /// global cap, 5 s setup and 60 s idle timeouts, no Kg.
    /// SOL may be activated from Operator up (it is a console).
    pub fn new(users: Users) -> Self {
        BmcConfig {
            users,
            kg: None,
            cipher_suites: CipherSuites::default(),
            max_sessions: MAX_ESTABLISHED,
            budget: Arc::new(SessionBudget::unlimited()),
            timeouts: Timeouts::default(),
            device: DeviceId::default(),
            sol_privilege: Privilege::Operator,
        }
    }
}
