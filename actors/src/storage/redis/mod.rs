//! The Redis engine, on one Redis or on a Redis Cluster (`conn.rs`: one connection type for both;
//! pipelines that span slots go through `Conn::spread`/`Conn::ordered`). Every key name is in
//! `keys.rs`. Every key of one mailbox shares the hash tag `{<name>}`, so each mailbox's
//! multi-key updates run as one Lua script in one Redis Cluster slot.
//!
//! Layout (`P` = `redis.key_prefix`):
//! - `P:mb:{bob}:meta`   hash: `seq` (last assigned), `created_at` (ms), `max_len`, `overflow`, `retention_seconds`
//! - `P:mb:{bob}:msgs`   zset: score = seq, member = record (26-byte id + JSON or `z` + zstd)
//! - `P:mb:{bob}:ids`    hash: message id -> seq
//! - `P:mb:{bob}:upto`   hash: reader -> highest seq read in one sweep
//! - `P:mb:{bob}:rd:<reader>` set: seqs above `upto` marked read one by one
//! - `P:mb:{bob}:idem:<sender>:<key>` string `id:seq`, 24 h
//! - `P:mb:{bob}:ready`  zset: receivable now, score = priority rank * 1e13 + seq, member = seq
//! - `P:mb:{bob}:dm`     hash: seq -> `rank:ack:expires_ms:attempts` of every message not yet
//!   settled that awaits an ack or expires (one that does neither is unsettled while it is in
//!   `ready`)
//! - `P:mb:{bob}:att`    hash: seq -> delivery attempts made, only for `dm` entries written by
//!   earlier versions (three fields); read and dropped as those messages are delivered or settled
//! - `P:mb:{bob}:flight` zset: in flight, score = ack deadline (ms)
//! - `P:mb:{bob}:wait`   zset: awaiting redelivery, score = due time (ms)
//! - `P:mb:{bob}:dead`   hash: dead-letter outbox, `<seq>` -> `reason|attempts|failed_at|error`,
//!   `<seq>:r` -> record; emptied into the queue below
//! - `P:agents`          set: every agent that has a mailbox (broadcast targets)
//!
//! Admin keys (agents, audit trail, rate and quota counters): see `admin.rs`; batch intents:
//! `intents.rs`. Blobs (`P:blob:{<id>}:data`, `P:blob:{<id>}:meta`): see `blobs.rs`.
//!
//! Topic histories use the same stream layout under their own key space (`P:tp:{name}:meta`,
//! `:msgs`, `:ids`, `:idem:*`; `meta` holds `max_len` = retention_max_len, `overflow` =
//! `drop_oldest`, `retention_seconds`), so a topic is never a mailbox nor a known agent:
//! - `P:topics`          zset (all scores 0, ordered by name): every topic, for prefix listings
//! - `P:{subs}:all`      hash: durable subscription id -> JSON
//! - `P:{subs}:index`    hash: `<mailbox> <pattern>` -> id (one subscription per pair)
//! - `P:{subs}:version`  counter bumped on every subscription change (nodes poll it)
//!
//! Topic histories keep no delivery state: the append script is told so and never touches their
//! `ready`/`dm`/… keys.
//!
//! Global keys, written in a separate step that is safe to repeat (see `delivery.rs`):
//! - `P:retry`           zset: `<mailbox>\n<seq>` by due time (ms); never later than the truth
//! - `P:dlq:ids`         zset (score 0, by id): every dead letter; `P:dlq:by:<mailbox>` likewise
//! - `P:dlq:dl:<id>`     string: JSON header line, then the record

mod admin;
mod append;
mod blobs;
mod conn;
pub mod connect;
mod delivery;
mod dlq;
mod intents;
pub mod keys;
mod topics;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use redis::{Script, Value};

use conn::{Backend, Conn};
use keys::Keys;

use super::engine::Mailboxes;
use super::{
    AppendOutcome, MailboxStats, NewRecord, ReadMark, ReadState, StorageError, StoredRecord, Stream,
};
use crate::model::{MailboxConfig, Overflow};

/// Connection settings for the Redis engine (config `[redis]`).
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Seed nodes of a Redis Cluster (`redis.cluster_urls`); when set, `url` is not used.
    pub cluster_urls: Vec<String>,
    /// Password file and TLS trust applied to `url` (see [`connect`]).
    pub access: connect::RedisAccess,
    /// Most connections to a single Redis, split evenly among the threads that call storage
    /// (at least one each; see [`conn`]).
    pub pool_size: usize,
    /// Threads expected to call storage: the HTTP workers and the actor system's thread.
    pub threads: usize,
    pub key_prefix: String,
    /// How long one command may take before the call fails as unavailable.
    pub command_timeout: Duration,
}

struct Scripts {
    append: Script,
    mark_read: Script,
    stats: Script,
    trim: Script,
    sub_add: Script,
    sub_remove: Script,
    delivery: Script,
    schedule: Script,
    gcra: Script,
    quota: Script,
    blob_retain: Script,
}

/// Cloning is shallow: the pool and scripts are shared.
#[derive(Clone)]
pub struct RedisEngine {
    backend: Backend,
    keys: Keys,
    timeout: Duration,
    scripts: std::sync::Arc<Scripts>,
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("unexpected reply from Redis for {what}"))
}

impl RedisEngine {
    /// Builds the pool (or the cluster client). Connections are made lazily, so this succeeds
    /// while Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, StorageError> {
        Ok(Self {
            backend: Backend::connect(settings)?,
            keys: Keys::new(&settings.key_prefix),
            timeout: settings.command_timeout,
            scripts: std::sync::Arc::new(Scripts {
                append: Script::new(include_str!("../scripts/append.lua")),
                mark_read: Script::new(include_str!("../scripts/mark_read.lua")),
                stats: Script::new(include_str!("../scripts/stats.lua")),
                trim: Script::new(include_str!("../scripts/trim.lua")),
                sub_add: Script::new(include_str!("../scripts/sub_add.lua")),
                sub_remove: Script::new(include_str!("../scripts/sub_remove.lua")),
                delivery: Script::new(include_str!("../scripts/delivery.lua")),
                schedule: Script::new(include_str!("../scripts/schedule.lua")),
                gcra: Script::new(include_str!("../scripts/gcra.lua")),
                quota: Script::new(include_str!("../scripts/quota.lua")),
                blob_retain: Script::new(include_str!("../scripts/blob_retain.lua")),
            }),
        })
    }

    /// Whether this engine runs on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.backend.is_cluster()
    }

    async fn conn(&self) -> Result<Conn, StorageError> {
        self.backend.get().await
    }

    /// Runs one Redis call under the command timeout.
    async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, StorageError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(StorageError::Unavailable("redis command timed out".into())),
        }
    }

    async fn add_agent(&self, c: &mut Conn, mailbox: &str) -> Result<(), StorageError> {
        let _: i64 = self
            .timed(
                redis::cmd("SADD")
                    .arg(self.keys.agents())
                    .arg(mailbox)
                    .query_async(c),
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Mailboxes for RedisEngine {
    async fn ping(&self) -> Result<(), StorageError> {
        let mut c = self.conn().await?;
        let _: String = self.timed(redis::cmd("PING").query_async(&mut c)).await?;
        Ok(())
    }

    async fn append(
        &self,
        mailbox: &str,
        records: Vec<NewRecord>,
        default_max_len: u64,
    ) -> Result<AppendOutcome, StorageError> {
        self.append_stream(
            &Stream::Mailbox(mailbox.to_owned()),
            records,
            default_max_len,
            None,
        )
        .await
    }

    async fn append_many(
        &self,
        items: Vec<(String, Vec<NewRecord>)>,
        default_max_len: u64,
    ) -> Result<Vec<Result<AppendOutcome, StorageError>>, StorageError> {
        self.append_pipelined(items, default_max_len).await
    }

    async fn range(
        &self,
        stream: &Stream,
        after: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let max = before.map_or_else(|| "+inf".to_owned(), |b| format!("({b}"));
        let mut c = self.conn().await?;
        let raw: Vec<(Vec<u8>, f64)> = self
            .timed(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.stream(stream, "msgs"))
                    .arg(format!("({after}"))
                    .arg(max)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut c),
            )
            .await?;
        // Scores are integers below 2^53, so the float round-trip is exact.
        Ok(raw
            .into_iter()
            .map(|(record, seq)| StoredRecord {
                seq: seq as u64,
                record,
            })
            .collect())
    }

    async fn read_state(&self, mailbox: &str, reader: &str) -> Result<ReadState, StorageError> {
        let mut c = self.conn().await?;
        let (upto, marked): (Option<u64>, Vec<u64>) = self
            .timed(
                redis::pipe()
                    .cmd("HGET")
                    .arg(self.keys.mailbox(mailbox, "upto"))
                    .arg(reader)
                    .cmd("SMEMBERS")
                    .arg(self.keys.mailbox(mailbox, &format!("rd:{reader}")))
                    .query_async(&mut c),
            )
            .await?;
        Ok(ReadState {
            upto: upto.unwrap_or(0),
            marked: marked.into_iter().collect(),
        })
    }

    async fn mark_read(
        &self,
        mailbox: &str,
        reader: &str,
        mark: ReadMark,
    ) -> Result<u64, StorageError> {
        let mut inv = self
            .scripts
            .mark_read
            .key(self.keys.mailbox(mailbox, "meta"));
        inv.key(self.keys.mailbox(mailbox, "msgs"))
            .key(self.keys.mailbox(mailbox, "ids"))
            .key(self.keys.mailbox(mailbox, "upto"))
            .key(self.keys.mailbox(mailbox, &format!("rd:{reader}")))
            .arg(reader);
        match mark {
            ReadMark::Ids(ids) => {
                inv.arg("ids");
                for id in ids {
                    inv.arg(id);
                }
            }
            ReadMark::UpTo(seq) => {
                inv.arg("upto").arg(seq);
            }
        }
        let mut c = self.conn().await?;
        let reply: Vec<Value> = self.timed(inv.invoke_async(&mut c)).await?;
        match (reply.first().and_then(as_string).as_deref(), reply.get(1)) {
            (Some("ok"), Some(n)) => Ok(as_u64(n).unwrap_or_default()),
            (Some("unknown"), Some(id)) => Err(StorageError::UnknownMessage(
                as_string(id).unwrap_or_default(),
            )),
            _ => Err(corrupt("mark_read")),
        }
    }

    async fn stats(&self, mailbox: &str, reader: &str) -> Result<MailboxStats, StorageError> {
        let mut inv = self.scripts.stats.key(self.keys.mailbox(mailbox, "meta"));
        inv.key(self.keys.mailbox(mailbox, "msgs"))
            .key(self.keys.mailbox(mailbox, "upto"))
            .key(self.keys.mailbox(mailbox, &format!("rd:{reader}")))
            .key(self.keys.mailbox(mailbox, "flight"))
            .key(self.keys.mailbox(mailbox, "wait"))
            .arg(reader);
        let mut c = self.conn().await?;
        let r: Vec<Value> = self.timed(inv.invoke_async(&mut c)).await?;
        let num = |i: usize| r.get(i).and_then(as_u64);
        Ok(MailboxStats {
            total: num(0).unwrap_or_default(),
            unread: num(1).unwrap_or_default(),
            last_seq: num(2).unwrap_or_default(),
            created_at: num(3)
                .and_then(|ms| i64::try_from(ms).ok())
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
            config: MailboxConfig {
                max_len: num(4),
                overflow: match r.get(5).and_then(as_string).as_deref() {
                    Some("drop_oldest") => Overflow::DropOldest,
                    _ => Overflow::Reject,
                },
                retention_seconds: num(6),
            },
            pending_acks: num(7).unwrap_or_default(),
        })
    }

    async fn configure(&self, mailbox: &str, config: MailboxConfig) -> Result<bool, StorageError> {
        let meta = self.keys.mailbox(mailbox, "meta");
        let overflow = match config.overflow {
            Overflow::Reject => "reject",
            Overflow::DropOldest => "drop_oldest",
        };
        let p = settings_pipe(&meta, overflow, config.max_len, config.retention_seconds);
        let mut c = self.conn().await?;
        let (created,): (bool,) = self.timed(p.query_async(&mut c)).await?;
        self.add_agent(&mut c, mailbox).await?;
        Ok(created)
    }

    async fn touch(&self, mailbox: &str) -> Result<(), StorageError> {
        let mut c = self.conn().await?;
        let _: i64 = self
            .timed(
                redis::cmd("HSETNX")
                    .arg(self.keys.mailbox(mailbox, "meta"))
                    .arg("created_at")
                    .arg(Utc::now().timestamp_millis())
                    .query_async(&mut c),
            )
            .await?;
        self.add_agent(&mut c, mailbox).await
    }

    async fn delete(&self, mailbox: &str) -> Result<bool, StorageError> {
        let mut c = self.conn().await?;
        let readers: Vec<String> = self
            .timed(
                redis::cmd("HKEYS")
                    .arg(self.keys.mailbox(mailbox, "upto"))
                    .query_async(&mut c),
            )
            .await?;
        // The seq counter survives, so cursors held by clients never point into a new history.
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HDEL")
            .arg(self.keys.mailbox(mailbox, "meta"))
            .arg(&["created_at", "max_len", "overflow", "retention_seconds"]);
        let mut del = redis::cmd("UNLINK");
        for part in [
            "msgs", "ids", "upto", "ready", "dm", "att", "flight", "wait", "dead",
        ] {
            del.arg(self.keys.mailbox(mailbox, part));
        }
        for r in readers {
            del.arg(self.keys.mailbox(mailbox, &format!("rd:{r}")));
        }
        p.add_command(del);
        let (fields, n): (u64, u64) = self.timed(p.query_async(&mut c)).await?;
        let n = n + fields;
        let _: i64 = self
            .timed(
                redis::cmd("SREM")
                    .arg(self.keys.agents())
                    .arg(mailbox)
                    .query_async(&mut c),
            )
            .await?;
        Ok(n > 0)
    }

    async fn known_agents(&self) -> Result<Vec<String>, StorageError> {
        let mut c = self.conn().await?;
        let mut names: Vec<String> = self
            .timed(
                redis::cmd("SMEMBERS")
                    .arg(self.keys.agents())
                    .query_async(&mut c),
            )
            .await?;
        names.sort();
        Ok(names)
    }
}

/// One atomic pipeline that creates a stream's meta if needed (answering whether it was new)
/// and replaces its settings: shared by mailboxes and topic histories.
pub(super) fn settings_pipe(
    meta: &str,
    overflow: &str,
    max_len: Option<u64>,
    retention_seconds: Option<u64>,
) -> redis::Pipeline {
    let mut p = redis::pipe();
    p.atomic()
        .cmd("HSETNX")
        .arg(meta)
        .arg("created_at")
        .arg(Utc::now().timestamp_millis())
        .cmd("HSET")
        .arg(meta)
        .arg("overflow")
        .arg(overflow)
        .ignore()
        .cmd("HDEL")
        .arg(meta)
        .arg("max_len")
        .arg("retention_seconds")
        .ignore();
    if let Some(m) = max_len {
        p.cmd("HSET").arg(meta).arg("max_len").arg(m).ignore();
    }
    if let Some(r) = retention_seconds {
        p.cmd("HSET")
            .arg(meta)
            .arg("retention_seconds")
            .arg(r)
            .ignore();
    }
    p
}
