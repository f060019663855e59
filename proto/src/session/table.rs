//! The session table of one BMC: session IDs, handles, limits, eviction and
//! deadlines (IPMI v2.0 sections 6.12.15, 13.17 and 22.20).
//!
//! Sessions are keyed by the ID we assign (SIDc): consoles' own IDs repeat
//! (every ipmitool process uses the same one), so they identify nothing.
//!
//! The table holds two kinds of session, with separate limits:
//!
//! - **Established** sessions, at most `max_sessions` (up to 255, the
//!   number of one-byte session handles). Only a table full of them makes a
//!   new Open Session Request fail with "insufficient resources" (01h),
//!   which ipmitool reports as such and ipmipower as "BMC busy".
//! - **Half-open** sessions (Open Session accepted, RAKP3 not yet), at most
//!   [`MAX_HALF_OPEN`]. They get no handle, and anyone can create them (a
//!   wrong password leaves one behind, and so does a spoofed Open Session),
//!   so they never lock anyone out: when there is no room for a new one the
//!   oldest is evicted. Consoles that have sent RAKP1 have proven a round
//!   trip and named a user, so the oldest session still waiting for RAKP1
//!   goes first, and a session waiting for RAKP3 only when there is no
//!   other. A RAKP message for an evicted session is refused with
//!   "insufficient resources" too, so its console reports "BMC busy" at
//!   once instead of timing out.
//!
//! Eviction is fair by source address (IPv6 by /64), because anyone who
//! knows one user name can take sessions to RAKP2 without the password:
//! the victim comes from the source that holds the most half-open
//! sessions, counting the new one, and from the newcomer's own source when
//! it would hold as many as any other. No source holds more than
//! [`MAX_HALF_OPEN_PER_SOURCE`]; beyond that a source recycles its own.
//! A console that opens one session is thus evicted only by a source that
//! holds no more than it does, which a few addresses cannot arrange. A
//! half-open session's deadline is extended once, when it first reaches
//! RAKP2, and never again: a repeated RAKP1 cannot keep it alive.
//!
//! Every session also takes a slot of the process-wide [`SessionBudget`];
//! a node whose share is exhausted recycles its own oldest half-open
//! session, and refuses only when it has none.
//!
//! A handshake message moves a half-open session on through
//! [`SessionTable::step`], which hands its state by value to the handshake
//! and puts back what comes out: the same session in its next state, an
//! established session, or nothing.
//!
//! Half-open sessions are reaped after the setup timeout; established ones
//! expire after the idle timeout without an authenticated packet. Storage
//! shrinks again as sessions go, so a node that once held many keeps no
//! more than a few entries' worth once they are gone: what the budget
//! bounds is what the process holds.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Entropy;
use crate::session::budget::SessionBudget;
use crate::session::established::Established;
use crate::session::handshake::HalfOpen;

/// Most established sessions per node: session handles are one byte, and
/// handle 0 means "none".
pub const MAX_ESTABLISHED: usize = 255;
/// Most half-open sessions per node: twice the established limit, so a
/// burst of consoles all opening sessions at once (ipmipower with a large
/// fanout) never evicts one of its own members.
pub const MAX_HALF_OPEN: usize = 2 * MAX_ESTABLISHED + 2;
/// Most half-open sessions one source address holds: half the half-open
/// area, so that one source never fills it, yet a single console host can
/// still run a handshake for every established slot at once.
pub const MAX_HALF_OPEN_PER_SOURCE: usize = MAX_HALF_OPEN / 2;
/// Evicted session IDs remembered (until the evicted session's own
/// deadline), to refuse their RAKP messages with "insufficient resources"
/// rather than "invalid session ID".
const EVICTED_REMEMBERED: usize = 512;
/// Entries below which storage is never shrunk.
const KEEP_CAPACITY: usize = 16;

/// Longest setup timeout: a half-open session is a few round trips old.
pub const MAX_SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest idle timeout.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Timeouts of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a session may stay half-open (at most
    /// [`MAX_SETUP_TIMEOUT`]).
    pub setup: Duration,
    /// How long an established session may stay silent (at most
    /// [`MAX_IDLE_TIMEOUT`]).
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

impl Timeouts {
    /// When a half-open session touched at `now` expires.
    pub fn setup_deadline(&self, now: Instant) -> Instant {
        deadline(now, self.setup.min(MAX_SETUP_TIMEOUT))
    }

    /// When an established session active at `now` expires.
    pub fn idle_deadline(&self, now: Instant) -> Instant {
        deadline(now, self.idle.min(MAX_IDLE_TIMEOUT))
    }
}

/// `now + d`, which cannot overflow for the bounded timeouts; if the clock
/// itself is near its end, "now" (expire at once) rather than a panic.
fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

/// A session in its handshake.
#[derive(Debug)]
pub struct HalfOpenEntry {
    /// Our session ID (SIDc), never zero.
    pub id: u32,
    /// Creation order, for eviction.
    opened: u64,
    /// The source it is counted against (see [`source_of`]).
    source: IpAddr,
    /// When it is reaped.
    pub deadline: Instant,
    /// The handshake state.
    pub state: HalfOpen,
}

/// The source a half-open session is counted against: the sender's IP
/// address, IPv4-mapped addresses as IPv4, and IPv6 addresses by /64, since
/// one host commonly holds a whole /64.
pub fn source_of(addr: SocketAddr) -> IpAddr {
    match addr.ip().to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// What a handshake step makes of a half-open session (see
/// [`SessionTable::step`]).
#[derive(Debug)]
pub enum Next {
    /// It stays half-open in this state. The deadline given, if any, is
    /// taken only when this step is the session's first to reach RAKP2:
    /// a repeated or different RAKP1 never extends its life again, or a
    /// sender could keep it for ever.
    Keep(HalfOpen, Option<Instant>),
    /// Its handshake completed: the session, where its console is and when
    /// it expires unless it sees traffic.
    Establish(Box<Established>, SocketAddr, Instant),
    /// Its handshake failed or was abandoned: it goes.
    Remove,
}

/// What a handshake step did to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stepped {
    /// The session is still half-open.
    Kept,
    /// The session is established, with this handle.
    Established(u8),
    /// The session is gone: its handshake failed or was abandoned.
    Removed,
    /// The session was to be established but there was no room or no
    /// handle left; it is gone.
    NoRoom,
}

/// Why there is no half-open session to step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absent {
    /// It was past its deadline (the timer had not run yet) and has now
    /// been reaped.
    Expired,
    /// It was evicted recently to make room for a newer one.
    Evicted,
    /// No such session.
    Unknown,
}

/// An established session.
#[derive(Debug)]
pub struct Session {
    /// Our session ID (SIDc), never zero.
    pub id: u32,
    /// Session handle reported by Get Session Info, 1..=255.
    pub handle: u8,
    /// Where the console last sent an authenticated packet from.
    pub peer: SocketAddr,
    /// When the session expires unless it sees traffic.
    pub deadline: Instant,
    /// Keys, sequence numbers, privilege and reply cache.
    pub established: Box<Established>,
}

/// Why there is no room for a new session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// Every slot holds an established session.
    Established,
    /// The process-wide budget is taken by other nodes' sessions, and this
    /// node has no half-open session to recycle.
    Budget,
}

/// A new half-open session's ID, and the one evicted to make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The new session's ID.
    pub id: u32,
    /// The half-open session that made room, if any.
    pub evicted: Option<u32>,
}

/// The sessions of one BMC.
#[derive(Debug)]
pub struct SessionTable {
    half_open: Vec<HalfOpenEntry>,
    /// Half-open sessions by source, kept in step with `half_open`.
    sources: BTreeMap<IpAddr, usize>,
    established: Vec<Session>,
    evicted: VecDeque<(u32, Instant)>,
    next_opened: u64,
    max_established: usize,
    budget: Arc<SessionBudget>,
    /// Shared-pool slots this table holds: always the session count beyond
    /// the node's reserve.
    pooled: usize,
}

impl Default for SessionTable {
    fn default() -> Self {
        Self::new(MAX_ESTABLISHED, Arc::new(SessionBudget::unlimited()))
    }
}

impl Drop for SessionTable {
    fn drop(&mut self) {
        self.budget.give_back(self.pooled);
    }
}

impl SessionTable {
    /// An empty table for at most `max_established` (1..=255) established
    /// sessions, drawing on `budget`.
    pub fn new(max_established: usize, budget: Arc<SessionBudget>) -> Self {
        SessionTable {
            half_open: Vec::new(),
            sources: BTreeMap::new(),
            established: Vec::new(),
            evicted: VecDeque::new(),
            next_opened: 0,
            max_established: max_established.clamp(1, MAX_ESTABLISHED),
            budget,
            pooled: 0,
        }
    }

    /// Number of sessions, half-open ones included.
    pub fn len(&self) -> usize {
        self.half_open.len() + self.established.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of established sessions.
    pub fn established(&self) -> usize {
        self.established.len()
    }

    /// Number of half-open sessions.
    pub fn half_open(&self) -> usize {
        self.half_open.len()
    }

    /// The established-session limit.
    pub fn max_established(&self) -> usize {
        self.max_established
    }

    /// Whether one more session can be established.
    pub fn can_establish(&self) -> bool {
        self.established.len() < self.max_established
    }

    /// The established session with our ID `id`.
    pub fn get(&self, id: u32) -> Option<&Session> {
        self.established.iter().find(|s| s.id == id)
    }

    /// The established session with our ID `id`.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Session> {
        self.established.iter_mut().find(|s| s.id == id)
    }

    /// The half-open session with our ID `id`.
    pub fn half_open_entry(&self, id: u32) -> Option<&HalfOpenEntry> {
        self.half_open.iter().find(|s| s.id == id)
    }

    /// Whether `id` names any session.
    pub fn contains(&self, id: u32) -> bool {
        self.get(id).is_some() || self.half_open.iter().any(|s| s.id == id)
    }

    /// Whether `id` was a half-open session evicted recently.
    pub fn was_evicted(&self, id: u32) -> bool {
        self.evicted.iter().any(|(e, _)| *e == id)
    }

    /// The established session with handle `handle`.
    pub fn by_handle(&self, handle: u8) -> Option<&Session> {
        self.established.iter().find(|s| s.handle == handle)
    }

    /// The `n`th (1-based) established session, in handle order.
    pub fn nth_established(&self, n: usize) -> Option<&Session> {
        let mut active: Vec<&Session> = self.established.iter().collect();
        active.sort_by_key(|s| s.handle);
        n.checked_sub(1).and_then(|i| active.get(i).copied())
    }

    /// The IDs of the established sessions.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.established.iter().map(|s| s.id)
    }

    /// Adds a half-open session for a console at `from`, evicting another
    /// if there is no room, with a fresh random ID; `state` builds it (and
    /// its reply) from the ID. `Err` when there is no room and nothing to
    /// evict.
    pub fn open(
        &mut self,
        rng: &mut dyn Entropy,
        deadline: Instant,
        from: SocketAddr,
        state: impl FnOnce(u32) -> HalfOpen,
    ) -> Result<Opened, Full> {
        if !self.can_establish() {
            return Err(Full::Established);
        }
        let Some(id) = self.fresh_id(rng) else {
            // Eight random IDs all taken: not a real table. Refuse rather
            // than loop.
            return Err(Full::Budget);
        };
        let source = source_of(from);
        let own = self.sources.get(&source).copied().unwrap_or(0);
        let evicted = if own >= MAX_HALF_OPEN_PER_SOURCE || self.half_open.len() >= MAX_HALF_OPEN {
            self.evict_for(source)
        } else if self.take_slot() {
            None
        } else {
            match self.evict_for(source) {
                Some(e) => Some(e),
                None => return Err(Full::Budget),
            }
        };
        self.next_opened += 1;
        self.insert_half_open(HalfOpenEntry {
            id,
            opened: self.next_opened,
            source,
            deadline,
            state: state(id),
        });
        Ok(Opened { id, evicted })
    }

    fn insert_half_open(&mut self, entry: HalfOpenEntry) {
        *self.sources.entry(entry.source).or_default() += 1;
        self.half_open.push(entry);
    }

    /// Takes out the `i`th half-open session; its budget slot stays held.
    fn take_half_open(&mut self, i: usize) -> HalfOpenEntry {
        let entry = self.half_open.swap_remove(i);
        uncount(&mut self.sources, entry.source);
        entry
    }

    /// A random non-zero ID no session has.
    fn fresh_id(&self, rng: &mut dyn Entropy) -> Option<u32> {
        (0..8).find_map(|_| {
            let mut b = [0u8; 4];
            rng.fill(&mut b);
            let id = u32::from_le_bytes(b);
            (id != 0 && !self.contains(id)).then_some(id)
        })
    }

    /// Removes the half-open session to evict for a new one from
    /// `source` (its budget slot passes to the caller) and remembers its
    /// ID. The victim comes from `source` itself if it would then hold as
    /// many as any other source (or its limit), else from the sources that
    /// hold the most; among those, the oldest still waiting for RAKP1 goes
    /// first, then the oldest.
    fn evict_for(&mut self, source: IpAddr) -> Option<u32> {
        let mut own = 0;
        let (mut least, mut most) = (usize::MAX, 0);
        for (s, n) in &self.sources {
            if *s == source {
                own = *n;
            } else {
                least = least.min(*n);
                most = most.max(*n);
            }
        }
        let from_own = own > 0 && (own + 1 >= most || own >= MAX_HALF_OPEN_PER_SOURCE);
        // The sources that hold the most, sorted (the map is); none when
        // every source does, as in a flood from many addresses, so that a
        // flood costs two passes over the table per Open Session.
        let top: Vec<IpAddr> = if from_own || (own == 0 && least == most) {
            Vec::new()
        } else {
            let top = self.sources.iter().filter(|(_, n)| **n == most);
            top.map(|(s, _)| *s).collect()
        };
        let i = self
            .half_open
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                if from_own {
                    s.source == source
                } else {
                    top.is_empty() || top.binary_search(&s.source).is_ok()
                }
            })
            .min_by_key(|(_, s)| (s.state.expects_rakp3(), s.opened))
            .map(|(i, _)| i)?;
        let gone = self.take_half_open(i);
        if self.evicted.len() >= EVICTED_REMEMBERED {
            self.evicted.pop_front();
        }
        self.evicted.push_back((gone.id, gone.deadline));
        Some(gone.id)
    }

    /// Takes the budget slot for one more session.
    fn take_slot(&mut self) -> bool {
        if self.len() < self.budget.reserve() {
            return true;
        }
        if self.budget.try_take() {
            self.pooled += 1;
            return true;
        }
        false
    }

    /// Gives back the slots the sessions no longer need, and the storage.
    fn rebalance(&mut self) {
        let needed = self.len().saturating_sub(self.budget.reserve());
        if self.pooled > needed {
            self.budget.give_back(self.pooled - needed);
            self.pooled = needed;
        }
        shrink(&mut self.half_open);
        shrink(&mut self.established);
        if self.evicted.capacity() > KEEP_CAPACITY
            && self.evicted.len() * 4 < self.evicted.capacity()
        {
            self.evicted.shrink_to(self.evicted.len() * 2);
        }
    }

    /// Runs one handshake step on half-open session `id`: `step` takes
    /// its state by value and says what the session becomes ([`Next`]),
    /// and the table keeps, establishes or removes it accordingly. The
    /// session is out of the table only while `step` runs, so no state is
    /// ever missing from an entry and none can be used twice. A session
    /// past its deadline at `now` is reaped instead of stepped.
    pub fn step<R>(
        &mut self,
        id: u32,
        now: Instant,
        step: impl FnOnce(HalfOpen) -> (Next, R),
    ) -> Result<(Stepped, R), Absent> {
        let Some(i) = self.half_open.iter().position(|s| s.id == id) else {
            return Err(if self.was_evicted(id) {
                Absent::Evicted
            } else {
                Absent::Unknown
            });
        };
        // Its budget slot stays held until we know where the session goes.
        let HalfOpenEntry {
            id,
            opened,
            source,
            deadline,
            state,
        } = self.take_half_open(i);
        if deadline <= now {
            self.rebalance();
            return Err(Absent::Expired);
        }
        let waited_rakp1 = !state.expects_rakp3();
        let (next, r) = step(state);
        let stepped = match next {
            Next::Keep(state, refreshed) => {
                let deadline = match refreshed {
                    Some(d) if waited_rakp1 && state.expects_rakp3() => d,
                    _ => deadline,
                };
                self.insert_half_open(HalfOpenEntry {
                    id,
                    opened,
                    source,
                    deadline,
                    state,
                });
                Stepped::Kept
            }
            Next::Establish(established, peer, deadline) => {
                match self.place(id, established, peer, deadline) {
                    Ok(handle) => Stepped::Established(handle),
                    Err(_) => {
                        self.rebalance();
                        Stepped::NoRoom
                    }
                }
            }
            Next::Remove => {
                self.rebalance();
                Stepped::Removed
            }
        };
        Ok((stepped, r))
    }

    /// Turns half-open session `id` into an established one with the
    /// lowest free handle; hands the session back if it cannot (the
    /// half-open session then stays).
    pub fn establish(
        &mut self,
        id: u32,
        established: Box<Established>,
        peer: SocketAddr,
        deadline: Instant,
    ) -> Result<u8, Box<Established>> {
        let Some(i) = self.half_open.iter().position(|s| s.id == id) else {
            return Err(established);
        };
        if self.free_handle().is_none() || !self.can_establish() {
            return Err(established);
        }
        // The half-open session's budget slot passes to the new one.
        self.take_half_open(i);
        self.place(id, established, peer, deadline)
    }

    /// The lowest session handle not in use.
    fn free_handle(&self) -> Option<u8> {
        (1..=u8::MAX).find(|h| self.by_handle(*h).is_none())
    }

    /// Adds an established session in the budget slot of the half-open
    /// session it was, which the caller has taken out of the table.
    fn place(
        &mut self,
        id: u32,
        established: Box<Established>,
        peer: SocketAddr,
        deadline: Instant,
    ) -> Result<u8, Box<Established>> {
        let (Some(handle), true) = (self.free_handle(), self.can_establish()) else {
            return Err(established);
        };
        self.established.push(Session {
            id,
            handle,
            peer,
            deadline,
            established,
        });
        Ok(handle)
    }

    /// Removes established session `id`.
    pub fn remove(&mut self, id: u32) -> Option<Session> {
        let i = self.established.iter().position(|s| s.id == id)?;
        let s = self.established.swap_remove(i);
        self.rebalance();
        Some(s)
    }

    /// Removes every session; `closed` sees each established one's ID.
    /// Returns the number of half-open sessions removed.
    pub fn clear(&mut self, mut closed: impl FnMut(u32)) -> usize {
        for s in self.established.drain(..) {
            closed(s.id);
        }
        let half_open = self.half_open.len();
        self.half_open.clear();
        self.sources.clear();
        self.rebalance();
        half_open
    }

    /// Removes every session whose deadline has passed; `expired` sees
    /// each established one's ID. Returns the number of half-open sessions
    /// removed.
    pub fn expire(&mut self, now: Instant, mut expired: impl FnMut(u32)) -> usize {
        let before = self.half_open.len();
        let sources = &mut self.sources;
        self.half_open.retain(|s| {
            let alive = s.deadline > now;
            if !alive {
                uncount(sources, s.source);
            }
            alive
        });
        self.evicted.retain(|(_, deadline)| *deadline > now);
        let half_open = before - self.half_open.len();
        self.established.retain(|s| {
            let alive = s.deadline > now;
            if !alive {
                expired(s.id);
            }
            alive
        });
        self.rebalance();
        half_open
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let half_open = self.half_open.iter().map(|s| s.deadline);
        let established = self.established.iter().map(|s| s.deadline);
        half_open.chain(established).min()
    }

    /// Entries the table has storage for, for tests of its memory.
    pub fn capacity(&self) -> usize {
        self.half_open.capacity() + self.established.capacity() + self.evicted.capacity()
    }
}

/// One half-open session fewer from `source`.
fn uncount(sources: &mut BTreeMap<IpAddr, usize>, source: IpAddr) {
    if let Some(n) = sources.get_mut(&source) {
        *n -= 1;
        if *n == 0 {
            sources.remove(&source);
        }
    }
}

/// Frees most of a vector's storage once it is mostly empty.
fn shrink<T>(v: &mut Vec<T>) {
    if v.capacity() > KEEP_CAPACITY && v.len() * 4 < v.capacity() {
        v.shrink_to(v.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cipher_suite::IMPLEMENTED;
    use crate::crypto::AuthHash;
    use crate::crypto::MacOutput;
    use crate::crypto::keys::SessionKeys;
    use crate::session::handshake::ExpectRakp1;
    use crate::wire::ids::Privilege;

    struct Counter(u32);

    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            self.0 += 1;
            let b = self.0.to_le_bytes();
            for (i, x) in buf.iter_mut().enumerate() {
                *x = b[i % 4];
            }
        }
    }

    /// A console of its own for each `port`: a source address each.
    fn peer(port: u16) -> SocketAddr {
        let [hi, lo] = port.to_be_bytes();
        SocketAddr::from(([10, 0, hi, lo], port))
    }

    fn waiting_rakp1(port: u16) -> HalfOpen {
        HalfOpen::ExpectRakp1(ExpectRakp1 {
            opener: peer(port),
            console_session_id: u32::from(port),
            suite: &IMPLEMENTED[2],
            max_privilege: Privilege::Administrator,
        })
    }

    fn session() -> Box<Established> {
        let sik = MacOutput::from_slice(&[1; 20]);
        let keys = SessionKeys::derive(AuthHash::Sha1, &sik);
        let echo = (MacOutput::from_slice(&[]), MacOutput::from_slice(&[]));
        Box::new(
            Established::new(1, &IMPLEMENTED[2], &keys, 1, Privilege::User, echo).expect("suite 3"),
        )
    }

    /// Moves half-open `id` to "waiting for RAKP3" through a real RAKP1.
    fn progress(t: &mut SessionTable, id: u32) {
        let deadline = t.half_open_entry(id).expect("half-open").deadline;
        let before = deadline.checked_sub(Duration::from_nanos(1)).expect("time");
        let stepped = t.step(id, before, |state| {
            let HalfOpen::ExpectRakp1(s) = state else {
                panic!("waiting for RAKP1");
            };
            (Next::Keep(HalfOpen::ExpectRakp3(after_rakp1(s)), None), ())
        });
        assert_eq!(stepped, Ok((Stepped::Kept, ())));
    }

    fn after_rakp1(s: ExpectRakp1) -> crate::session::handshake::ExpectRakp3 {
        use crate::session::handshake::HandshakeCtx;
        use crate::user::Users;
        use crate::wire::rakp::Rakp1;
        let mut users = Users::new();
        users
            .add("admin", b"password", Privilege::Administrator)
            .expect("user");
        let ctx = HandshakeCtx {
            users: &users,
            kg: None,
            bmc_guid: &[0; 16],
            bmc_session_id: 1,
            from: s.opener,
        };
        let msg = Rakp1 {
            tag: 0,
            bmc_session_id: 1,
            console_random: [0; 16],
            role: 0x14,
            user_name: b"admin",
        };
        let mut out = Vec::new();
        match HalfOpen::ExpectRakp1(s)
            .on_rakp1(&msg, &ctx, [0; 16], &mut out)
            .next
        {
            crate::session::handshake::NextState::HalfOpen(HalfOpen::ExpectRakp3(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn evicts_the_oldest_waiting_for_rakp1_first_never_established() {
        let now = Instant::now();
        let mut t = SessionTable::new(2, Arc::new(SessionBudget::unlimited()));
        let mut rng = Counter(0);
        let mut ids = Vec::new();
        for port in 0..MAX_HALF_OPEN as u16 {
            let o = t
                .open(&mut rng, now, peer(port), |_| waiting_rakp1(port))
                .expect("room");
            assert_eq!(o.evicted, None);
            ids.push(o.id);
        }
        // The first two progress to RAKP3; the third is established.
        progress(&mut t, ids[0]);
        progress(&mut t, ids[1]);
        assert_eq!(t.establish(ids[2], session(), peer(2), now).ok(), Some(1));
        // A full half-open area: the oldest still waiting for RAKP1 goes
        // (ids[3]), not the older ones waiting for RAKP3 nor the
        // established one.
        let o = t
            .open(&mut rng, now, peer(9000), |_| waiting_rakp1(9000))
            .expect("room");
        assert_eq!(o.evicted, None, "establishing ids[2] freed a slot");
        let o = t
            .open(&mut rng, now, peer(9001), |_| waiting_rakp1(9001))
            .expect("room");
        assert_eq!(o.evicted, Some(ids[3]));
        assert!(t.was_evicted(ids[3]));
        let o = t
            .open(&mut rng, now, peer(9002), |_| waiting_rakp1(9002))
            .expect("room");
        assert_eq!(o.evicted, Some(ids[4]));
        assert_eq!(t.half_open(), MAX_HALF_OPEN);
        assert!(t.get(ids[2]).is_some(), "established sessions stay");
        // With only sessions waiting for RAKP3 left, the oldest of them.
        let mut t = SessionTable::new(2, Arc::new(SessionBudget::new(2, 1, 0).expect("budget")));
        let a = t
            .open(&mut rng, now, peer(1), |_| waiting_rakp1(1))
            .expect("a")
            .id;
        let b = t
            .open(&mut rng, now, peer(2), |_| waiting_rakp1(2))
            .expect("b")
            .id;
        progress(&mut t, a);
        progress(&mut t, b);
        let c = t
            .open(&mut rng, now, peer(3), |_| waiting_rakp1(3))
            .expect("c");
        assert_eq!(c.evicted, Some(a));
    }

    #[test]
    fn one_source_recycles_its_own_beyond_its_share() {
        let now = Instant::now();
        let mut t = SessionTable::new(4, Arc::new(SessionBudget::unlimited()));
        let mut rng = Counter(0);
        let other = t
            .open(&mut rng, now, peer(1), |_| waiting_rakp1(1))
            .expect("room")
            .id;
        // One host, many ports: one source.
        let host = |port: u16| SocketAddr::from(([192, 0, 2, 9], port));
        let mut first = None;
        for port in 0..MAX_HALF_OPEN_PER_SOURCE as u16 {
            let o = t.open(&mut rng, now, host(port), |_| waiting_rakp1(port));
            assert_eq!(o.expect("room").evicted, None);
            first.get_or_insert(o.expect("room").id);
        }
        let o = t.open(&mut rng, now, host(9), |_| waiting_rakp1(9));
        assert_eq!(o.expect("room").evicted, first, "its own oldest");
        assert!(t.half_open_entry(other).is_some());
        assert_eq!(t.half_open(), MAX_HALF_OPEN_PER_SOURCE + 1);
        // IPv6 sources are counted by /64; IPv4-mapped ones as IPv4.
        let v6 = |last: u16| SocketAddr::from(([0x2001, 0xdb8, 0, 1, 0, 0, 0, last], 623));
        assert_eq!(source_of(v6(1)), source_of(v6(2)));
        let mapped = SocketAddr::from(([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0209], 623));
        assert_eq!(source_of(mapped), source_of(host(1)));
    }

    #[test]
    fn a_repeated_rakp1_never_extends_a_half_open_session() {
        let now = Instant::now();
        let mut t = SessionTable::default();
        let mut rng = Counter(0);
        let first = now + Duration::from_secs(5);
        let id = t
            .open(&mut rng, first, peer(1), |_| waiting_rakp1(1))
            .expect("room")
            .id;
        // The first RAKP1 extends it once.
        let later = now + Duration::from_secs(9);
        let stepped = t.step(id, now, |state| {
            let HalfOpen::ExpectRakp1(s) = state else {
                panic!("waiting for RAKP1");
            };
            let next = HalfOpen::ExpectRakp3(after_rakp1(s));
            (Next::Keep(next, Some(later)), ())
        });
        assert_eq!(stepped, Ok((Stepped::Kept, ())));
        assert_eq!(t.half_open_entry(id).map(|e| e.deadline), Some(later));
        // Another RAKP1 does not.
        let stepped = t.step(id, now, |state| {
            (Next::Keep(state, Some(later + Duration::from_secs(4))), ())
        });
        assert_eq!(stepped, Ok((Stepped::Kept, ())));
        assert_eq!(t.half_open_entry(id).map(|e| e.deadline), Some(later));
        assert_eq!(
            t.step(id, later, |s| (Next::Keep(s, None), ())),
            Err(Absent::Expired)
        );
        assert_eq!(t.half_open(), 0);
    }

    #[test]
    fn only_established_sessions_fill_the_table() {
        let now = Instant::now();
        let mut t = SessionTable::new(1, Arc::new(SessionBudget::unlimited()));
        let mut rng = Counter(0);
        let a = t
            .open(&mut rng, now, peer(1), |_| waiting_rakp1(1))
            .expect("a")
            .id;
        let b = t
            .open(&mut rng, now, peer(2), |_| waiting_rakp1(2))
            .expect("b")
            .id;
        assert_eq!(t.establish(a, session(), peer(1), now).ok(), Some(1));
        assert!(!t.can_establish());
        assert!(
            t.establish(b, session(), peer(2), now).is_err(),
            "no second established session"
        );
        assert_eq!(
            t.open(&mut rng, now, peer(3), |_| waiting_rakp1(3)),
            Err(Full::Established)
        );
        assert!(t.remove(a).is_some());
        assert_eq!(
            t.establish(b, session(), peer(2), now).ok(),
            Some(1),
            "handle reused"
        );
    }

    #[test]
    fn the_global_cap_holds_across_tables_and_reserves_stay_usable() {
        let now = Instant::now();
        let mut rng = Counter(0);
        // Three nodes, 2 reserved each, 2 shared: at most 8 sessions.
        let budget = Arc::new(SessionBudget::new(8, 3, 2).expect("budget"));
        let mut a = SessionTable::new(255, budget.clone());
        let mut b = SessionTable::new(255, budget.clone());
        let mut c = SessionTable::new(255, budget.clone());
        // A flood on a: its reserve, then the whole shared pool, then it
        // recycles its own half-open sessions.
        let mut first = None;
        for port in 0..4 {
            let o = a
                .open(&mut rng, now, peer(port), |_| waiting_rakp1(port))
                .expect("a");
            assert_eq!(o.evicted, None);
            first.get_or_insert(o.id);
        }
        assert_eq!(budget.shared_in_use(), 2);
        let o = a
            .open(&mut rng, now, peer(99), |_| waiting_rakp1(99))
            .expect("recycled");
        assert_eq!(o.evicted, first);
        assert_eq!(a.len(), 4);
        // b and c still have their reserves.
        for t in [&mut b, &mut c] {
            for port in 0..2 {
                t.open(&mut rng, now, peer(port), |_| waiting_rakp1(port))
                    .expect("reserve");
            }
        }
        // With the pool empty, c recycles one of its own half-open sessions
        // rather than exceed the cap.
        let o = c
            .open(&mut rng, now, peer(7), |_| waiting_rakp1(7))
            .expect("recycle");
        assert!(o.evicted.is_some());
        assert_eq!(a.len() + b.len() + c.len(), 8, "never above the cap");
        // A node whose sessions are all established cannot recycle: 01.
        let ids: Vec<u32> = b.half_open.iter().map(|s| s.id).collect();
        for (i, id) in ids.into_iter().enumerate() {
            b.establish(id, session(), peer(i as u16), now)
                .expect("establish");
        }
        assert_eq!(
            b.open(&mut rng, now, peer(5), |_| waiting_rakp1(5)),
            Err(Full::Budget)
        );
        // Sessions ending give their slots back.
        let later = now + Duration::from_secs(1);
        assert_eq!(a.expire(later, |_| {}), 4);
        assert_eq!(budget.shared_in_use(), 0);
        b.open(&mut rng, now, peer(5), |_| waiting_rakp1(5))
            .expect("room again");
        drop(b);
        assert_eq!(
            budget.shared_in_use(),
            0,
            "a dropped table returns its slots"
        );
    }

    #[test]
    fn storage_shrinks_when_sessions_go() {
        let now = Instant::now();
        let mut t = SessionTable::new(255, Arc::new(SessionBudget::unlimited()));
        let mut rng = Counter(0);
        for port in 0..2000u16 {
            t.open(&mut rng, now, peer(port), |_| waiting_rakp1(port))
                .expect("room");
        }
        assert!(t.capacity() >= MAX_HALF_OPEN);
        assert_eq!(
            t.expire(now + Duration::from_secs(1), |_| {}),
            MAX_HALF_OPEN
        );
        assert!(t.capacity() <= 3 * KEEP_CAPACITY, "{}", t.capacity());
        assert!(!t.was_evicted(1), "evicted IDs are forgotten once stale");
    }

    #[test]
    fn deadlines_never_overflow() {
        let t = Timeouts {
            setup: Duration::MAX,
            idle: Duration::MAX,
        };
        let now = Instant::now();
        assert_eq!(t.setup_deadline(now), now + MAX_SETUP_TIMEOUT);
        assert_eq!(t.idle_deadline(now), now + MAX_IDLE_TIMEOUT);
    }
}
