//! The topic actor: orders the writes of one topic's history on this node, like the mailbox
//! actor does for a mailbox.
//!
//! Publishes queue up while one write is in flight and are then stored together in one atomic
//! storage call (group commit). Each stored message is handed to the router, which pushes it to
//! matching live subscriptions. Copies into subscribers' mailboxes are made by the send path
//! after this actor answers, so a large fan-out never holds up the topic's next write.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{oneshot, watch};

use super::messages::{Publish, RetireTopic, Route, WatchTopic};
use super::router::RouterHandle;
use super::TopicSettings;
use crate::storage::group::{next_group, split as split_outcome};
use crate::storage::{
    decode, AppendOutcome, Appended, NewRecord, StorageError, StorageHandle, TopicAppend,
};

type Reply = oneshot::Sender<Result<AppendOutcome, StorageError>>;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What the registry reads for idle sweeps without a message round trip.
pub struct TopicLiveness {
    last_active_ms: AtomicI64,
    /// A write is queued or in flight.
    writing: AtomicBool,
    /// The last seq this node stored; long-polls hold receivers of it.
    seq: watch::Sender<u64>,
}

impl Default for TopicLiveness {
    fn default() -> Self {
        Self {
            last_active_ms: AtomicI64::new(now_ms()),
            writing: AtomicBool::new(false),
            seq: watch::channel(0).0,
        }
    }
}

impl TopicLiveness {
    /// True when nothing is queued, nobody waits on the topic and it saw no use for `idle_ms`.
    pub fn is_idle(&self, idle_ms: i64) -> bool {
        !self.writing.load(Ordering::Relaxed)
            && self.seq.receiver_count() == 0
            && now_ms() - self.last_active_ms.load(Ordering::Relaxed) >= idle_ms
    }
}

pub struct TopicActor {
    name: String,
    topic: Arc<str>,
    storage: StorageHandle,
    router: RouterHandle,
    settings: TopicSettings,
    queue: VecDeque<(Vec<NewRecord>, Reply)>,
    writing: bool,
    retired: bool,
    /// The topic is known to exist, so appends need not try to create it.
    known: bool,
    liveness: Arc<TopicLiveness>,
}

impl TopicActor {
    pub fn new(
        name: String,
        storage: StorageHandle,
        router: RouterHandle,
        settings: TopicSettings,
        liveness: Arc<TopicLiveness>,
    ) -> Self {
        Self {
            topic: Arc::from(name.as_str()),
            name,
            storage,
            router,
            settings,
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
        let writer = Writer {
            storage: self.storage.clone(),
            name: self.name.clone(),
            auto_create: self.settings.auto_create,
            default_max_len: self.settings.defaults.retention_max_len.unwrap_or(u64::MAX),
        };
        let known = self.known;
        let fut = async move {
            let outcomes = writer.store_group(&group, known).await;
            (group, outcomes)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(group, outcomes), act, ctx| {
                    act.writing = false;
                    let mut last = 0;
                    for ((records, reply), outcome) in group.into_iter().zip(outcomes) {
                        if let Ok(o) = &outcome {
                            act.known = true;
                            for (r, rec) in o.results.iter().zip(&records) {
                                if let Appended::Stored { seq } = r {
                                    last = last.max(*seq);
                                    act.route(*seq, rec);
                                }
                            }
                        }
                        // The caller may have gone away (timeout, closed connection).
                        let _ = reply.send(outcome);
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

    /// Hands one stored message to the router for live pushes, serialized once.
    fn route(&self, seq: u64, rec: &NewRecord) {
        if !self.router.has_live() {
            return;
        }
        let env = match decode(&rec.record, seq) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(topic = %self.name, seq, error = %e, "cannot decode a record just stored");
                return;
            }
        };
        match serde_json::to_string(&env) {
            Ok(json) => self.router.route(Route {
                topic: self.topic.clone(),
                seq,
                json: Arc::from(json),
                created_at_ms: env.created_at.timestamp_millis(),
            }),
            Err(e) => {
                tracing::error!(topic = %self.name, seq, error = %e, "cannot serialize an envelope")
            }
        }
    }
}

/// What one group commit needs, moved into its future.
struct Writer {
    storage: StorageHandle,
    name: String,
    auto_create: bool,
    default_max_len: u64,
}

impl Writer {
    /// One append; a topic deleted meanwhile (on any node) is created again when topics are
    /// auto-created, and is `UnknownTopic` otherwise.
    async fn append(
        &self,
        records: Vec<NewRecord>,
        known: bool,
    ) -> Result<AppendOutcome, StorageError> {
        let opts = |create| TopicAppend {
            create,
            default_max_len: self.default_max_len,
        };
        let create = self.auto_create && !known;
        match self
            .storage
            .append_topic(&self.name, records.clone(), opts(create))
            .await
        {
            Err(StorageError::UnknownTopic(_)) if self.auto_create && !create => {
                self.storage
                    .append_topic(&self.name, records, opts(true))
                    .await
            }
            other => other,
        }
    }

    /// Stores a group in one call; if it cannot (a group longer than the topic's length limit),
    /// each publish on its own.
    async fn store_group(
        &self,
        group: &[(Vec<NewRecord>, Reply)],
        known: bool,
    ) -> Vec<Result<AppendOutcome, StorageError>> {
        let all: Vec<NewRecord> = group.iter().flat_map(|(r, _)| r.iter().cloned()).collect();
        match self.append(all, known).await {
            Ok(outcome) => split_outcome(outcome, group.iter().map(|(r, _)| r.len()))
                .into_iter()
                .map(Ok)
                .collect(),
            Err(StorageError::MailboxFull { .. }) if group.len() > 1 => {
                let mut out = Vec::with_capacity(group.len());
                for (records, _) in group {
                    out.push(self.append(records.clone(), true).await);
                }
                out
            }
            Err(e) => {
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
}

impl Actor for TopicActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        metrics::gauge!("mailbox_actors", "kind" => "topic").increment(1.0);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("mailbox_actors", "kind" => "topic").decrement(1.0);
    }
}

impl Supervised for TopicActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(topic = %self.name, "topic actor restarting");
        // Callers of the write that failed get an error; everything stored is in storage.
        self.writing = false;
    }
}

impl Handler<Publish> for TopicActor {
    type Result = ResponseFuture<Result<AppendOutcome, StorageError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.queue.push_back((msg.records, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(StorageError::Unavailable(
                    "topic actor restarted mid-write".into(),
                ))
            })
        })
    }
}

impl Handler<WatchTopic> for TopicActor {
    type Result = MessageResult<WatchTopic>;

    fn handle(&mut self, _: WatchTopic, _: &mut Context<Self>) -> Self::Result {
        let rx = self.liveness.seq.subscribe();
        self.update_busy();
        MessageResult(rx)
    }
}

impl Handler<RetireTopic> for TopicActor {
    type Result = ();

    fn handle(&mut self, _: RetireTopic, ctx: &mut Context<Self>) {
        self.retired = true;
        self.flush(ctx);
    }
}
