//! The whole engine, fed sequences of datagrams for several sessions at
//! once (see `engine_input.rs` for the input format). Four consoles log in
//! for real (fixed randomness, real RAKP codes and keys), send requests,
//! replay, cut, flip and spoof each other's datagrams and wait out
//! timeouts, against two engines sharing one session budget. Nothing may
//! panic, every reply goes back to its sender, the limits hold, and when
//! the engines are dropped every budget slot has come back.
//!
//!     cargo fuzz run -s none engine

#![no_main]

#[allow(dead_code)]
#[path = "../engine_input.rs"]
mod engine_input;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_input::Op;
use libfuzzer_sys::fuzz_target;
use novabmc_proto::cipher_suite::{CipherSuite, IMPLEMENTED};
use novabmc_proto::codec::{Decode, Encode, decode_prefix};
use novabmc_proto::crypto::AuthHash;
use novabmc_proto::crypto::confidentiality::AesCbc128;
use novabmc_proto::crypto::integrity::Integrity;
use novabmc_proto::crypto::keys::{self, HandshakeParams, SessionKeys};
use novabmc_proto::session::table::{MAX_ESTABLISHED, MAX_HALF_OPEN};
use novabmc_proto::wire::ids::{ConfidentialityAlgorithm, NetFn, PayloadType, RakpStatus};
use novabmc_proto::wire::message::Request;
use novabmc_proto::wire::open_session::{OpenSessionRequest, OpenSessionResponse};
use novabmc_proto::wire::rakp::{Rakp1, Rakp2, Rakp3, Rakp4};
use novabmc_proto::wire::rmcp::RmcpHeader;
use novabmc_proto::wire::session::{PacketV20, SessionHeaderV20};
use novabmc_proto::{
    Action, Bmc, BmcConfig, BootOptions, ChassisState, CipherSuites, Entropy, Outcome, Privilege,
    SessionBudget, Users,
};

/// Deterministic randomness.
struct Lcg(u64);

impl Entropy for Lcg {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *b = (self.0 >> 56) as u8;
        }
    }
}

const SUITES: [u8; 6] = [1, 2, 3, 15, 16, 17];
const MAX_SESSIONS: usize = 3;

/// A console that follows the protocol as far as the fuzzer lets it.
struct Console {
    addr: SocketAddr,
    suite: &'static CipherSuite,
    sidm: u32,
    sidc: u32,
    role: u8,
    user: &'static [u8],
    password: &'static [u8],
    rm: [u8; 16],
    rc: [u8; 16],
    guid: [u8; 16],
    integrity: Option<Integrity>,
    aes: Option<AesCbc128>,
    seq: u32,
    rq_seq: u8,
    last: Vec<u8>,
}

impl Console {
    fn new(i: u8) -> Self {
        Console {
            addr: SocketAddr::from(([192, 0, 2, 1 + i], 40000 + u16::from(i))),
            suite: &IMPLEMENTED[2],
            sidm: 0x1000 + u32::from(i),
            sidc: 0,
            role: 0x14,
            user: b"admin",
            password: b"password",
            rm: [i; 16],
            rc: [0; 16],
            guid: [0; 16],
            integrity: None,
            aes: None,
            seq: 1,
            rq_seq: 0,
            last: Vec::new(),
        }
    }

    fn hash(&self) -> AuthHash {
        AuthHash::of(self.suite.auth).unwrap_or(AuthHash::Sha1)
    }

    fn params(&self) -> HandshakeParams<'_> {
        HandshakeParams {
            console_session_id: self.sidm,
            bmc_session_id: self.sidc,
            console_random: &self.rm,
            bmc_random: &self.rc,
            bmc_guid: &self.guid,
            role: self.role,
            user_name: self.user,
        }
    }

    /// Learns what it can from a reply addressed to it.
    fn accept(&mut self, reply: &[u8]) {
        let Ok((_, rest)) = decode_prefix("rmcp", reply, RmcpHeader::parse) else {
            return;
        };
        let Ok(p) = PacketV20::decode(rest) else {
            return;
        };
        match p.header.payload_type {
            PayloadType::OpenSessionResponse => {
                if let Ok(r) = OpenSessionResponse::decode(p.payload)
                    && let Some(a) = r.accepted
                {
                    assert_ne!(a.bmc_session_id, 0, "session IDs are never zero");
                    self.sidc = a.bmc_session_id;
                    self.integrity = None;
                    self.aes = None;
                }
            }
            PayloadType::Rakp2 => {
                if let Ok(r) = Rakp2::decode(p.payload)
                    && let Some(body) = r.body
                {
                    self.rc = body.bmc_random;
                    self.guid = body.bmc_guid;
                }
            }
            PayloadType::Rakp4 => {
                if let Ok(r) = Rakp4::decode(p.payload)
                    && r.status == RakpStatus::Ok
                {
                    let sik =
                        keys::session_integrity_key(self.hash(), self.password, &self.params());
                    let k = SessionKeys::derive(self.hash(), &sik);
                    self.integrity = Integrity::new(self.suite.integrity, k.k1.as_slice());
                    self.aes = (self.suite.confidentiality == ConfidentialityAlgorithm::AesCbc128)
                        .then(|| AesCbc128::new(k.k2.as_slice()));
                }
            }
            _ => {}
        }
    }

    fn setup(payload_type: PayloadType, payload: &[u8]) -> Vec<u8> {
        let mut out = RmcpHeader::IPMI.to_vec();
        SessionHeaderV20 {
            encrypted: false,
            authenticated: false,
            payload_type,
            oem: None,
            session_id: 0,
            sequence: 0,
        }
        .encode_with_len(payload.len() as u16, &mut out);
        out.extend_from_slice(payload);
        out
    }

    fn request(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
        self.rq_seq = (self.rq_seq + 1) % 64;
        let msg = Request {
            rs_addr: 0x20,
            netfn: NetFn(netfn & 0x3f),
            rs_lun: 0,
            rq_addr: 0x81,
            rq_seq: self.rq_seq,
            rq_lun: 0,
            cmd,
            data,
        }
        .to_vec();
        let mut payload = Vec::new();
        match &self.aes {
            Some(aes) => aes.encrypt_into([0x33; 16], &msg, &mut payload),
            None => payload = msg,
        }
        let authenticated = self.integrity.as_ref().is_some_and(|i| !i.is_none());
        let header = SessionHeaderV20 {
            encrypted: self.aes.is_some(),
            authenticated,
            payload_type: PayloadType::Ipmi,
            oem: None,
            session_id: self.sidc,
            sequence: self.seq,
        };
        self.seq = self.seq.wrapping_add(1);
        let mut out = RmcpHeader::IPMI.to_vec();
        header.encode_with_len(payload.len() as u16, &mut out);
        out.extend_from_slice(&payload);
        if let Some(integrity) = self.integrity.as_ref() {
            integrity.append_trailer(&mut out, RmcpHeader::LEN);
        }
        out
    }
}

struct Run {
    engines: [Bmc; 2],
    consoles: Vec<Console>,
    now: Instant,
    rng: Lcg,
    out: Vec<u8>,
}

impl Run {
    /// Delivers `datagram` from console `from`'s address to console
    /// `owner`'s engine, and the replies back.
    fn deliver(&mut self, owner: usize, from: usize, datagram: Vec<u8>) {
        let engine = &mut self.engines[owner % 2];
        let addr = self.consoles[from].addr;
        let _ = engine.handle_datagram(self.now, addr, &datagram, &mut self.rng);
        self.consoles[owner].last = datagram;
        self.flush(owner % 2);
    }

    fn flush(&mut self, engine: usize) {
        while let Some(to) = self.engines[engine].poll_transmit(&mut self.out) {
            let Some(c) = self.consoles.iter_mut().find(|c| c.addr == to) else {
                panic!("a reply to {to}, which sent nothing");
            };
            let reply = std::mem::take(&mut self.out);
            c.accept(&reply);
            self.out = reply;
        }
        while self.engines[engine].poll_event().is_some() {}
        let e = &self.engines[engine];
        assert!(e.established_count() <= MAX_SESSIONS.min(MAX_ESTABLISHED));
        assert!(e.half_open_count() <= MAX_HALF_OPEN);
    }

    fn complete(&mut self) {
        for i in 0..2 {
            while let Some((id, action)) = self.engines[i].poll_action() {
                let outcome = match action {
                    Action::GetChassisStatus => Outcome::Chassis(ChassisState::default()),
                    Action::GetBootOptions => Outcome::BootOptions(BootOptions::new(true)),
                    Action::GetSystemGuid => Outcome::Guid([1; 16]),
                    _ => Outcome::Done,
                };
                self.engines[i].complete_action(id, outcome, self.now, &mut self.rng);
            }
            self.flush(i);
        }
    }

    fn step(&mut self, op: Op) {
        let n = self.consoles.len();
        match op {
            Op::Open {
                console,
                suite,
                privilege,
            } => {
                let k = usize::from(console) % n;
                let id = SUITES[usize::from(suite) % SUITES.len()];
                let c = &mut self.consoles[k];
                c.suite = IMPLEMENTED
                    .iter()
                    .find(|s| s.id == id)
                    .unwrap_or(&IMPLEMENTED[2]);
                let req = OpenSessionRequest {
                    tag: 7,
                    max_privilege: privilege & 0x0f,
                    console_session_id: c.sidm,
                    auth: c.suite.auth,
                    integrity: c.suite.integrity,
                    confidentiality: c.suite.confidentiality,
                };
                let d = Console::setup(PayloadType::OpenSessionRequest, &req.to_vec());
                self.deliver(k, k, d);
            }
            Op::Rakp1 {
                console,
                role,
                user,
            } => {
                let k = usize::from(console) % n;
                let c = &mut self.consoles[k];
                let (name, password): (&'static [u8], &'static [u8]) = match user % 5 {
                    0 => (b"admin", b"password"),
                    1 => (b"operator", b"op-secret"),
                    2 => (b"nobody", b"x"),
                    3 => (b"", b""),
                    _ => (b"a-name-longer-than-sixteen", b"x"),
                };
                c.user = name;
                c.password = password;
                c.role = role;
                let r = Rakp1 {
                    tag: 8,
                    bmc_session_id: c.sidc,
                    console_random: c.rm,
                    role,
                    user_name: name,
                };
                let d = Console::setup(PayloadType::Rakp1, &r.to_vec());
                self.deliver(k, k, d);
            }
            Op::Rakp3 { console, good } => {
                let k = usize::from(console) % n;
                let c = &self.consoles[k];
                let code = keys::rakp3_auth_code(c.hash(), c.password, &c.params());
                let wrong = [0x5a; 32];
                let r = Rakp3 {
                    tag: 9,
                    status: RakpStatus::Ok,
                    bmc_session_id: c.sidc,
                    auth_code: if good { code.as_slice() } else { &wrong[..20] },
                };
                let d = Console::setup(PayloadType::Rakp3, &r.to_vec());
                self.deliver(k, k, d);
            }
            Op::Request {
                console,
                netfn,
                cmd,
                data,
            } => {
                let k = usize::from(console) % n;
                let d = self.consoles[k].request(netfn, cmd, &data);
                self.deliver(k, k, d);
            }
            Op::Raw { console, bytes } => {
                let k = usize::from(console) % n;
                self.deliver(k, k, bytes);
            }
            Op::Mutate { console, at, value } => {
                let k = usize::from(console) % n;
                let mut d = self.consoles[k].last.clone();
                if !d.is_empty() {
                    let i = usize::from(at) % d.len();
                    d[i] ^= value;
                }
                self.deliver(k, k, d);
            }
            Op::Truncate { console, len } => {
                let k = usize::from(console) % n;
                let mut d = self.consoles[k].last.clone();
                let keep = usize::from(len) % (d.len() + 1);
                d.truncate(keep);
                self.deliver(k, k, d);
            }
            Op::Replay { console } => {
                let k = usize::from(console) % n;
                let d = self.consoles[k].last.clone();
                self.deliver(k, k, d);
            }
            Op::Spoof { console, from } => {
                let k = usize::from(console) % n;
                let f = usize::from(from) % n;
                let d = self.consoles[k].last.clone();
                self.deliver(k, f, d);
            }
            Op::Wait { ticks } => {
                self.now += Duration::from_millis(250) * u32::from(ticks);
                for i in 0..2 {
                    self.engines[i].handle_timeout(self.now, &mut self.rng);
                    self.flush(i);
                }
            }
            Op::Complete => self.complete(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Two nodes, 2 sessions reserved each, 4 shared: at most 8 in all.
    let Ok(budget) = SessionBudget::new(8, 2, 2) else {
        return;
    };
    let budget = Arc::new(budget);
    let engine = || {
        let mut users = Users::new();
        let _ = users.add("admin", b"password", Privilege::Administrator);
        let _ = users.add("operator", b"op-secret", Privilege::Operator);
        let mut config = BmcConfig::new(users);
        if let Ok(all) = CipherSuites::from_ids(&SUITES) {
            config.cipher_suites = all;
        }
        config.max_sessions = MAX_SESSIONS;
        config.budget = budget.clone();
        Bmc::new(Arc::new(config), [7; 16])
    };
    let mut run = Run {
        engines: [engine(), engine()],
        consoles: (0..4).map(Console::new).collect(),
        now: Instant::now(),
        rng: Lcg(1),
        out: Vec::new(),
    };
    for op in engine_input::decode(data) {
        run.step(op);
        let total: usize = run.engines.iter().map(Bmc::session_count).sum();
        assert!(total <= 8, "the global cap holds: {total}");
    }
    run.now += Duration::from_secs(7200);
    for e in &mut run.engines {
        e.handle_timeout(run.now, &mut run.rng);
        assert_eq!(e.session_count(), 0, "every session expires");
    }
    drop(run);
    assert_eq!(budget.shared_in_use(), 0, "every budget slot came back");
});
