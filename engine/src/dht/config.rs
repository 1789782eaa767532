//! Node configuration: every knob of the DHT node with a default that is polite on
//! the public network. Owns no state and does no validation beyond clamping in
//! [`NodeConfig::sanitized`]; the node reads it once at start.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How hard we may hit one remote node or one infohash. Protects others from bursts
/// of ours; the limits on what we *answer* are in [`AnswerLimits`].
#[derive(Clone, Debug, PartialEq)]
pub struct Pacing {
    /// Minimum gap between two datagrams we send to the same remote address.
    pub per_remote_gap: Duration,
    /// Queries to one remote that may be in flight at once.
    pub per_remote_in_flight: usize,
    /// Token bucket on queries naming one infohash (`get_peers`, `announce_peer`):
    /// sustained rate per second and burst size.
    pub per_infohash_rate: f64,
    pub per_infohash_burst: f64,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            per_remote_gap: Duration::from_millis(100),
            per_remote_in_flight: 2,
            per_infohash_rate: 50.0,
            per_infohash_burst: 100.0,
        }
    }
}

/// Limits on the answering side, against abuse and reflection.
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerLimits {
    /// Token bucket of answers per requester IP: sustained rate per second and burst.
    pub per_ip_rate: f64,
    pub per_ip_burst: f64,
    /// Requester IPs tracked by the rate limiter; beyond it, idle entries are evicted.
    pub tracked_ips: usize,
    /// No reply is larger than this many bytes (one unfragmented datagram).
    pub max_reply_len: usize,
    /// Replies waiting for `poll_transmit`; beyond it, new answers are dropped.
    pub max_queued_replies: usize,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        AnswerLimits {
            per_ip_rate: 10.0,
            per_ip_burst: 20.0,
            tracked_ips: 65_536,
            max_reply_len: 1_400,
            max_queued_replies: 1_024,
        }
    }
}

/// Bounds of the peer store (the announces we accepted as a full node).
#[derive(Clone, Debug, PartialEq)]
pub struct StoreLimits {
    pub max_infohashes: usize,
    pub max_peers_per_infohash: usize,
    /// Peers we put in one `values` list (further bounded by `max_reply_len`).
    pub max_values: usize,
    /// `sample_infohashes`: how many samples at most, and the `interval` we ask for.
    pub max_samples: usize,
    pub sample_interval: Duration,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_infohashes: 50_000,
            max_peers_per_infohash: 200,
            max_values: 50,
            max_samples: 20,
            sample_interval: Duration::from_secs(6 * 3600),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// Routers or known nodes to bootstrap from. Never added to our routing table.
    pub bootstrap: Vec<SocketAddr>,
    /// BEP 43: queries carry `ro=1` and incoming queries get no answer.
    pub read_only: bool,
    /// Let loopback addresses through the address filter (tests on 127.0.0.0/8).
    pub allow_loopback: bool,
    /// Our public IP, for a BEP 42 secure node id.
    pub external_ip: Option<IpAddr>,
    /// This node speaks IPv6 (BEP 32): it learns nodes from `nodes6` instead of
    /// `nodes`. One node serves one address family; run one per socket family.
    pub ipv6: bool,
    /// Keep nodes whose id is not BEP 42-secure for their IP out of the routing
    /// table (they are still used in lookups).
    pub require_secure_ids: bool,
    /// How long an announce stays in the peer store after it was last renewed.
    pub peer_ttl: Duration,
    pub query_timeout: Duration,
    /// Resends of a query that timed out, before the remote counts as failed.
    pub max_retries: u8,
    /// Queries in flight per lookup.
    pub alpha: usize,
    /// Bucket size and the number of closest nodes a lookup converges on.
    pub k: usize,
    pub pacing: Pacing,
    /// The `v` we send (BEP 20 style client version).
    pub version: Option<[u8; 4]>,
    pub answer_limits: AnswerLimits,
    pub store_limits: StoreLimits,
    /// Replacement-cache entries per bucket.
    pub replacements_per_bucket: usize,
    /// Retry delay when a bootstrap found no responding node.
    pub bootstrap_retry: Duration,
    /// Lookups and announces running at once; more wait in a queue.
    pub max_concurrent_lookups: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            bootstrap: Vec::new(),
            read_only: true,
            allow_loopback: false,
            external_ip: None,
            ipv6: false,
            require_secure_ids: false,
            peer_ttl: Duration::from_secs(30 * 60),
            query_timeout: Duration::from_secs(2),
            max_retries: 1,
            alpha: 3,
            k: 8,
            pacing: Pacing::default(),
            version: None,
            answer_limits: AnswerLimits::default(),
            store_limits: StoreLimits::default(),
            replacements_per_bucket: 4,
            bootstrap_retry: Duration::from_secs(30),
            max_concurrent_lookups: 64,
        }
    }
}

impl NodeConfig {
    /// Clamps values that would stall the node (zero k or alpha, zero timeout) or
    /// overflow instant arithmetic (durations beyond a year).
    pub fn sanitized(mut self) -> Self {
        const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
        for d in [
            &mut self.peer_ttl,
            &mut self.query_timeout,
            &mut self.bootstrap_retry,
            &mut self.pacing.per_remote_gap,
            &mut self.store_limits.sample_interval,
        ] {
            *d = (*d).min(YEAR);
        }
        for rate in [&mut self.pacing.per_infohash_rate, &mut self.answer_limits.per_ip_rate] {
            if !rate.is_finite() || *rate < 0.0 {
                *rate = 0.0;
            }
        }
        self.k = self.k.clamp(1, 64);
        self.alpha = self.alpha.clamp(1, 32);
        self.max_concurrent_lookups = self.max_concurrent_lookups.max(1);
        self.pacing.per_remote_in_flight = self.pacing.per_remote_in_flight.max(1);
        if self.query_timeout.is_zero() {
            self.query_timeout = Duration::from_millis(1);
        }
        for burst in [
            &mut self.pacing.per_infohash_burst,
            &mut self.answer_limits.per_ip_burst,
        ] {
            if burst.is_nan() || *burst < 1.0 {
                *burst = 1.0;
            }
        }
        self
    }
}
