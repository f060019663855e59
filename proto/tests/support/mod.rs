//! A remote console for the engine's tests and benchmark: the client side
//! of RMCP+ written from the spec's formulas (Open Session, RAKP 1-4,
//! sealed in-session requests), with fixed randomness and helpers to drive
//! a [`Bmc`] packet by packet.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use novabmc_proto::cipher_suite::{CipherSuite, IMPLEMENTED};
use novabmc_proto::codec::{Decode, Encode, decode_prefix};
use novabmc_proto::crypto::AuthHash;
use novabmc_proto::crypto::confidentiality::AesCbc128;
use novabmc_proto::crypto::integrity::Integrity;
use novabmc_proto::crypto::keys::{self, HandshakeParams, SessionKeys};
use novabmc_proto::wire::ids::{ConfidentialityAlgorithm, NetFn, PayloadType, RakpStatus};
use novabmc_proto::wire::message::{Request, Response};
use novabmc_proto::wire::open_session::{OpenSessionRequest, OpenSessionResponse};
use novabmc_proto::wire::rakp::{Rakp1, Rakp2, Rakp3, Rakp4};
use novabmc_proto::wire::rmcp::RmcpHeader;
use novabmc_proto::wire::session::{PacketV20, SessionHeaderV20, split_integrity_trailer};
use novabmc_proto::{
    Action, Bmc, BmcConfig, BootOptions, ChassisState, CipherSuites, DropReason, Entropy, Outcome,
    Privilege, Users,
};

/// Deterministic "randomness": a 64-bit linear congruential generator
/// from a fixed seed, so runs repeat exactly yet session IDs do not
/// collide for thousands of sessions.
pub struct TestRng(pub u64);

impl Entropy for TestRng {
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

pub const GUID: [u8; 16] = [0x5a; 16];

pub fn peer() -> SocketAddr {
    "192.0.2.10:40000".parse().expect("addr")
}

pub fn config(suites: &[u8], max_sessions: usize) -> Arc<BmcConfig> {
    Arc::new(bmc_config(suites, max_sessions))
}

pub fn bmc_config(suites: &[u8], max_sessions: usize) -> BmcConfig {
    let mut users = Users::new();
    users
        .add("admin", b"password", Privilege::Administrator)
        .expect("admin");
    users
        .add("operator", b"op-secret", Privilege::Operator)
        .expect("operator");
    let mut c = BmcConfig::new(users);
    c.cipher_suites = CipherSuites::from_ids(suites).expect("suites");
    c.max_sessions = max_sessions;
    c
}

/// Sends one datagram and returns the single reply, if any.
pub fn exchange(
    bmc: &mut Bmc,
    now: Instant,
    datagram: &[u8],
    rng: &mut TestRng,
) -> (Result<(), DropReason>, Option<Vec<u8>>) {
    let r = bmc.handle_datagram(now, peer(), datagram, rng);
    let mut out = Vec::new();
    let reply = bmc.poll_transmit(&mut out).map(|to| {
        assert_eq!(to, peer(), "replies go back to the sender");
        out.clone()
    });
    assert!(bmc.poll_transmit(&mut out).is_none(), "at most one reply");
    (r, reply)
}

pub fn setup_packet(payload_type: PayloadType, payload: &[u8]) -> Vec<u8> {
    let mut out = RmcpHeader::IPMI.to_vec();
    PacketV20 {
        header: SessionHeaderV20 {
            encrypted: false,
            authenticated: false,
            payload_type,
            oem: None,
            session_id: 0,
            sequence: 0,
        },
        payload,
        trailer: &[],
        authenticated_prefix_len: 0,
    }
    .encode(&mut out);
    out
}

pub fn setup_reply(reply: &[u8]) -> (PayloadType, Vec<u8>) {
    let (_, rest) = decode_prefix("rmcp", reply, RmcpHeader::parse).expect("rmcp");
    let p = PacketV20::decode(rest).expect("rmcp+");
    assert_eq!((p.header.session_id, p.header.sequence), (0, 0));
    assert!(!p.header.authenticated && !p.header.encrypted);
    (p.header.payload_type, p.payload.to_vec())
}

/// A remote console built from the spec's formulas.
pub struct Console {
    pub suite: &'static CipherSuite,
    pub user: &'static [u8],
    pub password: &'static [u8],
    pub role: u8,
    pub sidm: u32,
    pub sidc: u32,
    pub rm: [u8; 16],
    pub rc: [u8; 16],
    pub guid: [u8; 16],
    pub integrity: Option<Integrity>,
    pub aes: Option<AesCbc128>,
    pub seq: u32,
    pub rq_seq: u8,
}

impl Console {
    pub fn new(suite: &'static CipherSuite, user: &'static [u8], password: &'static [u8]) -> Self {
        Console {
            suite,
            user,
            password,
            role: 0x14,
            sidm: 0xa0a2_a3a4,
            sidc: 0,
            rm: [0x11; 16],
            rc: [0; 16],
            guid: [0; 16],
            integrity: None,
            aes: None,
            seq: 3,
            rq_seq: 1,
        }
    }

    pub fn hash(&self) -> AuthHash {
        AuthHash::of(self.suite.auth).expect("hash")
    }

    pub fn params(&self) -> HandshakeParams<'_> {
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

    pub fn open_session(&self, max_privilege: u8) -> Vec<u8> {
        let req = OpenSessionRequest {
            tag: 7,
            max_privilege,
            console_session_id: self.sidm,
            auth: self.suite.auth,
            integrity: self.suite.integrity,
            confidentiality: self.suite.confidentiality,
        };
        setup_packet(PayloadType::OpenSessionRequest, &req.to_vec())
    }

    pub fn rakp1(&self) -> Vec<u8> {
        let r = Rakp1 {
            tag: 8,
            bmc_session_id: self.sidc,
            console_random: self.rm,
            role: self.role,
            user_name: self.user,
        };
        setup_packet(PayloadType::Rakp1, &r.to_vec())
    }

    pub fn rakp3(&self) -> Vec<u8> {
        let code = keys::rakp3_auth_code(self.hash(), self.password, &self.params());
        let r = Rakp3 {
            tag: 9,
            status: RakpStatus::Ok,
            bmc_session_id: self.sidc,
            auth_code: code.as_slice(),
        };
        setup_packet(PayloadType::Rakp3, &r.to_vec())
    }

    /// Runs the handshake; returns the RAKP4 status.
    pub fn login(&mut self, bmc: &mut Bmc, now: Instant, rng: &mut TestRng) -> RakpStatus {
        let (_, reply) = exchange(bmc, now, &self.open_session(0), rng);
        let status = self.accept_open_session(&reply.expect("open session response"));
        if status != RakpStatus::Ok {
            return status;
        }
        let (_, reply) = exchange(bmc, now, &self.rakp1(), rng);
        let status = self.accept_rakp2(&reply.expect("rakp2"));
        if status != RakpStatus::Ok {
            return status;
        }
        let (_, reply) = exchange(bmc, now, &self.rakp3(), rng);
        self.accept_rakp4(&reply.expect("rakp4"))
    }

    /// Reads the Open Session Response: our session ID.
    pub fn accept_open_session(&mut self, reply: &[u8]) -> RakpStatus {
        let (pt, payload) = setup_reply(reply);
        assert_eq!(pt, PayloadType::OpenSessionResponse);
        let osr = OpenSessionResponse::decode(&payload).expect("osr");
        assert_eq!(osr.tag, 7);
        assert_eq!(osr.console_session_id, self.sidm);
        let Some(accepted) = osr.accepted else {
            return osr.status;
        };
        self.sidc = accepted.bmc_session_id;
        RakpStatus::Ok
    }

    /// Reads RAKP2 and checks its code against the password.
    pub fn accept_rakp2(&mut self, reply: &[u8]) -> RakpStatus {
        let (pt, payload) = setup_reply(reply);
        assert_eq!(pt, PayloadType::Rakp2);
        let r2 = Rakp2::decode(&payload).expect("rakp2");
        assert_eq!(r2.tag, 8);
        let Some(body) = r2.body else {
            return r2.status;
        };
        self.rc = body.bmc_random;
        self.guid = body.bmc_guid;
        let expected = keys::rakp2_auth_code(self.hash(), self.password, &self.params());
        if expected.as_slice() != body.auth_code {
            // Wrong password: a console stops here without RAKP3.
            return RakpStatus::InvalidIntegrityCheckValue;
        }
        RakpStatus::Ok
    }

    /// Reads RAKP4, checks its ICV and derives the session keys.
    pub fn accept_rakp4(&mut self, reply: &[u8]) -> RakpStatus {
        let (pt, payload) = setup_reply(reply);
        assert_eq!(pt, PayloadType::Rakp4);
        let r4 = Rakp4::decode(&payload).expect("rakp4");
        if r4.status != RakpStatus::Ok {
            return r4.status;
        }
        let sik = keys::session_integrity_key(self.hash(), self.password, &self.params());
        let icv = keys::rakp4_icv(self.hash(), &sik, &self.params());
        assert_eq!(icv.as_slice(), r4.integrity_check, "RAKP4 ICV");
        let k = SessionKeys::derive(self.hash(), &sik);
        self.integrity = Integrity::new(self.suite.integrity, k.k1.as_slice());
        self.aes = (self.suite.confidentiality == ConfidentialityAlgorithm::AesCbc128)
            .then(|| AesCbc128::new(k.k2.as_slice()));
        RakpStatus::Ok
    }

    /// An in-session request datagram.
    pub fn request(&mut self, netfn: NetFn, cmd: u8, data: &[u8]) -> Vec<u8> {
        let rq_seq = self.rq_seq;
        self.rq_seq = (self.rq_seq + 1) % 64;
        self.request_with_seq(netfn, cmd, data, rq_seq)
    }

    pub fn request_with_seq(&mut self, netfn: NetFn, cmd: u8, data: &[u8], rq_seq: u8) -> Vec<u8> {
        let msg = Request {
            rs_addr: 0x20,
            netfn,
            rs_lun: 0,
            rq_addr: 0x81,
            rq_seq,
            rq_lun: 0,
            cmd,
            data,
        }
        .to_vec();
        let integrity = self.integrity.as_ref().expect("logged in");
        let header = SessionHeaderV20 {
            encrypted: self.aes.is_some(),
            authenticated: !integrity.is_none(),
            payload_type: PayloadType::Ipmi,
            oem: None,
            session_id: self.sidc,
            sequence: self.seq,
        };
        self.seq += 1;
        let mut payload = Vec::new();
        match &self.aes {
            Some(aes) => aes.encrypt_into([0x33; 16], &msg, &mut payload),
            None => payload = msg,
        }
        let mut out = RmcpHeader::IPMI.to_vec();
        header.encode_with_len(payload.len() as u16, &mut out);
        out.extend_from_slice(&payload);
        integrity.append_trailer(&mut out, RmcpHeader::LEN);
        out
    }

    /// Opens a reply: checks session ID, flags, AuthCode; returns the
    /// session sequence number and the response message.
    pub fn open(&self, datagram: &[u8]) -> (u32, Vec<u8>) {
        let (_, rest) = decode_prefix("rmcp", datagram, RmcpHeader::parse).expect("rmcp");
        let p = PacketV20::decode(rest).expect("rmcp+");
        let integrity = self.integrity.as_ref().expect("logged in");
        assert_eq!(p.header.session_id, self.sidm, "replies carry SIDm");
        assert_eq!(p.header.authenticated, !integrity.is_none());
        assert_eq!(p.header.encrypted, self.aes.is_some());
        if !integrity.is_none() {
            let code = split_integrity_trailer(
                p.trailer,
                p.authenticated_prefix_len,
                integrity.code_len(),
            )
            .expect("trailer");
            assert!(
                integrity.verify(&rest[..rest.len() - code.len()], code),
                "AuthCode"
            );
        }
        let msg = match &self.aes {
            Some(aes) => {
                let mut scratch = [0u8; 256];
                aes.decrypt(p.payload, &mut scratch)
                    .expect("decrypt")
                    .to_vec()
            }
            None => p.payload.to_vec(),
        };
        (p.header.sequence, msg)
    }
}

/// The wall clock [`complete_all`] reports: 2026-01-01T00:00:00Z.
pub const CLOCK: u64 = 1_767_225_600;

pub fn suite(id: u8) -> &'static CipherSuite {
    IMPLEMENTED.iter().find(|s| s.id == id).expect("suite")
}

/// Completes every queued action with a fixed machine state.
pub fn complete_all(bmc: &mut Bmc, now: Instant, rng: &mut TestRng, power_on: bool) -> Vec<Action> {
    let mut done = Vec::new();
    while let Some((id, action)) = bmc.poll_action() {
        let outcome = match action {
            Action::GetChassisStatus => Outcome::Chassis(ChassisState {
                power_on,
                power_fault: false,
            }),
            Action::GetBootOptions => Outcome::BootOptions(BootOptions::new(true)),
            Action::GetSystemGuid => Outcome::Guid(GUID),
            Action::ReadClock => Outcome::Clock(CLOCK),
            _ => Outcome::Done,
        };
        bmc.complete_action(id, outcome, now, rng);
        done.push(action);
    }
    done
}

pub fn response(msg: &[u8]) -> (u8, Vec<u8>) {
    let r = Response::decode(msg).expect("response");
    (r.completion.0, r.data.to_vec())
}
