//! Persistence. Two engines behind one enum: [`memory::MemoryEngine`] (zero-dependency mode,
//! nothing survives a restart) and [`redis::RedisEngine`] (production, the source of truth).
//! Both pass the same behaviour suite (`tests/behaviour.rs` runs it against each).
//!
//! The engine is only ever called by the [`actor::StorageActor`]; faces and other actors go
//! through its [`actor::StorageHandle`].

pub mod actor;
pub mod delivery;
pub mod events;
pub mod group;
pub mod memory;
pub mod redis;

use crate::model::{Envelope, MailboxConfig, Subscription, TopicConfig, TopicStats};

pub use crate::model::delivery::{
    DeadLetter, DeadPage, DeadQuery, DeadReason, DeliverySettings, MailboxStats, NackOutcome,
    ReadMark, ReadState, MAX_DEAD_PAGE,
};
pub use actor::{StorageActor, StorageHandle};
pub use delivery::{DeliveryMeta, DueReport, Handed};

/// Payloads whose stored form is over this many bytes are kept zstd-compressed.
pub const COMPRESS_OVER: usize = 4096;
/// Width of the message id that prefixes every stored record (a ULID string).
const ID_LEN: usize = 26;

/// A failure of the storage layer. `Unavailable` means the backend could not be reached or
/// answered with an error: callers answer 503, never 500.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("mailbox `{mailbox}` is full ({max_len} messages)")]
    MailboxFull { mailbox: String, max_len: u64 },
    #[error("message `{0}` not found")]
    UnknownMessage(String),
    /// A topic append that may not create the topic found none.
    #[error("topic `{0}` not found")]
    UnknownTopic(String),
    /// The message exists but no delivery of it awaits a settlement (already acked, consumed,
    /// dead-lettered, or not handed over yet).
    #[error("message `{id}` is not awaiting an ack: {why}")]
    NotPending { id: String, why: &'static str },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

impl From<::redis::RedisError> for StorageError {
    fn from(e: ::redis::RedisError) -> Self {
        StorageError::Unavailable(e.to_string())
    }
}

impl From<deadpool_redis::PoolError> for StorageError {
    fn from(e: deadpool_redis::PoolError) -> Self {
        StorageError::Unavailable(e.to_string())
    }
}

/// A stream of records: a mailbox or a topic's history. The two live in separate key spaces, so
/// a topic is never taken for a mailbox, nor counted as a known agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stream {
    Mailbox(String),
    Topic(String),
}

impl Stream {
    pub fn name(&self) -> &str {
        match self {
            Stream::Mailbox(n) | Stream::Topic(n) => n,
        }
    }
}

/// How an append to a topic history treats the topic.
#[derive(Debug, Clone, Copy)]
pub struct TopicAppend {
    /// Create the topic if it does not exist; otherwise a missing topic is `UnknownTopic`.
    pub create: bool,
    /// The history length a topic without its own `retention_max_len` keeps.
    pub default_max_len: u64,
}

/// One message to append. `record` is the encoded envelope (see [`encode`]).
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub id: String,
    pub record: Vec<u8>,
    /// `<sender>:<key>` when the send carried an idempotency key.
    pub idempotency: Option<String>,
    /// Priority, ack and expiry: what `receive` and the retry scheduler need.
    pub delivery: DeliveryMeta,
}

impl NewRecord {
    /// Encodes an envelope into a record to append.
    pub fn of(env: &Envelope, idempotency: Option<String>) -> Result<Self, StorageError> {
        Ok(Self {
            id: env.id.clone(),
            record: encode(env)?,
            idempotency,
            delivery: DeliveryMeta::of(env),
        })
    }
}

/// What happened to one appended record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now at this position.
    Stored { seq: u64 },
    /// The idempotency key was seen before: this is the first answer's message.
    Duplicate { id: String, seq: u64 },
}

/// The outcome of one atomic append.
#[derive(Debug, Clone, Default)]
pub struct AppendOutcome {
    pub results: Vec<Appended>,
    /// Records pushed out by `overflow = "drop_oldest"`, oldest first.
    pub evicted: Vec<StoredRecord>,
}

/// A record read back with its stream position.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub seq: u64,
    pub record: Vec<u8>,
}

impl StoredRecord {
    pub fn decode(&self) -> Result<Envelope, StorageError> {
        decode(&self.record, self.seq)
    }
}

/// Encodes an envelope for storage: the id, then JSON, or `z` + zstd(JSON) when large.
pub fn encode(env: &Envelope) -> Result<Vec<u8>, StorageError> {
    let json = serde_json::to_vec(env).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let mut out = Vec::with_capacity(ID_LEN + json.len().min(COMPRESS_OVER) + 1);
    out.extend_from_slice(env.id.as_bytes());
    if json.len() > COMPRESS_OVER {
        out.push(b'z');
        let packed =
            zstd::bulk::compress(&json, 3).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        out.extend_from_slice(&packed);
    } else {
        out.extend_from_slice(&json);
    }
    Ok(out)
}

/// Decodes a stored record and stamps its stream position.
pub fn decode(record: &[u8], seq: u64) -> Result<Envelope, StorageError> {
    let body = record
        .get(ID_LEN..)
        .ok_or_else(|| StorageError::Corrupt("record shorter than its id".into()))?;
    let mut env: Envelope = match body.first() {
        Some(b'z') => {
            let json = zstd::stream::decode_all(&body[1..])
                .map_err(|e| StorageError::Corrupt(e.to_string()))?;
            serde_json::from_slice(&json)
        }
        _ => serde_json::from_slice(body),
    }
    .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    env.seq = seq.to_string();
    Ok(env)
}

/// The message id a record starts with.
pub fn record_id(record: &[u8]) -> &str {
    record
        .get(..ID_LEN)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default()
}

/// The configured engine. An enum rather than a trait object: two engines, static dispatch, and
/// `async fn` without boxing.
#[derive(Clone)]
pub enum Engine {
    Memory(memory::MemoryEngine),
    Redis(redis::RedisEngine),
}

macro_rules! dispatch {
    ($self:ident, $e:ident => $call:expr) => {
        match $self {
            Engine::Memory($e) => $call.await,
            Engine::Redis($e) => $call.await,
        }
    };
}

impl Engine {
    pub fn kind(&self) -> &'static str {
        match self {
            Engine::Memory(_) => "memory",
            Engine::Redis(_) => "redis",
        }
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        dispatch!(self, e => e.ping())
    }

    pub async fn append(
        &self,
        mailbox: &str,
        records: Vec<NewRecord>,
        default_max_len: u64,
    ) -> Result<AppendOutcome, StorageError> {
        dispatch!(self, e => e.append(mailbox, records, default_max_len))
    }

    /// Appends to many mailboxes (a fan-out) in as few round trips as the engine allows, and
    /// records their agents as known. Each mailbox's append is atomic on its own; one result
    /// per item, in order.
    pub async fn append_many(
        &self,
        items: Vec<(String, Vec<NewRecord>)>,
        default_max_len: u64,
    ) -> Result<Vec<Result<AppendOutcome, StorageError>>, StorageError> {
        dispatch!(self, e => e.append_many(items, default_max_len))
    }

    /// Records of a mailbox or topic history with `after < seq < before`, ascending, at most
    /// `limit`.
    pub async fn range(
        &self,
        stream: &Stream,
        after: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        dispatch!(self, e => e.range(stream, after, before, limit))
    }

    pub async fn read_state(&self, mailbox: &str, reader: &str) -> Result<ReadState, StorageError> {
        dispatch!(self, e => e.read_state(mailbox, reader))
    }

    /// Marks messages read for `reader` and answers the new unread count.
    pub async fn mark_read(
        &self,
        mailbox: &str,
        reader: &str,
        mark: ReadMark,
    ) -> Result<u64, StorageError> {
        dispatch!(self, e => e.mark_read(mailbox, reader, mark))
    }

    pub async fn stats(&self, mailbox: &str, reader: &str) -> Result<MailboxStats, StorageError> {
        dispatch!(self, e => e.stats(mailbox, reader))
    }

    /// Creates the mailbox if needed and stores its settings; answers whether it was new.
    pub async fn configure(
        &self,
        mailbox: &str,
        config: &MailboxConfig,
    ) -> Result<bool, StorageError> {
        dispatch!(self, e => e.configure(mailbox, config))
    }

    /// Records that an agent exists (first connection, first message): it has a mailbox.
    pub async fn touch(&self, mailbox: &str) -> Result<(), StorageError> {
        dispatch!(self, e => e.touch(mailbox))
    }

    /// Deletes the mailbox with its messages and read state; answers whether it existed.
    pub async fn delete(&self, mailbox: &str) -> Result<bool, StorageError> {
        dispatch!(self, e => e.delete(mailbox))
    }

    pub async fn known_agents(&self) -> Result<Vec<String>, StorageError> {
        dispatch!(self, e => e.known_agents())
    }

    /// Appends to a topic's history, dropping its oldest messages past its length limit.
    pub async fn append_topic(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        opts: TopicAppend,
    ) -> Result<AppendOutcome, StorageError> {
        dispatch!(self, e => e.append_topic(topic, records, opts))
    }

    /// Drops a topic's oldest messages while it holds more than `max_len` or they were
    /// created before `older_than_ms`; answers how many went.
    pub async fn trim_topic(
        &self,
        topic: &str,
        max_len: Option<u64>,
        older_than_ms: Option<i64>,
    ) -> Result<u64, StorageError> {
        dispatch!(self, e => e.trim_topic(topic, max_len, older_than_ms))
    }

    /// Creates the topic if needed and stores its settings; answers whether it was new.
    pub async fn configure_topic(
        &self,
        topic: &str,
        config: &TopicConfig,
    ) -> Result<bool, StorageError> {
        dispatch!(self, e => e.configure_topic(topic, config))
    }

    /// Counts and settings of a topic; `None` if it does not exist.
    pub async fn topic_stats(&self, topic: &str) -> Result<Option<TopicStats>, StorageError> {
        dispatch!(self, e => e.topic_stats(topic))
    }

    /// Deletes a topic and its history; answers whether it existed.
    pub async fn delete_topic(&self, topic: &str) -> Result<bool, StorageError> {
        dispatch!(self, e => e.delete_topic(topic))
    }

    /// Topics at or under `prefix` (by segment), by name, after `after`, at most `limit`.
    pub async fn list_topics(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicStats>, StorageError> {
        dispatch!(self, e => e.list_topics(prefix, after, limit))
    }

    /// Stores a durable subscription unless one with the same pattern and mailbox exists;
    /// answers the stored one and whether it is new.
    pub async fn add_subscription(
        &self,
        sub: &Subscription,
    ) -> Result<(Subscription, bool), StorageError> {
        dispatch!(self, e => e.add_subscription(sub))
    }

    /// Removes a durable subscription; answers it if it existed.
    pub async fn remove_subscription(
        &self,
        id: &str,
    ) -> Result<Option<Subscription>, StorageError> {
        dispatch!(self, e => e.remove_subscription(id))
    }

    /// Every durable subscription.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, StorageError> {
        dispatch!(self, e => e.subscriptions())
    }

    /// A number that changes whenever a subscription is added or removed (on any node).
    pub async fn subscriptions_version(&self) -> Result<u64, StorageError> {
        dispatch!(self, e => e.subscriptions_version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SendRequest;
    use chrono::Utc;

    fn env(payload: serde_json::Value) -> Envelope {
        let req = SendRequest {
            to: "mailbox:b".into(),
            payload: Some(payload),
            ..Default::default()
        };
        req.into_envelope("a", crate::model::new_id(), Utc::now())
    }

    #[test]
    fn small_and_large_records_round_trip() {
        for payload in [
            serde_json::json!("hi"),
            serde_json::json!("x".repeat(100_000)),
        ] {
            let e = env(payload);
            let rec = encode(&e).expect("encodes");
            assert_eq!(record_id(&rec), e.id);
            let back = decode(&rec, 7).expect("decodes");
            assert_eq!(back.seq, "7");
            assert_eq!(back.payload, e.payload);
        }
        let big = encode(&env(serde_json::json!("x".repeat(100_000)))).expect("encodes");
        assert!(big.len() < 10_000, "large payloads are compressed");
    }
}
