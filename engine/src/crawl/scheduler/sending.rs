//! What the scheduler sends next, and when: verifying pings, samples due by
//! their node's `interval` (paused on backpressure), walks (`find_node`) and
//! bootstrap, each under its IP's pacing bucket.

use super::*;

impl Scheduler {
    pub(super) fn next_sample(&mut self, now: Instant, now_ms: Millis, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if self.backlogged() {
            if self.samples.peek_due().is_some_and(|d| d <= now_ms) {
                self.stats.backpressure_pauses += 1;
            }
            return None;
        }
        let (r, to) = self.pop_ready(Plan::Sample, now, now_ms)?;
        let target = self.keyspace.next_target(&mut self.rng);
        let node_id = self.cfg.node_id;
        let query = Query::SampleInfohashes {
            id: &node_id,
            target: &target,
            want: self.cfg.want,
        };
        self.send(now_ms, to, Some(r), Asked::Sample, &query, buf)?;
        self.stats.samples_sent += 1;
        // Until the reply brings the node's interval, assume the back-off of a
        // sample lost after it counted: what a save before the reply keeps.
        if let Some(n) = self.table.get_mut(r) {
            let wait = lost_sample_wait(&self.cfg, n.interval, self.longest_interval, n.failures + 1);
            n.next_sample = n.next_sample.max(now_ms.saturating_add(wait));
        }
        Some(to)
    }

    /// A ping to the next querier awaiting verification, paced like any query.
    pub(super) fn next_verify(&mut self, now: Instant, now_ms: Millis, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let to = *self.verify_queue.front()?;
        if !self.pacer.take(now, to.ip()) {
            return None;
        }
        self.verify_queue.pop_front();
        let node_id = self.cfg.node_id;
        let query = Query::Ping { id: &node_id };
        if self.send(now_ms, to, None, Asked::Verify, &query, buf).is_none() {
            self.verifying.remove(&to);
            return None;
        }
        self.stats.verify_pings_sent += 1;
        Some(to)
    }

    pub(super) fn next_walk(&mut self, now: Instant, now_ms: Millis, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let (r, to) = self.pop_ready(Plan::Walk, now, now_ms)?;
        let target = self.keyspace.next_target(&mut self.rng);
        let node_id = self.cfg.node_id;
        let query = Query::FindNode {
            id: &node_id,
            target: &target,
            want: self.cfg.want,
        };
        self.send(now_ms, to, Some(r), Asked::FindNode, &query, buf)?;
        self.stats.find_nodes_sent += 1;
        Some(to)
    }

    pub(super) fn schedule(&mut self, plan: Plan) -> &mut Schedule {
        match plan {
            Plan::Sample => &mut self.samples,
            Plan::Walk => &mut self.walks,
        }
    }

    /// The next node on `plan`'s schedule that may be queried now, with its IP's
    /// pacing token already taken. Stale entries are dropped; nodes whose own
    /// time or IP is not ready yet are put back for when they are.
    pub(super) fn pop_ready(&mut self, plan: Plan, now: Instant, now_ms: Millis) -> Option<(NodeRef, SocketAddr)> {
        for _ in 0..POP_BUDGET {
            let (due, r) = self.schedule(plan).pop_due(now_ms)?;
            let Some(n) = self.table.get_mut(r) else { continue };
            if *plan.queued_at(n) != due {
                continue;
            }
            *plan.queued_at(n) = NOT_QUEUED;
            if n.in_flight || (plan == Plan::Sample && n.bep51 == Bep51::No) {
                // Requeued when the reply comes back.
                continue;
            }
            let (to, next) = (n.addr, plan.next(n));
            let wait_until = if next > now_ms {
                next
            } else if !self.pacer.take(now, to.ip()) {
                self.paced_until(now, now_ms, to.ip())
            } else {
                return Some((r, to));
            };
            if let Some(n) = self.table.get_mut(r) {
                *plan.queued_at(n) = wait_until;
            }
            self.schedule(plan).push(wait_until, r);
        }
        None
    }

    pub(super) fn wants_bootstrap(&self) -> bool {
        self.table.len() < BOOTSTRAP_BELOW && !self.cfg.bootstrap.is_empty()
    }

    /// Asks the bootstrap nodes this core owns (replies from the others would
    /// land on their owner cores), one per call; rounds 2, 4, 8, 16 s apart,
    /// then one per `bootstrap_retry`, until the table has enough nodes.
    pub(super) fn next_bootstrap(&mut self, now: Instant, now_ms: Millis, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if !self.wants_bootstrap() {
            self.bootstrap_rounds = 0;
            return None;
        }
        if now_ms < self.bootstrap_due {
            return None;
        }
        while self.bootstrap_next < self.cfg.bootstrap.len() {
            let to = self.cfg.bootstrap[self.bootstrap_next];
            self.bootstrap_next += 1;
            if owner(to, self.cfg.cores) != self.cfg.core || !self.filter.allows(to) {
                continue;
            }
            if !self.pacer.take(now, to.ip()) {
                continue;
            }
            let target = self.keyspace.next_target(&mut self.rng);
            let node_id = self.cfg.node_id;
            let query = Query::FindNode {
                id: &node_id,
                target: &target,
                want: self.cfg.want,
            };
            self.send(now_ms, to, None, Asked::Bootstrap, &query, buf)?;
            self.stats.find_nodes_sent += 1;
            self.stats.bootstrap_sent += 1;
            return Some(to);
        }
        self.bootstrap_next = 0;
        let backoff = BOOTSTRAP_FIRST_RETRY.saturating_mul(1 << self.bootstrap_rounds.min(16));
        self.bootstrap_rounds = self.bootstrap_rounds.saturating_add(1);
        self.bootstrap_due = now_ms.saturating_add(backoff.min(ms(self.cfg.bootstrap_retry)));
        None
    }

    /// When `ip`'s bucket has a token again, strictly after now.
    pub(super) fn paced_until(&self, now: Instant, now_ms: Millis, ip: IpAddr) -> Millis {
        self.clock.ceil(self.pacer.ready_at(now, &ip)).max(now_ms + 1)
    }

    pub(super) fn send(
        &mut self,
        now_ms: Millis,
        to: SocketAddr,
        node: Option<NodeRef>,
        asked: Asked,
        query: &Query<'_>,
        buf: &mut Vec<u8>,
    ) -> Option<()> {
        let deadline = now_ms.saturating_add(ms(self.cfg.query_timeout));
        let tid = self.tx.start(
            InFlight {
                to,
                node,
                asked,
                deadline,
            },
            self.rng.gen(),
        )?;
        if let Some(n) = node.and_then(|r| self.table.get_mut(r)) {
            n.in_flight = true;
        }
        let version = self.cfg.version.as_ref().map(|v| &v[..]);
        encode_query(buf, &tid, query, self.cfg.read_only, version);
        Some(())
    }
}
