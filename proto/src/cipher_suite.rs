//! Cipher suites (IPMI v2.0 section 22.15.2, table 22-20) and the set a BMC
//! accepts.
//!
//! A suite fixes one authentication, integrity and confidentiality
//! algorithm. We implement the RAKP-HMAC-SHA1 and RAKP-HMAC-SHA256 families
//! with and without integrity and AES: suites 1, 2, 3, 15, 16 and 17. Suite
//! 0 (no authentication) is never accepted. Open Session proposals are
//! matched against the enabled set and Get Channel Cipher Suites lists
//! exactly that set, so what we advertise is what we accept.

use crate::wire::ids::{AuthAlgorithm, ConfidentialityAlgorithm, IntegrityAlgorithm};

/// One cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CipherSuite {
    /// Suite ID.
    pub id: u8,
    /// Authentication algorithm.
    pub auth: AuthAlgorithm,
    /// Integrity algorithm.
    pub integrity: IntegrityAlgorithm,
    /// Confidentiality algorithm.
    pub confidentiality: ConfidentialityAlgorithm,
}

impl CipherSuite {
    /// The record Get Channel Cipher Suites lists for this suite: start of
    /// record `C0`, the suite ID, then each algorithm with its tag bits
    /// (`00` auth, `40` integrity, `80` confidentiality).
    pub fn record(&self) -> [u8; 5] {
        [
            0xc0,
            self.id,
            u8::from(self.auth) & 0x3f,
            0x40 | (u8::from(self.integrity) & 0x3f),
            0x80 | (u8::from(self.confidentiality) & 0x3f),
        ]
    }
}

/// Every suite this implementation can run, in ID order.
pub const IMPLEMENTED: [CipherSuite; 6] = [
    CipherSuite {
        id: 1,
        auth: AuthAlgorithm::HmacSha1,
        integrity: IntegrityAlgorithm::None,
        confidentiality: ConfidentialityAlgorithm::None,
    },
    CipherSuite {
        id: 2,
        auth: AuthAlgorithm::HmacSha1,
        integrity: IntegrityAlgorithm::HmacSha1_96,
        confidentiality: ConfidentialityAlgorithm::None,
    },
    CipherSuite {
        id: 3,
        auth: AuthAlgorithm::HmacSha1,
        integrity: IntegrityAlgorithm::HmacSha1_96,
        confidentiality: ConfidentialityAlgorithm::AesCbc128,
    },
    CipherSuite {
        id: 15,
        auth: AuthAlgorithm::HmacSha256,
        integrity: IntegrityAlgorithm::None,
        confidentiality: ConfidentialityAlgorithm::None,
    },
    CipherSuite {
        id: 16,
        auth: AuthAlgorithm::HmacSha256,
        integrity: IntegrityAlgorithm::HmacSha256_128,
        confidentiality: ConfidentialityAlgorithm::None,
    },
    CipherSuite {
        id: 17,
        auth: AuthAlgorithm::HmacSha256,
        integrity: IntegrityAlgorithm::HmacSha256_128,
        confidentiality: ConfidentialityAlgorithm::AesCbc128,
    },
];

/// A suite ID the configuration asked for that we do not implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cipher suite {0} is not supported (choose from 1, 2, 3, 15, 16, 17)")]
pub struct UnsupportedSuite(pub u8);

/// The set of enabled suites, one bit per entry of [`IMPLEMENTED`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CipherSuites(u8);

impl Default for CipherSuites {
    /// Suites 3 and 17: what ipmitool, FreeIPMI, pyghmi and MAAS use.
    fn default() -> Self {
        CipherSuites(0b100100)
    }
}

impl CipherSuites {
    /// The set of the given IDs; an unknown ID (including 0) is an error.
    pub fn from_ids(ids: &[u8]) -> Result<Self, UnsupportedSuite> {
        let mut bits = 0u8;
        for id in ids {
            let index = IMPLEMENTED
                .iter()
                .position(|s| s.id == *id)
                .ok_or(UnsupportedSuite(*id))?;
            bits |= 1 << index;
        }
        Ok(CipherSuites(bits))
    }

    /// Whether no suite is enabled.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The enabled suites in ID order.
    pub fn iter(&self) -> impl Iterator<Item = &'static CipherSuite> + '_ {
        IMPLEMENTED
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, s)| s)
    }

    /// The enabled suite with exactly these algorithms.
    pub fn find(
        &self,
        auth: AuthAlgorithm,
        integrity: IntegrityAlgorithm,
        confidentiality: ConfidentialityAlgorithm,
    ) -> Option<&'static CipherSuite> {
        self.iter().find(|s| {
            s.auth == auth && s.integrity == integrity && s.confidentiality == confidentiality
        })
    }

    /// Whether any enabled suite uses this authentication algorithm.
    pub fn has_auth(&self, auth: AuthAlgorithm) -> bool {
        self.iter().any(|s| s.auth == auth)
    }

    /// Writes the Get Channel Cipher Suites record data into `out` and
    /// returns its length: one record per suite when `by_suite`, else the
    /// list of distinct algorithms with their tag bits.
    pub fn records(&self, by_suite: bool, out: &mut [u8; 32]) -> usize {
        let mut len = 0;
        if by_suite {
            for s in self.iter() {
                out[len..len + 5].copy_from_slice(&s.record());
                len += 5;
            }
        } else {
            for s in self.iter() {
                for b in &s.record()[2..] {
                    if !out[..len].contains(b) {
                        out[len] = *b;
                        len += 1;
                    }
                }
            }
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_default_set() {
        let mut buf = [0u8; 32];
        let n = CipherSuites::default().records(true, &mut buf);
        assert_eq!(
            &buf[..n],
            &[0xc0, 0x03, 0x01, 0x41, 0x81, 0xc0, 0x11, 0x03, 0x44, 0x81]
        );
        let n = CipherSuites::default().records(false, &mut buf);
        assert_eq!(&buf[..n], &[0x01, 0x41, 0x81, 0x03, 0x44]);
    }

    #[test]
    fn suite_zero_and_unknown_ids_are_refused() {
        assert_eq!(CipherSuites::from_ids(&[0]), Err(UnsupportedSuite(0)));
        assert_eq!(CipherSuites::from_ids(&[3, 8]), Err(UnsupportedSuite(8)));
        let all = CipherSuites::from_ids(&[1, 2, 3, 15, 16, 17]).expect("all");
        assert_eq!(all.iter().count(), 6);
        let mut buf = [0u8; 32];
        assert_eq!(all.records(true, &mut buf), 30);
    }

    #[test]
    fn find_matches_exact_triples() {
        let s = CipherSuites::default();
        assert_eq!(
            s.find(
                AuthAlgorithm::HmacSha256,
                IntegrityAlgorithm::HmacSha256_128,
                ConfidentialityAlgorithm::AesCbc128
            )
            .map(|s| s.id),
            Some(17)
        );
        assert!(
            s.find(
                AuthAlgorithm::None,
                IntegrityAlgorithm::None,
                ConfidentialityAlgorithm::None
            )
            .is_none()
        );
        assert!(
            s.find(
                AuthAlgorithm::HmacSha1,
                IntegrityAlgorithm::HmacSha1_96,
                ConfidentialityAlgorithm::None
            )
            .is_none(),
            "suite 2 is not enabled by default"
        );
    }
}
