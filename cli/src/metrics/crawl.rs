//! The crawl's figures: every field of a [`CrawlSnapshot`], per core where
//! the crawl keeps them per core.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use trawl_engine::ops::{CoreSnapshot, CrawlSnapshot};

use super::{counter, family, gauge, gauge_value};

type CoreField = fn(&CoreSnapshot) -> u64;

/// One family per core figure, labelled `core`: a counter or a gauge.
fn per_core(
    enc: &mut DescriptorEncoder,
    s: &CrawlSnapshot,
    kind: MetricType,
    name: &str,
    help: &str,
    field: CoreField,
) -> Result<(), fmt::Error> {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for c in &s.cores {
        let labels = [("core", c.core.to_string())];
        let family = metric.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => ConstGauge::new(gauge_value(field(c))).encode(family)?,
            _ => ConstCounter::new(field(c)).encode(family)?,
        }
    }
    Ok(())
}

/// One counter family over cores and a second label whose values each pick a field.
fn per_core_by(
    enc: &mut DescriptorEncoder,
    s: &CrawlSnapshot,
    name: &str,
    help: &str,
    label: &'static str,
    kinds: &[(&'static str, CoreField)],
    kind: MetricType,
) -> Result<(), fmt::Error> {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for c in &s.cores {
        for (value_name, field) in kinds {
            let labels = [("core", c.core.to_string()), (label, value_name.to_string())];
            let family = metric.encode_family(&labels)?;
            match kind {
                MetricType::Gauge => ConstGauge::new(gauge_value(field(c))).encode(family)?,
                _ => ConstCounter::new(field(c)).encode(family)?,
            }
        }
    }
    Ok(())
}

const ERROR_KINDS: [(&str, CoreField); 6] = [
    ("decode", |c| c.decode_errors),
    ("filtered", |c| c.filtered),
    ("unmatched", |c| c.unmatched),
    ("timeout", |c| c.timeouts),
    ("send", |c| c.send_errors),
    ("recv", |c| c.recv_errors),
];

const QUERY_KINDS: [(&str, CoreField); 3] = [
    ("sample_infohashes", |c| c.samples_sent),
    ("find_node", |c| c.find_nodes_sent),
    ("get_peers", |c| c.get_peers_sent),
];

const GET_PEERS_KINDS: [(&str, CoreField); 3] = [
    ("peers", |c| c.get_peers_sent - c.scrapes_sent - c.lookup_queries_sent),
    ("scrape", |c| c.scrapes_sent),
    ("lookup", |c| c.lookup_queries_sent),
];

const QUERY_OUTCOMES: [(&str, CoreField); 3] = [
    ("answered", |c| c.queries_answered - c.query_errors_sent),
    ("error", |c| c.query_errors_sent),
    ("ignored", |c| c.queries_ignored),
];

const HARVEST_KINDS: [(&str, CoreField); 2] = [
    ("get_peers", |c| c.harvested_get_peers),
    ("announce_peer", |c| c.harvested_announces),
];

const PEER_RESULTS: [(&str, CoreField); 2] = [("found", |c| c.peers_found), ("rejected", |c| c.peers_rejected)];

const LOOKUP_OUTCOMES: [(&str, CoreField); 6] = [
    ("started", |c| c.lookups_started),
    ("found", |c| c.lookups_found),
    ("empty", |c| c.lookups_empty),
    ("given_up", |c| c.lookups_given_up),
    ("dropped", |c| c.lookups_dropped),
    ("harvest_skipped", |c| c.harvest_lookups_skipped),
];

const LOOKUP_STATES: [(&str, CoreField); 2] = [("running", |c| c.lookups_running), ("waiting", |c| c.lookups_waiting)];

const HASH_RESULTS: [(&str, CoreField); 2] = [("new", |c| c.new_hashes), ("duplicate", |c| c.duplicate_hashes)];

const BEP51_SUPPORT: [(&str, CoreField); 3] = [
    ("yes", |c| c.nodes_bep51_yes),
    ("no", |c| c.nodes_bep51_no),
    ("unknown", |c| c.nodes_bep51_unknown),
];

const HANDOVER_DIRECTIONS: [(&str, CoreField); 2] = [("out", |c| c.handovers_out), ("in", |c| c.handovers_in)];

/// Encodes every figure of `s`. Names get the `trawl_` prefix from the
/// registry, and counters the `_total` suffix from the encoder.
pub(super) fn encode_snapshot(s: &CrawlSnapshot, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    gauge(
        enc,
        "uptime_seconds",
        "Seconds since the crawl started.",
        gauge_value(s.uptime_secs as u64),
    )?;
    gauge(
        enc,
        "paused",
        "1 while crawling is paused by the operator (SIGUSR1), 0 otherwise.",
        i64::from(s.paused),
    )?;
    gauge(
        enc,
        "cores",
        "Crawl cores (executors, one socket each).",
        gauge_value(s.cores.len() as u64),
    )?;

    per_core(
        enc,
        s,
        MetricType::Counter,
        "datagrams_in",
        "UDP datagrams received, per core.",
        |c| c.datagrams_in,
    )?;
    per_core(
        enc,
        s,
        MetricType::Counter,
        "datagrams_out",
        "UDP datagrams sent, per core.",
        |c| c.datagrams_out,
    )?;
    per_core_by(
        enc,
        s,
        "errors",
        "Datagrams or operations that failed, by kind, per core.",
        "kind",
        &ERROR_KINDS,
        MetricType::Counter,
    )?;
    per_core_by(
        enc,
        s,
        "queries_sent",
        "Queries sent, by method, per core.",
        "method",
        &QUERY_KINDS,
        MetricType::Counter,
    )?;
    per_core(
        enc,
        s,
        MetricType::Counter,
        "replies_sent",
        "Replies sent to other nodes' queries, per core.",
        |c| c.replies_sent,
    )?;
    per_core_by(
        enc,
        s,
        "queries_received",
        "Other nodes' queries, by outcome (answered, answered with a KRPC error, ignored), per core.",
        "outcome",
        &QUERY_OUTCOMES,
        MetricType::Counter,
    )?;
    per_core_by(
        enc,
        s,
        "harvested_infohashes",
        "Infohashes new to a core from incoming queries, by method, per core (answering mode).",
        "method",
        &HARVEST_KINDS,
        MetricType::Counter,
    )?;
    per_core(
        enc,
        s,
        MetricType::Counter,
        "announced_peers",
        "Peers that announced themselves to us (announce_peer), handed to the fetcher, per core.",
        |c| c.announced_peers,
    )?;
    per_core(
        enc,
        s,
        MetricType::Counter,
        "verify_pings_sent",
        "Pings sent to queriers before they may enter the node table (BEP 5), per core.",
        |c| c.verify_pings_sent,
    )?;
    per_core_by(
        enc,
        s,
        "get_peers_sent",
        "get_peers sent, per core: plain to a sampler (peers), BEP 33 scrapes, lookup steps.",
        "kind",
        &GET_PEERS_KINDS,
        MetricType::Counter,
    )?;
    per_core_by(
        enc,
        s,
        "peers",
        "Peers from get_peers values: kept (found) or dropped (rejected: bogon, port 0, wrong family, repeat).",
        "result",
        &PEER_RESULTS,
        MetricType::Counter,
    )?;
    per_core_by(
        enc,
        s,
        "lookups",
        "get_peers lookups toward infohashes whose sampler gave no peers, by outcome.",
        "outcome",
        &LOOKUP_OUTCOMES,
        MetricType::Counter,
    )?;
    per_core_by(
        enc,
        s,
        "lookups_now",
        "get_peers lookups running, and waiting for a slot or their retry time.",
        "state",
        &LOOKUP_STATES,
        MetricType::Gauge,
    )?;
    per_core_by(
        enc,
        s,
        "core_infohashes",
        "Infohashes sampled, new or already seen by this core.",
        "result",
        &HASH_RESULTS,
        MetricType::Counter,
    )?;
    per_core(
        enc,
        s,
        MetricType::Gauge,
        "known_nodes",
        "Remote nodes this core owns.",
        |c| c.known_nodes,
    )?;
    per_core_by(
        enc,
        s,
        "nodes_bep51",
        "Owned nodes by BEP 51 (sample_infohashes) support.",
        "support",
        &BEP51_SUPPORT,
        MetricType::Gauge,
    )?;
    per_core(
        enc,
        s,
        MetricType::Gauge,
        "queries_in_flight",
        "Queries awaiting a reply, per core.",
        |c| c.in_flight,
    )?;
    per_core_by(
        enc,
        s,
        "handovers",
        "Nodes handed to (out) and received from (in) other cores.",
        "direction",
        &HANDOVER_DIRECTIONS,
        MetricType::Counter,
    )?;
    per_core(
        enc,
        s,
        MetricType::Gauge,
        "handover_queue_items",
        "Handovers waiting in this core's inbound channel.",
        |c| c.handover_queue,
    )?;
    per_core(
        enc,
        s,
        MetricType::Gauge,
        "handover_queue_capacity",
        "Capacity of this core's inbound handover channel.",
        |c| c.handover_queue_cap,
    )?;

    let st = &s.storage;
    let rows = [("new", st.new_infohashes), ("duplicate", st.duplicate_infohashes)]
        .map(|(result, v)| ([("result", result)], ConstCounter::new(v)));
    family(
        enc,
        "storage_infohashes",
        "Infohashes written: never stored before (new) or already stored (duplicate).",
        MetricType::Counter,
        rows,
    )?;
    counter(
        enc,
        "storage_torrents",
        "Torrents (fetched metadata) stored.",
        st.torrents,
    )?;
    counter(
        enc,
        "storage_commits",
        "Group commits by the storage writer.",
        st.commits,
    )?;
    let commit_seconds = ConstCounter::new(st.commit_micros as f64 / 1e6);
    commit_seconds.encode(enc.encode_descriptor(
        "storage_commit_seconds",
        "Time spent in group commits; divide by trawl_storage_commits_total for the average write latency.",
        None,
        MetricType::Counter,
    )?)?;
    counter(
        enc,
        "storage_items_lost",
        "Items the writer failed to store (should stay 0).",
        st.items_lost,
    )?;
    counter(
        enc,
        "storage_requeued_for_new_peers",
        "Metadata-fetch queue entries made due at once because peers new to them arrived.",
        st.requeued_for_new_peers,
    )?;
    for (name, help, v) in [
        (
            "storage_queue_abandoned",
            "Hashes that left the metadata-fetch queue after its attempt limit (the infohash stays stored).",
            st.queue_abandoned,
        ),
        (
            "storage_queue_expired",
            "Hashes that left the metadata-fetch queue failing after its age limit (the infohash stays stored).",
            st.queue_expired,
        ),
        (
            "storage_queue_dropped_full",
            "Hashes not queued for metadata because the queue was at its entry limit (the infohash is stored).",
            st.queue_dropped_full,
        ),
        (
            "storage_info_dicts_not_kept_budget",
            "Fetched torrents stored without their info dict because --max-disk's first step (90%) was reached.",
            st.info_dicts_not_kept_budget,
        ),
        (
            "storage_infohashes_refused_budget",
            "Infohashes never stored before, refused at --max-disk's last step (98%).",
            st.infohashes_refused_budget,
        ),
        (
            "storage_queue_refused_budget",
            "Metadata-fetch queue entries not created at --max-disk's last step (98%).",
            st.queue_refused_budget,
        ),
        (
            "storage_disk_full_pauses",
            "Times the file system refused a write (disk full) and storing paused until space was freed.",
            st.disk_full_pauses,
        ),
    ] {
        counter(enc, name, help, v)?;
    }
    counter(
        enc,
        "storage_provisional_names",
        "Provisional torrent names (heard in get_peers replies) stored.",
        st.provisional_names,
    )?;
    gauge(
        enc,
        "writer_channel_items",
        "Batches waiting in the storage writer's channel.",
        gauge_value(st.channel_len),
    )?;
    gauge(
        enc,
        "writer_channel_capacity",
        "Capacity of the storage writer's channel.",
        gauge_value(st.channel_cap),
    )?;
    gauge(
        enc,
        "staging_backlog",
        "Infohashes queued for a metadata fetch.",
        gauge_value(st.staging_backlog),
    )?;
    gauge(
        enc,
        "storage_rocksdb_memory_bytes",
        "RocksDB's memtables, table readers and block cache, in bytes.",
        gauge_value(st.rocksdb_memory_bytes),
    )?;
    for (name, help, v) in [
        (
            "storage_disk_bytes",
            "Bytes under the database directory, measured at most a second ago.",
            st.disk_used_bytes,
        ),
        (
            "storage_disk_budget_bytes",
            "The --max-disk budget in bytes (0: none).",
            st.disk_budget_bytes,
        ),
        (
            "storage_disk_state",
            "0 storing everything, 1 no info dicts, 2 no fetching, 3 no new infohashes (--max-disk steps), 4 disk full (storing paused).",
            st.disk_state as u64,
        ),
    ] {
        gauge(enc, name, help, gauge_value(v))?;
    }
    let m = &s.memory;
    let parts = [
        ("rust_heap_live", m.rust_heap_live),
        ("mimalloc_committed", m.mimalloc_committed),
        ("libc_heap_in_use", m.libc_heap_in_use),
        ("libc_heap_free", m.libc_heap_free),
    ];
    family(
        enc,
        "memory_bytes",
        "The process's memory by allocator: live Rust bytes, what mimalloc has committed for them, glibc's heap (RocksDB) in use and freed but kept.",
        MetricType::Gauge,
        parts
            .into_iter()
            .filter_map(|(part, v)| Some(([("part", part)], ConstGauge::new(gauge_value(v?))))),
    )?;

    let f = &s.fetch;
    let outcomes = std::iter::once(("ok", f.ok))
        .chain(f.failed.iter().copied())
        .map(|(outcome, v)| ([("outcome", outcome)], ConstCounter::new(v)));
    family(
        enc,
        "metadata_fetches",
        "Metadata fetch attempts (one connection each) by outcome; no_peers and bad_info count infohashes instead (see metadata_hashes).",
        MetricType::Counter,
        outcomes,
    )?;
    family(
        enc,
        "metadata_hashes",
        "Infohashes by what their metadata fetch came to: ok, all_peers_failed, no_peers, bad_info, cut_at_stop (leases given back at stop).",
        MetricType::Counter,
        f.hash_outcomes().into_iter().map(|(outcome, v)| ([("outcome", outcome)], ConstCounter::new(v))),
    )?;
    counter(enc, "metadata_fetches_started", "Metadata fetches started.", f.started)?;
    gauge(
        enc,
        "metadata_fetches_active",
        "Metadata fetches running now.",
        gauge_value(f.active),
    )?;
    Ok(())
}
