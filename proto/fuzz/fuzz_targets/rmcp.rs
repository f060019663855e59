//! RMCP header, ASF message and presence pong data: every decode that
//! succeeds must encode back to something that decodes to the same value.
//!
//!     cargo fuzz run -s none rmcp

#![no_main]

use libfuzzer_sys::fuzz_target;
use novabmc_proto::codec::{Decode, Encode, decode_prefix};
use novabmc_proto::wire::rmcp::{AsfMessage, PongData, RmcpHeader};

fuzz_target!(|data: &[u8]| {
    let Ok((header, rest)) = decode_prefix("rmcp header", data, RmcpHeader::parse) else {
        return;
    };
    let bytes = header.to_vec();
    let (again, left) =
        decode_prefix("rmcp header", &bytes, RmcpHeader::parse).expect("re-decode rmcp header");
    assert_eq!(again, header);
    assert!(left.is_empty());
    if let Ok(asf) = AsfMessage::decode(rest) {
        let bytes = asf.to_vec();
        assert_eq!(AsfMessage::decode(&bytes).expect("re-decode asf"), asf);
        if let Ok(pong) = PongData::from_bytes(asf.data) {
            assert_eq!(
                PongData::from_bytes(&pong.to_bytes()).expect("re-decode pong"),
                pong
            );
        }
    }
});
