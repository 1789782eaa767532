//! The metadata fetcher's glommio runtime: takes infohashes due in the fetch
//! queue, connects to their peers over TCP and drives one [`Exchange`] per
//! connection, then reports torrents and failures to the storage writer.
//!
//! ```text
//! Store::take_due (small leased batches) ──> fetch_hash task per infohash (≤ concurrency)
//!   └─ up to K peers, one at a time: AddrFilter ─ per-IP limit ─ TcpStream ⇄ Exchange
//!        └─ verified info dict ─ info::parse ─ classify ──> results ─ flusher ──> WriterHandle
//! ```
//!
//! Owns: the bounded task set of one core, its per-IP connection counts, the
//! results waiting for the writer, and the [`FetchCounters`] it shares with
//! the status line.
//! Must not: hold protocol logic (that is [`Exchange`]), retry anything itself
//! (a failure goes to the queue, which reschedules with backoff), connect to
//! addresses [`AddrFilter`] refuses, or block the executor longer than one
//! small `take_due` call. It runs on the current executor: the crawl runtime
//! spawns [`run`] on each core, and [`spawn_thread`] runs it alone.
//!
//! At stop, the leases of entries it took but will not finish (the backlog not
//! started, fetches still running after the grace) are given back with
//! [`Store::release`], so the next run retries them at once instead of after
//! the lease (600 s by default).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use glommio::timer::{sleep, Timer};
use trawl_storage::{
    unix_now, Batch, FetchFailure, InfoHash, StagingEntry, Store, TorrentRecord, TorrentVersion, TrySend, UnixSecs,
    WriterHandle,
};

use crate::dht::addr_filter::AddrFilter;
use crate::metadata::classify::classify;
use crate::metadata::exchange::{self, Exchange, ExchangeConfig, Failure, Status};
use crate::metadata::info;
use crate::ops::FetchSnapshot;
use sha1::{Digest, Sha1};

/// How one core fetches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchConfig {
    /// Fetches (connections) running at once on this core.
    pub concurrency: usize,
    /// Dial timeout, whole-fetch deadline and size caps of each exchange.
    pub exchange: ExchangeConfig,
    /// Peers tried per infohash before it goes back to the queue (K).
    pub max_peers_per_hash: usize,
    /// Connections at once to one IP address from this core.
    pub per_ip_limit: usize,
    /// Queue entries leased per `take_due` call. The call runs on glommio's
    /// blocking pool, so its cost (a RocksDB seek and a write) is paid off the
    /// executor and amortised over the batch; a lease outlives the wait.
    pub take_batch: usize,
    /// Pause between queue polls when nothing is due.
    pub idle_poll: Duration,
    /// Longest a result waits before it is sent to the writer.
    pub flush_interval: Duration,
    /// Results that trigger an early send.
    pub flush_items: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            // Real peers are far away: a fetch is about four round trips, and a
            // dial to a peer that never accepts waits out its timeout, so the
            // rate is set by how many are in flight (bench/RESULTS.md, "Fetcher
            // at real latency": 2,000 in flight at 200 ms hold ~1,000 fetches/s
            // at about 60 KB each).
            concurrency: 1_000,
            exchange: ExchangeConfig::default(),
            max_peers_per_hash: 4,
            per_ip_limit: 2,
            take_batch: 512,
            idle_poll: Duration::from_millis(500),
            flush_interval: Duration::from_millis(100),
            flush_items: 512,
        }
    }
}

/// Outcomes beyond a single connection's [`Failure`]: why an infohash got no attempt.
pub const NO_PEERS: &str = "no_peers";
/// The info dict hashed right but is not a valid info dict.
pub const BAD_INFO: &str = "bad_info";
/// Every peer's IP stayed at `per_ip_limit` connections for two fetch deadlines.
pub const IP_BUSY: &str = "ip_busy";

/// Counters shared with the status line (summed over cores by the caller).
#[derive(Debug, Default)]
pub struct FetchCounters {
    /// Connections attempted.
    pub started: AtomicU64,
    /// Infohashes fetched, verified and sent to the writer.
    pub ok: AtomicU64,
    /// Connections running now.
    pub active: AtomicU64,
    /// Connection failures, indexed by [`Failure::index`].
    pub failed: [AtomicU64; Failure::ALL.len()],
    /// Infohashes with no usable peer (none known, all filtered or at their IP's limit).
    pub no_peers: AtomicU64,
    /// Verified info dicts that [`info::parse`] refused.
    pub bad_info: AtomicU64,
    /// Infohashes that went back to the queue after every peer failed.
    pub hashes_failed: AtomicU64,
    /// Results the writer refused because it was closed (lost; the lease retries them).
    pub results_lost: AtomicU64,
    /// Leases given back at stop: taken entries not started or not finished.
    pub leases_released: AtomicU64,
}

impl FetchCounters {
    pub fn snapshot(&self) -> FetchSnapshot {
        let mut failed: Vec<(&'static str, u64)> = Failure::ALL
            .iter()
            .map(|f| (f.as_str(), self.failed[f.index()].load(Relaxed)))
            .collect();
        failed.push((NO_PEERS, self.no_peers.load(Relaxed)));
        failed.push((BAD_INFO, self.bad_info.load(Relaxed)));
        FetchSnapshot {
            started: self.started.load(Relaxed),
            ok: self.ok.load(Relaxed),
            failed,
            active: self.active.load(Relaxed),
            hashes_failed: self.hashes_failed.load(Relaxed),
            leases_released: self.leases_released.load(Relaxed),
        }
    }
}

/// Everything [`run`] needs; one per core.
pub struct FetcherContext {
    pub core: usize,
    pub cores: usize,
    pub store: Arc<Store>,
    pub writer: WriterHandle,
    pub config: FetchConfig,
    pub counters: Arc<FetchCounters>,
    pub stop: Arc<AtomicBool>,
    pub paused: Arc<AtomicBool>,
    /// Let 127.0.0.0/8 and ::1 peers through (tests and benches).
    pub allow_loopback: bool,
    /// Where a hash that had no peers to try is sent for a `get_peers` lookup
    /// (this core's crawl scheduler); the peers it finds make the queue entry
    /// due at once. `None`: no lookups (the entry waits for peers from elsewhere).
    pub lookups: Option<crossbeam_channel::Sender<InfoHash>>,
}

/// How often the main loop looks at `stop` and `paused` while it waits.
const CONTROL_TICK: Duration = Duration::from_millis(50);
/// How long [`run`] waits at stop for running fetches before it gives their
/// leases (and the backlog's) back.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Receive buffer per connection: a whole metadata piece and its header in one read.
const READ_BUF_LEN: usize = 32 * 1024;
/// BitTorrent peer id prefix (Azureus style: client `TW`, version 0.1.0).
const PEER_ID_PREFIX: &[u8; 8] = b"-TW0100-";

/// State shared by one core's tasks (single-threaded: `Rc` and `RefCell`).
struct Shared {
    store: Arc<Store>,
    writer: WriterHandle,
    config: FetchConfig,
    counters: Arc<FetchCounters>,
    filter: AddrFilter,
    peer_id: [u8; 20],
    per_ip: RefCell<HashMap<IpAddr, usize, ahash::RandomState>>,
    results: RefCell<Batch>,
    result_items: Cell<usize>,
    /// Read buffers of finished connections, reused by new ones.
    buffers: RefCell<Vec<Vec<u8>>>,
    /// Leases of the fetches running now: infohash -> the lease's `due`.
    running: RefCell<HashMap<InfoHash, UnixSecs, ahash::RandomState>>,
    lookups: Option<crossbeam_channel::Sender<InfoHash>>,
}

/// Runs the fetcher on the current glommio executor until `ctx.stop` is set,
/// then sends what it holds to the writer.
pub async fn run(ctx: FetcherContext) {
    let mut peer_id = [0u8; 20];
    peer_id[..8].copy_from_slice(PEER_ID_PREFIX);
    let tail: [u8; 12] = rand::random();
    peer_id[8..].copy_from_slice(&tail);
    peer_id[8] = ctx.core as u8;
    let concurrency = ctx.config.concurrency.max(1);
    let shared = Rc::new(Shared {
        store: ctx.store,
        writer: ctx.writer,
        filter: AddrFilter::new(ctx.allow_loopback),
        peer_id,
        per_ip: RefCell::new(HashMap::default()),
        results: RefCell::new(Batch::default()),
        result_items: Cell::new(0),
        buffers: RefCell::new(Vec::new()),
        running: RefCell::new(HashMap::default()),
        counters: ctx.counters,
        config: ctx.config,
        lookups: ctx.lookups,
    });
    let slots = Rc::new(Semaphore::new(concurrency as u64));
    let flusher = glommio::spawn_local(flush_loop(shared.clone(), ctx.stop.clone()));

    // Leased entries waiting for a slot. The queue is refilled once the backlog
    // falls below half a batch, on glommio's blocking pool: `take_due` is a
    // blocking RocksDB call that contends with the writer for the queue lock,
    // and on a crawl core it must not stall the UDP loop or the running fetches.
    let take_batch = shared.config.take_batch.max(1);
    let mut backlog: VecDeque<StagingEntry> = VecDeque::with_capacity(take_batch);
    let mut due: Vec<StagingEntry> = Vec::with_capacity(take_batch);
    while !ctx.stop.load(Relaxed) {
        // Paused by the operator, or by the disk budget (or a full disk):
        // running fetches finish, no new ones are leased.
        if ctx.paused.load(Relaxed) || !shared.writer.disk_state().fetches() {
            sleep(CONTROL_TICK).await;
            continue;
        }
        if backlog.len() < take_batch.div_ceil(2) {
            let store = shared.store.clone();
            let mut buf = std::mem::take(&mut due);
            let (taken, buf) = glommio::executor()
                .spawn_blocking(move || {
                    let r = store.take_due(unix_now(), take_batch, &mut buf);
                    (r, buf)
                })
                .await;
            due = buf;
            if let Err(e) = taken {
                tracing::warn!("fetcher: taking due work failed: {e}");
                due.clear();
            }
            backlog.extend(due.drain(..));
            if backlog.is_empty() {
                idle(&ctx.stop, shared.config.idle_poll).await;
                continue;
            }
        }
        // Wait for a free slot, looking at `stop` now and then.
        let permit = match future::or(async { Some(slots.acquire_static_permit(1).await) }, async {
            Timer::new(CONTROL_TICK).await;
            None
        })
        .await
        {
            Some(Ok(p)) => p,
            Some(Err(_)) => break,
            None => continue,
        };
        let Some(entry) = backlog.pop_front() else { continue };
        shared.running.borrow_mut().insert(entry.info_hash, entry.due);
        let shared = shared.clone();
        glommio::spawn_local(async move {
            let h = entry.info_hash;
            fetch_hash(&shared, entry).await;
            shared.running.borrow_mut().remove(&h);
            drop(permit);
        })
        .detach();
    }

    // Give running fetches a moment; what does not finish is abandoned.
    let grace_end = Instant::now() + STOP_GRACE;
    while slots.available() < concurrency as u64 && Instant::now() < grace_end {
        sleep(Duration::from_millis(10)).await;
    }
    flusher.await;
    // Blocking, at stop only: no fetch task runs in between, so a result
    // flushed below and a lease released here never cross.
    release_leases(&shared, &backlog);
    flush(&shared, true);
}

/// Gives back the leases of the backlog and of fetches still running, so the
/// next run takes them at once; a result already sent keeps its entry's new state.
fn release_leases(shared: &Shared, backlog: &VecDeque<StagingEntry>) {
    let mut leases: Vec<(InfoHash, UnixSecs)> = backlog.iter().map(|e| (e.info_hash, e.due)).collect();
    leases.extend(shared.running.borrow().iter().map(|(h, due)| (*h, *due)));
    if leases.is_empty() {
        return;
    }
    match shared.store.release(&leases, unix_now()) {
        Ok(n) => {
            shared.counters.leases_released.fetch_add(n as u64, Relaxed);
            tracing::debug!("fetcher: gave back {n} of {} leases at stop", leases.len());
        }
        Err(e) => tracing::warn!("fetcher: giving back leases failed (they expire on their own): {e}"),
    }
}

/// Sleeps `total`, waking early on stop.
async fn idle(stop: &AtomicBool, total: Duration) {
    let end = Instant::now() + total;
    while !stop.load(Relaxed) && Instant::now() < end {
        sleep(CONTROL_TICK.min(total)).await;
    }
}

async fn flush_loop(shared: Rc<Shared>, stop: Arc<AtomicBool>) {
    while !stop.load(Relaxed) {
        sleep(shared.config.flush_interval).await;
        flush(&shared, false);
    }
}

/// Sends the collected results. Without `block`, a full channel keeps them for
/// the next round instead of stalling the executor.
fn flush(shared: &Shared, block: bool) {
    if shared.result_items.get() == 0 {
        return;
    }
    let batch = std::mem::take(&mut *shared.results.borrow_mut());
    shared.result_items.set(0);
    let refused = if block {
        shared.writer.send(batch).err().map(|_| None)
    } else {
        match shared.writer.try_send(batch) {
            Ok(()) => None,
            Err(TrySend::Full(b)) => Some(Some(b)),
            Err(TrySend::Closed(_)) => Some(None),
        }
    };
    match refused {
        None => {}
        Some(Some(back)) => {
            let mut r = shared.results.borrow_mut();
            shared
                .result_items
                .set(back.torrents.len() + back.failures.len() + r.torrents.len() + r.failures.len());
            r.torrents.extend(back.torrents);
            r.failures.extend(back.failures);
        }
        Some(None) => {
            shared.counters.results_lost.fetch_add(1, Relaxed);
            tracing::warn!("fetcher: the writer is closed; results dropped (their leases retry them)");
        }
    }
}

fn push_result(shared: &Shared, f: impl FnOnce(&mut Batch)) {
    f(&mut shared.results.borrow_mut());
    shared.result_items.set(shared.result_items.get() + 1);
    if shared.result_items.get() >= shared.config.flush_items {
        flush(shared, false);
    }
}

/// Holds one of an IP's connection slots; gives it back on drop.
struct IpSlot<'a> {
    shared: &'a Shared,
    ip: IpAddr,
}

impl<'a> IpSlot<'a> {
    fn acquire(shared: &'a Shared, ip: IpAddr) -> Option<Self> {
        let mut map = shared.per_ip.borrow_mut();
        let n = map.entry(ip).or_insert(0);
        if *n >= shared.config.per_ip_limit.max(1) {
            return None;
        }
        *n += 1;
        Some(IpSlot { shared, ip })
    }
}

impl<'a> IpSlot<'a> {
    /// Waits up to `limit` for a slot of a busy IP.
    async fn wait(shared: &'a Shared, ip: IpAddr, limit: Duration) -> Option<Self> {
        let end = Instant::now() + limit;
        loop {
            if let Some(slot) = IpSlot::acquire(shared, ip) {
                return Some(slot);
            }
            if Instant::now() >= end {
                return None;
            }
            sleep(CONTROL_TICK).await;
        }
    }
}

impl Drop for IpSlot<'_> {
    fn drop(&mut self) {
        let mut map = self.shared.per_ip.borrow_mut();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Tries up to K peers of one infohash, newest first, and reports the outcome.
/// A peer whose IP already has `per_ip_limit` connections from this core
/// (a seeder of several hashes) is tried after the others, once a slot is
/// free, rather than counted as a failure.
async fn fetch_hash(shared: &Shared, entry: StagingEntry) {
    let max = shared.config.max_peers_per_hash.max(1);
    let mut tried = 0;
    let mut kinds: Vec<&'static str> = Vec::new();
    // (peer, already found busy once): a busy one goes to the back and is
    // waited for when its turn comes again.
    let mut queue: VecDeque<(SocketAddr, bool)> = entry
        .peers
        .iter()
        .rev()
        .filter(|p| shared.filter.allows(**p))
        .map(|&p| (p, false))
        .collect();
    while let Some((peer, was_busy)) = queue.pop_front() {
        if tried >= max {
            break;
        }
        let slot = if was_busy {
            IpSlot::wait(shared, peer.ip(), shared.config.exchange.deadline * 2).await
        } else {
            IpSlot::acquire(shared, peer.ip())
        };
        let Some(slot) = slot else {
            if was_busy {
                kinds.push(IP_BUSY);
            } else {
                queue.push_back((peer, true));
            }
            continue;
        };
        tried += 1;
        match try_peer(shared, &entry.info_hash, peer, slot, &mut kinds).await {
            Tried::Stored => return,
            Tried::BadInfo => break,
            Tried::Failed => {}
        }
    }
    if tried == 0 && kinds.is_empty() {
        shared.counters.no_peers.fetch_add(1, Relaxed);
        kinds.push(NO_PEERS);
        // An imported hash, or one whose peers all failed before: look for
        // peers. A full channel drops the request; the next retry asks again.
        if let Some(tx) = &shared.lookups {
            let _ = tx.try_send(entry.info_hash);
        }
    }
    shared.counters.hashes_failed.fetch_add(1, Relaxed);
    let failure = FetchFailure {
        info_hash: entry.info_hash,
        error: kinds.join(","),
        at: unix_now(),
    };
    push_result(shared, |b| b.failures.push(failure));
}

enum Tried {
    Stored,
    /// The info dict hashed right but does not parse: every peer would send it alike.
    BadInfo,
    Failed,
}

/// One peer's attempt, holding its IP's slot.
async fn try_peer(
    shared: &Shared,
    info_hash: &InfoHash,
    peer: SocketAddr,
    _slot: IpSlot<'_>,
    kinds: &mut Vec<&'static str>,
) -> Tried {
    match attempt(shared, info_hash, peer).await {
        Ok(raw) => match record(info_hash, raw) {
            Ok(torrent) => {
                shared.counters.ok.fetch_add(1, Relaxed);
                push_result(shared, |b| b.torrents.push(torrent));
                Tried::Stored
            }
            Err(e) => {
                tracing::debug!("fetcher: {e}");
                shared.counters.bad_info.fetch_add(1, Relaxed);
                kinds.push(BAD_INFO);
                Tried::BadInfo
            }
        },
        Err(f) => {
            if !kinds.contains(&f.as_str()) {
                kinds.push(f.as_str());
            }
            Tried::Failed
        }
    }
}

/// Builds the stored record from a verified info dict.
/// A hybrid fetched by its truncated v2 hash is stored under its v1 hash (the
/// SHA-1 of the same dict), so it is one torrent whichever hash found it; a
/// v2-only torrent keeps the truncated v2 hash it was fetched by.
fn record(info_hash: &[u8; 20], raw: Vec<u8>) -> Result<TorrentRecord, info::InfoError> {
    let parsed = info::parse(&raw)?;
    let (version, v2_hash) = match parsed.version {
        info::MetaVersion::V1 => (TorrentVersion::V1, None),
        info::MetaVersion::V2 => (TorrentVersion::V2, Some(exchange::sha256(&raw))),
        info::MetaVersion::Hybrid => (TorrentVersion::Hybrid, Some(exchange::sha256(&raw))),
    };
    // A hybrid is kept under its v1 hash whichever hash found it (the writer
    // keeps the other as an alias); a v2-only torrent under the hash it was
    // fetched by, its truncated SHA-256.
    let key = match version {
        TorrentVersion::Hybrid => Sha1::digest(&raw).into(),
        _ => *info_hash,
    };
    let (class, content_type) = classify(&parsed);
    let files = parsed
        .files
        .iter()
        .map(|f| trawl_storage::FileEntry {
            path: f.display_path().to_vec(),
            length: f.length,
        })
        .collect();
    Ok(TorrentRecord {
        info_hash: key,
        version,
        v2_hash,
        name: parsed.display_name_bytes().to_vec(),
        files,
        total_size: parsed.total_size,
        piece_length: parsed.piece_length,
        private: parsed.private,
        class,
        content_type,
        fetched_at: unix_now(),
        scrape: None,
        info_dict: Some(raw),
    })
}

/// Counts one connection as active for as long as it lives.
struct Active<'a>(&'a FetchCounters);

impl<'a> Active<'a> {
    fn start(c: &'a FetchCounters) -> Self {
        c.started.fetch_add(1, Relaxed);
        c.active.fetch_add(1, Relaxed);
        Active(c)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// One connection: dial, then move bytes between the socket and the exchange
/// until it is final.
async fn attempt(shared: &Shared, info_hash: &[u8; 20], peer: SocketAddr) -> Result<Vec<u8>, Failure> {
    let _active = Active::start(&shared.counters);
    let cfg = shared.config.exchange;
    let mut ex = Exchange::new(Instant::now(), *info_hash, shared.peer_id, cfg);
    let outcome =
        match TcpStream::connect_timeout(peer, cfg.dial_timeout.min(cfg.deadline).max(Duration::from_millis(1)))
            .await
            .map_err(std::io::Error::from)
        {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                ex.handle_timeout(Instant::now().max(ex.next_timeout().unwrap_or_else(Instant::now)))
            }
            Err(_) => ex.handle_dial_error(),
            Ok(mut stream) => {
                ex.handle_connected(Instant::now());
                let mut buf = shared
                    .buffers
                    .borrow_mut()
                    .pop()
                    .unwrap_or_else(|| vec![0; READ_BUF_LEN]);
                let status = converse(&mut ex, &mut stream, &mut buf).await;
                shared.buffers.borrow_mut().push(buf);
                abort_on_close(&stream);
                drop(stream);
                status
            }
        };
    match outcome {
        Status::Done => Ok(ex.take_metadata()),
        Status::Failed(f) => {
            shared.counters.failed[f.index()].fetch_add(1, Relaxed);
            Err(f)
        }
        // `converse` returns only final states; count anything else as a close.
        Status::Pending => {
            shared.counters.failed[Failure::Closed.index()].fetch_add(1, Relaxed);
            Err(Failure::Closed)
        }
    }
}

async fn converse(ex: &mut Exchange, stream: &mut TcpStream, buf: &mut [u8]) -> Status {
    loop {
        if !ex.pending().is_empty() {
            let wait = until(ex.next_timeout());
            let sent = future::or(async { Some(stream.write_all(ex.pending()).await) }, async {
                Timer::new(wait).await;
                None
            })
            .await;
            match sent {
                Some(Ok(())) => ex.clear_pending(),
                Some(Err(_)) => return ex.handle_closed(),
                None => return ex.handle_timeout(Instant::now()),
            }
        }
        if ex.status() != Status::Pending {
            return ex.status();
        }
        let wait = until(ex.next_timeout());
        let read = future::or(async { Some(stream.read(buf).await) }, async {
            Timer::new(wait).await;
            None
        })
        .await;
        let now = Instant::now();
        let status = match read {
            Some(Ok(0)) | Some(Err(_)) => ex.handle_closed(),
            Some(Ok(n)) => ex.handle_input(now, &buf[..n]),
            None => ex.handle_timeout(now),
        };
        // A final status returns at once, without a last flush: nothing we would send matters then.
        if status != Status::Pending {
            return status;
        }
    }
}

fn until(at: Option<Instant>) -> Duration {
    at.map_or(Duration::ZERO, |t| t.saturating_duration_since(Instant::now()))
}

/// Closes with a reset instead of a FIN: thousands of short connections a second
/// would otherwise leave as many sockets in TIME_WAIT on our side.
fn abort_on_close(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized `linger` value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// A fetcher running alone on its own thread (see [`spawn_thread`]).
pub struct FetcherThread(glommio::ExecutorJoinHandle<()>);

impl FetcherThread {
    /// Waits for [`run`] to return (set the context's `stop` first).
    pub fn join(self) -> std::io::Result<()> {
        self.0.join().map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// Runs [`run`] alone on a new thread with its own glommio executor, pinned to
/// `cpu` when given (benches and tests; the crawl runtime spawns [`run`] itself).
pub fn spawn_thread(ctx: FetcherContext, cpu: Option<usize>) -> std::io::Result<FetcherThread> {
    let placement = match cpu {
        Some(cpu) => glommio::Placement::Fixed(cpu),
        None => glommio::Placement::Unbound,
    };
    glommio::LocalExecutorBuilder::new(placement)
        .name("trawl-fetch")
        .spawn(move || run(ctx))
        .map(FetcherThread)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::exchange::truncated_v2;

    const HYBRID: &[u8] = b"d9:file treed1:xd0:d6:lengthi7eeee6:lengthi7e12:meta versioni2e4:name1:x\
12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    const V2: &[u8] = b"d9:file treed1:xd0:d6:lengthi7e11:pieces root32:rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrreee\
12:meta versioni2e4:name1:x12:piece lengthi16384ee";

    #[test]
    fn a_hybrid_is_stored_under_its_v1_hash_whichever_hash_fetched_it() {
        let v1: [u8; 20] = Sha1::digest(HYBRID).into();
        let by_v2 = record(&truncated_v2(HYBRID), HYBRID.to_vec()).unwrap();
        assert_eq!(by_v2.info_hash, v1);
        assert_eq!(by_v2.info_dict.as_deref(), Some(HYBRID));
        assert_eq!(record(&v1, HYBRID.to_vec()).unwrap().info_hash, v1);
    }

    #[test]
    fn a_v2_only_torrent_keeps_its_truncated_v2_hash() {
        let v2 = truncated_v2(V2);
        let t = record(&v2, V2.to_vec()).unwrap();
        assert_eq!(t.info_hash, v2);
        assert_eq!(t.total_size, 7);
    }
}
