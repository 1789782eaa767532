//! The live status line of a running crawl: rates computed from successive
//! [`CrawlSnapshot`]s, drawn with `indicatif` when a person is watching (stderr
//! is a terminal), otherwise written as a structured `tracing` info line every
//! few seconds (services, pipes, CI logs).
//!
//! Owns only the previous snapshot and the drawing. The rate computation
//! ([`Rates::between`]) and the text ([`Rates::line`]) are pure and tested; the
//! caller decides how often to call [`StatusLine::update`] and passes `now`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use trawl_engine::ops::CrawlSnapshot;
use trawl_storage::DiskState;

/// The figures the status line shows: rates over the interval between two
/// snapshots, and the gauges of the later one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rates {
    /// Length of the interval, from the snapshots' uptimes.
    pub secs: f64,
    pub datagrams_in_per_s: f64,
    pub datagrams_out_per_s: f64,
    /// Infohashes new to the database, and those it already held.
    pub new_per_s: f64,
    pub duplicate_per_s: f64,
    /// Metadata fetched and stored.
    pub metadata_per_s: f64,
    pub known_nodes: u64,
    /// Known nodes that answered BEP 51 samples and that did not (the rest are untried).
    pub bep51_yes: u64,
    pub bep51_no: u64,
    /// Nodes marked unreachable so far.
    pub unreachable: u64,
    pub staging_backlog: u64,
    /// Metadata fetches running now.
    pub fetch_in_flight: u64,
    pub paused: bool,
    /// Why the numbers may be quiet; see [`Phase`].
    pub phase: Phase,
    /// The disk budget's state, bytes used and the budget (0: none).
    pub disk_state: DiskState,
    pub disk_used: u64,
    pub disk_budget: u64,
}

impl Rates {
    /// Rates from `prev` to `cur`. Counters that went backwards (a restarted
    /// source) and empty intervals count as zero rather than as garbage.
    pub fn between(prev: &CrawlSnapshot, cur: &CrawlSnapshot) -> Rates {
        let secs = cur.uptime_secs - prev.uptime_secs;
        let rate = |a: u64, b: u64| {
            if secs > 0.0 {
                b.saturating_sub(a) as f64 / secs
            } else {
                0.0
            }
        };
        let samples = cur
            .total(|c| c.samples_sent)
            .saturating_sub(prev.total(|c| c.samples_sent));
        let next_sample_ms = cur.cores.iter().map(|c| c.next_sample_ms).min().unwrap_or(u64::MAX);
        let known_nodes = cur.total(|c| c.known_nodes);
        let phase = if known_nodes == 0 && cur.total(|c| c.replies_received) == 0 {
            Phase::WaitingForBootstrap
        } else if cur.cores.iter().any(|c| c.backlogged) {
            Phase::WriterBacklog
        } else if samples == 0 && known_nodes > 0 && next_sample_ms != u64::MAX && next_sample_ms >= 1_000 {
            Phase::AllSampled {
                next_due_secs: next_sample_ms / 1_000,
            }
        } else {
            Phase::Crawling
        };
        Rates {
            secs: secs.max(0.0),
            datagrams_in_per_s: rate(prev.total(|c| c.datagrams_in), cur.total(|c| c.datagrams_in)),
            datagrams_out_per_s: rate(prev.total(|c| c.datagrams_out), cur.total(|c| c.datagrams_out)),
            new_per_s: rate(prev.storage.new_infohashes, cur.storage.new_infohashes),
            duplicate_per_s: rate(prev.storage.duplicate_infohashes, cur.storage.duplicate_infohashes),
            metadata_per_s: rate(prev.fetch.ok, cur.fetch.ok),
            known_nodes,
            bep51_yes: cur.total(|c| c.nodes_bep51_yes),
            bep51_no: cur.total(|c| c.nodes_bep51_no),
            unreachable: cur.total(|c| c.marked_unreachable),
            staging_backlog: cur.storage.staging_backlog,
            fetch_in_flight: cur.fetch.active,
            paused: cur.paused,
            phase,
            disk_state: cur.storage.disk_state,
            disk_used: cur.storage.disk_used_bytes,
            disk_budget: cur.storage.disk_budget_bytes,
        }
    }

    /// One short line for a terminal.
    pub fn line(&self) -> String {
        format!(
            "in {}/s out {}/s | hashes new {}/s dup {}/s | nodes {}{} | fetch queue {}, in flight {} | metadata {}/s{}{}{}",
            si(self.datagrams_in_per_s),
            si(self.datagrams_out_per_s),
            si(self.new_per_s),
            si(self.duplicate_per_s),
            si(self.known_nodes as f64),
            self.node_kinds(),
            si(self.staging_backlog as f64),
            si(self.fetch_in_flight as f64),
            si(self.metadata_per_s),
            self.disk(),
            if self.paused { " | PAUSED" } else { "" },
            self.phase.describe(self.known_nodes)
        )
    }

    /// The share of tried nodes that speak BEP 51, and the unreachable ones.
    fn node_kinds(&self) -> String {
        let tried = self.bep51_yes + self.bep51_no;
        let mut out = String::new();
        if tried > 0 {
            out.push_str(&format!(
                ", {:.0}% BEP 51",
                self.bep51_yes as f64 * 100.0 / tried as f64
            ));
        }
        if self.unreachable > 0 {
            out.push_str(&format!(", {} unreachable", si(self.unreachable as f64)));
        }
        out
    }

    /// The disk part: the share of `--max-disk` when there is one, and what a
    /// budget step or a full disk stopped.
    fn disk(&self) -> String {
        let share = (self.disk_budget > 0).then(|| {
            format!(
                "disk {:.0}% of {}",
                self.disk_used as f64 * 100.0 / self.disk_budget as f64,
                crate::commands::stats::human_bytes(self.disk_budget)
            )
        });
        match (share, self.disk_state) {
            (None, DiskState::Normal) => String::new(),
            (Some(share), DiskState::Normal) => format!(" | {share}"),
            (None, state) => format!(" | {}", state.describe().to_uppercase()),
            (Some(share), state) => format!(" | {share}: {}", state.describe().to_uppercase()),
        }
    }
}

/// What explains a quiet status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Crawling,
    /// No node known and none has answered yet.
    WaitingForBootstrap,
    /// Sampling holds back until the writer (or the scrape queue) catches up.
    WriterBacklog,
    /// Every known node was sampled within its interval; the next is due later.
    AllSampled { next_due_secs: u64 },
}

impl Phase {
    fn describe(self, known: u64) -> String {
        match self {
            Phase::Crawling => String::new(),
            Phase::WaitingForBootstrap => " | waiting for bootstrap".into(),
            Phase::WriterBacklog => " | sampling paused: writer backlog".into(),
            Phase::AllSampled { next_due_secs } => {
                format!(
                    " | all {} known nodes sampled; next due in {}",
                    si(known as f64),
                    secs(next_due_secs)
                )
            }
        }
    }
}

/// `45 s`, `12 min`, `3.5 h`.
fn secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7_199 => format!("{} min", s / 60),
        _ => format!("{:.1} h", s as f64 / 3600.0),
    }
}

/// A figure in three significant-ish characters: `950`, `12.3k`, `4.1M`.
fn si(v: f64) -> String {
    const STEPS: [(f64, &str); 3] = [(1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, suffix) in STEPS {
        if v >= scale {
            return format!("{:.1}{suffix}", v / scale);
        }
    }
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Where the line goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMode {
    /// Redrawn in place on stderr.
    Terminal,
    /// A `tracing` info line every `log_every`.
    Log,
    /// Nothing (tests, `--quiet`).
    Off,
}

impl StatusMode {
    /// `Terminal` when stderr (where the line is drawn; stdout carries the
    /// final JSON summary) is a terminal, `Log` otherwise.
    pub fn detect() -> StatusMode {
        if std::io::stderr().is_terminal() {
            StatusMode::Terminal
        } else {
            StatusMode::Log
        }
    }
}

/// The status line. Call [`update`](Self::update) with each new snapshot (about
/// once a second) and [`finish`](Self::finish) at the end.
pub struct StatusLine {
    mode: StatusMode,
    bar: Option<ProgressBar>,
    log_every: Duration,
    /// The snapshot rates are measured from, and when it was taken.
    last: Option<(Instant, CrawlSnapshot)>,
}

impl StatusLine {
    pub fn new(mode: StatusMode, log_every: Duration) -> StatusLine {
        let bar = (mode == StatusMode::Terminal).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message("starting");
            bar
        });
        StatusLine {
            mode,
            bar,
            log_every,
            last: None,
        }
    }

    /// Takes a new snapshot; returns the rates it drew or logged, if any.
    pub fn update(&mut self, now: Instant, snapshot: CrawlSnapshot) -> Option<Rates> {
        if self.mode == StatusMode::Off {
            return None;
        }
        let Some((since, prev)) = &self.last else {
            self.last = Some((now, snapshot));
            return None;
        };
        // The terminal line is redrawn on every update; a log line waits for
        // its interval so logs stay readable, and its rates cover the interval.
        if self.mode != StatusMode::Terminal && now.saturating_duration_since(*since) < self.log_every {
            return None;
        }
        let rates = Rates::between(prev, &snapshot);
        match self.mode {
            StatusMode::Terminal => {
                if let Some(bar) = &self.bar {
                    bar.set_message(rates.line());
                    bar.tick();
                }
            }
            StatusMode::Log => tracing::info!(
                target: "trawl::status",
                datagrams_in_per_s = rates.datagrams_in_per_s.round(),
                datagrams_out_per_s = rates.datagrams_out_per_s.round(),
                new_per_s = rates.new_per_s.round(),
                duplicate_per_s = rates.duplicate_per_s.round(),
                known_nodes = rates.known_nodes,
                staging_backlog = rates.staging_backlog,
                fetch_in_flight = rates.fetch_in_flight,
                metadata_per_s = rates.metadata_per_s,
                paused = rates.paused,
                "{}",
                rates.line()
            ),
            StatusMode::Off => {}
        }
        self.last = Some((now, snapshot));
        Some(rates)
    }

    /// Removes the live line (the final summary is printed by the caller).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_engine::ops::CoreSnapshot;

    fn snap(uptime: f64, dg_in: u64, new: u64, ok: u64) -> CrawlSnapshot {
        let core = |i| CoreSnapshot {
            core: i,
            datagrams_in: dg_in,
            datagrams_out: dg_in / 2,
            known_nodes: 1_500,
            ..CoreSnapshot::default()
        };
        let mut s = CrawlSnapshot {
            uptime_secs: uptime,
            cores: vec![core(0), core(1)],
            ..CrawlSnapshot::default()
        };
        s.storage.new_infohashes = new;
        s.storage.duplicate_infohashes = new / 4;
        s.storage.staging_backlog = 12_345;
        s.fetch.ok = ok;
        s
    }

    #[test]
    fn rates_are_counter_differences_over_uptime() {
        let r = Rates::between(&snap(10.0, 1_000, 100, 4), &snap(12.0, 41_000, 2_100, 10));
        assert_eq!(r.secs, 2.0);
        // Two cores, each +40,000 over 2 s.
        assert_eq!(r.datagrams_in_per_s, 40_000.0);
        assert_eq!(r.datagrams_out_per_s, 20_000.0);
        assert_eq!(r.new_per_s, 1_000.0);
        assert_eq!(r.duplicate_per_s, 250.0);
        assert_eq!(r.metadata_per_s, 3.0);
        assert_eq!((r.known_nodes, r.staging_backlog), (3_000, 12_345));
        assert_eq!(
            r.line(),
            "in 40.0k/s out 20.0k/s | hashes new 1.0k/s dup 250/s | nodes 3.0k | fetch queue 12.3k, in flight 0 | metadata 3/s"
        );
    }

    #[test]
    fn quiet_phases_are_explained() {
        let a = snap(10.0, 1_000, 100, 4);
        let mut b = snap(12.0, 1_000, 100, 4);
        // Samples were sent before; none in this interval; the next is 5 minutes away.
        for c in &mut b.cores {
            c.next_sample_ms = 300_000;
            c.nodes_bep51_yes = 600;
            c.nodes_bep51_no = 400;
            c.marked_unreachable = 6;
        }
        b.fetch.active = 7;
        let line = Rates::between(&a, &b).line();
        assert!(
            line.ends_with(" | all 3.0k known nodes sampled; next due in 5 min"),
            "{line}"
        );
        assert!(line.contains("nodes 3.0k, 60% BEP 51, 12 unreachable"), "{line}");
        assert!(line.contains("fetch queue 12.3k, in flight 7"), "{line}");
        b.cores[1].backlogged = true;
        assert!(Rates::between(&a, &b)
            .line()
            .ends_with(" | sampling paused: writer backlog"));
        let mut fresh = snap(1.0, 0, 0, 0);
        for c in &mut fresh.cores {
            c.known_nodes = 0;
        }
        assert!(Rates::between(&fresh, &fresh)
            .line()
            .ends_with(" | waiting for bootstrap"));
        // Sampling in this interval: no phase text.
        let mut busy = b.clone();
        busy.cores[1].backlogged = false;
        for c in &mut busy.cores {
            c.samples_sent = 50;
        }
        assert!(!Rates::between(&a, &busy).line().contains("next due"));
    }

    #[test]
    fn empty_or_backwards_intervals_give_zero_not_garbage() {
        let a = snap(10.0, 5_000, 100, 4);
        let same_time = Rates::between(&a, &a);
        assert_eq!((same_time.secs, same_time.datagrams_in_per_s), (0.0, 0.0));
        let backwards = Rates::between(&snap(10.0, 5_000, 100, 4), &snap(11.0, 1_000, 50, 1));
        assert_eq!(
            (
                backwards.datagrams_in_per_s,
                backwards.new_per_s,
                backwards.metadata_per_s
            ),
            (0.0, 0.0, 0.0)
        );
        let mut paused = snap(11.0, 5_000, 100, 4);
        paused.paused = true;
        assert!(Rates::between(&a, &paused).line().ends_with(" | PAUSED"));
    }

    #[test]
    fn the_disk_part_shows_the_budget_share_and_what_a_step_stopped() {
        let a = snap(10.0, 5_000, 100, 4);
        let mut b = snap(11.0, 5_000, 100, 4);
        assert!(
            !Rates::between(&a, &b).line().contains("disk"),
            "no budget, no state: nothing"
        );
        b.storage.disk_budget_bytes = 10 << 30;
        b.storage.disk_used_bytes = 4 << 30;
        assert!(Rates::between(&a, &b).line().ends_with(" | disk 40% of 10.0 GiB"));
        b.storage.disk_used_bytes = (10u64 << 30) * 94 / 100;
        b.storage.disk_state = DiskState::NoFetch;
        assert!(
            Rates::between(&a, &b)
                .line()
                .ends_with(" | disk 94% of 10.0 GiB: NOT FETCHING METADATA, NOT KEEPING INFO DICTS"),
            "{}",
            Rates::between(&a, &b).line()
        );
        b.storage.disk_budget_bytes = 0;
        b.storage.disk_state = DiskState::DiskFull;
        assert!(Rates::between(&a, &b).line().ends_with(" | DISK FULL: STORING PAUSED"));
    }

    #[test]
    fn si_keeps_figures_short() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(2.5), "2.5");
        assert_eq!(si(999.0), "999");
        assert_eq!(si(1_234.0), "1.2k");
        assert_eq!(si(4_100_000.0), "4.1M");
        assert_eq!(si(7.3e9), "7.3G");
    }

    #[test]
    fn log_mode_waits_for_its_interval_and_measures_across_it() {
        let t0 = Instant::now();
        let mut line = StatusLine::new(StatusMode::Log, Duration::from_secs(10));
        assert_eq!(line.update(t0, snap(0.0, 0, 0, 0)), None);
        assert_eq!(line.update(t0 + Duration::from_secs(5), snap(5.0, 500, 0, 0)), None);
        let r = line
            .update(t0 + Duration::from_secs(10), snap(10.0, 1_000, 0, 0))
            .unwrap();
        // From the first snapshot, not the skipped one: 2 cores x 1,000 over 10 s.
        assert_eq!(r.datagrams_in_per_s, 200.0);
        assert_eq!(line.update(t0 + Duration::from_secs(11), snap(11.0, 2_000, 0, 0)), None);

        let mut off = StatusLine::new(StatusMode::Off, Duration::from_secs(10));
        off.update(t0, snap(0.0, 0, 0, 0));
        assert!(off.update(t0 + Duration::from_secs(20), snap(20.0, 10, 0, 0)).is_none());
    }
}
