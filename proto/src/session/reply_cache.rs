//! The per-session cache of recent replies, which makes retransmissions
//! harmless (IPMI v2.0 section 6.12.14 on duplicate requests).
//!
//! ipmitool and pyghmi retransmit a request with the same rqSeq, command and
//! data (in a new packet with a new session sequence number). Answering such
//! a retransmission from the cache, re-sealed with a fresh sequence number,
//! means a lost reply costs one round trip and a Chassis Control is never
//! executed twice. Entries live inline: no allocation per request.
//!
//! Only a true retransmission is answered so: the same message bytes, at
//! the privilege the reply was made for, within [`RETRANSMIT_WINDOW`] of
//! the reply. rqSeq is six bits and consoles reuse it (a new ipmitool
//! process starts again from the same value), so an older entry, or one
//! made before Set Session Privilege changed what the request may do, is a
//! different request that happens to look the same.

use std::time::{Duration, Instant};

use crate::wire::ids::Privilege;
use crate::wire::message::Request;

/// How long after a reply a retransmission of its request is answered from
/// the cache: longer than the consoles' retransmission timeouts (ipmitool
/// and FreeIPMI wait 1 to 2 s, pyghmi a few), shorter than any console
/// takes to come round to the same rqSeq with a new request.
pub const RETRANSMIT_WINDOW: Duration = Duration::from_secs(5);

/// Requests with more data than this are not cached (none of the commands
/// clients retransmit come close).
const MAX_KEY_DATA: usize = 24;
/// Longest cached response message (the longest we send is under 40).
const MAX_MESSAGE: usize = 64;
/// How many recent replies a session remembers.
const ENTRIES: usize = 4;

/// What identifies a retransmission: everything the console keeps the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestKey {
    privilege: u8,
    netfn_lun: u8,
    seq_lun: u8,
    cmd: u8,
    len: u8,
    data: [u8; MAX_KEY_DATA],
}

impl RequestKey {
    /// The key of a request made at `privilege`, or `None` if it is too
    /// long to remember.
    pub fn of(request: &Request<'_>, privilege: Privilege) -> Option<Self> {
        if request.data.len() > MAX_KEY_DATA {
            return None;
        }
        let mut data = [0u8; MAX_KEY_DATA];
        data[..request.data.len()].copy_from_slice(request.data);
        Some(RequestKey {
            privilege: privilege.level(),
            netfn_lun: request.netfn.0 << 2 | request.rs_lun,
            seq_lun: request.rq_seq << 2 | request.rq_lun,
            cmd: request.cmd,
            len: request.data.len() as u8,
            data,
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: RequestKey,
    /// When the reply was sent.
    at: Instant,
    len: u8,
    message: [u8; MAX_MESSAGE],
}

/// A small ring of recent (request, response message) pairs.
#[derive(Clone, Debug, Default)]
pub struct ReplyCache {
    entries: [Option<Entry>; ENTRIES],
    next: usize,
}

impl ReplyCache {
    /// The cached response message for `key`, if its reply was sent within
    /// [`RETRANSMIT_WINDOW`] before `now`.
    pub fn get(&self, key: &RequestKey, now: Instant) -> Option<&[u8]> {
        self.entries
            .iter()
            .flatten()
            .find(|e| e.key == *key && now.saturating_duration_since(e.at) <= RETRANSMIT_WINDOW)
            .map(|e| &e.message[..usize::from(e.len)])
    }

    /// Remembers the response message sent at `now` for `key`.
    pub fn insert(&mut self, key: RequestKey, message: &[u8], now: Instant) {
        if message.len() > MAX_MESSAGE {
            return;
        }
        // A newer request with the same key (rqSeq wrapped) replaces it.
        let slot = self
            .entries
            .iter()
            .position(|e| e.is_some_and(|e| e.key == key))
            .unwrap_or_else(|| {
                let s = self.next;
                self.next = (self.next + 1) % ENTRIES;
                s
            });
        let mut stored = [0u8; MAX_MESSAGE];
        stored[..message.len()].copy_from_slice(message);
        self.entries[slot] = Some(Entry {
            key,
            at: now,
            len: message.len() as u8,
            message: stored,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ids::NetFn;

    fn req(seq: u8, data: &[u8]) -> Request<'_> {
        Request {
            rs_addr: 0x20,
            netfn: NetFn::CHASSIS,
            rs_lun: 0,
            rq_addr: 0x81,
            rq_seq: seq,
            rq_lun: 0,
            cmd: 0x02,
            data,
        }
    }

    fn key(seq: u8, data: &[u8]) -> RequestKey {
        RequestKey::of(&req(seq, data), Privilege::Operator).expect("key")
    }

    #[test]
    fn finds_retransmissions_only() {
        let now = Instant::now();
        let mut c = ReplyCache::default();
        let k = key(5, &[1]);
        c.insert(k, b"reply", now);
        assert_eq!(c.get(&k, now), Some(&b"reply"[..]));
        assert_eq!(c.get(&key(5, &[0]), now), None);
        assert_eq!(c.get(&key(6, &[1]), now), None);
        let admin = RequestKey::of(&req(5, &[1]), Privilege::Administrator);
        assert_eq!(c.get(&admin.expect("key"), now), None, "other privilege");
        let late = now + RETRANSMIT_WINDOW;
        assert_eq!(c.get(&k, late), Some(&b"reply"[..]));
        let too_late = late + Duration::from_millis(1);
        assert_eq!(c.get(&k, too_late), None, "expired");
    }

    #[test]
    fn forgets_the_oldest() {
        let now = Instant::now();
        let mut c = ReplyCache::default();
        let keys: Vec<_> = (0..5).map(|s| key(s, &[])).collect();
        for k in &keys {
            c.insert(*k, b"r", now);
        }
        assert_eq!(c.get(&keys[0], now), None);
        assert!(keys[1..].iter().all(|k| c.get(k, now).is_some()));
        assert!(RequestKey::of(&req(1, &[0; 25]), Privilege::User).is_none());
    }
}
