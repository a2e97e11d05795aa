//! Messages only a mailbox writer understands (the ones every stream writer understands are in
//! [`crate::stream::messages`]).

use actix::Message;

/// Who a push goes to: a session and one of its subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriberKey {
    pub session: u64,
    pub subscription: String,
}

/// A message just stored in a mailbox, pushed to a live subscriber. The envelope is serialized
/// once per message and shared by every subscriber.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Pushed {
    pub subscription: String,
    pub stream: std::sync::Arc<str>,
    pub seq: u64,
    /// The envelope as JSON, with `seq` filled in.
    pub json: std::sync::Arc<str>,
    /// When the broker accepted it (for the delivery latency metric).
    pub created_at_ms: i64,
    /// The message awaits an ack: a session sends it through its ordered path that records
    /// the delivery attempt first.
    pub require_ack: bool,
    /// A redelivery already recorded as an attempt (its `attempt` is in the JSON): the session
    /// sends it as it is, whatever its cursor.
    pub redelivery: bool,
}

/// Push every message stored from now on to `recipient`; answers the last seq this node stored.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct AddSubscriber {
    pub key: SubscriberKey,
    pub recipient: actix::Recipient<Pushed>,
}

/// Stop pushing to a subscriber.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveSubscriber {
    pub key: SubscriberKey,
}

/// Another node stored messages here up to `seq`: wake long-polls and push to subscribers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteAppend {
    pub seq: u64,
}
/// The cached records with `after < seq < before` (degraded reads); `None` when the writer's
/// cache knows nothing of the mailbox.
#[derive(Message)]
#[rtype(result = "Option<Vec<crate::storage::StoredRecord>>")]
pub struct CachedRange {
    pub after: u64,
    pub before: Option<u64>,
}

/// The mailbox was deleted: forget its cached records.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClearCache;

/// Records the spool's replayer stored in this mailbox (in seq order): push, cache, wake.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replayed {
    pub records: Vec<crate::storage::StoredRecord>,
}

/// Something became receivable without a write through this writer (a redelivery, on this node
/// or another): wake the long-polls, and hand redeliveries to a live subscriber.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;
