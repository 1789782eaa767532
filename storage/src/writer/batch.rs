//! What producers hand the writer, and what it gives back: a [`Batch`] of
//! findings, the [`BatchOutcome`] once it is durable, and the refused batch
//! of a [`TrySend`](super::TrySend).

use crossbeam_channel::Sender;

use crate::record::*;

/// One producer's results. Every field is optional; fill what you have.
#[derive(Debug, Default)]
pub struct Batch {
    pub discoveries: Vec<Discovery>,
    /// Peers for hashes to fetch; creates queue entries as needed. Peers new
    /// to an entry waiting out a back-off make it due at once (see
    /// [`WriterStats::requeued_for_new_peers`](super::WriterStats::requeued_for_new_peers)); known peers change nothing.
    pub peers: Vec<PeersFound>,
    pub scrapes: Vec<(InfoHash, ScrapeEstimate)>,
    /// Fetched metadata (with `info_dict` set); removes the hash from the
    /// queue, and a hybrid's truncated v2 hash too (it is kept as an alias).
    pub torrents: Vec<TorrentRecord>,
    /// Failed fetches; reschedules with backoff.
    pub failures: Vec<FetchFailure>,
    /// Hashes to queue for a metadata fetch (import), with the time queued.
    pub enqueue: Vec<(InfoHash, UnixSecs)>,
    /// Replaces the saved routing-table nodes.
    pub nodes: Option<Vec<DhtNode>>,
    /// Names heard before the metadata. The first name stored for a hash
    /// stays (later ones are dropped); none is stored for a hash whose torrent
    /// is stored, and storing the torrent deletes it.
    pub names: Vec<ProvisionalName>,
    /// Receives the outcome once the batch is durable.
    pub reply: Option<Sender<BatchOutcome>>,
}

impl Batch {
    /// Everything the batch carries, counted one per record (a node list
    /// counts its nodes); what a lost batch costs in `items_lost`.
    pub fn items(&self) -> usize {
        self.discoveries.len()
            + self.peers.len()
            + self.scrapes.len()
            + self.torrents.len()
            + self.failures.len()
            + self.enqueue.len()
            + self.nodes.as_ref().map_or(0, Vec::len)
            + self.names.len()
    }
}

/// What the writer did with one batch, sent after its commit is durable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Discoveries never stored before (the crawler asks `get_peers` for these), in batch order.
    pub new: Vec<InfoHash>,
    /// Discoveries already stored, or repeated within the group.
    pub duplicates: u32,
}

/// `try_send` refused: the batch comes back.
#[derive(Debug)]
pub enum TrySend {
    Full(Batch),
    Closed(Batch),
}
