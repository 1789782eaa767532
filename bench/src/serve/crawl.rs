//! The crawl phase of `trawl-bench serve`: what `trawl serve` running beside
//! a crawl costs the crawl, in datagrams per second.
//!
//! One `trawl-swarm` (core 0) and, `--crawl-pairs` times, two fresh `trawl
//! crawl` runs pinned to core 1, the first alone and the second with `trawl
//! serve` (a child process, unpinned, as a user starts it) following its
//! database, indexing the torrents it stores and answering
//! `--crawl-query-rate` searches a second. Both runs open their window at
//! the same age of the crawl: after its first query reaches the swarm, a
//! warm-up and a slot in which the server starts (or nothing does). The
//! datagrams are the swarm's own counts (it hears only the crawler).
//!
//! The crawl saturates its core, as in the capacity bench (`--interval-max
//! 0`, no loss, `--resample-secs=0 --empty-backoff-secs=0`), so any CPU the
//! server takes from it shows in the rate; on this 2-core machine the server
//! has no core of its own.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use super::child::{trawl_bin, ServeChild};
use super::queries::{self, Conn, Load};
use super::round;
use crate::crawl::{stat_delta, stat_f64, wait_for_traffic, Placement, SwarmChild, SwarmSpawn, TrawlChild, TrawlSpawn};
use crate::swarm::nodes::node_addr;
use crate::sys;

/// From the crawl's first query to the start of the server's slot.
const WARMUP_SECS: f64 = 2.0;
/// The slot in which `trawl serve` starts (both runs wait it out).
const SERVE_SLOT_SECS: f64 = 3.0;
/// Searches prepared for the paced client.
const PACED_QUERIES: usize = 1024;
/// The target (issue 19): the crawl keeps this share of its rate.
pub(super) const TARGET_RATIO: f64 = 0.95;

#[derive(clap::Args, Debug)]
pub struct CrawlArgs {
    /// Seconds of each crawl's measured window; 0 skips the crawl phase.
    #[arg(long, default_value_t = 20.0)]
    pub crawl_secs: f64,
    /// Pairs of crawls: alone, then with `trawl serve`.
    #[arg(long, default_value_t = 2)]
    pub crawl_pairs: u32,
    /// The swarm's virtual nodes.
    #[arg(long, default_value_t = 100_000)]
    pub crawl_nodes: u32,
    /// The swarm's torrents (its peers serve their metadata, which the crawl stores).
    #[arg(long, default_value_t = 100_000)]
    pub crawl_torrents: u32,
    /// Searches per second a client sends `trawl serve` during the crawl (0: it only follows).
    #[arg(long, default_value_t = 2.0)]
    pub crawl_query_rate: f64,
    /// Crawl without the metadata fetcher (then the server has nothing new to index).
    #[arg(long)]
    pub crawl_no_fetch: bool,
    /// The trawl binary, for `trawl crawl` and `trawl serve` (default: next to this executable).
    #[arg(long)]
    pub trawl_bin: Option<PathBuf>,
    /// The trawl-swarm binary (default: next to this executable).
    #[arg(long)]
    pub swarm_bin: Option<PathBuf>,
    /// First of four loopback ports: the swarm's UDP, its peers' TCP, the crawl's UDP, the server's HTTP.
    #[arg(long, default_value_t = 36_891)]
    pub crawl_base_port: u16,
}

impl CrawlArgs {
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if self.crawl_secs <= 0.0 {
            return Ok(());
        }
        anyhow::ensure!(self.crawl_pairs > 0, "--crawl-pairs must be positive");
        anyhow::ensure!(
            self.crawl_nodes > 0 && self.crawl_torrents > 0,
            "--crawl-nodes and --crawl-torrents must be positive"
        );
        anyhow::ensure!(
            self.crawl_query_rate >= 0.0 && self.crawl_query_rate <= 1000.0,
            "--crawl-query-rate is 0 to 1000"
        );
        anyhow::ensure!(
            self.crawl_base_port <= u16::MAX - 3,
            "--crawl-base-port leaves no room for four ports"
        );
        Ok(())
    }

    fn port(&self, i: u16) -> u16 {
        self.crawl_base_port + i
    }

    /// Where a `trawl serve` child listens.
    pub(super) fn serve_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(3)))
    }
}

/// One crawl's window.
#[derive(Debug, Serialize)]
struct CrawlRun {
    with_serve: bool,
    seconds: f64,
    datagrams_per_s: f64,
    crawl_cpu_s: f64,
    /// Torrents the crawl stored (its summary's `metadata_ok`, whole run).
    torrents_stored: u64,
    /// The server's CPU over the window, its RSS at the end, the documents its
    /// index held, and the paced searches it answered.
    serve_cpu_s: Option<f64>,
    serve_rss_bytes: Option<u64>,
    serve_documents: Option<u64>,
    searches_answered: Option<u64>,
    searches_p99_ms: Option<f64>,
    searches_errors: Option<u64>,
}

pub(super) fn run(a: &CrawlArgs, seed: u64) -> anyhow::Result<Value> {
    if a.crawl_secs <= 0.0 {
        println!("crawl: skipped (--crawl-secs 0)");
        return Ok(Value::Null);
    }
    let place = Placement::choose(false, sys::online_cores());
    let per_run = WARMUP_SECS + SERVE_SLOT_SECS + a.crawl_secs + 30.0;
    let mut swarm = SwarmChild::spawn(
        &SwarmSpawn {
            bin: a.swarm_bin.clone(),
            nodes: a.crawl_nodes,
            torrents: a.crawl_torrents,
            seed,
            port: a.port(0),
            peer_port: a.port(1),
            interval_max: 0,
            rate_limit: 0.0,
            max_secs: per_run * 2.0 * f64::from(a.crawl_pairs) + 120.0,
            churn: Some(0.0),
            churn_period: Some(60.0),
            extra_args: vec!["--loss=0".into()],
        },
        place,
    )?;
    println!(
        "crawl: swarm of {} nodes and {} torrents ready; {} pairs of {} s windows, placement {place:?}",
        a.crawl_nodes, a.crawl_torrents, a.crawl_pairs, a.crawl_secs
    );
    // Words of the swarm's own torrents, which the crawl stores.
    let paced = queries::prepare(seed, a.crawl_torrents, PACED_QUERIES)
        .into_iter()
        .flat_map(|k| k.paths)
        .collect::<Vec<_>>();
    let mut runs = Vec::new();
    for _ in 0..a.crawl_pairs {
        for with_serve in [false, true] {
            let r = one_crawl(a, &swarm, place, with_serve, &paced)?;
            println!(
                "crawl: {:<10} {:.0} datagrams/s over {:.1} s, crawl CPU {:.1} s, {} torrents stored{}",
                if with_serve { "with serve" } else { "alone" },
                r.datagrams_per_s,
                r.seconds,
                r.crawl_cpu_s,
                r.torrents_stored,
                match (r.serve_cpu_s, r.serve_documents, r.searches_answered, r.searches_p99_ms) {
                    (Some(cpu), Some(docs), Some(n), Some(p99)) => format!(
                        "; serve CPU {cpu:.1} s, RSS {:.0} MB, {docs} documents, {n} searches (p99 {p99:.1} ms, {} errors)",
                        r.serve_rss_bytes.unwrap_or(0) as f64 / 1e6,
                        r.searches_errors.unwrap_or(0)
                    ),
                    _ => String::new(),
                }
            );
            runs.push(r);
        }
    }
    let swarm_final = swarm.finish()?;
    let mean = |serve: bool| {
        let v: Vec<f64> = runs
            .iter()
            .filter(|r| r.with_serve == serve)
            .map(|r| r.datagrams_per_s)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let (alone, with) = (mean(false), mean(true));
    let ratio = with / alone.max(1e-9);
    println!(
        "crawl: with serve {with:.0} datagrams/s against {alone:.0} alone (means): {ratio:.3}, target {TARGET_RATIO}"
    );
    Ok(json!({
        "nodes": a.crawl_nodes,
        "torrents": a.crawl_torrents,
        "fetch": !a.crawl_no_fetch,
        "query_rate": a.crawl_query_rate,
        "window_secs": a.crawl_secs,
        "runs": runs,
        "alone_datagrams_per_s": round(alone, 0),
        "with_serve_datagrams_per_s": round(with, 0),
        "ratio": round(ratio, 3),
        "swarm_politeness_violations": swarm_final.get("politeness_violations").cloned().unwrap_or(Value::Null),
    }))
}

fn one_crawl(
    a: &CrawlArgs,
    swarm: &SwarmChild,
    place: Placement,
    with_serve: bool,
    paced: &[String],
) -> anyhow::Result<CrawlRun> {
    let saturate = ["--resample-secs=0".to_string(), "--empty-backoff-secs=0".to_string()];
    let mut child = TrawlChild::spawn(&TrawlSpawn {
        bin: a.trawl_bin.as_deref(),
        port: a.port(2),
        cores: 1,
        bootstrap: SocketAddrV4::new(node_addr(0), swarm.udp_port()),
        max_secs: WARMUP_SECS + SERVE_SLOT_SECS + a.crawl_secs + 120.0,
        fetchers: 32,
        no_fetch: a.crawl_no_fetch,
        pin: place.crawler,
        extra_args: &saturate,
    })?;
    wait_for_traffic(swarm, Duration::from_secs_f64(WARMUP_SECS))?;
    let slot_end = Instant::now() + Duration::from_secs_f64(SERVE_SLOT_SECS);
    let server = if with_serve {
        let bin = trawl_bin(a.trawl_bin.as_deref())?;
        let s = ServeChild::spawn(&bin, child.db(), None, a.serve_addr())?;
        s.wait_ready(Duration::from_secs(60))?;
        Some(s)
    } else {
        None
    };
    let late = Instant::now().saturating_duration_since(slot_end);
    if !late.is_zero() {
        println!("crawl: the server took {late:?} beyond its start slot; this window opens later");
    }
    std::thread::sleep(slot_end.saturating_duration_since(Instant::now()));

    let stop = Arc::new(AtomicBool::new(false));
    let pacer = match &server {
        Some(s) if a.crawl_query_rate > 0.0 => Some(spawn_pacer(s.addr, paced.to_vec(), a.crawl_query_rate, &stop)?),
        _ => None,
    };
    let opened = swarm.latest_stats()?;
    let first = child.stat().context("reading the crawler's /proc entry")?;
    let serve_first = server.as_ref().map(|s| s.stat()).transpose()?;
    let start = Instant::now();
    let mut last = first;
    while start.elapsed() < Duration::from_secs_f64(a.crawl_secs) {
        std::thread::sleep(Duration::from_millis(200));
        last = child.stat().context("trawl crawl exited before its window ended")?;
    }
    let closed = swarm.latest_stats()?;
    let serve_last = server.as_ref().map(|s| s.stat()).transpose()?;
    stop.store(true, Relaxed);
    let searches = match pacer {
        Some(p) => Some(p.join().map_err(|_| anyhow::anyhow!("the paced client panicked"))?),
        None => None,
    };
    let documents = match &server {
        Some(s) => Some(s.documents()?),
        None => None,
    };
    if let Some(s) = server {
        s.stop()?;
    }
    let (summary, clean) = child.stop()?;
    if !clean {
        bail!("trawl crawl did not exit cleanly after SIGINT: {summary}");
    }
    let seconds = (stat_f64(&closed, "t") - stat_f64(&opened, "t")).max(1e-9);
    let datagrams = stat_delta(&closed, &opened, "received") + stat_delta(&closed, &opened, "sent");
    Ok(CrawlRun {
        with_serve,
        seconds: round(seconds, 2),
        datagrams_per_s: round(datagrams / seconds, 0),
        crawl_cpu_s: round((last.cpu - first.cpu).as_secs_f64(), 2),
        torrents_stored: summary.get("metadata_ok").and_then(Value::as_u64).unwrap_or(0),
        serve_cpu_s: serve_first
            .zip(serve_last)
            .map(|(f, l)| round((l.cpu - f.cpu).as_secs_f64(), 2)),
        serve_rss_bytes: serve_last.map(|l| l.rss_bytes),
        serve_documents: documents,
        searches_answered: searches.as_ref().map(|s| s.latencies_us.len() as u64),
        searches_p99_ms: searches.as_ref().map(|s| round(s.quantile_ms(0.99), 2)),
        searches_errors: searches.as_ref().map(|s| s.errors),
    })
}

/// One client sending `rate` searches a second until `stop`.
fn spawn_pacer(
    addr: SocketAddr,
    paths: Vec<String>,
    rate: f64,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<Load>> {
    let stop = Arc::clone(stop);
    let every = Duration::from_secs_f64(1.0 / rate);
    std::thread::Builder::new()
        .name("bench-paced-client".into())
        .spawn(move || {
            let mut conn = Conn::new(addr);
            let (mut out, mut body) = (Load::default(), Vec::new());
            let mut next = Instant::now();
            let mut k = 0;
            while !stop.load(Relaxed) {
                if !paths.is_empty() {
                    conn.ask(&paths[k % paths.len()], &mut body, &mut out);
                    k += 1;
                }
                next += every;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            out.latencies_us.sort_unstable();
            out
        })
        .context("starting the paced client")
}
