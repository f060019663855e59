//! The session table of one BMC: session IDs, handles, limits and deadlines
//! (IPMI v2.0 sections 6.12.15 and 13.17).
//!
//! Sessions are keyed by the ID we assign (SIDc): consoles' own IDs repeat
//! (every ipmitool process uses the same one), so they identify nothing.
//! Half-open sessions (Open Session or RAKP1 seen, no valid RAKP3 yet) are
//! reaped after a few seconds, because wrong passwords leave them behind;
//! established ones expire after a minute of silence. A full table refuses
//! new sessions with "insufficient resources", which clients report as "BMC
//! busy" and retry.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::session::established::Established;
use crate::session::handshake::{ExpectRakp1, ExpectRakp3};

/// Where a session is in its life.
#[derive(Debug)]
pub enum SessionState {
    /// Open Session accepted, waiting for RAKP1.
    ExpectRakp1(ExpectRakp1),
    /// RAKP2 sent, waiting for RAKP3.
    ExpectRakp3(ExpectRakp3),
    /// Active. Boxed: an established session holds expanded keys and a
    /// reply cache, and half-open entries should stay small.
    Established(Box<Established>),
}

/// One entry of the table.
#[derive(Debug)]
pub struct Session {
    /// Our session ID (SIDc), never zero.
    pub id: u32,
    /// Session handle reported by Get Session Info, 1..=255.
    pub handle: u8,
    /// Where the console last sent from.
    pub peer: SocketAddr,
    /// Handshake or established state.
    pub state: SessionState,
    /// When the session is removed unless it sees traffic.
    pub deadline: Instant,
}

impl Session {
    /// Whether the handshake has completed.
    pub fn is_established(&self) -> bool {
        matches!(self.state, SessionState::Established(_))
    }
}

/// Timeouts of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a session may stay half-open.
    pub setup: Duration,
    /// How long an established session may stay silent.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            setup: Duration::from_secs(5),
            idle: Duration::from_secs(60),
        }
    }
}

/// The sessions of one BMC.
#[derive(Debug, Default)]
pub struct SessionTable {
    sessions: Vec<Session>,
}

impl SessionTable {
    /// Number of sessions, half-open ones included.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Number of established sessions.
    pub fn established(&self) -> usize {
        self.sessions.iter().filter(|s| s.is_established()).count()
    }

    /// The session with our ID `id`.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.id == id)
    }

    /// The session with our ID `id`.
    pub fn get(&self, id: u32) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == id)
    }

    /// The session with handle `handle`.
    pub fn by_handle(&self, handle: u8) -> Option<&Session> {
        self.sessions.iter().find(|s| s.handle == handle)
    }

    /// The `n`th (1-based) established session, in handle order.
    pub fn nth_established(&self, n: usize) -> Option<&Session> {
        let mut active: Vec<&Session> = self
            .sessions
            .iter()
            .filter(|s| s.is_established())
            .collect();
        active.sort_by_key(|s| s.handle);
        n.checked_sub(1).and_then(|i| active.get(i).copied())
    }

    /// Adds a session if `id` is free and the table has room; returns
    /// whether it did.
    pub fn insert(
        &mut self,
        id: u32,
        peer: SocketAddr,
        state: SessionState,
        deadline: Instant,
        capacity: usize,
    ) -> bool {
        if id == 0 || self.sessions.len() >= capacity || self.get(id).is_some() {
            return false;
        }
        let Some(handle) = (1..=u8::MAX).find(|h| self.by_handle(*h).is_none()) else {
            return false;
        };
        self.sessions.push(Session {
            id,
            handle,
            peer,
            state,
            deadline,
        });
        true
    }

    /// Removes the session with our ID `id`.
    pub fn remove(&mut self, id: u32) -> Option<Session> {
        let i = self.sessions.iter().position(|s| s.id == id)?;
        Some(self.sessions.swap_remove(i))
    }

    /// Removes every session.
    pub fn clear(&mut self) {
        self.sessions.clear();
    }

    /// The ID of a session whose deadline has passed.
    pub fn first_expired(&self, now: Instant) -> Option<u32> {
        self.sessions
            .iter()
            .find(|s| s.deadline <= now)
            .map(|s| s.id)
    }

    /// The IDs of all sessions.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.sessions.iter().map(|s| s.id)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.sessions.iter().map(|s| s.deadline).min()
    }
}
