//! RAKP Messages 1 to 4: decode, encode, decode again. The first byte picks
//! the message, so one corpus covers all four.
//!
//!     cargo fuzz run -s none rakp

#![no_main]

use libfuzzer_sys::fuzz_target;
use novabmc_proto::codec::{Decode, Encode};
use novabmc_proto::wire::rakp::{Rakp1, Rakp2, Rakp3, Rakp4};

macro_rules! round_trip {
    ($t:ident, $data:expr) => {
        if let Ok(value) = $t::decode($data) {
            let bytes = value.to_vec();
            let again = $t::decode(&bytes).expect("re-decode");
            assert_eq!(again, value);
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => round_trip!(Rakp1, body),
        1 => round_trip!(Rakp2, body),
        2 => round_trip!(Rakp3, body),
        _ => round_trip!(Rakp4, body),
    }
});
