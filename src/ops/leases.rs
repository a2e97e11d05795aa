//! Rate leases: a node takes an agent's send tokens from the shared counter in small batches and
//! spends them locally, so a busy agent costs one storage round trip per lease, not per send.
//!
//! A lease is taken from the counter before any of it is spent, so the shared limit is never
//! exceeded: the only cost is that tokens a node leased and did not spend within
//! [`LEASE_TTL`] are lost (at most one lease per node and agent). Leases are at most
//! 1/[`LEASE_SHARE`] of the burst, and a burst under `LEASE_SHARE` leases single tokens, so
//! small limits stay exact.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long leased tokens may be spent.
pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// A lease is at most this share of the burst.
pub const LEASE_SHARE: u32 = 16;
/// A lease is at most this many tokens.
pub const MAX_LEASE: u32 = 64;
/// Agents with a lease on this node before expired leases are swept.
const SWEEP_OVER: usize = 4096;

struct Lease {
    tokens: u32,
    until: Instant,
}

/// The leases of this node, by agent.
#[derive(Default)]
pub struct Leases {
    by_agent: Mutex<HashMap<String, Lease>>,
}

impl Leases {
    /// How many tokens to lease for a burst.
    pub fn size(burst: u32) -> u32 {
        (burst / LEASE_SHARE).clamp(1, MAX_LEASE)
    }

    /// Spends `n` leased tokens of `agent`, if its lease holds them.
    pub fn spend(&self, agent: &str, n: u32) -> bool {
        let mut map = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match map.get_mut(agent) {
            Some(l) if l.until > now && l.tokens >= n => {
                l.tokens -= n;
                true
            }
            _ => false,
        }
    }

    /// Keeps `tokens` leased for `agent` (what is left of a lease just taken), on top of what
    /// is left of its current lease: concurrent sends that each took a lease lose nothing.
    pub fn keep(&self, agent: &str, tokens: u32) {
        let mut map = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() > SWEEP_OVER {
            map.retain(|_, l| l.until > now);
        }
        let lease = map.entry(agent.to_owned()).or_insert(Lease {
            tokens: 0,
            until: now,
        });
        if lease.until <= now {
            lease.tokens = 0;
        }
        lease.tokens = lease.tokens.saturating_add(tokens);
        lease.until = now + LEASE_TTL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bursts_lease_single_tokens_and_leases_are_spent_once() {
        assert_eq!(Leases::size(6), 1);
        assert_eq!(Leases::size(2000), 64);
        let l = Leases::default();
        assert!(!l.spend("a", 1), "no lease yet");
        l.keep("a", 2);
        assert!(l.spend("a", 1));
        assert!(l.spend("a", 1));
        assert!(!l.spend("a", 1), "spent");
        assert!(!l.spend("b", 1), "leases are per agent");
        l.keep("c", 1);
        l.keep("c", 1);
        assert!(l.spend("c", 2), "a second lease adds to the first");
    }
}
