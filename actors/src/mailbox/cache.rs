//! The recent-messages cache of a mailbox writer: what degraded reads serve while storage is
//! down (SPEC section 4, "Degraded reads").
//!
//! The writer adds a record only once storage acknowledged it (a group commit stored it, or the
//! spool's replayer did), so nothing served from here is newer than storage. The cache holds
//! the most recent messages of the mailbox without gaps, oldest dropped first, within two caps
//! from config `[cache]`: bytes per mailbox, and bytes for the whole node (a budget every
//! writer's cache draws on and gives back when it is dropped, e.g. when an idle writer retires).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::storage::StoredRecord;

/// Bookkeeping per cached record beyond its bytes.
const OVERHEAD: usize = 48;

/// Config `[cache]`: the node's budget for recent-message caches. Shared by every writer.
#[derive(Debug, Default)]
pub struct CacheBudget {
    /// Bytes one mailbox may cache; 0 disables the cache (degraded browses then answer 503).
    pub per_mailbox: usize,
    /// Bytes every mailbox on the node may cache together.
    pub total: usize,
    used: AtomicUsize,
}

impl CacheBudget {
    pub fn new(per_mailbox: usize, total: usize) -> Self {
        Self {
            per_mailbox,
            total,
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes cached on the node now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One mailbox's recent messages, ascending by seq, without gaps.
pub struct RecentCache {
    budget: Arc<CacheBudget>,
    records: VecDeque<StoredRecord>,
    bytes: usize,
    /// Something was stored since the writer started: an empty cache then means an empty
    /// mailbox tail, not "unknown".
    warm: bool,
}

impl RecentCache {
    pub fn new(budget: Arc<CacheBudget>) -> Self {
        Self {
            budget,
            records: VecDeque::new(),
            bytes: 0,
            warm: false,
        }
    }

    /// Adds a record storage acknowledged at `seq` (ascending; older or repeated seqs are
    /// ignored).
    pub fn push(&mut self, seq: u64, record: &[u8]) {
        if self.budget.per_mailbox == 0 || self.records.back().is_some_and(|r| r.seq >= seq) {
            return;
        }
        let size = record.len() + OVERHEAD;
        if size > self.budget.per_mailbox {
            // Cannot hold it: keep the cache gap-free by starting over after it.
            self.clear();
            self.warm = true;
            return;
        }
        while self.bytes + size > self.budget.per_mailbox
            || (self.budget.used() + size > self.budget.total && !self.records.is_empty())
        {
            self.pop();
        }
        if self.budget.used() + size > self.budget.total {
            self.warm = false;
            return;
        }
        self.budget.used.fetch_add(size, Ordering::Relaxed);
        self.bytes += size;
        self.warm = true;
        self.records.push_back(StoredRecord {
            seq,
            record: record.to_vec(),
        });
    }

    fn pop(&mut self) {
        if let Some(r) = self.records.pop_front() {
            let size = r.record.len() + OVERHEAD;
            self.bytes -= size;
            self.budget.used.fetch_sub(size, Ordering::Relaxed);
        }
    }

    /// Forgets everything (the mailbox was deleted).
    pub fn clear(&mut self) {
        while !self.records.is_empty() {
            self.pop();
        }
        self.warm = false;
    }

    /// Cached records with `after < seq < before`, ascending; `None` when the cache knows
    /// nothing of this mailbox.
    pub fn range(&self, after: u64, before: Option<u64>) -> Option<Vec<StoredRecord>> {
        if !self.warm {
            return None;
        }
        Some(
            self.records
                .iter()
                .filter(|r| r.seq > after && before.is_none_or(|b| r.seq < b))
                .cloned()
                .collect(),
        )
    }
}

impl Drop for RecentCache {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_both_caps() {
        let budget = Arc::new(CacheBudget::new(3 * (10 + OVERHEAD), 5 * (10 + OVERHEAD)));
        let mut a = RecentCache::new(budget.clone());
        assert!(a.range(0, None).is_none(), "cold");
        for seq in 1..=5 {
            a.push(seq, &[0; 10]);
        }
        let seqs = |c: &RecentCache| -> Vec<u64> {
            c.range(0, None)
                .unwrap_or_default()
                .iter()
                .map(|r| r.seq)
                .collect()
        };
        assert_eq!(seqs(&a), vec![3, 4, 5], "per-mailbox cap");
        let mut b = RecentCache::new(budget.clone());
        for seq in 1..=3 {
            b.push(seq, &[0; 10]);
        }
        assert_eq!(seqs(&b), vec![2, 3], "the node's cap: b gives way");
        assert_eq!(a.range(3, Some(5)).map(|v| v.len()), Some(1));
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0, "dropped caches give their bytes back");
    }
}
