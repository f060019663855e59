//! What the daemon puts on the wire, checked on captured datagrams (clients.md
//! section 8, items 52-55): C1 for unknown commands, replies from the
//! address the request hit, in-session framing and pre-session framing.

use crate::common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use novabmc_proto::codec::{Decode, Encode, decode_prefix};
use novabmc_proto::wire::ids::{AuthType, NetFn, PayloadType};
use novabmc_proto::wire::message::{Request, Response};
use novabmc_proto::wire::rmcp::RmcpHeader;
use novabmc_proto::wire::session::{PacketV15, PacketV20, SessionHeaderV15, SessionHeaderV20};

/// Item 52: unimplemented commands get C1 at once.
#[test]
fn unknown_commands_get_c1() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    for raw in [
        &["raw", "0x2c", "0x00", "0x00"][..],
        &["raw", "0x2c", "0x3e", "0x00", "0x02"],
        &["raw", "0x06", "0x34"],
        &["raw", "0x04", "0x29", "0x01"],
        &["raw", "0x0a", "0x21"],
        &["raw", "0x30", "0x01"],
    ] {
        let out = ipmitool(n, ADMIN, raw);
        assert!(out.failed().stderr.contains("rsp=0xc1"), "{raw:?}: {out:?}");
    }
}

/// Item 53: several nodes on one port, each answering from its own address
/// (ipmitool's connected socket would not see anything else).
#[test]
fn replies_come_from_the_address_hit() {
    let a = unique_loopback();
    let b = Ipv4Addr::from(u32::from(a) + 1);
    let da = Daemon::start(&Setup {
        address: a,
        ..Setup::default()
    });
    let db = Daemon::start(&Setup {
        address: b,
        ..Setup::default()
    });
    ipmitool(da.nodes[0], ADMIN, &["power", "on"]).ok();
    assert_eq!(
        ipmitool(da.nodes[0], ADMIN, &["power", "status"]).ok(),
        "Chassis Power is on\n"
    );
    assert_eq!(
        ipmitool(db.nodes[0], ADMIN, &["power", "status"]).ok(),
        "Chassis Power is off\n"
    );
    // An unconnected socket sees the source address of each reply.
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    for node in [da.nodes[0], db.nodes[0]] {
        s.send_to(&auth_caps_v15(0x8e), node).expect("send");
        let mut buf = [0u8; 128];
        let (_, from) = s.recv_from(&mut buf).expect("reply");
        assert_eq!(from, node);
    }
}

fn auth_caps_v15(channel_byte: u8) -> Vec<u8> {
    let msg = Request {
        rs_addr: 0x20,
        netfn: NetFn::APP,
        rs_lun: 0,
        rq_addr: 0x81,
        rq_seq: 0,
        rq_lun: 0,
        cmd: 0x38,
        data: &[channel_byte, 0x04],
    }
    .to_vec();
    let mut out = RmcpHeader::IPMI.to_vec();
    PacketV15 {
        header: SessionHeaderV15 {
            auth_type: AuthType::None,
            sequence: 0,
            session_id: 0,
            auth_code: None,
        },
        message: &msg,
    }
    .encode(&mut out);
    out
}

fn exchange(node: SocketAddr, datagram: &[u8]) -> Vec<u8> {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    s.send_to(datagram, node).expect("send");
    let mut buf = [0u8; 512];
    let (n, _) = s.recv_from(&mut buf).expect("reply");
    buf[..n].to_vec()
}

/// Item 55: Get Channel Authentication Capabilities in 1.5 framing, both
/// request forms, answered in 1.5 framing with session 0 and sequence 0;
/// and pre-session Get Channel Cipher Suites in RMCP+ framing.
#[test]
fn presession_framing() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    for form in [0x8e, 0x0e] {
        let reply = exchange(n, &auth_caps_v15(form));
        let (_, rest) = decode_prefix("rmcp", &reply, RmcpHeader::parse).expect("rmcp");
        let p = PacketV15::decode(rest).expect("1.5 framing");
        assert_eq!(p.header.auth_type, AuthType::None);
        assert_eq!((p.header.session_id, p.header.sequence), (0, 0));
        let r = Response::decode(p.message).expect("response");
        assert_eq!(r.completion.0, 0);
        assert_eq!(r.data, &[0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0]);
    }

    let msg = Request {
        rs_addr: 0x20,
        netfn: NetFn::APP,
        rs_lun: 0,
        rq_addr: 0x81,
        rq_seq: 1,
        rq_lun: 0,
        cmd: 0x54,
        data: &[0x0e, 0x00, 0x80],
    }
    .to_vec();
    let mut out = RmcpHeader::IPMI.to_vec();
    PacketV20 {
        header: SessionHeaderV20 {
            encrypted: false,
            authenticated: false,
            payload_type: PayloadType::Ipmi,
            oem: None,
            session_id: 0,
            sequence: 0,
        },
        payload: &msg,
        trailer: &[],
        authenticated_prefix_len: 0,
    }
    .encode(&mut out);
    let reply = exchange(n, &out);
    let (_, rest) = decode_prefix("rmcp", &reply, RmcpHeader::parse).expect("rmcp");
    let p = PacketV20::decode(rest).expect("rmcp+ framing");
    assert!(!p.header.authenticated && !p.header.encrypted);
    assert_eq!((p.header.session_id, p.header.sequence), (0, 0));
    let r = Response::decode(p.payload).expect("response");
    assert_eq!(
        r.data,
        &[
            0x01, 0xc0, 0x03, 0x01, 0x41, 0x81, 0xc0, 0x11, 0x03, 0x44, 0x81
        ]
    );
}

/// Item 54: in-session replies are authenticated and encrypted, carry the
/// console's session ID, and count 1, 2, 3... for each session. Checked on
/// an ipmitool session and accepted by FreeIPMI, the strictest verifier.
#[test]
fn in_session_reply_framing() {
    let d = Daemon::start(&Setup::default());
    let relay = Relay::start(d.nodes[0], Box::new(|_| false));
    ipmitool(relay.addr, ADMIN, &["-C", "3", "chassis", "status"]).ok();
    let mut sequences = Vec::new();
    for (dir, datagram) in relay.datagrams() {
        if dir != Dir::ToConsole {
            continue;
        }
        let (_, rest) = decode_prefix("rmcp", &datagram, RmcpHeader::parse).expect("rmcp");
        if rest.first() != Some(&0x06) {
            continue;
        }
        let p = PacketV20::decode(rest).expect("rmcp+");
        if p.header.payload_type != PayloadType::Ipmi || p.header.session_id == 0 {
            continue;
        }
        assert!(
            p.header.authenticated && p.header.encrypted,
            "{:?}",
            p.header
        );
        // ipmitool's fixed console session ID.
        assert_eq!(p.header.session_id, 0xa0a2_a3a4);
        sequences.push(p.header.sequence);
    }
    assert!(sequences.len() >= 5, "{sequences:?}");
    let expected: Vec<u32> = (1..=sequences.len() as u32).collect();
    assert_eq!(sequences, expected);
    let h = d.nodes[0].ip();
    assert_eq!(
        ipmipower(d.nodes[0], ADMIN, &["--stat"]).ok(),
        format!("{h}: off\n")
    );
}

/// A datagram that is not IPMI at all, or is cut short, never stops the
/// node from serving.
#[test]
fn garbage_does_not_disturb() {
    let d = Daemon::start(&Setup::default());
    let n = d.nodes[0];
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let valid = auth_caps_v15(0x8e);
    for len in 0..valid.len() {
        s.send_to(&valid[..len], n).expect("send");
    }
    for b in 0..=255u8 {
        s.send_to(&[0x06, 0x00, 0xff, 0x07, 0x06, b, 1, 2, 3, 4, 5], n)
            .expect("send");
    }
    assert_eq!(
        ipmitool(n, ADMIN, &["power", "status"]).ok(),
        "Chassis Power is off\n"
    );
}
