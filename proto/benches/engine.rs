//! CPU cost of the engine alone, without sockets or a runtime: a full
//! RMCP+ handshake (Open Session, RAKP 1-4) and an in-session Get Chassis
//! Status, for suites 3 and 17. Only the engine's calls are timed; the
//! console's own work is not.
//!
//!     cargo bench -p novabmc-proto --bench engine

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use novabmc_proto::wire::ids::{NetFn, RakpStatus};
use novabmc_proto::{Action, Bmc, ChassisState, Outcome};
use support::*;

/// Times one engine call.
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    *total += t.elapsed();
    r
}

fn handshake(id: u8, rounds: u32) -> Duration {
    let now = Instant::now();
    let mut total = Duration::ZERO;
    for i in 0..rounds {
        let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
        let mut rng = TestRng(u64::from(i));
        let mut c = Console::new(suite(id), b"admin", b"password");
        let mut out = Vec::new();
        // Each message is built by the console untimed; the engine's
        // handling of it, reply included, is timed.
        let open = c.open_session(0);
        timed(&mut total, || {
            bmc.handle_datagram(now, peer(), &open, &mut rng)
                .expect("open");
            bmc.poll_transmit(&mut out).expect("reply")
        });
        assert_eq!(c.accept_open_session(&out), RakpStatus::Ok);
        let rakp1 = c.rakp1();
        timed(&mut total, || {
            bmc.handle_datagram(now, peer(), &rakp1, &mut rng)
                .expect("rakp1");
            bmc.poll_transmit(&mut out).expect("rakp2")
        });
        assert_eq!(c.accept_rakp2(&out), RakpStatus::Ok);
        let rakp3 = c.rakp3();
        timed(&mut total, || {
            bmc.handle_datagram(now, peer(), &rakp3, &mut rng)
                .expect("rakp3");
            bmc.poll_transmit(&mut out).expect("rakp4")
        });
        assert_eq!(c.accept_rakp4(&out), RakpStatus::Ok);
    }
    total / rounds
}

fn command(id: u8, rounds: u32) -> Duration {
    let now = Instant::now();
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let mut c = Console::new(suite(id), b"admin", b"password");
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    let requests: Vec<Vec<u8>> = (0..rounds)
        .map(|_| c.request(NetFn::CHASSIS, 0x01, &[]))
        .collect();
    let mut out = Vec::new();
    let mut total = Duration::ZERO;
    for r in &requests {
        timed(&mut total, || {
            bmc.handle_datagram(now, peer(), r, &mut rng)
                .expect("request");
            while let Some((a, action)) = bmc.poll_action() {
                assert_eq!(action, Action::GetChassisStatus);
                bmc.complete_action(
                    a,
                    Outcome::Chassis(ChassisState {
                        power_on: true,
                        power_fault: false,
                    }),
                    now,
                    &mut rng,
                );
            }
            bmc.poll_transmit(&mut out).expect("reply");
        });
    }
    total / rounds
}

fn main() {
    for id in [3, 17] {
        let h = handshake(id, 2000);
        let c = command(id, 20000);
        println!(
            "suite {id:2}: handshake {:6.1} us   in-session Get Chassis Status {:5.2} us",
            h.as_secs_f64() * 1e6,
            c.as_secs_f64() * 1e6
        );
    }
}
