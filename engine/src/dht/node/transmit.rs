//! What leaves, and when: replies before queries, queries only when the
//! per-remote and per-infohash pacing allows, and the timers (retries,
//! maintenance pings, bucket refresh) that make new work.

use super::*;

impl Node {
    /// Writes one datagram into `out` (cleared first) and returns its destination.
    /// Replies go first; queries leave only when their pacing allows.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<SocketAddr> {
        self.last_now = now;
        out.clear();
        if let Some((to, buf)) = self.replies.pop_front() {
            out.extend_from_slice(&buf);
            self.recycle(buf);
            self.stats.datagrams_out += 1;
            return Some(to);
        }
        loop {
            let i =
                (0..self.sends.len()).find(|&i| self.send_ready(now, &self.sends[i]).is_some_and(|at| at <= now))?;
            let send = self.sends.remove(i)?;
            let (tid, addr, sent) = match send {
                Send::New { addr, sent } => match self.txs.start(now, self.config.query_timeout, addr, sent) {
                    Some(tid) => (tid, addr, sent),
                    None => {
                        self.sends.push_front(send);
                        return None;
                    }
                },
                Send::Resend(tid) => match self.txs.get(tid) {
                    Some(p) => (tid, p.addr, p.payload),
                    None => continue, // answered while it waited
                },
            };
            if let Some(ih) = sent.query.info_hash() {
                self.per_infohash.take(now, *ih);
            }
            self.gap.sent(now, addr);
            self.encode_query(out, tid, &sent.query);
            self.stats.datagrams_out += 1;
            return Some(addr);
        }
    }

    pub(super) fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < self.config.answer_limits.max_queued_replies {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// When `send` may leave: `None` while it is blocked on something other than
    /// time (in-flight limits).
    pub(super) fn send_ready(&self, now: Instant, send: &Send) -> Option<Instant> {
        let (addr, query) = match send {
            Send::New { addr, sent } => {
                if self.txs.is_full() || self.txs.in_flight_to(addr) >= self.config.pacing.per_remote_in_flight {
                    return None;
                }
                (*addr, sent.query)
            }
            Send::Resend(tid) => match self.txs.get(*tid) {
                Some(p) => (p.addr, p.payload.query),
                None => return Some(now), // stale: ready to be discarded
            },
        };
        let mut at = self.gap.ready_at(now, &addr);
        if let Some(ih) = query.info_hash() {
            at = at.max(self.per_infohash.ready_at(now, ih));
        }
        Some(at)
    }

    pub(super) fn encode_query(&self, out: &mut Vec<u8>, tid: TransactionId, q: &OutQuery) {
        let id = &self.own;
        // Without `want` a node answers in the family it was asked over, which is ours.
        let want = Want::default();
        let query = match q {
            OutQuery::Ping => Query::Ping { id },
            OutQuery::FindNode { target } => Query::FindNode { id, target, want },
            OutQuery::GetPeers { info_hash } => Query::GetPeers {
                id,
                info_hash,
                want,
                scrape: false,
                noseed: false,
            },
            OutQuery::Announce {
                info_hash,
                port,
                implied_port,
                token,
            } => Query::AnnouncePeer {
                id,
                info_hash,
                port: *port,
                implied_port: *implied_port,
                token: token.as_bytes(),
                seed: false,
            },
        };
        krpc::encode_query(out, &tid.to_bytes(), &query, self.config.read_only, self.version());
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        let mut at = self.next_maintenance;
        if let Some(d) = self.txs.next_deadline() {
            at = at.min(d);
        }
        if let Boot::RetryAt(t) = self.boot {
            at = at.min(t);
        }
        // Queries held back by pacing, or ready now.
        for s in &self.sends {
            if let Some(t) = self.send_ready(self.last_now, s) {
                at = at.min(t);
            }
        }
        Some(at)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        while let Some((tid, pending)) = self.txs.poll_expired(now) {
            if pending.retries < self.config.max_retries {
                self.stats.retries += 1;
                self.txs.retry(now, self.config.query_timeout, tid, pending);
                self.sends.push_back(Send::Resend(tid));
                continue;
            }
            self.stats.timeouts += 1;
            self.routing.failed(now, &pending.addr);
            self.verifying.remove(&pending.addr);
            if let Some(lookup_id) = pending.payload.lookup {
                self.lookup_failed(lookup_id, pending.addr, &pending.payload.query);
                self.advance(now, lookup_id);
            }
        }
        if let Boot::RetryAt(t) = self.boot {
            if now >= t {
                self.start_bootstrap(now);
            }
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE_EVERY;
            self.maintain(now);
        }
    }

    pub(super) fn maintain(&mut self, now: Instant) {
        self.server.maintain(now, &mut self.rng);
        self.gap.prune(now);
        self.per_infohash.prune(now);
        if !self.is_bootstrapped() {
            return;
        }
        for _ in 0..PINGS_PER_TICK {
            if self.sends.len() >= MAX_QUEUED_SENDS {
                break;
            }
            let Some(n) = self.routing.next_to_ping(now) else { break };
            self.sends.push_back(Send::New {
                addr: n.addr,
                sent: Sent {
                    lookup: None,
                    query: OutQuery::Ping,
                },
            });
        }
        if let Some(target) = self.routing.next_refresh(now, &mut self.rng) {
            let id = self.new_lookup_id();
            self.start_lookup(now, id, Purpose::Refresh, target, Method::FindNode);
        }
    }
}
