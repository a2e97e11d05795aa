//! The Redis engine's admin keys (`P` = `redis.key_prefix`):
//! - `P:admin:agents`     hash: agent id -> JSON record (roles, created_at, the key's HMAC;
//!   never the key)
//! - `P:audit`            stream, capped (`XADD MAXLEN ~`): field `e` = JSON event
//! - `P:rate:{<key>}`     string: GCRA theoretical arrival time (ms), expires when idle
//! - `P:quota:{<agent>}:<day>` hash `m`, `b`: messages and bytes of that UTC day, kept 2 days
//!
//! Rate and quota counters are one Lua script each (one round trip, no lock), so every node
//! sharing the Redis counts against the same numbers.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::streams::StreamRangeReply;
use redis::Value;

use super::{as_string, corrupt, RedisEngine};
use crate::model::{
    Admission, AgentRecord, AuditEvent, AuditPage, AuditQuery, QuotaOutcome, QuotaTake, RateSpec,
    StoreCounts, MAX_AUDIT_PAGE, MAX_AUDIT_SCAN,
};
use crate::storage::engine::Admin;
use crate::storage::StorageError;

/// Quota counters outlive their day by one, so a clock skew between nodes never resets them.
const QUOTA_KEEP_SECONDS: u64 = 2 * 86_400;

fn decode_agent(json: &[u8]) -> Result<AgentRecord, StorageError> {
    serde_json::from_slice(json).map_err(|e| StorageError::Corrupt(format!("agent record: {e}")))
}

fn decode_event(id: String, fields: &HashMap<String, Value>) -> Result<AuditEvent, StorageError> {
    let json = fields
        .get("e")
        .and_then(as_string)
        .ok_or_else(|| corrupt("audit event"))?;
    let mut e: AuditEvent = serde_json::from_str(&json)
        .map_err(|e| StorageError::Corrupt(format!("audit event: {e}")))?;
    e.id = id;
    Ok(e)
}

#[async_trait]
impl Admin for RedisEngine {
    async fn agent_create(&self, agent: AgentRecord) -> Result<bool, StorageError> {
        let json =
            serde_json::to_string(&agent).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let mut c = self.conn().await?;
        let created: i64 = self
            .timed(
                redis::cmd("HSETNX")
                    .arg(self.keys.admin_agents())
                    .arg(&agent.id)
                    .arg(json)
                    .query_async(&mut c),
            )
            .await?;
        Ok(created == 1)
    }

    async fn agent_get(&self, id: &str) -> Result<Option<AgentRecord>, StorageError> {
        let mut c = self.conn().await?;
        let json: Option<Vec<u8>> = self
            .timed(
                redis::cmd("HGET")
                    .arg(self.keys.admin_agents())
                    .arg(id)
                    .query_async(&mut c),
            )
            .await?;
        json.map(|j| decode_agent(&j)).transpose()
    }

    async fn agent_list(&self) -> Result<Vec<AgentRecord>, StorageError> {
        let mut c = self.conn().await?;
        let all: HashMap<String, Vec<u8>> = self
            .timed(
                redis::cmd("HGETALL")
                    .arg(self.keys.admin_agents())
                    .query_async(&mut c),
            )
            .await?;
        let mut agents = all
            .values()
            .map(|j| decode_agent(j))
            .collect::<Result<Vec<_>, _>>()?;
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(agents)
    }

    async fn agent_delete(&self, id: &str) -> Result<bool, StorageError> {
        let mut c = self.conn().await?;
        let n: i64 = self
            .timed(
                redis::cmd("HDEL")
                    .arg(self.keys.admin_agents())
                    .arg(id)
                    .query_async(&mut c),
            )
            .await?;
        Ok(n == 1)
    }

    async fn audit_append(&self, event: AuditEvent, max_len: u64) -> Result<String, StorageError> {
        let json =
            serde_json::to_string(&event).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let mut c = self.conn().await?;
        self.timed(
            redis::cmd("XADD")
                .arg(self.keys.audit())
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len.max(1))
                .arg("*")
                .arg("e")
                .arg(json)
                .query_async(&mut c),
        )
        .await
    }

    async fn audit_list(&self, q: AuditQuery) -> Result<AuditPage, StorageError> {
        let limit = q.limit.clamp(1, MAX_AUDIT_PAGE);
        let chunk = (limit * 4).clamp(100, MAX_AUDIT_PAGE);
        let start = q
            .since_ms
            .map_or_else(|| "-".to_owned(), |ms| ms.max(0).to_string());
        let mut cursor = q.before.clone();
        let mut page = AuditPage::default();
        let mut scanned = 0;
        let mut c = self.conn().await?;
        loop {
            let end = cursor
                .as_ref()
                .map_or_else(|| "+".to_owned(), |b| format!("({b}"));
            let reply: StreamRangeReply = self
                .timed(
                    redis::cmd("XREVRANGE")
                        .arg(self.keys.audit())
                        .arg(end)
                        .arg(&start)
                        .arg("COUNT")
                        .arg(chunk)
                        .query_async(&mut c),
                )
                .await?;
            let exhausted = reply.ids.len() < chunk;
            for entry in reply.ids {
                if page.events.len() == limit || scanned >= MAX_AUDIT_SCAN {
                    page.next = cursor;
                    return Ok(page);
                }
                scanned += 1;
                cursor = Some(entry.id.clone());
                let e = decode_event(entry.id, &entry.map)?;
                if q.matches(&e) {
                    page.events.push(e);
                }
            }
            if exhausted {
                return Ok(page);
            }
        }
    }

    async fn rate_take(
        &self,
        key: &str,
        n: u32,
        rate: RateSpec,
    ) -> Result<Admission, StorageError> {
        let interval_ms = 1000.0 / rate.per_second.max(f64::MIN_POSITIVE);
        let mut c = self.conn().await?;
        let wait_ms: i64 = self
            .timed(
                self.scripts
                    .gcra
                    .key(self.keys.rate(key))
                    .arg(n)
                    .arg(interval_ms)
                    .arg(rate.burst)
                    .invoke_async(&mut c),
            )
            .await?;
        Ok(if wait_ms <= 0 {
            Admission::Allowed
        } else {
            Admission::Refused {
                retry_after: (wait_ms as u64).div_ceil(1000),
            }
        })
    }

    async fn quota_take(&self, agent: &str, take: QuotaTake) -> Result<QuotaOutcome, StorageError> {
        let mut c = self.conn().await?;
        let outcome: i64 = self
            .timed(
                self.scripts
                    .quota
                    .key(self.keys.quota(agent, take.day))
                    .arg(take.messages)
                    .arg(take.bytes)
                    .arg(take.caps.messages_per_day)
                    .arg(take.caps.bytes_per_day)
                    .arg(QUOTA_KEEP_SECONDS)
                    .invoke_async(&mut c),
            )
            .await?;
        Ok(match outcome {
            0 => QuotaOutcome::Allowed,
            1 => QuotaOutcome::OverMessages,
            _ => QuotaOutcome::OverBytes,
        })
    }

    async fn counts(&self) -> Result<StoreCounts, StorageError> {
        let mut c = self.conn().await?;
        let count = |cmd: &str, key: String| {
            let mut c = redis::cmd(cmd);
            c.arg(&key);
            (key, c)
        };
        let replies = self
            .timed(c.spread_all(vec![
                count("SCARD", self.keys.agents()),
                count("ZCARD", self.keys.topics()),
                count("ZCARD", self.keys.dlq_ids()),
                count("HLEN", self.keys.admin_agents()),
            ]))
            .await?;
        let n = |i: usize| replies.get(i).and_then(super::as_u64).unwrap_or_default();
        let (mailboxes, topics, dead_letters, agents) = (n(0), n(1), n(2), n(3));
        Ok(StoreCounts {
            mailboxes,
            topics,
            dead_letters,
            agents,
        })
    }
}
