//! `trawl crawl`: run the thread-per-core crawler into a database until
//! `--duration` passes or SIGINT/SIGTERM arrives, show live figures, and print
//! one JSON summary line at the end.
//!
//! Owns the flags, the status line and the summary. Must not reach into the
//! crawl: everything it shows comes from [`Crawler::snapshot`].

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use trawl_engine::crawl::runtime::{CrawlError, Crawler, CrawlerOptions};
use trawl_engine::metadata::fetcher::FetchConfig;
use trawl_engine::ops::status::{StatusLine, StatusMode};
use trawl_engine::ops::CrawlSnapshot;

use super::UsageError;

/// The public routers a crawl starts from when no `--bootstrap` is given.
pub const DEFAULT_BOOTSTRAP: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// How often the figures go to the log when no one watches a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How often a snapshot is taken for the status line.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often the main thread looks at signals and the deadline.
const POLL: Duration = Duration::from_millis(100);

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  trawl crawl --db ./trawl.db
  trawl crawl --db ./trawl.db --cores 2 --duration 3600
  trawl crawl --db /tmp/t.db --port 0 --allow-loopback --bootstrap 127.0.0.1:36881 --duration 30")]
pub struct Args {
    /// Database directory (created if missing).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// UDP port shared by every core (0 picks a free one).
    #[arg(long, default_value_t = 6881)]
    pub port: u16,
    /// Executors, one per core (default: every online CPU).
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// Node or router to start from, HOST:PORT (repeatable). Defaults to the public routers.
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Answer no queries and send `ro`=1 (BEP 43). The default.
    #[arg(long, overrides_with = "no_read_only")]
    pub read_only: bool,
    /// Answer incoming queries (ping, find_node, get_peers) like a full node.
    #[arg(long, overrides_with = "read_only")]
    pub no_read_only: bool,
    /// Accept loopback, private and other non-public addresses (test networks only).
    #[arg(long)]
    pub allow_loopback: bool,
    /// Do not fetch metadata (BEP 9); only discover infohashes.
    #[arg(long)]
    pub no_fetch: bool,
    /// Concurrent metadata fetches per core.
    #[arg(long, value_name = "N", default_value_t = FetchConfig::default().concurrency)]
    pub fetch_concurrency: usize,
    /// Crawl over IPv4 only.
    #[arg(long)]
    pub no_ipv6: bool,
    /// Local IPv4 address for the IPv4 sockets.
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub bind: Ipv4Addr,
    /// Do not pin executor i to CPU i.
    #[arg(long)]
    pub no_pin: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let duration = args
        .duration
        .map(|secs| super::lookup::positive_secs("--duration", secs))
        .transpose()?;
    if args.cores == Some(0) {
        return Err(UsageError("bad --cores 0: expected at least 1".into()).into());
    }
    if args.fetch_concurrency == 0 {
        return Err(UsageError("bad --fetch-concurrency 0: expected at least 1".into()).into());
    }
    let opts = CrawlerOptions {
        db: args.db.clone(),
        port: args.port,
        bind_v4: args.bind,
        ipv6: !args.no_ipv6,
        cores: args.cores.unwrap_or(0),
        pin: !args.no_pin,
        bootstrap: resolve_bootstrap(&args.bootstrap)?,
        read_only: !args.no_read_only,
        allow_loopback: args.allow_loopback,
        fetch: !args.no_fetch,
        fetch_concurrency: args.fetch_concurrency,
        ..CrawlerOptions::default()
    };

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    // Exit codes come from the error chain (cli::exit_code): a bad option is a
    // usage error; a locked or foreign database carries its StorageError.
    let crawler = Crawler::start(opts).map_err(|e| -> anyhow::Error {
        match e {
            CrawlError::Config(m) => UsageError(m).into(),
            e => e.into(),
        }
    })?;
    let deadline = duration.map(|d| Instant::now() + d);
    let mut status = StatusLine::new(StatusMode::detect(), LOG_EVERY);
    let mut next_status = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if !crawler.wait_until((now + POLL).min(deadline.unwrap_or(now + POLL))) {
            tracing::error!("every crawl core stopped");
            break;
        }
        if now >= next_status {
            next_status = now + STATUS_EVERY;
            status.update(now, crawler.snapshot());
        }
    }
    status.finish();
    tracing::info!("stopping: flushing findings and saving nodes");
    let cores = crawler.cores();
    let last = crawler.shutdown();
    println!("{}", summary(&last, cores, &args.db));
    Ok(())
}

/// Resolves `--bootstrap` entries (or the public routers), both families.
/// An unparsable entry is a usage error; a name that does not resolve is
/// skipped, unless none resolve.
fn resolve_bootstrap(entries: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    let defaults: Vec<String>;
    let entries = if entries.is_empty() {
        defaults = DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect();
        &defaults
    } else {
        entries
    };
    let mut addrs = Vec::new();
    let mut failures = Vec::new();
    for entry in entries {
        let bad = || UsageError(format!("bad bootstrap address {entry:?}: expected HOST:PORT"));
        let (host, port) = entry.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad().into());
        }
        match entry.to_socket_addrs() {
            Ok(resolved) => addrs.extend(resolved),
            Err(err) => failures.push(format!("{entry}: {err}")),
        }
    }
    if addrs.is_empty() {
        return Err(UsageError(format!("no usable bootstrap address ({})", failures.join("; "))).into());
    }
    for failure in failures {
        tracing::warn!("skipping bootstrap address {failure}");
    }
    Ok(addrs)
}

/// The one JSON line `trawl crawl` prints at the end (contract 3).
fn summary(s: &CrawlSnapshot, cores: usize, db: &std::path::Path) -> serde_json::Value {
    let (cpu_secs, peak_rss_mb) = usage();
    json!({
        "crawl": "summary",
        "secs": (s.uptime_secs * 1000.0).round() / 1000.0,
        "cores": cores,
        "datagrams_in": s.total(|c| c.datagrams_in),
        "datagrams_out": s.total(|c| c.datagrams_out),
        "new_hashes": s.total(|c| c.new_hashes),
        "stored_new": s.storage.new_infohashes,
        "stored_duplicates": s.storage.duplicate_infohashes,
        "known_nodes": s.total(|c| c.known_nodes),
        "metadata_ok": s.fetch.ok,
        "metadata_failed": s.fetch.failed.iter().map(|(_, n)| n).sum::<u64>(),
        "cpu_secs": (cpu_secs * 1000.0).round() / 1000.0,
        "peak_rss_mb": (peak_rss_mb * 10.0).round() / 10.0,
        "db": db.display().to_string(),
    })
}

/// This process's CPU seconds (user + system) and peak RSS in MB.
fn usage() -> (f64, f64) {
    // SAFETY: getrusage fills the struct it is given; all-zero is a valid start.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss as f64 / 1024.0)
}
