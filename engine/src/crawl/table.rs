//! The remote nodes one core owns: a bounded slab of compact per-node state with
//! an address index, and the rule for evicting the least useful node when full.
//!
//! Owns each node's BEP 51 support, sampling schedule, productivity and failure
//! count, and the sample deadlines of nodes it dropped (so a dropped node that
//! comes back, after churn or eviction, still waits out the interval it gave).
//! Must not decide what to send or when (that is the scheduler's), and must
//! never grow past its caps: a newcomer either replaces a less useful node or is
//! refused, and a deadline beyond the cap is not remembered (counted).

use std::collections::HashMap;
use std::net::SocketAddr;

use rand::rngs::SmallRng;
use rand::Rng;

use super::clock::Millis;
use crate::codec::compact::CompactNode;
use crate::codec::wire::ID_LEN;

/// Candidates inspected per eviction (approximate least-useful, as Redis does
/// for LRU): constant cost instead of a scan or an index kept sorted.
const EVICTION_SAMPLES: usize = 8;

/// Whether a node answers BEP 51 `sample_infohashes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bep51 {
    Unknown,
    Yes,
    No,
}

/// A node's slot in the table plus the incarnation of that slot, so references
/// held by transactions and schedules go stale when the node is evicted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRef {
    pub slot: u32,
    pub incarnation: u32,
}

#[derive(Clone, Debug)]
pub struct RemoteNode {
    pub addr: SocketAddr,
    /// All zero until the node has answered (bootstrap entries).
    pub id: [u8; ID_LEN],
    pub bep51: Bep51,
    /// A query to this node awaits its reply.
    pub in_flight: bool,
    /// Due time of the node's live entry in the sample / walk schedule
    /// ([`NOT_QUEUED`] if none); entries with another due time are stale.
    pub sample_queued_at: Millis,
    pub walk_queued_at: Millis,
    /// Consecutive timeouts.
    pub failures: u8,
    /// Consecutive samples that brought nothing new.
    pub empty_streak: u8,
    /// Never sample before this (the node's `interval`, or our back-off).
    pub next_sample: Millis,
    pub next_walk: Millis,
    pub samples_answered: u32,
    pub new_hashes: u32,
    /// The BEP 51 `interval` of the node's last sample reply (clamped), if any.
    pub interval: Option<Millis>,
}

/// No live schedule entry.
pub const NOT_QUEUED: Millis = Millis::MAX;

/// A fresh, untried node: what a newcomer is worth when deciding evictions.
const NEWCOMER_SCORE: i64 = 100;

impl RemoteNode {
    fn new(addr: SocketAddr, id: [u8; ID_LEN], now: Millis) -> Self {
        RemoteNode {
            addr,
            id,
            bep51: Bep51::Unknown,
            in_flight: false,
            sample_queued_at: NOT_QUEUED,
            walk_queued_at: NOT_QUEUED,
            failures: 0,
            empty_streak: 0,
            next_sample: now,
            next_walk: now,
            samples_answered: 0,
            new_hashes: 0,
            interval: None,
        }
    }

    /// New infohashes per answered sample, in hundredths.
    pub fn productivity(&self) -> u32 {
        self.new_hashes.saturating_mul(100) / self.samples_answered.max(1)
    }

    /// How much keeping this node is worth; lower is evicted first.
    fn usefulness(&self) -> i64 {
        let base = match self.bep51 {
            Bep51::Yes => 200 + i64::from(self.productivity()) - 30 * i64::from(self.empty_streak),
            Bep51::Unknown => NEWCOMER_SCORE,
            Bep51::No => 20,
        };
        base - 60 * i64::from(self.failures)
    }
}

pub struct NodeTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashMap<SocketAddr, u32, ahash::RandomState>,
    cap: usize,
    evictions: u64,
    refusals: u64,
    /// Dropped nodes' `next_sample`, until it passes ([`Self::forget_passed`]).
    deadlines: HashMap<SocketAddr, Millis, ahash::RandomState>,
    deadlines_cap: usize,
    deadlines_dropped: u64,
}

struct Slot {
    incarnation: u32,
    node: Option<RemoteNode>,
}

/// What [`NodeTable::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    New(NodeRef),
    /// Already known; its id was refreshed.
    Known(NodeRef),
    /// Full, and every inspected node was worth more than a newcomer.
    Refused,
}

impl NodeTable {
    /// At most `cap` nodes, and the sample deadlines of at most `deadlines_cap`
    /// dropped ones.
    pub fn new(cap: usize, deadlines_cap: usize, hasher: ahash::RandomState) -> Self {
        let cap = cap.max(1);
        NodeTable {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::with_capacity_and_hasher(cap.min(1 << 16), hasher.clone()),
            cap,
            evictions: 0,
            refusals: 0,
            deadlines: HashMap::with_hasher(hasher),
            deadlines_cap,
            deadlines_dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    pub fn refusals(&self) -> u64 {
        self.refusals
    }

    /// Dropped nodes whose sample deadline is remembered.
    pub fn remembered_deadlines(&self) -> usize {
        self.deadlines.len()
    }

    /// Deadlines not remembered because the memory was full.
    pub fn deadlines_dropped(&self) -> u64 {
        self.deadlines_dropped
    }

    /// Forgets remembered deadlines that have passed (call periodically).
    pub fn forget_passed(&mut self, now: Millis) {
        self.deadlines.retain(|_, &mut t| t > now);
    }

    /// Whether `addr` is in the table: one index probe, the node's slot untouched.
    pub fn knows(&self, addr: &SocketAddr) -> bool {
        self.index.contains_key(addr)
    }

    pub fn lookup(&self, addr: &SocketAddr) -> Option<NodeRef> {
        let slot = *self.index.get(addr)?;
        Some(NodeRef {
            slot,
            incarnation: self.slots[slot as usize].incarnation,
        })
    }

    pub fn get(&self, r: NodeRef) -> Option<&RemoteNode> {
        let s = self.slots.get(r.slot as usize)?;
        if s.incarnation == r.incarnation {
            s.node.as_ref()
        } else {
            None
        }
    }

    pub fn get_mut(&mut self, r: NodeRef) -> Option<&mut RemoteNode> {
        let s = self.slots.get_mut(r.slot as usize)?;
        if s.incarnation == r.incarnation {
            s.node.as_mut()
        } else {
            None
        }
    }

    /// Adds the node at `addr`, evicting the least useful of a few random nodes
    /// when full. A known address keeps its state; a non-zero `id` updates it.
    pub fn insert(&mut self, addr: SocketAddr, id: &[u8; ID_LEN], now: Millis, rng: &mut SmallRng) -> Inserted {
        if let Some(r) = self.lookup(&addr) {
            if *id != [0; ID_LEN] {
                if let Some(n) = self.get_mut(r) {
                    n.id = *id;
                }
            }
            return Inserted::Known(r);
        }
        if self.index.len() >= self.cap && !self.evict_one(rng) {
            self.refusals += 1;
            return Inserted::Refused;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    incarnation: 0,
                    node: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let mut node = RemoteNode::new(addr, *id, now);
        if let Some(t) = self.deadlines.remove(&addr) {
            node.next_sample = node.next_sample.max(t);
        }
        let s = &mut self.slots[slot as usize];
        s.node = Some(node);
        self.index.insert(addr, slot);
        Inserted::New(NodeRef {
            slot,
            incarnation: s.incarnation,
        })
    }

    /// Drops a node, remembering its sample deadline; its slot's next occupant
    /// gets a new incarnation.
    pub fn remove(&mut self, r: NodeRef) -> Option<RemoteNode> {
        let s = self.slots.get_mut(r.slot as usize)?;
        if s.incarnation != r.incarnation {
            return None;
        }
        let node = s.node.take()?;
        s.incarnation = s.incarnation.wrapping_add(1);
        self.index.remove(&node.addr);
        self.free.push(r.slot);
        // Passed deadlines go at the next `forget_passed`; only a full memory refuses.
        if self.deadlines.len() < self.deadlines_cap {
            self.deadlines.insert(node.addr, node.next_sample);
        } else {
            self.deadlines_dropped += 1;
        }
        Some(node)
    }

    fn evict_one(&mut self, rng: &mut SmallRng) -> bool {
        let mut worst: Option<(i64, u32)> = None;
        for _ in 0..EVICTION_SAMPLES {
            let slot = rng.gen_range(0..self.slots.len() as u32);
            let Some(n) = &self.slots[slot as usize].node else {
                continue;
            };
            // A node awaiting a reply is never evicted: its transaction refers to it.
            if n.in_flight {
                continue;
            }
            let score = n.usefulness();
            if worst.is_none_or(|(w, _)| score < w) {
                worst = Some((score, slot));
            }
        }
        match worst {
            Some((score, slot)) if score < NEWCOMER_SCORE => {
                let incarnation = self.slots[slot as usize].incarnation;
                self.remove(NodeRef { slot, incarnation });
                self.evictions += 1;
                true
            }
            _ => false,
        }
    }

    /// Up to `want` nodes from random slots (a few probes each), to seed a
    /// lookup when no better start is known.
    pub fn random_nodes(&self, rng: &mut SmallRng, want: usize, out: &mut Vec<CompactNode>) {
        if self.slots.is_empty() {
            return;
        }
        for _ in 0..want * 4 {
            if out.len() >= want {
                break;
            }
            let slot = &self.slots[rng.gen_range(0..self.slots.len())];
            if let Some(n) = &slot.node {
                if !out.iter().any(|c| c.addr == n.addr) {
                    out.push(CompactNode { id: n.id, addr: n.addr });
                }
            }
        }
    }

    /// Every live node (for snapshots and tests; not for the hot path).
    pub fn iter(&self) -> impl Iterator<Item = (NodeRef, &RemoteNode)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.node.as_ref().map(|n| {
                (
                    NodeRef {
                        slot: i as u32,
                        incarnation: s.incarnation,
                    },
                    n,
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000 + i), 6881))
    }

    fn table(cap: usize) -> (NodeTable, SmallRng) {
        (
            NodeTable::new(cap, cap, ahash::RandomState::with_seeds(1, 2, 3, 4)),
            SmallRng::seed_from_u64(7),
        )
    }

    #[test]
    fn stale_refs_do_not_reach_a_reused_slot() {
        let (mut t, mut rng) = table(10);
        let Inserted::New(a) = t.insert(addr(1), &[1; 20], 0, &mut rng) else {
            panic!()
        };
        assert_eq!(t.insert(addr(1), &[2; 20], 0, &mut rng), Inserted::Known(a));
        assert_eq!(t.get(a).unwrap().id, [2; 20]);
        t.remove(a).unwrap();
        let Inserted::New(b) = t.insert(addr(2), &[3; 20], 0, &mut rng) else {
            panic!()
        };
        assert_eq!(a.slot, b.slot);
        assert!(t.get(a).is_none() && t.remove(a).is_none());
        assert_eq!(t.get(b).unwrap().addr, addr(2));
    }

    #[test]
    fn full_table_keeps_useful_nodes_and_evicts_useless_ones() {
        let (mut t, mut rng) = table(64);
        for i in 0..64 {
            let Inserted::New(r) = t.insert(addr(i), &[0; 20], 0, &mut rng) else {
                panic!()
            };
            let n = t.get_mut(r).unwrap();
            n.bep51 = Bep51::Yes;
            n.samples_answered = 1;
            n.new_hashes = 5;
        }
        // Productive nodes are worth more than newcomers: the flood is refused.
        for i in 100..1100 {
            assert_eq!(t.insert(addr(i), &[0; 20], 0, &mut rng), Inserted::Refused);
        }
        assert_eq!(t.len(), 64);
        // Once nodes turn out useless, newcomers replace them, cap still held.
        let refs: Vec<NodeRef> = t.iter().map(|(r, _)| r).collect();
        for r in refs {
            t.get_mut(r).unwrap().bep51 = Bep51::No;
        }
        let mut admitted = 0;
        for i in 2000..2200 {
            if let Inserted::New(_) = t.insert(addr(i), &[0; 20], 0, &mut rng) {
                admitted += 1;
            }
            assert!(t.len() <= 64);
        }
        assert!(admitted >= 64, "admitted {admitted}");
        assert!(t.evictions() >= 64);
    }

    #[test]
    fn a_dropped_node_comes_back_with_its_sample_deadline() {
        let (mut t, mut rng) = table(2);
        let Inserted::New(a) = t.insert(addr(1), &[1; 20], 0, &mut rng) else {
            panic!()
        };
        t.get_mut(a).unwrap().next_sample = 5_000;
        t.remove(a).unwrap();
        assert_eq!(t.remembered_deadlines(), 1);
        t.forget_passed(4_999);
        let Inserted::New(b) = t.insert(addr(1), &[1; 20], 100, &mut rng) else {
            panic!()
        };
        assert_eq!(
            t.get(b).unwrap().next_sample,
            5_000,
            "not sampled before the old deadline"
        );
        assert_eq!(t.remembered_deadlines(), 0, "restored once");
        // A passed deadline is forgotten; a full memory refuses and counts.
        t.remove(b).unwrap();
        t.forget_passed(5_000);
        assert_eq!(t.remembered_deadlines(), 0);
        for i in 10..14 {
            let Inserted::New(r) = t.insert(addr(i), &[0; 20], 0, &mut rng) else {
                panic!()
            };
            t.remove(r).unwrap();
        }
        assert_eq!((t.remembered_deadlines(), t.deadlines_dropped()), (2, 2));
    }

    #[test]
    fn in_flight_nodes_are_never_evicted() {
        let (mut t, mut rng) = table(8);
        let mut refs = Vec::new();
        for i in 0..8 {
            let Inserted::New(r) = t.insert(addr(i), &[0; 20], 0, &mut rng) else {
                panic!()
            };
            let n = t.get_mut(r).unwrap();
            n.bep51 = Bep51::No;
            n.in_flight = true;
            refs.push(r);
        }
        for i in 10..200 {
            assert_eq!(t.insert(addr(i), &[0; 20], 0, &mut rng), Inserted::Refused);
        }
        assert!(refs.iter().all(|r| t.get(*r).is_some()));
    }
}
