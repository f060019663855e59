//! Each command's request data through the command table: privilege
//! rules hold, no handler panics, and the typed requests (Set System Boot
//! Options, Chassis Control) round-trip.
//!
//! Input: byte 0 picks a table row (or, with bit 7 set, takes the next two
//! bytes as an arbitrary netFn and command), byte 1 the session privilege
//! (bit 3: outside any session), the rest is the request data.
//!
//!     cargo fuzz run -s none commands

#![no_main]

use libfuzzer_sys::fuzz_target;
use novabmc_proto::ChassisControl;
use novabmc_proto::boot_options::BootParameterWrite;
use novabmc_proto::fuzzing;

fuzz_target!(|data: &[u8]| {
    let [pick, privilege, rest @ ..] = data else {
        return;
    };
    let (netfn, cmd, body) = match (pick & 0x80 != 0, rest) {
        (true, [netfn, cmd, body @ ..]) => (*netfn, *cmd, body),
        (true, _) => return,
        (false, body) => {
            let (netfn, cmd) = fuzzing::command(usize::from(*pick));
            (netfn, cmd, body)
        }
    };
    fuzzing::run_command(netfn, cmd, body, *privilege, privilege & 0x08 == 0);

    if let Ok((write, invalid)) = BootParameterWrite::parse(body) {
        let mut bytes = Vec::new();
        write.encode(invalid, &mut bytes);
        assert_eq!(
            BootParameterWrite::parse(&bytes).expect("re-parse"),
            (write, invalid)
        );
    }
    if let Some(&b) = body.first()
        && let Some(c) = ChassisControl::from_byte(b)
    {
        assert_eq!(ChassisControl::from_byte(c.to_byte()), Some(c));
    }
});
