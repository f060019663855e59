//! AES-CBC-128 payload confidentiality (IPMI v2.0 section 13.29).
//!
//! An encrypted payload is a random 16-byte IV followed by the CBC
//! ciphertext of `message ‖ 01 02 .. n ‖ n`, where n (0..=15) makes the
//! plaintext a multiple of 16 bytes. This is not PKCS#7: ipmitool aborts and
//! FreeIPMI drops packets whose pad bytes are not exactly `01..n`, so both
//! directions check and produce that form. The key is the first 16 bytes of
//! K2.

use aes::Aes128;
use cbc::cipher::{
    BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit, block_padding::NoPadding,
};
use zeroize::Zeroizing;

/// AES block and IV length.
pub const BLOCK: usize = 16;

/// Why an encrypted payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The payload is not an IV plus a whole number of blocks.
    #[error("confidentiality payload: length {0} is not 16 + a multiple of 16")]
    Length(usize),
    /// The payload is larger than the caller's buffer.
    #[error("confidentiality payload: {0} bytes is too long")]
    TooLong(usize),
    /// The confidentiality trailer is not `01 02 .. n n`.
    #[error("confidentiality pad: malformed")]
    Pad,
}

/// AES-CBC-128 with its key schedule expanded once per session. The
/// schedule is wiped when the session ends (the `aes` crate's `zeroize`
/// feature), and so is every per-packet copy of it.
#[derive(Clone)]
pub struct AesCbc128 {
    cipher: Aes128,
}

impl AesCbc128 {
    /// Keys the cipher with the first 16 bytes of K2.
    pub fn new(k2: &[u8]) -> Self {
        let mut key = Zeroizing::new([0u8; BLOCK]);
        let n = k2.len().min(BLOCK);
        key[..n].copy_from_slice(&k2[..n]);
        AesCbc128 {
            cipher: Aes128::new(&(*key).into()),
        }
    }

    /// Length of the encrypted payload (IV included) for a message of
    /// `plain_len` bytes.
    pub fn encrypted_len(plain_len: usize) -> usize {
        BLOCK + (plain_len + 1).div_ceil(BLOCK) * BLOCK
    }

    /// Appends `iv ‖ ciphertext(message ‖ pad)` to `out`.
    pub fn encrypt_into(&self, iv: [u8; BLOCK], message: &[u8], out: &mut Vec<u8>) {
        let pad = (BLOCK - (message.len() + 1) % BLOCK) % BLOCK;
        out.extend_from_slice(&iv);
        let start = out.len();
        out.extend_from_slice(message);
        out.extend((1..=pad as u8).chain([pad as u8]));
        let len = out.len() - start;
        let enc = cbc::Encryptor::<Aes128>::inner_iv_init(self.cipher.clone(), &iv.into());
        // The plaintext was padded to whole blocks just above, so NoPadding
        // cannot fail.
        if enc
            .encrypt_padded::<NoPadding>(&mut out[start..], len)
            .is_err()
        {
            unreachable!("plaintext padded to whole blocks");
        }
    }

    /// Decrypts `payload` (IV first) into `scratch` and returns the message
    /// with the confidentiality trailer removed.
    pub fn decrypt<'s>(
        &self,
        payload: &[u8],
        scratch: &'s mut [u8],
    ) -> Result<&'s [u8], DecryptError> {
        if payload.len() < 2 * BLOCK || !payload.len().is_multiple_of(BLOCK) {
            return Err(DecryptError::Length(payload.len()));
        }
        let (iv, body) = payload.split_at(BLOCK);
        let Some(buf) = scratch.get_mut(..body.len()) else {
            return Err(DecryptError::TooLong(payload.len()));
        };
        buf.copy_from_slice(body);
        let mut iv_block = [0u8; BLOCK];
        iv_block.copy_from_slice(iv);
        let dec = cbc::Decryptor::<Aes128>::inner_iv_init(self.cipher.clone(), &iv_block.into());
        let plain = dec
            .decrypt_padded::<NoPadding>(buf)
            .map_err(|_| DecryptError::Length(payload.len()))?;
        let Some((&pad, rest)) = plain.split_last() else {
            return Err(DecryptError::Pad);
        };
        let pad = usize::from(pad);
        if pad >= BLOCK || pad > rest.len() {
            return Err(DecryptError::Pad);
        }
        let (message, pad_bytes) = rest.split_at(rest.len() - pad);
        if pad_bytes.iter().zip(1u8..).any(|(b, want)| *b != want) {
            return Err(DecryptError::Pad);
        }
        Ok(message)
    }
}

impl std::fmt::Debug for AesCbc128 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesCbc128(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn nist_sp800_38a_f21_first_block() {
        // AES-128-CBC: the first block of NIST SP 800-38A F.2.1, with the
        // key schedule this type expands.
        let key = hex!("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = hex!("000102030405060708090a0b0c0d0e0f");
        let ct = hex!("7649abac8119b246cee98e9b12e9197d");
        let aes = AesCbc128::new(&key);
        let pt = hex!("6bc1bee22e409f96e93d7e117393172a");
        // pt does not end in a valid IPMI pad, so use the block API.
        let enc = cbc::Encryptor::<Aes128>::inner_iv_init(aes.cipher.clone(), &iv.into());
        let mut buf = pt;
        let got = enc
            .encrypt_padded::<NoPadding>(&mut buf, 16)
            .expect("one block")
            .to_vec();
        assert_eq!(got, ct);
    }

    #[test]
    fn round_trips_every_length() {
        let aes = AesCbc128::new(&[7u8; 20]);
        for len in 0..64 {
            let msg: Vec<u8> = (0..len as u8).collect();
            let mut out = Vec::new();
            aes.encrypt_into([len as u8; 16], &msg, &mut out);
            assert_eq!(out.len(), AesCbc128::encrypted_len(len));
            let mut scratch = [0u8; 128];
            assert_eq!(aes.decrypt(&out, &mut scratch).expect("decrypt"), &msg[..]);
        }
    }

    #[test]
    fn rejects_bad_pad_and_length() {
        let aes = AesCbc128::new(&[7u8; 16]);
        let mut out = Vec::new();
        aes.encrypt_into([1; 16], b"hello", &mut out);
        let mut scratch = [0u8; 64];
        assert_eq!(
            aes.decrypt(&out[..out.len() - 1], &mut scratch),
            Err(DecryptError::Length(31))
        );
        // Flip a bit in the last ciphertext block: the pad no longer checks.
        let last = out.len() - 1;
        out[last] ^= 0x80;
        assert_eq!(aes.decrypt(&out, &mut scratch), Err(DecryptError::Pad));
        let mut small = [0u8; 8];
        out[last] ^= 0x80;
        assert_eq!(
            aes.decrypt(&out, &mut small),
            Err(DecryptError::TooLong(32))
        );
    }
}
