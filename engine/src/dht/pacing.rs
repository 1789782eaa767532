//! Outgoing pacing, so no remote node and no infohash gets a burst from us: a
//! minimum gap between datagrams to one address, and a token bucket per infohash.
//! Also home of the [`TokenBucket`] the answer limiter reuses. Decides only *when*;
//! owns no queues and sends nothing. Memory is bounded by pruning idle entries.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Longest a token bucket ever asks anyone to wait.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A classic token bucket, in fractional tokens.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn full(burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = now;
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there (now if one is).
    pub fn ready_at(&self, now: Instant, rate: f64) -> Instant {
        let missing = 1.0 - self.tokens;
        if missing <= 0.0 {
            return now.max(self.last);
        }
        // A zero or absurd rate means "a day from now", never an overflow.
        let wait = Duration::try_from_secs_f64(missing / rate)
            .unwrap_or(MAX_WAIT)
            .min(MAX_WAIT);
        self.last + wait
    }

    pub fn is_full(&self, now: Instant, rate: f64, burst: f64) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + dt * rate >= burst
    }
}

/// Token buckets keyed by anything (IPs, infohashes), at most `cap` of them.
#[derive(Clone)]
pub struct KeyedBuckets<K> {
    rate: f64,
    burst: f64,
    cap: usize,
    map: HashMap<K, TokenBucket, ahash::RandomState>,
}

impl<K: Hash + Eq + Copy> KeyedBuckets<K> {
    pub fn new(rate: f64, burst: f64, cap: usize, hasher: ahash::RandomState) -> Self {
        KeyedBuckets {
            rate,
            burst,
            cap: cap.max(1),
            map: HashMap::with_hasher(hasher),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// When `key` may go next; `now` for an unknown key.
    pub fn ready_at(&self, now: Instant, key: &K) -> Instant {
        self.map.get(key).map_or(now, |b| b.ready_at(now, self.rate))
    }

    /// Takes a token for `key`. A new key is refused only when `cap` keys are
    /// tracked and none is idle (full) enough to forget.
    pub fn take(&mut self, now: Instant, key: K) -> bool {
        if !self.map.contains_key(&key) && self.map.len() >= self.cap {
            self.prune(now);
            if self.map.len() >= self.cap {
                return false;
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        self.map
            .entry(key)
            .or_insert_with(|| TokenBucket::full(burst, now))
            .take(now, rate, burst)
    }

    /// Forgets keys whose bucket is full again: they behave like new keys.
    pub fn prune(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.map.retain(|_, b| !b.is_full(now, rate, burst));
    }
}

/// Minimum gap between two datagrams to one remote.
#[derive(Clone)]
pub struct RemoteGap {
    gap: Duration,
    last_sent: HashMap<SocketAddr, Instant, ahash::RandomState>,
}

impl RemoteGap {
    pub fn new(gap: Duration, hasher: ahash::RandomState) -> Self {
        RemoteGap {
            gap,
            last_sent: HashMap::with_hasher(hasher),
        }
    }

    pub fn ready_at(&self, now: Instant, addr: &SocketAddr) -> Instant {
        self.last_sent.get(addr).map_or(now, |t| (*t + self.gap).max(now))
    }

    pub fn sent(&mut self, now: Instant, addr: SocketAddr) {
        if !self.gap.is_zero() {
            self.last_sent.insert(addr, now);
        }
    }

    /// Forgets remotes whose gap has passed; keeps memory proportional to the
    /// remotes contacted within one gap.
    pub fn prune(&mut self, now: Instant) {
        let gap = self.gap;
        self.last_sent.retain(|_, t| now.saturating_duration_since(*t) < gap);
    }

    pub fn len(&self) -> usize {
        self.last_sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_sent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> ahash::RandomState {
        ahash::RandomState::with_seeds(1, 2, 3, 4)
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(3.0, t0);
        assert!((0..3).all(|_| b.take(t0, 2.0, 3.0)));
        assert!(!b.take(t0, 2.0, 3.0));
        assert_eq!(b.ready_at(t0, 2.0), t0 + Duration::from_millis(500));
        assert!(b.take(t0 + Duration::from_millis(500), 2.0, 3.0));
        assert!(!b.is_full(t0 + Duration::from_millis(500), 2.0, 3.0));
        assert!(b.is_full(t0 + Duration::from_secs(2), 2.0, 3.0));
    }

    #[test]
    fn keyed_buckets_are_independent_and_bounded() {
        let t0 = Instant::now();
        let mut k: KeyedBuckets<u32> = KeyedBuckets::new(1.0, 2.0, 2, hasher());
        assert!(k.take(t0, 1) && k.take(t0, 1));
        assert!(!k.take(t0, 1));
        assert!(k.take(t0, 2));
        assert!(!k.take(t0, 3), "cap reached and no key idle");
        assert_eq!(k.ready_at(t0, &1), t0 + Duration::from_secs(1));
        let later = t0 + Duration::from_secs(5);
        assert!(k.take(later, 3), "idle keys pruned to make room");
        assert!(k.len() <= 2);
    }

    #[test]
    fn remote_gap_spaces_datagrams_per_address() {
        let t0 = Instant::now();
        let mut g = RemoteGap::new(Duration::from_millis(100), hasher());
        let a: SocketAddr = "127.0.0.2:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:1".parse().unwrap();
        assert_eq!(g.ready_at(t0, &a), t0);
        g.sent(t0, a);
        assert_eq!(g.ready_at(t0, &a), t0 + Duration::from_millis(100));
        assert_eq!(g.ready_at(t0, &b), t0);
        g.prune(t0 + Duration::from_millis(100));
        assert!(g.is_empty());
    }
}
