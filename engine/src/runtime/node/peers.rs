//! The stream of peers a lookup or announce yields to its caller, across the
//! thread boundary between the node's executor and whoever asked.
//!
//! Owns one small queue shared by the executor (producer) and the caller
//! (consumer). The caller may be anything: a blocking thread iterates, async code
//! on any executor polls it as a `Stream`. It must not know about the protocol;
//! lookups end when the executor says so, or when the executor goes away.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::Stream;

/// How a lookup or announce ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The `get_peers` lookup converged; `closest` of the k closest nodes answered.
    LookupDone { closest: usize },
    /// `announce_peer` was acknowledged by `announced_to` of the closest nodes.
    AnnounceDone { announced_to: usize },
    /// The node shut down before the request finished.
    Stopped,
}

#[derive(Default)]
struct Shared {
    peers: VecDeque<SocketAddr>,
    outcome: Option<Outcome>,
    waker: Option<Waker>,
}

struct Inner {
    state: Mutex<Shared>,
    ready: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Peers of one lookup or announce, as the node finds them. Each peer is yielded
/// once. Ends after the node reports the request done (see [`PeerStream::outcome`]).
pub struct PeerStream {
    inner: Arc<Inner>,
}

/// The executor's end of a [`PeerStream`]. Dropping it without finishing ends the
/// stream with [`Outcome::Stopped`].
pub(crate) struct PeerSink {
    inner: Arc<Inner>,
}

pub(crate) fn channel() -> (PeerSink, PeerStream) {
    let inner = Arc::new(Inner {
        state: Mutex::new(Shared::default()),
        ready: Condvar::new(),
    });
    (PeerSink { inner: inner.clone() }, PeerStream { inner })
}

impl PeerSink {
    pub(crate) fn push(&self, peers: &[SocketAddr]) {
        let mut state = self.inner.lock();
        state.peers.extend(peers.iter().copied());
        Self::wake(state, &self.inner);
    }

    pub(crate) fn finish(&self, outcome: Outcome) {
        let mut state = self.inner.lock();
        if state.outcome.is_none() {
            state.outcome = Some(outcome);
        }
        Self::wake(state, &self.inner);
    }

    /// True once the caller dropped its stream: the executor can stop reporting.
    pub(crate) fn abandoned(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    fn wake(mut state: MutexGuard<'_, Shared>, inner: &Inner) {
        let waker = state.waker.take();
        drop(state);
        inner.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for PeerSink {
    fn drop(&mut self) {
        self.finish(Outcome::Stopped);
    }
}

impl PeerStream {
    /// The next peer, waiting at most until `deadline`. `None` when the request is
    /// done and every peer was taken, or when the deadline passed.
    pub fn next_until(&self, deadline: Instant) -> Option<SocketAddr> {
        self.wait_next(Some(deadline))
    }

    /// The next peer, waiting until one comes, the request ends, or `deadline`.
    fn wait_next(&self, deadline: Option<Instant>) -> Option<SocketAddr> {
        let mut state = self.inner.lock();
        loop {
            if let Some(peer) = state.peers.pop_front() {
                return Some(peer);
            }
            if state.outcome.is_some() {
                return None;
            }
            state = match deadline {
                Some(deadline) => {
                    let left = deadline
                        .checked_duration_since(Instant::now())
                        .filter(|d| !d.is_zero())?;
                    self.inner
                        .ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.inner.ready.wait(state).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// The next peer, waiting at most `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Option<SocketAddr> {
        self.next_until(Instant::now() + timeout)
    }

    /// How the request ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.inner.lock().outcome
    }

    /// Waits until the request ends or `deadline` passes, keeping every peer not yet
    /// taken, and returns the outcome if it ended.
    pub fn wait_until(&self, deadline: Instant) -> Option<Outcome> {
        let mut state = self.inner.lock();
        loop {
            if state.outcome.is_some() {
                return state.outcome;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())?;
            state = self
                .inner
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Blocking iteration: waits for each peer until the request ends.
impl Iterator for PeerStream {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        self.wait_next(None)
    }
}

/// Async iteration from any executor (glommio or not).
impl Stream for PeerStream {
    type Item = SocketAddr;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SocketAddr>> {
        let mut state = self.inner.lock();
        if let Some(peer) = state.peers.pop_front() {
            return Poll::Ready(Some(peer));
        }
        if state.outcome.is_some() {
            return Poll::Ready(None);
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 9], port))
    }

    #[test]
    fn blocking_iteration_sees_peers_from_another_thread_then_ends() {
        let (sink, stream) = channel();
        let producer = std::thread::spawn(move || {
            sink.push(&[addr(1), addr(2)]);
            std::thread::sleep(Duration::from_millis(20));
            sink.push(&[addr(3)]);
            sink.finish(Outcome::LookupDone { closest: 8 });
        });
        let mut stream = stream;
        let got: Vec<_> = stream.by_ref().collect();
        producer.join().unwrap();
        assert_eq!(got, vec![addr(1), addr(2), addr(3)]);
        assert_eq!(stream.outcome(), Some(Outcome::LookupDone { closest: 8 }));
    }

    #[test]
    fn async_stream_wakes_on_push_and_dropped_sink_means_stopped() {
        let (sink, mut stream) = channel();
        let producer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            sink.push(&[addr(7)]);
            // dropped without finish: the executor went away
        });
        let got = futures_lite::future::block_on(async {
            let mut got = Vec::new();
            while let Some(peer) = futures_lite::StreamExt::next(&mut stream).await {
                got.push(peer);
            }
            got
        });
        producer.join().unwrap();
        assert_eq!(got, vec![addr(7)]);
        assert_eq!(stream.outcome(), Some(Outcome::Stopped));
    }

    #[test]
    fn deadlines_bound_the_wait() {
        let (sink, stream) = channel();
        let start = Instant::now();
        assert_eq!(stream.next_timeout(Duration::from_millis(30)), None);
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(stream.wait_until(Instant::now() + Duration::from_millis(10)), None);
        assert!(!sink.abandoned());
        drop(stream);
        assert!(sink.abandoned());
    }
}
