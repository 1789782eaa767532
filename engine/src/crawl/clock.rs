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
}
