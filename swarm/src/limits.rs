//! libtorrent's two silent limits, per virtual node: the dos blocker and the
//! reply budget, and the record of every block imposed on a sender.
//!
//! Owns: [`DosBlocker`] (libtorrent's `src/kademlia/dos_blocker.cpp`
//! rewritten: a 20-entry table of source IPs, each with a message count and a
//! window end), [`SendQuota`] (`dht_tracker::has_quota` and `send_packet`'s
//! charge), the per-node table that holds both, and per-sender ban records.
//! Must not: touch sockets or clocks; time is passed in, in milliseconds.
//!
//! The blocker's rule, as libtorrent writes it: the first message from an IP
//! takes the table slot with the lowest count (evicting its IP) and opens a
//! ten-second window. Each message adds one to the count. At `rate * 10`
//! messages or more: inside the window the message is dropped, and the one
//! that reaches exactly `rate * 10` moves the window end to now + timeout (the
//! block); messages dropped during a block still count but do not extend it.
//! Past the window end, the count restarts at zero with a new ten-second window.
//! So it is not a sliding window: 50 messages spread over 11 s never block.

use std::collections::HashMap;
use std::sync::Mutex;

use ahash::RandomState;

use super::model::LibtorrentLimits;

/// libtorrent's `dos_blocker::num_ban_nodes`.
pub const BLOCKER_SLOTS: usize = 20;
/// The blocker's window: rate * WINDOW_S messages inside it block.
const WINDOW_MS: u64 = 10_000;
/// `dht_tracker::has_quota` accrues at most three seconds of budget.
const QUOTA_BURST_S: i64 = 3;
const SHARDS: usize = 64;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    ip: u32,
    count: u32,
    limit_ms: u64,
}

/// What the blocker decided about one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Pass,
    /// Dropped; `started_block` when this message began a block.
    Blocked {
        started_block: bool,
    },
}

/// One node's dos blocker.
#[derive(Clone, Debug, Default)]
pub struct DosBlocker {
    slots: [Slot; BLOCKER_SLOTS],
}

impl DosBlocker {
    pub fn incoming(&mut self, ip: u32, now_ms: u64, rate: u32, timeout_s: u32) -> Admit {
        let threshold = rate.max(1) * 10;
        let mut min = 0;
        let mut found = None;
        for (i, s) in self.slots.iter().enumerate() {
            if s.ip == ip && s.count > 0 {
                found = Some(i);
                break;
            }
            let m = &self.slots[min];
            if s.count < m.count || (s.count == m.count && s.limit_ms < m.limit_ms) {
                min = i;
            }
        }
        let Some(i) = found else {
            self.slots[min] = Slot {
                ip,
                count: 1,
                limit_ms: now_ms + WINDOW_MS,
            };
            return Admit::Pass;
        };
        let s = &mut self.slots[i];
        s.count = s.count.saturating_add(1);
        if s.count >= threshold {
            if now_ms < s.limit_ms {
                let started_block = s.count == threshold;
                if started_block {
                    s.limit_ms = now_ms + u64::from(timeout_s.max(1)) * 1000;
                }
                return Admit::Blocked { started_block };
            }
            s.count = 0;
            s.limit_ms = now_ms + WINDOW_MS;
        }
        Admit::Pass
    }
}

/// One node's reply budget, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct SendQuota {
    quota: i64,
    last_ms: u64,
}

impl SendQuota {
    /// libtorrent starts with one second of budget.
    pub fn new(limit: u32, now_ms: u64) -> Self {
        Self {
            quota: i64::from(limit),
            last_ms: now_ms,
        }
    }

    /// `has_quota`: refills by elapsed time (all of the burst after 3 s),
    /// then says whether a query may be answered.
    pub fn has_quota(&mut self, limit: u32, now_ms: u64) -> bool {
        let limit = i64::from(limit);
        if limit <= 0 {
            return false;
        }
        let delta_ms = now_ms.saturating_sub(self.last_ms) as i64;
        self.last_ms = now_ms;
        let max_accrue = QUOTA_BURST_S * limit;
        if delta_ms >= QUOTA_BURST_S * 1000 {
            self.quota = max_accrue;
            return true;
        }
        let add = limit * delta_ms / 1000;
        if max_accrue - self.quota < add {
            self.quota = max_accrue;
            return true;
        }
        self.quota += add;
        self.quota > 0
    }

    /// `send_packet`: every reply is sent and charged, even past zero.
    pub fn charge(&mut self, bytes: usize) {
        self.quota -= bytes as i64;
    }
}

/// Blocks one sender suffered, summed over every node that blocked it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BanRecord {
    /// Blocks begun (one node blocking it once is one).
    pub bans: u64,
    /// The blocks' total length in seconds (`dht_block_timeout` each).
    pub blocked_secs: u64,
    /// Messages dropped while blocked.
    pub dropped_blocked: u64,
    /// Queries dropped because the node's reply budget was spent.
    pub dropped_budget: u64,
}

/// [`BanRecord`] with the sender it belongs to, as reports list it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SenderBans {
    pub ip: String,
    #[serde(flatten)]
    pub record: BanRecord,
}

struct NodeLimits {
    blocker: DosBlocker,
    quota: SendQuota,
}

/// The limit state of every libtorrent node that has been sent anything,
/// sharded like [`super::politeness::Politeness`] because several server
/// threads may serve one node.
pub struct Limits {
    cfg: LibtorrentLimits,
    nodes: Vec<Mutex<HashMap<u32, NodeLimits, RandomState>>>,
    senders: Mutex<HashMap<u32, BanRecord, RandomState>>,
}

/// What [`Limits`] decided about one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Dropped by the dos blocker (`started_block`: this one began a block).
    Blocked {
        started_block: bool,
    },
    /// A query dropped because the reply budget is spent.
    OverBudget,
}

fn map<V>() -> HashMap<u32, V, RandomState> {
    HashMap::with_hasher(RandomState::with_seeds(5, 6, 7, 8))
}

impl Limits {
    pub fn new(cfg: LibtorrentLimits) -> Self {
        Self {
            cfg,
            nodes: (0..SHARDS).map(|_| Mutex::new(map())).collect(),
            senders: Mutex::new(map()),
        }
    }

    pub fn config(&self) -> LibtorrentLimits {
        self.cfg
    }

    /// Runs the blocker on every message, then the budget on queries, in
    /// libtorrent's order (`dht_tracker::incoming_packet`, then `node::incoming`).
    pub fn admit(&self, node: u32, sender: u32, now_ms: u64, is_query: bool) -> Verdict {
        let cfg = self.cfg;
        let verdict = {
            let shard = super::derive::mix64(u64::from(node)) as usize % SHARDS;
            let mut nodes = self.nodes[shard].lock().unwrap_or_else(|e| e.into_inner());
            let st = nodes.entry(node).or_insert_with(|| NodeLimits {
                blocker: DosBlocker::default(),
                quota: SendQuota::new(cfg.upload_rate_limit, now_ms),
            });
            let admit = if cfg.block_ratelimit > 0 {
                st.blocker
                    .incoming(sender, now_ms, cfg.block_ratelimit, cfg.block_timeout_s)
            } else {
                Admit::Pass
            };
            match admit {
                Admit::Blocked { started_block } => Verdict::Blocked { started_block },
                Admit::Pass
                    if is_query && cfg.upload_rate_limit > 0 && !st.quota.has_quota(cfg.upload_rate_limit, now_ms) =>
                {
                    Verdict::OverBudget
                }
                Admit::Pass => Verdict::Answer,
            }
        };
        if verdict != Verdict::Answer {
            let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
            let r = senders.entry(sender).or_default();
            match verdict {
                Verdict::Blocked { started_block } => {
                    r.dropped_blocked += 1;
                    if started_block {
                        r.bans += 1;
                        r.blocked_secs += u64::from(cfg.block_timeout_s);
                    }
                }
                Verdict::OverBudget => r.dropped_budget += 1,
                Verdict::Answer => {}
            }
        }
        verdict
    }

    /// Charges a reply of `bytes` to `node`'s budget.
    pub fn charge(&self, node: u32, bytes: usize) {
        if self.cfg.upload_rate_limit == 0 {
            return;
        }
        let shard = super::derive::mix64(u64::from(node)) as usize % SHARDS;
        let mut nodes = self.nodes[shard].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(st) = nodes.get_mut(&node) {
            st.quota.charge(bytes);
        }
    }

    /// Every sender that was blocked or over budget, by IP, ascending.
    pub fn senders(&self) -> Vec<SenderBans> {
        let senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(u32, BanRecord)> = senders.iter().map(|(&ip, &r)| (ip, r)).collect();
        out.sort_unstable_by_key(|&(ip, _)| ip);
        out.into_iter()
            .map(|(ip, record)| SenderBans {
                ip: std::net::Ipv4Addr::from(ip).to_string(),
                record,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: u32 = 0x7f00_0001;

    #[test]
    fn fifty_messages_inside_ten_seconds_block_for_the_timeout() {
        let mut b = DosBlocker::default();
        // 49 messages in the first second pass.
        for i in 0..49 {
            assert_eq!(b.incoming(IP, i * 20, 5, 300), Admit::Pass, "message {i}");
        }
        assert_eq!(b.incoming(IP, 1_000, 5, 300), Admit::Blocked { started_block: true });
        assert_eq!(b.incoming(IP, 2_000, 5, 300), Admit::Blocked { started_block: false });
        // Still blocked just before 300 s after the 50th message; not extended by drops.
        assert_eq!(b.incoming(IP, 300_999, 5, 300), Admit::Blocked { started_block: false });
        // Past the block: the count restarts.
        assert_eq!(b.incoming(IP, 301_000, 5, 300), Admit::Pass);
        for i in 0..49 {
            assert_eq!(b.incoming(IP, 301_001 + i, 5, 300), Admit::Pass);
        }
        assert_eq!(b.incoming(IP, 302_000, 5, 300), Admit::Blocked { started_block: true });
        assert_eq!(b.incoming(IP + 1, 302_000, 5, 300), Admit::Pass, "other IPs pass");
    }

    #[test]
    fn the_window_is_fixed_not_sliding() {
        let mut b = DosBlocker::default();
        // 49 messages at t=0, then one at 10.5 s: the count reaches 50 after the
        // window, so it resets instead of blocking.
        for _ in 0..49 {
            assert_eq!(b.incoming(IP, 0, 5, 300), Admit::Pass);
        }
        assert_eq!(b.incoming(IP, 10_500, 5, 300), Admit::Pass);
        // The reset set the count to 0 with a window to 20.5 s: 49 more pass, the 50th blocks.
        for _ in 0..49 {
            assert_eq!(b.incoming(IP, 11_000, 5, 300), Admit::Pass);
        }
        assert_eq!(b.incoming(IP, 11_000, 5, 300), Admit::Blocked { started_block: true });
        // 4 per second forever never blocks: 50 messages take 12.5 s.
        let mut slow = DosBlocker::default();
        assert!((0..2_000u64).all(|i| slow.incoming(IP, i * 250, 5, 300) == Admit::Pass));
    }

    #[test]
    fn the_table_evicts_the_lowest_count() {
        let mut b = DosBlocker::default();
        for _ in 0..40 {
            b.incoming(IP, 0, 5, 300);
        }
        // Twenty other IPs come and go through the other slots; IP keeps its count.
        for other in 1..=100 {
            b.incoming(IP + other, 0, 5, 300);
        }
        for _ in 0..9 {
            assert_eq!(b.incoming(IP, 1, 5, 300), Admit::Pass);
        }
        assert_eq!(b.incoming(IP, 2, 5, 300), Admit::Blocked { started_block: true });
    }

    #[test]
    fn the_budget_drops_queries_once_spent_and_refills() {
        let mut q = SendQuota::new(8_000, 0);
        let mut answered = 0;
        while q.has_quota(8_000, 0) {
            q.charge(500);
            answered += 1;
        }
        assert_eq!(answered, 16, "one second of budget to start");
        // 100 ms refill 800 bytes: one more 500-byte reply, the quota goes negative again.
        assert!(q.has_quota(8_000, 100));
        q.charge(500);
        q.charge(500);
        assert!(!q.has_quota(8_000, 100));
        // After 3 s the whole burst (3 x 8,000) is back.
        assert!(q.has_quota(8_000, 3_100));
        let mut burst = 0;
        while q.has_quota(8_000, 3_100) {
            q.charge(1_000);
            burst += 1;
        }
        assert_eq!(burst, 24);
    }

    #[test]
    fn limits_record_bans_per_sender() {
        let l = Limits::new(LibtorrentLimits::default());
        for i in 0..60 {
            l.admit(1, IP, i, false);
        }
        // Node 2 blocks it too, separately; another sender is untouched.
        for i in 0..50 {
            l.admit(2, IP, i, false);
        }
        assert_eq!(l.admit(2, IP + 1, 100, true), Verdict::Answer);
        let s = l.senders();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].ip, "127.0.0.1");
        assert_eq!(
            s[0].record,
            BanRecord {
                bans: 2,
                blocked_secs: 600,
                dropped_blocked: 12,
                dropped_budget: 0
            }
        );
    }
}
