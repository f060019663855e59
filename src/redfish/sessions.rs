//! Redfish sessions (DSP0266 section 13.2.4): a login makes a session with
//! a random token the client sends as `X-Auth-Token`; it ends when the
//! client deletes it, when it is left unused for the configured timeout,
//! or when its account is removed or its password or role changes at a
//! reload. The number open at once is capped.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::accounts::{Accounts, Role};

/// One open session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Its Id (not the token: the Id appears in URIs and listings).
    pub id: String,
    /// The account's name.
    pub user: String,
    /// The account's role when it logged in.
    pub role: Role,
    /// A digest of the password it logged in with.
    password: [u8; 32],
    /// When it was last used.
    last_used: Instant,
}

/// Every session is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The open sessions.
#[derive(Debug)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
    timeout: Duration,
    max: usize,
}

impl Sessions {
    /// No sessions; each lasts `timeout` unused, `max` at once.
    pub fn new(timeout: Duration, max: usize) -> Self {
        Sessions {
            by_token: HashMap::new(),
            timeout,
            max,
        }
    }

    /// New limits (a reload); open sessions keep going.
    pub fn set_limits(&mut self, timeout: Duration, max: usize) {
        self.timeout = timeout;
        self.max = max;
    }

    /// Opens a session for an account that just proved its password;
    /// returns the session and its token.
    pub fn open(
        &mut self,
        user: &str,
        role: Role,
        password: [u8; 32],
        now: Instant,
    ) -> Result<(Session, String), Full> {
        self.expire(now);
        if self.by_token.len() >= self.max {
            return Err(Full);
        }
        let token = random_hex(32);
        let session = Session {
            id: random_hex(8),
            user: user.to_string(),
            role,
            password,
            last_used: now,
        };
        self.by_token.insert(token.clone(), session.clone());
        Ok((session, token))
    }

    /// The session a token opens, marked used now.
    pub fn authenticate(&mut self, token: &str, now: Instant) -> Option<Session> {
        let timeout = self.timeout;
        let s = self.by_token.get_mut(token)?;
        if now.saturating_duration_since(s.last_used) > timeout {
            self.by_token.remove(token);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    /// The open sessions, oldest Id order.
    pub fn list(&mut self, now: Instant) -> Vec<Session> {
        self.expire(now);
        let mut v: Vec<Session> = self.by_token.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The session with this Id.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<Session> {
        self.expire(now);
        self.by_token.values().find(|s| s.id == id).cloned()
    }

    /// Ends the session with this Id; whether there was one.
    pub fn close(&mut self, id: &str) -> bool {
        let before = self.by_token.len();
        self.by_token.retain(|_, s| s.id != id);
        self.by_token.len() != before
    }

    /// Ends the sessions whose account is gone or whose role or password
    /// changed (at a reload); returns how many ended.
    pub fn keep_valid(&mut self, accounts: &Accounts) -> usize {
        let before = self.by_token.len();
        self.by_token.retain(|_, s| {
            accounts
                .get(&s.user)
                .is_some_and(|a| a.role == s.role && a.password_digest() == s.password)
        });
        before - self.by_token.len()
    }

    /// The idle timeout, in seconds.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout.as_secs()
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.timeout;
        self.by_token
            .retain(|_, s| now.saturating_duration_since(s.last_used) <= timeout);
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_session_lasts_while_used_and_ends_when_idle() {
        let mut s = Sessions::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        let (session, token) = s
            .open("admin", Role::Administrator, [0; 32], now)
            .expect("open");
        assert_eq!(token.len(), 64);
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(
            s.authenticate(&token, Instant::now()).is_some(),
            "used: kept"
        );
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(
            s.authenticate(&token, Instant::now()).is_some(),
            "50 s after use"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(
            s.authenticate(&token, Instant::now()).is_none(),
            "idle too long"
        );
        assert!(!s.close(&session.id));
    }

    #[test]
    fn the_cap_holds_and_a_closed_session_frees_its_place() {
        let now = Instant::now();
        let mut s = Sessions::new(Duration::from_secs(60), 1);
        let (a, _) = s.open("a", Role::ReadOnly, [0; 32], now).expect("first");
        assert_eq!(s.open("b", Role::ReadOnly, [0; 32], now).err(), Some(Full));
        assert!(s.close(&a.id));
        assert!(s.open("b", Role::ReadOnly, [0; 32], now).is_ok());
    }
}
