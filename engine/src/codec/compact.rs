//! Compact node, peer and sample encodings (BEP 5, 32, 51), read in place.
//!
//! Owns: [`CompactNode`], the zero-copy iterators [`CompactNodes`], [`Peers`] and
//! [`Samples`] over strings borrowed from a datagram, and their writers.
//! Must not: allocate or copy while iterating. Lengths are validated
//! arithmetically when a view is built, so iteration never fails.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::bencode;
use super::wire::{
    COMPACT_NODE_V4_LEN, COMPACT_NODE_V6_LEN, COMPACT_PEER_V4_LEN, COMPACT_PEER_V6_LEN, ID_LEN, IPV4_LEN, IPV6_LEN,
    SAMPLE_LEN,
};

/// A node's id and address, as carried in `nodes` and `nodes6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompactNode {
    pub id: [u8; ID_LEN],
    pub addr: SocketAddr,
}

/// Reads a compact peer: 6 bytes (IPv4) or 18 bytes (IPv6), port big-endian.
#[inline]
pub fn peer_from_bytes(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        COMPACT_PEER_V4_LEN => {
            let ip: [u8; IPV4_LEN] = b[..IPV4_LEN].try_into().ok()?;
            let port = u16::from_be_bytes([b[IPV4_LEN], b[IPV4_LEN + 1]]);
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        COMPACT_PEER_V6_LEN => {
            let ip: [u8; IPV6_LEN] = b[..IPV6_LEN].try_into().ok()?;
            let port = u16::from_be_bytes([b[IPV6_LEN], b[IPV6_LEN + 1]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => None,
    }
}

/// The compact length of an address: 6 for IPv4, 18 for IPv6.
#[inline]
pub fn peer_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => COMPACT_PEER_V4_LEN,
        SocketAddr::V6(_) => COMPACT_PEER_V6_LEN,
    }
}

/// Appends the raw compact form of `addr` (no bencode length prefix).
#[inline]
pub fn write_peer_raw(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Appends `addr` as a bencoded compact string (`6:...` or `18:...`).
#[inline]
pub fn write_peer(out: &mut Vec<u8>, addr: &SocketAddr) {
    bencode::bytes_header(out, peer_len(addr));
    write_peer_raw(out, addr);
}

/// Appends the raw compact node info (id then address).
#[inline]
pub fn write_node_raw(out: &mut Vec<u8>, node: &CompactNode) {
    out.extend_from_slice(&node.id);
    write_peer_raw(out, &node.addr);
}

/// Appends a bencoded `nodes` (IPv4, `v6 == false`) or `nodes6` string holding
/// the entries of `nodes` of that family; entries of the other family are left
/// out, since each string can only carry one.
pub fn write_nodes(out: &mut Vec<u8>, nodes: &[CompactNode], v6: bool) {
    let count = nodes.iter().filter(|n| n.addr.is_ipv6() == v6).count();
    let stride = if v6 { COMPACT_NODE_V6_LEN } else { COMPACT_NODE_V4_LEN };
    bencode::bytes_header(out, count * stride);
    for n in nodes.iter().filter(|n| n.addr.is_ipv6() == v6) {
        write_node_raw(out, n);
    }
}

/// Appends a bencoded `values` list of compact peers.
pub fn write_values(out: &mut Vec<u8>, peers: &[SocketAddr]) {
    bencode::list_begin(out);
    for p in peers {
        write_peer(out, p);
    }
    bencode::end(out);
}

/// Appends a bencoded `samples` string.
pub fn write_samples(out: &mut Vec<u8>, samples: &[[u8; SAMPLE_LEN]]) {
    bencode::bytes_header(out, samples.len() * SAMPLE_LEN);
    for s in samples {
        out.extend_from_slice(s);
    }
}

/// The nodes in a `nodes` (26-byte entries) or `nodes6` (38-byte entries) string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactNodes<'a> {
    raw: &'a [u8],
    v6: bool,
}

impl<'a> CompactNodes<'a> {
    /// A view over a `nodes` string, or `None` if its length is not a multiple of 26.
    #[inline]
    pub fn v4(raw: &'a [u8]) -> Option<Self> {
        (raw.len() % COMPACT_NODE_V4_LEN == 0).then_some(Self { raw, v6: false })
    }

    /// A view over a `nodes6` string, or `None` if its length is not a multiple of 38.
    #[inline]
    pub fn v6(raw: &'a [u8]) -> Option<Self> {
        (raw.len() % COMPACT_NODE_V6_LEN == 0).then_some(Self { raw, v6: true })
    }

    #[inline]
    fn stride(&self) -> usize {
        if self.v6 {
            COMPACT_NODE_V6_LEN
        } else {
            COMPACT_NODE_V4_LEN
        }
    }

    /// Nodes not yet iterated.
    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len() / self.stride()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The compact bytes not yet iterated.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn is_v6(&self) -> bool {
        self.v6
    }
}

impl Iterator for CompactNodes<'_> {
    type Item = CompactNode;

    #[inline]
    fn next(&mut self) -> Option<CompactNode> {
        let stride = self.stride();
        if self.raw.len() < stride {
            return None;
        }
        let (entry, rest) = self.raw.split_at(stride);
        self.raw = rest;
        let (id, peer) = entry.split_at(ID_LEN);
        Some(CompactNode {
            id: id.try_into().ok()?,
            addr: peer_from_bytes(peer)?,
        })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl ExactSizeIterator for CompactNodes<'_> {}

/// The peers of a `values` list: the bytes between its `l` and `e`, already
/// validated to hold only 6- and 18-byte strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers<'a> {
    raw: &'a [u8],
    remaining: usize,
}

impl<'a> Peers<'a> {
    /// Validates a `values` list and returns a view of it. `d` must be at the list.
    /// Returns `Ok(None)` if an item is not a 6- or 18-byte string.
    pub(crate) fn decode(d: &mut bencode::Decoder<'a>) -> Result<Option<Self>, bencode::Error> {
        d.list_begin()?;
        let start = d.position();
        let mut remaining = 0;
        let mut end = start;
        while d.list_next()? {
            if !d.at_bytes() {
                return Ok(None);
            }
            let b = d.bytes()?;
            if b.len() != COMPACT_PEER_V4_LEN && b.len() != COMPACT_PEER_V6_LEN {
                return Ok(None);
            }
            remaining += 1;
            end = d.position();
        }
        Ok(Some(Self {
            raw: d.input().get(start..end).unwrap_or_default(),
            remaining,
        }))
    }

    /// Peers not yet iterated.
    #[inline]
    pub fn len(&self) -> usize {
        self.remaining
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The encoded items not yet iterated (`6:...18:...`).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

// The only prefixes a validated `values` list can hold.
const PEER_V4_PREFIX: &[u8] = b"6:";
const PEER_V6_PREFIX: &[u8] = b"18:";

impl Iterator for Peers<'_> {
    type Item = SocketAddr;

    #[inline]
    fn next(&mut self) -> Option<SocketAddr> {
        let (prefix, len) = if self.raw.starts_with(PEER_V4_PREFIX) {
            (PEER_V4_PREFIX.len(), COMPACT_PEER_V4_LEN)
        } else if self.raw.starts_with(PEER_V6_PREFIX) {
            (PEER_V6_PREFIX.len(), COMPACT_PEER_V6_LEN)
        } else {
            return None;
        };
        let item = self.raw.get(prefix..prefix + len)?;
        self.raw = &self.raw[prefix + len..];
        self.remaining = self.remaining.saturating_sub(1);
        peer_from_bytes(item)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Peers<'_> {}

/// The 20-byte info hashes of a BEP 51 `samples` string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Samples<'a> {
    raw: &'a [u8],
}

impl<'a> Samples<'a> {
    /// A view over a `samples` string, or `None` if its length is not a multiple of 20.
    #[inline]
    pub fn new(raw: &'a [u8]) -> Option<Self> {
        (raw.len() % SAMPLE_LEN == 0).then_some(Self { raw })
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len() / SAMPLE_LEN
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The samples not yet iterated, concatenated.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

impl<'a> Iterator for Samples<'a> {
    type Item = &'a [u8; SAMPLE_LEN];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8; SAMPLE_LEN]> {
        let (head, rest) = self.raw.split_first_chunk::<SAMPLE_LEN>()?;
        self.raw = rest;
        Some(head)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl ExactSizeIterator for Samples<'_> {}
