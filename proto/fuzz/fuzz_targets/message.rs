//! IPMI LAN request and response messages: decode, encode, decode again;
//! the encoder recomputes both checksums.
//!
//!     cargo fuzz run -s none message

#![no_main]

use libfuzzer_sys::fuzz_target;
use novabmc_proto::codec::{Decode, Encode};
use novabmc_proto::wire::message::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::decode(data) {
        let bytes = req.to_vec();
        assert_eq!(bytes, data, "a valid request encodes to itself");
        assert_eq!(Request::decode(&bytes).expect("re-decode"), req);
    }
    if let Ok(resp) = Response::decode(data) {
        let bytes = resp.to_vec();
        assert_eq!(bytes.len(), resp.encoded_len());
        assert_eq!(Response::decode(&bytes).expect("re-decode"), resp);
    }
});
