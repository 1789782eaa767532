//! Queries that arrive (answering mode only): the answer, the harvest of
//! `get_peers` and `announce_peer` infohashes and announcers, a verifying
//! ping before a querier joins the table, BEP 42's secure id once the
//! external address is known, and the lookups a harvest starts.

use super::*;

impl Scheduler {
    pub(super) fn on_query(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>, q: &Query<'_>, len: usize) {
        let Some(answering) = self.answering.as_mut() else {
            self.stats.queries_ignored += 1;
            return;
        };
        if self.replies.len() >= MAX_QUEUED_REPLIES || !answering.admit(now, from) {
            self.stats.queries_ignored += 1;
            return;
        }
        let mut buf = self.reply_pool.pop().unwrap_or_default();
        let (answered, harvest) = answering.answer(now, from, msg.transaction_id, q, len, &mut buf);
        self.stats.queries_answered += 1;
        if matches!(answered, Answered::Error { .. }) {
            self.stats.query_errors_sent += 1;
        }
        self.replies.push_back((from, buf));
        // BEP 43: read-only queriers are not added to routing tables; BEP 5: a
        // querier is added only once it answered a query of ours (a source
        // address can be forged).
        if let (false, Some(id)) = (msg.read_only, q.id()) {
            let node = CompactNode { id: *id, addr: from };
            if !answering.heard_query(now, node) {
                self.verify(now, node);
            }
        }
        self.harvest(self.clock.floor(now), from, q, harvest);
    }

    /// Starts a `get_peers` lookup toward `info_hash` (one the fetcher had no
    /// peers for); the peers it finds leave through [`Output::peers`].
    /// Until the table holds a few nodes (right after start) it waits.
    pub fn look_up(&mut self, now: Instant, info_hash: [u8; ID_LEN]) {
        self.stats.lookups_requested += 1;
        self.start_lookup(self.clock.floor(now), info_hash);
    }

    /// A lookup toward `info_hash` seeded from the table, or deferred while
    /// the table is too small to seed one.
    pub(super) fn start_lookup(&mut self, now_ms: Millis, info_hash: [u8; ID_LEN]) {
        if self.table.len() < MIN_LOOKUP_SEEDS {
            if self.deferred_lookups.len() < MAX_DEFERRED_LOOKUPS {
                self.deferred_lookups.push(info_hash);
            }
            return;
        }
        let seeds = self.random_seeds();
        self.peers.start(now_ms, info_hash, seeds, &mut self.output.lookups);
    }

    /// BEP 42: the vote settled on `ip` as this host's address; the core's id
    /// becomes secure for it (IPv4 first: one id cannot be secure for both).
    pub(super) fn take_secure_id(&mut self, now: Instant, ip: IpAddr) {
        if ip.is_ipv6() && self.external.winner(false).is_some() {
            return;
        }
        if id::is_secure_for(&self.cfg.node_id, ip) {
            return;
        }
        self.cfg.node_id = id::secure(ip, &mut self.rng);
        self.stats.id_changes += 1;
        if let Some(a) = self.answering.as_mut() {
            a.set_id(self.cfg.node_id, now);
        }
    }

    /// Queues a verifying ping to a querier this core would take in.
    pub(super) fn verify(&mut self, now: Instant, node: CompactNode) {
        let now_ms = self.clock.floor(now);
        if node.id == self.cfg.node_id
            || owner(node.addr, self.cfg.cores) != self.cfg.core
            || self.table.knows(&node.addr)
            || self.unreachable.contains(&node.addr, now_ms)
            || self.verifying.len() >= MAX_VERIFYING
            || !self.verifying.insert(node.addr)
        {
            return;
        }
        self.verify_queue.push_back(node.addr);
    }

    /// A harvested infohash goes through dedup to the store; an announcer to
    /// the fetcher; a hash only asked for gets a lookup toward it (the querier
    /// is looking for peers, it has none to give).
    pub(super) fn harvest(&mut self, now_ms: Millis, from: SocketAddr, q: &Query<'_>, harvest: Harvest) {
        let (info_hash, via) = match harvest {
            Harvest::Nothing => return,
            Harvest::Asked(h) => (h, Via::GetPeers),
            Harvest::Announced(h, peer) => {
                // The announcer has the torrent: the best metadata source there is.
                if self.filter.allows(peer) {
                    self.output.peers.push(PeerFound { info_hash: h, peer });
                    self.stats.announced_peers += 1;
                }
                (h, Via::Announce)
            }
        };
        if !self.dedup.insert(&info_hash) {
            self.stats.duplicate_hashes += 1;
            return;
        }
        self.stats.new_hashes += 1;
        match via {
            Via::Announce => self.stats.harvested_announces += 1,
            _ => {
                self.stats.harvested_get_peers += 1;
                if self.peers.waiting() < self.cfg.peer_search.max_waiting / 2 {
                    self.start_lookup(now_ms, info_hash);
                } else {
                    self.stats.harvest_lookups_skipped += 1;
                }
            }
        }
        self.output.discoveries.push(Discovery {
            info_hash,
            source: from,
            source_id: q.id().copied().unwrap_or([0; ID_LEN]),
            via,
        });
    }

    /// A datagram that failed to decode: answered with error 203 when it was a
    /// query with a transaction id and its sender is within its answer budget.
    pub(super) fn answer_malformed(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(answering) = self.answering.as_mut() else {
            return;
        };
        if self.replies.len() >= MAX_QUEUED_REPLIES {
            return;
        }
        let mut buf = self.reply_pool.pop().unwrap_or_default();
        if answering.malformed(bytes, &mut buf)
            && buf.len() <= MAX_AMPLIFICATION * bytes.len()
            && answering.admit(now, from)
        {
            self.stats.queries_answered += 1;
            self.stats.query_errors_sent += 1;
            self.replies.push_back((from, buf));
        } else {
            self.reply_pool.push(buf);
        }
    }
}
