//! What the node reports to its driver: the handle of a requested lookup and the
//! events it produces. Owns no state.

use std::net::SocketAddr;

/// Handle of one `lookup`, `announce` or `find_node` request, unique per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The first bootstrap lookup reached at least one node; queued requests start.
    Bootstrapped,
    /// Peers from one `values` reply of a `get_peers` lookup, as they arrive
    /// (filtered by the address filter, never repeated within one lookup).
    Peers { lookup: LookupId, peers: Vec<SocketAddr> },
    /// The lookup converged (or ran out of nodes); `closest` nodes responded among
    /// the k closest it knew.
    LookupDone { lookup: LookupId, closest: usize },
    /// `announce_peer` was acknowledged by `announced_to` of the closest nodes.
    AnnounceDone { lookup: LookupId, announced_to: usize },
}
