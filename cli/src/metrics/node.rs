//! A single node's figures (`trawl node`): every field of its `NodeStats`,
//! under `trawl_node_*` so they never mix with a crawl's per-core families.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use trawl_engine::dht::{Drops, NodeStats};

use super::{counter, family, gauge, gauge_value};

type DropField = fn(&Drops) -> u64;

const DROP_REASONS: [(&str, DropField); 10] = [
    ("malformed", |d| d.malformed),
    ("filtered_addr", |d| d.filtered_addr),
    ("stray_reply", |d| d.stray_reply),
    ("spoofed_reply", |d| d.spoofed_reply),
    ("rate_limited", |d| d.rate_limited),
    ("read_only", |d| d.read_only),
    ("reply_queue_full", |d| d.reply_queue_full),
    ("bad_token", |d| d.bad_token),
    ("store_full", |d| d.store_full),
    ("insecure_id", |d| d.insecure_id),
];

/// Encodes `s`; with `None` (the node stopped answering its handle) only
/// `trawl_node_up 0`, so a scrape says the node is gone rather than failing.
pub(super) fn encode_node(s: Option<&NodeStats>, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    gauge(
        enc,
        "node_up",
        "1 while the node answers its handle, 0 after it stopped.",
        i64::from(s.is_some()),
    )?;
    let Some(s) = s else { return Ok(()) };
    let g = |v: usize| gauge_value(v as u64);
    gauge(
        enc,
        "node_routing_nodes",
        "Nodes in the routing table.",
        g(s.routing_nodes),
    )?;
    gauge(
        enc,
        "node_routing_buckets",
        "Buckets of the routing table.",
        g(s.routing_buckets),
    )?;
    gauge(
        enc,
        "node_replacement_nodes",
        "Nodes waiting in bucket replacement caches.",
        g(s.replacement_nodes),
    )?;
    gauge(
        enc,
        "node_in_flight",
        "Queries sent and not yet answered or timed out.",
        g(s.in_flight),
    )?;
    gauge(
        enc,
        "node_queued_queries",
        "Queries waiting for their pacing slot.",
        g(s.queued_queries),
    )?;
    family(
        enc,
        "node_lookups",
        "Lookups by state: running, or queued (before bootstrap or above the concurrency cap).",
        MetricType::Gauge,
        [("running", s.running_lookups), ("queued", s.queued_lookups)]
            .map(|(state, v)| ([("state", state)], ConstGauge::new(g(v)))),
    )?;
    gauge(
        enc,
        "node_peer_store_infohashes",
        "Infohashes with announced peers in the peer store.",
        g(s.infohashes_stored),
    )?;
    gauge(
        enc,
        "node_peer_store_peers",
        "Peers in the peer store.",
        g(s.peers_stored),
    )?;
    family(
        enc,
        "node_datagrams",
        "UDP datagrams by direction.",
        MetricType::Counter,
        [("in", s.datagrams_in), ("out", s.datagrams_out)].map(|(dir, v)| ([("direction", dir)], ConstCounter::new(v))),
    )?;
    counter(
        enc,
        "node_queries_received",
        "Queries received from other nodes.",
        s.queries_received,
    )?;
    family(
        enc,
        "node_queries_answered",
        "Queries answered, by outcome: a reply, or a KRPC error (malformed queries included).",
        MetricType::Counter,
        [("reply", s.queries_answered), ("error", s.errors_sent)]
            .map(|(outcome, v)| ([("outcome", outcome)], ConstCounter::new(v))),
    )?;
    family(
        enc,
        "node_responses_received",
        "Answers to our queries, by kind.",
        MetricType::Counter,
        [("reply", s.replies_received), ("error", s.errors_received)]
            .map(|(kind, v)| ([("kind", kind)], ConstCounter::new(v))),
    )?;
    counter(enc, "node_timeouts", "Queries of ours that timed out.", s.timeouts)?;
    counter(
        enc,
        "node_retries",
        "Queries of ours sent again after a timeout.",
        s.retries,
    )?;
    family(
        enc,
        "node_dropped",
        "Datagrams and queries dropped, by reason.",
        MetricType::Counter,
        DROP_REASONS.map(|(reason, field)| ([("reason", reason)], ConstCounter::new(field(&s.drops)))),
    )
}
