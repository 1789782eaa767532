//! The crawl's UDP sockets: one `SO_REUSEPORT` group per address family, one
//! socket per core, bound in core order, with the owner program attached so the
//! kernel steers every remote IP to the core that owns it.
//!
//! Owns socket creation and options. Must not read or write datagrams (the core
//! loop does, through [`crate::runtime::socket::Batch`]).

use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::reuseport::attach_owner_program;
use super::CrawlError;
use crate::crawl::Family;

/// One family's sockets, index = core, and what the kernel granted.
pub struct Group {
    pub sockets: Vec<Socket>,
    pub local: SocketAddr,
    /// `SO_RCVBUF` as the kernel reports it (Linux doubles the request for
    /// bookkeeping, so this is twice the usable size).
    pub recv_buffer: usize,
}

/// Binds `cores` sockets to `addr` (port 0: the first picks a port, the rest
/// join it) and attaches the owner program for `family`.
pub fn bind_group(addr: SocketAddr, cores: usize, recv_buffer: usize) -> Result<Group, CrawlError> {
    let family = Family::of(&addr);
    if addr.port() != 0 {
        // Reuseport sockets of the same user would silently join another
        // crawl's group; a plain bind first tells "in use" apart.
        drop(new_socket(addr, recv_buffer, false)?);
    }
    let mut sockets = Vec::with_capacity(cores);
    let mut local = addr;
    for _ in 0..cores {
        let s = new_socket(local, recv_buffer, true)?;
        if local.port() == 0 {
            local = s
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .ok_or_else(|| CrawlError::Bind {
                    addr,
                    source: std::io::Error::other("no local address"),
                })?;
        }
        sockets.push(s);
    }
    // The program steers the whole group; binding order is the socket index.
    attach_owner_program(&sockets[0], family, cores).map_err(|source| CrawlError::SocketOption {
        option: "SO_ATTACH_REUSEPORT_CBPF",
        source,
    })?;
    let recv_buffer = sockets[0].recv_buffer_size().unwrap_or(0);
    Ok(Group {
        sockets,
        local,
        recv_buffer,
    })
}

/// One group member. It stays in blocking mode: io_uring fails reads on an
/// `O_NONBLOCK` socket with EAGAIN instead of waiting, so the batch calls pass
/// `MSG_DONTWAIT` instead.
fn new_socket(addr: SocketAddr, recv_buffer: usize, reuse_port: bool) -> Result<Socket, CrawlError> {
    let bind_err = |source| CrawlError::Bind { addr, source };
    let option = |option| move |source| CrawlError::SocketOption { option, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(bind_err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(option("IPV6_V6ONLY"))?;
    }
    socket.set_reuse_port(reuse_port).map_err(option("SO_REUSEPORT"))?;
    // A reply burst that overflows this buffer is lost, and a lost sample
    // reply is a node we must then leave alone for its whole interval. With
    // CAP_NET_ADMIN (root) SO_RCVBUFFORCE passes net.core.rmem_max; without
    // it SO_RCVBUF is capped there (a smaller buffer still works, warned about).
    if force_recv_buffer(&socket, recv_buffer).is_err() {
        socket.set_recv_buffer_size(recv_buffer).map_err(option("SO_RCVBUF"))?;
    }
    socket.bind(&SockAddr::from(addr)).map_err(bind_err)?;
    Ok(socket)
}

fn force_recv_buffer(socket: &Socket, bytes: usize) -> std::io::Result<()> {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads sizeof(int) bytes from a valid pointer.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_shares_one_port_and_a_second_group_on_it_is_refused() {
        let g = bind_group("127.0.0.1:0".parse().unwrap(), 2, 1 << 20).unwrap();
        assert_eq!(g.sockets.len(), 2);
        assert_ne!(g.local.port(), 0);
        for s in &g.sockets {
            assert_eq!(s.local_addr().unwrap().as_socket(), Some(g.local));
        }
        assert!(g.recv_buffer > 0);
        // A socket without SO_REUSEPORT cannot take the port, nor can a second group.
        let err = std::net::UdpSocket::bind(g.local).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        match bind_group(g.local, 2, 0) {
            Err(CrawlError::Bind { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse),
            Err(e) => panic!("expected a bind error, got {e}"),
            Ok(_) => panic!("a second group joined the first one's port"),
        }
    }
}
