//! The topic configuration of the stream writer: appends go to the topic's history (created on
//! first publish when `topics.auto_create`), and each stored message is handed to the node's
//! router, which pushes it to matching live pattern subscriptions. Copies into subscribers'
//! mailboxes are made by the send path after the writer answers, so a large fan-out never holds
//! up the topic's next write.

use std::sync::Arc;

use super::messages::Route;
use super::router::RouterHandle;
use super::TopicSettings;
use crate::storage::events::EventBus;
use crate::storage::{AppendOutcome, NewRecord, StorageError, StorageHandle, TopicAppend};
use crate::stream::{Appender, StreamKind, StreamWriter};

/// How a topic's stream is named in cross-node announcements (mailbox names have no `:`).
pub const TOPIC_STREAM: &str = "topic:";

/// The writer of one topic's history.
pub type TopicWriter = StreamWriter<TopicKind>;

pub struct TopicKind {
    topic: Arc<str>,
    router: RouterHandle,
    settings: TopicSettings,
    /// Announces this node's writes, so other nodes push them to their live subscriptions.
    bus: Option<EventBus>,
}

impl TopicKind {
    pub fn new(
        name: &str,
        router: RouterHandle,
        settings: TopicSettings,
        bus: Option<EventBus>,
    ) -> Self {
        Self {
            topic: Arc::from(name),
            router,
            settings,
            bus,
        }
    }
}

/// How a topic append treats a missing topic, and the history length of topics without their
/// own.
pub struct TopicAppender {
    auto_create: bool,
    default_max_len: u64,
}

impl Appender for TopicAppender {
    /// A topic deleted meanwhile (on any node) is created again when topics are auto-created,
    /// and is `UnknownTopic` otherwise.
    async fn append(
        &self,
        storage: &StorageHandle,
        name: &str,
        records: Vec<NewRecord>,
        known: bool,
    ) -> Result<AppendOutcome, StorageError> {
        let opts = |create| TopicAppend {
            create,
            default_max_len: self.default_max_len,
        };
        let create = self.auto_create && !known;
        match storage
            .append_topic(name, records.clone(), opts(create))
            .await
        {
            Err(StorageError::UnknownTopic(_)) if self.auto_create && !create => {
                storage.append_topic(name, records, opts(true)).await
            }
            other => other,
        }
    }
}

impl StreamKind for TopicKind {
    const KIND: &'static str = "topic";
    type Appender = TopicAppender;

    fn appender(&self) -> TopicAppender {
        TopicAppender {
            auto_create: self.settings.auto_create,
            default_max_len: self.settings.defaults.retention_max_len.unwrap_or(u64::MAX),
        }
    }

    /// Hands one stored message to the router for live pushes, serialized once.
    fn stored(&mut self, _name: &str, seq: u64, rec: &NewRecord) {
        if self.router.has_live() {
            if let Some(route) = Route::of(&self.topic, seq, &rec.record) {
                self.router.route(route);
            }
        }
    }

    fn committed(&mut self, name: &str, first: u64, last: u64) {
        if let Some(bus) = self.bus.clone() {
            let stream = format!("{TOPIC_STREAM}{name}");
            actix::spawn(async move { bus.announce(&stream, first, last).await });
        }
    }
}
