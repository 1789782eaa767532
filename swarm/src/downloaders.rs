//! Virtual downloaders: swarm nodes that act as BitTorrent clients, looking
//! their torrents up with `get_peers` and announcing with `announce_peer`, so
//! a crawler that answers queries hears what a participating node would.
//!
//! The model, and where it is less generous than the real DHT:
//! - **Learning the crawler.** A virtual node that receives a query without
//!   BEP 43 `ro=1` puts the querier in its table, as libtorrent's
//!   `incoming_request` does (`heard_about`). One entry per IP and the first
//!   id heard sticks (libtorrent's `restrict_routing_ips`: a second id from the
//!   same IP does not replace a live entry). An entry not heard from for 15
//!   minutes is forgotten (libtorrent pings and drops silent nodes).
//! - **Who a lookup queries.** A lookup for an infohash ends at the k closest
//!   nodes that answer (libtorrent's traversal stops when its k best results
//!   have answered). A crawler identity is queried only when it is one of
//!   those k, and only when one of the k closest virtual nodes has it in its
//!   table: that is where the lookup would learn of it. The real traversal
//!   also queries nodes on the way there, which this model does not count, so
//!   it under-states what a crawler hears. One identity per IP takes part in
//!   a lookup (libtorrent's `restrict_search_ips`).
//! - **Who looks up what.** Lookups arrive at `lookups_per_node_s` per node, for a
//!   torrent of the catalogue picked from a Zipf-like popularity (the rank is
//!   log-uniform). A share `announce_share` of them announce: the downloader
//!   is then a holder of the torrent, announcing its own metadata peer with
//!   the token the crawler gave. The others are `get_peers` from a random node
//!   that is up.
//!
//! Owns: the learned identities, lookups in flight, and the ground truth of
//! what reached each crawler identity.
//! Must not: send anywhere but the identities that queried the swarm (they are
//! on loopback, as every sender here is), or grow without bound: identities,
//! pending lookups and the truth table are capped.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;

use trawl_engine::codec::krpc::{self, Query, Response, Want};

use super::counters::Counters;
use super::derive::{self, Stream};
use super::nodes::{xor, NodeId};
use super::Swarm;

/// The knobs of the downloader model.
#[derive(Clone, Copy, Debug, Default)]
pub struct DownloadConfig {
    /// Lookups begun per second per virtual node (0: none).
    pub lookups_per_node_s: f64,
    /// Share of lookups that end in `announce_peer`.
    pub announce_share: f64,
}

/// How long a learned identity lives without being heard again.
const FORGET_MS: u64 = 15 * 60 * 1000;
/// How long a lookup waits for the crawler's reply.
const PENDING_MS: u64 = 30_000;
/// Identities one virtual node keeps (one per IP).
const MAX_HEARD_PER_NODE: usize = 8;
/// Bounds of the shared tables, far above what a bench run fills.
const MAX_PENDING: usize = 100_000;
const MAX_TRUTH: usize = 4_000_000;
/// Lookups begun in one tick at most, so a stalled thread does not burst.
const MAX_PER_TICK: u64 = 2_000;

/// A query a downloader sends from its virtual address.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub to: SocketAddrV4,
    pub from: Ipv4Addr,
    pub bytes: Vec<u8>,
}

/// A querier a virtual node put in its table.
#[derive(Clone, Copy, Debug)]
struct Heard {
    addr: SocketAddrV4,
    id: NodeId,
    last_ms: u64,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    info_hash: [u8; 20],
    downloader: u32,
    to: SocketAddrV4,
    announce: bool,
    /// Set once the `get_peers` was answered and the announce sent.
    announced: bool,
    sent_ms: u64,
}

/// What reached the crawler identities for one infohash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reached {
    /// A `get_peers` was sent to a crawler identity.
    pub get_peers: bool,
    /// And a crawler identity answered it.
    pub answered: bool,
    /// An `announce_peer` was sent after that answer.
    pub announce: bool,
}

#[derive(Default)]
struct State {
    heard: HashMap<u32, Vec<Heard>>,
    pending: HashMap<u32, Pending>,
    truth: HashMap<[u8; 20], Reached>,
    /// Lookups begun so far (the rate's integral).
    begun: u64,
    seq: u32,
}

/// The downloaders of one swarm, shared by its server threads.
pub struct Downloads {
    config: DownloadConfig,
    /// Lookups begun per second by all nodes together.
    lookups_per_s: f64,
    state: Mutex<State>,
}

impl Downloads {
    pub fn new(config: DownloadConfig, nodes: u32) -> Self {
        Self {
            config,
            lookups_per_s: config.lookups_per_node_s * f64::from(nodes),
            state: Mutex::new(State::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.lookups_per_s > 0.0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Virtual node `node` answered a query from `from` with id `id`.
    pub fn heard(&self, node: u32, from: SocketAddrV4, id: &NodeId, read_only: bool, now_ms: u64) {
        if read_only || !self.enabled() {
            return;
        }
        let mut st = self.lock();
        let table = st.heard.entry(node).or_default();
        if let Some(h) = table.iter_mut().find(|h| h.addr.ip() == from.ip()) {
            if h.id == *id || now_ms.saturating_sub(h.last_ms) > FORGET_MS {
                *h = Heard {
                    addr: from,
                    id: *id,
                    last_ms: now_ms,
                };
            }
            return;
        }
        table.retain(|h| now_ms.saturating_sub(h.last_ms) <= FORGET_MS);
        if table.len() < MAX_HEARD_PER_NODE {
            table.push(Heard {
                addr: from,
                id: *id,
                last_ms: now_ms,
            });
        }
    }

    /// Begins the lookups due by `now_ms` and appends the `get_peers` that
    /// reach a crawler identity to `outbox`.
    pub fn tick(&self, swarm: &Swarm, now_ms: u64, c: &mut Counters, outbox: &mut Vec<Outgoing>) {
        if !self.enabled() || swarm.nodes.is_empty() || swarm.catalogue.is_empty() {
            return;
        }
        let due = (self.lookups_per_s * now_ms as f64 / 1000.0) as u64;
        let mut st = self.lock();
        let start = st.begun;
        let count = due.saturating_sub(start).min(MAX_PER_TICK);
        st.begun = due.max(start);
        st.pending.retain(|_, p| now_ms.saturating_sub(p.sent_ms) <= PENDING_MS);
        let k = swarm.config.k;
        let mut closest = Vec::with_capacity(4 * k);
        for n in start..start + count {
            c.downloader_lookups += 1;
            let mut s = Stream::new(swarm.config.seed, n, derive::SALT_DOWNLOADER);
            let torrents = u64::from(swarm.catalogue.len());
            // log-uniform rank: rank r is about 1/r as likely as rank 1.
            let rank = ((torrents as f64 + 1.0).powf(s.unit()) as u64).clamp(1, torrents) - 1;
            let torrent = rank as u32;
            let info_hash = *swarm.catalogue.infohash(torrent);
            let announce = s.unit() < self.config.announce_share;
            let downloader = if announce {
                let mut hb = [0u32; 16];
                let holders = swarm.catalogue.holders(torrent, &mut hb);
                *s.pick(holders)
            } else {
                s.below(u64::from(swarm.nodes.len())) as u32
            };
            if !swarm.nodes.is_up(downloader, now_ms) {
                c.downloader_lookups_away += 1;
                continue;
            }
            // The k closest that answer: widen the window until k are found.
            let mut window = 4 * k;
            loop {
                closest.clear();
                swarm.nodes.closest(&info_hash, window, &mut closest);
                let all = closest.len() < window;
                closest.retain(|&x| swarm.answers(x, now_ms));
                if closest.len() >= k || all {
                    break;
                }
                window *= 4;
            }
            closest.truncate(k);
            let kth = closest
                .last()
                .filter(|_| closest.len() == k)
                .map_or([0xFF; 20], |&x| xor(&swarm.nodes.id(x), &info_hash));
            // The best identity per crawler IP that a node near the target knows.
            let mut best: Vec<Heard> = Vec::new();
            for x in &closest {
                let Some(table) = st.heard.get(x) else { continue };
                for h in table {
                    if now_ms.saturating_sub(h.last_ms) > FORGET_MS {
                        continue;
                    }
                    let d = xor(&h.id, &info_hash);
                    match best.iter_mut().find(|b| b.addr.ip() == h.addr.ip()) {
                        Some(b) if xor(&b.id, &info_hash) > d => *b = *h,
                        Some(_) => {}
                        None => best.push(*h),
                    }
                }
            }
            for h in best.iter().filter(|h| xor(&h.id, &info_hash) < kth) {
                if st.pending.len() >= MAX_PENDING {
                    c.downloader_pending_full += 1;
                    break;
                }
                st.seq = st.seq.wrapping_add(1);
                let tid = st.seq;
                st.pending.insert(
                    tid,
                    Pending {
                        info_hash,
                        downloader,
                        to: h.addr,
                        announce,
                        announced: false,
                        sent_ms: now_ms,
                    },
                );
                if st.truth.len() < MAX_TRUTH || st.truth.contains_key(&info_hash) {
                    st.truth.entry(info_hash).or_default().get_peers = true;
                }
                let id = swarm.nodes.id(downloader);
                let q = Query::GetPeers {
                    id: &id,
                    info_hash: &info_hash,
                    want: Want::default(),
                    scrape: false,
                    noseed: false,
                };
                let mut bytes = Vec::with_capacity(128);
                krpc::encode_query(&mut bytes, &tid.to_be_bytes(), &q, false, None);
                outbox.push(Outgoing {
                    to: h.addr,
                    from: swarm.nodes.addr(downloader),
                    bytes,
                });
                c.downloader_get_peers_sent += 1;
            }
        }
    }

    /// A reply from `from` reached virtual node `node`: if it answers one of
    /// our lookups, records it and, for an announcing lookup with a token,
    /// writes the `announce_peer` into `out` and returns true.
    pub fn on_response(
        &self,
        swarm: &Swarm,
        node: u32,
        from: SocketAddrV4,
        tid: &[u8],
        r: &Response<'_>,
        out: &mut Vec<u8>,
        c: &mut Counters,
    ) -> bool {
        let Ok(tid) = <[u8; 4]>::try_from(tid).map(u32::from_be_bytes) else {
            c.unexpected += 1;
            return false;
        };
        let mut st = self.lock();
        let Some(p) = st.pending.get(&tid).copied() else {
            c.unexpected += 1;
            return false;
        };
        if p.downloader != node || p.to != from {
            c.unexpected += 1;
            return false;
        }
        if p.announced {
            st.pending.remove(&tid);
            c.downloader_announces_acked += 1;
            return false;
        }
        c.downloader_get_peers_answered += 1;
        if let Some(t) = st.truth.get_mut(&p.info_hash) {
            t.answered = true;
        }
        let token = match r.token {
            Some(t) if p.announce => t,
            _ => {
                st.pending.remove(&tid);
                return false;
            }
        };
        if let Some(t) = st.truth.get_mut(&p.info_hash) {
            t.announce = true;
        }
        if let Some(p) = st.pending.get_mut(&tid) {
            p.announced = true;
        }
        let id = swarm.nodes.id(node);
        let q = Query::AnnouncePeer {
            id: &id,
            info_hash: &p.info_hash,
            port: swarm.peer_port_of(node),
            implied_port: false,
            token,
            seed: false,
        };
        out.clear();
        krpc::encode_query(out, &tid.to_be_bytes(), &q, false, None);
        c.downloader_announces_sent += 1;
        true
    }

    /// The ground truth: every infohash a lookup sent to a crawler identity.
    pub fn reached(&self) -> Vec<([u8; 20], Reached)> {
        let st = self.lock();
        let mut v: Vec<_> = st.truth.iter().map(|(h, r)| (*h, *r)).collect();
        v.sort_unstable_by_key(|(h, _)| *h);
        v
    }

    /// The crawler identities the swarm's nodes have learned, as (address, id)
    /// with how many nodes know each.
    pub fn identities(&self) -> Vec<(SocketAddr, NodeId, usize)> {
        let st = self.lock();
        let mut count: HashMap<(SocketAddrV4, NodeId), usize> = HashMap::new();
        for h in st.heard.values().flatten() {
            *count.entry((h.addr, h.id)).or_default() += 1;
        }
        let mut v: Vec<_> = count
            .into_iter()
            .map(|((a, id), n)| (SocketAddr::V4(a), id, n))
            .collect();
        v.sort_unstable_by_key(|(a, id, _)| (*a, *id));
        v
    }
}
