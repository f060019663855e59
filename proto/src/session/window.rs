//! The inbound session sequence number window (IPMI v2.0 section 6.12.13).
//!
//! Consoles start anywhere (ipmitool at 3 or more, FreeIPMI and pyghmi at 1)
//! and consume a new number for every retransmission, so gaps are normal. A
//! packet is accepted when its number is above the highest seen, or is one of
//! the 32 below it that has not been seen yet; zero and exact repeats are
//! replays and are refused.

/// How far below the highest accepted number a late packet may be.
const WINDOW: u32 = 32;

/// Sliding replay window over inbound sequence numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqWindow {
    highest: u32,
    /// Bit i set: `highest - i` has been seen (bit 0 is `highest` itself).
    seen: u32,
}

impl SeqWindow {
    /// Records `seq` if it is acceptable; returns whether it was.
    pub fn accept(&mut self, seq: u32) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = seq;
            return true;
        }
        let back = self.highest - seq;
        if back >= WINDOW {
            return false;
        }
        let bit = 1u32 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_gaps_and_late_packets_once() {
        let mut w = SeqWindow::default();
        assert!(!w.accept(0));
        assert!(w.accept(4), "ipmitool starts above 1");
        assert!(w.accept(6), "gap after a retransmission");
        assert!(w.accept(5), "late but unseen");
        assert!(!w.accept(5), "replay");
        assert!(!w.accept(6), "replay of highest");
        assert!(w.accept(100));
        assert!(!w.accept(60), "too old");
        assert!(w.accept(69));
    }

    proptest! {
        #[test]
        fn never_accepts_a_number_twice(seqs in proptest::collection::vec(1u32..200, 1..100)) {
            let mut w = SeqWindow::default();
            let mut accepted = std::collections::HashSet::new();
            for s in seqs {
                if w.accept(s) {
                    prop_assert!(accepted.insert(s), "{} accepted twice", s);
                }
            }
        }

        #[test]
        fn increasing_sequences_are_always_accepted(start in 1u32..1000, steps in proptest::collection::vec(1u32..50, 1..50)) {
            let mut w = SeqWindow::default();
            let mut s = start;
            for step in steps {
                prop_assert!(w.accept(s));
                s += step;
            }
        }
    }
}
