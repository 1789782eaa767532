//! Queries awaiting a reply: a fixed slab indexed by the transaction id, and a
//! FIFO of deadlines (every query has the same timeout, so send order is
//! deadline order and no heap is needed).
//!
//! Owns transaction ids: 4 bytes, the slab index then a per-use random nonce, so
//! a reply matches only if id, nonce and sender all agree. Must not do I/O.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::clock::Millis;
use super::dedup::InfoHash;
use super::peer_search::JobKind;
use super::table::NodeRef;

pub const TID_LEN: usize = 4;
pub type Tid = [u8; TID_LEN];

/// What a query asked, so its reply can be interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    Sample,
    FindNode,
    /// `get_peers` for an infohash: plain or a BEP 33 scrape to the node that
    /// sampled it, or a lookup step.
    GetPeers(InfoHash, JobKind),
    Bootstrap,
    /// A ping to a node that queried us: it enters the node table once it answers.
    Verify,
}

#[derive(Clone, Copy, Debug)]
pub struct InFlight {
    pub to: SocketAddr,
    pub node: Option<NodeRef>,
    pub asked: Asked,
    pub deadline: Millis,
}

struct Entry {
    nonce: u16,
    query: Option<InFlight>,
}

pub struct Transactions {
    slab: Vec<Entry>,
    free: Vec<u16>,
    deadlines: VecDeque<(Millis, u16, u16)>,
}

impl Transactions {
    /// At most `cap` (up to 65,536) queries in flight.
    pub fn new(cap: usize) -> Self {
        let cap = cap.clamp(1, 1 << 16);
        Transactions {
            slab: (0..cap).map(|_| Entry { nonce: 0, query: None }).collect(),
            free: (0..cap as u32).rev().map(|i| i as u16).collect(),
            deadlines: VecDeque::with_capacity(cap),
        }
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    pub fn len(&self) -> usize {
        self.slab.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a query and returns its transaction id, or None when full.
    pub fn start(&mut self, q: InFlight, nonce: u16) -> Option<Tid> {
        let index = self.free.pop()?;
        let e = &mut self.slab[index as usize];
        e.nonce = nonce;
        e.query = Some(q);
        self.deadlines.push_back((q.deadline, index, nonce));
        let [a, b] = index.to_be_bytes();
        let [c, d] = nonce.to_be_bytes();
        Some([a, b, c, d])
    }

    /// The query `tid` answers, if `from` is who it was sent to; it is finished.
    pub fn finish(&mut self, tid: &[u8], from: SocketAddr) -> Option<InFlight> {
        let tid: &Tid = tid.try_into().ok()?;
        let index = u16::from_be_bytes([tid[0], tid[1]]);
        let nonce = u16::from_be_bytes([tid[2], tid[3]]);
        let e = self.slab.get_mut(index as usize)?;
        match e.query {
            Some(q) if e.nonce == nonce && q.to == from => {
                e.query = None;
                self.free.push(index);
                Some(q)
            }
            _ => None,
        }
    }

    /// The next query past its deadline at `now`, removed.
    pub fn pop_expired(&mut self, now: Millis) -> Option<InFlight> {
        while let Some(&(deadline, index, nonce)) = self.deadlines.front() {
            if deadline > now {
                return None;
            }
            self.deadlines.pop_front();
            let e = &mut self.slab[index as usize];
            // Answered queries leave their deadline behind; skip those.
            if e.nonce == nonce && e.query.is_some_and(|q| q.deadline == deadline) {
                let q = e.query.take();
                self.free.push(index);
                return q;
            }
        }
        None
    }

    /// The earliest deadline still pending (answered ones may linger; harmless).
    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.front().map(|&(d, _, _)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(to: u16, deadline: Millis) -> InFlight {
        InFlight {
            to: SocketAddr::from(([127, 0, 0, 1], to)),
            node: None,
            asked: Asked::FindNode,
            deadline,
        }
    }

    #[test]
    fn replies_match_by_id_nonce_and_sender() {
        let mut t = Transactions::new(4);
        let tid = t.start(q(1, 100), 0xBEEF).unwrap();
        let other = SocketAddr::from(([127, 0, 0, 2], 1));
        assert!(t.finish(&tid, other).is_none(), "wrong sender");
        let mut forged = tid;
        forged[3] ^= 1;
        assert!(t.finish(&forged, q(1, 0).to).is_none(), "wrong nonce");
        assert!(t.finish(&tid[..3], q(1, 0).to).is_none(), "short id");
        assert_eq!(t.finish(&tid, q(1, 0).to).unwrap().deadline, 100);
        assert!(t.finish(&tid, q(1, 0).to).is_none(), "answered twice");
        assert!(t.is_empty());
    }

    #[test]
    fn expiry_skips_answered_and_capacity_holds() {
        let mut t = Transactions::new(3);
        let a = t.start(q(1, 10), 1).unwrap();
        t.start(q(2, 20), 2).unwrap();
        t.start(q(3, 30), 3).unwrap();
        assert!(t.is_full() && t.start(q(4, 40), 4).is_none());
        t.finish(&a, q(1, 0).to).unwrap();
        assert!(t.pop_expired(5).is_none());
        assert_eq!(t.pop_expired(25).unwrap().to.port(), 2);
        assert!(t.pop_expired(25).is_none());
        assert_eq!(t.pop_expired(30).unwrap().to.port(), 3);
        assert!(t.is_empty());
    }
}
