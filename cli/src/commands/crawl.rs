//! `trawl crawl`: run the thread-per-core crawler into a database until
//! `--duration` passes or SIGINT/SIGTERM arrives, show live figures, and print
//! one JSON summary line at the end.
//!
//! Owns the flags (merged with `--config` by `ops::config`), the signals
//! (SIGUSR1/SIGUSR2 pause and resume, SIGINT/SIGTERM stop with a bounded
//! drain), the status line, the `--metrics` endpoint's lifetime and the
//! summary. Must not reach into the crawl: everything it shows comes from
//! [`Crawler::snapshot`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::config::{CrawlLayer, CrawlSettings, DiskSize, Pacing};
use crate::metrics::{MetricsServer, Source};
use crate::status::{StatusLine, StatusMode};
use crate::watch::{Notice, Watch};
use serde_json::json;
use trawl_engine::crawl::CrawlConfig;
use trawl_engine::ops::{limits, memory, CrawlSnapshot};
use trawl_engine::runtime::crawl::{Crawler, CrawlerOptions};
use trawl_engine::runtime::fetch::FetchConfig;
use trawl_storage::{InfoDictMode, QueuePolicy, StoreOptions, WriterOptions, DEFAULT_MEMORY_BUDGET_BYTES};

use super::node::resolve_bootstrap;
use super::UsageError;

/// How often a snapshot is taken for the status line.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often the main thread looks at signals and the deadline.
const POLL: Duration = Duration::from_millis(100);

/// Shown after `--help`.
pub const EXAMPLES: &str = "\
Examples:
  trawl crawl --db trawl-db                                # the real DHT, from the public routers
  trawl crawl --db trawl-db --no-read-only --metrics 127.0.0.1:9477
  trawl crawl --config /etc/trawl/trawl.toml --cores 2     # flags override the file's keys
  trawl crawl --db /tmp/t --port 0 --allow-loopback --bootstrap 127.1.0.1:36881 --duration 30

Control while it runs:
  SIGUSR1 pauses crawling (no queries, no fetches; sockets stay open), SIGUSR2 resumes:
    kill -USR1 <pid>    kill -USR2 <pid>    systemctl kill -s SIGUSR1 trawl
  SIGINT/SIGTERM stop it: findings are flushed and nodes saved within --drain-secs
  (a second signal exits at once). stdout gets one JSON summary line at the end.

Precedence: a flag, else the key of the same name in --config's [crawl] table, else the default.";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// TOML config file; its `[crawl]` keys are these flags' names (see deploy/trawl.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database directory (created if missing). Required, here or in the config file.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// UDP port shared by every core (0 picks a free one) [default: 6881].
    #[arg(long)]
    pub port: Option<u16>,
    /// Executors, one per core [default: every online CPU].
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// Node or router to start from, HOST:PORT (repeatable) [default: the public routers].
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
    /// Stop after this many seconds [default: run until SIGINT or SIGTERM].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Answer no queries and send `ro`=1 (BEP 43). The default.
    #[arg(long, overrides_with = "no_read_only")]
    pub read_only: bool,
    /// Answer other nodes' queries like a full node (ping, find_node, get_peers
    /// with tokens, announce_peer, sample_infohashes) and
    /// harvest the infohashes and announcers they carry (see docs/operating.md).
    #[arg(long, overrides_with = "read_only")]
    pub no_read_only: bool,
    /// Accept loopback, private and other non-public addresses (test networks only).
    #[arg(long)]
    pub allow_loopback: bool,
    /// Do not fetch metadata (BEP 9); only discover infohashes. Peers found
    /// are not kept either, so no fetch queue grows.
    #[arg(long)]
    pub no_fetch: bool,
    /// Do not send BEP 33 scrapes (seeder and leecher counts); peers still come
    /// from a plain get_peers.
    #[arg(long)]
    pub no_scrape: bool,
    /// Concurrent metadata fetches per core [default: 1000].
    #[arg(long, value_name = "N")]
    pub fetch_concurrency: Option<usize>,
    /// Crawl over IPv4 only.
    #[arg(long)]
    pub no_ipv6: bool,
    /// Local IPv4 address for the IPv4 sockets [default: 0.0.0.0].
    #[arg(long, value_name = "IP")]
    pub bind: Option<Ipv4Addr>,
    /// This host's public address (BEP 42): each core takes a secure node id
    /// for it at once. Without it the address is voted from the `ip` key of
    /// replies (at least 5 distinct nodes, a majority) and the ids change then.
    #[arg(long, value_name = "IP")]
    pub external_ip: Option<std::net::IpAddr>,
    /// Do not pin executor i to CPU i.
    #[arg(long)]
    pub no_pin: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example 127.0.0.1:9477).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// On SIGINT/SIGTERM, wait at most this long for the final flush [default: 30].
    #[arg(long, value_name = "SECS")]
    pub drain_secs: Option<f64>,
    /// Stop with exit code 6 when no DHT node has answered within this many
    /// seconds of the start (a warning comes after 10 s); 0 waits forever [default: 300].
    #[arg(long, value_name = "SECS")]
    pub bootstrap_timeout_secs: Option<f64>,
    /// When stderr is not a terminal, log the status this often [default: 10].
    #[arg(long, value_name = "SECS")]
    pub log_every: Option<f64>,
    /// Queries per second to one remote IP [default: 2]. Raise it on test networks only.
    #[arg(long, value_name = "RATE")]
    pub per_ip_rate: Option<f64>,
    /// Queries one remote IP may get in a burst [default: 4].
    #[arg(long, value_name = "N")]
    pub per_ip_burst: Option<f64>,
    /// Earliest re-sample of a node whose last sample had something new; its own
    /// BEP 51 interval wins when longer [default: 60].
    #[arg(long, value_name = "SECS")]
    pub resample_secs: Option<f64>,
    /// First wait after a sample with nothing new, doubling per empty sample [default: 300].
    #[arg(long, value_name = "SECS")]
    pub empty_backoff_secs: Option<f64>,
    /// How often each known node is asked find_node [default: 600].
    #[arg(long, value_name = "SECS")]
    pub walk_secs: Option<f64>,
    /// RocksDB's memory budget: block cache (data, index and filter blocks)
    /// with every memtable charged to it, up to half [default: 256].
    #[arg(long, value_name = "MB")]
    pub db_memory_mb: Option<u64>,
    /// How much of each fetched info dict to keep: `full` (the raw dict, so
    /// `export --format torrents` works), `files` (names, sizes, paths and
    /// flags, without the piece hashes: 1/37 of the bytes in the storage bench) or `none` (the
    /// torrent row only). Applies to new torrents; what is stored stays
    /// [default: files].
    #[arg(long, value_name = "MODE")]
    pub info_dicts: Option<InfoDictMode>,
    /// Most hashes waiting in the metadata-fetch queue; past it a new hash is
    /// not queued (its infohash is still stored, and counted) [default: 2000000].
    #[arg(long, value_name = "N")]
    pub fetch_queue_max: Option<u64>,
    /// Disk budget for the database directory, like 20G or 500MiB. At 90% of
    /// it info dicts stop being kept, at 95% fetching stops, at 98% new
    /// infohashes stop; each step is logged and undone when there is room
    /// again. Nothing stored is deleted [default: none].
    #[arg(long, value_name = "SIZE")]
    pub max_disk: Option<DiskSize>,
}

impl Args {
    /// The options given as flags; `None` for each one not given.
    fn layer(&self) -> CrawlLayer {
        let given = |flag: bool, value: bool| flag.then_some(value);
        CrawlLayer {
            db: self.db.clone(),
            port: self.port,
            bind: self.bind,
            external_ip: self.external_ip,
            ipv6: given(self.no_ipv6, false),
            cores: self.cores,
            pin: given(self.no_pin, false),
            bootstrap: (!self.bootstrap.is_empty()).then(|| self.bootstrap.clone()),
            duration: self.duration,
            read_only: match (self.read_only, self.no_read_only) {
                (_, true) => Some(false),
                (true, false) => Some(true),
                (false, false) => None,
            },
            allow_loopback: given(self.allow_loopback, true),
            fetch: given(self.no_fetch, false),
            scrape: given(self.no_scrape, false),
            fetch_concurrency: self.fetch_concurrency,
            metrics: self.metrics,
            drain_secs: self.drain_secs,
            bootstrap_timeout_secs: self.bootstrap_timeout_secs,
            log_every: self.log_every,
            per_ip_rate: self.per_ip_rate,
            per_ip_burst: self.per_ip_burst,
            resample_secs: self.resample_secs,
            empty_backoff_secs: self.empty_backoff_secs,
            walk_secs: self.walk_secs,
            db_memory_mb: self.db_memory_mb,
            info_dicts: self.info_dicts,
            fetch_queue_max: self.fetch_queue_max,
            max_disk: self.max_disk,
        }
    }
}

/// Flags over the config file over the defaults; bad values name their flag or key.
fn settings(args: &Args) -> anyhow::Result<CrawlSettings> {
    let flags = args.layer();
    flags
        .validate()
        .map_err(|bad| UsageError(format!("bad --{}: {}", bad.key, bad.message)))?;
    let file = args.config.as_deref().map(CrawlLayer::load).transpose()?;
    Ok(CrawlSettings::resolve(flags, file))
}

/// The scheduler's defaults with the pacing knobs that were given.
fn crawl_config(p: &Pacing, scrape: bool) -> CrawlConfig {
    let d = CrawlConfig::default();
    CrawlConfig {
        scrape_counts: scrape,
        per_ip_rate: p.per_ip_rate.unwrap_or(d.per_ip_rate),
        per_ip_burst: p.per_ip_burst.unwrap_or(d.per_ip_burst),
        productive_resample: p.resample.unwrap_or(d.productive_resample),
        empty_backoff: p.empty_backoff.unwrap_or(d.empty_backoff),
        walk_interval: p.walk.unwrap_or(d.walk_interval),
        ..d
    }
}

/// SIGINT/SIGTERM (stop) and SIGUSR1/SIGUSR2 (pause/resume), as flags the main
/// loop polls: nothing runs in the handlers themselves.
struct Signals {
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    resume: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        let s = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            pause: Arc::new(AtomicBool::new(false)),
            resume: Arc::new(AtomicBool::new(false)),
        };
        for (signal, flag) in [
            (SIGINT, &s.stop),
            (SIGTERM, &s.stop),
            (SIGUSR1, &s.pause),
            (SIGUSR2, &s.resume),
        ] {
            signal_hook::flag::register(signal, Arc::clone(flag))?;
        }
        Ok(s)
    }

    fn take(flag: &AtomicBool) -> bool {
        flag.swap(false, Ordering::Relaxed)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let s = settings(&args)?;
    let db = s
        .db
        .clone()
        .ok_or_else(|| UsageError("no database: give --db PATH, or `db` in the config file's [crawl] table".into()))?;
    let fetch_concurrency = s.fetch_concurrency.unwrap_or(FetchConfig::default().concurrency);
    let cores = s
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bootstrap = resolve_bootstrap(&s.bootstrap, |_| true)?;
    let opts = CrawlerOptions {
        db: db.clone(),
        port: s.port,
        bind_v4: s.bind,
        ipv6: s.ipv6,
        cores,
        pin: s.pin,
        bootstrap: bootstrap.clone(),
        read_only: s.read_only,
        allow_loopback: s.allow_loopback,
        fetch: s.fetch,
        fetch_concurrency,
        crawl: CrawlConfig {
            external_ip: s.external_ip,
            ..crawl_config(&s.pacing, s.scrape)
        },
        store: StoreOptions {
            memory_budget_bytes: s.db_memory.unwrap_or(DEFAULT_MEMORY_BUDGET_BYTES),
            info_dicts: s.info_dicts,
            queue: QueuePolicy {
                max_entries: s.fetch_queue_max,
                ..QueuePolicy::default()
            },
            ..StoreOptions::default()
        },
        writer: WriterOptions {
            max_disk: s.max_disk,
            ..WriterOptions::default()
        },
        ..CrawlerOptions::default()
    };
    limits::check(cores, if s.fetch { cores * fetch_concurrency } else { 0 })?;

    let signals = Signals::register()?;
    // The endpoint is bound before the crawl starts, so a taken port fails
    // fast; until the crawler exists it serves an empty snapshot.
    let slot: Arc<OnceLock<Arc<Crawler>>> = Arc::new(OnceLock::new());
    let metrics = match s.metrics {
        Some(addr) => {
            let slot = Arc::clone(&slot);
            let server = MetricsServer::start(
                addr,
                Source::Crawl(Arc::new(move || slot.get().map(|c| c.snapshot()).unwrap_or_default())),
            )?;
            tracing::info!(addr = %server.local_addr(), "serving metrics at /metrics");
            Some(server)
        }
        None => None,
    };
    // Exit codes come from the error chain (cli::exit_code): a bad option is a
    // usage error, a taken port an address error, a locked database a database error.
    let crawler = Arc::new(Crawler::start(opts)?);
    let _ = slot.set(Arc::clone(&crawler));
    if let Some((before, now)) = crawler.store().and_then(|st| st.info_dicts_mode_change()) {
        tracing::warn!(
            "this database was last crawled with --info-dicts {before}; torrents fetched from now on are kept as {now}, and the info dicts already stored stay as they were"
        );
    }

    let deadline = s.duration.map(|d| Instant::now() + d);
    let mut watch = Watch::new(
        Instant::now(),
        &s.bootstrap,
        bootstrap,
        s.bootstrap_timeout,
        crawler.local_v4().port(),
        !s.read_only,
    );
    let mut gave_up = None;
    let mut status = StatusLine::new(StatusMode::detect(), s.log_every);
    let mut next_status = Instant::now();
    let mut next_trim = Instant::now() + memory::LIBC_TRIM_EVERY;
    let mut paused = false;
    let reason = loop {
        let now = Instant::now();
        if Signals::take(&signals.stop) {
            break "signal";
        }
        if deadline.is_some_and(|d| now >= d) {
            break "duration";
        }
        if Signals::take(&signals.pause) && !paused {
            paused = true;
            crawler.set_paused(true);
            tracing::info!("paused (SIGUSR1): no queries or fetches until SIGUSR2");
        }
        if Signals::take(&signals.resume) && paused {
            paused = false;
            crawler.set_paused(false);
            tracing::info!("resumed (SIGUSR2)");
        }
        if !crawler.wait_until((now + POLL).min(deadline.unwrap_or(now + POLL))) {
            tracing::error!("every crawl core stopped");
            break "cores stopped";
        }
        if now >= next_status {
            next_status = now + STATUS_EVERY;
            let snap = crawler.snapshot();
            match watch.observe(now, &snap) {
                Some(Notice::Warn(m)) => tracing::warn!("{m}"),
                Some(Notice::Info(m)) => tracing::info!("{m}"),
                Some(Notice::GiveUp(m)) => {
                    gave_up = Some(m);
                    break "no DHT node answered";
                }
                None => {}
            }
            status.update(now, snap);
        }
        if now >= next_trim {
            next_trim = now + memory::LIBC_TRIM_EVERY;
            let started = Instant::now();
            memory::trim_libc_heap();
            tracing::debug!(micros = started.elapsed().as_micros() as u64, "trimmed glibc's heap");
        }
    };
    status.finish();
    tracing::info!(
        reason,
        drain_secs = s.drain.as_secs_f64(),
        "stopping: flushing findings and saving nodes"
    );
    let cores = crawler.cores();
    let last_seen = crawler.snapshot();
    drop(metrics);
    let slot = Arc::try_unwrap(slot).ok().and_then(OnceLock::into_inner);
    drop(crawler);
    let crawler = slot.and_then(|c| Arc::try_unwrap(c).ok());
    let last = match crawler {
        Some(crawler) => drain(crawler, s.drain, &signals.stop, &db)?,
        None => last_seen,
    };
    println!("{}", summary(&last, cores, &db));
    match gave_up {
        Some(m) => Err(NoAnswer(m).into()),
        None => Ok(()),
    }
}

/// No DHT node answered within `--bootstrap-timeout-secs` (exit code 6).
#[derive(Debug)]
pub struct NoAnswer(pub String);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoAnswer {}

/// Shuts the crawl down on another thread and waits at most `limit` (or until
/// another stop signal) for it: the final flush must not hold a service
/// manager's stop forever. What the writer already committed stays safe.
fn drain(crawler: Crawler, limit: Duration, stop: &AtomicBool, db: &std::path::Path) -> anyhow::Result<CrawlSnapshot> {
    let before = crawler.snapshot();
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new().name("trawl-drain".into()).spawn(move || {
        let _ = tx.send(crawler.shutdown());
    })?;
    let give_up = Instant::now() + limit;
    loop {
        match rx.recv_timeout(POLL.min(give_up.saturating_duration_since(Instant::now()))) {
            Ok(last) => return Ok(last),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(before),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        let why = if stop.load(Ordering::Relaxed) {
            "a second stop signal came"
        } else if Instant::now() >= give_up {
            "the drain time ran out"
        } else {
            continue;
        };
        println!("{}", summary(&before, before.cores.len(), db));
        anyhow::bail!(
            "stopped before the final flush finished ({why}, --drain-secs {}); items already committed are safe, the last batch may be lost",
            limit.as_secs_f64()
        );
    }
}

/// The one JSON line `trawl crawl` prints at the end (contract 3).
fn summary(s: &CrawlSnapshot, cores: usize, db: &std::path::Path) -> serde_json::Value {
    let (cpu_secs, peak_rss_mb) = usage();
    let mut v = counts(s, cores);
    let st = &s.storage;
    let disk = json!({
        "disk_state": st.disk_state.as_str(),
        "disk_used_bytes": st.disk_used_bytes,
        "disk_budget_bytes": st.disk_budget_bytes,
        "info_dicts_not_kept_budget": st.info_dicts_not_kept_budget,
        "infohashes_refused_budget": st.infohashes_refused_budget,
        "fetch_queue_refused_budget": st.queue_refused_budget,
        "disk_full_pauses": st.disk_full_pauses,
        "cpu_secs": (cpu_secs * 1000.0).round() / 1000.0,
        "peak_rss_mb": (peak_rss_mb * 10.0).round() / 10.0,
        "db": db.display().to_string(),
    });
    if let (Some(v), serde_json::Value::Object(more)) = (v.as_object_mut(), disk) {
        v.extend(more);
    }
    v
}

/// The summary's crawl and storage counts (one `json!` would pass the macro's recursion limit).
fn counts(s: &CrawlSnapshot, cores: usize) -> serde_json::Value {
    json!({
        "crawl": "summary",
        "secs": (s.uptime_secs * 1000.0).round() / 1000.0,
        "cores": cores,
        "datagrams_in": s.total(|c| c.datagrams_in),
        "datagrams_out": s.total(|c| c.datagrams_out),
        "new_hashes": s.total(|c| c.new_hashes),
        "duplicate_hashes": s.total(|c| c.duplicate_hashes),
        "samples_sent": s.total(|c| c.samples_sent),
        "find_nodes_sent": s.total(|c| c.find_nodes_sent),
        "get_peers_sent": s.total(|c| c.get_peers_sent),
        "scrapes_sent": s.total(|c| c.scrapes_sent),
        "lookup_queries_sent": s.total(|c| c.lookup_queries_sent),
        "peers_found": s.total(|c| c.peers_found),
        "peers_rejected": s.total(|c| c.peers_rejected),
        "lookups_started": s.total(|c| c.lookups_started),
        "lookups_found": s.total(|c| c.lookups_found),
        "lookups_empty": s.total(|c| c.lookups_empty),
        "lookups_dropped": s.total(|c| c.lookups_dropped),
        "harvest_lookups_skipped": s.total(|c| c.harvest_lookups_skipped),
        "timeouts": s.total(|c| c.timeouts),
        "queries_answered": s.total(|c| c.queries_answered),
        "queries_ignored": s.total(|c| c.queries_ignored),
        "harvested_get_peers": s.total(|c| c.harvested_get_peers),
        "harvested_announces": s.total(|c| c.harvested_announces),
        "announced_peers": s.total(|c| c.announced_peers),
        "stored_new": s.storage.new_infohashes,
        "stored_duplicates": s.storage.duplicate_infohashes,
        "known_nodes": s.total(|c| c.known_nodes),
        "metadata_ok": s.fetch.ok,
        // Connection attempts, not infohashes: one hash may be tried at many peers.
        "metadata_failed": s.fetch.attempts_failed().map(|(_, n)| n).sum::<u64>(),
        "fetch_attempts_failed": s.fetch.attempts_failed().map(|(k, n)| (k.to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "fetch_hashes": s.fetch.hash_outcomes().iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "fetch_queue_abandoned": s.storage.queue_abandoned,
        "fetch_queue_expired": s.storage.queue_expired,
        "fetch_queue_dropped_full": s.storage.queue_dropped_full,
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
