//! The in-memory engine: zero-dependency mode. Same behaviour as Redis, nothing kept across
//! restarts. One `std::sync::Mutex` over everything: critical sections are short and never await.
//! Delivery state (receive, acks, retry schedule, dead letters) is in `delivery.rs`.

mod admin;
mod append;
mod blobs;
mod delivery;

use append::append_to;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;

use super::delivery::DeliveryMeta;
use super::engine::{Intents, Mailboxes, Topics};
use super::{
    record_id, AppendOutcome, MailboxStats, NewRecord, ReadMark, ReadState, StorageError,
    StoredRecord, Stream, TopicAppend,
};
use crate::model::{is_under, MailboxConfig, Overflow, Subscription, TopicConfig, TopicStats};

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

/// (scope, key) -> (first id, its seq, when). The scope is a mailbox name or `topic:<name>`.
type Idempotency = HashMap<(String, String), (String, u64, Instant)>;

#[derive(Default)]
struct State {
    mailboxes: HashMap<String, Mailbox>,
    /// Topic histories: the same stream structure, a separate name space.
    topics: BTreeMap<String, Mailbox>,
    idempotency: Idempotency,
    subscriptions: BTreeMap<String, Subscription>,
    /// Bumped on every subscription change (nodes compare it to know when to reload).
    subscriptions_version: u64,
    /// The retry schedule: (due ms, mailbox, seq). Entries are hints, checked against the
    /// mailbox's state when they fall due.
    schedule: BTreeSet<(i64, String, u64)>,
    /// Dead letters by id (time-sortable), in the same stored form as the Redis engine's.
    dlq: BTreeMap<String, Vec<u8>>,
    /// Batch intents: id -> (stored at ms, body).
    intents: BTreeMap<String, (i64, Vec<u8>)>,
}

/// Cloning is shallow: every clone shares the same state.
#[derive(Clone, Default)]
pub struct MemoryEngine {
    state: Arc<Mutex<State>>,
    /// Agents, audit ring, rate buckets and quotas: apart from the message state, so a send's
    /// rate check never waits on the message lock.
    admin: Arc<admin::AdminState>,
    /// Blobs: apart too, so a large transfer never holds up messages.
    blobs: Arc<blobs::BlobState>,
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
}

#[async_trait]
impl Mailboxes for MemoryEngine {
    async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }

    async fn append(
        &self,
        mailbox: &str,
        records: Vec<NewRecord>,
        default_max_len: u64,
    ) -> Result<AppendOutcome, StorageError> {
        let mut guard = self.lock();
        guard.append_mailbox(mailbox, records, default_max_len)
    }

    async fn append_many(
        &self,
        items: Vec<(String, Vec<NewRecord>)>,
        default_max_len: u64,
    ) -> Result<Vec<Result<AppendOutcome, StorageError>>, StorageError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        Ok(items
            .into_iter()
            .map(|(mailbox, records)| {
                st.mailboxes
                    .entry(mailbox.clone())
                    .or_default()
                    .created_at
                    .get_or_insert_with(Utc::now);
                st.append_mailbox(&mailbox, records, default_max_len)
            })
            .collect())
    }

    async fn range(
        &self,
        stream: &Stream,
        after: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let st = self.lock();
        let found = match stream {
            Stream::Mailbox(name) => st.mailboxes.get(name),
            Stream::Topic(name) => st.topics.get(name),
        };
        let Some(mb) = found else {
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

    async fn read_state(&self, mailbox: &str, reader: &str) -> Result<ReadState, StorageError> {
        let st = self.lock();
        Ok(st
            .mailboxes
            .get(mailbox)
            .and_then(|m| m.reads.get(reader).cloned())
            .unwrap_or_default())
    }

    async fn mark_read(
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

    async fn stats(&self, mailbox: &str, reader: &str) -> Result<MailboxStats, StorageError> {
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

    async fn configure(&self, mailbox: &str, config: MailboxConfig) -> Result<bool, StorageError> {
        let mut st = self.lock();
        let mb = st.mailboxes.entry(mailbox.to_owned()).or_default();
        let created = mb.created_at.is_none();
        mb.created_at.get_or_insert_with(Utc::now);
        mb.config = config;
        Ok(created)
    }

    async fn touch(&self, mailbox: &str) -> Result<(), StorageError> {
        let mut st = self.lock();
        st.mailboxes
            .entry(mailbox.to_owned())
            .or_default()
            .created_at
            .get_or_insert_with(Utc::now);
        Ok(())
    }

    async fn delete(&self, mailbox: &str) -> Result<bool, StorageError> {
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

    async fn known_agents(&self) -> Result<Vec<String>, StorageError> {
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

#[async_trait]
impl Topics for MemoryEngine {
    async fn append_topic(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        opts: TopicAppend,
    ) -> Result<AppendOutcome, StorageError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if !opts.create && !st.topics.contains_key(topic) {
            return Err(StorageError::UnknownTopic(topic.to_owned()));
        }
        let tp = st
            .topics
            .entry(topic.to_owned())
            .or_insert_with(new_topic_stream);
        append_to(
            tp,
            &mut st.idempotency,
            &format!("topic:{topic}"),
            records,
            opts.default_max_len,
            false,
        )
        .map(|done| done.outcome)
    }

    async fn trim_topic(
        &self,
        topic: &str,
        max_len: Option<u64>,
        older_than_ms: Option<i64>,
    ) -> Result<u64, StorageError> {
        let mut st = self.lock();
        Ok(st
            .topics
            .get_mut(topic)
            .map_or(0, |tp| trim_stream(tp, max_len, older_than_ms)))
    }

    async fn configure_topic(
        &self,
        topic: &str,
        config: TopicConfig,
    ) -> Result<bool, StorageError> {
        let mut st = self.lock();
        let created = !st.topics.contains_key(topic);
        let tp = st
            .topics
            .entry(topic.to_owned())
            .or_insert_with(new_topic_stream);
        tp.config.max_len = config.retention_max_len;
        tp.config.retention_seconds = config.retention_seconds;
        // A lower limit applies now, not at the next publish.
        trim_stream(tp, config.retention_max_len, None);
        Ok(created)
    }

    async fn topic_stats(&self, topic: &str) -> Result<Option<TopicStats>, StorageError> {
        let st = self.lock();
        Ok(st.topics.get(topic).map(|tp| topic_stats(topic, tp)))
    }

    async fn delete_topic(&self, topic: &str) -> Result<bool, StorageError> {
        let mut st = self.lock();
        let scope = format!("topic:{topic}");
        st.idempotency.retain(|(s, _), _| *s != scope);
        Ok(st.topics.remove(topic).is_some())
    }

    async fn list_topics(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicStats>, StorageError> {
        use std::ops::Bound;
        let st = self.lock();
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_owned()),
            _ => Bound::Included(prefix.to_owned()),
        };
        Ok(st
            .topics
            .range((start, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter(|(name, _)| is_under(name, prefix))
            .take(limit)
            .map(|(name, tp)| topic_stats(name, tp))
            .collect())
    }

    async fn add_subscription(
        &self,
        sub: Subscription,
    ) -> Result<(Subscription, bool), StorageError> {
        let mut st = self.lock();
        if let Some(existing) = st
            .subscriptions
            .values()
            .find(|s| s.mailbox == sub.mailbox && s.pattern == sub.pattern)
        {
            return Ok((existing.clone(), false));
        }
        st.subscriptions.insert(sub.id.clone(), sub.clone());
        st.subscriptions_version += 1;
        Ok((sub, true))
    }

    async fn remove_subscription(&self, id: &str) -> Result<Option<Subscription>, StorageError> {
        let mut st = self.lock();
        let removed = st.subscriptions.remove(id);
        if removed.is_some() {
            st.subscriptions_version += 1;
        }
        Ok(removed)
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, StorageError> {
        Ok(self.lock().subscriptions.values().cloned().collect())
    }

    async fn subscriptions_version(&self) -> Result<u64, StorageError> {
        Ok(self.lock().subscriptions_version)
    }
}

/// A topic history: a stream that drops its oldest messages when full, never refuses.
fn new_topic_stream() -> Mailbox {
    Mailbox {
        created_at: Some(Utc::now()),
        config: MailboxConfig {
            overflow: Overflow::DropOldest,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Drops the oldest records while there are more than `max_len` or they were created (per
/// their ULID) before `older_than_ms`; answers how many went.
fn trim_stream(tp: &mut Mailbox, max_len: Option<u64>, older_than_ms: Option<i64>) -> u64 {
    let mut removed = 0;
    while let Some((_, record)) = tp.messages.first_key_value() {
        let too_many = max_len.is_some_and(|m| tp.messages.len() as u64 > m);
        let too_old = older_than_ms.is_some_and(|cutoff| {
            ulid::Ulid::from_string(record_id(record))
                .is_ok_and(|u| i64::try_from(u.timestamp_ms()).is_ok_and(|t| t < cutoff))
        });
        if !too_many && !too_old {
            break;
        }
        if let Some((_, record)) = tp.messages.pop_first() {
            tp.ids.remove(record_id(&record));
            removed += 1;
        }
    }
    removed
}

fn topic_stats(name: &str, tp: &Mailbox) -> TopicStats {
    TopicStats {
        name: name.to_owned(),
        total: tp.messages.len() as u64,
        last_seq: tp.seq,
        created_at: tp.created_at,
        config: TopicConfig {
            retention_max_len: tp.config.max_len,
            retention_seconds: tp.config.retention_seconds,
        },
    }
}

#[async_trait]
impl Intents for MemoryEngine {
    async fn intent_put(&self, id: &str, body: Vec<u8>) -> Result<(), StorageError> {
        self.lock()
            .intents
            .insert(id.to_owned(), (Utc::now().timestamp_millis(), body));
        Ok(())
    }

    async fn intent_delete(&self, id: &str) -> Result<bool, StorageError> {
        Ok(self.lock().intents.remove(id).is_some())
    }

    async fn intents_before(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let state = self.lock();
        let mut due: Vec<(i64, &String, &Vec<u8>)> = state
            .intents
            .iter()
            .filter(|(_, (at, _))| *at < before_ms)
            .map(|(id, (at, body))| (*at, id, body))
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit)
            .map(|(_, id, body)| (id.clone(), body.clone()))
            .collect())
    }
}
