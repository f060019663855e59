//! Feeds arbitrary datagrams to an engine with every suite enabled and
//! carries out whatever actions it asks for: nothing may panic. The input
//! is split into datagrams at each 0xA5 byte, so one run exercises a
//! sequence (a session set up and then used, say).
//!
//!     cargo fuzz run -s none engine -- -max_total_time=60

#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use novabmc_proto::{
    Action, Bmc, BmcConfig, BootOptions, ChassisState, CipherSuites, Entropy, Outcome, Privilege,
    Users,
};

struct Counter(u8);

impl Entropy for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut users = Users::new();
    let _ = users.add("admin", b"password", Privilege::Administrator);
    let mut config = BmcConfig::new(users);
    if let Ok(all) = CipherSuites::from_ids(&[1, 2, 3, 15, 16, 17]) {
        config.cipher_suites = all;
    }
    let mut bmc = Bmc::new(Arc::new(config), [7; 16]);
    let mut rng = Counter(0);
    let now = Instant::now();
    let peer = SocketAddr::from(([192, 0, 2, 1], 623));
    let mut out = Vec::new();
    for datagram in data.split(|b| *b == 0xa5) {
        let _ = bmc.handle_datagram(now, peer, datagram, &mut rng);
        while let Some((id, action)) = bmc.poll_action() {
            let outcome = match action {
                Action::GetChassisStatus => Outcome::Chassis(ChassisState::default()),
                Action::GetBootOptions => Outcome::BootOptions(BootOptions::new(true)),
                Action::GetSystemGuid => Outcome::Guid([1; 16]),
                _ => Outcome::Done,
            };
            bmc.complete_action(id, outcome, now, &mut rng);
        }
        while bmc.poll_transmit(&mut out).is_some() {}
        while bmc.poll_event().is_some() {}
    }
    bmc.handle_timeout(now + Duration::from_secs(3600));
});
