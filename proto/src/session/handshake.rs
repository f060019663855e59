//! The RMCP+ session handshake as typed states (IPMI v2.0 sections 13.17
//! to 13.23): an accepted Open Session Request ([`Proposal`]) becomes
//! [`ExpectRakp1`]; an accepted RAKP1 turns it into [`ExpectRakp3`]; an
//! accepted RAKP3 yields an [`Established`] session.
//!
//! Each transition takes its state by value and returns what the session
//! becomes ([`Transition`]), having written its reply (Open Session
//! Response, RAKP2 or RAKP4) straight into the caller's buffer, rustls
//! style: secrets move forward and no state can be reused. The engine only
//! routes a message to the session its ID names.
//!
//! User lookup follows the RAKP1 role byte: with the name-only bit set (what
//! every client sends by default) the user is found by name and the
//! requested privilege becomes the session's limit, which must not exceed
//! the user's own; without it the requested privilege must equal the user's
//! own, as OpenBMC and the spec's "username/privilege lookup" require.
//!
//! A role above the user's limit is refused in RAKP2 with "invalid role"
//! (09h) rather than granted at a lower level: FreeIPMI then says "privilege
//! level cannot be obtained for this user" and pyghmi retries at Operator,
//! where a lowered limit would make ipmipower's later Set Session Privilege
//! fail silently.
//!
//! Session IDs travel in clear, so anyone who sees one packet can send RAKP
//! messages naming a session. A half-open session therefore changes only
//! for messages from the address that opened it: a RAKP1 or RAKP3 from
//! elsewhere is answered with an error and leaves it as it was, and only
//! the opener may abandon it with an error status in RAKP3.

use std::net::SocketAddr;

use crate::cipher_suite::{CipherSuite, CipherSuites};
use crate::crypto::keys::{self, HandshakeParams, SessionKeys};
use crate::crypto::{AuthHash, MacOutput, constant_time_eq};
use crate::error::DropReason;
use crate::session::established::Established;
use crate::user::{UserName, Users};
use crate::wire::ids::{PayloadType, Privilege, RakpStatus};
use crate::wire::open_session::{OpenSessionAccepted, OpenSessionRequest, OpenSessionResponse};
use crate::wire::rakp::{MAX_USER_NAME, Rakp1, Rakp2, Rakp2Body, Rakp3, Rakp4};
use crate::wire::session::put_sessionless_v20;

/// What every RAKP step needs besides its own state.
#[derive(Clone, Copy, Debug)]
pub struct HandshakeCtx<'a> {
    /// Who may log in.
    pub users: &'a Users,
    /// The BMC key, if one is set.
    pub kg: Option<&'a [u8]>,
    /// Our GUID (GUIDc).
    pub bmc_guid: &'a [u8; 16],
    /// Our ID of the session (SIDc).
    pub bmc_session_id: u32,
    /// Where the message came from.
    pub from: SocketAddr,
}

/// An Open Session Request we can serve, before a session ID is given.
#[derive(Clone, Copy, Debug)]
pub struct Proposal {
    tag: u8,
    console_session_id: u32,
    suite: &'static CipherSuite,
    max_privilege: Privilege,
}

impl Proposal {
    /// Checks the requested privilege and algorithms against what we
    /// offer; the error is the status to refuse with.
    pub fn negotiate(req: &OpenSessionRequest, suites: &CipherSuites) -> Result<Self, RakpStatus> {
        let max_privilege = match req.max_privilege {
            // "Highest level matching the proposed algorithms": every
            // suite we accept allows Administrator.
            0 => Privilege::Administrator,
            n => Privilege::from_level(n).ok_or(RakpStatus::InvalidRole)?,
        };
        let suite = suites
            .find(req.auth, req.integrity, req.confidentiality)
            .ok_or(RakpStatus::NoCipherSuiteMatch)?;
        Ok(Proposal {
            tag: req.tag,
            console_session_id: req.console_session_id,
            suite,
            max_privilege,
        })
    }

    /// Accepts under our session ID `bmc_session_id`: writes the Open
    /// Session Response and returns the half-open session.
    pub fn accept(self, bmc_session_id: u32, opener: SocketAddr, out: &mut Vec<u8>) -> ExpectRakp1 {
        let response = OpenSessionResponse {
            tag: self.tag,
            status: RakpStatus::Ok,
            console_session_id: self.console_session_id,
            accepted: Some(OpenSessionAccepted {
                max_privilege: self.max_privilege.level(),
                bmc_session_id,
                auth: self.suite.auth,
                integrity: self.suite.integrity,
                confidentiality: self.suite.confidentiality,
            }),
        };
        put_sessionless_v20(out, PayloadType::OpenSessionResponse, &response);
        ExpectRakp1 {
            opener,
            console_session_id: self.console_session_id,
            suite: self.suite,
            max_privilege: self.max_privilege,
        }
    }

    /// Refuses with `status` (no room for the session).
    pub fn refuse(&self, status: RakpStatus, out: &mut Vec<u8>) {
        refuse_open_session(self.tag, self.console_session_id, status, out);
    }
}

/// Writes an Open Session Response refusing with `status`.
pub fn refuse_open_session(
    tag: u8,
    console_session_id: u32,
    status: RakpStatus,
    out: &mut Vec<u8>,
) {
    let response = OpenSessionResponse {
        tag,
        status,
        console_session_id,
        accepted: None,
    };
    put_sessionless_v20(out, PayloadType::OpenSessionResponse, &response);
}

/// Writes a RAKP2 refusing with `status`; `console_session_id` is 0 when
/// the RAKP1 names no session we hold.
pub fn refuse_rakp1(tag: u8, console_session_id: u32, status: RakpStatus, out: &mut Vec<u8>) {
    let rakp2 = Rakp2 {
        tag,
        status,
        console_session_id,
        body: None,
    };
    put_sessionless_v20(out, PayloadType::Rakp2, &rakp2);
}

/// Writes a RAKP4 refusing with `status`.
pub fn refuse_rakp3(tag: u8, console_session_id: u32, status: RakpStatus, out: &mut Vec<u8>) {
    let rakp4 = Rakp4 {
        tag,
        status,
        console_session_id,
        integrity_check: &[],
    };
    put_sessionless_v20(out, PayloadType::Rakp4, &rakp4);
}

/// Waiting for RAKP1, after an accepted Open Session Request.
#[derive(Debug)]
pub struct ExpectRakp1 {
    /// The address the Open Session Request came from.
    pub opener: SocketAddr,
    /// The console's session ID (SIDm).
    pub console_session_id: u32,
    /// The negotiated suite.
    pub suite: &'static CipherSuite,
    /// The maximum privilege granted in the Open Session Response.
    pub max_privilege: Privilege,
}

/// Waiting for RAKP3, after RAKP2 was sent.
#[derive(Debug)]
pub struct ExpectRakp3 {
    /// The address the Open Session Request came from.
    pub opener: SocketAddr,
    /// The console's session ID (SIDm).
    pub console_session_id: u32,
    /// The negotiated suite.
    pub suite: &'static CipherSuite,
    /// The session's privilege limit: what RAKP1 requested.
    pub max_privilege: Privilege,
    /// What the Open Session Response granted, to restart from if the
    /// console sends a different RAKP1.
    pub granted_privilege: Privilege,
    /// ID of the user that logged in.
    pub user_id: u8,
    /// Rm from RAKP1.
    pub console_random: [u8; 16],
    /// Rc we sent in RAKP2.
    pub bmc_random: [u8; 16],
    /// The RAKP1 role byte.
    pub role: u8,
    name: [u8; MAX_USER_NAME],
    name_len: u8,
    /// RAKP2's code as we computed it, to resend on a repeated RAKP1.
    pub rakp2_code: MacOutput,
}

/// A session whose handshake is under way.
#[derive(Debug)]
pub enum HalfOpen {
    /// Open Session accepted, waiting for RAKP1.
    ExpectRakp1(ExpectRakp1),
    /// RAKP2 sent, waiting for RAKP3.
    ExpectRakp3(ExpectRakp3),
}

/// What a half-open session becomes after a message.
#[derive(Debug)]
pub enum NextState {
    /// Still half-open, in this state.
    HalfOpen(HalfOpen),
    /// The handshake completed. Boxed: an established session holds
    /// expanded keys and a reply cache.
    Established(Box<Established>),
    /// The handshake failed or the console abandoned it: the session goes.
    Failed,
}

/// The result of a transition. A reply, if any, has been written to the
/// caller's buffer.
#[derive(Debug)]
#[must_use]
pub struct Transition {
    /// What the session is now.
    pub next: NextState,
    /// The error status of the reply, if it refused the message.
    pub refused: Option<RakpStatus>,
    /// The user name the console gave, once known.
    pub user: Option<UserName>,
    /// Why the message was dropped without a reply (the state is
    /// unchanged).
    pub ignored: Option<DropReason>,
}

impl Transition {
    fn to(next: NextState) -> Self {
        Transition {
            next,
            refused: None,
            user: None,
            ignored: None,
        }
    }

    fn refusing(next: NextState, status: RakpStatus) -> Self {
        Transition {
            refused: Some(status),
            ..Self::to(next)
        }
    }

    fn with_user(mut self, user: Option<UserName>) -> Self {
        self.user = user;
        self
    }
}

impl HalfOpen {
    /// The console's session ID (SIDm).
    pub fn console_session_id(&self) -> u32 {
        match self {
            Self::ExpectRakp1(s) => s.console_session_id,
            Self::ExpectRakp3(s) => s.console_session_id,
        }
    }

    /// The address that opened the session.
    pub fn opener(&self) -> SocketAddr {
        match self {
            Self::ExpectRakp1(s) => s.opener,
            Self::ExpectRakp3(s) => s.opener,
        }
    }

    /// Whether RAKP2 has been sent.
    pub fn expects_rakp3(&self) -> bool {
        matches!(self, Self::ExpectRakp3(_))
    }

    /// Handles RAKP1. `bmc_random` is Rc, used if a new RAKP2 is made.
    pub fn on_rakp1(
        self,
        msg: &Rakp1<'_>,
        ctx: &HandshakeCtx<'_>,
        bmc_random: [u8; 16],
        out: &mut Vec<u8>,
    ) -> Transition {
        let sidm = self.console_session_id();
        if ctx.from != self.opener() {
            refuse_rakp1(msg.tag, sidm, RakpStatus::InvalidSessionId, out);
            return Transition::refusing(NextState::HalfOpen(self), RakpStatus::InvalidSessionId);
        }
        let start = match self {
            HalfOpen::ExpectRakp1(s) => s,
            HalfOpen::ExpectRakp3(s) if s.same_rakp1(msg) => {
                // Our RAKP2 was lost: send the same one again.
                s.write_rakp2(msg.tag, ctx.bmc_guid, out);
                return Transition::to(NextState::HalfOpen(HalfOpen::ExpectRakp3(s)));
            }
            // A different RAKP1 from the opener restarts the handshake.
            HalfOpen::ExpectRakp3(s) => s.restart(),
        };
        let user = Some(UserName::new(msg.user_name));
        match start.on_rakp1(msg, ctx, bmc_random) {
            Ok(next) => {
                next.write_rakp2(msg.tag, ctx.bmc_guid, out);
                Transition::to(NextState::HalfOpen(HalfOpen::ExpectRakp3(next))).with_user(user)
            }
            Err(status) => {
                refuse_rakp1(msg.tag, sidm, status, out);
                Transition::refusing(NextState::Failed, status).with_user(user)
            }
        }
    }

    /// Answers a RAKP1 too malformed to decode, so the console fails fast;
    /// the session stays as it was.
    pub fn on_malformed_rakp1(&self, tag: u8, out: &mut Vec<u8>) -> RakpStatus {
        let status = RakpStatus::IllegalParameter;
        refuse_rakp1(tag, self.console_session_id(), status, out);
        status
    }

    /// Handles RAKP3. `room` says whether the table can take one more
    /// established session; without it a correct RAKP3 is refused with
    /// "insufficient resources".
    pub fn on_rakp3(
        self,
        msg: &Rakp3<'_>,
        ctx: &HandshakeCtx<'_>,
        room: bool,
        out: &mut Vec<u8>,
    ) -> Transition {
        let from_opener = ctx.from == self.opener();
        if msg.status != RakpStatus::Ok {
            // The console reports that it gives up (it could not verify
            // RAKP2, say). Only the console that opened the session may
            // say so.
            let reason = if from_opener {
                DropReason::ConsoleAbort(msg.status.into())
            } else {
                DropReason::NotOpener(ctx.bmc_session_id)
            };
            let next = if from_opener {
                NextState::Failed
            } else {
                NextState::HalfOpen(self)
            };
            return Transition {
                ignored: Some(reason),
                ..Transition::to(next)
            };
        }
        let expect = match self {
            HalfOpen::ExpectRakp3(s) => s,
            HalfOpen::ExpectRakp1(s) => {
                let status = RakpStatus::InvalidSessionId;
                refuse_rakp3(msg.tag, s.console_session_id, status, out);
                return Transition::refusing(NextState::HalfOpen(HalfOpen::ExpectRakp1(s)), status);
            }
        };
        let user = Some(UserName::new(expect.user_name()));
        let sidm = expect.console_session_id;
        match expect.on_rakp3(msg, ctx, room) {
            Rakp3Check::Verified(established, icv) => {
                let rakp4 = Rakp4 {
                    tag: msg.tag,
                    status: RakpStatus::Ok,
                    console_session_id: sidm,
                    integrity_check: icv.as_slice(),
                };
                put_sessionless_v20(out, PayloadType::Rakp4, &rakp4);
                Transition::to(NextState::Established(established)).with_user(user)
            }
            Rakp3Check::Refused(expect, status) => {
                refuse_rakp3(msg.tag, sidm, status, out);
                // A wrong code from elsewhere proves nothing about the
                // console's password: keep waiting for the real RAKP3.
                let next = if from_opener {
                    NextState::Failed
                } else {
                    NextState::HalfOpen(HalfOpen::ExpectRakp3(expect))
                };
                Transition::refusing(next, status).with_user(user)
            }
        }
    }
}

impl ExpectRakp1 {
    /// The authentication hash of the negotiated suite.
    fn hash(&self) -> AuthHash {
        auth_hash(self.suite)
    }

    /// Checks RAKP1 and computes RAKP2's authentication code.
    fn on_rakp1(
        self,
        msg: &Rakp1<'_>,
        ctx: &HandshakeCtx<'_>,
        bmc_random: [u8; 16],
    ) -> Result<ExpectRakp3, RakpStatus> {
        if msg.user_name.len() > MAX_USER_NAME {
            return Err(RakpStatus::InvalidNameLength);
        }
        let Some(requested) = Privilege::from_level(msg.role & 0x0f) else {
            return Err(RakpStatus::InvalidRole);
        };
        if msg.role & !(0x0f | Rakp1::NAME_ONLY_LOOKUP) != 0 {
            return Err(RakpStatus::InvalidRole);
        }
        if msg.user_name.is_empty() {
            // Null user names (anonymous login) are never allowed.
            return Err(RakpStatus::UnauthorizedName);
        }
        let Some(user) = ctx.users.find(msg.user_name) else {
            return Err(RakpStatus::UnauthorizedName);
        };
        if msg.role & Rakp1::NAME_ONLY_LOOKUP == 0 && requested != user.privilege() {
            return Err(RakpStatus::UnauthorizedName);
        }
        if requested > user.privilege() {
            return Err(RakpStatus::InvalidRole);
        }
        if requested > self.max_privilege {
            return Err(RakpStatus::UnauthorizedRole);
        }
        let mut name = [0u8; MAX_USER_NAME];
        name[..msg.user_name.len()].copy_from_slice(msg.user_name);
        let mut next = ExpectRakp3 {
            opener: self.opener,
            console_session_id: self.console_session_id,
            suite: self.suite,
            max_privilege: requested,
            granted_privilege: self.max_privilege,
            user_id: user.id(),
            console_random: msg.console_random,
            bmc_random,
            role: msg.role,
            name,
            name_len: msg.user_name.len() as u8,
            rakp2_code: MacOutput::from_slice(&[]),
        };
        next.rakp2_code = keys::rakp2_auth_code(
            self.hash(),
            user.password(),
            &next.params(ctx.bmc_session_id, ctx.bmc_guid),
        );
        Ok(next)
    }
}

impl ExpectRakp3 {
    /// The user name from RAKP1.
    pub fn user_name(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len)]
    }

    /// Whether a repeated RAKP1 asks for exactly this handshake again (its
    /// RAKP2 was lost), so the same Rc and code can be resent.
    pub fn same_rakp1(&self, msg: &Rakp1<'_>) -> bool {
        msg.console_random == self.console_random
            && msg.role == self.role
            && msg.user_name == self.user_name()
    }

    /// Back to waiting for RAKP1, with what Open Session granted.
    fn restart(self) -> ExpectRakp1 {
        ExpectRakp1 {
            opener: self.opener,
            console_session_id: self.console_session_id,
            suite: self.suite,
            max_privilege: self.granted_privilege,
        }
    }

    fn write_rakp2(&self, tag: u8, bmc_guid: &[u8; 16], out: &mut Vec<u8>) {
        let rakp2 = Rakp2 {
            tag,
            status: RakpStatus::Ok,
            console_session_id: self.console_session_id,
            body: Some(Rakp2Body {
                bmc_random: self.bmc_random,
                bmc_guid: *bmc_guid,
                auth_code: self.rakp2_code.as_slice(),
            }),
        };
        put_sessionless_v20(out, PayloadType::Rakp2, &rakp2);
    }

    /// The values every code and key of this handshake is computed over.
    pub fn params<'a>(
        &'a self,
        bmc_session_id: u32,
        bmc_guid: &'a [u8; 16],
    ) -> HandshakeParams<'a> {
        HandshakeParams {
            console_session_id: self.console_session_id,
            bmc_session_id,
            console_random: &self.console_random,
            bmc_random: &self.bmc_random,
            bmc_guid,
            role: self.role,
            user_name: self.user_name(),
        }
    }

    /// Checks RAKP3 and derives the session keys.
    fn on_rakp3(self, msg: &Rakp3<'_>, ctx: &HandshakeCtx<'_>, room: bool) -> Rakp3Check {
        let hash = auth_hash(self.suite);
        let Some(user) = ctx.users.by_id(self.user_id) else {
            return Rakp3Check::Refused(self, RakpStatus::UnauthorizedName);
        };
        let params = self.params(ctx.bmc_session_id, ctx.bmc_guid);
        let expected = keys::rakp3_auth_code(hash, user.password(), &params);
        if !constant_time_eq(expected.as_slice(), msg.auth_code) {
            return Rakp3Check::Refused(self, RakpStatus::InvalidIntegrityCheckValue);
        }
        if !room {
            return Rakp3Check::Refused(self, RakpStatus::InsufficientResources);
        }
        let sik = keys::session_integrity_key(hash, ctx.kg.unwrap_or(user.password()), &params);
        let icv = keys::rakp4_icv(hash, &sik, &params);
        let session_keys = SessionKeys::derive(hash, &sik);
        let Some(established) = Established::new(
            self.console_session_id,
            self.suite,
            &session_keys,
            self.user_id,
            self.max_privilege,
            (expected, icv),
        ) else {
            return Rakp3Check::Refused(self, RakpStatus::NoCipherSuiteMatch);
        };
        Rakp3Check::Verified(Box::new(established), icv)
    }
}

/// What checking a RAKP3 gave.
enum Rakp3Check {
    /// The code verified: the session and RAKP4's integrity check value.
    Verified(Box<Established>, MacOutput),
    /// Refused with this status; the state is handed back unchanged.
    Refused(ExpectRakp3, RakpStatus),
}

/// The authentication hash of a suite; suites are built only from the
/// implemented list, all of which have one.
fn auth_hash(suite: &CipherSuite) -> AuthHash {
    AuthHash::of(suite.auth).unwrap_or(AuthHash::Sha1)
}
