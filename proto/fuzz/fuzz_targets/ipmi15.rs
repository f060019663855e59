//! IPMI 1.5 session framing: decode, encode, decode again.
//!
//!     cargo fuzz run -s none ipmi15

#![no_main]

use libfuzzer_sys::fuzz_target;
use novabmc_proto::codec::Encode;
use novabmc_proto::wire::session::PacketV15;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = PacketV15::decode(data) else {
        return;
    };
    let bytes = packet.to_vec();
    assert!(bytes.len() <= data.len(), "encoding never grows");
    assert_eq!(PacketV15::decode(&bytes).expect("re-decode"), packet);
});
