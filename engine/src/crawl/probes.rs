//! Nodes asked by lookups: addresses a lookup step names that may not be in
//! this core's table, so the table's `in_flight` and `failures` do not cover
//! them.
//!
//! A node that has not answered yet gets one query at a time, and its
//! timeouts count towards the same `max_failures` as a table node's, so a dead
//! node that is close to many infohashes costs a few queries, not one per
//! lookup. Owns per-address counts only; bounded at `cap` addresses. Must not
//! do I/O.

use std::collections::HashMap;
use std::net::SocketAddr;

#[derive(Clone, Copy, Default)]
struct Probe {
    outstanding: u8,
    failures: u8,
    answered: bool,
}

pub struct Probes {
    map: HashMap<SocketAddr, Probe, ahash::RandomState>,
    cap: usize,
}

impl Probes {
    pub fn new(cap: usize, hasher: ahash::RandomState) -> Self {
        Probes {
            map: HashMap::with_hasher(hasher),
            cap: cap.max(1),
        }
    }

    /// False while a node that never answered has a query outstanding.
    pub fn may_ask(&self, addr: &SocketAddr) -> bool {
        self.map.get(addr).is_none_or(|p| p.answered || p.outstanding == 0)
    }

    pub fn sent(&mut self, addr: SocketAddr) {
        if self.map.len() >= self.cap && !self.map.contains_key(&addr) {
            // Settled entries go first; unresolved ones are bounded by the
            // transaction table.
            self.map.retain(|_, p| p.outstanding > 0);
        }
        let p = self.map.entry(addr).or_default();
        p.outstanding = p.outstanding.saturating_add(1);
    }

    /// A reply or an error: the node is alive.
    pub fn answered(&mut self, addr: &SocketAddr) {
        if let Some(p) = self.map.get_mut(addr) {
            p.outstanding = p.outstanding.saturating_sub(1);
            p.failures = 0;
            p.answered = true;
        }
    }

    /// A timeout; returns the node's failures so far.
    pub fn timed_out(&mut self, addr: &SocketAddr) -> u8 {
        let Some(p) = self.map.get_mut(addr) else { return 1 };
        p.outstanding = p.outstanding.saturating_sub(1);
        p.failures = p.failures.saturating_add(1);
        p.answered = false;
        p.failures
    }

    /// Moves a node's failures out (to its table entry); the entry itself
    /// stays while a query to it is outstanding.
    pub fn take_failures(&mut self, addr: &SocketAddr) -> u8 {
        let Some(p) = self.map.get_mut(addr) else { return 0 };
        let failures = std::mem::take(&mut p.failures);
        if p.outstanding == 0 {
            self.map.remove(addr);
        }
        failures
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([203, 0, 113, i], 6881))
    }

    #[test]
    fn a_silent_node_gets_one_query_at_a_time_and_its_timeouts_add_up() {
        let mut p = Probes::new(16, ahash::RandomState::with_seeds(1, 2, 3, 4));
        assert!(p.may_ask(&addr(1)));
        p.sent(addr(1));
        assert!(!p.may_ask(&addr(1)), "second query before the first resolved");
        assert_eq!(p.timed_out(&addr(1)), 1);
        assert!(p.may_ask(&addr(1)));
        p.sent(addr(1));
        assert_eq!(p.timed_out(&addr(1)), 2);
        assert_eq!(p.take_failures(&addr(1)), 2);
        assert!(p.is_empty());
        p.sent(addr(1));
        assert_eq!(p.take_failures(&addr(1)), 0);
        assert!(!p.may_ask(&addr(1)), "taken failures leave the outstanding query");
    }

    #[test]
    fn a_node_that_answered_may_be_asked_in_parallel_until_it_times_out() {
        let mut p = Probes::new(16, ahash::RandomState::with_seeds(1, 2, 3, 4));
        p.sent(addr(2));
        p.answered(&addr(2));
        p.sent(addr(2));
        p.sent(addr(2));
        assert!(p.may_ask(&addr(2)));
        assert_eq!(p.timed_out(&addr(2)), 1);
        assert!(!p.may_ask(&addr(2)), "one still outstanding after a timeout");
        p.answered(&addr(2));
        assert!(p.may_ask(&addr(2)));
        assert_eq!(p.take_failures(&addr(2)), 0);
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_unresolved_entries() {
        let mut p = Probes::new(4, ahash::RandomState::with_seeds(1, 2, 3, 4));
        p.sent(addr(0));
        for i in 1..4 {
            p.sent(addr(i));
            p.answered(&addr(i));
        }
        p.sent(addr(9));
        assert_eq!(p.len(), 2, "settled entries dropped, the outstanding kept");
        assert!(!p.may_ask(&addr(0)));
    }
}
