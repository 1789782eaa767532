//! `trawl-bench soak`: a long, bounded `trawl crawl` against a churning
//! `trawl-swarm`, watching for leaks and decay while the database grows.
//!
//! The defaults aim at a steady workload whose database grows for the whole
//! run: 6 M torrents on 10,000 nodes (600 held per node with one holder per
//! torrent: `--holders-max 1`), nodes re-sampled at
//! their own BEP 51 interval (spread over 0-500 s) but no sooner than
//! `--resample-secs 60`, so no node comes near the end of its stock in 25
//! minutes and every sample brings new hashes. All nodes are found, and first
//! sampled, within seconds; their different intervals spread the visits out
//! after that, which is what the long warm-up waits for. The load still
//! ripples (a node's period is fixed), so rates are also compared over five
//! minutes.
//!
//! A node's stock is `--torrents / --nodes` hashes, 20 a sample, so the nodes
//! sampled most often run dry after `stock / 20` re-samples and the load
//! falls from then on: the bench says when (`stock_runs_out_secs`) and warns
//! if that is inside the run; longer soaks need more `--torrents`.
//!
//! Owns: the samples (once a second: the crawler's RSS, open fds and CPU time,
//! the swarm's datagram counters, the crawler's own figures from its
//! `--metrics` endpoint, RocksDB's memory and the process's memory by
//! allocator among them, so a leak in trawl's own structures, RocksDB's
//! growth and allocator retention each get a slope; every 10 s: the database
//! directory's WAL and SST bytes), the fitted slopes after warm-up and over the second half, the
//! minute after warm-up against the last minute, a `{"soak_minute":..}` line a
//! minute on stderr, RocksDB's block-cache usage from the statistics it
//! writes to its `LOG`, and the final `{"bench":"soak",...}` line.
//! Must not: send anywhere but 127.0.0.0/8, or run past `--secs` (the crawler
//! and the swarm also carry their own `--duration` bounds).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use crate::crawl::{self, round, stat_delta, stat_f64, Placement, SwarmChild, SwarmSpawn, TrawlChild, TrawlSpawn};
use crate::swarm::nodes::node_addr;
use crate::sys;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 10_000)]
    pub nodes: u32,
    #[arg(long, default_value_t = 6_000_000)]
    pub torrents: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of the soak, after the crawler's first queries reach the swarm.
    #[arg(long, default_value_t = 1200.0)]
    pub secs: f64,
    /// Samples before this are left out of the slopes; the first minute compared
    /// with the last starts here.
    #[arg(long, default_value_t = 420.0)]
    pub warmup_secs: f64,
    /// Fraction of live swarm nodes that die and come back.
    #[arg(long, default_value_t = 0.2)]
    pub churn: f64,
    /// Seconds a churning node stays up, then down.
    #[arg(long, default_value_t = 30.0)]
    pub churn_period: f64,
    /// The swarm's largest sample interval (seconds): nodes' intervals spread
    /// over 0..=this, which spreads their visits.
    #[arg(long, default_value_t = 500)]
    pub interval_max: u32,
    /// `trawl crawl --resample-secs`: earliest re-sample of a productive node
    /// (0: leave trawl's default).
    #[arg(long, default_value_t = 60)]
    pub resample_secs: u32,
    // Below the ephemeral range, like the flood bench's ports.
    #[arg(long, default_value_t = 27_081)]
    pub port: u16,
    #[arg(long, default_value_t = 27_082)]
    pub peer_port: u16,
    #[arg(long, default_value_t = 27_083)]
    pub trawl_port: u16,
    /// The crawler's `--metrics` endpoint, on 127.0.0.1.
    #[arg(long, default_value_t = 27_084)]
    pub metrics_port: u16,
    /// `trawl crawl --fetch-concurrency`: low, so the stored info dicts (about
    /// 29 KB each here) stay within the disk over a long run.
    #[arg(long, default_value_t = 32)]
    pub fetchers: usize,
    /// `trawl-swarm --holders-max`: 1 puts each torrent on one node, so a
    /// sample never repeats a hash another node already gave.
    #[arg(long, default_value_t = 1)]
    pub holders_max: u32,
    /// One more argument for `trawl-swarm` (repeatable).
    #[arg(long = "swarm-arg", allow_hyphen_values = true)]
    pub swarm_args: Vec<String>,
    /// One more argument for `trawl crawl` (repeatable), e.g. `--trawl-arg=--walk-secs=300`.
    #[arg(long = "trawl-arg", allow_hyphen_values = true)]
    pub trawl_args: Vec<String>,
    #[arg(long)]
    pub trawl_bin: Option<std::path::PathBuf>,
    #[arg(long)]
    pub swarm_bin: Option<std::path::PathBuf>,
}

/// One sample of the crawler and the swarm; counters are totals since the
/// window opened (crawler figures: since it started).
#[derive(Clone, Copy, Default)]
struct Sample {
    t: f64,
    rss_mb: f64,
    fds: f64,
    /// The crawler's CPU time (all threads).
    cpu_s: f64,
    /// Datagrams the swarm exchanged with the crawler (in + out).
    datagrams: f64,
    /// New infohashes stored (acknowledged by the writer).
    stored: f64,
    torrents: f64,
    staging_backlog: f64,
    commits: f64,
    commit_s: f64,
    /// The database directory: write-ahead log (about the unflushed
    /// memtables) and table files (whose index and filter blocks RocksDB
    /// keeps in memory).
    wal_mb: f64,
    sst_mb: f64,
    sst_files: f64,
    /// Anonymous part of RSS (heap, RocksDB's caches and memtables).
    anon_mb: f64,
    /// RocksDB's memtables, table readers and block cache (the crawler's gauge).
    rocksdb_mb: f64,
    /// The crawler's memory by allocator (its `trawl_memory_bytes` gauges):
    /// live Rust bytes, mimalloc's committed memory, glibc's heap (RocksDB
    /// and other C++) in use and freed but kept.
    rust_live_mb: f64,
    mimalloc_mb: f64,
    libc_used_mb: f64,
    libc_free_mb: f64,
    /// The crawler's queries that timed out, and replies that matched no query
    /// (late ones among them).
    timeouts: f64,
    unmatched: f64,
    /// The swarm's politeness violations (interval and rate).
    violations: f64,
}

/// Metric names read from the crawler's `/metrics`.
const M_STORED: &str = "trawl_storage_infohashes_total{result=\"new\"}";
const M_TORRENTS: &str = "trawl_storage_torrents_total";
const M_BACKLOG: &str = "trawl_staging_backlog";
const M_COMMITS: &str = "trawl_storage_commits_total";
const M_COMMIT_S: &str = "trawl_storage_commit_seconds_total";
const M_ROCKSDB: &str = "trawl_storage_rocksdb_memory_bytes";
const M_RUST_LIVE: &str = "trawl_memory_bytes{part=\"rust_heap_live\"}";
const M_MIMALLOC: &str = "trawl_memory_bytes{part=\"mimalloc_committed\"}";
const M_LIBC_USED: &str = "trawl_memory_bytes{part=\"libc_heap_in_use\"}";
const M_LIBC_FREE: &str = "trawl_memory_bytes{part=\"libc_heap_free\"}";
const MB: f64 = 1024.0 * 1024.0;
const DB_EVERY: Duration = Duration::from_secs(10);

/// Hashes per `sample_infohashes` reply (the swarm's default, libtorrent's).
const SAMPLES_PER_REPLY: f64 = 20.0;

/// When the most often sampled nodes (every `resample_secs`) have given their
/// whole stock (at most, with more than one holder per torrent); `None` if
/// re-sampling is left to trawl's default.
fn stock_runs_out_secs(torrents: u32, holders_max: u32, nodes: u32, resample_secs: u32) -> Option<f64> {
    let stock = f64::from(torrents) * f64::from(holders_max.max(1)) / f64::from(nodes.max(1));
    (resample_secs > 0).then(|| (stock / SAMPLES_PER_REPLY).ceil() * f64::from(resample_secs))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runs_out = stock_runs_out_secs(args.torrents, args.holders_max, args.nodes, args.resample_secs);
    if let Some(t) = runs_out.filter(|&t| t < args.secs) {
        eprintln!(
            "soak: warning: the busiest nodes' stock runs out at {t:.0} s, inside --secs {}: the load falls after that (raise --torrents)",
            args.secs
        );
    }
    let place = Placement::choose(false, sys::online_cores());
    let mut swarm = SwarmChild::spawn(
        &SwarmSpawn {
            bin: args.swarm_bin.clone(),
            nodes: args.nodes,
            torrents: args.torrents,
            seed: args.seed,
            port: args.port,
            peer_port: args.peer_port,
            interval_max: args.interval_max,
            rate_limit: 0.0,
            max_secs: args.secs + 900.0,
            churn: Some(args.churn),
            churn_period: Some(args.churn_period),
            extra_args: [
                vec!["--holders-max".to_string(), args.holders_max.to_string()],
                args.swarm_args.clone(),
            ]
            .concat(),
        },
        place,
    )?;
    let mut extra = vec![format!("--metrics=127.0.0.1:{}", args.metrics_port)];
    if args.resample_secs > 0 {
        extra.push(format!("--resample-secs={}", args.resample_secs));
    }
    extra.extend(args.trawl_args.iter().cloned());
    let mut child = TrawlChild::spawn(&TrawlSpawn {
        bin: args.trawl_bin.as_deref(),
        port: args.trawl_port,
        cores: 1,
        bootstrap: SocketAddrV4::new(node_addr(0), swarm.udp_port()),
        max_secs: args.secs + 120.0,
        fetchers: args.fetchers,
        no_fetch: false,
        pin: place.crawler,
        extra_args: &extra,
    })?;
    let opened = crawl::wait_for_traffic(&swarm, Duration::ZERO)?;
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut metrics = HashMap::new();
    let mut db = (0.0, 0.0, 0.0);
    let mut next_db = start;
    let mut next = start;
    while start.elapsed().as_secs_f64() < args.secs {
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let stat = child.stat().context("trawl crawl died during the soak")?;
        let now = swarm.latest_stats()?;
        // A failed scrape keeps the last figures (a counter never goes back).
        if let Some(m) = scrape_metrics(args.metrics_port) {
            metrics = m;
        }
        if Instant::now() >= next_db {
            next_db += DB_EVERY;
            db = db_files(child.db());
        }
        let m = |k: &str| metrics.get(k).copied().unwrap_or(0.0);
        // Per-core series: summed over cores.
        let errors = |kind: &str| {
            let label = format!("kind=\"{kind}\"");
            metrics
                .iter()
                .filter(|(k, _)| k.starts_with("trawl_errors_total{") && k.contains(&label))
                .map(|(_, v)| v)
                .sum::<f64>()
        };
        let s = Sample {
            t: start.elapsed().as_secs_f64(),
            rss_mb: stat.rss_bytes as f64 / MB,
            fds: open_fds(child.pid()) as f64,
            cpu_s: stat.cpu.as_secs_f64(),
            datagrams: stat_delta(&now, &opened, "received") + stat_delta(&now, &opened, "sent"),
            stored: m(M_STORED),
            torrents: m(M_TORRENTS),
            staging_backlog: m(M_BACKLOG),
            commits: m(M_COMMITS),
            commit_s: m(M_COMMIT_S),
            wal_mb: db.0,
            sst_mb: db.1,
            sst_files: db.2,
            anon_mb: rss_anon_kb(child.pid()) / 1024.0,
            rocksdb_mb: m(M_ROCKSDB) / MB,
            rust_live_mb: m(M_RUST_LIVE) / MB,
            mimalloc_mb: m(M_MIMALLOC) / MB,
            libc_used_mb: m(M_LIBC_USED) / MB,
            libc_free_mb: m(M_LIBC_FREE) / MB,
            timeouts: errors("timeout"),
            unmatched: errors("unmatched"),
            violations: crawl::violations_between(&opened, &now) as f64,
        };
        let minute = samples.len() + 1;
        samples.push(s);
        if minute % 60 == 0 {
            let w = rates(&samples, s.t - 60.0, s.t);
            eprintln!(
                "{}",
                json!({"soak_minute": minute / 60, "t": round(s.t, 0), "rss_mb": round(s.rss_mb, 1),
                       "anon_mb": round(s.anon_mb, 1), "rocksdb_mb": round(s.rocksdb_mb, 1),
                       "rust_live_mb": round(s.rust_live_mb, 1), "mimalloc_mb": round(s.mimalloc_mb, 1),
                       "libc_used_mb": round(s.libc_used_mb, 1), "libc_free_mb": round(s.libc_free_mb, 1), "timeouts": s.timeouts, "unmatched": s.unmatched,
                       "violations": s.violations,
                       "fds": s.fds, "wal_mb": round(s.wal_mb, 1), "sst_mb": round(s.sst_mb, 1),
                       "sst_files": s.sst_files, "stored": s.stored, "torrents": s.torrents,
                       "staging_backlog": s.staging_backlog, "window": w.to_json()})
            );
        }
    }
    let closed = swarm.latest_stats()?;
    let crashed = !child.running();
    let (summary, clean) = child.stop()?;
    let block_cache = block_cache_dumps(&child.db().join("LOG"));
    let swarm_final = swarm.finish()?;

    let total = samples.last().map_or(0.0, |s| s.t);
    let after_warmup: Vec<&Sample> = samples.iter().filter(|s| s.t >= args.warmup_secs).collect();
    let second_half: Vec<&Sample> = samples.iter().filter(|s| s.t >= total / 2.0).collect();
    let slopes = |set: &[&Sample]| {
        json!({
            "from_secs": set.first().map(|s| round(s.t, 0)),
            "rss_mb_per_min": round(slope_per_min(set, |s| s.rss_mb), 3),
            "anon_mb_per_min": round(slope_per_min(set, |s| s.anon_mb), 3),
            "rocksdb_mb_per_min": round(slope_per_min(set, |s| s.rocksdb_mb), 3),
            // The part of RSS growth RocksDB's own memory does not explain.
            "rss_minus_rocksdb_mb_per_min": round(slope_per_min(set, |s| s.rss_mb - s.rocksdb_mb), 3),
            // By allocator: a leak in our own structures shows in rust_live;
            // retention and fragmentation in the rest.
            "rust_live_mb_per_min": round(slope_per_min(set, |s| s.rust_live_mb), 3),
            "mimalloc_committed_mb_per_min": round(slope_per_min(set, |s| s.mimalloc_mb), 3),
            "libc_used_mb_per_min": round(slope_per_min(set, |s| s.libc_used_mb), 3),
            "libc_free_mb_per_min": round(slope_per_min(set, |s| s.libc_free_mb), 3),
            "libc_used_minus_rocksdb_mb_per_min": round(slope_per_min(set, |s| s.libc_used_mb - s.rocksdb_mb), 3),
            // RSS neither allocator accounts for (stacks, code, kernel-side).
            "rss_unaccounted_mb_per_min": round(slope_per_min(set, |s| s.rss_mb - s.mimalloc_mb - s.libc_used_mb - s.libc_free_mb), 3),
            "fds_per_min": round(slope_per_min(set, |s| s.fds), 3),
            "sst_mb_per_min": round(slope_per_min(set, |s| s.sst_mb), 3),
            "wal_mb_per_min": round(slope_per_min(set, |s| s.wal_mb), 3),
            "stored_per_min": round(slope_per_min(set, |s| s.stored), 0),
            "torrents_per_min": round(slope_per_min(set, |s| s.torrents), 0),
        })
    };
    let first = rates(&samples, args.warmup_secs, args.warmup_secs + 60.0);
    let last = rates(&samples, total - 60.0, total);
    let first5 = rates(&samples, args.warmup_secs, args.warmup_secs + 300.0);
    let last5 = rates(&samples, total - 300.0, total);
    // How much the load ripples: spread of the per-minute datagram rates after warm-up.
    let minutes: Vec<f64> = (0..)
        .map(|i| args.warmup_secs + 60.0 * f64::from(i))
        .take_while(|t| t + 60.0 <= total + 0.5)
        .map(|t| rates(&samples, t, t + 60.0).datagrams_per_s)
        .collect();
    let mean = minutes.iter().sum::<f64>() / (minutes.len().max(1) as f64);
    let sd = (minutes.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (minutes.len().max(1) as f64)).sqrt();
    let ratio = |a: f64, b: f64| round(b / a.max(1e-9), 3);
    let at = |t: f64| {
        point(&samples, t).map(|s| {
            json!({"t": round(s.t, 0), "rss_mb": round(s.rss_mb, 1), "rocksdb_mb": round(s.rocksdb_mb, 1),
        "rust_live_mb": round(s.rust_live_mb, 1), "mimalloc_mb": round(s.mimalloc_mb, 1),
        "libc_used_mb": round(s.libc_used_mb, 1), "libc_free_mb": round(s.libc_free_mb, 1),
        "fds": s.fds, "wal_mb": round(s.wal_mb, 1), "sst_mb": round(s.sst_mb, 1), "sst_files": s.sst_files,
        "stored": s.stored, "torrents": s.torrents, "staging_backlog": s.staging_backlog})
        })
    };
    let max = |f: fn(&Sample) -> f64| samples.iter().map(f).fold(0.0, f64::max);
    println!(
        "{}",
        json!({
            "bench": "soak",
            "secs": round(total, 1),
            "warmup_secs": args.warmup_secs,
            "nodes": args.nodes,
            "torrents": args.torrents,
            "interval_max": args.interval_max,
            "resample_secs": args.resample_secs,
            "fetchers": args.fetchers,
            "churn": args.churn,
            "churn_period_secs": args.churn_period,
            "stock_runs_out_secs": runs_out,
            "trawl_args": extra,
            "at_warmup": at(args.warmup_secs),
            "at_half": at(total / 2.0),
            "at_end": at(total),
            "rss_mb_peak": round(max(|s| s.rss_mb), 1),
            "fds_max": max(|s| s.fds),
            "rocksdb_block_cache": block_cache,
            "slopes_after_warmup": slopes(&after_warmup),
            "slopes_second_half": slopes(&second_half),
            "first_minute": first.to_json(),
            "last_minute": last.to_json(),
            "first_5min": first5.to_json(),
            "last_5min": last5.to_json(),
            "minute_pps_after_warmup": {"mean": round(mean, 0), "cv": round(sd / mean.max(1e-9), 3),
                "min": round(minutes.iter().copied().fold(f64::INFINITY, f64::min), 0),
                "max": round(minutes.iter().copied().fold(0.0, f64::max), 0)},
            "last5_to_first5": {
                "datagrams_per_s": ratio(first5.datagrams_per_s, last5.datagrams_per_s),
                "stored_per_s": ratio(first5.stored_per_s, last5.stored_per_s),
                "torrents_per_s": ratio(first5.torrents_per_s, last5.torrents_per_s),
                "cpu_us_per_datagram": ratio(first5.cpu_us_per_datagram, last5.cpu_us_per_datagram),
                "commit_ms": ratio(first5.commit_ms, last5.commit_ms),
            },
            "last_to_first": {
                "datagrams_per_s": ratio(first.datagrams_per_s, last.datagrams_per_s),
                "stored_per_s": ratio(first.stored_per_s, last.stored_per_s),
                "torrents_per_s": ratio(first.torrents_per_s, last.torrents_per_s),
                "cpu_us_per_datagram": ratio(first.cpu_us_per_datagram, last.cpu_us_per_datagram),
                "commit_ms": ratio(first.commit_ms, last.commit_ms),
            },
            "mean_pps": round((stat_delta(&closed, &opened, "received") + stat_delta(&closed, &opened, "sent"))
                / (stat_f64(&closed, "t") - stat_f64(&opened, "t")).max(1e-9), 0),
            "politeness_violations": crawl::violations_between(&opened, &closed),
            "crashed": crashed || !clean,
            "trawl_summary": summary,
            "swarm_final_politeness_violations": swarm_final.get("politeness_violations").cloned().unwrap_or(Value::Null),
        })
    );
    Ok(())
}

/// Rates over one window of the run.
#[derive(Clone, Copy, Default)]
struct Rates {
    from: f64,
    to: f64,
    datagrams_per_s: f64,
    stored_per_s: f64,
    torrents_per_s: f64,
    /// Crawler CPU (all threads: crawl core, writer, fetcher) per datagram.
    cpu_us_per_datagram: f64,
    cpu_share: f64,
    /// Mean wall time of one group commit.
    commit_ms: f64,
}

impl Rates {
    fn to_json(self) -> Value {
        json!({
            "from": round(self.from, 0),
            "to": round(self.to, 0),
            "datagrams_per_s": round(self.datagrams_per_s, 0),
            "stored_per_s": round(self.stored_per_s, 1),
            "torrents_per_s": round(self.torrents_per_s, 1),
            "cpu_us_per_datagram": round(self.cpu_us_per_datagram, 2),
            "cpu_share": round(self.cpu_share, 3),
            "commit_ms": round(self.commit_ms, 2),
        })
    }
}

/// The sample nearest to `t`.
fn point(samples: &[Sample], t: f64) -> Option<&Sample> {
    samples
        .iter()
        .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()))
}

fn rates(samples: &[Sample], from: f64, to: f64) -> Rates {
    let (Some(a), Some(b)) = (point(samples, from), point(samples, to)) else {
        return Rates::default();
    };
    let dt = b.t - a.t;
    if dt <= 0.0 {
        return Rates::default();
    }
    let d = |f: fn(&Sample) -> f64| f(b) - f(a);
    let datagrams = d(|s| s.datagrams);
    Rates {
        from: a.t,
        to: b.t,
        datagrams_per_s: datagrams / dt,
        stored_per_s: d(|s| s.stored) / dt,
        torrents_per_s: d(|s| s.torrents) / dt,
        cpu_us_per_datagram: d(|s| s.cpu_s) * 1e6 / datagrams.max(1.0),
        cpu_share: d(|s| s.cpu_s) / dt,
        commit_ms: d(|s| s.commit_s) * 1e3 / d(|s| s.commits).max(1.0),
    }
}

/// The crawler's metrics as `name{labels}` -> value; None if it did not answer.
fn scrape_metrics(port: u16) -> Option<HashMap<String, f64>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

/// RocksDB's own block-cache figures from the statistics it dumps to its
/// `LOG` (every 600 s by default): per dump, the uptime and the usage and
/// capacity summed over the distinct caches (one per column family here).
fn block_cache_dumps(log: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dump in text.split("------- DUMPING STATS -------").skip(1) {
        let uptime = dump
            .lines()
            .find_map(|l| l.split("Uptime(secs): ").nth(1)?.split(' ').next()?.parse::<f64>().ok());
        let mut caches: HashMap<&str, (f64, f64)> = HashMap::new();
        for l in dump
            .lines()
            .filter(|l| l.starts_with("Block cache ") && l.contains(" capacity: "))
        {
            let id = l.split_whitespace().nth(2).unwrap_or("");
            let field = |name: &str| -> Option<f64> {
                let mut it = l.split(name).nth(1)?.split_whitespace();
                let (n, unit) = (it.next()?.parse::<f64>().ok()?, it.next()?);
                Some(
                    n * match unit {
                        "KB" => 1.0 / 1024.0,
                        "GB" => 1024.0,
                        "MB" => 1.0,
                        _ => 1.0 / (1024.0 * 1024.0),
                    },
                )
            };
            if let (Some(cap), Some(used)) = (field(" capacity: "), field(" usage: ")) {
                caches.insert(id, (used, cap));
            }
        }
        let (used, cap) = caches.values().fold((0.0, 0.0), |(u, c), (a, b)| (u + a, c + b));
        out.push(json!({"uptime_s": uptime, "caches": caches.len(), "usage_mb": round(used, 1), "capacity_mb": round(cap, 1)}));
    }
    out
}

/// (WAL MB, SST MB, SST files) of the database directory.
fn db_files(dir: &Path) -> (f64, f64, f64) {
    let (mut wal, mut sst, mut files) = (0u64, 0u64, 0u64);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let len = e.metadata().map_or(0, |m| m.len());
        match e.path().extension().and_then(|x| x.to_str()) {
            Some("log") => wal += len,
            Some("sst") => {
                sst += len;
                files += 1;
            }
            _ => {}
        }
    }
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    (mb(wal), mb(sst), files as f64)
}

/// `RssAnon` of `pid` in KiB (0 if unreadable).
fn rss_anon_kb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix("RssAnon:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Open file descriptors of `pid` (entries of `/proc/PID/fd`); 0 if unreadable.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Least-squares slope of `f` over time, per minute.
fn slope_per_min(samples: &[&Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.t).sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| f(s)).sum::<f64>() / n;
    let cov: f64 = samples.iter().map(|s| (s.t - mean_t) * (f(s) - mean_y)).sum();
    let var: f64 = samples.iter().map(|s| (s.t - mean_t).powi(2)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var * 60.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_stock_runs_out_after_thirty_minutes() {
        // 600 hashes a node, 20 a sample, one sample a minute: the decay a
        // 40-minute soak showed from minute 30 on.
        assert_eq!(stock_runs_out_secs(6_000_000, 1, 10_000, 60), Some(1800.0));
        assert_eq!(stock_runs_out_secs(12_000_000, 1, 10_000, 60), Some(3600.0));
        assert_eq!(stock_runs_out_secs(6_000_000, 1, 10_000, 0), None);
    }

    #[test]
    fn slope_is_per_minute_and_flat_for_constant_series() {
        let rising: Vec<Sample> = (0..120)
            .map(|i| Sample {
                t: f64::from(i),
                rss_mb: 100.0 + f64::from(i) * 0.5,
                fds: 40.0,
                ..Sample::default()
            })
            .collect();
        let refs: Vec<&Sample> = rising.iter().collect();
        assert!((slope_per_min(&refs, |s| s.rss_mb) - 30.0).abs() < 1e-9);
        assert_eq!(slope_per_min(&refs, |s| s.fds), 0.0);
        assert_eq!(slope_per_min(&refs[..1], |s| s.rss_mb), 0.0);
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn rates_are_per_second_over_the_nearest_samples() {
        let samples: Vec<Sample> = (0..=120)
            .map(|i| {
                let t = f64::from(i);
                Sample {
                    t,
                    cpu_s: t * 0.5,
                    datagrams: t * 1000.0,
                    stored: t * 100.0,
                    commits: t * 10.0,
                    commit_s: t * 0.02,
                    ..Sample::default()
                }
            })
            .collect();
        let r = rates(&samples, 60.2, 119.9);
        assert_eq!((r.from, r.to), (60.0, 120.0));
        assert!((r.datagrams_per_s - 1000.0).abs() < 1e-9);
        assert!((r.stored_per_s - 100.0).abs() < 1e-9);
        assert!((r.cpu_us_per_datagram - 500.0).abs() < 1e-9);
        assert!((r.cpu_share - 0.5).abs() < 1e-9);
        assert!((r.commit_ms - 2.0).abs() < 1e-9);
        assert_eq!(rates(&samples, 50.0, 50.1).datagrams_per_s, 0.0, "an empty window");
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn block_cache_usage_is_summed_per_dump_over_distinct_caches() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("LOG");
        let dump = |up: u32, a: &str, b: &str| {
            format!(
                "x ------- DUMPING STATS -------\n** DB Stats **\nUptime(secs): {up}.0 total, 600.0 interval\n\
                 Block cache HyperClockCache@0x1#7 capacity: 32.00 MB seed: 1 usage: {a} table_size: 64\n\
                 Block cache HyperClockCache@0x2#7 capacity: 32.00 MB seed: 1 usage: {b} table_size: 64\n\
                 Block cache HyperClockCache@0x2#7 capacity: 32.00 MB seed: 1 usage: {b} table_size: 64\n"
            )
        };
        std::fs::write(
            &log,
            dump(600, "4.00 KB", "1.50 MB") + &dump(1200, "2.00 MB", "30.00 MB"),
        )
        .unwrap();
        let got = block_cache_dumps(&log);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["uptime_s"], 600.0);
        assert_eq!(got[0]["caches"], 2);
        assert_eq!(got[0]["usage_mb"], 1.5);
        assert_eq!(got[1]["usage_mb"], 32.0);
        assert_eq!(got[1]["capacity_mb"], 64.0);
        assert!(block_cache_dumps(&dir.path().join("missing")).is_empty());
    }
}
