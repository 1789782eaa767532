//! The loopback load generator of the node-answer benchmark: a mix of `ping`,
//! `find_node` and `get_peers` queries from many source addresses, sent as fast as
//! one core allows, and a count of the replies that come back.
//!
//! One UDP socket bound to `0.0.0.0` plays every source: `IP_PKTINFO` on each
//! outgoing datagram picks its 127.x source address, and on each incoming one
//! tells which virtual source was addressed. Queries the node under test sends to
//! those sources (pings of new contacts, lookups) get a minimal reply so its
//! routing table fills as it would among live peers. Owns its buffers; allocates
//! nothing per datagram. It must not pace, judge or interpret the node beyond
//! "is this a reply or a query".

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use trawl_engine::codec::krpc::{self, Kind, Message, Query, ResponseOut, Want};

const BATCH: usize = 64;
const MAX_DATAGRAM: usize = 1500;
/// Room for one `IP_PKTINFO` control message (CMSG_SPACE(12) = 32 on Linux).
const CONTROL_LEN: usize = 64;

/// One query ready to send: its bytes and the virtual source it comes from.
struct Template {
    bytes: Vec<u8>,
    source: Ipv4Addr,
}

/// What one run of the generator saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub queries_sent: u64,
    pub replies: u64,
    /// Error replies (KRPC `e`); counted apart, they are not answers.
    pub errors: u64,
    /// Queries from the node to our virtual sources, which we answered.
    pub node_queries: u64,
    pub undecodable: u64,
}

struct Slots {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: [usize; BATCH],
    names: [libc::sockaddr_in; BATCH],
    controls: [[u64; CONTROL_LEN / 8]; BATCH],
    iovs: [libc::iovec; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
}

impl Slots {
    fn new() -> Box<Slots> {
        // SAFETY: sockaddr_in, iovec and mmsghdr are plain C data, valid when zeroed.
        let (names, iovs, hdrs) = unsafe { (mem::zeroed(), mem::zeroed(), mem::zeroed()) };
        Box::new(Slots {
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH],
            lens: [0; BATCH],
            names,
            controls: [[0; CONTROL_LEN / 8]; BATCH],
            iovs,
            hdrs,
        })
    }

    /// Points header `i` at its buffers; `len` is the iov length, `control` the
    /// control length to offer (0 for none).
    fn prepare(&mut self, i: usize, len: usize, control: usize) {
        self.iovs[i] = libc::iovec {
            iov_base: self.bufs[i].as_mut_ptr().cast(),
            iov_len: len,
        };
        let hdr = &mut self.hdrs[i].msg_hdr;
        hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in).cast();
        hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        hdr.msg_iov = &mut self.iovs[i];
        hdr.msg_iovlen = 1;
        hdr.msg_control = self.controls[i].as_mut_ptr().cast();
        hdr.msg_controllen = control;
        hdr.msg_flags = 0;
    }

    /// Fills slot `i` with a datagram to `to` from virtual source `from`.
    fn set(&mut self, i: usize, bytes: &[u8], to: SocketAddrV4, from: Ipv4Addr) {
        let len = bytes.len().min(MAX_DATAGRAM);
        self.bufs[i][..len].copy_from_slice(&bytes[..len]);
        self.lens[i] = len;
        self.names[i] = sockaddr_in(to);
        self.prepare(i, len, CONTROL_LEN);
        let hdr = &mut self.hdrs[i].msg_hdr;
        // SAFETY: msg_control points at CONTROL_LEN bytes owned by this slot, which
        // is at least CMSG_SPACE(sizeof(in_pktinfo)); CMSG_* only address inside it.
        unsafe {
            let space = libc::CMSG_SPACE(mem::size_of::<libc::in_pktinfo>() as u32) as usize;
            hdr.msg_controllen = space;
            let cmsg = libc::CMSG_FIRSTHDR(hdr);
            (*cmsg).cmsg_level = libc::IPPROTO_IP;
            (*cmsg).cmsg_type = libc::IP_PKTINFO;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::in_pktinfo>() as u32) as usize;
            let info = libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>();
            info.write_unaligned(libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(from.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            });
        }
    }

    /// The destination address of received datagram `i`, from its `IP_PKTINFO`.
    fn local_ip(&self, i: usize) -> Option<Ipv4Addr> {
        let hdr = &self.hdrs[i].msg_hdr;
        // SAFETY: the kernel wrote msg_controllen bytes of well-formed control
        // messages into this slot's buffer; CMSG_NXTHDR stays within them.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_PKTINFO {
                    let info = libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>().read_unaligned();
                    return Some(Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes()));
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        None
    }
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// The node id a virtual source uses: a fixed, well-spread function of its IP.
fn source_id(ip: Ipv4Addr) -> [u8; 20] {
    let mut x = u64::from(u32::from(ip)) ^ 0x9e37_79b9_7f4a_7c15;
    let mut id = [0u8; 20];
    for chunk in id.chunks_mut(8) {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
    }
    id
}

/// The `i`th virtual source address: 127.10.a.b with a, b in 1..=254.
pub fn source_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 10, (1 + (i / 254) % 254) as u8, (1 + i % 254) as u8)
}

pub struct LoadGen {
    socket: Socket,
    templates: Vec<Template>,
    next: usize,
    tx: Box<Slots>,
    rx: Box<Slots>,
    reply: Vec<u8>,
}

impl LoadGen {
    /// A generator with `sources` virtual sources, each sending a ping, a
    /// find_node and a get_peers (random targets) in turn.
    pub fn new(sources: usize, seed: u64) -> io::Result<LoadGen> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_recv_buffer_size(8 << 20)?;
        socket.set_send_buffer_size(8 << 20)?;
        let on: libc::c_int = 1;
        // SAFETY: IP_PKTINFO takes an int flag; the pointer and size describe `on`.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                (&on as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        socket.bind(&SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0))))?;

        let mut rng = seed | 1;
        let mut random_id = || {
            let mut id = [0u8; 20];
            for b in id.iter_mut() {
                // xorshift64: the targets only need to be spread, not secret.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *b = rng as u8;
            }
            id
        };
        let want = Want { v4: false, v6: false };
        let mut templates = Vec::with_capacity(sources * 3);
        for kind in 0..3u32 {
            for i in 0..sources {
                let source = source_ip(i);
                let id = source_id(source);
                let target = random_id();
                let tid = (templates.len() as u32).to_be_bytes();
                let query = match kind {
                    0 => Query::Ping { id: &id },
                    1 => Query::FindNode {
                        id: &id,
                        target: &target,
                        want,
                    },
                    _ => Query::GetPeers {
                        id: &id,
                        info_hash: &target,
                        want,
                        scrape: false,
                        noseed: false,
                    },
                };
                let mut bytes = Vec::with_capacity(128);
                krpc::encode_query(&mut bytes, &tid, &query, false, None);
                templates.push(Template { bytes, source });
            }
        }
        // Interleave kinds and sources so every batch carries the whole mix.
        let n = templates.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&t| (t % sources, t / sources));
        let mut slots: Vec<Option<Template>> = templates.into_iter().map(Some).collect();
        let templates = order.into_iter().filter_map(|t| slots[t].take()).collect();

        Ok(LoadGen {
            socket,
            templates,
            next: 0,
            tx: Slots::new(),
            rx: Slots::new(),
            reply: Vec::with_capacity(64),
        })
    }

    /// Sends one ping from the first source to `target` and waits up to
    /// `timeout` for any reply: proof that the node is up and answering.
    pub fn probe(&mut self, target: SocketAddrV4, timeout: std::time::Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut counts = Counts::default();
        while Instant::now() < deadline {
            let t = &self.templates[0];
            self.tx.set(0, &t.bytes, target, t.source);
            self.send_prepared(1)?;
            let until = (Instant::now() + std::time::Duration::from_millis(200)).min(deadline);
            while Instant::now() < until {
                self.drain(target, &mut counts)?;
                if counts.replies > 0 {
                    return Ok(true);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        Ok(false)
    }

    /// Runs until `until`, as fast as this thread can, against `target`.
    pub fn run(&mut self, target: SocketAddrV4, until: Instant) -> io::Result<Counts> {
        let mut counts = Counts::default();
        while Instant::now() < until {
            for i in 0..BATCH {
                let t = &self.templates[self.next];
                self.next = (self.next + 1) % self.templates.len();
                self.tx.set(i, &t.bytes, target, t.source);
            }
            counts.queries_sent += self.send_prepared(BATCH)? as u64;
            self.drain(target, &mut counts)?;
        }
        // Replies still in flight when the window closed are not counted.
        Ok(counts)
    }

    fn send_prepared(&mut self, n: usize) -> io::Result<usize> {
        send_all(self.socket.as_raw_fd(), &mut self.tx, n)
    }

    /// Takes every waiting datagram: counts replies, answers the node's queries.
    fn drain(&mut self, target: SocketAddrV4, counts: &mut Counts) -> io::Result<()> {
        let fd = self.socket.as_raw_fd();
        loop {
            for i in 0..BATCH {
                self.rx.prepare(i, MAX_DATAGRAM, CONTROL_LEN);
            }
            // SAFETY: every header points into buffers owned by self.rx.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.rx.hdrs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                return if err.kind() == io::ErrorKind::WouldBlock {
                    Ok(())
                } else {
                    Err(err)
                };
            }
            let n = n as usize;
            let mut answers = 0;
            for i in 0..n {
                let len = self.rx.hdrs[i].msg_len as usize;
                let local = self.rx.local_ip(i);
                match Message::decode(&self.rx.bufs[i][..len]) {
                    Ok(Message {
                        kind: Kind::Response(_),
                        ..
                    }) => counts.replies += 1,
                    Ok(Message {
                        kind: Kind::Error(_), ..
                    }) => counts.errors += 1,
                    Ok(Message {
                        kind: Kind::Query(_),
                        transaction_id,
                        ..
                    }) => {
                        counts.node_queries += 1;
                        if let Some(local) = local {
                            let id = source_id(local);
                            self.reply.clear();
                            krpc::encode_response(&mut self.reply, transaction_id, &ResponseOut::new(&id), None, None);
                            self.tx.set(answers, &self.reply, target, local);
                            answers += 1;
                        }
                    }
                    Err(_) => counts.undecodable += 1,
                }
            }
            if answers > 0 {
                send_all(fd, &mut self.tx, answers)?;
            }
            if n < BATCH {
                return Ok(());
            }
        }
    }
}

/// Sends the first `n` prepared slots, retrying the rest when the kernel takes a part.
fn send_all(fd: RawFd, slots: &mut Slots, n: usize) -> io::Result<usize> {
    let mut sent = 0;
    while sent < n {
        // SAFETY: headers sent..n were prepared by `Slots::set` and point into `slots`.
        let rc = unsafe { libc::sendmmsg(fd, slots.hdrs.as_mut_ptr().add(sent), (n - sent) as u32, 0) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        sent += rc as usize;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_distinct_loopback_addresses_with_distinct_ids() {
        let ips: std::collections::HashSet<_> = (0..5000).map(source_ip).collect();
        assert_eq!(ips.len(), 5000);
        assert!(ips
            .iter()
            .all(|ip| ip.is_loopback() && ip.octets()[3] != 0 && ip.octets()[3] != 255));
        let ids: std::collections::HashSet<_> = ips.iter().map(|&ip| source_id(ip)).collect();
        assert_eq!(ids.len(), 5000);
    }

    #[test]
    fn templates_mix_the_three_queries_in_every_batch() {
        let gen = LoadGen::new(100, 7).unwrap();
        assert_eq!(gen.templates.len(), 300);
        let mut methods = std::collections::HashSet::new();
        for t in &gen.templates[..BATCH] {
            match Message::decode(&t.bytes).unwrap().kind {
                Kind::Query(q) => {
                    methods.insert(q.method().to_vec());
                }
                other => panic!("not a query: {other:?}"),
            }
        }
        assert_eq!(methods.len(), 3, "a batch holds ping, find_node and get_peers");
    }
}
