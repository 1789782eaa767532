//! A min-heap of "node X is due at time T" with lazy deletion: entries for
//! evicted nodes stay until popped and are skipped by the caller (the node
//! reference no longer resolves). Compaction keeps the heap within a constant
//! factor of the live entries, so memory stays bounded under node churn.
//! Owns only the ordering; must not know what "due" means.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::clock::Millis;
use super::table::NodeRef;

pub struct Schedule {
    heap: BinaryHeap<Reverse<(Millis, u32, u32)>>,
}

impl Schedule {
    pub fn new() -> Self {
        Schedule {
            heap: BinaryHeap::new(),
        }
    }

    pub fn push(&mut self, due: Millis, r: NodeRef) {
        self.heap.push(Reverse((due, r.slot, r.incarnation)));
    }

    pub fn peek_due(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse((due, _, _))| *due)
    }

    /// The earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Millis) -> Option<(Millis, NodeRef)> {
        match self.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now => {
                let Reverse((due, slot, incarnation)) = self.heap.pop()?;
                Some((due, NodeRef { slot, incarnation }))
            }
            _ => None,
        }
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
        let mut v = std::mem::take(&mut self.heap).into_vec();
        v.retain(|Reverse((due, slot, incarnation))| {
            live(
                *due,
                NodeRef {
                    slot: *slot,
                    incarnation: *incarnation,
                },
            )
        });
        self.heap = BinaryHeap::from(v);
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
