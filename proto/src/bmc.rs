//! The per-node engine: datagrams in, datagrams and actions out.
//!
//! [`Bmc`] is sans-IO in the style of quinn-proto. The daemon feeds it
//! datagrams ([`Bmc::handle_datagram`]), the passage of time
//! ([`Bmc::handle_timeout`]) and the results of actions
//! ([`Bmc::complete_action`]); it drains replies ([`Bmc::poll_transmit`]),
//! actions ([`Bmc::poll_action`]), the next deadline ([`Bmc::poll_timeout`])
//! and log-worthy events ([`Bmc::poll_event`]), and reads what happened in
//! [`Bmc::counters`]. Time and randomness are passed in, so a test can
//! replay an exchange byte for byte.
//!
//! This module does framing and routing only: the handshake lives in
//! [`crate::session::handshake`], the session table (which keeps,
//! establishes or removes a half-open session as each handshake step says)
//! in [`crate::session::table`], commands in the command table. Framing
//! rules it applies (IPMI v2.0 chapter 13, and what ipmitool, FreeIPMI and
//! pyghmi check):
//! - RMCP presence pings get pongs; RMCP ACKs and other classes are dropped.
//! - Pongs and replies outside a session are budgeted per source
//!   ([`crate::session::sessionless`]), so the BMC cannot reflect a flood.
//! - IPMI 1.5 framing is served only outside a session (Get Channel
//!   Authentication Capabilities), and answered in the same framing.
//! - Session setup replies and pre-session replies carry session ID 0,
//!   sequence 0 and no flag bits.
//! - Replies go back to the address the request came from; a session's
//!   address and deadline change only on packets its keys authenticate.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use zeroize::Zeroizing;

use crate::action::{Action, ActionId, Outcome};
use crate::codec::{Decode, Encode, decode_prefix};
use crate::commands::{self, Ctx, Followup, Handled, Identify, SessionView};
use crate::config::BmcConfig;
use crate::counters::{Counters, SessionEvent, SetupMessage};
use crate::error::DropReason;
use crate::fru_area::Inventory;
use crate::platform::{LanInfo, Platform};
use crate::session::handshake::{
    HalfOpen, HandshakeCtx, NextState, Proposal, refuse_open_session, refuse_rakp1, refuse_rakp3,
};
use crate::session::reply_cache::RequestKey;
use crate::session::sessionless::SessionlessBudget;
use crate::session::table::{Absent, Next, SessionTable, Stepped};
use crate::sol::packet::SolPacket;
use crate::sol::{ConsoleRequest, SolPayload};
use crate::user::UserName;
use crate::wire::ids::{AuthType, CompletionCode, PayloadType, Privilege, RakpStatus, RmcpClass};
use crate::wire::message::{Request, Response, ResponseHeader};
use crate::wire::open_session::OpenSessionRequest;
use crate::wire::rakp::{Rakp1, Rakp3};
use crate::wire::rmcp::{
    ASF_IANA, ASF_PRESENCE_PING, ASF_PRESENCE_PONG, AsfMessage, PongData, RmcpHeader,
};
use crate::wire::session::{PacketV15, PacketV20, put_sessionless_v15, put_sessionless_v20};

/// A source of random bytes (session IDs, Rc, AES IVs).
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// Longest in-session payload we decrypt; every request we serve is far
/// shorter.
const MAX_PAYLOAD: usize = 512;
/// Spare reply buffers kept for reuse.
const SPARE_BUFFERS: usize = 4;
/// Events kept when the daemon does not drain them (it drains them after
/// every batch of datagrams, each of which makes at most one or two).
const MAX_EVENTS: usize = 128;

/// Something an operator may want in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A handshake completed.
    SessionEstablished {
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
    /// An established session ended.
    SessionClosed {
        /// Our session ID.
        id: u32,
        /// Why.
        reason: CloseReason,
    },
    /// A session setup message was refused with an RMCP+ status.
    Refused {
        /// Console address.
        peer: SocketAddr,
        /// The message refused.
        message: SetupMessage,
        /// The status sent.
        status: RakpStatus,
        /// The user name tried, once RAKP1 has named one.
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
    /// No authenticated packet within the idle timeout.
    Expired,
    /// A new configuration removed the session's user or changed its
    /// password or privilege limit.
    UserChanged,
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
    row: Option<usize>,
}

/// The IPMI engine of one node.
#[derive(Debug)]
pub struct Bmc {
    config: Arc<BmcConfig>,
    guid: [u8; 16],
    sessions: SessionTable,
    identify: Identify,
    platform: Platform,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    actions: VecDeque<(ActionId, Action)>,
    pending: Vec<Pending>,
    events: VecDeque<Event>,
    next_action: u64,
    counters: Arc<Counters>,
    /// Where in-session response messages are encoded before sealing.
    message: Vec<u8>,
    /// Serial over LAN.
    sol: SolPayload,
    /// Budgets of the replies sent outside a session, by source.
    sessionless: SessionlessBudget,
}

impl Bmc {
    /// An engine with no sessions. `guid` is the GUID sent in RAKP2.
    pub fn new(config: Arc<BmcConfig>, guid: [u8; 16]) -> Self {
        let sessions = SessionTable::new(config.max_sessions, config.budget.clone());
        let mut bmc = Bmc {
            config,
            guid,
            sessions,
            identify: Identify::default(),
            platform: Platform::default(),
            transmits: VecDeque::new(),
            spare: Vec::new(),
            actions: VecDeque::new(),
            pending: Vec::new(),
            events: VecDeque::new(),
            next_action: 0,
            counters: Arc::new(Counters::default()),
            message: Vec::new(),
            sol: SolPayload::default(),
            sessionless: SessionlessBudget::default(),
        };
        bmc.sol.config.privilege = bmc.config.sol_privilege;
        bmc
    }

    /// Sets the UDP port this BMC listens on, which SOL Configuration
    /// Parameter 8 and Activate Payload report (ipmitool refuses SOL on a
    /// port other than the one it talks to). 623 until set.
    pub fn set_sol_port(&mut self, port: u16) {
        self.sol.config.port = port;
    }

    /// The SOL settings Set SOL Configuration Parameters can change, for
    /// the daemon to keep ([`crate::sol::config::SolConfig::saved`]).
    pub fn sol_settings(&self) -> [u8; 8] {
        self.sol.config.saved()
    }

    /// Applies SOL settings kept from an earlier run; false (nothing
    /// changed) if they do not pass the checks a Set would make.
    pub fn restore_sol_settings(&mut self, saved: &[u8]) -> bool {
        self.sol.config.restore(saved).is_ok()
    }

    /// The session that owns the active SOL instance, if any.
    pub fn sol_owner(&self) -> Option<u32> {
        self.sol.owner()
    }

    /// The next request for the machine's serial console.
    pub fn poll_console(&mut self) -> Option<ConsoleRequest> {
        self.sol.poll_request()
    }

    /// Characters the machine's serial console printed, for the active SOL
    /// console. Returns how many were taken: fewer than given when the
    /// console has not acknowledged enough yet (the rest should be offered
    /// again later, after the next datagram or timeout). Without an
    /// active SOL everything is taken and discarded.
    pub fn console_output(&mut self, now: Instant, data: &[u8], rng: &mut dyn Entropy) -> usize {
        let n = self.sol.machine_output(now, data);
        self.flush_sol(rng);
        n
    }

    /// Seals and queues the SOL packets waiting; those of sessions that
    /// have gone are dropped with them.
    fn flush_sol(&mut self, rng: &mut dyn Entropy) {
        while let Some(t) = self.sol.poll_transmit() {
            let mut buf = self.take_buf();
            let Some(session) = self.sessions.get_mut(t.session_id) else {
                self.recycle(buf);
                continue;
            };
            session.established.seal_payload(
                PayloadType::Sol,
                t.encrypted,
                &t.payload,
                rng,
                &mut buf,
            );
            let peer = session.peer;
            self.send(peer, buf);
        }
    }

    /// Sets the node's LAN addressing, which Get LAN Configuration
    /// Parameters reports.
    pub fn set_lan(&mut self, lan: LanInfo) {
        self.platform.lan = lan;
    }

    /// Sets the node's inventory, which the FRU commands report (until
    /// then they answer "node busy"). Encodes the FRU image once.
    pub fn set_inventory(&mut self, inventory: &Inventory) {
        self.platform.set_inventory(inventory);
    }

    /// Replaces the configuration for what comes next: new handshakes use
    /// the new users, key, cipher suites and timeouts; established sessions
    /// keep their keys and run on (their privilege was granted at login),
    /// so a daemon can reload users without cutting anyone off. The session
    /// table keeps its size and its share of the global budget, which were
    /// fixed when the engine was made.
    ///
    /// The sessions of a user the new configuration removed, or whose
    /// password or privilege limit it changed, end here (user IDs are
    /// expected to be kept across configurations: [`crate::Users::keeping_ids`]).
    pub fn set_config(&mut self, config: Arc<BmcConfig>) {
        let old = std::mem::replace(&mut self.config, config);
        // A new SOL privilege in the file applies; an unchanged one leaves
        // what a Set SOL Configuration Parameters chose.
        if old.sol_privilege != self.config.sol_privilege {
            self.sol.config.privilege = self.config.sol_privilege;
        }
        let ended: Vec<u32> = self
            .sessions
            .ids()
            .filter(|&id| {
                let Some(s) = self.sessions.get(id) else {
                    return false;
                };
                let uid = s.established.user_id;
                match (old.users.by_id(uid), self.config.users.by_id(uid)) {
                    (Some(before), Some(now)) => !before.same_as(now),
                    _ => true,
                }
            })
            .collect();
        for id in ended {
            if self.sessions.remove(id).is_some() {
                self.counters.session(SessionEvent::Closed);
                self.push_event(Event::SessionClosed {
                    id,
                    reason: CloseReason::UserChanged,
                });
            }
        }
    }

    /// Number of sessions, half-open ones included.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Number of established sessions.
    pub fn established_count(&self) -> usize {
        self.sessions.established()
    }

    /// Number of half-open sessions.
    pub fn half_open_count(&self) -> usize {
        self.sessions.half_open()
    }

    /// What this engine has done, counted. The `Arc` may be cloned and read
    /// from another task while the engine runs.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Handles one datagram from `from`. `Err` says why it was dropped
    /// without an answer; every drop is also counted.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(), DropReason> {
        let result = self.route(now, from, data, rng);
        if let Err(reason) = &result {
            self.counters.dropped(reason);
        }
        result
    }

    fn route(
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
            RmcpClass::Asf => self.handle_asf(now, from, rest),
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

    /// Does what is due at `now`: removes sessions whose time is up, then
    /// sends the SOL packets that are due (retransmissions, and characters
    /// that have gathered long enough), which `rng` seals.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut dyn Entropy) {
        self.expire_sessions(now);
        self.sol.on_timeout(now);
        self.flush_sol(rng);
    }

    /// Removes sessions whose time is up.
    fn expire_sessions(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let half_open = self.sessions.expire(now, |id| expired.push(id));
        self.counters
            .session_n(SessionEvent::Expired, (half_open + expired.len()) as u64);
        for id in expired {
            self.push_event(Event::SessionClosed {
                id,
                reason: CloseReason::Expired,
            });
        }
    }

    /// When [`Bmc::handle_timeout`] next has work: the earliest session
    /// deadline or SOL retransmission or send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.sessions.next_deadline(), self.sol.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the next reply into `buf` (replacing its contents) and returns
    /// its destination.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let (to, mut bytes) = self.transmits.pop_front()?;
        std::mem::swap(buf, &mut bytes);
        self.recycle(bytes);
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
        self.counters.request(p.row, cc);
        self.reply_in_session(
            p.session_id,
            p.peer,
            p.header,
            p.key.map(|k| (k, now)),
            cc,
            data.as_slice(),
            rng,
        );
    }

    /// Why a packet naming `sid` has no established session to go to.
    fn not_established(&self, sid: u32) -> DropReason {
        if self.sessions.contains(sid) {
            DropReason::NotEstablished(sid)
        } else {
            DropReason::UnknownSession(sid)
        }
    }

    /// Ends session `sid`, found past its deadline before the timer did.
    fn expire(&mut self, sid: u32) -> DropReason {
        self.sessions.remove(sid);
        self.counters.session(SessionEvent::Expired);
        self.push_event(Event::SessionClosed {
            id: sid,
            reason: CloseReason::Expired,
        });
        DropReason::Expired(sid)
    }

    fn push_event(&mut self, e: Event) {
        // Every end of a session passes here: its SOL ends with it.
        if let Event::SessionClosed { id, .. } = e {
            self.sol.session_ended(id);
        }
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// Counts a refused setup message and tells the daemon.
    fn refused(
        &mut self,
        peer: SocketAddr,
        message: SetupMessage,
        status: RakpStatus,
        user: Option<UserName>,
    ) {
        self.counters.refusal(message, status);
        self.push_event(Event::Refused {
            peer,
            message,
            status,
            user,
        });
    }

    fn take_buf(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buf);
        }
    }

    /// Queues `buf` for `to` if a reply was written into it.
    fn send(&mut self, to: SocketAddr, buf: Vec<u8>) {
        if buf.is_empty() {
            self.recycle(buf);
        } else {
            self.transmits.push_back((to, buf));
        }
    }

    // ----- ASF -------------------------------------------------------------

    fn handle_asf(
        &mut self,
        now: Instant,
        from: SocketAddr,
        rest: &[u8],
    ) -> Result<(), DropReason> {
        let msg = AsfMessage::decode(rest)?;
        if msg.iana != ASF_IANA || msg.message_type != ASF_PRESENCE_PING {
            return Err(DropReason::NotPing(msg.message_type));
        }
        self.sessionless_allowed(now, from)?;
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
        self.send(from, buf);
        Ok(())
    }

    // ----- Outside a session (IPMI 1.5 framing and RMCP+ session 0) --------

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
        self.sessionless_allowed(now, from)?;
        let (header, cc, data) = self.sessionless_request(now, &req)?;
        let mut buf = self.take_buf();
        let response = Response {
            header,
            completion: cc,
            data: data.as_slice(),
        };
        put_sessionless_v15(&mut buf, &response);
        self.send(from, buf);
        Ok(())
    }

    /// Whether `from` may have one more reply outside a session (presence
    /// pong or pre-session request): those replies are larger than their
    /// requests, so each source has a budget.
    fn sessionless_allowed(&mut self, now: Instant, from: SocketAddr) -> Result<(), DropReason> {
        if self.sessionless.allow(now, from) {
            Ok(())
        } else {
            Err(DropReason::RateLimited)
        }
    }

    /// Runs a request that arrived outside a session.
    fn sessionless_request(
        &mut self,
        now: Instant,
        req: &Request<'_>,
    ) -> Result<(ResponseHeader, CompletionCode, commands::ReplyData), DropReason> {
        if !req.netfn.is_request() {
            return Err(DropReason::NotARequest);
        }
        let mut ctx = Ctx {
            config: &self.config,
            now,
            session: None,
            table: &self.sessions,
            identify: &mut self.identify,
            platform: &mut self.platform,
            sol: &mut self.sol,
        };
        let (row, handled) = commands::dispatch(&mut ctx, req);
        let (cc, data) = match handled {
            Handled::Reply(cc, data) => (cc, data),
            // Only session-less commands run here and they all answer at
            // once; anything else would be a command table mistake.
            _ => (CompletionCode::UNSPECIFIED, commands::ReplyData::empty()),
        };
        self.counters.request(row, cc);
        Ok((ResponseHeader::answering(req), cc, data))
    }

    // ----- RMCP+ -------------------------------------------------------------

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
                self.sessionless_allowed(now, from)?;
                let (header, cc, data) = self.sessionless_request(now, &req)?;
                let mut buf = self.take_buf();
                let response = Response {
                    header,
                    completion: cc,
                    data: data.as_slice(),
                };
                put_sessionless_v20(&mut buf, PayloadType::Ipmi, &response);
                self.send(from, buf);
                Ok(())
            }
            PayloadType::Ipmi => self.in_session(now, from, rest, &packet, rng),
            PayloadType::Sol if h.session_id != 0 => {
                self.sol_in_session(now, from, rest, &packet, rng)
            }
            other => Err(DropReason::UnsupportedPayload(other.into())),
        }
    }

    // ----- Session setup: routing to the handshake states ----------------

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
                // Answer "illegal parameter" if there is enough to address
                // the answer to, so the console fails fast.
                let Some((tag, sidm)) = OpenSessionRequest::peek_tag_and_console_id(payload) else {
                    return Err(e.into());
                };
                let mut out = self.take_buf();
                let status = RakpStatus::IllegalParameter;
                refuse_open_session(tag, sidm, status, &mut out);
                self.refused(from, SetupMessage::OpenSession, status, None);
                self.send(from, out);
                return Ok(());
            }
        };
        let mut out = self.take_buf();
        let proposal = match Proposal::negotiate(&req, &self.config.cipher_suites) {
            Ok(p) => p,
            Err(status) => {
                refuse_open_session(req.tag, req.console_session_id, status, &mut out);
                self.refused(from, SetupMessage::OpenSession, status, None);
                self.send(from, out);
                return Ok(());
            }
        };
        // Sessions past their deadline must not hold room a new one needs.
        self.expire_sessions(now);
        let deadline = self.config.timeouts.setup_deadline(now);
        let opened = self.sessions.open(rng, deadline, from, |id| {
            HalfOpen::ExpectRakp1(proposal.accept(id, from, &mut out))
        });
        match opened {
            Ok(o) => {
                self.counters.session(SessionEvent::Opened);
                if o.evicted.is_some() {
                    self.counters.session(SessionEvent::Evicted);
                }
            }
            Err(_) => {
                let status = RakpStatus::InsufficientResources;
                proposal.refuse(status, &mut out);
                self.refused(from, SetupMessage::OpenSession, status, None);
            }
        }
        self.send(from, out);
        Ok(())
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
            Err(e) => return self.malformed_rakp1(from, payload, e.into()),
        };
        let sid = msg.bmc_session_id;
        if self.sessions.get(sid).is_some() {
            return Err(DropReason::RakpForEstablished(sid));
        }
        let mut out = self.take_buf();
        let ctx = HandshakeCtx {
            users: &self.config.users,
            kg: self.config.kg.as_deref().map(|k| k.as_slice()),
            bmc_guid: &self.guid,
            bmc_session_id: sid,
            from,
        };
        let refreshed = self.config.timeouts.setup_deadline(now);
        let stepped = self.sessions.step(sid, now, |state| {
            let mut rc = [0u8; 16];
            rng.fill(&mut rc);
            let t = state.on_rakp1(&msg, &ctx, rc, &mut out);
            let next = match t.next {
                NextState::HalfOpen(s) => Next::Keep(s, t.refused.is_none().then_some(refreshed)),
                NextState::Failed | NextState::Established(_) => Next::Remove,
            };
            (next, (t.refused, t.user, t.ignored))
        });
        let (refused, user, ignored) = match stepped {
            Ok((stepped, t)) => {
                if stepped != Stepped::Kept {
                    self.counters.session(SessionEvent::Failed);
                }
                t
            }
            Err(absent) => {
                let status = self.absent(absent);
                refuse_rakp1(msg.tag, 0, status, &mut out);
                self.refused(from, SetupMessage::Rakp1, status, None);
                self.send(from, out);
                return Ok(());
            }
        };
        if let Some(status) = refused {
            self.refused(from, SetupMessage::Rakp1, status, user);
        }
        self.send(from, out);
        ignored.map_or(Ok(()), Err)
    }

    /// Counts a half-open session found past its deadline, and gives the
    /// status for a RAKP message naming a session we do not hold: one
    /// evicted to make room is "insufficient resources", so its console
    /// reports "BMC busy" and retries rather than timing out.
    fn absent(&self, absent: Absent) -> RakpStatus {
        match absent {
            Absent::Evicted => RakpStatus::InsufficientResources,
            Absent::Expired => {
                self.counters.session(SessionEvent::Expired);
                RakpStatus::InvalidSessionId
            }
            Absent::Unknown => RakpStatus::InvalidSessionId,
        }
    }

    /// A RAKP1 that does not decode: a half-open session it names gets
    /// "illegal parameter" so its console fails fast, and stays as it was.
    fn malformed_rakp1(
        &mut self,
        from: SocketAddr,
        payload: &[u8],
        error: DropReason,
    ) -> Result<(), DropReason> {
        let (Some(tag), Some(sid)) = (payload.first(), payload.get(4..8)) else {
            return Err(error);
        };
        let sid = u32::from_le_bytes([sid[0], sid[1], sid[2], sid[3]]);
        let mut out = self.take_buf();
        let status = self
            .sessions
            .half_open_entry(sid)
            .map(|e| e.state.on_malformed_rakp1(*tag, &mut out));
        let Some(status) = status else {
            self.recycle(out);
            return Err(error);
        };
        self.refused(from, SetupMessage::Rakp1, status, None);
        self.send(from, out);
        Ok(())
    }

    fn rakp3(&mut self, now: Instant, from: SocketAddr, payload: &[u8]) -> Result<(), DropReason> {
        let msg = Rakp3::decode(payload)?;
        let sid = msg.bmc_session_id;
        let mut out = self.take_buf();
        if let Some(s) = self.sessions.get(sid) {
            // Our RAKP4 may have been lost: the exact RAKP3 that
            // established the session, from where it came, gets the same
            // RAKP4 again. Nothing else about the session changes.
            if s.peer == from && s.established.on_rakp3(&msg, &mut out) {
                self.send(from, out);
                return Ok(());
            }
            self.recycle(out);
            return Err(DropReason::RakpForEstablished(sid));
        }
        let room = self.sessions.can_establish();
        let ctx = HandshakeCtx {
            users: &self.config.users,
            kg: self.config.kg.as_deref().map(|k| k.as_slice()),
            bmc_guid: &self.guid,
            bmc_session_id: sid,
            from,
        };
        let idle = self.config.timeouts.idle_deadline(now);
        let stepped = self.sessions.step(sid, now, |state| {
            let t = state.on_rakp3(&msg, &ctx, room, &mut out);
            let next = match t.next {
                NextState::HalfOpen(s) => Next::Keep(s, None),
                NextState::Failed => Next::Remove,
                NextState::Established(e) => Next::Establish(e, from, idle),
            };
            (next, (t.refused, t.user, t.ignored))
        });
        let (stepped, (refused, user, ignored)) = match stepped {
            Ok(s) => s,
            Err(absent) => {
                let status = self.absent(absent);
                if msg.status != RakpStatus::Ok {
                    // A console giving up on a session we do not hold.
                    self.recycle(out);
                    return Err(DropReason::UnknownSession(sid));
                }
                refuse_rakp3(msg.tag, 0, status, &mut out);
                self.refused(from, SetupMessage::Rakp3, status, None);
                self.send(from, out);
                return Ok(());
            }
        };
        match stepped {
            Stepped::Kept => {}
            Stepped::Established(_) => {
                self.counters.session(SessionEvent::Established);
                if let Some(s) = self.sessions.get(sid) {
                    let e = &s.established;
                    let event = Event::SessionEstablished {
                        id: sid,
                        peer: from,
                        user: user.unwrap_or(UserName::new(&[])),
                        suite: e.suite.id,
                        max_privilege: e.max_privilege,
                    };
                    self.push_event(event);
                }
            }
            Stepped::NoRoom => {
                // Room was checked above, so this is not expected; if it
                // happens, refuse rather than claim success.
                out.clear();
                let status = RakpStatus::InsufficientResources;
                refuse_rakp3(msg.tag, 0, status, &mut out);
                self.counters.session(SessionEvent::Failed);
                self.refused(from, SetupMessage::Rakp3, status, user);
            }
            Stepped::Removed => self.counters.session(SessionEvent::Failed),
        }
        if let Some(status) = refused {
            self.refused(from, SetupMessage::Rakp3, status, user);
        }
        self.send(from, out);
        ignored.map_or(Ok(()), Err)
    }

    // ----- In a session ------------------------------------------------------

    fn in_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        session_bytes: &[u8],
        packet: &PacketV20<'_>,
        rng: &mut dyn Entropy,
    ) -> Result<(), DropReason> {
        let sid = packet.header.session_id;
        // Plaintext requests may one day carry secrets (Set User Password):
        // the buffer is wiped when it goes.
        let mut scratch = Zeroizing::new([0u8; MAX_PAYLOAD]);
        let (message, _) =
            self.open_in_session(now, from, session_bytes, packet, &mut scratch[..])?;
        let req = Request::decode(message)?;
        if !req.netfn.is_request() {
            return Err(DropReason::NotARequest);
        }
        let Some(session) = self.sessions.get_mut(sid) else {
            return Err(DropReason::UnknownSession(sid));
        };
        let key = RequestKey::of(&req, session.established.privilege);
        if let Some(k) = &key {
            if let Some(cached) = session.established.replies.get(k, now) {
                self.message.clear();
                self.message.extend_from_slice(cached);
                let mut buf = self.spare.pop().unwrap_or_default();
                buf.clear();
                session.established.seal(&self.message, rng, &mut buf);
                self.send(from, buf);
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
        let e = &session.established;
        let view = SessionView {
            id: sid,
            privilege: e.privilege,
            max_privilege: e.max_privilege,
            user_id: e.user_id,
            protection: e.protection(),
        };
        let header = ResponseHeader::answering(&req);
        let mut ctx = Ctx {
            config: &self.config,
            now,
            session: Some(view),
            table: &self.sessions,
            identify: &mut self.identify,
            platform: &mut self.platform,
            sol: &mut self.sol,
        };
        let (row, handled) = commands::dispatch(&mut ctx, &req);
        match handled {
            Handled::Reply(cc, data) => {
                self.counters.request(row, cc);
                let cache = key.map(|k| (k, now));
                self.reply_in_session(sid, from, header, cache, cc, data.as_slice(), rng);
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
                    row,
                });
            }
            Handled::SetPrivilege(p) => {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.established.privilege = p;
                }
                self.counters.request(row, CompletionCode::OK);
                self.reply_in_session(
                    sid,
                    from,
                    header,
                    key.map(|k| (k, now)),
                    CompletionCode::OK,
                    &[p.level()],
                    rng,
                );
            }
            Handled::CloseSession(target) => {
                self.counters.request(row, CompletionCode::OK);
                self.reply_in_session(sid, from, header, None, CompletionCode::OK, &[], rng);
                if self.sessions.remove(target).is_some() {
                    self.counters.session(SessionEvent::Closed);
                    self.push_event(Event::SessionClosed {
                        id: target,
                        reason: CloseReason::Closed,
                    });
                }
            }
            Handled::Reset => {
                self.counters.request(row, CompletionCode::OK);
                self.reply_in_session(sid, from, header, None, CompletionCode::OK, &[], rng);
                let mut ids = Vec::new();
                let half_open = self.sessions.clear(|id| ids.push(id));
                self.counters
                    .session_n(SessionEvent::Reset, (half_open + ids.len()) as u64);
                for id in ids {
                    self.push_event(Event::SessionClosed {
                        id,
                        reason: CloseReason::Reset,
                    });
                }
            }
        }
        // A deactivation by another session tells the session that lost
        // its SOL.
        self.flush_sol(rng);
        Ok(())
    }

    /// A SOL packet in session `sid` (IPMI v2.0 section 15.9): checked and
    /// opened like any in-session packet, then run through the SOL stream.
    fn sol_in_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        session_bytes: &[u8],
        packet: &PacketV20<'_>,
        rng: &mut dyn Entropy,
    ) -> Result<(), DropReason> {
        let sid = packet.header.session_id;
        let mut scratch = Zeroizing::new([0u8; MAX_PAYLOAD]);
        let (message, encrypted) =
            self.open_in_session(now, from, session_bytes, packet, &mut scratch[..])?;
        let sol = SolPacket::decode(message)?;
        self.sol.on_packet(now, sid, encrypted, &sol);
        self.flush_sol(rng);
        Ok(())
    }

    /// The one path into an established session, for IPMI and SOL
    /// payloads alike: finds the session the packet names, ends it if it is
    /// past its deadline (the timer may not have run yet), and opens the
    /// packet with its keys into `scratch`. IPMI messages are encrypted as
    /// the suite says; SOL as the session's activation asked (as the suite
    /// says when it owns no SOL). Only a packet the keys authenticate moves
    /// the session's deadline and address. Returns the payload and whether
    /// it was encrypted.
    fn open_in_session<'s>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        session_bytes: &[u8],
        packet: &PacketV20<'_>,
        scratch: &'s mut [u8],
    ) -> Result<(&'s [u8], bool), DropReason> {
        let sid = packet.header.session_id;
        let sol = match packet.header.payload_type {
            PayloadType::Sol => self.sol.protection_of(sid).map(|p| p.encrypted),
            _ => None,
        };
        let Some(session) = self.sessions.get_mut(sid) else {
            return Err(self.not_established(sid));
        };
        if session.deadline <= now {
            return Err(self.expire(sid));
        }
        let encrypted = sol.unwrap_or(session.established.protection().encrypted);
        let message = session
            .established
            .open_as(session_bytes, packet, scratch, encrypted)?;
        session.deadline = self.config.timeouts.idle_deadline(now);
        session.peer = from;
        Ok((message, encrypted))
    }

    /// Encodes, caches (under `cache`'s key, as sent at its time) and
    /// seals a reply in session `sid`. A session that has gone meanwhile
    /// gets nothing: its keys are gone too.
    #[allow(clippy::too_many_arguments)]
    fn reply_in_session(
        &mut self,
        sid: u32,
        peer: SocketAddr,
        header: ResponseHeader,
        cache: Option<(RequestKey, Instant)>,
        cc: CompletionCode,
        data: &[u8],
        rng: &mut dyn Entropy,
    ) {
        self.message.clear();
        Response {
            header,
            completion: cc,
            data,
        }
        .encode(&mut self.message);
        let mut buf = self.take_buf();
        let Some(session) = self.sessions.get_mut(sid) else {
            self.recycle(buf);
            return;
        };
        if let Some((k, now)) = cache {
            session.established.replies.insert(k, &self.message, now);
        }
        session.established.seal(&self.message, rng, &mut buf);
        self.send(peer, buf);
    }
}
