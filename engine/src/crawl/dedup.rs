//! Per-core first-level dedup of infohashes, in bounded memory.
//!
//! Owns the set of infohashes this core has recently passed downstream. Must not
//! decide what is stored: the storage writer deduplicates against everything
//! stored, so this set may forget (a forgotten hash is merely sent again), but it
//! must never claim to know a hash it was not given, or a discovery would be lost.
//! That rules out a bloom filter; the set keeps whole 20-byte hashes.
//!
//! # Layout: one cache line per bucket, two buckets per hash
//! Every `sample_infohashes` reply brings about 20 hashes, and a table larger
//! than the cache makes each lookup a miss. With std's `HashMap` each lookup
//! paid two dependent misses (control bytes, then the key), about 160 ns each
//! on these machines, and 81% of the crawl core's own time went there
//! (bench/RESULTS.md, "Crawler (#6)"). Here a bucket is one 64-byte line
//! holding three keys and their tags, and a hash may live in either of two
//! buckets (two choices keep the table evenly loaded). [`Dedup::insert_all`]
//! computes every bucket of a reply's hashes and prefetches them first, so a
//! reply's misses overlap instead of queueing one behind the other.
//!
//! # Eviction rule: two generations
//! Every remembered hash is tagged with the generation it was last seen in.
//! When `capacity / 2` hashes have been seen in the current generation, a new
//! one starts and hashes last seen two generations ago are swept out. A hit on
//! a previous-generation hash moves it into the current one, so a hash stays
//! remembered as long as it is seen at least once per generation. The table has
//! a third more slots than `capacity`. If both buckets of a new hash are full,
//! one of their keys moves to its other bucket (one cuckoo step); if that finds
//! no room either, the new hash displaces the oldest entry there (counted in
//! [`Dedup::displaced`]), which only means that hash may be sent downstream once
//! more.
//!
//! The bucket hash is keyed per table from the OS's random source, so remote
//! nodes cannot aim samples at one bucket pair: a multiply-mix of the key's
//! three words, far cheaper than SipHash and enough for a table whose worst
//! case is a re-sent hash.

use crate::codec::wire::ID_LEN;

pub type InfoHash = [u8; ID_LEN];

/// Smallest capacity honoured, so each generation holds at least one hash.
const MIN_CAPACITY: usize = 2;
/// Keys per bucket: three 20-byte keys and their tags fill one 64-byte line.
const WAYS: usize = 3;
/// Hashes whose buckets are prefetched together by [`Dedup::insert_all`].
const PREFETCH_BATCH: usize = 32;
/// Slot tags. Generations alternate between the two live values.
const EMPTY: u8 = 0;
const GEN_A: u8 = 1;
const GEN_B: u8 = 2;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    keys: [InfoHash; WAYS],
    tags: [u8; WAYS],
}

const EMPTY_BUCKET: Bucket = Bucket {
    keys: [[0; ID_LEN]; WAYS],
    tags: [EMPTY; WAYS],
};

pub struct Dedup {
    buckets: Vec<Bucket>,
    /// Multipliers of the bucket hash (odd, random per table).
    keys: [u64; 4],
    current: u8,
    /// Hashes tagged with the current / previous generation.
    in_current: usize,
    in_previous: usize,
    generation_len: usize,
    rotations: u64,
    displaced: u64,
}

impl Dedup {
    /// A set that remembers at most `capacity` hashes (the last `capacity / 2`
    /// distinct ones seen, barring displacement). Allocated once, up front:
    /// about 28 bytes per hash of capacity.
    pub fn new(capacity: usize) -> Self {
        Self::with_seed(capacity, rand::random())
    }

    /// As [`Dedup::new`] with the bucket hash keyed by `seed` (tests, benches).
    pub fn with_seed(capacity: usize, seed: u64) -> Self {
        let generation_len = capacity.max(MIN_CAPACITY) / 2;
        let slots = generation_len * 2 + generation_len * 2 / 3;
        let buckets = slots.div_ceil(WAYS).max(2);
        let mut x = seed;
        let mut next = || {
            // splitmix64: spreads one seed into independent odd multipliers.
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) | 1
        };
        Dedup {
            buckets: vec![EMPTY_BUCKET; buckets],
            keys: [next(), next(), next(), next()],
            current: GEN_A,
            in_current: 0,
            in_previous: 0,
            generation_len,
            rotations: 0,
            displaced: 0,
        }
    }

    /// Records `hash`; true if this core has not seen it recently, i.e. it should
    /// go downstream.
    #[inline]
    pub fn insert(&mut self, hash: &InfoHash) -> bool {
        let pair = self.pair(hash);
        self.insert_at(hash, pair)
    }

    /// Records every hash of `hashes` (one reply's samples), calling `on_new`
    /// for each one not seen recently, in order. Same outcome as [`Self::insert`]
    /// per hash, with each batch's buckets prefetched first.
    pub fn insert_all<'a, I>(&mut self, hashes: I, mut on_new: impl FnMut(&'a InfoHash))
    where
        I: Iterator<Item = &'a InfoHash> + Clone,
    {
        let mut rest = hashes;
        loop {
            let mut pairs = [(0usize, 0usize); PREFETCH_BATCH];
            let mut n = 0;
            for (slot, h) in pairs.iter_mut().zip(rest.clone()) {
                *slot = self.pair(h);
                self.prefetch(slot.0);
                self.prefetch(slot.1);
                n += 1;
            }
            if n == 0 {
                return;
            }
            for (&pair, h) in pairs[..n].iter().zip(rest.by_ref()) {
                if self.insert_at(h, pair) {
                    on_new(h);
                }
            }
        }
    }

    /// True if `hash` is remembered, without recording it.
    pub fn contains(&self, hash: &InfoHash) -> bool {
        let (a, b) = self.pair(hash);
        self.find(hash, a).is_some() || self.find(hash, b).is_some()
    }

    /// Hashes remembered now (never more than the capacity).
    pub fn len(&self) -> usize {
        self.in_current + self.in_previous
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most hashes ever remembered at once.
    pub fn capacity(&self) -> usize {
        self.generation_len * 2
    }

    /// How many generations ended (each forgets what was not seen during it).
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// Remembered hashes pushed out early because both their buckets were full.
    pub fn displaced(&self) -> u64 {
        self.displaced
    }

    fn previous(&self) -> u8 {
        GEN_A + GEN_B - self.current
    }

    /// The two buckets `hash` may live in.
    #[inline]
    fn pair(&self, hash: &InfoHash) -> (usize, usize) {
        let word = |at: usize| u64::from_le_bytes(hash[at..at + 8].try_into().unwrap_or_default());
        let tail = u64::from(u32::from_le_bytes(hash[16..20].try_into().unwrap_or_default()));
        let k = &self.keys;
        let x = (word(0) ^ k[3]).wrapping_mul(k[0]) ^ (word(8) ^ k[3].rotate_left(21)).wrapping_mul(k[1]);
        let x = x ^ (tail ^ k[3].rotate_left(42)).wrapping_mul(k[2]);
        let x = x ^ (x >> 29);
        let n = self.buckets.len() as u128;
        // The high half of a 64x64 product maps a word onto 0..n without a division.
        let first = ((u128::from(x) * n) >> 64) as usize;
        let second = ((u128::from(x.rotate_left(32).wrapping_mul(k[0])) * n) >> 64) as usize;
        (first, second)
    }

    #[inline]
    fn prefetch(&self, bucket: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(b) = self.buckets.get(bucket) {
            // SAFETY: a prefetch is a hint with no architectural effect; the
            // pointer comes from a live reference into the table.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    (b as *const Bucket).cast::<i8>(),
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = bucket;
    }

    /// The way of bucket `b` that holds `hash` with a live tag.
    #[inline]
    fn find(&self, hash: &InfoHash, b: usize) -> Option<usize> {
        let bucket = &self.buckets[b];
        (0..WAYS).find(|&w| bucket.tags[w] != EMPTY && bucket.keys[w] == *hash)
    }

    fn insert_at(&mut self, hash: &InfoHash, (a, b): (usize, usize)) -> bool {
        let current = self.current;
        for bucket in [a, b] {
            if let Some(w) = self.find(hash, bucket) {
                let tag = &mut self.buckets[bucket].tags[w];
                if *tag == current {
                    return false;
                }
                *tag = current;
                self.in_previous -= 1;
                self.note_current();
                return false;
            }
        }
        let free = |b: &Bucket| b.tags.iter().filter(|&&t| t == EMPTY).count();
        let (fa, fb) = (free(&self.buckets[a]), free(&self.buckets[b]));
        let (bucket, way) = if fa.max(fb) > 0 {
            let bucket = if fa >= fb { a } else { b };
            let way = self.buckets[bucket].tags.iter().position(|&t| t == EMPTY).unwrap_or(0);
            (bucket, way)
        } else {
            self.displace(a, b)
        };
        let slot = &mut self.buckets[bucket];
        slot.keys[way] = *hash;
        slot.tags[way] = current;
        self.note_current();
        true
    }

    /// Frees a way in bucket `a` or `b` (both full): first by moving one of
    /// their keys to its other bucket if that has room (one cuckoo step, only
    /// on this rare path), else by dropping the oldest key there.
    fn displace(&mut self, a: usize, b: usize) -> (usize, usize) {
        for bucket in [a, b] {
            for way in 0..WAYS {
                let key = self.buckets[bucket].keys[way];
                let (p, q) = self.pair(&key);
                let other = if p == bucket { q } else { p };
                if other == bucket {
                    continue;
                }
                if let Some(free) = self.buckets[other].tags.iter().position(|&t| t == EMPTY) {
                    let tag = self.buckets[bucket].tags[way];
                    self.buckets[other].keys[free] = key;
                    self.buckets[other].tags[free] = tag;
                    return (bucket, way);
                }
            }
        }
        let previous = self.previous();
        let old = [a, b]
            .into_iter()
            .find_map(|bucket| Some((bucket, self.buckets[bucket].tags.iter().position(|&t| t == previous)?)));
        self.displaced += 1;
        match old {
            Some(at) => {
                self.in_previous -= 1;
                at
            }
            None => {
                self.in_current -= 1;
                (a, (self.rotations as usize) % WAYS)
            }
        }
    }

    fn note_current(&mut self) {
        self.in_current += 1;
        if self.in_current >= self.generation_len {
            self.rotate();
        }
    }

    fn rotate(&mut self) {
        let expired = self.previous();
        for bucket in &mut self.buckets {
            for tag in &mut bucket.tags {
                if *tag == expired {
                    *tag = EMPTY;
                }
            }
        }
        self.current = expired;
        self.in_previous = self.in_current;
        self.in_current = 0;
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
        let mut d = Dedup::with_seed(1000, 1);
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
        let mut d = Dedup::with_seed(cap, 7);
        let mut forgotten = 0;
        for i in 0..50_000 {
            assert!(d.insert(&hash(i)));
            assert!(d.len() <= cap);
            // The last capacity/2 distinct hashes are remembered unless displaced.
            let oldest_guaranteed = (i + 1).saturating_sub(cap as u32 / 2);
            forgotten += u64::from(!d.contains(&hash(oldest_guaranteed)));
        }
        assert!(
            forgotten <= d.displaced(),
            "{forgotten} forgotten, {} displaced",
            d.displaced()
        );
        assert!(d.displaced() < 50_000 / 100, "displaced {} of 50,000", d.displaced());
        assert!(d.rotations() >= 50_000 / (cap as u64 / 2) - 1);
        // Long-forgotten hashes come back as new: forgetting is allowed, inventing is not.
        assert!(d.insert(&hash(0)));
    }

    #[test]
    fn hashes_seen_every_generation_survive_rotation() {
        // A fixed seed: with some bucket keys a full bucket may evict the hot
        // hash (forgetting is allowed), which a random seed hit now and then.
        let mut d = Dedup::with_seed(100, 0x5eed);
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
    fn a_reply_batch_agrees_with_single_inserts() {
        let (mut one, mut all) = (Dedup::with_seed(1000, 3), Dedup::with_seed(1000, 3));
        // Replies of 20 with repeats inside and across them, over several rotations.
        let reply: Vec<InfoHash> = (0..3000u32).map(|i| hash(i * 7 % 1700)).collect();
        for chunk in reply.chunks(20).chain(reply.chunks(45)) {
            let single: Vec<bool> = chunk.iter().map(|h| one.insert(h)).collect();
            let mut batched = vec![false; chunk.len()];
            all.insert_all(chunk.iter(), |h| {
                let at = chunk.iter().position(|c| std::ptr::eq(c, h)).unwrap();
                batched[at] = true;
            });
            assert_eq!(single, batched);
        }
        assert_eq!((one.len(), one.rotations()), (all.len(), all.rotations()));
        assert!(one.rotations() > 2);
    }

    #[test]
    fn a_flood_aimed_at_nothing_in_particular_displaces_little() {
        // At full capacity (both generations full) the table is three quarters
        // full: two choices of three ways rarely find both buckets full.
        let mut d = Dedup::with_seed(100_000, 11);
        for i in 0..1_000_000 {
            d.insert(&hash(i));
        }
        assert!(d.displaced() < 1_000_000 / 200, "displaced {}", d.displaced());
    }

    #[test]
    fn tiny_capacity_still_works() {
        let mut d = Dedup::with_seed(0, 1);
        assert_eq!(d.capacity(), 2);
        assert!(d.insert(&hash(1)));
        assert!(!d.insert(&hash(1)));
        assert!(d.insert(&hash(2)));
        assert!(d.insert(&hash(3)));
        assert!(d.len() <= 2);
    }
}
