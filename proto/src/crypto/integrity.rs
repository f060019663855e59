//! Packet integrity: HMAC-SHA1-96 and HMAC-SHA256-128 keyed with K1
//! (IPMI v2.0 section 13.28.4).
//!
//! The AuthCode covers every byte from the session header's auth-type byte
//! through the trailer's next-header byte and is the HMAC truncated to 12
//! (SHA1-96) or 16 (SHA256-128) bytes.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::{MacOutput, constant_time_eq, keyed};
use crate::wire::ids::IntegrityAlgorithm;
use crate::wire::session::{INTEGRITY_PAD, NEXT_HEADER, integrity_pad_len};

/// A session's integrity algorithm with its key already expanded, so that
/// each packet costs only a clone and the hash itself.
#[derive(Clone)]
pub enum Integrity {
    /// No integrity trailer.
    None,
    /// HMAC-SHA1-96.
    HmacSha1_96(Hmac<Sha1>),
    /// HMAC-SHA256-128.
    HmacSha256_128(Hmac<Sha256>),
}

impl Integrity {
    /// Keys an integrity algorithm with K1; `None` for algorithms we do not
    /// implement.
    pub fn new(alg: IntegrityAlgorithm, k1: &[u8]) -> Option<Self> {
        match alg {
            IntegrityAlgorithm::None => Some(Self::None),
            IntegrityAlgorithm::HmacSha1_96 => Some(Self::HmacSha1_96(keyed(k1))),
            IntegrityAlgorithm::HmacSha256_128 => Some(Self::HmacSha256_128(keyed(k1))),
            _ => None,
        }
    }

    /// Whether packets carry a trailer at all.
    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }

    /// Length of the AuthCode.
    pub fn code_len(&self) -> usize {
        match self {
            Self::None => 0,
            Self::HmacSha1_96(_) => 12,
            Self::HmacSha256_128(_) => 16,
        }
    }

    /// The AuthCode of `data`.
    pub fn compute(&self, data: &[u8]) -> MacOutput {
        let full = match self {
            Self::None => return MacOutput::from_slice(&[]),
            Self::HmacSha1_96(m) => {
                let mut m = m.clone();
                m.update(data);
                MacOutput::from_slice(&m.finalize().into_bytes())
            }
            Self::HmacSha256_128(m) => {
                let mut m = m.clone();
                m.update(data);
                MacOutput::from_slice(&m.finalize().into_bytes())
            }
        };
        MacOutput::from_slice(full.truncated(self.code_len()))
    }

    /// Appends the integrity trailer to a packet that holds its session
    /// header from `session_start` on: the `FF` pad that aligns it, the
    /// pad length, the next-header byte and the AuthCode over everything
    /// from the auth-type byte (section 13.28.4). Nothing without
    /// integrity.
    pub fn append_trailer(&self, out: &mut Vec<u8>, session_start: usize) {
        if self.is_none() {
            return;
        }
        let pad = integrity_pad_len(out.len() - session_start);
        out.extend(std::iter::repeat_n(INTEGRITY_PAD, pad));
        out.push(pad as u8);
        out.push(NEXT_HEADER);
        let code = self.compute(&out[session_start..]);
        out.extend_from_slice(code.as_slice());
    }

    /// Checks an AuthCode in constant time.
    pub fn verify(&self, data: &[u8], code: &[u8]) -> bool {
        constant_time_eq(self.compute(data).as_slice(), code)
    }
}

impl std::fmt::Debug for Integrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "Integrity::None",
            Self::HmacSha1_96(_) => "Integrity::HmacSha1_96",
            Self::HmacSha256_128(_) => "Integrity::HmacSha256_128",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn truncates_to_algorithm_length() {
        let i = Integrity::new(IntegrityAlgorithm::HmacSha1_96, &[0x0b; 20]).expect("alg");
        // RFC 2202 case 1, first 12 bytes.
        assert_eq!(
            i.compute(b"Hi There").as_slice(),
            hex!("b617318655057264e28bc0b6")
        );
        assert!(i.verify(b"Hi There", &hex!("b617318655057264e28bc0b6")));
        assert!(!i.verify(b"Hi There", &hex!("b617318655057264e28bc0b7")));
        let i = Integrity::new(IntegrityAlgorithm::HmacSha256_128, &[0x0b; 20]).expect("alg");
        // RFC 4231 case 1, first 16 bytes.
        assert_eq!(
            i.compute(b"Hi There").as_slice(),
            hex!("b0344c61d8db38535ca8afceaf0bf12b")
        );
        assert!(Integrity::new(IntegrityAlgorithm::Md5_128, &[0; 16]).is_none());
    }
}
