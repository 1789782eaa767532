//! Deterministic derivation: every per-node and per-torrent property of the
//! swarm is a pure function of (seed, index, salt), so the swarm stores nothing
//! it can recompute.
//!
//! Owns: the mixing function, a tiny stream generator over it, and the salts
//! that keep independent properties independent.
//! Must not: use a library RNG whose output could change between versions; the
//! ground truth has to be reproducible from the seed alone.

/// splitmix64's finaliser: a bijective, well-mixed 64-bit hash.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of (seed, index, salt).
#[inline]
pub fn hash3(seed: u64, index: u64, salt: u64) -> u64 {
    mix64(mix64(seed ^ mix64(salt)) ^ index)
}

/// A fraction in [0, 1) derived from (seed, index, salt).
#[inline]
pub fn unit(seed: u64, index: u64, salt: u64) -> f64 {
    (hash3(seed, index, salt) >> 11) as f64 / (1u64 << 53) as f64
}

/// Which of consecutive `shares` of [0, 1) the fraction `u` falls in;
/// `shares.len()` when past them all (the remainder).
pub fn share_index(u: f64, shares: &[f64]) -> usize {
    let mut upto = 0.0;
    for (i, s) in shares.iter().enumerate() {
        upto += s;
        if u < upto {
            return i;
        }
    }
    shares.len()
}

/// A reproducible stream of 64-bit values (splitmix64).
#[derive(Clone, Debug)]
pub struct Stream(u64);

impl Stream {
    pub fn new(seed: u64, index: u64, salt: u64) -> Self {
        Stream(hash3(seed, index, salt))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform in `0..n` (n > 0); the tiny modulo bias is irrelevant here.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

// Salts: one per independent property.
pub const SALT_NODE_ID: u64 = 1;
pub const SALT_ALIVE: u64 = 2;
pub const SALT_SLOW: u64 = 3;
pub const SALT_BEP51: u64 = 4;
pub const SALT_INTERVAL: u64 = 5;
pub const SALT_TORRENT: u64 = 6;
pub const SALT_PIECES: u64 = 7;
pub const SALT_HOLDERS: u64 = 8;
pub const SALT_PEER_BEHAVIOUR: u64 = 9;
pub const SALT_SEED_FLAG: u64 = 10;
pub const SALT_LOSS: u64 = 11;
pub const SALT_TOKEN: u64 = 12;
pub const SALT_CHURN: u64 = 13;
pub const SALT_CHURN_PHASE: u64 = 14;
pub const SALT_MODEL: u64 = 15;
pub const SALT_NEVER_ACCEPT: u64 = 16;
pub const SALT_PEER_RTT: u64 = 17;
pub const SALT_SAMPLE_PICK: u64 = 18;
pub const SALT_DOWNLOADER: u64 = 19;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_salted() {
        assert_eq!(hash3(7, 3, SALT_ALIVE), hash3(7, 3, SALT_ALIVE));
        assert_ne!(hash3(7, 3, SALT_ALIVE), hash3(7, 3, SALT_SLOW));
        assert_ne!(hash3(7, 3, SALT_ALIVE), hash3(8, 3, SALT_ALIVE));
        let mean = (0..10_000).map(|i| unit(1, i, SALT_SLOW)).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let mut s = Stream::new(1, 2, 3);
        assert!((0..1000).all(|_| s.below(7) < 7));
    }
}
