//! The in-memory filter in front of the `infohashes` family: "definitely new"
//! without touching RocksDB for most hashes, "maybe stored" for the rest, which
//! the writer then confirms with one batched `multi_get`.
//!
//! Owns only bits in memory; it must not do I/O. A blocked bloom filter: each
//! hash sets `PROBES` bits inside one 512-bit block, so a lookup costs one
//! cache miss however large the filter grows. Infohashes from the DHT are
//! chosen by strangers, so positions come from a keyed hash (a hostile set can
//! only cause extra `multi_get`s, never a wrong answer).

use crate::record::InfoHash;

const BLOCK_WORDS: usize = 8; // 8 x u64 = 512 bits, one cache line
const PROBES: u32 = 8;
/// About 1% false positives at this load for a blocked filter with 8 probes.
const BITS_PER_ITEM: usize = 12;

pub(crate) struct Bloom {
    blocks: Vec<[u64; BLOCK_WORDS]>,
    hasher: ahash::RandomState,
    capacity: usize,
    items: usize,
}

impl Bloom {
    /// A filter sized for `capacity` items at about 1% false positives.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1024);
        let blocks = (capacity * BITS_PER_ITEM).div_ceil(BLOCK_WORDS * 64);
        Bloom {
            blocks: vec![[0u64; BLOCK_WORDS]; blocks],
            hasher: ahash::RandomState::new(),
            capacity,
            items: 0,
        }
    }

    /// Items inserted beyond the sizing make false positives climb; the writer rebuilds then.
    pub(crate) fn is_overfull(&self) -> bool {
        self.items > self.capacity
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn locate(&self, h: &InfoHash) -> (usize, u64) {
        let x = self.hasher.hash_one(h);
        // High bits pick the block (multiply-shift avoids a modulo); low bits seed the probes.
        let block = ((u128::from(x >> 32) * self.blocks.len() as u128) >> 32) as usize;
        (block, x)
    }

    /// Bit `i` of the probe sequence: 9 bits each, word 3 bits then bit 6 bits.
    fn probes(seed: u64) -> impl Iterator<Item = (usize, u64)> {
        // Re-mix so the 8 x 9 = 72 bits we need do not reuse the block selector.
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (seed >> 29);
        (0..PROBES).map(move |_| {
            let word = (s & 7) as usize;
            let bit = (s >> 3) & 63;
            s = s.rotate_right(9).wrapping_add(0x632b_e59b_d9b4_e019);
            (word, 1u64 << bit)
        })
    }

    pub(crate) fn insert(&mut self, h: &InfoHash) {
        let (b, seed) = self.locate(h);
        let block = &mut self.blocks[b];
        for (w, mask) in Self::probes(seed) {
            block[w] |= mask;
        }
        self.items += 1;
    }

    pub(crate) fn may_contain(&self, h: &InfoHash) -> bool {
        let (b, seed) = self.locate(h);
        let block = &self.blocks[b];
        Self::probes(seed).all(|(w, mask)| block[w] & mask != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let n = 50_000;
        let mut bloom = Bloom::with_capacity(n);
        let stored: Vec<InfoHash> = (0..n).map(|_| rng.gen()).collect();
        for h in &stored {
            bloom.insert(h);
        }
        assert!(stored.iter().all(|h| bloom.may_contain(h)));
        let trials = 100_000;
        let fp = (0..trials).filter(|_| bloom.may_contain(&rng.gen())).count();
        // Sized for ~1%; 3% would mean the probes are correlated.
        assert!(fp < trials * 3 / 100, "{fp} false positives in {trials}");
        assert!(!bloom.is_overfull());
    }
}
