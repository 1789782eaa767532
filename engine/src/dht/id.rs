//! Node ids: a fresh random id at every start, BEP 42 secure ids derived from our
//! external IP, and the check of other nodes' ids against their IPs. Pure functions;
//! randomness is passed in.

use std::net::IpAddr;

use rand::Rng;

use crate::codec::wire::ID_LEN;

/// BEP 42 masks applied to the IP before hashing: the bits that survive NAT pools
/// and hosting allocations.
const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

/// A node id, target or infohash: a point in the 160-bit keyspace.
pub type NodeId = [u8; ID_LEN];

pub fn random(rng: &mut impl Rng) -> NodeId {
    let mut id = [0u8; ID_LEN];
    rng.fill(&mut id[..]);
    id
}

/// A BEP 42 id for `ip`: the top 21 bits are crc32c of the masked IP mixed with
/// `r`, and the last byte carries `r`.
pub fn secure(ip: IpAddr, rng: &mut impl Rng) -> NodeId {
    let mut id = random(rng);
    let r: u8 = rng.gen::<u8>() & 0x07;
    let crc = secure_prefix(ip, r);
    id[0] = (crc >> 24) as u8;
    id[1] = (crc >> 16) as u8;
    id[2] = ((crc >> 8) as u8 & 0xf8) | (id[2] & 0x07);
    id[19] = r | (id[19] & 0xf8);
    id
}

/// Whether `id` is a valid BEP 42 id for `ip`. Non-public IPs are exempt per the
/// BEP and always pass.
pub fn is_secure_for(id: &NodeId, ip: IpAddr) -> bool {
    if !is_public(ip) {
        return true;
    }
    let crc = secure_prefix(ip, id[19] & 0x07);
    id[0] == (crc >> 24) as u8 && id[1] == (crc >> 16) as u8 && id[2] & 0xf8 == (crc >> 8) as u8 & 0xf8
}

/// A random id sharing exactly the first `prefix_len` bits with `own` (the target
/// of a bucket refresh). `prefix_len` of 160 returns `own`.
pub fn random_with_prefix(own: &NodeId, prefix_len: usize, rng: &mut impl Rng) -> NodeId {
    if prefix_len >= ID_LEN * 8 {
        return *own;
    }
    let mut id = random(rng);
    let full = prefix_len / 8;
    id[..full].copy_from_slice(&own[..full]);
    let bit = prefix_len % 8;
    let keep = !(0xffu8 >> bit); // bits of `own` kept in the boundary byte
    let flip = 0x80u8 >> bit; // the first differing bit
    id[full] = (own[full] & keep) | (!own[full] & flip) | (id[full] & !keep & !flip);
    id
}

fn secure_prefix(ip: IpAddr, r: u8) -> u32 {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            for (x, m) in b.iter_mut().zip(V4_MASK) {
                *x &= m;
            }
            b[0] |= r << 5;
            crc32c::crc32c(&b)
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut b = [0u8; 8];
            for i in 0..8 {
                b[i] = o[i] & V6_MASK[i];
            }
            b[0] |= r << 5;
            crc32c::crc32c(&b)
        }
    }
}

/// BEP 42 exempts local addresses: they carry no meaning to hash.
fn is_public(ip: IpAddr) -> bool {
    super::addr_filter::AddrFilter::new(false).check_ip(ip).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::distance::Distance;
    use rand::{rngs::SmallRng, SeedableRng};

    fn hex(s: &str) -> [u8; 20] {
        let mut out = [0u8; 20];
        for i in 0..20 {
            out[i] = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// The example table of BEP 42 (IP, example id).
    const VECTORS: [(&str, &str); 5] = [
        ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
        ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
        ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
        ("84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
        ("43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
    ];

    #[test]
    fn bep42_examples_verify_and_wrong_ips_fail() {
        for (ip, id) in VECTORS {
            let id = hex(id);
            assert!(is_secure_for(&id, ip.parse().unwrap()), "{ip}");
            assert!(!is_secure_for(&id, "8.8.8.8".parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn generated_secure_ids_verify_and_reproduce_the_bep_prefix() {
        let mut rng = SmallRng::seed_from_u64(7);
        for (ip, example) in VECTORS {
            let ip: IpAddr = ip.parse().unwrap();
            let id = secure(ip, &mut rng);
            assert!(is_secure_for(&id, ip));
            let ex = hex(example);
            // Same r as the example gives the same 21-bit prefix.
            let crc = secure_prefix(ip, ex[19] & 7);
            assert_eq!(
                [(crc >> 24) as u8, (crc >> 16) as u8, (crc >> 8) as u8 & 0xf8],
                [ex[0], ex[1], ex[2] & 0xf8]
            );
        }
        let v6: IpAddr = "2a00:1450:4001::1".parse().unwrap();
        let id = secure(v6, &mut rng);
        assert!(is_secure_for(&id, v6));
        assert!(!is_secure_for(&id, "2a01:4f8::1".parse().unwrap()));
    }

    #[test]
    fn local_ips_are_exempt_from_the_check() {
        let id = [0xab; 20];
        assert!(is_secure_for(&id, "127.0.0.1".parse().unwrap()));
        assert!(is_secure_for(&id, "192.168.1.5".parse().unwrap()));
    }

    #[test]
    fn random_with_prefix_shares_exactly_that_prefix() {
        let mut rng = SmallRng::seed_from_u64(1);
        let own = random(&mut rng);
        for p in [0, 1, 7, 8, 9, 63, 150, 159] {
            for _ in 0..20 {
                let t = random_with_prefix(&own, p, &mut rng);
                assert_eq!(Distance::between(&own, &t).leading_zeros(), p, "prefix {p}");
            }
        }
        assert_eq!(random_with_prefix(&own, 160, &mut rng), own);
    }
}
