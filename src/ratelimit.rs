//! Per-agent send rate limits: a token bucket per agent (`limits.rate_per_second`, burst
//! `limits.rate_burst`). Sharded so concurrent agents rarely share a lock; idle buckets are
//! forgotten (a full bucket and a missing one behave the same).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
/// A bucket untouched this long is full again, so it can be dropped.
const FORGET_AFTER: Duration = Duration::from_secs(120);
/// Buckets per shard before idle ones are swept.
const SWEEP_OVER: usize = 4096;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimiter {
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate_per_second.max(1)),
            burst: f64::from(burst.max(1)),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes `n` tokens for `agent`; on refusal answers the seconds until they will be there.
    pub fn take(&self, agent: &str, n: u32) -> Result<(), u64> {
        let now = Instant::now();
        let shard = &self.shards[(self.hasher.hash_one(agent) as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_OVER {
            map.retain(|_, b| now.duration_since(b.at) < FORGET_AFTER);
        }
        let b = map.entry(agent.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        let need = f64::from(n);
        if b.tokens >= need {
            b.tokens -= need;
            Ok(())
        } else {
            Err(((need - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_a_wait() {
        let l = RateLimiter::new(10, 3);
        assert!(l.take("a", 1).is_ok());
        assert!(l.take("a", 2).is_ok());
        assert_eq!(l.take("a", 1), Err(1));
        assert!(l.take("b", 3).is_ok(), "buckets are per agent");
        assert!(l.take("c", 4).is_err(), "more than the burst never fits");
    }
}
