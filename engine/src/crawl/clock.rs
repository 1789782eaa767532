//! Compact time for per-node state: milliseconds since the scheduler's epoch in a
//! `u64`, instead of a 16-byte `Instant` per field. Owns only the conversion.

use std::time::{Duration, Instant};

/// Milliseconds since the owning scheduler's epoch.
pub type Millis = u64;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new(epoch: Instant) -> Self {
        Clock { epoch }
    }

    /// `now`, rounded down: "has `t` passed" checks stay conservative.
    pub fn floor(&self, now: Instant) -> Millis {
        now.saturating_duration_since(self.epoch).as_millis() as Millis
    }

    /// `now`, rounded up: deadlines computed from it are never early.
    pub fn ceil(&self, now: Instant) -> Millis {
        let ns = now.saturating_duration_since(self.epoch).as_nanos();
        ns.div_ceil(1_000_000).min(u128::from(Millis::MAX)) as Millis
    }

    pub fn instant(&self, ms: Millis) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Deadline `t` as whole unix seconds, rounded up, for storage; 0 if it
    /// has passed. `unix_now` is the wall clock read at (or just after) `now`.
    pub fn to_unix_secs(&self, t: Millis, now: Instant, unix_now: Duration) -> u64 {
        let left = t.saturating_sub(self.floor(now));
        if left == 0 {
            return 0;
        }
        let unix_ms = unix_now.as_nanos().div_ceil(1_000_000).min(u128::from(u64::MAX)) as u64;
        unix_ms.saturating_add(left).div_ceil(1000)
    }

    /// A stored unix-seconds deadline back on this clock, rounded so the wait
    /// is never shortened, and at most `max_wait` from now (a wall clock set
    /// back between runs must not park a node for ever). `unix_now` is the wall
    /// clock read at (or just before) `now`.
    pub fn from_unix_secs(&self, secs: u64, now: Instant, unix_now: Duration, max_wait: Millis) -> Millis {
        let unix_ms = unix_now.as_millis().min(u128::from(u64::MAX)) as u64;
        let left = secs.saturating_mul(1000).saturating_sub(unix_ms).min(max_wait);
        self.ceil(now).saturating_add(left)
    }
}

pub fn ms(d: Duration) -> Millis {
    d.as_millis().min(u128::from(u64::MAX)) as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_ceil_bracket_the_instant() {
        let epoch = Instant::now();
        let c = Clock::new(epoch);
        let t = epoch + Duration::from_micros(2_500);
        assert_eq!((c.floor(t), c.ceil(t)), (2, 3));
        let exact = epoch + Duration::from_millis(7);
        assert_eq!((c.floor(exact), c.ceil(exact)), (7, 7));
        assert!(c.instant(c.ceil(t)) >= t && c.instant(c.floor(t)) <= t);
        if let Some(before) = epoch.checked_sub(Duration::from_secs(1)) {
            assert_eq!(c.floor(before), 0);
        }
    }

    #[test]
    fn unix_round_trips_never_shorten_a_wait() {
        let epoch = Instant::now();
        let c = Clock::new(epoch);
        let now = epoch + Duration::from_micros(10_400);
        let unix = Duration::from_millis(1_700_000_000_300);
        // 5,000.4 ms left at 1,700,000,000.3 s: 1,700,000,005.3, rounded up.
        assert_eq!(c.to_unix_secs(5_010, now, unix), 1_700_000_006);
        assert_eq!(c.to_unix_secs(10, now, unix), 0, "passed");
        // Loaded again 2 s later (another process, another epoch): at least 3.7 s left.
        let (c2, now2) = (Clock::new(now), now + Duration::from_micros(1));
        let later = unix + Duration::from_secs(2);
        let due = c2.from_unix_secs(1_700_000_006, now2, later, u64::MAX);
        assert!(c2.instant(due) >= now2 + Duration::from_millis(3_700), "due {due}");
        assert_eq!(
            c2.from_unix_secs(1_700_000_006, now2, later, 1_000),
            c2.ceil(now2) + 1_000
        );
        assert_eq!(
            c2.from_unix_secs(5, now2, later, u64::MAX),
            c2.ceil(now2),
            "long passed"
        );
    }
}
