//! One crawl core on its own glommio executor: moves datagrams and timers
//! between its sockets and its [`Scheduler`], nodes between it and the other
//! cores, and findings from it to storage.
//!
//! Owns the scheduler, the core's sockets (one per family), its send batches,
//! its [`Sink`] and [`Outbox`]. Must not make a protocol decision (everything
//! it knows of KRPC is the scheduler's API) and must not block the executor
//! except at shutdown, when findings are handed to the writer with a blocking
//! send.
//!
//! ```text
//! io task (per family): recvmmsg batch ─▶ handle_datagram × n ─▶ flush
//! fetcher task:         runtime::fetch::run (its own TCP connections, Store::take_due)
//! tick task:            sleep until next_timeout (≤ TICK) ─▶ pause flag, inbound handovers,
//!                       handle_timeout ─▶ flush ─▶ publish snapshot / nodes ─▶ stop?
//! flush:                poll_transmit ─▶ sendmmsg (v4 or v6 batch)
//!                       Output ─▶ Sink (storage, try_send) and Outbox (other cores)
//!                       Sink full ─▶ set_downstream_full (sampling pauses)
//! ```

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use glommio::net::UdpSocket;
use trawl_storage::{unix_now, DhtNode, WriterHandle};

use super::handover::{CoreMsg, Outbox};
use super::sink::Sink;
use super::Control;
use crate::codec::compact::CompactNode;
use crate::crawl::table::Bep51;
use crate::crawl::{CrawlConfig, Scheduler};
use crate::ops::CoreSnapshot;
use crate::runtime::fetch::{self, FetcherContext};
use crate::runtime::socket::{Batch, MAX_DATAGRAM};

/// Longest the tick task sleeps: bounds how late inbound handovers, the pause
/// flag, the stop flag and a waiting storage batch are looked at.
const TICK: Duration = Duration::from_millis(10);
/// How often the core's figures are published for [`super::Crawler::snapshot`].
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Inbound handovers taken per tick, so a flood of them cannot starve the sockets.
const HANDOVERS_PER_TICK: usize = 8192;

/// What a core publishes for other threads to read.
#[derive(Default)]
pub struct Published {
    pub snapshot: Mutex<CoreSnapshot>,
    /// The core's good nodes, for the warm-restart save.
    pub nodes: Mutex<Vec<DhtNode>>,
    /// Set when the core's loop has ended (normally or by a panic).
    pub done: AtomicBool,
}

/// Marks the core done however its loop ends.
struct DoneGuard(Arc<Published>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.done.store(true, Relaxed);
    }
}

/// Everything a core needs, built on the caller's thread and moved into the executor.
pub struct CoreSetup {
    pub config: CrawlConfig,
    pub v4: socket2::Socket,
    pub v6: Option<socket2::Socket>,
    pub inbound: Receiver<CoreMsg>,
    pub senders: Vec<Sender<CoreMsg>>,
    /// Stored nodes this core owns, from the previous run, with their sampling state.
    pub resume: Vec<DhtNode>,
    pub writer: WriterHandle,
    pub batch_every: Duration,
    pub batch_items: usize,
    pub save_nodes_every: Duration,
    /// Most nodes published for saving.
    pub save_nodes_max: usize,
    pub published: Arc<Published>,
    pub control: Arc<Control>,
    /// The metadata fetcher to run beside the crawl on this executor.
    pub fetch: Option<FetcherContext>,
    /// Hashes the fetcher had no peers for, to look up.
    pub lookup_requests: Receiver<[u8; 20]>,
}

#[derive(Default)]
struct IoErrors {
    send: u64,
    recv: u64,
    /// Datagrams for a family this core has no socket for.
    no_socket: u64,
}

struct State {
    sched: Scheduler,
    tx4: Batch,
    tx6: Batch,
    scratch: Vec<u8>,
    sink: Sink,
    outbox: Outbox,
    inbound: Receiver<CoreMsg>,
    handovers_in: u64,
    errors: IoErrors,
}

/// The sockets, as raw fds for the batch calls and glommio sockets for waiting.
struct Sockets {
    fd4: RawFd,
    v4: UdpSocket,
    fd6: Option<RawFd>,
    v6: Option<UdpSocket>,
}

struct Shared {
    state: RefCell<State>,
    sockets: Sockets,
}

/// Runs one core until the stop flag is set, then hands everything it holds to
/// the writer and publishes its last snapshot and nodes.
pub async fn run(setup: CoreSetup) {
    let _done = DoneGuard(setup.published.clone());
    // Wall clock first: a saved deadline converted against it is never early.
    let unix = unix_clock();
    let now = Instant::now();
    let mut sched = Scheduler::new(setup.config, now);
    for n in setup.resume {
        let node = CompactNode { id: n.id, addr: n.addr };
        sched.add_saved_node(now, unix, node, u64::from(n.next_sample), n.bep51);
    }
    let fd4 = setup.v4.as_raw_fd();
    let fd6 = setup.v6.as_ref().map(|s| s.as_raw_fd());
    // glommio is built on an older socket2, so descriptors cross as raw fds.
    // SAFETY: each fd comes from `into_raw_fd`, so glommio becomes its only owner.
    let v4 = unsafe { UdpSocket::from_raw_fd(setup.v4.into_raw_fd()) };
    let v6 = setup.v6.map(|s| unsafe { UdpSocket::from_raw_fd(s.into_raw_fd()) });
    let shared = Rc::new(Shared {
        state: RefCell::new(State {
            sched,
            tx4: Batch::new(),
            tx6: Batch::new(),
            scratch: Vec::with_capacity(MAX_DATAGRAM),
            sink: Sink::new(
                setup.writer,
                setup.batch_every,
                setup.batch_items,
                setup.fetch.is_some(),
            ),
            outbox: Outbox::new(setup.senders),
            inbound: setup.inbound,
            handovers_in: 0,
            errors: IoErrors::default(),
        }),
        sockets: Sockets { fd4, v4, fd6, v6 },
    });

    // Dropping a glommio task handle cancels the task, which is how they stop.
    let io4 = glommio::spawn_local(io_task(shared.clone(), false));
    let io6 = shared
        .sockets
        .v6
        .is_some()
        .then(|| glommio::spawn_local(io_task(shared.clone(), true)));

    // It watches the same stop flag and flushes its own results on the way out.
    let fetcher = setup.fetch.map(|ctx| glommio::spawn_local(fetch::run(ctx)));

    let mut next_publish = Instant::now();
    let mut next_save = Instant::now() + setup.save_nodes_every;
    loop {
        let now = Instant::now();
        let wake = shared
            .state
            .borrow()
            .sched
            .next_timeout()
            .map_or(now + TICK, |t| t.min(now + TICK));
        glommio::timer::sleep(wake.saturating_duration_since(now)).await;
        let stop = setup.control.stop.load(Relaxed);
        let now = Instant::now();
        {
            let mut guard = shared.state.borrow_mut();
            let st = &mut *guard;
            st.sched.set_paused(stop || setup.control.paused.load(Relaxed));
            for msg in st.inbound.try_iter().take(HANDOVERS_PER_TICK) {
                st.handovers_in += 1;
                match msg {
                    CoreMsg::Node(node) => {
                        st.sched.add_node(now, node);
                    }
                    CoreMsg::Lookup(m) => st.sched.handle_lookup_msg(now, m),
                }
            }
            for info_hash in setup.lookup_requests.try_iter().take(HANDOVERS_PER_TICK) {
                st.sched.look_up(now, info_hash);
            }
            st.sched.handle_timeout(now);
        }
        flush(&shared, now).await;
        if now >= next_publish {
            next_publish = now + PUBLISH_EVERY;
            publish_snapshot(&shared.state.borrow(), &setup.published);
        }
        if now >= next_save {
            next_save = now + setup.save_nodes_every;
            publish_nodes(&shared.state.borrow(), &setup.published, setup.save_nodes_max);
        }
        if stop {
            break;
        }
    }
    drop(io4);
    drop(io6);
    if let Some(f) = fetcher {
        f.await;
    }
    let mut st = shared.state.borrow_mut();
    let st = &mut *st;
    drain_output(st, Instant::now());
    st.sink.flush_blocking();
    publish_snapshot(st, &setup.published);
    publish_nodes(st, &setup.published, setup.save_nodes_max);
    let (sink, outbox) = (st.sink.stats(), st.outbox.stats());
    tracing::debug!(
        core = st.sched.core(),
        batches = sink.batches_sent,
        writer_full = sink.writer_full,
        items_lost = sink.items_lost,
        handovers_deferred = outbox.deferred,
        handovers_dropped = outbox.dropped,
        "crawl core stopped"
    );
}

async fn io_task(shared: Rc<Shared>, v6: bool) {
    let (fd, socket) = match (v6, shared.sockets.fd6, shared.sockets.v6.as_ref()) {
        (true, Some(fd), Some(s)) => (fd, s),
        _ => (shared.sockets.fd4, &shared.sockets.v4),
    };
    let mut rx = Batch::new();
    let mut probe = [0u8; 1];
    loop {
        let n = match rx.recv(fd) {
            Ok(n) => n,
            Err(err) => {
                shared.state.borrow_mut().errors.recv += 1;
                tracing::debug!(%err, "recvmmsg failed");
                0
            }
        };
        if n == 0 {
            // Wait for readiness without consuming: the next recvmmsg takes the batch.
            if let Err(err) = socket.peek_from(&mut probe).await {
                tracing::warn!(%err, "waiting for datagrams failed");
                glommio::timer::sleep(TICK).await;
            }
            continue;
        }
        let now = Instant::now();
        {
            let mut state = shared.state.borrow_mut();
            for i in 0..n {
                if let Some((from, bytes)) = rx.get(i) {
                    state.sched.handle_datagram(now, from, bytes);
                }
            }
        }
        flush(&shared, now).await;
        glommio::yield_if_needed().await;
    }
}

/// Sends everything the scheduler has queued, then moves its findings to the
/// sink and its handovers to the outbox.
async fn flush(shared: &Shared, now: Instant) {
    loop {
        let mut slow: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let more = {
            let mut guard = shared.state.borrow_mut();
            let st = &mut *guard;
            st.tx4.clear();
            st.tx6.clear();
            let mut more = false;
            while let Some(to) = st.sched.poll_transmit(now, &mut st.scratch) {
                let batch = match (to.is_ipv4(), shared.sockets.fd6) {
                    (true, _) => &mut st.tx4,
                    (false, Some(_)) => &mut st.tx6,
                    (false, None) => {
                        st.errors.no_socket += 1;
                        continue;
                    }
                };
                if !batch.push(to, &st.scratch) {
                    tracing::debug!(len = st.scratch.len(), "datagram longer than a slot, dropped");
                }
                if batch.is_full() {
                    more = true;
                    break;
                }
            }
            send_batch(&mut st.tx4, shared.sockets.fd4, &mut st.errors, &mut slow);
            if let Some(fd6) = shared.sockets.fd6 {
                send_batch(&mut st.tx6, fd6, &mut st.errors, &mut slow);
            }
            drain_output(st, now);
            more
        };
        for (to, bytes) in slow {
            let socket = match (to.is_ipv4(), shared.sockets.v6.as_ref()) {
                (false, Some(v6)) => v6,
                _ => &shared.sockets.v4,
            };
            if let Err(err) = socket.send_to(&bytes, to).await {
                tracing::debug!(%err, %to, "send failed");
            }
        }
        if !more {
            break;
        }
    }
}

/// `sendmmsg` without blocking; what the kernel did not take goes to `slow`
/// (its send buffer is full: the caller waits for it through io_uring, rare).
fn send_batch(batch: &mut Batch, fd: RawFd, errors: &mut IoErrors, slow: &mut Vec<(SocketAddr, Vec<u8>)>) {
    let mut sent = 0;
    while sent < batch.len() {
        match batch.send(fd, sent) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(err) => {
                // One bad destination (e.g. EINVAL) must not block the rest.
                errors.send += 1;
                tracing::debug!(%err, "sendmmsg failed, skipping one datagram");
                sent += 1;
            }
        }
    }
    for i in sent..batch.len() {
        if let Some((to, bytes)) = batch.queued(i) {
            slow.push((to, bytes.to_vec()));
        }
    }
    batch.clear();
}

fn drain_output(st: &mut State, now: Instant) {
    let out = st.sched.output();
    st.outbox.push_and_flush(&mut out.handovers, &mut out.lookups);
    st.sink.take(now, unix_now(), out);
    st.sink.offer_if_due(now);
    let full = st.sink.backpressure();
    st.sched.set_downstream_full(full);
}

fn publish_snapshot(st: &State, published: &Published) {
    let s = st.sched.stats();
    let lookups = st.sched.peer_search().stats();
    let (mut yes, mut no, mut unknown) = (0, 0, 0);
    for (_, n) in st.sched.node_table().iter() {
        match n.bep51 {
            Bep51::Yes => yes += 1,
            Bep51::No => no += 1,
            Bep51::Unknown => unknown += 1,
        }
    }
    let snap = CoreSnapshot {
        core: st.sched.core(),
        datagrams_in: s.datagrams_in,
        datagrams_out: s.datagrams_out,
        decode_errors: s.decode_errors,
        filtered: s.filtered,
        unmatched: s.unmatched,
        timeouts: s.timeouts,
        send_errors: st.errors.send + st.errors.no_socket,
        recv_errors: st.errors.recv,
        new_hashes: s.new_hashes,
        duplicate_hashes: s.duplicate_hashes,
        samples_sent: s.samples_sent,
        find_nodes_sent: s.find_nodes_sent,
        bootstrap_sent: s.bootstrap_sent,
        bootstrap_answered: s.bootstrap_answered,
        replies_received: s.replies_received,
        get_peers_sent: s.get_peers_sent,
        scrapes_sent: s.scrapes_sent,
        lookup_queries_sent: s.lookup_queries_sent,
        replies_sent: s.replies_sent,
        queries_answered: s.queries_answered,
        query_errors_sent: s.query_errors_sent,
        queries_ignored: s.queries_ignored,
        harvested_get_peers: s.harvested_get_peers,
        harvested_announces: s.harvested_announces,
        announced_peers: s.announced_peers,
        verify_pings_sent: s.verify_pings_sent,
        peers_found: s.peers_found,
        peers_rejected: s.peers_rejected,
        lookups_started: lookups.lookups_started,
        lookups_found: lookups.lookups_found,
        lookups_empty: lookups.lookups_empty,
        lookups_given_up: lookups.lookups_given_up,
        lookups_dropped: lookups.lookups_dropped,
        harvest_lookups_skipped: s.harvest_lookups_skipped,
        lookups_running: st.sched.peer_search().running() as u64,
        lookups_waiting: st.sched.peer_search().waiting() as u64,
        known_nodes: st.sched.known_nodes() as u64,
        nodes_bep51_yes: yes,
        nodes_bep51_no: no,
        nodes_bep51_unknown: unknown,
        in_flight: st.sched.in_flight() as u64,
        next_sample_ms: st
            .sched
            .next_sample_in(std::time::Instant::now())
            .map_or(u64::MAX, |d| d.as_millis() as u64),
        backlogged: st.sched.backlogged(),
        marked_unreachable: s.marked_unreachable,
        handovers_out: st.outbox.stats().sent,
        handovers_in: st.handovers_in,
        handover_queue: st.inbound.len() as u64,
        handover_queue_cap: st.inbound.capacity().unwrap_or(0) as u64,
    };
    *published.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snap;
}

/// Publishes the nodes worth resuming from, at most `max`: those that answered
/// (BEP 51 ones first), then any other this run may not sample again yet, each
/// with its next allowed sample time so a restart keeps the node's interval.
fn publish_nodes(st: &State, published: &Published, max: usize) {
    let now = Instant::now();
    let unix = unix_clock();
    let mut ranked: Vec<(u8, DhtNode)> = st
        .sched
        .node_table()
        .iter()
        .filter_map(|(_, n)| {
            let next_sample = st.sched.next_sample_unix(n, now, unix);
            let rank = match n.bep51 {
                _ if n.failures > 0 => 2,
                Bep51::Yes => 0,
                Bep51::No => 1,
                Bep51::Unknown => 2,
            };
            let node = DhtNode {
                id: n.id,
                addr: n.addr,
                next_sample: u32::try_from(next_sample).unwrap_or(u32::MAX),
                bep51: match n.bep51 {
                    Bep51::Yes => Some(true),
                    Bep51::No => Some(false),
                    Bep51::Unknown => None,
                },
            };
            (rank < 2 || next_sample > 0).then_some((rank, node))
        })
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    let nodes: Vec<DhtNode> = ranked.into_iter().take(max).map(|(_, n)| n).collect();
    *published.nodes.lock().unwrap_or_else(|p| p.into_inner()) = nodes;
}

/// The wall clock as a duration since the unix epoch (zero if set before it).
fn unix_clock() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
