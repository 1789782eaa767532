//! The routing table (BEP 5): 160-bit k-buckets indexed by the length of the prefix
//! shared with our id, where only the bucket holding our own id splits. Tracks
//! good/questionable/bad states, a small replacement cache per bucket and when each
//! bucket last changed (for refresh).
//!
//! Only nodes that answered one of our queries get in (the node verifies a querier
//! with a ping first), and never an address the [`AddrFilter`] drops. Read-only
//! nodes never answer, so they never get in; the node also refuses them explicitly.
//! Must not send anything: it tells the node whom to ping or refresh.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::addr_filter::AddrFilter;
use super::distance::Distance;
use super::id::{self, NodeId};
use crate::codec::compact::CompactNode;

/// BEP 5: a node that answered within this long is good; after it, questionable.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// A bucket unchanged this long is refreshed with a lookup of a random id in it.
pub const REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);
/// Failed queries in a row after which a node is bad ("multiple" in BEP 5).
pub const BAD_AFTER_FAILURES: u8 = 2;
/// A questionable node is pinged at most this often.
const PING_EVERY: Duration = Duration::from_secs(60);
const ID_BITS: usize = 160;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Good,
    Questionable,
    Bad,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    contact: CompactNode,
    last_response: Instant,
    last_query: Option<Instant>,
    pinged_at: Option<Instant>,
    failures: u8,
}

impl Entry {
    fn new(contact: CompactNode, now: Instant) -> Entry {
        Entry {
            contact,
            last_response: now,
            last_query: None,
            pinged_at: None,
            failures: 0,
        }
    }

    fn state(&self, now: Instant) -> NodeState {
        if self.failures >= BAD_AFTER_FAILURES {
            NodeState::Bad
        } else if now.saturating_duration_since(self.last_response) < GOOD_FOR
            || self
                .last_query
                .is_some_and(|q| now.saturating_duration_since(q) < GOOD_FOR)
        {
            // Every entry has answered us once, so a recent query keeps it good too.
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }
}

#[derive(Clone)]
struct Bucket {
    nodes: Vec<Entry>,
    /// Newest last; verified nodes waiting for a bad node to replace.
    replacements: Vec<Entry>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            nodes: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
        }
    }
}

/// What happened to a node offered to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    Added,
    Refreshed,
    /// The bucket is full of good or questionable nodes; kept as a replacement.
    Replacement,
    /// Our own id, a filtered address, or an id/address that conflicts with an entry.
    Refused,
}

#[derive(Clone)]
pub struct RoutingTable {
    own: NodeId,
    k: usize,
    replacements_cap: usize,
    filter: AddrFilter,
    buckets: Vec<Bucket>,
    /// Address -> id of every entry in `nodes` (not replacements).
    by_addr: HashMap<SocketAddr, NodeId, ahash::RandomState>,
}

impl RoutingTable {
    pub fn new(
        own: NodeId,
        k: usize,
        replacements_cap: usize,
        filter: AddrFilter,
        hasher: ahash::RandomState,
        now: Instant,
    ) -> Self {
        RoutingTable {
            own,
            k,
            replacements_cap,
            filter,
            buckets: vec![Bucket::new(now)],
            by_addr: HashMap::with_hasher(hasher),
        }
    }

    pub fn own_id(&self) -> NodeId {
        self.own
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub fn replacement_len(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    pub fn contains(&self, id: &NodeId) -> bool {
        let b = &self.buckets[self.bucket_index(id)];
        b.nodes.iter().any(|e| e.contact.id == *id)
    }

    pub fn contains_addr(&self, addr: &SocketAddr) -> bool {
        self.by_addr.contains_key(addr)
    }

    pub fn state_of(&self, id: &NodeId, now: Instant) -> Option<NodeState> {
        let b = &self.buckets[self.bucket_index(id)];
        b.nodes.iter().find(|e| e.contact.id == *id).map(|e| e.state(now))
    }

    pub fn contacts(&self) -> impl Iterator<Item = CompactNode> + '_ {
        self.buckets.iter().flat_map(|b| b.nodes.iter().map(|e| e.contact))
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        Distance::between(&self.own, id)
            .leading_zeros()
            .min(self.buckets.len() - 1)
    }

    /// Whether a node with this id would get a slot now, so verifying it is worth a ping.
    pub fn wants(&self, id: &NodeId, addr: &SocketAddr, now: Instant) -> bool {
        if *id == self.own || !self.filter.allows(*addr) || self.by_addr.contains_key(addr) {
            return false;
        }
        let i = self.bucket_index(id);
        let b = &self.buckets[i];
        b.nodes.len() < self.k || self.can_split(i) || b.nodes.iter().any(|e| e.state(now) == NodeState::Bad)
    }

    fn can_split(&self, i: usize) -> bool {
        i == self.buckets.len() - 1 && self.buckets.len() < ID_BITS
    }

    /// The node answered one of our queries.
    pub fn heard_response(&mut self, now: Instant, contact: CompactNode) -> Insert {
        if contact.id == self.own || !self.filter.allows(contact.addr) {
            return Insert::Refused;
        }
        if let Some(known) = self.by_addr.get(&contact.addr) {
            if *known != contact.id {
                // Same address, new id: a restart or a lie. Keep the old until it goes bad.
                return Insert::Refused;
            }
        }
        loop {
            let i = self.bucket_index(&contact.id);
            let can_split = self.can_split(i);
            let k = self.k;
            let bucket = &mut self.buckets[i];
            if let Some(e) = bucket.nodes.iter_mut().find(|e| e.contact.id == contact.id) {
                if e.contact.addr != contact.addr {
                    // Same id from another address: never let a third party move a node.
                    return Insert::Refused;
                }
                e.last_response = now;
                e.failures = 0;
                bucket.last_changed = now;
                return Insert::Refreshed;
            }
            if bucket.nodes.len() < k {
                bucket.nodes.push(Entry::new(contact, now));
                bucket.last_changed = now;
                bucket.replacements.retain(|r| r.contact.id != contact.id);
                self.by_addr.insert(contact.addr, contact.id);
                return Insert::Added;
            }
            if let Some(pos) = bucket.nodes.iter().position(|e| e.state(now) == NodeState::Bad) {
                let old = std::mem::replace(&mut bucket.nodes[pos], Entry::new(contact, now));
                bucket.last_changed = now;
                self.by_addr.remove(&old.contact.addr);
                self.by_addr.insert(contact.addr, contact.id);
                return Insert::Added;
            }
            if can_split {
                self.split_last(now);
                continue;
            }
            if let Some(r) = bucket.replacements.iter_mut().find(|r| r.contact.id == contact.id) {
                r.last_response = now;
                r.contact.addr = contact.addr;
                return Insert::Replacement;
            }
            if self.replacements_cap == 0 {
                return Insert::Refused;
            }
            if bucket.replacements.len() >= self.replacements_cap {
                bucket.replacements.remove(0);
            }
            bucket.replacements.push(Entry::new(contact, now));
            return Insert::Replacement;
        }
    }

    /// A known node sent us a query: it stays good (BEP 5).
    pub fn heard_query(&mut self, now: Instant, contact: CompactNode) -> bool {
        let i = self.bucket_index(&contact.id);
        match self.buckets[i].nodes.iter_mut().find(|e| e.contact == contact) {
            Some(e) => {
                e.last_query = Some(now);
                true
            }
            None => false,
        }
    }

    /// A query to `addr` timed out after its retries. A node that turns bad is
    /// replaced by the newest replacement of its bucket, if any.
    pub fn failed(&mut self, now: Instant, addr: &SocketAddr) {
        let Some(id) = self.by_addr.get(addr).copied() else {
            return;
        };
        let i = self.bucket_index(&id);
        let bucket = &mut self.buckets[i];
        let Some(pos) = bucket.nodes.iter().position(|e| e.contact.id == id) else {
            return;
        };
        let e = &mut bucket.nodes[pos];
        e.failures = e.failures.saturating_add(1);
        if e.state(now) != NodeState::Bad {
            return;
        }
        if let Some(r) = bucket.replacements.pop() {
            let old = std::mem::replace(&mut bucket.nodes[pos], r);
            bucket.last_changed = now;
            self.by_addr.remove(&old.contact.addr);
            self.by_addr.insert(r.contact.addr, r.contact.id);
        }
    }

    fn split_last(&mut self, now: Instant) {
        let depth = self.buckets.len() - 1;
        let own = self.own;
        let last = self.buckets.last_mut().expect("table has at least one bucket");
        let (deeper, stay): (Vec<Entry>, Vec<Entry>) = last
            .nodes
            .drain(..)
            .partition(|e| Distance::between(&own, &e.contact.id).leading_zeros() > depth);
        let (deeper_r, stay_r): (Vec<Entry>, Vec<Entry>) = last
            .replacements
            .drain(..)
            .partition(|e| Distance::between(&own, &e.contact.id).leading_zeros() > depth);
        last.nodes = stay;
        last.replacements = stay_r;
        let mut next = Bucket::new(now);
        next.nodes = deeper;
        next.replacements = deeper_r;
        self.buckets.push(next);
    }

    /// The `n` closest non-bad nodes to `target`, closest first, into `out` (cleared).
    ///
    /// Buckets are visited in distance order: the bucket at the target's prefix
    /// length holds nodes strictly closer than any other; every deeper bucket comes
    /// next (all equally far at the first differing bit), then shallower ones in
    /// turn. Gathering stops once a group fills `n`, and what was gathered is sorted.
    pub fn closest(&self, now: Instant, target: &NodeId, n: usize, out: &mut Vec<CompactNode>) {
        out.clear();
        let start = self.bucket_index(target);
        let take = |b: &Bucket, out: &mut Vec<CompactNode>| {
            out.extend(
                b.nodes
                    .iter()
                    .filter(|e| e.state(now) != NodeState::Bad)
                    .map(|e| e.contact),
            );
        };
        take(&self.buckets[start], out);
        if out.len() < n {
            for b in &self.buckets[start + 1..] {
                take(b, out);
            }
        }
        for b in self.buckets[..start].iter().rev() {
            if out.len() >= n {
                break;
            }
            take(b, out);
        }
        out.sort_unstable_by_key(|c| Distance::between(&c.id, target));
        out.truncate(n);
    }

    /// A questionable node due for a ping (BEP 5: ping before evicting), marking it
    /// pinged. Nodes in buckets with waiting replacements come first.
    pub fn next_to_ping(&mut self, now: Instant) -> Option<CompactNode> {
        let mut best: Option<(bool, usize, usize)> = None;
        for (bi, b) in self.buckets.iter().enumerate() {
            for (ni, e) in b.nodes.iter().enumerate() {
                let due = e.state(now) == NodeState::Questionable
                    && e.pinged_at
                        .is_none_or(|p| now.saturating_duration_since(p) >= PING_EVERY);
                if due {
                    let urgent = !b.replacements.is_empty();
                    if best.is_none_or(|(u, _, _)| urgent && !u) {
                        best = Some((urgent, bi, ni));
                    }
                }
            }
        }
        let (_, bi, ni) = best?;
        let e = &mut self.buckets[bi].nodes[ni];
        e.pinged_at = Some(now);
        Some(e.contact)
    }

    /// A random target in a bucket that has not changed for [`REFRESH_AFTER`], and
    /// marks the bucket as refreshed now.
    pub fn next_refresh(&mut self, now: Instant, rng: &mut impl rand::Rng) -> Option<NodeId> {
        let i = self
            .buckets
            .iter()
            .position(|b| now.saturating_duration_since(b.last_changed) >= REFRESH_AFTER)?;
        self.buckets[i].last_changed = now;
        Some(self.random_target(i, rng))
    }

    /// A random id that falls in bucket `i` (the last bucket: at its depth).
    pub fn random_target(&self, i: usize, rng: &mut impl rand::Rng) -> NodeId {
        id::random_with_prefix(&self.own, i, rng)
    }

    /// Earliest instant a bucket becomes due for refresh.
    pub fn next_refresh_at(&self) -> Option<Instant> {
        self.buckets.iter().map(|b| b.last_changed + REFRESH_AFTER).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    fn table(own: NodeId, now: Instant) -> RoutingTable {
        RoutingTable::new(
            own,
            8,
            2,
            AddrFilter::new(true),
            ahash::RandomState::with_seeds(1, 2, 3, 4),
            now,
        )
    }

    /// A table around a random own id, and the RNG that drew it.
    fn random_table(seed: u64, now: Instant) -> (SmallRng, NodeId, RoutingTable) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let own = id::random(&mut rng);
        let t = table(own, now);
        (rng, own, t)
    }

    fn contact(id: NodeId, n: u32) -> CompactNode {
        let ip = std::net::Ipv4Addr::from(0x7f00_0000 | n);
        CompactNode {
            id,
            addr: SocketAddr::new(ip.into(), 6881),
        }
    }

    #[test]
    fn only_the_own_bucket_splits_and_far_buckets_stay_at_k() {
        let now = Instant::now();
        let (mut rng, own, mut t) = random_table(3, now);
        // 20 nodes sharing no prefix bit with us: all land in bucket 0.
        for n in 0..20 {
            t.heard_response(now, contact(id::random_with_prefix(&own, 0, &mut rng), n + 1));
        }
        // 20 nodes close to us force splits down to depth 10 at least.
        for n in 0..20 {
            t.heard_response(
                now,
                contact(id::random_with_prefix(&own, 10 + n as usize, &mut rng), 100 + n),
            );
        }
        assert!(t.bucket_count() > 10);
        let far = t
            .contacts()
            .filter(|c| Distance::between(&own, &c.id).leading_zeros() == 0)
            .count();
        assert_eq!(far, 8);
        assert_eq!(t.len(), 8 + 20);
        for b in &t.buckets {
            assert!(b.nodes.len() <= 8);
        }
        assert_eq!(t.buckets[0].replacements.len(), 2);
    }

    #[test]
    fn filtered_own_and_conflicting_nodes_are_refused() {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(4);
        let own = id::random(&mut rng);
        let mut t = RoutingTable::new(
            own,
            8,
            2,
            AddrFilter::new(false),
            ahash::RandomState::with_seeds(1, 2, 3, 4),
            now,
        );
        let a = id::random(&mut rng);
        assert_eq!(t.heard_response(now, contact(a, 1)), Insert::Refused); // loopback, filter on
        let public = CompactNode {
            id: a,
            addr: "8.8.8.8:1".parse().unwrap(),
        };
        assert_eq!(t.heard_response(now, public), Insert::Added);
        assert_eq!(
            t.heard_response(
                now,
                CompactNode {
                    id: own,
                    addr: "8.8.4.4:1".parse().unwrap()
                }
            ),
            Insert::Refused
        );
        // Same id from elsewhere, or another id claiming the same address.
        assert_eq!(
            t.heard_response(
                now,
                CompactNode {
                    id: a,
                    addr: "9.9.9.9:1".parse().unwrap()
                }
            ),
            Insert::Refused
        );
        assert_eq!(
            t.heard_response(
                now,
                CompactNode {
                    id: id::random(&mut rng),
                    addr: public.addr
                }
            ),
            Insert::Refused
        );
        assert_eq!(t.heard_response(now, public), Insert::Refreshed);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn states_age_and_bad_nodes_are_replaced_from_the_cache() {
        let t0 = Instant::now();
        let mut rng = SmallRng::seed_from_u64(5);
        let own = [0; 20];
        let mut t = table(own, t0);
        // Fill bucket 0 (top bit set) beyond k while the own bucket cannot absorb them.
        t.buckets.push(Bucket::new(t0)); // force bucket 0 to be non-splittable
        let mut far = Vec::new();
        for n in 0..10 {
            let mut id = id::random(&mut rng);
            id[0] |= 0x80;
            far.push(contact(id, n + 1));
        }
        for c in &far {
            t.heard_response(t0, *c);
        }
        assert_eq!(t.buckets[0].nodes.len(), 8);
        assert_eq!(t.buckets[0].replacements.len(), 2);
        assert_eq!(t.state_of(&far[0].id, t0), Some(NodeState::Good));
        let later = t0 + GOOD_FOR + Duration::from_secs(1);
        assert_eq!(t.state_of(&far[0].id, later), Some(NodeState::Questionable));
        // A query from it keeps it good.
        assert!(t.heard_query(later, far[0]));
        assert_eq!(t.state_of(&far[0].id, later), Some(NodeState::Good));
        // Questionable nodes of a bucket with replacements get pinged first, once a minute.
        let p = t.next_to_ping(later).unwrap();
        assert_ne!(p, far[0]);
        assert_eq!(t.state_of(&p.id, later), Some(NodeState::Questionable));
        for _ in 0..BAD_AFTER_FAILURES {
            t.failed(later, &p.addr);
        }
        assert!(!t.contains(&p.id));
        assert!(t.contains(&far[9].id), "newest replacement moved in");
        assert_eq!(t.buckets[0].replacements.len(), 1);
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn closest_matches_a_brute_force_sort() {
        let now = Instant::now();
        let (mut rng, own, mut t) = random_table(6, now);
        for n in 0..400 {
            let p = (n % 30) as usize;
            t.heard_response(now, contact(id::random_with_prefix(&own, p, &mut rng), n + 1));
        }
        let all: Vec<CompactNode> = t.contacts().collect();
        let mut out = Vec::new();
        for _ in 0..50 {
            let target = id::random(&mut rng);
            t.closest(now, &target, 8, &mut out);
            let mut brute = all.clone();
            brute.sort_by_key(|c| Distance::between(&c.id, &target));
            brute.truncate(8);
            assert_eq!(out, brute);
        }
    }

    #[test]
    fn stale_buckets_are_refreshed_once_with_a_target_inside_them() {
        let t0 = Instant::now();
        let (mut rng, _, mut t) = random_table(8, t0);
        assert_eq!(t.next_refresh(t0, &mut rng), None);
        let later = t0 + REFRESH_AFTER;
        let target = t.next_refresh(later, &mut rng).unwrap();
        assert_eq!(t.bucket_index(&target), 0);
        assert_eq!(t.next_refresh(later, &mut rng), None);
        assert_eq!(t.next_refresh_at(), Some(later + REFRESH_AFTER));
    }
}
