//! One iterative lookup (BEP 5): `find_node` or `get_peers` towards a target,
//! `alpha` queries in flight, converging on the k closest nodes that respond. It
//! keeps a bounded candidate list sorted by XOR distance, and for `get_peers` the
//! tokens to announce with. Decides whom to ask next; never sends, never times out
//! on its own (the node reports failures).

use std::net::SocketAddr;

use crate::codec::compact::CompactNode;

use super::distance::Distance;
use super::id::NodeId;

/// Candidates kept beyond the k closest: room for nodes that fail.
const CANDIDATE_SLACK: usize = 4;
/// Sort key of a router, whose id is unknown until it answers.
const UNKNOWN: Distance = Distance([0xff; 20]);
/// Longest announce token we keep (real ones are 4 to 20 bytes).
pub const MAX_TOKEN_LEN: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    FindNode,
    GetPeers,
}

/// A token received in a `get_peers` reply, stored inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    len: u8,
    bytes: [u8; MAX_TOKEN_LEN],
}

impl Token {
    /// `None` for an empty or oversized token.
    pub fn new(t: &[u8]) -> Option<Token> {
        if t.is_empty() || t.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_TOKEN_LEN];
        bytes[..t.len()].copy_from_slice(t);
        Some(Token {
            len: t.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight,
    Responded,
    Failed,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    addr: SocketAddr,
    id: NodeId,
    dist: Distance,
    state: State,
    token: Option<Token>,
}

#[derive(Clone)]
pub struct Lookup {
    target: NodeId,
    method: Method,
    k: usize,
    alpha: usize,
    /// Sorted by distance, closest first; routers (unknown id) sort last.
    candidates: Vec<Candidate>,
    in_flight: usize,
}

impl Lookup {
    pub fn new(target: NodeId, method: Method, k: usize, alpha: usize) -> Lookup {
        Lookup {
            target,
            method,
            k: k.max(1),
            alpha: alpha.max(1),
            candidates: Vec::new(),
            in_flight: 0,
        }
    }

    pub fn target(&self) -> &NodeId {
        &self.target
    }

    pub fn method(&self) -> Method {
        self.method
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Offers nodes learned from a reply or the routing table. Duplicates (by
    /// address or id) are ignored; the list stays bounded.
    pub fn add(&mut self, nodes: impl IntoIterator<Item = CompactNode>) {
        for n in nodes {
            let dist = Distance::between(&n.id, &self.target);
            self.insert(n.addr, n.id, dist);
        }
    }

    /// A bootstrap router: no id known, asked only while nothing better is known.
    pub fn add_router(&mut self, addr: SocketAddr) {
        self.insert(addr, UNKNOWN.0, UNKNOWN);
    }

    fn insert(&mut self, addr: SocketAddr, id: NodeId, dist: Distance) {
        if self
            .candidates
            .iter()
            .any(|c| c.addr == addr || (dist != UNKNOWN && c.id == id))
        {
            return;
        }
        let pos = self.candidates.partition_point(|c| c.dist <= dist);
        let cap = self.k * CANDIDATE_SLACK;
        if pos >= cap {
            return;
        }
        self.candidates.insert(
            pos,
            Candidate {
                addr,
                id,
                dist,
                state: State::Fresh,
                token: None,
            },
        );
        // Drop the farthest idle candidates; one in flight stays until it reports.
        while self.candidates.len() > cap {
            match self.candidates.iter().rposition(|c| c.state != State::InFlight) {
                Some(i) if i >= cap / 2 => {
                    self.candidates.remove(i);
                }
                _ => break,
            }
        }
    }

    /// The next node to ask, marked in flight; `None` when `alpha` are in flight or
    /// every one of the k closest live candidates has been asked.
    pub fn next_query(&mut self) -> Option<CompactNode> {
        if self.in_flight >= self.alpha {
            return None;
        }
        let k = self.k;
        let c = self.window_mut().take(k).find(|c| c.state == State::Fresh)?;
        c.state = State::InFlight;
        let node = CompactNode { id: c.id, addr: c.addr };
        self.in_flight += 1;
        Some(node)
    }

    /// Candidates not known to have failed, closest first.
    fn window_mut(&mut self) -> impl Iterator<Item = &mut Candidate> {
        self.candidates.iter_mut().filter(|c| c.state != State::Failed)
    }

    fn window(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.iter().filter(|c| c.state != State::Failed)
    }

    fn settle(&mut self, addr: SocketAddr, state: State) -> Option<&mut Candidate> {
        let c = self
            .candidates
            .iter_mut()
            .find(|c| c.addr == addr && c.state == State::InFlight)?;
        c.state = state;
        self.in_flight -= 1;
        Some(c)
    }

    /// `addr` answered; its id (routers reveal theirs now) and token are recorded.
    /// Returns false if we were not waiting for it.
    pub fn on_response(&mut self, addr: SocketAddr, id: NodeId, token: Option<&[u8]>) -> bool {
        let target = self.target;
        let Some(c) = self.settle(addr, State::Responded) else {
            return false;
        };
        c.token = token.and_then(Token::new);
        if c.dist == UNKNOWN {
            c.id = id;
            c.dist = Distance::between(&id, &target);
            self.candidates.sort_by_key(|c| c.dist);
        }
        true
    }

    /// `addr` timed out (after retries) or answered with an error.
    pub fn on_failure(&mut self, addr: SocketAddr) {
        self.settle(addr, State::Failed);
    }

    /// Converged: every one of the k closest live candidates has answered (or there
    /// are none left to ask and nothing in flight).
    pub fn is_done(&self) -> bool {
        !self
            .window()
            .take(self.k)
            .any(|c| matches!(c.state, State::Fresh | State::InFlight))
    }

    /// How many of the k closest live candidates answered.
    pub fn closest_responded(&self) -> usize {
        self.window()
            .take(self.k)
            .filter(|c| c.state == State::Responded)
            .count()
    }

    /// The k closest responders that gave a token, for `announce_peer`.
    pub fn announce_targets(&self) -> impl Iterator<Item = (CompactNode, Token)> + '_ {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(self.k)
            .filter_map(|c| c.token.map(|t| (CompactNode { id: c.id, addr: c.addr }, t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(first: u8, n: u8) -> CompactNode {
        let mut id = [0u8; 20];
        id[0] = first;
        id[19] = n;
        CompactNode {
            id,
            addr: SocketAddr::new([127, 0, 0, n].into(), 6881),
        }
    }

    #[test]
    fn asks_alpha_closest_first_and_converges_on_k() {
        let mut l = Lookup::new([0; 20], Method::GetPeers, 2, 2);
        l.add([node(0x80, 1), node(0x40, 2), node(0x20, 3), node(0x10, 4)]);
        let a = l.next_query().unwrap();
        let b = l.next_query().unwrap();
        assert_eq!((a.id[0], b.id[0]), (0x10, 0x20), "closest first");
        assert!(l.next_query().is_none(), "alpha in flight");
        assert!(!l.is_done());
        assert!(l.on_response(a.addr, a.id, Some(b"tok1")));
        assert!(!l.on_response(a.addr, a.id, None), "not waiting any more");
        // b fails: the window slides to the next candidate.
        l.on_failure(b.addr);
        let c = l.next_query().unwrap();
        assert_eq!(c.id[0], 0x40);
        // c reveals a closer node, which is asked next.
        l.add([node(0x01, 5)]);
        l.on_response(c.addr, c.id, Some(b"tok3"));
        let d = l.next_query().unwrap();
        assert_eq!(d.id[0], 0x01);
        assert!(!l.is_done());
        l.on_response(d.addr, d.id, None);
        assert!(l.is_done(), "the two closest live candidates answered");
        assert!(l.next_query().is_none());
        assert_eq!(l.closest_responded(), 2);
        let targets: Vec<_> = l
            .announce_targets()
            .map(|(n, t)| (n.id[0], t.as_bytes().to_vec()))
            .collect();
        assert_eq!(
            targets,
            vec![(0x10, b"tok1".to_vec())],
            "only responders with tokens, among the k closest"
        );
    }

    #[test]
    fn routers_learn_their_id_and_everything_is_bounded() {
        let mut l = Lookup::new([0; 20], Method::FindNode, 2, 3);
        let r: SocketAddr = "127.0.0.100:6881".parse().unwrap();
        l.add_router(r);
        let q = l.next_query().unwrap();
        assert_eq!(q.addr, r);
        l.on_response(r, node(0x02, 100).id, None);
        l.add((1..=50).map(|n| node(0x80, n)));
        assert!(l.candidates.len() <= 2 * CANDIDATE_SLACK);
        assert_eq!(l.candidates[0].addr, r, "router sorted by its real id");
        assert!(Token::new(&[0u8; MAX_TOKEN_LEN + 1]).is_none());
        assert!(Token::new(b"").is_none());
    }

    #[test]
    fn a_lookup_with_nobody_to_ask_is_done() {
        let l = Lookup::new([0; 20], Method::FindNode, 8, 3);
        assert!(l.is_done());
        assert_eq!(l.closest_responded(), 0);
    }
}
