//! The cache of unreachable nodes (as mldht keeps): addresses that stopped
//! answering are ignored until their entry expires, so announcements of dead
//! nodes by other nodes do not waste queries on them.
//!
//! Owns the addresses and their expiry. Bounded: at most `cap` entries, the
//! oldest forgotten first. Must not do I/O.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::clock::Millis;

pub struct Unreachable {
    expiry: HashMap<SocketAddr, Millis, ahash::RandomState>,
    /// Insertion order; with one TTL for all, also expiry order.
    order: VecDeque<(Millis, SocketAddr)>,
    ttl: Millis,
    cap: usize,
}

impl Unreachable {
    pub fn new(ttl: Millis, cap: usize, hasher: ahash::RandomState) -> Self {
        Unreachable {
            expiry: HashMap::with_hasher(hasher),
            order: VecDeque::new(),
            ttl,
            cap: cap.max(1),
        }
    }

    pub fn insert(&mut self, addr: SocketAddr, now: Millis) {
        let until = now.saturating_add(self.ttl);
        self.expiry.insert(addr, until);
        self.order.push_back((until, addr));
        while self.order.len() > self.cap {
            self.pop_front();
        }
    }

    pub fn contains(&self, addr: &SocketAddr, now: Millis) -> bool {
        self.expiry.get(addr).is_some_and(|&until| until > now)
    }

    /// Forgets expired entries.
    pub fn expire(&mut self, now: Millis) {
        while self.order.front().is_some_and(|&(until, _)| until <= now) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((until, addr)) = self.order.pop_front() {
            // A later re-insert of the same address owns the map entry now.
            if self.expiry.get(&addr) == Some(&until) {
                self.expiry.remove(&addr);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([203, 0, 113, 7], i))
    }

    #[test]
    fn entries_expire_and_memory_is_bounded() {
        let mut u = Unreachable::new(1000, 100, ahash::RandomState::with_seeds(1, 2, 3, 4));
        u.insert(addr(1), 0);
        assert!(u.contains(&addr(1), 999) && !u.contains(&addr(1), 1000));
        u.insert(addr(1), 500);
        u.expire(1200);
        assert!(u.contains(&addr(1), 1200), "re-insert must extend the entry");
        for i in 0..10_000 {
            u.insert(addr(i), 2000);
            assert!(u.len() <= 100 && u.order.len() <= 100);
        }
        u.expire(10_000);
        assert!(u.is_empty());
    }
}
