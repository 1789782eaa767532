//! The answering-mode hook: what a crawl core does with incoming queries when it
//! is not read-only. The scheduler calls a [`Responder`]; full answering
//! (routing-table `find_node`, tokens, peer store) belongs to `dht`, which can be
//! plugged in here. Must not do I/O: replies are encoded into the caller's buffer.

use std::net::SocketAddr;
use std::time::Instant;

use crate::codec::krpc::{encode_response, Query, ResponseOut};
use crate::codec::wire::ID_LEN;

pub trait Responder {
    /// Encodes a reply to `query` into `out` (empty on entry) and returns true,
    /// or returns false to leave the query unanswered.
    fn respond(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transaction_id: &[u8],
        query: &Query<'_>,
        out: &mut Vec<u8>,
    ) -> bool;
}

/// The minimal good citizen: answers `ping` so remotes keep us as reachable,
/// ignores everything else.
pub struct PingResponder {
    pub id: [u8; ID_LEN],
    pub version: Option<[u8; 4]>,
}

impl Responder for PingResponder {
    fn respond(&mut self, _now: Instant, from: SocketAddr, tid: &[u8], query: &Query<'_>, out: &mut Vec<u8>) -> bool {
        if !matches!(query, Query::Ping { .. }) {
            return false;
        }
        let version = self.version.as_ref().map(|v| &v[..]);
        encode_response(out, tid, &ResponseOut::new(&self.id), Some(from), version);
        true
    }
}
