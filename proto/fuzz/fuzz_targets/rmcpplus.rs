//! RMCP+ session header and integrity trailer: decode, encode, decode
//! again; the trailer check for each AuthCode length never panics and, when
//! it accepts, hands back exactly the AuthCode.
//!
//!     cargo fuzz run -s none rmcpplus

#![no_main]

use libfuzzer_sys::fuzz_target;
use novabmc_proto::codec::Encode;
use novabmc_proto::wire::session::{PacketV20, integrity_pad_len, split_integrity_trailer};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = PacketV20::decode(data) else {
        return;
    };
    let bytes = packet.to_vec();
    assert_eq!(bytes, data, "RMCP+ framing keeps every byte");
    assert_eq!(PacketV20::decode(&bytes).expect("re-decode"), packet);
    for code_len in [0, 12, 16] {
        if let Ok(code) =
            split_integrity_trailer(packet.trailer, packet.authenticated_prefix_len, code_len)
        {
            assert_eq!(code.len(), code_len);
            let pad = integrity_pad_len(packet.authenticated_prefix_len);
            assert_eq!(packet.trailer.len(), pad + 2 + code_len);
        }
    }
});
