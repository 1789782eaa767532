//! The node's UDP socket: creation with the options a busy DHT node needs, and
//! batched, non-blocking `recvmmsg`/`sendmmsg` on its descriptor.
//!
//! Owns the datagram buffers and the `mmsghdr` arrays, allocated once per socket
//! and reused for every batch. It must not interpret a byte of what it moves, and
//! never blocks: waiting for readiness is the executor's job (io_uring through
//! glommio), so an empty socket returns an empty batch.

use std::io;
use std::mem;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::node::RuntimeError;

/// Datagrams moved per `recvmmsg`/`sendmmsg` call. Large enough that a saturated
/// node pays one syscall per many datagrams, small enough to keep latency low.
pub const BATCH: usize = 64;
/// Largest datagram we accept. KRPC replies stay below one Ethernet MTU; anything
/// longer is cut by the kernel and handed on empty (see [`Batch::recv`]), so the
/// decoder rejects it even when its first bytes would be a whole message.
pub const MAX_DATAGRAM: usize = 2048;

/// Creates and binds a UDP socket for `addr` with a receive buffer of at least
/// `recv_buffer` bytes (mldht advises 2 MB or more for a busy node). The socket
/// stays in blocking mode: io_uring fails reads on an `O_NONBLOCK` socket with
/// EAGAIN instead of waiting, so our own calls pass `MSG_DONTWAIT` instead.
pub fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> Result<Socket, RuntimeError> {
    let bind_err = |source| RuntimeError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(bind_err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(|source| RuntimeError::SocketOption {
            option: "IPV6_V6ONLY",
            source,
        })?;
    }
    if recv_buffer > 0 {
        // The kernel caps this at net.core.rmem_max; a smaller buffer still works.
        socket
            .set_recv_buffer_size(recv_buffer)
            .map_err(|source| RuntimeError::SocketOption {
                option: "SO_RCVBUF",
                source,
            })?;
    }
    socket.bind(&SockAddr::from(addr)).map_err(bind_err)?;
    Ok(socket)
}

/// One batch of datagram slots for either direction.
pub struct Batch {
    bufs: Box<[[u8; MAX_DATAGRAM]]>,
    lens: [usize; BATCH],
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    addr_lens: [libc::socklen_t; BATCH],
    iovs: Box<[libc::iovec; BATCH]>,
    hdrs: Box<[libc::mmsghdr; BATCH]>,
    /// Filled slots: received datagrams, or datagrams queued to send.
    len: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which
        // all-zero bytes are a valid (empty) value.
        unsafe {
            Batch {
                bufs: vec![[0u8; MAX_DATAGRAM]; BATCH].into_boxed_slice(),
                lens: [0; BATCH],
                addrs: Box::new(mem::zeroed()),
                addr_lens: [0; BATCH],
                iovs: Box::new(mem::zeroed()),
                hdrs: Box::new(mem::zeroed()),
                len: 0,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == BATCH
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The `i`th received datagram and its source; `None` if the source address
    /// family is not IP (never for a UDP socket) or `i` is out of range.
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if i >= self.len {
            return None;
        }
        let from = storage_to_addr(&self.addrs[i], self.addr_lens[i])?;
        Some((from, &self.bufs[i][..self.lens[i]]))
    }

    /// Queues one datagram to send; returns false when the batch is full or the
    /// datagram is too long for a slot (such a datagram is not sent).
    pub fn push(&mut self, to: SocketAddr, bytes: &[u8]) -> bool {
        if self.is_full() || bytes.len() > MAX_DATAGRAM {
            return false;
        }
        let i = self.len;
        self.bufs[i][..bytes.len()].copy_from_slice(bytes);
        self.lens[i] = bytes.len();
        self.addr_lens[i] = addr_to_storage(to, &mut self.addrs[i]);
        self.len += 1;
        true
    }

    /// The datagram queued in slot `i`, for a slow-path resend.
    pub fn queued(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        self.get(i)
    }

    /// Receives up to [`BATCH`] datagrams without blocking. Returns how many
    /// arrived (0 if none were waiting).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.len = 0;
        for i in 0..BATCH {
            self.addr_lens[i] = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            self.prepare(i, MAX_DATAGRAM);
        }
        // SAFETY: every header points into buffers owned by `self` that outlive the
        // call, with lengths matching their allocations.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(err)
            };
        }
        let n = n as usize;
        for i in 0..n {
            // A datagram longer than a slot arrives cut (MSG_TRUNC). Its head
            // alone can be a valid message; an empty one never is.
            let cut = self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.lens[i] = if cut { 0 } else { self.hdrs[i].msg_len as usize };
            self.addr_lens[i] = self.hdrs[i].msg_hdr.msg_namelen;
        }
        self.len = n;
        Ok(n)
    }

    /// Sends the queued datagrams from slot `start` on, without blocking. Returns
    /// how many the kernel took; the caller resends the rest by a waiting path.
    pub fn send(&mut self, fd: RawFd, start: usize) -> io::Result<usize> {
        if start >= self.len {
            return Ok(0);
        }
        for i in start..self.len {
            self.prepare(i, self.lens[i]);
        }
        // SAFETY: as in `recv`; the headers from `start` to `len` were just prepared.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr().add(start),
                (self.len - start) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(err)
            };
        }
        Ok(n as usize)
    }

    fn prepare(&mut self, i: usize, len: usize) {
        self.iovs[i] = libc::iovec {
            iov_base: self.bufs[i].as_mut_ptr().cast(),
            iov_len: len,
        };
        let hdr = &mut self.hdrs[i].msg_hdr;
        hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = self.addr_lens[i];
        hdr.msg_iov = &mut self.iovs[i];
        hdr.msg_iovlen = 1;
        hdr.msg_control = std::ptr::null_mut();
        hdr.msg_controllen = 0;
        hdr.msg_flags = 0;
        self.hdrs[i].msg_len = 0;
    }
}

fn addr_to_storage(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn storage_to_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family and length say the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family and length say the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn addresses_round_trip_through_sockaddr_storage() {
        let cases: [SocketAddr; 3] = [
            "127.3.2.1:6881".parse().unwrap(),
            "[::1]:51413".parse().unwrap(),
            "10.0.0.1:1".parse().unwrap(),
        ];
        for addr in cases {
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut storage = unsafe { mem::zeroed() };
            let len = addr_to_storage(addr, &mut storage);
            assert_eq!(storage_to_addr(&storage, len), Some(addr));
            assert_eq!(storage_to_addr(&storage, 2), None, "a truncated address is rejected");
        }
    }

    #[test]
    fn batch_moves_datagrams_between_loopback_sockets() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let b = bind_udp("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let b_addr = b.local_addr().unwrap().as_socket().unwrap();
        let a_addr = a.local_addr().unwrap().as_socket().unwrap();

        let mut out = Batch::new();
        for i in 0..10u8 {
            assert!(out.push(b_addr, &[i; 7][..usize::from(i) % 7 + 1]));
        }
        assert!(
            !out.push(b_addr, &[0; MAX_DATAGRAM + 1]),
            "oversized datagrams are refused"
        );
        assert_eq!(out.send(a.as_raw_fd(), 0).unwrap(), 10);

        let mut inb = Batch::new();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < 10 && std::time::Instant::now() < deadline {
            inb.recv(b.as_raw_fd()).unwrap();
            for i in 0..inb.len() {
                let (from, bytes) = inb.get(i).unwrap();
                assert_eq!(from, a_addr);
                got.push(bytes.to_vec());
            }
        }
        assert_eq!(got.len(), 10);
        for (i, bytes) in got.iter().enumerate() {
            assert_eq!(bytes.len(), i % 7 + 1);
            assert!(bytes.iter().all(|&x| usize::from(x) == i));
        }
        assert_eq!(
            inb.recv(b.as_raw_fd()).unwrap(),
            0,
            "an empty socket gives an empty batch"
        );
    }

    #[test]
    fn a_datagram_longer_than_a_slot_arrives_empty() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = bind_udp("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let b_addr = b.local_addr().unwrap().as_socket().unwrap();
        for len in [MAX_DATAGRAM, MAX_DATAGRAM + 1, 60_000] {
            a.send_to(&vec![b'x'; len], b_addr).unwrap();
        }
        let mut inb = Batch::new();
        let mut lens = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while lens.len() < 3 && std::time::Instant::now() < deadline {
            inb.recv(b.as_raw_fd()).unwrap();
            lens.extend((0..inb.len()).map(|i| inb.get(i).unwrap().1.len()));
        }
        assert_eq!(lens, [MAX_DATAGRAM, 0, 0]);
    }

    #[test]
    fn binding_a_port_in_use_is_a_bind_error() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let addr = a.local_addr().unwrap().as_socket().unwrap();
        match bind_udp(addr, 0) {
            Err(RuntimeError::Bind { addr: got, source }) => {
                assert_eq!(got, addr);
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
    }
}
