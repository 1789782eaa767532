//! How a virtual node answers one datagram: an I/O-free function from
//! (now, sender, the address hit, bytes) to a reply in a caller-owned buffer.
//!
//! Owns: the BEP 5/33/51 answering rules of the swarm, simulated loss, dead
//! and slow nodes, tokens, and the politeness checks.
//! Must not: touch sockets or read clocks, or allocate per datagram (its
//! scratch vectors are reused).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{self, Kind, Message, Query, ResponseOut};
use trawl_engine::codec::scrape::ScrapeBloom;
use trawl_engine::codec::wire;

use super::counters::Counters;
use super::derive::{self, hash3, unit};
use super::limits::Verdict;
use super::model::NodeModel;
use super::Swarm;

/// What the caller does with the datagram once [`Responder::handle`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `out` holds a reply to send now from the address that was hit.
    Reply,
    /// `out` holds a reply from a slow node: send it after the slow delay.
    ReplyLater,
    /// Nothing to send.
    Drop,
}

/// How long a token secret lives; the previous one is still accepted (BEP 5).
const TOKEN_ROTATION_MS: u64 = 5 * 60 * 1000;
const TOKEN_LEN: usize = 8;
const MSG_NOT_BEP51: &[u8] = b"sample_infohashes not supported";
const MSG_UNKNOWN: &[u8] = b"method unknown";
const MSG_BAD_TOKEN: &[u8] = b"bad token";

/// One server thread's answering state: scratch buffers and a loss sequence.
pub struct Responder<'s> {
    swarm: &'s Swarm,
    loss_seq: u64,
    loss_salt: u64,
    closest: Vec<u32>,
    nodes_out: Vec<CompactNode>,
    values: Vec<SocketAddr>,
    samples: Vec<[u8; 20]>,
    picked: Vec<u32>,
}

impl<'s> Responder<'s> {
    /// `thread` keeps the loss sequences of server threads independent.
    pub fn new(swarm: &'s Swarm, thread: u64) -> Self {
        let k = swarm.config.k;
        Self {
            swarm,
            loss_seq: 0,
            loss_salt: derive::SALT_LOSS ^ (thread << 32),
            closest: Vec::with_capacity(k),
            nodes_out: Vec::with_capacity(k),
            values: Vec::with_capacity(16),
            samples: Vec::with_capacity(swarm.config.samples_max),
            picked: Vec::with_capacity(swarm.config.libtorrent.max_samples),
        }
    }

    /// Answers `datagram` sent by `from` to the virtual address `dst`.
    pub fn handle(
        &mut self,
        now_ms: u64,
        from: SocketAddrV4,
        dst: Ipv4Addr,
        datagram: &[u8],
        out: &mut Vec<u8>,
        c: &mut Counters,
    ) -> Outcome {
        c.received += 1;
        let swarm = self.swarm;
        let Some(node) = swarm.nodes.index_of(dst) else {
            c.not_a_node += 1;
            return Outcome::Drop;
        };
        let model = swarm.model(node);
        // Without downloaders a NAT node has nothing to hear: drop before decoding.
        if model == NodeModel::Nat && !swarm.downloads.enabled() {
            c.dropped_nat += 1;
            return Outcome::Drop;
        }
        let decoded = Message::decode(datagram);
        // A reply to one of the node's own lookups: NAT lets replies in.
        if let Ok(Message {
            kind: Kind::Response(r),
            transaction_id,
            ..
        }) = &decoded
        {
            if !swarm.downloads.enabled() || !swarm.nodes.is_up(node, now_ms) {
                c.unexpected += 1;
                return Outcome::Drop;
            }
            c.downloader_reply_bytes += datagram.len() as u64;
            return if swarm
                .downloads
                .on_response(swarm, node, from, transaction_id, r, out, c)
            {
                Outcome::Reply
            } else {
                Outcome::Drop
            };
        }
        if model == NodeModel::Nat {
            c.dropped_nat += 1;
            return Outcome::Drop;
        }
        if !swarm.nodes.is_up(node, now_ms) {
            c.dropped_dead += 1;
            return Outcome::Drop;
        }
        self.loss_seq += 1;
        if swarm.config.loss > 0.0 && unit(swarm.config.seed, self.loss_seq, self.loss_salt) < swarm.config.loss {
            c.dropped_loss += 1;
            return Outcome::Drop;
        }
        let sender = u32::from(*from.ip());
        if !swarm.politeness.admit(sender, node, now_ms) {
            c.dropped_limit += 1;
            c.violations_rate += 1;
            return Outcome::Drop;
        }
        if model == NodeModel::Libtorrent {
            let is_query = matches!(&decoded, Ok(m) if matches!(m.kind, Kind::Query(_)));
            match swarm.limits.admit(node, sender, now_ms, is_query) {
                Verdict::Answer => {}
                Verdict::Blocked { started_block } => {
                    c.dropped_blocked += 1;
                    if started_block {
                        c.bans_imposed += 1;
                        c.ban_seconds += u64::from(swarm.config.libtorrent.block_timeout_s);
                    }
                    return Outcome::Drop;
                }
                Verdict::OverBudget => {
                    c.dropped_budget += 1;
                    return Outcome::Drop;
                }
            }
        }
        let msg = match decoded {
            Ok(m) => m,
            Err(_) => {
                c.malformed += 1;
                return Outcome::Drop;
            }
        };
        let Kind::Query(query) = msg.kind else {
            c.unexpected += 1;
            return Outcome::Drop;
        };
        out.clear();
        if let Some(id) = query.id() {
            swarm.downloads.heard(node, from, id, msg.read_only, now_ms);
        }
        self.answer(now_ms, from, node, model, msg.transaction_id, &query, out, c);
        if model == NodeModel::Libtorrent {
            swarm.limits.charge(node, out.len());
        }
        if swarm.nodes.is_slow(node) {
            c.delayed_slow += 1;
            Outcome::ReplyLater
        } else {
            Outcome::Reply
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        now_ms: u64,
        from: SocketAddrV4,
        node: u32,
        model: NodeModel,
        tid: &[u8],
        query: &Query<'_>,
        out: &mut Vec<u8>,
        c: &mut Counters,
    ) {
        let swarm = self.swarm;
        let id = swarm.nodes.id(node);
        let requester = Some(SocketAddr::V4(from));
        let mut r = ResponseOut::new(&id);
        match query {
            Query::Ping { .. } => c.answered_ping += 1,
            Query::FindNode { target, .. } => {
                self.fill_closest(target);
                r.nodes = &self.nodes_out;
                c.answered_find_node += 1;
            }
            Query::GetPeers {
                info_hash,
                scrape,
                noseed,
                ..
            } => {
                let token = token(swarm.config.seed, now_ms / TOKEN_ROTATION_MS, from, node);
                self.fill_closest(info_hash);
                let responsible = self.closest.contains(&node);
                let torrent = swarm.catalogue.find(info_hash);
                let held = torrent.filter(|&t| responsible || swarm.catalogue.held_by(node).binary_search(&t).is_ok());
                let max_values = match model {
                    NodeModel::Libtorrent => swarm.config.libtorrent.max_peers_reply,
                    _ => usize::MAX,
                };
                let (mut seeds, mut peers) = (ScrapeBloom::new(), ScrapeBloom::new());
                self.values.clear();
                if let Some(t) = held {
                    let mut buf = [0u32; 16];
                    for &h in swarm.catalogue.holders(t, &mut buf) {
                        let ip = swarm.nodes.addr(h);
                        let seed = swarm.is_seed(t, h);
                        if seed {
                            seeds.insert(ip.into());
                        }
                        // libtorrent's BFpe holds downloaders only; the fast node's holds everyone.
                        if !seed || model == NodeModel::Fast {
                            peers.insert(ip.into());
                        }
                        if !(*noseed && seed) && self.values.len() < max_values {
                            let port = swarm.peer_port_of(h);
                            self.values.push(SocketAddr::V4(SocketAddrV4::new(ip, port)));
                        }
                    }
                }
                let token = &token[..];
                r.token = Some(token);
                let (bf_seeds, bf_peers) = (*seeds.as_bytes(), *peers.as_bytes());
                let name = match (model, held) {
                    (NodeModel::Libtorrent, Some(t)) => Some(swarm.catalogue.info(t).name),
                    _ => None,
                };
                r.name = name.as_deref().map(str::as_bytes);
                match model {
                    // The idealised node: bloom filters and values together,
                    // nodes only when it has no values.
                    NodeModel::Fast => {
                        if *scrape && torrent.is_some() {
                            r.bf_seeds = Some(&bf_seeds);
                            r.bf_peers = Some(&bf_peers);
                            c.answered_scrape += 1;
                        }
                        if self.values.is_empty() {
                            r.nodes = &self.nodes_out;
                        } else {
                            r.values = &self.values;
                        }
                    }
                    // libtorrent: nodes always; a scrape gets the filters
                    // instead of values (dht_storage.cpp, get_peers).
                    NodeModel::Libtorrent if *scrape => {
                        r.nodes = &self.nodes_out;
                        if held.is_some() {
                            r.bf_seeds = Some(&bf_seeds);
                            r.bf_peers = Some(&bf_peers);
                            c.answered_scrape += 1;
                        }
                        self.values.clear();
                    }
                    // No BEP 33 at all: a scrape is a plain get_peers.
                    NodeModel::Libtorrent | NodeModel::NoBep51 | NodeModel::Nat => {
                        r.nodes = &self.nodes_out;
                        r.values = &self.values;
                    }
                }
                if r.values.is_empty() {
                    c.answered_get_peers_nodes += 1;
                } else {
                    c.answered_get_peers_values += 1;
                }
                if r.name.is_some() {
                    c.answered_name += 1;
                }
                krpc::encode_response(out, tid, &r, requester, None);
                return;
            }
            Query::AnnouncePeer { token: given, .. } => {
                let epoch = now_ms / TOKEN_ROTATION_MS;
                let ok = [epoch, epoch.wrapping_sub(1)]
                    .iter()
                    .any(|&e| &token(swarm.config.seed, e, from, node)[..] == *given);
                if !ok {
                    c.announce_bad_token += 1;
                    krpc::encode_error(out, tid, wire::ERROR_PROTOCOL, MSG_BAD_TOKEN, None);
                    return;
                }
                c.answered_announce += 1;
            }
            Query::SampleInfohashes { target, .. } => {
                if !swarm.samples(node) {
                    c.sample_unsupported += 1;
                    krpc::encode_error(out, tid, wire::ERROR_METHOD_UNKNOWN, MSG_NOT_BEP51, None);
                    return;
                }
                let interval = swarm.sample_interval_s(node);
                let visit = swarm.politeness.sample(u32::from(*from.ip()), node, now_ms, interval);
                if visit.violation {
                    c.violations_interval += 1;
                }
                if model == NodeModel::Libtorrent {
                    swarm.libtorrent_sample(node, swarm.sample_epoch(node, now_ms), &mut self.picked);
                    self.samples.clear();
                    let catalogue = &swarm.catalogue;
                    self.samples.extend(self.picked.iter().map(|&t| *catalogue.infohash(t)));
                } else {
                    self.fill_samples(node, visit.window);
                }
                self.fill_closest(target);
                r.nodes = &self.nodes_out;
                r.samples = &self.samples;
                r.interval = Some(i64::from(interval));
                r.num = Some(swarm.catalogue.held_by(node).len() as i64);
                c.answered_sample += 1;
            }
            Query::Unknown { .. } => {
                c.unknown_method += 1;
                krpc::encode_error(out, tid, wire::ERROR_METHOD_UNKNOWN, MSG_UNKNOWN, None);
                return;
            }
        }
        krpc::encode_response(out, tid, &r, requester, None);
    }

    /// The k nodes closest to `target`, as compact node infos.
    fn fill_closest(&mut self, target: &[u8; 20]) {
        let swarm = self.swarm;
        self.closest.clear();
        swarm.nodes.closest(target, swarm.config.k, &mut self.closest);
        self.nodes_out.clear();
        self.nodes_out.extend(self.closest.iter().map(|&i| CompactNode {
            id: swarm.nodes.id(i),
            addr: SocketAddr::V4(SocketAddrV4::new(swarm.nodes.addr(i), swarm.config.port)),
        }));
    }

    /// Rotation `window` of the node's held torrents, `samples_max` at a time.
    fn fill_samples(&mut self, node: u32, window: u32) {
        let held = self.swarm.catalogue.held_by(node);
        self.samples.clear();
        if held.is_empty() {
            return;
        }
        let take = held.len().min(self.swarm.config.samples_max);
        let start = (window as usize * take) % held.len();
        for j in 0..take {
            let t = held[(start + j) % held.len()];
            self.samples.push(*self.swarm.catalogue.infohash(t));
        }
    }
}

/// The token node `node` gives `from` in rotation `epoch`.
pub fn token(seed: u64, epoch: u64, from: SocketAddrV4, node: u32) -> [u8; TOKEN_LEN] {
    let who = (u64::from(u32::from(*from.ip())) << 32) | u64::from(node);
    hash3(seed ^ epoch, who, derive::SALT_TOKEN).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::CatalogueConfig;
    use crate::nodes::NodeTraitsConfig;
    use crate::SwarmConfig;

    fn swarm(loss: f64) -> Swarm {
        let traits = NodeTraitsConfig {
            dead_fraction: 0.2,
            slow_fraction: 0.2,
            no_bep51_fraction: 0.0,
            interval_max: 60,
            ..NodeTraitsConfig::default()
        };
        let cfg = SwarmConfig {
            nodes: 500,
            catalogue: CatalogueConfig {
                torrents: 200,
                holders_max: 2,
            },
            traits,
            loss,
            ..SwarmConfig::default()
        };
        Swarm::build(cfg, 1)
    }

    fn ping() -> Vec<u8> {
        let mut q = Vec::new();
        krpc::encode_query(&mut q, b"aa", &Query::Ping { id: &[1; 20] }, false, None);
        q
    }

    const FROM: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4000);

    #[test]
    fn dead_slow_and_foreign_addresses() {
        let s = swarm(0.0);
        let mut r = Responder::new(&s, 0);
        let (mut out, mut c) = (Vec::new(), Counters::default());
        let q = ping();
        let dead = (0..500).find(|&i| !s.nodes.is_alive(i)).unwrap();
        let slow = (0..500).find(|&i| s.nodes.is_alive(i) && s.nodes.is_slow(i)).unwrap();
        let fast = (0..500).find(|&i| s.nodes.is_alive(i) && !s.nodes.is_slow(i)).unwrap();
        assert_eq!(
            r.handle(0, FROM, s.nodes.addr(dead), &q, &mut out, &mut c),
            Outcome::Drop
        );
        assert_eq!(
            r.handle(0, FROM, s.nodes.addr(slow), &q, &mut out, &mut c),
            Outcome::ReplyLater
        );
        assert!(matches!(Message::decode(&out).unwrap().kind, Kind::Response(_)));
        assert_eq!(
            r.handle(0, FROM, s.nodes.addr(fast), &q, &mut out, &mut c),
            Outcome::Reply
        );
        assert_eq!(
            r.handle(0, FROM, Ipv4Addr::LOCALHOST, &q, &mut out, &mut c),
            Outcome::Drop
        );
        assert_eq!(
            r.handle(0, FROM, s.nodes.addr(fast), b"d1:xe", &mut out, &mut c),
            Outcome::Drop
        );
        // Replies sent to a node are not answered.
        let mut reply = Vec::new();
        krpc::encode_response(&mut reply, b"aa", &ResponseOut::new(&[2; 20]), None, None);
        assert_eq!(
            r.handle(0, FROM, s.nodes.addr(fast), &reply, &mut out, &mut c),
            Outcome::Drop
        );
        assert_eq!(
            (c.dropped_dead, c.delayed_slow, c.not_a_node, c.malformed, c.unexpected),
            (1, 1, 1, 1, 1)
        );
        assert_eq!((c.received, c.answered_ping), (6, 2));
    }

    #[test]
    fn loss_follows_the_configured_probability() {
        let s = swarm(0.3);
        let mut r = Responder::new(&s, 0);
        let (mut out, mut c) = (Vec::new(), Counters::default());
        let q = ping();
        let fast = (0..500).find(|&i| s.nodes.is_alive(i) && !s.nodes.is_slow(i)).unwrap();
        for _ in 0..10_000 {
            r.handle(0, FROM, s.nodes.addr(fast), &q, &mut out, &mut c);
        }
        let lost = c.dropped_loss as f64 / 10_000.0;
        assert!((lost - 0.3).abs() < 0.02, "{lost}");
        assert_eq!(c.dropped_loss + c.answered_ping, 10_000);
    }
}
