//! `trawl-bench fetch`: completed metadata fetches per second against the
//! swarm's TCP peers, trawl's glommio fetcher against the loadgen's blocking
//! fetcher, in one run on the same core.
//!
//! Owns: building the swarm's catalogue and peer server (the code `trawl-swarm`
//! runs, in-process on core 1), queueing catalogue infohashes with their
//! holders' addresses, and the two timed phases on core 0:
//! 1. the engine fetcher ([`trawl_engine::runtime::fetch`]) on one pinned
//!    glommio executor over a temp Store and writer, taking its work with
//!    `Store::take_due` as in a crawl;
//! 2. `loadgen::fetcher` threads, all pinned to the same core.
//!
//! Must not: send anywhere but 127.0.0.0/8, or run unbounded: each phase stops
//! after `--secs` or when its infohashes are done.
//!
//! [`engine_phase`] is public so `trawl-bench crawl` can report `metadata_per_s` too.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use trawl_engine::metadata::exchange::ExchangeConfig;
use trawl_engine::ops::memory;
use trawl_engine::runtime::fetch::{spawn_thread, FetchConfig, FetchCounters, FetcherContext};
use trawl_storage::{unix_now, Batch, InfoHash, PeersFound, Store, StoreOptions, Writer, WriterOptions};

use crate::loadgen::{self, FetchJob};
use crate::swarm::catalogue::CatalogueConfig;
use crate::swarm::nodes::node_addr;
use crate::swarm::peers::{DarkListener, PeerServer};
use crate::swarm::{PeerFaults, RttRange, Swarm, SwarmConfig};
use crate::sys;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Infohashes queued for each phase (catalogue torrents 0..N).
    #[arg(long, default_value_t = 40_000)]
    pub hashes: u32,
    /// Virtual nodes (each one a metadata peer address 127.x.y.z).
    #[arg(long, default_value_t = 20_000)]
    pub nodes: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// TCP port of the virtual peers (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub peer_port: u16,
    /// Longest each phase runs, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Concurrent fetches of the engine fetcher.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Threads of the loadgen fetcher (all pinned to the fetch core).
    #[arg(long, default_value_t = 32)]
    pub loadgen_threads: usize,
    /// Whole-fetch deadline (ms), both fetchers.
    #[arg(long, default_value_t = 5_000)]
    pub deadline_ms: u64,
    /// Let 5% of peers reject, 5% stall and 5% corrupt (the swarm's default mix).
    #[arg(long)]
    pub faults: bool,
    /// Core of the fetchers; the peer server takes the other one.
    #[arg(long, default_value_t = 0)]
    pub core: usize,
    /// Round trip each peer adds to every exchange, in ms: `200`, or a
    /// uniform range `50-300` (deterministic per peer).
    #[arg(long, default_value = "0", value_parser = parse_rtt)]
    pub rtt_ms: RttRange,
    /// Fraction of peers that never accept: their SYNs are dropped and the
    /// dial times out.
    #[arg(long, default_value_t = 0.0)]
    pub never_accept: f64,
}

fn parse_rtt(s: &str) -> Result<RttRange, String> {
    let ms = |x: &str| {
        x.trim()
            .parse::<u64>()
            .map_err(|e| format!("{x:?} is not a number of ms: {e}"))
    };
    let (min_ms, max_ms) = match s.split_once('-') {
        Some((a, b)) => (ms(a)?, ms(b)?),
        None => (ms(s)?, ms(s)?),
    };
    if min_ms > max_ms {
        return Err(format!("the range {s:?} ends before it starts"));
    }
    Ok(RttRange { min_ms, max_ms })
}

/// What one phase did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PhaseResult {
    pub ok: u64,
    pub failed: u64,
    /// Failed connections by kind (engine phase only).
    pub failed_kinds: Vec<(&'static str, u64)>,
    pub secs: f64,
    pub per_s: f64,
    /// CPU time of the fetching thread(s) per completed fetch, in microseconds.
    pub cpu_us_per_fetch: f64,
    /// Connections in flight, sampled every 5 ms (engine phase only).
    pub in_flight_peak: u64,
    pub in_flight_mean: f64,
    /// Rust heap bytes live at the peak of fetches in flight over those at
    /// the start, per fetch in flight (engine phase only). An upper bound on
    /// the fetcher's cost: the in-process peer server's side of each
    /// connection is counted too; kernel socket buffers are not.
    pub heap_bytes_per_fetch_in_flight: Option<f64>,
}

/// The infohashes of catalogue torrents `0..n` with their holders' peer
/// addresses: `peer_port`, or `dark_port` for a holder that never accepts.
pub fn catalogue_jobs(swarm: &Swarm, n: u32, peer_port: u16, dark_port: u16) -> Vec<(InfoHash, Vec<SocketAddr>)> {
    let mut buf = [0u32; 16];
    (0..n.min(swarm.catalogue.len()))
        .map(|i| {
            let peers = swarm
                .catalogue
                .holders(i, &mut buf)
                .iter()
                .map(|&node| {
                    let port = if swarm.peer_accepts(node) { peer_port } else { dark_port };
                    SocketAddr::V4(SocketAddrV4::new(node_addr(node), port))
                })
                .collect();
            (*swarm.catalogue.infohash(i), peers)
        })
        .collect()
}

/// CPU time of this process's first thread whose name starts with `prefix`, from /proc.
fn named_thread_cpu(prefix: &str) -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // Fields after the last ')': state is field 3; utime and stime are 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        return Some(Duration::from_nanos(ticks * 1_000_000_000 / hz));
    }
    None
}

/// Runs the engine fetcher on one glommio executor pinned to `core` over a temp
/// Store holding `jobs`, for at most `limit` or until every job is done.
pub fn engine_phase(
    jobs: &[(InfoHash, Vec<SocketAddr>)],
    config: FetchConfig,
    core: Option<usize>,
    limit: Duration,
) -> anyhow::Result<PhaseResult> {
    let dir = tempfile::tempdir()?;
    let opts = StoreOptions {
        // The fetcher is measured, not fsync.
        sync_writes: false,
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open(dir.path(), &opts).context("opening the temp store")?);
    let writer = Writer::spawn(
        store.clone(),
        WriterOptions {
            expected_infohashes: jobs.len().max(1024),
            ..WriterOptions::default()
        },
    )?;
    let handle = writer.handle();
    // Queue everything, due now, and wait until it is committed.
    let at = unix_now();
    for chunk in jobs.chunks(1000) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let batch = Batch {
            peers: chunk
                .iter()
                .map(|(h, peers)| PeersFound {
                    info_hash: *h,
                    peers: peers.clone(),
                    at,
                })
                .collect(),
            reply: Some(tx),
            ..Batch::default()
        };
        handle.send(batch)?;
        rx.recv_timeout(Duration::from_secs(60))
            .context("queueing the infohashes")?;
    }

    let counters = Arc::new(FetchCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = FetcherContext {
        core: core.unwrap_or(0),
        cores: 1,
        store: store.clone(),
        writer: handle,
        config,
        counters: counters.clone(),
        stop: stop.clone(),
        paused: Arc::new(AtomicBool::new(false)),
        allow_loopback: true,
        lookups: None,
    };
    let heap0 = memory::rust_heap_live();
    let start = Instant::now();
    let fetcher = spawn_thread(ctx, core)?;
    let total = jobs.len() as u64;
    let done = || counters.ok.load(Relaxed) + counters.hashes_failed.load(Relaxed);
    let (mut peak, mut peak_heap, mut sum, mut samples) = (0u64, None, 0u64, 0u64);
    while start.elapsed() < limit && done() < total {
        std::thread::sleep(Duration::from_millis(5));
        let active = counters.active.load(Relaxed);
        (sum, samples) = (sum + active, samples + 1);
        if active > peak {
            (peak, peak_heap) = (active, memory::rust_heap_live());
        }
    }
    let heap_per_fetch = match (heap0, peak_heap) {
        (Some(a), Some(b)) if peak > 0 => Some((b as f64 - a as f64).max(0.0) / peak as f64),
        _ => None,
    };
    let secs = start.elapsed().as_secs_f64();
    let ok = counters.ok.load(Relaxed);
    let failed = counters.hashes_failed.load(Relaxed);
    // glommio names the executor thread `trawl-fetch-<id>`.
    let cpu = named_thread_cpu("trawl-fetch").unwrap_or_default();
    let failed_kinds = counters.snapshot().failed.into_iter().filter(|&(_, n)| n > 0).collect();
    stop.store(true, Relaxed);
    fetcher.join()?;
    writer.shutdown();
    Ok(PhaseResult {
        ok,
        failed,
        failed_kinds,
        secs,
        per_s: ok as f64 / secs,
        cpu_us_per_fetch: cpu.as_secs_f64() * 1e6 / ok.max(1) as f64,
        in_flight_peak: peak,
        in_flight_mean: sum as f64 / samples.max(1) as f64,
        heap_bytes_per_fetch_in_flight: heap_per_fetch,
    })
}

/// Runs `threads` loadgen fetcher threads pinned to `core` over `jobs`.
pub fn loadgen_phase(
    jobs: &[(InfoHash, Vec<SocketAddr>)],
    threads: usize,
    core: usize,
    deadline: Duration,
    limit: Duration,
) -> anyhow::Result<PhaseResult> {
    let (tx, rx) = crossbeam_channel::unbounded::<FetchJob>();
    for (h, peers) in jobs {
        let peers = peers
            .iter()
            .filter_map(|p| match p {
                SocketAddr::V4(v4) => Some(*v4),
                SocketAddr::V6(_) => None,
            })
            .collect();
        tx.send(FetchJob { info_hash: *h, peers })?;
    }
    drop(tx);
    let counters = Arc::new(loadgen::FetchCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (rx, c, stop) = (rx.clone(), counters.clone(), stop.clone());
            std::thread::spawn(move || {
                let _ = sys::pin_current_thread(core);
                loadgen::fetcher(rx.into_iter().take_while(|_| !stop.load(Relaxed)), c, deadline);
                sys::thread_cpu_time()
            })
        })
        .collect();
    let total = jobs.len() as u64;
    let done = || {
        let s = counters.summary();
        s.fetched + s.gave_up
    };
    while start.elapsed() < limit && done() < total {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = start.elapsed().as_secs_f64();
    let summary = counters.summary();
    stop.store(true, Relaxed);
    // Each thread finishes the fetch it is in (bounded by `deadline`), then stops.
    let cpu: Duration = workers.into_iter().map(|w| w.join().unwrap_or_default()).sum();
    Ok(PhaseResult {
        ok: summary.fetched,
        failed: summary.gave_up,
        failed_kinds: Vec::new(),
        secs,
        per_s: summary.fetched as f64 / secs,
        cpu_us_per_fetch: cpu.as_secs_f64() * 1e6 / summary.fetched.max(1) as f64,
        ..PhaseResult::default()
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cores = sys::online_cores();
    let fetch_core = args.core % cores.max(1);
    let peer_core = (fetch_core + 1) % cores.max(1);
    let config = SwarmConfig {
        seed: args.seed,
        nodes: args.nodes,
        catalogue: CatalogueConfig {
            torrents: args.hashes,
            ..CatalogueConfig::default()
        },
        peer_port: args.peer_port,
        peer_faults: if args.faults {
            SwarmConfig::default().peer_faults
        } else {
            PeerFaults::default()
        },
        peer_rtt: args.rtt_ms,
        never_accept: args.never_accept,
        ..SwarmConfig::default()
    };
    let swarm = Arc::new(Swarm::build(config, cores));
    let limit = Duration::from_secs_f64(args.secs);
    let deadline = Duration::from_millis(args.deadline_ms);
    // Both phases plus slack; the server also stops when dropped.
    let peers = PeerServer::spawn(
        swarm.clone(),
        args.peer_port,
        Some(peer_core),
        limit * 2 + deadline * 2 + Duration::from_secs(30),
    )?;
    let dark = DarkListener::bind().context("the never-accepting listener")?;
    let jobs = catalogue_jobs(&swarm, args.hashes, peers.local_port, dark.port);
    println!(
        "{}",
        json!({"phase": "ready", "hashes": jobs.len(), "nodes": args.nodes, "peer_port": peers.local_port,
               "fetch_core": fetch_core, "peer_core": peer_core, "faults": args.faults,
               "rtt_ms": [args.rtt_ms.min_ms, args.rtt_ms.max_ms], "never_accept": args.never_accept})
    );

    let config = FetchConfig {
        concurrency: args.concurrency,
        exchange: ExchangeConfig {
            deadline,
            ..ExchangeConfig::default()
        },
        ..FetchConfig::default()
    };
    let engine = engine_phase(&jobs, config, Some(fetch_core), limit)?;
    println!(
        "{}",
        json!({"phase": "engine", "result": engine, "concurrency": args.concurrency})
    );
    let lg = loadgen_phase(&jobs, args.loadgen_threads, fetch_core, deadline, limit)?;
    println!(
        "{}",
        json!({"phase": "loadgen", "result": lg, "threads": args.loadgen_threads})
    );
    peers.stop();
    let served = peers.join()?;
    println!("{}", json!({"phase": "peers", "counters": served}));

    println!(
        "{}",
        json!({
            "bench": "fetch",
            "metadata_per_s": engine.per_s.round(),
            "loadgen_per_s": lg.per_s.round(),
            "ratio_to_loadgen": (engine.per_s / lg.per_s.max(1e-9) * 100.0).round() / 100.0,
            "cpu_us_per_fetch": engine.cpu_us_per_fetch.round(),
            "loadgen_cpu_us_per_fetch": lg.cpu_us_per_fetch.round(),
            "in_flight_peak": engine.in_flight_peak,
            "in_flight_mean": engine.in_flight_mean.round(),
            "heap_bytes_per_fetch_in_flight": engine.heap_bytes_per_fetch_in_flight.map(f64::round),
        })
    );
    Ok(())
}
