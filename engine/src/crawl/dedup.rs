//! Per-core first-level dedup of infohashes, in bounded memory.
//!
//! Owns the set of infohashes this core has recently passed downstream. Must not
//! decide what is stored: the storage writer deduplicates against everything
//! stored, so this set may forget (a forgotten hash is merely sent again), but it
//! must never claim to know a hash it was not given, or a discovery would be lost.
//! That rules out a bloom filter; the set keeps whole 20-byte hashes.
//!
//! # Eviction rule: two generations
//! Every remembered hash carries the generation it was last seen in. When
//! `capacity / 2` hashes have been seen in the current generation, a new one
//! starts and hashes last seen two generations ago are swept out. A hit on a
//! previous-generation hash moves it into the current one, so a hash stays
//! remembered as long as it is seen at least once per generation, and the set
//! never holds more than `capacity` hashes.
//!
//! One table, so a lookup is one probe (one cache miss when the set is large,
//! which is what an insert costs; an earlier two-table design paid two). The
//! sweep is a sequential pass over the table once per `capacity / 2` insertions:
//! amortised a few nanoseconds per insert, and a pause of some milliseconds
//! per rotation at millions of entries (the socket buffer absorbs it).
//!
//! The table hashes with std's randomly keyed SipHash, so remote nodes cannot
//! choose samples that collide and slow the table down. ahash was measured too
//! (`benches/crawl.rs`): on these machines (no AES instructions enabled) its
//! lookups of 20-byte keys were about twice as slow.

use std::collections::hash_map::Entry;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;

use crate::codec::wire::ID_LEN;

pub type InfoHash = [u8; ID_LEN];

/// Smallest capacity honoured, so each generation holds at least one hash.
const MIN_CAPACITY: usize = 2;

pub struct Dedup {
    /// Hash -> generation it was last seen in (current or the one before).
    seen: HashMap<InfoHash, u32, RandomState>,
    generation: u32,
    /// Hashes seen in the current generation.
    in_generation: usize,
    generation_len: usize,
    rotations: u64,
}

impl Dedup {
    /// A set that remembers at most `capacity` hashes (at least the last
    /// `capacity / 2` distinct ones seen). Allocated once, up front.
    pub fn new(capacity: usize) -> Self {
        let generation_len = capacity.max(MIN_CAPACITY) / 2;
        Dedup {
            seen: HashMap::with_capacity_and_hasher(generation_len * 2, RandomState::new()),
            generation: 0,
            in_generation: 0,
            generation_len,
            rotations: 0,
        }
    }

    /// Records `hash`; true if this core has not seen it recently, i.e. it should
    /// go downstream.
    #[inline]
    pub fn insert(&mut self, hash: &InfoHash) -> bool {
        let current = self.generation;
        // One hash and one probe for hit and miss alike.
        let new = match self.seen.entry(*hash) {
            Entry::Occupied(mut e) => {
                if *e.get() == current {
                    return false;
                }
                e.insert(current);
                false
            }
            Entry::Vacant(e) => {
                e.insert(current);
                true
            }
        };
        self.in_generation += 1;
        if self.in_generation >= self.generation_len {
            self.rotate();
        }
        new
    }

    /// True if `hash` is remembered, without recording it.
    pub fn contains(&self, hash: &InfoHash) -> bool {
        self.seen.contains_key(hash)
    }

    /// Hashes remembered now (never more than the capacity).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Most hashes ever remembered at once.
    pub fn capacity(&self) -> usize {
        self.generation_len * 2
    }

    /// How many generations ended (each forgets what was not seen during it).
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    fn rotate(&mut self) {
        let ending = self.generation;
        // What was last seen before the ending generation is forgotten.
        self.seen.retain(|_, g| *g == ending);
        self.generation = ending.wrapping_add(1);
        self.in_generation = 0;
        self.rotations += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u32) -> InfoHash {
        let mut h = [0u8; ID_LEN];
        // Real infohashes are SHA-1 outputs; spread i over all bytes like one.
        for (k, b) in h.iter_mut().enumerate() {
            *b = (i.wrapping_mul(2_654_435_761).rotate_left(k as u32 * 3) >> 8) as u8 ^ k as u8;
        }
        h[..4].copy_from_slice(&i.to_be_bytes());
        h
    }

    #[test]
    fn new_hashes_pass_once_and_repeats_are_caught() {
        let mut d = Dedup::new(1000);
        for i in 0..400 {
            assert!(d.insert(&hash(i)), "first sighting of {i}");
        }
        for i in 0..400 {
            assert!(!d.insert(&hash(i)), "repeat of {i}");
        }
        assert_eq!(d.len(), 400);
        assert!(d.contains(&hash(7)) && !d.contains(&hash(400)));
    }

    #[test]
    fn memory_stays_bounded_and_recent_hashes_are_remembered() {
        let cap = 1000;
        let mut d = Dedup::new(cap);
        for i in 0..50_000 {
            assert!(d.insert(&hash(i)));
            assert!(d.len() <= cap);
            // The last capacity/2 distinct hashes are always remembered.
            let oldest_guaranteed = (i + 1).saturating_sub(cap as u32 / 2);
            assert!(d.contains(&hash(oldest_guaranteed)));
        }
        assert!(d.rotations() >= 50_000 / (cap as u64 / 2) - 1);
        // Long-forgotten hashes come back as new: forgetting is allowed, inventing is not.
        assert!(d.insert(&hash(0)));
    }

    #[test]
    fn hashes_seen_every_generation_survive_rotation() {
        let mut d = Dedup::new(100);
        let hot = hash(u32::MAX);
        assert!(d.insert(&hot));
        for i in 0..10_000 {
            d.insert(&hash(i));
            if i % 25 == 0 {
                assert!(!d.insert(&hot), "hot hash forgotten at {i}");
            }
        }
    }

    #[test]
    fn tiny_capacity_still_works() {
        let mut d = Dedup::new(0);
        assert_eq!(d.capacity(), 2);
        assert!(d.insert(&hash(1)));
        assert!(!d.insert(&hash(1)));
        assert!(d.insert(&hash(2)));
        assert!(d.insert(&hash(3)));
        assert!(d.len() <= 2);
    }
}
