//! What the scheduler learns from replies: a reply or error is matched to its
//! query, samples go through dedup into [`Output`](super::Output) and start
//! peer queries, `nodes` are learned (or handed to their owner core), and a
//! sampled node is queued again at its `interval`.

use super::*;

impl Scheduler {
    pub(super) fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        r: &Response<'_>,
        seen_as: Option<SocketAddr>,
    ) {
        let Some(q) = self.tx.finish(tid, from) else {
            self.stats.unmatched += 1;
            return;
        };
        self.stats.replies_received += 1;
        if let (Some(seen), None) = (seen_as, self.cfg.external_ip) {
            if let Some(ip) = self.external.vote(from.ip(), seen.ip()) {
                self.take_secure_id(now, ip);
            }
        }
        let now_ms = self.clock.floor(now);
        if let Some(a) = self.answering.as_mut() {
            a.heard_response(now, CompactNode { id: *r.id, addr: from });
        }
        let learned = self.learn_all(now_ms, r.nodes.clone()) + self.learn_all(now_ms, r.nodes6.clone());
        match q.asked {
            Asked::Sample => self.on_samples(now, from, q.node, r),
            Asked::FindNode => {
                if let Some(n) = q.node.and_then(|nr| self.table.get_mut(nr)) {
                    n.in_flight = false;
                    n.failures = 0;
                    // A walk that found nobody new waits longer before the next.
                    let wait = ms(self.cfg.walk_interval) << u32::from(learned == 0);
                    n.next_walk = now_ms.saturating_add(wait);
                }
            }
            Asked::Bootstrap => {
                self.stats.bootstrap_answered += 1;
                self.learn(now_ms, CompactNode { id: *r.id, addr: from });
            }
            Asked::Verify => {
                self.verifying.remove(&from);
                self.learn(now_ms, CompactNode { id: *r.id, addr: from });
            }
            Asked::GetPeers(info_hash, kind) => self.on_peers(now_ms, from, info_hash, kind, r),
        }
        if let Some(nr) = q.node {
            self.requeue(nr);
        }
    }

    pub(super) fn on_samples(&mut self, now: Instant, from: SocketAddr, node: Option<NodeRef>, r: &Response<'_>) {
        let Some(nr) = node else { return };
        let Some(n) = self.table.get_mut(nr) else { return };
        n.in_flight = false;
        n.failures = 0;
        n.id = *r.id;
        let now_ms = self.clock.floor(now);
        if r.interval.is_none() && r.num.is_none() && r.samples.is_empty() {
            // Answered, but not as BEP 51: walk it with find_node instead.
            n.bep51 = Bep51::No;
            n.next_walk = now_ms;
            return;
        }
        n.bep51 = Bep51::Yes;
        let mut fresh = 0u32;
        // The peer queries all go to this node's IP: spread their due times at
        // its pacing rate beyond the burst, so each is popped about once
        // instead of being found paced and re-queued again and again.
        let spacing = (1000.0 / self.cfg.per_ip_rate.max(1e-3)).ceil() as Millis;
        let burst = self.cfg.per_ip_burst.max(1.0) as u32;
        let kinds: &[JobKind] = if self.cfg.scrape_counts {
            &[JobKind::Peers, JobKind::Scrape]
        } else {
            &[JobKind::Peers]
        };
        let mut queued = 0u32;
        let (output, peers) = (&mut self.output, &mut self.peers);
        self.dedup.insert_all(r.samples.clone(), |h| {
            fresh += 1;
            output.discoveries.push(Discovery {
                info_hash: *h,
                source: from,
                source_id: *r.id,
                via: Via::Sample,
            });
            for &kind in kinds {
                queued += 1;
                let due = now_ms.saturating_add(Millis::from(queued.saturating_sub(burst)) * spacing);
                peers.push(
                    due,
                    PeerJob {
                        info_hash: *h,
                        to: from,
                        kind,
                    },
                );
            }
        });
        self.stats.new_hashes += u64::from(fresh);
        self.stats.duplicate_hashes += (r.samples.len() as u64).saturating_sub(u64::from(fresh));
        n.samples_answered = n.samples_answered.saturating_add(1);
        n.new_hashes = n.new_hashes.saturating_add(fresh);
        // A node that holds more than it showed (libtorrent shows 20 of its
        // store, picked anew each interval) has more to give even when this
        // sample brought nothing new: only one that showed all it has backs off.
        let holds_more = r.num.is_some_and(|num| num > r.samples.len() as i64);
        let policy = if fresh > 0 || holds_more {
            n.empty_streak = 0;
            ms(self.cfg.productive_resample)
        } else {
            n.empty_streak = (n.empty_streak + 1).min(MAX_EMPTY_STREAK);
            let doubled = ms(self.cfg.empty_backoff).saturating_mul(1 << (n.empty_streak - 1));
            doubled.min(ms(self.cfg.max_backoff))
        };
        let interval = r.interval.unwrap_or(0).clamp(0, MAX_SAMPLE_INTERVAL.as_secs() as i64) as Millis * 1000;
        n.interval = Some(interval);
        self.longest_interval = self.longest_interval.max(interval);
        // Rounded up from the arrival: never before the node's own clock allows.
        n.next_sample = self.clock.ceil(now).saturating_add(interval.max(policy));
    }

    pub(super) fn on_error(&mut self, now: Instant, from: SocketAddr, tid: &[u8], e: &ErrorReply<'_>) {
        let Some(q) = self.tx.finish(tid, from) else {
            self.stats.unmatched += 1;
            return;
        };
        let now_ms = self.clock.floor(now);
        if let Asked::GetPeers(info_hash, kind) = q.asked {
            if matches!(kind, JobKind::Lookup(_)) {
                self.probes.answered(&from);
            }
            self.peers_failed(now_ms, from, info_hash, kind);
        }
        if q.asked == Asked::Verify {
            // Alive, but it would not answer a ping: not a node to keep.
            self.verifying.remove(&from);
        }
        let Some(nr) = q.node else { return };
        let Some(n) = self.table.get_mut(nr) else { return };
        n.in_flight = false;
        n.failures = 0;
        let backoff = now_ms.saturating_add(ms(self.cfg.empty_backoff));
        match q.asked {
            Asked::Sample if e.code == ERROR_METHOD_UNKNOWN => {
                n.bep51 = Bep51::No;
                n.next_walk = now_ms;
            }
            Asked::Sample => n.next_sample = n.next_sample.max(backoff),
            _ => n.next_walk = n.next_walk.max(backoff),
        }
        self.requeue(nr);
    }

    pub(super) fn learn_all(&mut self, now_ms: Millis, nodes: CompactNodes<'_>) -> u32 {
        let mut new = 0;
        for node in nodes {
            new += u32::from(self.learn(now_ms, node));
        }
        new
    }

    /// Takes a node into the table if it is reachable, allowed and ours; hands
    /// it over if another core owns it. True if it is new here.
    pub(super) fn learn(&mut self, now_ms: Millis, node: CompactNode) -> bool {
        // A family we did not ask for (BEP 32 `want`) has no socket here.
        if node.id == self.cfg.node_id || (node.addr.is_ipv6() && !self.cfg.want.v6) {
            return false;
        }
        if !self.filter.allows(node.addr) {
            self.stats.filtered += 1;
            return false;
        }
        let core = owner(node.addr, self.cfg.cores);
        if core != self.cfg.core {
            self.output.handovers.push(Handover { core, node });
            return false;
        }
        // Most nodes in a reply are known already. What a third party says of
        // a known node's id is hearsay (its own replies set it), so a known
        // node costs one index probe and nothing else.
        if self.table.knows(&node.addr) || self.unreachable.contains(&node.addr, now_ms) {
            return false;
        }
        match self.table.insert(node.addr, &node.id, now_ms, &mut self.rng) {
            Inserted::New(r) => {
                if let Some(n) = self.table.get_mut(r) {
                    n.next_walk = now_ms.saturating_add(ms(self.cfg.walk_interval));
                }
                self.requeue(r);
                true
            }
            Inserted::Known(_) | Inserted::Refused => false,
        }
    }

    /// Puts a node that is not in flight back on the schedules it belongs to,
    /// or moves its entry earlier (the old entry goes stale).
    pub(super) fn requeue(&mut self, r: NodeRef) {
        let Some(n) = self.table.get_mut(r) else { return };
        if n.in_flight {
            return;
        }
        if n.bep51 != Bep51::No && n.next_sample < n.sample_queued_at {
            n.sample_queued_at = n.next_sample;
            self.samples.push(n.next_sample, r);
        }
        if n.next_walk < n.walk_queued_at {
            n.walk_queued_at = n.next_walk;
            self.walks.push(n.next_walk, r);
        }
    }
}
