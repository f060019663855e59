//! Session capacity with the real clients against the real daemon: wrong
//! passwords never lock anyone out, a burst of ipmipower sessions gets
//! power states or a prompt "BMC busy" (never a timeout), and a flood of
//! Open Session requests neither blocks a login nor grows the daemon.

use crate::common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;

const WRONG: (&str, &str) = ("admin", "wrong");

/// Runs `f(i)` for `0..n`, `width` at a time, and returns the results in
/// order.
fn in_parallel<T: Send + 'static>(
    n: usize,
    width: usize,
    f: impl Fn(usize) -> T + Send + Sync + Clone + 'static,
) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(width) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let f = f.clone();
                std::thread::spawn(move || f(i))
            })
            .collect();
        out.extend(handles.into_iter().map(|h| h.join().expect("thread")));
    }
    out
}

/// Wrong passwords leave half-open sessions behind (ipmitool sends no
/// RAKP3 after a RAKP2 it cannot verify); 200 of them must neither lock
/// anyone out nor hide the real reason from FreeIPMI.
#[test]
fn wrong_passwords_never_lock_anyone_out() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let failures = in_parallel(100, 8, move |_| {
        ipmitool(n, WRONG, &["-R", "1", "-N", "1", "power", "status"])
    });
    for out in &failures {
        assert!(
            out.failed()
                .stderr
                .contains("Unable to establish IPMI v2 / RMCP+ session"),
            "{out:?}"
        );
    }
    let failures = in_parallel(100, 8, move |_| ipmipower(n, WRONG, &["--stat"]));
    let invalid = format!("{}: password invalid\n", n.ip());
    let reported = failures.iter().filter(|o| o.stdout == invalid).count();
    eprintln!("ipmipower wrong passwords reported \"password invalid\": {reported} of 100");
    for out in &failures {
        assert_eq!(out.stdout, invalid, "{out:?}");
    }
    // The right password works at once, with both tools.
    assert_eq!(
        ipmitool(n, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).ok(),
        "Chassis Power is off\n"
    );
    assert_eq!(
        ipmipower(n, ADMIN, &["--stat"]).ok(),
        format!("{}: off\n", n.ip())
    );
}

/// `count` different spellings of `ip:port` (decimal and hexadecimal
/// octets, with and without leading zeros), so ipmipower treats each as a
/// host of its own while all of them reach one node.
fn spellings(ip: Ipv4Addr, port: u16, count: usize) -> Vec<String> {
    let forms = |v: u8| {
        let mut f = vec![v.to_string()];
        for zeros in 0..3 {
            for x in ["x", "X"] {
                let pad = "0".repeat(zeros);
                f.push(format!("0{x}{pad}{v:x}"));
                if format!("{v:x}") != format!("{v:X}") {
                    f.push(format!("0{x}{pad}{v:X}"));
                }
            }
        }
        f
    };
    let o = ip.octets();
    let mut out = Vec::new();
    for a in forms(o[0]) {
        for b in forms(o[1]) {
            for c in forms(o[2]) {
                for d in forms(o[3]) {
                    out.push(format!("{a}.{b}.{c}.{d}:{port}"));
                    if out.len() == count {
                        return out;
                    }
                }
            }
        }
    }
    out
}

/// One ipmipower run with `entries` hosts, all of them the one node,
/// all at once (MAAS's flags); returns (power states, "BMC busy", other
/// lines).
fn burst(node: SocketAddr, entries: usize) -> (usize, usize, Vec<String>) {
    let hosts = spellings(
        match node.ip() {
            std::net::IpAddr::V4(v4) => v4,
            std::net::IpAddr::V6(_) => panic!("IPv4 node"),
        },
        node.port(),
        entries,
    );
    assert_eq!(hosts.len(), entries);
    let fanout = entries.to_string();
    let out = run(
        "ipmipower",
        &[
            "-D",
            "LAN_2_0",
            "-W",
            "opensesspriv",
            "-I",
            "3",
            "-l",
            "OPERATOR",
            "-h",
            &hosts.join(","),
            "-u",
            ADMIN.0,
            "-p",
            ADMIN.1,
            "--stat",
            "-F",
            &fanout,
        ],
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), entries, "one line per entry: {out:?}");
    let states = lines
        .iter()
        .filter(|l| l.ends_with(": off") || l.ends_with(": on"))
        .count();
    let busy = lines.iter().filter(|l| l.ends_with(": BMC busy")).count();
    let other = lines
        .iter()
        .filter(|l| !(l.ends_with(": off") || l.ends_with(": on") || l.ends_with(": BMC busy")))
        .map(|l| l.to_string())
        .collect();
    eprintln!(
        "ipmipower -F {entries}: {states} power states, {busy} BMC busy, in {:?}",
        out.elapsed
    );
    (states, busy, other)
}

#[test]
fn a_burst_of_255_sessions_gets_255_power_states() {
    let d = Daemon::start(&Setup::default());
    let (states, busy, other) = burst(d.nodes[0], 255);
    assert_eq!((states, busy), (255, 0), "{other:?}");
    assert!(other.is_empty(), "{other:?}");
}

#[test]
fn a_burst_of_300_sessions_gets_255_power_states_or_bmc_busy() {
    let d = Daemon::start(&Setup::default());
    let (states, busy, other) = burst(d.nodes[0], 300);
    assert!(other.is_empty(), "never a timeout: {other:?}");
    assert!(states >= 255, "{states} power states");
    assert_eq!(states + busy, 300);
}

/// An Open Session Request for suite 3 from console session ID `sidm`.
fn open_session(sidm: u32) -> Vec<u8> {
    let mut d = vec![
        0x06, 0x00, 0xff, 0x07, // RMCP
        0x06, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, // RMCP+, Open Session
        0x00, 0x00, 0x00, 0x00, // tag, privilege, reserved
    ];
    d.extend_from_slice(&sidm.to_le_bytes());
    d.extend_from_slice(&[0x00, 0, 0, 0x08, 0x01, 0, 0, 0]);
    d.extend_from_slice(&[0x01, 0, 0, 0x08, 0x01, 0, 0, 0]);
    d.extend_from_slice(&[0x02, 0, 0, 0x08, 0x01, 0, 0, 0]);
    d
}

/// Receives one datagram, retrying when a signal interrupts the wait
/// (other tests of this binary start client processes, whose SIGCHLD can
/// land on this thread).
fn recv(s: &UdpSocket, buf: &mut [u8]) -> usize {
    loop {
        match s.recv_from(buf) {
            Ok((n, _)) => return n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("Open Session Response: {e}"),
        }
    }
}

/// 10,000 Open Session requests from 100 source ports (each answered
/// before the next round goes out, so none is lost in a socket buffer):
/// the half-open sessions they leave neither block a login nor grow the
/// daemon's memory.
#[test]
fn a_flood_of_open_sessions_neither_blocks_a_login_nor_grows_memory() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    // Warm up: one whole login, so lazily made buffers exist already.
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "status"]).ok(),
        "Chassis Power is off\n"
    );
    let before = d.rss_kib();
    let sockets: Vec<UdpSocket> = (0..100)
        .map(|_| {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            s
        })
        .collect();
    let mut buf = [0u8; 128];
    for round in 0..100u32 {
        for (i, s) in sockets.iter().enumerate() {
            s.send_to(&open_session(round * 100 + i as u32), n)
                .expect("send");
        }
        for s in &sockets {
            let len = recv(s, &mut buf);
            assert_eq!((len, buf[5], buf[17]), (52, 0x11, 0x00), "accepted");
        }
    }
    let out = ipmitool(n, ADMIN, &["power", "status"]);
    assert_eq!(out.ok(), "Chassis Power is off\n");
    let after = d.rss_kib();
    eprintln!(
        "after 10,000 Open Sessions: ipmitool logged in and answered in {:?}; \
         VmRSS {before} KiB before, {after} KiB after",
        out.elapsed
    );
    assert!(
        after <= before + 2048,
        "VmRSS grew from {before} KiB to {after} KiB"
    );
}
