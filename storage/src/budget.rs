//! The disk budget (`--max-disk`): how much of its own directory a store may
//! fill, and the [`DiskState`] the writer is in because of it or because the
//! file system refused a write.
//!
//! The writer measures the directory (every file's length, as `du
//! --apparent-size` would) at most once a second, adds each batch it writes
//! in between (the WAL grows by about that much), and steps down before the
//! budget is reached, so the last steps still have room:
//!
//! | used of budget | state | what stops |
//! |---|---|---|
//! | 90% | [`DiskState::NoInfoDicts`] | fetched torrents are stored without their info dict |
//! | 95% | [`DiskState::NoFetch`] | the fetchers lease no new work |
//! | 98% | [`DiskState::NoNewInfohashes`] | new infohashes, queue entries and names are not stored |
//!
//! A state is left only once the use is two points below the step that
//! entered it, so compaction's temporary files do not make it flap. Nothing
//! stored is ever deleted or cut by a step. A full file system (ENOSPC) is a
//! state of its own, [`DiskState::DiskFull`], entered by the failed write
//! rather than by a measure and left by the first write that succeeds.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// Per-mille of the budget at which each step is entered.
const STEPS: [(DiskState, u64); 3] = [
    (DiskState::NoInfoDicts, 900),
    (DiskState::NoFetch, 950),
    (DiskState::NoNewInfohashes, 980),
];
/// How far below its step the use must fall before a state is left.
const HYSTERESIS_PER_MILLE: u64 = 20;

/// What the store still takes. Ordered: each state stops what the one before
/// it stopped, and more.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiskState {
    /// Everything is stored.
    #[default]
    Normal = 0,
    /// Torrents are stored without their info dicts.
    NoInfoDicts = 1,
    /// Also, no new metadata fetches start.
    NoFetch = 2,
    /// Also, infohashes never stored before, new queue entries and
    /// provisional names are refused (counted); known hashes still get their
    /// sightings, scrapes and torrents in flight still land.
    NoNewInfohashes = 3,
    /// The file system refused a write: nothing is stored. The writer holds
    /// the refused group and retries it; producers meet a full channel.
    DiskFull = 4,
}

impl DiskState {
    /// The budget's steps, in the order they are entered.
    pub const STEPS: [DiskState; 3] = [DiskState::NoInfoDicts, DiskState::NoFetch, DiskState::NoNewInfohashes];

    pub fn as_str(self) -> &'static str {
        match self {
            DiskState::Normal => "normal",
            DiskState::NoInfoDicts => "no-info-dicts",
            DiskState::NoFetch => "no-fetch",
            DiskState::NoNewInfohashes => "no-new-infohashes",
            DiskState::DiskFull => "disk-full",
        }
    }

    /// What a person reads in the log and the status line.
    pub fn describe(self) -> &'static str {
        match self {
            DiskState::Normal => "storing everything",
            DiskState::NoInfoDicts => "storing torrents without their info dicts",
            DiskState::NoFetch => "not fetching metadata, not keeping info dicts",
            DiskState::NoNewInfohashes => "not storing new infohashes, not fetching",
            DiskState::DiskFull => "disk full: storing paused",
        }
    }

    fn from_u8(v: u8) -> DiskState {
        match v {
            1 => DiskState::NoInfoDicts,
            2 => DiskState::NoFetch,
            3 => DiskState::NoNewInfohashes,
            4 => DiskState::DiskFull,
            _ => DiskState::Normal,
        }
    }

    /// Whether fetched info dicts are kept in this state.
    pub fn keeps_info_dicts(self) -> bool {
        self < DiskState::NoInfoDicts
    }

    /// Whether new fetches may start in this state.
    pub fn fetches(self) -> bool {
        self < DiskState::NoFetch
    }

    /// Whether infohashes never stored before are stored in this state.
    pub fn stores_new(self) -> bool {
        self < DiskState::NoNewInfohashes
    }
}

/// The state a store using `used` bytes of a `budget` should be in, coming
/// from `current`. Pure: the writer's measure and the tests both call it.
/// [`DiskState::DiskFull`] is never produced here (only a write can tell).
pub fn state_for(used: u64, budget: Option<u64>, current: DiskState) -> DiskState {
    let Some(budget) = budget.filter(|b| *b > 0) else {
        return DiskState::Normal;
    };
    let per_mille = (u128::from(used) * 1000 / u128::from(budget)).min(u128::from(u64::MAX)) as u64;
    let mut state = DiskState::Normal;
    for (step, at) in STEPS {
        // A step already reached holds until the use is clearly below it.
        let threshold = if current >= step { at - HYSTERESIS_PER_MILLE } else { at };
        if per_mille >= threshold {
            state = step;
        }
    }
    state
}

/// The budget's live figures, shared by the writer (which sets them) and
/// every handle (which reads them).
#[derive(Debug, Default)]
pub(crate) struct BudgetCell {
    state: AtomicU8,
    /// Bytes under the store's directory at the last measure.
    used: AtomicU64,
    /// The budget in bytes; 0 means none.
    budget: AtomicU64,
}

impl BudgetCell {
    pub(crate) fn state(&self) -> DiskState {
        DiskState::from_u8(self.state.load(Relaxed))
    }

    pub(crate) fn set_state(&self, s: DiskState) {
        self.state.store(s as u8, Relaxed);
    }

    pub(crate) fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }

    pub(crate) fn set_used(&self, b: u64) {
        self.used.store(b, Relaxed);
    }

    pub(crate) fn budget(&self) -> Option<u64> {
        Some(self.budget.load(Relaxed)).filter(|b| *b > 0)
    }

    pub(crate) fn set_budget(&self, b: Option<u64>) {
        self.budget.store(b.unwrap_or(0), Relaxed);
    }
}

/// Parses a size the way the `--max-disk` flag and config key take it: a
/// number with an optional unit, `B`, `K`/`KB`/`KiB`, `M`, `G`, `T` (powers of
/// 1024 with or without the `i`; a bare number is bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "{s:?} is not a size: it must start with a number, like 20G or 500MiB"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size: {num:?} is not a number"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => {
            return Err(format!(
                "{s:?} is not a size: unknown unit {other:?} (use B, K, M, G or T)"
            ))
        }
    };
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is not a usable size: it must be at least one byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    #[test]
    fn steps_are_entered_in_order_as_the_store_grows() {
        let b = Some(100 * G);
        let at = |used: u64| state_for(used, b, DiskState::Normal);
        assert_eq!(at(0), DiskState::Normal);
        assert_eq!(at(89 * G), DiskState::Normal);
        assert_eq!(at(90 * G), DiskState::NoInfoDicts);
        assert_eq!(at(95 * G), DiskState::NoFetch);
        assert_eq!(at(98 * G), DiskState::NoNewInfohashes);
        assert_eq!(
            at(500 * G),
            DiskState::NoNewInfohashes,
            "over the budget is the last step, not full"
        );
        assert_eq!(
            state_for(500 * G, None, DiskState::NoFetch),
            DiskState::Normal,
            "no budget"
        );
    }

    #[test]
    fn a_state_is_left_only_clearly_below_its_step() {
        let b = Some(1000);
        assert_eq!(state_for(890, b, DiskState::NoInfoDicts), DiskState::NoInfoDicts);
        assert_eq!(state_for(879, b, DiskState::NoInfoDicts), DiskState::Normal);
        assert_eq!(
            state_for(975, b, DiskState::NoNewInfohashes),
            DiskState::NoNewInfohashes
        );
        assert_eq!(state_for(959, b, DiskState::NoNewInfohashes), DiskState::NoFetch);
        assert_eq!(
            state_for(975, b, DiskState::DiskFull),
            DiskState::NoNewInfohashes,
            "a write that worked ends the full state; the measure decides the rest"
        );
    }

    #[test]
    fn sizes_parse_with_binary_units_and_bad_ones_say_why() {
        assert_eq!(parse_size("20G"), Ok(20 * G));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 * G / 2));
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "G", "12X", "0", "-3G", "1..2G"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("size"), "{bad:?}: {e}");
        }
    }
}
