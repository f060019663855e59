//! One active SOL payload instance: sequence numbers, acknowledgements,
//! retransmission and character accumulation (IPMI v2.0 sections 15.9 to
//! 15.12).
//!
//! Towards the console, characters from the machine are gathered until the
//! send threshold is reached or the accumulate interval has passed since
//! the first of them arrived, then sent in a packet numbered 1..=15
//! (wrapping, never 0). One packet is in flight at a time: it is sent again
//! every retry interval until the console acknowledges it, at most retry
//! count times, and then given up. A partial acknowledgement puts the
//! characters not accepted back in front, to go out at once under a new
//! number, as ipmitool expects; a NACK holds them back for one retry
//! interval.
//!
//! From the console, each data packet is acknowledged with an ACK-only
//! packet (sequence 0) naming it and how many characters were taken; ACKs
//! never carry data, because ipmitool does not acknowledge data that comes
//! in an ACK and would only see it on our retransmission. A packet that
//! repeats the last one's number is a retransmission (our ACK was lost):
//! it is acknowledged again and its characters are not delivered twice.

use std::collections::VecDeque;
use std::time::Instant;

use super::config::SolConfig;
use super::packet::{MAX_CHARACTERS, SolPacket, operation, status};
use crate::codec::Encode;
use crate::session::established::Protection;

/// Characters from the machine held for the console, at most: enough for
/// a screenful of boot messages while a console is slow to acknowledge.
pub const MAX_BUFFERED: usize = 64 * 1024;

/// Packets waiting to be sealed, at most; more means the engine is not
/// being drained, and the oldest go (a retransmission or the next ACK
/// recovers).
const MAX_QUEUED_PACKETS: usize = 64;

/// Our packet waiting for its acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
struct InFlight {
    sequence: u8,
    data: Vec<u8>,
    retries_left: u8,
    due: Instant,
}

/// One active SOL payload instance.
#[derive(Debug)]
pub struct SolStream {
    /// The session that activated it (our session ID).
    pub session_id: u32,
    /// The user that activated it.
    pub user_id: u8,
    /// How its packets are protected, as the activation asked.
    pub protection: Protection,
    outbound: VecDeque<u8>,
    in_flight: Option<InFlight>,
    next_sequence: u8,
    /// When the oldest character in `outbound` arrived.
    gathering_since: Option<Instant>,
    /// What is in `outbound` has already waited (it was left over from a
    /// full packet, or not accepted by the console): it goes without
    /// gathering more.
    ready: bool,
    /// After a NACK: nothing is sent before this.
    not_before: Option<Instant>,
    /// The console deasserted CTS: it asks us to pause.
    paused: bool,
    /// The console's last data packet: its number and what we accepted.
    last_inbound: Option<(u8, u8)>,
    packets: VecDeque<Vec<u8>>,
    given_up: u64,
}

impl SolStream {
    /// A stream activated by session `session_id` of user `user_id`.
    pub fn new(session_id: u32, user_id: u8, protection: Protection) -> Self {
        SolStream {
            session_id,
            user_id,
            protection,
            outbound: VecDeque::new(),
            in_flight: None,
            next_sequence: 1,
            gathering_since: None,
            ready: false,
            not_before: None,
            paused: false,
            last_inbound: None,
            packets: VecDeque::new(),
            given_up: 0,
        }
    }

    /// Room left for characters from the machine.
    pub fn room(&self) -> usize {
        MAX_BUFFERED.saturating_sub(self.outbound.len())
    }

    /// Packets given up after their retries, for counting.
    pub fn given_up(&self) -> u64 {
        self.given_up
    }

    /// Characters from the machine; returns how many were taken (all of
    /// them unless the buffer is full).
    pub fn machine_output(&mut self, now: Instant, data: &[u8], config: &SolConfig) -> usize {
        let n = data.len().min(self.room());
        if n == 0 {
            return 0;
        }
        if self.outbound.is_empty() {
            self.gathering_since = Some(now);
        }
        self.outbound.extend(&data[..n]);
        self.try_send(now, config);
        n
    }

    /// A packet from the console. Returns the characters for the machine:
    /// a prefix of the packet's data of at most `room` bytes, empty for a
    /// retransmission or an ACK-only packet.
    pub fn on_packet<'p>(
        &mut self,
        now: Instant,
        packet: &SolPacket<'p>,
        room: usize,
        config: &SolConfig,
    ) -> &'p [u8] {
        self.paused = packet.flags & operation::DEASSERT_CTS != 0;
        if packet.flags & operation::FLUSH_OUTBOUND != 0 {
            self.outbound.clear();
            self.gathering_since = None;
            self.ready = false;
            self.in_flight = None;
        }
        if packet.acks() {
            self.on_ack(now, packet, config);
        }
        let mut delivered: &'p [u8] = &[];
        if packet.sequence != 0 {
            let accepted = match self.last_inbound {
                Some((seq, accepted)) if seq == packet.sequence => accepted,
                _ => {
                    let n = packet.data.len().min(room).min(MAX_CHARACTERS);
                    delivered = &packet.data[..n];
                    n as u8
                }
            };
            self.last_inbound = Some((packet.sequence, accepted));
            // A plain ACK even when only part was taken: ipmitool resends
            // the rest of a partial ACK, and gives up on a NACK.
            self.queue(&SolPacket::ack(packet.sequence, accepted, 0));
        }
        self.try_send(now, config);
        delivered
    }

    fn on_ack(&mut self, now: Instant, packet: &SolPacket<'_>, config: &SolConfig) {
        let Some(f) = &self.in_flight else {
            return;
        };
        if f.sequence != packet.ack_sequence {
            // A late ACK of a packet already settled.
            return;
        }
        let Some(f) = self.in_flight.take() else {
            return;
        };
        let accepted = usize::from(packet.accepted).min(f.data.len());
        let rest = &f.data[accepted..];
        if !rest.is_empty() {
            for b in rest.iter().rev() {
                self.outbound.push_front(*b);
            }
            self.gathering_since.get_or_insert(now);
            self.ready = true;
        }
        if packet.is_nack() {
            self.not_before = now.checked_add(config.retry());
        }
    }

    /// When [`SolStream::on_timeout`] next has work.
    pub fn deadline(&self, config: &SolConfig) -> Option<Instant> {
        if let Some(f) = &self.in_flight {
            return Some(f.due);
        }
        if self.outbound.is_empty() || self.paused {
            return None;
        }
        if self.ready {
            return self.not_before.or(self.gathering_since);
        }
        let gathered = self
            .gathering_since
            .and_then(|t| t.checked_add(config.accumulate()));
        match (gathered, self.not_before) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Retransmits or gives up the packet in flight, and sends what has
    /// gathered long enough.
    pub fn on_timeout(&mut self, now: Instant, config: &SolConfig) {
        if let Some(f) = &mut self.in_flight
            && f.due <= now
        {
            if f.retries_left == 0 {
                self.in_flight = None;
                self.given_up += 1;
            } else {
                f.retries_left -= 1;
                f.due = now.checked_add(config.retry()).unwrap_or(now);
                let packet = SolPacket {
                    sequence: f.sequence,
                    ack_sequence: 0,
                    accepted: 0,
                    flags: 0,
                    data: &f.data,
                }
                .to_vec();
                self.push_packet(packet);
            }
        }
        self.try_send(now, config);
    }

    /// Sends the next packet if nothing is in flight and the characters
    /// waiting are enough, or have waited long enough.
    fn try_send(&mut self, now: Instant, config: &SolConfig) {
        if self.in_flight.is_some() || self.outbound.is_empty() || self.paused {
            return;
        }
        if self.not_before.is_some_and(|t| t > now) {
            return;
        }
        self.not_before = None;
        let waited = self
            .gathering_since
            .and_then(|t| t.checked_add(config.accumulate()))
            .is_none_or(|t| t <= now);
        if self.outbound.len() < config.threshold() && !waited && !self.ready {
            return;
        }
        let n = self.outbound.len().min(MAX_CHARACTERS);
        let data: Vec<u8> = self.outbound.drain(..n).collect();
        // What is left has waited for this packet: it follows as soon as
        // this one is acknowledged.
        self.ready = !self.outbound.is_empty();
        if self.outbound.is_empty() {
            self.gathering_since = None;
        }
        let sequence = self.next_sequence;
        self.next_sequence = if sequence >= 15 { 1 } else { sequence + 1 };
        let packet = SolPacket {
            sequence,
            ack_sequence: 0,
            accepted: 0,
            flags: 0,
            data: &data,
        }
        .to_vec();
        self.push_packet(packet);
        self.in_flight = Some(InFlight {
            sequence,
            data,
            retries_left: config.retry_count & 0x07,
            due: now.checked_add(config.retry()).unwrap_or(now),
        });
    }

    /// The packet telling the console that SOL is going away: it needs no
    /// acknowledgement.
    pub fn deactivating() -> Vec<u8> {
        SolPacket {
            sequence: 0,
            ack_sequence: 0,
            accepted: 0,
            flags: status::DEACTIVATING | status::TRANSFER_UNAVAILABLE,
            data: &[],
        }
        .to_vec()
    }

    fn queue(&mut self, p: &SolPacket<'_>) {
        self.push_packet(p.to_vec());
    }

    fn push_packet(&mut self, packet: Vec<u8>) {
        if self.packets.len() >= MAX_QUEUED_PACKETS {
            self.packets.pop_front();
        }
        self.packets.push_back(packet);
    }

    /// The next encoded SOL payload to seal and send to the console.
    pub fn poll_packet(&mut self) -> Option<Vec<u8>> {
        self.packets.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::codec::Decode;

    const BOTH: Protection = Protection {
        authenticated: true,
        encrypted: true,
    };

    fn stream() -> (SolStream, SolConfig, Instant) {
        (
            SolStream::new(7, 1, BOTH),
            SolConfig::default(),
            Instant::now(),
        )
    }

    fn packets(s: &mut SolStream) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| s.poll_packet()).collect()
    }

    fn ack(seq: u8, accepted: u8) -> SolPacket<'static> {
        SolPacket::ack(seq, accepted, 0)
    }

    #[test]
    fn a_keystroke_waits_the_accumulate_interval() {
        let (mut s, c, t) = stream();
        assert_eq!(s.machine_output(t, b"x", &c), 1);
        assert!(packets(&mut s).is_empty(), "below the threshold: gathered");
        let due = s.deadline(&c).expect("a deadline");
        assert_eq!(due, t + c.accumulate());
        s.on_timeout(due, &c);
        assert_eq!(packets(&mut s), vec![b"\x01\x00\x00\x00x".to_vec()]);
    }

    #[test]
    fn the_threshold_sends_at_once_and_one_packet_flies_at_a_time() {
        let (mut s, c, t) = stream();
        let burst = vec![b'a'; 300];
        s.machine_output(t, &burst, &c);
        let p = packets(&mut s);
        assert_eq!(p.len(), 1, "one in flight");
        let first = SolPacket::decode(&p[0]).expect("decodes");
        assert_eq!((first.sequence, first.data.len()), (1, 255));
        s.on_packet(t, &ack(1, 255), 1024, &c);
        let p = packets(&mut s);
        let second = SolPacket::decode(&p[0]).expect("decodes");
        assert_eq!((second.sequence, second.data.len()), (2, 45));
    }

    #[test]
    fn unacknowledged_data_is_sent_again_then_given_up() {
        let (mut s, mut c, t) = stream();
        c.retry_count = 2;
        s.machine_output(t, &[b'z'; 100], &c);
        let original = packets(&mut s);
        for _ in 0..2 {
            let now = s.deadline(&c).expect("retry due");
            s.on_timeout(now, &c);
            assert_eq!(packets(&mut s), original, "same number, same data");
        }
        let now = s.deadline(&c).expect("give-up due");
        s.on_timeout(now, &c);
        assert!(packets(&mut s).is_empty());
        assert_eq!(s.given_up(), 1);
        assert_eq!(s.deadline(&c), None);
    }

    #[test]
    fn a_partial_ack_resends_the_rest_under_a_new_number() {
        let (mut s, c, t) = stream();
        s.machine_output(t, &[b'q'; 100], &c);
        packets(&mut s);
        s.on_packet(t, &ack(1, 40), 1024, &c);
        let p = packets(&mut s);
        let again = SolPacket::decode(&p[0]).expect("decodes");
        assert_eq!((again.sequence, again.data.len()), (2, 60));
    }

    #[test]
    fn a_nack_holds_the_data_for_a_retry_interval() {
        let (mut s, c, t) = stream();
        s.machine_output(t, &[b'n'; 100], &c);
        packets(&mut s);
        let nack = SolPacket::ack(1, 0, operation::NACK);
        s.on_packet(t, &nack, 1024, &c);
        assert!(packets(&mut s).is_empty());
        let due = s.deadline(&c).expect("held, not dropped");
        assert!(due >= t + c.retry());
        s.on_timeout(due, &c);
        let p = packets(&mut s);
        assert_eq!(SolPacket::decode(&p[0]).expect("decodes").data.len(), 100);
    }

    #[test]
    fn console_data_is_acked_once_and_delivered_once() {
        let (mut s, c, t) = stream();
        let typed = SolPacket {
            sequence: 1,
            ack_sequence: 0,
            accepted: 0,
            flags: 0,
            data: b"ls\r",
        };
        assert_eq!(s.on_packet(t, &typed, 1024, &c), b"ls\r");
        assert_eq!(packets(&mut s), vec![vec![0, 1, 3, 0]]);
        // Our ACK was lost: the same packet again.
        assert_eq!(s.on_packet(t, &typed, 1024, &c), b"");
        assert_eq!(packets(&mut s), vec![vec![0, 1, 3, 0]]);
    }

    #[test]
    fn a_full_machine_queue_accepts_part() {
        let (mut s, c, t) = stream();
        let typed = SolPacket {
            sequence: 4,
            ack_sequence: 0,
            accepted: 0,
            flags: 0,
            data: b"abcdef",
        };
        assert_eq!(s.on_packet(t, &typed, 2, &c), b"ab");
        assert_eq!(packets(&mut s), vec![vec![0, 4, 2, 0]]);
    }

    #[test]
    fn sequence_numbers_wrap_past_fifteen_and_skip_zero() {
        let (mut s, c, t) = stream();
        let mut seen = Vec::new();
        for _ in 0..16 {
            s.machine_output(t, &[b'w'; 200], &c);
            let p = packets(&mut s);
            let seq = SolPacket::decode(&p[0]).expect("decodes").sequence;
            seen.push(seq);
            s.on_packet(t, &ack(seq, 200), 1024, &c);
        }
        assert_eq!(seen[14..], [15, 1]);
        assert!(!seen.contains(&0));
    }

    #[test]
    fn a_full_buffer_takes_what_fits() {
        let (mut s, c, t) = stream();
        s.paused = true;
        let big = vec![0u8; MAX_BUFFERED + 10];
        assert_eq!(s.machine_output(t, &big, &c), MAX_BUFFERED);
        assert_eq!(s.machine_output(t + Duration::from_secs(1), b"x", &c), 0);
    }
}
