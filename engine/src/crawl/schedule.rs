//! A min-heap of "node X is due at time T" with lazy deletion: entries for
//! evicted nodes stay until popped and are skipped by the caller (the node
//! reference no longer resolves). Compaction keeps the heap within a constant
//! factor of the live entries, so memory stays bounded under node churn.
//! Owns only the ordering; must not know what "due" means.
//!
//! The heap is 8-ary, not binary: with 100,000 nodes a binary heap is 17
//! levels deep and most levels are a cache miss, which made the pop the crawl
//! core's largest user-space cost after the dedup (bench/RESULTS.md). Eight
//! 16-byte children fill two adjacent cache lines, so a pop touches about six
//! levels instead.

use super::clock::Millis;
use super::table::NodeRef;

/// Children per heap node.
const ARITY: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    due: Millis,
    slot: u32,
    incarnation: u32,
}

pub struct Schedule {
    heap: Vec<Entry>,
}

impl Schedule {
    pub fn new() -> Self {
        Schedule { heap: Vec::new() }
    }

    pub fn push(&mut self, due: Millis, r: NodeRef) {
        self.heap.push(Entry {
            due,
            slot: r.slot,
            incarnation: r.incarnation,
        });
        self.sift_up(self.heap.len() - 1);
    }

    pub fn peek_due(&self) -> Option<Millis> {
        self.heap.first().map(|e| e.due)
    }

    /// The earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Millis) -> Option<(Millis, NodeRef)> {
        if self.heap.first()?.due > now {
            return None;
        }
        let last = self.heap.pop()?;
        let top = match self.heap.first_mut() {
            Some(first) => std::mem::replace(first, last),
            None => last,
        };
        self.sift_down(0);
        Some((
            top.due,
            NodeRef {
                slot: top.slot,
                incarnation: top.incarnation,
            },
        ))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drops entries `live` rejects, when stale ones could outnumber live ones.
    /// Amortised O(1) per push: it runs only after the heap doubled past `live_len`.
    pub fn compact_if_needed(&mut self, live_len: usize, mut live: impl FnMut(Millis, NodeRef) -> bool) {
        if self.heap.len() <= 2 * live_len + 1024 {
            return;
        }
        self.heap.retain(|e| {
            live(
                e.due,
                NodeRef {
                    slot: e.slot,
                    incarnation: e.incarnation,
                },
            )
        });
        for i in (0..self.heap.len() / ARITY + 1).rev() {
            self.sift_down(i);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        let item = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.heap[parent] <= item {
                break;
            }
            self.heap[i] = self.heap[parent];
            i = parent;
        }
        self.heap[i] = item;
    }

    fn sift_down(&mut self, mut i: usize) {
        let len = self.heap.len();
        let Some(&item) = self.heap.get(i) else { return };
        loop {
            let first = i * ARITY + 1;
            if first >= len {
                break;
            }
            let end = (first + ARITY).min(len);
            let mut best = first;
            for c in first + 1..end {
                if self.heap[c] < self.heap[best] {
                    best = c;
                }
            }
            if self.heap[best] >= item {
                break;
            }
            self.heap[i] = self.heap[best];
            i = best;
        }
        self.heap[i] = item;
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(slot: u32) -> NodeRef {
        NodeRef { slot, incarnation: 0 }
    }

    #[test]
    fn pops_in_due_order_only_when_due() {
        let mut s = Schedule::new();
        s.push(30, r(3));
        s.push(10, r(1));
        s.push(20, r(2));
        assert!(s.pop_due(9).is_none());
        assert_eq!(s.pop_due(25), Some((10, r(1))));
        assert_eq!(s.pop_due(25), Some((20, r(2))));
        assert!(s.pop_due(25).is_none());
        assert_eq!(s.peek_due(), Some(30));
    }

    #[test]
    fn pops_in_the_order_of_a_sorted_list() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        let mut s = Schedule::new();
        let mut model: Vec<(Millis, u32)> = Vec::new();
        let mut now = 0;
        for round in 0..20_000u32 {
            if rng.gen_bool(0.6) {
                let due = now + rng.gen_range(0..500);
                s.push(due, r(round));
                model.push((due, round));
            } else {
                now += rng.gen_range(0..20);
                model.sort_unstable();
                match s.pop_due(now) {
                    Some((due, n)) => {
                        assert_eq!(model.first().copied(), Some((due, n.slot)));
                        model.remove(0);
                    }
                    None => assert!(model.first().is_none_or(|&(due, _)| due > now)),
                }
            }
            assert_eq!(s.len(), model.len());
        }
        // Compaction keeps the heap order.
        s.compact_if_needed(0, |_, n| n.slot % 2 == 0);
        model.retain(|&(_, slot)| slot % 2 == 0);
        model.sort_unstable();
        for want in model {
            assert_eq!(s.pop_due(Millis::MAX).map(|(d, n)| (d, n.slot)), Some(want));
        }
        assert!(s.is_empty());
    }

    #[test]
    fn compaction_bounds_stale_entries() {
        let mut s = Schedule::new();
        for i in 0..10_000 {
            s.push(i, r(i as u32));
            // Only the last 10 pushed are live.
            let newest = i as u32;
            s.compact_if_needed(10, |_, n| n.slot + 10 > newest);
            assert!(s.len() <= 2 * 10 + 1024 + 1);
        }
    }
}
