//! A per-source budget for the replies a BMC sends outside any session: the
//! RMCP presence pong (IPMI v2.0 section 13.1, ASF 2.0 section 3.2.4) and
//! the pre-session IPMI requests, Get Channel Authentication Capabilities
//! and Get Channel Cipher Suites (IPMI v2.0 sections 22.13 and 22.15).
//!
//! Those replies are larger than their requests (a pong 2.3 times its ping,
//! the cipher suite list up to 1.6 times) and go to whatever address the
//! request claims, so without a limit the BMC would serve as a reflector
//! that amplifies a spoofed flood onto a third party.
//!
//! Each source address (counted as the session table counts them: IPv4
//! address, IPv6 /64) has a token bucket of [`BURST`] replies that refills
//! at [`REFILL_PER_SECOND`]. A console's login needs a handful of these
//! replies (ipmitool, the most, sends up to six), so no genuine client
//! comes near the limit. Past it, one request in [`SLIP`] is still
//! answered: a console whose address someone else is flooding still gets
//! in after a retry or two, while the replies to the flood carry fewer
//! bytes than the flood itself, so reflecting off the BMC gains nothing.
//!
//! The table is bounded ([`MAX_SOURCES`]); a new source takes the place of
//! the one heard from least recently. Flushing a victim's bucket by
//! rotating through other addresses costs the attacker more than
//! [`MAX_SOURCES`] requests per [`BURST`] replies, again no gain.
//!
//! Loopback sources are not limited: a reply to a loopback address never
//! leaves the host, so it cannot reach a third party.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::session::table::source_of;

/// Replies a source may have in a burst.
pub const BURST: u32 = 20;
/// Replies a source earns per second.
pub const REFILL_PER_SECOND: u32 = 10;
/// Past the budget, one request in this many is still answered.
pub const SLIP: u32 = 3;
/// Sources remembered at once.
pub const MAX_SOURCES: usize = 64;

/// One token's worth of time.
const TOKEN: Duration = Duration::from_millis(1000 / REFILL_PER_SECOND as u64);

#[derive(Clone, Copy, Debug)]
struct Bucket {
    source: IpAddr,
    tokens: u32,
    /// When the tokens were last brought up to date: refill counts whole
    /// tokens from here.
    refilled: Instant,
    /// When the source last sent a request.
    seen: Instant,
    /// Requests refused since the bucket last had a token.
    refused: u32,
}

/// The token buckets of one engine.
#[derive(Debug, Default)]
pub struct SessionlessBudget {
    buckets: Vec<Bucket>,
}

impl SessionlessBudget {
    /// Whether a reply to `from` may be sent at `now`; takes a token if so.
    pub fn allow(&mut self, now: Instant, from: SocketAddr) -> bool {
        let source = source_of(from);
        if source.is_loopback() {
            return true;
        }
        let i = match self.buckets.iter().position(|b| b.source == source) {
            Some(i) => i,
            None => self.make_room(now, source),
        };
        let b = &mut self.buckets[i];
        b.seen = b.seen.max(now);
        let earned = now.saturating_duration_since(b.refilled).as_nanos() / TOKEN.as_nanos();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            b.tokens = b.tokens.saturating_add(earned).min(BURST);
            b.refilled = if b.tokens == BURST {
                now
            } else {
                // Keep the fraction of a token already earned.
                b.refilled + TOKEN * earned
            };
        }
        if b.tokens > 0 {
            b.tokens -= 1;
            b.refused = 0;
            return true;
        }
        b.refused = b.refused.wrapping_add(1);
        b.refused.is_multiple_of(SLIP)
    }

    /// Adds a full bucket for `source`, in place of the one heard from
    /// least recently if the table is full; returns its index.
    fn make_room(&mut self, now: Instant, source: IpAddr) -> usize {
        let fresh = Bucket {
            source,
            tokens: BURST,
            refilled: now,
            seen: now,
            refused: 0,
        };
        if self.buckets.len() < MAX_SOURCES {
            self.buckets.push(fresh);
            return self.buckets.len() - 1;
        }
        let oldest = self
            .buckets
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.seen)
            .map_or(0, |(i, _)| i);
        self.buckets[oldest] = fresh;
        oldest
    }

    /// Sources tracked now, for tests of its memory.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from((0xc633_6400u32.wrapping_add(i).to_be_bytes(), 623))
    }

    #[test]
    fn a_burst_then_the_refill_rate_then_one_in_slip() {
        let now = Instant::now();
        let mut b = SessionlessBudget::default();
        let allowed = (0..BURST + 3 * SLIP)
            .filter(|_| b.allow(now, addr(1)))
            .count();
        assert_eq!(allowed as u32, BURST + 3, "a burst, then one in {SLIP}");
        assert!(b.allow(now, addr(2)), "other sources are not affected");
        let later = now + TOKEN * 2 + TOKEN / 2;
        assert!(b.allow(later, addr(1)));
        assert!(b.allow(later, addr(1)));
        assert!(!b.allow(later, addr(1)), "two tokens earned, not three");
        assert!(b.allow(now + TOKEN * 3, addr(1)), "the half token counted");
        let loopback = SocketAddr::from(([127, 0, 0, 1], 623));
        assert!((0..1000).all(|_| b.allow(now, loopback)));
    }

    #[test]
    fn the_table_is_bounded() {
        let now = Instant::now();
        let mut b = SessionlessBudget::default();
        for i in 0..10_000 {
            b.allow(now + Duration::from_micros(u64::from(i)), addr(i));
        }
        assert_eq!(b.len(), MAX_SOURCES);
    }
}
