//! RAKP authentication codes and the session key schedule (IPMI v2.0
//! sections 13.31 and 13.32).
//!
//! With H the suite's HMAC, Kuid the user's password and KG the BMC key (or
//! Kuid when none is set):
//!
//! - RAKP2 code = H_Kuid(SIDm, SIDc, Rm, Rc, GUIDc, ROLEm, ULen, UName)
//! - RAKP3 code = H_Kuid(Rc, SIDm, ROLEm, ULen, UName)
//! - SIK = H_KG(Rm, Rc, ROLEm, ULen, UName)
//! - RAKP4 ICV = H_SIK(Rm, SIDc, GUIDc), truncated to 12 or 16 bytes
//! - K1 = H_SIK(twenty 0x01), K2 = H_SIK(twenty 0x02)
//!
//! Session IDs enter as their four wire bytes (little-endian) and ROLEm is
//! the whole RAKP1 role byte, name-only lookup bit included.

use zeroize::{Zeroize, Zeroizing};

use super::{AuthHash, MacOutput};

/// The values both sides exchanged in Open Session and RAKP 1/2, which every
/// code and key is computed over.
#[derive(Clone, Copy, Debug)]
pub struct HandshakeParams<'a> {
    /// The console's session ID (SIDm).
    pub console_session_id: u32,
    /// Our session ID (SIDc).
    pub bmc_session_id: u32,
    /// The console's random number (Rm).
    pub console_random: &'a [u8; 16],
    /// Our random number (Rc).
    pub bmc_random: &'a [u8; 16],
    /// Our GUID (GUIDc).
    pub bmc_guid: &'a [u8; 16],
    /// The RAKP1 role byte (ROLEm).
    pub role: u8,
    /// The user name from RAKP1.
    pub user_name: &'a [u8],
}

impl HandshakeParams<'_> {
    fn name_len(&self) -> [u8; 1] {
        // The wire format caps names at 16 bytes; the engine refuses longer
        // ones before any code is computed.
        [self.user_name.len().min(u8::MAX.into()) as u8]
    }
}

/// RAKP2's key-exchange authentication code.
pub fn rakp2_auth_code(hash: AuthHash, kuid: &[u8], p: &HandshakeParams<'_>) -> MacOutput {
    hash.mac(
        kuid,
        &[
            &p.console_session_id.to_le_bytes(),
            &p.bmc_session_id.to_le_bytes(),
            p.console_random,
            p.bmc_random,
            p.bmc_guid,
            &[p.role],
            &p.name_len(),
            p.user_name,
        ],
    )
}

/// The authentication code a console must send in RAKP3.
pub fn rakp3_auth_code(hash: AuthHash, kuid: &[u8], p: &HandshakeParams<'_>) -> MacOutput {
    hash.mac(
        kuid,
        &[
            p.bmc_random,
            &p.console_session_id.to_le_bytes(),
            &[p.role],
            &p.name_len(),
            p.user_name,
        ],
    )
}

/// The Session Integrity Key, zeroed when dropped.
pub fn session_integrity_key(
    hash: AuthHash,
    kg: &[u8],
    p: &HandshakeParams<'_>,
) -> Zeroizing<MacOutput> {
    Zeroizing::new(hash.mac(
        kg,
        &[
            p.console_random,
            p.bmc_random,
            &[p.role],
            &p.name_len(),
            p.user_name,
        ],
    ))
}

/// RAKP4's integrity check value, already truncated to the suite's length.
pub fn rakp4_icv(hash: AuthHash, sik: &MacOutput, p: &HandshakeParams<'_>) -> MacOutput {
    let full = hash.mac(
        sik.as_slice(),
        &[
            p.console_random,
            &p.bmc_session_id.to_le_bytes(),
            p.bmc_guid,
        ],
    );
    MacOutput::from_slice(full.truncated(hash.icv_len()))
}

/// The additional keys derived from the SIK.
pub struct SessionKeys {
    /// K1: the integrity key.
    pub k1: MacOutput,
    /// K2: its first 16 bytes are the AES-CBC-128 key.
    pub k2: MacOutput,
}

impl SessionKeys {
    /// Derives K1 and K2. The constants are twenty bytes even for SHA256.
    pub fn derive(hash: AuthHash, sik: &MacOutput) -> Self {
        SessionKeys {
            k1: hash.mac(sik.as_slice(), &[&[0x01; 20]]),
            k2: hash.mac(sik.as_slice(), &[&[0x02; 20]]),
        }
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.k1.zeroize();
        self.k2.zeroize();
    }
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl Zeroize for MacOutput {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icv_length_follows_auth_algorithm() {
        let p = HandshakeParams {
            console_session_id: 1,
            bmc_session_id: 2,
            console_random: &[3; 16],
            bmc_random: &[4; 16],
            bmc_guid: &[5; 16],
            role: 0x14,
            user_name: b"admin",
        };
        let sik = session_integrity_key(AuthHash::Sha1, b"password", &p);
        assert_eq!(rakp4_icv(AuthHash::Sha1, &sik, &p).as_slice().len(), 12);
        let sik = session_integrity_key(AuthHash::Sha256, b"password", &p);
        assert_eq!(sik.as_slice().len(), 32);
        assert_eq!(rakp4_icv(AuthHash::Sha256, &sik, &p).as_slice().len(), 16);
    }
}
