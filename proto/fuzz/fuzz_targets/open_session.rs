//! RMCP+ Open Session Request and Response: decode, encode, decode again.
//!
//!     cargo fuzz run -s none open_session

#![no_main]

use libfuzzer_sys::fuzz_target;
use novabmc_proto::codec::{Decode, Encode};
use novabmc_proto::wire::open_session::{OpenSessionRequest, OpenSessionResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = OpenSessionRequest::decode(data) {
        let bytes = req.to_vec();
        assert_eq!(bytes.len(), OpenSessionRequest::LEN);
        assert_eq!(OpenSessionRequest::decode(&bytes).expect("re-decode"), req);
    } else {
        // What the engine answers a malformed request from.
        let _ = OpenSessionRequest::peek_tag_and_console_id(data);
    }
    if let Ok(resp) = OpenSessionResponse::decode(data) {
        let bytes = resp.to_vec();
        assert_eq!(
            OpenSessionResponse::decode(&bytes).expect("re-decode"),
            resp
        );
    }
});
