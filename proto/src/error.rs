//! Why the engine dropped a datagram without answering.
//!
//! Anything a console could act on gets an answer: a completion code or an
//! RMCP+ status. What remains is traffic the protocol says to discard: bytes
//! that are not RMCP, packets that fail their integrity check or replay an
//! old sequence number, requests for sessions that do not exist, and RAKP
//! messages that would let an unauthenticated sender change a session. The
//! engine counts each reason ([`crate::Counters`]); the daemon logs them at
//! debug level and summarises them.

use crate::codec::DecodeError;
use crate::crypto::confidentiality::DecryptError;

/// The reason a datagram was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// The datagram could not be decoded.
    #[error("malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// An RMCP class other than ASF or IPMI.
    #[error("unsupported RMCP class {0:#04x}")]
    UnsupportedClass(u8),
    /// An ASF message other than a presence ping.
    #[error("ASF message type {0:#04x} is not a presence ping")]
    NotPing(u8),
    /// An RMCP ACK, which IPMI does not use.
    #[error("RMCP ACK ignored")]
    RmcpAck,
    /// An IPMI 1.5 session packet; only pre-session IPMI 1.5 is served.
    #[error("IPMI 1.5 sessions are not supported")]
    Ipmi15Session,
    /// A payload type we do not serve.
    #[error("unsupported payload type {0:#04x}")]
    UnsupportedPayload(u8),
    /// A session setup message with a non-zero session ID or flag bits.
    #[error("session setup message with session fields set")]
    SetupFraming,
    /// A session ID that is not in the table.
    #[error("unknown session {0:#010x}")]
    UnknownSession(u32),
    /// An IPMI message for a session still in its handshake.
    #[error("session {0:#010x} is not established")]
    NotEstablished(u32),
    /// The authenticated bit disagrees with the negotiated suite.
    #[error("authenticated bit does not match the session's integrity algorithm")]
    WrongAuthenticatedBit,
    /// The encrypted bit disagrees with the negotiated suite.
    #[error("encrypted bit does not match the session's confidentiality algorithm")]
    WrongEncryptedBit,
    /// The AuthCode did not verify.
    #[error("integrity check failed")]
    BadAuthCode,
    /// The sequence number was seen before or is too old.
    #[error("sequence number {0} replayed or outside the window")]
    Replay(u32),
    /// The payload did not decrypt.
    #[error("{0}")]
    Decrypt(#[from] DecryptError),
    /// The payload is longer than any request we serve.
    #[error("payload of {0} bytes is too long")]
    TooLong(usize),
    /// A response message where a request was expected.
    #[error("received a response, not a request")]
    NotARequest,
    /// A retransmission of a request whose reply is still being computed.
    #[error("retransmission of a request still in progress")]
    InProgress,
    /// RAKP3 from the console that opened the session reported an error:
    /// the console gave up, and the half-open session is removed.
    #[error("console abandoned the handshake with status {0:#04x}")]
    ConsoleAbort(u8),
    /// A RAKP message naming a session that is already established. Only
    /// authenticated packets may change an established session, and RAKP
    /// messages are not authenticated by its keys.
    #[error("RAKP message for established session {0:#010x}")]
    RakpForEstablished(u32),
    /// A RAKP 3 error status from an address other than the one that opened
    /// the session: only the opener may abandon its handshake.
    #[error("handshake abort for session {0:#010x} from an address that did not open it")]
    NotOpener(u32),
    /// A packet for a session whose deadline has passed; the session is
    /// removed.
    #[error("session {0:#010x} has expired")]
    Expired(u32),
    /// A presence ping or pre-session request beyond its source's budget
    /// (see [`crate::session::sessionless`]): not answered, so the BMC
    /// cannot be used to reflect a flood onto a third party.
    #[error("sessionless reply budget of the source exhausted")]
    RateLimited,
}

impl DropReason {
    /// The reason without its details, for counting.
    pub fn kind(&self) -> DropKind {
        match self {
            Self::Malformed(_) => DropKind::Malformed,
            Self::UnsupportedClass(_) => DropKind::UnsupportedClass,
            Self::NotPing(_) => DropKind::NotPing,
            Self::RmcpAck => DropKind::RmcpAck,
            Self::Ipmi15Session => DropKind::Ipmi15Session,
            Self::UnsupportedPayload(_) => DropKind::UnsupportedPayload,
            Self::SetupFraming => DropKind::SetupFraming,
            Self::UnknownSession(_) => DropKind::UnknownSession,
            Self::NotEstablished(_) => DropKind::NotEstablished,
            Self::WrongAuthenticatedBit => DropKind::WrongAuthenticatedBit,
            Self::WrongEncryptedBit => DropKind::WrongEncryptedBit,
            Self::BadAuthCode => DropKind::BadAuthCode,
            Self::Replay(_) => DropKind::Replay,
            Self::Decrypt(_) => DropKind::Decrypt,
            Self::TooLong(_) => DropKind::TooLong,
            Self::NotARequest => DropKind::NotARequest,
            Self::InProgress => DropKind::InProgress,
            Self::ConsoleAbort(_) => DropKind::ConsoleAbort,
            Self::RakpForEstablished(_) => DropKind::RakpForEstablished,
            Self::NotOpener(_) => DropKind::NotOpener,
            Self::Expired(_) => DropKind::Expired,
            Self::RateLimited => DropKind::RateLimited,
        }
    }
}

macro_rules! drop_kinds {
    ($( $(#[$m:meta])* $variant:ident = $name:literal, )*) => {
        /// [`DropReason`] without its details: what the counters and the
        /// daemon's summaries count by. Each kind has a stable name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DropKind {
            $( $(#[$m])* $variant, )*
        }

        impl DropKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [DropKind] = &[$( DropKind::$variant, )*];

            /// The stable name (snake case), used as a metric label.
            pub fn name(self) -> &'static str {
                match self {
                    $( DropKind::$variant => $name, )*
                }
            }
        }
    };
}

drop_kinds! {
    /// See [`DropReason::Malformed`].
    Malformed = "malformed",
    /// See [`DropReason::UnsupportedClass`].
    UnsupportedClass = "unsupported_class",
    /// See [`DropReason::NotPing`].
    NotPing = "not_ping",
    /// See [`DropReason::RmcpAck`].
    RmcpAck = "rmcp_ack",
    /// See [`DropReason::Ipmi15Session`].
    Ipmi15Session = "ipmi15_session",
    /// See [`DropReason::UnsupportedPayload`].
    UnsupportedPayload = "unsupported_payload",
    /// See [`DropReason::SetupFraming`].
    SetupFraming = "setup_framing",
    /// See [`DropReason::UnknownSession`].
    UnknownSession = "unknown_session",
    /// See [`DropReason::NotEstablished`].
    NotEstablished = "not_established",
    /// See [`DropReason::WrongAuthenticatedBit`].
    WrongAuthenticatedBit = "wrong_authenticated_bit",
    /// See [`DropReason::WrongEncryptedBit`].
    WrongEncryptedBit = "wrong_encrypted_bit",
    /// See [`DropReason::BadAuthCode`].
    BadAuthCode = "bad_auth_code",
    /// See [`DropReason::Replay`].
    Replay = "replay",
    /// See [`DropReason::Decrypt`].
    Decrypt = "decrypt",
    /// See [`DropReason::TooLong`].
    TooLong = "too_long",
    /// See [`DropReason::NotARequest`].
    NotARequest = "not_a_request",
    /// See [`DropReason::InProgress`].
    InProgress = "in_progress",
    /// See [`DropReason::ConsoleAbort`].
    ConsoleAbort = "console_abort",
    /// See [`DropReason::RakpForEstablished`].
    RakpForEstablished = "rakp_for_established",
    /// See [`DropReason::NotOpener`].
    NotOpener = "not_opener",
    /// See [`DropReason::Expired`].
    Expired = "expired",
    /// See [`DropReason::RateLimited`].
    RateLimited = "rate_limited",
}

impl std::fmt::Display for DropKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_names() {
        let mut names: Vec<_> = DropKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropKind::ALL.len());
        assert_eq!(DropReason::Replay(3).kind(), DropKind::Replay);
    }
}
