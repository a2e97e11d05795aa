//! Batch sends (`POST /v1/messages/batch`): all stored or none.
//!
//! Items to one mailbox are stored by one atomic append. Items to several mailboxes cannot be
//! one atomic step (each mailbox is its own Redis Cluster slot), so the batch is made
//! all-or-none in steps: every item was validated and permitted before it gets here; the
//! capacity of each `overflow = "reject"` mailbox is checked up front (the "reserve"); the
//! batch's intent is stored (see [`super::intent`]: a crash from here on is rolled forward by
//! recovery); then each mailbox's items are appended in turn, and if one append still fails
//! (the mailbox filled up meanwhile, storage went down) the items already stored in the other
//! mailboxes are retracted before the error is answered; last, the intent goes. What this
//! cannot cover: a consumer may receive an item in the moment before it is retracted, and
//! what a `drop_oldest` mailbox evicted to make room stays evicted.

use chrono::Utc;

use super::intent::IntentGroup;
use super::{Dispatcher, SendReceipt};
use crate::error::Error;
use crate::model::{self, Address, Overflow, SendRequest};
use crate::storage::{Appended, NewRecord};

/// Most items one batch may hold.
pub const MAX_BATCH: usize = 100;

/// One validated, permitted item of a batch.
pub struct BatchItem {
    pub request: SendRequest,
    pub to: Address,
    pub idempotency_key: Option<String>,
}

/// A refused batch: `index` is the item the refusal is about.
#[derive(Debug)]
pub struct BatchError {
    pub index: usize,
    pub error: Error,
}

fn at(index: usize) -> impl FnOnce(Error) -> BatchError {
    move |error| BatchError { index, error }
}

/// The items of one mailbox: (item index, record).
struct Group {
    mailbox: String,
    items: Vec<(usize, NewRecord)>,
}

impl Dispatcher {
    /// Stores every item or none; answers one receipt per item, in order.
    pub async fn send_batch(
        &self,
        from: &str,
        items: Vec<BatchItem>,
    ) -> Result<Vec<SendReceipt>, BatchError> {
        let now = Utc::now();
        let mut groups: Vec<Group> = Vec::new();
        let count = items.len();
        for (i, item) in items.into_iter().enumerate() {
            let Address::Mailbox(name) = &item.to else {
                return Err(at(i)(Error::invalid(
                    "to",
                    "a batch is stored all or nothing, so it takes only `mailbox:<agent>` targets; send topic and broadcast messages one by one",
                )));
            };
            let mut env = item.request.into_envelope(from, model::new_id(), now);
            env.mailbox = Some(name.clone());
            let key = item.idempotency_key.map(|k| format!("{from}:{k}"));
            let record = NewRecord::of(&env, key).map_err(|e| at(i)(e.into()))?;
            match groups.iter_mut().find(|g| &g.mailbox == name) {
                Some(g) => g.items.push((i, record)),
                None => groups.push(Group {
                    mailbox: name.clone(),
                    items: vec![(i, record)],
                }),
            }
        }
        let intent = if groups.len() > 1 {
            self.reserve(&groups).await?;
            let all: Vec<IntentGroup> = groups
                .iter()
                .map(|g| {
                    let records = g.items.iter().map(|(_, r)| r.clone()).collect();
                    (g.mailbox.clone(), records)
                })
                .collect();
            Some(self.intent_begin(&all).await.map_err(at(0))?)
        } else {
            None
        };
        let mut receipts: Vec<Option<SendReceipt>> = vec![None; count];
        let mut stored: Vec<(String, Vec<(String, u64)>)> = Vec::new();
        for g in &groups {
            let first = g.items.first().map_or(0, |(i, _)| *i);
            let records: Vec<NewRecord> = g.items.iter().map(|(_, r)| r.clone()).collect();
            let outcome = match self.registry.mailbox(&g.mailbox).deliver(records).await {
                Ok(o) => o,
                Err(e) => {
                    self.roll_back(stored).await;
                    if let Some(id) = &intent {
                        self.intent_end(id).await;
                    }
                    return Err(at(first)(e));
                }
            };
            let mut mine = Vec::new();
            for ((i, rec), r) in g.items.iter().zip(&outcome.results) {
                let (id, seq) = match r {
                    Appended::Stored { seq } => {
                        mine.push((rec.id.clone(), *seq));
                        (rec.id.clone(), Some(*seq))
                    }
                    Appended::Duplicate { id, seq } => (id.clone(), Some(*seq)),
                    // Spooled with the others of its mailbox (one spool append, all or none).
                    Appended::Spooled { id } => (id.clone(), None),
                };
                receipts[*i] = Some(SendReceipt {
                    id,
                    status: if seq.is_some() { "stored" } else { "spooled" },
                    recipients: 1,
                    seq: seq.map(|s| s.to_string()),
                    failed: 0,
                });
            }
            stored.push((g.mailbox.clone(), mine));
        }
        if let Some(id) = &intent {
            self.intent_end(id).await;
        }
        let out: Option<Vec<SendReceipt>> = receipts.into_iter().collect();
        let out =
            out.ok_or_else(|| at(0)(Error::Internal("append answered too few results".into())))?;
        metrics::counter!("mailbox_messages_accepted_total", "route" => "batch")
            .increment(out.len() as u64);
        Ok(out)
    }

    /// Checks that each mailbox that refuses overflow has room for its items.
    async fn reserve(&self, groups: &[Group]) -> Result<(), BatchError> {
        let default_max = self.registry.default_max_len();
        for g in groups {
            let first = g.items.first().map_or(0, |(i, _)| *i);
            let s = self
                .registry
                .storage()
                .stats(&g.mailbox, "")
                .await
                .map_err(|e| at(first)(e.into()))?;
            let max_len = s.config.max_len.unwrap_or(default_max);
            if s.config.overflow == Overflow::Reject && s.total + g.items.len() as u64 > max_len {
                return Err(at(first)(Error::MailboxFull {
                    mailbox: g.mailbox.clone(),
                    max_len,
                }));
            }
        }
        Ok(())
    }

    /// Retracts what a failed batch stored.
    pub(super) async fn roll_back(&self, stored: Vec<(String, Vec<(String, u64)>)>) {
        for (mailbox, records) in stored {
            if records.is_empty() {
                continue;
            }
            if let Err(e) = self.registry.storage().retract(&mailbox, records).await {
                tracing::error!(mailbox = %mailbox, error = %e, "could not retract part of a failed batch; it stays stored");
            }
        }
    }
}
