//! The inventory commands through the whole engine, in a session at
//! Administrator: LAN configuration parameters, user access and names, FRU
//! reads as ipmitool pages them, the SDR repository and the SEL, each with
//! the bytes and completion codes the spec gives.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use novabmc_proto::wire::ids::{NetFn, RakpStatus};
use novabmc_proto::{Action, Bmc, Inventory, LanInfo};
use support::*;

struct Session {
    bmc: Bmc,
    console: Console,
    rng: TestRng,
    now: Instant,
}

impl Session {
    fn new() -> Self {
        let mut bmc = Bmc::new(config(&[3, 17], 4), GUID);
        let mut rng = TestRng(1);
        let now = Instant::now();
        let mut console = Console::new(suite(17), b"admin", b"password");
        assert_eq!(console.login(&mut bmc, now, &mut rng), RakpStatus::Ok);
        let mut s = Session {
            bmc,
            console,
            rng,
            now,
        };
        assert_eq!(s.ask(NetFn::APP, 0x3b, &[4]), (0, vec![4]));
        s
    }

    /// One request; deferred ones are completed with [`complete_all`].
    fn ask(&mut self, netfn: NetFn, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
        let req = self.console.request(netfn, cmd, data);
        let (_, reply) = exchange(&mut self.bmc, self.now, &req, &mut self.rng);
        let reply = match reply {
            Some(r) => r,
            None => {
                complete_all(&mut self.bmc, self.now, &mut self.rng, true);
                let mut out = Vec::new();
                self.bmc.poll_transmit(&mut out).expect("deferred reply");
                out
            }
        };
        response(&self.console.open(&reply).1)
    }

    fn lan(&mut self, parameter: u8) -> (u8, Vec<u8>) {
        self.ask(NetFn::TRANSPORT, 0x02, &[0x01, parameter, 0, 0])
    }
}

fn node_lan() -> LanInfo {
    LanInfo {
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20)),
        prefix_len: 24,
        gateway: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        mac: [0x02, 1, 2, 3, 4, 5],
        port: 6230,
    }
}

#[test]
fn lan_parameters_describe_the_node() {
    let mut s = Session::new();
    s.bmc.set_lan(node_lan());
    assert_eq!(s.lan(3), (0, vec![0x11, 192, 0, 2, 20]), "address");
    assert_eq!(s.lan(4), (0, vec![0x11, 0x01]), "static");
    assert_eq!(s.lan(5), (0, vec![0x11, 2, 1, 2, 3, 4, 5]), "MAC");
    assert_eq!(s.lan(6), (0, vec![0x11, 255, 255, 255, 0]), "netmask");
    assert_eq!(s.lan(8), (0, vec![0x11, 0x56, 0x18]), "port 6230");
    assert_eq!(s.lan(12), (0, vec![0x11, 192, 0, 2, 1]), "gateway");
    assert_eq!(s.lan(20), (0, vec![0x11, 0, 0]), "VLAN off");
    assert_eq!(s.lan(22), (0, vec![0x11, 2]), "two suites");
    let (cc, entries) = s.lan(23);
    assert_eq!(
        (cc, &entries[..4], entries.len()),
        (0, &[0x11, 0, 3, 17][..], 18)
    );
    let (cc, privileges) = s.lan(24);
    assert_eq!(cc, 0);
    assert_eq!(privileges.len(), 10);
    // Nibble N is suite N: suite 3 is the high nibble of the second byte
    // after the reserved one (response byte 3, after the revision).
    assert_eq!(privileges[3], 0x40, "suite 3 at Administrator");
    assert!(
        privileges
            .iter()
            .enumerate()
            .all(|(i, b)| i == 3 || i == 0 || *b == 0)
    );
    // Every parameter ipmitool's lan print reads answers.
    for p in [0, 1, 2, 7, 10, 11, 13, 14, 15, 16, 21, 26, 50, 51, 55] {
        assert_eq!(s.lan(p).0, 0, "parameter {p}");
    }
    assert_eq!(s.lan(9).0, 0x80, "no secondary port");
    assert_eq!(s.lan(49).0, 0x80);
    // Revision only: just the revision byte.
    assert_eq!(
        s.ask(NetFn::TRANSPORT, 0x02, &[0x81, 3, 0, 0]),
        (0, vec![0x11])
    );
    // Another channel, a short request.
    assert_eq!(s.ask(NetFn::TRANSPORT, 0x02, &[0x02, 3, 0, 0]).0, 0xcc);
    assert_eq!(s.ask(NetFn::TRANSPORT, 0x02, &[0x01, 3]).0, 0xc7);
}

#[test]
fn lan_parameters_of_an_ipv6_node() {
    let mut s = Session::new();
    let ip: std::net::Ipv6Addr = "2001:db8::20".parse().expect("v6");
    let gateway: std::net::Ipv6Addr = "2001:db8::1".parse().expect("gateway");
    s.bmc.set_lan(LanInfo {
        address: IpAddr::V6(ip),
        prefix_len: 64,
        gateway: Some(IpAddr::V6(gateway)),
        ..node_lan()
    });
    assert_eq!(s.lan(3), (0, vec![0x11, 0, 0, 0, 0]), "no IPv4 address");
    assert_eq!(s.lan(51), (0, vec![0x11, 0x01]), "IPv6 only");
    let (cc, a) = s.ask(NetFn::TRANSPORT, 0x02, &[0x01, 56, 0, 0]);
    assert_eq!(cc, 0);
    assert_eq!((a[1], a[2]), (0, 0x80), "selector 0, enabled, static");
    assert_eq!(&a[3..19], &ip.octets());
    assert_eq!((a[19], a[20]), (64, 0), "prefix, active");
    assert_eq!(s.ask(NetFn::TRANSPORT, 0x02, &[0x01, 56, 1, 0]).0, 0xc9);
    // The gateway is static router 1, on the node's prefix.
    assert_eq!(s.lan(64), (0, vec![0x11, 0x01]));
    let mut router = vec![0x11];
    router.extend_from_slice(&gateway.octets());
    assert_eq!(s.lan(65), (0, router));
    assert_eq!(s.lan(67), (0, vec![0x11, 64]));
    let prefix: std::net::Ipv6Addr = "2001:db8::".parse().expect("prefix");
    let mut value = vec![0x11];
    value.extend_from_slice(&prefix.octets());
    assert_eq!(s.lan(68), (0, value));
    for p in [66, 69, 70, 71, 72] {
        assert_eq!(s.lan(p).0, 0, "parameter {p}");
    }
}

#[test]
fn lan_parameters_are_read_only() {
    let mut s = Session::new();
    assert_eq!(
        s.ask(NetFn::TRANSPORT, 0x01, &[0x01, 3, 10, 0, 0, 1]).0,
        0x82
    );
    assert_eq!(s.ask(NetFn::TRANSPORT, 0x01, &[0x01, 49, 0]).0, 0x80);
    assert_eq!(s.ask(NetFn::TRANSPORT, 0x01, &[0x01, 0, 1]).0, 0x00);
    assert_eq!(s.lan(0), (0, vec![0x11, 1]), "set in progress");
    assert_eq!(s.ask(NetFn::TRANSPORT, 0x01, &[0x01, 0, 1]).0, 0x81);
    assert_eq!(s.ask(NetFn::TRANSPORT, 0x01, &[0x01, 0, 0]).0, 0x00);
    assert_eq!(s.lan(0), (0, vec![0x11, 0]));
}

#[test]
fn users_are_listed_from_id_2_and_cannot_change() {
    let mut s = Session::new();
    // ID 1: the null user, disabled, no access; three IDs, two enabled,
    // all names fixed.
    assert_eq!(
        s.ask(NetFn::APP, 0x44, &[0x01, 1]),
        (0, vec![3, 0x82, 3, 0x0f])
    );
    assert_eq!(
        s.ask(NetFn::APP, 0x44, &[0x01, 2]),
        (0, vec![3, 0x42, 3, 0x14])
    );
    assert_eq!(
        s.ask(NetFn::APP, 0x44, &[0x0e, 3]),
        (0, vec![3, 0x42, 3, 0x13])
    );
    assert_eq!(s.ask(NetFn::APP, 0x44, &[0x01, 4]).0, 0xcc);
    assert_eq!(s.ask(NetFn::APP, 0x46, &[1]), (0, vec![0; 16]));
    let mut admin = b"admin".to_vec();
    admin.resize(16, 0);
    assert_eq!(s.ask(NetFn::APP, 0x46, &[2]), (0, admin));
    assert_eq!(s.ask(NetFn::APP, 0x46, &[4]).0, 0xcc);
    assert_eq!(s.ask(NetFn::APP, 0x45, &[2, b'x']).0, 0xd6, "set name");
    assert_eq!(
        s.ask(NetFn::APP, 0x43, &[0x91, 2, 4, 0]).0,
        0xd6,
        "set access"
    );
    let mut set = vec![2, 0x02];
    set.extend_from_slice(&[b'n'; 16]);
    assert_eq!(s.ask(NetFn::APP, 0x47, &set).0, 0xd6, "set password");
    let mut test = vec![2, 0x03];
    let mut password = b"password".to_vec();
    password.resize(16, 0);
    test.extend_from_slice(&password);
    assert_eq!(s.ask(NetFn::APP, 0x47, &test).0, 0x00, "test password");
    test[2] = b'P';
    assert_eq!(s.ask(NetFn::APP, 0x47, &test).0, 0x80, "wrong password");
    // Payload access: SOL for the configured users, nothing for the null
    // user, no change allowed.
    assert_eq!(s.ask(NetFn::APP, 0x4d, &[0x01, 1]), (0, vec![0, 0, 0, 0]));
    assert_eq!(
        s.ask(NetFn::APP, 0x4d, &[0x01, 2]),
        (0, vec![0x02, 0, 0, 0])
    );
    assert_eq!(s.ask(NetFn::APP, 0x4d, &[0x01, 4]).0, 0xcc);
    assert_eq!(
        s.ask(NetFn::APP, 0x4c, &[0x01, 2, 0, 0, 0, 0]).0,
        0xd6,
        "set payload access"
    );
}

fn inventory() -> Inventory {
    Inventory {
        manufacturer: "OpenStack Nova".into(),
        product_name: "m1.large".into(),
        part_number: "m1.large".into(),
        serial_number: "5b8f6a8e-2c2d-4e41-9d0e-3f0a1c2b4d6e".into(),
        asset_tag: "node-0".into(),
    }
}

#[test]
fn fru_reads_page_through_the_image() {
    let mut s = Session::new();
    assert_eq!(s.ask(NetFn::STORAGE, 0x10, &[0]).0, 0xc0, "not known yet");
    s.bmc.set_inventory(&inventory());
    let image = inventory().encode();
    let size = u16::try_from(image.len()).expect("size").to_le_bytes();
    assert_eq!(
        s.ask(NetFn::STORAGE, 0x10, &[0]),
        (0, vec![size[0], size[1], 0])
    );
    assert_eq!(s.ask(NetFn::STORAGE, 0x10, &[1]).0, 0xcb, "no FRU 1");
    // ipmitool asks for 255, then fewer on CA, until a reply fits.
    assert_eq!(s.ask(NetFn::STORAGE, 0x11, &[0, 0, 0, 255]).0, 0xca);
    assert_eq!(s.ask(NetFn::STORAGE, 0x11, &[0, 0, 0, 128]).0, 0xca);
    let mut read = Vec::new();
    while read.len() < image.len() {
        let off = u16::try_from(read.len()).expect("offset").to_le_bytes();
        let (cc, data) = s.ask(NetFn::STORAGE, 0x11, &[0, off[0], off[1], 127]);
        assert_eq!(cc, 0);
        assert_eq!(usize::from(data[0]), data.len() - 1, "count byte");
        read.extend_from_slice(&data[1..]);
    }
    assert_eq!(read, image);
    let end = size;
    assert_eq!(
        s.ask(NetFn::STORAGE, 0x11, &[0, end[0], end[1], 16]),
        (0, vec![0])
    );
    let past = u16::try_from(image.len() + 1).expect("past").to_le_bytes();
    assert_eq!(
        s.ask(NetFn::STORAGE, 0x11, &[0, past[0], past[1], 1]).0,
        0xc9
    );
    assert_eq!(
        s.ask(NetFn::STORAGE, 0x12, &[0, 0, 0, 1]).0,
        0x80,
        "write-protected"
    );
    assert_eq!(s.ask(NetFn::STORAGE, 0x11, &[0, 0, 0]).0, 0xc7);
}

#[test]
fn sdr_repository_holds_the_bmc_locator() {
    let mut s = Session::new();
    let (cc, info) = s.ask(NetFn::STORAGE, 0x20, &[]);
    assert_eq!(cc, 0);
    assert_eq!((info.len(), info[0], info[1], info[2]), (14, 0x51, 1, 0));
    let (cc, r) = s.ask(NetFn::STORAGE, 0x22, &[]);
    assert_eq!(cc, 0);
    // The header, then the rest with the reservation.
    let (cc, header) = s.ask(NetFn::STORAGE, 0x23, &[0, 0, 0, 0, 0, 5]);
    assert_eq!(cc, 0);
    assert_eq!(&header[..2], &[0xff, 0xff], "no next record");
    assert_eq!((header[5], header[6]), (0x12, 18), "MC device locator");
    let (cc, body) = s.ask(NetFn::STORAGE, 0x23, &[r[0], r[1], 1, 0, 5, 18]);
    assert_eq!(cc, 0);
    assert_eq!(body.len(), 2 + 18);
    assert_eq!(body[2], 0x20, "slave address");
    assert_eq!(&body[2 + 11..], b"novabmc");
    assert_eq!(
        s.ask(NetFn::STORAGE, 0x23, &[0, 0, 1, 0, 5, 18]).0,
        0xc5,
        "no reservation"
    );
    assert_eq!(s.ask(NetFn::STORAGE, 0x23, &[0, 0, 2, 0, 0, 0xff]).0, 0xcb);
    let (cc, whole) = s.ask(NetFn::STORAGE, 0x23, &[0, 0, 0xff, 0xff, 0, 0xff]);
    assert_eq!((cc, whole.len()), (0, 2 + 23));
}

#[test]
fn sel_is_empty_and_clears() {
    let mut s = Session::new();
    let (cc, info) = s.ask(NetFn::STORAGE, 0x40, &[]);
    assert_eq!(cc, 0);
    assert_eq!(
        (info.len(), info[0], info[1], info[2], info[13]),
        (14, 0x51, 0, 0, 0x03)
    );
    assert_eq!(s.ask(NetFn::STORAGE, 0x41, &[]).0, 0);
    assert_eq!(s.ask(NetFn::STORAGE, 0x43, &[0, 0, 0, 0, 0, 0xff]).0, 0xcb);
    let (cc, r) = s.ask(NetFn::STORAGE, 0x42, &[]);
    assert_eq!(cc, 0);
    assert_ne!(r, [0, 0]);
    assert_eq!(
        s.ask(NetFn::STORAGE, 0x47, &[r[0], r[1], b'C', b'L', b'R', 0xaa]),
        (0, vec![0x01])
    );
    assert_eq!(
        s.ask(
            NetFn::STORAGE,
            0x47,
            &[r[0], r[1].wrapping_add(1), b'C', b'L', b'R', 0xaa]
        )
        .0,
        0xc5
    );
    assert_eq!(
        s.ask(NetFn::STORAGE, 0x47, &[r[0], r[1], b'C', b'L', b'X', 0xaa])
            .0,
        0xcc
    );
    let time = s.ask(NetFn::STORAGE, 0x48, &[]);
    assert_eq!(
        time,
        (
            0,
            u32::try_from(CLOCK).expect("clock").to_le_bytes().to_vec()
        )
    );
}

#[test]
fn get_sel_time_is_an_action() {
    let mut s = Session::new();
    let req = s.console.request(NetFn::STORAGE, 0x48, &[]);
    let (_, reply) = exchange(&mut s.bmc, s.now, &req, &mut s.rng);
    assert!(reply.is_none());
    assert_eq!(
        complete_all(&mut s.bmc, s.now, &mut s.rng, true),
        [Action::ReadClock]
    );
}
