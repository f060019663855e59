//! RAKP Messages 1 to 4 (IPMI v2.0 sections 13.20 to 13.23, tables 13-18
//! to 13-21).
//!
//! RAKP1 carries the console's random number Rm, the requested role and the
//! user name; RAKP2 our random Rc, our GUID and the key-exchange
//! authentication code; RAKP3 the console's proof of the password; RAKP4 our
//! integrity check value. The variable-length codes are borrowed slices, so
//! their lengths follow the negotiated algorithm. Error replies carry only
//! the first eight bytes.

use bytes::BufMut;

use super::ids::RakpStatus;
use crate::codec::{
    Decode, DecodeError, Encode, array_field, decode_all, le_u32_field, take_field, u8_field,
};

/// Longest user name IPMI allows (IPMI v2.0 section 13.20).
pub const MAX_USER_NAME: usize = 16;

/// RAKP Message 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rakp1<'a> {
    /// Message tag, echoed in RAKP2.
    pub tag: u8,
    /// Our session ID (SIDc), from the Open Session Response.
    pub bmc_session_id: u32,
    /// The console's random number Rm.
    pub console_random: [u8; 16],
    /// Requested maximum privilege (bits 3..0) and the name-only lookup
    /// flag (bit 4). The whole byte enters the RAKP HMACs.
    pub role: u8,
    /// The user name, exactly as many bytes as the length field says. The
    /// engine refuses names over [`MAX_USER_NAME`].
    pub user_name: &'a [u8],
}

impl Rakp1<'_> {
    /// Bit 4 of the role: look the user up by name only.
    pub const NAME_ONLY_LOOKUP: u8 = 0x10;
}

impl<'a> Decode<'a> for Rakp1<'a> {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        decode_all("rakp1", input, |i| {
            let (i, tag) = u8_field("rakp1 tag")(i)?;
            let (i, _reserved) = array_field::<3>("rakp1 reserved")(i)?;
            let (i, bmc_session_id) = le_u32_field("bmc session id")(i)?;
            let (i, console_random) = array_field::<16>("console random")(i)?;
            let (i, role) = u8_field("requested role")(i)?;
            let (i, _reserved) = array_field::<2>("rakp1 reserved")(i)?;
            let (i, len) = u8_field("user name length")(i)?;
            let (i, user_name) = take_field("user name", usize::from(len))(i)?;
            // Some consoles (FreeIPMI's intel20 workaround) send the name
            // field padded with NULs to 16 bytes; accept and ignore them.
            let padded = i.len() + usize::from(len) <= MAX_USER_NAME && i.iter().all(|b| *b == 0);
            let i = if padded { &i[i.len()..] } else { i };
            Ok((
                i,
                Rakp1 {
                    tag,
                    bmc_session_id,
                    console_random,
                    role,
                    user_name,
                },
            ))
        })
    }
}

impl Encode for Rakp1<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.tag);
        out.put_slice(&[0, 0, 0]);
        out.put_u32_le(self.bmc_session_id);
        out.put_slice(&self.console_random);
        out.put_u8(self.role);
        out.put_slice(&[0, 0]);
        let len = self.user_name.len().min(usize::from(u8::MAX));
        out.put_u8(len as u8);
        out.put_slice(&self.user_name[..len]);
    }
}

/// The part of RAKP2 present when the status is OK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rakp2Body<'a> {
    /// Our random number Rc.
    pub bmc_random: [u8; 16],
    /// Our GUID (GUIDc).
    pub bmc_guid: [u8; 16],
    /// Key-exchange authentication code: HMAC over the session parameters
    /// keyed with the user's password.
    pub auth_code: &'a [u8],
}

/// RAKP Message 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rakp2<'a> {
    /// RAKP1's tag.
    pub tag: u8,
    /// RMCP+ status.
    pub status: RakpStatus,
    /// The console's session ID (SIDm).
    pub console_session_id: u32,
    /// Present exactly when the status is OK.
    pub body: Option<Rakp2Body<'a>>,
}

impl<'a> Decode<'a> for Rakp2<'a> {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        decode_all("rakp2", input, |i| {
            let (i, tag) = u8_field("rakp2 tag")(i)?;
            let (i, status) = u8_field("rmcp+ status")(i)?;
            let (i, _reserved) = array_field::<2>("rakp2 reserved")(i)?;
            let (i, console_session_id) = le_u32_field("console session id")(i)?;
            let status = RakpStatus::from(status);
            if status != RakpStatus::Ok {
                return Ok((
                    i,
                    Rakp2 {
                        tag,
                        status,
                        console_session_id,
                        body: None,
                    },
                ));
            }
            let (i, bmc_random) = array_field::<16>("bmc random")(i)?;
            let (i, bmc_guid) = array_field::<16>("bmc guid")(i)?;
            let (i, auth_code) = take_field("key exchange auth code", i.len())(i)?;
            Ok((
                i,
                Rakp2 {
                    tag,
                    status,
                    console_session_id,
                    body: Some(Rakp2Body {
                        bmc_random,
                        bmc_guid,
                        auth_code,
                    }),
                },
            ))
        })
    }
}

impl Encode for Rakp2<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.tag);
        out.put_u8(self.status.into());
        out.put_u16(0);
        out.put_u32_le(self.console_session_id);
        if let (RakpStatus::Ok, Some(body)) = (self.status, &self.body) {
            out.put_slice(&body.bmc_random);
            out.put_slice(&body.bmc_guid);
            out.put_slice(body.auth_code);
        }
    }
}

/// RAKP Message 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rakp3<'a> {
    /// Message tag, echoed in RAKP4.
    pub tag: u8,
    /// Status the console reports (non-zero aborts the handshake).
    pub status: RakpStatus,
    /// Our session ID (SIDc).
    pub bmc_session_id: u32,
    /// The console's authentication code (absent when it reports an error).
    pub auth_code: &'a [u8],
}

impl<'a> Decode<'a> for Rakp3<'a> {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        decode_all("rakp3", input, |i| {
            let (i, tag) = u8_field("rakp3 tag")(i)?;
            let (i, status) = u8_field("rmcp+ status")(i)?;
            let (i, _reserved) = array_field::<2>("rakp3 reserved")(i)?;
            let (i, bmc_session_id) = le_u32_field("bmc session id")(i)?;
            let (i, auth_code) = take_field("rakp3 auth code", i.len())(i)?;
            Ok((
                i,
                Rakp3 {
                    tag,
                    status: RakpStatus::from(status),
                    bmc_session_id,
                    auth_code,
                },
            ))
        })
    }
}

impl Encode for Rakp3<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.tag);
        out.put_u8(self.status.into());
        out.put_u16(0);
        out.put_u32_le(self.bmc_session_id);
        out.put_slice(self.auth_code);
    }
}

/// RAKP Message 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rakp4<'a> {
    /// RAKP3's tag.
    pub tag: u8,
    /// RMCP+ status.
    pub status: RakpStatus,
    /// The console's session ID (SIDm).
    pub console_session_id: u32,
    /// Integrity check value (empty on error).
    pub integrity_check: &'a [u8],
}

impl<'a> Decode<'a> for Rakp4<'a> {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        decode_all("rakp4", input, |i| {
            let (i, tag) = u8_field("rakp4 tag")(i)?;
            let (i, status) = u8_field("rmcp+ status")(i)?;
            let (i, _reserved) = array_field::<2>("rakp4 reserved")(i)?;
            let (i, console_session_id) = le_u32_field("console session id")(i)?;
            let status = RakpStatus::from(status);
            // An error RAKP4 ends after the console's session ID, as
            // encode writes it; anything more is trailing.
            let (i, integrity_check) = if status == RakpStatus::Ok {
                take_field("integrity check value", i.len())(i)?
            } else {
                (i, &[][..])
            };
            Ok((
                i,
                Rakp4 {
                    tag,
                    status,
                    console_session_id,
                    integrity_check,
                },
            ))
        })
    }
}

impl Encode for Rakp4<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.tag);
        out.put_u8(self.status.into());
        out.put_u16(0);
        out.put_u32_le(self.console_session_id);
        if self.status == RakpStatus::Ok {
            out.put_slice(self.integrity_check);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rakp1_accepts_nul_padded_name() {
        let r = Rakp1 {
            tag: 1,
            bmc_session_id: 9,
            console_random: [7; 16],
            role: 0x14,
            user_name: b"admin",
        };
        let mut bytes = r.to_vec();
        bytes.extend_from_slice(&[0u8; 11]);
        assert_eq!(Rakp1::decode(&bytes).expect("decode"), r);
        bytes.push(0);
        assert!(Rakp1::decode(&bytes).is_err(), "more than 16 name bytes");
    }

    #[test]
    fn rakp1_truncated_name_is_named() {
        let r = Rakp1 {
            tag: 1,
            bmc_session_id: 9,
            console_random: [7; 16],
            role: 0x14,
            user_name: b"admin",
        };
        let bytes = r.to_vec();
        assert_eq!(
            Rakp1::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated { field: "user name" })
        );
    }

    /// Found by the `rakp` fuzz target: an error RAKP4 followed by bytes
    /// decoded them as an integrity check value, which encode then dropped,
    /// so decode-encode-decode changed the message.
    #[test]
    fn error_rakp4_has_no_integrity_check_value() {
        let mut bytes = vec![0xcf; 28];
        bytes.extend_from_slice(&[3, 0, 0, 45, 1, 0]);
        assert_eq!(
            Rakp4::decode(&bytes),
            Err(DecodeError::Trailing {
                field: "rakp4",
                count: 26
            })
        );
        let r = Rakp4::decode(&bytes[..8]).expect("eight bytes");
        assert_eq!(r.status, RakpStatus::from(0xcf));
        assert!(r.integrity_check.is_empty());
        assert_eq!(Rakp4::decode(&r.to_vec()), Ok(r));
    }

    proptest! {
        #[test]
        fn rakp1_round_trips(tag: u8, sid: u32, rm: [u8; 16], role: u8,
                             name in proptest::collection::vec(1u8..=255, 0..=16)) {
            let r = Rakp1 { tag, bmc_session_id: sid, console_random: rm, role, user_name: &name };
            let bytes = r.to_vec();
            prop_assert_eq!(Rakp1::decode(&bytes).expect("decode"), r);
        }

        #[test]
        fn rakp2_round_trips(tag: u8, sid: u32, rc: [u8; 16], guid: [u8; 16],
                             code in proptest::collection::vec(any::<u8>(), 0..=32), status in 0u8..0x13) {
            let status = RakpStatus::from(status);
            let r = Rakp2 { tag, status, console_session_id: sid,
                body: (status == RakpStatus::Ok).then_some(Rakp2Body { bmc_random: rc, bmc_guid: guid, auth_code: &code }) };
            let bytes = r.to_vec();
            prop_assert_eq!(Rakp2::decode(&bytes).expect("decode"), r);
        }

        #[test]
        fn rakp3_round_trips(tag: u8, status: u8, sid: u32, code in proptest::collection::vec(any::<u8>(), 0..=32)) {
            let r = Rakp3 { tag, status: status.into(), bmc_session_id: sid, auth_code: &code };
            let bytes = r.to_vec();
            prop_assert_eq!(Rakp3::decode(&bytes).expect("decode"), r);
        }

        #[test]
        fn rakp4_round_trips(tag: u8, sid: u32, icv in proptest::collection::vec(any::<u8>(), 0..=16)) {
            let r = Rakp4 { tag, status: RakpStatus::Ok, console_session_id: sid, integrity_check: &icv };
            let bytes = r.to_vec();
            prop_assert_eq!(Rakp4::decode(&bytes).expect("decode"), r);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Rakp1::decode(&bytes);
            let _ = Rakp2::decode(&bytes);
            let _ = Rakp3::decode(&bytes);
            let _ = Rakp4::decode(&bytes);
        }
    }
}
