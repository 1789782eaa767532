//! What the caller asks for: lookups, announces and `find_node`, queued until
//! bootstrap finishes, started under the concurrency cap, advanced as replies
//! come in and finished with exactly one terminal event each.

use super::*;

impl Node {
    /// A `get_peers` lookup; queued if bootstrap has not finished, never dropped.
    pub fn lookup(&mut self, now: Instant, info_hash: [u8; 20]) -> LookupId {
        self.request(now, Request::GetPeers { info_hash })
    }

    /// A `get_peers` lookup followed by `announce_peer` to the k closest nodes that
    /// gave a token. `port: None` asks for `implied_port` (our UDP source port).
    pub fn announce(&mut self, now: Instant, info_hash: [u8; 20], port: Option<u16>) -> LookupId {
        self.request(now, Request::Announce { info_hash, port })
    }

    pub fn find_node(&mut self, now: Instant, target: [u8; 20]) -> LookupId {
        self.request(now, Request::FindNode { target })
    }

    pub(super) fn new_lookup_id(&mut self) -> LookupId {
        self.next_lookup += 1;
        LookupId(self.next_lookup)
    }

    pub(super) fn request(&mut self, now: Instant, request: Request) -> LookupId {
        self.last_now = now;
        let id = self.new_lookup_id();
        self.waiting.push_back((id, request));
        self.start_waiting(now);
        id
    }

    pub(super) fn user_lookups(&self) -> usize {
        self.lookups
            .values()
            .filter(|r| matches!(r.purpose, Purpose::User(_)))
            .count()
    }

    /// Starts waiting requests once bootstrapped, up to the concurrency limit.
    pub(super) fn start_waiting(&mut self, now: Instant) {
        if !self.is_bootstrapped() {
            return;
        }
        while self.user_lookups() < self.config.max_concurrent_lookups {
            let Some((id, request)) = self.waiting.pop_front() else {
                break;
            };
            let (target, method) = match request {
                Request::GetPeers { info_hash } | Request::Announce { info_hash, .. } => (info_hash, Method::GetPeers),
                Request::FindNode { target } => (target, Method::FindNode),
            };
            self.start_lookup(now, id, Purpose::User(request), target, method);
        }
    }

    pub(super) fn start_bootstrap(&mut self, now: Instant) {
        if self.config.bootstrap.is_empty() && self.routing.is_empty() {
            // Nobody to ask: we are the first node (or a router); others will find us.
            self.finish_bootstrap(now);
            return;
        }
        let id = self.new_lookup_id();
        self.boot = Boot::Running;
        self.start_lookup(now, id, Purpose::Bootstrap, self.own, Method::FindNode);
    }

    pub(super) fn finish_bootstrap(&mut self, now: Instant) {
        self.boot = Boot::Done;
        self.events.push_back(Event::Bootstrapped);
        // The join lookup only visited our neighbourhood; one lookup into the range
        // of every other bucket fills the far buckets, so lookups through us converge.
        for i in 0..self.routing.bucket_count().saturating_sub(1) {
            let target = self.routing.random_target(i, &mut self.rng);
            let id = self.new_lookup_id();
            self.start_lookup(now, id, Purpose::Refresh, target, Method::FindNode);
        }
        self.start_waiting(now);
    }

    pub(super) fn start_lookup(
        &mut self,
        now: Instant,
        id: LookupId,
        purpose: Purpose,
        target: NodeId,
        method: Method,
    ) {
        let mut lookup = Lookup::new(target, method, self.config.k, self.config.alpha);
        self.routing
            .closest(now, &target, self.config.k, &mut self.scratch_nodes);
        lookup.add(self.scratch_nodes.iter().copied());
        if self.scratch_nodes.len() < self.config.alpha {
            for &r in &self.config.bootstrap {
                if self.filter.allows(r) && r.is_ipv6() == self.config.ipv6 {
                    lookup.add_router(r);
                }
            }
        }
        let hasher = hasher(&mut self.rng);
        let run = Running {
            purpose,
            lookup,
            phase: Phase::Searching,
            peers_seen: HashSet::with_hasher(hasher),
        };
        self.lookups.insert(id, run);
        self.advance(now, id);
    }

    /// Queues the lookup's next queries, or finishes it.
    pub(super) fn advance(&mut self, now: Instant, id: LookupId) {
        let Some(run) = self.lookups.get_mut(&id) else { return };
        match run.phase {
            Phase::Searching => {
                while let Some(n) = run.lookup.next_query() {
                    let query = match run.lookup.method() {
                        Method::FindNode => OutQuery::FindNode {
                            target: *run.lookup.target(),
                        },
                        Method::GetPeers => OutQuery::GetPeers {
                            info_hash: *run.lookup.target(),
                        },
                    };
                    self.sends.push_back(Send::New {
                        addr: n.addr,
                        sent: Sent {
                            lookup: Some(id),
                            query,
                        },
                    });
                }
                if run.lookup.is_done() {
                    self.search_done(now, id);
                }
            }
            Phase::Announcing { pending: 0, acked } => {
                self.lookups.remove(&id);
                self.events.push_back(Event::AnnounceDone {
                    lookup: id,
                    announced_to: acked,
                });
                self.start_waiting(now);
            }
            Phase::Announcing { .. } => {}
        }
    }

    pub(super) fn search_done(&mut self, now: Instant, id: LookupId) {
        let Some(run) = self.lookups.get_mut(&id) else { return };
        let closest = run.lookup.closest_responded();
        match run.purpose {
            Purpose::User(Request::Announce { info_hash, port }) => {
                let (port, implied_port) = (port.unwrap_or(0), port.is_none());
                let mut pending = 0;
                for (n, token) in run.lookup.announce_targets() {
                    let query = OutQuery::Announce {
                        info_hash,
                        port,
                        implied_port,
                        token,
                    };
                    self.sends.push_back(Send::New {
                        addr: n.addr,
                        sent: Sent {
                            lookup: Some(id),
                            query,
                        },
                    });
                    pending += 1;
                }
                run.phase = Phase::Announcing { pending, acked: 0 };
                self.advance(now, id);
            }
            Purpose::User(_) => {
                self.lookups.remove(&id);
                self.events.push_back(Event::LookupDone { lookup: id, closest });
                self.start_waiting(now);
            }
            Purpose::Bootstrap => {
                self.lookups.remove(&id);
                if closest > 0 || !self.routing.is_empty() {
                    self.finish_bootstrap(now);
                } else {
                    self.boot = Boot::RetryAt(now + self.config.bootstrap_retry);
                }
            }
            Purpose::Refresh => {
                self.lookups.remove(&id);
            }
        }
    }
}
