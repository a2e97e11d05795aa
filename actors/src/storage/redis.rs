//! The Redis engine. Every key of one mailbox shares the hash tag `{<name>}`, so each mailbox's
//! multi-key updates run as one Lua script in one Redis Cluster slot.
//!
//! Layout (`P` = `redis.key_prefix`):
//! - `P:mb:{bob}:meta`   hash: `seq` (last assigned), `created_at` (ms), `max_len`, `overflow`, `retention_seconds`
//! - `P:mb:{bob}:msgs`   zset: score = seq, member = record (26-byte id + JSON or `z` + zstd)
//! - `P:mb:{bob}:ids`    hash: message id -> seq
//! - `P:mb:{bob}:upto`   hash: reader -> highest seq read in one sweep
//! - `P:mb:{bob}:rd:<reader>` set: seqs above `upto` marked read one by one
//! - `P:mb:{bob}:idem:<sender>:<key>` string `id:seq`, 24 h
//! - `P:agents`          set: every agent that has a mailbox (broadcast targets)
//!
//! Topic histories use the same stream layout under their own key space (`P:tp:{name}:meta`,
//! `:msgs`, `:ids`, `:idem:*`; `meta` holds `max_len` = retention_max_len, `overflow` =
//! `drop_oldest`, `retention_seconds`), so a topic is never a mailbox nor a known agent:
//! - `P:topics`          zset (all scores 0, ordered by name): every topic, for prefix listings
//! - `P:{subs}:all`      hash: durable subscription id -> JSON
//! - `P:{subs}:index`    hash: `<mailbox> <pattern>` -> id (one subscription per pair)
//! - `P:{subs}:version`  counter bumped on every subscription change (nodes poll it)

use std::time::Duration;

use chrono::{TimeZone, Utc};
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use redis::{Script, Value};

mod topics;

use super::{
    AppendOutcome, Appended, MailboxStats, NewRecord, ReadMark, ReadState, StorageError,
    StoredRecord, Stream,
};
use crate::model::{MailboxConfig, Overflow};

/// Connection settings for the Redis engine (config `[redis]`).
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    pub pool_size: usize,
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
}

/// Cloning is shallow: the pool and scripts are shared.
#[derive(Clone)]
pub struct RedisEngine {
    pool: Pool,
    prefix: String,
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

/// Reads the append script's reply (see `scripts/append.lua`).
fn parse_append(stream: &Stream, reply: Value) -> Result<AppendOutcome, StorageError> {
    let Value::Array(parts) = reply else {
        return Err(corrupt("append"));
    };
    if let Some(Value::BulkString(tag)) = parts.first() {
        if tag == b"full" {
            return Err(StorageError::MailboxFull {
                mailbox: stream.name().to_owned(),
                max_len: parts.get(1).and_then(as_u64).unwrap_or_default(),
            });
        }
        if tag == b"missing" {
            return Err(StorageError::UnknownTopic(stream.name().to_owned()));
        }
    }
    let (Some(Value::Array(results)), Some(Value::Array(evicted))) = (parts.first(), parts.get(1))
    else {
        return Err(corrupt("append"));
    };
    let mut out = AppendOutcome::default();
    for r in results {
        let Value::Array(r) = r else {
            return Err(corrupt("append"));
        };
        let kind = r.first().and_then(as_u64);
        let seq = r.get(1).and_then(as_u64).ok_or_else(|| corrupt("append"))?;
        out.results
            .push(match (kind, r.get(2).and_then(as_string)) {
                (Some(1), Some(id)) => Appended::Duplicate { id, seq },
                _ => Appended::Stored { seq },
            });
    }
    for pair in evicted.chunks(2) {
        if let [seq, Value::BulkString(record)] = pair {
            let seq = as_u64(seq).ok_or_else(|| corrupt("append"))?;
            out.evicted.push(StoredRecord {
                seq,
                record: record.clone(),
            });
        }
    }
    Ok(out)
}

impl RedisEngine {
    /// Builds the pool. Connections are made lazily, so this succeeds while Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, StorageError> {
        let mut cfg = deadpool_redis::Config::from_url(settings.url.clone());
        let mut pool_cfg = PoolConfig::new(settings.pool_size.max(1));
        pool_cfg.timeouts = Timeouts {
            wait: Some(settings.command_timeout),
            create: Some(settings.command_timeout),
            recycle: Some(settings.command_timeout),
        };
        cfg.pool = Some(pool_cfg);
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| StorageError::Unavailable(format!("bad redis config: {e}")))?;
        Ok(Self {
            pool,
            prefix: settings.key_prefix.clone(),
            timeout: settings.command_timeout,
            scripts: std::sync::Arc::new(Scripts {
                append: Script::new(include_str!("scripts/append.lua")),
                mark_read: Script::new(include_str!("scripts/mark_read.lua")),
                stats: Script::new(include_str!("scripts/stats.lua")),
                trim: Script::new(include_str!("scripts/trim.lua")),
                sub_add: Script::new(include_str!("scripts/sub_add.lua")),
                sub_remove: Script::new(include_str!("scripts/sub_remove.lua")),
            }),
        })
    }

    fn key(&self, mailbox: &str, part: &str) -> String {
        format!("{}:mb:{{{mailbox}}}:{part}", self.prefix)
    }

    /// A key of a mailbox or a topic history.
    fn stream_key(&self, stream: &Stream, part: &str) -> String {
        match stream {
            Stream::Mailbox(name) => self.key(name, part),
            Stream::Topic(name) => format!("{}:tp:{{{name}}}:{part}", self.prefix),
        }
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StorageError> {
        Ok(self.pool.get().await?)
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

    pub async fn ping(&self) -> Result<(), StorageError> {
        let mut c = self.conn().await?;
        let _: String = self.timed(redis::cmd("PING").query_async(&mut c)).await?;
        Ok(())
    }

    pub async fn append(
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

    /// Keys and arguments of the append script on one stream. `topic` is `Some(must_exist)`
    /// for topic histories (they drop their oldest messages when full, and may be required to
    /// exist already).
    fn append_parts(
        &self,
        stream: &Stream,
        records: &[NewRecord],
        default_max_len: u64,
        topic: Option<bool>,
    ) -> (Vec<String>, Vec<Vec<u8>>) {
        let mut keys = vec![
            self.stream_key(stream, "meta"),
            self.stream_key(stream, "msgs"),
            self.stream_key(stream, "ids"),
        ];
        let mut args: Vec<Vec<u8>> = vec![
            default_max_len.to_string().into_bytes(),
            Utc::now().timestamp_millis().to_string().into_bytes(),
            records.len().to_string().into_bytes(),
        ];
        for r in records {
            args.push(r.id.clone().into_bytes());
            args.push(r.record.clone());
            match &r.idempotency {
                Some(k) => {
                    keys.push(self.stream_key(stream, &format!("idem:{k}")));
                    args.push(keys.len().to_string().into_bytes());
                }
                None => args.push(b"0".to_vec()),
            }
        }
        if let Some(must_exist) = topic {
            args.push(b"drop_oldest".to_vec());
            args.push(if must_exist {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            });
        }
        (keys, args)
    }

    /// The append script on one stream (see [`Self::append_parts`]).
    async fn append_stream(
        &self,
        stream: &Stream,
        records: Vec<NewRecord>,
        default_max_len: u64,
        topic: Option<bool>,
    ) -> Result<AppendOutcome, StorageError> {
        let (keys, args) = self.append_parts(stream, &records, default_max_len, topic);
        let mut inv = self.scripts.append.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let mut c = self.conn().await?;
        let reply: Value = self.timed(inv.invoke_async(&mut c)).await?;
        parse_append(stream, reply)
    }

    /// Appends to many mailboxes in one round trip (a pipeline of append scripts) and records
    /// their agents as known. Each mailbox's append is atomic on its own; answers one result
    /// per item, in order.
    pub async fn append_many(
        &self,
        items: Vec<(String, Vec<NewRecord>)>,
        default_max_len: u64,
    ) -> Result<Vec<Result<AppendOutcome, StorageError>>, StorageError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let streams: Vec<Stream> = items
            .iter()
            .map(|(m, _)| Stream::Mailbox(m.clone()))
            .collect();
        let mut p = redis::pipe();
        p.ignore_errors();
        for (stream, (_, records)) in streams.iter().zip(&items) {
            let (keys, args) = self.append_parts(stream, records, default_max_len, None);
            p.cmd("EVALSHA")
                .arg(self.scripts.append.get_hash())
                .arg(keys.len())
                .arg(keys)
                .arg(args);
        }
        p.cmd("SADD").arg(format!("{}:agents", self.prefix));
        for (m, _) in &items {
            p.arg(m);
        }
        let mut c = self.conn().await?;
        let mut replies: Vec<redis::RedisResult<Value>> = self.timed(p.query_async(&mut c)).await?;
        let no_script = replies.iter().any(|r| {
            r.as_ref().is_err_and(|e| {
                e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
            })
        });
        if no_script {
            // Redis lost its scripts (restart, SCRIPT FLUSH): no append ran. Load, go again.
            let _: String = self
                .timed(self.scripts.append.prepare_invoke().load_async(&mut c))
                .await?;
            replies = self.timed(p.query_async(&mut c)).await?;
        }
        Ok(streams
            .iter()
            .zip(replies)
            .map(|(stream, r)| match r {
                Ok(v) => parse_append(stream, v),
                Err(e) => Err(StorageError::from(e)),
            })
            .collect())
    }

    pub async fn range(
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
                    .arg(self.stream_key(stream, "msgs"))
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

    pub async fn read_state(&self, mailbox: &str, reader: &str) -> Result<ReadState, StorageError> {
        let mut c = self.conn().await?;
        let (upto, marked): (Option<u64>, Vec<u64>) = self
            .timed(
                redis::pipe()
                    .cmd("HGET")
                    .arg(self.key(mailbox, "upto"))
                    .arg(reader)
                    .cmd("SMEMBERS")
                    .arg(self.key(mailbox, &format!("rd:{reader}")))
                    .query_async(&mut c),
            )
            .await?;
        Ok(ReadState {
            upto: upto.unwrap_or(0),
            marked: marked.into_iter().collect(),
        })
    }

    pub async fn mark_read(
        &self,
        mailbox: &str,
        reader: &str,
        mark: ReadMark,
    ) -> Result<u64, StorageError> {
        let mut inv = self.scripts.mark_read.key(self.key(mailbox, "meta"));
        inv.key(self.key(mailbox, "msgs"))
            .key(self.key(mailbox, "ids"))
            .key(self.key(mailbox, "upto"))
            .key(self.key(mailbox, &format!("rd:{reader}")))
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

    pub async fn stats(&self, mailbox: &str, reader: &str) -> Result<MailboxStats, StorageError> {
        let mut inv = self.scripts.stats.key(self.key(mailbox, "meta"));
        inv.key(self.key(mailbox, "msgs"))
            .key(self.key(mailbox, "upto"))
            .key(self.key(mailbox, &format!("rd:{reader}")))
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
        })
    }

    pub async fn configure(
        &self,
        mailbox: &str,
        config: &MailboxConfig,
    ) -> Result<bool, StorageError> {
        let meta = self.key(mailbox, "meta");
        let overflow = match config.overflow {
            Overflow::Reject => "reject",
            Overflow::DropOldest => "drop_oldest",
        };
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HSETNX")
            .arg(&meta)
            .arg("created_at")
            .arg(Utc::now().timestamp_millis())
            .cmd("HSET")
            .arg(&meta)
            .arg("overflow")
            .arg(overflow)
            .ignore()
            .cmd("HDEL")
            .arg(&meta)
            .arg("max_len")
            .arg("retention_seconds")
            .ignore();
        if let Some(m) = config.max_len {
            p.cmd("HSET").arg(&meta).arg("max_len").arg(m).ignore();
        }
        if let Some(r) = config.retention_seconds {
            p.cmd("HSET")
                .arg(&meta)
                .arg("retention_seconds")
                .arg(r)
                .ignore();
        }
        let mut c = self.conn().await?;
        let (created,): (bool,) = self.timed(p.query_async(&mut c)).await?;
        self.add_agent(&mut c, mailbox).await?;
        Ok(created)
    }

    async fn add_agent(
        &self,
        c: &mut deadpool_redis::Connection,
        mailbox: &str,
    ) -> Result<(), StorageError> {
        let _: i64 = self
            .timed(
                redis::cmd("SADD")
                    .arg(format!("{}:agents", self.prefix))
                    .arg(mailbox)
                    .query_async(c),
            )
            .await?;
        Ok(())
    }

    pub async fn touch(&self, mailbox: &str) -> Result<(), StorageError> {
        let mut c = self.conn().await?;
        let _: i64 = self
            .timed(
                redis::cmd("HSETNX")
                    .arg(self.key(mailbox, "meta"))
                    .arg("created_at")
                    .arg(Utc::now().timestamp_millis())
                    .query_async(&mut c),
            )
            .await?;
        self.add_agent(&mut c, mailbox).await
    }

    pub async fn delete(&self, mailbox: &str) -> Result<bool, StorageError> {
        let mut c = self.conn().await?;
        let readers: Vec<String> = self
            .timed(
                redis::cmd("HKEYS")
                    .arg(self.key(mailbox, "upto"))
                    .query_async(&mut c),
            )
            .await?;
        let mut del = redis::cmd("DEL");
        for part in ["meta", "msgs", "ids", "upto"] {
            del.arg(self.key(mailbox, part));
        }
        for r in readers {
            del.arg(self.key(mailbox, &format!("rd:{r}")));
        }
        let n: u64 = self.timed(del.query_async(&mut c)).await?;
        let _: i64 = self
            .timed(
                redis::cmd("SREM")
                    .arg(format!("{}:agents", self.prefix))
                    .arg(mailbox)
                    .query_async(&mut c),
            )
            .await?;
        Ok(n > 0)
    }

    pub async fn known_agents(&self) -> Result<Vec<String>, StorageError> {
        let mut c = self.conn().await?;
        let mut names: Vec<String> = self
            .timed(
                redis::cmd("SMEMBERS")
                    .arg(format!("{}:agents", self.prefix))
                    .query_async(&mut c),
            )
            .await?;
        names.sort();
        Ok(names)
    }
}
