//! Hostile traffic against the real daemon: an established ipmitool
//! session survives every datagram of it replayed, cut and bit-flipped and
//! forged RAKP messages carrying its IDs from its own address; garbage
//! costs a few log lines at most.

use crate::common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;

/// Waits until the node has handled everything sent to it so far: its
/// socket is one queue, so a pong to a ping sent now comes after them.
fn settle(node: SocketAddr) {
    eventually("the node to answer a ping", || {
        ping(node, Duration::from_millis(500))
    });
}

/// The RMCP+ payload type of a datagram, if it is one.
fn payload_type(d: &[u8]) -> Option<u8> {
    (d.len() > 16 && d[3] == 0x07 && d[4] == 0x06).then(|| d[5] & 0x3f)
}

/// The forged session setup message of `payload_type` with `payload`.
fn setup(payload_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0x06, 0x00, 0xff, 0x07, 0x06, payload_type];
    d.extend_from_slice(&[0; 8]);
    d.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    d.extend_from_slice(payload);
    d
}

fn rakp1(sidc: [u8; 4], user: &[u8]) -> Vec<u8> {
    let mut p = vec![0x01, 0, 0, 0];
    p.extend_from_slice(&sidc);
    p.extend_from_slice(&[0x5a; 16]);
    p.extend_from_slice(&[0x14, 0, 0, user.len() as u8]);
    p.extend_from_slice(user);
    setup(0x12, &p)
}

fn rakp3(sidc: [u8; 4], status: u8, code: &[u8]) -> Vec<u8> {
    let mut p = vec![0x02, status, 0, 0];
    p.extend_from_slice(&sidc);
    p.extend_from_slice(code);
    setup(0x14, &p)
}

#[test]
fn an_established_session_survives_forgeries_from_its_own_address() {
    let d = Daemon::start(&Setup::default());
    let relay = Relay::start(d.nodes[0], Box::new(|_| false));
    let mut shell = Shell::start(relay.addr, ADMIN, &[]);
    shell.run("power status", "Chassis Power is off");
    let seen = relay.datagrams();
    let session: Vec<Vec<u8>> = seen
        .iter()
        .filter(|(dir, _)| *dir == Dir::ToBmc)
        .map(|(_, d)| d.clone())
        .collect();
    // Our session ID, from the Open Session Response (payload bytes 8-11).
    let sidc: [u8; 4] = seen
        .iter()
        .find(|(dir, d)| *dir == Dir::ToConsole && payload_type(d) == Some(0x11))
        .and_then(|(_, d)| d.get(24..28))
        .and_then(|b| b.try_into().ok())
        .expect("an Open Session Response");
    assert!(
        session.iter().any(|d| payload_type(d) == Some(0x00)),
        "in-session requests were relayed"
    );

    let mut forged = Vec::new();
    for datagram in &session {
        forged.push(datagram.clone());
        for n in 0..datagram.len() {
            forged.push(datagram[..n].to_vec());
        }
        for bit in 0..datagram.len() * 8 {
            let mut flipped = datagram.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            forged.push(flipped);
        }
    }
    for user in [&b"admin"[..], b"nobody", b""] {
        forged.push(rakp1(sidc, user));
    }
    for status in [0x00, 0x01, 0x0f, 0x12] {
        forged.push(rakp3(sidc, status, &[0; 32]));
        forged.push(rakp3(sidc, status, &[]));
    }
    // Forged RAKP messages come last as well, after the replays.
    forged.push(rakp1(sidc, b"admin"));
    forged.push(rakp3(sidc, 0x0f, &[]));
    eprintln!("sending {} forged datagrams", forged.len());
    for chunk in forged.chunks(200) {
        for datagram in chunk {
            relay.send_to_bmc(datagram);
        }
        settle(d.nodes[0]);
    }
    let out = shell.run("power status", "Chassis Power is");
    assert!(out.contains("Chassis Power is off"), "{out}");
    let out = shell.run("chassis status", "System Power");
    assert!(out.contains("System Power         : off"), "{out}");
}

/// Deterministic bytes: an LCG from a fixed seed.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 56) as u8
    }

    fn fill(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn info_lines(d: &Daemon) -> usize {
    d.log()
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR "))
        .count()
}

#[test]
fn garbage_costs_a_few_lines_at_most() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let start = info_lines(&d);
    let mut rng = Bytes(9);
    let sockets: Vec<UdpSocket> = (0..20)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind"))
        .collect();
    let mut sent = 0;
    for round in 0..50 {
        for i in 0..200 {
            let len = usize::from(rng.next() % 80);
            let mut g = rng.fill(len);
            // Every kind of garbage: random bytes, an RMCP header with
            // random IPMI behind it, an RMCP+ header naming random
            // sessions, a malformed session setup message.
            match i % 4 {
                0 => {}
                1 => g.splice(0..0, [0x06, 0x00, 0xff, 0x07]).for_each(drop),
                2 => g
                    .splice(0..0, [0x06, 0x00, 0xff, 0x07, 0x06, 0xc0])
                    .for_each(drop),
                _ => {
                    let pt = [0x10, 0x12, 0x14][round % 3];
                    g = setup(pt, &g);
                }
            }
            sockets[i % sockets.len()].send_to(&g, n).expect("send");
            sent += 1;
        }
        settle(n);
    }
    assert_eq!(sent, 10_000);
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "status"]).ok(),
        "Chassis Power is off\n"
    );
    let lines = info_lines(&d) - start;
    eprintln!("10,000 garbage datagrams: {lines} lines at info or above");
    assert!(lines <= 3, "{}", d.log());
    // What is left is summarised in one line when the node stops.
    let mut d = d;
    d.stop();
    let summaries = d.log_lines(&[" INFO ", "node=node-0", "dropped"]);
    eprintln!("summary at shutdown: {summaries:?}");
    assert_eq!(summaries.len(), 1, "{}", d.log());
}
