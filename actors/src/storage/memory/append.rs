//! Appending to one stream of the memory engine: the shared core of mailbox sends, fan-out
//! copies (`append_many`) and topic histories.

use std::time::Instant;

use chrono::Utc;

use super::{Idempotency, Mailbox, State, IDEMPOTENCY_TTL};
use crate::model::Overflow;
use crate::storage::delivery::{Buried, DeadReason};
use crate::storage::{record_id, AppendOutcome, Appended, NewRecord, StorageError, StoredRecord};

/// What one append did beyond its outcome: delivery bookkeeping the caller finishes.
#[derive(Default)]
pub(super) struct Appending {
    pub outcome: AppendOutcome,
    /// Evicted records that awaited an ack (dead letters, reason `evicted`).
    pub buried: Vec<Buried>,
    /// `(expires_at ms, seq)` of stored records that await an ack and expire.
    pub expiring: Vec<(i64, u64)>,
}

/// Appends to one stream (a mailbox or a topic history) under its idempotency `scope`. With
/// `tracked`, each stored record gets its delivery state (receivable, ack, expiry) and evicted
/// records awaiting an ack are answered as dead letters; topic histories keep none.
pub(super) fn append_to(
    mb: &mut Mailbox,
    idempotency: &mut Idempotency,
    scope: &str,
    records: Vec<NewRecord>,
    default_max_len: u64,
    tracked: bool,
) -> Result<Appending, StorageError> {
    let now = Instant::now();
    idempotency.retain(|_, v| now.duration_since(v.2) < IDEMPOTENCY_TTL);
    let mut results: Vec<Option<Appended>> = records
        .iter()
        .map(|r| {
            r.idempotency
                .as_ref()
                .and_then(|k| {
                    idempotency
                        .get(&(scope.to_owned(), k.clone()))
                        .map(|(id, seq, _)| Appended::Duplicate {
                            id: id.clone(),
                            seq: *seq,
                        })
                })
                // A message id the stream already holds (a spool replay, a retried write) is a
                // duplicate of itself: never stored twice.
                .or_else(|| {
                    mb.ids.get(&r.id).map(|seq| Appended::Duplicate {
                        id: r.id.clone(),
                        seq: *seq,
                    })
                })
        })
        .collect();
    let fresh = results.iter().filter(|r| r.is_none()).count() as u64;
    let max_len = mb.config.max_len.unwrap_or(default_max_len);
    let len = mb.messages.len() as u64;
    let mut out = Appending::default();
    let now_ms = Utc::now().timestamp_millis();
    if len + fresh > max_len {
        if mb.config.overflow == Overflow::Reject || fresh > max_len {
            return Err(StorageError::MailboxFull {
                mailbox: scope.to_owned(),
                max_len,
            });
        }
        for _ in 0..(len + fresh - max_len) {
            if let Some((seq, record)) = mb.messages.pop_first() {
                mb.ids.remove(record_id(&record));
                let awaited = mb.dm.get(&seq).is_some_and(|m| m.require_ack);
                let attempts = mb.att.get(&seq).copied().unwrap_or(0);
                mb.forget(seq);
                if awaited {
                    out.buried.push(Buried {
                        seq,
                        reason: DeadReason::Evicted,
                        attempts,
                        failed_at_ms: now_ms,
                        last_error: "evicted by overflow = drop_oldest".into(),
                        record: record.clone(),
                    });
                }
                out.outcome.evicted.push(StoredRecord { seq, record });
            }
        }
    }
    mb.created_at.get_or_insert_with(Utc::now);
    for (slot, rec) in results.iter_mut().zip(records) {
        if slot.is_some() {
            continue;
        }
        mb.seq += 1;
        let seq = mb.seq;
        mb.ids.insert(rec.id.clone(), seq);
        mb.messages.insert(seq, rec.record);
        if tracked {
            mb.ready.insert((rec.delivery.rank, seq));
            mb.dm.insert(seq, rec.delivery);
            if rec.delivery.require_ack && rec.delivery.expires_ms > 0 {
                out.expiring.push((rec.delivery.expires_ms, seq));
            }
        }
        if let Some(k) = rec.idempotency {
            idempotency.insert((scope.to_owned(), k), (rec.id, seq, now));
        }
        *slot = Some(Appended::Stored { seq });
    }
    out.outcome.results = results.into_iter().flatten().collect();
    Ok(out)
}

impl State {
    /// Appends to a mailbox with its delivery state: the path of direct sends and of every
    /// fan-out copy (topic subscribers, broadcast), so all of them can be received and acked.
    pub(super) fn append_mailbox(
        &mut self,
        mailbox: &str,
        records: Vec<NewRecord>,
        default_max_len: u64,
    ) -> Result<AppendOutcome, StorageError> {
        let mb = self.mailboxes.entry(mailbox.to_owned()).or_default();
        let done = append_to(
            mb,
            &mut self.idempotency,
            mailbox,
            records,
            default_max_len,
            true,
        )?;
        self.schedule.extend(
            done.expiring
                .into_iter()
                .map(|(due, seq)| (due, mailbox.to_owned(), seq)),
        );
        for b in done.buried {
            self.bury(mailbox, b);
        }
        Ok(done.outcome)
    }
}
