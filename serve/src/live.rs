//! The crawl as the server sees it: counts sampled from the followed store
//! every [`SAMPLE_EVERY`], an hour of them for the rates and the chart, and
//! the exact counts of `trawl stats`, recounted every [`EXACT_EVERY`].
//!
//! Owns the ring of samples and the rate arithmetic; the store supplies
//! numbers, the pages and the API show them.

use std::collections::VecDeque;
use std::time::Duration;

use trawl_storage::schema::{CF_INFOHASHES, CF_STAGING, CF_TORRENTS};
use trawl_storage::{StorageError, Store, StoreStats};

pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// An hour of samples.
pub const SAMPLES: usize = 360;
/// The exact counts are a full pass over the index: not more often than this.
pub const EXACT_EVERY: Duration = Duration::from_secs(600);

/// RocksDB's estimates of the store's sizes at one moment (Unix seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    pub at: u64,
    pub infohashes: u64,
    pub torrents: u64,
    pub fetch_queue: u64,
}

impl Sample {
    pub fn read(store: &Store, at: u64) -> Result<Sample, StorageError> {
        Ok(Sample {
            at,
            infohashes: store.len_estimate(CF_INFOHASHES)?,
            torrents: store.len_estimate(CF_TORRENTS)?,
            fetch_queue: store.len_estimate(CF_STAGING)?,
        })
    }
}

/// Per-second growth between two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Rates {
    pub infohashes_per_s: f64,
    pub torrents_per_s: f64,
    /// Seconds the rates were measured over (0: not enough samples yet).
    pub over_s: u64,
}

/// An hour of samples and the latest exact counts.
#[derive(Default)]
pub struct Live {
    samples: VecDeque<Sample>,
    exact: Option<(u64, StoreStats)>,
}

impl Live {
    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    pub fn samples(&self) -> impl ExactSizeIterator<Item = &Sample> + DoubleEndedIterator {
        self.samples.iter()
    }

    pub fn latest(&self) -> Option<Sample> {
        self.samples.back().copied()
    }

    /// Growth over the last `window` (or as much of it as was sampled).
    pub fn rates(&self, window: Duration) -> Rates {
        let Some(last) = self.samples.back() else {
            return Rates::default();
        };
        let from = last.at.saturating_sub(window.as_secs());
        let Some(first) = self.samples.iter().find(|s| s.at >= from) else {
            return Rates::default();
        };
        let over = last.at.saturating_sub(first.at);
        if over == 0 {
            return Rates::default();
        }
        let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / over as f64;
        Rates {
            infohashes_per_s: per_s(first.infohashes, last.infohashes),
            torrents_per_s: per_s(first.torrents, last.torrents),
            over_s: over,
        }
    }

    pub fn set_exact(&mut self, at: u64, s: StoreStats) {
        self.exact = Some((at, s));
    }

    pub fn exact(&self) -> Option<&(u64, StoreStats)> {
        self.exact.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: u64, h: u64, tor: u64) -> Sample {
        Sample {
            at: t,
            infohashes: h,
            torrents: tor,
            fetch_queue: 0,
        }
    }

    #[test]
    fn rates_over_the_window_and_the_ring_is_an_hour() {
        let mut l = Live::default();
        assert_eq!(l.rates(Duration::from_secs(60)), Rates::default());
        for i in 0..(SAMPLES as u64 + 10) {
            l.push(at(i * 10, i * 1000, i * 10));
        }
        assert_eq!(l.samples().len(), SAMPLES);
        let r = l.rates(Duration::from_secs(60));
        assert_eq!(r.over_s, 60);
        assert_eq!(r.infohashes_per_s, 100.0);
        assert_eq!(r.torrents_per_s, 1.0);
        // A count that shrank (estimates after a compaction) is no negative rate.
        l.push(at(10_000, 0, 0));
        assert_eq!(l.rates(Duration::from_secs(20)).infohashes_per_s, 0.0);
    }
}
