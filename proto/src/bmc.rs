//! The per-node engine: datagrams in, datagrams and actions out.
//!
//! [`Bmc`] is sans-IO in the style of quinn-proto. The daemon feeds it
//! datagrams ([`Bmc::handle_datagram`]), the passage of time
//! ([`Bmc::handle_timeout`]) and the results of actions
//! ([`Bmc::complete_action`]); it drains replies ([`Bmc::poll_transmit`]),
//! actions ([`Bmc::poll_action`]), the next deadline ([`Bmc::poll_timeout`])
//! and log-worthy events ([`Bmc::poll_event`]). Time and randomness are
//! passed in, so a test can replay an exchange byte for byte.
//!
//! Framing rules this module applies (IPMI v2.0 chapter 13, and what
//! ipmitool, FreeIPMI and pyghmi check):
//! - RMCP presence pings get pongs; RMCP ACKs and other classes are dropped.
//! - IPMI 1.5 framing is served only outside a session (Get Channel
//!   Authentication Capabilities), and answered in the same framing.
//! - Session setup replies and pre-session replies carry session ID 0,
//!   sequence 0 and no flag bits.
//! - In-session replies go back to the address the request came from.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BufMut;

use crate::action::{Action, ActionId, Outcome};
use crate::codec::{Decode, Encode, decode_prefix};
use crate::commands::{self, Ctx, Followup, Handled, Identify, SessionView};
use crate::config::BmcConfig;
use crate::error::DropReason;
use crate::session::handshake::ExpectRakp1;
use crate::session::reply_cache::RequestKey;
use crate::session::table::{SessionState, SessionTable};
use crate::wire::ids::{AuthType, CompletionCode, PayloadType, Privilege, RakpStatus, RmcpClass};
use crate::wire::message::{Request, Response, ResponseHeader};
use crate::wire::open_session::{OpenSessionAccepted, OpenSessionRequest, OpenSessionResponse};
use crate::wire::rakp::{MAX_USER_NAME, Rakp1, Rakp2, Rakp2Body, Rakp3, Rakp4};
use crate::wire::rmcp::{
    ASF_IANA, ASF_PRESENCE_PING, ASF_PRESENCE_PONG, AsfMessage, PongData, RmcpHeader,
};
use crate::wire::session::{PacketV15, PacketV20, SessionHeaderV15, SessionHeaderV20};

/// A source of random bytes (session IDs, Rc, AES IVs).
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// Longest in-session payload we decrypt; every request we serve is far
/// shorter.
const MAX_PAYLOAD: usize = 512;
/// Longest response message we build (the longest reply data is 32 bytes).
const MAX_MESSAGE: usize = 64;
/// Spare reply buffers kept for reuse.
const SPARE_BUFFERS: usize = 4;
/// Events kept when the daemon does not drain them.
const MAX_EVENTS: usize = 64;

/// A user name as it came off the wire, for events.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UserName {
    bytes: [u8; MAX_USER_NAME],
    len: u8,
}

impl UserName {
    fn new(name: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_USER_NAME];
        let len = name.len().min(MAX_USER_NAME);
        bytes[..len].copy_from_slice(&name[..len]);
        UserName {
            bytes,
            len: len as u8,
        }
    }
}

impl std::fmt::Display for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}",
            String::from_utf8_lossy(&self.bytes[..usize::from(self.len)]).escape_debug()
        )
    }
}

impl std::fmt::Debug for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// Something an operator may want in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A handshake completed.
    SessionOpened {
        /// Our session ID.
        id: u32,
        /// Console address.
        peer: SocketAddr,
        /// Who logged in.
        user: UserName,
        /// Cipher suite ID.
        suite: u8,
        /// The session's privilege limit.
        max_privilege: Privilege,
    },
    /// A session ended.
    SessionClosed {
        /// Our session ID.
        id: u32,
        /// Why.
        reason: CloseReason,
    },
    /// A login was refused.
    LoginRefused {
        /// Console address.
        peer: SocketAddr,
        /// The status sent.
        status: RakpStatus,
        /// The user name tried, if the refusal came after RAKP1.
        user: Option<UserName>,
    },
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Close Session from the console.
    Closed,
    /// Cold or warm reset.
    Reset,
    /// Timed out (idle, or half-open).
    Expired,
}

/// A deferred request waiting for its action.
#[derive(Debug)]
struct Pending {
    id: ActionId,
    session_id: u32,
    peer: SocketAddr,
    header: ResponseHeader,
    followup: Followup,
    key: Option<RequestKey>,
}

/// The IPMI engine of one node.
#[derive(Debug)]
pub struct Bmc {
    config: Arc<BmcConfig>,
    guid: [u8; 16],
    sessions: SessionTable,
    identify: Identify,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    actions: VecDeque<(ActionId, Action)>,
    pending: Vec<Pending>,
    events: VecDeque<Event>,
    next_action: u64,
}

impl Bmc {
    /// An engine with no sessions. `guid` is the GUID sent in RAKP2.
    pub fn new(config: Arc<BmcConfig>, guid: [u8; 16]) -> Self {
        Bmc {
            config,
            guid,
            sessions: SessionTable::default(),
            identify: Identify::default(),
            transmits: VecDeque::new(),
            spare: Vec::new(),
            actions: VecDeque::new(),
            pending: Vec::new(),
            events: VecDeque::new(),
            next_action: 0,
        }
    }

    /// Number of sessions, half-open ones included.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Handles one datagram from `from`. `Err` says why it was dropped
    /// without an answer.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(), DropReason> {
        let (rmcp, rest) = decode_prefix("rmcp header", data, RmcpHeader::parse)?;
        if rmcp.ack {
            return Err(DropReason::RmcpAck);
        }
        match rmcp.class {
            RmcpClass::Asf => self.handle_asf(from, rest),
            RmcpClass::Ipmi => match rest.first().map(|b| AuthType::from(*b)) {
                Some(AuthType::RmcpPlus) => self.handle_v20(now, from, rest, rng),
                Some(_) => self.handle_v15(now, from, rest),
                None => Err(DropReason::Malformed(
                    crate::codec::DecodeError::Truncated {
                        field: "session auth type",
                    },
                )),
            },
            other => Err(DropReason::UnsupportedClass(other.into())),
        }
    }

    /// Removes sessions whose time is up.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(id) = self.sessions.first_expired(now) {
            self.sessions.remove(id);
            self.push_event(Event::SessionClosed {
                id,
                reason: CloseReason::Expired,
            });
        }
    }

    /// When [`Bmc::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions.next_deadline()
    }

    /// Moves the next reply into `buf` (replacing its contents) and returns
    /// its destination.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let (to, mut bytes) = self.transmits.pop_front()?;
        std::mem::swap(buf, &mut bytes);
        bytes.clear();
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(bytes);
        }
        Some(to)
    }

    /// The next action to carry out.
    pub fn poll_action(&mut self) -> Option<(ActionId, Action)> {
        self.actions.pop_front()
    }

    /// The next event to log.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Hands back the result of an action; the deferred reply is sent.
    pub fn complete_action(
        &mut self,
        id: ActionId,
        outcome: Outcome,
        now: Instant,
        rng: &mut dyn Entropy,
    ) {
        let Some(i) = self.pending.iter().position(|p| p.id == id) else {
            return;
        };
        let p = self.pending.swap_remove(i);
        let (cc, data) = commands::follow_up(p.followup, outcome, &self.identify, now);
        self.reply_in_session(
            p.session_id,
            p.peer,
            p.header,
            p.key,
            cc,
            data.as_slice(),
            rng,
        );
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn take_buf(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b
    }

    // ----- ASF -------------------------------------------------------------

    fn handle_asf(&mut self, from: SocketAddr, rest: &[u8]) -> Result<(), DropReason> {
        let msg = AsfMessage::decode(rest)?;
        if msg.iana != ASF_IANA || msg.message_type != ASF_PRESENCE_PING {
            return Err(DropReason::NotPing(msg.message_type));
        }
        let data = PongData::IPMI.to_bytes();
        let mut buf = self.take_buf();
        RmcpHeader {
            sequence: crate::wire::rmcp::RMCP_NO_ACK,
            class: RmcpClass::Asf,
            ack: false,
        }
        .encode(&mut buf);
        AsfMessage {
            iana: ASF_IANA,
            message_type: ASF_PRESENCE_PONG,
            tag: msg.tag,
            data: &data,
        }
        .encode(&mut buf);
        self.transmits.push_back((from, buf));
        Ok(())
    }

    // ----- IPMI 1.5 framing (pre-session only) -------------------------------

    fn handle_v15(
        &mut self,
        now: Instant,
        from: SocketAddr,
        rest: &[u8],
    ) -> Result<(), DropReason> {
        let packet = PacketV15::decode(rest)?;
        if packet.header.auth_type != AuthType::None || packet.header.session_id != 0 {
            return Err(DropReason::Ipmi15Session);
        }
        let req = Request::decode(packet.message)?;
        let (msg, n) = self.presession_reply(now, &req)?;
        let mut buf = self.take_buf();
        RmcpHeader::IPMI.encode(&mut buf);
        PacketV15 {
            header: SessionHeaderV15 {
                auth_type: AuthType::None,
                sequence: 0,
                session_id: 0,
                auth_code: None,
            },
            message: &msg[..n],
        }
        .encode(&mut buf);
        self.transmits.push_back((from, buf));
        Ok(())
    }

    /// Runs a request that arrived outside a session and encodes the reply.
    fn presession_reply(
        &mut self,
        now: Instant,
        req: &Request<'_>,
    ) -> Result<([u8; MAX_MESSAGE], usize), DropReason> {
        if !req.netfn.is_request() {
            return Err(DropReason::NotARequest);
        }
        let mut ctx = Ctx {
            config: &self.config,
            now,
            session: None,
            table: &self.sessions,
            identify: &mut self.identify,
        };
        let (cc, data) = match commands::dispatch(&mut ctx, req) {
            Handled::Reply(cc, data) => (cc, data),
            // Only session-less commands run here and they all answer at
            // once; anything else would be a dispatch table mistake.
            _ => (CompletionCode::UNSPECIFIED, commands::ReplyData::empty()),
        };
        Ok(encode_response(
            ResponseHeader::answering(req),
            cc,
            data.as_slice(),
        ))
    }

    // ----- RMCP+ --------------------------------------------------------------

    fn handle_v20(
        &mut self,
        now: Instant,
        from: SocketAddr,
        rest: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(), DropReason> {
        let packet = PacketV20::decode(rest)?;
        let h = packet.header;
        let setup = matches!(
            h.payload_type,
            PayloadType::OpenSessionRequest | PayloadType::Rakp1 | PayloadType::Rakp3
        );
        if setup || (h.payload_type == PayloadType::Ipmi && h.session_id == 0) {
            if h.session_id != 0 || h.authenticated || h.encrypted {
                return Err(DropReason::SetupFraming);
            }
            if !packet.trailer.is_empty() {
                return Err(DropReason::Malformed(crate::codec::DecodeError::Trailing {
                    field: "rmcp+ session",
                    count: packet.trailer.len(),
                }));
            }
        }
        match h.payload_type {
            PayloadType::OpenSessionRequest => self.open_session(now, from, packet.payload, rng),
            PayloadType::Rakp1 => self.rakp1(now, from, packet.payload, rng),
            PayloadType::Rakp3 => self.rakp3(now, from, packet.payload),
            PayloadType::Ipmi if h.session_id == 0 => {
                let req = Request::decode(packet.payload)?;
                let (msg, n) = self.presession_reply(now, &req)?;
                self.send_setup(from, PayloadType::Ipmi, &msg[..n]);
                Ok(())
            }
            PayloadType::Ipmi => self.in_session(now, from, rest, &packet, rng),
            other => Err(DropReason::UnsupportedPayload(other.into())),
        }
    }

    /// Sends an unauthenticated RMCP+ packet with session ID and sequence 0.
    fn send_setup(&mut self, to: SocketAddr, payload_type: PayloadType, payload: &[u8]) {
        let mut buf = self.take_buf();
        RmcpHeader::IPMI.encode(&mut buf);
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
        .encode(&mut buf);
        self.transmits.push_back((to, buf));
    }

    fn send_open_session_response(&mut self, to: SocketAddr, r: OpenSessionResponse) {
        let mut payload = [0u8; 36];
        let n = encode_into(&r, &mut payload);
        if r.status != RakpStatus::Ok {
            self.push_event(Event::LoginRefused {
                peer: to,
                status: r.status,
                user: None,
            });
        }
        self.send_setup(to, PayloadType::OpenSessionResponse, &payload[..n]);
    }

    fn open_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        payload: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(), DropReason> {
        let req = match OpenSessionRequest::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                let Some((tag, console_session_id)) =
                    OpenSessionRequest::peek_tag_and_console_id(payload)
                else {
                    return Err(e.into());
                };
                self.send_open_session_response(
                    from,
                    OpenSessionResponse {
                        tag,
                        status: RakpStatus::IllegalParameter,
                        console_session_id,
                        accepted: None,
                    },
                );
                return Ok(());
            }
        };
        let refuse = |status| OpenSessionResponse {
            tag: req.tag,
            status,
            console_session_id: req.console_session_id,
            accepted: None,
        };
        let max_privilege = match req.max_privilege {
            0 => Privilege::Administrator,
            n => match Privilege::from_level(n) {
                Some(p) => p,
                None => {
                    self.send_open_session_response(from, refuse(RakpStatus::InvalidRole));
                    return Ok(());
                }
            },
        };
        let Some(suite) =
            self.config
                .cipher_suites
                .find(req.auth, req.integrity, req.confidentiality)
        else {
            self.send_open_session_response(from, refuse(RakpStatus::NoCipherSuiteMatch));
            return Ok(());
        };
        self.handle_timeout(now);
        let state = SessionState::ExpectRakp1(ExpectRakp1 {
            console_session_id: req.console_session_id,
            suite,
            max_privilege,
        });
        let deadline = now + self.config.timeouts.setup;
        let mut state = Some(state);
        let mut id = 0;
        for _ in 0..8 {
            let mut b = [0u8; 4];
            rng.fill(&mut b);
            let candidate = u32::from_le_bytes(b);
            if candidate == 0 || self.sessions.get(candidate).is_some() {
                continue;
            }
            if let Some(s) = state.take()
                && self
                    .sessions
                    .insert(candidate, from, s, deadline, self.config.max_sessions)
            {
                id = candidate;
            }
            break;
        }
        if id == 0 {
            self.send_open_session_response(from, refuse(RakpStatus::InsufficientResources));
            return Ok(());
        }
        self.send_open_session_response(
            from,
            OpenSessionResponse {
                tag: req.tag,
                status: RakpStatus::Ok,
                console_session_id: req.console_session_id,
                accepted: Some(OpenSessionAccepted {
                    max_privilege: max_privilege.level(),
                    bmc_session_id: id,
                    auth: suite.auth,
                    integrity: suite.integrity,
                    confidentiality: suite.confidentiality,
                }),
            },
        );
        Ok(())
    }

    fn send_rakp2(&mut self, to: SocketAddr, r: Rakp2<'_>) {
        let mut payload = [0u8; 72];
        let n = encode_into(&r, &mut payload);
        self.send_setup(to, PayloadType::Rakp2, &payload[..n]);
    }

    fn send_rakp4(&mut self, to: SocketAddr, r: Rakp4<'_>) {
        let mut payload = [0u8; 24];
        let n = encode_into(&r, &mut payload);
        self.send_setup(to, PayloadType::Rakp4, &payload[..n]);
    }

    fn rakp1(
        &mut self,
        now: Instant,
        from: SocketAddr,
        payload: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(), DropReason> {
        let msg = match Rakp1::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                // Answer a malformed RAKP1 for a session we know, so the
                // console fails fast instead of timing out.
                if let (Some(tag), Some(sid)) = (payload.first(), payload.get(4..8)) {
                    let sid = u32::from_le_bytes([sid[0], sid[1], sid[2], sid[3]]);
                    if let Some(s) = self.sessions.remove(sid) {
                        let console_session_id = console_id(&s.state);
                        self.send_rakp2(
                            from,
                            Rakp2 {
                                tag: *tag,
                                status: RakpStatus::IllegalParameter,
                                console_session_id,
                                body: None,
                            },
                        );
                        return Ok(());
                    }
                }
                return Err(e.into());
            }
        };
        let refuse = |status, console_session_id| Rakp2 {
            tag: msg.tag,
            status,
            console_session_id,
            body: None,
        };
        let sid = msg.bmc_session_id;
        let Some(session) = self.sessions.get_mut(sid) else {
            self.send_rakp2(from, refuse(RakpStatus::InvalidSessionId, 0));
            return Ok(());
        };
        let start = match &session.state {
            SessionState::ExpectRakp1(s) => s.clone(),
            SessionState::ExpectRakp3(s) if s.same_rakp1(&msg) => {
                // Our RAKP2 was lost: send the same one again.
                let (rc, code, sidm) = (s.bmc_random, s.rakp2_code, s.console_session_id);
                session.peer = from;
                let guid = self.guid;
                self.send_rakp2(
                    from,
                    Rakp2 {
                        tag: msg.tag,
                        status: RakpStatus::Ok,
                        console_session_id: sidm,
                        body: Some(Rakp2Body {
                            bmc_random: rc,
                            bmc_guid: guid,
                            auth_code: code.as_slice(),
                        }),
                    },
                );
                return Ok(());
            }
            SessionState::ExpectRakp3(s) => ExpectRakp1 {
                console_session_id: s.console_session_id,
                suite: s.suite,
                max_privilege: s.granted_privilege,
            },
            SessionState::Established(e) => {
                let sidm = e.console_session_id;
                self.send_rakp2(from, refuse(RakpStatus::InvalidSessionId, sidm));
                return Ok(());
            }
        };
        let mut rc = [0u8; 16];
        rng.fill(&mut rc);
        match start.on_rakp1(&msg, &self.config.users, sid, &self.guid, rc) {
            Ok(next) => {
                let code = next.rakp2_code;
                session.state = SessionState::ExpectRakp3(next);
                session.peer = from;
                session.deadline = now + self.config.timeouts.setup;
                let guid = self.guid;
                self.send_rakp2(
                    from,
                    Rakp2 {
                        tag: msg.tag,
                        status: RakpStatus::Ok,
                        console_session_id: start.console_session_id,
                        body: Some(Rakp2Body {
                            bmc_random: rc,
                            bmc_guid: guid,
                            auth_code: code.as_slice(),
                        }),
                    },
                );
            }
            Err(status) => {
                self.sessions.remove(sid);
                self.push_event(Event::LoginRefused {
                    peer: from,
                    status,
                    user: Some(UserName::new(msg.user_name)),
                });
                self.send_rakp2(from, refuse(status, start.console_session_id));
            }
        }
        Ok(())
    }

    fn rakp3(&mut self, now: Instant, from: SocketAddr, payload: &[u8]) -> Result<(), DropReason> {
        let msg = Rakp3::decode(payload)?;
        let refuse = |status, console_session_id| Rakp4 {
            tag: msg.tag,
            status,
            console_session_id,
            integrity_check: &[],
        };
        let sid = msg.bmc_session_id;
        let Some(session) = self.sessions.get_mut(sid) else {
            self.send_rakp4(from, refuse(RakpStatus::InvalidSessionId, 0));
            return Ok(());
        };
        if msg.status != RakpStatus::Ok {
            self.sessions.remove(sid);
            return Err(DropReason::ConsoleAbort(msg.status.into()));
        }
        let expect = match &session.state {
            SessionState::ExpectRakp3(s) => s.clone(),
            SessionState::Established(e) => {
                let sidm = e.console_session_id;
                match e.repeated_rakp3(msg.auth_code) {
                    Some(icv) => self.send_rakp4(
                        from,
                        Rakp4 {
                            tag: msg.tag,
                            status: RakpStatus::Ok,
                            console_session_id: sidm,
                            integrity_check: icv.as_slice(),
                        },
                    ),
                    None => {
                        self.send_rakp4(from, refuse(RakpStatus::InvalidIntegrityCheckValue, sidm))
                    }
                }
                return Ok(());
            }
            SessionState::ExpectRakp1(s) => {
                let sidm = s.console_session_id;
                self.send_rakp4(from, refuse(RakpStatus::InvalidSessionId, sidm));
                return Ok(());
            }
        };
        let kg = self.config.kg.as_deref().map(|k| k.as_slice());
        match expect.on_rakp3(&msg, &self.config.users, kg, sid, &self.guid) {
            Ok((established, icv)) => {
                let event = Event::SessionOpened {
                    id: sid,
                    peer: from,
                    user: UserName::new(expect.user_name()),
                    suite: expect.suite.id,
                    max_privilege: expect.max_privilege,
                };
                session.state = SessionState::Established(Box::new(established));
                session.peer = from;
                session.deadline = now + self.config.timeouts.idle;
                self.push_event(event);
                self.send_rakp4(
                    from,
                    Rakp4 {
                        tag: msg.tag,
                        status: RakpStatus::Ok,
                        console_session_id: expect.console_session_id,
                        integrity_check: icv.as_slice(),
                    },
                );
            }
            Err(status) => {
                self.sessions.remove(sid);
                self.push_event(Event::LoginRefused {
                    peer: from,
                    status,
                    user: Some(UserName::new(expect.user_name())),
                });
                self.send_rakp4(from, refuse(status, expect.console_session_id));
            }
        }
        Ok(())
    }

    fn in_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        session_bytes: &[u8],
        packet: &PacketV20<'_>,
        rng: &mut dyn Entropy,
    ) -> Result<(), DropReason> {
        let sid = packet.header.session_id;
        let idle = self.config.timeouts.idle;
        let Some(session) = self.sessions.get_mut(sid) else {
            return Err(DropReason::UnknownSession(sid));
        };
        let SessionState::Established(est) = &mut session.state else {
            return Err(DropReason::NotEstablished(sid));
        };
        let mut scratch = [0u8; MAX_PAYLOAD];
        let message = est.open(session_bytes, packet, &mut scratch)?;
        session.deadline = now + idle;
        session.peer = from;
        let req = Request::decode(message)?;
        if !req.netfn.is_request() {
            return Err(DropReason::NotARequest);
        }
        let key = RequestKey::of(&req);
        if let Some(k) = &key {
            if let Some(cached) = est.replies.get(k) {
                let mut msg = [0u8; MAX_MESSAGE];
                msg[..cached.len()].copy_from_slice(cached);
                let n = cached.len();
                let mut buf = self.spare.pop().unwrap_or_default();
                buf.clear();
                est.seal(&msg[..n], rng, &mut buf);
                self.transmits.push_back((from, buf));
                return Ok(());
            }
            if self
                .pending
                .iter()
                .any(|p| p.session_id == sid && p.key.as_ref() == Some(k))
            {
                return Err(DropReason::InProgress);
            }
        }
        let view = SessionView {
            id: sid,
            privilege: est.privilege,
            max_privilege: est.max_privilege,
        };
        let header = ResponseHeader::answering(&req);
        let mut ctx = Ctx {
            config: &self.config,
            now,
            session: Some(view),
            table: &self.sessions,
            identify: &mut self.identify,
        };
        match commands::dispatch(&mut ctx, &req) {
            Handled::Reply(cc, data) => {
                self.reply_in_session(sid, from, header, key, cc, data.as_slice(), rng);
            }
            Handled::Defer(action, followup) => {
                let id = ActionId(self.next_action);
                self.next_action += 1;
                self.actions.push_back((id, action));
                self.pending.push(Pending {
                    id,
                    session_id: sid,
                    peer: from,
                    header,
                    followup,
                    key,
                });
            }
            Handled::SetPrivilege(p) => {
                if let Some(SessionState::Established(est)) =
                    self.sessions.get_mut(sid).map(|s| &mut s.state)
                {
                    est.privilege = p;
                }
                self.reply_in_session(
                    sid,
                    from,
                    header,
                    key,
                    CompletionCode::OK,
                    &[p.level()],
                    rng,
                );
            }
            Handled::CloseSession(target) => {
                self.reply_in_session(sid, from, header, None, CompletionCode::OK, &[], rng);
                self.sessions.remove(target);
                self.push_event(Event::SessionClosed {
                    id: target,
                    reason: CloseReason::Closed,
                });
            }
            Handled::Reset => {
                self.reply_in_session(sid, from, header, None, CompletionCode::OK, &[], rng);
                let ids: Vec<u32> = self.sessions.ids().collect();
                self.sessions.clear();
                for id in ids {
                    self.push_event(Event::SessionClosed {
                        id,
                        reason: CloseReason::Reset,
                    });
                }
            }
        }
        Ok(())
    }

    /// Encodes, caches and seals a reply in session `sid`. A session that
    /// has gone meanwhile gets nothing: its keys are gone too.
    #[allow(clippy::too_many_arguments)]
    fn reply_in_session(
        &mut self,
        sid: u32,
        peer: SocketAddr,
        header: ResponseHeader,
        key: Option<RequestKey>,
        cc: CompletionCode,
        data: &[u8],
        rng: &mut dyn Entropy,
    ) {
        let (msg, n) = encode_response(header, cc, data);
        let mut buf = self.take_buf();
        let Some(SessionState::Established(est)) = self.sessions.get_mut(sid).map(|s| &mut s.state)
        else {
            self.spare.push(buf);
            return;
        };
        if let Some(k) = key {
            est.replies.insert(k, &msg[..n]);
        }
        est.seal(&msg[..n], rng, &mut buf);
        self.transmits.push_back((peer, buf));
    }
}

fn console_id(state: &SessionState) -> u32 {
    match state {
        SessionState::ExpectRakp1(s) => s.console_session_id,
        SessionState::ExpectRakp3(s) => s.console_session_id,
        SessionState::Established(e) => e.console_session_id,
    }
}

/// Encodes a wire value into a fixed buffer sized for it.
fn encode_into<T: Encode>(value: &T, buf: &mut [u8]) -> usize {
    let total = buf.len();
    let mut cursor: &mut [u8] = buf;
    value.encode(&mut cursor);
    total - cursor.remaining_mut()
}

fn encode_response(
    header: ResponseHeader,
    cc: CompletionCode,
    data: &[u8],
) -> ([u8; MAX_MESSAGE], usize) {
    let mut msg = [0u8; MAX_MESSAGE];
    let r = Response {
        header,
        completion: cc,
        data: &data[..data.len().min(MAX_MESSAGE - 8)],
    };
    let n = encode_into(&r, &mut msg);
    (msg, n)
}
