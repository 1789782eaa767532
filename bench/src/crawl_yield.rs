//! `trawl-bench yield`: what a crawl from one IP finds of what the swarm's
//! libtorrent-faithful `mainline` preset makes findable, per sampling
//! interval, without a ban.
//!
//! For each run length (a number of libtorrent's scaled 21,600 s intervals) a
//! fresh swarm writes its ground truth (the manifest: which torrents some
//! answering BEP 51 node would show within that run, and which a well-behaved
//! metadata peer would hand out), `trawl crawl` runs for that long from one
//! loopback IP, and its store is compared with the truth: the share of the
//! discoverable infohashes stored, the share of the discoverable and fetchable
//! torrents stored with their metadata, the blocks libtorrent nodes imposed,
//! and datagrams and CPU per stored torrent.
//!
//! Each run then repeats on a fresh swarm of the same seed (the same truth)
//! with a bitmagnet-like crawler in trawl's place: the load generator's walker
//! under [`Pacing::bitmagnet`] (samples to at most 60 nodes a second, peers
//! asked of the sampler only) and 100 blocking fetchers with bitmagnet's 3 s
//! dial and 6 s request timeouts. trawl's shares are reported as ratios to its.
//!
//! Owns: the runs and the final `{"bench":"yield",...}` line.
//! Must not: send anywhere but 127.0.0.0/8, or run unbounded: each run has its
//! length plus a fixed margin, and both children die with this process.

use std::collections::HashSet;
use std::io::BufRead;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::crawl::{crawl_window, round, stat_delta, stat_f64, stored_infohashes, Placement, Window};
use crate::crawl::{SwarmChild, SwarmSpawn, TrawlChild, TrawlSpawn};
use crate::loadgen::{self, FetchJob, Pacing, Walker};
use crate::swarm::nodes::node_addr;
use crate::sys;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 20_000)]
    pub nodes: u32,
    #[arg(long, default_value_t = 100_000)]
    pub torrents: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run lengths, in sampling intervals.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub intervals: Vec<u32>,
    /// One interval in seconds: libtorrent's 21,600 s over the mainline
    /// preset's time scale of 360.
    #[arg(long, default_value_t = 60.0)]
    pub interval_secs: f64,
    #[arg(long, default_value_t = 36_881)]
    pub port: u16,
    #[arg(long, default_value_t = 36_882)]
    pub peer_port: u16,
    #[arg(long, default_value_t = 36_883)]
    pub trawl_port: u16,
    /// `trawl crawl --cores`.
    #[arg(long, default_value_t = 1)]
    pub trawl_cores: usize,
    /// Concurrent metadata fetches per core (default: trawl's own).
    #[arg(long)]
    pub fetchers: Option<usize>,
    /// The trawl binary (default: next to this executable).
    #[arg(long)]
    pub trawl_bin: Option<PathBuf>,
    /// The trawl-swarm binary (default: next to this executable).
    #[arg(long)]
    pub swarm_bin: Option<PathBuf>,
    /// One more argument for `trawl crawl` (repeatable).
    #[arg(long = "trawl-arg", allow_hyphen_values = true)]
    pub trawl_args: Vec<String>,
    /// One more argument for `trawl-swarm` (repeatable).
    #[arg(long = "swarm-arg", allow_hyphen_values = true)]
    pub swarm_args: Vec<String>,
    #[arg(long)]
    pub no_pin: bool,
    /// Skip the bitmagnet-like baseline runs.
    #[arg(long)]
    pub no_baseline: bool,
}

/// bitmagnet's metadata limits (NOTES): 100 concurrent fetches, 3 s to dial,
/// 6 s per request.
const BASELINE_FETCHERS: usize = 100;
const BASELINE_DIAL: Duration = Duration::from_secs(3);
const BASELINE_REQUEST: Duration = Duration::from_secs(6);
/// Queries the baseline walker keeps in flight (bitmagnet publishes no
/// figure; at 4 s timeouts this allows about 250 queries a second to dead
/// nodes, more than its 60 samples a second need).
const BASELINE_INFLIGHT: usize = 1_000;

/// Seconds a run may take beyond its length (start-up, the final flush).
const MARGIN_SECS: f64 = 120.0;

/// The manifest's truth, as sets of infohashes.
struct Truth {
    discoverable: HashSet<[u8; 20]>,
    /// Discoverable and fetchable.
    fetchable: HashSet<[u8; 20]>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.intervals.is_empty() || args.interval_secs <= 0.0 {
        bail!("--intervals needs at least one run and --interval-secs must be positive");
    }
    let place = Placement::choose(args.no_pin, sys::online_cores());
    let mut rows = Vec::new();
    for &n in &args.intervals {
        let mut row = one_run(&args, n, place).with_context(|| format!("the {n}-interval run"))?;
        if !args.no_baseline {
            let base = baseline_run(&args, n, place).with_context(|| format!("the {n}-interval baseline run"))?;
            let ratio = |k: &str| {
                let (t, b) = (stat_f64(&row, k), stat_f64(&base, k));
                if b > 0.0 {
                    json!(round(t / b, 3))
                } else {
                    Value::Null
                }
            };
            let (d, f) = (ratio("discovered_share"), ratio("fetched_share"));
            row["ratio_to_bitmagnet_like"] = json!({"discovered": d, "fetched": f});
            row["bitmagnet_like"] = base;
        }
        eprintln!("yield: {row}");
        rows.push(row);
    }
    println!("{}", json!({"bench": "yield", "runs": rows}));
    Ok(())
}

/// A fresh `--preset mainline` swarm for a run of `secs`, writing its truth
/// into `dir`.
fn spawn_swarm(args: &Args, secs: f64, place: Placement, dir: &Path) -> anyhow::Result<(SwarmChild, Truth)> {
    let manifest = dir.join("manifest.jsonl");
    let mut extra: Vec<String> = ["--preset", "mainline", "--truth-secs"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    extra.push(secs.to_string());
    extra.push("--manifest".into());
    extra.push(manifest.display().to_string());
    extra.extend(args.swarm_args.iter().cloned());
    let swarm = SwarmChild::spawn(
        &SwarmSpawn {
            bin: args.swarm_bin.clone(),
            nodes: args.nodes,
            torrents: args.torrents,
            seed: args.seed,
            port: args.port,
            peer_port: args.peer_port,
            interval_max: 21_600,
            rate_limit: 0.0,
            max_secs: secs + MARGIN_SECS,
            churn: None,
            churn_period: None,
            extra_args: extra,
        },
        place,
    )?;
    let truth = read_truth(&manifest)?;
    Ok((swarm, truth))
}

fn one_run(args: &Args, intervals: u32, place: Placement) -> anyhow::Result<Value> {
    let secs = f64::from(intervals.max(1)) * args.interval_secs;
    let dir = tempfile::tempdir()?;
    let (mut swarm, truth) = spawn_swarm(args, secs, place, dir.path())?;
    let mut child = TrawlChild::spawn(&TrawlSpawn {
        bin: args.trawl_bin.as_deref(),
        port: args.trawl_port,
        cores: args.trawl_cores,
        bootstrap: SocketAddrV4::new(node_addr(0), swarm.udp_port()),
        max_secs: secs + MARGIN_SECS,
        fetchers: args
            .fetchers
            .unwrap_or(trawl_engine::runtime::fetch::FetchConfig::default().concurrency),
        no_fetch: false,
        pin: place.crawler.filter(|_| args.trawl_cores == 1),
        extra_args: &args.trawl_args,
    })?;
    let Window {
        opened,
        closed,
        first,
        last,
        summary,
    } = crawl_window(&mut child, &swarm, secs)?;
    let report = swarm.finish()?;
    let found: HashSet<[u8; 20]> = stored_infohashes(child.db())?.into_iter().collect();
    let store = trawl_storage::Store::open_read_only(child.db())?;
    let mut fetched = 0u64;
    for h in &truth.fetchable {
        fetched += u64::from(store.torrent(h)?.is_some());
    }
    let discovered = truth.discoverable.iter().filter(|h| found.contains(*h)).count() as u64;
    let share = |x: u64, of: usize| if of == 0 { 0.0 } else { round(x as f64 / of as f64, 4) };
    let datagrams = stat_delta(&closed, &opened, "received") + stat_delta(&closed, &opened, "sent");
    let cpu = (last.cpu - first.cpu).as_secs_f64();
    let per_torrent = |x: f64| {
        if fetched == 0 {
            0.0
        } else {
            round(x / fetched as f64, 3)
        }
    };
    let bans = report.get("bans").and_then(Value::as_u64).unwrap_or(0);
    let violations = report.get("politeness_violations").and_then(Value::as_u64).unwrap_or(0);
    Ok(json!({
        "intervals": intervals,
        "secs": round(stat_f64(&closed, "t") - stat_f64(&opened, "t"), 1),
        "discoverable": truth.discoverable.len(),
        "discovered": discovered,
        "discovered_share": share(discovered, truth.discoverable.len()),
        "fetchable": truth.fetchable.len(),
        "fetched": fetched,
        "fetched_share": share(fetched, truth.fetchable.len()),
        "stored_hashes": found.len(),
        "bans": bans,
        "violations": violations,
        "datagrams_per_torrent": per_torrent(datagrams),
        "cpu_ms_per_torrent": per_torrent(cpu * 1000.0),
        "crawler_cpu_share": round(cpu / secs, 3),
        "trawl": summary,
    }))
}

/// The same run with the bitmagnet-like crawler on a fresh swarm of the same seed.
fn baseline_run(args: &Args, intervals: u32, place: Placement) -> anyhow::Result<Value> {
    let secs = f64::from(intervals.max(1)) * args.interval_secs;
    let dir = tempfile::tempdir()?;
    let (mut swarm, truth) = spawn_swarm(args, secs, place, dir.path())?;
    let bootstrap = SocketAddrV4::new(node_addr(0), swarm.udp_port());
    let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<FetchJob>();
    let fetched = Arc::new(Mutex::new(HashSet::<[u8; 20]>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let fetchers: Vec<_> = (0..BASELINE_FETCHERS)
        .map(|_| {
            let (rx, fetched, stop) = (jobs_rx.clone(), fetched.clone(), stop.clone());
            std::thread::spawn(move || {
                for job in rx.iter().take_while(|_| !stop.load(Ordering::Relaxed)) {
                    for &peer in &job.peers {
                        if loadgen::fetch_metadata_within(peer, &job.info_hash, BASELINE_DIAL, BASELINE_REQUEST).is_ok()
                        {
                            fetched.lock().unwrap_or_else(|e| e.into_inner()).insert(job.info_hash);
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    drop(jobs_rx);
    let opened = swarm.latest_stats()?;
    let (seed, core) = (args.seed, place.crawler);
    let walk = std::thread::spawn(move || -> std::io::Result<_> {
        let mut walker = Walker::paced(seed, bootstrap, BASELINE_INFLIGHT, Pacing::bitmagnet());
        let load = loadgen::drive(&mut walker, Duration::from_secs_f64(secs), core, |w, _| {
            for job in w.take_fetch_jobs() {
                let _ = jobs_tx.send(job);
            }
        })?;
        Ok((load, walker.counters, walker.found().to_vec()))
    });
    let (load, counters, found) = walk
        .join()
        .map_err(|_| anyhow::anyhow!("the baseline walker panicked"))??;
    let closed = swarm.latest_stats()?;
    // Fetches finished within the run are what count; the rest are abandoned.
    stop.store(true, Ordering::Relaxed);
    let fetched: HashSet<[u8; 20]> = fetched.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let report = swarm.finish()?;
    for f in fetchers {
        let _ = f.join();
    }
    let found: HashSet<[u8; 20]> = found.into_iter().collect();
    let discovered = truth.discoverable.iter().filter(|h| found.contains(*h)).count() as u64;
    let got = truth.fetchable.iter().filter(|h| fetched.contains(*h)).count() as u64;
    let share = |x: u64, of: usize| if of == 0 { 0.0 } else { round(x as f64 / of as f64, 4) };
    let datagrams = stat_delta(&closed, &opened, "received") + stat_delta(&closed, &opened, "sent");
    let per = |x: f64| if got == 0 { 0.0 } else { round(x / got as f64, 3) };
    Ok(json!({
        "discovered": discovered,
        "discovered_share": share(discovered, truth.discoverable.len()),
        "fetched": got,
        "fetched_share": share(got, truth.fetchable.len()),
        "bans": report.get("bans").and_then(Value::as_u64).unwrap_or(0),
        "violations": report.get("politeness_violations").and_then(Value::as_u64).unwrap_or(0),
        "datagrams_per_torrent": per(datagrams),
        "walker_cpu_ms_per_torrent": per(load.cpu_seconds * 1000.0),
        "sent_sample": counters.sent_sample,
        "sent_get_peers": counters.sent_get_peers,
        "sent_find_node": counters.sent_find_node,
        "timeouts": counters.timeouts,
    }))
}

fn read_truth(path: &Path) -> anyhow::Result<Truth> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut truth = Truth {
        discoverable: HashSet::new(),
        fetchable: HashSet::new(),
    };
    for line in std::io::BufReader::new(file).lines() {
        let v: Value = serde_json::from_str(&line?)?;
        let hex = v.get("infohash").and_then(Value::as_str).unwrap_or("");
        let Ok(h) = trawl_storage::import::parse_hex(hex.as_bytes()) else {
            bail!("a manifest line without a 40-digit infohash: {v}");
        };
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        if flag("discoverable") {
            truth.discoverable.insert(h);
            if flag("fetchable") {
                truth.fetchable.insert(h);
            }
        }
    }
    Ok(truth)
}
