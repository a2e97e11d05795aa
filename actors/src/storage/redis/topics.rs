//! Topic histories, the topic list and durable subscriptions on Redis (layout: see the parent).

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use redis::Value;

use super::{as_u64, corrupt, RedisEngine};
use crate::model::{is_under, Subscription, TopicConfig, TopicStats};
use crate::storage::engine::Topics;
use crate::storage::{AppendOutcome, NewRecord, StorageError, Stream, TopicAppend};

/// Most records one trim call removes (the next periodic pass goes on).
const TRIM_BUDGET: u64 = 10_000;
/// Names read per round while listing topics under a prefix.
const LIST_CHUNK: usize = 200;

impl RedisEngine {
    /// Stats of several topics in one round trip; topics without metadata are left out.
    async fn stats_of(&self, names: &[String]) -> Result<Vec<TopicStats>, StorageError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmds = Vec::with_capacity(names.len() * 2);
        for name in names {
            let stream = Stream::Topic(name.clone());
            let meta = self.keys.stream(&stream, "meta");
            let mut hmget = redis::cmd("HMGET");
            hmget
                .arg(&meta)
                .arg("seq")
                .arg("created_at")
                .arg("max_len")
                .arg("retention_seconds");
            let mut zcard = redis::cmd("ZCARD");
            zcard.arg(self.keys.stream(&stream, "msgs"));
            cmds.push((meta.clone(), hmget));
            cmds.push((meta, zcard));
        }
        let mut c = self.conn().await?;
        let replies = self.timed(c.spread_all(cmds)).await?;
        let mut out = Vec::with_capacity(names.len());
        for (name, pair) in names.iter().zip(replies.chunks(2)) {
            let [Value::Array(meta), total] = pair else {
                return Err(corrupt("topic stats"));
            };
            let num = |i: usize| meta.get(i).and_then(as_u64);
            let Some(created_ms) = num(1) else {
                continue;
            };
            out.push(TopicStats {
                name: name.clone(),
                total: as_u64(total).unwrap_or_default(),
                last_seq: num(0).unwrap_or_default(),
                created_at: i64::try_from(created_ms)
                    .ok()
                    .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
                config: TopicConfig {
                    retention_max_len: num(2),
                    retention_seconds: num(3),
                },
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl Topics for RedisEngine {
    async fn append_topic(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        opts: TopicAppend,
    ) -> Result<AppendOutcome, StorageError> {
        if opts.create {
            // Listed first, so a topic with messages is always listed; listing an empty topic
            // for a moment (if the append then fails) is harmless.
            let mut c = self.conn().await?;
            let _: i64 = self
                .timed(
                    redis::cmd("ZADD")
                        .arg(self.keys.topics())
                        .arg("NX")
                        .arg(0)
                        .arg(topic)
                        .query_async(&mut c),
                )
                .await?;
        }
        self.append_stream(
            &Stream::Topic(topic.to_owned()),
            records,
            opts.default_max_len,
            Some(!opts.create),
        )
        .await
    }

    async fn trim_topic(
        &self,
        topic: &str,
        max_len: Option<u64>,
        older_than_ms: Option<i64>,
    ) -> Result<u64, StorageError> {
        let stream = Stream::Topic(topic.to_owned());
        let mut inv = self.scripts.trim.key(self.keys.stream(&stream, "msgs"));
        inv.key(self.keys.stream(&stream, "ids"))
            .arg(max_len.map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX)))
            .arg(older_than_ms.unwrap_or(-1))
            .arg(TRIM_BUDGET);
        let mut c = self.conn().await?;
        let removed: u64 = self.timed(inv.invoke_async(&mut c)).await?;
        Ok(removed)
    }

    async fn configure_topic(
        &self,
        topic: &str,
        config: TopicConfig,
    ) -> Result<bool, StorageError> {
        let meta = self.keys.stream(&Stream::Topic(topic.to_owned()), "meta");
        let p = super::settings_pipe(
            &meta,
            "drop_oldest",
            config.retention_max_len,
            config.retention_seconds,
        );
        let mut c = self.conn().await?;
        let (created,): (bool,) = self.timed(p.query_async(&mut c)).await?;
        let _: i64 = self
            .timed(
                redis::cmd("ZADD")
                    .arg(self.keys.topics())
                    .arg("NX")
                    .arg(0)
                    .arg(topic)
                    .query_async(&mut c),
            )
            .await?;
        if config.retention_max_len.is_some() {
            // A lower limit applies now, not at the next publish.
            self.trim_topic(topic, config.retention_max_len, None)
                .await?;
        }
        Ok(created)
    }

    async fn topic_stats(&self, topic: &str) -> Result<Option<TopicStats>, StorageError> {
        Ok(self.stats_of(&[topic.to_owned()]).await?.pop())
    }

    async fn delete_topic(&self, topic: &str) -> Result<bool, StorageError> {
        let stream = Stream::Topic(topic.to_owned());
        let mut del = redis::cmd("UNLINK");
        for part in ["meta", "msgs", "ids"] {
            del.arg(self.keys.stream(&stream, part));
        }
        let mut c = self.conn().await?;
        let n: u64 = self.timed(del.query_async(&mut c)).await?;
        let listed: u64 = self
            .timed(
                redis::cmd("ZREM")
                    .arg(self.keys.topics())
                    .arg(topic)
                    .query_async(&mut c),
            )
            .await?;
        Ok(n > 0 || listed > 0)
    }

    async fn list_topics(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicStats>, StorageError> {
        let upper: Vec<u8> = if prefix.is_empty() {
            b"+".to_vec()
        } else {
            let mut u = b"[".to_vec();
            u.extend_from_slice(prefix.as_bytes());
            u.push(0xff);
            u
        };
        let mut lower = match after {
            Some(a) if a >= prefix => format!("({a}"),
            _ if prefix.is_empty() => "-".to_owned(),
            _ => format!("[{prefix}"),
        };
        let mut out = Vec::new();
        let mut c = self.conn().await?;
        while out.len() < limit {
            let names: Vec<String> = self
                .timed(
                    redis::cmd("ZRANGEBYLEX")
                        .arg(self.keys.topics())
                        .arg(&lower)
                        .arg(&upper[..])
                        .arg("LIMIT")
                        .arg(0)
                        .arg(LIST_CHUNK)
                        .query_async(&mut c),
                )
                .await?;
            let exhausted = names.len() < LIST_CHUNK;
            if let Some(last) = names.last() {
                lower = format!("({last}");
            }
            let under: Vec<String> = names
                .into_iter()
                .filter(|n| is_under(n, prefix))
                .take(limit - out.len())
                .collect();
            out.extend(self.stats_of(&under).await?);
            if exhausted {
                break;
            }
        }
        Ok(out)
    }

    async fn add_subscription(
        &self,
        sub: Subscription,
    ) -> Result<(Subscription, bool), StorageError> {
        let json = serde_json::to_string(&sub).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let mut inv = self.scripts.sub_add.key(self.keys.subs("all"));
        inv.key(self.keys.subs("index"))
            .key(self.keys.subs("version"))
            .arg(&sub.id)
            .arg(format!("{} {}", sub.mailbox, sub.pattern))
            .arg(json);
        let mut c = self.conn().await?;
        let (created, stored): (u8, String) = self.timed(inv.invoke_async(&mut c)).await?;
        let stored: Subscription =
            serde_json::from_str(&stored).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        Ok((stored, created == 1))
    }

    async fn remove_subscription(&self, id: &str) -> Result<Option<Subscription>, StorageError> {
        let mut inv = self.scripts.sub_remove.key(self.keys.subs("all"));
        inv.key(self.keys.subs("index"))
            .key(self.keys.subs("version"))
            .arg(id);
        let mut c = self.conn().await?;
        let json: Option<String> = self.timed(inv.invoke_async(&mut c)).await?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StorageError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, StorageError> {
        let mut c = self.conn().await?;
        let all: Vec<(String, String)> = self
            .timed(
                redis::cmd("HGETALL")
                    .arg(self.keys.subs("all"))
                    .query_async(&mut c),
            )
            .await?;
        let mut subs = Vec::with_capacity(all.len());
        for (id, json) in all {
            match serde_json::from_str::<Subscription>(&json) {
                Ok(s) => subs.push(s),
                Err(e) => {
                    tracing::error!(subscription = %id, error = %e, "skipping a corrupt subscription record")
                }
            }
        }
        subs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(subs)
    }

    async fn subscriptions_version(&self) -> Result<u64, StorageError> {
        let mut c = self.conn().await?;
        let v: Option<u64> = self
            .timed(
                redis::cmd("GET")
                    .arg(self.keys.subs("version"))
                    .query_async(&mut c),
            )
            .await?;
        Ok(v.unwrap_or(0))
    }
}
