//! BEP 42: this host's external address, voted from the `ip` key of replies,
//! so a crawl core can take a secure node id for it (libtorrent prefers such
//! ids in its routing table and in lookups).
//!
//! Only replies to queries of ours vote (a reply matched by transaction id and
//! sender cannot come from a forged source), one vote per source IP (its
//! latest), IPv4 and IPv6 apart. Owns the tally; must not decide what the core
//! does with the result.

use std::net::IpAddr;

use ahash::AHashMap;

/// Votes needed before an address is believed.
pub const MIN_VOTES: u32 = 5;
/// Source IPs whose vote is kept; beyond it new sources are not counted.
pub const MAX_VOTERS: usize = 1_024;

#[derive(Default)]
pub struct ExternalIpVote {
    by_source: AHashMap<IpAddr, IpAddr>,
    tally: AHashMap<IpAddr, u32>,
    /// Votes cast per family: IPv4, IPv6.
    cast: [u32; 2],
    winner: [Option<IpAddr>; 2],
}

impl ExternalIpVote {
    /// `source` (a node that answered us) says it sees us as `claimed`.
    /// Returns the family's new winner when this vote changed it: an address
    /// with at least [`MIN_VOTES`] and more than half of that family's votes.
    pub fn vote(&mut self, source: IpAddr, claimed: IpAddr) -> Option<IpAddr> {
        let family = usize::from(claimed.is_ipv6());
        if source.is_ipv6() != claimed.is_ipv6() || claimed.is_unspecified() {
            return None;
        }
        match self.by_source.get(&source).copied() {
            Some(old) if old == claimed => return None,
            Some(old) => {
                if let Some(n) = self.tally.get_mut(&old) {
                    *n = n.saturating_sub(1);
                }
                self.cast[family] = self.cast[family].saturating_sub(1);
            }
            None if self.by_source.len() >= MAX_VOTERS => return None,
            None => {}
        }
        self.by_source.insert(source, claimed);
        self.cast[family] += 1;
        let n = self.tally.entry(claimed).or_insert(0);
        *n += 1;
        let wins = *n >= MIN_VOTES && 2 * *n > self.cast[family];
        if wins && self.winner[family] != Some(claimed) {
            self.winner[family] = Some(claimed);
            return Some(claimed);
        }
        None
    }

    /// The believed external IPv4 (false) or IPv6 (true) address.
    pub fn winner(&self, ipv6: bool) -> Option<IpAddr> {
        self.winner[usize::from(ipv6)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(a: u8, b: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, 0, 1))
    }

    #[test]
    fn a_majority_of_distinct_sources_decides_and_one_source_counts_once() {
        let mut v = ExternalIpVote::default();
        let us = ip(203, 0);
        for _ in 0..10 {
            assert_eq!(v.vote(ip(1, 1), us), None, "one source, one vote");
        }
        for i in 2..=4 {
            assert_eq!(v.vote(ip(1, i), us), None);
        }
        assert_eq!(v.vote(ip(1, 5), us), Some(us), "the fifth distinct source");
        assert_eq!(v.vote(ip(1, 6), us), None, "already the winner");
        // Liars from other sources: a minority changes nothing.
        for i in 10..14 {
            assert_eq!(v.vote(ip(2, i), ip(198, 51)), None);
        }
        assert_eq!(v.winner(false), Some(us));
        // A v6 claim from a v4 source is not a vote.
        assert_eq!(v.vote(ip(3, 3), "2001:db8::1".parse().unwrap()), None);
        assert_eq!(v.winner(true), None);
    }

    #[test]
    fn a_moved_address_wins_once_most_sources_say_so() {
        let mut v = ExternalIpVote::default();
        let (old, new) = (ip(203, 0), ip(203, 9));
        for i in 0..6 {
            v.vote(ip(1, i), old);
        }
        assert_eq!(v.winner(false), Some(old));
        let mut changed = None;
        for i in 0..6 {
            changed = changed.or(v.vote(ip(1, i), new));
        }
        assert_eq!(changed, Some(new));
        assert_eq!(v.winner(false), Some(new));
    }

    #[test]
    fn voters_are_bounded() {
        let mut v = ExternalIpVote::default();
        for i in 0..(MAX_VOTERS as u32 + 100) {
            let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            v.vote(src, ip(198, 51));
        }
        assert_eq!(v.by_source.len(), MAX_VOTERS);
    }
}
