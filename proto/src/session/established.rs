//! An active RMCP+ session: checking and opening inbound packets, sealing
//! outbound ones (IPMI v2.0 sections 6.12, 13.6, 13.28 and 13.29).
//!
//! Inbound, in this order: the authenticated/encrypted bits must match the
//! negotiated suite (so a console cannot downgrade a packet), the AuthCode is
//! verified before anything else is believed, the sequence number must pass
//! the replay window, then the payload is decrypted. Outbound packets carry
//! the console's session ID, our own sequence number starting at 1, and are
//! always authenticated and encrypted as the suite requires: FreeIPMI and
//! pyghmi drop anything less.

use crate::Entropy;
use crate::cipher_suite::CipherSuite;
use crate::codec::Encode;
use crate::crypto::MacOutput;
use crate::crypto::confidentiality::AesCbc128;
use crate::crypto::integrity::Integrity;
use crate::crypto::keys::SessionKeys;
use crate::error::DropReason;
use crate::session::reply_cache::ReplyCache;
use crate::session::window::SeqWindow;
use crate::wire::ids::{ConfidentialityAlgorithm, PayloadType, Privilege, RakpStatus};
use crate::wire::rakp::{Rakp3, Rakp4};
use crate::wire::rmcp::RmcpHeader;
use crate::wire::session::{
    PacketV20, SessionHeaderV20, put_sessionless_v20, split_integrity_trailer,
};

/// How a session's packets of one payload type are protected: the IPMI
/// payload always as the suite says; SOL as its activation asked, which
/// may leave out encryption (never authentication: a session with an
/// integrity algorithm authenticates everything, so that nothing
/// unauthenticated moves its sequence window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    /// Packets carry an AuthCode.
    pub authenticated: bool,
    /// Payloads are encrypted.
    pub encrypted: bool,
}

/// An established session.
#[derive(Debug)]
pub struct Established {
    /// The console's session ID (SIDm), carried by our packets.
    pub console_session_id: u32,
    /// The negotiated suite.
    pub suite: &'static CipherSuite,
    /// The user that logged in.
    pub user_id: u8,
    /// The highest privilege this session may take.
    pub max_privilege: Privilege,
    /// The current operating privilege.
    pub privilege: Privilege,
    /// Recently sent replies, for retransmissions.
    pub replies: ReplyCache,
    integrity: Integrity,
    confidentiality: Option<AesCbc128>,
    inbound: SeqWindow,
    outbound: u32,
    /// The RAKP3 code and RAKP4 ICV, kept until the first in-session packet
    /// so a retransmitted RAKP3 (our RAKP4 was lost) can be answered again.
    handshake_echo: Option<(MacOutput, MacOutput)>,
}

impl Established {
    /// A session keyed from `keys`; `None` if the suite names an algorithm
    /// we do not implement (never the case for [`crate::cipher_suite::IMPLEMENTED`]).
    pub fn new(
        console_session_id: u32,
        suite: &'static CipherSuite,
        keys: &SessionKeys,
        user_id: u8,
        max_privilege: Privilege,
        handshake_echo: (MacOutput, MacOutput),
    ) -> Option<Self> {
        let integrity = Integrity::new(suite.integrity, keys.k1.as_slice())?;
        let confidentiality = match suite.confidentiality {
            ConfidentialityAlgorithm::None => None,
            ConfidentialityAlgorithm::AesCbc128 => Some(AesCbc128::new(keys.k2.as_slice())),
            _ => return None,
        };
        Some(Established {
            console_session_id,
            suite,
            user_id,
            max_privilege,
            privilege: Privilege::User.min(max_privilege),
            replies: ReplyCache::default(),
            integrity,
            confidentiality,
            inbound: SeqWindow::default(),
            outbound: 1,
            handshake_echo: Some(handshake_echo),
        })
    }

    /// Answers a RAKP3 naming this session. If it repeats the RAKP3 that
    /// established the session (our RAKP4 was lost) and no in-session
    /// packet has arrived since, the same RAKP4 is written to `out` again
    /// and `true` returned. Anything else gets no reply; nothing changes
    /// either way, since a RAKP3 is not authenticated by the session's keys.
    pub fn on_rakp3(&self, msg: &Rakp3<'_>, out: &mut Vec<u8>) -> bool {
        let Some((code, icv)) = self.handshake_echo.as_ref() else {
            return false;
        };
        if msg.status != RakpStatus::Ok
            || !crate::crypto::constant_time_eq(code.as_slice(), msg.auth_code)
        {
            return false;
        }
        let rakp4 = Rakp4 {
            tag: msg.tag,
            status: RakpStatus::Ok,
            console_session_id: self.console_session_id,
            integrity_check: icv.as_slice(),
        };
        put_sessionless_v20(out, PayloadType::Rakp4, &rakp4);
        true
    }

    /// The protection the suite gives: what IPMI messages always get.
    pub fn protection(&self) -> Protection {
        Protection {
            authenticated: !self.integrity.is_none(),
            encrypted: self.confidentiality.is_some(),
        }
    }

    /// Checks an inbound in-session packet and returns its IPMI message,
    /// decrypted into `scratch`. `session_bytes` is the datagram after the
    /// RMCP header, from which `packet` was decoded.
    pub fn open<'s>(
        &mut self,
        session_bytes: &[u8],
        packet: &PacketV20<'_>,
        scratch: &'s mut [u8],
    ) -> Result<&'s [u8], DropReason> {
        let encrypted = self.confidentiality.is_some();
        self.open_as(session_bytes, packet, scratch, encrypted)
    }

    /// [`Established::open`] for a payload whose encryption was agreed
    /// apart from the suite (SOL): the encrypted bit must be `encrypted`,
    /// which only a suite with confidentiality can make true.
    pub fn open_as<'s>(
        &mut self,
        session_bytes: &[u8],
        packet: &PacketV20<'_>,
        scratch: &'s mut [u8],
        encrypted: bool,
    ) -> Result<&'s [u8], DropReason> {
        let h = &packet.header;
        if h.authenticated == self.integrity.is_none() {
            return Err(DropReason::WrongAuthenticatedBit);
        }
        if h.encrypted != encrypted || (encrypted && self.confidentiality.is_none()) {
            return Err(DropReason::WrongEncryptedBit);
        }
        if !self.integrity.is_none() {
            let code = split_integrity_trailer(
                packet.trailer,
                packet.authenticated_prefix_len,
                self.integrity.code_len(),
            )
            .map_err(DropReason::Malformed)?;
            let covered = session_bytes.len() - code.len();
            if !self.integrity.verify(&session_bytes[..covered], code) {
                return Err(DropReason::BadAuthCode);
            }
        } else if !packet.trailer.is_empty() {
            return Err(DropReason::Malformed(crate::codec::DecodeError::Trailing {
                field: "rmcp+ session",
                count: packet.trailer.len(),
            }));
        }
        if !self.inbound.accept(h.sequence) {
            return Err(DropReason::Replay(h.sequence));
        }
        self.handshake_echo = None;
        match self.confidentiality.as_ref().filter(|_| encrypted) {
            Some(aes) => aes
                .decrypt(packet.payload, scratch)
                .map_err(DropReason::Decrypt),
            None => {
                let n = packet.payload.len();
                let dst = scratch.get_mut(..n).ok_or(DropReason::TooLong(n))?;
                dst.copy_from_slice(packet.payload);
                Ok(dst)
            }
        }
    }

    /// Appends to `out` a whole datagram carrying `message` in this session.
    pub fn seal(&mut self, message: &[u8], rng: &mut dyn Entropy, out: &mut Vec<u8>) {
        let encrypted = self.confidentiality.is_some();
        self.seal_payload(PayloadType::Ipmi, encrypted, message, rng, out);
    }

    /// Appends to `out` a whole datagram carrying `payload` of type
    /// `payload_type`, encrypted if `encrypted` and the suite can, always
    /// authenticated as the suite says. Our sequence number is shared by
    /// every payload type, as the consoles' windows expect.
    pub fn seal_payload(
        &mut self,
        payload_type: PayloadType,
        encrypted: bool,
        message: &[u8],
        rng: &mut dyn Entropy,
        out: &mut Vec<u8>,
    ) {
        let aes = self.confidentiality.as_ref().filter(|_| encrypted);
        let header = SessionHeaderV20 {
            encrypted: aes.is_some(),
            authenticated: !self.integrity.is_none(),
            payload_type,
            oem: None,
            session_id: self.console_session_id,
            sequence: self.outbound,
        };
        // Wrapping past u32::MAX would be 4 billion packets in one session;
        // zero is never sent.
        self.outbound = self.outbound.checked_add(1).unwrap_or(1);
        let start = out.len();
        RmcpHeader::IPMI.encode(out);
        let session_start = out.len();
        header.encode_with_len(0, out);
        let len_at = out.len() - 2;
        let payload_start = out.len();
        match aes {
            Some(aes) => {
                let mut iv = [0u8; 16];
                rng.fill(&mut iv);
                aes.encrypt_into(iv, message, out);
            }
            None => out.extend_from_slice(message),
        }
        let payload_len = (out.len() - payload_start).min(usize::from(u16::MAX)) as u16;
        out[len_at..len_at + 2].copy_from_slice(&payload_len.to_le_bytes());
        self.integrity.append_trailer(out, session_start);
        debug_assert!(out.len() > start);
    }
}
