//! Consuming a mailbox: receive (each hand-over is a delivery attempt), ack and nack. Like
//! reads, these go straight to storage: one atomic storage call decides who gets what, so two
//! consumers never hold the same message, on one node or several.

use std::time::Duration;

use super::MailboxHandle;
use crate::error::Error;
use crate::model::Envelope;
use crate::storage::{Handed, NackOutcome};

/// Most messages one receive hands over.
pub const MAX_RECEIVE: usize = 100;
/// A long-poll looks again at least this often, so a redelivery or a message stored by another
/// node is found even when nothing wakes it.
const RECHECK: Duration = Duration::from_secs(1);

impl MailboxHandle {
    /// Hands over up to `max` messages now: highest priority first, FIFO within a priority.
    async fn receive_now(&self, max: usize) -> Result<Vec<Envelope>, Error> {
        let handed = self
            .registry
            .storage()
            .receive(
                &self.name,
                max.clamp(1, MAX_RECEIVE),
                self.registry.delivery(),
            )
            .await?;
        Ok(decode_handed(&self.name, handed))
    }

    /// Receives, and if nothing is receivable waits up to `wait` for something to be.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Envelope>, Error> {
        let look = || self.receive_now(max);
        let watch = || self.watch();
        crate::stream::look_or_wait(wait, Some(RECHECK), watch, look).await
    }

    /// Settles a delivery of message `id`; answers the attempt that was acked.
    pub async fn ack(&self, id: &str) -> Result<u32, Error> {
        let attempt = self.registry.storage().ack(&self.name, id).await?;
        metrics::counter!("mailbox_messages_acked_total").increment(1);
        Ok(attempt)
    }

    /// Refuses a delivery: redelivered after backoff (`requeue`), or dead-lettered.
    pub async fn nack(&self, id: &str, requeue: bool, reason: &str) -> Result<NackOutcome, Error> {
        Ok(self
            .registry
            .storage()
            .nack(&self.name, id, requeue, reason, self.registry.delivery())
            .await?)
    }

    /// Records that the messages at `seqs` were handed over by another transport (a WebSocket
    /// push): each receivable one becomes a delivery attempt (in flight until acked when it
    /// requires an ack, consumed otherwise). Answers `(seq, attempt)` for those; seqs that were
    /// not receivable (in flight elsewhere, settled) are left out and should not count as
    /// deliveries.
    pub async fn record_delivery(&self, seqs: Vec<u64>) -> Result<Vec<(u64, u32)>, Error> {
        let taken = self
            .registry
            .storage()
            .take(&self.name, seqs, self.registry.delivery())
            .await?;
        let redelivered = taken.iter().filter(|(_, a)| *a > 1).count() as u64;
        if redelivered > 0 {
            metrics::counter!("mailbox_redeliveries_total").increment(redelivered);
        }
        Ok(taken)
    }
}

/// The envelopes of what was handed over (attempt filled in); a corrupt record is skipped.
pub(crate) fn decode_handed(mailbox: &str, handed: Vec<Handed>) -> Vec<Envelope> {
    handed
        .into_iter()
        .filter_map(|h| match h.decode() {
            Ok(env) => {
                if h.attempt > 1 {
                    metrics::counter!("mailbox_redeliveries_total").increment(1);
                }
                Some(env)
            }
            Err(e) => {
                // Handed over but unreadable: it will time out and be dead-lettered if it
                // awaited an ack; nothing a client could do with it.
                tracing::error!(%mailbox, seq = h.seq, error = %e, "corrupt record skipped by receive");
                None
            }
        })
        .collect()
}
