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
    /// Scratch for `check_and_insert_all`: (block, probe seed) per hash.
    located: Vec<(usize, u64)>,
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
            located: Vec::new(),
        }
    }

    /// Items inserted beyond the sizing make false positives climb; the writer rebuilds then.
    pub(crate) fn is_overfull(&self) -> bool {
        self.items > self.capacity
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Memory held by the bits.
    pub(crate) fn bytes(&self) -> usize {
        self.blocks.len() * BLOCK_WORDS * 8
    }

    fn locate(&self, h: &InfoHash) -> (usize, u64) {
        locate(&self.hasher, self.blocks.len(), h)
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

    /// Inserts every hash of `hashes` and calls `maybe(i)` for each one whose
    /// bits were all set already ("maybe stored"). Positions are computed a
    /// few hashes ahead and their blocks prefetched, so the cache misses of a
    /// large filter overlap instead of following one another.
    pub(crate) fn check_and_insert_all<'a>(
        &mut self,
        hashes: impl ExactSizeIterator<Item = &'a InfoHash>,
        mut maybe: impl FnMut(usize),
    ) {
        const AHEAD: usize = 8;
        self.located.clear();
        let (hasher, n) = (&self.hasher, self.blocks.len());
        self.located.extend(hashes.map(|h| locate(hasher, n, h)));
        for i in 0..self.located.len() {
            if let Some(&(b, _)) = self.located.get(i + AHEAD) {
                prefetch(&self.blocks[b]);
            }
            let (b, seed) = self.located[i];
            let block = &mut self.blocks[b];
            let mut present = true;
            for (w, mask) in Self::probes(seed) {
                present &= block[w] & mask != 0;
                block[w] |= mask;
            }
            if present {
                maybe(i);
            } else {
                self.items += 1;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn may_contain(&self, h: &InfoHash) -> bool {
        let (b, seed) = self.locate(h);
        let block = &self.blocks[b];
        Self::probes(seed).all(|(w, mask)| block[w] & mask != 0)
    }
}

/// The block of `h` among `blocks`, and the seed of its probes.
fn locate(hasher: &ahash::RandomState, blocks: usize, h: &InfoHash) -> (usize, u64) {
    let x = hasher.hash_one(h);
    // High bits pick the block (multiply-shift avoids a modulo); low bits seed the probes.
    let block = ((u128::from(x >> 32) * blocks as u128) >> 32) as usize;
    (block, x)
}

/// Asks the CPU to start loading `block` into cache; a hint with no effect on results.
#[inline]
fn prefetch(block: &[u64; BLOCK_WORDS]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing observable; the pointer is a live reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch(block.as_ptr().cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = block;
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

    #[test]
    fn check_and_insert_reports_exactly_the_hashes_already_in() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        let old: Vec<InfoHash> = (0..2000).map(|_| rng.gen()).collect();
        let mut bloom = Bloom::with_capacity(100_000);
        for h in &old {
            bloom.insert(h);
        }
        let fresh: Vec<InfoHash> = (0..2000).map(|_| rng.gen()).collect();
        // Old and fresh interleaved, and one fresh hash twice: its second copy is "maybe".
        let mut mixed: Vec<InfoHash> = old.iter().zip(&fresh).flat_map(|(a, b)| [*a, *b]).collect();
        mixed.push(fresh[0]);
        let mut maybe = Vec::new();
        bloom.check_and_insert_all(mixed.iter(), |i| maybe.push(i));
        assert!(
            maybe.iter().filter(|&&i| i % 2 == 0 && i < 4000).count() == 2000,
            "every old hash"
        );
        assert_eq!(
            maybe.last(),
            Some(&4000),
            "the repeat of a hash inserted in the same call"
        );
        let fresh_fp = maybe.iter().filter(|&&i| i % 2 == 1).count();
        assert!(fresh_fp < 20, "{fresh_fp} fresh hashes reported");
        assert!(mixed.iter().all(|h| bloom.may_contain(h)));
    }
}
