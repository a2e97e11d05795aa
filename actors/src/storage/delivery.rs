//! Delivery guarantees in storage: what `receive` hands over, acks, the retry schedule and the
//! dead-letter queue. Both engines keep the same state per mailbox:
//!
//! - **ready**: receivable now, ordered by priority rank then seq;
//! - **in flight**: handed over, awaiting an ack until a deadline;
//! - **awaiting redelivery**: unacked or nacked, receivable again at a due time;
//! - **attempts** per message, and its fixed [`DeliveryMeta`].
//!
//! A message leaves that state when it is consumed (received without `require_ack`), acked or
//! dead-lettered. A global **retry schedule** (`mailbox\nseq` by due time) tells the retry
//! scheduler when to look at a message again; it is an index that is safe to rebuild from the
//! per-mailbox state. Dead letters are written first to the mailbox's own outbox, atomically with
//! the state change, then copied into the global dead-letter queue under an id derived from the
//! record, so repeating the copy never makes a second dead letter.

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{decode, record_id, StorageError};
pub use crate::model::delivery::{
    DeadLetter, DeadPage, DeadQuery, DeadReason, DeliverySettings, NackOutcome, MAX_DEAD_PAGE,
};
use crate::model::{Envelope, Priority};

/// Ready scores are `rank * RANK_SPAN + seq`: priority first, then stream order. Seqs stay far
/// below this, and the largest score stays below 2^53, so it is exact as a Redis score.
pub const RANK_SPAN: u64 = 10_000_000_000_000;

/// What delivery needs to know of a message, fixed when it is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryMeta {
    /// 0 = urgent … 3 = low: receive hands out lower ranks first.
    pub rank: u8,
    pub require_ack: bool,
    /// Unix ms after which the message is no longer delivered; 0 = never.
    pub expires_ms: i64,
}

impl DeliveryMeta {
    pub fn of(env: &Envelope) -> Self {
        Self {
            rank: rank(env.priority),
            require_ack: env.require_ack,
            expires_ms: env.expires_at.map_or(0, |e| e.timestamp_millis().max(1)),
        }
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_ms > 0 && self.expires_ms <= now_ms
    }
}

pub fn rank(p: Priority) -> u8 {
    match p {
        Priority::Urgent => 0,
        Priority::High => 1,
        Priority::Normal => 2,
        Priority::Low => 3,
    }
}

/// One hand-over by `receive`: a delivery attempt of the message at `seq`.
#[derive(Debug, Clone)]
pub struct Handed {
    pub seq: u64,
    pub attempt: u32,
    pub record: Vec<u8>,
}

impl Handed {
    /// The envelope as delivered: `seq` and `attempt` filled in.
    pub fn decode(&self) -> Result<Envelope, StorageError> {
        let mut env = decode(&self.record, self.seq)?;
        env.attempt = Some(self.attempt);
        Ok(env)
    }
}

/// What one pass of the retry scheduler did.
#[derive(Debug, Clone, Default)]
pub struct DueReport {
    /// Schedule entries looked at.
    pub processed: usize,
    /// Mailboxes where something became receivable again (their long-polls should wake).
    pub woken: Vec<String>,
    pub dead_lettered: usize,
}

/// Dead letters one listing may examine (reason filter) before it answers with a cursor.
pub(crate) const MAX_DEAD_SCAN: usize = 5_000;

/// A dead letter on its way into the queue: written to the mailbox's outbox with the state
/// change, then copied into the queue under [`Buried::id`] (the same id every time).
#[derive(Debug, Clone)]
pub(crate) struct Buried {
    pub seq: u64,
    pub reason: DeadReason,
    pub attempts: u32,
    pub failed_at_ms: i64,
    pub last_error: String,
    pub record: Vec<u8>,
}

/// The header stored in front of a dead letter's record.
#[derive(Serialize, Deserialize)]
struct DeadHeader {
    id: String,
    reason: DeadReason,
    attempts: u32,
    failed_at_ms: i64,
    last_error: String,
    mailbox: String,
    seq: u64,
}

/// FNV-1a, 64 bits, from a given basis: stable across builds and platforms.
fn fnv(basis: u64, parts: &[&[u8]]) -> u64 {
    let mut h = basis;
    for p in parts {
        for b in p.iter().chain(b"\n") {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

impl Buried {
    /// Parses an outbox meta line `reason|attempts|failed_at_ms|last_error`.
    pub fn from_outbox(seq: u64, meta: &str, record: Vec<u8>) -> Result<Self, StorageError> {
        let bad = || StorageError::Corrupt(format!("dead-letter outbox entry `{meta}`"));
        let mut parts = meta.splitn(4, '|');
        let reason = parts.next().and_then(DeadReason::parse).ok_or_else(bad)?;
        let attempts = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let failed_at_ms = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let last_error = parts.next().unwrap_or_default().to_owned();
        Ok(Self {
            seq,
            reason,
            attempts,
            failed_at_ms,
            last_error,
            record,
        })
    }

    /// A ULID with the failure time and randomness derived from the mailbox, seq and message
    /// id: time-sortable, and the same however often the copy into the queue is repeated.
    pub fn id(&self, mailbox: &str) -> String {
        let seq = self.seq.to_string();
        let parts: [&[u8]; 3] = [
            mailbox.as_bytes(),
            seq.as_bytes(),
            record_id(&self.record).as_bytes(),
        ];
        let hi = fnv(0xcbf2_9ce4_8422_2325, &parts);
        let lo = fnv(0x6c62_272e_07bb_0142, &parts);
        let random = (u128::from(hi) << 64) | u128::from(lo);
        let ms = u64::try_from(self.failed_at_ms).unwrap_or_default();
        ulid::Ulid::from_parts(ms, random).to_string()
    }

    /// The stored form: a JSON header line, then the record as stored in the mailbox.
    pub fn encode(&self, mailbox: &str) -> Result<(String, Vec<u8>), StorageError> {
        let id = self.id(mailbox);
        let header = DeadHeader {
            id: id.clone(),
            reason: self.reason,
            attempts: self.attempts,
            failed_at_ms: self.failed_at_ms,
            last_error: self.last_error.clone(),
            mailbox: mailbox.to_owned(),
            seq: self.seq,
        };
        let mut out =
            serde_json::to_vec(&header).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        out.push(b'\n');
        out.extend_from_slice(&self.record);
        Ok((id, out))
    }
}

/// Reads a stored dead letter back.
pub(crate) fn decode_dead(stored: &[u8]) -> Result<DeadLetter, StorageError> {
    let corrupt = |e: &dyn std::fmt::Display| StorageError::Corrupt(format!("dead letter: {e}"));
    let nl = stored
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt(&"no header"))?;
    let h: DeadHeader = serde_json::from_slice(&stored[..nl]).map_err(|e| corrupt(&e))?;
    let message = decode(&stored[nl + 1..], h.seq)?;
    Ok(DeadLetter {
        id: h.id,
        reason: h.reason,
        attempts: h.attempts,
        failed_at: Utc
            .timestamp_millis_opt(h.failed_at_ms)
            .single()
            .unwrap_or_default(),
        last_error: h.last_error,
        mailbox: h.mailbox,
        message,
    })
}

/// Counts dead letters by reason (`mailbox_dead_letters_total{reason}`).
pub(crate) fn count_dead(reason: DeadReason) {
    metrics::counter!("mailbox_dead_letters_total", "reason" => reason.as_str()).increment(1);
}

/// The smallest id a dead letter failed at or after `ms` can have: ids sort by time, so
/// everything below it is older.
pub(crate) fn id_floor(ms: i64) -> String {
    ulid::Ulid::from_parts(u64::try_from(ms).unwrap_or_default(), 0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let s = DeliverySettings::default();
        assert_eq!(s.backoff_ms(1, 1.0), 1000);
        assert_eq!(s.backoff_ms(2, 1.0), 2000);
        assert_eq!(s.backoff_ms(4, 1.0), 8000);
        assert_eq!(s.backoff_ms(30, 1.0), 60_000);
        assert_eq!(s.backoff_ms(1, 1.1), 1100);
    }

    #[test]
    fn dead_letter_ids_are_stable_and_time_sortable() {
        let b = |ms, seq| Buried {
            seq,
            reason: DeadReason::Rejected,
            attempts: 1,
            failed_at_ms: ms,
            last_error: "x|y".into(),
            record: b"01J0000000000000000000000A{}".to_vec(),
        };
        assert_eq!(b(1000, 1).id("bob"), b(1000, 1).id("bob"));
        assert_ne!(b(1000, 1).id("bob"), b(1000, 2).id("bob"));
        assert_ne!(b(1000, 1).id("bob"), b(1000, 1).id("ann"));
        assert!(b(1000, 9).id("bob") < b(1001, 1).id("bob"));
        assert!(id_floor(1000) <= b(1000, 1).id("bob") && b(999, 1).id("bob") < id_floor(1000));
        let parsed = Buried::from_outbox(3, "rejected|2|77|bad | input", vec![]).expect("parses");
        assert_eq!(
            (
                parsed.attempts,
                parsed.failed_at_ms,
                parsed.last_error.as_str()
            ),
            (2, 77, "bad | input")
        );
    }
}
