//! The memory engine's admin state: agents, the audit ring, in-process rate buckets and quota
//! counters. Single node by nature, so the rate limiter stays in process (the Redis engine
//! shares its counters between nodes instead).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;

use super::MemoryEngine;
use crate::model::{
    audit_id_ms, Admission, AgentRecord, AuditEvent, AuditPage, AuditQuery, QuotaOutcome,
    QuotaTake, RateSpec, StoreCounts, MAX_AUDIT_PAGE,
};
use crate::storage::engine::Admin;
use crate::storage::StorageError;

const SHARDS: usize = 16;
/// A bucket untouched this long is full again (for any sane rate), so it can be dropped.
const FORGET_AFTER: Duration = Duration::from_secs(120);
/// Buckets per shard before idle ones are swept.
const SWEEP_OVER: usize = 4096;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per key, sharded so concurrent agents rarely share a lock; idle buckets are
/// forgotten (a full bucket and a missing one behave the same).
pub(super) struct RateBuckets {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

impl Default for RateBuckets {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl RateBuckets {
    /// Takes `n` tokens for `key`; on refusal answers the seconds until they will be there.
    fn take(&self, key: &str, n: u32, rate: RateSpec) -> Admission {
        let now = Instant::now();
        let per_second = rate.per_second.max(f64::MIN_POSITIVE);
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_OVER {
            map.retain(|_, b| now.duration_since(b.at) < FORGET_AFTER);
        }
        let b = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_second).min(rate.burst);
        b.at = now;
        let need = f64::from(n);
        if b.tokens >= need {
            b.tokens -= need;
            Admission::Allowed
        } else {
            Admission::Refused {
                retry_after: ((need - b.tokens) / per_second).ceil().max(1.0) as u64,
            }
        }
    }
}

#[derive(Default)]
struct Records {
    agents: BTreeMap<String, AgentRecord>,
    /// The audit trail, oldest first; capped by each append's `max_len`.
    audit: VecDeque<AuditEvent>,
    /// The last audit id handed out, as (ms, n): ids stay increasing within one ms.
    last_audit: (i64, u64),
    /// (agent, day) -> (messages, bytes) counted that day.
    quotas: HashMap<(String, u32), (u64, u64)>,
}

/// Everything admin-related the memory engine keeps.
#[derive(Default)]
pub(super) struct AdminState {
    records: Mutex<Records>,
    rates: RateBuckets,
}

impl MemoryEngine {
    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.admin.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Admin for MemoryEngine {
    async fn agent_create(&self, agent: AgentRecord) -> Result<bool, StorageError> {
        let mut r = self.records();
        if r.agents.contains_key(&agent.id) {
            return Ok(false);
        }
        r.agents.insert(agent.id.clone(), agent);
        Ok(true)
    }

    async fn agent_get(&self, id: &str) -> Result<Option<AgentRecord>, StorageError> {
        Ok(self.records().agents.get(id).cloned())
    }

    async fn agent_list(&self) -> Result<Vec<AgentRecord>, StorageError> {
        Ok(self.records().agents.values().cloned().collect())
    }

    async fn agent_delete(&self, id: &str) -> Result<bool, StorageError> {
        Ok(self.records().agents.remove(id).is_some())
    }

    async fn audit_append(
        &self,
        mut event: AuditEvent,
        max_len: u64,
    ) -> Result<String, StorageError> {
        let mut r = self.records();
        let ms = Utc::now().timestamp_millis();
        let (last_ms, last_n) = r.last_audit;
        r.last_audit = if ms > last_ms {
            (ms, 0)
        } else {
            (last_ms, last_n + 1)
        };
        event.id = format!("{}-{}", r.last_audit.0, r.last_audit.1);
        let id = event.id.clone();
        r.audit.push_back(event);
        while r.audit.len() as u64 > max_len.max(1) {
            r.audit.pop_front();
        }
        Ok(id)
    }

    async fn audit_list(&self, q: AuditQuery) -> Result<AuditPage, StorageError> {
        let r = self.records();
        let limit = q.limit.clamp(1, MAX_AUDIT_PAGE);
        let before = q.before.as_deref().map(audit_key);
        let mut page = AuditPage::default();
        let newest_first = r.audit.iter().rev();
        for e in newest_first.filter(|e| before.is_none_or(|b| audit_key(&e.id) < b)) {
            if q.since_ms
                .is_some_and(|s| audit_id_ms(&e.id).is_some_and(|ms| ms < s))
            {
                break;
            }
            if !q.matches(e) {
                continue;
            }
            if page.events.len() == limit {
                page.next = page.events.last().map(|e| e.id.clone());
                break;
            }
            page.events.push(e.clone());
        }
        Ok(page)
    }

    async fn rate_take(
        &self,
        key: &str,
        n: u32,
        rate: RateSpec,
    ) -> Result<Admission, StorageError> {
        Ok(self.admin.rates.take(key, n, rate))
    }

    async fn quota_take(&self, agent: &str, take: QuotaTake) -> Result<QuotaOutcome, StorageError> {
        let mut r = self.records();
        r.quotas.retain(|(_, day), _| *day >= take.day);
        let used = r.quotas.entry((agent.to_owned(), take.day)).or_default();
        let caps = take.caps;
        if caps.messages_per_day > 0 && used.0 + take.messages > caps.messages_per_day {
            return Ok(QuotaOutcome::OverMessages);
        }
        if caps.bytes_per_day > 0 && used.1 + take.bytes > caps.bytes_per_day {
            return Ok(QuotaOutcome::OverBytes);
        }
        used.0 += take.messages;
        used.1 += take.bytes;
        Ok(QuotaOutcome::Allowed)
    }

    async fn counts(&self) -> Result<StoreCounts, StorageError> {
        let agents = self.records().agents.len() as u64;
        let st = self.lock();
        Ok(StoreCounts {
            mailboxes: st
                .mailboxes
                .values()
                .filter(|m| m.created_at.is_some())
                .count() as u64,
            topics: st.topics.len() as u64,
            dead_letters: st.dlq.len() as u64,
            agents,
        })
    }
}

/// An audit id as a sortable pair (`<ms>-<n>` compares numerically, not as text).
fn audit_key(id: &str) -> (i64, u64) {
    let mut parts = id.splitn(2, '-');
    let ms = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let n = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (ms, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_a_wait() {
        let l = RateBuckets::default();
        let r = RateSpec {
            per_second: 10.0,
            burst: 3.0,
        };
        assert_eq!(l.take("a", 1, r), Admission::Allowed);
        assert_eq!(l.take("a", 2, r), Admission::Allowed);
        assert_eq!(l.take("a", 1, r), Admission::Refused { retry_after: 1 });
        assert_eq!(l.take("b", 3, r), Admission::Allowed, "buckets are per key");
        assert!(matches!(l.take("c", 4, r), Admission::Refused { .. }));
    }

    #[test]
    fn audit_ids_order_numerically() {
        assert!(audit_key("999-5") < audit_key("1000-0"));
        assert!(audit_key("1000-2") < audit_key("1000-10"));
    }
}
