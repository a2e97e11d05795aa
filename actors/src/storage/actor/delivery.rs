//! Storage-actor messages and handle methods for delivery: receive, acks, the retry schedule
//! and the dead-letter queue.

use actix::prelude::*;

use super::{StorageActor, StorageHandle};
use crate::storage::{
    DeadLetter, DeadPage, DeadQuery, DeliverySettings, DueReport, Handed, NackOutcome, StorageError,
};

storage_op!(
    /// Hand over up to `max` receivable messages; each is a delivery attempt.
    Receive { mailbox: String, max: usize, settings: DeliverySettings } -> Vec<Handed>,
    |e, m| e.receive(&m.mailbox, m.max, &m.settings).await);
storage_op!(
    /// Record a hand-over of given seqs (e.g. a WebSocket push) as an attempt.
    Take { mailbox: String, seqs: Vec<u64>, settings: DeliverySettings } -> Vec<(u64, u32)>,
    |e, m| e.take(&m.mailbox, m.seqs, &m.settings).await);
storage_op!(
    /// Settle a delivery: acked.
    Ack { mailbox: String, id: String } -> u32,
    |e, m| e.ack(&m.mailbox, &m.id).await);
storage_op!(
    /// Settle a delivery: refused, redelivered later or dead-lettered.
    Nack { mailbox: String, id: String, requeue: bool, reason: String, settings: DeliverySettings } -> NackOutcome,
    |e, m| e.nack(&m.mailbox, &m.id, m.requeue, &m.reason, &m.settings).await);
storage_op!(
    /// Work through retry-schedule entries that are due.
    RetryDue { limit: usize, settings: DeliverySettings } -> DueReport,
    |e, m| e.retry_due(m.limit, &m.settings).await);
storage_op!(
    /// Rebuild the retry schedule and finish dead letters left in outboxes.
    RetryReconcile {} -> usize,
    |e, _m| e.retry_reconcile().await);
storage_op!(
    /// Remove records a failed batch stored.
    Retract { mailbox: String, stored: Vec<(String, u64)> } -> u64,
    |e, m| e.retract(&m.mailbox, m.stored).await);
storage_op!(
    /// List dead letters.
    DeadList { query: DeadQuery } -> DeadPage,
    |e, m| e.dlq_list(m.query).await);
storage_op!(
    /// One dead letter.
    DeadGet { id: String } -> Option<DeadLetter>,
    |e, m| e.dlq_get(&m.id).await);
storage_op!(
    /// Delete one dead letter.
    DeadDelete { id: String } -> bool,
    |e, m| e.dlq_delete(&m.id).await);
storage_op!(
    /// Delete dead letters that failed before a time.
    DeadPurge { before_ms: i64 } -> u64,
    |e, m| e.dlq_purge(m.before_ms).await);
storage_op!(
    /// How many dead letters there are.
    DeadCount {} -> u64,
    |e, _m| e.dlq_count().await);

impl StorageHandle {
    pub async fn receive(
        &self,
        mailbox: &str,
        max: usize,
        settings: &DeliverySettings,
    ) -> Result<Vec<Handed>, StorageError> {
        self.call(Receive {
            mailbox: mailbox.to_owned(),
            max,
            settings: settings.clone(),
        })
        .await?
    }

    pub async fn take(
        &self,
        mailbox: &str,
        seqs: Vec<u64>,
        settings: &DeliverySettings,
    ) -> Result<Vec<(u64, u32)>, StorageError> {
        self.call(Take {
            mailbox: mailbox.to_owned(),
            seqs,
            settings: settings.clone(),
        })
        .await?
    }

    pub async fn ack(&self, mailbox: &str, id: &str) -> Result<u32, StorageError> {
        self.call(Ack {
            mailbox: mailbox.to_owned(),
            id: id.to_owned(),
        })
        .await?
    }

    pub async fn nack(
        &self,
        mailbox: &str,
        id: &str,
        requeue: bool,
        reason: &str,
        settings: &DeliverySettings,
    ) -> Result<NackOutcome, StorageError> {
        self.call(Nack {
            mailbox: mailbox.to_owned(),
            id: id.to_owned(),
            requeue,
            reason: reason.to_owned(),
            settings: settings.clone(),
        })
        .await?
    }

    pub async fn retry_due(
        &self,
        limit: usize,
        settings: &DeliverySettings,
    ) -> Result<DueReport, StorageError> {
        self.call(RetryDue {
            limit,
            settings: settings.clone(),
        })
        .await?
    }

    pub async fn retry_reconcile(&self) -> Result<usize, StorageError> {
        self.call(RetryReconcile {}).await?
    }

    pub async fn retract(
        &self,
        mailbox: &str,
        stored: Vec<(String, u64)>,
    ) -> Result<u64, StorageError> {
        self.call(Retract {
            mailbox: mailbox.to_owned(),
            stored,
        })
        .await?
    }

    pub async fn dlq_list(&self, query: DeadQuery) -> Result<DeadPage, StorageError> {
        self.call(DeadList { query }).await?
    }

    pub async fn dlq_get(&self, id: &str) -> Result<Option<DeadLetter>, StorageError> {
        self.call(DeadGet { id: id.to_owned() }).await?
    }

    pub async fn dlq_delete(&self, id: &str) -> Result<bool, StorageError> {
        self.call(DeadDelete { id: id.to_owned() }).await?
    }

    pub async fn dlq_purge(&self, before_ms: i64) -> Result<u64, StorageError> {
        self.call(DeadPurge { before_ms }).await?
    }

    pub async fn dlq_count(&self) -> Result<u64, StorageError> {
        self.call(DeadCount {}).await?
    }
}
