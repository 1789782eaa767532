//! The UDP side of the swarm: one socket per thread on 0.0.0.0:port (with
//! SO_REUSEPORT when there are several), `recvmmsg`/`sendmmsg` with
//! `IP_PKTINFO`, and a FIFO for the replies of slow nodes.
//!
//! Owns: the threads, their sockets, stop conditions and load accounting.
//! Must not: decide what to answer; that is [`super::answer`].

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::answer::{Outcome, Responder};
use super::counters::Counters;
use super::mmsg::{udp_socket, RecvBatch, SendBatch, MAX_DATAGRAM};
use super::Swarm;
use crate::sys;

const BATCH: usize = 64;
/// How often a blocked receive wakes to check the stop conditions.
const POLL: Duration = Duration::from_millis(20);
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// When the server stops by itself.
#[derive(Clone, Copy, Debug)]
pub struct StopAfter {
    pub duration: Duration,
    /// Stop after this many datagrams received in total (0: no bound).
    pub packets: u64,
}

/// One thread's load over the run.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ThreadLoad {
    pub core: Option<usize>,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    /// CPU time over wall time: near 1.0 means this thread was saturated.
    pub busy_fraction: f64,
}

/// A running UDP server.
pub struct UdpServer {
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<Counters>>>,
    threads: Vec<JoinHandle<io::Result<(Counters, ThreadLoad)>>>,
    pub local_port: u16,
}

/// Final figures of a server run.
#[derive(Clone, Debug, Serialize)]
pub struct ServerReport {
    pub counters: Counters,
    pub threads: Vec<ThreadLoad>,
}

impl UdpServer {
    /// Binds `threads` sockets to `0.0.0.0:port` and starts answering. `cores`
    /// pins thread i to `cores[i % len]`.
    pub fn spawn(
        swarm: Arc<Swarm>,
        port: u16,
        threads: usize,
        cores: &[usize],
        stop_after: StopAfter,
    ) -> io::Result<Self> {
        let threads = threads.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(vec![Counters::default(); threads]));
        let received_total = Arc::new(AtomicU64::new(0));
        let first = udp_socket(
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
            threads > 1,
            true,
            Some(POLL),
        )?;
        // With port 0 the kernel picks one; the other sockets share it.
        let local_port = first.local_addr()?.as_socket_ipv4().map_or(port, |a| a.port());
        let mut sockets = vec![first];
        for _ in 1..threads {
            let bind = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local_port);
            sockets.push(udp_socket(bind, true, true, Some(POLL))?);
        }
        let mut handles = Vec::with_capacity(threads);
        for (i, socket) in sockets.into_iter().enumerate() {
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let ctx = ThreadCtx {
                swarm: swarm.clone(),
                stop: stop.clone(),
                live: live.clone(),
                received_total: received_total.clone(),
                index: i,
                core,
                stop_after,
            };
            handles.push(
                std::thread::Builder::new()
                    .name(format!("swarm-udp-{i}"))
                    .spawn(move || ctx.run(socket))?,
            );
        }
        Ok(Self {
            stop,
            live,
            threads: handles,
            local_port,
        })
    }

    /// The counters as last published by the threads (every 200 ms).
    pub fn snapshot(&self) -> Counters {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut sum = Counters::default();
        live.iter().for_each(|c| sum.add(c));
        sum
    }

    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The flag [`Self::stop`] sets, for a thread that cannot own the server.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Waits for every thread to stop by itself (or after [`Self::stop`]).
    pub fn join(self) -> io::Result<ServerReport> {
        let mut counters = Counters::default();
        let mut loads = Vec::new();
        for t in self.threads {
            let (c, load) = t.join().map_err(|_| io::Error::other("swarm thread panicked"))??;
            counters.add(&c);
            loads.push(load);
        }
        Ok(ServerReport {
            counters,
            threads: loads,
        })
    }
}

struct ThreadCtx {
    swarm: Arc<Swarm>,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<Counters>>>,
    received_total: Arc<AtomicU64>,
    index: usize,
    core: Option<usize>,
    stop_after: StopAfter,
}

/// A reply held back by a slow node.
struct Delayed {
    due_ms: u64,
    to: SocketAddrV4,
    from: Ipv4Addr,
    len: usize,
    bytes: [u8; MAX_DATAGRAM],
}

impl ThreadCtx {
    fn run(self, socket: socket2::Socket) -> io::Result<(Counters, ThreadLoad)> {
        if let Some(core) = self.core {
            sys::pin_current_thread(core)?;
        }
        let fd = socket.as_raw_fd();
        let mut responder = Responder::new(&self.swarm, self.index as u64);
        let mut rx = RecvBatch::new(BATCH);
        let mut tx = SendBatch::new(BATCH);
        let mut delayed: VecDeque<Delayed> = VecDeque::new();
        let mut outbox = Vec::new();
        let mut c = Counters::default();
        let slow_ms = self.swarm.config.slow_delay_ms;
        let (start, cpu0) = (Instant::now(), sys::thread_cpu_time());
        let mut published = start;
        loop {
            let now = Instant::now();
            let elapsed = now - start;
            let done_packets =
                self.stop_after.packets > 0 && self.received_total.load(Ordering::Relaxed) >= self.stop_after.packets;
            if self.stop.load(Ordering::Relaxed) || elapsed >= self.stop_after.duration || done_packets {
                break;
            }
            let n = rx.recv(fd, libc::MSG_WAITFORONE)?;
            let now_ms = start.elapsed().as_millis() as u64;
            for i in 0..n {
                let (payload, from, dst) = rx.get(i);
                let Some(dst) = dst else {
                    c.received += 1;
                    c.not_a_node += 1;
                    continue;
                };
                let out = tx.push(from, Some(dst));
                match responder.handle(now_ms, from, dst, payload, out, &mut c) {
                    Outcome::Reply => {}
                    Outcome::Drop => tx.pop(),
                    Outcome::ReplyLater => {
                        let mut d = Delayed {
                            due_ms: now_ms + slow_ms,
                            to: from,
                            from: dst,
                            len: out.len(),
                            bytes: [0; MAX_DATAGRAM],
                        };
                        let len = d.len.min(MAX_DATAGRAM);
                        d.bytes[..len].copy_from_slice(&out[..len]);
                        delayed.push_back(d);
                        tx.pop();
                    }
                }
                if tx.is_full() {
                    self.flush(&mut tx, fd, &mut c)?;
                }
            }
            if self.index == 0 {
                outbox.clear();
                self.swarm.downloads.tick(&self.swarm, now_ms, &mut c, &mut outbox);
                for q in &outbox {
                    tx.push(q.to, Some(q.from)).extend_from_slice(&q.bytes);
                    if tx.is_full() {
                        self.flush(&mut tx, fd, &mut c)?;
                    }
                }
            }
            while delayed.front().is_some_and(|d| d.due_ms <= now_ms) {
                if let Some(d) = delayed.pop_front() {
                    tx.push(d.to, Some(d.from))
                        .extend_from_slice(&d.bytes[..d.len.min(MAX_DATAGRAM)]);
                    if tx.is_full() {
                        self.flush(&mut tx, fd, &mut c)?;
                    }
                }
            }
            self.flush(&mut tx, fd, &mut c)?;
            self.received_total.fetch_add(n as u64, Ordering::Relaxed);
            if now.duration_since(published) >= PUBLISH_EVERY {
                published = now;
                self.publish(&c);
            }
        }
        self.publish(&c);
        let wall = start.elapsed().as_secs_f64();
        let cpu = (sys::thread_cpu_time() - cpu0).as_secs_f64();
        let load = ThreadLoad {
            core: self.core,
            cpu_seconds: cpu,
            wall_seconds: wall,
            busy_fraction: if wall > 0.0 { cpu / wall } else { 0.0 },
        };
        Ok((c, load))
    }

    fn flush(&self, tx: &mut SendBatch, fd: i32, c: &mut Counters) -> io::Result<()> {
        let queued = tx.len() as u64;
        let sent = tx.flush(fd)? as u64;
        c.sent += sent;
        c.send_failures += queued - sent;
        Ok(())
    }

    fn publish(&self, c: &Counters) {
        if let Ok(mut live) = self.live.lock() {
            live[self.index] = *c;
        }
    }
}
