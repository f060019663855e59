//! Known-answer tests of the RMCP+ key schedule, integrity and
//! confidentiality against bytes made by independent implementations.
//!
//! - Cipher suite 3: ipmitool 1.8.19 logging in to OpenIPMI's `ipmi_sim`.
//!   Neither end is novabmc, so every RAKP code, AuthCode and ciphertext
//!   here is a known answer from elsewhere.
//! - Cipher suite 17: ipmitool 1.8.19 logging in to novabmc's daemon
//!   (`ipmi_sim` has no SHA-256). ipmitool's RAKP3 code, AuthCodes and
//!   ciphertexts are the independent part.
//!
//! `fixtures/vectors/key-schedule.txt` holds the same key schedule derived
//! by a standalone Python script (hmac/hashlib only). `fixtures/README.md`
//! says how each file was made.

use std::collections::HashMap;

use novabmc_proto::codec::{Decode, Encode};
use novabmc_proto::crypto::AuthHash;
use novabmc_proto::crypto::confidentiality::{AesCbc128, BLOCK};
use novabmc_proto::crypto::integrity::Integrity;
use novabmc_proto::crypto::keys::{self, HandshakeParams, SessionKeys};
use novabmc_proto::wire::ids::{
    AuthAlgorithm, AuthType, CompletionCode, ConfidentialityAlgorithm, IntegrityAlgorithm, NetFn,
    PayloadType, RakpStatus,
};
use novabmc_proto::wire::message::{Request, Response, ResponseHeader};
use novabmc_proto::wire::open_session::{OpenSessionRequest, OpenSessionResponse};
use novabmc_proto::wire::rakp::{Rakp1, Rakp2, Rakp3, Rakp4};
use novabmc_proto::wire::rmcp::RmcpHeader;
use novabmc_proto::wire::session::{PacketV15, PacketV20, split_integrity_trailer};

const CS3_CAPTURE: &str = include_str!("../../fixtures/captures/ipmitool-ipmisim-cs3.txt");
const CS17_CAPTURE: &str = include_str!("../../fixtures/captures/ipmitool-novabmc-cs17.txt");
const KEY_SCHEDULE: &str = include_str!("../../fixtures/vectors/key-schedule.txt");

/// App network function commands.
const GET_DEVICE_ID: u8 = 0x01;
const GET_CHANNEL_AUTH_CAPS: u8 = 0x38;
const SET_SESSION_PRIVILEGE: u8 = 0x3b;
const CLOSE_SESSION: u8 = 0x3c;
/// Chassis network function.
const GET_CHASSIS_STATUS: u8 = 0x01;

/// What a capture is expected to contain.
struct Expect {
    /// File name, also the first column of the key-schedule vectors.
    file: &'static str,
    text: &'static str,
    suite: u8,
    password: &'static [u8],
    user: &'static [u8],
    hash: AuthHash,
    auth: AuthAlgorithm,
    integrity: IntegrityAlgorithm,
    /// The BMC's GUID as sent in RAKP2, when the fixture fixes it.
    guid: Option<[u8; 16]>,
    /// Get Device ID's device ID byte.
    device_id: u8,
    /// Get Device ID's manufacturer ID (20 bits, little-endian on the wire).
    manufacturer: u32,
}

const CS3: Expect = Expect {
    file: "ipmitool-ipmisim-cs3.txt",
    text: CS3_CAPTURE,
    suite: 3,
    password: b"kat-password",
    user: b"kat",
    hash: AuthHash::Sha1,
    auth: AuthAlgorithm::HmacSha1,
    integrity: IntegrityAlgorithm::HmacSha1_96,
    // The `guid` line of fixtures/captures/ipmisim-lan.conf.
    guid: Some([
        0xa1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xa1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ]),
    device_id: 0x00,
    // MontaVista, from the `mc_add` line of the emu file.
    manufacturer: 0x001291,
};

const CS17: Expect = Expect {
    file: "ipmitool-novabmc-cs17.txt",
    text: CS17_CAPTURE,
    suite: 17,
    password: b"password",
    user: b"admin",
    hash: AuthHash::Sha256,
    auth: AuthAlgorithm::HmacSha256,
    integrity: IntegrityAlgorithm::HmacSha256_128,
    guid: None,
    device_id: 0x20,
    manufacturer: 0,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// ipmitool to the BMC.
    C2s,
    /// The BMC to ipmitool.
    S2c,
}

/// The datagrams of a capture file, in order; `#` lines are comments.
fn parse_capture(text: &str) -> Vec<(Dir, Vec<u8>)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (dir, data) = line.split_once(' ').expect("capture line: `dir hex`");
            let dir = match dir {
                "c2s" => Dir::C2s,
                "s2c" => Dir::S2c,
                other => panic!("capture line: unknown direction {other:?}"),
            };
            (dir, hex::decode(data.trim()).expect("capture line: hex"))
        })
        .collect()
}

/// The Python-derived vectors: (capture, session number, field) -> value.
fn parse_vectors() -> HashMap<(String, usize, String), String> {
    KEY_SCHEDULE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cols.len(), 4, "key-schedule line: {line:?}");
            let n = cols[1].parse().expect("key-schedule session number");
            (
                (cols[0].to_owned(), n, cols[2].to_owned()),
                cols[3].to_owned(),
            )
        })
        .collect()
}

/// One RMCP+ session of a capture: its handshake and the packets after it.
/// Slices start after the RMCP header, at the session auth-type byte.
#[derive(Default)]
struct Session<'a> {
    open_request: Option<&'a [u8]>,
    open_response: Option<&'a [u8]>,
    rakp: [Option<&'a [u8]>; 4],
    in_session: Vec<(Dir, &'a [u8])>,
}

/// Splits a capture into its IPMI 1.5 pre-session exchanges and its RMCP+
/// sessions, each starting at an Open Session Request.
fn split_sessions(datagrams: &[(Dir, Vec<u8>)]) -> (Vec<(Dir, &[u8])>, Vec<Session<'_>>) {
    let mut pre_session = Vec::new();
    let mut sessions: Vec<Session<'_>> = Vec::new();
    for (dir, datagram) in datagrams {
        let (rest, rmcp) = RmcpHeader::parse(datagram).expect("RMCP header");
        assert_eq!(rmcp, RmcpHeader::IPMI, "class IPMI, no RMCP ACK");
        if AuthType::from(rest[0]) != AuthType::RmcpPlus {
            pre_session.push((*dir, rest));
            continue;
        }
        let packet = PacketV20::decode(rest).expect("RMCP+ packet");
        assert_eq!(packet.to_vec(), rest, "RMCP+ framing re-encodes");
        let payload = packet.payload;
        let expected_dir = |want: Dir| assert_eq!(*dir, want, "{:?}", packet.header.payload_type);
        match packet.header.payload_type {
            PayloadType::OpenSessionRequest => {
                expected_dir(Dir::C2s);
                sessions.push(Session {
                    open_request: Some(payload),
                    ..Session::default()
                });
            }
            pt => {
                let s = sessions
                    .last_mut()
                    .expect("RMCP+ packet after an Open Session Request");
                let slot = match pt {
                    PayloadType::OpenSessionResponse => &mut s.open_response,
                    PayloadType::Rakp1 => &mut s.rakp[0],
                    PayloadType::Rakp2 => &mut s.rakp[1],
                    PayloadType::Rakp3 => &mut s.rakp[2],
                    PayloadType::Rakp4 => &mut s.rakp[3],
                    PayloadType::Ipmi => {
                        s.in_session.push((*dir, rest));
                        continue;
                    }
                    other => panic!("unexpected payload type {other:?}"),
                };
                expected_dir(match pt {
                    PayloadType::Rakp1 | PayloadType::Rakp3 => Dir::C2s,
                    _ => Dir::S2c,
                });
                assert!(slot.is_none(), "{pt:?} sent twice");
                assert!(!packet.header.encrypted && !packet.header.authenticated);
                assert_eq!(packet.header.session_id, 0);
                assert_eq!(packet.header.sequence, 0);
                assert!(packet.trailer.is_empty());
                *slot = Some(payload);
            }
        }
    }
    (pre_session, sessions)
}

/// Get Channel Authentication Capabilities, outside any session.
fn check_pre_session(pre_session: &[(Dir, &[u8])]) {
    assert!(!pre_session.is_empty(), "ipmitool starts with auth caps");
    for pair in pre_session.chunks(2) {
        let [(Dir::C2s, req), (Dir::S2c, resp)] = pair else {
            panic!("pre-session packets come in request/response pairs");
        };
        let req = PacketV15::decode(req).expect("IPMI 1.5 request");
        let resp = PacketV15::decode(resp).expect("IPMI 1.5 response");
        for p in [&req, &resp] {
            assert_eq!(p.header.auth_type, AuthType::None);
            assert_eq!(p.header.session_id, 0);
            assert_eq!(p.header.sequence, 0);
        }
        let request = Request::decode(req.message).expect("auth caps request");
        assert_eq!(
            (request.netfn, request.cmd),
            (NetFn::APP, GET_CHANNEL_AUTH_CAPS)
        );
        // 8Eh: channel E (this one) with the IPMI v2.0 extended data bit.
        assert_eq!(request.data, [0x8e, 0x04]);
        let response = Response::decode(resp.message).expect("auth caps response");
        assert_eq!(response.header, ResponseHeader::answering(&request));
        assert_eq!(response.completion, CompletionCode::OK);
        assert_ne!(
            response.data[1] & 0x80,
            0,
            "IPMI v2.0 extended capabilities"
        );
    }
}

/// The vectors derived in Python for one session.
struct Vectors<'v> {
    map: &'v HashMap<(String, usize, String), String>,
    file: &'static str,
    session: usize,
}

impl Vectors<'_> {
    fn get(&self, field: &str) -> Vec<u8> {
        let key = (self.file.to_owned(), self.session, field.to_owned());
        let value = self
            .map
            .get(&key)
            .unwrap_or_else(|| panic!("key-schedule.txt has no {key:?}"));
        hex::decode(value).expect("key-schedule value is hex")
    }

    fn text(&self, field: &str) -> &str {
        let key = (self.file.to_owned(), self.session, field.to_owned());
        self.map
            .get(&key)
            .unwrap_or_else(|| panic!("key-schedule.txt has no {key:?}"))
    }
}

/// Keys and identifiers an established session needs.
struct Established {
    console_session_id: u32,
    bmc_session_id: u32,
    integrity: Integrity,
    aes: AesCbc128,
}

/// Decodes the handshake, recomputes every RAKP code and the keys, and
/// checks them against the wire and the Python vectors.
fn check_handshake(e: &Expect, s: &Session<'_>, v: &Vectors<'_>) -> Established {
    let open_request_bytes = s.open_request.expect("open session request");
    let open_request =
        OpenSessionRequest::decode(open_request_bytes).expect("decode open session request");
    let open_response_bytes = s.open_response.expect("open session response");
    let open_response =
        OpenSessionResponse::decode(open_response_bytes).expect("decode open session response");
    let rakp1_bytes = s.rakp[0].expect("RAKP1");
    let rakp2_bytes = s.rakp[1].expect("RAKP2");
    let rakp3_bytes = s.rakp[2].expect("RAKP3");
    let rakp4_bytes = s.rakp[3].expect("RAKP4");
    let rakp1 = Rakp1::decode(rakp1_bytes).expect("decode RAKP1");
    let rakp2 = Rakp2::decode(rakp2_bytes).expect("decode RAKP2");
    let rakp3 = Rakp3::decode(rakp3_bytes).expect("decode RAKP3");
    let rakp4 = Rakp4::decode(rakp4_bytes).expect("decode RAKP4");

    // The codecs reproduce both programs' bytes.
    assert_eq!(open_request.to_vec(), open_request_bytes);
    assert_eq!(open_response.to_vec(), open_response_bytes);
    assert_eq!(rakp1.to_vec(), rakp1_bytes);
    assert_eq!(rakp2.to_vec(), rakp2_bytes);
    assert_eq!(rakp3.to_vec(), rakp3_bytes);
    assert_eq!(rakp4.to_vec(), rakp4_bytes);

    // The suite both sides agreed on.
    assert_eq!(open_request.auth, e.auth);
    assert_eq!(open_request.integrity, e.integrity);
    assert_eq!(
        open_request.confidentiality,
        ConfidentialityAlgorithm::AesCbc128
    );
    assert_eq!(open_response.status, RakpStatus::Ok);
    assert_eq!(open_response.tag, open_request.tag);
    assert_eq!(
        open_response.console_session_id,
        open_request.console_session_id
    );
    let accepted = open_response.accepted.expect("open session accepted");
    assert_eq!(accepted.auth, e.auth);
    assert_eq!(accepted.integrity, e.integrity);
    assert_eq!(
        accepted.confidentiality,
        ConfidentialityAlgorithm::AesCbc128
    );
    assert_eq!(AuthHash::of(accepted.auth), Some(e.hash));

    let sidm = open_request.console_session_id;
    let sidc = accepted.bmc_session_id;
    assert_eq!(rakp1.bmc_session_id, sidc);
    assert_eq!(rakp1.user_name, e.user);
    assert_eq!(rakp2.status, RakpStatus::Ok);
    assert_eq!(rakp2.console_session_id, sidm);
    assert_eq!(rakp3.status, RakpStatus::Ok);
    assert_eq!(rakp3.bmc_session_id, sidc);
    assert_eq!(rakp4.status, RakpStatus::Ok);
    assert_eq!(rakp4.console_session_id, sidm);
    let body = rakp2.body.expect("RAKP2 body");
    if let Some(guid) = e.guid {
        assert_eq!(body.bmc_guid, guid, "GUID from the BMC's configuration");
    }

    // The Python script read the same inputs from the same bytes.
    assert_eq!(v.text("suite"), e.suite.to_string());
    assert_eq!(v.get("password"), e.password);
    assert_eq!(v.get("sidm"), sidm.to_le_bytes());
    assert_eq!(v.get("sidc"), sidc.to_le_bytes());
    assert_eq!(v.get("rm"), rakp1.console_random);
    assert_eq!(v.get("rc"), body.bmc_random);
    assert_eq!(v.get("guidc"), body.bmc_guid);
    assert_eq!(v.get("role"), [rakp1.role]);
    assert_eq!(v.get("user"), rakp1.user_name);

    let params = HandshakeParams {
        console_session_id: sidm,
        bmc_session_id: sidc,
        console_random: &rakp1.console_random,
        bmc_random: &body.bmc_random,
        bmc_guid: &body.bmc_guid,
        role: rakp1.role,
        user_name: rakp1.user_name,
    };
    let kuid = e.password;

    // RAKP2: the BMC's proof, from ipmi_sim (suite 3) or novabmc (17).
    let rakp2_code = keys::rakp2_auth_code(e.hash, kuid, &params);
    assert_eq!(rakp2_code.as_slice(), body.auth_code, "RAKP2 auth code");
    assert_eq!(rakp2_code.as_slice(), v.get("rakp2_code"));

    // RAKP3: ipmitool's proof of the password.
    let rakp3_code = keys::rakp3_auth_code(e.hash, kuid, &params);
    assert_eq!(rakp3_code.as_slice(), rakp3.auth_code, "RAKP3 auth code");
    assert_eq!(rakp3_code.as_slice(), v.get("rakp3_code"));

    // No BMC key is set, so KG is Kuid.
    let sik = keys::session_integrity_key(e.hash, kuid, &params);
    assert_eq!(sik.as_slice().len(), e.hash.output_len());
    assert_eq!(sik.as_slice(), v.get("sik"), "SIK");

    let icv = keys::rakp4_icv(e.hash, &sik, &params);
    assert_eq!(icv.as_slice().len(), e.hash.icv_len());
    assert_eq!(icv.as_slice(), rakp4.integrity_check, "RAKP4 ICV");
    assert_eq!(icv.as_slice(), v.get("rakp4_icv"));

    let session_keys = SessionKeys::derive(e.hash, &sik);
    assert_eq!(session_keys.k1.as_slice(), v.get("k1"), "K1");
    assert_eq!(session_keys.k2.as_slice(), v.get("k2"), "K2");

    Established {
        console_session_id: sidm,
        bmc_session_id: sidc,
        integrity: Integrity::new(e.integrity, session_keys.k1.as_slice())
            .expect("implemented integrity algorithm"),
        aes: AesCbc128::new(session_keys.k2.as_slice()),
    }
}

/// Checks, decrypts and decodes every in-session packet; returns the
/// (netFn, command) pairs ipmitool sent.
fn check_in_session(e: &Expect, s: &Session<'_>, est: &Established) -> Vec<(NetFn, u8)> {
    let code_len = est.integrity.code_len();
    assert_eq!(
        code_len,
        e.hash.icv_len(),
        "AuthCode as long as the RAKP4 ICV"
    );
    let mut last_sequence: [Option<u32>; 2] = [None, None];
    let mut pending: Option<Vec<u8>> = None;
    let mut commands = Vec::new();
    let mut checked = 0;

    for (dir, bytes) in &s.in_session {
        let packet = PacketV20::decode(bytes).expect("in-session packet");
        let h = packet.header;
        assert_eq!(h.payload_type, PayloadType::Ipmi);
        assert!(h.encrypted && h.authenticated, "suite {} protects", e.suite);
        let (want_id, slot) = match dir {
            Dir::C2s => (est.bmc_session_id, 0),
            Dir::S2c => (est.console_session_id, 1),
        };
        assert_eq!(h.session_id, want_id, "{dir:?} session ID");
        if let Some(prev) = last_sequence[slot] {
            assert_eq!(h.sequence, prev + 1, "{dir:?} sequence numbers");
        }
        last_sequence[slot] = Some(h.sequence);

        // Integrity: the AuthCode covers the auth-type byte through the
        // next-header byte.
        let code =
            split_integrity_trailer(packet.trailer, packet.authenticated_prefix_len, code_len)
                .expect("integrity trailer framing");
        let span = &bytes[..bytes.len() - code_len];
        assert_eq!(span.last(), Some(&0x07), "span ends at next header");
        assert!(est.integrity.verify(span, code), "{dir:?} AuthCode");
        assert_eq!(est.integrity.compute(span).as_slice(), code);
        let mut tampered = span.to_vec();
        tampered[packet.authenticated_prefix_len - 1] ^= 0x01;
        assert!(!est.integrity.verify(&tampered, code), "tampering detected");

        // Confidentiality: decrypt, then encrypt again with the same IV.
        let mut scratch = [0u8; 256];
        let plain = est
            .aes
            .decrypt(packet.payload, &mut scratch)
            .expect("decrypt payload")
            .to_vec();
        assert_eq!(AesCbc128::encrypted_len(plain.len()), packet.payload.len());
        let iv: [u8; BLOCK] = packet.payload[..BLOCK].try_into().expect("IV");
        let mut again = Vec::new();
        est.aes.encrypt_into(iv, &plain, &mut again);
        assert_eq!(again, packet.payload, "{dir:?} ciphertext reproduced");

        match dir {
            Dir::C2s => {
                let request = Request::decode(&plain).expect("IPMI request");
                assert_eq!(request.to_vec(), plain);
                assert!(pending.is_none(), "one request at a time");
                commands.push((request.netfn, request.cmd));
                pending = Some(plain);
            }
            Dir::S2c => {
                let request_bytes = pending.take().expect("response after a request");
                let request = Request::decode(&request_bytes).expect("IPMI request");
                let response = Response::decode(&plain).expect("IPMI response");
                assert_eq!(response.to_vec(), plain);
                assert_eq!(response.header, ResponseHeader::answering(&request));
                check_exchange(e, est, &request, &response);
            }
        }
        checked += 1;
    }
    assert!(pending.is_none(), "every request answered");
    assert!(last_sequence[0].is_some(), "requests sent");
    assert_eq!(checked, s.in_session.len());
    commands
}

/// What each command ipmitool sends must get back.
fn check_exchange(e: &Expect, est: &Established, request: &Request<'_>, response: &Response<'_>) {
    match (request.netfn, request.cmd) {
        (NetFn::APP, SET_SESSION_PRIVILEGE) => {
            assert_eq!(request.data, [0x04], "ipmitool asks for administrator");
            assert_eq!(response.completion, CompletionCode::OK);
            assert_eq!(response.data, [0x04]);
        }
        (NetFn::APP, GET_DEVICE_ID) => {
            assert_eq!(response.completion, CompletionCode::OK);
            assert!(response.data.len() >= 11, "Get Device ID data");
            assert_eq!(response.data[0], e.device_id);
            let manufacturer =
                u32::from_le_bytes([response.data[6], response.data[7], response.data[8], 0]);
            assert_eq!(manufacturer, e.manufacturer);
        }
        (NetFn::APP, CLOSE_SESSION) => {
            assert_eq!(request.data, est.bmc_session_id.to_le_bytes());
            assert_eq!(response.completion, CompletionCode::OK);
            assert!(response.data.is_empty());
        }
        (NetFn::CHASSIS, GET_CHASSIS_STATUS) => {
            assert_eq!(response.completion, CompletionCode::OK);
            assert!(response.data.len() >= 3, "Get Chassis Status data");
            assert_eq!(response.data[0] & 0x01, 0, "ipmitool printed power off");
        }
        // ipmitool probes for PICMG/VITA extensions; neither BMC has them.
        (NetFn::GROUP_EXTENSION, _) => {
            assert_eq!(response.completion, CompletionCode::INVALID_COMMAND);
            assert!(response.data.is_empty());
        }
        other => panic!("unexpected command {other:?}"),
    }
}

fn check_capture(e: &Expect) {
    let datagrams = parse_capture(e.text);
    let vectors = parse_vectors();
    let (pre_session, sessions) = split_sessions(&datagrams);
    check_pre_session(&pre_session);
    assert_eq!(sessions.len(), 2, "power status, then mc info");
    for (i, s) in sessions.iter().enumerate() {
        let v = Vectors {
            map: &vectors,
            file: e.file,
            session: i + 1,
        };
        let est = check_handshake(e, s, &v);
        let commands = check_in_session(e, s, &est);
        assert_eq!(
            v.text("authcodes_checked"),
            s.in_session.len().to_string(),
            "the Python script checked the same packets"
        );
        let wanted = if i == 0 {
            (NetFn::CHASSIS, GET_CHASSIS_STATUS)
        } else {
            (NetFn::APP, GET_DEVICE_ID)
        };
        assert!(
            commands.contains(&wanted),
            "session {}: {commands:?}",
            i + 1
        );
        assert_eq!(commands.last(), Some(&(NetFn::APP, CLOSE_SESSION)));
    }
}

#[test]
fn cipher_suite_3_ipmitool_against_ipmi_sim() {
    check_capture(&CS3);
}

#[test]
fn cipher_suite_17_ipmitool_against_novabmc() {
    check_capture(&CS17);
}

#[test]
fn key_schedule_vectors_cover_both_captures() {
    let vectors = parse_vectors();
    for e in [&CS3, &CS17] {
        for session in 1..=2 {
            for field in ["sik", "k1", "k2", "rakp2_code", "rakp3_code", "rakp4_icv"] {
                let key = (e.file.to_owned(), session, field.to_owned());
                assert!(vectors.contains_key(&key), "missing {key:?}");
            }
        }
    }
    assert!(!vectors.contains_key(&(CS3.file.to_owned(), 3, "sik".to_owned())));
}
