//! Nodes crossing cores: one bounded channel into each core, and each core's
//! outbox of handovers the target's channel had no room for yet.
//!
//! Owns the channels and the outbox. Must not block an executor: sends are
//! `try_send`, a full channel keeps the handover for the next flush, and the
//! outbox itself is bounded (a node beyond it is dropped and counted; nodes are
//! relearned, discoveries never pass through here).

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::codec::compact::CompactNode;
use crate::crawl::Handover;

/// Inbound handovers a core's channel holds.
pub const CHANNEL_CAP: usize = 16_384;
/// Handovers an outbox keeps while their targets' channels are full.
const OUTBOX_CAP: usize = 65_536;

/// Builds the mesh: `senders[i]` reaches core `i`, whose end is `receivers[i]`.
pub fn mesh(cores: usize) -> (Vec<Sender<CompactNode>>, Vec<Receiver<CompactNode>>) {
    (0..cores).map(|_| crossbeam_channel::bounded(CHANNEL_CAP)).unzip()
}

#[derive(Clone, Copy, Debug, Default)]
pub struct OutboxStats {
    pub sent: u64,
    /// Flushes that found a target channel full (the handover was kept).
    pub deferred: u64,
    /// Handovers dropped because the outbox was full.
    pub dropped: u64,
}

/// One core's outgoing handovers.
pub struct Outbox {
    senders: Vec<Sender<CompactNode>>,
    pending: Vec<Handover>,
    stats: OutboxStats,
}

impl Outbox {
    pub fn new(senders: Vec<Sender<CompactNode>>) -> Outbox {
        Outbox {
            senders,
            pending: Vec::new(),
            stats: OutboxStats::default(),
        }
    }

    pub fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Takes the scheduler's handovers and sends what fits.
    pub fn push_and_flush(&mut self, handovers: &mut Vec<Handover>) {
        let room = OUTBOX_CAP.saturating_sub(self.pending.len());
        if handovers.len() > room {
            self.stats.dropped += (handovers.len() - room) as u64;
            handovers.truncate(room);
        }
        self.pending.append(handovers);
        self.flush();
    }

    /// Sends pending handovers, keeping those whose target is full.
    pub fn flush(&mut self) {
        let senders = &self.senders;
        let stats = &mut self.stats;
        self.pending
            .retain(|h| match senders.get(h.core).map(|s| s.try_send(h.node)) {
                Some(Ok(())) => {
                    stats.sent += 1;
                    false
                }
                Some(Err(TrySendError::Full(_))) => {
                    stats.deferred += 1;
                    true
                }
                // A stopped core or an impossible index: nobody will take it.
                Some(Err(TrySendError::Disconnected(_))) | None => false,
            });
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
        out.push_and_flush(&mut batch);
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
