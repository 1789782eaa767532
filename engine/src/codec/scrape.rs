//! BEP 33 scrape bloom filters (`BFsd`, `BFpe`), shared by the node that fills
//! them, the swarm simulator and the crawler that reads them.
//!
//! Owns: the 2048-bit filter, its two SHA-1-derived bit positions per IP, union,
//! and the BEP's size estimate.
//! Must not: know about KRPC messages or sockets.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

use super::wire::BLOOM_LEN;

/// Bits in the filter (m in the BEP).
const BITS: usize = BLOOM_LEN * 8;
/// Bit positions set per element (k in the BEP).
const HASHES: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ScrapeBloom {
    bits: [u8; BLOOM_LEN],
}

impl Default for ScrapeBloom {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for ScrapeBloom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ScrapeBloom")
            .field("estimate", &self.estimate())
            .finish()
    }
}

impl ScrapeBloom {
    pub fn new() -> Self {
        Self { bits: [0; BLOOM_LEN] }
    }

    pub fn from_bytes(bytes: &[u8; BLOOM_LEN]) -> Self {
        Self { bits: *bytes }
    }

    pub fn as_bytes(&self) -> &[u8; BLOOM_LEN] {
        &self.bits
    }

    /// The two bit indices of `ip`: SHA-1 over its 4 or 16 address bytes, then
    /// the first two little-endian 16-bit words of the digest, modulo 2048.
    fn positions(ip: IpAddr) -> [usize; HASHES] {
        // An IPv4-mapped IPv6 address is the IPv4 peer; hash it as such.
        let digest = match ip.to_canonical() {
            IpAddr::V4(v4) => Sha1::digest(v4.octets()),
            IpAddr::V6(v6) => Sha1::digest(v6.octets()),
        };
        [
            usize::from(u16::from_le_bytes([digest[0], digest[1]])) % BITS,
            usize::from(u16::from_le_bytes([digest[2], digest[3]])) % BITS,
        ]
    }

    pub fn insert(&mut self, ip: IpAddr) {
        for bit in Self::positions(ip) {
            self.bits[bit / 8] |= 1 << (bit % 8);
        }
    }

    /// True if `ip` may have been inserted (false positives are possible).
    pub fn contains(&self, ip: IpAddr) -> bool {
        Self::positions(ip)
            .iter()
            .all(|&bit| self.bits[bit / 8] & (1 << (bit % 8)) != 0)
    }

    /// Merges `other` into `self`: the filter of both sets.
    pub fn union(&mut self, other: &ScrapeBloom) {
        for (a, b) in self.bits.iter_mut().zip(other.bits.iter()) {
            *a |= b;
        }
    }

    /// The BEP's estimate of how many distinct IPs were inserted:
    /// c = ln(z / m) / (k * ln(1 - 1/m)), z = zero bits, clamped so a full
    /// filter gives a finite (maximum) estimate.
    pub fn estimate(&self) -> f64 {
        let ones: u32 = self.bits.iter().map(|b| b.count_ones()).sum();
        let zeros = (BITS as f64 - f64::from(ones)).max(1.0);
        let m = BITS as f64;
        (zeros / m).ln() / (HASHES as f64 * (1.0 - 1.0 / m).ln())
    }
}
