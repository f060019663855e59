//! The session budget shared by every node of a process: a global cap on
//! sessions, half-open and established, so that memory stays bounded
//! whatever the number of nodes.
//!
//! Engines are per node and sans-IO, so the budget is a pair of atomics the
//! daemon hands to all of them through [`crate::BmcConfig`]. Each node owns
//! a small reserve that no other node can take (so a flood on some nodes
//! never locks consoles out of the others); beyond its reserve a node takes
//! slots from the shared pool and gives them back when its sessions end.
//! A node that finds the pool empty recycles its own oldest half-open
//! session, and only when it has none answers "insufficient resources".

use std::sync::atomic::{AtomicUsize, Ordering};

/// Sessions each node may hold without drawing on the shared pool, unless
/// the configuration asks for less.
pub const DEFAULT_RESERVE: usize = 4;

/// The configuration asked for a budget smaller than the reserves it must
/// hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{total} sessions cannot give {nodes} nodes {reserve} sessions each")]
pub struct BudgetTooSmall {
    /// The cap asked for.
    pub total: usize,
    /// The number of nodes.
    pub nodes: usize,
    /// Sessions reserved per node.
    pub reserve: usize,
}

/// A global cap on sessions across all engines of a process.
#[derive(Debug)]
pub struct SessionBudget {
    /// Sessions every node holds without touching `used`.
    reserve: usize,
    /// Size of the shared pool: the cap less all reserves.
    shared: usize,
    /// Shared slots in use.
    used: AtomicUsize,
}

impl SessionBudget {
    /// No cap at all: for tests and single engines.
    pub fn unlimited() -> Self {
        SessionBudget {
            reserve: 0,
            shared: usize::MAX,
            used: AtomicUsize::new(0),
        }
    }

    /// At most `total` sessions over `nodes` nodes, each of which keeps
    /// `reserve` of them for itself.
    pub fn new(total: usize, nodes: usize, reserve: usize) -> Result<Self, BudgetTooSmall> {
        let reserved = nodes.checked_mul(reserve).filter(|r| *r <= total);
        let Some(reserved) = reserved else {
            return Err(BudgetTooSmall {
                total,
                nodes,
                reserve,
            });
        };
        Ok(SessionBudget {
            reserve,
            shared: total - reserved,
            used: AtomicUsize::new(0),
        })
    }

    /// Sessions each node holds outside the shared pool.
    pub fn reserve(&self) -> usize {
        self.reserve
    }

    /// Shared slots in use now.
    pub fn shared_in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Size of the shared pool.
    pub fn shared_size(&self) -> usize {
        self.shared
    }

    /// Takes a shared slot if one is free.
    pub(crate) fn try_take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u < self.shared).then_some(u + 1)
            })
            .is_ok()
    }

    /// Returns `n` shared slots.
    pub(crate) fn give_back(&self, n: usize) {
        if n == 0 {
            return;
        }
        // Saturating: a bookkeeping slip must never wrap the counter and
        // lock everyone out.
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

impl Default for SessionBudget {
    fn default() -> Self {
        Self::unlimited()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_the_cap_less_the_reserves() {
        let b = SessionBudget::new(10, 2, 3).expect("budget");
        assert_eq!((b.reserve(), b.shared_size()), (3, 4));
        for _ in 0..4 {
            assert!(b.try_take());
        }
        assert!(!b.try_take(), "pool exhausted");
        b.give_back(1);
        assert!(b.try_take());
        b.give_back(10);
        assert_eq!(b.shared_in_use(), 0, "never below zero");
        assert_eq!(
            SessionBudget::new(5, 2, 3).map(|b| b.shared_size()),
            Err(BudgetTooSmall {
                total: 5,
                nodes: 2,
                reserve: 3
            })
        );
        assert!(SessionBudget::new(usize::MAX, usize::MAX, 2).is_err());
    }
}
