//! The supervising registry: finds or starts the writer of a mailbox or topic, retires idle
//! ones, trims topic histories to their age limit, tracks this node's WebSocket sessions, and
//! counts what is alive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::messages::{
    ActorCounts, CloseAllSessions, CloseSession, CountActors, GetWriter, Notify, RegisterSession,
    UnregisterSession,
};
use crate::mailbox::cache::CacheBudget;
use crate::mailbox::messages::Wake;
use crate::mailbox::MailboxKind;
use crate::spool::Spool;
use crate::storage::events::{EventBus, StreamAppended};
use crate::storage::{DeliverySettings, StorageHandle};
use crate::stream::{CommitLanes, Liveness, Retire, StreamKind, StreamWriter};
use crate::topic::writer::TOPIC_STREAM;
use crate::topic::{RouterHandle, TopicKind, TopicSettings};

/// What the registry needs to start actors.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// `limits.mailbox_max_len`: the length a mailbox without its own `max_len` may reach.
    pub default_max_len: u64,
    /// A mailbox or topic writer with no activity for this long is stopped (its data stays in
    /// storage).
    pub idle_timeout: Duration,
    /// Config `[topics]`.
    pub topics: TopicSettings,
    /// Cross-node announcements (Redis engine); `None` for a single node.
    pub bus: Option<EventBus>,
    /// Config `[delivery]`: ack timeout, backoff, attempts.
    pub delivery: DeliverySettings,
    /// The node's spool (Redis engine with `[spool]` enabled): mailbox writers spool through it.
    pub spool: Option<Spool>,
    /// Config `[cache]`: the budget of the mailbox writers' recent-message caches.
    pub cache: Arc<CacheBudget>,
}

/// How a redelivery wake of a mailbox is named in cross-node announcements.
const WAKE_STREAM: &str = "wake:";

/// A read-only copy of the live writers of one kind, shared with the handles so a write to a
/// live stream skips the registry hop. Only the registry writes it.
pub type Directory<K> = Arc<std::sync::RwLock<HashMap<String, Addr<StreamWriter<K>>>>>;

/// The live writers of one kind on this node.
pub struct Writers<K: StreamKind> {
    live: HashMap<String, (Addr<StreamWriter<K>>, Arc<Liveness>)>,
    directory: Directory<K>,
}

impl<K: StreamKind> Writers<K> {
    pub fn new(directory: Directory<K>) -> Self {
        Self {
            live: HashMap::new(),
            directory,
        }
    }

    fn get(&self, name: &str) -> Option<&Addr<StreamWriter<K>>> {
        self.live
            .get(name)
            .map(|(addr, _)| addr)
            .filter(|a| a.connected())
    }

    fn insert(&mut self, name: String, addr: Addr<StreamWriter<K>>, live: Arc<Liveness>) {
        self.directory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), addr.clone());
        self.live.insert(name, (addr, live));
    }

    /// Retires the writers idle for `idle_ms` (or gone).
    fn sweep(&mut self, idle_ms: i64) {
        let mut dir = self.directory.write().unwrap_or_else(|p| p.into_inner());
        self.live.retain(|name, (addr, live)| {
            let keep = addr.connected() && !live.is_idle(idle_ms);
            if !keep {
                tracing::debug!(kind = K::KIND, stream = %name, "retiring idle writer");
                dir.remove(name);
                addr.do_send(Retire);
            }
            keep
        });
    }

    fn clear(&mut self) {
        self.live.clear();
        self.directory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Starting the writers of one kind: the kind's own settings, and where the registry keeps them.
pub trait Registered: StreamKind {
    fn make(name: &str, reg: &Registry) -> Self;
    fn writers(reg: &mut Registry) -> &mut Writers<Self>;
}

impl Registered for MailboxKind {
    fn make(name: &str, reg: &Registry) -> Self {
        MailboxKind::new(
            name,
            reg.lanes.clone(),
            reg.settings.bus.clone(),
            reg.settings.delivery.clone(),
            reg.settings.spool.clone(),
            reg.settings.cache.clone(),
        )
    }

    fn writers(reg: &mut Registry) -> &mut Writers<Self> {
        &mut reg.mailboxes
    }
}

impl Registered for TopicKind {
    fn make(name: &str, reg: &Registry) -> Self {
        TopicKind::new(
            name,
            reg.router.clone(),
            reg.settings.topics.clone(),
            reg.settings.bus.clone(),
        )
    }

    fn writers(reg: &mut Registry) -> &mut Writers<Self> {
        &mut reg.topics
    }
}

pub struct Registry {
    storage: StorageHandle,
    /// Carries the mailbox writers' group commits to storage.
    lanes: CommitLanes,
    router: RouterHandle,
    settings: RegistrySettings,
    mailboxes: Writers<MailboxKind>,
    topics: Writers<TopicKind>,
    /// A trim pass is running (passes never overlap).
    trimming: bool,
    /// Live WebSocket sessions on this node: id -> (agent, how to close it).
    sessions: HashMap<u64, (String, Recipient<CloseSession>)>,
}

impl Registry {
    pub fn new(
        storage: StorageHandle,
        router: RouterHandle,
        settings: RegistrySettings,
        mailboxes: Directory<MailboxKind>,
        topics: Directory<TopicKind>,
    ) -> Self {
        Self {
            lanes: CommitLanes::start(storage.clone(), settings.default_max_len),
            storage,
            router,
            settings,
            mailboxes: Writers::new(mailboxes),
            topics: Writers::new(topics),
            trimming: false,
            sessions: HashMap::new(),
        }
    }

    /// Starts a pass that trims every topic history to its age limit, unless one is running.
    fn trim_topics(&mut self, ctx: &mut Context<Self>) {
        if self.trimming {
            return;
        }
        self.trimming = true;
        let (storage, settings) = (self.storage.clone(), self.settings.topics.clone());
        let fut = async move { crate::topic::trim_all(&storage, &settings).await };
        ctx.spawn(fut.into_actor(self).map(|r, act, _| {
            act.trimming = false;
            match r {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "trimmed topic histories by age"),
                Err(e) => tracing::warn!(error = %e, "trimming topic histories failed"),
            }
        }));
    }

    fn sweep(&mut self) {
        let idle_ms = i64::try_from(self.settings.idle_timeout.as_millis()).unwrap_or(i64::MAX);
        self.mailboxes.sweep(idle_ms);
        self.topics.sweep(idle_ms);
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(bus) = self.settings.bus.clone() {
            actix::spawn(bus.listen(ctx.address().recipient()));
        }
        let every = (self.settings.idle_timeout / 2).max(Duration::from_millis(100));
        ctx.run_interval(every, |act, _| act.sweep());
        let trim_every = self
            .settings
            .topics
            .trim_interval
            .max(Duration::from_millis(100));
        ctx.run_interval(trim_every, |act, ctx| act.trim_topics(ctx));
    }
}

impl Supervised for Registry {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Children keep running; forgetting them only means the next use starts a fresh actor.
        self.mailboxes.clear();
        self.topics.clear();
        self.trimming = false;
    }
}

impl<K: Registered> Handler<GetWriter<K>> for Registry {
    type Result = MessageResult<GetWriter<K>>;

    fn handle(&mut self, msg: GetWriter<K>, _: &mut Context<Self>) -> Self::Result {
        if let Some(addr) = K::writers(self).get(&msg.name) {
            return MessageResult(addr.clone());
        }
        let live = Arc::new(Liveness::default());
        let kind = K::make(&msg.name, self);
        let (storage, name, l) = (self.storage.clone(), msg.name.clone(), live.clone());
        let addr = Supervisor::start(move |_| StreamWriter::new(name, storage, l, kind));
        K::writers(self).insert(msg.name, addr.clone(), live);
        MessageResult(addr)
    }
}

impl Handler<Notify> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) {
        // Only a live writer can have waiters or sessions; an absent one has nobody to wake.
        if let Some(addr) = self.mailboxes.get(&msg.name) {
            addr.do_send(Wake);
        }
        // The mailbox's sessions and long-polls may be on other nodes.
        if let Some(bus) = self.settings.bus.clone() {
            let stream = format!("{WAKE_STREAM}{}", msg.name);
            actix::spawn(async move { bus.announce(&stream, 0, 0).await });
        }
    }
}

impl Handler<CountActors> for Registry {
    type Result = MessageResult<CountActors>;

    fn handle(&mut self, _: CountActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(ActorCounts {
            mailboxes: self.mailboxes.live.len(),
            topics: self.topics.live.len(),
            sessions: self.sessions.len(),
        })
    }
}

impl Handler<RegisterSession> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterSession, _: &mut Context<Self>) {
        self.sessions.insert(msg.id, (msg.agent, msg.close));
        metrics::gauge!("mailbox_ws_sessions").set(self.sessions.len() as f64);
    }
}

impl Handler<UnregisterSession> for Registry {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSession, _: &mut Context<Self>) {
        self.sessions.remove(&msg.id);
        metrics::gauge!("mailbox_ws_sessions").set(self.sessions.len() as f64);
    }
}

impl Handler<CloseAllSessions> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: CloseAllSessions, _: &mut Context<Self>) -> usize {
        for (_, close) in self.sessions.values() {
            close.do_send(CloseSession {
                code: msg.code,
                reason: msg.reason.clone(),
            });
        }
        self.sessions.len()
    }
}

impl Handler<StreamAppended> for Registry {
    type Result = ();

    /// Another node wrote to a stream: a topic's group goes to the router (live pattern
    /// subscriptions here); a mailbox's to its writer, if it is live here.
    fn handle(&mut self, msg: StreamAppended, _: &mut Context<Self>) {
        if let Some(topic) = msg.stream.strip_prefix(TOPIC_STREAM) {
            self.router.route_remote(topic, msg.first, msg.seq);
        } else if let Some(name) = msg.stream.strip_prefix(WAKE_STREAM) {
            if let Some(addr) = self.mailboxes.get(name) {
                addr.do_send(Wake);
            }
        } else if let Some(addr) = self.mailboxes.get(&msg.stream) {
            addr.do_send(crate::mailbox::messages::RemoteAppend { seq: msg.seq });
        }
    }
}
