//! The peers others announced to us (when we are a full node): infohash -> peers
//! with an expiry `ttl` after the last announce, bounded in infohashes and in peers
//! per infohash. Serves `values`, the inputs of BEP 33 scrape filters and BEP 51
//! random samples. Expired entries are never served, and swept by `expire`.
//! Owns no network state; randomness is passed in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use super::config::StoreLimits;

#[derive(Clone, Copy, Debug)]
struct StoredPeer {
    addr: SocketAddr,
    seed: bool,
    expires: Instant,
}

#[derive(Clone)]
struct Swarm {
    info_hash: [u8; 20],
    peers: Vec<StoredPeer>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreFull;

#[derive(Clone)]
pub struct PeerStore {
    ttl: Duration,
    limits: StoreLimits,
    /// Dense, so a uniform random sample is a few index draws.
    swarms: Vec<Swarm>,
    index: HashMap<[u8; 20], usize, ahash::RandomState>,
    peer_count: usize,
}

impl PeerStore {
    pub fn new(ttl: Duration, limits: StoreLimits, hasher: ahash::RandomState) -> Self {
        PeerStore {
            ttl,
            limits,
            swarms: Vec::new(),
            index: HashMap::with_hasher(hasher),
            peer_count: 0,
        }
    }

    pub fn infohash_count(&self) -> usize {
        self.swarms.len()
    }

    pub fn peer_count(&self) -> usize {
        self.peer_count
    }

    /// Records or renews an announce. A full swarm drops its soonest-expiring peer;
    /// a new infohash is refused when the store is full.
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: [u8; 20],
        addr: SocketAddr,
        seed: bool,
    ) -> Result<(), StoreFull> {
        let expires = now + self.ttl;
        let slot = match self.index.get(&info_hash) {
            Some(&i) => i,
            None => {
                if self.swarms.len() >= self.limits.max_infohashes {
                    return Err(StoreFull);
                }
                self.swarms.push(Swarm {
                    info_hash,
                    peers: Vec::new(),
                });
                self.index.insert(info_hash, self.swarms.len() - 1);
                self.swarms.len() - 1
            }
        };
        let swarm = &mut self.swarms[slot];
        if let Some(p) = swarm.peers.iter_mut().find(|p| p.addr == addr) {
            p.seed = seed;
            p.expires = expires;
            return Ok(());
        }
        let fresh = StoredPeer { addr, seed, expires };
        if swarm.peers.len() < self.limits.max_peers_per_infohash.max(1) {
            swarm.peers.push(fresh);
            self.peer_count += 1;
        } else if let Some(oldest) = swarm.peers.iter_mut().min_by_key(|p| p.expires) {
            *oldest = fresh;
        }
        Ok(())
    }

    /// Up to `max` live peers of `info_hash` chosen at random, into `out` (cleared).
    pub fn peers(
        &self,
        now: Instant,
        info_hash: &[u8; 20],
        noseed: bool,
        max: usize,
        rng: &mut impl Rng,
        out: &mut Vec<SocketAddr>,
    ) {
        out.clear();
        let Some(&i) = self.index.get(info_hash) else { return };
        // Reservoir sampling: one pass, no scratch allocation.
        let live = self.swarms[i]
            .peers
            .iter()
            .filter(|p| p.expires > now && !(noseed && p.seed));
        for (seen, p) in live.enumerate() {
            if out.len() < max {
                out.push(p.addr);
            } else {
                let j = rng.gen_range(0..=seen);
                if j < max {
                    out[j] = p.addr;
                }
            }
        }
    }

    /// Every live peer of `info_hash` with its seed flag (for the scrape filters).
    pub fn live(&self, now: Instant, info_hash: &[u8; 20]) -> impl Iterator<Item = (SocketAddr, bool)> + '_ {
        let peers = self
            .index
            .get(info_hash)
            .map_or(&[][..], |&i| &self.swarms[i].peers[..]);
        peers.iter().filter(move |p| p.expires > now).map(|p| (p.addr, p.seed))
    }

    pub fn contains(&self, info_hash: &[u8; 20]) -> bool {
        self.index.contains_key(info_hash)
    }

    /// Up to `max` distinct stored infohashes chosen uniformly, into `out` (cleared).
    pub fn sample(&self, max: usize, rng: &mut impl Rng, out: &mut Vec<[u8; 20]>) {
        out.clear();
        let n = self.swarms.len();
        if n <= max {
            out.extend(self.swarms.iter().map(|s| s.info_hash));
            return;
        }
        // Floyd's algorithm: `max` distinct indices in `max` draws.
        for j in (n - max)..n {
            let t = rng.gen_range(0..=j);
            let h = self.swarms[t].info_hash;
            if out.contains(&h) {
                out.push(self.swarms[j].info_hash);
            } else {
                out.push(h);
            }
        }
    }

    /// Drops expired peers and empty swarms.
    pub fn expire(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.swarms.len() {
            let before = self.swarms[i].peers.len();
            self.swarms[i].peers.retain(|p| p.expires > now);
            self.peer_count -= before - self.swarms[i].peers.len();
            if self.swarms[i].peers.is_empty() {
                let gone = self.swarms.swap_remove(i);
                self.index.remove(&gone.info_hash);
                if let Some(moved) = self.swarms.get(i) {
                    self.index.insert(moved.info_hash, i);
                }
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    fn store(max_infohashes: usize, max_peers: usize) -> PeerStore {
        let limits = StoreLimits {
            max_infohashes,
            max_peers_per_infohash: max_peers,
            ..StoreLimits::default()
        };
        PeerStore::new(
            Duration::from_secs(60),
            limits,
            ahash::RandomState::with_seeds(1, 2, 3, 4),
        )
    }

    fn peer(n: u8) -> SocketAddr {
        SocketAddr::new([127, 0, 1, n].into(), 6881)
    }

    #[test]
    fn announces_are_served_renewed_and_expire() {
        let t0 = Instant::now();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = store(10, 10);
        let ih = [7u8; 20];
        s.announce(t0, ih, peer(1), false).unwrap();
        s.announce(t0 + Duration::from_secs(30), ih, peer(2), true).unwrap();
        let mut out = Vec::new();
        s.peers(t0, &ih, false, 10, &mut rng, &mut out);
        out.sort();
        assert_eq!(out, vec![peer(1), peer(2)]);
        s.peers(t0, &ih, true, 10, &mut rng, &mut out);
        assert_eq!(out, vec![peer(1)], "noseed leaves seeds out");
        // peer 1 expires at t0+60 unless renewed.
        let t60 = t0 + Duration::from_secs(60);
        s.peers(t60, &ih, false, 10, &mut rng, &mut out);
        assert_eq!(out, vec![peer(2)], "expired peers are never served");
        s.announce(t60, ih, peer(2), true).unwrap();
        s.expire(t0 + Duration::from_secs(100));
        assert_eq!((s.infohash_count(), s.peer_count()), (1, 1));
        s.expire(t0 + Duration::from_secs(120));
        assert_eq!((s.infohash_count(), s.peer_count()), (0, 0));
        assert!(!s.contains(&ih));
    }

    #[test]
    fn store_is_bounded() {
        let t0 = Instant::now();
        let mut s = store(2, 3);
        s.announce(t0, [1; 20], peer(1), false).unwrap();
        s.announce(t0, [2; 20], peer(1), false).unwrap();
        assert_eq!(s.announce(t0, [3; 20], peer(1), false), Err(StoreFull));
        for n in 0..10 {
            s.announce(t0 + Duration::from_secs(n), [1; 20], peer(10 + n as u8), false)
                .unwrap();
        }
        assert_eq!(s.live(t0, &[1; 20]).count(), 3);
        assert_eq!(s.peer_count(), 4);
        let newest: Vec<_> = s.live(t0, &[1; 20]).map(|p| p.0).collect();
        assert!(newest.contains(&peer(19)) && !newest.contains(&peer(1)));
    }

    #[test]
    fn samples_are_distinct_bounded_and_cover_the_store() {
        let t0 = Instant::now();
        let mut rng = SmallRng::seed_from_u64(2);
        let mut s = store(1000, 10);
        for n in 0..100u8 {
            s.announce(t0, [n; 20], peer(1), false).unwrap();
        }
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            s.sample(20, &mut rng, &mut out);
            assert_eq!(out.len(), 20);
            let distinct: std::collections::HashSet<_> = out.iter().collect();
            assert_eq!(distinct.len(), 20);
            seen.extend(out.iter().copied());
        }
        assert!(
            seen.len() > 90,
            "uniform sampling reaches most of the store: {}",
            seen.len()
        );
        s.sample(500, &mut rng, &mut out);
        assert_eq!(out.len(), 100);
    }
}
