//! The supervising registry: finds or starts the actor of a mailbox or topic, retires idle ones,
//! trims topic histories to their age limit, and counts what is alive. Every later actor kind
//! (retry, dead letters) hangs here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::messages::{
    ActorCounts, CloseAllSessions, CloseSession, CountActors, GetMailbox, GetTopic, Notify,
    NotifyStored, RegisterSession, UnregisterSession,
};
use crate::mailbox::messages::{Retire, Stored, Wake};
use crate::mailbox::{Liveness, MailboxActor};
use crate::storage::events::{EventBus, StreamAppended};
use crate::storage::{DeliverySettings, StorageHandle};
use crate::topic::messages::RetireTopic;
use crate::topic::{RouterHandle, TopicActor, TopicLiveness, TopicSettings};

/// What the registry needs to start actors.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// `limits.mailbox_max_len`: the length a mailbox without its own `max_len` may reach.
    pub default_max_len: u64,
    /// A mailbox or topic actor with no activity for this long is stopped (its data stays in
    /// storage).
    pub idle_timeout: Duration,
    /// Config `[topics]`.
    pub topics: TopicSettings,
    /// Cross-node announcements (Redis engine); `None` for a single node.
    pub bus: Option<EventBus>,
    /// Config `[delivery]`: ack timeout, backoff, attempts.
    pub delivery: DeliverySettings,
}

/// Shared map of live mailbox actors (see `Registry::directory`).
pub type Directory = Arc<std::sync::RwLock<HashMap<String, Addr<MailboxActor>>>>;

pub struct Registry {
    storage: StorageHandle,
    router: RouterHandle,
    settings: RegistrySettings,
    mailboxes: HashMap<String, (Addr<MailboxActor>, Arc<Liveness>)>,
    topics: HashMap<String, (Addr<TopicActor>, Arc<TopicLiveness>)>,
    /// A trim pass is running (passes never overlap).
    trimming: bool,
    /// A read-only copy of the live mailbox actors for handles, so a send to a live mailbox
    /// skips the registry hop. Only the registry writes it.
    directory: Directory,
    /// Live WebSocket sessions on this node: id -> (agent, how to close it).
    sessions: HashMap<u64, (String, Recipient<CloseSession>)>,
}

impl Registry {
    pub fn new(
        storage: StorageHandle,
        router: RouterHandle,
        settings: RegistrySettings,
        directory: Directory,
    ) -> Self {
        Self {
            storage,
            router,
            settings,
            directory,
            mailboxes: HashMap::new(),
            topics: HashMap::new(),
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
        let mut dir = self.directory.write().unwrap_or_else(|p| p.into_inner());
        self.mailboxes.retain(|name, (addr, live)| {
            let keep = addr.connected() && !live.is_idle(idle_ms);
            if !keep {
                tracing::debug!(mailbox = %name, "retiring idle mailbox actor");
                dir.remove(name);
                addr.do_send(Retire);
            }
            keep
        });
        self.topics.retain(|name, (addr, live)| {
            let keep = addr.connected() && !live.is_idle(idle_ms);
            if !keep {
                tracing::debug!(topic = %name, "retiring idle topic actor");
                addr.do_send(RetireTopic);
            }
            keep
        });
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
        self.directory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl Handler<GetMailbox> for Registry {
    type Result = MessageResult<GetMailbox>;

    fn handle(&mut self, msg: GetMailbox, _: &mut Context<Self>) -> Self::Result {
        if let Some((addr, _)) = self.mailboxes.get(&msg.name) {
            if addr.connected() {
                return MessageResult(addr.clone());
            }
        }
        let live = Arc::new(Liveness::default());
        let (storage, max_len, name, l) = (
            self.storage.clone(),
            self.settings.default_max_len,
            msg.name.clone(),
            live.clone(),
        );
        let bus = self.settings.bus.clone();
        let addr = Supervisor::start(move |_| MailboxActor::new(name, storage, max_len, l, bus));
        self.directory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(msg.name.clone(), addr.clone());
        self.mailboxes.insert(msg.name, (addr.clone(), live));
        MessageResult(addr)
    }
}

impl Handler<GetTopic> for Registry {
    type Result = MessageResult<GetTopic>;

    fn handle(&mut self, msg: GetTopic, _: &mut Context<Self>) -> Self::Result {
        if let Some((addr, _)) = self.topics.get(&msg.name) {
            if addr.connected() {
                return MessageResult(addr.clone());
            }
        }
        let live = Arc::new(TopicLiveness::default());
        let (storage, router, settings, name, l) = (
            self.storage.clone(),
            self.router.clone(),
            self.settings.topics.clone(),
            msg.name.clone(),
            live.clone(),
        );
        let addr = Supervisor::start(move |_| TopicActor::new(name, storage, router, settings, l));
        self.topics.insert(msg.name, (addr.clone(), live));
        MessageResult(addr)
    }
}

impl Handler<NotifyStored> for Registry {
    type Result = ();

    fn handle(&mut self, msg: NotifyStored, _: &mut Context<Self>) {
        let mut announce: HashMap<String, u64> = HashMap::new();
        for (mailbox, seq, record) in msg.items {
            if let Some((addr, _)) = self.mailboxes.get(&mailbox) {
                if addr.connected() {
                    addr.do_send(Stored {
                        records: vec![(seq, record)],
                    });
                }
            }
            let last = announce.entry(mailbox).or_default();
            *last = (*last).max(seq);
        }
        // Like a mailbox actor after a group commit: other nodes push to their live sessions.
        if let Some(bus) = self.settings.bus.clone() {
            actix::spawn(async move {
                for (mailbox, seq) in announce {
                    bus.announce(&mailbox, seq).await;
                }
            });
        }
    }
}

impl Handler<Notify> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) {
        // Only a live actor can have waiters; an absent one has nobody to wake.
        if let Some((addr, _)) = self.mailboxes.get(&msg.name) {
            addr.do_send(Wake);
        }
    }
}

impl Handler<CountActors> for Registry {
    type Result = MessageResult<CountActors>;

    fn handle(&mut self, _: CountActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(ActorCounts {
            mailboxes: self.mailboxes.len(),
            topics: self.topics.len(),
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

    /// Another node wrote to a stream: only a mailbox live here has anyone to tell.
    fn handle(&mut self, msg: StreamAppended, _: &mut Context<Self>) {
        if let Some((addr, _)) = self.mailboxes.get(&msg.stream) {
            addr.do_send(crate::mailbox::messages::RemoteAppend { seq: msg.seq });
        }
    }
}
