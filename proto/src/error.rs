//! Why the engine dropped a datagram without answering.
//!
//! Anything a console could act on gets an answer: a completion code or an
//! RMCP+ status. What remains is traffic the protocol says to discard: bytes
//! that are not RMCP, packets that fail their integrity check or replay an
//! old sequence number, requests for sessions that do not exist. The daemon
//! logs each reason at debug level and counts them.

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
    /// RAKP3 reported an error from the console; the session is removed.
    #[error("console aborted the handshake with status {0:#04x}")]
    ConsoleAbort(u8),
}
