//! The router: one per node. It holds two pattern tries:
//!
//! - **live**: WebSocket subscriptions (`topic:<pattern>` targets) of this node's sessions. Topic
//!   actors send it every message they store ([`Route`]); it pushes one [`Pushed`] per matching
//!   subscription.
//! - **durable**: every durable subscription in storage (the source of truth). The send path asks
//!   it which mailboxes get a copy of a topic message ([`DurableTargets`]).
//!
//! The durable trie is loaded from storage on first use, updated at once by changes made on this
//! node (so a deleted subscription stops copies before the DELETE answers), and reloaded when the
//! storage's subscription version moves (changes made on other nodes), checked every second.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::messages::{
    AddLive, DurableTargets, RemoteRoute, RemoveLive, Route, SubscriptionAdded, SubscriptionRemoved,
};
use super::trie::PatternTrie;
use crate::error::Error;
use crate::mailbox::messages::{Pushed, SubscriberKey};
use crate::model::Subscription;
use crate::storage::{StorageError, StorageHandle, Stream};

/// How often the storage's subscription version is checked for changes made elsewhere.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// One live subscription.
struct Live {
    key: SubscriberKey,
    pattern: String,
    recipient: Recipient<Pushed>,
}

pub struct Router {
    storage: StorageHandle,
    /// Live subscriptions by a router-local number (cheap to match, hash and copy).
    live: PatternTrie<u64>,
    recipients: HashMap<u64, Live>,
    numbers: HashMap<SubscriberKey, u64>,
    next_number: u64,
    /// Shared with the handle, so topic actors skip serializing when nobody listens live.
    live_count: Arc<AtomicUsize>,
    durable: PatternTrie<String>,
    subs: HashMap<String, Subscription>,
    /// The storage version the durable trie reflects; `None` until first loaded.
    version: Option<u64>,
    /// Bumped by every change applied on this node: a reload that started before one is stale.
    local_changes: u64,
    reloading: bool,
}

impl Router {
    fn new(storage: StorageHandle, live_count: Arc<AtomicUsize>) -> Self {
        Self {
            storage,
            live: PatternTrie::new(),
            recipients: HashMap::new(),
            numbers: HashMap::new(),
            next_number: 0,
            live_count,
            durable: PatternTrie::new(),
            subs: HashMap::new(),
            version: None,
            local_changes: 0,
            reloading: false,
        }
    }

    fn set_live_count(&self) {
        self.live_count
            .store(self.recipients.len(), Ordering::Relaxed);
    }

    fn remove_live(&mut self, key: &SubscriberKey) {
        if let Some(n) = self.numbers.remove(key) {
            self.forget(n);
        }
    }

    fn forget(&mut self, n: u64) {
        if let Some(live) = self.recipients.remove(&n) {
            self.live.remove(&live.pattern, &n);
            self.numbers.remove(&live.key);
        }
    }

    fn replace_durable(&mut self, version: u64, subs: Vec<Subscription>) {
        self.durable = PatternTrie::new();
        self.subs.clear();
        for s in subs {
            self.durable.insert(&s.pattern, s.id.clone());
            self.subs.insert(s.id.clone(), s);
        }
        self.version = Some(version);
        metrics::gauge!("mailbox_durable_subscriptions").set(self.subs.len() as f64);
    }

    fn targets(&self, topic: &str) -> Vec<String> {
        let mut mailboxes: BTreeSet<&str> = BTreeSet::new();
        self.durable.for_each_match(topic, |id| {
            if let Some(s) = self.subs.get(id) {
                mailboxes.insert(s.mailbox.as_str());
            }
        });
        mailboxes.into_iter().map(str::to_owned).collect()
    }

    /// Reloads the durable trie if storage has moved on (or it was never loaded).
    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.reloading {
            return;
        }
        self.reloading = true;
        let (storage, known, started_at) = (self.storage.clone(), self.version, self.local_changes);
        let fut = async move {
            let v = storage.subscriptions_version().await?;
            if Some(v) == known {
                return Ok(None);
            }
            Ok::<_, StorageError>(Some((v, storage.subscriptions().await?)))
        };
        ctx.spawn(fut.into_actor(self).map(move |r, act, _| {
            act.reloading = false;
            match r {
                Ok(Some((v, subs))) if act.local_changes == started_at => {
                    act.replace_durable(v, subs)
                }
                // A change made here meanwhile: the next poll reloads.
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "cannot refresh durable subscriptions"),
            }
        }));
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16_384);
        self.poll(ctx);
        ctx.run_interval(POLL_EVERY, |act, ctx| act.poll(ctx));
    }
}

impl Supervised for Router {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Live registrations are kept (they are this node's sessions); the durable trie is
        // rebuilt from storage on the next poll.
        self.version = None;
        self.reloading = false;
    }
}

impl Handler<AddLive> for Router {
    type Result = ();

    fn handle(&mut self, msg: AddLive, _: &mut Context<Self>) {
        self.remove_live(&msg.key);
        let n = self.next_number;
        self.next_number += 1;
        self.live.insert(&msg.pattern, n);
        self.numbers.insert(msg.key.clone(), n);
        self.recipients.insert(
            n,
            Live {
                key: msg.key,
                pattern: msg.pattern,
                recipient: msg.recipient,
            },
        );
        self.set_live_count();
    }
}

impl Handler<RemoveLive> for Router {
    type Result = ();

    fn handle(&mut self, msg: RemoveLive, _: &mut Context<Self>) {
        self.remove_live(&msg.key);
        self.set_live_count();
    }
}

impl Handler<Route> for Router {
    type Result = ();

    fn handle(&mut self, msg: Route, _: &mut Context<Self>) {
        let mut gone = Vec::new();
        let recipients = &self.recipients;
        self.live.for_each_match(&msg.topic, |n| {
            let Some(live) = recipients.get(n) else {
                return;
            };
            if !live.recipient.connected() {
                gone.push(*n);
                return;
            }
            live.recipient.do_send(Pushed {
                subscription: live.key.subscription.clone(),
                stream: msg.topic.clone(),
                seq: msg.seq,
                json: msg.json.clone(),
                created_at_ms: msg.created_at_ms,
                // A topic history has no delivery state: nothing there awaits an ack (the
                // mailbox copies of durable subscribers do, and are pushed by their mailbox).
                require_ack: false,
                redelivery: false,
            });
        });
        if !gone.is_empty() {
            for n in gone {
                self.forget(n);
            }
            self.set_live_count();
        }
    }
}

/// Most messages of one remote group fetched for live pushes.
const REMOTE_FETCH: u64 = 1024;

impl Handler<RemoteRoute> for Router {
    type Result = ();

    fn handle(&mut self, msg: RemoteRoute, ctx: &mut Context<Self>) {
        let mut any = false;
        self.live.for_each_match(&msg.topic, |_| any = true);
        if !any {
            return;
        }
        let first = msg.first.max(msg.last.saturating_sub(REMOTE_FETCH - 1));
        let (storage, topic) = (self.storage.clone(), msg.topic);
        let fut = async move {
            let stream = Stream::Topic(topic.clone());
            let limit = (msg.last + 1 - first) as usize;
            let records = storage
                .range(&stream, first.saturating_sub(1), Some(msg.last + 1), limit)
                .await;
            (topic, records)
        };
        ctx.spawn(fut.into_actor(self).map(|(topic, r), act, ctx| match r {
            Ok(records) => {
                let topic: Arc<str> = Arc::from(topic);
                for rec in records {
                    if let Some(route) = Route::of(&topic, rec.seq, &rec.record) {
                        <Self as Handler<Route>>::handle(act, route, ctx);
                    }
                }
            }
            Err(e) => tracing::debug!(%topic, error = %e, "cannot fetch another node's publishes"),
        }));
    }
}

impl Handler<DurableTargets> for Router {
    type Result = ResponseActFuture<Self, Result<Vec<String>, Error>>;

    /// Answers from a trie at least as new as storage's subscriptions when the publish began:
    /// the version is read first (one round trip), and the trie reloaded if another node changed
    /// the subscriptions since. So a subscription any node acknowledged before a publish gets its
    /// copy, and the publishing node alone computes the copies of its publish.
    fn handle(&mut self, msg: DurableTargets, _: &mut Context<Self>) -> Self::Result {
        let storage = self.storage.clone();
        let (known, started_at) = (self.version, self.local_changes);
        let load = async move {
            let v = storage.subscriptions_version().await?;
            if Some(v) == known {
                return Ok::<_, StorageError>((v, None));
            }
            Ok((v, Some(storage.subscriptions().await?)))
        };
        Box::pin(load.into_actor(self).map(move |r, act, _| {
            let (v, subs) = r?;
            if let Some(subs) = subs {
                // A change made here meanwhile is in storage too, so the fresh load has it.
                if act.version.is_none_or(|mine| mine < v) || act.local_changes == started_at {
                    act.replace_durable(v, subs);
                }
            }
            Ok(act.targets(&msg.topic))
        }))
    }
}

impl Handler<SubscriptionAdded> for Router {
    type Result = ();

    fn handle(&mut self, msg: SubscriptionAdded, _: &mut Context<Self>) {
        self.local_changes += 1;
        let s = msg.0;
        if !self.subs.contains_key(&s.id) {
            self.durable.insert(&s.pattern, s.id.clone());
            self.subs.insert(s.id.clone(), s);
        }
        metrics::gauge!("mailbox_durable_subscriptions").set(self.subs.len() as f64);
    }
}

impl Handler<SubscriptionRemoved> for Router {
    type Result = ();

    fn handle(&mut self, msg: SubscriptionRemoved, _: &mut Context<Self>) {
        self.local_changes += 1;
        if let Some(s) = self.subs.remove(&msg.0.id) {
            self.durable.remove(&s.pattern, &s.id);
        }
        metrics::gauge!("mailbox_durable_subscriptions").set(self.subs.len() as f64);
    }
}

/// Cloneable access to the router: live pattern subscriptions and durable subscriptions.
#[derive(Clone)]
pub struct RouterHandle {
    addr: Addr<Router>,
    storage: StorageHandle,
    live_count: Arc<AtomicUsize>,
}

impl RouterHandle {
    /// Starts the router under a supervisor on the current arbiter.
    pub fn start(storage: StorageHandle) -> Self {
        let live_count = Arc::new(AtomicUsize::new(0));
        let (s, l) = (storage.clone(), live_count.clone());
        let addr = Supervisor::start(move |_| Router::new(s, l));
        Self {
            addr,
            storage,
            live_count,
        }
    }

    /// True when some live subscription exists on this node (else routing can be skipped).
    pub fn has_live(&self) -> bool {
        self.live_count.load(Ordering::Relaxed) > 0
    }

    /// Pushes a stored topic message to matching live subscriptions (fire and forget).
    pub(crate) fn route(&self, msg: Route) {
        self.addr.do_send(msg);
    }

    /// Pushes messages another node stored in `topic` to matching live subscriptions here.
    pub(crate) fn route_remote(&self, topic: &str, first: u64, last: u64) {
        self.addr.do_send(RemoteRoute {
            topic: topic.to_owned(),
            first,
            last,
        });
    }

    /// Pushes every message published from now on to a topic matching `pattern` to `recipient`.
    pub async fn add_live(
        &self,
        key: SubscriberKey,
        pattern: &str,
        recipient: Recipient<Pushed>,
    ) -> Result<(), Error> {
        Ok(self
            .addr
            .send(AddLive {
                key,
                pattern: pattern.to_owned(),
                recipient,
            })
            .await?)
    }

    /// Stops pushes to a live subscription.
    pub fn remove_live(&self, key: SubscriberKey) {
        self.addr.do_send(RemoveLive { key });
    }

    /// The mailboxes that get a copy of a message published to `topic`, each once.
    pub async fn durable_targets(&self, topic: &str) -> Result<Vec<String>, Error> {
        self.addr
            .send(DurableTargets {
                topic: topic.to_owned(),
            })
            .await?
    }

    /// Stores a durable subscription of `mailbox` to `pattern` (or finds the same one);
    /// answers it and whether it is new. Matching starts before this answers.
    pub async fn subscribe(
        &self,
        pattern: &str,
        mailbox: &str,
        created_by: &str,
    ) -> Result<(Subscription, bool), Error> {
        let sub = Subscription {
            id: crate::model::new_id(),
            pattern: pattern.to_owned(),
            mailbox: mailbox.to_owned(),
            created_at: chrono::Utc::now(),
            created_by: created_by.to_owned(),
        };
        let (stored, created) = self.storage.add_subscription(sub).await?;
        self.addr.send(SubscriptionAdded(stored.clone())).await?;
        Ok((stored, created))
    }

    /// Removes a durable subscription; copies stop before this answers. Answers what was removed.
    pub async fn unsubscribe(&self, id: &str) -> Result<Option<Subscription>, Error> {
        let removed = self.storage.remove_subscription(id).await?;
        if let Some(s) = &removed {
            self.addr.send(SubscriptionRemoved(s.clone())).await?;
        }
        Ok(removed)
    }

    /// Every durable subscription, from storage.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, Error> {
        Ok(self.storage.subscriptions().await?)
    }

    /// One durable subscription, from storage.
    pub async fn subscription(&self, id: &str) -> Result<Option<Subscription>, Error> {
        Ok(self
            .storage
            .subscriptions()
            .await?
            .into_iter()
            .find(|s| s.id == id))
    }
}
