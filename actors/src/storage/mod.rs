//! Persistence. Two engines: [`memory::MemoryEngine`] (zero-dependency mode, nothing survives a
//! restart) and [`redis::RedisEngine`] (production, the source of truth). Both pass the same
//! behaviour suite (`tests/behaviour.rs` runs it against each).
//!
//! Every operation is declared once, in the table in [`engine`]: it yields the engine trait
//! ([`StorageEngine`], in six parts by concern) that each engine implements, and the method of
//! the same name on [`StorageHandle`]. [`Engine`] is the configured one and derefs to the trait.
//!
//! The engine is only ever called by the [`actor::StorageActor`] (one generic message for every
//! operation, wrapped in the circuit breaker); faces and other actors go through its
//! [`actor::StorageHandle`]. Adding an operation is a line in the table and an implementation
//! per engine; the actor and the handle do not change.

pub mod actor;
pub mod cipher;
pub mod delivery;
pub mod engine;
pub mod events;
pub mod group;
pub mod memory;
pub mod redis;

use std::ops::Deref;
use std::sync::Arc;

use crate::model::{Envelope, StoredEnvelope};

pub use crate::model::delivery::{
    DeadLetter, DeadPage, DeadQuery, DeadReason, DeliverySettings, MailboxStats, NackOutcome,
    ReadMark, ReadState, MAX_DEAD_PAGE,
};
pub use actor::{StorageActor, StorageHandle};
pub use delivery::{DeliveryMeta, DueReport, Handed};
pub use engine::{Admin, Blobs, DeadLetters, Delivery, Mailboxes, StorageEngine, Topics};

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
    /// The record is encrypted under a key this node does not have (see [`cipher`]).
    #[error("the message is encrypted with key `{key_id}`, which is not among this node's storage encryption keys")]
    KeyMissing { key_id: String },
}

impl From<::redis::RedisError> for StorageError {
    fn from(e: ::redis::RedisError) -> Self {
        if redis::connect::is_refusal(&e) {
            StorageError::Unavailable(redis::connect::refusal_reason(&e))
        } else {
            StorageError::Unavailable(e.to_string())
        }
    }
}

impl From<deadpool_redis::PoolError> for StorageError {
    fn from(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Backend(e) => e.into(),
            e => StorageError::Unavailable(e.to_string()),
        }
    }
}

impl StorageError {
    /// Redis refused the broker (wrong password, missing ACL permission, untrusted
    /// certificate): not an outage that passes by itself, a configuration to fix.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StorageError::Unavailable(m) if m.contains(redis::connect::REFUSED))
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
    /// The idempotency key, or the message id, was seen before: this is the first answer's
    /// message.
    Duplicate { id: String, seq: u64 },
    /// Storage could not take it now: kept in the node's spool, to be stored in order when it
    /// can (see [`crate::spool`]). `id` is the message's final id.
    Spooled { id: String },
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

/// Encodes an envelope for storage: the id, then JSON, or `z` + zstd(JSON) when large; with
/// encryption at rest on, that body sealed (see [`cipher`]).
pub fn encode(env: &Envelope) -> Result<Vec<u8>, StorageError> {
    let json = serde_json::to_vec(&StoredEnvelope::from(env))
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let body = if json.len() > COMPRESS_OVER {
        let mut z = Vec::with_capacity(json.len() / 2);
        z.push(b'z');
        z.extend_from_slice(
            &zstd::bulk::compress(&json, 3).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        );
        z
    } else {
        json
    };
    let ring = cipher::current();
    let mut out = Vec::with_capacity(ID_LEN + body.len() + cipher::OVERHEAD);
    out.extend_from_slice(env.id.as_bytes());
    match ring {
        Some(ring) => ring.seal_into(env.id.as_bytes(), &body, &mut out)?,
        None => out.extend_from_slice(&body),
    }
    Ok(out)
}

/// Decodes a stored record (opening it if sealed) and stamps its stream position.
pub fn decode(record: &[u8], seq: u64) -> Result<Envelope, StorageError> {
    let (id, body) = match (record.get(..ID_LEN), record.get(ID_LEN..)) {
        (Some(id), Some(body)) => (id, body),
        _ => return Err(StorageError::Corrupt("record shorter than its id".into())),
    };
    let opened;
    let body = if body.first() == Some(&cipher::SEALED) {
        opened = cipher::open(id, body)?;
        opened.as_slice()
    } else {
        body
    };
    let mut env: Envelope = match body.first() {
        Some(b'z') => {
            let json = zstd::stream::decode_all(&body[1..])
                .map_err(|e| StorageError::Corrupt(e.to_string()))?;
            serde_json::from_slice(&json)
        }
        _ => serde_json::from_slice(body),
    }
    .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    if env.id.is_empty() {
        env.id = String::from_utf8_lossy(id).into_owned();
    }
    env.restore_to();
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

/// The configured engine, as chosen at start. Every operation is a method of
/// [`StorageEngine`], which this derefs to; the storage actor holds it as
/// `Arc<dyn StorageEngine>` (see [`Engine::shared`]).
#[derive(Clone)]
pub enum Engine {
    Memory(memory::MemoryEngine),
    Redis(redis::RedisEngine),
}

impl Engine {
    pub fn kind(&self) -> &'static str {
        match self {
            Engine::Memory(_) => "memory",
            Engine::Redis(_) => "redis",
        }
    }

    /// The engine behind a shared pointer, for calls that outlive the caller's borrow.
    pub fn shared(self) -> Arc<dyn StorageEngine> {
        match self {
            Engine::Memory(e) => Arc::new(e),
            Engine::Redis(e) => Arc::new(e),
        }
    }
}

impl Deref for Engine {
    type Target = dyn StorageEngine;

    fn deref(&self) -> &Self::Target {
        match self {
            Engine::Memory(e) => e,
            Engine::Redis(e) => e,
        }
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
            payload: Some(payload.into()),
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

    #[test]
    fn records_leave_out_what_reading_back_restores_and_read_back_whole() {
        let mut e = env(serde_json::json!({"n": 1.50}));
        e.seq = "3".into();
        e.mailbox = Some("b".into());
        let rec = encode(&e).expect("encodes");
        let json = std::str::from_utf8(&rec[ID_LEN..]).expect("utf-8");
        for absent in [
            "\"id\"",
            "\"seq\"",
            "null",
            "\"tags\"",
            "\"metadata\"",
            "\"to\"",
            "\"content_type\"",
            "\"priority\"",
            "\"require_ack\"",
        ] {
            assert!(!json.contains(absent), "{absent} in {json}");
        }
        assert_eq!(decode(&rec, 3).expect("decodes"), e);
        // Fields that differ from what reading back would assume are kept.
        let mut other = e.clone();
        other.to = "topic:news".into();
        other.content_type = "text/plain".into();
        other.priority = crate::model::Priority::Urgent;
        other.require_ack = true;
        let rec = encode(&other).expect("encodes");
        assert_eq!(decode(&rec, 3).expect("decodes"), other);
        // A record written in the full API form (before this layout) still reads back.
        let mut old = e.id.clone().into_bytes();
        old.extend(serde_json::to_vec(&e).expect("json"));
        assert_eq!(decode(&old, 3).expect("decodes"), e);
    }
}
