//! The loopback ceiling: how many datagrams per second this machine's kernel
//! moves from one thread to another over `lo`, with nothing else to do.
//!
//! Owns: a bounded raw `sendmmsg` → `recvmmsg` blast between two threads on
//! 127.0.0.1, each optionally pinned to its own core.
//! Must not: decode, allocate per packet, or run unbounded: each blast stops
//! after `duration`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::swarm::mmsg::{udp_socket, RecvBatch, SendBatch};
use crate::sys;

const BATCH: usize = 64;

/// What one blast measured.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Ceiling {
    pub payload_bytes: usize,
    pub sent: u64,
    pub received: u64,
    pub seconds: f64,
    /// Datagrams received per second: the figure that bounds every benchmark here.
    pub received_pps: f64,
    pub sender_cpu_us_per_datagram: f64,
    pub receiver_cpu_us_per_datagram: f64,
}

/// Blasts `payload_bytes` datagrams for `duration`. `cores` pins the sender and
/// the receiver to those cores.
pub fn blast(payload_bytes: usize, duration: Duration, cores: Option<(usize, usize)>) -> std::io::Result<Ceiling> {
    let timeout = Some(Duration::from_millis(50));
    let rx = udp_socket(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), false, false, timeout)?;
    let rx_addr = rx
        .local_addr()?
        .as_socket_ipv4()
        .unwrap_or(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let tx = udp_socket(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), false, false, timeout)?;
    let stop = Arc::new(AtomicBool::new(false));

    let receiver = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Some((_, core)) = cores {
                let _ = sys::pin_current_thread(core);
            }
            let mut batch = RecvBatch::new(BATCH);
            let (mut got, mut first, mut last) = (0u64, None, Instant::now());
            let cpu0 = sys::thread_cpu_time();
            // Drain until the sender has stopped and the queue is empty.
            loop {
                let n = batch.recv(rx.as_raw_fd(), libc::MSG_WAITFORONE).unwrap_or(0);
                if n == 0 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    continue;
                }
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
                got += n as u64;
            }
            let secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
            (got, secs, sys::thread_cpu_time() - cpu0)
        })
    };

    if let Some((core, _)) = cores {
        let _ = sys::pin_current_thread(core);
    }
    let mut batch = SendBatch::new(BATCH);
    let payload = vec![0xa5u8; payload_bytes];
    let (start, cpu0) = (Instant::now(), sys::thread_cpu_time());
    let mut sent = 0u64;
    while start.elapsed() < duration {
        while !batch.is_full() {
            batch.push(rx_addr, None).extend_from_slice(&payload);
        }
        sent += batch.flush(tx.as_raw_fd())? as u64;
    }
    let sender_cpu = sys::thread_cpu_time() - cpu0;
    stop.store(true, Ordering::Relaxed);
    let (received, seconds, receiver_cpu) = receiver
        .join()
        .map_err(|_| std::io::Error::other("receiver panicked"))?;
    let per = |cpu: Duration, n: u64| {
        if n == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e6 / n as f64
        }
    };
    Ok(Ceiling {
        payload_bytes,
        sent,
        received,
        seconds,
        received_pps: if seconds > 0.0 { received as f64 / seconds } else { 0.0 },
        sender_cpu_us_per_datagram: per(sender_cpu, sent),
        receiver_cpu_us_per_datagram: per(receiver_cpu, received),
    })
}
