//! Delivery-facing data shared by the engine and the faces: settings of `[delivery]`, what a
//! nack did, dead letters and their queries, read marks and mailbox counts. Pure data, no I/O.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Envelope, MailboxConfig};

/// Config `[delivery]`: ack timeout, backoff and the attempt limit.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub ack_timeout: Duration,
    pub backoff_base_ms: u64,
    pub backoff_multiplier: f64,
    pub backoff_max_ms: u64,
    pub max_attempts: u32,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(30),
            backoff_base_ms: 1000,
            backoff_multiplier: 2.0,
            backoff_max_ms: 60_000,
            max_attempts: 5,
        }
    }
}

impl DeliverySettings {
    /// Wait before redelivering after `attempt` failed: `base * multiplier^(attempt-1)` times
    /// `jitter`, capped at `backoff_max_ms`. The Lua scripts compute the same.
    pub fn backoff_ms(&self, attempt: u32, jitter: f64) -> i64 {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let d = self.backoff_base_ms as f64 * self.backoff_multiplier.powi(exp) * jitter;
        d.min(self.backoff_max_ms as f64).max(0.0) as i64
    }

    /// A fresh jitter factor: ±10 %.
    pub fn jitter() -> f64 {
        rand::random_range(0.9..=1.1)
    }

    pub fn ack_timeout_ms(&self) -> i64 {
        i64::try_from(self.ack_timeout.as_millis()).unwrap_or(i64::MAX / 4)
    }
}

/// What a nack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NackOutcome {
    /// Receivable again at `redeliver_at_ms`.
    Requeued {
        attempt: u32,
        redeliver_at_ms: i64,
    },
    DeadLettered {
        attempt: u32,
        reason: DeadReason,
    },
}

/// Why a message became a dead letter (SPEC section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    MaxAttempts,
    Rejected,
    Expired,
    Undeliverable,
    Evicted,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::MaxAttempts => "max_attempts",
            DeadReason::Rejected => "rejected",
            DeadReason::Expired => "expired",
            DeadReason::Undeliverable => "undeliverable",
            DeadReason::Evicted => "evicted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "max_attempts" => DeadReason::MaxAttempts,
            "rejected" => DeadReason::Rejected,
            "expired" => DeadReason::Expired,
            "undeliverable" => DeadReason::Undeliverable,
            "evicted" => DeadReason::Evicted,
            _ => return None,
        })
    }
}

/// A dead letter as listed: the full envelope and why it failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: String,
    pub reason: DeadReason,
    pub attempts: u32,
    pub failed_at: DateTime<Utc>,
    pub last_error: String,
    pub mailbox: String,
    pub message: Envelope,
}

/// A dead-letter listing: `after` is the id cursor of the previous page.
#[derive(Debug, Clone, Default)]
pub struct DeadQuery {
    pub mailbox: Option<String>,
    pub reason: Option<DeadReason>,
    pub after: Option<String>,
    pub limit: usize,
}

/// Most dead letters one listing page holds.
pub const MAX_DEAD_PAGE: usize = 500;
#[derive(Debug, Clone, Default)]
pub struct DeadPage {
    pub dead_letters: Vec<DeadLetter>,
    pub next: Option<String>,
}

/// What one reader has read in one mailbox: everything up to `upto`, plus single marks above it.
#[derive(Debug, Clone, Default)]
pub struct ReadState {
    pub upto: u64,
    pub marked: HashSet<u64>,
}

impl ReadState {
    pub fn is_read(&self, seq: u64) -> bool {
        seq <= self.upto || self.marked.contains(&seq)
    }
}

/// Counts and settings of one mailbox as seen by one reader.
#[derive(Debug, Clone, Default)]
pub struct MailboxStats {
    pub total: u64,
    pub unread: u64,
    pub last_seq: u64,
    pub created_at: Option<DateTime<Utc>>,
    pub config: MailboxConfig,
    /// Deliveries in flight plus messages awaiting redelivery.
    pub pending_acks: u64,
}

/// How a mark-read request names what was read.
#[derive(Debug, Clone)]
pub enum ReadMark {
    Ids(Vec<String>),
    UpTo(u64),
}
