//! The registry and the send path: a validated, permitted request becomes stored copies.

pub mod actor;
pub mod batch;
mod faces;
mod fanout;
pub mod messages;

use actix::prelude::*;
use chrono::Utc;

pub use actor::{Registry, RegistrySettings};
pub use batch::{BatchError, BatchItem, MAX_BATCH};
pub use fanout::{FANOUT_CHUNK, FANOUT_IN_FLIGHT};
pub use messages::{ActorCounts, CloseSession};

use crate::error::Error;
use crate::mailbox::{MailboxActor, MailboxHandle};
use crate::model::{self, Address, SendRequest};
use crate::storage::{Appended, DeliverySettings, NewRecord, StorageHandle};
use crate::topic::{RouterHandle, TopicActor, TopicHandle, TopicSettings};

/// What a send answers (`201 {id, status, recipients}`). `recipients` counts the stored
/// copies: 1 for a direct message; for a topic, 1 for its history plus one per mailbox with a
/// matching durable subscription; for a broadcast, one per known agent. Live WebSocket pushes
/// are not counted (they are not stored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SendReceipt {
    pub id: String,
    pub status: &'static str,
    pub recipients: u64,
    /// The stored copy's position, when there is one stream (a topic: its history's seq).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
    /// Mailbox copies of a fan-out that could not be stored (e.g. a full mailbox); logged and
    /// counted in `mailbox_fanout_failures_total`. Left out when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub failed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Cloneable access to the registry and, through it, to every mailbox and topic.
#[derive(Clone)]
pub struct RegistryHandle {
    addr: Addr<Registry>,
    storage: StorageHandle,
    router: RouterHandle,
    topics: TopicSettings,
    directory: actor::Directory,
    delivery: DeliverySettings,
    /// `limits.mailbox_max_len`: batch capacity checks, and fan-out appends that bypass the
    /// mailbox actors.
    default_max_len: u64,
}

impl RegistryHandle {
    /// Starts the router and the registry under supervisors on the current arbiter.
    pub fn start(storage: StorageHandle, settings: RegistrySettings) -> Self {
        let router = RouterHandle::start(storage.clone());
        let topics = settings.topics.clone();
        let directory = actor::Directory::default();
        let delivery = settings.delivery.clone();
        let default_max_len = settings.default_max_len;
        let (s, r, d) = (storage.clone(), router.clone(), directory.clone());
        let addr = Supervisor::start(move |_| Registry::new(s, r, settings, d));
        Self {
            addr,
            storage,
            router,
            topics,
            directory,
            delivery,
            default_max_len,
        }
    }

    pub fn storage(&self) -> &StorageHandle {
        &self.storage
    }

    /// Live pattern subscriptions and durable subscriptions of this node.
    pub fn router(&self) -> &RouterHandle {
        &self.router
    }

    pub fn topic_settings(&self) -> &TopicSettings {
        &self.topics
    }

    /// Config `[delivery]`.
    pub fn delivery(&self) -> &DeliverySettings {
        &self.delivery
    }

    /// Wakes the long-polls of a mailbox (if it has a live actor on this node).
    pub fn notify(&self, name: &str) {
        self.addr.do_send(messages::Notify {
            name: name.to_owned(),
        });
    }

    pub fn mailbox(&self, name: &str) -> MailboxHandle {
        MailboxHandle::new(name.to_owned(), self.clone())
    }

    pub fn topic(&self, name: &str) -> TopicHandle {
        TopicHandle::new(name.to_owned(), self.clone())
    }

    pub(crate) async fn topic_actor(&self, name: &str) -> Result<Addr<TopicActor>, Error> {
        Ok(self
            .addr
            .send(messages::GetTopic {
                name: name.to_owned(),
            })
            .await?)
    }

    pub(crate) async fn mailbox_actor(&self, name: &str) -> Result<Addr<MailboxActor>, Error> {
        let known = self
            .directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        if let Some(addr) = known.filter(Addr::connected) {
            return Ok(addr);
        }
        Ok(self
            .addr
            .send(messages::GetMailbox {
                name: name.to_owned(),
            })
            .await?)
    }

    /// Tells the live mailbox actors of this node about records a fan-out stored directly.
    pub(crate) fn notify_stored(&self, items: Vec<(String, u64, NewRecord)>) {
        if !items.is_empty() {
            self.addr.do_send(messages::NotifyStored { items });
        }
    }

    /// Records a new WebSocket session (counted in stats, closed at shutdown).
    pub fn register_session(&self, id: u64, agent: &str, close: Recipient<CloseSession>) {
        self.addr.do_send(messages::RegisterSession {
            id,
            agent: agent.to_owned(),
            close,
        });
    }

    pub fn unregister_session(&self, id: u64) {
        self.addr.do_send(messages::UnregisterSession { id });
    }

    /// Asks every session to close with `code`; answers how many there were.
    pub async fn close_all_sessions(&self, code: u16, reason: &str) -> Result<usize, Error> {
        Ok(self
            .addr
            .send(messages::CloseAllSessions {
                code,
                reason: reason.to_owned(),
            })
            .await?)
    }

    pub async fn actor_counts(&self) -> Result<ActorCounts, Error> {
        Ok(self.addr.send(messages::CountActors).await?)
    }

    /// Stores a message sent by `from`. The request must already be validated (giving `to`)
    /// and permitted. `idempotency_key` makes a retried send answer the first receipt.
    pub async fn send(
        &self,
        from: &str,
        req: SendRequest,
        to: &Address,
        idempotency_key: Option<&str>,
    ) -> Result<SendReceipt, Error> {
        let name = match to {
            Address::Mailbox(name) => name,
            Address::Topic(topic) => return self.publish(from, req, topic, idempotency_key).await,
            Address::Broadcast => return self.broadcast(from, req, idempotency_key).await,
        };
        let mut env = req.into_envelope(from, model::new_id(), Utc::now());
        env.mailbox = Some(name.clone());
        let record = NewRecord::of(&env, idempotency_key.map(|k| format!("{from}:{k}")))?;
        let outcome = self.mailbox(name).deliver(vec![record]).await?;
        let (id, seq) = match outcome.results.first() {
            Some(Appended::Stored { seq }) => (env.id.clone(), *seq),
            Some(Appended::Duplicate { id, seq }) => (id.clone(), *seq),
            None => return Err(Error::Internal("append answered no result".into())),
        };
        if id == env.id {
            metrics::counter!("mailbox_messages_accepted_total", "route" => "direct").increment(1);
        }
        tracing::debug!(message_id = %id, correlation_id = ?env.correlation_id, mailbox = %name, seq, "stored");
        Ok(SendReceipt {
            id,
            status: "stored",
            recipients: 1,
            seq: Some(seq.to_string()),
            failed: 0,
        })
    }
}
