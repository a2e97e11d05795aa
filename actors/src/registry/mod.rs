//! The supervising registry: one per node. It finds or starts the writer of each active
//! mailbox and topic (and retires idle ones), and tracks this node's WebSocket sessions. The
//! send path that decides which streams a message goes to is [`crate::dispatch`].

pub mod actor;
mod faces;
pub mod messages;

use std::marker::PhantomData;
use std::sync::Arc;

use actix::prelude::*;

pub use actor::{Registry, RegistrySettings};
pub use messages::{ActorCounts, CloseSession};

use crate::error::Error;
use crate::mailbox::{MailboxHandle, MailboxKind};
use crate::storage::{DeliverySettings, StorageHandle};
use crate::stream::StreamWriter;
use crate::topic::{RouterHandle, TopicHandle, TopicKind, TopicSettings};
use actor::{Directory, Registered};

/// Cloneable access to the registry and, through it, to every mailbox and topic. One `Arc`:
/// every mailbox and topic handle carries a clone, and each operation makes one (cloning the
/// parts one by one was ~4 % of the broker's CPU in `bench send-ws`, most of it atomic counts of
/// the actor addresses bouncing between threads).
#[derive(Clone)]
pub struct RegistryHandle(Arc<Parts>);

struct Parts {
    addr: Addr<Registry>,
    storage: StorageHandle,
    router: RouterHandle,
    topics: TopicSettings,
    mailbox_writers: Directory<MailboxKind>,
    topic_writers: Directory<TopicKind>,
    delivery: DeliverySettings,
    /// `limits.mailbox_max_len`: what a mailbox without its own `max_len` may hold.
    default_max_len: u64,
    /// The node's spool, if enabled (readiness, shutdown, the replayer).
    spool: Option<crate::spool::Spool>,
}

impl RegistryHandle {
    /// Starts the router and the registry under supervisors on the current arbiter.
    pub fn start(storage: StorageHandle, settings: RegistrySettings) -> Self {
        let router = RouterHandle::start(storage.clone());
        let topics = settings.topics.clone();
        let (mailbox_writers, topic_writers) = (Directory::default(), Directory::default());
        let delivery = settings.delivery.clone();
        let default_max_len = settings.default_max_len;
        let spool = settings.spool.clone();
        let (s, r) = (storage.clone(), router.clone());
        let (m, t) = (mailbox_writers.clone(), topic_writers.clone());
        let addr = Supervisor::start(move |_| Registry::new(s, r, settings, m, t));
        Self(Arc::new(Parts {
            addr,
            storage,
            router,
            topics,
            mailbox_writers,
            topic_writers,
            delivery,
            default_max_len,
            spool,
        }))
    }

    /// The node's spool, if enabled.
    pub fn spool(&self) -> Option<&crate::spool::Spool> {
        self.0.spool.as_ref()
    }

    pub(crate) fn storage(&self) -> &StorageHandle {
        &self.0.storage
    }

    /// Live pattern subscriptions and durable subscriptions of this node.
    pub fn router(&self) -> &RouterHandle {
        &self.0.router
    }

    pub fn topic_settings(&self) -> &TopicSettings {
        &self.0.topics
    }

    /// Config `[delivery]`.
    pub fn delivery(&self) -> &DeliverySettings {
        &self.0.delivery
    }

    /// Wakes the long-polls of a mailbox (if it has a live actor on this node).
    pub fn notify(&self, name: &str) {
        self.0.addr.do_send(messages::Notify {
            name: name.to_owned(),
        });
    }

    pub fn mailbox(&self, name: &str) -> MailboxHandle {
        MailboxHandle::new(name.to_owned(), self.clone())
    }

    pub fn topic(&self, name: &str) -> TopicHandle {
        TopicHandle::new(name.to_owned(), self.clone())
    }

    /// `limits.mailbox_max_len`.
    pub fn default_max_len(&self) -> u64 {
        self.0.default_max_len
    }

    pub(crate) async fn mailbox_writer(
        &self,
        name: &str,
    ) -> Result<Addr<StreamWriter<MailboxKind>>, Error> {
        self.writer(&self.0.mailbox_writers, name).await
    }

    /// The writer of a mailbox if it is live on this node (never starts one).
    pub(crate) fn live_mailbox_writer(
        &self,
        name: &str,
    ) -> Option<Addr<StreamWriter<MailboxKind>>> {
        self.0
            .mailbox_writers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .filter(|a| a.connected())
            .cloned()
    }

    pub(crate) async fn topic_writer(
        &self,
        name: &str,
    ) -> Result<Addr<StreamWriter<TopicKind>>, Error> {
        self.writer(&self.0.topic_writers, name).await
    }

    /// The live writer of a stream: from the shared directory when it is there (no registry
    /// hop), else started by the registry.
    async fn writer<K: Registered>(
        &self,
        directory: &Directory<K>,
        name: &str,
    ) -> Result<Addr<StreamWriter<K>>, Error> {
        let known = directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        if let Some(addr) = known.filter(Addr::connected) {
            return Ok(addr);
        }
        Ok(self
            .0
            .addr
            .send(messages::GetWriter {
                name: name.to_owned(),
                kind: PhantomData,
            })
            .await?)
    }

    /// Records a new WebSocket session (counted in stats, closed at shutdown).
    pub fn register_session(&self, id: u64, agent: &str, close: Recipient<CloseSession>) {
        self.0.addr.do_send(messages::RegisterSession {
            id,
            agent: agent.to_owned(),
            close,
        });
    }

    pub fn unregister_session(&self, id: u64) {
        self.0.addr.do_send(messages::UnregisterSession { id });
    }

    /// Asks every session to close with `code`; answers how many there were.
    pub async fn close_all_sessions(&self, code: u16, reason: &str) -> Result<usize, Error> {
        Ok(self
            .0
            .addr
            .send(messages::CloseAllSessions {
                code,
                reason: reason.to_owned(),
            })
            .await?)
    }

    pub async fn actor_counts(&self) -> Result<ActorCounts, Error> {
        Ok(self.0.addr.send(messages::CountActors).await?)
    }
}
