//! The RAKP handshake as typed states (IPMI v2.0 sections 13.17 to 13.23):
//! Open Session creates [`ExpectRakp1`], an accepted RAKP1 turns it into
//! [`ExpectRakp3`], and an accepted RAKP3 yields an
//! [`Established`](super::established::Established) session. Each step
//! returns the RMCP+ status to send when it refuses.
//!
//! User lookup follows the RAKP1 role byte: with the name-only bit set (what
//! every client sends by default) the user is found by name and the
//! requested privilege becomes the session's limit, which must not exceed
//! the user's own; without it the requested privilege must equal the user's
//! own, as OpenBMC and the spec's "username/privilege lookup" require.
//!
//! A role above the user's limit is refused in RAKP2 with "invalid role"
//! (09h) rather than granted at a lower level: FreeIPMI then says "privilege
//! level cannot be obtained for this user" and pyghmi retries at Operator,
//! where a lowered limit would make ipmipower's later Set Session Privilege
//! fail silently.

use crate::cipher_suite::CipherSuite;
use crate::crypto::keys::{self, HandshakeParams, SessionKeys};
use crate::crypto::{AuthHash, MacOutput, constant_time_eq};
use crate::session::established::Established;
use crate::user::Users;
use crate::wire::ids::{Privilege, RakpStatus};
use crate::wire::rakp::{MAX_USER_NAME, Rakp1, Rakp3};

/// Waiting for RAKP1, after an accepted Open Session Request.
#[derive(Clone, Debug)]
pub struct ExpectRakp1 {
    /// The console's session ID (SIDm).
    pub console_session_id: u32,
    /// The negotiated suite.
    pub suite: &'static CipherSuite,
    /// The maximum privilege granted in the Open Session Response.
    pub max_privilege: Privilege,
}

/// Waiting for RAKP3, after RAKP2 was sent.
#[derive(Clone, Debug)]
pub struct ExpectRakp3 {
    /// The console's session ID (SIDm).
    pub console_session_id: u32,
    /// The negotiated suite.
    pub suite: &'static CipherSuite,
    /// The session's privilege limit: what RAKP1 requested.
    pub max_privilege: Privilege,
    /// What the Open Session Response granted, to restart from if the
    /// console sends a different RAKP1.
    pub granted_privilege: Privilege,
    /// ID of the user that logged in.
    pub user_id: u8,
    /// Rm from RAKP1.
    pub console_random: [u8; 16],
    /// Rc we sent in RAKP2.
    pub bmc_random: [u8; 16],
    /// The RAKP1 role byte.
    pub role: u8,
    name: [u8; MAX_USER_NAME],
    name_len: u8,
    /// RAKP2 as we computed it, to resend on a repeated RAKP1.
    pub rakp2_code: MacOutput,
}

impl ExpectRakp1 {
    /// The authentication hash of the negotiated suite.
    fn hash(&self) -> AuthHash {
        auth_hash(self.suite)
    }

    /// Checks RAKP1 and computes RAKP2's authentication code.
    pub fn on_rakp1(
        &self,
        msg: &Rakp1<'_>,
        users: &Users,
        bmc_session_id: u32,
        bmc_guid: &[u8; 16],
        bmc_random: [u8; 16],
    ) -> Result<ExpectRakp3, RakpStatus> {
        if msg.user_name.len() > MAX_USER_NAME {
            return Err(RakpStatus::InvalidNameLength);
        }
        let Some(requested) = Privilege::from_level(msg.role & 0x0f) else {
            return Err(RakpStatus::InvalidRole);
        };
        if msg.role & !(0x0f | Rakp1::NAME_ONLY_LOOKUP) != 0 {
            return Err(RakpStatus::InvalidRole);
        }
        if msg.user_name.is_empty() {
            // Null user names (anonymous login) are never allowed.
            return Err(RakpStatus::UnauthorizedName);
        }
        let Some(user) = users.find(msg.user_name) else {
            return Err(RakpStatus::UnauthorizedName);
        };
        if msg.role & Rakp1::NAME_ONLY_LOOKUP == 0 && requested != user.privilege() {
            return Err(RakpStatus::UnauthorizedName);
        }
        if requested > user.privilege() {
            return Err(RakpStatus::InvalidRole);
        }
        if requested > self.max_privilege {
            return Err(RakpStatus::UnauthorizedRole);
        }
        let max_privilege = requested;
        let mut name = [0u8; MAX_USER_NAME];
        name[..msg.user_name.len()].copy_from_slice(msg.user_name);
        let mut next = ExpectRakp3 {
            console_session_id: self.console_session_id,
            suite: self.suite,
            max_privilege,
            granted_privilege: self.max_privilege,
            user_id: user.id(),
            console_random: msg.console_random,
            bmc_random,
            role: msg.role,
            name,
            name_len: msg.user_name.len() as u8,
            rakp2_code: MacOutput::from_slice(&[]),
        };
        next.rakp2_code = keys::rakp2_auth_code(
            self.hash(),
            user.password(),
            &next.params(bmc_session_id, bmc_guid),
        );
        Ok(next)
    }
}

impl ExpectRakp3 {
    /// The user name from RAKP1.
    pub fn user_name(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len)]
    }

    /// Whether a repeated RAKP1 asks for exactly this handshake again (its
    /// RAKP2 was lost), so the same Rc and code can be resent.
    pub fn same_rakp1(&self, msg: &Rakp1<'_>) -> bool {
        msg.console_random == self.console_random
            && msg.role == self.role
            && msg.user_name == self.user_name()
    }

    /// The values every code and key of this handshake is computed over.
    pub fn params<'a>(
        &'a self,
        bmc_session_id: u32,
        bmc_guid: &'a [u8; 16],
    ) -> HandshakeParams<'a> {
        HandshakeParams {
            console_session_id: self.console_session_id,
            bmc_session_id,
            console_random: &self.console_random,
            bmc_random: &self.bmc_random,
            bmc_guid,
            role: self.role,
            user_name: self.user_name(),
        }
    }

    /// Checks RAKP3 and derives the session keys; returns the established
    /// session and RAKP4's integrity check value.
    pub fn on_rakp3(
        &self,
        msg: &Rakp3<'_>,
        users: &Users,
        kg: Option<&[u8]>,
        bmc_session_id: u32,
        bmc_guid: &[u8; 16],
    ) -> Result<(Established, MacOutput), RakpStatus> {
        let hash = auth_hash(self.suite);
        let Some(user) = users.by_id(self.user_id) else {
            return Err(RakpStatus::UnauthorizedName);
        };
        let params = self.params(bmc_session_id, bmc_guid);
        let expected = keys::rakp3_auth_code(hash, user.password(), &params);
        if !constant_time_eq(expected.as_slice(), msg.auth_code) {
            return Err(RakpStatus::InvalidIntegrityCheckValue);
        }
        let sik = keys::session_integrity_key(hash, kg.unwrap_or(user.password()), &params);
        let icv = keys::rakp4_icv(hash, &sik, &params);
        let session_keys = SessionKeys::derive(hash, &sik);
        let established = Established::new(
            self.console_session_id,
            self.suite,
            &session_keys,
            self.user_id,
            self.max_privilege,
            (expected, icv),
        )
        .ok_or(RakpStatus::NoCipherSuiteMatch)?;
        Ok((established, icv))
    }
}

/// The authentication hash of a suite; suites are built only from the
/// implemented list, all of which have one.
fn auth_hash(suite: &CipherSuite) -> AuthHash {
    AuthHash::of(suite.auth).unwrap_or(AuthHash::Sha1)
}
