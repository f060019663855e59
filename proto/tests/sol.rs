//! Serial over LAN through the whole engine, packet by packet, with a
//! console written from the spec: activation and its refusals (80h, 83h,
//! 84h, CCh), SOL packets sealed as the activation asked, ACKs,
//! retransmission on the retry interval, deactivation by another session,
//! and SOL ending with its session.

mod support;

use std::time::{Duration, Instant};

use novabmc_proto::codec::{Decode, Encode, decode_prefix};
use novabmc_proto::sol::packet::SolPacket;
use novabmc_proto::wire::ids::{NetFn, PayloadType, RakpStatus};
use novabmc_proto::wire::rmcp::RmcpHeader;
use novabmc_proto::wire::session::{PacketV20, SessionHeaderV20, split_integrity_trailer};
use novabmc_proto::{Bmc, ConsoleRequest};
use support::*;

/// A SOL datagram from `c`, encrypted if `encrypted`.
fn sol_datagram(c: &mut Console, sol: &SolPacket<'_>, encrypted: bool) -> Vec<u8> {
    let msg = sol.to_vec();
    let integrity = c.integrity.as_ref().expect("logged in");
    let header = SessionHeaderV20 {
        encrypted,
        authenticated: !integrity.is_none(),
        payload_type: PayloadType::Sol,
        oem: None,
        session_id: c.sidc,
        sequence: c.seq,
    };
    c.seq += 1;
    let payload = match (&c.aes, encrypted) {
        (Some(aes), true) => {
            let mut p = Vec::new();
            aes.encrypt_into([0x44; 16], &msg, &mut p);
            p
        }
        _ => msg,
    };
    let mut out = RmcpHeader::IPMI.to_vec();
    header.encode_with_len(payload.len() as u16, &mut out);
    out.extend_from_slice(&payload);
    integrity.append_trailer(&mut out, RmcpHeader::LEN);
    out
}

/// Opens a SOL datagram for `c`: (encrypted, SOL payload).
fn open_sol(c: &Console, datagram: &[u8]) -> (bool, Vec<u8>) {
    let (_, rest) = decode_prefix("rmcp", datagram, RmcpHeader::parse).expect("rmcp");
    let p = PacketV20::decode(rest).expect("rmcp+");
    assert_eq!(p.header.payload_type, PayloadType::Sol);
    assert_eq!(p.header.session_id, c.sidm);
    let integrity = c.integrity.as_ref().expect("logged in");
    assert_eq!(p.header.authenticated, !integrity.is_none());
    if !integrity.is_none() {
        let code =
            split_integrity_trailer(p.trailer, p.authenticated_prefix_len, integrity.code_len())
                .expect("trailer");
        assert!(integrity.verify(&rest[..rest.len() - code.len()], code));
    }
    let payload = if p.header.encrypted {
        let mut scratch = [0u8; 512];
        c.aes
            .as_ref()
            .expect("aes")
            .decrypt(p.payload, &mut scratch)
            .expect("decrypt")
            .to_vec()
    } else {
        p.payload.to_vec()
    };
    (p.header.encrypted, payload)
}

/// Sends an in-session request and returns (completion code, data).
fn call(
    bmc: &mut Bmc,
    c: &mut Console,
    now: Instant,
    rng: &mut TestRng,
    cmd: (NetFn, u8),
    data: &[u8],
) -> (u8, Vec<u8>) {
    let req = c.request(cmd.0, cmd.1, data);
    let (r, reply) = exchange(bmc, now, &req, rng);
    assert_eq!(r, Ok(()));
    let (_, msg) = c.open(&reply.expect("a reply"));
    response(&msg)
}

const ACTIVATE: (NetFn, u8) = (NetFn::APP, 0x48);
const DEACTIVATE: (NetFn, u8) = (NetFn::APP, 0x49);
const STATUS: (NetFn, u8) = (NetFn::APP, 0x4a);
const SET_SOL: (NetFn, u8) = (NetFn::TRANSPORT, 0x21);
/// What ipmitool sends: encryption, authentication, alerts deferred.
const IPMITOOL_AUX: [u8; 6] = [0x01, 0x01, 0xc6, 0, 0, 0];

/// Logs in and takes the user's highest privilege, as ipmitool does.
fn login(
    bmc: &mut Bmc,
    suite_id: u8,
    user: &'static [u8],
    pw: &'static [u8],
    rng: &mut TestRng,
) -> Console {
    let role = if user == b"operator" { 3 } else { 4 };
    let mut c = Console::new(suite(suite_id), user, pw);
    c.role = 0x10 | role;
    let now = Instant::now();
    assert_eq!(c.login(bmc, now, rng), RakpStatus::Ok);
    let (cc, _) = call(bmc, &mut c, now, rng, (NetFn::APP, 0x3b), &[role]);
    assert_eq!(cc, 0);
    c
}

fn requests(bmc: &mut Bmc) -> Vec<ConsoleRequest> {
    std::iter::from_fn(|| bmc.poll_console()).collect()
}

fn transmits(bmc: &mut Bmc) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    let mut out = Vec::new();
    while bmc.poll_transmit(&mut out).is_some() {
        all.push(out.clone());
    }
    all
}

#[test]
fn an_ipmitool_session_activates_types_and_reads() {
    let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
    bmc.set_sol_port(6230);
    let mut rng = TestRng(1);
    let now = Instant::now();
    let mut c = login(&mut bmc, 17, b"admin", b"password", &mut rng);
    let (cc, data) = call(&mut bmc, &mut c, now, &mut rng, ACTIVATE, &IPMITOOL_AUX);
    assert_eq!(cc, 0);
    assert_eq!(
        data,
        [0, 0, 0, 0, 0x03, 0x01, 0x03, 0x01, 0x56, 0x18, 0xff, 0xff]
    );
    assert_eq!(requests(&mut bmc), [ConsoleRequest::Open]);
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, STATUS, &[1]),
        (0, vec![1, 1, 0])
    );

    // Typed: delivered once, ACKed with the count.
    let typed = SolPacket {
        sequence: 1,
        ack_sequence: 0,
        accepted: 0,
        flags: 0,
        data: b"ls\r",
    };
    let d = sol_datagram(&mut c, &typed, true);
    assert_eq!(bmc.handle_datagram(now, peer(), &d, &mut rng), Ok(()));
    let sent = transmits(&mut bmc);
    assert_eq!(sent.len(), 1);
    assert_eq!(open_sol(&c, &sent[0]), (true, vec![0, 1, 3, 0]));
    assert_eq!(
        requests(&mut bmc),
        [ConsoleRequest::Input(b"ls\r".to_vec())]
    );

    // Printed: gathered for the accumulate interval, then sent; resent
    // every retry interval until ACKed.
    assert_eq!(bmc.console_output(now, b"file\r\n", &mut rng), 6);
    assert!(transmits(&mut bmc).is_empty());
    let due = bmc.poll_timeout().expect("accumulating");
    bmc.handle_timeout(due, &mut rng);
    let first = transmits(&mut bmc);
    assert_eq!(open_sol(&c, &first[0]).1, b"\x01\x00\x00\x00file\r\n");
    let retry = bmc.poll_timeout().expect("awaiting the ACK");
    assert_eq!(retry - due, Duration::from_millis(500));
    bmc.handle_timeout(retry, &mut rng);
    let again = transmits(&mut bmc);
    assert_eq!(open_sol(&c, &again[0]).1, b"\x01\x00\x00\x00file\r\n");
    let ack = sol_datagram(&mut c, &SolPacket::ack(1, 6, 0), true);
    assert_eq!(bmc.handle_datagram(retry, peer(), &ack, &mut rng), Ok(()));
    assert_eq!(
        bmc.poll_timeout(),
        Some(retry + Duration::from_secs(60)),
        "acknowledged: nothing left but the session's idle deadline"
    );

    // A SOL packet that is not encrypted, as asked, is dropped.
    let plain = sol_datagram(&mut c, &typed, false);
    assert!(bmc.handle_datagram(now, peer(), &plain, &mut rng).is_err());

    // Closing the session ends SOL.
    let close = c.request(NetFn::APP, 0x3c, &c.sidc.to_le_bytes());
    assert_eq!(exchange(&mut bmc, now, &close, &mut rng).0, Ok(()));
    assert_eq!(requests(&mut bmc), [ConsoleRequest::Close]);
    assert_eq!(bmc.sol_owner(), None);
}

#[test]
fn one_instance_and_who_may_take_it_away() {
    let mut bmc = Bmc::new(config(&[17], 4), GUID);
    let mut rng = TestRng(2);
    let now = Instant::now();
    let mut owner = login(&mut bmc, 17, b"admin", b"password", &mut rng);
    let mut other = login(&mut bmc, 17, b"admin", b"password", &mut rng);
    let mut operator = login(&mut bmc, 17, b"operator", b"op-secret", &mut rng);
    assert_eq!(
        call(&mut bmc, &mut owner, now, &mut rng, ACTIVATE, &IPMITOOL_AUX).0,
        0
    );
    requests(&mut bmc);
    assert_eq!(
        call(&mut bmc, &mut other, now, &mut rng, ACTIVATE, &IPMITOOL_AUX).0,
        0x80
    );
    assert_eq!(
        call(
            &mut bmc,
            &mut operator,
            now,
            &mut rng,
            DEACTIVATE,
            &[1, 1, 0, 0, 0, 0]
        )
        .0,
        0xd4
    );

    // The same user from another session: the owner is told.
    let req = other.request(DEACTIVATE.0, DEACTIVATE.1, &[1, 1, 0, 0, 0, 0]);
    assert_eq!(bmc.handle_datagram(now, peer(), &req, &mut rng), Ok(()));
    let sent = transmits(&mut bmc);
    assert_eq!(sent.len(), 2, "the reply and the owner's notice");
    assert_eq!(response(&other.open(&sent[0]).1).0, 0);
    let notice = SolPacket::decode(&open_sol(&owner, &sent[1]).1)
        .expect("sol")
        .flags;
    assert_eq!(notice & 0x30, 0x30, "deactivating, transfer unavailable");
    assert_eq!(requests(&mut bmc), [ConsoleRequest::Close]);
    assert_eq!(
        call(
            &mut bmc,
            &mut owner,
            now,
            &mut rng,
            DEACTIVATE,
            &[1, 1, 0, 0, 0, 0]
        )
        .0,
        0x80
    );

    // Data from a session that no longer owns SOL gets a NACK.
    let typed = SolPacket {
        sequence: 2,
        ack_sequence: 0,
        accepted: 0,
        flags: 0,
        data: b"x",
    };
    let d = sol_datagram(&mut owner, &typed, true);
    assert_eq!(bmc.handle_datagram(now, peer(), &d, &mut rng), Ok(()));
    let nack = SolPacket::decode(&open_sol(&owner, &transmits(&mut bmc)[0]).1)
        .expect("sol")
        .to_vec();
    assert_eq!(nack, [0, 2, 0, 0x70]);
    assert!(requests(&mut bmc).is_empty(), "nothing reaches the machine");
}

#[test]
fn activation_honours_encryption_and_authentication() {
    let mut bmc = Bmc::new(config(&[1, 2, 17], 4), GUID);
    let mut rng = TestRng(3);
    let now = Instant::now();
    // Suite 2: integrity, no confidentiality.
    let mut c = login(&mut bmc, 2, b"admin", b"password", &mut rng);
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, ACTIVATE, &IPMITOOL_AUX).0,
        0x83
    );
    let auth_only = [1, 1, 0x46, 0, 0, 0];
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, ACTIVATE, &auth_only).0,
        0x84,
        "encryption forced"
    );
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, SET_SOL, &[1, 2, 0x42]).0,
        0,
        "force authentication only"
    );
    let no_auth = [1, 1, 0x06, 0, 0, 0];
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, ACTIVATE, &no_auth).0,
        0xcc,
        "this session authenticates"
    );
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, ACTIVATE, &auth_only).0,
        0
    );
    assert!(bmc.console_output(now, &[b'z'; 200], &mut rng) == 200);
    let sent = transmits(&mut bmc);
    assert!(!open_sol(&c, &sent[0]).0, "not encrypted, as asked");

    // Suite 1: no integrity, so authentication cannot be had.
    let mut bmc = Bmc::new(config(&[1], 4), GUID);
    let mut c = login(&mut bmc, 1, b"admin", b"password", &mut rng);
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, SET_SOL, &[1, 2, 0x02]).0,
        0
    );
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, ACTIVATE, &auth_only).0,
        0xcc
    );
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, ACTIVATE, &no_auth).0,
        0
    );
}

#[test]
fn an_expired_session_takes_its_sol_with_it() {
    let mut bmc = Bmc::new(config(&[17], 4), GUID);
    let mut rng = TestRng(4);
    let now = Instant::now();
    let mut c = login(&mut bmc, 17, b"admin", b"password", &mut rng);
    assert_eq!(
        call(&mut bmc, &mut c, now, &mut rng, ACTIVATE, &IPMITOOL_AUX).0,
        0
    );
    assert_eq!(requests(&mut bmc), [ConsoleRequest::Open]);
    bmc.handle_timeout(now + Duration::from_secs(61), &mut rng);
    assert_eq!(requests(&mut bmc), [ConsoleRequest::Close]);
    assert_eq!(bmc.sol_owner(), None);
}
