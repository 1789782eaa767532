//! Outstanding queries: compact 2-byte random transaction ids, deadlines, retries, and the
//! matching of replies by transaction id AND sender address. A reply whose id is
//! unknown is stray; one whose id is known but comes from another address is
//! spoofed and leaves the transaction waiting. Generic over what the caller wants
//! back (`T`); owns no sockets and sends nothing.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Bytes of the transaction ids we send. Four: BEP 5 leaves the length open and
/// two would do for the in-flight cap, but some implementations (the `mainline`
/// crate among them) only accept 4-byte ids and silently drop anything else.
pub const TID_LEN: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransactionId(pub u32);

impl TransactionId {
    pub fn to_bytes(self) -> [u8; TID_LEN] {
        self.0.to_be_bytes()
    }

    pub fn from_bytes(t: &[u8]) -> Option<TransactionId> {
        let b: [u8; TID_LEN] = t.try_into().ok()?;
        Some(TransactionId(u32::from_be_bytes(b)))
    }
}

#[derive(Clone, Debug)]
pub struct Pending<T> {
    pub addr: SocketAddr,
    pub sent_at: Instant,
    /// 0 for the first send, then 1 per retry.
    pub retries: u8,
    pub payload: T,
    deadline_gen: u32,
}

/// Why a reply matched nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// No query in flight has this transaction id.
    Stray,
    /// A query has this id, but went to another address.
    Spoofed,
}

#[derive(Clone)]
pub struct Transactions<T> {
    /// Ids are drawn at random: a remote that sees one of our ids must not be able
    /// to predict the ids of queries we send to others, and forge their replies.
    rng: SmallRng,
    gen: u32,
    max_in_flight: usize,
    pending: HashMap<u32, Pending<T>, ahash::RandomState>,
    /// Deadlines in send order. With one timeout for all queries they are already
    /// sorted, so a queue does what a heap would; completed entries are skipped lazily.
    deadlines: VecDeque<(Instant, u32, u32)>,
    per_remote: HashMap<SocketAddr, u16, ahash::RandomState>,
}

impl<T> Transactions<T> {
    pub fn new(seed: u64, max_in_flight: usize, hasher: ahash::RandomState) -> Self {
        Transactions {
            rng: SmallRng::seed_from_u64(seed),
            gen: 0,
            max_in_flight: max_in_flight.clamp(1, 1 << 15),
            pending: HashMap::with_hasher(hasher.clone()),
            deadlines: VecDeque::new(),
            per_remote: HashMap::with_hasher(hasher),
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.pending.len() >= self.max_in_flight
    }

    pub fn in_flight_to(&self, addr: &SocketAddr) -> usize {
        self.per_remote.get(addr).map_or(0, |n| *n as usize)
    }

    pub fn get(&self, tid: TransactionId) -> Option<&Pending<T>> {
        self.pending.get(&tid.0)
    }

    /// Registers a query to `addr`; `None` when the in-flight cap is reached.
    pub fn start(&mut self, now: Instant, timeout: Duration, addr: SocketAddr, payload: T) -> Option<TransactionId> {
        if self.is_full() {
            return None;
        }
        // The cap keeps the id space at most half full, so this ends quickly.
        let mut tid: u32 = self.rng.gen();
        while self.pending.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        let pending = Pending {
            addr,
            sent_at: now,
            retries: 0,
            payload,
            deadline_gen: 0,
        };
        self.insert(now, timeout, tid, pending);
        Some(TransactionId(tid))
    }

    /// Puts an expired transaction back under the same id, one retry further.
    pub fn retry(&mut self, now: Instant, timeout: Duration, tid: TransactionId, mut pending: Pending<T>) {
        pending.retries = pending.retries.saturating_add(1);
        pending.sent_at = now;
        self.insert(now, timeout, tid.0, pending);
    }

    fn insert(&mut self, now: Instant, timeout: Duration, tid: u32, mut pending: Pending<T>) {
        self.gen = self.gen.wrapping_add(1);
        pending.deadline_gen = self.gen;
        self.deadlines.push_back((now + timeout, tid, self.gen));
        *self.per_remote.entry(pending.addr).or_insert(0) += 1;
        self.pending.insert(tid, pending);
    }

    /// Matches a reply. On success the transaction is finished and returned.
    pub fn complete(&mut self, t: &[u8], from: SocketAddr) -> Result<(TransactionId, Pending<T>), Mismatch> {
        let tid = TransactionId::from_bytes(t).ok_or(Mismatch::Stray)?;
        match self.pending.get(&tid.0) {
            None => Err(Mismatch::Stray),
            Some(p) if p.addr != from => Err(Mismatch::Spoofed),
            Some(_) => Ok((tid, self.remove(tid.0).expect("present"))),
        }
    }

    fn remove(&mut self, tid: u32) -> Option<Pending<T>> {
        let p = self.pending.remove(&tid)?;
        if let Some(n) = self.per_remote.get_mut(&p.addr) {
            *n -= 1;
            if *n == 0 {
                self.per_remote.remove(&p.addr);
            }
        }
        Some(p)
    }

    /// The next transaction whose deadline passed, removed. The caller retries it
    /// with [`Transactions::retry`] or gives up.
    pub fn poll_expired(&mut self, now: Instant) -> Option<(TransactionId, Pending<T>)> {
        while let Some(&(deadline, tid, gen)) = self.deadlines.front() {
            let live = self.pending.get(&tid).is_some_and(|p| p.deadline_gen == gen);
            if !live {
                self.deadlines.pop_front();
                continue;
            }
            if deadline > now {
                return None;
            }
            self.deadlines.pop_front();
            return self.remove(tid).map(|p| (TransactionId(tid), p));
        }
        None
    }

    /// When the oldest live transaction expires (may be early if it completed since).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|d| d.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txs() -> Transactions<&'static str> {
        Transactions::new(7, 4, ahash::RandomState::with_seeds(1, 2, 3, 4))
    }

    const A: &str = "127.0.0.2:6881";
    const B: &str = "127.0.0.3:6881";

    #[test]
    fn replies_match_by_id_and_address_only() {
        let now = Instant::now();
        let mut t = txs();
        let a: SocketAddr = A.parse().unwrap();
        let id = t.start(now, Duration::from_secs(2), a, "ping").unwrap();
        let [w, x, y, z] = id.to_bytes();
        assert_eq!(
            t.complete(&[w, x, y, z], B.parse().unwrap()).unwrap_err(),
            Mismatch::Spoofed
        );
        assert_eq!(
            t.complete(&[w, x, y, z.wrapping_add(1)], a).unwrap_err(),
            Mismatch::Stray
        );
        assert_eq!(t.complete(&[w, x, y, z, 0], a).unwrap_err(), Mismatch::Stray);
        assert_eq!(t.complete(&[y, z], a).unwrap_err(), Mismatch::Stray);
        assert_eq!(t.in_flight_to(&a), 1);
        let (tid, p) = t.complete(&id.to_bytes(), a).unwrap();
        assert_eq!((tid, p.payload), (id, "ping"));
        assert_eq!(t.in_flight_to(&a), 0);
        assert_eq!(
            t.complete(&id.to_bytes(), a).unwrap_err(),
            Mismatch::Stray,
            "a duplicate reply is stray"
        );
    }

    #[test]
    fn ids_are_unpredictable_distinct_while_busy_and_capped() {
        let now = Instant::now();
        let mut t = txs();
        let a: SocketAddr = A.parse().unwrap();
        let ids: Vec<u32> = (0..4)
            .map(|_| t.start(now, Duration::from_secs(1), a, "x").unwrap().0)
            .collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 4);
        assert!(
            ids.windows(2).any(|w| w[1] != w[0].wrapping_add(1)),
            "not sequential: {ids:?}"
        );
        assert!(t.start(now, Duration::from_secs(1), a, "x").is_none());
        t.complete(&ids[0].to_be_bytes(), a).unwrap();
        assert!(t.start(now, Duration::from_secs(1), a, "y").is_some());
    }

    #[test]
    fn expiry_retry_and_lazy_cleanup() {
        let t0 = Instant::now();
        let to = Duration::from_secs(2);
        let mut t = txs();
        let a: SocketAddr = A.parse().unwrap();
        let first = t.start(t0, to, a, "q1").unwrap();
        let second = t.start(t0 + Duration::from_secs(1), to, a, "q2").unwrap();
        t.complete(&first.to_bytes(), a).unwrap();
        assert!(
            t.poll_expired(t0 + Duration::from_secs(2)).is_none(),
            "completed one is skipped, second not due"
        );
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(3)));
        let (tid, p) = t.poll_expired(t0 + Duration::from_secs(3)).unwrap();
        assert_eq!((tid, p.retries, p.payload), (second, 0, "q2"));
        t.retry(t0 + Duration::from_secs(3), to, tid, p);
        assert_eq!(t.len(), 1);
        // A late reply to the first attempt still matches the retried transaction.
        let (_, p) = t.complete(&second.to_bytes(), a).unwrap();
        assert_eq!(p.retries, 1);
        assert!(t.poll_expired(t0 + Duration::from_secs(60)).is_none());
    }
}
