//! What arrives: a datagram is filtered, decoded and dispatched. A query is
//! answered by the server (and may teach the routing table a querier, after a
//! verifying ping); a reply or error is matched to its transaction and feeds
//! the lookup or bootstrap that sent it.

use super::*;

impl Node {
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.last_now = now;
        self.stats.datagrams_in += 1;
        if !self.filter.allows(from) {
            self.stats.drops.filtered_addr += 1;
            return;
        }
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.drops.malformed += 1;
                if !self.config.read_only && self.server.admit(now, from.ip()) {
                    let mut buf = self.spare.pop().unwrap_or_default();
                    match self.server.malformed(bytes, self.version(), &mut buf) {
                        Some(_) => self.push_reply(from, buf, true),
                        None => self.spare.push(buf),
                    }
                }
                return;
            }
        };
        match msg.kind {
            Kind::Query(ref q) => self.on_query(now, from, &msg, q),
            Kind::Response(ref r) => self.on_response(now, from, msg.transaction_id, r),
            Kind::Error(_) => self.on_error(now, from, msg.transaction_id),
        }
    }

    pub(super) fn version(&self) -> Option<&[u8]> {
        self.config.version.as_ref().map(|v| &v[..])
    }

    pub(super) fn on_query(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>, q: &Query<'_>) {
        self.stats.queries_received += 1;
        if self.config.read_only {
            self.stats.drops.read_only += 1;
            return;
        }
        if !self.server.admit(now, from.ip()) {
            self.stats.drops.rate_limited += 1;
            return;
        }
        if let (false, Some(id)) = (msg.read_only, q.id()) {
            self.learn_querier(now, CompactNode { id: *id, addr: from });
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        let cx = Context {
            now,
            own: &self.own,
            routing: &self.routing,
            k: self.config.k,
            version: self.config.version.as_ref().map(|v| &v[..]),
            max_reply: self.config.answer_limits.max_reply_len,
        };
        let answered = self
            .server
            .answer(&cx, &mut self.rng, from, msg.transaction_id, q, &mut buf);
        match answered {
            Answered::Response => self.stats.queries_answered += 1,
            Answered::Error { refused, .. } => match refused {
                Some(Refusal::BadToken) => self.stats.drops.bad_token += 1,
                Some(Refusal::StoreFull) => self.stats.drops.store_full += 1,
                None => {}
            },
        }
        self.push_reply(from, buf, matches!(answered, Answered::Error { .. }));
    }

    /// A writable node queried us: known ones stay good, unknown ones that would
    /// get a slot are verified with a ping first (a query's source can be forged).
    pub(super) fn learn_querier(&mut self, now: Instant, node: CompactNode) {
        if self.routing.heard_query(now, node) || self.is_router(&node.addr) {
            return;
        }
        if self.verifying.len() < MAX_VERIFYING
            && self.sends.len() < MAX_QUEUED_SENDS
            && self.txs.in_flight_to(&node.addr) == 0
            && self.routing.wants(&node.id, &node.addr, now)
            && self.verifying.insert(node.addr)
        {
            self.sends.push_back(Send::New {
                addr: node.addr,
                sent: Sent {
                    lookup: None,
                    query: OutQuery::Ping,
                },
            });
        }
    }

    pub(super) fn push_reply(&mut self, to: SocketAddr, buf: Vec<u8>, is_error: bool) {
        if self.replies.len() >= self.config.answer_limits.max_queued_replies {
            self.stats.drops.reply_queue_full += 1;
            self.spare.push(buf);
            return;
        }
        if is_error {
            self.stats.errors_sent += 1;
        }
        self.replies.push_back((to, buf));
    }

    pub(super) fn is_router(&self, addr: &SocketAddr) -> bool {
        self.config.bootstrap.contains(addr)
    }

    pub(super) fn on_response(&mut self, now: Instant, from: SocketAddr, tid: &[u8], r: &Response<'_>) {
        let Some((_, tx)) = self.match_reply(tid, from) else {
            return;
        };
        self.stats.replies_received += 1;
        let responder = CompactNode { id: *r.id, addr: from };
        if self.config.require_secure_ids && !id::is_secure_for(r.id, from.ip()) {
            self.stats.drops.insecure_id += 1;
        } else if !self.is_router(&from) {
            self.routing.heard_response(now, responder);
        }
        self.verifying.remove(&from);
        let Some(lookup_id) = tx.payload.lookup else { return };
        let Some(run) = self.lookups.get_mut(&lookup_id) else {
            return;
        };
        match run.phase {
            Phase::Searching => {
                if !run.lookup.on_response(from, *r.id, r.token) {
                    return;
                }
                let own = self.own;
                let filter = self.filter;
                // One node speaks one family (BEP 32): it can only reach those nodes.
                let ipv6 = self.config.ipv6;
                let nodes = if ipv6 { r.nodes6.clone() } else { r.nodes.clone() };
                let learned = nodes.filter(|n| n.id != own && n.addr.is_ipv6() == ipv6 && filter.allows(n.addr));
                run.lookup.add(learned);
                if run.lookup.method() == Method::GetPeers && !r.values.is_empty() {
                    let mut fresh = Vec::new();
                    for p in r.values.clone() {
                        if filter.allows(p) && run.peers_seen.len() < MAX_PEERS_SEEN && run.peers_seen.insert(p) {
                            fresh.push(p);
                        }
                    }
                    if !fresh.is_empty() {
                        self.events.push_back(Event::Peers {
                            lookup: lookup_id,
                            peers: fresh,
                        });
                    }
                }
            }
            Phase::Announcing {
                ref mut pending,
                ref mut acked,
            } => {
                if !matches!(tx.payload.query, OutQuery::Announce { .. }) {
                    return; // a late reply from the search
                }
                *pending = pending.saturating_sub(1);
                *acked += 1;
            }
        }
        self.advance(now, lookup_id);
    }

    pub(super) fn on_error(&mut self, now: Instant, from: SocketAddr, tid: &[u8]) {
        let Some((_, tx)) = self.match_reply(tid, from) else {
            return;
        };
        self.stats.errors_received += 1;
        // The remote is alive, it just would not serve this query.
        self.verifying.remove(&from);
        if let Some(lookup_id) = tx.payload.lookup {
            self.lookup_failed(lookup_id, from, &tx.payload.query);
            self.advance(now, lookup_id);
        }
    }

    pub(super) fn match_reply(
        &mut self,
        tid: &[u8],
        from: SocketAddr,
    ) -> Option<(TransactionId, crate::dht::transaction::Pending<Sent>)> {
        match self.txs.complete(tid, from) {
            Ok(done) => Some(done),
            Err(Mismatch::Stray) => {
                self.stats.drops.stray_reply += 1;
                None
            }
            Err(Mismatch::Spoofed) => {
                self.stats.drops.spoofed_reply += 1;
                None
            }
        }
    }

    pub(super) fn lookup_failed(&mut self, lookup_id: LookupId, from: SocketAddr, query: &OutQuery) {
        let Some(run) = self.lookups.get_mut(&lookup_id) else {
            return;
        };
        match run.phase {
            Phase::Searching => run.lookup.on_failure(from),
            Phase::Announcing { ref mut pending, .. } => {
                if matches!(query, OutQuery::Announce { .. }) {
                    *pending = pending.saturating_sub(1);
                }
            }
        }
    }
}
