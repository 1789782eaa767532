//! Per-sender bookkeeping of each virtual node: the `sample_infohashes`
//! interval it gave that sender, and an optional token bucket.
//!
//! Owns: the (sender IP, virtual node) table and the two politeness rules:
//! a `sample_infohashes` before the given interval is a violation (answered
//! with the same samples, as libtorrent does), and a query beyond the token
//! bucket is a violation that is not answered, as real nodes ban spammers.
//! Must not: touch sockets or clocks; time is passed in.
//!
//! The table is sharded behind mutexes because with several server threads one
//! sender IP (but different ports) can land on different threads. It is only
//! touched for `sample_infohashes` and, when a limit is set, for every query.

use std::collections::HashMap;
use std::sync::Mutex;

use ahash::RandomState;

const SHARDS: usize = 64;

/// A per-(sender IP, virtual node) rate limit: `rate` queries/s, bursts of `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub rate: f64,
    pub burst: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Token bucket state, refilled lazily.
    tokens: f32,
    refilled_ms: u64,
    /// When the next `sample_infohashes` is allowed, in ms since start.
    next_sample_ms: u64,
    /// Polite `sample_infohashes` visits so far: picks the sample window.
    visits: u32,
    sampled: bool,
    bucket_started: bool,
}

/// The outcome of one `sample_infohashes` for the bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleVisit {
    /// Which rotation of the node's samples to return.
    pub window: u32,
    /// It came before the interval this node gave this sender.
    pub violation: bool,
}

pub struct Politeness {
    limit: Option<RateLimit>,
    shards: Vec<Mutex<HashMap<u64, Entry, RandomState>>>,
}

impl Politeness {
    pub fn new(limit: Option<RateLimit>) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(HashMap::with_hasher(RandomState::with_seeds(1, 2, 3, 4))))
            .collect();
        Self { limit, shards }
    }

    pub fn limit(&self) -> Option<RateLimit> {
        self.limit
    }

    fn with_entry<R>(&self, sender: u32, node: u32, f: impl FnOnce(&mut Entry) -> R) -> R {
        let key = (u64::from(sender) << 32) | u64::from(node);
        let shard = (super::derive::mix64(key) as usize) % SHARDS;
        // A poisoned shard only means another server thread panicked; the
        // bookkeeping itself is still consistent.
        let mut map = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(key).or_default())
    }

    /// Takes one token for a query from `sender` to `node`. False means the
    /// query is over the limit: drop it and count a violation.
    pub fn admit(&self, sender: u32, node: u32, now_ms: u64) -> bool {
        let Some(limit) = self.limit else { return true };
        self.with_entry(sender, node, |e| {
            if !e.bucket_started {
                e.bucket_started = true;
                e.tokens = limit.burst as f32;
                e.refilled_ms = now_ms;
            }
            let elapsed = now_ms.saturating_sub(e.refilled_ms) as f64 / 1000.0;
            e.tokens = (f64::from(e.tokens) + elapsed * limit.rate).min(limit.burst) as f32;
            e.refilled_ms = now_ms;
            if e.tokens >= 1.0 {
                e.tokens -= 1.0;
                true
            } else {
                false
            }
        })
    }

    /// Records a `sample_infohashes` from `sender` to `node`, which answers with
    /// `interval_s`.
    pub fn sample(&self, sender: u32, node: u32, now_ms: u64, interval_s: u32) -> SampleVisit {
        self.with_entry(sender, node, |e| {
            if e.sampled && now_ms < e.next_sample_ms {
                return SampleVisit {
                    window: e.visits.saturating_sub(1),
                    violation: true,
                };
            }
            e.sampled = true;
            e.visits += 1;
            e.next_sample_ms = now_ms + u64::from(interval_s) * 1000;
            SampleVisit {
                window: e.visits - 1,
                violation: false,
            }
        })
    }

    /// Number of (sender, node) pairs tracked.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map_or(0, |m| m.len())).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_samples_are_violations_and_repeat_the_window() {
        let p = Politeness::new(None);
        assert_eq!(
            p.sample(1, 7, 0, 10),
            SampleVisit {
                window: 0,
                violation: false
            }
        );
        assert_eq!(
            p.sample(1, 7, 9_999, 10),
            SampleVisit {
                window: 0,
                violation: true
            }
        );
        // Another sender, or another node, has its own interval.
        assert!(!p.sample(2, 7, 5_000, 10).violation);
        assert!(!p.sample(1, 8, 5_000, 10).violation);
        assert_eq!(
            p.sample(1, 7, 10_000, 10),
            SampleVisit {
                window: 1,
                violation: false
            }
        );
        // Interval 0 never makes a violation.
        assert!(!p.sample(3, 3, 0, 0).violation && !p.sample(3, 3, 0, 0).violation);
        assert!(p.admit(1, 1, 0), "no limit configured");
    }

    #[test]
    fn token_bucket_admits_burst_then_rate() {
        let p = Politeness::new(Some(RateLimit { rate: 5.0, burst: 10.0 }));
        let admitted = (0..20).filter(|_| p.admit(9, 1, 1)).count();
        assert_eq!(admitted, 10);
        // One second later, five more tokens.
        let admitted = (0..20).filter(|_| p.admit(9, 1, 1001)).count();
        assert_eq!(admitted, 5);
        assert!(p.admit(10, 1, 1001), "other senders are unaffected");
    }
}
