//! The replayer: drains the spool into storage, in log order, whenever storage answers.
//!
//! Each pass reads up to [`BATCH`] records from the cursor, groups runs of one mailbox, and
//! stores them in one pipelined `append_many` (one atomic append per run, in order; pipelined
//! commands run in order too, so a mailbox's order holds). Runs stored, or answered as
//! duplicates of what storage holds already, move the cursor on; a run storage cannot take now
//! (`Unavailable`) stops the pass there and is retried. A run refused for good (its mailbox
//! filled up meanwhile with `overflow = "reject"`) is logged at error level, counted in
//! `mailbox_spool_refused_total` and skipped: it cannot be stored, and replaying it forever
//! would hold every later send hostage.
//!
//! What is replayed is handed to the mailbox's writer when it is live on this node, which
//! pushes it to its subscribers, caches it and wakes long-polls, and announces it to other nodes.

use std::time::Duration;

use super::Spool;
use crate::mailbox::messages::Replayed;
use crate::registry::RegistryHandle;
use crate::storage::{Appended, NewRecord, StorageError, StoredRecord};

/// Most records one replay pass stores.
const BATCH: usize = 256;
/// How long to wait before trying a storage that did not answer again.
const RETRY: Duration = Duration::from_millis(300);

/// Starts the replayer on the current arbiter.
pub fn start(spool: Spool, registry: RegistryHandle) {
    actix::spawn(async move {
        loop {
            if spool.pending() == 0 {
                spool.0.wake.notified().await;
                continue;
            }
            match pass(&spool, &registry).await {
                Ok(true) => {}
                Ok(false) => tokio::time::sleep(RETRY).await,
                Err(e) => {
                    tracing::debug!(error = %e, "spool replay waits for storage");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
}

/// One pass; answers whether it made progress.
async fn pass(spool: &Spool, registry: &RegistryHandle) -> Result<bool, StorageError> {
    let storage = registry.storage();
    if storage.circuit_open() {
        // Probe with a cheap call first rather than with a batch.
        storage.ping().await?;
    }
    let s = spool.clone();
    let batch = tokio::task::spawn_blocking(move || s.next_batch(BATCH))
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))??;
    if batch.is_empty() {
        return Ok(false);
    }
    // Runs of one mailbox: (mailbox, records, offset past the run's last frame).
    let mut runs: Vec<(String, Vec<NewRecord>, u64)> = Vec::new();
    for (e, end) in batch {
        match runs.last_mut() {
            Some((m, recs, at)) if *m == e.mailbox => {
                recs.push(e.record);
                *at = end;
            }
            _ => runs.push((e.mailbox, vec![e.record], end)),
        }
    }
    let items: Vec<(String, Vec<NewRecord>)> = runs
        .iter()
        .map(|(m, r, _)| (m.clone(), r.clone()))
        .collect();
    let results = storage
        .append_many(items, registry.default_max_len())
        .await?;
    let (mut offset, mut count) = (None, 0u64);
    for ((mailbox, records, end), r) in runs.into_iter().zip(results) {
        match r {
            Ok(outcome) => {
                let stored: Vec<StoredRecord> = outcome
                    .results
                    .iter()
                    .zip(records.iter())
                    .filter_map(|(a, rec)| match a {
                        Appended::Stored { seq } => Some(StoredRecord {
                            seq: *seq,
                            record: rec.record.clone(),
                        }),
                        // Stored before (a write whose answer was lost, a replay repeated
                        // after a crash): the same record, at its first seq.
                        Appended::Duplicate { id, seq } if *id == rec.id => Some(StoredRecord {
                            seq: *seq,
                            record: rec.record.clone(),
                        }),
                        Appended::Duplicate { .. } | Appended::Spooled { .. } => None,
                    })
                    .collect();
                if let Some(w) = registry.live_mailbox_writer(&mailbox) {
                    w.do_send(Replayed { records: stored });
                }
            }
            Err(StorageError::Unavailable(_)) => break,
            Err(e) => {
                metrics::counter!("mailbox_spool_refused_total").increment(records.len() as u64);
                for rec in &records {
                    tracing::error!(message_id = %rec.id, mailbox = %mailbox, error = %e, "spooled message cannot be stored; dropped from the spool");
                }
            }
        }
        offset = Some(end);
        count += records.len() as u64;
    }
    let Some(offset) = offset else {
        return Ok(false);
    };
    let s = spool.clone();
    tokio::task::spawn_blocking(move || s.advance(offset, count))
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))??;
    Ok(true)
}
