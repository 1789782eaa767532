//! The crawl's public handle: start the cores, read their figures, pause and
//! resume, shut down gracefully.
//!
//! Owns the database, the storage writer, the executor threads and the
//! supervisor thread that saves good nodes for a warm restart. It is
//! `Send + Sync` and never touches a core's state: cores publish their figures
//! and nodes into [`Published`] slots, and read the [`Control`] flags.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trawl_storage::{Batch, DhtNode, DiskState, Store, Writer, WriterHandle, WriterStats};

use super::core::{self, CoreSetup, Published};
use super::handover;
use super::sockets::{bind_group, Group};
use super::{CrawlError, CrawlerOptions};
use crate::crawl::owner;
use crate::crawl::scheduler::random_node_id;
use crate::ops::{CrawlSnapshot, FetchSnapshot, MemoryBreakdown, StorageSnapshot};
use crate::runtime::fetch::{FetchConfig, FetchCounters, FetcherContext};

/// Most nodes saved for a warm restart, over all cores.
const MAX_SAVED_NODES: usize = 100_000;
/// Lookup requests from a core's fetcher waiting for its scheduler; beyond it
/// a request is dropped and asked again at the entry's next retry.
const LOOKUP_REQUESTS: usize = 4_096;
/// How often the supervisor looks at the stop flag.
const SUPERVISOR_TICK: Duration = Duration::from_millis(50);
/// Shortest gap between two reads of RocksDB's memory properties (a snapshot
/// may be asked for far more often, e.g. by every metrics scrape).
const ROCKSDB_MEMORY_EVERY: Duration = Duration::from_secs(1);

/// Flags the handle sets and every core (and its fetcher) reads.
#[derive(Default)]
pub struct Control {
    pub stop: Arc<AtomicBool>,
    pub paused: Arc<AtomicBool>,
}

/// A running crawl. Dropping it shuts it down gracefully.
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use trawl_engine::runtime::crawl::{Crawler, CrawlerOptions};
///
/// // Every core, polite defaults, into a RocksDB database; no `bootstrap`
/// // here means none at all, so give the routers (a resolved address each).
/// let crawler = Crawler::start(CrawlerOptions {
///     db: "trawl-db".into(),
///     bootstrap: vec!["67.215.246.10:6881".parse().unwrap()],
///     ..CrawlerOptions::default()
/// })?;
/// crawler.wait_until(Instant::now() + Duration::from_secs(600));
/// let figures = crawler.shutdown();
/// println!("{} new infohashes", figures.storage.new_infohashes);
/// # Ok::<(), trawl_engine::runtime::crawl::CrawlError>(())
/// ```
///
/// The findings can go to a channel of your own instead of a database
/// ([`CrawlerOptions::sink`], `examples/crawl_to_sink.rs`).
pub struct Crawler {
    started: Instant,
    cores: usize,
    control: Arc<Control>,
    published: Vec<Arc<Published>>,
    /// One per core when fetching metadata.
    fetch: Vec<Arc<FetchCounters>>,
    executors: Mutex<Vec<glommio::ExecutorJoinHandle<()>>>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    /// `None` when the findings go to the caller's sink instead of a database.
    store: Option<Arc<Store>>,
    writer_handle: WriterHandle,
    /// `None` with a caller's sink, or once stopped.
    writer: Mutex<Option<Writer>>,
    stopping: AtomicBool,
    /// The writer's last counters, kept once it has shut down.
    final_writer: Mutex<Option<WriterStats>>,
    /// RocksDB's memory in bytes and when it was read.
    rocksdb_memory: Mutex<Option<(Instant, u64)>>,
    local_v4: SocketAddr,
    local_v6: Option<SocketAddr>,
    node_ids: Vec<[u8; 20]>,
    recv_buffer: usize,
    resumed_nodes: usize,
}

impl Crawler {
    /// Opens the database, binds every socket (so "port in use" and "database
    /// locked" are reported here), starts the writer and one executor per core.
    pub fn start(opts: CrawlerOptions) -> Result<Crawler, CrawlError> {
        let cores = match opts.cores {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        if opts.fetch_concurrency == 0 && opts.fetch {
            return Err(CrawlError::Config("--fetch-concurrency must be at least 1".into()));
        }
        let store = match opts.sink {
            Some(_) if opts.fetch => {
                return Err(CrawlError::Config(
                    "a crawl into a custom sink cannot fetch metadata: the fetch queue lives in the database".into(),
                ))
            }
            Some(_) => None,
            None => Some(Arc::new(Store::open(&opts.db, &opts.store)?)),
        };
        let saved = match &store {
            Some(store) => store.nodes()?,
            None => Vec::new(),
        };
        if let Some(store) = &store {
            check_disk_budget(store, opts.writer.max_disk)?;
        }

        let v4 = bind_group(SocketAddr::from((opts.bind_v4, opts.port)), cores, opts.recv_buffer)?;
        warn_small_buffer(&v4, opts.recv_buffer);
        let v6 = if opts.ipv6 {
            match bind_group(
                SocketAddr::from((opts.bind_v6, v4.local.port())),
                cores,
                opts.recv_buffer,
            ) {
                Ok(g) => Some(g),
                Err(err) => {
                    tracing::warn!(%err, "IPv6 unavailable; crawling over IPv4 only");
                    None
                }
            }
        } else {
            None
        };
        let local_v4 = v4.local;
        let local_v6 = v6.as_ref().map(|g| g.local);
        let recv_buffer = v4.recv_buffer;

        let (writer, writer_handle) = match (&store, &opts.sink) {
            (Some(store), _) => {
                let writer = Writer::spawn(store.clone(), opts.writer.clone())?;
                let handle = writer.handle();
                (Some(writer), handle)
            }
            (None, Some(sink)) => (None, sink.clone()),
            (None, None) => unreachable!("a crawl without a sink opens its store"),
        };
        let control = Arc::new(Control::default());
        let (senders, receivers) = handover::mesh(cores);

        let mut resume: Vec<Vec<DhtNode>> = vec![Vec::new(); cores];
        for n in &saved {
            resume[owner(n.addr, cores)].push(*n);
        }
        let resumed_nodes = saved.len();

        let mut seeder = SmallRng::seed_from_u64(opts.seed.unwrap_or_else(rand::random));
        let mut v4_sockets = v4.sockets.into_iter();
        let mut v6_sockets = v6.map(|g| g.sockets.into_iter());
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut published = Vec::with_capacity(cores);
        let mut executors = Vec::with_capacity(cores);
        let mut node_ids = Vec::with_capacity(cores);
        let mut fetch_counters = Vec::new();
        for (core, (inbound, resume)) in receivers.into_iter().zip(resume).enumerate() {
            let mut config = opts.crawl.clone();
            config.core = core;
            config.cores = cores;
            config.seed = seeder.gen();
            config.node_id = match config.external_ip {
                Some(ip) => crate::dht::id::secure(ip, &mut seeder),
                None => random_node_id(&mut seeder),
            };
            config.bootstrap = opts.bootstrap.clone();
            config.read_only = opts.read_only;
            config.allow_loopback = opts.allow_loopback;
            // BEP 32: ask for IPv6 nodes only when there is a socket to reach them.
            config.want.v6 &= v6_sockets.is_some();
            node_ids.push(config.node_id);
            let (lookup_tx, lookup_rx) = crossbeam_channel::bounded(LOOKUP_REQUESTS);
            let fetch = store.as_ref().filter(|_| opts.fetch).map(|store| {
                let counters = Arc::new(FetchCounters::default());
                fetch_counters.push(counters.clone());
                FetcherContext {
                    core,
                    cores,
                    store: store.clone(),
                    writer: writer_handle.clone(),
                    config: FetchConfig {
                        concurrency: opts.fetch_concurrency,
                        ..opts.fetch_config.clone()
                    },
                    counters,
                    stop: control.stop.clone(),
                    paused: control.paused.clone(),
                    allow_loopback: opts.allow_loopback,
                    lookups: Some(lookup_tx),
                }
            });
            let slot = Arc::new(Published::default());
            published.push(slot.clone());
            let setup = CoreSetup {
                config,
                v4: v4_sockets.next().expect("one IPv4 socket per core"),
                v6: v6_sockets.as_mut().and_then(|s| s.next()),
                inbound,
                senders: senders.clone(),
                resume,
                writer: writer_handle.clone(),
                batch_every: opts.storage_batch_every,
                batch_items: opts.storage_batch_items,
                save_nodes_every: opts.save_nodes_every,
                save_nodes_max: MAX_SAVED_NODES / cores,
                published: slot,
                control: control.clone(),
                fetch,
                lookup_requests: lookup_rx,
            };
            let placement = if opts.pin && core < online {
                Placement::Fixed(core)
            } else {
                Placement::Unbound
            };
            let spawned = LocalExecutorBuilder::new(placement)
                .name(&format!("trawl-crawl-{core}"))
                // Datagrams are copied out by recvmmsg; glommio's own buffers serve
                // only the rare slow-path send.
                .io_memory(1 << 20)
                .spawn(move || core::run(setup));
            match spawned {
                Ok(handle) => executors.push(handle),
                Err(e) => {
                    // Stop what started; their findings still reach the writer.
                    control.stop.store(true, Relaxed);
                    for h in executors {
                        let _ = h.join();
                    }
                    if let Some(writer) = writer {
                        writer.shutdown();
                    }
                    return Err(CrawlError::Executor(e.to_string()));
                }
            }
        }

        let supervisor = {
            let (control, published, writer) = (control.clone(), published.clone(), writer_handle.clone());
            let every = opts.save_nodes_every;
            std::thread::Builder::new()
                .name("trawl-crawl-nodes".into())
                .spawn(move || supervise(&control, &published, &writer, every))
                .map_err(|e| CrawlError::Executor(format!("node saver thread: {e}")))?
        };
        tracing::info!(
            cores,
            %local_v4,
            local_v6 = ?local_v6,
            recv_buffer,
            resumed_nodes,
            "crawl started"
        );
        Ok(Crawler {
            started: Instant::now(),
            cores,
            control,
            published,
            fetch: fetch_counters,
            executors: Mutex::new(executors),
            supervisor: Mutex::new(Some(supervisor)),
            store,
            writer_handle,
            writer: Mutex::new(writer),
            stopping: AtomicBool::new(false),
            final_writer: Mutex::new(None),
            rocksdb_memory: Mutex::new(None),
            local_v4,
            local_v6,
            node_ids,
            recv_buffer,
            resumed_nodes,
        })
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// The IPv4 address the cores share (with the real port when 0 was asked for).
    pub fn local_v4(&self) -> SocketAddr {
        self.local_v4
    }

    /// The IPv6 address, if IPv6 is crawled.
    pub fn local_v6(&self) -> Option<SocketAddr> {
        self.local_v6
    }

    /// Each core's node id (fresh for every run).
    pub fn node_ids(&self) -> &[[u8; 20]] {
        &self.node_ids
    }

    /// `SO_RCVBUF` as the kernel reports it for the IPv4 sockets.
    pub fn recv_buffer(&self) -> usize {
        self.recv_buffer
    }

    /// Nodes loaded from the database at start.
    pub fn resumed_nodes(&self) -> usize {
        self.resumed_nodes
    }

    /// The shared store, e.g. for read-side checks while the crawl runs;
    /// `None` for a crawl into a caller's sink.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// The crawl's figures now. Cheap (no core is interrupted; cores publish
    /// every 250 ms) and callable from any thread.
    pub fn snapshot(&self) -> CrawlSnapshot {
        let cores = self
            .published
            .iter()
            .map(|p| p.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        let final_writer = *self.final_writer.lock().unwrap_or_else(|e| e.into_inner());
        let running = final_writer.is_none();
        let w = final_writer.unwrap_or_else(|| self.writer_handle.stats());
        let storage = StorageSnapshot {
            new_infohashes: w.new_infohashes,
            duplicate_infohashes: w.duplicate_infohashes,
            torrents: w.torrents,
            commits: w.commits,
            commit_micros: w.commit_micros,
            channel_len: if running {
                self.writer_handle.channel_len() as u64
            } else {
                0
            },
            channel_cap: self.writer_handle.channel_cap() as u64,
            staging_backlog: self
                .store
                .as_ref()
                .and_then(|s| s.staging_len_estimate().ok())
                .unwrap_or(0),
            items_lost: w.items_lost,
            requeued_for_new_peers: w.requeued_for_new_peers,
            provisional_names: w.provisional_names,
            queue_abandoned: w.queue_abandoned,
            queue_expired: w.queue_expired,
            queue_dropped_full: w.queue_dropped_full,
            rocksdb_memory_bytes: self.rocksdb_memory_bytes(),
            disk_state: self.writer_handle.disk_state(),
            disk_used_bytes: self.writer_handle.disk_usage().0,
            disk_budget_bytes: self.writer_handle.disk_usage().1.unwrap_or(0),
            info_dicts_not_kept_budget: w.info_dicts_not_kept_budget,
            infohashes_refused_budget: w.infohashes_refused_budget,
            queue_refused_budget: w.queue_refused_budget,
            disk_full_pauses: w.disk_full_pauses,
        };
        CrawlSnapshot {
            uptime_secs: self.started.elapsed().as_secs_f64(),
            paused: self.control.paused.load(Relaxed),
            cores,
            fetch: merge_fetch(self.fetch.iter().map(|c| c.snapshot())),
            storage,
            memory: MemoryBreakdown::read(),
        }
    }

    /// RocksDB's memory (memtables, table readers, block cache), read at most
    /// every [`ROCKSDB_MEMORY_EVERY`]; 0 if it cannot be read.
    fn rocksdb_memory_bytes(&self) -> u64 {
        let Some(store) = &self.store else { return 0 };
        let mut last = self.rocksdb_memory.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *last {
            Some((at, bytes)) if now.duration_since(at) < ROCKSDB_MEMORY_EVERY => bytes,
            _ => {
                let bytes = store.memory_usage().map_or(0, |m| m.total());
                *last = Some((now, bytes));
                bytes
            }
        }
    }

    /// Stops (true) or resumes (false) sending queries. Replies still arrive and
    /// are stored; queries are still answered when not read-only.
    pub fn set_paused(&self, paused: bool) {
        self.control.paused.store(paused, Relaxed);
    }

    /// Sleeps until `deadline` or until the crawl stops by itself (every core
    /// ended); true if it was still running at the deadline.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(SUPERVISOR_TICK));
        }
    }

    fn stopped(&self) -> bool {
        self.published.iter().all(|p| p.done.load(Relaxed))
    }

    /// Graceful stop: cores stop querying and hand everything they hold to the
    /// writer, good nodes are saved, the writer commits everything and stops.
    /// Returns the final figures.
    pub fn shutdown(self) -> CrawlSnapshot {
        self.stop();
        self.snapshot()
    }

    fn stop(&self) {
        if self.stopping.swap(true, Relaxed) {
            return; // Already stopped.
        }
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.control.stop.store(true, Relaxed);
        let executors = std::mem::take(&mut *self.executors.lock().unwrap_or_else(|e| e.into_inner()));
        for h in executors {
            if let Err(err) = h.join() {
                tracing::error!(%err, "a crawl core ended with an error");
            }
        }
        if let Some(s) = self.supervisor.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = s.join();
        }
        // The cores published their last nodes on the way out.
        save_nodes(&self.published, &self.writer_handle);
        // A caller's sink sees the end when the last handle (ours) is dropped.
        let stats = writer.map_or_else(|| self.writer_handle.stats(), Writer::shutdown);
        *self.final_writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
    }
}

impl Drop for Crawler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sums the cores' fetch figures (failures by kind, in first-seen order).
fn merge_fetch(cores: impl Iterator<Item = FetchSnapshot>) -> FetchSnapshot {
    let mut total = FetchSnapshot::default();
    for s in cores {
        total.started += s.started;
        total.ok += s.ok;
        total.active += s.active;
        total.hashes_failed += s.hashes_failed;
        total.leases_released += s.leases_released;
        for (kind, n) in s.failed {
            match total.failed.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, sum)) => *sum += n,
                None => total.failed.push((kind, n)),
            }
        }
    }
    total
}

fn warn_small_buffer(group: &Group, requested: usize) {
    // Linux reports twice the usable size.
    if group.recv_buffer / 2 < requested {
        tracing::warn!(
            requested,
            granted = group.recv_buffer / 2,
            "socket receive buffer capped by net.core.rmem_max; raise it (scripts/tune-kernel.sh) to avoid drops"
        );
    }
}

/// Saves the cores' good nodes every `every` until the crawl stops.
fn supervise(control: &Control, published: &[Arc<Published>], writer: &WriterHandle, every: Duration) {
    let mut next = Instant::now() + every;
    while !control.stop.load(Relaxed) {
        std::thread::sleep(SUPERVISOR_TICK);
        if Instant::now() >= next {
            next += every;
            save_nodes(published, writer);
        }
    }
}

/// One batch with every core's nodes: the writer replaces the saved set with it.
fn save_nodes(published: &[Arc<Published>], writer: &WriterHandle) {
    let nodes: Vec<DhtNode> = published
        .iter()
        .flat_map(|p| p.nodes.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .collect();
    if nodes.is_empty() {
        // Nothing answered yet: keep what the previous run saved.
        return;
    }
    let count = nodes.len();
    let batch = Batch {
        nodes: Some(nodes),
        ..Batch::default()
    };
    match writer.send(batch) {
        Ok(()) => tracing::debug!(count, "saved nodes for a warm restart"),
        Err(err) => tracing::warn!(%err, "could not save nodes"),
    }
}

/// Refuses a budget the database already fills to its last step (nothing
/// new could be stored), warns about one past its first steps, and records
/// the budget for `trawl stats`.
fn check_disk_budget(store: &Store, budget: Option<u64>) -> Result<(), CrawlError> {
    store.record_disk_budget(budget)?;
    let Some(limit) = budget else { return Ok(()) };
    let used = store.dir_bytes()?;
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    match trawl_storage::budget::state_for(used, Some(limit), DiskState::Normal) {
        DiskState::Normal => Ok(()),
        DiskState::NoNewInfohashes | DiskState::DiskFull => Err(CrawlError::Config(format!(
            "--max-disk {:.2} GiB leaves no room: the database already holds {:.2} GiB ({:.0}%), and new infohashes stop at 98%; raise --max-disk (or compact the database with `trawl compact`)",
            gib(limit),
            gib(used),
            used as f64 * 100.0 / limit as f64
        ))),
        step => {
            tracing::warn!(
                used,
                budget = limit,
                "the database already fills {:.0}% of --max-disk: {}",
                used as f64 * 100.0 / limit as f64,
                step.describe()
            );
            Ok(())
        }
    }
}
