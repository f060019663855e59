//! Session headers and the RMCP+ integrity trailer (IPMI v2.0 section 13.6,
//! tables 13-8 and 13-9).
//!
//! Two framings follow the RMCP header. The IPMI 1.5 one is used here only
//! before a session exists (Get Channel Authentication Capabilities), with
//! authentication type "none". The IPMI 2.0 (RMCP+) one carries the session
//! setup payloads and every in-session message; when a session has an
//! integrity algorithm its packets end with a trailer: `FF` pad bytes that
//! align the authenticated span to four bytes, the pad length, the next-header
//! byte `07` and the truncated HMAC (the "AuthCode").

use bytes::BufMut;

use super::ids::{AuthType, PayloadType};
use crate::codec::{
    DecodeError, Encode, PResult, array_field, decode_prefix, invalid, le_u16_field, le_u32_field,
    take_field, u8_field,
};

/// Next-header byte of the integrity trailer (IPMI v2.0 table 13-8).
pub const NEXT_HEADER: u8 = 0x07;
/// Pad byte of the integrity trailer.
pub const INTEGRITY_PAD: u8 = 0xff;

/// IPMI 1.5 session header (IPMI v2.0 table 13-4). An auth code is present
/// only when the authentication type is not "none".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionHeaderV15 {
    /// Authentication type.
    pub auth_type: AuthType,
    /// Session sequence number (0 outside a session).
    pub sequence: u32,
    /// Session ID (0 outside a session).
    pub session_id: u32,
    /// Authentication code, present unless the type is "none".
    pub auth_code: Option<[u8; 16]>,
}

/// An IPMI 1.5 framed packet: header plus one IPMI message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketV15<'a> {
    /// The session header.
    pub header: SessionHeaderV15,
    /// The IPMI message the length byte covers.
    pub message: &'a [u8],
}

impl<'a> PacketV15<'a> {
    /// Parses the bytes after the RMCP header. A single trailing byte is
    /// tolerated: IPMI 1.5 senders add a "legacy pad" byte to some lengths.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let (packet, rest) = decode_prefix("ipmi 1.5 session", input, Self::parse)?;
        if rest.len() > 1 {
            return Err(DecodeError::Trailing {
                field: "ipmi 1.5 session",
                count: rest.len(),
            });
        }
        Ok(packet)
    }

    fn parse(i: &'a [u8]) -> PResult<'a, Self> {
        let (i, auth_type) = u8_field("session auth type")(i)?;
        let auth_type = AuthType::from(auth_type);
        if auth_type == AuthType::RmcpPlus {
            return Err(invalid("session auth type", 0x06));
        }
        let (i, sequence) = le_u32_field("session sequence")(i)?;
        let (i, session_id) = le_u32_field("session id")(i)?;
        let (i, auth_code) = if auth_type == AuthType::None {
            (i, None)
        } else {
            let (i, code) = array_field::<16>("session auth code")(i)?;
            (i, Some(code))
        };
        let (i, len) = u8_field("message length")(i)?;
        let (i, message) = take_field("message", usize::from(len))(i)?;
        Ok((
            i,
            PacketV15 {
                header: SessionHeaderV15 {
                    auth_type,
                    sequence,
                    session_id,
                    auth_code,
                },
                message,
            },
        ))
    }
}

impl Encode for PacketV15<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(u8::from(self.header.auth_type));
        out.put_u32_le(self.header.sequence);
        out.put_u32_le(self.header.session_id);
        if let Some(code) = &self.header.auth_code {
            out.put_slice(code);
        }
        let len = self.message.len().min(usize::from(u8::MAX));
        out.put_u8(len as u8);
        out.put_slice(&self.message[..len]);
    }
}

/// The payload-type byte and session fields of an RMCP+ header
/// (IPMI v2.0 table 13-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionHeaderV20 {
    /// Bit 7: the payload is encrypted.
    pub encrypted: bool,
    /// Bit 6: the packet carries an integrity trailer.
    pub authenticated: bool,
    /// Bits 5..0: the payload type.
    pub payload_type: PayloadType,
    /// For OEM-explicit payloads: IANA and OEM payload ID.
    pub oem: Option<(u32, u16)>,
    /// Session ID: ours (SIDc) inbound, the console's (SIDm) outbound.
    pub session_id: u32,
    /// Session sequence number.
    pub sequence: u32,
}

impl SessionHeaderV20 {
    /// The payload-type byte.
    pub fn payload_type_byte(&self) -> u8 {
        (u8::from(self.payload_type) & 0x3f)
            | if self.encrypted { 0x80 } else { 0 }
            | if self.authenticated { 0x40 } else { 0 }
    }

    /// Length of the header from the auth-type byte through the payload
    /// length field.
    pub fn encoded_len(&self) -> usize {
        12 + if self.oem.is_some() { 6 } else { 0 }
    }

    /// Writes the header, with `payload_len` as the length field.
    pub fn encode_with_len<B: BufMut>(&self, payload_len: u16, out: &mut B) {
        out.put_u8(u8::from(AuthType::RmcpPlus));
        out.put_u8(self.payload_type_byte());
        if let Some((iana, id)) = self.oem {
            out.put_u32_le(iana);
            out.put_u16_le(id);
        }
        out.put_u32_le(self.session_id);
        out.put_u32_le(self.sequence);
        out.put_u16_le(payload_len);
    }
}

/// An RMCP+ packet split into its parts, without any cryptography applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketV20<'a> {
    /// The session header.
    pub header: SessionHeaderV20,
    /// The payload as on the wire (possibly encrypted).
    pub payload: &'a [u8],
    /// Everything after the payload: the integrity trailer, if any.
    pub trailer: &'a [u8],
    /// Number of bytes from the auth-type byte through the end of the
    /// payload; the integrity pad aligns this span plus two to four bytes.
    pub authenticated_prefix_len: usize,
}

impl<'a> PacketV20<'a> {
    /// Parses the bytes after the RMCP header.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let (packet, _) = decode_prefix("rmcp+ session", input, |i| Self::parse(i, input.len()))?;
        Ok(packet)
    }

    fn parse(i: &'a [u8], total: usize) -> PResult<'a, Self> {
        let (i, auth_type) = u8_field("session auth type")(i)?;
        if AuthType::from(auth_type) != AuthType::RmcpPlus {
            return Err(invalid("session auth type", u32::from(auth_type)));
        }
        let (i, pt) = u8_field("payload type")(i)?;
        let payload_type = PayloadType::from(pt & 0x3f);
        let (i, oem) = if payload_type == PayloadType::OemExplicit {
            let (i, iana) = le_u32_field("oem iana")(i)?;
            let (i, id) = le_u16_field("oem payload id")(i)?;
            (i, Some((iana, id)))
        } else {
            (i, None)
        };
        let (i, session_id) = le_u32_field("session id")(i)?;
        let (i, sequence) = le_u32_field("session sequence")(i)?;
        let (i, len) = le_u16_field("payload length")(i)?;
        let (rest, payload) = take_field("payload", usize::from(len))(i)?;
        let authenticated_prefix_len = total - rest.len();
        Ok((
            &[],
            PacketV20 {
                header: SessionHeaderV20 {
                    encrypted: pt & 0x80 != 0,
                    authenticated: pt & 0x40 != 0,
                    payload_type,
                    oem,
                    session_id,
                    sequence,
                },
                payload,
                trailer: rest,
                authenticated_prefix_len,
            },
        ))
    }
}

impl Encode for PacketV20<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        let len = self.payload.len().min(usize::from(u16::MAX));
        self.header.encode_with_len(len as u16, out);
        out.put_slice(&self.payload[..len]);
        out.put_slice(self.trailer);
    }
}

/// Appends a whole RMCP+ datagram outside any session: the RMCP header,
/// then a session header with session ID 0, sequence 0 and neither flag bit
/// (what pre-session replies and session setup messages carry; FreeIPMI
/// treats anything else on a setup response as malformed), then `payload`
/// encoded in place, with the length field filled in afterwards.
pub fn put_sessionless_v20<E: Encode>(out: &mut Vec<u8>, payload_type: PayloadType, payload: &E) {
    crate::wire::rmcp::RmcpHeader::IPMI.encode(out);
    SessionHeaderV20 {
        encrypted: false,
        authenticated: false,
        payload_type,
        oem: None,
        session_id: 0,
        sequence: 0,
    }
    .encode_with_len(0, out);
    let len_at = out.len() - 2;
    let start = out.len();
    payload.encode(out);
    // Setup payloads and sessionless replies are well under 100 bytes.
    let len = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
    out[len_at..len_at + 2].copy_from_slice(&len.to_le_bytes());
}

/// Appends a whole IPMI 1.5 datagram outside any session (authentication
/// type none, session ID and sequence 0) carrying `message`, encoded in
/// place. Only Get Channel Authentication Capabilities is answered this way.
pub fn put_sessionless_v15<E: Encode>(out: &mut Vec<u8>, message: &E) {
    crate::wire::rmcp::RmcpHeader::IPMI.encode(out);
    out.put_u8(u8::from(AuthType::None));
    out.put_u32_le(0);
    out.put_u32_le(0);
    let len_at = out.len();
    out.put_u8(0);
    let start = out.len();
    message.encode(out);
    // The one-byte length: the replies sent this way are a few bytes long.
    out[len_at] = u8::try_from(out.len() - start).unwrap_or(u8::MAX);
}

/// Number of `FF` pad bytes that make `prefix_len` (auth-type byte through
/// the payload) plus the pad-length and next-header bytes a multiple of four.
pub fn integrity_pad_len(prefix_len: usize) -> usize {
    (4 - (prefix_len + 2) % 4) % 4
}

/// Checks the integrity trailer's framing and returns the AuthCode it ends
/// with. `prefix_len` is [`PacketV20::authenticated_prefix_len`], `code_len`
/// the integrity algorithm's AuthCode length.
pub fn split_integrity_trailer(
    trailer: &[u8],
    prefix_len: usize,
    code_len: usize,
) -> Result<&[u8], DecodeError> {
    let pad = integrity_pad_len(prefix_len);
    let expected = pad + 2 + code_len;
    if trailer.len() < expected {
        return Err(DecodeError::Truncated {
            field: "integrity trailer",
        });
    }
    if trailer.len() > expected {
        return Err(DecodeError::Trailing {
            field: "integrity trailer",
            count: trailer.len() - expected,
        });
    }
    if let Some(bad) = trailer[..pad].iter().find(|b| **b != INTEGRITY_PAD) {
        return Err(DecodeError::Invalid {
            field: "integrity pad",
            value: u32::from(*bad),
        });
    }
    if usize::from(trailer[pad]) != pad {
        return Err(DecodeError::Invalid {
            field: "integrity pad length",
            value: u32::from(trailer[pad]),
        });
    }
    if trailer[pad + 1] != NEXT_HEADER {
        return Err(DecodeError::Invalid {
            field: "next header",
            value: u32::from(trailer[pad + 1]),
        });
    }
    Ok(&trailer[pad + 2..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    #[test]
    fn decodes_auth_caps_request_framing() {
        // ipmitool's first packet after the RMCP header (clients.md 1.1).
        let bytes = hex!("00 00000000 00000000 09 20 18 c8 81 00 38 8e 04 b5");
        let p = PacketV15::decode(&bytes).expect("decode");
        assert_eq!(p.header.auth_type, AuthType::None);
        assert_eq!(p.header.session_id, 0);
        assert_eq!(p.message.len(), 9);
        assert_eq!(p.to_vec(), bytes);
    }

    #[test]
    fn rejects_rmcpplus_in_v15_parser() {
        let bytes = hex!("06 00 00000000 00000000 0000");
        assert!(matches!(
            PacketV15::decode(&bytes),
            Err(DecodeError::Invalid {
                field: "session auth type",
                ..
            })
        ));
    }

    #[test]
    fn sessionless_datagrams_carry_their_length() {
        let mut out = Vec::new();
        put_sessionless_v20(&mut out, PayloadType::Rakp4, &PacketV15Message(&[1, 2, 3]));
        let p = PacketV20::decode(&out[4..]).expect("decode");
        assert_eq!(p.payload, &[1, 2, 3]);
        assert_eq!((p.header.session_id, p.header.sequence), (0, 0));
        assert!(!p.header.authenticated && !p.header.encrypted);
        let mut out = Vec::new();
        put_sessionless_v15(&mut out, &PacketV15Message(&[9; 7]));
        let p = PacketV15::decode(&out[4..]).expect("decode");
        assert_eq!(p.message, &[9; 7]);
    }

    /// Raw bytes as an [`Encode`] value.
    struct PacketV15Message<'a>(&'a [u8]);

    impl Encode for PacketV15Message<'_> {
        fn encode<B: BufMut>(&self, out: &mut B) {
            out.put_slice(self.0);
        }
    }

    #[test]
    fn pad_aligns_to_four() {
        for prefix in 0..32 {
            assert_eq!((prefix + integrity_pad_len(prefix) + 2) % 4, 0);
        }
    }

    #[test]
    fn trailer_framing_is_checked() {
        // prefix 14 -> pad 0
        let good = hex!("00 07 0102030405060708090a0b0c");
        assert_eq!(
            split_integrity_trailer(&good, 14, 12).map(|c| c.len()),
            Ok(12)
        );
        let bad_next = hex!("00 06 0102030405060708090a0b0c");
        assert!(split_integrity_trailer(&bad_next, 14, 12).is_err());
        // prefix 13 -> pad 1
        let bad_pad = hex!("fe 01 07 0102030405060708090a0b0c");
        assert_eq!(
            split_integrity_trailer(&bad_pad, 13, 12),
            Err(DecodeError::Invalid {
                field: "integrity pad",
                value: 0xfe
            })
        );
        assert!(split_integrity_trailer(&good[..5], 14, 12).is_err());
    }

    fn header_strategy() -> impl Strategy<Value = SessionHeaderV20> {
        (
            any::<bool>(),
            any::<bool>(),
            0u8..0x40,
            any::<u32>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(
                |(encrypted, authenticated, pt, iana, id, session_id, sequence)| {
                    let payload_type = PayloadType::from(pt);
                    SessionHeaderV20 {
                        encrypted,
                        authenticated,
                        payload_type,
                        oem: (payload_type == PayloadType::OemExplicit).then_some((iana, id)),
                        session_id,
                        sequence,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn v20_round_trips(header in header_strategy(),
                           payload in proptest::collection::vec(any::<u8>(), 0..80),
                           trailer in proptest::collection::vec(any::<u8>(), 0..24)) {
            let p = PacketV20 { header, payload: &payload, trailer: &trailer,
                                authenticated_prefix_len: header.encoded_len() + payload.len() };
            let bytes = p.to_vec();
            prop_assert_eq!(PacketV20::decode(&bytes).expect("decode"), p);
        }

        #[test]
        fn v15_round_trips(auth in prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(4u8), Just(5u8)],
                           sequence: u32, session_id: u32, code: [u8; 16],
                           message in proptest::collection::vec(any::<u8>(), 0..64)) {
            let auth_type = AuthType::from(auth);
            let p = PacketV15 {
                header: SessionHeaderV15 { auth_type, sequence, session_id,
                    auth_code: (auth_type != AuthType::None).then_some(code) },
                message: &message,
            };
            let bytes = p.to_vec();
            prop_assert_eq!(PacketV15::decode(&bytes).expect("decode"), p);
        }

        #[test]
        fn v20_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = PacketV20::decode(&bytes);
            let _ = PacketV15::decode(&bytes);
        }
    }
}
