//! A running crawl's figures at one instant, as plain data: the one contract
//! between the crawl runtime (which fills it), the live status line and the
//! Prometheus endpoint (which read it).
//!
//! Owns no state and does no I/O. Every counter is monotonic since the start of
//! the process; gauges are marked as such. Readers turn counter differences
//! into rates.

pub use super::memory::MemoryBreakdown;
pub use trawl_storage::DiskState;

/// One crawl core (one executor, one socket per family).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoreSnapshot {
    pub core: usize,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Received datagrams that were not valid KRPC.
    pub decode_errors: u64,
    /// Datagrams from, or nodes at, private/loopback/bogon addresses.
    pub filtered: u64,
    /// Replies matching no query in flight (by transaction id and sender).
    pub unmatched: u64,
    pub timeouts: u64,
    /// Failed `sendmmsg`/`recvmmsg` calls.
    pub send_errors: u64,
    pub recv_errors: u64,
    /// Infohashes new to this core, and those it had already seen.
    pub new_hashes: u64,
    pub duplicate_hashes: u64,
    pub samples_sent: u64,
    pub find_nodes_sent: u64,
    /// Bootstrap `find_node` queries and their replies; every matched reply.
    pub bootstrap_sent: u64,
    pub bootstrap_answered: u64,
    pub replies_received: u64,
    /// Every `get_peers` sent; of them, BEP 33 scrapes and lookup steps.
    pub get_peers_sent: u64,
    pub scrapes_sent: u64,
    pub lookup_queries_sent: u64,
    pub replies_sent: u64,
    /// Answering mode: queries answered (of them, with a KRPC error), and
    /// queries ignored (read-only, over the per-IP budget, reply queue full).
    pub queries_answered: u64,
    pub query_errors_sent: u64,
    pub queries_ignored: u64,
    /// Infohashes new to this core from incoming `get_peers` and
    /// `announce_peer`, announcers handed to the fetcher, verifying pings sent.
    pub harvested_get_peers: u64,
    pub harvested_announces: u64,
    pub announced_peers: u64,
    pub verify_pings_sent: u64,
    /// Peers from `values` kept, and dropped (bogon, port 0, wrong family, repeat).
    pub peers_found: u64,
    pub peers_rejected: u64,
    /// `get_peers` lookups toward infohashes whose sampler gave no peers, by outcome.
    pub lookups_started: u64,
    pub lookups_found: u64,
    pub lookups_empty: u64,
    pub lookups_given_up: u64,
    /// Lookups dropped because the waiting line was full, and harvested hashes
    /// that got none because it was half full (the rest is kept for imports).
    pub lookups_dropped: u64,
    pub harvest_lookups_skipped: u64,
    /// Gauges: lookups running, and waiting for a slot or a retry.
    pub lookups_running: u64,
    pub lookups_waiting: u64,
    /// Gauges: nodes this core owns, by BEP 51 support.
    pub known_nodes: u64,
    pub nodes_bep51_yes: u64,
    pub nodes_bep51_no: u64,
    pub nodes_bep51_unknown: u64,
    /// Gauge: queries awaiting a reply.
    pub in_flight: u64,
    /// Gauge: milliseconds until this core's next scheduled sample (`u64::MAX`: none).
    pub next_sample_ms: u64,
    /// Gauge: sampling held back because the writer or the scrape queue is full.
    pub backlogged: bool,
    /// Nodes marked unreachable after repeated timeouts (a counter).
    pub marked_unreachable: u64,
    /// Nodes handed to and received from other cores.
    pub handovers_out: u64,
    pub handovers_in: u64,
    /// Gauge: handovers waiting in this core's inbound channel, and its capacity.
    pub handover_queue: u64,
    pub handover_queue_cap: u64,
}

/// Metadata fetches by outcome (counters, summed over cores).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FetchSnapshot {
    pub started: u64,
    pub ok: u64,
    /// Failures by kind: per connection attempt (`"dial_timeout"`,
    /// `"refused"`, `"no_extension"`, `"hash_mismatch"`, `"deadline"`, ...),
    /// plus two per infohash, `"no_peers"` and `"bad_info"` (see
    /// [`FetchSnapshot::attempts_failed`]).
    pub failed: Vec<(&'static str, u64)>,
    /// Gauge: fetches running now.
    pub active: u64,
    /// Infohashes that went back to the queue after every peer failed.
    pub hashes_failed: u64,
    /// Leases given back at stop (fetches cut short or not started): the next
    /// run takes them at once.
    pub leases_released: u64,
}

/// The per-infohash kinds in [`FetchSnapshot::failed`].
pub const PER_HASH_FAILURES: [&str; 2] = ["no_peers", "bad_info"];

impl FetchSnapshot {
    /// Failed connection attempts by reason (one infohash may fail several).
    pub fn attempts_failed(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.failed
            .iter()
            .copied()
            .filter(|(k, _)| !PER_HASH_FAILURES.contains(k))
    }

    /// Infohashes by what their fetch came to: `ok`, `all_peers_failed`,
    /// `no_peers`, `bad_info` (verified, but not a valid info dict), `cut_at_stop`.
    pub fn hash_outcomes(&self) -> [(&'static str, u64); 5] {
        let kind = |k: &str| self.failed.iter().find(|(x, _)| *x == k).map_or(0, |(_, n)| *n);
        [
            ("ok", self.ok),
            ("all_peers_failed", self.hashes_failed),
            ("no_peers", kind("no_peers")),
            ("bad_info", kind("bad_info")),
            ("cut_at_stop", self.leases_released),
        ]
    }
}

/// Storage side of the crawl.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageSnapshot {
    /// Infohashes never stored before, and those already stored (the writer's dedup).
    pub new_infohashes: u64,
    pub duplicate_infohashes: u64,
    pub torrents: u64,
    pub commits: u64,
    /// Sum of group-commit latencies, for an average (`commit_micros / commits`).
    pub commit_micros: u64,
    /// Gauges: batches waiting in the writer channel, and its capacity.
    pub channel_len: u64,
    pub channel_cap: u64,
    /// Gauge: entries in the metadata-fetch queue (staging), as last counted.
    pub staging_backlog: u64,
    /// Items the writer could not store (failed commits); should stay 0.
    pub items_lost: u64,
    /// Fetch-queue entries made due at once by peers new to them (see
    /// `trawl_storage::WriterStats::requeued_for_new_peers`).
    pub requeued_for_new_peers: u64,
    /// Provisional names (from `get_peers` replies) stored.
    pub provisional_names: u64,
    /// Hashes that left the fetch queue: after too many failed attempts, after
    /// failing past the queue's age limit, or never queued because it was full
    /// (see `trawl_storage::QueuePolicy`). Their infohashes stay stored.
    pub queue_abandoned: u64,
    pub queue_expired: u64,
    pub queue_dropped_full: u64,
    /// Gauge: RocksDB's memtables, table readers and block cache, in bytes
    /// (read at most once a second).
    pub rocksdb_memory_bytes: u64,
    /// Gauge: what the store takes now under `--max-disk` or a full disk.
    pub disk_state: DiskState,
    /// Gauges: bytes under the database directory (at most a second old), and
    /// the budget (0: none).
    pub disk_used_bytes: u64,
    pub disk_budget_bytes: u64,
    /// Counters of the budget's steps and of full-disk pauses (see
    /// `trawl_storage::WriterStats`).
    pub info_dicts_not_kept_budget: u64,
    pub infohashes_refused_budget: u64,
    pub queue_refused_budget: u64,
    pub disk_full_pauses: u64,
}

/// The whole crawl.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CrawlSnapshot {
    pub uptime_secs: f64,
    /// Gauge: true while crawling is paused by the operator.
    pub paused: bool,
    pub cores: Vec<CoreSnapshot>,
    pub fetch: FetchSnapshot,
    pub storage: StorageSnapshot,
    /// Gauges: the process's memory by allocator (RocksDB's own share is in
    /// `storage`).
    pub memory: MemoryBreakdown,
}

impl CrawlSnapshot {
    /// Sum of one per-core figure over all cores.
    pub fn total(&self, f: impl Fn(&CoreSnapshot) -> u64) -> u64 {
        self.cores.iter().map(f).sum()
    }
}
