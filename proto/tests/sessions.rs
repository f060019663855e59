//! Session capacity and robustness, packet by packet on a simulated clock:
//! half-open sessions never lock anyone out, only a table full of
//! established sessions refuses, nothing unauthenticated changes an
//! established session, and every refusal and drop is counted.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use novabmc_proto::codec::{Decode, Encode};
use novabmc_proto::session::table::{MAX_ESTABLISHED, MAX_HALF_OPEN};
use novabmc_proto::wire::ids::{NetFn, PayloadType, RakpStatus};
use novabmc_proto::wire::open_session::OpenSessionResponse;
use novabmc_proto::wire::rakp::{Rakp1, Rakp2, Rakp3, Rakp4};
use novabmc_proto::{Bmc, DropKind, DropReason, Event, SessionBudget, SessionEvent, SetupMessage};
use support::*;

fn other_peer(port: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 7], port))
}

/// Sends `datagram` from `from`; returns the drop reason and reply.
fn send_from(
    bmc: &mut Bmc,
    now: Instant,
    from: SocketAddr,
    datagram: &[u8],
    rng: &mut TestRng,
) -> (Result<(), DropReason>, Option<Vec<u8>>) {
    let r = bmc.handle_datagram(now, from, datagram, rng);
    let mut out = Vec::new();
    let reply = bmc.poll_transmit(&mut out).map(|to| {
        assert_eq!(to, from, "replies go back to the sender");
        out.clone()
    });
    assert!(bmc.poll_transmit(&mut out).is_none(), "at most one reply");
    (r, reply)
}

fn rakp_status(reply: &[u8]) -> RakpStatus {
    let (pt, payload) = setup_reply(reply);
    match pt {
        PayloadType::OpenSessionResponse => {
            OpenSessionResponse::decode(&payload).expect("osr").status
        }
        PayloadType::Rakp2 => Rakp2::decode(&payload).expect("rakp2").status,
        PayloadType::Rakp4 => Rakp4::decode(&payload).expect("rakp4").status,
        other => panic!("{other:?}"),
    }
}

fn rakp1_for(sidc: u32, user: &[u8]) -> Vec<u8> {
    let r = Rakp1 {
        tag: 1,
        bmc_session_id: sidc,
        console_random: [0x42; 16],
        role: 0x14,
        user_name: user,
    };
    setup_packet(PayloadType::Rakp1, &r.to_vec())
}

fn rakp3_for(sidc: u32, status: RakpStatus, code: &[u8]) -> Vec<u8> {
    let r = Rakp3 {
        tag: 2,
        status,
        bmc_session_id: sidc,
        auth_code: code,
    };
    setup_packet(PayloadType::Rakp3, &r.to_vec())
}

/// Asks for Get Device ID and checks the answer.
fn still_works(bmc: &mut Bmc, c: &mut Console, now: Instant, rng: &mut TestRng) {
    let req = c.request(NetFn::APP, 0x01, &[]);
    let (r, reply) = exchange(bmc, now, &req, rng);
    assert_eq!(r, Ok(()));
    let (_, msg) = c.open(&reply.expect("reply"));
    assert_eq!(response(&msg).0, 0);
}

#[test]
fn nothing_unauthenticated_changes_an_established_session() {
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut c = Console::new(suite(3), b"admin", b"password");
    let mut sent = vec![c.open_session(0), c.rakp1(), c.rakp3()];
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    let get = c.request(NetFn::APP, 0x01, &[]);
    assert!(exchange(&mut bmc, now, &get, &mut rng).1.is_some());
    sent.push(get);
    let sid = c.sidc;

    // From the console's own address: forged RAKP messages naming it.
    for forged in [
        rakp3_for(sid, RakpStatus::InvalidIntegrityCheckValue, &[]),
        rakp3_for(sid, RakpStatus::Ok, &[0; 20]),
        rakp1_for(sid, b"admin"),
        rakp1_for(sid, b"nobody"),
        // A RAKP1 too short to decode, naming the session.
        setup_packet(PayloadType::Rakp1, &rakp1_for(sid, b"admin")[16..30]),
    ] {
        let (r, reply) = exchange(&mut bmc, now, &forged, &mut rng);
        assert!(reply.is_none(), "no answer to {forged:02x?}");
        assert!(
            matches!(
                r,
                Err(DropReason::RakpForEstablished(_) | DropReason::Malformed(_))
            ),
            "{r:?}"
        );
    }
    // Every datagram of the session replayed, cut and bit-flipped.
    for d in &sent {
        let _ = exchange(&mut bmc, now, d, &mut rng);
        for n in 0..d.len() {
            let _ = exchange(&mut bmc, now, &d[..n], &mut rng);
        }
        for bit in 0..d.len() * 8 {
            let mut flipped = d.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let _ = bmc.handle_datagram(now, peer(), &flipped, &mut rng);
            let mut out = Vec::new();
            while bmc.poll_transmit(&mut out).is_some() {}
        }
    }
    assert_eq!(bmc.established_count(), 1);
    still_works(&mut bmc, &mut c, now, &mut rng);
    let counters = bmc.counters();
    assert!(counters.drops(DropKind::RakpForEstablished) >= 4);
    assert!(counters.drops(DropKind::BadAuthCode) > 0);
    assert!(counters.drops(DropKind::Replay) > 0);
    assert_eq!(counters.sessions(SessionEvent::Established), 1);
}

#[test]
fn only_the_opener_may_abandon_a_half_open_session() {
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut c = Console::new(suite(17), b"admin", b"password");
    let (_, reply) = exchange(&mut bmc, now, &c.open_session(0), &mut rng);
    assert_eq!(c.accept_open_session(&reply.expect("osr")), RakpStatus::Ok);
    let stranger = other_peer(623);
    // A stranger's RAKP1 and RAKP3 naming the session are refused and
    // change nothing; its abort is dropped.
    let (_, reply) = send_from(&mut bmc, now, stranger, &c.rakp1(), &mut rng);
    assert_eq!(
        rakp_status(&reply.expect("rakp2")),
        RakpStatus::InvalidSessionId
    );
    let abort = rakp3_for(c.sidc, RakpStatus::InvalidIntegrityCheckValue, &[]);
    let (r, reply) = send_from(&mut bmc, now, stranger, &abort, &mut rng);
    assert_eq!((r, reply), (Err(DropReason::NotOpener(c.sidc)), None));
    assert_eq!(bmc.half_open_count(), 1);
    // The real console carries on.
    let (_, reply) = exchange(&mut bmc, now, &c.rakp1(), &mut rng);
    assert_eq!(c.accept_rakp2(&reply.expect("rakp2")), RakpStatus::Ok);
    let (r, _) = send_from(&mut bmc, now, stranger, &abort, &mut rng);
    assert_eq!(r, Err(DropReason::NotOpener(c.sidc)));
    let wrong = rakp3_for(c.sidc, RakpStatus::Ok, &[7; 32]);
    let (_, reply) = send_from(&mut bmc, now, stranger, &wrong, &mut rng);
    assert_eq!(
        rakp_status(&reply.expect("rakp4")),
        RakpStatus::InvalidIntegrityCheckValue
    );
    let (_, reply) = exchange(&mut bmc, now, &c.rakp3(), &mut rng);
    assert_eq!(c.accept_rakp4(&reply.expect("rakp4")), RakpStatus::Ok);
    still_works(&mut bmc, &mut c, now, &mut rng);

    // The opener itself may give up.
    let mut d = Console::new(suite(17), b"admin", b"password");
    let (_, reply) = exchange(&mut bmc, now, &d.open_session(0), &mut rng);
    d.accept_open_session(&reply.expect("osr"));
    let (_, reply) = exchange(&mut bmc, now, &d.rakp1(), &mut rng);
    d.accept_rakp2(&reply.expect("rakp2"));
    let abort = rakp3_for(d.sidc, RakpStatus::InvalidIntegrityCheckValue, &[]);
    let (r, reply) = exchange(&mut bmc, now, &abort, &mut rng);
    assert_eq!((r, reply), (Err(DropReason::ConsoleAbort(0x0f)), None));
    assert_eq!(bmc.half_open_count(), 0);
    assert_eq!(bmc.counters().sessions(SessionEvent::Failed), 1);
}

#[test]
fn a_flood_of_open_sessions_never_locks_a_console_out() {
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    // A console half way through its handshake when the flood starts.
    let mut early = Console::new(suite(3), b"admin", b"password");
    let (_, reply) = exchange(&mut bmc, now, &early.open_session(0), &mut rng);
    early.accept_open_session(&reply.expect("osr"));
    let (_, reply) = exchange(&mut bmc, now, &early.rakp1(), &mut rng);
    assert_eq!(early.accept_rakp2(&reply.expect("rakp2")), RakpStatus::Ok);
    let flood = Console::new(suite(17), b"x", b"y").open_session(0);
    // Spoofed, from an address of its own each: one source alone is held
    // to half the table (see the test with a user name below).
    let flood_from = |bmc: &mut Bmc, rng: &mut TestRng, ports: std::ops::Range<u16>| {
        for port in ports {
            let [hi, lo] = port.to_be_bytes();
            let from = SocketAddr::from(([198, 18, hi, lo], port));
            let (r, reply) = send_from(bmc, now, from, &flood, rng);
            assert_eq!(r, Ok(()));
            assert_eq!(rakp_status(&reply.expect("osr")), RakpStatus::Ok);
            assert!(bmc.half_open_count() <= MAX_HALF_OPEN);
        }
    };
    flood_from(&mut bmc, &mut rng, 0..10_000);
    assert_eq!(bmc.half_open_count(), MAX_HALF_OPEN);
    // One that only opens during the flood, and is evicted by it. It is on
    // a host of its own: a second session from the early console's host
    // would recycle that host's first one, as every source's does when it
    // would hold more than any other.
    let mut victim = Console::new(suite(3), b"admin", b"password");
    let victim_at = other_peer(1);
    let (_, reply) = send_from(&mut bmc, now, victim_at, &victim.open_session(0), &mut rng);
    victim.accept_open_session(&reply.expect("osr"));
    flood_from(&mut bmc, &mut rng, 10_000..10_000 + MAX_HALF_OPEN as u16);
    let c = bmc.counters();
    let opened = 10_002 + MAX_HALF_OPEN as u64;
    assert_eq!(c.sessions(SessionEvent::Opened), opened);
    assert_eq!(
        c.sessions(SessionEvent::Evicted),
        opened - MAX_HALF_OPEN as u64
    );
    assert_eq!(c.refusals_of(SetupMessage::OpenSession), 0);

    // The evicted console is told "insufficient resources" at once.
    let (_, reply) = send_from(&mut bmc, now, victim_at, &victim.rakp1(), &mut rng);
    assert_eq!(
        rakp_status(&reply.expect("rakp2")),
        RakpStatus::InsufficientResources
    );
    // The one that had sent RAKP1 survived the flood and gets its session.
    let (_, reply) = exchange(&mut bmc, now, &early.rakp3(), &mut rng);
    assert_eq!(early.accept_rakp4(&reply.expect("rakp4")), RakpStatus::Ok);
    still_works(&mut bmc, &mut early, now, &mut rng);
    // And a new console logs in at once.
    let mut late = Console::new(suite(17), b"admin", b"password");
    assert_eq!(late.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    still_works(&mut bmc, &mut late, now, &mut rng);
}

#[test]
fn only_a_table_full_of_established_sessions_refuses() {
    let max = 3;
    let mut bmc = Bmc::new(config(&[3], max), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    // A half-open session that finishes after the table has filled up.
    let mut last = Console::new(suite(3), b"admin", b"password");
    let (_, reply) = exchange(&mut bmc, now, &last.open_session(0), &mut rng);
    last.accept_open_session(&reply.expect("osr"));
    let (_, reply) = exchange(&mut bmc, now, &last.rakp1(), &mut rng);
    last.accept_rakp2(&reply.expect("rakp2"));
    let mut consoles = Vec::new();
    for i in 0..max {
        let mut c = Console::new(suite(3), b"admin", b"password");
        c.sidm = i as u32;
        assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
        consoles.push(c);
    }
    let mut c = Console::new(suite(3), b"admin", b"password");
    assert_eq!(
        c.login(&mut bmc, now, &mut rng),
        RakpStatus::InsufficientResources
    );
    // The half-open one proves its password but there is no handle left.
    let (_, reply) = exchange(&mut bmc, now, &last.rakp3(), &mut rng);
    assert_eq!(
        last.accept_rakp4(&reply.expect("rakp4")),
        RakpStatus::InsufficientResources
    );
    assert_eq!(bmc.half_open_count(), 0);
    let counters = bmc.counters();
    assert_eq!(
        counters.refusals(SetupMessage::OpenSession, RakpStatus::InsufficientResources),
        1
    );
    assert_eq!(
        counters.refusals(SetupMessage::Rakp3, RakpStatus::InsufficientResources),
        1
    );
    // Closing one makes room.
    let first = &mut consoles[0];
    let close = first.request(NetFn::APP, 0x3c, &first.sidc.to_le_bytes());
    assert!(exchange(&mut bmc, now, &close, &mut rng).1.is_some());
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
}

#[test]
fn up_to_255_established_sessions_and_get_session_info_says_63() {
    let mut bmc = Bmc::new(config(&[3], MAX_ESTABLISHED), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut consoles = Vec::new();
    for i in 0..MAX_ESTABLISHED {
        let mut c = Console::new(suite(3), b"admin", b"password");
        c.sidm = i as u32;
        assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok, "{i}");
        consoles.push(c);
    }
    let mut extra = Console::new(suite(3), b"admin", b"password");
    assert_eq!(
        extra.login(&mut bmc, now, &mut rng),
        RakpStatus::InsufficientResources
    );
    let c = &mut consoles[200];
    let req = c.request(NetFn::APP, 0x3d, &[0x00]);
    let (_, reply) = exchange(&mut bmc, now, &req, &mut rng);
    let (cc, data) = response(&c.open(&reply.expect("reply")).1);
    assert_eq!(cc, 0);
    assert_eq!(data[1], 63, "possible sessions, six bits");
    assert_eq!(data[2], 63, "active sessions, six bits");
    assert_eq!(data[0], 201, "handles given in order");
}

#[test]
fn an_expired_session_is_unusable_before_the_timer_runs() {
    let mut bmc = Bmc::new(config(&[17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut c = Console::new(suite(17), b"admin", b"password");
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    let late = now + Duration::from_secs(61);
    let req = c.request(NetFn::APP, 0x01, &[]);
    // handle_timeout has not been called: the engine checks by itself.
    let (r, reply) = exchange(&mut bmc, late, &req, &mut rng);
    assert_eq!((r, reply), (Err(DropReason::Expired(c.sidc)), None));
    assert_eq!(bmc.established_count(), 0);
    assert!(matches!(
        bmc.poll_event(),
        Some(Event::SessionEstablished { .. })
    ));
    assert!(matches!(
        bmc.poll_event(),
        Some(Event::SessionClosed { .. })
    ));
    // A half-open session past its deadline is gone for RAKP3 too.
    let mut d = Console::new(suite(17), b"admin", b"password");
    let (_, reply) = exchange(&mut bmc, now, &d.open_session(0), &mut rng);
    d.accept_open_session(&reply.expect("osr"));
    let (_, reply) = exchange(&mut bmc, now, &d.rakp1(), &mut rng);
    d.accept_rakp2(&reply.expect("rakp2"));
    let (_, reply) = exchange(&mut bmc, now + Duration::from_secs(6), &d.rakp3(), &mut rng);
    assert_eq!(
        rakp_status(&reply.expect("rakp4")),
        RakpStatus::InvalidSessionId
    );
}

#[test]
fn a_global_cap_bounds_sessions_across_engines() {
    // Two nodes, two sessions each of their own, two shared.
    let budget = Arc::new(SessionBudget::new(6, 2, 2).expect("budget"));
    let make = || {
        let mut c = bmc_config(&[3], 255);
        c.budget = budget.clone();
        Bmc::new(Arc::new(c), GUID)
    };
    let (mut a, mut b) = (make(), make());
    let mut rng = TestRng(0);
    let now = Instant::now();
    // A flood on a holds its reserve and the whole shared pool...
    let flood = Console::new(suite(3), b"x", b"y").open_session(0);
    for port in 0..100 {
        let (_, reply) = send_from(&mut a, now, other_peer(port), &flood, &mut rng);
        assert_eq!(rakp_status(&reply.expect("osr")), RakpStatus::Ok);
    }
    assert_eq!(a.half_open_count(), 4);
    assert_eq!(budget.shared_in_use(), 2);
    // ... yet b's consoles still log in, on b's reserve.
    for i in 0..2 {
        let mut c = Console::new(suite(3), b"admin", b"password");
        c.sidm = i;
        assert_eq!(c.login(&mut b, now, &mut rng), RakpStatus::Ok);
    }
    // Beyond it, b has nothing to recycle: "insufficient resources".
    let mut c = Console::new(suite(3), b"admin", b"password");
    assert_eq!(
        c.login(&mut b, now, &mut rng),
        RakpStatus::InsufficientResources
    );
    // Once a's half-open sessions are reaped, the pool is b's to use.
    a.handle_timeout(now + Duration::from_secs(6), &mut rng);
    assert_eq!(budget.shared_in_use(), 0);
    assert_eq!(c.login(&mut b, now, &mut rng), RakpStatus::Ok);
}

#[test]
fn session_sizes() {
    // For the README's worst-case memory figure.
    use novabmc_proto::session::established::Established;
    use novabmc_proto::session::table::{HalfOpenEntry, Session};
    let established = std::mem::size_of::<Session>() + std::mem::size_of::<Established>();
    let half_open = std::mem::size_of::<HalfOpenEntry>();
    eprintln!("established session: {established} bytes; half-open: {half_open} bytes");
    assert!(established < 2048, "{established}");
    assert!(half_open < 256, "{half_open}");
}

/// An attacker who knows a user name but not its password, sending from
/// `addresses`: it opens sessions and takes each to RAKP 2, re-sends the
/// same RAKP 1 for each to try to keep it alive, and keeps opening more.
struct Pinner {
    addresses: Vec<SocketAddr>,
    held: Vec<(SocketAddr, u32)>,
    next: usize,
}

impl Pinner {
    fn new(addresses: Vec<SocketAddr>) -> Self {
        Pinner {
            addresses,
            held: Vec::new(),
            next: 0,
        }
    }

    /// `n` Open Sessions, each followed by a RAKP 1 naming "admin".
    fn open(&mut self, bmc: &mut Bmc, now: Instant, n: usize, rng: &mut TestRng) {
        let open = Console::new(suite(3), b"admin", b"unknown").open_session(0);
        for _ in 0..n {
            let from = self.addresses[self.next % self.addresses.len()];
            self.next += 1;
            let (_, reply) = send_from(bmc, now, from, &open, rng);
            let mut c = Console::new(suite(3), b"admin", b"unknown");
            if c.accept_open_session(&reply.expect("osr")) != RakpStatus::Ok {
                continue;
            }
            let (_, reply) = send_from(bmc, now, from, &rakp1_for(c.sidc, b"admin"), rng);
            if rakp_status(&reply.expect("rakp2")) == RakpStatus::Ok {
                self.held.push((from, c.sidc));
            }
        }
    }

    /// The same RAKP 1 again for every session it holds.
    fn refresh(&mut self, bmc: &mut Bmc, now: Instant, rng: &mut TestRng) {
        let held = std::mem::take(&mut self.held);
        for (from, sidc) in held {
            let (_, reply) = send_from(bmc, now, from, &rakp1_for(sidc, b"admin"), rng);
            if reply.is_some_and(|r| rakp_status(&r) == RakpStatus::Ok) {
                self.held.push((from, sidc));
            }
        }
    }
}

/// One genuine login with the attacker's traffic between its messages;
/// the session is closed again after a request. Returns whether it worked.
fn login_under_attack(
    bmc: &mut Bmc,
    attacker: &mut Pinner,
    now: Instant,
    rng: &mut TestRng,
) -> bool {
    let mut c = Console::new(suite(17), b"admin", b"password");
    let (_, reply) = exchange(bmc, now, &c.open_session(0), rng);
    if c.accept_open_session(&reply.expect("osr")) != RakpStatus::Ok {
        return false;
    }
    attacker.open(bmc, now, 20, rng);
    let (_, reply) = exchange(bmc, now, &c.rakp1(), rng);
    if c.accept_rakp2(&reply.expect("rakp2")) != RakpStatus::Ok {
        return false;
    }
    attacker.open(bmc, now, 20, rng);
    let (_, reply) = exchange(bmc, now, &c.rakp3(), rng);
    if c.accept_rakp4(&reply.expect("rakp4")) != RakpStatus::Ok {
        return false;
    }
    still_works(bmc, &mut c, now, rng);
    let close = c.request(NetFn::APP, 0x3c, &c.sidc.to_le_bytes());
    assert!(exchange(bmc, now, &close, rng).1.is_some());
    true
}

/// Issue 21, finding 2: a sender who knows a user name but not its
/// password, from a few addresses, pins half-open sessions at RAKP 2 and
/// streams Open Session requests. Ten genuine logins, a second apart, each
/// still get in within one retry, whether the node's table is as large as
/// it goes or held to a small share of the global budget.
#[test]
fn a_user_name_and_a_few_addresses_cannot_block_logins() {
    let attackers: Vec<SocketAddr> = (1..=3)
        .map(|i| SocketAddr::from(([203, 0, 113, i], 40000 + u16::from(i))))
        .collect();
    let small = {
        let mut c = bmc_config(&[3, 17], 4);
        c.budget = Arc::new(SessionBudget::new(4, 1, 4).expect("budget"));
        Arc::new(c)
    };
    for (name, config) in [("full table", config(&[3, 17], 4)), ("budget of 4", small)] {
        let mut bmc = Bmc::new(config, GUID);
        let mut rng = TestRng(0);
        let mut attacker = Pinner::new(attackers.clone());
        let start = Instant::now();
        attacker.open(&mut bmc, start, 2 * MAX_HALF_OPEN, &mut rng);
        let mut retried = 0;
        for second in 1..=10 {
            let now = start + Duration::from_secs(second);
            attacker.refresh(&mut bmc, now, &mut rng);
            attacker.open(&mut bmc, now, 50, &mut rng);
            if login_under_attack(&mut bmc, &mut attacker, now, &mut rng) {
                continue;
            }
            retried += 1;
            assert!(
                login_under_attack(&mut bmc, &mut attacker, now, &mut rng),
                "{name}: login {second} failed twice"
            );
        }
        assert!(retried <= 1, "{name}: {retried} logins needed a retry");
    }
}
