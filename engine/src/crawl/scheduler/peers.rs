//! The scheduler's side of the peer search ([`PeerSearch`]): sending peer
//! queries under per-IP pacing, reading `values`, `n` and bloom filters from
//! their replies, and carrying lookup steps and reports between cores.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Asked, Scheduler, POP_BUDGET};
use crate::codec::compact::CompactNode;
use crate::codec::krpc::{Query, Response};
use crate::codec::scrape::ScrapeBloom;
use crate::codec::wire::BLOOM_LEN;
use crate::crawl::clock::Millis;
use crate::crawl::dedup::InfoHash;
use crate::crawl::output::{NameFound, PeerFound, SwarmSize, MAX_NAME_LEN};
use crate::crawl::peer_search::{JobKind, LookupKey, LookupMsg, PeerJob, Report};

/// Nodes a lookup starts from when no reply gave any.
const RANDOM_SEEDS: usize = 8;
/// Most closer nodes one lookup report carries (a reply's `nodes` and `nodes6`).
const MAX_REPORT_NODES: usize = 16;
/// How soon a lookup step waiting on a silent node's outstanding query looks again.
const PROBE_RECHECK: Millis = 250;

impl Scheduler {
    /// Takes a lookup query or report from another core.
    pub fn handle_lookup_msg(&mut self, now: Instant, msg: LookupMsg) {
        let now_ms = self.clock.floor(now);
        match msg {
            LookupMsg::Query { key, info_hash, node } => self.peers.push(
                now_ms,
                PeerJob {
                    info_hash,
                    to: node.addr,
                    kind: JobKind::Lookup(key),
                },
            ),
            LookupMsg::Report { key, report } => {
                let out = &mut self.output.lookups;
                self.peers.report(now_ms, key, report, out);
            }
        }
    }

    pub(super) fn next_peer_query(&mut self, now: Instant, now_ms: Millis, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        for _ in 0..POP_BUDGET {
            let job = self.peers.pop_due(now_ms)?;
            if let JobKind::Lookup(key) = job.kind {
                // Another core's candidate may be one this core knows is dead.
                if !self.filter.allows(job.to) || self.unreachable.contains(&job.to, now_ms) {
                    self.route_report(now_ms, key, failed(job.to));
                    continue;
                }
                // One query at a time to a table node, and to a node that
                // never answered.
                let busy = self
                    .table
                    .lookup(&job.to)
                    .and_then(|r| self.table.get(r))
                    .is_some_and(|n| n.in_flight);
                if busy || !self.probes.may_ask(&job.to) {
                    self.peers.push(now_ms + PROBE_RECHECK, job);
                    continue;
                }
            }
            if !self.pacer.take(now, job.to.ip()) {
                let ready = self.paced_until(now, now_ms, job.to.ip());
                self.peers.push(ready, job);
                continue;
            }
            let node_id = self.cfg.node_id;
            let query = Query::GetPeers {
                id: &node_id,
                info_hash: &job.info_hash,
                want: self.cfg.want,
                scrape: job.kind == JobKind::Scrape,
                noseed: false,
            };
            if self
                .send(
                    now_ms,
                    job.to,
                    None,
                    Asked::GetPeers(job.info_hash, job.kind),
                    &query,
                    buf,
                )
                .is_none()
            {
                // No transaction slot after all: try again shortly.
                self.peers.push(now_ms + 1, job);
                return None;
            }
            if matches!(job.kind, JobKind::Lookup(_)) {
                self.probes.sent(job.to);
            }
            self.stats.get_peers_sent += 1;
            match job.kind {
                JobKind::Scrape => self.stats.scrapes_sent += 1,
                JobKind::Lookup(_) => self.stats.lookup_queries_sent += 1,
                JobKind::Peers => {}
            }
            return Some(job.to);
        }
        None
    }

    /// A `get_peers` reply: every usable peer, the name, the counts, and for a
    /// sampler without peers or a lookup step, where to look next.
    pub(super) fn on_peers(
        &mut self,
        now_ms: Millis,
        from: SocketAddr,
        info_hash: InfoHash,
        kind: JobKind,
        r: &Response<'_>,
    ) {
        let peers = self.take_peers(from, info_hash, r);
        if let Some(name) = r.name.filter(|n| !n.is_empty()) {
            self.output.names.push(NameFound {
                info_hash,
                name: name[..name.len().min(MAX_NAME_LEN)].to_vec(),
            });
        }
        if r.bf_seeds.is_some() || r.bf_peers.is_some() {
            let estimate = |bf: Option<&[u8; BLOOM_LEN]>| bf.map_or(0.0, |b| ScrapeBloom::from_bytes(b).estimate());
            self.output.swarms.push(SwarmSize {
                info_hash,
                from,
                seeders: estimate(r.bf_seeds),
                leechers: estimate(r.bf_peers),
            });
        }
        match kind {
            JobKind::Scrape => {}
            JobKind::Peers if peers > 0 => {}
            JobKind::Peers => {
                self.stats.sampler_without_peers += 1;
                let seeds = self.closer_nodes(r);
                let out = &mut self.output.lookups;
                self.peers.start(now_ms, info_hash, seeds, out);
            }
            JobKind::Lookup(key) => {
                self.probes.answered(&from);
                let report = Report {
                    from,
                    id: Some(*r.id),
                    nodes: self.closer_nodes(r),
                    peers,
                };
                self.route_report(now_ms, key, report);
            }
        }
    }

    /// A lookup step's node did not answer: counted like a table node's
    /// timeouts, it is unreachable after `max_failures`.
    pub(super) fn lookup_step_timed_out(&mut self, now_ms: Millis, to: SocketAddr) {
        let failures = match self.table.lookup(&to) {
            Some(r) => {
                let earlier = self.probes.take_failures(&to);
                let Some(n) = self.table.get_mut(r) else { return };
                n.failures = n.failures.saturating_add(1).saturating_add(earlier);
                n.failures
            }
            None => self.probes.timed_out(&to),
        };
        if failures >= self.cfg.max_failures {
            if let Some(r) = self.table.lookup(&to) {
                self.table.remove(r);
            }
            self.probes.take_failures(&to);
            self.unreachable.insert(to, now_ms);
            self.stats.marked_unreachable += 1;
        }
    }

    /// A `get_peers` that timed out or got an error.
    pub(super) fn peers_failed(&mut self, now_ms: Millis, to: SocketAddr, info_hash: InfoHash, kind: JobKind) {
        match kind {
            JobKind::Scrape => {}
            JobKind::Peers => {
                let seeds = self.random_seeds();
                let out = &mut self.output.lookups;
                self.peers.start(now_ms, info_hash, seeds, out);
            }
            JobKind::Lookup(key) => self.route_report(now_ms, key, failed(to)),
        }
    }

    /// Ends overdue lookups and starts the retries that are due.
    pub(super) fn tick_lookups(&mut self, now_ms: Millis) {
        while let Some((info_hash, attempt)) = self.peers.tick(now_ms, &mut self.output.lookups) {
            let seeds = self.random_seeds();
            self.peers
                .retry(now_ms, info_hash, attempt, seeds, &mut self.output.lookups);
        }
    }

    /// The usable peers of a reply go to the output; returns how many.
    /// Bogons, port 0, the other family than the query's, and repeats within
    /// the reply are dropped and counted.
    fn take_peers(&mut self, from: SocketAddr, info_hash: InfoHash, r: &Response<'_>) -> u32 {
        let start = self.output.peers.len();
        for peer in r.values.clone() {
            let usable = peer.is_ipv4() == from.is_ipv4()
                && self.filter.allows(peer)
                && !self.output.peers[start..].iter().any(|p| p.peer == peer);
            if usable {
                self.output.peers.push(PeerFound { info_hash, peer });
            } else {
                self.stats.peers_rejected += 1;
            }
        }
        let found = (self.output.peers.len() - start) as u32;
        self.stats.peers_found += u64::from(found);
        found
    }

    /// The nodes a reply names that a lookup may ask next: allowed, not us.
    fn closer_nodes(&self, r: &Response<'_>) -> Vec<CompactNode> {
        let me = self.cfg.node_id;
        r.nodes
            .clone()
            .chain(r.nodes6.clone())
            .filter(|n| n.id != me && self.filter.allows(n.addr))
            .take(MAX_REPORT_NODES)
            .collect()
    }

    pub(super) fn random_seeds(&mut self) -> Vec<CompactNode> {
        let mut seeds = Vec::with_capacity(RANDOM_SEEDS);
        self.table.random_nodes(&mut self.rng, RANDOM_SEEDS, &mut seeds);
        seeds
    }

    /// Applies a report to this core's lookup, or sends it to the core that runs it.
    fn route_report(&mut self, now_ms: Millis, key: LookupKey, report: Report) {
        let out = &mut self.output.lookups;
        if key.core as usize == self.cfg.core {
            self.peers.report(now_ms, key, report, out);
        } else {
            out.push((key.core as usize, LookupMsg::Report { key, report }));
        }
    }
}

fn failed(from: SocketAddr) -> Report {
    Report {
        from,
        id: None,
        nodes: Vec::new(),
        peers: 0,
    }
}
