//! `trawl-bench crawl`: the loopback ceiling, the swarm's capacity and a crawl,
//! measured in one invocation.
//!
//! Owns: the order of the three phases, core placement, the `trawl-swarm`
//! child process, and the final `{"bench":"crawl",...}` line.
//! Must not: send anywhere but 127.0.0.0/8, or run unbounded: every phase has
//! a duration and the swarm child dies with this process.
//!
//! Placement on a 2-core machine: the ceiling's sender runs on core 0 and its
//! receiver on core 1; the swarm (UDP and peer threads) on core 0; the load
//! generator's walker on core 1, its metadata fetchers unpinned. Each side
//! then has one core to itself, so a saturated side shows as a busy fraction
//! near 1.0 instead of two sides stealing time from each other.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use crate::ceiling;
use crate::loadgen::{self, BlastLoad, FetchCounters, FetchJob, FetchSummary, LoadCounters, LoopLoad, Walker};
use crate::swarm::catalogue::CatalogueConfig;
use crate::swarm::nodes::{node_addr, NodeTraitsConfig};
use crate::swarm::{Swarm, SwarmConfig};
use crate::sys::{self, ChildGuard};

mod swarm_child;
mod trawl_child;

pub(crate) use swarm_child::*;
pub(crate) use trawl_child::*;

/// Which crawler phase 3 runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrawlerChoice {
    /// The built-in load generator (`loadgen::Walker`).
    Loadgen,
    /// The real `trawl crawl` binary in a child process.
    Trawl,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    pub nodes: u32,
    #[arg(long, default_value_t = 1_000_000)]
    pub torrents: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds per ceiling blast.
    #[arg(long, default_value_t = 2.0)]
    pub ceiling_secs: f64,
    /// Payload sizes of the ceiling blasts (bytes).
    #[arg(long, value_delimiter = ',', default_value = "100,300,700")]
    pub ceiling_sizes: Vec<usize>,
    /// Seconds of the swarm capacity phase.
    #[arg(long, default_value_t = 5.0)]
    pub capacity_secs: f64,
    /// Seconds of the crawl phase.
    #[arg(long, default_value_t = 30.0)]
    pub crawl_secs: f64,
    /// `--crawler trawl`: seconds between its first query reaching the swarm
    /// and the start of the measured window (e.g. past the first discovery
    /// burst, to measure the steady re-sampling that follows).
    #[arg(long, default_value_t = 1.0)]
    pub warmup_secs: f64,
    /// The swarm's largest sample interval (seconds).
    #[arg(long, default_value_t = 21_600)]
    pub interval_max: u32,
    /// The swarm's per-(IP, node) rate limit in queries/s (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit: f64,
    #[arg(long, default_value_t = 36_881)]
    pub port: u16,
    #[arg(long, default_value_t = 36_882)]
    pub peer_port: u16,
    /// Concurrent metadata fetches.
    #[arg(long, default_value_t = 32)]
    pub fetchers: usize,
    /// Per-peer connect/read timeout; loopback peers answer in well under 1 ms,
    /// so this mostly bounds the time lost on stalling peers.
    #[arg(long, default_value_t = 500)]
    pub fetch_timeout_ms: u64,
    /// Most queries in flight at once.
    #[arg(long, default_value_t = 16_384)]
    pub max_inflight: usize,
    #[arg(long, value_enum, default_value_t = CrawlerChoice::Loadgen)]
    pub crawler: CrawlerChoice,
    /// `--crawler trawl`: the trawl binary (default: next to this executable).
    #[arg(long)]
    pub trawl_bin: Option<PathBuf>,
    /// `--crawler trawl`: its `--cores`. With 1 it is pinned to the crawler core;
    /// with more it may use every core (and shares one with the swarm).
    #[arg(long, default_value_t = 1)]
    pub trawl_cores: usize,
    /// `--crawler trawl`: its UDP port.
    #[arg(long, default_value_t = 36_883)]
    pub trawl_port: u16,
    /// `--crawler trawl`: run without the metadata fetcher (`--no-fetch`).
    #[arg(long)]
    pub no_fetch: bool,
    /// `--crawler trawl`: one more argument for `trawl crawl` (repeatable), e.g.
    /// `--trawl-arg=--resample-secs=1` for its tuning knobs.
    #[arg(long = "trawl-arg", allow_hyphen_values = true)]
    pub trawl_args: Vec<String>,
    /// The trawl-swarm binary (default: next to this executable).
    #[arg(long)]
    pub swarm_bin: Option<PathBuf>,
    /// One more argument for `trawl-swarm` (repeatable), e.g. `--swarm-arg=--dead=0`.
    #[arg(long = "swarm-arg", allow_hyphen_values = true)]
    pub swarm_args: Vec<String>,
    /// Do not pin threads to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Also write every infohash the crawl found, one hex line each, to this file
    /// (the demo hands it to `trawl import`).
    #[arg(long)]
    pub found_out: Option<PathBuf>,
}

const TYPICAL_REPLY_BYTES: usize = 300;

/// The two cores the phases are placed on, or none.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    pub swarm: Option<usize>,
    pub crawler: Option<usize>,
}

impl Placement {
    /// The swarm on core 0 and the crawler on core 1, or no pinning at all
    /// when asked or when there are fewer than two cores.
    pub(crate) fn choose(no_pin: bool, cores: usize) -> Placement {
        if no_pin || cores < 2 {
            Placement {
                swarm: None,
                crawler: None,
            }
        } else {
            Placement {
                swarm: Some(0),
                crawler: Some(1),
            }
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cores = sys::online_cores();
    let place = Placement::choose(args.no_pin, cores);
    println!("placement: {place:?} on {cores} cores");

    // 1. The loopback ceiling.
    let mut ceilings = Vec::new();
    for &size in &args.ceiling_sizes {
        let pins = place.swarm.zip(place.crawler);
        let secs = Duration::from_secs_f64(args.ceiling_secs);
        let c = std::thread::spawn(move || ceiling::blast(size, secs, pins))
            .join()
            .map_err(|_| anyhow::anyhow!("ceiling thread panicked"))??;
        println!("{}", json!({"phase": "ceiling", "result": c}));
        ceilings.push(c);
    }
    let ceiling_pps = ceilings.iter().map(|c| c.received_pps).fold(0.0, f64::max);
    // The kernel's own cost of one receive plus one send, at the payload size
    // closest to a find_node reply (about 300 bytes): no answering node can
    // spend less CPU per answer than this on this machine.
    let floor = ceilings
        .iter()
        .min_by_key(|c| c.payload_bytes.abs_diff(TYPICAL_REPLY_BYTES));
    let kernel_floor_us = floor.map_or(0.0, |c| c.sender_cpu_us_per_datagram + c.receiver_cpu_us_per_datagram);

    // 2. The swarm, then its capacity under an open-loop blast.
    let mut swarm = SwarmChild::spawn(
        &SwarmSpawn {
            bin: args.swarm_bin.clone(),
            nodes: args.nodes,
            torrents: args.torrents,
            seed: args.seed,
            port: args.port,
            peer_port: args.peer_port,
            interval_max: args.interval_max,
            rate_limit: args.rate_limit,
            // Long enough for both phases; it is stopped through stdin when done.
            max_secs: args.capacity_secs + args.warmup_secs + args.crawl_secs + 600.0,
            churn: Some(0.0),
            churn_period: Some(60.0),
            extra_args: args.swarm_args.clone(),
        },
        place,
    )?;
    println!("{}", json!({"phase": "swarm_ready", "ready": swarm.ready}));
    let capacity = capacity_phase(&args, &swarm, place)?;
    println!("{}", json!({"phase": "capacity", "result": capacity}));

    // 3. The crawl.
    let before = swarm.latest_stats()?;
    let crawl = match args.crawler {
        CrawlerChoice::Loadgen => crawl_with_loadgen(&args, &swarm, place)?,
        CrawlerChoice::Trawl => crawl_with_trawl(&args, &swarm, place)?,
    };
    let after = swarm.latest_stats()?;
    let swarm_final = swarm.finish()?;
    let peak_rss_mb = sys::proc_stat(sys::Pid::This)?.peak_rss_bytes as f64 / (1024.0 * 1024.0);

    // Ground truth, built only now so it does not count in the crawler's RSS.
    let truth = Swarm::build(swarm_config(&args), cores);
    let mut in_catalogue = 0u64;
    let mut reachable_found = 0u64;
    for h in &crawl.found {
        if let Some(t) = truth.catalogue.find(h) {
            in_catalogue += 1;
            reachable_found += u64::from(truth.reachable(t));
        }
    }
    let reachable_total = (0..truth.catalogue.len()).filter(|&t| truth.reachable(t)).count() as u64;
    let torrents = f64::from(truth.catalogue.len().max(1));
    let violations = violations_between(&before, &after);
    let secs = crawl.load.seconds.max(1e-9);
    // Hashes and torrents are counted from the crawler's first query, which is
    // `--warmup-secs` before the datagram window for `--crawler trawl`.
    let found_secs = crawl.timeline.last().map_or(secs, |&(t, _)| t.max(1e-9));
    let crawl_in_pps = crawl.load.datagrams_in as f64 / secs;
    let crawl_out_pps = crawl.load.datagrams_out as f64 / secs;
    let crawl_pps = crawl_in_pps + crawl_out_pps;
    let timeline: Vec<Value> = crawl
        .timeline
        .iter()
        .map(|&(t, n)| json!([round(t, 1), n as f64 / torrents]))
        .collect();
    let dgrams = (crawl.load.datagrams_in + crawl.load.datagrams_out).max(1) as f64;
    let swarm_sent = stat_delta(&after, &before, "sent");
    let swarm_received = stat_delta(&after, &before, "received");
    let swarm_secs = stat_f64(&after, "t") - stat_f64(&before, "t");

    let summary = json!({
        "bench": "crawl",
        "crawler": format!("{:?}", args.crawler).to_lowercase(),
        "nodes": args.nodes,
        "torrents": args.torrents,
        "cores": cores,
        "placement": {"swarm_core": place.swarm, "crawler_core": place.crawler},
        "ceiling_pps": round(ceiling_pps, 0),
        "ceiling": ceilings,
        "swarm_capacity_answers_per_s": round(capacity.answers_per_s, 0),
        "swarm_capacity_cpu_us_per_answer": round(capacity.cpu_us_per_answer, 3),
        "swarm_capacity_busy_fraction": round(capacity.busy_fraction, 3),
        "swarm_capacity_ratio_to_ceiling": round(capacity.answers_per_s / ceiling_pps.max(1.0), 3),
        "kernel_floor_us_per_answer": round(kernel_floor_us, 3),
        "swarm_capacity_kernel_floor_fraction": round(kernel_floor_us / capacity.cpu_us_per_answer.max(1e-9), 3),
        "swarm_capacity_projected_answers_per_core_s": round(capacity.projected_answers_per_core_s, 0),
        "capacity_loadgen_sent_per_s": round(capacity.load.sent as f64 / capacity.load.seconds.max(1e-9), 0),
        "capacity_loadgen_busy": round((capacity.load.sender_cpu_seconds + capacity.load.receiver_cpu_seconds) / capacity.load.seconds.max(1e-9), 3),
        "crawl_seconds": round(secs, 2),
        "warmup_secs": args.warmup_secs,
        "crawl_pps": round(crawl_pps, 0),
        "crawl_in_pps": round(crawl_in_pps, 0),
        "crawl_out_pps": round(crawl_out_pps, 0),
        "ratio_to_ceiling": round(crawl_pps / ceiling_pps.max(1.0), 3),
        "per_core": [
            {"role": "crawler", "core": place.crawler, "in_pps": round(crawl_in_pps, 0), "out_pps": round(crawl_out_pps, 0),
             "busy_fraction": round(crawl.load.cpu_seconds / secs, 3)},
            {"role": "swarm", "core": place.swarm, "in_pps": round(swarm_received / swarm_secs.max(1e-9), 0),
             "out_pps": round(swarm_sent / swarm_secs.max(1e-9), 0),
             "busy_fraction": round((stat_f64(&after, "cpu_s") - stat_f64(&before, "cpu_s")) / swarm_secs.max(1e-9), 3)},
        ],
        "cpu_us_per_datagram": round(crawl.load.cpu_seconds * 1e6 / dgrams, 3),
        "crawl_loop": crawl.load,
        "infohashes_found": crawl.found.len(),
        "infohashes_not_in_catalogue": crawl.found.len() as u64 - in_catalogue,
        "infohashes_per_s": round(crawl.found.len() as f64 / found_secs, 1),
        "catalog_discovered_fraction": round(in_catalogue as f64 / torrents, 5),
        "reachable_discovered_fraction": round(reachable_found as f64 / (reachable_total.max(1)) as f64, 5),
        "discovered_timeline": timeline,
        "nodes_known": crawl.counters.nodes_known,
        "metadata_per_s": round(crawl.fetch.fetched as f64 / found_secs, 1),
        "metadata": crawl.fetch,
        "metadata_jobs_dropped": crawl.jobs_dropped,
        "politeness_violations": violations,
        "loadgen": crawl.counters,
        "peak_rss_mb": round(crawl.child_peak_rss_mb.unwrap_or(peak_rss_mb), 1),
        "bench_peak_rss_mb": round(peak_rss_mb, 1),
        "trawl_summary": crawl.trawl_summary,
        "swarm_peak_rss_mb": swarm_final.get("peak_rss_mb").cloned().unwrap_or(Value::Null),
        "swarm_final_politeness_violations": swarm_final.get("politeness_violations").cloned().unwrap_or(Value::Null),
    });
    if let Some(path) = &args.found_out {
        write_hex_lines(path, &crawl.found).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{summary}");
    Ok(())
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

pub(crate) fn stat_f64(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn counter(v: &Value, key: &str) -> f64 {
    v.get("counters")
        .and_then(|c| c.get(key))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

pub(crate) fn stat_delta(after: &Value, before: &Value, key: &str) -> f64 {
    counter(after, key) - counter(before, key)
}

/// Politeness violations between two stats lines.
pub(crate) fn violations_between(before: &Value, after: &Value) -> u64 {
    let v = |s: &Value| counter(s, "violations_interval") + counter(s, "violations_rate");
    (v(after) - v(before)).max(0.0) as u64
}

fn swarm_config(args: &Args) -> SwarmConfig {
    SwarmConfig {
        seed: args.seed,
        nodes: args.nodes,
        catalogue: CatalogueConfig {
            torrents: args.torrents,
            ..CatalogueConfig::default()
        },
        traits: NodeTraitsConfig {
            interval_max: args.interval_max,
            ..NodeTraitsConfig::default()
        },
        port: args.port,
        peer_port: args.peer_port,
        ..SwarmConfig::default()
    }
}

/// What the capacity phase measured, from the swarm's own stats lines.
#[derive(Clone, Copy, Debug, Serialize)]
struct Capacity {
    answers_per_s: f64,
    cpu_us_per_answer: f64,
    /// Swarm process CPU over wall time in the phase.
    busy_fraction: f64,
    /// The answer rate one fully busy core would reach at the measured CPU cost.
    projected_answers_per_core_s: f64,
    load: BlastLoad,
}

fn capacity_phase(args: &Args, swarm: &SwarmChild, place: Placement) -> anyhow::Result<Capacity> {
    let before = swarm.latest_stats()?;
    let (nodes, port, seed) = (args.nodes, swarm.udp_port(), args.seed);
    let (secs, core) = (Duration::from_secs_f64(args.capacity_secs), place.crawler);
    let load = std::thread::spawn(move || loadgen::blast(seed, nodes, port, secs, core))
        .join()
        .map_err(|_| anyhow::anyhow!("blast panicked"))??;
    let after = swarm.latest_stats()?;
    let dt = (stat_f64(&after, "t") - stat_f64(&before, "t")).max(1e-9);
    let answered = stat_delta(&after, &before, "sent");
    let cpu = stat_f64(&after, "cpu_s") - stat_f64(&before, "cpu_s");
    let cpu_us_per_answer = if answered > 0.0 { cpu * 1e6 / answered } else { 0.0 };
    Ok(Capacity {
        answers_per_s: answered / dt,
        cpu_us_per_answer,
        busy_fraction: cpu / dt,
        projected_answers_per_core_s: if cpu_us_per_answer > 0.0 {
            1e6 / cpu_us_per_answer
        } else {
            0.0
        },
        load,
    })
}

/// What a crawl produced.
struct CrawlOutcome {
    load: LoopLoad,
    counters: LoadCounters,
    found: Vec<[u8; 20]>,
    /// (seconds, distinct infohashes) once a second.
    timeline: Vec<(f64, u64)>,
    fetch: FetchSummary,
    jobs_dropped: u64,
    /// `--crawler trawl`: the child's peak RSS (the crawler's, not this process's).
    child_peak_rss_mb: Option<f64>,
    /// `--crawler trawl`: the child's final summary line.
    trawl_summary: Value,
}

fn crawl_with_loadgen(args: &Args, swarm: &SwarmChild, place: Placement) -> anyhow::Result<CrawlOutcome> {
    let bootstrap = SocketAddrV4::new(node_addr(0), swarm.udp_port());
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<FetchJob>(10_000);
    let counters = Arc::new(FetchCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let timeout = Duration::from_millis(args.fetch_timeout_ms);
    let fetchers: Vec<_> = (0..args.fetchers.max(1))
        .map(|_| {
            let (rx, c, stop) = (jobs_rx.clone(), counters.clone(), stop.clone());
            // Unpinned: pinned next to the walker they starved it of the core,
            // its socket overflowed and its window filled with lost queries.
            std::thread::spawn(move || {
                loadgen::fetcher(rx.into_iter().take_while(|_| !stop.load(Ordering::Relaxed)), c, timeout);
            })
        })
        .collect();
    drop(jobs_rx);
    let (secs, seed, inflight, core) = (args.crawl_secs, args.seed, args.max_inflight, place.crawler);
    let walk = std::thread::spawn(move || -> std::io::Result<_> {
        let mut walker = Walker::new(seed, bootstrap, inflight);
        let mut timeline = Vec::new();
        let mut next_mark = 0u64;
        let mut dropped = 0u64;
        let load = loadgen::drive(&mut walker, Duration::from_secs_f64(secs), core, |w, now_ms| {
            for job in w.take_fetch_jobs() {
                if jobs_tx.try_send(job).is_err() {
                    dropped += 1;
                }
            }
            if now_ms >= next_mark {
                timeline.push((now_ms as f64 / 1000.0, w.found().len() as u64));
                next_mark += 1000;
            }
        })?;
        timeline.push((load.seconds, walker.found().len() as u64));
        Ok((load, walker.counters, walker.found().to_vec(), timeline, dropped))
    });
    let (load, lc, found, timeline, jobs_dropped) = walk.join().map_err(|_| anyhow::anyhow!("walker panicked"))??;
    // Fetches finished within the crawl's time are what count.
    let fetch = counters.summary();
    stop.store(true, Ordering::Relaxed);
    for f in fetchers {
        let _ = f.join();
    }
    let _ = std::io::stdout().flush();
    Ok(CrawlOutcome {
        load,
        counters: lc,
        found,
        timeline,
        fetch,
        jobs_dropped,
        child_peak_rss_mb: None,
        trawl_summary: Value::Null,
    })
}

/// Runs `trawl crawl` against the swarm and measures it over a window of
/// `crawl_secs` that opens once its queries reach the swarm (start-up excluded).
/// Datagrams in and out are the swarm's own counts over the window (it hears
/// only the crawler then); CPU time and RSS come from the child's `/proc`.
fn crawl_with_trawl(args: &Args, swarm: &SwarmChild, place: Placement) -> anyhow::Result<CrawlOutcome> {
    let mut child = TrawlChild::spawn(&TrawlSpawn {
        bin: args.trawl_bin.as_deref(),
        port: args.trawl_port,
        cores: args.trawl_cores,
        bootstrap: SocketAddrV4::new(node_addr(0), swarm.udp_port()),
        max_secs: args.warmup_secs + args.crawl_secs + 120.0,
        fetchers: args.fetchers,
        no_fetch: args.no_fetch,
        // One core: the whole process (executor, storage writer, fetcher) on the
        // crawler core, away from the swarm; trawl's own pinning would put its
        // executor on CPU 0, next to the swarm. More cores: trawl pins executor i to CPU i.
        pin: place.crawler.filter(|_| args.trawl_cores == 1),
        extra_args: &args.trawl_args,
    })?;
    let opened = wait_for_traffic(swarm, Duration::from_secs_f64(args.warmup_secs))?;
    let start = Instant::now();
    let first = child.stat().context("reading the crawler's /proc entry")?;
    let mut peak_rss = first.peak_rss_bytes;
    let crawl_for = Duration::from_secs_f64(args.crawl_secs);
    let mut last = first;
    while start.elapsed() < crawl_for {
        std::thread::sleep(Duration::from_millis(100));
        match child.stat() {
            Ok(s) => {
                peak_rss = peak_rss.max(s.peak_rss_bytes);
                last = s;
            }
            Err(_) => bail!("trawl crawl exited before the crawl phase ended"),
        }
    }
    let closed = swarm.latest_stats()?;
    let seconds = (stat_f64(&closed, "t") - stat_f64(&opened, "t")).max(1e-9);
    let cpu_seconds = (last.cpu - first.cpu).as_secs_f64();
    let (summary, clean) = child.stop()?;
    if !clean {
        bail!("trawl crawl did not exit cleanly after SIGINT: {summary}");
    }
    let num = |k: &str| summary.get(k).and_then(Value::as_u64).unwrap_or(0);
    let load = LoopLoad {
        seconds,
        cpu_seconds,
        datagrams_out: stat_delta(&closed, &opened, "received") as u64,
        datagrams_in: stat_delta(&closed, &opened, "sent") as u64,
        idle_sleeps: 0,
        send_stalls: 0,
    };
    let found = stored_infohashes(child.db())?;
    let counters = LoadCounters {
        nodes_known: num("known_nodes"),
        infohashes_found: found.len() as u64,
        ..LoadCounters::default()
    };
    let fetch = FetchSummary {
        fetched: num("metadata_ok"),
        failed: num("metadata_failed"),
        ..FetchSummary::default()
    };
    // Only the final count: reading the database during the crawl would load the
    // machine. It holds what was found since the first query, warm-up included.
    let timeline = vec![(args.warmup_secs + seconds, found.len() as u64)];
    Ok(CrawlOutcome {
        load,
        counters,
        found,
        timeline,
        fetch,
        jobs_dropped: 0,
        child_peak_rss_mb: Some(peak_rss as f64 / (1024.0 * 1024.0)),
        trawl_summary: summary,
    })
}

/// Every infohash in a crawl's database (opened read-only after the crawl).
pub(crate) fn stored_infohashes(db: &std::path::Path) -> anyhow::Result<Vec<[u8; 20]>> {
    let store = trawl_storage::Store::open_read_only(db).with_context(|| format!("opening {}", db.display()))?;
    let mut raw = Vec::new();
    trawl_storage::export::export(
        &store,
        trawl_storage::export::Format::Bin,
        &trawl_storage::export::Filter::default(),
        &mut raw,
    )?;
    Ok(raw
        .chunks_exact(20)
        .map(|c| {
            let mut h = [0u8; 20];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

/// One 40-character lowercase hex line per infohash.
fn write_hex_lines(path: &std::path::Path, hashes: &[[u8; 20]]) -> std::io::Result<()> {
    use std::io::Write;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut line = [b'\n'; 41];
    for hash in hashes {
        for (i, byte) in hash.iter().enumerate() {
            line[2 * i] = HEX[usize::from(byte >> 4)];
            line[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
        out.write_all(&line)?;
    }
    out.flush()
}
