//! RMCP header and the ASF presence ping/pong (IPMI v2.0 section 13.1;
//! DMTF ASF 2.0 section 3.2.4).
//!
//! Every datagram starts with the four-byte RMCP header. Class 7 carries IPMI
//! sessions; class 6 carries ASF messages, of which a BMC must answer the
//! Presence Ping (`rmcpping`, and ipmipower every five seconds) with a
//! Presence Pong that announces IPMI support.

use bytes::BufMut;

use super::ids::RmcpClass;
use crate::codec::{
    Decode, DecodeError, Encode, PResult, be_u32_field, check, decode_all, take_field, u8_field,
};

/// RMCP version 1.0, the only one in use (IPMI v2.0 table 13-1).
pub const RMCP_VERSION: u8 = 0x06;
/// Sequence number meaning "no RMCP ACK wanted"; IPMI always uses it.
pub const RMCP_NO_ACK: u8 = 0xff;
/// The ASF IANA enterprise number, 4542, big-endian on the wire.
pub const ASF_IANA: u32 = 4542;
/// ASF message type of a Presence Ping.
pub const ASF_PRESENCE_PING: u8 = 0x80;
/// ASF message type of a Presence Pong.
pub const ASF_PRESENCE_PONG: u8 = 0x40;

/// The RMCP header (IPMI v2.0 table 13-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmcpHeader {
    /// RMCP sequence number; 0xFF when no RMCP ACK is wanted.
    pub sequence: u8,
    /// Message class (bits 4..0 of the class byte).
    pub class: RmcpClass,
    /// Bit 7 of the class byte: this is an RMCP ACK.
    pub ack: bool,
}

impl RmcpHeader {
    /// Encoded length.
    pub const LEN: usize = 4;

    /// The header every IPMI datagram we send carries.
    pub const IPMI: RmcpHeader = RmcpHeader {
        sequence: RMCP_NO_ACK,
        class: RmcpClass::Ipmi,
        ack: false,
    };

    /// Parses the header at the front of a datagram.
    pub fn parse(input: &[u8]) -> PResult<'_, RmcpHeader> {
        let (i, version) = u8_field("rmcp version")(input)?;
        check("rmcp version", version, |v| v == RMCP_VERSION)?;
        let (i, _reserved) = u8_field("rmcp reserved")(i)?;
        let (i, sequence) = u8_field("rmcp sequence")(i)?;
        let (i, class) = u8_field("rmcp class")(i)?;
        Ok((
            i,
            RmcpHeader {
                sequence,
                class: RmcpClass::from(class & 0x1f),
                ack: class & 0x80 != 0,
            },
        ))
    }
}

impl Encode for RmcpHeader {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(RMCP_VERSION);
        out.put_u8(0);
        out.put_u8(self.sequence);
        out.put_u8(u8::from(self.class) & 0x1f | if self.ack { 0x80 } else { 0 });
    }
}

/// An ASF message following an RMCP header of class ASF (ASF 2.0 table 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsfMessage<'a> {
    /// IANA enterprise number (4542 for ASF).
    pub iana: u32,
    /// Message type: 0x80 ping, 0x40 pong.
    pub message_type: u8,
    /// Tag echoed in the answer.
    pub tag: u8,
    /// Message data (length is the byte before it on the wire).
    pub data: &'a [u8],
}

impl<'a> Decode<'a> for AsfMessage<'a> {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        decode_all("asf message", input, |i| {
            let (i, iana) = be_u32_field("asf iana")(i)?;
            let (i, message_type) = u8_field("asf message type")(i)?;
            let (i, tag) = u8_field("asf message tag")(i)?;
            let (i, _reserved) = u8_field("asf reserved")(i)?;
            let (i, len) = u8_field("asf data length")(i)?;
            let (i, data) = take_field("asf data", usize::from(len))(i)?;
            Ok((
                i,
                AsfMessage {
                    iana,
                    message_type,
                    tag,
                    data,
                },
            ))
        })
    }
}

impl Encode for AsfMessage<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32(self.iana);
        out.put_u8(self.message_type);
        out.put_u8(self.tag);
        out.put_u8(0);
        // ASF data is at most a few bytes; a longer slice is a caller bug
        // and is cut rather than written with a wrong length.
        let len = self.data.len().min(usize::from(u8::MAX));
        out.put_u8(len as u8);
        out.put_slice(&self.data[..len]);
    }
}

/// The data of a Presence Pong (ASF 2.0 table 12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PongData {
    /// IANA of the OEM, or 4542 when there is none.
    pub oem_iana: u32,
    /// OEM-defined value.
    pub oem_defined: u32,
    /// Supported entities: bit 7 = IPMI supported, low nibble = ASF version
    /// (1 = ASF 1.0).
    pub supported_entities: u8,
    /// Supported interactions (bit 5 = RMCP security extensions, which
    /// IPMI does not use).
    pub supported_interactions: u8,
}

impl PongData {
    /// Encoded length.
    pub const LEN: usize = 16;

    /// The pong of a BMC that supports IPMI over ASF 1.0.
    pub const IPMI: PongData = PongData {
        oem_iana: ASF_IANA,
        oem_defined: 0,
        supported_entities: 0x81,
        supported_interactions: 0x00,
    };

    /// Encodes into the fixed 16-byte array the pong carries.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0..4].copy_from_slice(&self.oem_iana.to_be_bytes());
        out[4..8].copy_from_slice(&self.oem_defined.to_be_bytes());
        out[8] = self.supported_entities;
        out[9] = self.supported_interactions;
        out
    }

    /// Decodes the 16 bytes of a pong.
    pub fn from_bytes(data: &[u8]) -> Result<Self, DecodeError> {
        decode_all("asf pong data", data, |i| {
            let (i, oem_iana) = be_u32_field("pong oem iana")(i)?;
            let (i, oem_defined) = be_u32_field("pong oem defined")(i)?;
            let (i, supported_entities) = u8_field("pong supported entities")(i)?;
            let (i, supported_interactions) = u8_field("pong supported interactions")(i)?;
            let (i, _reserved) = take_field("pong reserved", 6)(i)?;
            Ok((
                i,
                PongData {
                    oem_iana,
                    oem_defined,
                    supported_entities,
                    supported_interactions,
                },
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    #[test]
    fn decodes_rmcpping_request() {
        // What FreeIPMI's rmcpping sends (clients.md section 1.9).
        let ping = hex!("06 00 ff 06 00 00 11 be 80 17 00 00");
        let (rest, header) = RmcpHeader::parse(&ping).expect("header");
        assert_eq!(header.class, RmcpClass::Asf);
        let msg = AsfMessage::decode(rest).expect("asf");
        assert_eq!(msg.iana, ASF_IANA);
        assert_eq!(msg.message_type, ASF_PRESENCE_PING);
        assert_eq!(msg.tag, 0x17);
        assert!(msg.data.is_empty());
    }

    #[test]
    fn encodes_the_pong_clients_expect() {
        let data = PongData::IPMI.to_bytes();
        let pong = AsfMessage {
            iana: ASF_IANA,
            message_type: ASF_PRESENCE_PONG,
            tag: 0x17,
            data: &data,
        };
        let mut out = Vec::new();
        RmcpHeader {
            sequence: RMCP_NO_ACK,
            class: RmcpClass::Asf,
            ack: false,
        }
        .encode(&mut out);
        pong.encode(&mut out);
        assert_eq!(
            out,
            hex!(
                "06 00 ff 06 00 00 11 be 40 17 00 10 00 00 11 be 00 00 00 00 81 00 00 00 00 00 00 00"
            )
        );
    }

    #[test]
    fn rejects_wrong_version() {
        let err = crate::codec::decode_prefix("rmcp", &hex!("07 00 ff 07"), RmcpHeader::parse);
        assert_eq!(
            err.map(|(h, _)| h),
            Err(DecodeError::Invalid {
                field: "rmcp version",
                value: 7
            })
        );
    }

    proptest! {
        #[test]
        fn rmcp_header_round_trips(sequence: u8, class in 0u8..0x20, ack: bool) {
            let h = RmcpHeader { sequence, class: RmcpClass::from(class), ack };
            let bytes = h.to_vec();
            let (rest, back) = RmcpHeader::parse(&bytes).expect("decode");
            prop_assert!(rest.is_empty());
            prop_assert_eq!(back, h);
        }

        #[test]
        fn asf_message_round_trips(iana: u32, message_type: u8, tag: u8, data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let m = AsfMessage { iana, message_type, tag, data: &data };
            let bytes = m.to_vec();
            prop_assert_eq!(AsfMessage::decode(&bytes).expect("decode"), m);
        }

        #[test]
        fn pong_data_round_trips(oem_iana: u32, oem_defined: u32, e: u8, i: u8) {
            let p = PongData { oem_iana, oem_defined, supported_entities: e, supported_interactions: i };
            prop_assert_eq!(PongData::from_bytes(&p.to_bytes()).expect("decode"), p);
        }
    }
}
