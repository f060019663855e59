//! IPMI LAN messages: the request and response framing inside a session
//! payload (IPMI v2.0 section 13.8, figure 13-4).
//!
//! A request is `rsSA, netFn/rsLUN, checksum, rqSA, rqSeq/rqLUN, cmd, data,
//! checksum`; a response swaps the addresses, adds one to the network
//! function and puts the completion code before the data. FreeIPMI verifies
//! both checksums and the echoed netFn/cmd/rqSeq, so every field of a
//! response is derived from its request by [`ResponseHeader::answering`].

use bytes::BufMut;

use super::ids::{CompletionCode, NetFn};
use crate::codec::{Decode, DecodeError, Encode, checksum, decode_all, take_field, u8_field};

/// Slave address of the BMC (IPMI v2.0 section 5.4).
pub const BMC_SLAVE_ADDRESS: u8 = 0x20;

/// An IPMI request message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Responder's slave address (0x20 for the BMC).
    pub rs_addr: u8,
    /// Network function.
    pub netfn: NetFn,
    /// Responder's LUN.
    pub rs_lun: u8,
    /// Requester's address (0x81 from every remote console seen).
    pub rq_addr: u8,
    /// Requester's sequence number, six bits; echoed in the response.
    pub rq_seq: u8,
    /// Requester's LUN.
    pub rq_lun: u8,
    /// Command number.
    pub cmd: u8,
    /// Request data.
    pub data: &'a [u8],
}

/// Checks both checksums of a message of at least `min` bytes and returns
/// it without the trailing checksum.
fn checked<'a>(input: &'a [u8], min: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
    if input.len() < min {
        return Err(DecodeError::Truncated { field: what });
    }
    if checksum(&input[..2]) != input[2] {
        return Err(DecodeError::Checksum {
            field: "ipmi header checksum",
        });
    }
    let last = input.len() - 1;
    if checksum(&input[3..last]) != input[last] {
        return Err(DecodeError::Checksum {
            field: "ipmi data checksum",
        });
    }
    Ok(&input[..last])
}

/// Writes a message: the two address bytes and their checksum, then the
/// body and data and the checksum over them.
fn put_message<B: BufMut>(out: &mut B, head: [u8; 2], body: &[u8], data: &[u8]) {
    out.put_slice(&head);
    out.put_u8(checksum(&head));
    out.put_slice(body);
    out.put_slice(data);
    let sum = body.iter().chain(data).fold(0u8, |a, b| a.wrapping_add(*b));
    out.put_u8(sum.wrapping_neg());
}

impl<'a> Decode<'a> for Request<'a> {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let input = checked(input, 7, "ipmi request")?;
        decode_all("ipmi request", input, |i| {
            let (i, rs_addr) = u8_field("rsSA")(i)?;
            let (i, netfn_lun) = u8_field("netFn/rsLUN")(i)?;
            let (i, _chk1) = u8_field("header checksum")(i)?;
            let (i, rq_addr) = u8_field("rqSA")(i)?;
            let (i, seq_lun) = u8_field("rqSeq/rqLUN")(i)?;
            let (i, cmd) = u8_field("command")(i)?;
            let (i, data) = take_field("request data", i.len())(i)?;
            Ok((
                i,
                Request {
                    rs_addr,
                    netfn: NetFn(netfn_lun >> 2),
                    rs_lun: netfn_lun & 3,
                    rq_addr,
                    rq_seq: seq_lun >> 2,
                    rq_lun: seq_lun & 3,
                    cmd,
                    data,
                },
            ))
        })
    }
}

impl Encode for Request<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        let head = [self.rs_addr, self.netfn.0 << 2 | (self.rs_lun & 3)];
        let body = [self.rq_addr, self.rq_seq << 2 | (self.rq_lun & 3), self.cmd];
        put_message(out, head, &body, self.data);
    }
}

/// The addressing fields of a response, fixed by the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHeader {
    /// Requester's address, echoed.
    pub rq_addr: u8,
    /// Response network function (request netFn + 1).
    pub netfn: NetFn,
    /// Requester's LUN, echoed.
    pub rq_lun: u8,
    /// Responder's address.
    pub rs_addr: u8,
    /// Requester's sequence number, echoed.
    pub rq_seq: u8,
    /// Responder's LUN.
    pub rs_lun: u8,
    /// Command, echoed.
    pub cmd: u8,
}

impl ResponseHeader {
    /// The header of the response to `request`.
    pub fn answering(request: &Request<'_>) -> Self {
        ResponseHeader {
            rq_addr: request.rq_addr,
            netfn: request.netfn.response(),
            rq_lun: request.rq_lun,
            rs_addr: request.rs_addr,
            rq_seq: request.rq_seq,
            rs_lun: request.rs_lun,
            cmd: request.cmd,
        }
    }
}

/// An IPMI response message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// Addressing fields.
    pub header: ResponseHeader,
    /// Completion code.
    pub completion: CompletionCode,
    /// Response data after the completion code.
    pub data: &'a [u8],
}

impl Response<'_> {
    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        8 + self.data.len()
    }
}

impl<'a> Decode<'a> for Response<'a> {
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let input = checked(input, 8, "ipmi response")?;
        decode_all("ipmi response", input, |i| {
            let (i, rq_addr) = u8_field("rqSA")(i)?;
            let (i, netfn_lun) = u8_field("netFn/rqLUN")(i)?;
            let (i, _chk1) = u8_field("header checksum")(i)?;
            let (i, rs_addr) = u8_field("rsSA")(i)?;
            let (i, seq_lun) = u8_field("rqSeq/rsLUN")(i)?;
            let (i, cmd) = u8_field("command")(i)?;
            let (i, cc) = u8_field("completion code")(i)?;
            let (i, data) = take_field("response data", i.len())(i)?;
            Ok((
                i,
                Response {
                    header: ResponseHeader {
                        rq_addr,
                        netfn: NetFn(netfn_lun >> 2),
                        rq_lun: netfn_lun & 3,
                        rs_addr,
                        rq_seq: seq_lun >> 2,
                        rs_lun: seq_lun & 3,
                        cmd,
                    },
                    completion: CompletionCode(cc),
                    data,
                },
            ))
        })
    }
}

impl Encode for Response<'_> {
    fn encode<B: BufMut>(&self, out: &mut B) {
        let h = &self.header;
        let head = [h.rq_addr, h.netfn.0 << 2 | (h.rq_lun & 3)];
        let body = [
            h.rs_addr,
            h.rq_seq << 2 | (h.rs_lun & 3),
            h.cmd,
            self.completion.0,
        ];
        put_message(out, head, &body, self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    #[test]
    fn decodes_get_channel_auth_caps() {
        let msg = hex!("20 18 c8 81 00 38 8e 04 b5");
        let r = Request::decode(&msg).expect("decode");
        assert_eq!(r.netfn, NetFn::APP);
        assert_eq!(r.cmd, 0x38);
        assert_eq!(r.data, &[0x8e, 0x04]);
        assert_eq!(r.rq_addr, 0x81);
        assert_eq!(r.to_vec(), msg);
    }

    #[test]
    fn bad_checksums_name_the_span() {
        let mut msg = hex!("20 18 c8 81 00 38 8e 04 b5");
        msg[2] ^= 1;
        assert_eq!(
            Request::decode(&msg),
            Err(DecodeError::Checksum {
                field: "ipmi header checksum"
            })
        );
        msg[2] ^= 1;
        msg[8] ^= 1;
        assert_eq!(
            Request::decode(&msg),
            Err(DecodeError::Checksum {
                field: "ipmi data checksum"
            })
        );
    }

    #[test]
    fn response_answers_request() {
        let msg = hex!("20 18 c8 81 04 01 7a");
        let req = Request::decode(&msg).expect("decode");
        let resp = Response {
            header: ResponseHeader::answering(&req),
            completion: CompletionCode::OK,
            data: &[0x20],
        };
        let bytes = resp.to_vec();
        assert_eq!(bytes[0], 0x81);
        assert_eq!(bytes[1] >> 2, 0x07);
        assert_eq!(bytes[4] >> 2, 1, "rqSeq echoed");
        assert_eq!(Response::decode(&bytes).expect("decode"), resp);
    }

    proptest! {
        #[test]
        fn request_round_trips(rs_addr: u8, netfn in 0u8..64, rs_lun in 0u8..4, rq_addr: u8,
                               rq_seq in 0u8..64, rq_lun in 0u8..4, cmd: u8,
                               data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let r = Request { rs_addr, netfn: NetFn(netfn), rs_lun, rq_addr, rq_seq, rq_lun, cmd, data: &data };
            let bytes = r.to_vec();
            prop_assert_eq!(Request::decode(&bytes).expect("decode"), r);
        }

        #[test]
        fn response_round_trips(rq_addr: u8, netfn in 0u8..64, rq_lun in 0u8..4, rs_addr: u8,
                                rq_seq in 0u8..64, rs_lun in 0u8..4, cmd: u8, cc: u8,
                                data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let r = Response {
                header: ResponseHeader { rq_addr, netfn: NetFn(netfn), rq_lun, rs_addr, rq_seq, rs_lun, cmd },
                completion: CompletionCode(cc),
                data: &data,
            };
            let bytes = r.to_vec();
            prop_assert_eq!(bytes.len(), r.encoded_len());
            prop_assert_eq!(Response::decode(&bytes).expect("decode"), r);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
    }
}
