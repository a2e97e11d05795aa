//! The memory engine's delivery state: the same state machine as `scripts/delivery.lua`, under
//! the engine's one lock (so every step is atomic and no outbox is needed).

use async_trait::async_trait;
use chrono::Utc;

use super::{Mailbox, MemoryEngine, State};
use crate::storage::delivery::{
    count_dead, decode_dead, id_floor, Buried, DeadPage, DeadQuery, DeadReason, DeliverySettings,
    DueReport, Handed, NackOutcome, MAX_DEAD_PAGE, MAX_DEAD_SCAN,
};
use crate::storage::engine::{DeadLetters, Delivery};
use crate::storage::{DeadLetter, StorageError};

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Mailbox {
    /// Drops every trace of `seq` from the delivery state (the record itself stays).
    pub(super) fn forget(&mut self, seq: u64) {
        if let Some(m) = self.dm.remove(&seq) {
            self.ready.remove(&(m.rank, seq));
        }
        self.att.remove(&seq);
        self.flight.remove(&seq);
        self.wait.remove(&seq);
    }

    fn attempts(&self, seq: u64) -> u32 {
        self.att.get(&seq).copied().unwrap_or(0)
    }

    /// Takes `seq` out of delivery and answers it as a dead letter (none if the record is gone).
    fn bury(
        &mut self,
        seq: u64,
        reason: DeadReason,
        attempts: u32,
        err: &str,
        now: i64,
    ) -> Option<Buried> {
        self.forget(seq);
        self.messages.get(&seq).map(|record| Buried {
            seq,
            reason,
            attempts,
            failed_at_ms: now,
            last_error: err.to_owned(),
            record: record.clone(),
        })
    }

    /// Hands `seq` (receivable) over once; answers the hand-over, and a dead letter instead when
    /// it expired while waiting.
    fn hand(&mut self, seq: u64, now: i64, deadline: i64) -> (Option<Handed>, Option<Buried>) {
        let Some(meta) = self.dm.get(&seq).copied() else {
            return (None, None);
        };
        self.ready.remove(&(meta.rank, seq));
        if meta.is_expired(now) {
            if meta.require_ack {
                let n = self.attempts(seq);
                return (
                    None,
                    self.bury(
                        seq,
                        DeadReason::Expired,
                        n,
                        "ttl passed before delivery",
                        now,
                    ),
                );
            }
            self.forget(seq);
            return (None, None);
        }
        let Some(record) = self.messages.get(&seq).cloned() else {
            self.forget(seq);
            return (None, None);
        };
        let attempt = if meta.require_ack {
            let n = self.att.entry(seq).or_insert(0);
            *n += 1;
            self.flight.insert(seq, deadline);
            *n
        } else {
            self.forget(seq);
            1
        };
        (
            Some(Handed {
                seq,
                attempt,
                record,
            }),
            None,
        )
    }

    /// The seq and attempts of message `id` if a delivery of it awaits settlement.
    fn pending(&self, id: &str) -> Result<(u64, u32), StorageError> {
        let seq = *self
            .ids
            .get(id)
            .ok_or_else(|| StorageError::UnknownMessage(id.to_owned()))?;
        let not = |why| StorageError::NotPending {
            id: id.to_owned(),
            why,
        };
        if !self.dm.contains_key(&seq) {
            return Err(not("already acked, consumed or dead-lettered"));
        }
        match self.attempts(seq) {
            0 => Err(not("it has not been delivered yet")),
            n => Ok((seq, n)),
        }
    }
}

impl State {
    /// Puts a dead letter into the queue.
    pub(super) fn bury(&mut self, mailbox: &str, b: Buried) {
        match b.encode(mailbox) {
            Ok((id, stored)) => {
                count_dead(b.reason);
                self.dlq.insert(id, stored);
            }
            Err(e) => tracing::error!(error = %e, mailbox, "cannot encode a dead letter"),
        }
    }

    fn schedule(&mut self, due: i64, mailbox: &str, seq: u64) {
        self.schedule.insert((due, mailbox.to_owned(), seq));
    }
}

impl MemoryEngine {
    /// Hands over up to `max` messages that `next` picks (given those looked at so far),
    /// looking at most 1000.
    fn hand_over(
        &self,
        mailbox: &str,
        max: usize,
        settings: &DeliverySettings,
        next: impl Fn(&Mailbox, &[u64]) -> Option<u64>,
    ) -> Vec<Handed> {
        let mut st = self.lock();
        let now = now_ms();
        let deadline = now + settings.ack_timeout_ms();
        let Some(mb) = st.mailboxes.get_mut(mailbox) else {
            return Vec::new();
        };
        let (mut got, mut buried, mut flying) = (Vec::new(), Vec::new(), Vec::new());
        let mut looked = Vec::new();
        while got.len() < max && looked.len() < 1000 {
            let Some(seq) = next(mb, &looked) else {
                break;
            };
            looked.push(seq);
            let (h, b) = mb.hand(seq, now, deadline);
            if h.is_some() && mb.flight.contains_key(&seq) {
                flying.push(seq);
            }
            got.extend(h);
            buried.extend(b);
        }
        for seq in flying {
            st.schedule(deadline, mailbox, seq);
        }
        for b in buried {
            st.bury(mailbox, b);
        }
        got
    }
}

#[async_trait]
impl Delivery for MemoryEngine {
    async fn receive(
        &self,
        mailbox: &str,
        max: usize,
        settings: &DeliverySettings,
    ) -> Result<Vec<Handed>, StorageError> {
        // The best ready message, again and again: a hand-over takes it out of ready.
        let next = |mb: &Mailbox, _: &[u64]| mb.ready.first().map(|&(_, seq)| seq);
        Ok(self.hand_over(mailbox, max, settings, next))
    }

    async fn redeliver(
        &self,
        mailbox: &str,
        max: usize,
        settings: &DeliverySettings,
    ) -> Result<Vec<Handed>, StorageError> {
        // The best ready message handed over before that this pass has not looked at.
        let next = |mb: &Mailbox, seen: &[u64]| {
            mb.ready
                .iter()
                .map(|&(_, seq)| seq)
                .find(|seq| mb.attempts(*seq) > 0 && !seen.contains(seq))
        };
        Ok(self.hand_over(mailbox, max, settings, next))
    }

    async fn take(
        &self,
        mailbox: &str,
        seqs: Vec<u64>,
        settings: &DeliverySettings,
    ) -> Result<Vec<(u64, u32)>, StorageError> {
        let mut st = self.lock();
        let now = now_ms();
        let deadline = now + settings.ack_timeout_ms();
        let Some(mb) = st.mailboxes.get_mut(mailbox) else {
            return Ok(Vec::new());
        };
        let (mut got, mut buried, mut flying) = (Vec::new(), Vec::new(), Vec::new());
        for seq in seqs {
            let ready = mb
                .dm
                .get(&seq)
                .is_some_and(|m| mb.ready.contains(&(m.rank, seq)));
            if !ready {
                continue;
            }
            let (h, b) = mb.hand(seq, now, deadline);
            if let Some(h) = h {
                if mb.flight.contains_key(&seq) {
                    flying.push(seq);
                }
                got.push((h.seq, h.attempt));
            }
            buried.extend(b);
        }
        for seq in flying {
            st.schedule(deadline, mailbox, seq);
        }
        for b in buried {
            st.bury(mailbox, b);
        }
        Ok(got)
    }

    async fn ack(&self, mailbox: &str, id: &str) -> Result<u32, StorageError> {
        let mut st = self.lock();
        let mb = st
            .mailboxes
            .get_mut(mailbox)
            .ok_or_else(|| StorageError::UnknownMessage(id.to_owned()))?;
        let (seq, n) = mb.pending(id)?;
        mb.forget(seq);
        Ok(n)
    }

    async fn nack(
        &self,
        mailbox: &str,
        id: &str,
        requeue: bool,
        reason: &str,
        settings: &DeliverySettings,
    ) -> Result<NackOutcome, StorageError> {
        let mut st = self.lock();
        let now = now_ms();
        let mb = st
            .mailboxes
            .get_mut(mailbox)
            .ok_or_else(|| StorageError::UnknownMessage(id.to_owned()))?;
        let (seq, n) = mb.pending(id)?;
        let dead = if !requeue {
            Some(DeadReason::Rejected)
        } else if n >= settings.max_attempts {
            Some(DeadReason::MaxAttempts)
        } else {
            None
        };
        if let Some(reason_code) = dead {
            let b = mb.bury(seq, reason_code, n, reason, now);
            if let Some(b) = b {
                st.bury(mailbox, b);
            }
            return Ok(NackOutcome::DeadLettered {
                attempt: n,
                reason: reason_code,
            });
        }
        mb.flight.remove(&seq);
        if let Some(m) = mb.dm.get(&seq) {
            mb.ready.remove(&(m.rank, seq));
        }
        let due = now + settings.backoff_ms(n, DeliverySettings::jitter());
        mb.wait.insert(seq, due);
        st.schedule(due, mailbox, seq);
        Ok(NackOutcome::Requeued {
            attempt: n,
            redeliver_at_ms: due,
        })
    }

    async fn retry_due(
        &self,
        limit: usize,
        settings: &DeliverySettings,
    ) -> Result<DueReport, StorageError> {
        let mut st = self.lock();
        let now = now_ms();
        let mut report = DueReport::default();
        while report.processed < limit {
            let Some(first) = st.schedule.first() else {
                break;
            };
            if first.0 > now {
                break;
            }
            let Some((_, mailbox, seq)) = st.schedule.pop_first() else {
                break;
            };
            report.processed += 1;
            let Some(mb) = st.mailboxes.get_mut(&mailbox) else {
                continue;
            };
            let (next, woke, buried) = settle(mb, seq, now, settings);
            if let Some(due) = next {
                st.schedule(due, &mailbox, seq);
            }
            if woke && !report.woken.contains(&mailbox) {
                report.woken.push(mailbox.clone());
            }
            if let Some(b) = buried {
                report.dead_lettered += 1;
                st.bury(&mailbox, b);
            }
        }
        Ok(report)
    }

    /// Nothing to rebuild: the memory engine's schedule is updated in the same step as the state.
    async fn retry_reconcile(&self) -> Result<usize, StorageError> {
        Ok(0)
    }

    async fn retract(
        &self,
        mailbox: &str,
        stored: Vec<(String, u64)>,
    ) -> Result<u64, StorageError> {
        let mut st = self.lock();
        let Some(mb) = st.mailboxes.get_mut(mailbox) else {
            return Ok(0);
        };
        let mut n = 0;
        for (id, seq) in &stored {
            if mb.ids.get(id) == Some(seq) {
                mb.forget(*seq);
                mb.ids.remove(id);
                n += u64::from(mb.messages.remove(seq).is_some());
            }
        }
        Ok(n)
    }
}

#[async_trait]
impl DeadLetters for MemoryEngine {
    async fn dlq_list(&self, q: DeadQuery) -> Result<DeadPage, StorageError> {
        let st = self.lock();
        let limit = q.limit.clamp(1, MAX_DEAD_PAGE);
        let mut page = DeadPage::default();
        let range = match &q.after {
            Some(a) => st.dlq.range::<String, _>((
                std::ops::Bound::Excluded(a.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => st.dlq.range::<String, _>(..),
        };
        let mut last: Option<&String> = None;
        for (scanned, (id, stored)) in range.enumerate() {
            if page.dead_letters.len() == limit || scanned >= MAX_DEAD_SCAN {
                page.next = last.cloned();
                break;
            }
            last = Some(id);
            let d = decode_dead(stored)?;
            if q.mailbox.as_ref().is_some_and(|m| *m != d.mailbox)
                || q.reason.is_some_and(|r| r != d.reason)
            {
                continue;
            }
            page.dead_letters.push(d);
        }
        Ok(page)
    }

    async fn dlq_get(&self, id: &str) -> Result<Option<DeadLetter>, StorageError> {
        let st = self.lock();
        st.dlq.get(id).map(|s| decode_dead(s)).transpose()
    }

    async fn dlq_delete(&self, id: &str) -> Result<bool, StorageError> {
        Ok(self.lock().dlq.remove(id).is_some())
    }

    async fn dlq_purge(&self, before_ms: i64) -> Result<u64, StorageError> {
        let mut st = self.lock();
        let floor = id_floor(before_ms);
        let keep = st.dlq.split_off(&floor);
        let old = std::mem::replace(&mut st.dlq, keep);
        Ok(old.len() as u64)
    }

    async fn dlq_count(&self) -> Result<u64, StorageError> {
        Ok(self.lock().dlq.len() as u64)
    }
}

/// What the retry scheduler does with `seq` when its entry falls due: answers the next due time
/// (if any), whether it became receivable, and a dead letter if it failed for good.
fn settle(
    mb: &mut Mailbox,
    seq: u64,
    now: i64,
    settings: &DeliverySettings,
) -> (Option<i64>, bool, Option<Buried>) {
    let Some(meta) = mb.dm.get(&seq).copied() else {
        return (None, false, None);
    };
    let expired = meta.is_expired(now);
    let n = mb.attempts(seq);
    if let Some(&deadline) = mb.flight.get(&seq) {
        if deadline > now {
            return (Some(deadline), false, None);
        }
        if expired {
            let b = mb.bury(
                seq,
                DeadReason::Expired,
                n,
                "ttl passed while awaiting an ack",
                now,
            );
            return (None, false, b);
        }
        if n >= settings.max_attempts {
            let err = format!("not acked within the ack timeout (attempt {n})");
            return (
                None,
                false,
                mb.bury(seq, DeadReason::MaxAttempts, n, &err, now),
            );
        }
        mb.flight.remove(&seq);
        let due = now + settings.backoff_ms(n, DeliverySettings::jitter());
        mb.wait.insert(seq, due);
        return (Some(due), false, None);
    }
    if let Some(&due) = mb.wait.get(&seq) {
        if due > now {
            return (Some(due), false, None);
        }
        if expired {
            let b = mb.bury(
                seq,
                DeadReason::Expired,
                n,
                "ttl passed before redelivery",
                now,
            );
            return (None, false, b);
        }
        mb.wait.remove(&seq);
        mb.ready.insert((meta.rank, seq));
        let next = (meta.require_ack && meta.expires_ms > 0).then_some(meta.expires_ms);
        return (next, true, None);
    }
    if mb.ready.contains(&(meta.rank, seq)) && meta.require_ack && meta.expires_ms > 0 {
        if !expired {
            return (Some(meta.expires_ms), false, None);
        }
        let b = mb.bury(
            seq,
            DeadReason::Expired,
            n,
            "ttl passed before delivery",
            now,
        );
        return (None, false, b);
    }
    (None, false, None)
}
