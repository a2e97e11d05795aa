//! The registry and the send path: a validated, permitted request becomes stored copies.

pub mod actor;
pub mod batch;
pub mod messages;

use actix::prelude::*;
use chrono::Utc;

pub use actor::{Registry, RegistrySettings};
pub use batch::{BatchError, BatchItem, MAX_BATCH};
pub use messages::{ActorCounts, CloseSession};

use crate::error::Error;
use crate::mailbox::{MailboxActor, MailboxHandle};
use crate::model::{self, Address, SendRequest};
use crate::storage::{Appended, DeliverySettings, NewRecord, StorageHandle};

/// What a send answers (`201 {id, status, recipients}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SendReceipt {
    pub id: String,
    pub status: &'static str,
    pub recipients: u64,
    /// The stored copy's position, when there is one stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
}

/// Cloneable access to the registry and, through it, to every mailbox.
#[derive(Clone)]
pub struct RegistryHandle {
    addr: Addr<Registry>,
    storage: StorageHandle,
    directory: actor::Directory,
    delivery: DeliverySettings,
    /// `limits.mailbox_max_len` (batch capacity checks).
    default_max_len: u64,
}

impl RegistryHandle {
    /// Starts the registry under a supervisor on the current arbiter.
    pub fn start(storage: StorageHandle, settings: RegistrySettings) -> Self {
        let s = storage.clone();
        let directory = actor::Directory::default();
        let d = directory.clone();
        let delivery = settings.delivery.clone();
        let default_max_len = settings.default_max_len;
        let addr = Supervisor::start(move |_| Registry::new(s, settings, d));
        Self {
            addr,
            storage,
            directory,
            delivery,
            default_max_len,
        }
    }

    pub fn storage(&self) -> &StorageHandle {
        &self.storage
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
        let Address::Mailbox(name) = to else {
            return Err(Error::invalid(
                "to",
                "topic and broadcast addresses are not available yet; send to `mailbox:<agent>`",
            ));
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
        })
    }
}
