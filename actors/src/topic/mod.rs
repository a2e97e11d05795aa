//! Topics: one actor per active topic (orders writes into its history), the node's router (live
//! pattern subscriptions and durable subscriptions), the pattern trie, and the handle callers use.

pub mod messages;
pub mod router;
pub mod trie;
pub mod writer;

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

pub use router::RouterHandle;
pub use trie::PatternTrie;
pub use writer::{TopicKind, TopicWriter};

use crate::error::Error;
use crate::mailbox::{query, BrowseQuery, Page};
use crate::model::{TopicConfig, TopicStats};
use crate::registry::RegistryHandle;
use crate::storage::{AppendOutcome, NewRecord, StorageHandle, Stream};
use crate::stream::{self, Append, Watch};

/// Topic behaviour from config `[topics]`.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    /// Publishing to an unknown topic creates it; with false it is `not_found`.
    pub auto_create: bool,
    /// Retention of topics that do not set their own. `retention_seconds: None` = no age limit.
    pub defaults: TopicConfig,
    /// How often histories are trimmed to their age limit.
    pub trim_interval: Duration,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            auto_create: true,
            defaults: TopicConfig {
                retention_max_len: Some(10_000),
                retention_seconds: None,
            },
            trim_interval: Duration::from_secs(60),
        }
    }
}

/// Typed access to one topic. Cheap to make: the actor is looked up only for writes and waits.
#[derive(Clone)]
pub struct TopicHandle {
    name: String,
    registry: RegistryHandle,
}

impl TopicHandle {
    pub(crate) fn new(name: String, registry: RegistryHandle) -> Self {
        Self { name, registry }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn stream(&self) -> Stream {
        Stream::Topic(self.name.clone())
    }

    /// Stores records in the topic's history, atomically, in order; matching live
    /// subscriptions get them pushed. Answers once storage has them.
    pub async fn publish(&self, records: Vec<NewRecord>) -> Result<AppendOutcome, Error> {
        let lookup = || self.registry.topic_writer(&self.name);
        Ok(stream::ask_writer(&self.name, lookup, Append { records }).await??)
    }

    /// A receiver that changes when this node stores a message in the topic.
    pub async fn watch(&self) -> Result<watch::Receiver<u64>, Error> {
        let lookup = || self.registry.topic_writer(&self.name);
        stream::ask_writer(&self.name, lookup, Watch).await
    }

    /// The history, with the mailbox browse query (`unread` is refused: topics have no read
    /// state).
    pub async fn browse(&self, q: &BrowseQuery) -> Result<Page, Error> {
        query::browse(self.registry.storage(), &self.stream(), "", q).await
    }

    /// Browses, and if nothing matches waits up to `wait` for a matching message to arrive.
    pub async fn browse_wait(&self, q: &BrowseQuery, wait: Duration) -> Result<Page, Error> {
        let look = || self.browse(q);
        stream::look_or_wait(wait, None, || self.watch(), look).await
    }

    /// Counts and the effective settings (defaults filled in); `None` if the topic does not
    /// exist.
    pub async fn stats(&self) -> Result<Option<TopicStats>, Error> {
        let defaults = self.registry.topic_settings().defaults;
        Ok(self
            .registry
            .storage()
            .topic_stats(&self.name)
            .await?
            .map(|mut s| {
                s.config = s.config.or(defaults);
                s
            }))
    }

    /// Creates or reconfigures the topic; answers whether it was created now. A lower
    /// `retention_max_len` trims the history at once.
    pub async fn configure(&self, config: TopicConfig) -> Result<bool, Error> {
        Ok(self
            .registry
            .storage()
            .configure_topic(&self.name, config)
            .await?)
    }

    /// Deletes the topic and its history; answers whether it existed. Durable subscriptions
    /// are patterns, not topics: they stay.
    pub async fn delete(&self) -> Result<bool, Error> {
        Ok(self.registry.storage().delete_topic(&self.name).await?)
    }
}

impl RegistryHandle {
    /// Topics at or under `prefix` (by segment), by name after `after`, at most `limit`, with
    /// their counts and effective settings.
    pub async fn topics(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicStats>, Error> {
        let defaults = self.topic_settings().defaults;
        let mut page = self.storage().list_topics(prefix, after, limit).await?;
        for t in &mut page {
            t.config = t.config.or(defaults);
        }
        Ok(page)
    }
}

/// Topics listed per page while trimming.
const TRIM_PAGE: usize = 500;
/// Trims in flight at once.
const TRIM_CONCURRENCY: usize = 8;

/// Trims every topic history to its age limit; answers how many messages went.
pub async fn trim_all(storage: &StorageHandle, settings: &TopicSettings) -> Result<u64, Error> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut after: Option<String> = None;
    let mut removed = 0;
    loop {
        let page = storage.list_topics("", after.as_deref(), TRIM_PAGE).await?;
        let Some(last) = page.last().map(|t| t.name.clone()) else {
            return Ok(removed);
        };
        let full = page.len() == TRIM_PAGE;
        let jobs = page.into_iter().filter_map(|t| {
            let secs = t.config.or(settings.defaults).retention_seconds?;
            let cutoff = now.saturating_sub(i64::try_from(secs.saturating_mul(1000)).ok()?);
            Some(async move { storage.trim_topic(&t.name, None, Some(cutoff)).await })
        });
        let mut results = futures_util::stream::iter(jobs).buffer_unordered(TRIM_CONCURRENCY);
        while let Some(r) = results.next().await {
            removed += r?;
        }
        if !full {
            return Ok(removed);
        }
        after = Some(last);
    }
}
