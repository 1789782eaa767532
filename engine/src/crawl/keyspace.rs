//! Targets for `find_node` and `sample_infohashes` that sweep the whole id
//! space evenly (a keyspace cursor, as mldht walks it), so the crawl reaches
//! every region instead of circling its own neighbourhood.
//!
//! The top 64 bits follow a Weyl sequence (adding 2^64 / golden ratio each
//! step): after any number of targets the visited points are spread almost
//! uniformly, and the cursor never settles into a cycle shorter than 2^64. The
//! low bits are random. Owns only the cursor; no I/O.

use rand::rngs::SmallRng;
use rand::RngCore;

use crate::codec::wire::ID_LEN;

const GOLDEN_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

pub struct Keyspace {
    cursor: u64,
}

impl Keyspace {
    pub fn new(start: u64) -> Self {
        Keyspace { cursor: start }
    }

    pub fn next_target(&mut self, rng: &mut SmallRng) -> [u8; ID_LEN] {
        self.cursor = self.cursor.wrapping_add(GOLDEN_STEP);
        let mut t = [0u8; ID_LEN];
        rng.fill_bytes(&mut t[8..]);
        t[..8].copy_from_slice(&self.cursor.to_be_bytes());
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn targets_cover_every_region_of_the_id_space() {
        let mut k = Keyspace::new(12345);
        let mut rng = SmallRng::seed_from_u64(1);
        // 256 regions by the first byte; 2560 targets must hit each 5 to 15 times.
        let mut hits = [0u32; 256];
        for _ in 0..2560 {
            hits[k.next_target(&mut rng)[0] as usize] += 1;
        }
        assert!(hits.iter().all(|&h| (5..=15).contains(&h)), "{hits:?}");
    }
}
