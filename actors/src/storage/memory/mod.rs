//! The in-memory engine: zero-dependency mode. Same behaviour as Redis, nothing kept across
//! restarts. One `std::sync::Mutex` over everything: critical sections are short and never await.
//! Delivery state (receive, acks, retry schedule, dead letters) is in [`delivery`].

mod delivery;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::delivery::{Buried, DeadReason, DeliveryMeta};
use super::{
    record_id, AppendOutcome, Appended, MailboxStats, NewRecord, ReadMark, ReadState, StorageError,
    StoredRecord,
};
use crate::model::{MailboxConfig, Overflow};

const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
struct Mailbox {
    created_at: Option<chrono::DateTime<Utc>>,
    seq: u64,
    config: MailboxConfig,
    messages: BTreeMap<u64, Vec<u8>>,
    ids: HashMap<String, u64>,
    reads: HashMap<String, ReadState>,
    /// Receivable now, by (priority rank, seq).
    ready: BTreeSet<(u8, u64)>,
    /// Delivery meta of every message not yet consumed, acked or dead-lettered.
    dm: HashMap<u64, DeliveryMeta>,
    /// Attempts made so far.
    att: HashMap<u64, u32>,
    /// In flight: seq -> ack deadline (ms).
    flight: HashMap<u64, i64>,
    /// Awaiting redelivery: seq -> due (ms).
    wait: HashMap<u64, i64>,
}

impl Mailbox {
    fn unread(&self, reader: &str) -> u64 {
        let state = self.reads.get(reader).cloned().unwrap_or_default();
        self.messages.keys().filter(|s| !state.is_read(**s)).count() as u64
    }
}

#[derive(Default)]
struct State {
    mailboxes: HashMap<String, Mailbox>,
    idempotency: HashMap<(String, String), (String, u64, Instant)>,
    /// The retry schedule: (due ms, mailbox, seq). Entries are hints, checked against the
    /// mailbox's state when they fall due.
    schedule: BTreeSet<(i64, String, u64)>,
    /// Dead letters by id (time-sortable), in the same stored form as the Redis engine's.
    dlq: BTreeMap<String, Vec<u8>>,
}

/// Cloning is shallow: every clone shares the same state.
#[derive(Clone, Default)]
pub struct MemoryEngine {
    state: Arc<Mutex<State>>,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic mid-update in this process; the data is still the best
        // we have, and refusing every later request would turn one bug into an outage.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }

    pub async fn append(
        &self,
        mailbox: &str,
        records: Vec<NewRecord>,
        default_max_len: u64,
    ) -> Result<AppendOutcome, StorageError> {
        let mut st = self.lock();
        let now = Instant::now();
        st.idempotency
            .retain(|_, v| now.duration_since(v.2) < IDEMPOTENCY_TTL);
        let mut results: Vec<Option<Appended>> = records
            .iter()
            .map(|r| {
                r.idempotency.as_ref().and_then(|k| {
                    st.idempotency
                        .get(&(mailbox.to_owned(), k.clone()))
                        .map(|(id, seq, _)| Appended::Duplicate {
                            id: id.clone(),
                            seq: *seq,
                        })
                })
            })
            .collect();
        let fresh = results.iter().filter(|r| r.is_none()).count() as u64;
        let mb = st.mailboxes.entry(mailbox.to_owned()).or_default();
        let max_len = mb.config.max_len.unwrap_or(default_max_len);
        let len = mb.messages.len() as u64;
        let mut evicted = Vec::new();
        let mut buried = Vec::new();
        let now_ms = Utc::now().timestamp_millis();
        if len + fresh > max_len {
            if mb.config.overflow == Overflow::Reject || fresh > max_len {
                return Err(StorageError::MailboxFull {
                    mailbox: mailbox.to_owned(),
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
                        buried.push(Buried {
                            seq,
                            reason: DeadReason::Evicted,
                            attempts,
                            failed_at_ms: now_ms,
                            last_error: "evicted by overflow = drop_oldest".into(),
                            record: record.clone(),
                        });
                    }
                    evicted.push(StoredRecord { seq, record });
                }
            }
        }
        mb.created_at.get_or_insert_with(Utc::now);
        let mut stored_keys = Vec::new();
        let mut expiring = Vec::new();
        for (slot, rec) in results.iter_mut().zip(records) {
            if slot.is_some() {
                continue;
            }
            mb.seq += 1;
            let seq = mb.seq;
            mb.ids.insert(rec.id.clone(), seq);
            mb.messages.insert(seq, rec.record);
            mb.ready.insert((rec.delivery.rank, seq));
            mb.dm.insert(seq, rec.delivery);
            if rec.delivery.require_ack && rec.delivery.expires_ms > 0 {
                expiring.push((rec.delivery.expires_ms, seq));
            }
            if let Some(k) = rec.idempotency {
                stored_keys.push(((mailbox.to_owned(), k), (rec.id, seq, now)));
            }
            *slot = Some(Appended::Stored { seq });
        }
        st.idempotency.extend(stored_keys);
        st.schedule.extend(
            expiring
                .into_iter()
                .map(|(due, seq)| (due, mailbox.to_owned(), seq)),
        );
        for b in buried {
            st.bury(mailbox, b);
        }
        Ok(AppendOutcome {
            results: results.into_iter().flatten().collect(),
            evicted,
        })
    }

    pub async fn range(
        &self,
        mailbox: &str,
        after: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let st = self.lock();
        let Some(mb) = st.mailboxes.get(mailbox) else {
            return Ok(Vec::new());
        };
        let end = before.unwrap_or(u64::MAX);
        if after.saturating_add(1) >= end {
            return Ok(Vec::new());
        }
        Ok(mb
            .messages
            .range(after.saturating_add(1)..end)
            .take(limit)
            .map(|(seq, record)| StoredRecord {
                seq: *seq,
                record: record.clone(),
            })
            .collect())
    }

    pub async fn read_state(&self, mailbox: &str, reader: &str) -> Result<ReadState, StorageError> {
        let st = self.lock();
        Ok(st
            .mailboxes
            .get(mailbox)
            .and_then(|m| m.reads.get(reader).cloned())
            .unwrap_or_default())
    }

    pub async fn mark_read(
        &self,
        mailbox: &str,
        reader: &str,
        mark: ReadMark,
    ) -> Result<u64, StorageError> {
        let mut st = self.lock();
        let mb = st.mailboxes.entry(mailbox.to_owned()).or_default();
        match mark {
            ReadMark::Ids(ids) => {
                let seqs = ids
                    .iter()
                    .map(|id| {
                        mb.ids
                            .get(id)
                            .copied()
                            .ok_or_else(|| StorageError::UnknownMessage(id.clone()))
                    })
                    .collect::<Result<Vec<u64>, _>>()?;
                let state = mb.reads.entry(reader.to_owned()).or_default();
                state
                    .marked
                    .extend(seqs.into_iter().filter(|s| *s > state.upto));
            }
            ReadMark::UpTo(seq) => {
                let state = mb.reads.entry(reader.to_owned()).or_default();
                state.upto = state.upto.max(seq.min(mb.seq));
                let upto = state.upto;
                state.marked.retain(|s| *s > upto);
            }
        }
        Ok(mb.unread(reader))
    }

    pub async fn stats(&self, mailbox: &str, reader: &str) -> Result<MailboxStats, StorageError> {
        let st = self.lock();
        Ok(st
            .mailboxes
            .get(mailbox)
            .map(|mb| MailboxStats {
                total: mb.messages.len() as u64,
                unread: mb.unread(reader),
                last_seq: mb.seq,
                created_at: mb.created_at,
                config: mb.config.clone(),
                pending_acks: (mb.flight.len() + mb.wait.len()) as u64,
            })
            .unwrap_or_default())
    }

    pub async fn configure(
        &self,
        mailbox: &str,
        config: &MailboxConfig,
    ) -> Result<bool, StorageError> {
        let mut st = self.lock();
        let mb = st.mailboxes.entry(mailbox.to_owned()).or_default();
        let created = mb.created_at.is_none();
        mb.created_at.get_or_insert_with(Utc::now);
        mb.config = config.clone();
        Ok(created)
    }

    pub async fn touch(&self, mailbox: &str) -> Result<(), StorageError> {
        let mut st = self.lock();
        st.mailboxes
            .entry(mailbox.to_owned())
            .or_default()
            .created_at
            .get_or_insert_with(Utc::now);
        Ok(())
    }

    pub async fn delete(&self, mailbox: &str) -> Result<bool, StorageError> {
        let mut st = self.lock();
        st.idempotency.retain(|(m, _), _| m != mailbox);
        let Some(mb) = st.mailboxes.get_mut(mailbox) else {
            return Ok(false);
        };
        // The seq counter survives, so cursors held by clients never point into a new history.
        let existed = mb.created_at.is_some();
        *mb = Mailbox {
            seq: mb.seq,
            ..Mailbox::default()
        };
        Ok(existed)
    }

    pub async fn known_agents(&self) -> Result<Vec<String>, StorageError> {
        let st = self.lock();
        let mut names: Vec<String> = st
            .mailboxes
            .iter()
            .filter(|(_, m)| m.created_at.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        Ok(names)
    }
}
