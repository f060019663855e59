//! Bounded logging of what a node refused and dropped.
//!
//! Anyone on the provisioning network can send a node datagrams, so one
//! log line per refused Open Session or dropped datagram would let a flood
//! of 24-byte packets fill the disk. Each refusal and drop is logged at
//! debug level only; at info level a node writes at most one summary a
//! minute, counting them by reason and naming how many source addresses
//! sent them:
//!
//! ```text
//! in the last minute: refused 12,345 session requests (12,000 table full
//! at Open Session, 345 unknown user at RAKP 1); from 57 sources
//! ```
//!
//! A window opens at the first refusal, drop or eviction after the last
//! summary and closes a minute later, when the line is written; the node's
//! task wakes up for it ([`Summary::due`]) and writes what is left when it
//! stops.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use novabmc_proto::counters::status_name;
use novabmc_proto::wire::ids::RakpStatus;
use novabmc_proto::{DropKind, SetupMessage};

/// How long a summary covers, and so the least time between two.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Distinct source addresses remembered per window; beyond this the line
/// says "at least".
const MAX_SOURCES: usize = 4096;

/// The refusals, drops and evictions of one node since its last summary.
#[derive(Debug, Default)]
pub struct Summary {
    started: Option<Instant>,
    refusals: BTreeMap<(SetupMessage, u8), u64>,
    drops: BTreeMap<DropKind, u64>,
    evicted: u64,
    sources: HashSet<IpAddr>,
    more_sources: bool,
}

impl Summary {
    fn open(&mut self, now: Instant) {
        self.started.get_or_insert(now);
    }

    fn source(&mut self, from: IpAddr) {
        if self.sources.len() < MAX_SOURCES {
            self.sources.insert(from);
        } else if !self.sources.contains(&from) {
            self.more_sources = true;
        }
    }

    /// Counts a setup message refused with `status`.
    pub fn refused(
        &mut self,
        now: Instant,
        from: IpAddr,
        message: SetupMessage,
        status: RakpStatus,
    ) {
        self.open(now);
        self.source(from);
        *self.refusals.entry((message, status.into())).or_default() += 1;
    }

    /// Counts a dropped datagram.
    pub fn dropped(&mut self, now: Instant, from: IpAddr, kind: DropKind) {
        self.open(now);
        self.source(from);
        *self.drops.entry(kind).or_default() += 1;
    }

    /// Counts half-open sessions evicted to make room for new ones.
    pub fn evicted(&mut self, now: Instant, n: u64) {
        if n > 0 {
            self.open(now);
            self.evicted += n;
        }
    }

    /// When the current window closes, if one is open.
    pub fn due(&self) -> Option<Instant> {
        self.started.map(|s| s + WINDOW)
    }

    /// The summary line if the window has closed by `now`; the counts start
    /// over.
    pub fn take_due(&mut self, now: Instant) -> Option<String> {
        if self.due()? > now {
            return None;
        }
        self.take()
    }

    /// The summary line of whatever was counted, window closed or not.
    pub fn take(&mut self) -> Option<String> {
        let started = self.started?;
        let line = self.line(started.elapsed());
        *self = Summary::default();
        Some(line)
    }

    fn line(&self, elapsed: Duration) -> String {
        let mut parts = Vec::new();
        let refused: u64 = self.refusals.values().sum();
        if refused > 0 {
            let mut by: Vec<_> = self.refusals.iter().collect();
            by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let reasons: Vec<String> = by
                .into_iter()
                .map(|((message, status), n)| {
                    format!(
                        "{} {} at {}",
                        thousands(*n),
                        refusal_reason(RakpStatus::from(*status)),
                        message_name(*message)
                    )
                })
                .collect();
            parts.push(format!(
                "refused {} session request{} ({})",
                thousands(refused),
                plural(refused),
                reasons.join(", ")
            ));
        }
        let dropped: u64 = self.drops.values().sum();
        if dropped > 0 {
            let mut by: Vec<_> = self.drops.iter().collect();
            by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let reasons: Vec<String> = by
                .into_iter()
                .map(|(kind, n)| format!("{} {}", thousands(*n), kind.name().replace('_', " ")))
                .collect();
            parts.push(format!(
                "dropped {} datagram{} ({})",
                thousands(dropped),
                plural(dropped),
                reasons.join(", ")
            ));
        }
        if self.evicted > 0 {
            parts.push(format!(
                "evicted {} half-open session{} to make room",
                thousands(self.evicted),
                plural(self.evicted)
            ));
        }
        let span = if elapsed >= WINDOW {
            "in the last minute".to_string()
        } else {
            format!("in the last {} s", elapsed.as_secs().max(1))
        };
        let sources = self.sources.len() as u64;
        let at_least = if self.more_sources { "at least " } else { "" };
        let from = if sources == 0 {
            String::new()
        } else {
            format!(
                "; from {at_least}{} source{}",
                thousands(sources),
                plural(sources)
            )
        };
        format!("{span}: {}{from}", parts.join(", "))
    }
}

/// What a refusal means, in the words an operator looks for.
fn refusal_reason(status: RakpStatus) -> String {
    match status {
        RakpStatus::InsufficientResources => "table full".into(),
        RakpStatus::InvalidSessionId => "unknown session".into(),
        RakpStatus::InvalidRole | RakpStatus::UnauthorizedRole => "privilege not allowed".into(),
        RakpStatus::InvalidNameLength => "user name too long".into(),
        RakpStatus::UnauthorizedName => "unknown user".into(),
        RakpStatus::InvalidIntegrityCheckValue => "wrong password".into(),
        RakpStatus::NoCipherSuiteMatch => "no matching cipher suite".into(),
        RakpStatus::IllegalParameter => "malformed".into(),
        other => status_name(other).replace('_', " "),
    }
}

fn message_name(message: SetupMessage) -> &'static str {
    match message {
        SetupMessage::OpenSession => "Open Session",
        SetupMessage::Rakp1 => "RAKP 1",
        SetupMessage::Rakp3 => "RAKP 3",
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn one_line_counts_by_reason_and_source() {
        let t = Instant::now();
        let mut s = Summary::default();
        assert_eq!(s.due(), None);
        for i in 0..12_000u32 {
            s.refused(
                t,
                ip((i % 50) as u8),
                SetupMessage::OpenSession,
                RakpStatus::InsufficientResources,
            );
        }
        for i in 0..345u32 {
            s.refused(
                t,
                ip(100 + (i % 7) as u8),
                SetupMessage::Rakp1,
                RakpStatus::UnauthorizedName,
            );
        }
        s.dropped(t, ip(1), DropKind::BadAuthCode);
        assert_eq!(s.due(), Some(t + WINDOW));
        assert_eq!(s.take_due(t + Duration::from_secs(59)), None);
        let line = s.line(WINDOW);
        assert_eq!(
            line,
            "in the last minute: refused 12,345 session requests (12,000 table full at \
             Open Session, 345 unknown user at RAKP 1), dropped 1 datagram (1 bad auth \
             code); from 57 sources"
        );
        assert!(s.take_due(t + WINDOW).is_some());
        assert_eq!(s.due(), None, "counts start over");
        assert_eq!(s.take(), None);
    }

    #[test]
    fn sources_are_bounded() {
        let t = Instant::now();
        let mut s = Summary::default();
        for i in 0..(MAX_SOURCES as u32 + 10) {
            s.dropped(t, IpAddr::from(i.to_be_bytes()), DropKind::Malformed);
        }
        s.evicted(t, 3);
        let line = s.take().expect("line");
        assert!(line.contains("from at least 4,096 sources"), "{line}");
        assert!(line.contains("evicted 3 half-open sessions"), "{line}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
