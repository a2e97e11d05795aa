//! The engine contract: every storage operation, declared once.
//!
//! The `storage_ops!` table below is the one list of operations. From each line it generates
//! the engine-trait method that [`MemoryEngine`](super::memory::MemoryEngine) and
//! [`RedisEngine`](super::redis::RedisEngine) implement, and the
//! [`StorageHandle`](super::StorageHandle) method of the same name and signature, which carries
//! the call to the storage actor. Adding an operation is therefore one line here and one
//! implementation per engine; the actor, the handle and the [`Engine`](super::Engine) enum do
//! not change.
//!
//! The contract is seven traits, one per concern ([`Mailboxes`], [`Topics`], [`Delivery`],
//! [`DeadLetters`], [`Admin`], [`Blobs`], [`Intents`]), only because a trait impl is one block
//! and each engine keeps each concern in its own file. [`StorageEngine`] is all of them; the storage actor holds an
//! `Arc<dyn StorageEngine>`. The traits use `async-trait` because they must be object safe.

use async_trait::async_trait;

use super::{
    AppendOutcome, DeadLetter, DeadPage, DeadQuery, DeliverySettings, DueReport, Handed,
    MailboxStats, NackOutcome, NewRecord, ReadMark, ReadState, StorageError, StoredRecord, Stream,
    TopicAppend,
};
use crate::model::{
    Admission, AgentRecord, AuditEvent, AuditPage, AuditQuery, BlobMeta, MailboxConfig,
    QuotaOutcome, QuotaTake, RateSpec, StoreCounts, Subscription, TopicConfig, TopicStats,
};

/// Generates, from the table of operations: one `#[async_trait]` trait per group, and one
/// [`StorageHandle`](super::StorageHandle) method per operation.
///
/// A handle method must own its arguments before the call leaves for the actor (the call runs
/// there, and completes even if the caller goes away), so each parameter is carried by its
/// form: `name: &T` is copied with `to_owned` and lent back to the engine as `&name`,
/// `name: Option<&str>` likewise with `as_deref`, and any other type moves through.
macro_rules! storage_ops {
    // Every parameter carried: emit the handle method.
    (@method [$($doc:tt)*] $op:ident [$($params:tt)*] $out:ty;
        [$($keep:tt)*] [$($pass:tt)*];) => {
        $($doc)*
        pub async fn $op(&self, $($params)*) -> Result<$out, StorageError> {
            $($keep)*
            self.call(move |e| async move { e.$op($($pass)*).await }).await
        }
    };
    // The next parameter is carried by its form: first `Option<&str>`, then `&T`, then owned.
    (@method $doc:tt $op:ident $params:tt $out:ty; [$($keep:tt)*] [$($pass:tt)*];
        $arg:ident : Option<&str> $(, $($rest:tt)*)?) => {
        storage_ops!(@method $doc $op $params $out;
            [$($keep)* let $arg = $arg.map(str::to_owned);] [$($pass)* $arg.as_deref(),];
            $($($rest)*)?);
    };
    (@method $doc:tt $op:ident $params:tt $out:ty; [$($keep:tt)*] [$($pass:tt)*];
        $arg:ident : & $ty:ty $(, $($rest:tt)*)?) => {
        storage_ops!(@method $doc $op $params $out;
            [$($keep)* let $arg = $arg.to_owned();] [$($pass)* &$arg,];
            $($($rest)*)?);
    };
    (@method $doc:tt $op:ident $params:tt $out:ty; [$($keep:tt)*] [$($pass:tt)*];
        $arg:ident : $ty:ty $(, $($rest:tt)*)?) => {
        storage_ops!(@method $doc $op $params $out;
            [$($keep)*] [$($pass)* $arg,];
            $($($rest)*)?);
    };
    // The table: a trait per group, then the handle methods of all its operations.
    ($(
        $(#[$trait_doc:meta])*
        pub trait $trait:ident {
            $( $(#[$doc:meta])* fn $op:ident($($params:tt)*) -> $out:ty; )*
        }
    )*) => {
        $(
            $(#[$trait_doc])*
            #[async_trait]
            pub trait $trait: Send + Sync {
                $( $(#[$doc])* async fn $op(&self, $($params)*) -> Result<$out, StorageError>; )*
            }
        )*

        impl super::StorageHandle {
            $($(
                storage_ops!(@method [$(#[$doc])*] $op [$($params)*] $out; [] []; $($params)*);
            )*)*
        }
    };
}

storage_ops! {
    /// Mailboxes: appends, reads, read state and settings, and the set of known agents.
    pub trait Mailboxes {
        /// Checks the backend answers. Goes through the circuit breaker like every call, so an
        /// open circuit reports unavailable.
        fn ping() -> ();
        /// Appends records atomically to one mailbox.
        fn append(mailbox: &str, records: Vec<NewRecord>, default_max_len: u64) -> AppendOutcome;
        /// Appends to many mailboxes (a fan-out) in as few round trips as the engine allows,
        /// and records their agents as known. Each mailbox's append is atomic on its own; one
        /// result per item, in order.
        fn append_many(items: Vec<(String, Vec<NewRecord>)>, default_max_len: u64)
            -> Vec<Result<AppendOutcome, StorageError>>;
        /// Records of a mailbox or topic history with `after < seq < before`, ascending, at
        /// most `limit`.
        fn range(stream: &Stream, after: u64, before: Option<u64>, limit: usize)
            -> Vec<StoredRecord>;
        /// One reader's read state in one mailbox.
        fn read_state(mailbox: &str, reader: &str) -> ReadState;
        /// Marks messages read for `reader` and answers the new unread count.
        fn mark_read(mailbox: &str, reader: &str, mark: ReadMark) -> u64;
        /// Counts and settings of a mailbox, as seen by `reader`.
        fn stats(mailbox: &str, reader: &str) -> MailboxStats;
        /// Creates the mailbox if needed and stores its settings; answers whether it was new.
        fn configure(mailbox: &str, config: MailboxConfig) -> bool;
        /// Records that an agent exists (first connection, first message): it has a mailbox.
        fn touch(mailbox: &str) -> ();
        /// Deletes the mailbox with its messages and read state; answers whether it existed.
        fn delete(mailbox: &str) -> bool;
        /// Every agent that has a mailbox, by name.
        fn known_agents() -> Vec<String>;
    }

    /// Topic histories, the topic list and durable subscriptions.
    pub trait Topics {
        /// Appends to a topic's history, dropping its oldest messages past its length limit.
        fn append_topic(topic: &str, records: Vec<NewRecord>, opts: TopicAppend) -> AppendOutcome;
        /// Drops a topic's oldest messages while it holds more than `max_len` or they were
        /// created before `older_than_ms`; answers how many went.
        fn trim_topic(topic: &str, max_len: Option<u64>, older_than_ms: Option<i64>) -> u64;
        /// Creates the topic if needed and stores its settings; answers whether it was new.
        fn configure_topic(topic: &str, config: TopicConfig) -> bool;
        /// Counts and settings of a topic; `None` if it does not exist.
        fn topic_stats(topic: &str) -> Option<TopicStats>;
        /// Deletes a topic and its history; answers whether it existed.
        fn delete_topic(topic: &str) -> bool;
        /// Topics at or under `prefix` (by segment), by name, after `after`, at most `limit`.
        fn list_topics(prefix: &str, after: Option<&str>, limit: usize) -> Vec<TopicStats>;
        /// Stores a durable subscription unless one with the same pattern and mailbox exists;
        /// answers the stored one and whether it is new.
        fn add_subscription(sub: Subscription) -> (Subscription, bool);
        /// Removes a durable subscription; answers it if it existed.
        fn remove_subscription(id: &str) -> Option<Subscription>;
        /// Every durable subscription.
        fn subscriptions() -> Vec<Subscription>;
        /// A number that changes whenever a subscription is added or removed (on any node).
        fn subscriptions_version() -> u64;
    }

    /// Delivery guarantees (see [`super::delivery`]): receive, acks and the retry schedule.
    pub trait Delivery {
        /// Hands over up to `max` receivable messages, highest priority first; each is a
        /// delivery attempt.
        fn receive(mailbox: &str, max: usize, settings: &DeliverySettings) -> Vec<Handed>;
        /// Hands over up to `max` receivable messages that were handed over before (redeliveries:
        /// unacked past their ack timeout, or nacked with requeue, and due again), highest
        /// priority first; each is a further delivery attempt. A live WebSocket session takes
        /// these for an agent that never calls `receive`.
        fn redeliver(mailbox: &str, max: usize, settings: &DeliverySettings) -> Vec<Handed>;
        /// Records a hand-over of the given seqs (e.g. a WebSocket push) as an attempt. Answers
        /// the seqs that were receivable, with their attempt numbers; others are left alone.
        fn take(mailbox: &str, seqs: Vec<u64>, settings: &DeliverySettings) -> Vec<(u64, u32)>;
        /// Settles a delivery as acked; answers the attempt it settled.
        fn ack(mailbox: &str, id: &str) -> u32;
        /// Settles a delivery as refused: redelivered later, or dead-lettered.
        fn nack(mailbox: &str, id: &str, requeue: bool, reason: &str, settings: &DeliverySettings)
            -> NackOutcome;
        /// Works through at most `limit` retry-schedule entries due by now.
        fn retry_due(limit: usize, settings: &DeliverySettings) -> DueReport;
        /// Rebuilds the retry schedule from every mailbox's delivery state and finishes dead
        /// letters left in outboxes (a crash between the two steps). Safe to repeat.
        fn retry_reconcile() -> usize;
        /// Removes records a failed batch stored, by `(id, seq)`; answers how many were removed.
        fn retract(mailbox: &str, stored: Vec<(String, u64)>) -> u64;
    }

    /// The dead-letter queue.
    pub trait DeadLetters {
        /// A page of dead letters.
        fn dlq_list(query: DeadQuery) -> DeadPage;
        /// One dead letter.
        fn dlq_get(id: &str) -> Option<DeadLetter>;
        /// Deletes one dead letter; answers whether it existed.
        fn dlq_delete(id: &str) -> bool;
        /// Deletes dead letters that failed before `before_ms`; answers how many.
        fn dlq_purge(before_ms: i64) -> u64;
        /// How many dead letters there are.
        fn dlq_count() -> u64;
    }

    /// What admins run: agents with API keys, the audit trail, totals, and the counters that
    /// make rate limits and quotas hold across nodes.
    pub trait Admin {
        /// Stores a new agent; answers false (and changes nothing) if the id is taken.
        fn agent_create(agent: AgentRecord) -> bool;
        fn agent_get(id: &str) -> Option<AgentRecord>;
        /// Every created agent, by id.
        fn agent_list() -> Vec<AgentRecord>;
        /// Removes an agent (its key no longer exchanges); answers whether it existed.
        fn agent_delete(id: &str) -> bool;
        /// Appends an event to the capped audit trail (the oldest go past `max_len`); answers
        /// its id.
        fn audit_append(event: AuditEvent, max_len: u64) -> String;
        /// A page of the audit trail, newest first.
        fn audit_list(query: AuditQuery) -> AuditPage;
        /// Takes `n` from the rate counter `key` (GCRA: one round trip, no lock).
        fn rate_take(key: &str, n: u32, rate: RateSpec) -> Admission;
        /// Adds to an agent's counters of the day unless a cap would be passed.
        fn quota_take(agent: &str, take: QuotaTake) -> QuotaOutcome;
        /// Totals for admin stats.
        fn counts() -> StoreCounts;
    }

    /// Blobs: large payloads kept in chunks of [`crate::model::BLOB_CHUNK`] bytes.
    ///
    /// Every byte of a blob goes in through `blob_write_chunk` and out through
    /// `blob_read_chunk`, and through nothing else: the one place per engine where chunk bytes
    /// meet storage (so a transformation of them, such as encryption at rest, is one change).
    /// A blob is found only once `blob_commit` wrote its meta; until then its chunks expire
    /// on their own if the upload is abandoned.
    pub trait Blobs {
        /// Stores chunk `index` of an upload, kept until `expires_at_ms` at least.
        fn blob_write_chunk(id: &str, index: u32, bytes: Vec<u8>, expires_at_ms: i64) -> ();
        /// Chunk `index` of a blob; `None` if it is not there (unknown or expired).
        fn blob_read_chunk(id: &str, index: u32) -> Option<Vec<u8>>;
        /// Makes an uploaded blob visible: stores its meta; the blob (meta and chunks) is kept
        /// until `expires_at_ms`.
        fn blob_commit(meta: BlobMeta, expires_at_ms: i64) -> ();
        /// The meta of a complete blob; `None` if unknown or expired.
        fn blob_meta(id: &str) -> Option<BlobMeta>;
        /// Extends a blob's life to `until_ms` (`None`: for good), never shortening it; answers
        /// false if there is no such blob.
        fn blob_retain(id: &str, until_ms: Option<i64>) -> bool;
        /// Removes a blob or an upload's chunks.
        fn blob_discard(id: &str) -> ();
    }

    /// Intents of batches across mailboxes (see `dispatch::intent`): written before the batch
    /// is applied, removed after, so a batch a crash interrupted is rolled forward.
    pub trait Intents {
        /// Stores an intent stamped with now; `body` is opaque to the engine.
        fn intent_put(id: &str, body: Vec<u8>) -> ();
        /// Removes an intent; answers whether it existed.
        fn intent_delete(id: &str) -> bool;
        /// Intents stored before `before_ms`, oldest first, at most `limit`.
        fn intents_before(before_ms: i64, limit: usize) -> Vec<(String, Vec<u8>)>;
    }
}

/// A storage engine: every operation of the table above.
pub trait StorageEngine:
    Mailboxes + Topics + Delivery + DeadLetters + Admin + Blobs + Intents
{
}

impl<E: Mailboxes + Topics + Delivery + DeadLetters + Admin + Blobs + Intents> StorageEngine for E {}
