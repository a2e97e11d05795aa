//! Messages the node's router understands (the topic writer understands the ones every stream
//! writer does, [`crate::stream::messages`]).

use std::sync::Arc;

use actix::{Message, Recipient};

use crate::error::Error;
use crate::mailbox::messages::{Pushed, SubscriberKey};
use crate::model::Subscription;

/// Push every message published from now on to a topic matching `pattern` to `recipient`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddLive {
    pub key: SubscriberKey,
    pub pattern: String,
    pub recipient: Recipient<Pushed>,
}

/// Stop pushing to a live subscription.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveLive {
    pub key: SubscriberKey,
}

/// A message just stored in a topic's history: push it to every matching live subscription.
/// The envelope is serialized once and shared.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Route {
    pub topic: Arc<str>,
    pub seq: u64,
    pub json: Arc<str>,
    pub created_at_ms: i64,
}

impl Route {
    /// The route of a stored record: decoded and serialized once for every subscriber.
    pub(crate) fn of(topic: &Arc<str>, seq: u64, record: &[u8]) -> Option<Self> {
        let env = match crate::storage::decode(record, seq) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(%topic, seq, error = %e, "cannot decode a stored record");
                return None;
            }
        };
        match serde_json::to_string(&env) {
            Ok(json) => Some(Route {
                topic: topic.clone(),
                seq,
                json: Arc::from(json),
                created_at_ms: env.created_at.timestamp_millis(),
            }),
            Err(e) => {
                tracing::error!(%topic, seq, error = %e, "cannot serialize an envelope");
                None
            }
        }
    }
}

/// Another node stored `first..=last` in a topic's history: push them to matching live
/// subscriptions here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteRoute {
    pub topic: String,
    pub first: u64,
    pub last: u64,
}

/// The mailboxes holding a durable subscription that matches `topic`, each once, sorted.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, Error>")]
pub struct DurableTargets {
    pub topic: String,
}

/// A subscription was stored on this node: match it from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscriptionAdded(pub Subscription);

/// A subscription was removed on this node: stop matching it now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscriptionRemoved(pub Subscription);
