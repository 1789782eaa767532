//! Which core owns a remote node: one function, computed identically in Rust and,
//! as a classic-BPF program, by the kernel's `SO_REUSEPORT` socket selection.
//!
//! Owns the hash ([`owner`]), the kernel program ([`program`]) and the packet
//! offsets the program reads. Must not touch a socket: attaching the program is
//! [`crate::runtime::crawl::reuseport`]'s job.
//!
//! # Why the owner depends on the source IP only
//! Remote DHT nodes rate-limit per IP (libtorrent ignores an IP that sends 50
//! messages in 10 s), so pacing must be per IP. If the source port took part in
//! the hash, nodes sharing an IP would be spread over cores, each core would pace
//! that IP independently and together they would burst it. Hashing the address
//! alone keeps every node of one IP on one core, so per-IP pacing stays a purely
//! local decision. It also keeps the kernel program at fixed offsets: the source
//! address sits at a fixed place in both IP headers, while the UDP source port
//! moves with IPv4 options and IPv6 extension headers.
//!
//! # The hash
//! The address is read as big-endian 32-bit words (one for IPv4, four for IPv6),
//! exactly what a BPF `ld [k]` yields, and folded with a multiply/xor-shift
//! round per word, then finalized murmur3-style so the low bits used by the
//! modulo depend on every input bit. Only 32-bit multiply, shift, xor and modulo
//! by a constant are used, which classic BPF has.

use std::net::{IpAddr, SocketAddr};

/// Multiplier of the per-word round (2^32 / golden ratio, odd).
const ROUND_MUL: u32 = 0x9E37_79B1;
/// Multiplier of the finalizer (murmur3 `fmix32`).
const FINAL_MUL: u32 = 0x85EB_CA6B;
const ROUND_SHIFT: u32 = 16;
const FINAL_SHIFT: u32 = 13;

/// Offset of the source address in the IPv4 header.
const IPV4_SRC_OFFSET: i32 = 12;
/// Offset of the source address in the IPv6 header.
const IPV6_SRC_OFFSET: i32 = 8;
const WORD_LEN: i32 = 4;

/// The address family a reuseport group serves: one kernel program per family,
/// since an `AF_INET6` socket with `IPV6_V6ONLY` only ever sees IPv6 packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &SocketAddr) -> Family {
        match addr.ip().to_canonical() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// The core (0..cores) that owns the remote node at `addr`: the index of the
/// socket, in binding order, that the kernel delivers its datagrams to.
/// `cores` of 0 is treated as 1.
#[inline]
pub fn owner(addr: SocketAddr, cores: usize) -> usize {
    let cores = cores.clamp(1, u32::MAX as usize) as u32;
    (hash_ip(addr.ip()) % cores) as usize
}

/// The 32-bit hash behind [`owner`]. IPv4-mapped IPv6 addresses hash as the
/// IPv4 address they carry, since that is how the packet arrives.
#[inline]
pub fn hash_ip(ip: IpAddr) -> u32 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => finish(round(0, u32::from_be_bytes(v4.octets()))),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut h = 0;
            for w in o.chunks_exact(WORD_LEN as usize) {
                h = round(h, u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            }
            finish(h)
        }
    }
}

#[inline]
fn round(h: u32, word: u32) -> u32 {
    let h = (h ^ word).wrapping_mul(ROUND_MUL);
    h ^ (h >> ROUND_SHIFT)
}

#[inline]
fn finish(h: u32) -> u32 {
    let h = h.wrapping_mul(FINAL_MUL);
    h ^ (h >> FINAL_SHIFT)
}

/// The classic-BPF program for `SO_ATTACH_REUSEPORT_CBPF` that returns
/// `owner(source, cores)` for every datagram of `family`. The kernel runs it with
/// the packet data starting after the UDP header, so the IP header is reached
/// through `SKF_NET_OFF`. Its length is fixed by `family` (at most 26 instructions).
pub fn program(family: Family, cores: usize) -> Vec<libc::sock_filter> {
    let cores = cores.clamp(1, u32::MAX as usize) as u32;
    let (src, words) = match family {
        Family::V4 => (IPV4_SRC_OFFSET, 1),
        Family::V6 => (IPV6_SRC_OFFSET, 4),
    };
    let mut p = Vec::with_capacity(words * 7 + 6);
    for i in 0..words as i32 {
        let k = (libc::SKF_NET_OFF + src + i * WORD_LEN) as u32;
        if i == 0 {
            // h = 0, so h ^ word is just the word.
            p.push(stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, k));
        } else {
            p.push(stmt(libc::BPF_MISC | libc::BPF_TAX, 0));
            p.push(stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, k));
            p.push(stmt(libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X, 0));
        }
        xor_shift_mul(&mut p, ROUND_MUL, ROUND_SHIFT);
    }
    xor_shift_mul(&mut p, FINAL_MUL, FINAL_SHIFT);
    p.push(stmt(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, cores));
    p.push(stmt(libc::BPF_RET | libc::BPF_A, 0));
    p
}

/// A = A * mul; A ^= A >> shift (using X as scratch).
fn xor_shift_mul(p: &mut Vec<libc::sock_filter>, mul: u32, shift: u32) {
    p.push(stmt(libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K, mul));
    p.push(stmt(libc::BPF_MISC | libc::BPF_TAX, 0));
    p.push(stmt(libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K, shift));
    p.push(stmt(libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X, 0));
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Runs the subset of classic BPF that [`program`] emits over a packet whose
    /// network header is `net`, as the kernel would.
    fn run(prog: &[libc::sock_filter], net: &[u8]) -> Option<u32> {
        let (mut a, mut x) = (0u32, 0u32);
        for ins in prog {
            let code = ins.code as u32;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let off = (ins.k as i32).checked_sub(libc::SKF_NET_OFF)? as usize;
                    let w = net.get(off..off + 4)?;
                    a = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                }
                c if c == libc::BPF_MISC | libc::BPF_TAX => x = a,
                c if c == libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X => a ^= x,
                c if c == libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K => a = a.wrapping_mul(ins.k),
                c if c == libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K => a >>= ins.k,
                c if c == libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K => a %= ins.k,
                c if c == libc::BPF_RET | libc::BPF_A => return Some(a),
                _ => return None,
            }
        }
        None
    }

    fn ipv4_header(src: Ipv4Addr) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0];
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&[127, 0, 0, 1]);
        h
    }

    fn ipv6_header(src: Ipv6Addr) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        h
    }

    /// A deterministic stream of addresses (splitmix64), no RNG dependency.
    fn mix(i: u64) -> u64 {
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn kernel_program_matches_rust_owner_for_both_families() {
        for cores in [1usize, 2, 3, 4, 7, 16] {
            let p4 = program(Family::V4, cores);
            let p6 = program(Family::V6, cores);
            for i in 0..2000u64 {
                let v4 = Ipv4Addr::from(mix(i) as u32);
                let sa = SocketAddr::new(v4.into(), (mix(i + 1) as u16) | 1);
                assert_eq!(
                    run(&p4, &ipv4_header(v4)),
                    Some(owner(sa, cores) as u32),
                    "{sa} cores={cores}"
                );
                let v6 = Ipv6Addr::from(((mix(i) as u128) << 64) | mix(!i) as u128);
                let sa = SocketAddr::new(v6.into(), 6881);
                assert_eq!(
                    run(&p6, &ipv6_header(v6)),
                    Some(owner(sa, cores) as u32),
                    "{sa} cores={cores}"
                );
            }
        }
    }

    #[test]
    fn owner_ignores_port_and_maps_v4_in_v6_to_v4() {
        let ip = Ipv4Addr::new(82, 1, 2, 3);
        let a = owner(SocketAddr::new(ip.into(), 1), 8);
        assert_eq!(a, owner(SocketAddr::new(ip.into(), 65535), 8));
        assert_eq!(a, owner(SocketAddr::new(ip.to_ipv6_mapped().into(), 9), 8));
        assert_eq!(Family::of(&SocketAddr::new(ip.to_ipv6_mapped().into(), 9)), Family::V4);
        assert_eq!(owner(SocketAddr::new(ip.into(), 1), 0), 0);
    }

    /// Every core gets within 5% of its fair share, for random addresses and for
    /// the dense, sequential 127.x.y.z blocks the loopback swarm uses.
    #[test]
    fn owner_is_balanced() {
        const N: u32 = 120_000;
        for cores in [2usize, 3, 4, 6, 8, 12] {
            let fair = N as f64 / cores as f64;
            type Gen = Box<dyn Fn(u32) -> IpAddr>;
            let sets: [(&str, Gen); 3] = [
                ("random v4", Box::new(|i| Ipv4Addr::from(mix(i as u64) as u32).into())),
                ("sequential 127/8", Box::new(|i| Ipv4Addr::from(0x7F00_0001 + i).into())),
                (
                    "sequential v6 /64",
                    Box::new(|i| Ipv6Addr::from(0x2001_0db8u128 << 96 | i as u128).into()),
                ),
            ];
            for (name, gen) in sets.iter() {
                let mut count = vec![0u32; cores];
                for i in 0..N {
                    count[owner(SocketAddr::new(gen(i), 6881), cores)] += 1;
                }
                for (core, &c) in count.iter().enumerate() {
                    let dev = (c as f64 - fair).abs() / fair;
                    assert!(dev < 0.05, "{name}: core {core} of {cores} got {c}, fair {fair}");
                }
            }
        }
    }

    #[test]
    fn program_reads_only_the_source_address() {
        for (family, off, words) in [(Family::V4, IPV4_SRC_OFFSET, 1), (Family::V6, IPV6_SRC_OFFSET, 4)] {
            let loads: Vec<i32> = program(family, 4)
                .iter()
                .filter(|i| i.code as u32 == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS)
                .map(|i| i.k as i32 - libc::SKF_NET_OFF)
                .collect();
            let want: Vec<i32> = (0..words).map(|w| off + w * WORD_LEN).collect();
            assert_eq!(loads, want);
        }
    }
}
