//! The fan-out paths of a send: a topic publish (the history, then one copy per mailbox holding
//! a matching durable subscription) and a broadcast (one copy per known agent).
//!
//! Each copy goes through its mailbox's writer, like a direct message ([`FANOUT_IN_FLIGHT`]
//! mailboxes at a time): the writer orders it with the mailbox's other writes, group-commits it,
//! pushes it to the mailbox's live subscribers and wakes its long-polls. Each copy then behaves
//! like a direct message (read state, delivery state: receive, acks, redelivery, dead letters).
//! A copy keeps the message's id; its `mailbox` names the mailbox it is in and its `to` still
//! says where it was sent.

use chrono::Utc;
use futures_util::StreamExt;

use super::{Dispatcher, SendReceipt};
use crate::error::Error;
use crate::model::{self, Envelope, SendRequest};
use crate::storage::{Appended, NewRecord, Stream};

/// Mailbox copies of one fan-out in flight at once.
pub const FANOUT_IN_FLIGHT: usize = 1024;

/// What a fan-out stored.
#[derive(Debug, Default)]
struct Copies {
    /// Mailboxes that hold the message now (including ones that already held it: a retry).
    stored: u64,
    failed: u64,
    /// The first failure, kept to answer with when nothing could be stored.
    first_error: Option<Error>,
    /// On a retried send: the id the mailboxes already hold.
    duplicate_of: Option<String>,
}

impl Copies {
    fn fail(&mut self, e: Error) {
        self.failed += 1;
        self.first_error.get_or_insert(e);
    }
}

/// Stores one copy of `env` in each of `mailboxes`. `idempotency` (scoped per mailbox by the
/// storage) makes a repeated fan-out of the same message store nothing twice.
async fn copy_to_mailboxes(
    d: &Dispatcher,
    env: &Envelope,
    mailboxes: Vec<String>,
    idempotency: Option<String>,
    route: &'static str,
) -> Copies {
    let mut copies = Copies::default();
    let mut jobs = Vec::with_capacity(mailboxes.len());
    for name in mailboxes {
        let mut copy = env.clone();
        copy.mailbox = Some(name.clone());
        copy.topic = None;
        // The same record (with its delivery state: priority, ack, expiry) as a direct send.
        match NewRecord::of(&copy, idempotency.clone()) {
            Ok(record) => jobs.push(async move {
                let r = d.registry.mailbox(&name).deliver(vec![record]).await;
                (name, r)
            }),
            Err(e) => copies.fail(e.into()),
        }
    }
    let mut done = futures_util::stream::iter(jobs).buffer_unordered(FANOUT_IN_FLIGHT);
    while let Some((name, r)) = done.next().await {
        match r.map(|o| o.results.into_iter().next()) {
            // A spooled copy is accepted: it reaches the mailbox when storage is back.
            Ok(Some(Appended::Stored { .. } | Appended::Spooled { .. })) => copies.stored += 1,
            Ok(Some(Appended::Duplicate { id, .. })) => {
                copies.stored += 1;
                copies.duplicate_of.get_or_insert(id);
            }
            Ok(None) => copies.fail(Error::Internal("append answered no result".into())),
            Err(e) => {
                tracing::debug!(mailbox = %name, error = %e, "fan-out copy failed");
                copies.fail(e);
            }
        }
    }
    if copies.failed > 0 {
        metrics::counter!("mailbox_fanout_failures_total", "route" => route)
            .increment(copies.failed);
        tracing::warn!(
            message_id = %env.id,
            route,
            failed = copies.failed,
            stored = copies.stored,
            first_error = ?copies.first_error.as_ref().map(ToString::to_string),
            "some mailbox copies could not be stored"
        );
    }
    copies
}

impl Dispatcher {
    /// Publishes to `topic`: stored in its history (live subscriptions get it pushed), then
    /// copied into every mailbox with a matching durable subscription, once per mailbox.
    /// `recipients` = mailbox copies + 1 for the history.
    pub(super) async fn publish(
        &self,
        from: &str,
        req: SendRequest,
        topic: &str,
        idempotency_key: Option<&str>,
    ) -> Result<SendReceipt, Error> {
        let mut env = req.into_envelope(from, model::new_id(), Utc::now());
        env.topic = Some(topic.to_owned());
        let key = idempotency_key.map(|k| format!("{from}:{k}"));
        // A topic history keeps no delivery state; the record's is ignored there.
        let record = NewRecord::of(&env, key.clone())?;
        // Who gets a copy is settled first: if that cannot be known (storage down before the
        // subscriptions were ever loaded), nothing is stored and the send can be retried.
        let targets = self.registry.router().durable_targets(topic).await?;
        let outcome = self.registry.topic(topic).publish(vec![record]).await?;
        let (env, seq) = match outcome.results.first() {
            Some(Appended::Stored { seq }) => {
                metrics::counter!("mailbox_messages_accepted_total", "route" => "topic")
                    .increment(1);
                (env, *seq)
            }
            // A retry of a publish already stored: copy again from the stored original (the
            // copies are idempotent per mailbox, so a copy that was made is not made twice).
            Some(Appended::Duplicate { id, seq }) => {
                let stored = self
                    .registry
                    .storage()
                    .range(
                        &Stream::Topic(topic.to_owned()),
                        seq.saturating_sub(1),
                        Some(seq + 1),
                        1,
                    )
                    .await?;
                match stored.first() {
                    Some(r) => (r.decode()?, *seq),
                    None => {
                        // Trimmed from the history since: nothing left to copy from.
                        return Ok(SendReceipt {
                            id: id.clone(),
                            status: "stored",
                            recipients: 1,
                            seq: Some(seq.to_string()),
                            failed: 0,
                        });
                    }
                }
            }
            // Topic writers never spool (a publish while storage is down answers 503).
            Some(Appended::Spooled { .. }) | None => {
                return Err(Error::Internal(
                    "topic append answered no stored result".into(),
                ))
            }
        };
        let copy_key = key.map(|_| format!("copy:{}", env.id));
        let copies = copy_to_mailboxes(self, &env, targets, copy_key, "topic").await;
        tracing::debug!(message_id = %env.id, correlation_id = ?env.correlation_id, topic, seq, copies = copies.stored, "published");
        Ok(SendReceipt {
            id: env.id,
            status: "stored",
            recipients: copies.stored + 1,
            seq: Some(seq.to_string()),
            failed: copies.failed,
        })
    }

    /// Broadcasts: one copy in every known agent's mailbox. `recipients` = copies stored.
    pub(super) async fn broadcast(
        &self,
        from: &str,
        req: SendRequest,
        idempotency_key: Option<&str>,
    ) -> Result<SendReceipt, Error> {
        let env = req.into_envelope(from, model::new_id(), Utc::now());
        let agents = self.registry.storage().known_agents().await?;
        let key = idempotency_key.map(|k| format!("{from}:{k}"));
        let copies = copy_to_mailboxes(self, &env, agents, key, "broadcast").await;
        if copies.stored == 0 {
            if let Some(e) = copies.first_error {
                return Err(e);
            }
        }
        metrics::counter!("mailbox_messages_accepted_total", "route" => "broadcast").increment(1);
        tracing::debug!(message_id = %env.id, correlation_id = ?env.correlation_id, copies = copies.stored, "broadcast");
        Ok(SendReceipt {
            id: copies.duplicate_of.unwrap_or(env.id),
            status: "stored",
            recipients: copies.stored,
            seq: None,
            failed: copies.failed,
        })
    }
}
