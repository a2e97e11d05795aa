//! The storage actor: the one door to the engine. It owns the circuit breaker (a dead Redis is
//! not hammered; callers fail fast with `Unavailable`) and the storage metrics. Handlers return
//! futures that run concurrently, so the actor never serialises I/O.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::{
    AppendOutcome, Engine, MailboxStats, NewRecord, ReadMark, ReadState, StorageError,
    StoredRecord, Stream, TopicAppend,
};
use crate::model::{MailboxConfig, Subscription, TopicConfig, TopicStats};

/// Consecutive backend failures that open the circuit.
const BREAKER_THRESHOLD: u32 = 5;
/// How long an open circuit refuses calls before letting one through to probe.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(2);

/// Stops calls to a backend that keeps failing; shared by the actor's in-flight futures.
#[derive(Default)]
pub struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicI64,
    open: AtomicBool,
}

impl Breaker {
    fn check(&self) -> Result<(), StorageError> {
        if self.open.load(Ordering::Relaxed)
            && Utc::now().timestamp_millis() < self.open_until_ms.load(Ordering::Relaxed)
        {
            return Err(StorageError::Unavailable(
                "storage circuit open after repeated failures".into(),
            ));
        }
        Ok(())
    }

    fn record<T>(&self, r: &Result<T, StorageError>) {
        match r {
            Err(StorageError::Unavailable(e)) => {
                metrics::counter!("mailbox_storage_errors_total").increment(1);
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= BREAKER_THRESHOLD {
                    let until =
                        Utc::now().timestamp_millis() + BREAKER_COOL_DOWN.as_millis() as i64;
                    self.open_until_ms.store(until, Ordering::Relaxed);
                    if !self.open.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "storage circuit opened");
                        metrics::gauge!("mailbox_storage_circuit_open").set(1.0);
                    }
                }
            }
            _ => {
                self.failures.store(0, Ordering::Relaxed);
                if self.open.swap(false, Ordering::Relaxed) {
                    tracing::info!("storage circuit closed");
                    metrics::gauge!("mailbox_storage_circuit_open").set(0.0);
                }
            }
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }
}

pub struct StorageActor {
    engine: Engine,
    breaker: Arc<Breaker>,
}

impl Actor for StorageActor {
    type Context = Context<Self>;
}

impl Supervised for StorageActor {}

macro_rules! storage_op {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? } -> $out:ty, |$e:ident, $m:ident| $body:expr) => {
        $(#[$doc])*
        pub struct $name { $(pub $field: $ty),* }
        impl Message for $name {
            type Result = Result<$out, StorageError>;
        }
        impl Handler<$name> for StorageActor {
            type Result = ResponseFuture<Result<$out, StorageError>>;
            fn handle(&mut self, $m: $name, _: &mut Context<Self>) -> Self::Result {
                let $e = self.engine.clone();
                let breaker = self.breaker.clone();
                Box::pin(async move {
                    breaker.check()?;
                    let r = $body;
                    breaker.record(&r);
                    r
                })
            }
        }
    };
}

storage_op!(
    /// Check the backend answers; bypasses nothing, so an open circuit reports unavailable.
    Ping {} -> (), |e, _m| e.ping().await);
storage_op!(
    /// Append records atomically to one mailbox.
    Append { mailbox: String, records: Vec<NewRecord>, default_max_len: u64 } -> AppendOutcome,
    |e, m| e.append(&m.mailbox, m.records, m.default_max_len).await);
storage_op!(
    /// Append to many mailboxes at once (a fan-out); one result per mailbox.
    AppendMany { items: Vec<(String, Vec<NewRecord>)>, default_max_len: u64 } -> Vec<Result<AppendOutcome, StorageError>>,
    |e, m| e.append_many(m.items, m.default_max_len).await);
storage_op!(
    /// Read records of a mailbox or topic history by position.
    Range { stream: Stream, after: u64, before: Option<u64>, limit: usize } -> Vec<StoredRecord>,
    |e, m| e.range(&m.stream, m.after, m.before, m.limit).await);
storage_op!(
    /// One reader's read state in one mailbox.
    ReadStateOf { mailbox: String, reader: String } -> ReadState,
    |e, m| e.read_state(&m.mailbox, &m.reader).await);
storage_op!(
    /// Mark messages read; answers the unread count.
    MarkRead { mailbox: String, reader: String, mark: ReadMark } -> u64,
    |e, m| e.mark_read(&m.mailbox, &m.reader, m.mark).await);
storage_op!(
    /// Counts and settings of a mailbox.
    Stats { mailbox: String, reader: String } -> MailboxStats,
    |e, m| e.stats(&m.mailbox, &m.reader).await);
storage_op!(
    /// Create or reconfigure a mailbox.
    Configure { mailbox: String, config: MailboxConfig } -> bool,
    |e, m| e.configure(&m.mailbox, m.config).await);
storage_op!(
    /// Mark an agent as known (it has a mailbox).
    Touch { mailbox: String } -> (),
    |e, m| e.touch(&m.mailbox).await);
storage_op!(
    /// Delete a mailbox and everything in it.
    Delete { mailbox: String } -> bool,
    |e, m| e.delete(&m.mailbox).await);
storage_op!(
    /// Every agent that has a mailbox.
    KnownAgents {} -> Vec<String>,
    |e, _m| e.known_agents().await);
storage_op!(
    /// Append records atomically to a topic's history.
    AppendTopic { topic: String, records: Vec<NewRecord>, opts: TopicAppend } -> AppendOutcome,
    |e, m| e.append_topic(&m.topic, m.records, m.opts).await);
storage_op!(
    /// Drop a topic's oldest messages past a length or an age.
    TrimTopic { topic: String, max_len: Option<u64>, older_than_ms: Option<i64> } -> u64,
    |e, m| e.trim_topic(&m.topic, m.max_len, m.older_than_ms).await);
storage_op!(
    /// Create or reconfigure a topic.
    ConfigureTopic { topic: String, config: TopicConfig } -> bool,
    |e, m| e.configure_topic(&m.topic, m.config).await);
storage_op!(
    /// Counts and settings of a topic, if it exists.
    TopicStatsOf { topic: String } -> Option<TopicStats>,
    |e, m| e.topic_stats(&m.topic).await);
storage_op!(
    /// Delete a topic and its history.
    DeleteTopic { topic: String } -> bool,
    |e, m| e.delete_topic(&m.topic).await);
storage_op!(
    /// Topics under a prefix.
    ListTopics { prefix: String, after: Option<String>, limit: usize } -> Vec<TopicStats>,
    |e, m| e.list_topics(&m.prefix, m.after.as_deref(), m.limit).await);
storage_op!(
    /// Store a durable subscription (or find the same one).
    AddSubscription { sub: Subscription } -> (Subscription, bool),
    |e, m| e.add_subscription(m.sub).await);
storage_op!(
    /// Remove a durable subscription.
    RemoveSubscription { id: String } -> Option<Subscription>,
    |e, m| e.remove_subscription(&m.id).await);
storage_op!(
    /// Every durable subscription.
    Subscriptions {} -> Vec<Subscription>,
    |e, _m| e.subscriptions().await);
storage_op!(
    /// The subscription change counter.
    SubscriptionsVersion {} -> u64,
    |e, _m| e.subscriptions_version().await);

/// Cloneable, typed access to the storage actor.
#[derive(Clone)]
pub struct StorageHandle {
    addr: Addr<StorageActor>,
    breaker: Arc<Breaker>,
    kind: &'static str,
}

fn gone(e: MailboxError) -> StorageError {
    StorageError::Unavailable(format!("storage actor unavailable: {e}"))
}

impl StorageHandle {
    /// Starts the storage actor under a supervisor on the current arbiter.
    pub fn start(engine: Engine) -> Self {
        let breaker = Arc::new(Breaker::default());
        let kind = engine.kind();
        let b = breaker.clone();
        let addr = Supervisor::start(move |_| StorageActor { engine, breaker: b });
        metrics::gauge!("mailbox_storage_circuit_open").set(0.0);
        Self {
            addr,
            breaker,
            kind,
        }
    }

    pub fn engine_kind(&self) -> &'static str {
        self.kind
    }

    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    async fn call<M>(&self, msg: M) -> Result<M::Result, StorageError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        StorageActor: Handler<M>,
    {
        self.addr.send(msg).await.map_err(gone)
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        self.call(Ping {}).await?
    }

    pub async fn append(
        &self,
        mailbox: &str,
        records: Vec<NewRecord>,
        default_max_len: u64,
    ) -> Result<AppendOutcome, StorageError> {
        self.call(Append {
            mailbox: mailbox.to_owned(),
            records,
            default_max_len,
        })
        .await?
    }

    /// Appends to many mailboxes at once (a fan-out); one result per mailbox, in order.
    pub async fn append_many(
        &self,
        items: Vec<(String, Vec<NewRecord>)>,
        default_max_len: u64,
    ) -> Result<Vec<Result<AppendOutcome, StorageError>>, StorageError> {
        self.call(AppendMany {
            items,
            default_max_len,
        })
        .await?
    }

    pub async fn range(
        &self,
        stream: &Stream,
        after: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        self.call(Range {
            stream: stream.clone(),
            after,
            before,
            limit,
        })
        .await?
    }

    pub async fn read_state(&self, mailbox: &str, reader: &str) -> Result<ReadState, StorageError> {
        self.call(ReadStateOf {
            mailbox: mailbox.to_owned(),
            reader: reader.to_owned(),
        })
        .await?
    }

    pub async fn mark_read(
        &self,
        mailbox: &str,
        reader: &str,
        mark: ReadMark,
    ) -> Result<u64, StorageError> {
        self.call(MarkRead {
            mailbox: mailbox.to_owned(),
            reader: reader.to_owned(),
            mark,
        })
        .await?
    }

    pub async fn stats(&self, mailbox: &str, reader: &str) -> Result<MailboxStats, StorageError> {
        self.call(Stats {
            mailbox: mailbox.to_owned(),
            reader: reader.to_owned(),
        })
        .await?
    }

    pub async fn configure(
        &self,
        mailbox: &str,
        config: MailboxConfig,
    ) -> Result<bool, StorageError> {
        self.call(Configure {
            mailbox: mailbox.to_owned(),
            config,
        })
        .await?
    }

    pub async fn touch(&self, mailbox: &str) -> Result<(), StorageError> {
        self.call(Touch {
            mailbox: mailbox.to_owned(),
        })
        .await?
    }

    pub async fn delete(&self, mailbox: &str) -> Result<bool, StorageError> {
        self.call(Delete {
            mailbox: mailbox.to_owned(),
        })
        .await?
    }

    pub async fn known_agents(&self) -> Result<Vec<String>, StorageError> {
        self.call(KnownAgents {}).await?
    }

    pub async fn append_topic(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        opts: TopicAppend,
    ) -> Result<AppendOutcome, StorageError> {
        self.call(AppendTopic {
            topic: topic.to_owned(),
            records,
            opts,
        })
        .await?
    }

    pub async fn trim_topic(
        &self,
        topic: &str,
        max_len: Option<u64>,
        older_than_ms: Option<i64>,
    ) -> Result<u64, StorageError> {
        self.call(TrimTopic {
            topic: topic.to_owned(),
            max_len,
            older_than_ms,
        })
        .await?
    }

    pub async fn configure_topic(
        &self,
        topic: &str,
        config: TopicConfig,
    ) -> Result<bool, StorageError> {
        self.call(ConfigureTopic {
            topic: topic.to_owned(),
            config,
        })
        .await?
    }

    pub async fn topic_stats(&self, topic: &str) -> Result<Option<TopicStats>, StorageError> {
        self.call(TopicStatsOf {
            topic: topic.to_owned(),
        })
        .await?
    }

    pub async fn delete_topic(&self, topic: &str) -> Result<bool, StorageError> {
        self.call(DeleteTopic {
            topic: topic.to_owned(),
        })
        .await?
    }

    pub async fn list_topics(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicStats>, StorageError> {
        self.call(ListTopics {
            prefix: prefix.to_owned(),
            after: after.map(str::to_owned),
            limit,
        })
        .await?
    }

    pub async fn add_subscription(
        &self,
        sub: Subscription,
    ) -> Result<(Subscription, bool), StorageError> {
        self.call(AddSubscription { sub }).await?
    }

    pub async fn remove_subscription(
        &self,
        id: &str,
    ) -> Result<Option<Subscription>, StorageError> {
        self.call(RemoveSubscription { id: id.to_owned() }).await?
    }

    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, StorageError> {
        self.call(Subscriptions {}).await?
    }

    pub async fn subscriptions_version(&self) -> Result<u64, StorageError> {
        self.call(SubscriptionsVersion {}).await?
    }
}

mod delivery;
