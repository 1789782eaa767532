//! Everything a crawl core can be tuned with, and the defaults a polite crawl uses.
//! Owns no state and does no I/O.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::peer_search::PeerSearchConfig;
use crate::codec::krpc::Want;
use crate::codec::wire::ID_LEN;

/// Longest `interval` a BEP 51 node may ask for; larger values are clamped so a
/// hostile node cannot park itself forever.
pub const MAX_SAMPLE_INTERVAL: Duration = Duration::from_secs(21_600);

#[derive(Clone, Debug)]
pub struct CrawlConfig {
    /// This core's index and the number of cores: nodes whose
    /// [`owner`](super::owner::owner) is another core are handed over, not kept.
    pub core: usize,
    pub cores: usize,
    /// This core's node id (a fresh one per core and per run).
    pub node_id: [u8; ID_LEN],
    /// BEP 43: send `ro`=1 and answer no queries. Crawls default to read-only.
    pub read_only: bool,
    /// Let loopback addresses through the address filter (test networks only).
    pub allow_loopback: bool,
    /// Entry points, queried with `find_node` while the node table is small.
    pub bootstrap: Vec<SocketAddr>,
    /// How often bootstrap nodes are asked again while the table stays small.
    pub bootstrap_retry: Duration,
    /// Most remote nodes kept; beyond it the least useful is evicted.
    pub max_nodes: usize,
    /// Most queries awaiting a reply (also bounds the transaction table).
    pub max_in_flight: usize,
    pub query_timeout: Duration,
    /// Consecutive timeouts after which a node is dropped as unreachable.
    pub max_failures: u8,
    /// How long an unreachable address is ignored, and how many are remembered.
    pub unreachable_ttl: Duration,
    pub max_unreachable: usize,
    /// Per remote IP token bucket: sustained queries per second and burst.
    pub per_ip_rate: f64,
    pub per_ip_burst: f64,
    /// When answering (not read-only): per remote IP token bucket for the
    /// queries we answer, sustained per second and burst. Beyond it a query is
    /// ignored, so one address cannot make us a reflector.
    pub answer_rate: f64,
    pub answer_burst: f64,
    /// Earliest re-sample of a node whose last sample had something new, or
    /// that holds more than it showed (`num` above the samples given); the
    /// node's own `interval` always wins when longer.
    pub productive_resample: Duration,
    /// First back-off for a node whose sample had nothing new and showed all it
    /// holds; doubles per such sample up to `max_backoff`.
    pub empty_backoff: Duration,
    pub max_backoff: Duration,
    /// How often a node is asked `find_node` to grow the known set.
    pub walk_interval: Duration,
    /// Wait before asking a node again after a timeout, doubled per consecutive
    /// timeout (for a timed-out sample, at least the node's interval, or the
    /// longest seen: it may have answered late with an interval we never saw).
    pub retry_after_timeout: Duration,
    /// Also send a BEP 33 scrape (a second `get_peers`, `scrape`=1) for each new
    /// infohash, for seeder and leecher counts. Peers always come from a plain
    /// `get_peers`: libtorrent answers a scrape with bloom filters only.
    pub scrape_counts: bool,
    /// Lookups toward an infohash whose sampler gave no peers.
    pub peer_search: PeerSearchConfig,
    /// Backpressure: sampling pauses while this many peer queries or this
    /// many undrained discoveries are pending; nothing found is dropped.
    pub max_pending_scrapes: usize,
    pub max_pending_discoveries: usize,
    /// Per-core dedup memory, in infohashes.
    pub dedup_capacity: usize,
    /// BEP 32 `want` sent with every query.
    pub want: Want,
    /// This host's external address, if the operator knows it: the core's
    /// id is a BEP 42 secure id for it from the start, and the `ip` votes of
    /// replies are not needed. `None`: voted from replies.
    pub external_ip: Option<IpAddr>,
    /// Client version sent as `v`.
    pub version: Option<[u8; 4]>,
    /// Seed for eviction sampling, targets and transaction nonces.
    pub seed: u64,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        CrawlConfig {
            core: 0,
            cores: 1,
            node_id: [0; ID_LEN],
            read_only: true,
            allow_loopback: false,
            bootstrap: Vec::new(),
            bootstrap_retry: Duration::from_secs(30),
            max_nodes: 500_000,
            max_in_flight: 16_384,
            query_timeout: Duration::from_secs(4),
            // Churned nodes come back: four tries with doubling waits.
            max_failures: 4,
            unreachable_ttl: Duration::from_secs(30 * 60),
            max_unreachable: 200_000,
            // libtorrent ignores an IP that sends 50 messages in 10 s.
            per_ip_rate: 2.0,
            per_ip_burst: 4.0,
            // A node pings a contact about once per 15 minutes; 5/s is generous.
            answer_rate: 5.0,
            answer_burst: 10.0,
            productive_resample: Duration::from_secs(60),
            empty_backoff: Duration::from_secs(300),
            max_backoff: MAX_SAMPLE_INTERVAL,
            walk_interval: Duration::from_secs(600),
            retry_after_timeout: Duration::from_secs(60),
            scrape_counts: true,
            peer_search: PeerSearchConfig::default(),
            max_pending_scrapes: 100_000,
            max_pending_discoveries: 100_000,
            // The most a 2^21-bucket table holds at its 7/8 load, about 50 MB:
            // 1,000,000 allocated the same table and forgot hashes at half of it.
            dedup_capacity: 1_835_008,
            want: Want { v4: true, v6: true },
            version: None,
            external_ip: None,
            seed: 0,
        }
    }
}
