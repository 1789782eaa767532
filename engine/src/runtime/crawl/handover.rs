//! What crosses cores: nodes handed to their owner, and lookup queries and
//! reports ([`LookupMsg`]); one bounded channel into each core, and each
//! core's outbox of messages the target's channel had no room for yet.
//!
//! Owns the channels and the outbox. Must not block an executor: sends are
//! `try_send`, a full channel keeps the handover for the next flush, and the
//! outbox itself is bounded (a message beyond it is dropped and counted: nodes
//! are relearned, a lookup whose step is lost ends at its deadline;
//! discoveries never pass through here).

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::codec::compact::CompactNode;
use crate::crawl::{Handover, LookupMsg};

/// One message to a core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreMsg {
    /// A node the receiving core owns.
    Node(CompactNode),
    Lookup(LookupMsg),
}

/// Inbound messages a core's channel holds.
pub const CHANNEL_CAP: usize = 16_384;
/// Messages an outbox keeps while their targets' channels are full.
const OUTBOX_CAP: usize = 65_536;

/// Builds the mesh: `senders[i]` reaches core `i`, whose end is `receivers[i]`.
pub fn mesh(cores: usize) -> (Vec<Sender<CoreMsg>>, Vec<Receiver<CoreMsg>>) {
    (0..cores).map(|_| crossbeam_channel::bounded(CHANNEL_CAP)).unzip()
}

#[derive(Clone, Copy, Debug, Default)]
pub struct OutboxStats {
    pub sent: u64,
    /// Flushes that found a target channel full (the message was kept).
    pub deferred: u64,
    /// Messages dropped because the outbox was full.
    pub dropped: u64,
}

/// One core's outgoing messages.
pub struct Outbox {
    senders: Vec<Sender<CoreMsg>>,
    pending: Vec<(usize, CoreMsg)>,
    /// The other half of `pending`'s double buffer.
    spare: Vec<(usize, CoreMsg)>,
    stats: OutboxStats,
}

impl Outbox {
    pub fn new(senders: Vec<Sender<CoreMsg>>) -> Outbox {
        Outbox {
            senders,
            pending: Vec::new(),
            spare: Vec::new(),
            stats: OutboxStats::default(),
        }
    }

    pub fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Takes the scheduler's handovers and lookup messages and sends what fits.
    pub fn push_and_flush(&mut self, handovers: &mut Vec<Handover>, lookups: &mut Vec<(usize, LookupMsg)>) {
        let msgs = handovers
            .drain(..)
            .map(|h| (h.core, CoreMsg::Node(h.node)))
            .chain(lookups.drain(..).map(|(core, m)| (core, CoreMsg::Lookup(m))));
        for m in msgs {
            if self.pending.len() < OUTBOX_CAP {
                self.pending.push(m);
            } else {
                self.stats.dropped += 1;
            }
        }
        self.flush();
    }

    /// Sends pending messages, keeping those whose target is full.
    pub fn flush(&mut self) {
        let mut kept = std::mem::take(&mut self.spare);
        for (core, msg) in self.pending.drain(..) {
            match self.senders.get(core).map(|s| s.try_send(msg)) {
                Some(Ok(())) => self.stats.sent += 1,
                Some(Err(TrySendError::Full(msg))) => {
                    self.stats.deferred += 1;
                    kept.push((core, msg));
                }
                // A stopped core or an impossible index: nobody will take it.
                Some(Err(TrySendError::Disconnected(_))) | None => {}
            }
        }
        self.spare = std::mem::replace(&mut self.pending, kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u8) -> CompactNode {
        CompactNode {
            id: [i; 20],
            addr: ([82, 0, 0, i], 6881).into(),
        }
    }

    #[test]
    fn a_full_channel_keeps_handovers_until_there_is_room() {
        let (senders, receivers) = mesh(2);
        let mut out = Outbox::new(senders);
        let mut batch: Vec<Handover> = (0..CHANNEL_CAP + 10)
            .map(|i| Handover {
                core: 1,
                node: node(i as u8),
            })
            .collect();
        out.push_and_flush(&mut batch, &mut Vec::new());
        assert!(batch.is_empty());
        assert_eq!(out.stats().sent, CHANNEL_CAP as u64);
        assert_eq!(out.pending.len(), 10);
        assert!(out.stats().deferred >= 10);
        for _ in 0..10 {
            receivers[1].try_recv().unwrap();
        }
        out.flush();
        assert_eq!(out.pending.len(), 0);
        assert_eq!(out.stats().sent, CHANNEL_CAP as u64 + 10);
        assert_eq!(out.stats().dropped, 0);
        assert!(receivers[0].try_recv().is_err(), "nothing went to the wrong core");
    }
}
