//! Whole exchanges with the engine on a simulated clock and fixed
//! randomness: a console written from the spec's formulas logs in with every
//! cipher suite, and the engine's handling of wrong passwords, replays,
//! retransmissions, timeouts and garbage is checked packet by packet.

mod support;

use std::time::{Duration, Instant};

use novabmc_proto::cipher_suite::CipherSuite;
use novabmc_proto::codec::{Decode, Encode};
use novabmc_proto::session::table::MAX_HALF_OPEN;
use novabmc_proto::wire::ids::RmcpClass;
use novabmc_proto::wire::ids::{
    AuthAlgorithm, ConfidentialityAlgorithm, IntegrityAlgorithm, NetFn, PayloadType, RakpStatus,
};
use novabmc_proto::wire::message::Request;
use novabmc_proto::wire::open_session::OpenSessionResponse;
use novabmc_proto::wire::rakp::{Rakp2, Rakp4};
use novabmc_proto::wire::rmcp::{ASF_IANA, ASF_PRESENCE_PING, AsfMessage, RMCP_NO_ACK, RmcpHeader};
use novabmc_proto::{Action, Bmc, DropKind, DropReason};
use proptest::prelude::*;
use support::*;

#[test]
fn every_suite_logs_in_and_serves() {
    for id in [1, 2, 3, 15, 16, 17] {
        let mut bmc = Bmc::new(config(&[1, 2, 3, 15, 16, 17], 4), GUID);
        let mut rng = TestRng(0);
        let now = Instant::now();
        let mut c = Console::new(suite(id), b"admin", b"password");
        assert_eq!(
            c.login(&mut bmc, now, &mut rng),
            RakpStatus::Ok,
            "suite {id}"
        );
        assert_eq!(c.guid, GUID);
        let mut sequences = Vec::new();
        for _ in 0..3 {
            let req = c.request(NetFn::CHASSIS, 0x01, &[]);
            let (r, reply) = exchange(&mut bmc, now, &req, &mut rng);
            assert_eq!(r, Ok(()));
            assert!(reply.is_none(), "status waits for its action");
            assert_eq!(
                complete_all(&mut bmc, now, &mut rng, true),
                [Action::GetChassisStatus]
            );
            let mut out = Vec::new();
            bmc.poll_transmit(&mut out).expect("reply");
            let (seq, msg) = c.open(&out);
            sequences.push(seq);
            let (cc, data) = response(&msg);
            assert_eq!(cc, 0);
            assert_eq!(data[0] & 1, 1, "power on");
        }
        assert_eq!(sequences, [1, 2, 3], "suite {id}: our sequence starts at 1");
    }
}

#[test]
fn suites_not_enabled_are_refused() {
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    for id in [1, 2, 15, 16] {
        let mut c = Console::new(suite(id), b"admin", b"password");
        assert_eq!(
            c.login(&mut bmc, now, &mut rng),
            RakpStatus::NoCipherSuiteMatch
        );
    }
    // Suite 0: no authentication at all.
    let zero = CipherSuite {
        id: 0,
        auth: AuthAlgorithm::None,
        integrity: IntegrityAlgorithm::None,
        confidentiality: ConfidentialityAlgorithm::None,
    };
    let zero: &'static CipherSuite = Box::leak(Box::new(zero));
    let c = Console::new(zero, b"admin", b"password");
    let (_, reply) = exchange(&mut bmc, now, &c.open_session(0), &mut rng);
    let (_, payload) = setup_reply(&reply.expect("reply"));
    let osr = OpenSessionResponse::decode(&payload).expect("osr");
    assert_eq!(osr.status, RakpStatus::NoCipherSuiteMatch);
    assert_eq!(payload.len(), 8, "error responses stop after SIDm");
    assert_eq!(bmc.session_count(), 0);
}

#[test]
fn login_refusals() {
    let mut bmc = Bmc::new(config(&[3, 17], 8), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut c = Console::new(suite(17), b"nobody", b"x");
    assert_eq!(
        c.login(&mut bmc, now, &mut rng),
        RakpStatus::UnauthorizedName
    );
    let mut c = Console::new(suite(17), b"", b"");
    assert_eq!(
        c.login(&mut bmc, now, &mut rng),
        RakpStatus::UnauthorizedName,
        "null user"
    );
    // An operator asking for Administrator.
    let mut c = Console::new(suite(17), b"operator", b"op-secret");
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::InvalidRole);
    // Username/privilege lookup must match the user's level exactly.
    let mut c = Console::new(suite(3), b"operator", b"op-secret");
    c.role = 0x04;
    assert_eq!(
        c.login(&mut bmc, now, &mut rng),
        RakpStatus::UnauthorizedName
    );
    let mut c = Console::new(suite(3), b"operator", b"op-secret");
    c.role = 0x03;
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    // A RAKP3 with a wrong code.
    let mut c = Console::new(suite(3), b"admin", b"password");
    c.password = b"guess";
    let (_, reply) = exchange(&mut bmc, now, &c.open_session(0), &mut rng);
    let osr = OpenSessionResponse::decode(&setup_reply(&reply.expect("osr")).1).expect("osr");
    c.sidc = osr.accepted.expect("accepted").bmc_session_id;
    let (_, reply) = exchange(&mut bmc, now, &c.rakp1(), &mut rng);
    let r2 = setup_reply(&reply.expect("rakp2")).1;
    let body = Rakp2::decode(&r2).expect("rakp2").body.expect("body");
    c.rc = body.bmc_random;
    c.guid = body.bmc_guid;
    let (_, reply) = exchange(&mut bmc, now, &c.rakp3(), &mut rng);
    let r4 = setup_reply(&reply.expect("rakp4")).1;
    assert_eq!(
        Rakp4::decode(&r4).expect("rakp4").status,
        RakpStatus::InvalidIntegrityCheckValue
    );
    // Only the operator's session is left.
    assert_eq!(bmc.session_count(), 1);
}

#[test]
fn wrong_passwords_never_leak_sessions() {
    let max = 32;
    let mut bmc = Bmc::new(config(&[3, 17], max), GUID);
    let mut rng = TestRng(0);
    let start = Instant::now();
    for i in 0..1000u32 {
        // Ten attempts a second, like a script retrying: each leaves a
        // half-open session, which never locks anyone out.
        let now = start + Duration::from_millis(u64::from(i) * 100);
        bmc.handle_timeout(now, &mut rng);
        let mut c = Console::new(suite(17), b"admin", b"wrong");
        c.sidm = i;
        assert_eq!(
            c.login(&mut bmc, now, &mut rng),
            RakpStatus::InvalidIntegrityCheckValue,
            "attempt {i}"
        );
        assert!(bmc.half_open_count() <= MAX_HALF_OPEN);
        assert_eq!(bmc.established_count(), 0);
    }
    // The right password works at once, half-open sessions or not.
    let now = start + Duration::from_secs(100);
    assert!(bmc.half_open_count() > 0);
    let mut c = Console::new(suite(17), b"admin", b"password");
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    let later = now + Duration::from_secs(30);
    bmc.handle_timeout(later, &mut rng);
    assert_eq!(bmc.half_open_count(), 0, "every half-open session reaped");
    assert_eq!(bmc.established_count(), 1);
}

#[test]
fn replays_are_dropped_and_retransmissions_answered_once() {
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut c = Console::new(suite(3), b"admin", b"password");
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    let raise = c.request(NetFn::APP, 0x3b, &[0x04]);
    let (_, reply) = exchange(&mut bmc, now, &raise, &mut rng);
    assert_eq!(response(&c.open(&reply.expect("reply")).1), (0, vec![4]));

    // Chassis Control: power up.
    let control = c.request_with_seq(NetFn::CHASSIS, 0x02, &[0x01], 20);
    let (r, reply) = exchange(&mut bmc, now, &control, &mut rng);
    assert_eq!((r, reply), (Ok(()), None));
    // The exact datagram again is a replay.
    let (r, reply) = exchange(&mut bmc, now, &control, &mut rng);
    assert_eq!(r, Err(DropReason::Replay(c.seq - 1)));
    assert!(reply.is_none());
    // A retransmission (new sequence, same rqSeq) while the action runs.
    let again = c.request_with_seq(NetFn::CHASSIS, 0x02, &[0x01], 20);
    let (r, _) = exchange(&mut bmc, now, &again, &mut rng);
    assert_eq!(r, Err(DropReason::InProgress));
    assert_eq!(
        complete_all(&mut bmc, now, &mut rng, false),
        [Action::ChassisControl(
            novabmc_proto::ChassisControl::PowerUp
        )]
    );
    let mut out = Vec::new();
    bmc.poll_transmit(&mut out).expect("reply");
    assert_eq!(response(&c.open(&out).1).0, 0);
    // After completion a retransmission is answered from the cache, with
    // a new sequence number, and runs nothing.
    let again = c.request_with_seq(NetFn::CHASSIS, 0x02, &[0x01], 20);
    let (r, reply) = exchange(&mut bmc, now, &again, &mut rng);
    assert_eq!(r, Ok(()));
    let (seq, msg) = c.open(&reply.expect("cached reply"));
    assert_eq!(seq, 3);
    assert_eq!(response(&msg).0, 0);
    assert!(bmc.poll_action().is_none());
    // A tampered packet fails its integrity check.
    let mut bad = c.request(NetFn::APP, 0x01, &[]);
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(
        exchange(&mut bmc, now, &bad, &mut rng).0,
        Err(DropReason::BadAuthCode)
    );
}

/// Issue 21, finding 5: a console that reuses a request sequence number
/// gets a fresh answer, not the cached reply to an older request: the
/// cache answers only a true retransmission, at the privilege the reply was
/// made for and within a few seconds of it.
#[test]
fn a_reused_request_sequence_number_gets_a_fresh_reply() {
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut c = Console::new(suite(17), b"admin", b"password");
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    let status = |bmc: &mut Bmc, c: &mut Console, at: Instant, rng: &mut TestRng, on: bool| {
        let req = c.request_with_seq(NetFn::CHASSIS, 0x01, &[], 7);
        let (r, reply) = exchange(bmc, at, &req, rng);
        assert_eq!(r, Ok(()));
        if let Some(reply) = reply {
            return response(&c.open(&reply).1);
        }
        assert_eq!(complete_all(bmc, at, rng, on), [Action::GetChassisStatus]);
        let mut out = Vec::new();
        bmc.poll_transmit(&mut out).expect("reply");
        response(&c.open(&out).1)
    };
    let (cc, off) = status(&mut bmc, &mut c, now, &mut rng, false);
    assert_eq!((cc, off[0] & 1), (0, 0));
    // A retransmission a second later is answered from the cache.
    let soon = now + Duration::from_secs(1);
    assert_eq!(
        status(&mut bmc, &mut c, soon, &mut rng, true),
        (0, off.clone())
    );
    // The same rqSeq half a minute later is a new request: the machine is
    // asked again, and it is on now.
    let later = now + Duration::from_secs(30);
    let (cc, on) = status(&mut bmc, &mut c, later, &mut rng, true);
    assert_eq!((cc, on[0] & 1), (0, 1));

    // Refused at User; the same bytes after raising the privilege run.
    let control = |c: &mut Console| c.request_with_seq(NetFn::CHASSIS, 0x02, &[0x01], 9);
    let req = control(&mut c);
    let (_, reply) = exchange(&mut bmc, later, &req, &mut rng);
    assert_eq!(response(&c.open(&reply.expect("reply")).1).0, 0xd4);
    let raise = c.request(NetFn::APP, 0x3b, &[0x04]);
    let (_, reply) = exchange(&mut bmc, later, &raise, &mut rng);
    assert_eq!(response(&c.open(&reply.expect("reply")).1), (0, vec![4]));
    let req = control(&mut c);
    let (r, reply) = exchange(&mut bmc, later, &req, &mut rng);
    assert_eq!((r, reply), (Ok(()), None), "deferred to the machine");
    assert_eq!(
        complete_all(&mut bmc, later, &mut rng, true),
        [Action::ChassisControl(
            novabmc_proto::ChassisControl::PowerUp
        )]
    );
}

#[test]
fn privileges_and_unknown_commands() {
    let mut bmc = Bmc::new(config(&[17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut c = Console::new(suite(17), b"admin", b"password");
    assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    let mut ask = |c: &mut Console, netfn, cmd, data: &[u8]| {
        let req = c.request(netfn, cmd, data);
        let (_, reply) = exchange(&mut bmc, now, &req, &mut rng);
        response(&c.open(&reply.expect("reply")).1)
    };
    // The session starts at User: Chassis Control needs Operator.
    assert_eq!(ask(&mut c, NetFn::CHASSIS, 0x02, &[1]).0, 0xd4);
    assert_eq!(ask(&mut c, NetFn::APP, 0x02, &[]).0, 0xd4, "cold reset");
    for (netfn, cmd) in [
        (NetFn(0x2c), 0x3e),
        (NetFn(0x2c), 0x00),
        (NetFn::APP, 0x34),
        (NetFn(0x30), 0x01),
    ] {
        assert_eq!(ask(&mut c, netfn, cmd, &[0]).0, 0xc1);
    }
    assert_eq!(ask(&mut c, NetFn::APP, 0x3b, &[5]).0, 0x80, "OEM level");
    assert_eq!(ask(&mut c, NetFn::APP, 0x3b, &[3]), (0, vec![3]));
    assert_eq!(
        ask(&mut c, NetFn::APP, 0x01, &[1]).0,
        0xc7,
        "length checked"
    );
    assert_eq!(
        ask(&mut c, NetFn::CHASSIS, 0x02, &[9]).0,
        0xcc,
        "unknown control"
    );
    assert_eq!(
        ask(&mut c, NetFn::CHASSIS, 0x09, &[7, 0, 0]).0,
        0x80,
        "parameter 7"
    );
    assert_eq!(
        ask(&mut c, NetFn::APP, 0x3c, &[9, 9, 9, 9]).0,
        0x87,
        "no such session"
    );
    let (cc, data) = ask(&mut c, NetFn::APP, 0x54, &[0x0e, 0, 0x80]);
    assert_eq!((cc, data), (0, vec![1, 0xc0, 0x11, 0x03, 0x44, 0x81]));
}

#[test]
fn close_session_and_idle_expiry() {
    let mut bmc = Bmc::new(config(&[17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut a = Console::new(suite(17), b"admin", b"password");
    let mut b = Console::new(suite(17), b"admin", b"password");
    assert_eq!(a.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    assert_eq!(b.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
    assert_eq!(bmc.session_count(), 2);
    let close = a.request(NetFn::APP, 0x3c, &a.sidc.to_le_bytes());
    let (_, reply) = exchange(&mut bmc, now, &close, &mut rng);
    assert_eq!(response(&a.open(&reply.expect("reply")).1).0, 0);
    assert_eq!(bmc.session_count(), 1, "closed at once");
    let after = a.request(NetFn::APP, 0x01, &[]);
    assert_eq!(
        exchange(&mut bmc, now, &after, &mut rng).0,
        Err(DropReason::UnknownSession(a.sidc))
    );
    // b stays alive while it talks, then expires after 60 s of silence.
    let t = now + Duration::from_secs(50);
    bmc.handle_timeout(t, &mut rng);
    let keepalive = b.request(NetFn::APP, 0x01, &[]);
    assert!(exchange(&mut bmc, t, &keepalive, &mut rng).1.is_some());
    assert_eq!(bmc.poll_timeout(), Some(t + Duration::from_secs(60)));
    bmc.handle_timeout(t + Duration::from_secs(59), &mut rng);
    assert_eq!(bmc.session_count(), 1);
    bmc.handle_timeout(t + Duration::from_secs(60), &mut rng);
    assert_eq!(bmc.session_count(), 0);
}

#[test]
fn lost_rakp2_and_rakp4_are_resent() {
    let mut bmc = Bmc::new(config(&[17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut c = Console::new(suite(17), b"admin", b"password");
    let (_, reply) = exchange(&mut bmc, now, &c.open_session(0), &mut rng);
    let osr = OpenSessionResponse::decode(&setup_reply(&reply.expect("osr")).1).expect("osr");
    c.sidc = osr.accepted.expect("accepted").bmc_session_id;
    let (_, first) = exchange(&mut bmc, now, &c.rakp1(), &mut rng);
    let (_, second) = exchange(&mut bmc, now, &c.rakp1(), &mut rng);
    assert_eq!(first, second, "the same RAKP2 again");
    let body_bytes = setup_reply(&first.expect("rakp2")).1;
    let body = Rakp2::decode(&body_bytes)
        .expect("rakp2")
        .body
        .expect("body");
    c.rc = body.bmc_random;
    c.guid = body.bmc_guid;
    let (_, first) = exchange(&mut bmc, now, &c.rakp3(), &mut rng);
    let (_, second) = exchange(&mut bmc, now, &c.rakp3(), &mut rng);
    assert_eq!(first, second, "the same RAKP4 again");
    assert_eq!(
        Rakp4::decode(&setup_reply(&first.expect("rakp4")).1)
            .expect("rakp4")
            .status,
        RakpStatus::Ok
    );
}

#[test]
fn presession_commands() {
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let ask = |bmc: &mut Bmc, rng: &mut TestRng, cmd: u8, data: &[u8]| {
        let msg = Request {
            rs_addr: 0x20,
            netfn: NetFn::APP,
            rs_lun: 0,
            rq_addr: 0x81,
            rq_seq: 0,
            rq_lun: 0,
            cmd,
            data,
        }
        .to_vec();
        let (_, reply) = exchange(bmc, now, &setup_packet(PayloadType::Ipmi, &msg), rng);
        response(&setup_reply(&reply.expect("reply")).1)
    };
    assert_eq!(
        ask(&mut bmc, &mut rng, 0x38, &[0x8e, 0x04]),
        (0, vec![1, 0x80, 0x04, 0x02, 0, 0, 0, 0])
    );
    assert_eq!(
        ask(&mut bmc, &mut rng, 0x01, &[]).0,
        0xd4,
        "Get Device ID needs a session"
    );
    assert_eq!(ask(&mut bmc, &mut rng, 0x99, &[]).0, 0xc1);
    // Record data of exactly 16 bytes is followed by a page holding only
    // the channel byte, so ipmitool stops asking.
    let mut bmc = Bmc::new(config(&[1, 2, 3, 15, 16, 17], 4), GUID);
    let (cc, page0) = ask(&mut bmc, &mut rng, 0x54, &[0x0e, 0, 0x80]);
    assert_eq!((cc, page0.len()), (0, 17));
    let (_, page1) = ask(&mut bmc, &mut rng, 0x54, &[0x0e, 0, 0x81]);
    assert_eq!(page1.len(), 15);
    let (_, page2) = ask(&mut bmc, &mut rng, 0x54, &[0x0e, 0, 0x82]);
    assert_eq!(page2, vec![1]);
}

/// Issue 21, finding 10: presence pongs and pre-session replies are larger
/// than their requests. A spoofed flood of them "from" a victim gets fewer
/// bytes back than it sent, while a genuine console elsewhere has every
/// pre-session request answered and logs in every second.
#[test]
fn sessionless_replies_cannot_reflect_a_flood() {
    let mut bmc = Bmc::new(config(&[1, 2, 3, 15, 16, 17], 4), GUID);
    let mut rng = TestRng(0);
    let start = Instant::now();
    let victim: std::net::SocketAddr = "198.51.100.77:623".parse().expect("addr");
    let request = |cmd: u8, data: &[u8]| {
        Request {
            rs_addr: 0x20,
            netfn: NetFn::APP,
            rs_lun: 0,
            rq_addr: 0x81,
            rq_seq: 0,
            rq_lun: 0,
            cmd,
            data,
        }
        .to_vec()
    };
    let mut ping = Vec::new();
    RmcpHeader {
        sequence: RMCP_NO_ACK,
        class: RmcpClass::Asf,
        ack: false,
    }
    .encode(&mut ping);
    AsfMessage {
        iana: ASF_IANA,
        message_type: ASF_PRESENCE_PING,
        tag: 1,
        data: &[],
    }
    .encode(&mut ping);
    let caps = request(0x38, &[0x8e, 0x04]);
    let mut caps_v15 = vec![0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    caps_v15.push(caps.len() as u8);
    caps_v15.extend_from_slice(&caps);
    let flood = [
        ping,
        caps_v15,
        setup_packet(PayloadType::Ipmi, &caps),
        setup_packet(PayloadType::Ipmi, &request(0x54, &[0x0e, 0, 0x80])),
        setup_packet(PayloadType::Ipmi, &request(0x54, &[0x0e, 0, 0x81])),
    ];
    let (mut sent, mut reflected) = (0, 0);
    let mut out = Vec::new();
    for ms in 0..10_000u64 {
        let now = start + Duration::from_millis(ms);
        let d = &flood[ms as usize % flood.len()];
        let _ = bmc.handle_datagram(now, victim, d, &mut rng);
        sent += d.len();
        while let Some(to) = bmc.poll_transmit(&mut out) {
            assert_eq!(to, victim);
            reflected += out.len();
        }
        if ms % 1000 == 500 {
            for d in &flood {
                let (r, reply) = exchange(&mut bmc, now, d, &mut rng);
                assert_eq!((r, reply.is_some()), (Ok(()), true), "at {ms} ms");
            }
            let mut c = Console::new(suite(17), b"admin", b"password");
            assert_eq!(c.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
            let close = c.request(NetFn::APP, 0x3c, &c.sidc.to_le_bytes());
            assert!(exchange(&mut bmc, now, &close, &mut rng).1.is_some());
        }
    }
    assert!(
        reflected < sent,
        "{reflected} bytes reflected for {sent} bytes sent"
    );
    eprintln!(
        "reflected {reflected} of {sent}; limited {}",
        bmc.counters().rate_limited()
    );
    assert!(bmc.counters().rate_limited() > 0);
    assert_eq!(
        bmc.counters().drops(DropKind::RateLimited),
        bmc.counters().rate_limited()
    );
}

/// A whole exchange recorded against a BMC with fixed randomness: Open
/// Session, RAKP 1 and 3, then three requests, which a fresh BMC with the
/// same randomness accepts datagram for datagram. Also returns the console,
/// which can open the replies.
fn recorded_exchange() -> (Vec<Vec<u8>>, Console) {
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut c = Console::new(suite(3), b"admin", b"password");
    let mut datagrams = vec![c.open_session(0)];
    assert_eq!(
        c.login(&mut bmc, now, &mut rng),
        RakpStatus::Ok,
        "the recorded login must succeed, or the mutations test only garbage"
    );
    datagrams.push(c.rakp1());
    datagrams.push(c.rakp3());
    datagrams.push(c.request(NetFn::CHASSIS, 0x01, &[]));
    // Set Session Privilege to Administrator, so the boot option write
    // reaches its handler.
    datagrams.push(c.request(NetFn::APP, 0x3b, &[4]));
    datagrams.push(c.request(NetFn::CHASSIS, 0x08, &[5, 0xa0, 4, 0, 0, 0]));
    (datagrams, c)
}

fn valid_exchange() -> Vec<Vec<u8>> {
    recorded_exchange().0
}

/// The unmutated exchange replayed on a fresh BMC logs in and is served:
/// the mutation test below starts from a real session.
#[test]
fn the_recorded_exchange_replays_to_a_served_session() {
    let (datagrams, c) = recorded_exchange();
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    let mut rng = TestRng(0);
    let now = Instant::now();
    let mut replies = Vec::new();
    for d in &datagrams {
        bmc.handle_datagram(now, peer(), d, &mut rng)
            .expect("every datagram accepted");
        complete_all(&mut bmc, now, &mut rng, false);
        let mut buf = Vec::new();
        while bmc.poll_transmit(&mut buf).is_some() {
            replies.push(buf.clone());
        }
    }
    assert_eq!(bmc.established_count(), 1);
    assert_eq!(replies.len(), 6, "one reply per datagram");
    for reply in &replies[3..] {
        let (_, msg) = c.open(reply);
        assert_eq!(response(&msg).0, 0, "completion code OK");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No datagram, however malformed, makes the engine panic.
    #[test]
    fn arbitrary_datagrams_never_panic(datagrams in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..96), 1..8)) {
        let mut bmc = Bmc::new(config(&[1, 2, 3, 15, 16, 17], 4), GUID);
        let mut rng = TestRng(0);
        let now = Instant::now();
        for d in &datagrams {
            let _ = bmc.handle_datagram(now, peer(), d, &mut rng);
            complete_all(&mut bmc, now, &mut rng, true);
        }
        bmc.handle_timeout(now + Duration::from_secs(120), &mut rng);
    }

    /// Valid packets with bytes changed or cut never make it panic either.
    #[test]
    fn mutated_exchanges_never_panic(flips in proptest::collection::vec((0usize..6, 0usize..96, any::<u8>()), 0..6),
                                     cut in proptest::option::of((0usize..6, 0usize..96))) {
        let mut datagrams = valid_exchange();
        for (which, at, value) in flips {
            let d = &mut datagrams[which];
            let i = at % d.len();
            d[i] = value;
        }
        if let Some((which, at)) = cut {
            let d = &mut datagrams[which];
            let n = at % (d.len() + 1);
            d.truncate(n);
        }
        let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
        let mut rng = TestRng(0);
        let now = Instant::now();
        for d in &datagrams {
            let _ = bmc.handle_datagram(now, peer(), d, &mut rng);
            complete_all(&mut bmc, now, &mut rng, false);
        }
    }
}
