//! The SOL payload (payload type 1) as it travels in an RMCP+ session
//! packet: a four-byte header, then the characters (IPMI v2.0 section
//! 15.9, table 15-2).
//!
//! The header is the same both ways; only the meaning of the last byte
//! differs: from the BMC it is a status, from the console an operation.
//! A sequence number of 0 marks a packet that only acknowledges; an ACK
//! sequence number of 0 marks one that acknowledges nothing.

use bytes::BufMut;

use crate::codec::{Decode, DecodeError, Encode, decode_all, u8_field};

/// Most characters one packet carries: the accepted-character count is one
/// byte.
pub const MAX_CHARACTERS: usize = 255;
/// Length of the SOL header.
pub const HEADER_LEN: usize = 4;

/// Status bits, BMC to console (byte 4).
pub mod status {
    /// The packet NACKs the one it names: the BMC could not take it now.
    pub const NACK: u8 = 0x40;
    /// Characters cannot be transferred (the machine's port is gone).
    pub const TRANSFER_UNAVAILABLE: u8 = 0x20;
    /// SOL is being deactivated.
    pub const DEACTIVATING: u8 = 0x10;
    /// The BMC dropped characters from the machine.
    pub const TRANSMIT_OVERRUN: u8 = 0x08;
    /// A break was detected on the machine's port.
    pub const BREAK: u8 = 0x04;
}

/// Operation bits, console to BMC (byte 4).
pub mod operation {
    /// The packet NACKs the one it names: the console could not take it.
    pub const NACK: u8 = 0x40;
    /// Assert RI (ring / wake on ring).
    pub const RING_WOR: u8 = 0x20;
    /// Send a break to the machine.
    pub const GENERATE_BREAK: u8 = 0x10;
    /// Deassert CTS: the console asks the BMC to pause.
    pub const DEASSERT_CTS: u8 = 0x08;
    /// Drop DCD/DSR.
    pub const DROP_DCD_DSR: u8 = 0x04;
    /// Flush what the BMC holds for the machine.
    pub const FLUSH_INBOUND: u8 = 0x02;
    /// Flush what the BMC holds for the console.
    pub const FLUSH_OUTBOUND: u8 = 0x01;
}

/// One SOL packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SolPacket<'a> {
    /// Packet sequence number, 1..=15; 0 for an ACK-only packet.
    pub sequence: u8,
    /// The sequence number acknowledged (or NACKed); 0 for none.
    pub ack_sequence: u8,
    /// Characters accepted from the packet acknowledged.
    pub accepted: u8,
    /// Status (from the BMC) or operation (from the console) bits.
    pub flags: u8,
    /// The characters.
    pub data: &'a [u8],
}

impl SolPacket<'_> {
    /// An ACK (or NACK) of the console's packet `sequence`.
    pub fn ack(sequence: u8, accepted: u8, flags: u8) -> SolPacket<'static> {
        SolPacket {
            sequence: 0,
            ack_sequence: sequence,
            accepted,
            flags,
            data: &[],
        }
    }

    /// Whether the packet carries characters to be acknowledged.
    pub fn has_data(&self) -> bool {
        self.sequence != 0 && !self.data.is_empty()
    }

    /// Whether the packet acknowledges (or NACKs) one of ours.
    pub fn acks(&self) -> bool {
        self.ack_sequence != 0
    }

    /// Whether the NACK bit is set.
    pub fn is_nack(&self) -> bool {
        self.flags & operation::NACK != 0
    }
}

impl<'a> Decode<'a> for SolPacket<'a> {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        decode_all("sol packet", input, |i| {
            let (i, sequence) = u8_field("sol packet sequence")(i)?;
            let (i, ack_sequence) = u8_field("sol ack sequence")(i)?;
            let (i, accepted) = u8_field("sol accepted characters")(i)?;
            let (i, flags) = u8_field("sol operation")(i)?;
            // Bits 7..4 of both sequence numbers are reserved.
            Ok((
                &[][..],
                SolPacket {
                    sequence: sequence & 0x0f,
                    ack_sequence: ack_sequence & 0x0f,
                    accepted,
                    flags: flags & 0x7f,
                    data: i,
                },
            ))
        })
    }
}

impl Encode for SolPacket<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.sequence & 0x0f);
        out.put_u8(self.ack_sequence & 0x0f);
        out.put_u8(self.accepted);
        out.put_u8(self.flags & 0x7f);
        out.put_slice(self.data);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ipmitool_ack_decodes() {
        // What ipmitool sends for our packet 3 with 5 characters.
        let p = SolPacket::decode(&[0x00, 0x03, 0x05, 0x00]).expect("decodes");
        assert_eq!(p, SolPacket::ack(3, 5, 0));
        assert!(p.acks() && !p.has_data() && !p.is_nack());
    }

    #[test]
    fn a_data_packet_keeps_its_characters() {
        let p = SolPacket::decode(b"\x01\x00\x00\x00ls\r").expect("decodes");
        assert_eq!(p.sequence, 1);
        assert_eq!(p.data, b"ls\r");
        assert!(p.has_data() && !p.acks());
    }

    #[test]
    fn a_short_header_names_its_field() {
        assert_eq!(
            SolPacket::decode(&[1, 0, 0]),
            Err(DecodeError::Truncated {
                field: "sol operation"
            })
        );
    }

    proptest! {
        #[test]
        fn round_trips(seq in 0u8..16, ack in 0u8..16, accepted: u8, flags in 0u8..0x80,
                       data in proptest::collection::vec(any::<u8>(), 0..MAX_CHARACTERS)) {
            let p = SolPacket { sequence: seq, ack_sequence: ack, accepted, flags, data: &data };
            let bytes = p.to_vec();
            prop_assert_eq!(SolPacket::decode(&bytes), Ok(p));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SolPacket::decode(&bytes);
        }
    }
}
