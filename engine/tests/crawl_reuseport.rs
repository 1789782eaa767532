//! The kernel steers each datagram to the socket the crawler's owner function
//! names: N `SO_REUSEPORT` sockets on one loopback port, the owner program
//! attached, datagrams from many 127.x addresses and ports.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use trawl_engine::crawl::owner::{owner, Family};
use trawl_engine::runtime::crawl::reuseport::attach_owner_program;

fn reuseport_group(ip: IpAddr, n: usize) -> std::io::Result<Vec<UdpSocket>> {
    let mut port = 0;
    let mut group = Vec::with_capacity(n);
    for _ in 0..n {
        let addr = SocketAddr::new(ip, port);
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if ip.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_reuse_port(true)?;
        s.bind(&SockAddr::from(addr))?;
        s.set_nonblocking(true)?;
        let s: UdpSocket = s.into();
        port = s.local_addr()?.port();
        group.push(s);
    }
    Ok(group)
}

/// Sends one datagram from each source (payload = its index) and returns, per
/// source index, the socket index it arrived on and the source address seen.
fn deliver(group: &[UdpSocket], sources: &[UdpSocket]) -> HashMap<u32, (usize, SocketAddr)> {
    let to = group[0].local_addr().unwrap();
    for (i, s) in sources.iter().enumerate() {
        s.send_to(&(i as u32).to_be_bytes(), to).unwrap();
    }
    let mut got = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 64];
    while got.len() < sources.len() && Instant::now() < deadline {
        let mut idle = true;
        for (index, sock) in group.iter().enumerate() {
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                idle = false;
                assert_eq!(n, 4);
                let id = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                assert!(got.insert(id, (index, from)).is_none(), "datagram {id} delivered twice");
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

#[test]
fn ipv4_datagrams_land_on_the_owner_socket() {
    for cores in [2usize, 3, 4] {
        let group = reuseport_group(Ipv4Addr::LOCALHOST.into(), cores).unwrap();
        attach_owner_program(&group[0], Family::V4, cores).unwrap();
        // 300 distinct sources: 150 addresses across 127/8, two ports each.
        let mut sources = Vec::new();
        for i in 0..150u32 {
            let ip = Ipv4Addr::from(0x7F00_0000 | (i.wrapping_mul(40_503) & 0x00FF_FFFF) | 2);
            for _ in 0..2 {
                sources.push(UdpSocket::bind(SocketAddr::new(ip.into(), 0)).unwrap());
            }
        }
        let got = deliver(&group, &sources);
        assert_eq!(got.len(), sources.len(), "cores={cores}: datagrams lost");
        let mut per_socket = vec![0usize; cores];
        for (i, s) in sources.iter().enumerate() {
            let src = s.local_addr().unwrap();
            let (index, seen) = got[&(i as u32)];
            assert_eq!(seen, src);
            assert_eq!(index, owner(src, cores), "cores={cores}: {src} on socket {index}");
            per_socket[index] += 1;
        }
        // The test only means something if the program spread the load.
        assert!(per_socket.iter().all(|&n| n > 0), "cores={cores}: {per_socket:?}");
    }
}

#[test]
fn ipv6_datagrams_land_on_the_owner_socket() {
    let cores = 3;
    let group = match reuseport_group(Ipv6Addr::LOCALHOST.into(), cores) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("skipping: IPv6 loopback unavailable here: {e}");
            return;
        }
    };
    attach_owner_program(&group[0], Family::V6, cores).unwrap();
    // Only ::1 exists on this loopback, so every source shares one owner; the
    // port must not move it, and without the program the kernel's random hash
    // would spread these 60 sources over all three sockets.
    let sources: Vec<UdpSocket> = (0..60)
        .map(|_| UdpSocket::bind(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0)).unwrap())
        .collect();
    let got = deliver(&group, &sources);
    assert_eq!(got.len(), sources.len());
    let want = owner(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 1), cores);
    for (i, s) in sources.iter().enumerate() {
        let (index, seen) = got[&(i as u32)];
        assert_eq!(seen, s.local_addr().unwrap());
        assert_eq!(index, want, "{seen} on socket {index}");
    }
}
