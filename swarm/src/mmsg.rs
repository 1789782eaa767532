//! Batched UDP I/O over `recvmmsg`/`sendmmsg` with `IP_PKTINFO`, for IPv4.
//!
//! Owns: the syscall plumbing (iovecs, message headers, control messages) and
//! the reusable buffers of one batch, so the swarm, the ceiling blast and the
//! load generator move datagrams with no allocation per packet.
//! Must not: interpret payloads.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;

/// Largest datagram handled; DHT messages are well below a 1500-byte MTU.
pub const MAX_DATAGRAM: usize = 2048;
/// Room for one `in_pktinfo` control message (CMSG_SPACE of 12 bytes on 64-bit).
const CMSG_LEN: usize = 64;

fn sockaddr_of(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr = libc::in_addr {
        s_addr: u32::from(*addr.ip()).to_be(),
    };
    sa
}

fn addr_of(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    )
}

/// Buffers for receiving up to `n` datagrams in one `recvmmsg`.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    addrs: Vec<libc::sockaddr_in>,
    cmsgs: Vec<[u8; CMSG_LEN]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
}

impl RecvBatch {
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        // SAFETY: these are plain C structs; all-zero is valid and every pointer
        // in them is set before each syscall.
        unsafe {
            Self {
                bufs: vec![[0; MAX_DATAGRAM]; n],
                addrs: vec![zeroed(); n],
                cmsgs: vec![[0; CMSG_LEN]; n],
                iovs: vec![zeroed(); n],
                hdrs: vec![zeroed(); n],
                count: 0,
            }
        }
    }

    /// Receives up to a batch. `flags` as for recvmmsg (e.g. `MSG_WAITFORONE`
    /// to return after the first datagram, `MSG_DONTWAIT` not to block).
    /// Returns how many arrived; a timeout or would-block is `Ok(0)`.
    pub fn recv(&mut self, fd: RawFd, flags: i32) -> io::Result<usize> {
        self.count = 0;
        let n = self.bufs.len();
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            h.msg_controllen = CMSG_LEN as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points into buffers owned by self that outlive the call.
        let rc = unsafe { libc::recvmmsg(fd, self.hdrs.as_mut_ptr(), n as u32, flags, std::ptr::null_mut()) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        self.count = rc as usize;
        Ok(self.count)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i` of the last batch: payload, sender, and the local address
    /// it was sent to (from `IP_PKTINFO`, if enabled on the socket).
    pub fn get(&self, i: usize) -> (&[u8], SocketAddrV4, Option<Ipv4Addr>) {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(MAX_DATAGRAM);
        (&self.bufs[i][..len], addr_of(&self.addrs[i]), pktinfo_dst(&h.msg_hdr))
    }
}

/// The destination address of a received datagram, from its IP_PKTINFO cmsg.
fn pktinfo_dst(h: &libc::msghdr) -> Option<Ipv4Addr> {
    // SAFETY: the header was filled by the kernel; CMSG_* walk only within
    // msg_control..msg_controllen, and in_pktinfo is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Up to `n` datagrams queued for one `sendmmsg`, each with an optional
/// source address (IP_PKTINFO's `ipi_spec_dst`).
pub struct SendBatch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_in>,
    srcs: Vec<Option<Ipv4Addr>>,
    cmsgs: Vec<[u8; CMSG_LEN]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
}

impl SendBatch {
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        // SAFETY: plain C structs; pointers are set before each syscall.
        unsafe {
            Self {
                bufs: (0..n).map(|_| Vec::with_capacity(MAX_DATAGRAM)).collect(),
                addrs: vec![zeroed(); n],
                srcs: vec![None; n],
                cmsgs: vec![[0; CMSG_LEN]; n],
                iovs: vec![zeroed(); n],
                hdrs: vec![zeroed(); n],
                count: 0,
            }
        }
    }

    pub fn is_full(&self) -> bool {
        self.count == self.bufs.len()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Queues one datagram to `to`, sent from `src` if given; returns its
    /// cleared buffer for the caller to fill. The caller flushes when full.
    pub fn push(&mut self, to: SocketAddrV4, src: Option<Ipv4Addr>) -> &mut Vec<u8> {
        debug_assert!(!self.is_full());
        let i = self.count.min(self.bufs.len() - 1);
        self.count = i + 1;
        self.addrs[i] = sockaddr_of(to);
        self.srcs[i] = src;
        let buf = &mut self.bufs[i];
        buf.clear();
        buf
    }

    /// Lets `fill` write the next datagram into a cleared buffer and name its
    /// destination (and source); `None` queues nothing. Returns whether one was queued.
    pub fn push_with(&mut self, fill: impl FnOnce(&mut Vec<u8>) -> Option<(SocketAddrV4, Option<Ipv4Addr>)>) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.count;
        let buf = &mut self.bufs[i];
        buf.clear();
        let Some((to, src)) = fill(buf) else { return false };
        self.addrs[i] = sockaddr_of(to);
        self.srcs[i] = src;
        self.count = i + 1;
        true
    }

    /// Drops the most recently pushed datagram (e.g. the caller decided not to answer).
    pub fn pop(&mut self) {
        self.count = self.count.saturating_sub(1);
    }

    /// Sends everything queued, retrying partial sends. Returns datagrams sent;
    /// datagrams the kernel refuses (e.g. ENOBUFS) are dropped and not counted.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.count;
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.bufs[i].len(),
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_flags = 0;
            match self.srcs[i] {
                Some(src) => {
                    // SAFETY: the control buffer is CMSG_LEN bytes, enough for one
                    // in_pktinfo; CMSG_* stay inside it.
                    unsafe {
                        h.msg_control = self.cmsgs[i].as_mut_ptr().cast();
                        h.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as _;
                        let c = libc::CMSG_FIRSTHDR(h);
                        (*c).cmsg_level = libc::IPPROTO_IP;
                        (*c).cmsg_type = libc::IP_PKTINFO;
                        (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                        let info = libc::in_pktinfo {
                            ipi_ifindex: 0,
                            ipi_spec_dst: libc::in_addr {
                                s_addr: u32::from(src).to_be(),
                            },
                            ipi_addr: libc::in_addr { s_addr: 0 },
                        };
                        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
                    }
                }
                None => {
                    h.msg_control = std::ptr::null_mut();
                    h.msg_controllen = 0;
                }
            }
        }
        let mut done = 0;
        let mut sent = 0;
        while done < n {
            // SAFETY: headers point into buffers owned by self.
            let rc = unsafe { libc::sendmmsg(fd, self.hdrs[done..].as_mut_ptr(), (n - done) as u32, 0) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // A full queue or an unreachable address loses this one datagram,
                    // as a real network would.
                    Some(libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED | libc::EINVAL | libc::EADDRNOTAVAIL) => {
                        done += 1;
                        continue;
                    }
                    _ => {
                        self.count = 0;
                        return Err(err);
                    }
                }
            }
            done += rc as usize;
            sent += rc as usize;
        }
        self.count = 0;
        Ok(sent)
    }
}

/// Socket buffer asked for with the privileged options (the kernel doubles it).
const FORCED_BUFFER: libc::c_int = 32 << 20;

fn force_buffer(s: &socket2::Socket, option: libc::c_int, bytes: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt reads sizeof(int) bytes from a valid pointer.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(s),
            libc::SOL_SOCKET,
            option,
            (&bytes as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A UDP socket for the swarm or a benchmark: bound to `bind`, receive timeout
/// `timeout`, big buffers, optionally SO_REUSEPORT and IP_PKTINFO.
pub fn udp_socket(
    bind: SocketAddrV4,
    reuse_port: bool,
    pktinfo: bool,
    timeout: Option<std::time::Duration>,
) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // One socket stands in for every virtual node, so a crawler's burst of
    // queries lands in one buffer: ask past rmem_max where privileged
    // (SO_RCVBUFFORCE), else as much as rmem_max allows.
    if force_buffer(&s, libc::SO_RCVBUFFORCE, FORCED_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(8 << 20);
    }
    if force_buffer(&s, libc::SO_SNDBUFFORCE, FORCED_BUFFER).is_err() {
        let _ = s.set_send_buffer_size(8 << 20);
    }
    s.set_read_timeout(timeout)?;
    if pktinfo {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads sizeof(int) bytes from a valid pointer.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    s.bind(&bind.into())?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn pktinfo_reports_and_sets_the_virtual_address() {
        let server = udp_socket(
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            false,
            true,
            Some(Duration::from_secs(2)),
        )
        .unwrap();
        let port = server.local_addr().unwrap().as_socket_ipv4().unwrap().port();
        let client = udp_socket(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            false,
            false,
            Some(Duration::from_secs(2)),
        )
        .unwrap();
        let client_addr = client.local_addr().unwrap().as_socket_ipv4().unwrap();

        let virtual_ip = Ipv4Addr::new(127, 3, 4, 5);
        let mut out = SendBatch::new(4);
        out.push(SocketAddrV4::new(virtual_ip, port), None)
            .extend_from_slice(b"hello");
        assert_eq!(out.flush(client.as_raw_fd()).unwrap(), 1);

        let mut inb = RecvBatch::new(4);
        assert_eq!(inb.recv(server.as_raw_fd(), libc::MSG_WAITFORONE).unwrap(), 1);
        let (payload, from, dst) = inb.get(0);
        assert_eq!(payload, b"hello");
        assert_eq!(from, client_addr);
        assert_eq!(dst, Some(virtual_ip));

        // The reply leaves from the virtual address.
        out.push(from, Some(virtual_ip)).extend_from_slice(b"hi back");
        assert_eq!(out.flush(server.as_raw_fd()).unwrap(), 1);
        assert_eq!(inb.recv(client.as_raw_fd(), libc::MSG_WAITFORONE).unwrap(), 1);
        let (payload, from, _) = inb.get(0);
        assert_eq!(payload, b"hi back");
        assert_eq!(from, SocketAddrV4::new(virtual_ip, port));
    }
}
