//! A budget of failed logins per source address, so that guessing
//! passwords is slow while nobody is ever locked out: each source may fail
//! a burst of times, then once every few seconds; past that its attempts
//! are answered 429 without being checked. Accounts are never locked, and
//! other sources are untouched, so a genuine client elsewhere logs in at
//! once however hard one source guesses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Failures a source may make at once.
pub const BURST: f64 = 10.0;
/// One more failure allowed per this much time.
pub const REFILL: Duration = Duration::from_secs(2);
/// Sources tracked at most; past that, the ones with a full budget are
/// forgotten first.
const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The budgets.
#[derive(Debug, Default)]
pub struct LoginLimit {
    sources: HashMap<IpAddr, Bucket>,
}

impl LoginLimit {
    fn refill(b: &mut Bucket, now: Instant) {
        let earned = now.saturating_duration_since(b.at).as_secs_f64() / REFILL.as_secs_f64();
        b.tokens = (b.tokens + earned).min(BURST);
        b.at = now;
    }

    /// Whether `source` may try credentials now.
    pub fn allows(&mut self, source: IpAddr, now: Instant) -> bool {
        match self.sources.get_mut(&source) {
            None => true,
            Some(b) => {
                Self::refill(b, now);
                b.tokens >= 1.0
            }
        }
    }

    /// Counts one failed attempt from `source`.
    pub fn failed(&mut self, source: IpAddr, now: Instant) {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            self.sources.retain(|_, b| {
                Self::refill(b, now);
                b.tokens < BURST
            });
            if self.sources.len() >= MAX_SOURCES {
                return;
            }
        }
        let b = self.sources.entry(source).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        Self::refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_guessing_source_is_slowed_and_others_are_not() {
        let mut l = LoginLimit::default();
        let bad: IpAddr = "192.0.2.1".parse().expect("ip");
        let good: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..10 {
            assert!(l.allows(bad, Instant::now()));
            l.failed(bad, Instant::now());
        }
        assert!(!l.allows(bad, Instant::now()), "burst spent");
        assert!(
            l.allows(good, Instant::now()),
            "another source is untouched"
        );
        tokio::time::advance(REFILL).await;
        assert!(l.allows(bad, Instant::now()), "one more after the refill");
    }
}
