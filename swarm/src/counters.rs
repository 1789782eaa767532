//! Every counter the swarm exposes, one plain struct per server thread, summed
//! for reports.
//!
//! Owns: the names of the counters and their JSON form.
//! Must not: be shared between threads while counting; threads publish copies.

/// Declares a struct of `u64` counters with `add`, so every counter set of
/// the swarm sums the same way.
macro_rules! counter_struct {
    ($(#[$sdoc:meta])* $struct:ident { $(#[$doc:meta] $name:ident),* $(,)? }) => {
        $(#[$sdoc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $struct {
            $(#[$doc] pub $name: u64,)*
        }

        impl $struct {
            pub fn add(&mut self, other: &$struct) {
                $(self.$name += other.$name;)*
            }
        }
    };
}
pub(crate) use counter_struct;

counter_struct! {
    /// Counts of one swarm run (or one thread of it).
    Counters {
    /// Datagrams received.
    received,
    /// Datagrams sent (replies, including delayed ones and errors).
    sent,
    /// Received on an address that is no virtual node.
    not_a_node,
    /// Not a decodable KRPC message.
    malformed,
    /// A response or error sent to us: nodes never query anyone here.
    unexpected,
    /// Replies to `ping`.
    answered_ping,
    /// Replies to `find_node`.
    answered_find_node,
    /// `get_peers` replies carrying `values`.
    answered_get_peers_values,
    /// `get_peers` replies carrying `nodes` only.
    answered_get_peers_nodes,
    /// `get_peers` replies that carried BEP 33 bloom filters.
    answered_scrape,
    /// `announce_peer` accepted.
    answered_announce,
    /// `announce_peer` refused for a bad token (error 203).
    announce_bad_token,
    /// `sample_infohashes` replies.
    answered_sample,
    /// `sample_infohashes` to a node without BEP 51 (error 204).
    sample_unsupported,
    /// Unknown methods (error 204).
    unknown_method,
    /// Dropped by simulated packet loss.
    dropped_loss,
    /// Sent to a dead node.
    dropped_dead,
    /// Dropped by the per-IP token bucket.
    dropped_limit,
    /// Replies held back by a slow node.
    delayed_slow,
    /// `sample_infohashes` before the interval given to that sender.
    violations_interval,
    /// Queries above the per-IP rate limit.
    violations_rate,
    /// sendmmsg refused a reply.
    send_failures,
    /// Sent to a NAT node (never answers).
    dropped_nat,
    /// Dropped silently by a libtorrent node's dos blocker.
    dropped_blocked,
    /// Queries dropped silently because a libtorrent node's reply budget was spent.
    dropped_budget,
    /// Blocks begun by libtorrent nodes' dos blockers (one node, one sender, once).
    bans_imposed,
    /// Their total length in seconds.
    ban_seconds,
    /// `get_peers` replies that carried `n` (the torrent name).
    answered_name,
    /// Lookups the virtual downloaders began.
    downloader_lookups,
    /// Of them, not begun because the downloader was away (churn).
    downloader_lookups_away,
    /// `get_peers` the downloaders sent to crawler identities.
    downloader_get_peers_sent,
    /// Of them, answered.
    downloader_get_peers_answered,
    /// `announce_peer` sent after such an answer, with its token.
    downloader_announces_sent,
    /// Of them, acknowledged.
    downloader_announces_acked,
    /// Bytes of the replies crawler identities sent the downloaders.
    downloader_reply_bytes,
    /// Lookups not sent because the pending table was full.
    downloader_pending_full,
    }
}

impl Counters {
    pub fn answered(&self) -> u64 {
        self.answered_ping
            + self.answered_find_node
            + self.answered_get_peers_values
            + self.answered_get_peers_nodes
            + self.answered_announce
            + self.announce_bad_token
            + self.answered_sample
            + self.sample_unsupported
            + self.unknown_method
    }

    pub fn politeness_violations(&self) -> u64 {
        self.violations_interval + self.violations_rate
    }
}
