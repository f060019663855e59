//! RMCP+ Open Session Request and Response (IPMI v2.0 section 13.17,
//! tables 13-16 and 13-17).
//!
//! The request proposes one authentication, one integrity and one
//! confidentiality algorithm, each in an eight-byte record
//! `kind 00 00 08 alg 00 00 00`; the response names the session ID we chose
//! (SIDc), the privilege we grant and echoes the algorithms accepted. On an
//! error status only the first eight bytes are sent.

use bytes::BufMut;

use super::ids::{AuthAlgorithm, ConfidentialityAlgorithm, IntegrityAlgorithm, RakpStatus};
use crate::codec::{
    Decode, DecodeError, Encode, PResult, array_field, decode_all, invalid, le_u32_field, u8_field,
};

/// Record kind of the authentication algorithm record.
const AUTH_RECORD: u8 = 0x00;
/// Record kind of the integrity algorithm record.
const INTEGRITY_RECORD: u8 = 0x01;
/// Record kind of the confidentiality algorithm record.
const CONFIDENTIALITY_RECORD: u8 = 0x02;

/// An Open Session Request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenSessionRequest {
    /// Message tag, echoed in the response.
    pub tag: u8,
    /// Requested maximum privilege (low nibble); 0 asks for the highest
    /// level the proposed algorithms allow.
    pub max_privilege: u8,
    /// The console's session ID (SIDm), which our packets carry.
    pub console_session_id: u32,
    /// Proposed authentication algorithm.
    pub auth: AuthAlgorithm,
    /// Proposed integrity algorithm.
    pub integrity: IntegrityAlgorithm,
    /// Proposed confidentiality algorithm.
    pub confidentiality: ConfidentialityAlgorithm,
}

impl OpenSessionRequest {
    /// Encoded length.
    pub const LEN: usize = 32;

    /// Reads just the tag and SIDm, so that a request too malformed to
    /// decode can still be answered with "illegal parameter".
    pub fn peek_tag_and_console_id(input: &[u8]) -> Option<(u8, u32)> {
        let tag = *input.first()?;
        let sid = input.get(4..8)?;
        Some((tag, u32::from_le_bytes([sid[0], sid[1], sid[2], sid[3]])))
    }
}

fn algorithm_record<'a>(name: &'static str, kind: u8) -> impl FnMut(&'a [u8]) -> PResult<'a, u8> {
    move |i| {
        let (i, record) = array_field::<8>(name)(i)?;
        if record[0] != kind {
            return Err(invalid(name, u32::from(record[0])));
        }
        if record[3] != 0x08 {
            return Err(invalid(name, u32::from(record[3])));
        }
        Ok((i, record[4] & 0x3f))
    }
}

fn put_record<B: BufMut>(out: &mut B, kind: u8, algorithm: u8) {
    out.put_slice(&[kind, 0, 0, 0x08, algorithm & 0x3f, 0, 0, 0]);
}

impl<'a> Decode<'a> for OpenSessionRequest {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        decode_all("open session request", input, |i| {
            let (i, tag) = u8_field("open session tag")(i)?;
            let (i, priv_byte) = u8_field("requested maximum privilege")(i)?;
            let (i, _reserved) = array_field::<2>("open session reserved")(i)?;
            let (i, console_session_id) = le_u32_field("console session id")(i)?;
            let (i, auth) = algorithm_record("authentication payload", AUTH_RECORD)(i)?;
            let (i, integrity) = algorithm_record("integrity payload", INTEGRITY_RECORD)(i)?;
            let (i, confidentiality) =
                algorithm_record("confidentiality payload", CONFIDENTIALITY_RECORD)(i)?;
            Ok((
                i,
                OpenSessionRequest {
                    tag,
                    max_privilege: priv_byte & 0x0f,
                    console_session_id,
                    auth: AuthAlgorithm::from(auth),
                    integrity: IntegrityAlgorithm::from(integrity),
                    confidentiality: ConfidentialityAlgorithm::from(confidentiality),
                },
            ))
        })
    }
}

impl Encode for OpenSessionRequest {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.tag);
        out.put_u8(self.max_privilege & 0x0f);
        out.put_u16(0);
        out.put_u32_le(self.console_session_id);
        put_record(out, AUTH_RECORD, self.auth.into());
        put_record(out, INTEGRITY_RECORD, self.integrity.into());
        put_record(out, CONFIDENTIALITY_RECORD, self.confidentiality.into());
    }
}

/// What an accepted Open Session Response carries beyond the common part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenSessionAccepted {
    /// Maximum privilege level granted.
    pub max_privilege: u8,
    /// Our session ID (SIDc), never zero.
    pub bmc_session_id: u32,
    /// Authentication algorithm accepted.
    pub auth: AuthAlgorithm,
    /// Integrity algorithm accepted.
    pub integrity: IntegrityAlgorithm,
    /// Confidentiality algorithm accepted.
    pub confidentiality: ConfidentialityAlgorithm,
}

/// An Open Session Response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenSessionResponse {
    /// The request's tag.
    pub tag: u8,
    /// RMCP+ status code.
    pub status: RakpStatus,
    /// The console's session ID, echoed.
    pub console_session_id: u32,
    /// Present exactly when the status is OK.
    pub accepted: Option<OpenSessionAccepted>,
}

impl<'a> Decode<'a> for OpenSessionResponse {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        decode_all("open session response", input, |i| {
            let (i, tag) = u8_field("open session tag")(i)?;
            let (i, status) = u8_field("rmcp+ status")(i)?;
            let (i, max_privilege) = u8_field("maximum privilege")(i)?;
            let (i, _reserved) = u8_field("open session reserved")(i)?;
            let (i, console_session_id) = le_u32_field("console session id")(i)?;
            let status = RakpStatus::from(status);
            if status != RakpStatus::Ok {
                return Ok((
                    i,
                    OpenSessionResponse {
                        tag,
                        status,
                        console_session_id,
                        accepted: None,
                    },
                ));
            }
            let (i, bmc_session_id) = le_u32_field("bmc session id")(i)?;
            let (i, auth) = algorithm_record("authentication payload", AUTH_RECORD)(i)?;
            let (i, integrity) = algorithm_record("integrity payload", INTEGRITY_RECORD)(i)?;
            let (i, confidentiality) =
                algorithm_record("confidentiality payload", CONFIDENTIALITY_RECORD)(i)?;
            Ok((
                i,
                OpenSessionResponse {
                    tag,
                    status,
                    console_session_id,
                    accepted: Some(OpenSessionAccepted {
                        max_privilege: max_privilege & 0x0f,
                        bmc_session_id,
                        auth: AuthAlgorithm::from(auth),
                        integrity: IntegrityAlgorithm::from(integrity),
                        confidentiality: ConfidentialityAlgorithm::from(confidentiality),
                    }),
                },
            ))
        })
    }
}

impl Encode for OpenSessionResponse {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.tag);
        match &self.accepted {
            Some(a) if self.status == RakpStatus::Ok => {
                out.put_u8(self.status.into());
                out.put_u8(a.max_privilege & 0x0f);
                out.put_u8(0);
                out.put_u32_le(self.console_session_id);
                out.put_u32_le(a.bmc_session_id);
                put_record(out, AUTH_RECORD, a.auth.into());
                put_record(out, INTEGRITY_RECORD, a.integrity.into());
                put_record(out, CONFIDENTIALITY_RECORD, a.confidentiality.into());
            }
            _ => {
                out.put_u8(self.status.into());
                out.put_u8(0);
                out.put_u8(0);
                out.put_u32_le(self.console_session_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    #[test]
    fn decodes_ipmitool_cs17_request() {
        // ipmitool -C 17: tag 0, priv 0 ("highest"), SIDm A0A2A3A4.
        let bytes =
            hex!("00 00 0000 a4a3a2a0 00000008 03000000 01000008 04000000 02000008 01000000");
        let r = OpenSessionRequest::decode(&bytes).expect("decode");
        assert_eq!(r.console_session_id, 0xa0a2_a3a4);
        assert_eq!(r.auth, AuthAlgorithm::HmacSha256);
        assert_eq!(r.integrity, IntegrityAlgorithm::HmacSha256_128);
        assert_eq!(r.confidentiality, ConfidentialityAlgorithm::AesCbc128);
        assert_eq!(r.to_vec(), bytes);
        assert_eq!(
            OpenSessionRequest::peek_tag_and_console_id(&bytes),
            Some((0, 0xa0a2_a3a4))
        );
    }

    #[test]
    fn names_the_bad_record() {
        let bytes =
            hex!("00 00 0000 a4a3a2a0 00000008 03000000 01000004 04000000 02000008 01000000");
        assert_eq!(
            OpenSessionRequest::decode(&bytes),
            Err(DecodeError::Invalid {
                field: "integrity payload",
                value: 4
            })
        );
    }

    #[test]
    fn error_response_is_eight_bytes() {
        let r = OpenSessionResponse {
            tag: 7,
            status: RakpStatus::NoCipherSuiteMatch,
            console_session_id: 0x1234_5678,
            accepted: None,
        };
        let bytes = r.to_vec();
        assert_eq!(bytes, hex!("07 11 00 00 78563412"));
        assert_eq!(OpenSessionResponse::decode(&bytes).expect("decode"), r);
    }

    proptest! {
        #[test]
        fn request_round_trips(tag: u8, p in 0u8..16, sid: u32, a in 0u8..64, i in 0u8..64, c in 0u8..64) {
            let r = OpenSessionRequest { tag, max_privilege: p, console_session_id: sid,
                auth: a.into(), integrity: i.into(), confidentiality: c.into() };
            prop_assert_eq!(OpenSessionRequest::decode(&r.to_vec()).expect("decode"), r);
        }

        #[test]
        fn response_round_trips(tag: u8, p in 0u8..16, sidm: u32, sidc: u32, a in 0u8..64, i in 0u8..64, c in 0u8..64) {
            let r = OpenSessionResponse { tag, status: RakpStatus::Ok, console_session_id: sidm,
                accepted: Some(OpenSessionAccepted { max_privilege: p, bmc_session_id: sidc,
                    auth: a.into(), integrity: i.into(), confidentiality: c.into() }) };
            let bytes = r.to_vec();
            prop_assert_eq!(bytes.len(), 36);
            prop_assert_eq!(OpenSessionResponse::decode(&bytes).expect("decode"), r);
        }
    }
}
