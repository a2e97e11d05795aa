//! One mailbox: its actor (orders writes, wakes long-polls), its messages and the handle callers use.

pub mod actor;
pub mod delivery;
pub mod messages;
pub mod query;

use std::time::Duration;

use tokio::sync::watch;

pub use actor::{Liveness, MailboxActor};
pub use delivery::MAX_RECEIVE;
pub use query::{BrowseQuery, Page};

use crate::error::Error;
use crate::model::MailboxConfig;
use crate::registry::RegistryHandle;
use crate::storage::{AppendOutcome, MailboxStats, NewRecord, ReadMark};

/// Typed access to one mailbox. Cheap to make: the actor is looked up only for writes and waits.
#[derive(Clone)]
pub struct MailboxHandle {
    name: String,
    registry: RegistryHandle,
}

impl MailboxHandle {
    pub(crate) fn new(name: String, registry: RegistryHandle) -> Self {
        Self { name, registry }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The storage handle, for reads that need no actor.
    pub fn registry_storage(&self) -> &crate::storage::StorageHandle {
        self.registry.storage()
    }

    /// Stores records atomically, in order. Answers once storage has them.
    pub async fn deliver(&self, records: Vec<NewRecord>) -> Result<AppendOutcome, Error> {
        // An actor retired by the idle sweep between lookup and send answers `Closed`:
        // look it up again (a fresh one is started) and retry once.
        for _ in 0..2 {
            let addr = self.registry.mailbox_actor(&self.name).await?;
            match addr
                .send(messages::Deliver {
                    records: records.clone(),
                })
                .await
            {
                Ok(r) => return Ok(r?),
                Err(actix::MailboxError::Closed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Unavailable(format!(
            "mailbox `{}` actor keeps stopping",
            self.name
        )))
    }

    /// Pushes every message stored from now on to `recipient` (a live subscription); answers
    /// the last seq this node has stored here (0 if none yet).
    pub async fn subscribe(
        &self,
        key: messages::SubscriberKey,
        recipient: actix::Recipient<messages::Pushed>,
    ) -> Result<u64, Error> {
        let addr = self.registry.mailbox_actor(&self.name).await?;
        Ok(addr
            .send(messages::AddSubscriber { key, recipient })
            .await?)
    }

    /// Stops pushes to a subscription (no answer needed: a closed recipient is dropped anyway).
    pub async fn unsubscribe(&self, key: messages::SubscriberKey) {
        if let Ok(addr) = self.registry.mailbox_actor(&self.name).await {
            addr.do_send(messages::RemoveSubscriber { key });
        }
    }

    /// A receiver that changes when this node stores a message here.
    pub async fn watch(&self) -> Result<watch::Receiver<u64>, Error> {
        let addr = self.registry.mailbox_actor(&self.name).await?;
        Ok(addr.send(messages::Watch).await?)
    }

    pub async fn browse(&self, reader: &str, q: &BrowseQuery) -> Result<Page, Error> {
        let stream = crate::storage::Stream::Mailbox(self.name.clone());
        query::browse(self.registry.storage(), &stream, reader, q).await
    }

    /// Browses, and if nothing matches waits up to `wait` for a matching message to arrive.
    pub async fn browse_wait(
        &self,
        reader: &str,
        q: &BrowseQuery,
        wait: Duration,
    ) -> Result<Page, Error> {
        if wait.is_zero() {
            return self.browse(reader, q).await;
        }
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribe before the first look, so a message stored in between still wakes us.
        let mut rx = self.watch().await?;
        loop {
            let page = self.browse(reader, q).await?;
            if !page.messages.is_empty() {
                return Ok(page);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Err(_) => return Ok(page),
                Ok(Ok(())) => {}
                // The actor retired: watch the new one.
                Ok(Err(_)) => rx = self.watch().await?,
            }
        }
    }

    pub async fn stats(&self, reader: &str) -> Result<MailboxStats, Error> {
        Ok(self.registry.storage().stats(&self.name, reader).await?)
    }

    pub async fn mark_read(&self, reader: &str, mark: ReadMark) -> Result<u64, Error> {
        Ok(self
            .registry
            .storage()
            .mark_read(&self.name, reader, mark)
            .await?)
    }

    /// Creates or reconfigures the mailbox; answers whether it was created now.
    pub async fn configure(&self, config: MailboxConfig) -> Result<bool, Error> {
        Ok(self
            .registry
            .storage()
            .configure(&self.name, config)
            .await?)
    }

    /// Deletes the mailbox; answers whether there was anything to delete.
    pub async fn delete(&self) -> Result<bool, Error> {
        Ok(self.registry.storage().delete(&self.name).await?)
    }
}
