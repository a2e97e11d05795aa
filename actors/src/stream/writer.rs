//! The writer actor: a queue of appends, one group commit in flight at a time.
//!
//! Appends queue up while one write is in flight and are then stored together in one atomic
//! storage call (group commit), so a busy stream costs one Redis round trip per batch, not per
//! message. Redis assigns the seqs, so order holds even across nodes. The writer keeps no state
//! that storage does not also have: a restart loses only the queue's callers, who get an error.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::messages::{Append, Retire, Watch};
use super::{Appender, Liveness, StreamKind};
use crate::storage::group::{next_group, split as split_outcome};
use crate::storage::{AppendOutcome, Appended, NewRecord, StorageError, StorageHandle};

type Reply = oneshot::Sender<Result<AppendOutcome, StorageError>>;
type Group = Vec<(Vec<NewRecord>, Reply)>;

pub struct StreamWriter<K: StreamKind> {
    name: String,
    storage: StorageHandle,
    queue: VecDeque<(Vec<NewRecord>, Reply)>,
    writing: bool,
    retired: bool,
    /// An append succeeded, so the stream exists (mailboxes: the agent is known).
    known: bool,
    liveness: Arc<Liveness>,
    /// What this stream is: how it appends, what it does with stored records.
    pub(crate) kind: K,
}

impl<K: StreamKind> StreamWriter<K> {
    pub fn new(name: String, storage: StorageHandle, liveness: Arc<Liveness>, kind: K) -> Self {
        Self {
            name,
            storage,
            queue: VecDeque::new(),
            writing: false,
            retired: false,
            known: false,
            liveness,
            kind,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn storage(&self) -> &StorageHandle {
        &self.storage
    }

    pub(crate) fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Records activity, and the listener count the registry's idle sweep reads.
    pub(crate) fn update_busy(&self) {
        self.liveness.touch(self.writing || !self.queue.is_empty());
        self.liveness.set_listeners(self.kind.listeners());
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.queue.is_empty() {
            if self.retired && !self.writing && self.queue.is_empty() {
                ctx.stop();
            }
            self.update_busy();
            return;
        }
        let group = next_group(&mut self.queue);
        self.writing = true;
        self.update_busy();
        let at = (
            self.kind.appender(),
            self.storage.clone(),
            self.name.clone(),
        );
        let known = self.known;
        let fut = async move {
            let outcomes = store_group(&at, &group, known).await;
            (group, outcomes)
        };
        ctx.spawn(fut.into_actor(self).map(|(group, outcomes), act, ctx| {
            act.commit(group, outcomes);
            act.flush(ctx);
        }));
    }

    /// Hands each stored record to the kind, answers every caller, advances the watched seq.
    fn commit(&mut self, group: Group, outcomes: Vec<Result<AppendOutcome, StorageError>>) {
        self.writing = false;
        let (mut first, mut last) = (u64::MAX, 0);
        for ((records, reply), outcome) in group.into_iter().zip(outcomes) {
            if let Ok(o) = &outcome {
                self.known = true;
                for (r, rec) in o.results.iter().zip(&records) {
                    if let Appended::Stored { seq } = r {
                        first = first.min(*seq);
                        last = last.max(*seq);
                        self.kind.stored(&self.name, *seq, rec);
                    }
                }
            }
            // The caller may have gone away (timeout, closed connection): nothing to do.
            let _ = reply.send(outcome);
        }
        if last > 0 {
            self.kind.committed(&self.name, first, last);
            self.liveness.advance(last);
        }
    }
}

/// Stores a group in one atomic call; if the stream is full, each send on its own, so that one
/// send that does not fit does not fail the others.
async fn store_group(
    (appender, storage, name): &(impl Appender, StorageHandle, String),
    group: &Group,
    known: bool,
) -> Vec<Result<AppendOutcome, StorageError>> {
    let all: Vec<NewRecord> = group.iter().flat_map(|(r, _)| r.iter().cloned()).collect();
    match appender.append(storage, name, all, known).await {
        Ok(outcome) => split_outcome(outcome, group.iter().map(|(r, _)| r.len()))
            .into_iter()
            .map(Ok)
            .collect(),
        Err(StorageError::MailboxFull { .. }) if group.len() > 1 => {
            let mut out = Vec::with_capacity(group.len());
            for (records, _) in group {
                out.push(appender.append(storage, name, records.clone(), true).await);
            }
            out
        }
        Err(e) => {
            // The first send gets the error, the others an equivalent one.
            let again = |e: &StorageError| match e {
                StorageError::UnknownTopic(t) => StorageError::UnknownTopic(t.clone()),
                other => StorageError::Unavailable(other.to_string()),
            };
            let mut out: Vec<_> = (1..group.len()).map(|_| Err(again(&e))).collect();
            out.insert(0, Err(e));
            out
        }
    }
}

impl<K: StreamKind> Actor for StreamWriter<K> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        metrics::gauge!("mailbox_actors", "kind" => K::KIND).increment(1.0);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("mailbox_actors", "kind" => K::KIND).decrement(1.0);
    }
}

impl<K: StreamKind> Supervised for StreamWriter<K> {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(kind = K::KIND, stream = %self.name, "stream writer restarting");
        // Callers of the write that failed get an error (their reply sender is dropped);
        // everything stored is in storage, so nothing else needs rebuilding.
        self.writing = false;
    }
}

impl<K: StreamKind> Handler<Append> for StreamWriter<K> {
    type Result = ResponseFuture<Result<AppendOutcome, StorageError>>;

    fn handle(&mut self, msg: Append, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.queue.push_back((msg.records, tx));
        self.flush(ctx);
        let kind = K::KIND;
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(StorageError::Unavailable(format!(
                    "{kind} writer restarted mid-write"
                )))
            })
        })
    }
}

impl<K: StreamKind> Handler<Watch> for StreamWriter<K> {
    type Result = MessageResult<Watch>;

    fn handle(&mut self, _: Watch, _: &mut Context<Self>) -> Self::Result {
        let rx = self.liveness.seq.subscribe();
        self.update_busy();
        MessageResult(rx)
    }
}

impl<K: StreamKind> Handler<Retire> for StreamWriter<K> {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        self.retired = true;
        self.flush(ctx);
    }
}
