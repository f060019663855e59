//! What one engine has done, counted: sessions by what happened to them,
//! session setup refusals by message and RMCP+ status (IPMI v2.0 section
//! 13.24), dropped datagrams by [`DropKind`], and requests by command and
//! completion code.
//!
//! The counters are atomics behind an `Arc`, so a metrics endpoint in
//! another task can read them while the node's task keeps counting (relaxed
//! increments: each counter is exact, a reading of several is not a
//! snapshot). Every counter has a stable name and stable label values,
//! listed by [`Counters::samples`]; those names are an interface and do not
//! change from release to release.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::commands;
use crate::error::{DropKind, DropReason};
use crate::wire::ids::{CompletionCode, RakpStatus};

/// What happened to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    /// An Open Session Request was accepted: a half-open session exists.
    Opened,
    /// RAKP 3 verified: the session is established.
    Established,
    /// Close Session ended an established session.
    Closed,
    /// A session reached its deadline (half-open or idle).
    Expired,
    /// A half-open session made room for a newer one.
    Evicted,
    /// A handshake failed (refused RAKP 1 or 3) or the console abandoned it.
    Failed,
    /// Cold or Warm Reset ended a session.
    Reset,
}

impl SessionEvent {
    /// Every event, in declaration order.
    pub const ALL: [SessionEvent; 7] = [
        Self::Opened,
        Self::Established,
        Self::Closed,
        Self::Expired,
        Self::Evicted,
        Self::Failed,
        Self::Reset,
    ];

    /// The stable label value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Established => "established",
            Self::Closed => "closed",
            Self::Expired => "expired",
            Self::Evicted => "evicted",
            Self::Failed => "failed",
            Self::Reset => "reset",
        }
    }
}

/// The session setup message a refusal answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetupMessage {
    /// Open Session Request, answered by an Open Session Response.
    OpenSession,
    /// RAKP Message 1, answered by RAKP Message 2.
    Rakp1,
    /// RAKP Message 3, answered by RAKP Message 4.
    Rakp3,
}

impl SetupMessage {
    /// Every message, in declaration order.
    pub const ALL: [SetupMessage; 3] = [Self::OpenSession, Self::Rakp1, Self::Rakp3];

    /// The stable label value.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenSession => "open_session",
            Self::Rakp1 => "rakp1",
            Self::Rakp3 => "rakp3",
        }
    }
}

/// Statuses 00h..=12h have a slot each; anything else shares the last.
const STATUS_SLOTS: usize = 0x14;

fn status_slot(status: RakpStatus) -> usize {
    usize::from(u8::from(status)).min(STATUS_SLOTS - 1)
}

/// The stable label value of an RMCP+ status.
pub fn status_name(status: RakpStatus) -> &'static str {
    match status {
        RakpStatus::Ok => "ok",
        RakpStatus::InsufficientResources => "insufficient_resources",
        RakpStatus::InvalidSessionId => "invalid_session_id",
        RakpStatus::InvalidPayloadType => "invalid_payload_type",
        RakpStatus::InvalidAuthAlgorithm => "invalid_auth_algorithm",
        RakpStatus::InvalidIntegrityAlgorithm => "invalid_integrity_algorithm",
        RakpStatus::NoMatchingAuthPayload => "no_matching_auth_payload",
        RakpStatus::NoMatchingIntegrityPayload => "no_matching_integrity_payload",
        RakpStatus::InactiveSessionId => "inactive_session_id",
        RakpStatus::InvalidRole => "invalid_role",
        RakpStatus::UnauthorizedRole => "unauthorized_role",
        RakpStatus::InsufficientResourcesForRole => "insufficient_resources_for_role",
        RakpStatus::InvalidNameLength => "invalid_name_length",
        RakpStatus::UnauthorizedName => "unauthorized_name",
        RakpStatus::UnauthorizedGuid => "unauthorized_guid",
        RakpStatus::InvalidIntegrityCheckValue => "invalid_integrity_check_value",
        RakpStatus::InvalidConfidentialityAlgorithm => "invalid_confidentiality_algorithm",
        RakpStatus::NoCipherSuiteMatch => "no_cipher_suite_match",
        RakpStatus::IllegalParameter => "illegal_parameter",
        RakpStatus::Unknown(_) => "other",
    }
}

/// Completion codes with a counter of their own; the rest share "other".
const COMPLETION_CODES: [CompletionCode; 15] = [
    CompletionCode::OK,
    CompletionCode::PARAMETER_NOT_SUPPORTED,
    CompletionCode::LEVEL_EXCEEDS_LIMIT,
    CompletionCode::INVALID_SESSION_ID,
    CompletionCode::INVALID_SESSION_HANDLE,
    CompletionCode::NODE_BUSY,
    CompletionCode::INVALID_COMMAND,
    CompletionCode::REQUEST_LENGTH_INVALID,
    CompletionCode::PARAMETER_OUT_OF_RANGE,
    CompletionCode::NOT_PRESENT,
    CompletionCode::INVALID_DATA_FIELD,
    CompletionCode::DESTINATION_UNAVAILABLE,
    CompletionCode::INSUFFICIENT_PRIVILEGE,
    CompletionCode::NOT_SUPPORTED_IN_PRESENT_STATE,
    CompletionCode::UNSPECIFIED,
];
const COMPLETION_NAMES: [&str; 16] = [
    "00", "80", "81", "87", "88", "c0", "c1", "c7", "c9", "cb", "cc", "d3", "d4", "d5", "ff",
    "other",
];

/// One counter's value with its stable name and labels, Prometheus style:
/// `ipmi_refusals_total{message="rakp1",status="unauthorized_name"} 3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Metric name.
    pub name: &'static str,
    /// First label (name, value).
    pub label: (&'static str, &'static str),
    /// Second label, for metrics that have two.
    pub label2: Option<(&'static str, &'static str)>,
    /// The count.
    pub value: u64,
}

/// The counters of one engine. Read them through [`crate::Bmc::counters`].
#[derive(Debug)]
pub struct Counters {
    sessions: [AtomicU64; SessionEvent::ALL.len()],
    refusals: [[AtomicU64; STATUS_SLOTS]; SetupMessage::ALL.len()],
    drops: [AtomicU64; DropKind::ALL.len()],
    /// One per command table row, then one for commands not in the table.
    requests: Box<[AtomicU64]>,
    completions: [AtomicU64; COMPLETION_NAMES.len()],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            sessions: Default::default(),
            refusals: Default::default(),
            drops: Default::default(),
            requests: (0..=commands::COMMANDS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            completions: Default::default(),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Counters {
    pub(crate) fn session(&self, event: SessionEvent) {
        self.session_n(event, 1);
    }

    pub(crate) fn session_n(&self, event: SessionEvent, n: u64) {
        if let Some(c) = SessionEvent::ALL
            .iter()
            .position(|e| *e == event)
            .and_then(|i| self.sessions.get(i))
        {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn refusal(&self, message: SetupMessage, status: RakpStatus) {
        bump(&self.refusals[message as usize][status_slot(status)]);
    }

    pub(crate) fn dropped(&self, reason: &DropReason) {
        bump(&self.drops[reason.kind() as usize]);
    }

    /// `row` is the command table row, `None` for a command not in it.
    pub(crate) fn request(&self, row: Option<usize>, cc: CompletionCode) {
        let i = row.map_or(self.requests.len() - 1, |r| r.min(self.requests.len() - 1));
        bump(&self.requests[i]);
        let slot = COMPLETION_CODES
            .iter()
            .position(|c| *c == cc)
            .unwrap_or(COMPLETION_NAMES.len() - 1);
        bump(&self.completions[slot]);
    }

    /// How many sessions had this happen to them.
    pub fn sessions(&self, event: SessionEvent) -> u64 {
        SessionEvent::ALL
            .iter()
            .position(|e| *e == event)
            .map_or(0, |i| read(&self.sessions[i]))
    }

    /// How many `message`s were refused with `status`.
    pub fn refusals(&self, message: SetupMessage, status: RakpStatus) -> u64 {
        read(&self.refusals[message as usize][status_slot(status)])
    }

    /// How many `message`s were refused, whatever the status.
    pub fn refusals_of(&self, message: SetupMessage) -> u64 {
        self.refusals[message as usize].iter().map(read).sum()
    }

    /// How many datagrams were dropped for this reason.
    pub fn drops(&self, kind: DropKind) -> u64 {
        read(&self.drops[kind as usize])
    }

    /// How many presence pings and pre-session requests went unanswered
    /// because their source had used its budget (also counted among the
    /// drops, as `rate_limited`).
    pub fn rate_limited(&self) -> u64 {
        self.drops(DropKind::RateLimited)
    }

    /// How many datagrams were dropped, whatever the reason.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().map(read).sum()
    }

    /// Every counter with its name and labels, zeros included, in a stable
    /// order:
    ///
    /// - `ipmi_sessions_total{event}`: [`SessionEvent`] names;
    /// - `ipmi_refusals_total{message,status}`: [`SetupMessage`] names and
    ///   RMCP+ status names (`insufficient_resources`, `unauthorized_name`,
    ///   ..., `other`);
    /// - `ipmi_drops_total{reason}`: [`DropKind`] names;
    /// - `ipmi_requests_total{command}`: the command names of the command
    ///   table (`get_device_id`, `chassis_control`, ...) and `unknown`;
    /// - `ipmi_responses_total{completion_code}`: two hex digits (`00`,
    ///   `c1`, `d4`, ...) or `other`.
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        let sessions = SessionEvent::ALL.iter().map(move |e| Sample {
            name: "ipmi_sessions_total",
            label: ("event", e.name()),
            label2: None,
            value: self.sessions(*e),
        });
        let refusals = SetupMessage::ALL.iter().flat_map(move |m| {
            (0..STATUS_SLOTS).map(move |slot| Sample {
                name: "ipmi_refusals_total",
                label: ("message", m.name()),
                label2: Some(("status", status_name(RakpStatus::from(slot as u8)))),
                value: read(&self.refusals[*m as usize][slot]),
            })
        });
        let drops = DropKind::ALL.iter().map(move |k| Sample {
            name: "ipmi_drops_total",
            label: ("reason", k.name()),
            label2: None,
            value: self.drops(*k),
        });
        let requests = self.requests.iter().enumerate().map(|(i, c)| Sample {
            name: "ipmi_requests_total",
            label: (
                "command",
                commands::COMMANDS.get(i).map_or("unknown", |row| row.name),
            ),
            label2: None,
            value: read(c),
        });
        let completions = self
            .completions
            .iter()
            .zip(COMPLETION_NAMES)
            .map(|(c, name)| Sample {
                name: "ipmi_responses_total",
                label: ("completion_code", name),
                label2: None,
                value: read(c),
            });
        sessions
            .chain(refusals)
            .chain(drops)
            .chain(requests)
            .chain(completions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_name_every_counter_once() {
        let c = Counters::default();
        c.refusal(SetupMessage::Rakp1, RakpStatus::UnauthorizedName);
        c.refusal(SetupMessage::Rakp1, RakpStatus::Unknown(0x99));
        c.dropped(&DropReason::BadAuthCode);
        c.request(Some(0), CompletionCode::OK);
        c.request(None, CompletionCode(0x42));
        c.session(SessionEvent::Evicted);
        let samples: Vec<_> = c.samples().collect();
        let mut keys: Vec<_> = samples
            .iter()
            .map(|s| (s.name, s.label, s.label2))
            .collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "every sample is distinct");
        let value = |name, label, label2| {
            samples
                .iter()
                .find(|s| s.name == name && s.label == label && s.label2 == label2)
                .map(|s| s.value)
        };
        assert_eq!(
            value(
                "ipmi_refusals_total",
                ("message", "rakp1"),
                Some(("status", "unauthorized_name"))
            ),
            Some(1)
        );
        assert_eq!(
            value(
                "ipmi_refusals_total",
                ("message", "rakp1"),
                Some(("status", "other"))
            ),
            Some(1)
        );
        assert_eq!(
            value("ipmi_drops_total", ("reason", "bad_auth_code"), None),
            Some(1)
        );
        assert_eq!(
            value("ipmi_requests_total", ("command", "unknown"), None),
            Some(1)
        );
        assert_eq!(
            value("ipmi_responses_total", ("completion_code", "other"), None),
            Some(1)
        );
        assert_eq!(c.sessions(SessionEvent::Evicted), 1);
        assert_eq!(c.refusals_of(SetupMessage::Rakp1), 2);
    }
}
