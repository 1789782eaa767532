//! The caller side of a running node: start it on its own glommio executor thread,
//! ask it for lookups and announces, read its statistics, shut it down.
//!
//! Owns the command channel, the wake-up socket and the executor thread. It is
//! `Send + Sync` so any thread (or a non-glommio async runtime) can use it; it
//! must never touch the node itself, which lives on the executor.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use glommio::{LocalExecutorBuilder, Placement};

use super::driver::{self, Command};
use super::peers::{self, PeerStream};
use super::RuntimeError;
use crate::dht::{Node, NodeConfig, NodeStats};
use crate::runtime::socket::bind_udp;

/// How to run one node.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Local UDP address; port 0 picks a free port.
    pub bind: SocketAddr,
    pub node: NodeConfig,
    /// Requested `SO_RCVBUF` in bytes (capped by the kernel's `rmem_max`).
    pub recv_buffer: usize,
    /// Pin the executor thread to this CPU; `None` lets the kernel place it.
    pub cpu: Option<usize>,
    /// Seed of the node's RNG; `None` draws one from the OS.
    pub seed: Option<u64>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            node: NodeConfig::default(),
            recv_buffer: 4 << 20,
            cpu: None,
            seed: None,
        }
    }
}

/// A node running on its own executor thread. Dropping the handle shuts it down.
///
/// Two nodes on loopback: one answers (not read-only), the other bootstraps
/// from it, announces a TCP port and finds itself with a lookup.
///
/// ```
/// use std::time::{Duration, Instant};
/// use trawl_engine::dht::NodeConfig;
/// use trawl_engine::runtime::{NodeHandle, Outcome, RuntimeConfig};
///
/// let local = |node: NodeConfig| RuntimeConfig {
///     bind: "127.0.0.1:0".parse().unwrap(),
///     node: NodeConfig { allow_loopback: true, ..node },
///     ..RuntimeConfig::default()
/// };
/// // No bootstrap list: it waits to be found.
/// let answering = NodeHandle::start(local(NodeConfig { read_only: false, bootstrap: Vec::new(), ..NodeConfig::default() }))?;
/// let node = NodeHandle::start(local(NodeConfig { bootstrap: vec![answering.local_addr()], ..NodeConfig::default() }))?;
///
/// let info_hash = [0x42; 20];
/// let announce = node.announce(info_hash, Some(6881))?;
/// let deadline = Instant::now() + Duration::from_secs(10);
/// assert!(matches!(announce.wait_until(deadline), Some(Outcome::AnnounceDone { announced_to: 1 })));
///
/// let peers: Vec<_> = node.lookup(info_hash)?.collect();
/// assert!(peers.contains(&"127.0.0.1:6881".parse().unwrap()));
/// # Ok::<(), trawl_engine::runtime::RuntimeError>(())
/// ```
pub struct NodeHandle {
    commands: Sender<Command>,
    wake: UdpSocket,
    local_addr: SocketAddr,
    id: [u8; 20],
    bootstrapped: Arc<AtomicBool>,
    thread: Mutex<Option<glommio::ExecutorJoinHandle<()>>>,
}

impl NodeHandle {
    /// Binds the socket (so "port in use" is reported here, synchronously) and
    /// starts the node on a new executor thread.
    pub fn start(config: RuntimeConfig) -> Result<NodeHandle, RuntimeError> {
        let socket = bind_udp(config.bind, config.recv_buffer)?;
        let local_addr = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or(RuntimeError::Bind {
                addr: config.bind,
                source: std::io::Error::other("no local address"),
            })?;
        let (wake, wake_rx) = wake_pair().map_err(|e| RuntimeError::Executor(format!("wake-up socket: {e}")))?;
        let (commands, commands_rx) = crossbeam_channel::unbounded();
        let bootstrapped = Arc::new(AtomicBool::new(false));

        let seed = config.seed.unwrap_or_else(rand::random);
        let node = Node::new(config.node, Instant::now(), seed);
        let id = node.id();
        let placement = match config.cpu {
            Some(cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let flag = bootstrapped.clone();
        let thread = LocalExecutorBuilder::new(placement)
            .name("trawl-node")
            // Datagrams are copied out by recvmmsg; glommio's own buffers serve only
            // the rare slow-path send, so a small pool is plenty.
            .io_memory(1 << 20)
            .spawn(move || driver::run(node, socket, wake_rx, commands_rx, flag))
            .map_err(|e| RuntimeError::Executor(e.to_string()))?;

        Ok(NodeHandle {
            commands,
            wake,
            local_addr,
            id,
            bootstrapped,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The bound UDP address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn id(&self) -> [u8; 20] {
        self.id
    }

    /// True once the first bootstrap reached a node.
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped.load(Ordering::Acquire)
    }

    /// Iterative `get_peers` for `info_hash`; the stream yields peers as they arrive.
    /// Requested before bootstrap finishes, it is queued and runs afterwards.
    pub fn lookup(&self, info_hash: [u8; 20]) -> Result<PeerStream, RuntimeError> {
        let (sink, stream) = peers::channel();
        self.send(Command::Lookup { info_hash, sink })?;
        Ok(stream)
    }

    /// Announces that we hold `info_hash` on TCP `port` (`None`: `implied_port`,
    /// our UDP port). The stream yields the peers the preceding lookup found and
    /// ends with [`peers::Outcome::AnnounceDone`].
    pub fn announce(&self, info_hash: [u8; 20], port: Option<u16>) -> Result<PeerStream, RuntimeError> {
        let (sink, stream) = peers::channel();
        self.send(Command::Announce { info_hash, port, sink })?;
        Ok(stream)
    }

    /// A `find_node` lookup toward `target`; the stream yields no peers and ends
    /// with [`peers::Outcome::LookupDone`].
    pub fn find_node(&self, target: [u8; 20]) -> Result<PeerStream, RuntimeError> {
        let (sink, stream) = peers::channel();
        self.send(Command::FindNode { target, sink })?;
        Ok(stream)
    }

    /// A snapshot of the node's counters.
    pub fn stats(&self, timeout: Duration) -> Result<NodeStats, RuntimeError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Stats { reply })?;
        rx.recv_timeout(timeout).map_err(|_| RuntimeError::Stopped)
    }

    /// Stops the node and waits for its executor thread to finish.
    pub fn shutdown(self) {
        self.stop();
    }

    fn stop(&self) {
        let _ = self.send(Command::Shutdown);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            if let Err(err) = thread.join() {
                tracing::warn!(%err, "node executor ended with an error");
            }
        }
    }

    fn send(&self, command: Command) -> Result<(), RuntimeError> {
        self.commands.send(command).map_err(|_| RuntimeError::Stopped)?;
        match self.wake.send(&[1]) {
            // A full wake-up queue already holds a pending wake-up.
            Ok(_) => Ok(()),
            Err(err) if err.kind() == ErrorKind::WouldBlock => Ok(()),
            Err(_) => Err(RuntimeError::Stopped),
        }
    }
}

/// A connected pair of loopback UDP sockets: the handle writes one byte to wake
/// the executor, which waits on the other end through io_uring. (glommio's
/// datagram wrapper only handles IP addresses, so a Unix socket pair won't do.)
fn wake_pair() -> std::io::Result<(UdpSocket, UdpSocket)> {
    let rx = UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let tx = UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    tx.connect(rx.local_addr()?)?;
    rx.connect(tx.local_addr()?)?;
    tx.set_nonblocking(true)?;
    Ok((tx, rx))
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
