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

    /// NIST SP 800-38A F.2.1 (AES-128-CBC encryption, four blocks).
    const NIST_KEY: [u8; 16] = hex!("2b7e151628aed2a6abf7158809cf4f3c");
    const NIST_IV: [u8; 16] = hex!("000102030405060708090a0b0c0d0e0f");
    const NIST_PT: [u8; 64] = hex!(
        "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"
        "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710"
    );
    const NIST_CT: [u8; 64] = hex!(
        "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2"
        "73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7"
    );

    /// The IPMI pad block after a 64-byte message: `01 02 .. 0f` and the
    /// count 0f, encrypted after the last NIST block with the bare AES
    /// block cipher (not this module's CBC).
    fn pad_block_after_nist() -> [u8; 16] {
        use aes::cipher::BlockCipherEncrypt;
        let mut block = [0u8; 16];
        for (i, b) in block.iter_mut().enumerate().take(15) {
            *b = i as u8 + 1;
        }
        block[15] = 15;
        for (b, c) in block.iter_mut().zip(&NIST_CT[48..]) {
            *b ^= c;
        }
        let cipher = Aes128::new(&NIST_KEY.into());
        let mut b = block.into();
        cipher.encrypt_block(&mut b);
        b.into()
    }

    #[test]
    fn encrypts_the_nist_vector() {
        let aes = AesCbc128::new(&NIST_KEY);
        let mut out = Vec::new();
        aes.encrypt_into(NIST_IV, &NIST_PT, &mut out);
        assert_eq!(out.len(), 16 + 64 + 16, "IV, four blocks, the pad block");
        assert_eq!(out[..16], NIST_IV);
        assert_eq!(out[16..80], NIST_CT, "CBC's first four blocks are NIST's");
        assert_eq!(out[80..], pad_block_after_nist());
    }

    #[test]
    fn decrypts_the_nist_vector() {
        let aes = AesCbc128::new(&NIST_KEY);
        let mut payload = NIST_IV.to_vec();
        payload.extend_from_slice(&NIST_CT);
        payload.extend_from_slice(&pad_block_after_nist());
        let mut scratch = [0u8; 128];
        assert_eq!(
            aes.decrypt(&payload, &mut scratch).expect("decrypt"),
            &NIST_PT[..]
        );
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
