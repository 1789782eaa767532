//! Open-loop capacity load: `ping` and `find_node` ([`QueryMix`]) at random
//! virtual nodes, as fast as one core sends.

use super::*;

/// Capacity load: `ping` and `find_node` at random virtual nodes, open loop.
pub struct QueryMix {
    our_id: [u8; 20],
    rng: Stream,
    nodes: u32,
    port: u16,
    seq: u16,
}

impl QueryMix {
    pub fn new(seed: u64, nodes: u32, port: u16) -> Self {
        let mut rng = Stream::new(seed, 1, 0xb1a5);
        let mut our_id = [0u8; 20];
        rng.fill(&mut our_id);
        Self {
            our_id,
            rng,
            nodes: nodes.max(1),
            port,
            seq: 0,
        }
    }

    /// Writes the next query into `out`; returns its destination and whether it is a ping.
    pub fn next_query(&mut self, out: &mut Vec<u8>) -> (SocketAddrV4, bool) {
        let node = self.rng.below(self.nodes.into()) as u32;
        let to = SocketAddrV4::new(crate::swarm::nodes::node_addr(node), self.port);
        let mut target = [0u8; 20];
        self.rng.fill(&mut target);
        self.seq = self.seq.wrapping_add(1);
        let tid = self.seq.to_be_bytes();
        // Three find_node per ping, roughly a crawler's mix.
        let ping = self.rng.below(4) == 0;
        let q = if ping {
            Query::Ping { id: &self.our_id }
        } else {
            Query::FindNode {
                id: &self.our_id,
                target: &target,
                want: Want::default(),
            }
        };
        out.clear();
        krpc::encode_query(out, &tid, &q, true, Some(VERSION));
        (to, ping)
    }
}

/// What an open-loop blast measured on the load generator's side.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BlastLoad {
    pub seconds: f64,
    pub sent: u64,
    pub received: u64,
    /// Replies the codec decoded as responses.
    pub replies_ok: u64,
    pub replies_invalid: u64,
    pub sender_cpu_seconds: f64,
    pub receiver_cpu_seconds: f64,
}

/// Sends [`QueryMix`] queries as fast as one thread can for `duration` while a
/// second thread receives and decodes the replies; both on `core` if given.
/// There is no window: a swarm that cannot keep up drops at its socket, which
/// its busy fraction and answer rate then show.
pub fn blast(seed: u64, nodes: u32, port: u16, duration: Duration, core: Option<usize>) -> io::Result<BlastLoad> {
    let socket = udp_socket(
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        false,
        false,
        Some(Duration::from_millis(20)),
    )?;
    let rx_socket = socket.try_clone()?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_rx = stop.clone();
    let receiver = std::thread::spawn(move || -> io::Result<(u64, u64, u64, f64)> {
        if let Some(core) = core {
            sys::pin_current_thread(core)?;
        }
        let cpu0 = sys::thread_cpu_time();
        let mut rx = RecvBatch::new(BATCH);
        let (mut received, mut ok, mut invalid) = (0u64, 0u64, 0u64);
        let mut quiet_after_stop = 0;
        loop {
            let n = rx.recv(rx_socket.as_raw_fd(), libc::MSG_WAITFORONE)?;
            if n == 0 && stop_rx.load(Ordering::Relaxed) {
                // Stragglers arrive within a few timeouts of the last send.
                quiet_after_stop += 1;
                if quiet_after_stop >= 3 {
                    break;
                }
            }
            received += n as u64;
            for i in 0..n {
                match Message::decode(rx.get(i).0) {
                    Ok(m) if matches!(m.kind, Kind::Response(_)) => ok += 1,
                    _ => invalid += 1,
                }
            }
        }
        Ok((received, ok, invalid, (sys::thread_cpu_time() - cpu0).as_secs_f64()))
    });
    if let Some(core) = core {
        sys::pin_current_thread(core)?;
    }
    let mut mix = QueryMix::new(seed, nodes, port);
    let mut tx = SendBatch::new(BATCH);
    let fd = socket.as_raw_fd();
    let (start, cpu0) = (Instant::now(), sys::thread_cpu_time());
    let mut sent = 0u64;
    while start.elapsed() < duration {
        while tx.push_with(|buf| Some((mix.next_query(buf).0, None))) {}
        sent += tx.flush(fd)? as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    let sender_cpu_seconds = (sys::thread_cpu_time() - cpu0).as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (received, replies_ok, replies_invalid, receiver_cpu_seconds) = receiver
        .join()
        .map_err(|_| io::Error::other("blast receiver panicked"))??;
    Ok(BlastLoad {
        seconds,
        sent,
        received,
        replies_ok,
        replies_invalid,
        sender_cpu_seconds,
        receiver_cpu_seconds,
    })
}
