//! The per-session cache of recent replies, which makes retransmissions
//! harmless (IPMI v2.0 section 6.12.14 on duplicate requests).
//!
//! ipmitool and pyghmi retransmit a request with the same rqSeq, command and
//! data (in a new packet with a new session sequence number). Answering such
//! a retransmission from the cache, re-sealed with a fresh sequence number,
//! means a lost reply costs one round trip and a Chassis Control is never
//! executed twice. Entries live inline: no allocation per request.

use crate::wire::message::Request;

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
    netfn_lun: u8,
    seq_lun: u8,
    cmd: u8,
    len: u8,
    data: [u8; MAX_KEY_DATA],
}

impl RequestKey {
    /// The key of a request, or `None` if it is too long to remember.
    pub fn of(request: &Request<'_>) -> Option<Self> {
        if request.data.len() > MAX_KEY_DATA {
            return None;
        }
        let mut data = [0u8; MAX_KEY_DATA];
        data[..request.data.len()].copy_from_slice(request.data);
        Some(RequestKey {
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
    /// The cached response message for `key`, if any.
    pub fn get(&self, key: &RequestKey) -> Option<&[u8]> {
        self.entries
            .iter()
            .flatten()
            .find(|e| e.key == *key)
            .map(|e| &e.message[..usize::from(e.len)])
    }

    /// Remembers the response message sent for `key`.
    pub fn insert(&mut self, key: RequestKey, message: &[u8]) {
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

    #[test]
    fn finds_retransmissions_only() {
        let mut c = ReplyCache::default();
        let k = RequestKey::of(&req(5, &[1])).expect("key");
        c.insert(k, b"reply");
        assert_eq!(c.get(&k), Some(&b"reply"[..]));
        let other_data = RequestKey::of(&req(5, &[0])).expect("key");
        assert_eq!(c.get(&other_data), None);
        let other_seq = RequestKey::of(&req(6, &[1])).expect("key");
        assert_eq!(c.get(&other_seq), None);
    }

    #[test]
    fn forgets_the_oldest() {
        let mut c = ReplyCache::default();
        let keys: Vec<_> = (0..5)
            .map(|s| RequestKey::of(&req(s, &[])).expect("key"))
            .collect();
        for k in &keys {
            c.insert(*k, b"r");
        }
        assert_eq!(c.get(&keys[0]), None);
        assert!(keys[1..].iter().all(|k| c.get(k).is_some()));
        assert!(RequestKey::of(&req(1, &[0; 25])).is_none());
    }
}
