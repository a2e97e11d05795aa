//! The mailbox configuration of the stream writer: appends carry delivery state, and each
//! stored record is pushed to the mailbox's live subscribers on this node and announced to the
//! other nodes (whose writers push it to their own sessions), and kept in the writer's cache of
//! recent messages (degraded reads). Appends go through the node's spool while it holds
//! anything or storage cannot take them (see [`crate::spool`]).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::cache::{CacheBudget, RecentCache};
use super::consume::decode_handed;
use super::messages::{
    AddSubscriber, CachedRange, ClearCache, Pushed, RemoteAppend, RemoveSubscriber, Replayed,
    SubscriberKey, Wake,
};
use crate::spool::{Offer, Spool};
use crate::storage::events::EventBus;
use crate::storage::{
    decode, AppendOutcome, DeliverySettings, NewRecord, StorageError, StorageHandle, Stream,
};
use crate::stream::{Appender, CommitLanes, StreamKind, StreamWriter};

/// The writer of one mailbox.
pub type MailboxWriter = StreamWriter<MailboxKind>;

/// How many messages one remote announcement may fetch for pushing; older ones are left to the
/// sessions' own catch-up from storage.
const REMOTE_FETCH: u64 = 256;

pub struct MailboxKind {
    /// Carries group commits to storage, pipelined with other mailboxes' (see
    /// [`CommitLanes`]).
    lanes: CommitLanes,
    subscribers: HashMap<SubscriberKey, Recipient<Pushed>>,
    stream: Arc<str>,
    /// Announces this node's writes to the other nodes (Redis engine only).
    bus: Option<EventBus>,
    /// The highest seq pushed to subscribers so far.
    pushed_upto: u64,
    /// Config `[delivery]`: redeliveries to live sessions are attempts like any other.
    delivery: DeliverySettings,
    /// A redelivery pass is running.
    redelivering: bool,
    /// The node's spool (Redis engine); `None`: storage failures are answered as such.
    spool: Option<Spool>,
    /// The most recent messages storage acknowledged, for degraded reads.
    cache: RecentCache,
}

impl MailboxKind {
    pub fn new(
        name: &str,
        lanes: CommitLanes,
        bus: Option<EventBus>,
        delivery: DeliverySettings,
        spool: Option<Spool>,
        cache: Arc<CacheBudget>,
    ) -> Self {
        Self {
            lanes,
            subscribers: HashMap::new(),
            stream: Arc::from(name),
            bus,
            pushed_upto: 0,
            delivery,
            redelivering: false,
            spool,
            cache: RecentCache::new(cache),
        }
    }

    /// Pushes redeliveries (already recorded as attempts) to one live subscriber: the first
    /// that is still connected. None left: they come back after their ack timeout.
    fn redeliver(&mut self, envs: Vec<crate::model::Envelope>) {
        self.subscribers.retain(|_, r| r.connected());
        let Some((key, r)) = self.subscribers.iter().next() else {
            return;
        };
        for env in envs {
            let Ok(json) = serde_json::to_string(&env) else {
                continue;
            };
            r.do_send(Pushed {
                subscription: key.subscription.clone(),
                stream: self.stream.clone(),
                seq: env.seq.parse().unwrap_or_default(),
                json: Arc::from(json),
                created_at_ms: env.created_at.timestamp_millis(),
                require_ack: true,
                redelivery: true,
            });
        }
    }

    /// Pushes one stored record to every live subscriber, serialized once.
    fn push(&mut self, seq: u64, record: &[u8]) {
        self.pushed_upto = self.pushed_upto.max(seq);
        if self.subscribers.is_empty() {
            return;
        }
        let env = match decode(record, seq) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(mailbox = %self.stream, seq, error = %e, "cannot decode a record just stored");
                return;
            }
        };
        let json: Arc<str> = match serde_json::to_string(&env) {
            Ok(j) => Arc::from(j),
            Err(e) => {
                tracing::error!(mailbox = %self.stream, seq, error = %e, "cannot serialize an envelope");
                return;
            }
        };
        let created_at_ms = env.created_at.timestamp_millis();
        let stream = self.stream.clone();
        self.subscribers.retain(|key, r| {
            if !r.connected() {
                return false;
            }
            r.do_send(Pushed {
                subscription: key.subscription.clone(),
                stream: stream.clone(),
                seq,
                json: json.clone(),
                created_at_ms,
                require_ack: env.require_ack,
                redelivery: false,
            });
            true
        });
    }
}

/// One mailbox append, through the commit lanes: the append script also records the mailbox's
/// creation and its agent as known (a broadcast target). With a spool, the group goes there
/// while it holds anything (order), or when storage answers `Unavailable` (its outcome may be
/// unknown: the replay is idempotent by message id).
pub struct MailboxAppender {
    lanes: CommitLanes,
    spool: Option<Spool>,
}

impl Appender for MailboxAppender {
    async fn append(
        &self,
        _: &StorageHandle,
        name: &str,
        records: Vec<NewRecord>,
        _known: bool,
    ) -> Result<AppendOutcome, StorageError> {
        let Some(spool) = &self.spool else {
            return self.lanes.append(name, records).await;
        };
        let records = match spool.offer(name, records, false).await? {
            Offer::Spooled(outcome) => return Ok(outcome),
            Offer::Declined(records) => records,
        };
        match self.lanes.append(name, records.clone()).await {
            Err(StorageError::Unavailable(why)) => {
                tracing::debug!(mailbox = %name, error = %why, "storage unavailable: spooling");
                match spool.offer(name, records, true).await? {
                    Offer::Spooled(outcome) => Ok(outcome),
                    Offer::Declined(_) => Err(StorageError::Unavailable(why)),
                }
            }
            other => other,
        }
    }
}

impl StreamKind for MailboxKind {
    const KIND: &'static str = "mailbox";
    type Appender = MailboxAppender;

    fn appender(&self) -> MailboxAppender {
        MailboxAppender {
            lanes: self.lanes.clone(),
            spool: self.spool.clone(),
        }
    }

    fn stored(&mut self, name: &str, seq: u64, record: &NewRecord) {
        #[cfg(debug_assertions)]
        super::drill::maybe_panic(name);
        #[cfg(not(debug_assertions))]
        let _ = name;
        self.cache.push(seq, &record.record);
        self.push(seq, &record.record);
    }

    fn committed(&mut self, name: &str, first: u64, last: u64) {
        if let Some(bus) = self.bus.clone() {
            let name = name.to_owned();
            actix::spawn(async move { bus.announce(&name, first, last).await });
        }
    }

    fn listeners(&self) -> usize {
        self.subscribers.len()
    }
}

impl Handler<AddSubscriber> for MailboxWriter {
    type Result = u64;

    fn handle(&mut self, msg: AddSubscriber, _: &mut Context<Self>) -> u64 {
        self.kind.subscribers.insert(msg.key, msg.recipient);
        self.update_busy();
        self.liveness().last_seq()
    }
}

impl Handler<RemoveSubscriber> for MailboxWriter {
    type Result = ();

    fn handle(&mut self, msg: RemoveSubscriber, _: &mut Context<Self>) {
        self.kind.subscribers.remove(&msg.key);
        self.update_busy();
    }
}

impl Handler<RemoteAppend> for MailboxWriter {
    type Result = ();

    /// Another node stored messages here up to `seq`: wake long-polls, push to subscribers.
    fn handle(&mut self, msg: RemoteAppend, ctx: &mut Context<Self>) {
        self.liveness().advance(msg.seq);
        let kind = &mut self.kind;
        if kind.subscribers.is_empty() || msg.seq <= kind.pushed_upto {
            kind.pushed_upto = kind.pushed_upto.max(msg.seq);
            return;
        }
        let after = kind.pushed_upto.max(msg.seq.saturating_sub(REMOTE_FETCH));
        let (storage, name) = (self.storage().clone(), self.name().to_owned());
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
                    if rec.seq > act.kind.pushed_upto {
                        act.kind.push(rec.seq, &rec.record);
                    }
                }
                act.update_busy();
            }
            Err(e) => tracing::debug!(mailbox = %act.name(), error = %e, "cannot fetch remote messages to push"),
        }));
    }
}

/// Redeliveries handed to live subscribers per wake.
const REDELIVER_BATCH: usize = 100;

impl Handler<Wake> for MailboxWriter {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.liveness().wake();
        if self.kind.redelivering || self.kind.subscribers.is_empty() {
            return;
        }
        // An agent that only listens over WebSocket still gets at-least-once delivery: what is
        // due again is taken as a further attempt and pushed on one of its live subscriptions.
        self.kind.redelivering = true;
        let (storage, name) = (self.storage().clone(), self.name().to_owned());
        let delivery = self.kind.delivery.clone();
        let fut = async move {
            let handed = storage.redeliver(&name, REDELIVER_BATCH, &delivery).await?;
            Ok::<_, StorageError>(decode_handed(&name, handed))
        };
        ctx.spawn(fut.into_actor(self).map(|r, act, ctx| {
            act.kind.redelivering = false;
            match r {
                Ok(envs) if !envs.is_empty() => {
                    let full = envs.len() == REDELIVER_BATCH;
                    act.kind.redeliver(envs);
                    if full {
                        ctx.notify(Wake);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(mailbox = %act.name(), error = %e, "redelivery to live sessions failed"),
            }
        }));
    }
}

impl Handler<Replayed> for MailboxWriter {
    type Result = ();

    /// The spool's replayer stored these here: cache, push, wake long-polls, tell other nodes.
    fn handle(&mut self, msg: Replayed, _: &mut Context<Self>) {
        let (mut first, mut last) = (u64::MAX, 0);
        for rec in &msg.records {
            self.kind.cache.push(rec.seq, &rec.record);
            if rec.seq > self.kind.pushed_upto {
                self.kind.push(rec.seq, &rec.record);
            }
            first = first.min(rec.seq);
            last = last.max(rec.seq);
        }
        if last > 0 {
            let name = self.name().to_owned();
            self.kind.committed(&name, first, last);
            self.liveness().advance(last);
        }
        self.update_busy();
    }
}

impl Handler<CachedRange> for MailboxWriter {
    type Result = MessageResult<CachedRange>;

    fn handle(&mut self, msg: CachedRange, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.kind.cache.range(msg.after, msg.before))
    }
}

impl Handler<ClearCache> for MailboxWriter {
    type Result = ();

    fn handle(&mut self, _: ClearCache, _: &mut Context<Self>) {
        self.kind.cache.clear();
    }
}
