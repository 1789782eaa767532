//! The TCP side of the swarm: virtual metadata peers serving BEP 9.
//!
//! One listener on 0.0.0.0:peer_port accepts connections to every 127.x
//! address; the local address of an accepted connection names the virtual
//! peer (the node at that address). A peer serves the info dict of a catalogue
//! torrent it holds, and misbehaves as [`super::PeerBehaviour`] says.
//!
//! Each peer answers after its round trip ([`super::Swarm::peer_rtt`]): a
//! reply is held until one RTT after the request that caused it arrived, two
//! for the handshake (loopback's connect is instant, so the handshake reply
//! also carries the connect's round trip). Peers that never accept are
//! announced on the port of a [`DarkListener`], where dials time out.
//!
//! Owns: one level-triggered epoll loop on a single thread, the per-connection
//! state machines and their buffers, the reply timers, the dark listener.
//! Must not: block, or trust a peer's lengths: frames are capped by
//! `metadata::wire`, and connections idle for [`IDLE_TIMEOUT`] are closed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use trawl_engine::metadata::wire::{self, ExtHandshake, Handshake, Message, MetadataMsg, Parse};

use super::counters::counter_struct;
use super::{PeerBehaviour, Swarm};
use crate::sys;

pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Our `ut_metadata` id, as announced in our extended handshake.
const OUR_UT_METADATA: u8 = 3;
const LISTENER: u64 = u64::MAX;
const MAX_EVENTS: usize = 256;
const READ_CHUNK: usize = 16 * 1024;
/// Requests are tiny; a client sending more than this unread is misbehaving.
const MAX_INBUF: usize = 64 * 1024;
const PEER_ID: &[u8; 20] = b"-TS0001-trawl-swarm-";
const CLIENT: &[u8] = b"trawl-swarm";

counter_struct! {
    /// What the peers did.
    PeerCounters {
    /// Connections accepted.
    accepted,
    /// Handshakes for a torrent the peer holds.
    handshakes,
    /// Handshakes for a torrent this peer does not hold (or no catalogue torrent).
    not_held,
    /// Connections to an address that is no virtual peer.
    not_a_peer,
    /// `ut_metadata` data messages sent.
    pieces_served,
    /// Of those, pieces sent corrupted.
    pieces_corrupted,
    /// `ut_metadata` rejects sent.
    rejects_sent,
    /// Requests a stalling peer left unanswered.
    requests_stalled,
    /// Connections closed for malformed input.
    protocol_errors,
    /// Connections closed after IDLE_TIMEOUT without input.
    idle_closed,
    /// Replies held back for the peer's round trip.
    replies_delayed,
    }
}

/// A TCP listener whose accept queue is full and never drained: the kernel
/// drops every further SYN (the accept-queue overflow rule), so a dial to its
/// port on any 127.x address times out instead of being refused. Checked on
/// this machine (Linux 6.x): `connect()` timed out after 3 s while a closed
/// port refused at once; the test `dials_to_never_accepting_peers_time_out`
/// keeps checking it.
pub struct DarkListener {
    _listener: socket2::Socket,
    _filler: TcpStream,
    pub port: u16,
}

impl DarkListener {
    pub fn bind() -> io::Result<Self> {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        listener.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into())?;
        // Backlog 0: the queue is full once one connection waits in it.
        listener.listen(0)?;
        let port = listener
            .local_addr()?
            .as_socket_ipv4()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("no IPv4 address"))?;
        let filler = TcpStream::connect_timeout(
            &SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
            Duration::from_secs(2),
        )?;
        Ok(Self {
            _listener: listener,
            _filler: filler,
            port,
        })
    }
}

/// A running peer listener.
pub struct PeerServer {
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<PeerCounters>>,
    thread: JoinHandle<io::Result<PeerCounters>>,
    pub local_port: u16,
}

impl PeerServer {
    pub fn spawn(swarm: Arc<Swarm>, port: u16, core: Option<usize>, duration: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind(("0.0.0.0", port))?;
        listener.set_nonblocking(true)?;
        let local_port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(PeerCounters::default()));
        let (stop2, live2) = (stop.clone(), live.clone());
        let thread = std::thread::Builder::new().name("swarm-peers".into()).spawn(move || {
            if let Some(core) = core {
                sys::pin_current_thread(core)?;
            }
            EventLoop::new(swarm, listener, live2)?.run(&stop2, duration)
        })?;
        Ok(Self {
            stop,
            live,
            thread,
            local_port,
        })
    }

    pub fn snapshot(&self) -> PeerCounters {
        *self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn join(self) -> io::Result<PeerCounters> {
        self.thread
            .join()
            .map_err(|_| io::Error::other("peer thread panicked"))?
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Handshake,
    Messages,
}

struct Conn {
    stream: TcpStream,
    /// This connection's index in the loop's table, also its epoll token.
    slot: u64,
    /// The virtual peer: the node index of the address that was hit.
    peer: u32,
    behaviour: PeerBehaviour,
    stage: Stage,
    torrent: u32,
    dict: Vec<u8>,
    their_ut_metadata: Option<u8>,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    out_pos: usize,
    want_write: bool,
    last_active: Instant,
    /// This peer's round trip.
    rtt: Duration,
    /// Bytes of `outbuf` whose round trip has passed.
    released: usize,
    /// (when, end offset in `outbuf`) of replies still held back.
    held: VecDeque<(Instant, usize)>,
}

/// Why a connection is closed.
enum Close {
    Done,
    Error,
}

struct EventLoop {
    swarm: Arc<Swarm>,
    listener: TcpListener,
    epfd: RawFd,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    c: PeerCounters,
    live: Arc<Mutex<PeerCounters>>,
    /// When a held reply of the connection in a slot becomes due.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        // SAFETY: epfd is an epoll descriptor this loop created and owns.
        unsafe { libc::close(self.epfd) };
    }
}

fn epoll_ctl(epfd: RawFd, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: ev is a valid epoll_event for the duration of the call.
    if unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl EventLoop {
    fn new(swarm: Arc<Swarm>, listener: TcpListener, live: Arc<Mutex<PeerCounters>>) -> io::Result<Self> {
        // SAFETY: plain syscall; the descriptor is owned by the returned loop.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        let this = Self {
            swarm,
            listener,
            epfd,
            conns: Vec::new(),
            free: Vec::new(),
            c: PeerCounters::default(),
            live,
            timers: BinaryHeap::new(),
        };
        epoll_ctl(
            epfd,
            libc::EPOLL_CTL_ADD,
            this.listener.as_raw_fd(),
            libc::EPOLLIN as u32,
            LISTENER,
        )?;
        Ok(this)
    }

    fn run(mut self, stop: &AtomicBool, duration: Duration) -> io::Result<PeerCounters> {
        let start = Instant::now();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        let mut swept = start;
        while !stop.load(Ordering::Relaxed) && start.elapsed() < duration {
            let wait_ms = self.timers.peek().map_or(50, |Reverse((due, _))| {
                let left = due.saturating_duration_since(Instant::now());
                (left.as_micros().div_ceil(1000) as i32).min(50)
            });
            // SAFETY: events has MAX_EVENTS valid slots.
            let n = unsafe { libc::epoll_wait(self.epfd, events.as_mut_ptr(), MAX_EVENTS as i32, wait_ms) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            for ev in &events[..n as usize] {
                let (token, flags) = (ev.u64, ev.events);
                if token == LISTENER {
                    self.accept_all();
                } else {
                    self.service(token as usize, flags);
                }
            }
            let now = Instant::now();
            while let Some(&Reverse((due, slot))) = self.timers.peek() {
                if due > now {
                    break;
                }
                self.timers.pop();
                self.release_due(slot);
            }
            if now.duration_since(swept) >= Duration::from_secs(1) {
                swept = now;
                self.sweep_idle(now);
                *self.live.lock().unwrap_or_else(|e| e.into_inner()) = self.c;
            }
        }
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = self.c;
        Ok(self.c)
    }

    fn accept_all(&mut self) {
        loop {
            let (stream, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            self.c.accepted += 1;
            let peer = match stream.local_addr() {
                Ok(SocketAddr::V4(a)) => self.swarm.nodes.index_of(*a.ip()),
                _ => None,
            };
            let Some(peer) = peer else {
                self.c.not_a_peer += 1;
                continue;
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            let fd = stream.as_raw_fd();
            if epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, slot as u64).is_err() {
                self.free.push(slot);
                continue;
            }
            self.conns[slot] = Some(Conn {
                stream,
                slot: slot as u64,
                peer,
                behaviour: self.swarm.peer_behaviour(peer),
                stage: Stage::Handshake,
                torrent: 0,
                dict: Vec::new(),
                their_ut_metadata: None,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                out_pos: 0,
                want_write: false,
                last_active: Instant::now(),
                rtt: self.swarm.peer_rtt(peer),
                released: 0,
                held: VecDeque::new(),
            });
        }
    }

    fn service(&mut self, slot: usize, flags: u32) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let result = self.drive(&mut conn, flags);
        self.settle(slot, conn, result);
    }

    /// A held reply of the connection in `slot` may be due: write it.
    fn release_due(&mut self, slot: usize) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let result = self.write_out(&mut conn);
        self.settle(slot, conn, result);
    }

    fn settle(&mut self, slot: usize, conn: Conn, result: Result<(), Close>) {
        match result {
            Ok(()) => self.conns[slot] = Some(conn),
            Err(close) => {
                if matches!(close, Close::Error) {
                    self.c.protocol_errors += 1;
                }
                let _ = epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, conn.stream.as_raw_fd(), 0, 0);
                self.free.push(slot);
            }
        }
    }

    fn drive(&mut self, conn: &mut Conn, flags: u32) -> Result<(), Close> {
        conn.last_active = Instant::now();
        if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
            let mut chunk = [0u8; READ_CHUNK];
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => return Err(Close::Done),
                    Ok(n) => {
                        conn.inbuf.extend_from_slice(&chunk[..n]);
                        if conn.inbuf.len() > MAX_INBUF + READ_CHUNK {
                            return Err(Close::Error);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Err(Close::Done),
                }
            }
            let (before, stage) = (conn.outbuf.len(), conn.stage);
            self.process_input(conn)?;
            if conn.outbuf.len() > before {
                let trips = if stage == Stage::Handshake { 2 } else { 1 };
                self.hold(conn, trips);
            }
        }
        self.write_out(conn)
    }

    /// Holds what was just appended to `outbuf` for `trips` round trips.
    fn hold(&mut self, conn: &mut Conn, trips: u32) {
        if conn.rtt.is_zero() {
            conn.released = conn.outbuf.len();
            return;
        }
        let due = Instant::now() + conn.rtt * trips;
        conn.held.push_back((due, conn.outbuf.len()));
        self.timers.push(Reverse((due, conn.slot as usize)));
        self.c.replies_delayed += 1;
    }

    fn process_input(&mut self, conn: &mut Conn) -> Result<(), Close> {
        let mut consumed_total = 0;
        loop {
            let buf = &conn.inbuf[consumed_total..];
            match conn.stage {
                Stage::Handshake => match Handshake::parse(buf) {
                    Ok(Parse::NeedMore(_)) => break,
                    Ok(Parse::Done { item, consumed }) => {
                        let info_hash = *item.info_hash;
                        consumed_total += consumed;
                        self.on_handshake(conn, &info_hash)?;
                    }
                    Err(_) => return Err(Close::Error),
                },
                Stage::Messages => match Message::parse(buf, wire::DEFAULT_MAX_MESSAGE_LEN) {
                    Ok(Parse::NeedMore(_)) => break,
                    Ok(Parse::Done { item, consumed }) => {
                        // The message borrows inbuf; copy out the little we need first.
                        let action = classify(item)?;
                        consumed_total += consumed;
                        self.on_message(conn, action)?;
                    }
                    Err(_) => return Err(Close::Error),
                },
            }
        }
        conn.inbuf.drain(..consumed_total);
        Ok(())
    }

    fn on_handshake(&mut self, conn: &mut Conn, info_hash: &[u8; 20]) -> Result<(), Close> {
        let cat = &self.swarm.catalogue;
        let Some(t) = cat
            .find(info_hash)
            .filter(|&t| cat.held_by(conn.peer).binary_search(&t).is_ok())
        else {
            self.c.not_held += 1;
            return Err(Close::Done);
        };
        self.c.handshakes += 1;
        conn.torrent = t;
        conn.dict.clear();
        cat.write_info_dict(t, &mut conn.dict);
        let info_hash = *cat.infohash(t);
        wire::write_handshake(&mut conn.outbuf, &info_hash, PEER_ID);
        wire::write_ext_handshake(&mut conn.outbuf, OUR_UT_METADATA, Some(conn.dict.len()), Some(CLIENT));
        conn.stage = Stage::Messages;
        Ok(())
    }

    fn on_message(&mut self, conn: &mut Conn, action: Action) -> Result<(), Close> {
        match action {
            Action::Ignore => Ok(()),
            Action::ExtHandshake(id) => {
                conn.their_ut_metadata = id;
                Ok(())
            }
            Action::Request(piece) => {
                let ext = conn.their_ut_metadata.ok_or(Close::Error)?;
                let total = conn.dict.len();
                match conn.behaviour {
                    PeerBehaviour::Stall => self.c.requests_stalled += 1,
                    PeerBehaviour::Reject => {
                        self.c.rejects_sent += 1;
                        wire::write_metadata_reject(&mut conn.outbuf, ext, piece);
                    }
                    PeerBehaviour::Good | PeerBehaviour::Corrupt => {
                        let Some(range) = wire::piece_range(total, piece) else {
                            self.c.rejects_sent += 1;
                            wire::write_metadata_reject(&mut conn.outbuf, ext, piece);
                            return Ok(());
                        };
                        wire::write_metadata_data(&mut conn.outbuf, ext, piece, total, &conn.dict[range]);
                        self.c.pieces_served += 1;
                        if conn.behaviour == PeerBehaviour::Corrupt {
                            // Flip the piece's last byte: framing stays valid, SHA-1 does not.
                            if let Some(last) = conn.outbuf.last_mut() {
                                *last ^= 0xff;
                            }
                            self.c.pieces_corrupted += 1;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn write_out(&mut self, conn: &mut Conn) -> Result<(), Close> {
        let now = Instant::now();
        while let Some(&(due, end)) = conn.held.front() {
            if due > now {
                break;
            }
            conn.released = end;
            conn.held.pop_front();
        }
        while conn.out_pos < conn.released {
            match conn.stream.write(&conn.outbuf[conn.out_pos..conn.released]) {
                Ok(0) => return Err(Close::Done),
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Close::Done),
            }
        }
        if conn.out_pos == conn.outbuf.len() {
            conn.outbuf.clear();
            conn.out_pos = 0;
            conn.released = 0;
        }
        let want_write = conn.out_pos < conn.released;
        if want_write != conn.want_write {
            conn.want_write = want_write;
            let mut events = libc::EPOLLIN as u32;
            if want_write {
                events |= libc::EPOLLOUT as u32;
            }
            epoll_ctl(
                self.epfd,
                libc::EPOLL_CTL_MOD,
                conn.stream.as_raw_fd(),
                events,
                conn.slot,
            )
            .map_err(|_| Close::Error)?;
        }
        Ok(())
    }

    fn sweep_idle(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            let idle = self.conns[slot]
                .as_ref()
                .is_some_and(|c| now.duration_since(c.last_active) > IDLE_TIMEOUT);
            if idle {
                if let Some(conn) = self.conns[slot].take() {
                    let _ = epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, conn.stream.as_raw_fd(), 0, 0);
                    self.free.push(slot);
                    self.c.idle_closed += 1;
                }
            }
        }
    }
}

/// What a framed message asks of us, copied out of the receive buffer.
enum Action {
    Ignore,
    ExtHandshake(Option<u8>),
    Request(u32),
}

fn classify(msg: Message<'_>) -> Result<Action, Close> {
    match msg {
        Message::Extended {
            ext_id: wire::EXT_HANDSHAKE_ID,
            payload,
        } => {
            let hs = ExtHandshake::parse(payload).map_err(|_| Close::Error)?;
            Ok(Action::ExtHandshake(hs.ut_metadata))
        }
        Message::Extended {
            ext_id: OUR_UT_METADATA,
            payload,
        } => match MetadataMsg::parse(payload) {
            Ok(MetadataMsg::Request { piece }) => Ok(Action::Request(piece)),
            Ok(_) => Ok(Action::Ignore),
            Err(_) => Err(Close::Error),
        },
        _ => Ok(Action::Ignore),
    }
}
