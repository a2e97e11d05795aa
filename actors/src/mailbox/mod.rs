//! One mailbox: its writer configuration (pushes to live sessions, announces to other nodes),
//! its messages, consumption (receive, ack, nack) and the handle callers use.

pub mod cache;
pub mod consume;
#[cfg(debug_assertions)]
mod drill;
pub mod messages;
pub mod query;
pub mod writer;

use std::time::Duration;

use tokio::sync::watch;

pub use consume::MAX_RECEIVE;
pub use query::{BrowseQuery, Page};
pub use writer::{MailboxKind, MailboxWriter};

use crate::error::Error;
use crate::model::MailboxConfig;
use crate::registry::RegistryHandle;
use crate::storage::{AppendOutcome, MailboxStats, NewRecord, ReadMark};
use crate::stream::{self, Append, Watch};

/// Typed access to one mailbox. Cheap to make: the actor is looked up only for writes and waits.
#[derive(Clone)]
pub struct MailboxHandle {
    name: String,
    pub(crate) registry: RegistryHandle,
}

impl MailboxHandle {
    pub(crate) fn new(name: String, registry: RegistryHandle) -> Self {
        Self { name, registry }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stores records atomically, in order, through the mailbox's writer. Answers once
    /// storage has them.
    pub async fn deliver(&self, records: Vec<NewRecord>) -> Result<AppendOutcome, Error> {
        let lookup = || self.registry.mailbox_writer(&self.name);
        Ok(stream::ask_writer(&self.name, lookup, Append { records }).await??)
    }

    /// Pushes every message stored from now on to `recipient` (a live subscription); answers
    /// the last seq this node has stored here (0 if none yet).
    pub async fn subscribe(
        &self,
        key: messages::SubscriberKey,
        recipient: actix::Recipient<messages::Pushed>,
    ) -> Result<u64, Error> {
        let addr = self.registry.mailbox_writer(&self.name).await?;
        Ok(addr
            .send(messages::AddSubscriber { key, recipient })
            .await?)
    }

    /// Stops pushes to a subscription (no answer needed: a closed recipient is dropped anyway).
    pub async fn unsubscribe(&self, key: messages::SubscriberKey) {
        if let Ok(addr) = self.registry.mailbox_writer(&self.name).await {
            addr.do_send(messages::RemoveSubscriber { key });
        }
    }

    /// A receiver that changes when this node stores a message here.
    pub async fn watch(&self) -> Result<watch::Receiver<u64>, Error> {
        let lookup = || self.registry.mailbox_writer(&self.name);
        stream::ask_writer(&self.name, lookup, Watch).await
    }

    /// A page of the mailbox. While storage is down, a mailbox whose writer is live on this
    /// node answers from the writer's cache of recent messages, marked `degraded` (SPEC
    /// section 4); otherwise the storage error stands (503).
    pub async fn browse(&self, reader: &str, q: &BrowseQuery) -> Result<Page, Error> {
        let stream = crate::storage::Stream::Mailbox(self.name.clone());
        match query::browse(self.registry.storage(), &stream, reader, q).await {
            Err(Error::Unavailable(why)) => match self.cached(q).await {
                Some(records) => query::browse_cached(records, q, &why),
                None => Err(Error::Unavailable(why)),
            },
            other => other,
        }
    }

    /// The writer's cached records in the query's range, if the writer is live here and its
    /// cache knows the mailbox.
    async fn cached(&self, q: &BrowseQuery) -> Option<Vec<crate::storage::StoredRecord>> {
        let writer = self.registry.live_mailbox_writer(&self.name)?;
        let msg = messages::CachedRange {
            after: q.after.unwrap_or(0),
            before: q.before,
        };
        writer.send(msg).await.ok().flatten()
    }

    /// Browses, and if nothing matches waits up to `wait` for a matching message to arrive.
    pub async fn browse_wait(
        &self,
        reader: &str,
        q: &BrowseQuery,
        wait: Duration,
    ) -> Result<Page, Error> {
        let look = || self.browse(reader, q);
        stream::look_or_wait(wait, None, || self.watch(), look).await
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
        let existed = self.registry.storage().delete(&self.name).await?;
        if let Some(writer) = self.registry.live_mailbox_writer(&self.name) {
            writer.do_send(messages::ClearCache);
        }
        Ok(existed)
    }
}
