//! The cryptography of RMCP+ (IPMI v2.0 sections 13.28 to 13.32): RAKP
//! authentication codes and the session key schedule ([`keys`]), packet
//! integrity ([`integrity`]) and AES-CBC-128 confidentiality
//! ([`confidentiality`]).
//!
//! All of it is RustCrypto (`hmac`, `sha1`, `sha2`, `aes`, `cbc`). Keys are
//! expanded once per session and cloned per packet, so the per-packet cost is
//! the hash compression and block cipher work alone. Secrets do not outlive
//! their use: the SIK, K1 and K2 are zeroed when dropped, and so are the
//! HMAC and AES key schedules (the crates' `zeroize` features).

pub mod confidentiality;
pub mod integrity;
pub mod keys;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::wire::ids::AuthAlgorithm;

/// The hash behind an RAKP authentication algorithm: HMAC-SHA1 for
/// RAKP-HMAC-SHA1 (suites 1-3), HMAC-SHA256 for RAKP-HMAC-SHA256 (15-17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthHash {
    /// HMAC-SHA1, 20-byte codes.
    Sha1,
    /// HMAC-SHA256, 32-byte codes.
    Sha256,
}

impl AuthHash {
    /// The hash of an authentication algorithm we implement.
    pub fn of(alg: AuthAlgorithm) -> Option<Self> {
        match alg {
            AuthAlgorithm::HmacSha1 => Some(Self::Sha1),
            AuthAlgorithm::HmacSha256 => Some(Self::Sha256),
            _ => None,
        }
    }

    /// Length of a full HMAC output.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Length of the RAKP4 integrity check value: 12 bytes for the SHA1
    /// suites, 16 for SHA256. It follows the authentication algorithm, not
    /// the integrity one (IPMI v2.0 section 13.28.1 and errata).
    pub fn icv_len(self) -> usize {
        match self {
            Self::Sha1 => 12,
            Self::Sha256 => 16,
        }
    }

    /// HMAC of the concatenation of `parts` under `key`.
    pub fn mac(self, key: &[u8], parts: &[&[u8]]) -> MacOutput {
        match self {
            Self::Sha1 => mac_parts::<Hmac<Sha1>>(key, parts),
            Self::Sha256 => mac_parts::<Hmac<Sha256>>(key, parts),
        }
    }
}

fn mac_parts<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> MacOutput {
    let mut m = keyed::<M>(key);
    for p in parts {
        m.update(p);
    }
    MacOutput::from_slice(&m.finalize().into_bytes())
}

/// Builds an HMAC instance. HMAC accepts keys of any length, so the
/// `InvalidLength` error cannot occur.
pub(crate) fn keyed<M: Mac + KeyInit>(key: &[u8]) -> M {
    match <M as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// An HMAC output of up to 32 bytes, kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MacOutput {
    bytes: [u8; 32],
    len: usize,
}

impl MacOutput {
    pub(crate) fn from_slice(s: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        let len = s.len().min(32);
        bytes[..len].copy_from_slice(&s[..len]);
        MacOutput { bytes, len }
    }

    /// The whole output.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The first `n` bytes (the output is truncated, never extended).
    pub fn truncated(&self, n: usize) -> &[u8] {
        &self.bytes[..n.min(self.len)]
    }
}

impl std::fmt::Debug for MacOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Outputs can be keys (SIK, K1, K2); never print them.
        write!(f, "MacOutput({} bytes)", self.len)
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn rfc2202_and_rfc4231_case_1() {
        let key = [0x0bu8; 20];
        assert_eq!(
            AuthHash::Sha1.mac(&key, &[b"Hi ", b"There"]).as_slice(),
            hex!("b617318655057264e28bc0b6fb378c8ef146be00")
        );
        assert_eq!(
            AuthHash::Sha256.mac(&key, &[b"Hi There"]).as_slice(),
            hex!("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
    }

    #[test]
    fn key_schedules_are_wiped_on_drop() {
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        // The HMAC state of Integrity and of every RAKP code is two of
        // these hash cores (inner and outer pads), keyed.
        wiped_on_drop::<sha1::block_api::Sha1Core>();
        wiped_on_drop::<sha2::block_api::Sha256VarCore>();
        wiped_on_drop::<aes::Aes128>();
        wiped_on_drop::<cbc::Decryptor<aes::Aes128>>();
        wiped_on_drop::<cbc::Encryptor<aes::Aes128>>();
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
