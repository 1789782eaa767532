//! The executor side of a running node: three glommio tasks on one thread that
//! move datagrams and timers between the UDP socket and the I/O-free [`Node`].
//!
//! Owns the node, the socket, the reusable batches and the map from lookup ids to
//! the callers' peer sinks. It must not make a protocol decision: it calls
//! `handle_datagram`, `handle_timeout`, the request methods and `poll_transmit`,
//! and forwards `poll_event` output.
//!
//! ```text
//! io task:      peek (io_uring, waits) ─▶ recvmmsg batch ─▶ handle_datagram × n ─▶ flush
//! timer task:   sleep until next_timeout (or an earlier re-arm) ─▶ handle_timeout ─▶ flush
//! control task: wake-up datagram (loopback UDP) ─▶ drain commands ─▶ lookup/announce/stats ─▶ flush
//! flush:        poll_transmit into a batch ─▶ sendmmsg; events ─▶ peer sinks
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;
use futures_lite::future;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::UdpSocket;

use super::peers::{Outcome, PeerSink};
use crate::dht::{Event, LookupId, Node, NodeStats};
use crate::runtime::socket::Batch;

/// What a [`super::NodeHandle`] asks of the executor.
pub(crate) enum Command {
    Lookup {
        info_hash: [u8; 20],
        sink: PeerSink,
    },
    Announce {
        info_hash: [u8; 20],
        port: Option<u16>,
        sink: PeerSink,
    },
    FindNode {
        target: [u8; 20],
        sink: PeerSink,
    },
    Stats {
        reply: crossbeam_channel::Sender<NodeStats>,
    },
    Shutdown,
}

/// A request's sink, and which event ends it.
struct Subscriber {
    sink: PeerSink,
    ends_on_announce: bool,
}

struct State {
    node: Node,
    tx: Batch,
    scratch: Vec<u8>,
    subscribers: HashMap<LookupId, Subscriber>,
    bootstrapped: Arc<AtomicBool>,
}

/// Everything the three tasks share; single-threaded, so `Rc` and `RefCell`.
/// No borrow of `state` is ever held across an `.await`.
struct Shared {
    state: RefCell<State>,
    fd: RawFd,
    socket: UdpSocket,
    /// The instant the timer task sleeps until; an earlier `next_timeout` re-arms it.
    timer_at: Cell<Option<Instant>>,
    rearm: LocalSender<()>,
}

/// Runs the node until a `Shutdown` command arrives or the handle is dropped.
pub(crate) async fn run(
    node: Node,
    socket: socket2::Socket,
    wake: std::net::UdpSocket,
    commands: Receiver<Command>,
    bootstrapped: Arc<AtomicBool>,
) {
    let fd = socket.as_raw_fd();
    // glommio is built on an older socket2, so descriptors cross as raw fds.
    // SAFETY: each fd comes from `into_raw_fd`, so glommio becomes its only owner.
    let (socket, wake) = unsafe {
        (
            UdpSocket::from_raw_fd(socket.into_raw_fd()),
            UdpSocket::from_raw_fd(wake.into_raw_fd()),
        )
    };
    let (rearm, rearm_rx) = local_channel::new_bounded(1);
    let shared = Rc::new(Shared {
        state: RefCell::new(State {
            node,
            tx: Batch::new(),
            scratch: Vec::with_capacity(crate::runtime::socket::MAX_DATAGRAM),
            subscribers: HashMap::new(),
            bootstrapped,
        }),
        fd,
        socket,
        timer_at: Cell::new(None),
        rearm,
    });

    // Dropping a glommio task handle cancels the task, which is how both stop.
    let io = glommio::spawn_local(io_task(shared.clone()));
    let timer = glommio::spawn_local(timer_task(shared.clone(), rearm_rx));
    control_task(&shared, &wake, &commands).await;
    drop(io);
    drop(timer);
    // Callers still waiting learn that the node stopped.
    let subscribers = std::mem::take(&mut shared.state.borrow_mut().subscribers);
    for (_, sub) in subscribers {
        sub.sink.finish(Outcome::Stopped);
    }
}

async fn io_task(shared: Rc<Shared>) {
    let mut rx = Batch::new();
    let mut probe = [0u8; 1];
    loop {
        let n = match rx.recv(shared.fd) {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(%err, "recvmmsg failed");
                0
            }
        };
        if n == 0 {
            // Wait for readiness without consuming: the next recvmmsg takes the batch.
            if let Err(err) = shared.socket.peek_from(&mut probe).await {
                tracing::warn!(%err, "waiting for datagrams failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
            continue;
        }
        let now = Instant::now();
        {
            let mut state = shared.state.borrow_mut();
            for i in 0..n {
                if let Some((from, bytes)) = rx.get(i) {
                    state.node.handle_datagram(now, from, bytes);
                }
            }
        }
        flush(&shared, now).await;
        glommio::yield_if_needed().await;
    }
}

async fn timer_task(shared: Rc<Shared>, rearm: local_channel::LocalReceiver<()>) {
    loop {
        let deadline = shared.state.borrow().node.next_timeout();
        shared.timer_at.set(deadline);
        match deadline {
            Some(at) => {
                let sleep = async {
                    glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
                    true
                };
                let rearmed = async {
                    rearm.recv().await;
                    false
                };
                if !future::or(sleep, rearmed).await {
                    continue;
                }
            }
            None => {
                rearm.recv().await;
                continue;
            }
        }
        let now = Instant::now();
        shared.state.borrow_mut().node.handle_timeout(now);
        flush(&shared, now).await;
    }
}

async fn control_task(shared: &Rc<Shared>, wake: &UdpSocket, commands: &Receiver<Command>) {
    let mut buf = [0u8; 16];
    loop {
        // Commands are sent before the wake-up byte, so one wake-up drains them all.
        let mut stop = false;
        while let Ok(command) = commands.try_recv() {
            stop |= apply(shared, command);
        }
        if stop {
            return;
        }
        flush(shared, Instant::now()).await;
        match wake.recv_from(&mut buf).await.map(|(n, _)| n) {
            Ok(n) if n > 0 => {}
            // An error or an empty read means the handle's end is gone; a handle
            // sends `Shutdown` when dropped, so this is only a safety net.
            _ if handle_gone(commands) => return,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(%err, "node control channel failed");
                return;
            }
        }
    }
}

fn handle_gone(commands: &Receiver<Command>) -> bool {
    commands.is_empty() && matches!(commands.try_recv(), Err(crossbeam_channel::TryRecvError::Disconnected))
}

/// Applies one command; true means shut down.
fn apply(shared: &Shared, command: Command) -> bool {
    let now = Instant::now();
    let mut state = shared.state.borrow_mut();
    let (id, sub) = match command {
        Command::Lookup { info_hash, sink } => (
            state.node.lookup(now, info_hash),
            Subscriber {
                sink,
                ends_on_announce: false,
            },
        ),
        Command::Announce { info_hash, port, sink } => (
            state.node.announce(now, info_hash, port),
            Subscriber {
                sink,
                ends_on_announce: true,
            },
        ),
        Command::FindNode { target, sink } => (
            state.node.find_node(now, target),
            Subscriber {
                sink,
                ends_on_announce: false,
            },
        ),
        Command::Stats { reply } => {
            let _ = reply.send(state.node.stats());
            return false;
        }
        Command::Shutdown => return true,
    };
    state.subscribers.insert(id, sub);
    false
}

/// Sends everything the node has queued, forwards its events, and re-arms the
/// timer if the node now wants to wake up earlier.
async fn flush(shared: &Shared, now: Instant) {
    loop {
        let mut slow: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let more = {
            let mut guard = shared.state.borrow_mut();
            let state = &mut *guard;
            state.tx.clear();
            let mut more = false;
            while let Some(to) = state.node.poll_transmit(now, &mut state.scratch) {
                if !state.tx.push(to, &state.scratch) {
                    tracing::debug!(len = state.scratch.len(), "datagram longer than a slot, dropped");
                }
                if state.tx.is_full() {
                    more = true;
                    break;
                }
            }
            let mut sent = 0;
            while sent < state.tx.len() {
                match state.tx.send(shared.fd, sent) {
                    Ok(0) => break,
                    Ok(n) => sent += n,
                    Err(err) => {
                        // One bad destination (e.g. EINVAL) must not block the rest.
                        tracing::debug!(%err, "sendmmsg failed, skipping one datagram");
                        sent += 1;
                    }
                }
            }
            // The kernel's send buffer is full: wait for it through io_uring. Rare.
            for i in sent..state.tx.len() {
                if let Some((to, bytes)) = state.tx.queued(i) {
                    slow.push((to, bytes.to_vec()));
                }
            }
            dispatch_events(state);
            more
        };
        for (to, bytes) in slow {
            if let Err(err) = shared.socket.send_to(&bytes, to).await {
                tracing::debug!(%err, %to, "send failed");
            }
        }
        if !more {
            break;
        }
    }
    let next = shared.state.borrow().node.next_timeout();
    if let Some(next) = next {
        if shared.timer_at.get().is_none_or(|at| next < at) {
            shared.timer_at.set(Some(next));
            let _ = shared.rearm.try_send(());
        }
    }
}

fn dispatch_events(state: &mut State) {
    while let Some(event) = state.node.poll_event() {
        match event {
            Event::Bootstrapped => state.bootstrapped.store(true, Ordering::Release),
            Event::Peers { lookup, peers } => {
                if let Some(sub) = state.subscribers.get(&lookup) {
                    sub.sink.push(&peers);
                }
            }
            Event::LookupDone { lookup, closest } => {
                if state.subscribers.get(&lookup).is_some_and(|sub| !sub.ends_on_announce) {
                    if let Some(sub) = state.subscribers.remove(&lookup) {
                        sub.sink.finish(Outcome::LookupDone { closest });
                    }
                }
            }
            Event::AnnounceDone { lookup, announced_to } => {
                if let Some(sub) = state.subscribers.remove(&lookup) {
                    sub.sink.finish(Outcome::AnnounceDone { announced_to });
                }
            }
        }
    }
    // Callers that dropped their stream no longer need events.
    state.subscribers.retain(|_, sub| !sub.sink.abandoned());
}
