//! The node runtime: the glommio loop around the I/O-free [`crate::dht::Node`]: one node, one UDP
//! socket, one executor thread, and a thread-safe handle to drive it from anywhere.
//!
//! Owns threads, sockets, timers and the channels between the caller and the
//! executor. It must not make protocol decisions: everything it knows about KRPC
//! is the `Node` API (`handle_datagram`, `poll_transmit`, `next_timeout`,
//! `handle_timeout`, `poll_event` and the request methods).
//!
//! ```text
//! caller thread(s)                        executor thread (glommio, optionally pinned)
//! NodeHandle::lookup ─ Command ─▶ channel ─▶ control task ─▶ Node::lookup
//!            └─ 1 byte ─▶ loopback UDP ─▶ (wakes it)
//! PeerStream (Iterator / Stream) ◀─ PeerSink ◀─ Event::Peers / LookupDone / AnnounceDone
//!                           UDP ─▶ io task (recvmmsg) ─▶ Node::handle_datagram
//!                           UDP ◀─ flush (sendmmsg) ◀─ Node::poll_transmit
//!                                  timer task ─▶ Node::handle_timeout
//! ```

mod driver;
mod error;
mod handle;
mod peers;

pub use error::RuntimeError;
pub use handle::{NodeHandle, RuntimeConfig};
pub use peers::{Outcome, PeerStream};
