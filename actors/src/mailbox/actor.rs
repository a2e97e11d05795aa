//! The mailbox actor: orders the writes of one mailbox on this node.
//!
//! Sends queue up while one write is in flight and are then stored together in one atomic
//! storage call (group commit), so a busy mailbox costs one Redis round trip per batch, not per
//! message. Redis assigns the seqs, so order holds even across nodes. The actor keeps no state
//! that storage does not also have: a restart loses only the queue's callers, who get an error.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{oneshot, watch};

use super::messages::{
    AddSubscriber, Deliver, Pushed, RemoteAppend, RemoveSubscriber, Retire, Stored, SubscriberKey,
    Wake, Watch,
};
use crate::storage::events::EventBus;
use crate::storage::group::{next_group, split as split_outcome};
use crate::storage::{
    decode, AppendOutcome, Appended, NewRecord, StorageError, StorageHandle, Stream,
};

type Reply = oneshot::Sender<Result<AppendOutcome, StorageError>>;

/// What the registry may read without a message round trip (idle sweeps), shared with the actor.
pub struct Liveness {
    last_active_ms: AtomicI64,
    /// A write is queued or in flight.
    writing: AtomicBool,
    /// The last seq this node stored; long-polls hold receivers of it.
    seq: watch::Sender<u64>,
    /// Live subscribers (WebSocket subscriptions): an actor with any is never idle.
    subscribers: AtomicUsize,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            last_active_ms: AtomicI64::new(now_ms()),
            writing: AtomicBool::new(false),
            seq: watch::channel(0).0,
            subscribers: AtomicUsize::new(0),
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Liveness {
    /// True when nothing is queued, nobody waits on the mailbox and it saw no use for `idle_ms`.
    pub fn is_idle(&self, idle_ms: i64) -> bool {
        !self.writing.load(Ordering::Relaxed)
            && self.seq.receiver_count() == 0
            && self.subscribers.load(Ordering::Relaxed) == 0
            && now_ms() - self.last_active_ms.load(Ordering::Relaxed) >= idle_ms
    }
}

pub struct MailboxActor {
    name: String,
    storage: StorageHandle,
    default_max_len: u64,
    queue: VecDeque<(Vec<NewRecord>, Reply)>,
    writing: bool,
    retired: bool,
    known: bool,
    liveness: Arc<Liveness>,
    subscribers: HashMap<SubscriberKey, Recipient<Pushed>>,
    stream: Arc<str>,
    /// Announces this node's writes to the other nodes (Redis engine only).
    bus: Option<EventBus>,
    /// The highest seq pushed to subscribers so far.
    pushed_upto: u64,
}

impl MailboxActor {
    pub fn new(
        name: String,
        storage: StorageHandle,
        default_max_len: u64,
        liveness: Arc<Liveness>,
        bus: Option<EventBus>,
    ) -> Self {
        Self {
            stream: Arc::from(name.as_str()),
            subscribers: HashMap::new(),
            bus,
            pushed_upto: 0,
            name,
            storage,
            default_max_len,
            queue: VecDeque::new(),
            writing: false,
            retired: false,
            known: false,
            liveness,
        }
    }

    fn update_busy(&self) {
        let busy = self.writing || !self.queue.is_empty();
        self.liveness.writing.store(busy, Ordering::Relaxed);
        self.liveness
            .last_active_ms
            .store(now_ms(), Ordering::Relaxed);
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
        let storage = self.storage.clone();
        let name = self.name.clone();
        let max_len = self.default_max_len;
        let touch = !self.known;
        let fut = async move {
            if touch {
                // Makes the agent known (broadcast target); harmless to repeat, so a failure
                // only means it is tried again with the next write.
                if let Err(e) = storage.touch(&name).await {
                    tracing::debug!(mailbox = %name, error = %e, "touch failed");
                }
            }
            let outcomes = store_group(&storage, &name, &group, max_len).await;
            (group, outcomes)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(group, outcomes), act, ctx| {
                    act.writing = false;
                    act.known |= touch;
                    let mut last = 0;
                    for ((records, reply), outcome) in group.into_iter().zip(outcomes) {
                        if let Ok(o) = &outcome {
                            for (r, rec) in o.results.iter().zip(&records) {
                                if let Appended::Stored { seq } = r {
                                    last = last.max(*seq);
                                    act.push(*seq, &rec.record);
                                }
                            }
                        }
                        // The caller may have gone away (timeout, closed connection): nothing to do.
                        let _ = reply.send(outcome);
                    }
                    if let (Some(bus), true) = (act.bus.clone(), last > 0) {
                        let name = act.name.clone();
                        actix::spawn(async move { bus.announce(&name, last).await });
                    }
                    if last > 0 {
                        act.liveness.seq.send_if_modified(|s| {
                            let changed = last > *s;
                            *s = (*s).max(last);
                            changed
                        });
                    }
                    act.flush(ctx);
                }),
        );
    }
}

impl MailboxActor {
    /// Pushes one stored record to every live subscriber, serialized once.
    fn push(&mut self, seq: u64, record: &[u8]) {
        self.pushed_upto = self.pushed_upto.max(seq);
        if self.subscribers.is_empty() {
            return;
        }
        let env = match decode(record, seq) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(mailbox = %self.name, seq, error = %e, "cannot decode a record just stored");
                return;
            }
        };
        let json: Arc<str> = match serde_json::to_string(&env) {
            Ok(j) => Arc::from(j),
            Err(e) => {
                tracing::error!(mailbox = %self.name, seq, error = %e, "cannot serialize an envelope");
                return;
            }
        };
        let created_at_ms = env.created_at.timestamp_millis();
        self.subscribers.retain(|key, r| {
            if !r.connected() {
                return false;
            }
            r.do_send(Pushed {
                subscription: key.subscription.clone(),
                stream: self.stream.clone(),
                seq,
                json: json.clone(),
                created_at_ms,
                require_ack: env.require_ack,
            });
            true
        });
        self.liveness
            .subscribers
            .store(self.subscribers.len(), Ordering::Relaxed);
    }
}

/// Stores a group in one atomic call; if the mailbox is full, retries each send on its own so
/// that one send that does not fit does not fail the others.
async fn store_group(
    storage: &StorageHandle,
    name: &str,
    group: &[(Vec<NewRecord>, Reply)],
    max_len: u64,
) -> Vec<Result<AppendOutcome, StorageError>> {
    let all: Vec<NewRecord> = group.iter().flat_map(|(r, _)| r.iter().cloned()).collect();
    match storage.append(name, all, max_len).await {
        Ok(outcome) => split_outcome(outcome, group.iter().map(|(r, _)| r.len()))
            .into_iter()
            .map(Ok)
            .collect(),
        Err(StorageError::MailboxFull { .. }) if group.len() > 1 => {
            let mut out = Vec::with_capacity(group.len());
            for (records, _) in group {
                out.push(storage.append(name, records.clone(), max_len).await);
            }
            out
        }
        Err(e) => {
            let msg = e.to_string();
            let mut out = vec![Err(e)];
            out.extend((1..group.len()).map(|_| Err(StorageError::Unavailable(msg.clone()))));
            out
        }
    }
}

impl Actor for MailboxActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        metrics::gauge!("mailbox_actors", "kind" => "mailbox").increment(1.0);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("mailbox_actors", "kind" => "mailbox").decrement(1.0);
    }
}

impl Supervised for MailboxActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(mailbox = %self.name, "mailbox actor restarting");
        // Callers of the write that failed get an error (their reply sender is dropped);
        // everything stored is in storage, so nothing else needs rebuilding.
        self.writing = false;
    }
}

impl Handler<Deliver> for MailboxActor {
    type Result = ResponseFuture<Result<AppendOutcome, StorageError>>;

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.queue.push_back((msg.records, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(StorageError::Unavailable(
                    "mailbox actor restarted mid-write".into(),
                ))
            })
        })
    }
}

impl Handler<Stored> for MailboxActor {
    type Result = ();

    fn handle(&mut self, msg: Stored, _: &mut Context<Self>) {
        let mut last = 0;
        for (seq, rec) in &msg.records {
            last = last.max(*seq);
            // Sets `Pushed.require_ack` from the copy's envelope, like a direct send's push.
            self.push(*seq, &rec.record);
        }
        if last > 0 {
            self.liveness.seq.send_if_modified(|s| {
                let changed = last > *s;
                *s = (*s).max(last);
                changed
            });
        }
        self.update_busy();
    }
}

impl Handler<Watch> for MailboxActor {
    type Result = MessageResult<Watch>;

    fn handle(&mut self, _: Watch, _: &mut Context<Self>) -> Self::Result {
        let rx = self.liveness.seq.subscribe();
        self.update_busy();
        MessageResult(rx)
    }
}

impl Handler<Retire> for MailboxActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        self.retired = true;
        self.flush(ctx);
    }
}

impl Handler<AddSubscriber> for MailboxActor {
    type Result = u64;

    fn handle(&mut self, msg: AddSubscriber, _: &mut Context<Self>) -> u64 {
        self.subscribers.insert(msg.key, msg.recipient);
        self.liveness
            .subscribers
            .store(self.subscribers.len(), Ordering::Relaxed);
        *self.liveness.seq.borrow()
    }
}

impl Handler<RemoveSubscriber> for MailboxActor {
    type Result = ();

    fn handle(&mut self, msg: RemoveSubscriber, _: &mut Context<Self>) {
        self.subscribers.remove(&msg.key);
        self.liveness
            .subscribers
            .store(self.subscribers.len(), Ordering::Relaxed);
        self.update_busy();
    }
}

/// How many messages one remote announcement may fetch for pushing; older ones are left to the
/// sessions' own catch-up from storage.
const REMOTE_FETCH: u64 = 256;

impl Handler<RemoteAppend> for MailboxActor {
    type Result = ();

    fn handle(&mut self, msg: RemoteAppend, ctx: &mut Context<Self>) {
        self.liveness.seq.send_if_modified(|s| {
            let changed = msg.seq > *s;
            *s = (*s).max(msg.seq);
            changed
        });
        if self.subscribers.is_empty() || msg.seq <= self.pushed_upto {
            self.pushed_upto = self.pushed_upto.max(msg.seq);
            return;
        }
        let after = self.pushed_upto.max(msg.seq.saturating_sub(REMOTE_FETCH));
        let (storage, name) = (self.storage.clone(), self.name.clone());
        let fut = async move {
            storage
                .range(
                    &Stream::Mailbox(name),
                    after,
                    Some(msg.seq + 1),
                    REMOTE_FETCH as usize,
                )
                .await
        };
        ctx.spawn(fut.into_actor(self).map(|r, act, _| match r {
            Ok(records) => {
                for rec in records {
                    if rec.seq > act.pushed_upto {
                        act.push(rec.seq, &rec.record);
                    }
                }
            }
            Err(e) => tracing::debug!(mailbox = %act.name, error = %e, "cannot fetch remote messages to push"),
        }));
    }
}

impl Handler<Wake> for MailboxActor {
    type Result = ();

    fn handle(&mut self, _: Wake, _: &mut Context<Self>) {
        // Notifies every receiver without changing the last stored seq.
        self.liveness.seq.send_modify(|_| {});
    }
}
